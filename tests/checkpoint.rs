//! `verify --checkpoint`: incremental runs against one full run over the same evidence, and
//! what someone who can rewrite the bucket or the checkpoint file would try to make the
//! incremental run say "valid". Runs the binary on copies written by the generator.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::Value;
use trailproof::core::layout::{parse_key, CloudTrailKey};
use trailproof::core::ledger::Counts;
use trailproof::report::checkpoint::{ChainMark, VerifiedCheckpoint};
use trailproof::report::dsse::Trust;
use trailproof::report::signing::PublicKey;
use trailproof_testgen::{Corpus, World};

use support::{corpus_as_of, repo, trailproof, written, Output};

const KEY: &str = "testdata/report-keys/ed25519.pem";
const PUB: &str = "testdata/report-keys/ed25519.pub.pem";

/// Two Regions, 36 hours of two log files an hour, from 2026-01-01T00:00Z.
fn world() -> World {
    World::new("acme-cloudtrail-logs")
        .regions(&["us-east-1", "eu-west-1"])
        .hours(36)
        .logs_per_hour(2)
        .records_per_log(1)
}

/// The first day: the evidence as it was at 2026-01-02T00:00Z (digests that ended later, and
/// the log files they list, not delivered yet).
const CUT: &str = "2026-01-02T00:00:00Z";

/// The first digest of `region`'s chain that ends after `cut`, and the last one before.
fn around(corpus: &Corpus, region: &str, cut: Timestamp) -> (String, String) {
    let chain: Vec<_> = corpus
        .digests()
        .iter()
        .filter(|d| d.key.contains(&format!("/{region}/")) && !d.backfill)
        .collect();
    let after = chain.iter().filter(|d| d.end > cut).min_by_key(|d| d.end);
    let before = chain.iter().filter(|d| d.end <= cut).max_by_key(|d| d.end);
    (after.unwrap().key.clone(), before.unwrap().key.clone())
}

/// The first log file of `region`'s first digest after the cut (not in the first day's copy).
fn first_new_log(corpus: &Corpus, region: &str) -> String {
    let (next, _) = around(corpus, region, CUT.parse().unwrap());
    let digest = corpus.digests().iter().find(|d| d.key == next).unwrap();
    digest.logs[0].clone()
}

/// `verify COPY --format json --checkpoint FILE --sign-key KEY` and any further arguments.
fn run(case: &Path, checkpoint: &Path, more: &[&str]) -> Output {
    run_as("json", case, checkpoint, more)
}

/// [`run`] with another `--format`.
fn run_as(format: &str, case: &Path, checkpoint: &Path, more: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "verify".into(),
        case.join("bucket").display().to_string(),
        "--public-keys".into(),
        case.join("public-keys.json").display().to_string(),
        "--format".into(),
        format.into(),
        "--checkpoint".into(),
        checkpoint.display().to_string(),
        "--sign-key".into(),
        repo().join(KEY).display().to_string(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    trailproof(case, &args, &[])
}

/// A full run, without a checkpoint.
fn full(case: &Path) -> Output {
    let args: Vec<String> = vec![
        "verify".into(),
        case.join("bucket").display().to_string(),
        "--public-keys".into(),
        case.join("public-keys.json").display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    trailproof(case, &args, &[])
}

/// Per subject, every (kind, verdict) said about it.
fn verdicts(out: &Output) -> BTreeMap<String, Vec<(String, String)>> {
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr: {}", out.stderr));
    let mut all: Vec<&Value> = Vec::new();
    for chain in report["chains"].as_array().unwrap() {
        all.extend(chain["findings"].as_array().unwrap());
    }
    all.extend(report["unchained"].as_array().unwrap());
    let mut by: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let s = |f: &Value, k: &str| f[k].as_str().unwrap().to_owned();
    for f in all {
        by.entry(s(f, "subject"))
            .or_default()
            .push((s(f, "kind"), s(f, "verdict")));
        for also in f["also"].as_array().into_iter().flatten() {
            by.entry(s(f, "subject"))
                .or_default()
                .push((s(also, "kind"), s(also, "verdict")));
        }
    }
    for v in by.values_mut() {
        v.sort();
    }
    by
}

/// Per chain (trail ARN and Region), the hours of the full run's ledger.
fn full_ledgers(out: &Output) -> BTreeMap<(String, String), Counts> {
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["ledger"].is_null())
        .map(|c| {
            let key = (
                c["chain"]["trail_arn"].as_str().unwrap().to_owned(),
                c["chain"]["region"].as_str().unwrap().to_owned(),
            );
            (
                key,
                serde_json::from_value(c["ledger"]["counts"].clone()).unwrap(),
            )
        })
        .collect()
}

/// The checkpoint at `path`, verified with the test key.
fn opened(path: &Path) -> VerifiedCheckpoint {
    let key = PublicKey::from_pem(&std::fs::read(repo().join(PUB)).unwrap()).unwrap();
    VerifiedCheckpoint::open(&std::fs::read(path).unwrap(), Trust::Key(&key)).unwrap()
}

/// Per chain, the hours of the checkpoint's ledger so far.
fn checkpoint_ledgers(path: &Path) -> BTreeMap<(String, String), Counts> {
    opened(path)
        .checkpoint()
        .chains
        .iter()
        .filter_map(|c| {
            let key = (c.chain.trail_arn.clone(), c.chain.region.clone());
            Some((key, c.ledger.as_ref()?.ledger().counts))
        })
        .collect()
}

/// The first day, checkpointed, then the whole copy from the checkpoint: the verdicts of the
/// two runs (the second's where both judge an object) and the checkpoint's ledger are those of
/// one full run over the whole copy.
fn assert_incremental_equals_full(corpus: &Corpus, (expected_first, expected_second): (i32, i32)) {
    let cut: Timestamp = CUT.parse().unwrap();
    let (_g1, first_day) = written(&corpus_as_of(corpus, cut));
    let (_g2, whole) = written(corpus);
    let checkpoint = first_day.parent().unwrap().join("trailproof.checkpoint");

    let first = run(&first_day, &checkpoint, &[]);
    assert_eq!(first.code, expected_first, "first day: {}", first.stderr);
    let second = run(&whole, &checkpoint, &[]);
    assert_eq!(
        second.code, expected_second,
        "second run: {}",
        second.stderr
    );
    let all = full(&whole);
    assert_eq!(all.code, expected_second, "full run: {}", all.stderr);

    let mut merged = verdicts(&first);
    merged.extend(verdicts(&second));
    let want = verdicts(&all);
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| merged.get(*k) != Some(v))
        .map(|(k, v)| (k, v, merged.get(k)))
        .chain(
            merged
                .iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| (k, v, None)),
        )
        .collect();
    assert!(differ.is_empty(), "incremental != full: {differ:#?}");
    // The second run read only what is new: fewer digests than the whole copy holds.
    let second_digests = verdicts(&second)
        .values()
        .flatten()
        .filter(|(k, _)| k.starts_with("digest_valid"))
        .count();
    assert!(
        second_digests < corpus.digests().len() / 2 + 4,
        "{second_digests}"
    );
    assert_eq!(checkpoint_ledgers(&checkpoint), full_ledgers(&all));
}

#[test]
fn incremental_runs_equal_one_full_run() {
    assert_incremental_equals_full(&world().build(), (0, 0));
}

/// A plain copy (no S3 metadata) cannot verify a chain's newest digest (exit 1: its signature
/// is unavailable): the first run's checkpoint stops before it, and the second run reads it
/// again, verified through its successor's link, as a full run does.
#[test]
fn incremental_runs_equal_one_full_run_on_a_plain_copy() {
    assert_incremental_equals_full(&world().metadata(false).build(), (1, 1));
}

/// A log file tampered with and a digest deleted on the second day: said once, by the second
/// run, as the full run says them.
#[test]
fn incremental_runs_equal_one_full_run_with_findings() {
    let mut corpus = world().build();
    let cut: Timestamp = CUT.parse().unwrap();
    let later = corpus
        .digests()
        .iter()
        .find(|d| {
            d.end > cut + jiff::SignedDuration::from_hours(5) && d.key.contains("/eu-west-1/")
        })
        .unwrap()
        .clone();
    corpus.modify_log(&later.logs[0]).unwrap();
    let deleted = corpus
        .digests()
        .iter()
        .find(|d| {
            d.end > cut + jiff::SignedDuration::from_hours(3) && d.key.contains("/us-east-1/")
        })
        .unwrap()
        .key
        .clone();
    corpus.delete_digest(&deleted).unwrap();
    assert_incremental_equals_full(&corpus, (0, 1));
}

/// Sets up the first day checkpointed; the whole copy written beside it.
struct Setup {
    _guards: (tempfile::TempDir, tempfile::TempDir),
    whole: PathBuf,
    checkpoint: PathBuf,
    corpus: Corpus,
}

fn checkpointed(corpus: Corpus) -> Setup {
    let cut: Timestamp = CUT.parse().unwrap();
    let (g1, first_day) = written(&corpus_as_of(&corpus, cut));
    let (g2, whole) = written(&corpus);
    let checkpoint = g2.path().join("trailproof.checkpoint");
    let first = run(&first_day, &checkpoint, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    Setup {
        _guards: (g1, g2),
        whole,
        checkpoint,
        corpus,
    }
}

/// The run stopped with exit 2, saying `says`, and the checkpoint is as it was.
fn assert_refused(out: &Output, says: &str, checkpoint: &Path, before: &[u8]) {
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(says), "{}", out.stderr);
    assert_eq!(
        std::fs::read(checkpoint).unwrap(),
        before,
        "checkpoint changed"
    );
}

/// The digest right after the checkpoint's last one deleted: the link of the one after it
/// names it, and the second run reports it missing.
#[test]
fn a_digest_deleted_right_after_the_checkpoint_is_reported_missing() {
    let mut corpus = world().build();
    let (next, _) = around(&corpus, "us-east-1", CUT.parse().unwrap());
    corpus.delete_digest(&next).unwrap();
    let s = checkpointed(corpus);
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let found = verdicts(&out);
    let subject = format!("s3://acme-cloudtrail-logs/{next}");
    assert!(
        found
            .get(&subject)
            .is_some_and(|v| v.iter().any(|(k, _)| k == "digest_missing")),
        "{found:#?}"
    );
}

/// Found by the red team: a Region's whole history deleted before the first run, so the
/// checkpoint knows only the other Region; its next digest links to one of the deleted ones.
/// The incremental run took the Region as a new chain and said nothing, where a full run
/// reports the digest it links to missing: a chain the checkpoint does not know, with a digest
/// in the checkpoint's time, stops the run.
#[test]
fn a_region_deleted_before_the_first_run_is_not_a_new_chain_after_it() {
    let mut corpus = world().build();
    let cut: Timestamp = CUT.parse().unwrap();
    let (_, last) = around(&corpus, "eu-west-1", cut);
    let history: Vec<String> = corpus
        .digests()
        .iter()
        .filter(|d| d.key.contains("/eu-west-1/") && d.end <= cut)
        .map(|d| d.key.clone())
        .collect();
    corpus.delete_digests_and_logs(&history).unwrap();
    let s = checkpointed(corpus);
    let before = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_refused(&out, &last, &s.checkpoint, &before);
    assert!(
        out.stderr.contains("is not in the checkpoint"),
        "{}",
        out.stderr
    );
    let found = verdicts(&full(&s.whole));
    assert!(
        found
            .get(&format!("s3://acme-cloudtrail-logs/{last}"))
            .is_some_and(|v| v.iter().any(|(k, _)| k == "digest_missing")),
        "{found:#?}"
    );
}

/// A log file name of `region` delivered at `at`, in the day folder of that minute.
fn log_name_at(corpus: &Corpus, region: &str, at: Timestamp) -> String {
    let sibling = first_new_log(corpus, region);
    let (dir, name) = sibling.rsplit_once('/').unwrap();
    let parts: Vec<&str> = name.split('_').collect();
    let stamp = at.strftime("%Y%m%dT%H%MZ").to_string();
    // The day folder (`.../REGION/YYYY/MM/DD`).
    let region_dir = &dir[..dir.len() - "YYYY/MM/DD".len()];
    format!(
        "{region_dir}{}/{}_CloudTrail_{}_{stamp}_{}",
        at.strftime("%Y/%m/%d"),
        parts[0],
        parts[2],
        parts[4]
    )
}

/// Found by the red team: log files no digest names were looked for only from the
/// checkpoint's end (the newest chain's last digest), so a log file put into the other
/// Region's folder between that Region's last digest and the checkpoint's end was reported by
/// no run, where a full run reports it.
#[test]
fn a_log_put_between_a_regions_last_digest_and_the_checkpoints_end_is_found() {
    let corpus = world().build();
    let cut: Timestamp = CUT.parse().unwrap();
    let last = |region: &'static str| {
        let (_, before) = around(&corpus, region, cut);
        let end = corpus
            .digests()
            .iter()
            .find(|d| d.key == before)
            .unwrap()
            .end;
        (region, end)
    };
    let (mut earlier, mut later) = (last("us-east-1"), last("eu-west-1"));
    if earlier.1 > later.1 {
        std::mem::swap(&mut earlier, &mut later);
    }
    let (region, own_end) = earlier;
    // A minute after the Region's own last digest, before the checkpoint's end.
    let at = own_end
        .checked_add(jiff::SignedDuration::from_mins(1))
        .unwrap();
    assert!(
        at < later.1,
        "the two Regions' last digests end {own_end} and {}",
        later.1
    );
    let like = log_name_at(&corpus, region, at);
    let mut s = checkpointed(corpus);
    let injected = s.corpus.inject_log(&like).unwrap();
    s.corpus.write(&s.whole).unwrap();
    let subject = format!("s3://acme-cloudtrail-logs/{injected}");
    let unreferenced = |out: &Output| {
        verdicts(out)
            .get(&subject)
            .is_some_and(|v| v.iter().any(|(k, _)| k == "log_unreferenced"))
    };
    let full = full(&s.whole);
    assert!(unreferenced(&full), "{}", full.stdout);
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(unreferenced(&out), "{:#?}", verdicts(&out));
}

/// The checkpoint's last digest rewritten after the checkpoint (its successor still links to
/// the original): the run stops.
#[test]
fn the_last_digest_rewritten_after_the_checkpoint_stops_the_run() {
    let mut s = checkpointed(world().build());
    let (_, last) = around(&s.corpus, "us-east-1", CUT.parse().unwrap());
    // Still a digest, its metadata signature kept: one more space in its JSON.
    let object = s.corpus.objects.get_mut(&last).unwrap();
    let mut raw = trailproof_testgen::gunzip(&object.bytes).unwrap();
    raw.push(b' ');
    object.bytes = trailproof_testgen::gzip(&raw);
    s.corpus.write(&s.whole).unwrap();
    let before = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_refused(
        &out,
        "has changed since the checkpoint",
        &s.checkpoint,
        &before,
    );
}

/// The checkpoint's last digest deleted after the checkpoint: the run stops.
#[test]
fn the_last_digest_deleted_after_the_checkpoint_stops_the_run() {
    let mut s = checkpointed(world().build());
    let (_, last) = around(&s.corpus, "us-east-1", CUT.parse().unwrap());
    s.corpus.objects.remove(&last);
    if let Some(e) = s.corpus.evidence.as_mut() {
        e.remove(&last);
    }
    s.corpus.write(&s.whole).unwrap();
    let before = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_refused(
        &out,
        "but the digest before the new ones is",
        &s.checkpoint,
        &before,
    );
}

/// Any byte of the checkpoint changed (here its end moved a day on, to skip the second day):
/// the signature fails, the run stops, the file is left as it was.
#[test]
fn an_edited_checkpoint_stops_the_run() {
    use base64::Engine as _;
    let s = checkpointed(world().build());
    let envelope: Value = serde_json::from_slice(&std::fs::read(&s.checkpoint).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(envelope["payload"].as_str().unwrap()).unwrap())
        .unwrap()
        .replace("\"through\":\"2026-01-0", "\"through\":\"2026-01-1");
    let mut edited = envelope.clone();
    edited["payload"] = Value::String(b64.encode(payload));
    let mut bytes = serde_json::to_vec(&edited).unwrap();
    bytes.push(b'\n');
    std::fs::write(&s.checkpoint, &bytes).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_refused(&out, "does not verify", &s.checkpoint, &bytes);
}

/// A checkpoint signed with another key is refused under the signing key, and accepted only
/// when its key is given with --checkpoint-key.
#[test]
fn a_checkpoint_signed_by_another_key_needs_that_key() {
    let s = checkpointed(world().build());
    let before = std::fs::read(&s.checkpoint).unwrap();
    let other = repo().join("testdata/report-keys/p256.pem");
    let args = |key: &Path| {
        let mut args: Vec<String> = vec![
            "verify".into(),
            s.whole.join("bucket").display().to_string(),
            "--public-keys".into(),
            s.whole.join("public-keys.json").display().to_string(),
            "--checkpoint".into(),
            s.checkpoint.display().to_string(),
            "--sign-key".into(),
            key.display().to_string(),
        ];
        args.extend(["--format".into(), "json".into()]);
        args
    };
    let out = trailproof(&s.whole, &args(&other), &[]);
    assert_refused(&out, "does not verify", &s.checkpoint, &before);
    let mut with_key = args(&other);
    with_key.extend([
        "--checkpoint-key".into(),
        repo().join(PUB).display().to_string(),
    ]);
    let out = trailproof(&s.whole, &with_key, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A checkpoint of another bucket (same trail names, same times, same key) is refused.
#[test]
fn a_checkpoint_of_another_bucket_stops_the_run() {
    let s = checkpointed(world().build());
    let other = World::new("other-bucket")
        .regions(&["us-east-1", "eu-west-1"])
        .hours(36)
        .logs_per_hour(2)
        .records_per_log(1)
        .build();
    let (_g, other_case) = written(&other);
    let before = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&other_case, &s.checkpoint, &[]);
    assert_refused(
        &out,
        "is of bucket acme-cloudtrail-logs",
        &s.checkpoint,
        &before,
    );
}

/// A checkpoint of other filters (one Region only) is refused.
#[test]
fn a_checkpoint_of_other_filters_stops_the_run() {
    let s = checkpointed(world().build());
    let before = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&s.whole, &s.checkpoint, &["--region", "us-east-1"]);
    assert_refused(&out, "other filters", &s.checkpoint, &before);
}

/// An older genuine checkpoint put back in place of the newer one cannot skip anything: the
/// run goes on from where it says, and reports what was tampered with since.
#[test]
fn an_older_checkpoint_put_back_verifies_again_from_there() {
    let mut corpus = world().build();
    let tampered = first_new_log(&corpus, "eu-west-1");
    let s = checkpointed(corpus.clone());
    let older = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The log is changed after the second run; the attacker puts the first day's checkpoint
    // back, hoping the second day is taken as verified.
    corpus.modify_log(&tampered).unwrap();
    corpus.write(&s.whole).unwrap();
    std::fs::write(&s.checkpoint, &older).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let subject = format!("s3://acme-cloudtrail-logs/{tampered}");
    assert!(verdicts(&out)[&subject].iter().any(|(_, v)| v == "invalid"));
}

/// `verify` over the checkpoint with its report written to a full disk: the run verifies
/// everything, then cannot put its report out (exit 2), as a run killed after it was done
/// with every chain.
fn run_report_lost(s: &Setup) -> Option<i32> {
    std::process::Command::new(env!("CARGO_BIN_EXE_trailproof"))
        .args([
            "verify".as_ref(),
            s.whole.join("bucket").as_os_str(),
            "--public-keys".as_ref(),
            s.whole.join("public-keys.json").as_os_str(),
            "--checkpoint".as_ref(),
            s.checkpoint.as_os_str(),
            "--sign-key".as_ref(),
            repo().join(KEY).as_os_str(),
        ])
        .stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .code()
}

/// The standard chain of `region` in the checkpoint at `path`.
fn mark(path: &Path, region: &str) -> ChainMark {
    opened(path)
        .checkpoint()
        .chains
        .iter()
        .find(|c| c.chain.region == region && !c.chain.backfill)
        .unwrap()
        .clone()
}

/// A run that verified but could not put its report out (a crash between verification and
/// the checkpoint's write) leaves the chain it found a problem in as it was: the next run
/// verifies that chain's new digests again and says the problem, nothing is skipped. (The
/// chain it verified valid moved on as it finished: its findings say nothing a report must
/// carry.)
#[test]
fn a_run_whose_report_is_lost_does_not_move_the_chain_with_a_finding() {
    let mut corpus = world().build();
    let tampered = first_new_log(&corpus, "us-east-1");
    corpus.modify_log(&tampered).unwrap();
    let s = checkpointed(corpus);
    let before = mark(&s.checkpoint, "us-east-1");
    assert_eq!(run_report_lost(&s), Some(2));
    assert_eq!(mark(&s.checkpoint, "us-east-1").last, before.last);
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let subject = format!("s3://acme-cloudtrail-logs/{tampered}");
    assert!(verdicts(&out)[&subject].iter().any(|(_, v)| v == "invalid"));
    assert_ne!(mark(&s.checkpoint, "us-east-1").last, before.last);
}

/// A run stopped after it was done with some chains (here its report cannot be written)
/// leaves them checkpointed: the chain verified valid moved on, the one with a finding did
/// not, and `through` stays. The moved chain keeps where the search for log files no digest
/// names was left: the next run reads that chain's digests again for the names they list
/// (not hashing the files again) and searches its Region's folder from there. A log file put
/// in that stretch is reported, which no run would report if the search went on from the moved
/// chain's mark, and the genuine ones beside it are not; what the runs say is what one full
/// run says.
#[test]
fn a_stopped_run_leaves_its_finished_chains_checkpointed_and_the_next_searches_behind_them() {
    let mut corpus = world().build();
    let tampered = first_new_log(&corpus, "us-east-1");
    corpus.modify_log(&tampered).unwrap();
    let at: Timestamp = "2026-01-02T05:03:00Z".parse().unwrap();
    let like = log_name_at(&corpus, "eu-west-1", at);
    let mut s = checkpointed(corpus);
    let injected = s.corpus.inject_log(&like).unwrap();
    s.corpus.write(&s.whole).unwrap();
    let (eu, us) = (
        mark(&s.checkpoint, "eu-west-1"),
        mark(&s.checkpoint, "us-east-1"),
    );
    let through = opened(&s.checkpoint).checkpoint().through;

    assert_eq!(run_report_lost(&s), Some(2));
    let moved = mark(&s.checkpoint, "eu-west-1");
    assert_ne!(moved.last, eu.last);
    // Where the stopped run took the chain up: its last digest's key time.
    let taken_up = match parse_key(&eu.last.as_ref().unwrap().key) {
        Ok(CloudTrailKey::Digest(k)) => k.end_time,
        other => panic!("{other:?}"),
    };
    assert_eq!(moved.searched, Some(taken_up));
    assert!(taken_up < at);
    assert_eq!(mark(&s.checkpoint, "us-east-1").last, us.last);
    assert_eq!(mark(&s.checkpoint, "us-east-1").searched, None);
    assert_eq!(opened(&s.checkpoint).checkpoint().through, through);

    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let said = verdicts(&out);
    let unreferenced: Vec<&String> = said
        .iter()
        .filter(|(_, v)| v.iter().any(|(k, _)| k == "log_unreferenced"))
        .map(|(k, _)| k)
        .collect();
    let injected = format!("s3://acme-cloudtrail-logs/{injected}");
    assert_eq!(unreferenced, [&injected], "{said:#?}");
    let tampered = format!("s3://acme-cloudtrail-logs/{tampered}");
    assert!(said[&tampered].iter().any(|(_, v)| v == "invalid"));
    // The moved chain's log files were not hashed again.
    assert!(
        !said
            .keys()
            .any(|k| k.contains("/CloudTrail/eu-west-1/") && *k != injected),
        "{said:#?}"
    );
    let cp = opened(&s.checkpoint);
    assert!(cp.checkpoint().chains.iter().all(|c| c.searched.is_none()));
    assert_eq!(
        checkpoint_ledgers(&s.checkpoint),
        full_ledgers(&full(&s.whole))
    );
}

/// Per subject, the kinds said of it that are not `valid`.
fn problems(out: &Output) -> BTreeMap<String, Vec<String>> {
    verdicts(out)
        .into_iter()
        .filter_map(|(subject, said)| {
            let bad: Vec<String> = said
                .into_iter()
                .filter(|(_, v)| v != "valid")
                .map(|(k, _)| k)
                .collect();
            (!bad.is_empty()).then_some((subject, bad))
        })
        .collect()
}

/// Found by the red team: a digest of the stretch a stopped run left behind (read again by the
/// next run for the log files it names) that was copied in, deleted (with its log files) or
/// replaced by what is no file since passed unsaid. Each is now said as a full run says it.
/// (One S3 will not give: `a_run_killed_while_a_chain_is_in_flight_keeps_the_chains_it_finished`.)
#[test]
fn what_changed_in_a_stretch_read_again_is_said_as_a_full_run_says_it() {
    let cut: Timestamp = CUT.parse().unwrap();
    for change in ["not a file", "copied", "deleted"] {
        let mut corpus = world().build();
        let tampered = first_new_log(&corpus, "us-east-1");
        corpus.modify_log(&tampered).unwrap();
        let s = checkpointed(corpus);
        assert_eq!(run_report_lost(&s), Some(2), "{change}");
        assert!(mark(&s.checkpoint, "eu-west-1").searched.is_some());
        let stretch = s
            .corpus
            .digests()
            .iter()
            .find(|d| {
                d.key.contains("/eu-west-1/")
                    && !d.backfill
                    && d.end > cut + jiff::SignedDuration::from_hours(4)
            })
            .unwrap()
            .clone();
        let file = s.whole.join("bucket").join(&stretch.key);
        let bytes = std::fs::read(&file).unwrap();
        match change {
            "not a file" => {
                // A named pipe in its place: no bytes, no names (as a full run finds it).
                std::fs::remove_file(&file).unwrap();
                let made = std::process::Command::new("mkfifo").arg(&file).status();
                assert!(made.unwrap().success());
            }
            "copied" => {
                // Ten minutes later, in the same day folder.
                let (stem, time) = stretch.key.rsplit_once('T').unwrap();
                let minute: u32 = time[2..4].parse().unwrap();
                let moved = format!("{stem}T{}{:02}{}", &time[..2], minute + 10, &time[4..]);
                std::fs::write(s.whole.join("bucket").join(moved), &bytes).unwrap();
            }
            _ => {
                std::fs::remove_file(&file).unwrap();
                for log in &stretch.logs {
                    std::fs::remove_file(s.whole.join("bucket").join(log)).unwrap();
                }
            }
        }
        let out = run(&s.whole, &s.checkpoint, &[]);
        let all = full(&s.whole);
        assert_eq!(out.code, all.code, "{change}: {}", out.stderr);
        assert_eq!(problems(&out), problems(&all), "{change}");
        assert!(opened(&s.checkpoint)
            .checkpoint()
            .chains
            .iter()
            .all(|c| c.searched.is_none()));
    }
}

/// Flags that would let a checkpointed run skip or leave out part of the evidence.
#[test]
fn flags_that_contradict_the_checkpoint_stop_the_run() {
    let s = checkpointed(world().build());
    let before = std::fs::read(&s.checkpoint).unwrap();
    let out = run(
        &s.whole,
        &s.checkpoint,
        &["--end-time", "2026-01-02T06:00:00Z"],
    );
    assert_refused(&out, "--end-time cannot be used", &s.checkpoint, &before);
    let out = run(
        &s.whole,
        &s.checkpoint,
        &["--start-time", "2026-01-01T12:00:00Z"],
    );
    assert_refused(
        &out,
        "is not the checkpoint's start",
        &s.checkpoint,
        &before,
    );
    // Without a key to sign the next one, nothing runs.
    let args: Vec<String> = vec![
        "verify".into(),
        s.whole.join("bucket").display().to_string(),
        "--public-keys".into(),
        s.whole.join("public-keys.json").display().to_string(),
        "--checkpoint".into(),
        s.checkpoint.display().to_string(),
    ];
    let out = trailproof(&s.whole, &args, &[]);
    assert_refused(&out, "needs --sign-key", &s.checkpoint, &before);
    // Run again with nothing new: said, and nothing is written.
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = std::fs::read(&s.checkpoint).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_refused(
        &out,
        "no digest is newer than checkpoint",
        &s.checkpoint,
        &after,
    );
}

/// A chain that goes silent after the checkpoint (its new digests and log files deleted, or
/// logging stopped without a trace) while another goes on: its hours since are missing.
#[test]
fn a_chain_silent_since_the_checkpoint_has_missing_hours() {
    let mut s = checkpointed(world().build());
    let cut: Timestamp = CUT.parse().unwrap();
    let late = |d: &&trailproof_testgen::DigestInfo| d.end > cut && d.key.contains("/eu-west-1/");
    let gone: Vec<String> = s
        .corpus
        .digests()
        .iter()
        .filter(late)
        .map(|d| d.key.clone())
        .collect();
    let logs: Vec<String> = s
        .corpus
        .digests()
        .iter()
        .filter(late)
        .flat_map(|d| d.logs.clone())
        .collect();
    s.corpus.delete_digests_and_logs(&gone).unwrap();
    for key in gone.iter().chain(&logs) {
        if let Some(e) = s.corpus.evidence.as_mut() {
            e.remove(key);
        }
    }
    s.corpus.write(&s.whole).unwrap();
    let out = run(&s.whole, &s.checkpoint, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let missing = checkpoint_ledgers(&s.checkpoint)
        .into_iter()
        .find(|((_, region), _)| region == "eu-west-1")
        .unwrap()
        .1
        .missing;
    assert!(missing >= 11, "{missing}");
}

/// Found in review: the checkpoint was written after the JSONL summary, so a checkpoint that
/// could not be written (here: inside the evidence copy, which is never written to) left a
/// summary saying `"exit_code":0` from a run that exited 2. It is now written (not yet in
/// place) before the summary: the run stops first, and says nothing went well.
#[test]
fn a_checkpoint_that_cannot_be_written_leaves_no_summary_saying_all_went_well() {
    let (_g, case) = written(&world().build());
    let checkpoint = case.join("bucket").join("trailproof.checkpoint");
    let out = run_as("jsonl", &case, &checkpoint, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        !out.stdout.contains(r#""type":"summary""#),
        "{}",
        out.stdout.lines().last().unwrap_or_default()
    );
    assert!(!checkpoint.exists());
}

/// Found investigating daily runs over several Regions: a run ends where the newest digest of
/// any chain ends, so a log file of another Region delivered after that Region's newest digest
/// was named by no digest yet, and its `log_unreferenced` made the run exit 1 though nothing
/// was wrong (the Region's next digest names it). It is left to the next run, which looks for
/// log files no digest names from that Region's last digest on: there the genuine one is
/// valid, and one injected beside it at the same minute is reported.
#[test]
fn a_log_delivered_after_its_regions_newest_digest_at_the_ranges_end_waits_for_the_next_run() {
    let mut corpus = world().build();
    // A log file of eu-west-1 (digests end at :12:01) delivered before us-east-1's digest of
    // the hour ends (:28:28), more than three hours in.
    let start = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let (genuine, time) = corpus
        .digests()
        .iter()
        .filter(|d| d.key.contains("/eu-west-1/") && !d.backfill)
        .flat_map(|d| d.logs.iter())
        .filter_map(|log| {
            let stamp = log.rsplit('/').next()?.split('_').nth(3)?;
            let t = jiff::civil::DateTime::strptime("%Y%m%dT%H%MZ", stamp)
                .ok()?
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()?
                .timestamp();
            let minute = t.as_second() / 60 % 60;
            ((13..28).contains(&minute) && t > start + jiff::SignedDuration::from_hours(3))
                .then(|| (log.clone(), t))
        })
        .min_by_key(|(_, t)| *t)
        .expect("a log file between the two Regions' digests");
    let cut = Timestamp::from_second(time.as_second() - time.as_second() % 3600 + 30 * 60).unwrap();
    let injected = corpus.inject_log(&genuine).unwrap();
    let mut first_day = corpus_as_of(&corpus, cut);
    first_day
        .objects
        .insert(genuine.clone(), corpus.objects[&genuine].clone());
    let (_g1, first_dir) = written(&first_day);
    let (g2, whole) = written(&corpus);
    let checkpoint = g2.path().join("trailproof.checkpoint");
    let subject = |k: &str| format!("s3://acme-cloudtrail-logs/{k}");
    // A full run of the first copy says both are named by no digest.
    let full = full(&first_dir);
    for key in [&genuine, &injected] {
        assert!(verdicts(&full)[&subject(key)]
            .contains(&("log_unreferenced".into(), "not_verified".into())));
    }
    // Streamed as JSONL, the same (the batch of log files no digest names waits for the
    // chains' ends).
    let streamed = run_as(
        "jsonl",
        &first_dir,
        &g2.path().join("jsonl.checkpoint"),
        &[],
    );
    assert_eq!(streamed.code, 0, "{}", streamed.stdout);
    assert!(
        !streamed.stdout.contains(&subject(&injected)),
        "{}",
        streamed.stdout
    );
    let first = run(&first_dir, &checkpoint, &[]);
    assert_eq!(first.code, 0, "{}", first.stdout);
    let said = verdicts(&first);
    assert!(!said.contains_key(&subject(&genuine)) && !said.contains_key(&subject(&injected)));
    assert!(
        first.stdout.contains("2 log files no digest names yet"),
        "{}",
        first.stdout
    );
    let second = run(&whole, &checkpoint, &[]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    let said = verdicts(&second);
    assert_eq!(
        said[&subject(&genuine)],
        vec![("log_valid".to_owned(), "valid".to_owned())]
    );
    assert_eq!(
        said[&subject(&injected)],
        vec![("log_unreferenced".to_owned(), "not_verified".to_owned())]
    );
}
