//! `trailproof watch s3://BUCKET[/PREFIX] --sqs-queue URL --checkpoint FILE --sign-key KEY`:
//! verifies deliveries as S3 (or CloudTrail through SNS) announces them on an SQS queue.
//!
//! Each tick is `verify s3://... --checkpoint FILE` over what is new since the checkpoint (the
//! engine lists and reads the bucket itself; a message is only a hint that something may be
//! new), its findings written as JSONL as they are decided, then the next checkpoint written
//! and synced, and only then the messages the tick covers deleted. A crash anywhere re-verifies
//! from the last durable checkpoint: nothing is skipped; a message received twice is one tick
//! more. Between ticks each chain is held to the clock ([`trailproof::engine::watch`]): a
//! chain whose next digest has not been verified `--digest-grace` after its last one's end is
//! reported once, after a tick has looked for it in the bucket.
//!
//! An S3 event naming an object older than what the checkpoint holds verified (a log file at or
//! before the last verified digest of every chain of its folder, or a digest before its chain's
//! last one), written after the tick that first verified past its time started (or at a time
//! this process cannot tell: it verified past it before a restart), names something no tick
//! looks at again: a log file written back-dated, or one verified before and rewritten since.
//! Such an object is verified again: a full run (no checkpoint) of its account and Region over
//! the hours around its time ([`BEHIND_WINDOW`] either side), and what that run says of the
//! object, but for where its range starts and ends, is written out. The messages are deleted
//! only after that too. CloudTrail's own notifications (no event time) never ask for it:
//! CloudTrail neither rewrites nor back-dates.
//!
//! Output: the `trailproof-jsonl/1` finding lines of `verify --format jsonl`, without summary
//! lines (a watch does not end), on stdout or appended to `--out`. A tick's `coverage_end`
//! findings are left out: where a chain stops is judged by the grace, not by where the
//! newest digest of another chain happens to end. Diagnostics go to stderr.
//!
//! Exit status: 0 when the watch stopped (SIGTERM, SIGINT, `--exit-when-idle`) having written
//! no finding that is not `valid`, 1 when it wrote one, 2 when it could not go on (no
//! checkpoint, a checkpoint that does not verify or that the evidence contradicts, SQS or S3
//! refusing the watch's requests).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use jiff::{SignedDuration, Timestamp};

use trailproof::core::finding::{Finding, Kind, Verdict};
use trailproof::core::layout::{folders, parse_key, ChainId, CloudTrailKey, Dated, Scope};
use trailproof::core::notification::{parse, Delivery, Notice};
use trailproof::core::time::{earlier, format_iso, later};
use trailproof::core::types::S3Location;
use trailproof::engine::watch::Silence;
use trailproof::engine::{self, EngineError, NoObserver, Settings};
use trailproof::report::checkpoint::{Checkpoint, Contradiction, FiltersMark};
use trailproof::report::{jsonl, ChainInfo};
use trailproof::source::s3::S3Source;
use trailproof::source::sqs::Queue;
use trailproof::source::KeyProvider;

use super::aws::{open_s3, parse_s3_uri, AwsArgs};
use super::checkpoint::{signing_key, undecided, CheckpointCliError, Resume};
use super::error::CliError;

/// Longest a ReceiveMessage waits, so that a signal is acted on within seconds.
const LONGEST_POLL: u64 = 5;
/// Messages gathered at most before a tick, when the queue has more at once.
const MAX_PENDING: usize = 1000;
/// How far either side of an object's time a run that verifies it again reaches: the digest
/// that names a log file ends within the hour after it, and is read with its neighbours.
const BEHIND_WINDOW: SignedDuration = SignedDuration::from_hours(2);
/// An object written less than this before a tick started is verified again all the same:
/// S3's clock (an event's time) and this host's (when the tick started) may disagree by as
/// much (NTP keeps them within milliseconds; the tick lists the bucket some time after it
/// starts, which widens the margin).
const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(1);
/// When the checkpoint passed each mark, kept for so many ticks that moved it.
const PASSINGS_KEPT: usize = 64;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The bucket CloudTrail delivers to: s3://BUCKET[/PREFIX].
    pub source: String,
    /// The URL of the SQS queue that receives the bucket's S3 event notifications
    /// (s3:ObjectCreated:*), or CloudTrail's SNS notifications.
    #[arg(long, value_name = "URL")]
    pub sqs_queue: String,
    /// The signed checkpoint to go on from, rewritten after every tick. It must exist: make
    /// it with `trailproof verify s3://BUCKET --checkpoint FILE --sign-key KEY` first.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The private key (PKCS#8 PEM) that signs the checkpoint.
    #[arg(long, value_name = "KEY.pem")]
    pub sign_key: PathBuf,
    /// The public key (PEM) that signed the checkpoint, when it is not --sign-key's.
    #[arg(long, value_name = "PUB.pem")]
    pub checkpoint_key: Option<PathBuf>,
    /// CloudTrail public keys, as printed by `aws cloudtrail list-public-keys` (default: ask
    /// CloudTrail in each source Region).
    #[arg(long, value_name = "KEYS.json")]
    pub public_keys: Option<PathBuf>,
    /// Append the JSONL findings to FILE (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How long after a chain's last verified digest's end its next digest must have been
    /// verified (CloudTrail delivers one about an hour after); later, the chain is reported
    /// (`digest_successor_missing`). Like 90m, 2h, 45s.
    #[arg(long, value_name = "DURATION", default_value = "90m", value_parser = parse_grace)]
    pub digest_grace: SignedDuration,
    /// Stop (and exit) after SECS seconds without a message and without work.
    #[arg(long, value_name = "SECS")]
    pub exit_when_idle: Option<u64>,
    /// Serve Prometheus metrics on http://ADDR/metrics (like 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// The checkpoint's `--account-id`, `--region` and `--trail`: the watch stops on a
    /// checkpoint made with other filters, so that one swapped in cannot narrow it.
    #[command(flatten)]
    pub filters: super::FilterArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `--digest-grace`: a positive duration (`90m`, `1h 30m`, `45s`).
fn parse_grace(text: &str) -> Result<SignedDuration, String> {
    match text.parse::<SignedDuration>() {
        Ok(d) if d.is_positive() => Ok(d),
        _ => Err(format!(
            "{text:?} is not a positive duration; use forms like 90m, 2h, 45s"
        )),
    }
}

/// Why `watch` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WatchCliError {
    #[error("there is no checkpoint at {path}: watch goes on from one and never starts blind")]
    NoCheckpoint { path: PathBuf },
    #[error("cannot open {path} to append findings: {source}")]
    Out {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the findings could not be written: {0}")]
    Write(std::io::Error),
}

impl WatchCliError {
    /// What to do about it.
    pub fn advice(&self) -> Option<String> {
        match self {
            WatchCliError::NoCheckpoint { path } => Some(format!(
                "verify everything once and make the first checkpoint: trailproof verify s3://BUCKET --checkpoint {} --sign-key KEY.pem",
                path.display()
            )),
            _ => None,
        }
    }
}

fn fail(e: WatchCliError) -> CliError {
    CliError::Watch(Box::new(e))
}

/// SIGTERM or SIGINT came: finish what is in flight, then stop.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(args: &WatchArgs) -> Result<u8, CliError> {
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    // The checkpoint is read (and must verify) before anything else is opened.
    let mut settings = Settings::default();
    let resume = Resume::read(
        &args.checkpoint,
        signing_key(&args.sign_key)?,
        args.checkpoint_key.as_deref(),
        &mut settings,
    )?;
    let Some(prior) = resume.prior() else {
        return Err(fail(WatchCliError::NoCheckpoint {
            path: args.checkpoint.clone(),
        }));
    };
    let current = prior.checkpoint().clone();
    let (bucket, prefix) = parse_s3_uri(&args.source).ok_or_else(|| CliError::NotS3Uri {
        uri: args.source.clone(),
    })?;
    let contradicted = |source| {
        CliError::Checkpoint(Box::new(CheckpointCliError::Contradicted {
            path: args.checkpoint.clone(),
            source,
        }))
    };
    if current.bucket != bucket {
        return Err(contradicted(Contradiction::Bucket {
            checkpoint: current.bucket.clone(),
            evidence: bucket,
        }));
    }
    // The filters come from the command line, as for `verify --checkpoint`: taken from the
    // checkpoint, another valid one made with --region (say) and put in its place would
    // narrow the watch to that Region without a word (red team).
    if current.filters != FiltersMark::from(&args.filters.filters()) {
        return Err(contradicted(Contradiction::Filters {
            checkpoint: serde_json::to_string(&current.filters).unwrap_or_default(),
        }));
    }
    // Findings are appended: never to a file the watch reads (the checkpoint, a key).
    let given = [
        Some(&args.checkpoint),
        Some(&args.sign_key),
        args.checkpoint_key.as_ref(),
        args.public_keys.as_ref(),
    ];
    if let Some(out) = &args.out {
        let same = |p: &PathBuf| {
            let real = |p: &Path| std::fs::canonicalize(p).ok();
            real(out).is_some() && real(out) == real(p)
        };
        if let Some(input) = given.into_iter().flatten().find(|p| same(p)) {
            return Err(CliError::OutputIsInput {
                path: out.clone(),
                input: input.clone(),
            });
        }
    }
    let out: Box<dyn Write + Send> = match &args.out {
        None => Box::new(std::io::stdout()),
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| {
                    fail(WatchCliError::Out {
                        path: path.clone(),
                        source,
                    })
                })?,
        ),
    };
    let (source, keys) = open_s3(&args.source, &args.aws, args.public_keys.as_ref())?;
    let queue = Queue::connect(&args.aws.options(None), &args.sqs_queue)?;
    let metrics = Arc::new(Metrics::default());
    metrics.set_newest(&current);
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr, Arc::clone(&metrics))?;
    }
    let mut watch = Watch {
        args,
        bucket,
        prefix,
        source,
        keys,
        queue,
        emitter: Emitter {
            out: Mutex::new(out),
            metrics: Arc::clone(&metrics),
            found: AtomicBool::new(false),
            said: Mutex::new(BTreeSet::new()),
        },
        metrics,
        silence: Silence::new(args.digest_grace),
        current,
        behind: BTreeSet::new(),
        passed: Passed::default(),
    };
    watch.run()?;
    Ok(u8::from(watch.emitter.found.load(Ordering::SeqCst)))
}

struct Watch<'a> {
    args: &'a WatchArgs,
    /// The bucket watched, and the prefix (without slashes; empty for none).
    bucket: String,
    prefix: String,
    source: S3Source,
    keys: Box<dyn KeyProvider>,
    queue: Queue,
    emitter: Emitter,
    metrics: Arc<Metrics>,
    silence: Silence,
    /// The checkpoint on disk.
    current: Checkpoint,
    /// Keys S3 events named that are older than what the checkpoint holds verified, written
    /// after it was: verified again before the messages are deleted.
    behind: BTreeSet<String>,
    /// When the checkpoint passed each time: per chain (for digests) and per folder (the
    /// earliest of its chains, for log files), the marks ticks of this process moved it to,
    /// each with when that tick started, oldest first.
    passed: Passed,
}

/// When ticks of this process moved the checkpoint past which times.
#[derive(Default)]
struct Passed {
    chains: BTreeMap<ChainId, Vec<(Timestamp, Timestamp)>>,
    folders: BTreeMap<Scope, Vec<(Timestamp, Timestamp)>>,
}

impl Passed {
    /// Records the marks of `next`, a checkpoint written by a tick started at `started`, over
    /// `prior`'s.
    fn record(&mut self, prior: &Checkpoint, next: &Checkpoint, started: Timestamp) {
        let (before, after) = (prior.verified_through(), next.verified_through());
        for (chain, mark) in &after {
            if before.get(chain) != Some(mark) {
                push(
                    self.chains.entry(chain.clone()).or_default(),
                    *mark,
                    started,
                );
            }
        }
        for (scope, mark) in earliest(&after) {
            if earliest(&before).get(&scope) != Some(&mark) {
                push(self.folders.entry(scope).or_default(), mark, started);
            }
        }
    }

    /// When the tick started that first moved the checkpoint to `t` or past it (of the chain
    /// of a digest key, of the folder of a log key), if a tick of this process did.
    fn at(&self, key: &CloudTrailKey) -> Option<Timestamp> {
        let (passings, t) = match key {
            CloudTrailKey::Digest(d) => (self.chains.get(&d.chain())?, d.end_time),
            CloudTrailKey::Log(l) => (self.folders.get(&l.scope)?, l.time),
        };
        passings
            .iter()
            .find(|(mark, _)| *mark >= t)
            .map(|(_, started)| *started)
    }
}

fn push(passings: &mut Vec<(Timestamp, Timestamp)>, mark: Timestamp, started: Timestamp) {
    passings.push((mark, started));
    if passings.len() > PASSINGS_KEPT {
        passings.remove(0);
    }
}

/// Per folder, the earliest mark of its chains.
fn earliest(marks: &BTreeMap<ChainId, Timestamp>) -> BTreeMap<Scope, Timestamp> {
    let mut folders: BTreeMap<Scope, Timestamp> = BTreeMap::new();
    for (chain, t) in marks {
        folders
            .entry(chain.scope.clone())
            .and_modify(|e| *e = (*e).min(*t))
            .or_insert(*t);
    }
    folders
}

/// Where findings go.
struct Emitter {
    out: Mutex<Box<dyn Write + Send>>,
    metrics: Arc<Metrics>,
    /// A finding that is not `valid` was written.
    found: AtomicBool,
    /// (subject, kind) of the findings that are not `valid` written so far (at most
    /// [`SAID_KEPT`]): an object verified again is not said again in the same words.
    said: Mutex<BTreeSet<(String, Kind)>>,
}

/// Problems remembered, so that an object verified again is not reported twice.
const SAID_KEPT: usize = 100_000;

/// What a tick did.
enum Tick {
    /// The checkpoint moved on and is on disk.
    Advanced,
    /// Nothing was newer than the checkpoint.
    NothingNew,
    /// Objects could not be read: the checkpoint stays, the messages come back.
    Unreadable,
}

impl Watch<'_> {
    fn run(&mut self) -> Result<(), CliError> {
        let mut pending: Vec<String> = Vec::new();
        // Idle is time without a message and without work: a message sent while a long tick
        // went on is received before the watch stops (it used to be left in the queue).
        let mut busy = Instant::now();
        loop {
            let stopping = STOP.load(Ordering::SeqCst);
            let due = self
                .silence
                .next_deadline(&self.current)
                .is_some_and(|d| d <= Timestamp::now());
            if !pending.is_empty() && (stopping || due || pending.len() >= MAX_PENDING) {
                self.tick_and_delete(&mut pending)?;
                busy = Instant::now();
                continue;
            }
            if stopping {
                eprintln!("trailproof: watch stopped by a signal; the checkpoint is on disk");
                return Ok(());
            }
            if due {
                // Silence from the queue is not "valid": the bucket is looked at before a
                // chain is called overdue, so a withheld message cannot make one.
                self.tick()?;
                self.say_overdue()?;
                busy = Instant::now();
                continue;
            }
            if let Some(idle) = self.args.exit_when_idle {
                if pending.is_empty() && busy.elapsed() >= Duration::from_secs(idle) {
                    eprintln!("trailproof: no message for {idle} s: watch stops");
                    return Ok(());
                }
            }
            let wait = if pending.is_empty() {
                self.poll_secs()
            } else {
                0
            };
            let received = self.queue.receive(wait)?;
            if received.is_empty() {
                if !pending.is_empty() {
                    self.tick_and_delete(&mut pending)?;
                    busy = Instant::now();
                }
                continue;
            }
            busy = Instant::now();
            let mut ignored = Vec::new();
            for message in received {
                match self.hint(&message.body) {
                    Ok(objects) => {
                        let marks = self.current.verified_through();
                        for o in objects {
                            if written_behind(&self.passed, &marks, &o) {
                                self.behind.insert(o.object.key);
                            }
                        }
                        pending.push(message.receipt)
                    }
                    Err(why) => {
                        self.metrics.ignored.fetch_add(1, Ordering::Relaxed);
                        eprintln!("trailproof: message ignored (deleted): {why}");
                        ignored.push(message.receipt);
                    }
                }
            }
            self.queue.delete(&ignored)?;
        }
    }

    /// Seconds the next ReceiveMessage may wait: until the next deadline, the idle limit or
    /// [`LONGEST_POLL`], whichever comes first.
    fn poll_secs(&self) -> i32 {
        let mut secs = LONGEST_POLL;
        if let Some(deadline) = self.silence.next_deadline(&self.current) {
            let left = deadline.duration_since(Timestamp::now()).as_secs().max(0);
            secs = secs.min(u64::try_from(left).unwrap_or(0));
        }
        if let Some(idle) = self.args.exit_when_idle {
            secs = secs.min(idle.max(1));
        }
        i32::try_from(secs).unwrap_or(0)
    }

    /// The objects a message names, when they are of the watched bucket and prefix (then it
    /// is a reason to tick), and why not otherwise.
    fn hint(&self, body: &str) -> Result<Vec<Delivery>, String> {
        self.metrics.messages.fetch_add(1, Ordering::Relaxed);
        match parse(body) {
            Ok(Notice::Delivered(objects)) => {
                let locations: Vec<S3Location> = objects.iter().map(|d| d.object.clone()).collect();
                watched(&locations, &self.bucket, &self.prefix).map(|()| objects)
            }
            Ok(Notice::Test) => Err("an s3:TestEvent".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A tick, and the objects behind the checkpoint verified again, then the messages they
    /// cover deleted, once the tick's checkpoint is on disk.
    fn tick_and_delete(&mut self, pending: &mut Vec<String>) -> Result<(), CliError> {
        let tick = self.tick()?;
        let rechecked = self.recheck()?;
        match tick {
            Tick::Advanced | Tick::NothingNew if rechecked => {
                self.queue.delete(pending)?;
                pending.clear();
            }
            // Left in the queue: they come back after its visibility timeout, and are
            // verified again.
            _ => pending.clear(),
        }
        self.say_overdue()
    }

    /// `verify --checkpoint` over what is new: findings out as they are decided, then the
    /// next checkpoint on disk.
    fn tick(&mut self) -> Result<Tick, CliError> {
        self.metrics.ticks.fetch_add(1, Ordering::Relaxed);
        let started = Timestamp::now();
        let mut settings = Settings {
            accounts: self.current.filters.accounts.clone(),
            regions: self.current.filters.regions.clone(),
            trails: self.current.filters.trails.clone(),
            ..Settings::default()
        };
        let resume = Resume::read(
            &self.args.checkpoint,
            signing_key(&self.args.sign_key)?,
            self.args.checkpoint_key.as_deref(),
            &mut settings,
        )?;
        let write_error: Mutex<Option<std::io::Error>> = Mutex::new(None);
        // Findings outside every chain (log files no digest names) wait for the run's chain
        // ends: see `undecided`.
        let unchained: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
        let emitter = &self.emitter;
        let sink = |chain: Option<&ChainInfo>, findings: &[Finding]| {
            // Where the range ends is no verdict on a chain here: the grace is.
            let findings = findings.iter().filter(|f| f.kind != Kind::CoverageEnd);
            if chain.is_none() {
                unchained
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(findings.cloned());
                return;
            }
            let findings: Vec<Finding> = findings.cloned().collect();
            if let Err(e) = emitter.emit(chain, &findings) {
                write_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        };
        let report = engine::verify_streaming(
            &self.source,
            self.keys.as_ref(),
            &settings,
            Some(&sink),
            &NoObserver,
        );
        if let Some(e) = write_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(fail(WatchCliError::Write(e)));
        }
        let report = match report {
            Ok(report) => report,
            // Nothing newer than the checkpoint.
            Err(EngineError::BadRange { .. }) => return Ok(Tick::NothingNew),
            Err(e) => return Err(e.into()),
        };
        let unchained: Vec<Finding> = unchained
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .filter(|f| !undecided(f, &report.chain_ends, &settings.resume))
            .collect();
        self.emitter
            .emit(None, &unchained)
            .map_err(|e| fail(WatchCliError::Write(e)))?;
        if report.exit_code() == 2 {
            eprintln!("trailproof: objects could not be read: the checkpoint stays as it was, and the next tick reads them again");
            return Ok(Tick::Unreadable);
        }
        // A contradiction stops the watch, and leaves the checkpoint as it was.
        let next = resume.next(&report)?;
        resume.write(&next, None, &self.inputs())?;
        self.metrics.set_newest(&next);
        self.passed.record(&self.current, &next, started);
        self.current = next;
        Ok(Tick::Advanced)
    }

    /// Verifies again each object [`Watch::behind`] holds: a full run of its account and
    /// Region over [`BEHIND_WINDOW`] either side of its time (one run per account and Region,
    /// over the span of its objects), and what that run says of the object written out.
    /// Returns whether every one was (one that could not be read is not: its message comes
    /// back).
    fn recheck(&mut self) -> Result<bool, CliError> {
        let mut all = true;
        let marks = self.current.verified_through();
        let filters = &self.current.filters;
        let selects = |v: &Vec<String>, x: &String| v.is_empty() || v.contains(x);
        // One run per account and Region, over the span of its objects' times (a restart may
        // find many).
        let mut runs: BTreeMap<(String, String), (Timestamp, Timestamp, Vec<String>)> =
            BTreeMap::new();
        for key in std::mem::take(&mut self.behind) {
            let Some(b) = behind(&marks, &key) else {
                continue;
            };
            if !selects(&filters.accounts, &b.account) || !selects(&filters.regions, &b.region) {
                continue;
            }
            let subject = S3Location::new(&self.bucket, &key).uri();
            runs.entry((b.account, b.region))
                .and_modify(|(from, to, subjects)| {
                    *from = (*from).min(b.from);
                    *to = (*to).max(b.to);
                    subjects.push(subject.clone());
                })
                .or_insert((b.from, b.to, vec![subject]));
        }
        for ((account, region), (from, to, subjects)) in runs {
            let settings = Settings {
                start: Some(earlier(from, BEHIND_WINDOW)),
                end: Some(later(to, BEHIND_WINDOW)),
                accounts: vec![account],
                regions: vec![region],
                trails: filters.trails.clone(),
                // A trail with no digest in those hours must not stop the run: the log files
                // are what it is for.
                allow_unmatched_filters: true,
                ..Settings::default()
            };
            let named = subjects.join(", ");
            eprintln!(
                "trailproof: older than the checkpoint, written since: {named}: verifying {} to {} again",
                settings.start.map(format_iso).unwrap_or_default(),
                settings.end.map(format_iso).unwrap_or_default()
            );
            let report = match engine::verify(&self.source, self.keys.as_ref(), &settings) {
                Ok(report) if report.exit_code() != 2 => report,
                // Gone since the message: nothing left to say of it.
                Err(EngineError::NothingFound { .. }) => {
                    eprintln!("trailproof: not in the bucket any more: {named}");
                    continue;
                }
                Ok(_) | Err(_) => {
                    eprintln!(
                        "trailproof: could not be verified again (the messages come back): {named}"
                    );
                    all = false;
                    continue;
                }
            };
            // Where the run's range starts and ends is no verdict on the objects.
            let about = |f: &&Finding| {
                subjects.contains(&f.subject)
                    && !matches!(f.kind, Kind::CoverageStart | Kind::CoverageEnd)
            };
            for chain in &report.chains {
                let found: Vec<Finding> = chain.findings.iter().filter(about).cloned().collect();
                self.emitter
                    .emit_new(Some(&chain.chain), found)
                    .map_err(|e| fail(WatchCliError::Write(e)))?;
            }
            let found: Vec<Finding> = report.unchained.iter().filter(about).cloned().collect();
            self.emitter
                .emit_new(None, found)
                .map_err(|e| fail(WatchCliError::Write(e)))?;
        }
        Ok(all)
    }

    /// The files the checkpoint must never be written over.
    fn inputs(&self) -> Vec<&Path> {
        [
            Some(&self.args.sign_key),
            self.args.checkpoint_key.as_ref(),
            self.args.public_keys.as_ref(),
            self.args.out.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect()
    }

    /// The chains overdue now, each said once: the findings out, then the checkpoint that
    /// records them said (a crash between the two says them again, never not at all).
    fn say_overdue(&mut self) -> Result<(), CliError> {
        let mut next = self.current.clone();
        let overdue = self.silence.overdue(&mut next, Timestamp::now());
        if overdue.is_empty() {
            return Ok(());
        }
        for (chain, finding) in overdue {
            self.emitter
                .emit(Some(&chain), std::slice::from_ref(&finding))
                .map_err(|e| fail(WatchCliError::Write(e)))?;
        }
        let writer = Resume::writer(&self.args.checkpoint, signing_key(&self.args.sign_key)?);
        writer.write(&next, None, &self.inputs())?;
        self.current = next;
        Ok(())
    }
}

impl Emitter {
    /// Writes findings as JSONL lines, flushed, and counts them.
    fn emit(&self, chain: Option<&ChainInfo>, findings: &[Finding]) -> std::io::Result<()> {
        if findings.is_empty() {
            return Ok(());
        }
        let mut said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
        for f in findings {
            self.metrics.count(f);
            if f.verdict != Verdict::Valid {
                self.found.store(true, Ordering::SeqCst);
                if said.len() < SAID_KEPT {
                    said.insert((f.subject.clone(), f.kind));
                }
            }
        }
        drop(said);
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        jsonl::write_findings(&mut *out, chain, findings)?;
        out.flush()
    }

    /// [`Emitter::emit`], but for the problems already written (a tick that listed the object
    /// after it was written said them already).
    fn emit_new(&self, chain: Option<&ChainInfo>, findings: Vec<Finding>) -> std::io::Result<()> {
        let fresh: Vec<Finding> = {
            let said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
            findings
                .into_iter()
                .filter(|f| !said.contains(&(f.subject.clone(), f.kind)))
                .collect()
        };
        self.emit(chain, &fresh)
    }
}

/// Whether every object a message names is in `bucket` under `prefix` (without slashes;
/// empty for the whole bucket), and why not otherwise.
fn watched(objects: &[S3Location], bucket: &str, prefix: &str) -> Result<(), String> {
    let ours = |key: &str| {
        prefix.is_empty()
            || key
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if objects.is_empty() {
        return Err("it names no object created".to_owned());
    }
    match objects.iter().find(|o| o.bucket != bucket || !ours(&o.key)) {
        Some(other) => Err(format!("{} is outside s3://{bucket}/{prefix}", other.uri())),
        None => Ok(()),
    }
}

/// Whether `delivery` names an object behind the checkpoint (`marks`) that was written after
/// the tick that verified past its time started (`passed`), or at a time this process cannot
/// tell (see the module docs; an object that is no CloudTrail key, or of a chain or folder no
/// tick of this process passed, is one).
fn written_behind(
    passed: &Passed,
    marks: &BTreeMap<ChainId, Timestamp>,
    delivery: &Delivery,
) -> bool {
    let Some(written) = delivery.event_time else {
        return false;
    };
    if behind(marks, &delivery.object.key).is_none() {
        return false;
    }
    parse_key(&delivery.object.key)
        .ok()
        .and_then(|key| passed.at(&key))
        .is_none_or(|started| later(written, CLOCK_SKEW) >= started)
}

/// An object older than what the checkpoint holds verified: the span of its time, its account
/// and its Region.
#[derive(Debug, PartialEq, Eq)]
struct Behind {
    from: Timestamp,
    to: Timestamp,
    account: String,
    region: String,
}

/// Whether `key` is older than what the checkpoint holds verified (`marks`, per chain its last
/// verified digest's time): a log file at or before the last verified digest of every chain of
/// its folder (a tick looks for log files no digest names only after the earliest of them), a
/// digest before its chain's last one (a tick reads the last one and what follows), or any
/// other object in a day folder that starts before them (a tick that finds no new digest lists
/// no folder). Where the checkpoint knows no chain of the object's folder (or no chain of a
/// digest), the earliest mark of all stands for them: found by the red team, a back-dated log
/// file in a Region with no chain, one under a name CloudTrail never writes, and a digest of a
/// trail the checkpoint does not know were never verified again, though announced.
fn behind(marks: &BTreeMap<ChainId, Timestamp>, key: &str) -> Option<Behind> {
    let earliest_of = |account: &str, region: &str| {
        let of_folder = marks
            .iter()
            .filter(|(chain, _)| chain.scope.account == account && chain.scope.region == region)
            .map(|(_, t)| *t)
            .min();
        of_folder.or_else(|| marks.values().min().copied())
    };
    let at = |t: Timestamp, account: &str, region: &str| Behind {
        from: t,
        to: t,
        account: account.to_owned(),
        region: region.to_owned(),
    };
    match parse_key(key) {
        Ok(CloudTrailKey::Log(log)) => {
            let (account, region) = (&log.scope.account, &log.scope.region);
            (log.time <= earliest_of(account, region)?).then(|| at(log.time, account, region))
        }
        Ok(CloudTrailKey::Digest(digest)) => {
            let (account, region) = (&digest.scope.account, &digest.scope.region);
            let last = match marks.get(&digest.chain()) {
                Some(last) => *last,
                None => earliest_of(account, region)?,
            };
            (digest.end_time < last).then(|| at(digest.end_time, account, region))
        }
        Err(_) => {
            let place = folders(key)?;
            let (account, region) = (place.account?, place.region?);
            let Dated::Day(day) = place.dated? else {
                return None;
            };
            let from = day.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
            let to = later(from, SignedDuration::from_hours(24));
            // A day folder the checkpoint reaches into is behind it too: a tick that finds no
            // new digest lists no folder (found when the test's day crossed midnight: a stray
            // in the checkpoint's own day went unsaid until new digests came).
            (from <= earliest_of(account, region)?).then(|| Behind {
                to,
                ..at(from, account, region)
            })
        }
    }
}

/// What `/metrics` says.
#[derive(Default)]
struct Metrics {
    digests_valid: AtomicU64,
    logs_valid: AtomicU64,
    /// Findings that are not `valid`, by kind.
    findings: Mutex<BTreeMap<String, u64>>,
    messages: AtomicU64,
    ignored: AtomicU64,
    ticks: AtomicU64,
    /// The newest end of a chain's last verified digest, in seconds since the epoch.
    newest: AtomicU64,
}

impl Metrics {
    fn count(&self, f: &Finding) {
        match f.kind {
            Kind::DigestValid => {
                self.digests_valid.fetch_add(1, Ordering::Relaxed);
            }
            Kind::LogValid => {
                self.logs_valid.fetch_add(1, Ordering::Relaxed);
            }
            kind => {
                let name = serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                *self
                    .findings
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(name)
                    .or_default() += 1;
            }
        }
    }

    fn set_newest(&self, cp: &Checkpoint) {
        let newest = cp
            .chains
            .iter()
            .filter_map(|c| c.last.as_ref())
            .map(|l| l.end.as_second())
            .max()
            .unwrap_or(0);
        self.newest
            .store(u64::try_from(newest).unwrap_or(0), Ordering::Relaxed);
    }

    /// The Prometheus text format (version 0.0.4).
    fn render(&self, now: Timestamp) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                s.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "trailproof_watch_digests_verified_total",
            "counter",
            "Digests found valid.",
            vec![(String::new(), get(&self.digests_valid))],
        );
        metric(
            "trailproof_watch_log_files_verified_total",
            "counter",
            "Log files found valid.",
            vec![(String::new(), get(&self.logs_valid))],
        );
        let findings = self
            .findings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), *v))
            .collect();
        metric(
            "trailproof_watch_findings_total",
            "counter",
            "Findings that are not valid, by kind.",
            findings,
        );
        metric(
            "trailproof_watch_messages_total",
            "counter",
            "SQS messages received.",
            vec![(String::new(), get(&self.messages))],
        );
        metric(
            "trailproof_watch_messages_ignored_total",
            "counter",
            "SQS messages deleted unused: unparseable, test events, other buckets or prefixes.",
            vec![(String::new(), get(&self.ignored))],
        );
        metric(
            "trailproof_watch_ticks_total",
            "counter",
            "Incremental verifications run.",
            vec![(String::new(), get(&self.ticks))],
        );
        let newest = i64::try_from(get(&self.newest)).unwrap_or(0);
        let lag = if newest == 0 {
            0
        } else {
            u64::try_from(now.as_second().saturating_sub(newest)).unwrap_or(0)
        };
        metric(
            "trailproof_watch_lag_seconds",
            "gauge",
            "Seconds from the end of the newest verified digest to now (about 3600 to 4500 when on time).",
            vec![(String::new(), lag)],
        );
        s
    }
}

/// Serves `GET /metrics` on a thread of its own, one connection at a time (a scraper's).
fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), CliError> {
    let listener =
        TcpListener::bind(addr).map_err(|source| fail(WatchCliError::Metrics { addr, source }))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A client that sends nothing cannot hold the responder.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the request head, up to the empty line (bounded).
            let mut header = String::new();
            for _ in 0..100 {
                header.clear();
                match reader.read_line(&mut header) {
                    Ok(n) if n > 2 => {}
                    _ => break,
                }
            }
            let (status, body) = if line.starts_with("GET /metrics ") {
                ("200 OK", metrics.render(Timestamp::now()))
            } else {
                ("404 Not Found", "not found: GET /metrics\n".to_owned())
            };
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailproof::engine::ChainEnds;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A message naming an object behind the checkpoint asks for it to be verified again only
    /// when the object was written after the tick that first verified past its time started
    /// (else that tick read it), or when no tick of this process did (a restart); CloudTrail's
    /// notifications (no event time) and objects after the checkpoint never do.
    /// Found by the red team: announced, back-dated objects the checkpoint has no chain for
    /// (a log file of a Region with no chain, a name CloudTrail never writes, a digest of an
    /// unknown trail) were never verified again.
    #[test]
    fn objects_no_chain_of_the_checkpoint_names_are_behind_it_too() {
        let log = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/111122223333_CloudTrail_us-east-1_20260102T0500Z_abcdefghijklmnop.json.gz";
        let Ok(CloudTrailKey::Log(parsed)) = parse_key(log) else {
            panic!("not a log key")
        };
        let chain = ChainId {
            scope: parsed.scope,
            trail: "main".into(),
            home_region: "us-east-1".into(),
            backfill: false,
        };
        let marks = BTreeMap::from([(chain, t("2026-01-02T20:28:28Z"))]);
        let other_region = log.replace("us-east-1", "us-west-2");
        let b = behind(&marks, &other_region).unwrap();
        assert_eq!(
            (b.from, b.region.as_str()),
            (t("2026-01-02T05:00:00Z"), "us-west-2")
        );
        let day_before = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/notes.txt";
        let b = behind(&marks, day_before).unwrap();
        assert_eq!(
            (b.from, b.to),
            (t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z"))
        );
        // The day of the mark is behind it too (a tick with no new digest lists nothing), a day
        // after it is not; a folder with no day cannot be placed.
        let day_of_mark = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/notes.txt";
        let b = behind(&marks, day_of_mark).unwrap();
        assert_eq!(
            (b.from, b.to),
            (t("2026-01-02T00:00:00Z"), t("2026-01-03T00:00:00Z"))
        );
        for key in [
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/03/notes.txt",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/notes.txt",
        ] {
            assert_eq!(behind(&marks, key), None, "{key}");
        }
        let unknown_trail = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_evil_us-east-1_20260101T101201Z.json.gz";
        assert!(behind(&marks, unknown_trail).is_some());
        let passed = Passed::default();
        let announced = Delivery {
            object: S3Location::new("b", day_before),
            event_time: Some(t("2026-01-03T00:00:00Z")),
        };
        assert!(written_behind(&passed, &marks, &announced));
    }

    #[test]
    fn only_objects_written_after_the_tick_that_passed_them_are_verified_again() {
        let log = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0500Z_abcdefghijklmnop.json.gz";
        let Ok(CloudTrailKey::Log(parsed)) = parse_key(log) else {
            panic!("not a log key")
        };
        let chain = ChainId {
            scope: parsed.scope.clone(),
            trail: "main".into(),
            home_region: "us-east-1".into(),
            backfill: false,
        };
        let marks = BTreeMap::from([(chain, t("2026-01-01T20:28:28Z"))]);
        let at = |key: &str, w: &str| Delivery {
            object: S3Location::new("b", key),
            event_time: Some(t(w)),
        };
        let mut passed = Passed::default();
        assert!(written_behind(
            &passed,
            &marks,
            &at(log, "2026-01-01T21:00:00Z")
        ));
        passed.folders.insert(
            parsed.scope.clone(),
            vec![
                (t("2026-01-01T04:28:28Z"), t("2026-01-01T05:00:00Z")),
                (t("2026-01-01T20:28:28Z"), t("2026-01-01T21:00:00Z")),
            ],
        );
        // The tick that passed 05:00 started at 21:00.
        assert!(!written_behind(
            &passed,
            &marks,
            &at(log, "2026-01-01T20:59:58Z")
        ));
        assert!(written_behind(
            &passed,
            &marks,
            &at(log, "2026-01-01T20:59:59.5Z")
        ));
        assert!(written_behind(
            &passed,
            &marks,
            &at(log, "2026-01-02T00:00:00Z")
        ));
        let cloudtrail = Delivery {
            event_time: None,
            ..at(log, "2026-01-02T00:00:00Z")
        };
        assert!(!written_behind(&passed, &marks, &cloudtrail));
        let after = log.replace("T0500Z", "T2100Z");
        assert!(!written_behind(
            &passed,
            &marks,
            &at(&after, "2026-01-02T00:00:00Z")
        ));
        // A digest before its chain's last verified one; the last one itself is the tick's
        // to check (it stops the watch if it changed).
        let digest = |time: &str| {
            format!("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20260101T{time}Z.json.gz")
        };
        let late = "2026-01-02T00:00:00Z";
        assert!(written_behind(
            &passed,
            &marks,
            &at(&digest("052828"), late)
        ));
        assert!(!written_behind(
            &passed,
            &marks,
            &at(&digest("202828"), late)
        ));
    }

    #[test]
    fn messages_for_other_buckets_or_prefixes_are_no_hint() {
        let at = |b: &str, k: &str| vec![S3Location::new(b, k)];
        assert!(watched(&at("b", "AWSLogs/x"), "b", "").is_ok());
        assert!(watched(&at("b", "p/AWSLogs/x"), "b", "p").is_ok());
        // A prefix is a folder: `p` does not watch `pq/`.
        assert!(watched(&at("b", "pq/AWSLogs/x"), "b", "p").is_err());
        assert!(watched(&at("c", "p/AWSLogs/x"), "b", "p").is_err());
        assert!(watched(&[], "b", "").is_err());
        let mixed = [S3Location::new("b", "p/x"), S3Location::new("c", "p/x")];
        assert!(watched(&mixed, "b", "p").is_err());
    }

    /// Found in review: log files were held back when delivered in the minute of their
    /// Region's newest digest, but the next tick looks for them only from one second after that
    /// digest: such a log file was said by no tick. Held back now are only those the next tick
    /// looks at again.
    #[test]
    fn only_log_files_the_next_tick_looks_at_again_are_held_back() {
        use trailproof::core::layout::{ChainId, Scope};
        use trailproof::engine::{DigestTip, FirstLink};
        let scope = Scope {
            prefix: String::new(),
            organization: None,
            account: "111122223333".into(),
            region: "us-east-1".into(),
        };
        let chain = ChainId {
            scope,
            trail: "main".into(),
            home_region: "us-east-1".into(),
            backfill: false,
        };
        let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20260101T012828Z.json.gz";
        let ends = |newest: bool| {
            vec![ChainEnds {
                chain: chain.clone(),
                newest: newest.then(|| DigestTip {
                    location: S3Location::new("b", digest),
                    sha256: trailproof::core::types::Sha256::from_lower_hex(&"00".repeat(32))
                        .unwrap(),
                    signature: vec![1],
                    end: "2026-01-01T01:28:28Z".parse().unwrap(),
                }),
                oldest: FirstLink::NoDigest,
                before: None,
            }]
        };
        let log = |time: &str, region: &str| {
            Finding::new(
                format!("s3://b/AWSLogs/111122223333/CloudTrail/{region}/2026/01/01/111122223333_CloudTrail_{region}_20260101T{time}Z_abcdefghijklmnop.json.gz"),
                Kind::LogUnreferenced,
                "x",
            )
        };
        let none = BTreeMap::new();
        assert!(undecided(&log("0129", "us-east-1"), &ends(true), &none));
        assert!(!undecided(&log("0128", "us-east-1"), &ends(true), &none));
        assert!(!undecided(&log("0100", "us-east-1"), &ends(true), &none));
        // No chain in the Region: nothing to wait for.
        assert!(!undecided(&log("0129", "eu-west-1"), &ends(true), &none));
        // No new digest: taken up where this tick took it up.
        let resume = BTreeMap::from([(chain.clone(), "2026-01-01T00:28:28Z".parse().unwrap())]);
        assert!(undecided(&log("0100", "us-east-1"), &ends(false), &resume));
        assert!(!undecided(&log("0028", "us-east-1"), &ends(false), &resume));
        // Not a log file no digest names: never held back.
        let mut other = log("0129", "us-east-1");
        other.kind = Kind::LogHashMismatch;
        assert!(!undecided(&other, &ends(true), &none));
    }

    #[test]
    fn grace_in_the_forms_people_type() {
        assert_eq!(parse_grace("90m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_grace("2s").unwrap(), SignedDuration::from_secs(2));
        assert!(parse_grace("0s").is_err());
        assert!(parse_grace("-5m").is_err());
        assert!(parse_grace("soon").is_err());
    }

    #[test]
    fn metrics_in_the_prometheus_text_format() {
        let m = Metrics::default();
        let mut f = Finding::new("s3://b/k", Kind::LogHashMismatch, "x");
        m.count(&f);
        f.kind = Kind::LogValid;
        m.count(&f);
        let text = m.render(Timestamp::now());
        assert!(text.contains("trailproof_watch_log_files_verified_total 1\n"));
        assert!(text.contains("trailproof_watch_findings_total{kind=\"log_hash_mismatch\"} 1\n"));
        assert!(text.contains("# TYPE trailproof_watch_lag_seconds gauge\n"));
    }
}
