//! A run from end to end: the phases in order, and the report they make up.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::ahead::LogListing;
use super::count::ValidLogs;
use super::digests::{candidates, key_needs, listed_key_needs, read_digests, resolve_bucket, Kept};
use super::ends::ChainEnds;
use super::holes::Holes;
use super::layout::Layout;
use super::logs::{add_searched, check_logs, judged, listed_count};
use super::plan::{chain_range, plan, Plan};
use super::texts::TextHashes;
use super::unvouched::{OtherTrails, Vouched};
use super::versions::Recovery;
use super::{EngineError, LogTap, Settings};
use crate::core::chain::{walk, DigestCandidate, Range, WalkedChain};
use crate::core::custody::Retention;
use crate::core::finding::Finding;
use crate::core::layout::ChainId;
use crate::core::sign::KeySet;
use crate::report::{ChainInfo, ChainReport, Filters, KeyInfo, RangeInfo, Report};
use crate::source::progress::{NoObserver, Observer};
use crate::source::{KeyProvider, ObjectSource};

/// Receives findings while the engine runs, for output that cannot wait for the whole report:
/// each chain's findings once its walk and log checks are done, then those of the pass over log
/// files no digest names (chain `None`). Called in report order, one batch at a time, so the
/// stream is the same at any thread count; `Sync` so the engine may run inside a thread pool.
pub type FindingSink<'a> = &'a (dyn Fn(Option<&ChainInfo>, &[Finding]) + Sync);

/// A chain the run is done with ([`verify_resumable`]): its findings went to the sink before
/// this, and nothing the run does later changes its report.
pub struct FinishedChain<'a> {
    /// The bucket of the run.
    pub bucket: &'a str,
    /// The run's range.
    pub range: RangeInfo,
    /// The chain's report, with its ledger (a standard chain's after its backfill chain's
    /// was laid out: that changes it).
    pub report: &'a ChainReport,
    /// What a checkpoint records of it.
    pub ends: &'a ChainEnds,
    /// What a checkpoint records of every chain of the run (this one among them).
    pub every: &'a [ChainEnds],
}

/// Told of each chain once the run is done with it ([`FinishedChain`]), in report order, from
/// the thread that lays the chains out: what it does holds the run up.
pub type ChainDone<'a> = &'a (dyn Fn(&FinishedChain<'_>) + Sync);

/// Verifies what `source` holds, with the keys `key_provider` gives, as `settings` say. No one
/// hears of the run until it is done: see [`verify_streaming`] for findings as they are
/// decided, and for progress.
pub fn verify(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
) -> Result<Report, EngineError> {
    verify_streaming(source, key_provider, settings, None, &NoObserver)
}

/// [`verify`], handing findings to `sink` as they are decided and reporting each phase's
/// progress to `observer`. The report is the same. The log folders are listed after the chains
/// were handed on, so an error (a listing that fails) may come after the sink has had
/// findings: the run then failed, and what the sink wrote is incomplete.
pub fn verify_streaming(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    sink: Option<FindingSink<'_>>,
    observer: &dyn Observer,
) -> Result<Report, EngineError> {
    verify_tapped(source, key_provider, settings, sink, observer, None)
}

/// [`verify_streaming`], telling `done` of each chain as soon as the run is done with it: a
/// caller that keeps a checkpoint ([`crate::report::checkpoint`]) moves it on chain by chain,
/// so that a run stopped halfway loses only the chains in flight.
pub fn verify_resumable(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    sink: Option<FindingSink<'_>>,
    observer: &dyn Observer,
    done: ChainDone<'_>,
) -> Result<Report, EngineError> {
    run(
        source,
        key_provider,
        settings,
        (sink, observer, None, Some(done)),
    )
}

/// [`verify_streaming`], handing `tap` each log file found to be what its verified digest
/// lists, with its inflated bytes, while log files are hashed.
pub(crate) fn verify_tapped(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    sink: Option<FindingSink<'_>>,
    observer: &dyn Observer,
    tap: Option<&dyn LogTap>,
) -> Result<Report, EngineError> {
    run(source, key_provider, settings, (sink, observer, tap, None))
}

/// Who hears of a run while it goes on: the sink, the observer, the tap, the finished chains.
type Hooks<'a> = (
    Option<FindingSink<'a>>,
    &'a dyn Observer,
    Option<&'a dyn LogTap>,
    Option<ChainDone<'a>>,
);

/// A run from the plan on.
fn run(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    hooks: Hooks<'_>,
) -> Result<Report, EngineError> {
    let plan = plan(source, settings, hooks.1)?;
    // From a remote source, the log folders are listed while the rest of the run goes on.
    std::thread::scope(|scope| {
        let logs = LogListing::start(scope, source, settings);
        verify_planned(source, key_provider, settings, hooks, plan, logs)
    })
}

/// [`verify_tapped`] once the plan is made, with the log folders' listing (`logs`) under way.
fn verify_planned(
    source: &dyn ObjectSource,
    key_provider: &dyn KeyProvider,
    settings: &Settings,
    (sink, observer, tap, done): Hooks<'_>,
    plan: Plan,
    logs: LogListing<'_>,
) -> Result<Report, EngineError> {
    let Plan {
        range,
        derived,
        digests,
        other_trails,
        unrecognised,
        gone,
        searched,
        ahead,
    } = plan;
    let kept = Kept::for_source(source);
    // The keys the listed digests need are asked for while they are read: a round trip the
    // run would otherwise wait for between the two.
    let needs = source
        .remote()
        .then(|| listed_key_needs(&[&digests, &other_trails], range));
    let (read, others, searched) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| {
            let read = read_digests(source, digests, &gone, observer, &kept);
            let others = if other_trails.is_empty() {
                Vec::new()
            } else {
                read_digests(
                    source,
                    other_trails,
                    &BTreeSet::new(),
                    observer,
                    &Kept::nothing(),
                )
            };
            let searched = read_digests(
                source,
                searched,
                &BTreeSet::new(),
                &NoObserver,
                &Kept::nothing(),
            );
            (read, others, searched)
        });
        if let Some(needs) = needs {
            key_provider.warm(&needs);
        }
        reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });

    let bucket = resolve_bucket(source, settings, &read)?;
    let chains = candidates(read, &bucket, settings);
    let other_chains = candidates(others, &bucket, settings);
    let searched = candidates(searched, &bucket, settings);
    let keys = key_provider.keys(&key_needs(&[&chains, &other_chains, &searched], range))?;
    let other_trails = OtherTrails::attribute(source, other_chains, &keys, range);
    let walked = walk_all(chains, &keys, range, settings);
    let chain_ends: Vec<ChainEnds> = walked
        .iter()
        .map(|(id, chain)| ChainEnds::of(id, chain, chain_range(range, settings, id)))
        .collect();
    let judged = judged(source, &walked);
    let holes = Holes::of(&bucket, &walked);
    let mut referenced = TextHashes::with_capacity(
        walked
            .iter()
            .flat_map(|(_, c)| c.digests.iter())
            .map(listed_count)
            .sum(),
    );
    let behind = add_searched(
        source,
        searched,
        (&keys, settings),
        &bucket,
        &mut referenced,
    );
    let layout = Layout::new(
        (&bucket, source, Recovery::of(source, &bucket, &keys)),
        sink,
        if settings.omit_valid_logs {
            ValidLogs::Counted(tap)
        } else {
            ValidLogs::Kept
        },
        &judged,
        walked.len(),
    )
    .windowed(settings.window, (range.start, range.end))
    .telling(done.map(|d| (d, chain_ends.as_slice(), range_info(range, derived))));
    let laid_out = check_logs(
        source,
        walked,
        layout,
        &mut referenced,
        observer,
        (tap, &kept),
    );
    let vouched = Vouched {
        bucket: &bucket,
        range,
        referenced: referenced.into_set(),
        other_trails,
        holes,
    };
    let (mut unchained, attributed) =
        vouched.unchained(source, settings, unrecognised, logs, observer)?;
    if !behind.is_empty() || !ahead.is_empty() {
        unchained.extend(behind);
        unchained.extend(super::unvouched::ahead_of_clock(&bucket, &ahead));
        unchained.sort_by(|a, b| a.subject.cmp(&b.subject));
    }
    if let Some(window) = settings.window {
        // A log file no digest names belongs to the shard that owns its delivery time; what
        // has no time (a stray name) is said by every shard that lists it, the same way.
        let owned = |f: &Finding| match delivery_time(&f.subject) {
            Some(t) => window.owns((range.start, range.end), t),
            None => true,
        };
        unchained.retain(owned);
    }
    let mut notes = source.notes();
    notes.extend(laid_out.notes);
    if attributed > 0 {
        notes.push(format!(
            "{attributed} log files were not checked: verified digests of trails left out by the filters, which write to the same folders, name them"
        ));
    }
    if let Some(sink) = sink {
        sink(None, &unchained);
    }
    Ok(Report {
        keys: key_infos(&keys, key_provider),
        chains: laid_out.chains,
        unchained,
        retention: laid_out.retention,
        notes,
        chain_ends,
        ..report(source, settings, bucket, range_info(range, derived))
    })
}

impl From<&Settings> for Filters {
    /// The filters of a run with `settings`.
    fn from(settings: &Settings) -> Filters {
        Filters {
            accounts: settings.accounts.clone(),
            regions: settings.regions.clone(),
            trails: settings.trails.clone(),
        }
    }
}

/// The delivery time of the log file an `s3://BUCKET/KEY` subject names, if it names one.
fn delivery_time(subject: &str) -> Option<jiff::Timestamp> {
    let key = subject.strip_prefix("s3://")?.split_once('/')?.1;
    match crate::core::layout::parse_key(key) {
        Ok(crate::core::layout::CloudTrailKey::Log(l)) => Some(l.time),
        _ => None,
    }
}

/// Walks every chain, in parallel: chains are independent. In chain order.
fn walk_all(
    chains: BTreeMap<ChainId, Vec<DigestCandidate>>,
    keys: &KeySet,
    range: Range,
    settings: &Settings,
) -> Vec<(ChainId, WalkedChain)> {
    chains
        .into_par_iter()
        .map(|(id, candidates)| {
            let w = walk(&id, candidates, keys, chain_range(range, settings, &id));
            (id, w)
        })
        .collect()
}

/// The report of a run that found nothing at all (the AWS CLI prints "No digests found").
pub fn empty_report(source: &dyn ObjectSource, settings: &Settings) -> Report {
    let start = settings.start.unwrap_or_default();
    let range = RangeInfo {
        start,
        end: settings.end.unwrap_or(start),
        derived_from_evidence: false,
    };
    let bucket = source.bucket().unwrap_or_default();
    Report {
        notes: vec!["nothing in the source matched the filters".to_owned()],
        ..report(source, settings, bucket, range)
    }
}

/// The report of a run about `bucket` and `range`, before anything is found.
fn report(
    source: &dyn ObjectSource,
    settings: &Settings,
    bucket: String,
    range: RangeInfo,
) -> Report {
    Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: source.describe(),
        bucket,
        range,
        filters: Filters::from(settings),
        keys: Vec::new(),
        chains: Vec::new(),
        unchained: Vec::new(),
        notes: Vec::new(),
        retention: Retention::default(),
        chain_ends: Vec::new(),
        crosscheck: None,
    }
}

fn range_info(range: Range, derived: bool) -> RangeInfo {
    RangeInfo {
        start: range.start,
        end: range.end,
        derived_from_evidence: derived,
    }
}

/// The keys of the run, each with where it came from.
pub(super) fn key_infos(keys: &KeySet, key_provider: &dyn KeyProvider) -> Vec<KeyInfo> {
    keys.iter()
        .map(|k| KeyInfo {
            fingerprint: k.fingerprint().to_string(),
            valid_from: k.valid_from,
            valid_to: k.valid_to,
            origin: key_provider.origin(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Kind;
    use crate::core::gz::{inflate_all, Limits};
    use crate::core::types::S3Location;
    use crate::source::{ListRequest, ReadError, SourceError, StoredObject};

    /// A copy whose digests change after their first read, as if rewritten during the run.
    struct Rewritten {
        copy: crate::source::local::LocalEvidence,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl ObjectSource for Rewritten {
        fn describe(&self) -> String {
            self.copy.describe()
        }
        fn bucket(&self) -> Option<String> {
            self.copy.bucket()
        }
        fn list(
            &self,
            request: &ListRequest,
            each: &(dyn Fn(String) + Sync),
            observer: &dyn Observer,
        ) -> Result<(), SourceError> {
            self.copy.list(request, each, observer)
        }
        fn read_digests(
            &self,
            keys: &[String],
            progress: &crate::source::progress::Progress<'_>,
        ) -> Vec<Result<StoredObject, ReadError>> {
            let mut read = self.copy.read_digests(keys, progress);
            let later = self
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                > 0;
            for stored in read.iter_mut().flatten().filter(|_| later) {
                // Still a well-formed digest, listing the same log files: one more space.
                let mut raw = inflate_all(&stored.bytes, Limits::DIGEST).unwrap();
                raw.push(b' ');
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                std::io::Write::write_all(&mut gz, &raw).unwrap();
                stored.bytes = gz.finish().unwrap();
            }
            read
        }
        fn hash_logs(
            &self,
            bucket: &str,
            locations: &[&S3Location],
            progress: &crate::source::progress::Progress<'_>,
        ) -> Vec<Result<crate::core::gz::GzOutcome, ReadError>> {
            self.copy.hash_logs(bucket, locations, progress)
        }
        fn inflate_logs(
            &self,
            bucket: &str,
            locations: &[&S3Location],
            progress: &crate::source::progress::Progress<'_>,
        ) -> Vec<Result<crate::source::InflatedLog, ReadError>> {
            self.copy.inflate_logs(bucket, locations, progress)
        }
        fn notes(&self) -> Vec<String> {
            self.copy.notes()
        }
    }

    #[test]
    fn a_digest_rewritten_during_the_run_vouches_for_nothing() {
        let case =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/clean-plain");
        let keys = crate::source::PinnedKeys::from_file(&case.join("public-keys.json")).unwrap();
        let source = Rewritten {
            copy: crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap(),
            reads: Default::default(),
        };
        let report = verify(&source, &keys, &Settings::default()).unwrap();
        let kinds = |kind| report.all_findings().filter(|f| f.kind == kind).count();
        // Their signatures verified over the first bytes, the lists would come from the second:
        // none is valid.
        assert_eq!(kinds(Kind::DigestValid), 0);
        assert_eq!(kinds(Kind::DigestUnreadable), 6);
        assert_eq!(kinds(Kind::LogValid), 0);
        assert_eq!(kinds(Kind::LogUnreferenced), 12);
        assert!(report
            .all_findings()
            .filter(|f| f.kind == Kind::DigestUnreadable)
            .all(|f| f
                .evidence
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("changed"))));
        assert_eq!(report.totals().digests.not_verified, 6);
        assert_eq!(report.exit_code(), 2);

        // Read once, as it was: all valid.
        let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
        let report = verify(&source, &keys, &Settings::default()).unwrap();
        assert_eq!(report.totals().logs.valid, 12);
        assert_eq!(report.exit_code(), 0);
    }

    /// What a run tells its observer: each phase started with its total, every object of it
    /// done, then finished; phases one after another.
    #[test]
    fn the_observer_hears_every_phase_from_start_to_finish() {
        use crate::source::progress::Phase;
        use std::sync::Mutex;

        #[derive(Default)]
        struct Recorder(Mutex<Vec<(Phase, &'static str, u64)>>);
        impl Observer for Recorder {
            fn phase_started(&self, phase: Phase, total: Option<u64>) {
                let total = total.unwrap_or(u64::MAX);
                self.0.lock().unwrap().push((phase, "started", total));
            }
            fn objects_done(&self, phase: Phase, objects: u64, stored_bytes: u64) {
                assert!(stored_bytes > 0, "{phase}: every object read takes bytes");
                self.0.lock().unwrap().push((phase, "done", objects));
            }
            fn phase_finished(&self, phase: Phase) {
                self.0.lock().unwrap().push((phase, "finished", 0));
            }
        }

        let case =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/clean-plain");
        let keys = crate::source::PinnedKeys::from_file(&case.join("public-keys.json")).unwrap();
        let source = crate::source::local::LocalEvidence::open(&case.join("bucket")).unwrap();
        let recorder = Recorder::default();
        let report =
            verify_streaming(&source, &keys, &Settings::default(), None, &recorder).unwrap();
        let quiet = verify(&source, &keys, &Settings::default()).unwrap();
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            serde_json::to_string(&quiet).unwrap(),
            "the report does not depend on the observer"
        );
        let heard = recorder.0.into_inner().unwrap();
        let mut phases = Vec::new();
        for (phase, what, n) in &heard {
            match *what {
                "started" => phases.push((*phase, *n, 0)),
                "done" => {
                    let open = phases.last_mut().unwrap();
                    assert_eq!(open.0, *phase, "only the phase under way");
                    open.2 += n;
                }
                _ => assert_eq!(phases.last().unwrap().0, *phase),
            }
        }
        assert_eq!(
            phases,
            [(Phase::DigestsRead, 6, 6), (Phase::LogFilesHashed, 12, 12)]
        );
        assert_eq!(heard.last().unwrap().1, "finished");
    }
}
