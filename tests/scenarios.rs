//! Runs `trailproof verify` on every committed case in `testdata/cases/` and checks that it
//! reports exactly the findings, valid counts and exit status the case states.
//!
//! Each case directory holds `bucket/` (the copy), `public-keys.json` and `expected.json`
//! (written by `trailproof-testgen cases`, which knows what it tampered with).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{assert_report_matches, case_args, cases_dir, trailproof};

/// `trailproof verify bucket ARGS EXTRA` inside the case directory.
fn run(case: &Path, extra: &[&str]) -> support::Output {
    let mut args = vec!["verify".to_owned(), "bucket".to_owned()];
    args.extend(case_args(case));
    args.extend(extra.iter().map(|s| s.to_string()));
    trailproof(case, &args, &[])
}

fn check_case(name: &str) {
    check_dir(name, &cases_dir().join(name));
}

/// The README's sample: a tampered organization copy with its own expectations.
#[test]
fn readme_sample() {
    check_dir(
        "sample",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample"),
    );
}

/// The committed cases are exactly what the generator writes today.
#[test]
fn committed_cases_match_the_generator() {
    let out = tempfile::tempdir().unwrap();
    trailproof_testgen::write_cases(out.path(), &trailproof_testgen::all_cases()).unwrap();
    let mut differ = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(out.path().join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else if std::fs::read(e.path()).unwrap()
                != std::fs::read(cases_dir().join(&r)).unwrap_or_default()
            {
                differ.push(r);
            }
        }
    }
    assert!(
        differ.is_empty(),
        "regenerate with `cargo run -p trailproof-testgen -- cases testdata/cases`: {differ:?}"
    );
}

/// The plain text report counts valid log files without keeping their findings
/// (`omit_valid_logs`): its totals must be the full JSON report's.
fn assert_plain_text_totals(name: &str, case: &Path, json: &support::Output) {
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let text = run(case, &[]);
    assert_eq!(text.code, json.code, "{name}: plain text exit status");
    let total = text
        .stdout
        .split("Total for ")
        .nth(1)
        .unwrap_or_else(|| panic!("{name}: no grand total in\n{}", text.stdout));
    for object in ["digests", "logs"] {
        let t = &report["totals"][object];
        let (valid, all) = (
            t["valid"].as_u64().unwrap(),
            ["valid", "invalid", "not_verified"]
                .iter()
                .map(|k| t[k].as_u64().unwrap())
                .sum::<u64>(),
        );
        if all > 0 {
            let line = format!("{valid}/{all} {} files valid", &object[..object.len() - 1]);
            assert!(
                total.contains(&line),
                "{name}: plain text total lacks {line:?}:\n{total}"
            );
        }
    }
}

fn check_dir(name: &str, case: &Path) {
    let json = run(case, &["--format", "json"]);
    assert_report_matches(name, case, &json);
    assert_plain_text_totals(name, case, &json);
    let want = support::summarize(&serde_json::from_str(&json.stdout).unwrap()).0;

    // The text report agrees on the exit status and names every finding.
    let text = run(case, &["--verbose"]);
    assert_eq!(text.code, json.code, "{name}: text exit status");
    for (subject, _, _) in &want {
        assert!(
            text.stdout.contains(subject.as_str()),
            "{name}: text report does not mention {subject}"
        );
    }
    // The same report whatever the thread count, but for the run's own clock: it gets signed
    // and compared.
    let without_clock = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v.as_object_mut()
            .unwrap()
            .remove("run")
            .expect("a run object");
        serde_json::to_string_pretty(&v).unwrap()
    };
    for threads in ["1", "2", "8"] {
        let other = run(case, &["--format", "json", "--threads", threads]);
        assert_eq!(
            without_clock(&other.stdout),
            without_clock(&json.stdout),
            "{name}: report differs at {threads} threads"
        );
    }
}

/// A chain longer than one of the engine's batches (2,048 log files, each batch's digests read
/// again for their lists): findings on both sides of a batch boundary, in the JSON report
/// (every file kept) and the plain text one (valid files counted), at every thread count.
#[test]
fn a_chain_across_hashing_batches() {
    let mut corpus = trailproof_testgen::World::new("acme-cloudtrail-logs")
        .hours(48)
        .logs_per_hour(50)
        .records_per_log(1)
        .build();
    let logs: Vec<String> = corpus
        .objects
        .keys()
        .filter(|k| k.contains("/CloudTrail/"))
        .cloned()
        .collect();
    assert!(logs.len() > 2048, "{} log files", logs.len());
    // Keys sort by time and the newest digests are hashed first.
    let (newest, middle, oldest) = (&logs[logs.len() - 3], &logs[logs.len() / 2], &logs[2]);
    corpus.modify_log(newest).unwrap();
    corpus.delete_log(middle).unwrap();
    corpus.modify_log(oldest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    corpus.write(dir.path()).unwrap();
    check_dir("batches", dir.path());
}

/// Every case directory must have a test below, so none is silently skipped.
#[test]
fn every_case_has_a_test() {
    let listed: Vec<&str> = CASES.to_vec();
    let on_disk = support::case_names();
    let mut listed_sorted: Vec<String> = listed.iter().map(|s| s.replace('_', "-")).collect();
    listed_sorted.sort();
    assert_eq!(
        listed_sorted, on_disk,
        "tests/scenarios.rs CASES must list every testdata/cases/*"
    );
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check_case(&stringify!($name).replace('_', "-"));
            }
        )*
    };
}

cases! {
    attacker_signed,
    clean_backfill,
    clean_empty_hours,
    clean_key_rotation,
    clean_org,
    clean_plain,
    clean_plain_nometa,
    clean_plain_nometa_head_sig,
    clean_prefix,
    coverage_end,
    coverage_start,
    digest_bad_algorithm,
    digest_copied,
    digest_deleted,
    digest_deleted_two,
    digest_modified,
    digest_not_gzip,
    key_unknown,
    link_hash_mismatch,
    link_signature_mismatch,
    log_appended,
    log_deleted,
    log_injected,
    log_modified,
    log_not_gzip,
    log_replaced,
    log_truncated,
    log_truncated_trailer,
    restart_gap,
    newest_deleted_end_exact,
    deleted_after_end,
    range_emptied,
    tail_deleted,
    hole_next_unverifiable,
    digest_copied_with_logs,
}

/// Copies a committed case into a temporary directory to be damaged further.
fn scratch_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(cases_dir().join(name))
        .arg(dir.path().join("case"))
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn json_findings(out: &support::Output) -> Vec<support::Triple> {
    support::summarize(
        &serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr)),
    )
    .0
}

#[test]
fn a_log_file_symlinked_out_of_the_evidence_is_a_finding_not_a_read() {
    let dir = scratch_copy("clean-plain");
    let case = dir.path().join("case");
    let secret = dir.path().join("outside.json.gz");
    let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01";
    let log = std::fs::read_dir(case.join("bucket").join(key))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&log, &secret).unwrap();
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    let out = run(&case, &["--format", "json"]);
    let subject = format!(
        "s3://acme-cloudtrail-logs/{key}/{}",
        log.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(
        json_findings(&out),
        vec![(subject, "path_escape".into(), "invalid".into())]
    );
    assert_eq!(out.code, 1);
    // It is a log file, counted as one (the red team found it counted as a digest).
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["totals"]["digests"]["valid"], 6);
    assert_eq!(report["totals"]["digests"]["invalid"], 0);
    assert_eq!(report["totals"]["logs"]["invalid"], 1);
    assert_eq!(report["totals"]["logs"]["valid"], 11);
}

#[test]
fn a_key_outside_its_validity_window_does_not_verify() {
    let dir = scratch_copy("clean-plain");
    let case = dir.path().join("case");
    let path = case.join("public-keys.json");
    let mut keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for k in keys["PublicKeyList"].as_array_mut().unwrap() {
        // Valid for a day, a year before the digests.
        k["ValidityStartTime"] = 1_704_067_200.into();
        k["ValidityEndTime"] = 1_704_153_600.into();
    }
    std::fs::write(&path, serde_json::to_vec(&keys).unwrap()).unwrap();
    let out = run(&case, &["--format", "json"]);
    let found = json_findings(&out);
    let digests: Vec<_> = found
        .iter()
        .filter(|f| f.1.starts_with("digest_"))
        .collect();
    assert_eq!(digests.len(), 6, "{found:#?}");
    assert!(digests
        .iter()
        .all(|f| f.1 == "digest_key_not_valid" && f.2 == "invalid"));
    assert!(found
        .iter()
        .filter(|f| f.1.starts_with("log_"))
        .all(|f| f.1 == "log_unverifiable"));
    assert_eq!(out.code, 1);
}

#[test]
fn a_key_file_with_a_wrong_fingerprint_stops_the_run() {
    let dir = scratch_copy("clean-plain");
    let case = dir.path().join("case");
    let path = case.join("public-keys.json");
    let mut keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    keys["PublicKeyList"][0]["Fingerprint"] = "0".repeat(32).into();
    std::fs::write(&path, serde_json::to_vec(&keys).unwrap()).unwrap();
    let out = run(&case, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("does not match the key"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

/// Every case of the adversarial corpus gives exactly its stated verdicts (one test, so a
/// failure lists every case that broke).
#[test]
fn adversarial_corpus() {
    let root = support::repo().join("testdata/adversarial");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.len() >= 40,
        "the adversarial corpus has {} cases",
        names.len()
    );
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let case = root.join(name);
            std::panic::catch_unwind(|| {
                let json = run(&case, &["--format", "json"]);
                assert_report_matches(name, &case, &json);
                assert_plain_text_totals(name, &case, &json);
            })
            .err()
            .map(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| name.clone())
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} adversarial cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn adversarial_corpus_matches_the_generator() {
    let out = tempfile::tempdir().unwrap();
    trailproof_testgen::write_cases(out.path(), &trailproof_testgen::adversarial_cases()).unwrap();
    let diff = Command::new("diff")
        .arg("-r")
        .arg("-q")
        .arg(out.path())
        .arg(support::repo().join("testdata/adversarial"))
        .output()
        .unwrap();
    assert!(diff.status.success(), "regenerate with `cargo run -p trailproof-testgen -- adversarial testdata/adversarial`:\n{}", String::from_utf8_lossy(&diff.stdout));
}

/// A log file that inflates to 1 GiB (from about 1 MB) is stopped by the inflate budget with
/// a "not verified" finding, quickly and in constant memory.
#[test]
fn a_one_gigabyte_gzip_bomb_stays_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(support::repo().join("testdata/adversarial/gz-bomb-ratio"))
        .arg(dir.path().join("case"))
        .status()
        .unwrap();
    assert!(status.success());
    let case = dir.path().join("case");
    let expected = support::expected(&case);
    let bomb = expected["findings"][0]["subject"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://acme-cloudtrail-logs/");
    let path = case.join("bucket").join(bomb);
    // Python's zlib writes the gigabyte of zeros in about a second.
    let made = Command::new("python3")
        .arg("-c")
        .arg("import gzip,sys\nwith gzip.open(sys.argv[1],'wb',compresslevel=1) as f:\n  z=bytes(1<<20)\n  for _ in range(1024): f.write(z)")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(std::fs::metadata(&path).unwrap().len() < 8 << 20);

    // Peak memory of the child, measured by the kernel (ru_maxrss, KiB).
    let mut args = vec![
        env!("CARGO_BIN_EXE_trailproof").to_owned(),
        "verify".into(),
        "bucket".into(),
    ];
    args.extend(support::case_args(&case));
    args.extend(["--format".into(), "json".into()]);
    let out = Command::new("python3")
        .arg("-c")
        .arg("import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:],capture_output=True)\nsys.stdout.write(r.stdout.decode())\nsys.stderr.write('RSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)")
        .args(&args)
        .current_dir(&case)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let rss_kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("RSS "))
        .unwrap()
        .parse()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (found, _, _) = support::summarize(&report);
    assert_eq!(
        found,
        vec![(
            format!("s3://acme-cloudtrail-logs/{bomb}"),
            "log_budget_exceeded".into(),
            "not_verified".into()
        )]
    );
    assert!(
        rss_kib < 100 * 1024,
        "peak RSS {rss_kib} KiB for a 1 GiB bomb"
    );
}

/// The backfill digest of `clean-backfill` and its evidence-metadata record.
fn backfill_record(case: &Path) -> (String, serde_json::Value) {
    let evidence: serde_json::Value = serde_json::from_slice(
        &std::fs::read(case.join("bucket/trailproof-evidence.json")).unwrap(),
    )
    .unwrap();
    evidence["objects"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with("_backfill.json.gz"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap()
}

/// Rewrites the backfill digest's S3 metadata in the evidence-metadata file.
fn set_backfill_metadata(
    case: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let path = case.join("bucket/trailproof-evidence.json");
    let mut evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let (key, _) = backfill_record(case);
    edit(
        evidence["objects"][&key]["metadata"]
            .as_object_mut()
            .unwrap(),
    );
    std::fs::write(&path, serde_json::to_vec(&evidence).unwrap()).unwrap();
}

/// Every key of the case valid only in December 2025, a month before the digests.
fn expire_keys(case: &Path) {
    let path = case.join("public-keys.json");
    let mut keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for k in keys["PublicKeyList"].as_array_mut().unwrap() {
        k["ValidityStartTime"] = "2025-12-01T00:00:00Z".into();
        k["ValidityEndTime"] = "2025-12-31T00:00:00Z".into();
    }
    std::fs::write(&path, serde_json::to_vec(&keys).unwrap()).unwrap();
}

/// The one finding about `key` in a JSON report (the valid one included).
fn finding_on(out: &support::Output, key: &str) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    let subject = format!("s3://acme-cloudtrail-logs/{key}");
    let found: Vec<serde_json::Value> = report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .filter(|f| f["subject"] == subject.as_str())
        .cloned()
        .collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().unwrap()
}

/// A valid backfill verdict says it relied on the unsigned generation time (JSON evidence).
#[test]
fn a_valid_backfill_digest_names_the_generation_time_it_relied_on() {
    let case = cases_dir().join("clean-backfill");
    let (key, record) = backfill_record(&case);
    let out = run(&case, &["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = finding_on(&out, &key);
    assert_eq!(f["kind"], "digest_valid");
    let at = &f["evidence"]["signing_time"];
    assert_eq!(at["basis"], "backfill_generation_timestamp");
    assert_eq!(
        at["earliest"],
        record["metadata"]["backfill-generation-timestamp"]
    );
}

/// A plain copy has no generation time: the key's window used to go unchecked, so a key that
/// expired before the digest's hour vouched for it. Now the key must be valid at some time
/// from the digest's end to the documented bound after it.
#[test]
fn a_backfill_digest_of_a_plain_copy_is_checked_against_its_key_window() {
    let dir = scratch_copy("clean-backfill");
    let case = dir.path().join("case");
    let (key, record) = backfill_record(&case);
    std::fs::remove_file(case.join("bucket/trailproof-evidence.json")).unwrap();
    let head = format!(
        "{key}={}",
        record["metadata"]["signature"].as_str().unwrap()
    );
    let out = run(&case, &["--format", "json", "--head-signature", &head]);
    let f = finding_on(&out, &key);
    assert_eq!(f["kind"], "digest_valid", "{f:#}");
    assert_eq!(f["evidence"]["signing_time"]["basis"], "backfill_bound");

    expire_keys(&case);
    let out = run(&case, &["--format", "json", "--head-signature", &head]);
    let f = finding_on(&out, &key);
    assert_eq!(f["kind"], "digest_key_not_valid", "{f:#}");
    assert_eq!(f["verdict"], "invalid");
    assert_eq!(f["evidence"]["signing_time"]["basis"], "backfill_bound");
    assert_eq!(out.code, 1);
}

/// Evidence metadata is unsigned: a generation time stated inside an expired key's window,
/// before the digest's own end, must not make that key vouch for the digest.
#[test]
fn a_generation_time_before_the_digest_end_does_not_bring_back_an_expired_key() {
    let dir = scratch_copy("clean-backfill");
    let case = dir.path().join("case");
    let (key, _) = backfill_record(&case);
    expire_keys(&case);
    set_backfill_metadata(&case, |m| {
        m.insert(
            "backfill-generation-timestamp".into(),
            "2025-12-15T00:00:00Z".into(),
        );
    });
    let out = run(&case, &["--format", "json"]);
    let f = finding_on(&out, &key);
    assert_eq!(f["kind"], "digest_format", "{f:#}");
    assert_eq!(f["reason"], "invalid format");
    assert!(f["evidence"]["detail"]
        .as_str()
        .unwrap()
        .contains("precedes the digest's end"));
    assert_eq!(out.code, 1);
}

/// CloudTrail writes the generation time with the signature of every backfill digest: S3
/// metadata with the signature and without it was rewritten. `verify` calls the digest
/// invalid, as `aws cloudtrail validate-logs` does ("invalid format"), and vouches for none
/// of its log files.
#[test]
fn rewritten_backfill_metadata_is_invalid_not_silently_valid() {
    let dir = scratch_copy("clean-backfill");
    let case = dir.path().join("case");
    let (key, _) = backfill_record(&case);
    set_backfill_metadata(&case, |m| {
        m.remove("backfill-generation-timestamp");
    });
    let out = run(&case, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let f = finding_on(&out, &key);
    assert_eq!(
        (&f["kind"], &f["reason"]),
        (&"digest_format".into(), &"invalid format".into())
    );
    assert!(f["evidence"]["detail"]
        .as_str()
        .unwrap()
        .contains("rewritten"));
    let found = json_findings(&out);
    assert!(
        found.iter().any(|f| f.1 == "log_unverifiable"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|f| f.1 == "log_unverifiable" || f.0.ends_with(&key)),
        "{found:#?}"
    );
    let text = run(&case, &[]);
    assert!(
        text.stdout
            .contains(&format!("{key}\tINVALID: invalid format")),
        "{}",
        text.stdout
    );
}

/// `--trail` with a name no digest has, on an intact copy, used to verify nothing and exit 0.
/// Every filter value that selects nothing is an error naming it, even beside one that does.
#[test]
fn a_filter_value_that_matches_nothing_is_an_error_naming_it() {
    let case = cases_dir().join("clean-plain");
    for (extra, named) in [
        (
            &["--trail", "management-trial"][..],
            "--trail management-trial",
        ),
        (
            &["--trail", "management-trail", "--trail", "x"][..],
            "--trail x",
        ),
        (
            &["--region", "us-east-1", "--region", "us-east-9"][..],
            "--region us-east-9",
        ),
        (
            &["--account-id", "111122223334"][..],
            "--account-id 111122223334",
        ),
    ] {
        for format in ["text", "json"] {
            let mut args = vec!["--format", format];
            args.extend_from_slice(extra);
            let out = run(&case, &args);
            assert_eq!(out.code, 2, "{extra:?}: {}", out.stdout);
            assert!(out.stderr.contains(named), "{extra:?}: {}", out.stderr);
            assert!(out.stdout.is_empty(), "{extra:?}: {}", out.stdout);
        }
    }
    let out = run(
        &case,
        &["--trail", "management-trail", "--region", "us-east-1"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// An account whose only CloudTrail files are log files (validation off) is not a typo: its
/// filter matches them, and they are reported as no digest vouches for them.
#[test]
fn an_account_with_only_log_files_matches_its_filter() {
    let dir = scratch_copy("clean-org");
    let case = dir.path().join("case");
    std::fs::remove_dir_all(
        case.join("bucket/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail-Digest"),
    )
    .unwrap();
    // A copy that never had them: its evidence-metadata file would not record them (a digest
    // it records and the copy lacks is missing).
    std::fs::remove_file(case.join("bucket/trailproof-evidence.json")).unwrap();
    let out = run(&case, &["--format", "json", "--account-id", "444455556666"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let found = json_findings(&out);
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|f| f.1 == "log_unreferenced"),
        "{found:#?}"
    );
}

/// Issue 10, case 5: every digest of the range deleted with its log files used to print nothing
/// in text mode and exit 0. The hole is named, the ledger says every hour is missing, and the
/// result line says what kind of problem it is.
#[test]
fn a_range_emptied_of_evidence_is_named_in_text_mode() {
    let case = cases_dir().join("range-emptied");
    let out = run(&case, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("INVALID: not found"), "{}", out.stdout);
    let ledger = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ledger: "))
        .unwrap_or_else(|| panic!("no ledger line:\n{}", out.stdout));
    assert!(
        ledger.starts_with("ledger: 0 verified, 0 verified-empty, 0 gap, ")
            && !ledger.contains(", 0 missing"),
        "{ledger}"
    );
    assert!(
        out.stdout
            .contains("RESULT: integrity findings: missing evidence"),
        "{}",
        out.stdout
    );
}

/// Log files whose digest was deleted are not "injected": their reason names the hole and the
/// digest whose link names the missing one.
#[test]
fn log_files_of_a_deleted_digest_say_their_digest_is_missing() {
    let json = run(&cases_dir().join("digest-deleted"), &["--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let orphans: Vec<&serde_json::Value> = report["unchained"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "log_unreferenced")
        .collect();
    assert!(!orphans.is_empty());
    for f in &orphans {
        let reason = f["reason"].as_str().unwrap();
        assert!(
            reason.contains("inside a hole of its chain") && reason.contains("is missing"),
            "{reason}"
        );
        assert!(f["evidence"]["named_by"].is_string(), "{f}");
    }
    let json = run(&cases_dir().join("log-injected"), &["--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let reason = report["unchained"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("injected"), "{reason}");
}

/// Issue 10 E: the ledger of a clean copy proves every hour, in text and JSON alike, and adds
/// up to chains x hours of the range.
#[test]
fn the_ledger_of_a_clean_copy_proves_every_hour_in_every_output() {
    let case = cases_dir().join("clean-plain");
    let json = run(&case, &["--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stdout);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let total = &report["ledger"];
    let chains = report["chains"].as_array().unwrap();
    assert_eq!(total["chains"], chains.len());
    let per_chain = chains[0]["ledger"]["hours"].as_u64().unwrap();
    assert!(per_chain > 0);
    assert_eq!(
        total["hours"].as_u64().unwrap(),
        per_chain * chains.len() as u64
    );
    assert_eq!(total["counts"]["verified"], total["hours"]);
    let text = run(&case, &[]);
    assert!(
        text.stdout.contains(&format!(
            "ledger: {} verified, 0 verified-empty, 0 gap, 0 missing, 0 invalid, 0 not-verified of {} hours",
            total["hours"], total["hours"]
        )),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("every hour of the range is proven"));
}
