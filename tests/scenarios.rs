//! Runs `trailproof verify` on every committed case in `testdata/cases/` and checks that it
//! reports exactly the findings, valid counts and exit status the case states.
//!
//! Each case directory holds `bucket/` (the copy), `public-keys.json` and `expected.json`
//! (written by `trailproof-testgen cases`, which knows what it tampered with).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases")
}

fn run(case: &Path, extra: &[&str]) -> (i32, String, String) {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailproof"));
    cmd.current_dir(case).arg("verify").arg("bucket");
    for a in expected["args"].as_array().unwrap() {
        cmd.arg(a.as_str().unwrap());
    }
    cmd.args(extra);
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// (subject, kind, verdict) of every finding that is not valid, plus valid counts.
fn summarize(report: &Value) -> (Vec<(String, String, String)>, usize, usize) {
    let mut findings: Vec<&Value> = Vec::new();
    for chain in report["chains"].as_array().unwrap() {
        findings.extend(chain["findings"].as_array().unwrap());
    }
    findings.extend(report["unchained"].as_array().unwrap());
    let s = |f: &Value, k: &str| f[k].as_str().unwrap().to_owned();
    let mut bad: Vec<_> = findings
        .iter()
        .filter(|f| f["verdict"] != "valid")
        .map(|f| (s(f, "subject"), s(f, "kind"), s(f, "verdict")))
        .collect();
    bad.sort();
    let count = |kind: &str| findings.iter().filter(|f| f["kind"] == kind).count();
    (bad, count("digest_valid"), count("log_valid"))
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
    let status = Command::new(env!("CARGO_BIN_EXE_trailproof-testgen"))
        .arg("cases")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
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
        "regenerate with `cargo run --bin trailproof-testgen -- cases testdata/cases`: {differ:?}"
    );
}

fn check_dir(name: &str, case: &Path) {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    let (code, stdout, stderr) = run(case, &["--format", "json"]);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{name}: no JSON report ({e}); stderr: {stderr}"));
    let (got, valid_digests, valid_logs) = summarize(&report);
    let mut want: Vec<(String, String, String)> = expected["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_owned();
            (s("subject"), s("kind"), s("verdict"))
        })
        .collect();
    want.sort();
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: {}\n  expected but not reported: {missing:#?}\n  reported but not expected: {extra:#?}",
        expected["description"]
    );
    assert_eq!(
        (valid_digests, valid_logs),
        (
            expected["valid"]["digests"].as_u64().unwrap() as usize,
            expected["valid"]["logs"].as_u64().unwrap() as usize
        ),
        "{name}: valid (digests, logs)"
    );
    assert_eq!(
        code,
        expected["exit_code"].as_i64().unwrap() as i32,
        "{name}: exit status; stderr: {stderr}"
    );
    assert_eq!(
        report["exit_code"].as_i64().unwrap() as i32,
        code,
        "{name}: exit_code field"
    );

    // The text report agrees on the exit status and names every finding.
    let (text_code, text, _) = run(case, &["--verbose"]);
    assert_eq!(text_code, code, "{name}: text exit status");
    for (subject, _, _) in &want {
        assert!(
            text.contains(subject.as_str()),
            "{name}: text report does not mention {subject}"
        );
    }
    // Same report whatever the thread count, but for the run's own clock.
    let (_, one_thread, _) = run(case, &["--format", "json", "--threads", "1"]);
    let without_clock = |text: &str| {
        let mut v: Value = serde_json::from_str(text).unwrap();
        v.as_object_mut()
            .unwrap()
            .remove("run")
            .expect("a run object");
        serde_json::to_string_pretty(&v).unwrap()
    };
    assert_eq!(
        without_clock(&one_thread),
        without_clock(&stdout),
        "{name}: report differs at 1 thread"
    );
}

/// Every case directory must have a test below, so none is silently skipped.
#[test]
fn every_case_has_a_test() {
    let listed: Vec<&str> = CASES.to_vec();
    let mut on_disk: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| cases_dir().join(n).join("expected.json").exists())
        .collect();
    on_disk.sort();
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
}
