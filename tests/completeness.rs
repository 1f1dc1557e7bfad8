//! The completeness guarantee as a property, over random chains, deletions, moves and ranges:
//! every hour of the requested range of every chain is in exactly one ledger state (the counts
//! add up to chains x hours), evidence removed from the range always leaves unproven hours where
//! it was and a non-zero exit status, and an intact copy whose chains cover the range proves
//! every hour of it (exit 0). Runs the library on copies written by the generator (test keys).

use std::collections::BTreeSet;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use trailproof::core::ledger::Ledger;
use trailproof::engine::{verify, Settings};
use trailproof::report::Report;
use trailproof::source::local::LocalEvidence;
use trailproof::source::PinnedKeys;
use trailproof_testgen::{Corpus, World};

const HOUR: SignedDuration = SignedDuration::from_hours(1);

/// A small deterministic generator (SplitMix64), so a failing seed can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What was done to the copy, as periods of delivery time no longer proven.
struct Damage {
    /// Delivery windows of digests deleted or moved away.
    digests: Vec<(Timestamp, Timestamp)>,
    /// Delivery times of log files deleted.
    logs: Vec<Timestamp>,
}

fn log_time(key: &str) -> Timestamp {
    // ..._YYYYMMDDTHHmmZ_UNIQUE.json.gz
    let stamp = key.rsplit('_').nth(1).unwrap();
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%MZ", stamp).unwrap();
    civil.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp()
}

fn damage(corpus: &mut Corpus, rng: &mut Rng) -> Damage {
    let chain = corpus.chain_ids()[0].clone();
    let digests: Vec<_> = corpus.chain(&chain).into_iter().cloned().collect();
    let mut out = Damage {
        digests: Vec::new(),
        logs: Vec::new(),
    };
    let mut gone = BTreeSet::new();
    for _ in 0..rng.below(4) {
        let d = &digests[rng.below(digests.len() as u64) as usize];
        if !gone.insert(d.key.clone()) {
            continue;
        }
        match rng.below(3) {
            // Deleted with its log files, as someone hiding an hour would.
            0 => {
                for log in &d.logs {
                    corpus.objects.remove(log);
                    out.logs.push(log_time(log));
                }
                corpus.objects.remove(&d.key);
            }
            // Deleted alone: its log files stay, unreferenced.
            1 => {
                corpus.objects.remove(&d.key);
            }
            // Moved to another key of the same folder.
            _ => {
                // The same hour, another second: a digest key still, in the same chain.
                let object = corpus.objects.remove(&d.key).unwrap();
                let stem = d.key.strip_suffix("Z.json.gz").unwrap();
                let (head, seconds) = stem.split_at(stem.len() - 2);
                let other = if seconds == "59" { "58" } else { "59" };
                corpus
                    .objects
                    .insert(format!("{head}{other}Z.json.gz"), object);
            }
        }
        out.digests.push((d.start, d.end));
    }
    if rng.below(3) == 0 {
        let d = &digests[rng.below(digests.len() as u64) as usize];
        if let Some(log) = d.logs.first() {
            if corpus.objects.remove(log).is_some() {
                out.logs.push(log_time(log));
            }
        }
    }
    out
}

fn run(dir: &Path, start: Timestamp, end: Timestamp) -> Report {
    run_open(dir, Some(start), Some(end))
}

/// One account in us-east-1, `hours` hourly digests of one log file of one record.
fn small(hours: u32) -> World {
    World::new("acme-cloudtrail-logs")
        .hours(hours)
        .logs_per_hour(1)
        .records_per_log(1)
}

/// The copy written to a fresh directory.
fn written(corpus: &Corpus) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    corpus.write(dir.path()).unwrap();
    dir
}

/// Clock hours `[start, end]` touches (one for an instant).
fn clock_hours(start: Timestamp, end: Timestamp) -> u64 {
    let (a, b) = (start.as_second(), end.as_second());
    if a == b {
        return 1;
    }
    ((b - 1).div_euclid(3600) - a.div_euclid(3600) + 1) as u64
}

fn unproven_within(ledger: &Ledger, from: Timestamp, to: Timestamp) -> bool {
    ledger
        .runs
        .iter()
        .any(|r| !r.state.is_proven() && r.from < to && from < r.to)
}

#[test]
fn deleted_or_moved_evidence_never_leaves_a_proven_hour_and_the_ledger_adds_up() {
    let (mut damaged_runs, mut intact_runs) = (0, 0);
    for seed in 0..48u64 {
        let mut rng = Rng(seed);
        let mut corpus = small(8).seed(seed).build();
        let chain = corpus.chain_ids()[0].clone();
        let (first_start, last_end) = {
            let ds = corpus.chain(&chain);
            (ds[0].start, ds[ds.len() - 1].end)
        };
        let damage = damage(&mut corpus, &mut rng);
        // Any range from two hours before the chain to two hours after it, at any minute.
        let start = first_start - HOUR * 2 + SignedDuration::from_mins(rng.below(60 * 11) as i64);
        let end = start + SignedDuration::from_mins(rng.below(60 * 6) as i64);
        let dir = written(&corpus);
        let report = run(dir.path(), start, end);
        let what = format!("seed {seed}, range {start} to {end}");

        let ledgers: Vec<&Ledger> = report.ledgers().collect();
        assert_eq!(ledgers.len(), 1, "{what}: one chain, one ledger");
        let ledger = ledgers[0];
        assert_eq!((ledger.from, ledger.to), (start, end), "{what}");
        assert_eq!(ledger.hours, clock_hours(start, end), "{what}: hours");
        assert_eq!(ledger.counts.total(), ledger.hours, "{what}: counts");
        assert_eq!(
            ledger.runs.iter().map(|r| r.hours).sum::<u64>(),
            ledger.hours,
            "{what}: runs"
        );
        if report.exit_code() == 0 {
            assert!(ledger.is_proven(), "{what}: exit 0 with unproven hours");
        }

        let hit_digests: Vec<_> = damage
            .digests
            .iter()
            .filter(|(a, b)| *a < end && start < *b)
            .collect();
        let hit_logs = damage.logs.iter().any(|t| start <= *t && *t <= end);
        for (a, b) in &hit_digests {
            assert!(
                unproven_within(ledger, (*a).max(start), (*b).min(end)),
                "{what}: a digest of {a} to {b} is gone and its hours are proven"
            );
        }
        if !hit_digests.is_empty() || hit_logs {
            damaged_runs += 1;
            assert_ne!(report.exit_code(), 0, "{what}: damage in range, exit 0");
        }
        // Nothing touched within reach of the range, and the chain covers it: all proven.
        let near = |t: Timestamp| start - HOUR <= t && t <= end + HOUR * 2;
        let untouched = damage.digests.iter().all(|(a, b)| !near(*a) && !near(*b))
            && damage.logs.iter().all(|t| !near(*t));
        if untouched && first_start <= start && end <= last_end {
            intact_runs += 1;
            assert!(ledger.is_proven(), "{what}: intact range not proven");
            assert_eq!(report.exit_code(), 0, "{what}: intact range, exit not 0");
        }
        // Ranges reaching past the chain's ends are never proven there.
        if start < first_start || end > last_end {
            assert!(
                !ledger.is_proven(),
                "{what}: hours outside the chain proven"
            );
        }
    }
    assert!(damaged_runs >= 10, "only {damaged_runs} damaged runs");
    assert!(intact_runs >= 3, "only {intact_runs} intact runs");
}

/// Runs with one end of the range given and the other taken from the evidence.
fn run_open(dir: &Path, start: Option<Timestamp>, end: Option<Timestamp>) -> Report {
    let keys = PinnedKeys::from_file(&dir.join("public-keys.json")).unwrap();
    let source = LocalEvidence::open(&dir.join("bucket")).unwrap();
    let settings = Settings {
        start,
        end,
        ..Settings::default()
    };
    verify(&source, &keys, &settings).unwrap()
}

/// Deletes digests (oldest first, by index into `region`'s chain) with their log files, and
/// their records in the evidence-metadata file unless `keep_records`.
fn delete(corpus: &mut Corpus, region: &str, which: std::ops::Range<usize>, keep_records: bool) {
    let folder = format!("/CloudTrail-Digest/{region}/");
    let chain = corpus
        .chain_ids()
        .into_iter()
        .find(|c| corpus.chain(c)[0].key.contains(&folder))
        .unwrap();
    let digests: Vec<_> = corpus.chain(&chain).into_iter().cloned().collect();
    for d in &digests[which] {
        for key in d.logs.iter().chain([&d.key]) {
            corpus.objects.remove(key);
            if let (Some(records), false) = (corpus.evidence.as_mut(), keep_records) {
                records.remove(key);
            }
        }
    }
}

/// Found by the red team: with only `--start-time`, the end is the newest digest of the
/// evidence, and a chain whose last ten hours were deleted (nothing links to them) was measured
/// only up to its own newest digest: exit 0.
#[test]
fn a_chain_cut_short_is_unproven_when_the_end_is_taken_from_the_evidence() {
    let mut corpus = small(12).regions(&["us-east-1", "eu-west-1"]).build();
    delete(&mut corpus, "eu-west-1", 8..12, false);
    let dir = written(&corpus);
    let report = run_open(dir.path(), Some(corpus.start), None);
    assert_eq!(report.exit_code(), 1);
    let short = report
        .chains
        .iter()
        .find(|c| c.chain.region == "eu-west-1")
        .unwrap();
    let ledger = short.ledger.as_ref().unwrap();
    assert!(ledger.counts.missing >= 3, "{:?}", ledger.counts);
    assert!(short
        .findings
        .iter()
        .any(|f| f.kind == trailproof::core::finding::Kind::CoverageEnd));
    // The intact chain, which ends within the hour of the newest digest, is proven.
    let whole = report
        .chains
        .iter()
        .find(|c| c.chain.region == "us-east-1")
        .unwrap();
    assert!(whole.ledger.as_ref().unwrap().is_proven());
}

/// Found by the red team: with only `--end-time`, the digests before a signed restart deleted
/// (nothing links to them) left the chain measured from its restart: exit 0.
#[test]
fn hours_before_a_restart_are_unproven_when_the_start_is_taken_from_the_evidence() {
    let mut corpus = small(8)
        .regions(&["us-east-1", "eu-west-1"])
        .stop_logging(3, 2)
        .build();
    delete(&mut corpus, "us-east-1", 0..3, false);
    let dir = written(&corpus);
    let report = run_open(dir.path(), None, Some(corpus.end));
    assert_eq!(report.exit_code(), 1);
    let cut = report
        .chains
        .iter()
        .find(|c| c.chain.region == "us-east-1")
        .unwrap();
    let ledger = cut.ledger.as_ref().unwrap();
    assert!(ledger.counts.gap + ledger.counts.missing >= 3, "{ledger:?}");
}

/// Found by the red team: a log file only a backfill digest lists, modified, was reported
/// invalid while the ledger still counted every hour verified (backfill chains have no ledger
/// of their own).
#[test]
fn a_tampered_backfill_log_leaves_its_hours_unproven_in_the_ledger() {
    let mut corpus = small(3).backfill_hours(&[1]).build();
    let backfill = corpus
        .digests()
        .iter()
        .find(|d| d.backfill)
        .unwrap()
        .clone();
    corpus.modify_log(&backfill.logs[0]).unwrap();
    let dir = written(&corpus);
    let report = run(dir.path(), corpus.start, corpus.end);
    assert_eq!(report.exit_code(), 1);
    let ledgers: Vec<&Ledger> = report.ledgers().collect();
    assert_eq!(
        ledgers.len(),
        1,
        "the backfill chain has no ledger of its own"
    );
    assert!(
        unproven_within(
            ledgers[0],
            backfill.start.max(corpus.start),
            backfill.end.min(corpus.end)
        ),
        "{:?}",
        ledgers[0].runs
    );
}

/// Found by the red team: every digest of one chain deleted with its log files, while the
/// evidence-metadata file (written at acquisition) still records them: nothing said so, exit 0.
/// A digest the copy's own records name and the copy lacks is missing.
#[test]
fn digests_the_evidence_file_records_and_the_copy_lacks_are_missing() {
    let mut corpus = small(4).regions(&["us-east-1", "eu-west-1"]).build();
    delete(&mut corpus, "eu-west-1", 0..4, true);
    let dir = written(&corpus);
    let report = run(dir.path(), corpus.start, corpus.end);
    assert_eq!(report.exit_code(), 1);
    let gone = report
        .chains
        .iter()
        .find(|c| c.chain.region == "eu-west-1")
        .expect("the deleted chain is known from the records");
    assert!(gone
        .findings
        .iter()
        .all(|f| f.kind == trailproof::core::finding::Kind::DigestMissing));
    assert!(!gone.findings.is_empty());
    let ledger = gone.ledger.as_ref().unwrap();
    assert_eq!(ledger.counts.missing, ledger.hours, "{:?}", ledger.counts);
}

/// Found by review: every standard digest of a trail deleted (all its history) while its
/// backfill digests stay: no standard chain, so no ledger, and exit 0.
#[test]
fn backfill_digests_without_their_standard_chain_prove_nothing() {
    let mut corpus = small(3).backfill_hours(&[1]).build();
    let standard: Vec<_> = corpus
        .digests()
        .iter()
        .filter(|d| !d.backfill)
        .cloned()
        .collect();
    for d in &standard {
        for key in d.logs.iter().chain([&d.key]) {
            corpus.objects.remove(key);
            if let Some(records) = corpus.evidence.as_mut() {
                records.remove(key);
            }
        }
    }
    let dir = written(&corpus);
    let report = run(dir.path(), corpus.start, corpus.end);
    assert_eq!(report.exit_code(), 1);
    let ledgers: Vec<&Ledger> = report.ledgers().collect();
    assert_eq!(ledgers.len(), 1);
    assert_eq!(ledgers[0].counts.missing, ledgers[0].hours);
}

/// Found by review: with no `--end-time`, the end was the newest digest on disk, so digests
/// deleted after acquisition at the tail (still in the evidence-metadata file) were outside
/// the range and unseen.
#[test]
fn a_deleted_tail_the_evidence_file_records_sets_the_end_of_the_range() {
    let mut corpus = small(6).build();
    delete(&mut corpus, "us-east-1", 3..6, true);
    let dir = written(&corpus);
    let report = run_open(dir.path(), Some(corpus.start), None);
    assert_eq!(report.exit_code(), 1);
    let missing = report
        .all_findings()
        .filter(|f| f.kind == trailproof::core::finding::Kind::DigestMissing)
        .count();
    assert_eq!(missing, 3);
}
