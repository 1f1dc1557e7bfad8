//! `verify --checkpoint FILE`: read and check the checkpoint before the run, start the range
//! after it, and write the next one (signed, whole or not at all) once the run's report is out.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use trailproof::core::finding::{Finding, Kind, Verdict};
use trailproof::core::layout::{parse_key, ChainId, CloudTrailKey};
use trailproof::core::ledger::Ledger;
use trailproof::core::time::{earlier, later};
use trailproof::engine::{self, ChainDone, ChainEnds, FindingSink, FinishedChain};
use trailproof::source::{KeyProvider, ObjectSource};

use super::progress::Bars;
use super::report::Output;

use trailproof::engine::{EngineError, Settings};
use trailproof::report::checkpoint::{
    Checkpoint, CheckpointError, Contradiction, Underway, VerifiedCheckpoint,
};
use trailproof::report::dsse::Trust;
use trailproof::report::signing::{KeyError, PublicKey, SigningKey};
use trailproof::report::{Filters, Report};

use super::error::CliError;
use super::output_file::Destination;
use super::VerifyArgs;

/// Why `--checkpoint` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointCliError {
    #[error("--checkpoint needs --sign-key KEY.pem to sign the checkpoint it writes")]
    NoSignKey,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error("checkpoint {path} does not verify: {source}")]
    Invalid {
        path: PathBuf,
        source: CheckpointError,
    },
    #[error("checkpoint {path}: {source}")]
    Contradicted {
        path: PathBuf,
        source: Contradiction,
    },
    #[error("--end-time cannot be used with --checkpoint: a checkpoint runs to the newest digest")]
    EndTime,
    #[error("--start-time {given} is not the checkpoint's start ({recorded}): the range goes on from the checkpoint")]
    StartTime { given: String, recorded: String },
    #[error("no digest is newer than checkpoint {path} (it ends {through}): nothing was verified")]
    NothingNew { path: PathBuf, through: String },
}

impl CheckpointCliError {
    /// What to do about it.
    pub fn advice(&self) -> Option<String> {
        Some(match self {
            CheckpointCliError::NoSignKey => "add --sign-key KEY.pem (a PKCS#8 PEM private key: Ed25519, ECDSA P-256 or RSA 2048+)".to_owned(),
            CheckpointCliError::Invalid { .. } => "if another key signed it, pass its public key with --checkpoint-key PUB.pem; otherwise the file was changed or is not a trailproof checkpoint: verify without --checkpoint (a full run), then start a new checkpoint file".to_owned(),
            CheckpointCliError::Contradicted { .. } => "the evidence changed behind the checkpoint, or the checkpoint is of other evidence: run `trailproof verify` without --checkpoint to see every finding, and keep this checkpoint file for the investigation".to_owned(),
            CheckpointCliError::StartTime { recorded, .. } => format!("drop --start-time, or pass --start-time {recorded}"),
            CheckpointCliError::NothingNew { .. } => "CloudTrail delivers a digest per chain every hour: if none came for longer, logging may have been stopped (check the trail)".to_owned(),
            _ => return None,
        })
    }
}

/// A checkpoint in use: the key that signs the next one, and the one read, if the file existed.
pub struct Resume {
    path: PathBuf,
    key: SigningKey,
    prior: Option<VerifiedCheckpoint>,
}

impl Resume {
    /// `--checkpoint`, if given: the file read and verified (under `--checkpoint-key`, or the
    /// signing key's own public key), the settings' range moved to start after it.
    pub fn open(args: &VerifyArgs, settings: &mut Settings) -> Result<Option<Resume>, CliError> {
        let Some(path) = &args.checkpoint else {
            return Ok(None);
        };
        let key_path = args
            .sign
            .sign_key
            .as_ref()
            .ok_or(CliError::Checkpoint(Box::new(
                CheckpointCliError::NoSignKey,
            )))?;
        let key = signing_key(key_path)?;
        if args.evidence.end_time.is_some() {
            return Err(CliError::Checkpoint(Box::new(CheckpointCliError::EndTime)));
        }
        Resume::read(path, key, args.checkpoint_key.as_deref(), settings).map(Some)
    }

    /// The checkpoint at `path` (if the file exists), verified under `checkpoint_key` or
    /// `key`'s own public key, the settings' range moved to start after it; `key` signs the
    /// next one.
    pub fn read(
        path: &Path,
        key: SigningKey,
        checkpoint_key: Option<&Path>,
        settings: &mut Settings,
    ) -> Result<Resume, CliError> {
        let fail = |e| CliError::Checkpoint(Box::new(e));
        let envelope = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Resume {
                    path: path.to_owned(),
                    key,
                    prior: None,
                })
            }
            Err(source) => {
                return Err(fail(CheckpointCliError::Read {
                    path: path.to_owned(),
                    source,
                }))
            }
        };
        let other_key = match checkpoint_key {
            Some(p) => Some(PublicKey::from_pem(&read(p)?).map_err(|source| {
                fail(CheckpointCliError::Key {
                    path: p.to_owned(),
                    source,
                })
            })?),
            None => None,
        };
        let trust = Trust::Key(other_key.as_ref().unwrap_or(key.public()));
        let prior = VerifiedCheckpoint::open(&envelope, trust).map_err(|source| {
            fail(CheckpointCliError::Invalid {
                path: path.to_owned(),
                source,
            })
        })?;
        let recorded = prior.checkpoint().start;
        if let Some(given) = settings.start.filter(|g| *g != recorded) {
            return Err(fail(CheckpointCliError::StartTime {
                given: given.to_string(),
                recorded: recorded.to_string(),
            }));
        }
        // A first run stopped early is run again as it was: its range from the start given
        // or, as then, the evidence's (each chain allowed its hour at that end).
        if !prior.first_run_unfinished() {
            settings.start = Some(prior.resume_at());
        }
        settings.resume = prior.resume();
        settings.searched = prior.searched();
        Ok(Resume {
            path: path.to_owned(),
            key,
            prior: Some(prior),
        })
    }

    /// Writes checkpoints signed with `key` to `path`, without reading what is there (`watch`
    /// marks the gaps it said in the checkpoint it holds).
    pub fn writer(path: &Path, key: SigningKey) -> Resume {
        Resume {
            path: path.to_owned(),
            key,
            prior: None,
        }
    }

    /// The checkpoint read, if the file existed.
    pub fn prior(&self) -> Option<&VerifiedCheckpoint> {
        self.prior.as_ref()
    }

    /// The run failed: says so in the checkpoint's terms when the cause is that nothing is
    /// newer than it.
    pub fn failed(&self, err: CliError) -> CliError {
        match (&err, &self.prior) {
            (CliError::Engine(EngineError::BadRange { .. }), Some(prior)) => {
                CliError::Checkpoint(Box::new(CheckpointCliError::NothingNew {
                    path: self.path.clone(),
                    through: prior.checkpoint().through.to_string(),
                }))
            }
            _ => err,
        }
    }

    /// The next checkpoint after `report`, once the evidence agrees with this one; nothing is
    /// written yet.
    pub fn next(&self, report: &Report) -> Result<Checkpoint, CliError> {
        match &self.prior {
            None => Ok(Checkpoint::first(report)),
            Some(prior) => prior.advance(report).map_err(|source| {
                CliError::Checkpoint(Box::new(CheckpointCliError::Contradicted {
                    path: self.path.clone(),
                    source,
                }))
            }),
        }
    }

    /// Signs and writes `next` in place of the file (under a temporary name, synced, then
    /// renamed, and the folder synced), never into the evidence directory or over the keys
    /// given.
    pub fn write(
        &self,
        next: &Checkpoint,
        evidence: Option<&Path>,
        inputs: &[&Path],
    ) -> Result<(), CliError> {
        self.prepare(next, evidence, inputs)?.commit()
    }

    /// Signs and writes `next` under a temporary name beside the file, synced, but not yet in
    /// its place: [`Prepared::commit`] puts it there; dropped, it is removed.
    pub fn prepare(
        &self,
        next: &Checkpoint,
        evidence: Option<&Path>,
        inputs: &[&Path],
    ) -> Result<Prepared, CliError> {
        let sealed = next.seal(&self.key).map_err(|source| {
            CliError::Checkpoint(Box::new(CheckpointCliError::Invalid {
                path: self.path.clone(),
                source,
            }))
        })?;
        let (dest, mut out) = Destination::new(Some(&self.path), evidence, inputs)?;
        let written = out.write_all(&sealed).and_then(|()| out.flush());
        drop(out);
        let written = written.and_then(|()| dest.sync());
        let failed = |source| CliError::Write {
            path: self.path.clone(),
            source,
        };
        match written {
            Ok(()) => Ok(Prepared {
                dest: Some(dest),
                path: self.path.clone(),
            }),
            Err(e) => {
                dest.discard();
                Err(failed(e))
            }
        }
    }
}

/// A checkpoint written beside its file, waiting to be put in place.
pub struct Prepared {
    dest: Option<Destination>,
    path: PathBuf,
}

impl Prepared {
    /// Puts the checkpoint in place, on disk when it returns (the rename synced too): `watch`
    /// deletes the messages it covers after this.
    pub fn commit(mut self) -> Result<(), CliError> {
        match self.dest.take() {
            Some(dest) => dest.keep_durable().map_err(|source| CliError::Write {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(dest) = self.dest.take() {
            dest.discard();
        }
    }
}

/// A run of the engine with progress bars on stderr, handing findings to `sink` as they are
/// decided and telling `done` of each chain it is done with (a checkpoint's [`Mover`]).
pub fn run(
    source: &dyn ObjectSource,
    keys: &dyn KeyProvider,
    settings: &Settings,
    (sink, done): (Option<FindingSink<'_>>, Option<ChainDone<'_>>),
) -> Result<Report, EngineError> {
    let bars = Bars::on_stderr();
    match done {
        Some(done) => engine::verify_resumable(source, keys, settings, sink, &bars, done),
        None => engine::verify_streaming(source, keys, settings, sink, &bars),
    }
}

/// The hooks a run of `verify` is given: a sink for findings as they come, and a hook told of
/// each chain the run is done with.
pub type Hooks<'a> = (Option<FindingSink<'a>>, Option<ChainDone<'a>>);

/// `verify` from the settings on, its report to `output`: `run` verifies (the source chosen by
/// the caller) with the hooks given. Over a checkpoint (`resume`), the checkpoint moves on as
/// chains finish ([`Mover`]), log files no digest names yet wait for their Region's next digest
/// ([`hold_back`]), and the next checkpoint is checked against the one read, written before the
/// report and put in place once the report is out.
pub fn verify<W: Write + Send>(
    args: &VerifyArgs,
    (settings, resume): (&Settings, Option<&Resume>),
    output: Output<W>,
    local: Option<&Path>,
    run: &dyn Fn(Hooks<'_>) -> Result<Report, CliError>,
) -> Result<u8, CliError> {
    // Over a checkpoint, log files no digest names wait for the run's chain ends
    // ([`hold_back`]).
    let unchained: Mutex<Option<Vec<Finding>>> = Default::default();
    let streaming = output.sink();
    let stream = streaming.as_ref().map(|s| s as FindingSink);
    let held = |chain: Option<&trailproof::report::ChainInfo>, f: &[Finding]| match (chain, stream)
    {
        (None, _) => *unchained.lock().unwrap_or_else(PoisonError::into_inner) = Some(f.to_vec()),
        (Some(_), Some(stream)) => stream(chain, f),
        (Some(_), None) => {}
    };
    // The checkpoint never goes into the evidence or over the files given.
    let inputs: Vec<&Path> = [
        &args.evidence.public_keys,
        &args.sign.sign_key,
        &args.checkpoint_key,
    ]
    .into_iter()
    .flatten()
    .map(|p| p.as_path())
    .collect();
    let whole = || output.streamed_whole() && super::report::sync_stdout().is_ok();
    let streamed = stream.map(|_| &whole as &(dyn Fn() -> bool + Sync));
    let mover = resume.map(|r| Mover::new(r, settings, (local, &inputs), streamed));
    let chain_done = |c: &engine::FinishedChain<'_>| {
        if let Some(m) = &mover {
            m.chain_done(c)
        }
    };
    let done = mover.as_ref().map(|_| &chain_done as engine::ChainDone);
    let report = {
        let sink = match (&resume, stream) {
            (Some(_), Some(_)) => Some(&held as FindingSink),
            (_, sink) => sink,
        };
        run((sink, done))
    };
    // The chains finished since the mover last wrote, for a run that will not write its
    // final checkpoint (an error; a report that cannot be written): one write more otherwise.
    if let Some(m) = &mover {
        m.flush();
    }
    drop(mover);
    let mut report = match (report, &resume) {
        (Ok(report), _) => report,
        (Err(e), Some(resume)) => return Err(resume.failed(e)),
        (Err(e), None) => return Err(e),
    };
    if resume.is_some() {
        hold_back(&mut report, &settings.resume);
        let batch = unchained
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let (Some(stream), Some(_)) = (stream, batch) {
            stream(None, &report.unchained);
        }
    }
    drop(streaming);
    // Checked against the checkpoint before anything is written: a contradiction writes
    // nothing.
    let next = resume.map(|r| r.next(&report)).transpose()?;
    // Written (not yet in place) before the report, so that a checkpoint that cannot be
    // written stops the run before a summary says it went well; put in place only once the
    // report is out (a lost report leaves the checkpoint as the chains finished moved it: the
    // next run says the rest again).
    // A run that could not read everything moves no further than the chains it finished whole
    // (`Mover`): the next run reads the rest again.
    let prepared = match (&resume, &next) {
        (Some(resume), Some(next)) if report.exit_code() != 2 => {
            Some((resume.prepare(next, local, &inputs)?, next))
        }
        _ => None,
    };
    output.finish(&report)?;
    match prepared {
        Some((prepared, next)) => {
            super::report::sync_stdout().map_err(super::report::ReportCliError::Output)?;
            prepared.commit()?;
            eprintln!("trailproof: {}", summary(next));
        }
        None if resume.is_some() => {
            eprintln!("trailproof: objects could not be read: the checkpoint moved on only for the chains finished without them; the next run reads the rest again");
        }
        None => {}
    }
    Ok(report.exit_code())
}

/// Moves the checkpoint on as the run is done with each chain ([`Underway`]), written whole
/// (signed, synced, renamed) each time: a run stopped halfway leaves behind it the chains it
/// was done with, and the next run takes them up from there. A chain moves only once its
/// findings are out where nothing takes them back: streamed (`--format jsonl`: flushed, and the
/// stream still whole) or, for the formats written at the end, when all of them say valid and
/// its ledger is proven; never with an object it could not read (the next run reads it again).
///
/// Each write rewrites the whole file, which grows with the chains: writes are spaced so that
/// they take at most a twentieth of the run ([`SPACING`] times the last write's time, and at
/// least [`MIN_SPACING`] apart). The chains finished since the last write are lost with the
/// chains in flight if the run is killed (they are verified again, and their findings said
/// again); [`Mover::flush`] writes them when the run ends without its final checkpoint.
pub struct Mover<'a> {
    resume: &'a Resume,
    state: Mutex<Moving<'a>>,
    evidence: Option<&'a Path>,
    inputs: &'a [&'a Path],
    /// Whether the findings streamed so far are all out, when they are streamed.
    streamed: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// A [`Mover`]'s checkpoint so far, and its writes.
struct Moving<'a> {
    underway: Underway<'a>,
    /// Chains moved since the last write.
    unwritten: bool,
    /// When the last write ended, and how long it took.
    written: Option<(Instant, Duration)>,
    /// Set when a checkpoint could not be written: the run goes on without moving it again.
    stopped: bool,
}

/// Writes are at least this many times their own duration apart.
const SPACING: u32 = 20;
/// And at least this far apart.
const MIN_SPACING: Duration = Duration::from_secs(1);

impl<'a> Mover<'a> {
    /// A mover for a run with `settings` over `resume`'s checkpoint; `streamed` when the
    /// findings are streamed.
    pub fn new(
        resume: &'a Resume,
        settings: &Settings,
        (evidence, inputs): (Option<&'a Path>, &'a [&'a Path]),
        streamed: Option<&'a (dyn Fn() -> bool + Sync)>,
    ) -> Self {
        Mover {
            resume,
            state: Mutex::new(Moving {
                underway: Underway::new(resume.prior.as_ref(), &Filters::from(settings)),
                unwritten: false,
                written: None,
                stopped: false,
            }),
            evidence,
            inputs,
            streamed,
        }
    }

    /// The engine is done with `chain`: moves its mark on if it may, and writes the checkpoint
    /// if the last write was long enough ago.
    pub fn chain_done(&self, chain: &FinishedChain<'_>) {
        let report = chain.report;
        let out = match self.streamed {
            Some(whole) => whole(),
            None => {
                report.findings.iter().all(|f| f.verdict == Verdict::Valid)
                    && report.ledger.as_ref().is_none_or(Ledger::is_proven)
            }
        };
        if !out || report.findings.iter().any(|f| f.kind.unread()) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A contradiction is said when the run ends, and nothing is written.
        if state.stopped || !matches!(state.underway.finish(chain), Ok(Some(_))) {
            return;
        }
        state.unwritten = true;
        let due = state
            .written
            .is_none_or(|(at, took)| at.elapsed() >= (took * SPACING).max(MIN_SPACING));
        if due {
            self.write(&mut state);
        }
    }

    /// Writes the chains moved since the last write, if any: the run ended (or failed) without
    /// its final checkpoint coming next.
    pub fn flush(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.unwritten && !state.stopped {
            self.write(&mut state);
        }
    }

    fn write(&self, state: &mut Moving<'_>) {
        let Some(next) = state.underway.checkpoint() else {
            return;
        };
        let began = Instant::now();
        match self.resume.write(next, self.evidence, self.inputs) {
            Ok(()) => {
                state.unwritten = false;
                state.written = Some((Instant::now(), began.elapsed()));
            }
            Err(e) => {
                state.stopped = true;
                eprintln!(
                    "trailproof: the checkpoint is not moved on as chains finish any more: {e}"
                );
            }
        }
    }
}

/// A log file no digest names yet, delivered after the last verified digest of a chain of its
/// Region (the newest of this tick, else the checkpoint's): the digest that will name it may
/// not have come yet (one Region's digest often comes minutes before another's). It is said
/// by a later tick, when the chains' next digests do not name it either: each tick looks for
/// such log files in a Region's folder from its chains' earliest last verified digest on (one
/// second after its time), so only log files at or after that are left to it.
pub fn undecided(
    finding: &Finding,
    ends: &[ChainEnds],
    resume: &BTreeMap<ChainId, Timestamp>,
) -> bool {
    if finding.kind != Kind::LogUnreferenced {
        return false;
    }
    let key = finding
        .subject
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, key)| key);
    let Some(Ok(CloudTrailKey::Log(log))) = key.map(parse_key) else {
        return false;
    };
    // Where the next tick takes each chain of the Region up: its newest digest's time, or
    // where this one took it up; a chain with neither is taken up from the start.
    let taken_up = ends
        .iter()
        .filter(|e| !e.chain.backfill && e.chain.scope == log.scope)
        .map(|e| {
            let newest = e.newest.as_ref().map(|n| match parse_key(&n.location.key) {
                Ok(CloudTrailKey::Digest(k)) => k.end_time,
                _ => n.end,
            });
            newest
                .or_else(|| resume.get(&e.chain).copied())
                .unwrap_or(Timestamp::MIN)
        })
        .min();
    // A Region without a chain has no digest to wait for: its log files are said at once.
    taken_up.is_some_and(|t| log.time >= later(t, SignedDuration::from_secs(1)))
}

/// A run over a checkpoint ends where the newest digest of any chain ends: a log file of
/// another Region delivered after that Region's newest digest is named by no digest yet, and
/// its `log_unreferenced` said a false alarm (exit status 1) one day in many. Such findings
/// ([`undecided`], within the hour before the range's end: later than that, the Region's next
/// digest is late) are taken out of `report`, with a note: the next run looks for log files
/// no digest names from each Region's last verified digest on, and says it then if the
/// Region's next digest does not name it. Returns how many.
pub fn hold_back(report: &mut Report, resume: &BTreeMap<ChainId, Timestamp>) -> usize {
    let recent = earlier(report.range.end, SignedDuration::from_hours(1));
    let ends = std::mem::take(&mut report.chain_ends);
    let before = report.unchained.len();
    report.unchained.retain(|f| {
        // A log file named for after the range is one named for after the run's clock
        // (`log_unreferenced` at once: no digest will name it).
        let held = delivered(f).is_some_and(|t| t > recent && t <= report.range.end);
        !(held && undecided(f, &ends, resume))
    });
    report.chain_ends = ends;
    let held = before - report.unchained.len();
    if held > 0 {
        report.notes.push(format!(
            "{held} log files no digest names yet, delivered after their Region's newest digest in the hour before the range's end, are left to the next run (whose range starts at that digest): it reports them if the Region's next digest does not name them"
        ));
    }
    held
}

/// The delivery time a log file finding's subject names.
fn delivered(f: &Finding) -> Option<Timestamp> {
    let key = f.subject.strip_prefix("s3://")?.split_once('/')?.1;
    match parse_key(key) {
        Ok(CloudTrailKey::Log(log)) => Some(log.time),
        _ => None,
    }
}

/// The hours so far, for stderr: `checkpoint: since START, N hours: A verified, ...`.
pub fn summary(next: &Checkpoint) -> String {
    let counts = next.counts();
    let states: Vec<String> = trailproof::core::ledger::HourState::ALL
        .iter()
        .filter(|s| counts.get(**s) > 0)
        .map(|s| format!("{} {}", counts.get(*s), s.name()))
        .collect();
    format!(
        "checkpoint: {} to {}, {} chain-hours: {}",
        next.start,
        next.through,
        counts.total(),
        if states.is_empty() {
            "none".to_owned()
        } else {
            states.join(", ")
        }
    )
}

/// The private key that signs checkpoints.
pub fn signing_key(path: &Path) -> Result<SigningKey, CliError> {
    SigningKey::from_pem(&read(path)?).map_err(|source| {
        CliError::Checkpoint(Box::new(CheckpointCliError::Key {
            path: path.to_owned(),
            source,
        }))
    })
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| {
        CliError::Checkpoint(Box::new(CheckpointCliError::Read {
            path: path.to_owned(),
            source,
        }))
    })
}
