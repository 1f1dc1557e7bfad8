//! Hostile evidence copies that the committed corpora cannot hold (FIFOs, devices, sparse files,
//! links, names that are not UTF-8) or that are too large to commit, each built from a generated
//! corpus and damaged on disk the way an attacker would: none may panic, hang, exhaust memory
//! or come out valid.

mod support;
use support::written;

use std::path::Path;
use std::process::Command;

use trailproof_testgen::{Corpus, World};

const BUCKET: &str = "acme-cloudtrail-logs";
const DAY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01";
const DIGEST_DAY: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01";

/// The corpus every test starts from: one account, three hours of two log files each.
fn world() -> World {
    World::new(BUCKET)
        .regions(&["us-east-1"])
        .hours(3)
        .logs_per_hour(2)
        .records_per_log(3)
        .seed(0x4057)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// (subject, kind, verdict) of every finding that is not valid.
    fn findings(&self) -> Vec<support::Triple> {
        let report: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: exit {}, {}", self.code, self.stderr));
        support::summarize(&report).0
    }

    fn has(&self, subject: &str, kind: &str) -> bool {
        self.findings()
            .iter()
            .any(|(s, k, _)| s == &format!("s3://{BUCKET}/{subject}") && k == kind)
    }
}

/// `trailproof verify bucket ARGS --format json` in `case`, ended after two minutes: a hang is
/// a failure (exit 124), not a test that never ends.
fn verify(case: &Path, args: &[&str]) -> Run {
    let out = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_trailproof"))
        .args(["verify", "bucket", "--public-keys", "public-keys.json"])
        .args(args)
        .args(["--format", "json"])
        .current_dir(case)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert_ne!(run.code, 124, "timed out: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// The range the corpus was built for.
fn range_args(corpus: &Corpus) -> Vec<String> {
    let iso = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    vec![
        "--start-time".into(),
        iso(corpus.start),
        "--end-time".into(),
        iso(corpus.end),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The first log file of the middle digest, and that digest.
fn middle(corpus: &Corpus) -> (String, String) {
    let d = &corpus.digests()[1];
    (d.logs[0].clone(), d.key.clone())
}

fn mkfifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn a_digest_named_for_the_end_of_time_is_a_finding_not_a_panic() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let key = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/9999/12/30/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_99991230T215959Z.json.gz";
    let path = case.join("bucket").join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"").unwrap();
    // A range to the end of time holds it.
    let mut args = range_args(&corpus);
    args[3] = "9999-12-30T21:59:59Z".into();
    let run = verify(&case, &strs(&args));
    assert!(run.has(key, "digest_format"), "{:?}", run.findings());
    assert_eq!(run.code, 1);
    // A range taken from the evidence stops at the run's clock: the digest, named for a time
    // CloudTrail cannot have delivered it by, is said without taking part in the chain.
    let run = verify(&case, &[]);
    assert!(run.has(key, "digest_unrecognised"), "{:?}", run.findings());
    assert_eq!(run.code, 1);
}

#[test]
fn a_backfill_generation_time_at_either_end_of_time_is_a_finding_not_a_panic() {
    let corpus = world().backfill_hours(&[0]).build();
    let backfill = corpus
        .digests()
        .iter()
        .find(|d| d.backfill)
        .unwrap()
        .key
        .clone();
    for time in ["9999-12-30T21:30:00Z", "-009999-01-02T01:59:59Z"] {
        let mut c = corpus.clone();
        for metadata in [
            &mut c.objects.get_mut(&backfill).unwrap().metadata,
            &mut c
                .evidence
                .as_mut()
                .unwrap()
                .get_mut(&backfill)
                .unwrap()
                .metadata,
        ] {
            metadata.insert("backfill-generation-timestamp".into(), time.into());
        }
        let (_dir, case) = written(&c);
        let run = verify(&case, &strs(&range_args(&c)));
        assert!(
            run.findings()
                .iter()
                .any(|(s, _, v)| s.ends_with(&backfill) && v == "invalid"),
            "{time}: {:?}",
            run.findings()
        );
        assert_eq!(run.code, 1, "{time}");
    }
}

#[test]
fn an_end_time_at_the_end_of_time_is_not_a_panic() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let start = range_args(&corpus)[1].clone();
    for end in ["9999-12-30T21:00:00Z", "9999-12-30T21:59:59Z"] {
        let run = verify(&case, &["--start-time", &start, "--end-time", end]);
        // Nothing covers the range's end.
        assert_eq!(run.code, 1, "{end}: {}", run.stderr);
    }
}

#[test]
fn a_fifo_in_place_of_a_log_or_a_digest_is_invalid_not_a_hang() {
    let corpus = world().build();
    let (log, digest) = middle(&corpus);
    let (_dir, case) = written(&corpus);
    mkfifo(&case.join("bucket").join(&log));
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert_eq!(
        run.findings(),
        vec![(
            format!("s3://{BUCKET}/{log}"),
            "log_format".into(),
            "invalid".into()
        )]
    );
    assert_eq!(run.code, 1);

    // The digest that names it: its log files are then named by nothing.
    mkfifo(&case.join("bucket").join(&digest));
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert!(run.has(&digest, "digest_format"), "{:?}", run.findings());
    assert_eq!(run.code, 1);
}

#[test]
fn a_fifo_or_a_link_out_in_place_of_the_evidence_metadata_file_is_not_read() {
    let corpus = world().build();
    let (dir, case) = written(&corpus);
    let meta = case.join("bucket/trailproof-evidence.json");
    mkfifo(&meta);
    let run = verify(&case, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);

    // A copy of the real file outside the directory, naming another bucket: never read.
    std::fs::remove_file(&meta).unwrap();
    let outside = dir.path().join("elsewhere.json");
    std::fs::write(
        &outside,
        br#"{"format":"trailproof-evidence/1","bucket":"attacker-bucket","objects":{}}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, &meta).unwrap();
    let run = verify(&case, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("leads out of the evidence directory"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("attacker-bucket"));
}

/// As a tar extracted by root creates: `/dev/zero` reads forever. Needs root for `mknod`.
#[test]
fn a_character_device_in_place_of_a_log_is_invalid_not_read() {
    let corpus = world().build();
    let (log, _) = middle(&corpus);
    let (_dir, case) = written(&corpus);
    let path = case.join("bucket").join(&log);
    std::fs::remove_file(&path).unwrap();
    let made = Command::new("mknod")
        .arg(&path)
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    if !made.success() {
        eprintln!("skipped: mknod needs root");
        return;
    }
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert_eq!(
        run.findings(),
        vec![(
            format!("s3://{BUCKET}/{log}"),
            "log_format".into(),
            "invalid".into()
        )]
    );
    assert_eq!(run.code, 1);
}

/// A valid gzip member followed by a sparse tail (no disk used) took 35 s per 16 GiB to be
/// called trailing data. The tail here is 1 TiB: read to its end, it would time out.
#[test]
fn a_log_with_a_huge_sparse_tail_is_trailing_data_without_reading_the_tail() {
    let corpus = world().build();
    let (log, _) = middle(&corpus);
    let (_dir, case) = written(&corpus);
    let path = case.join("bucket").join(&log);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(file.metadata().unwrap().len() + (1 << 40))
        .unwrap();
    drop(file);
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert_eq!(
        run.findings(),
        vec![(
            format!("s3://{BUCKET}/{log}"),
            "log_trailing_data".into(),
            "invalid".into()
        )]
    );
    // Counted exactly, as a full read would.
    assert!(
        run.stdout.contains("(1099511627776 bytes)"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 1);
}

/// Unsigned junk digests that fail the strict parse but list hundreds of thousands of log
/// files were read into a JSON tree (3.1 GiB for one digest of 61 MiB): memory now stays far
/// below the inflated size of all of them together, and each names at most 10,000 log files.
#[test]
fn junk_digests_listing_huge_log_lists_stay_within_a_memory_budget() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let entries = 400_000;
    let mut json = String::from("{\"logFiles\":[");
    for i in 0..entries {
        json.push_str(&format!(
            "{{\"s3Bucket\":\"b\",\"s3Object\":\"{}\"}},",
            (b'a' + (i % 16) as u8) as char
        ));
    }
    json.push_str("{}]}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, json.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let junk: Vec<String> = corpus.digests().iter().map(|d| d.key.clone()).collect();
    for key in &junk {
        std::fs::write(case.join("bucket").join(key), &gz).unwrap();
    }
    let inflated_total = junk.len() * json.len();

    // Peak memory of the child, measured by the kernel (ru_maxrss, KiB).
    let out = Command::new("python3")
        .arg("-c")
        .arg("import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:],capture_output=True)\nsys.stdout.write(r.stdout.decode())\nsys.stderr.write('RSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)")
        .arg(env!("CARGO_BIN_EXE_trailproof"))
        .args(["verify", "bucket", "--public-keys", "public-keys.json"])
        .args(range_args(&corpus))
        .args(["--format", "json"])
        .current_dir(&case)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let rss_kib: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("RSS "))
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "peak RSS {rss_kib} KiB for {} junk digests of {} bytes inflated",
        junk.len(),
        json.len()
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (found, valid_digests, valid_logs) = support::summarize(&report);
    assert_eq!((valid_digests, valid_logs), (0, 0));
    assert_eq!(out.status.code(), Some(1));
    for key in &junk {
        assert!(found
            .iter()
            .any(|(s, k, _)| s.ends_with(key.as_str()) && k == "digest_format"));
    }
    // Each junk digest names at most 10,000 log files (all the same 16 here), and every
    // genuine log file is now named by nothing.
    assert!(found.len() <= junk.len() * 17 + 6, "{}", found.len());
    assert!(
        rss_kib * 1024 < inflated_total,
        "peak RSS {rss_kib} KiB for {} junk digests of {} bytes inflated",
        junk.len(),
        json.len()
    );
}

#[test]
fn a_log_injected_through_a_day_folder_linked_out_of_the_copy_is_a_finding() {
    let corpus = world().build();
    let (dir, case) = written(&corpus);
    let day = case.join("bucket").join(DAY);
    let outside = dir.path().join("outside-day");
    std::fs::rename(&day, &outside).unwrap();
    let first = std::fs::read_dir(&outside)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(
        first,
        outside.join("111122223333_CloudTrail_us-east-1_20260101T0130Z_InjectedInjected.json.gz"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, &day).unwrap();
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert!(
        run.has(&format!("{DAY}/"), "path_escape"),
        "{:?}",
        run.findings()
    );
    // What the digests name there is not read either.
    let (log, _) = middle(&corpus);
    assert!(run.has(&log, "path_escape"));
    assert_eq!(run.code, 1);
}

#[test]
fn a_link_to_a_folder_inside_the_copy_is_a_finding() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let link = "AWSLogs/111122223333/CloudTrail/us-west-2";
    std::os::unix::fs::symlink("us-east-1", case.join("bucket").join(link)).unwrap();
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert_eq!(
        run.findings(),
        vec![(
            format!("s3://{BUCKET}/{link}/"),
            "log_unrecognised".into(),
            "invalid".into()
        )]
    );
    assert_eq!(run.code, 1);
}

#[test]
fn files_cloudtrail_never_writes_in_its_folders_are_findings() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let bucket = case.join("bucket");
    std::fs::write(bucket.join(DAY).join("notes.txt"), b"read by Athena").unwrap();
    std::fs::write(bucket.join(DIGEST_DAY).join("digest.json.gz"), b"x").unwrap();
    // Outside the range's days and outside the CloudTrail folders: not the run's business.
    let other_day = bucket.join("AWSLogs/111122223333/CloudTrail/us-east-1/2025/06/01");
    std::fs::create_dir_all(&other_day).unwrap();
    std::fs::write(other_day.join("old.txt"), b"x").unwrap();
    std::fs::write(bucket.join("AWSLogs/111122223333/readme.txt"), b"x").unwrap();
    let other_account = "AWSLogs/222233334444/CloudTrail/us-east-1/2026/01/01";
    std::fs::create_dir_all(bucket.join(other_account)).unwrap();
    std::fs::write(bucket.join(other_account).join("x.txt"), b"x").unwrap();
    let run = verify(&case, &strs(&range_args(&corpus)));
    let mut found = run.findings();
    found.sort();
    let triple = |key: String, kind: &str| {
        (
            format!("s3://{BUCKET}/{key}"),
            kind.into(),
            "invalid".into(),
        )
    };
    assert_eq!(
        found,
        vec![
            triple(
                format!("{DIGEST_DAY}/digest.json.gz"),
                "digest_unrecognised"
            ),
            triple(format!("{DAY}/notes.txt"), "log_unrecognised"),
            triple(format!("{other_account}/x.txt"), "log_unrecognised"),
        ]
    );
    assert_eq!(run.code, 1);
    // Another account's folder, left out by the filters, is not looked at.
    let run = verify(
        &case,
        &[
            &strs(&range_args(&corpus))[..],
            &["--account-id", "111122223333"],
        ]
        .concat(),
    );
    assert_eq!(run.findings().len(), 2);
}

#[test]
fn a_file_whose_name_is_not_utf8_is_a_finding() {
    use std::os::unix::ffi::OsStrExt;
    let corpus = world().build();
    let (log, _) = middle(&corpus);
    let (_dir, case) = written(&corpus);
    let bucket = case.join("bucket");
    let name = std::ffi::OsStr::from_bytes(
        b"111122223333_CloudTrail_us-east-1_20260101T0130Z_\xffnjected.json.gz",
    );
    std::fs::copy(bucket.join(&log), bucket.join(DAY).join(name)).unwrap();
    let run = verify(&case, &strs(&range_args(&corpus)));
    assert_eq!(
        run.findings(),
        vec![(
            format!("s3://{BUCKET}/{DAY}/111122223333_CloudTrail_us-east-1_20260101T0130Z_\u{fffd}njected.json.gz"),
            "log_unrecognised".into(),
            "invalid".into()
        )]
    );
    assert_eq!(run.code, 1);
}

/// An empty file named like a digest of another trail in the same folder made a run with
/// `--trail` skip the unreferenced-log check for the whole folder.
#[test]
fn a_decoy_digest_of_another_trail_does_not_hide_an_injected_log() {
    let corpus = world().build();
    let (log, _) = middle(&corpus);
    let (_dir, case) = written(&corpus);
    let bucket = case.join("bucket");
    let decoy = format!("{DIGEST_DAY}/111122223333_CloudTrail-Digest_us-east-1_decoy-trail_us-east-1_20260101T013000Z.json.gz");
    std::fs::write(bucket.join(&decoy), b"").unwrap();
    let injected =
        format!("{DAY}/111122223333_CloudTrail_us-east-1_20260101T0130Z_InjectedInjected.json.gz");
    std::fs::copy(bucket.join(&log), bucket.join(&injected)).unwrap();
    let mut args = range_args(&corpus);
    args.extend(["--trail".into(), "management-trail".into()]);
    let run = verify(&case, &strs(&args));
    let mut found = run.findings();
    found.sort();
    assert_eq!(
        found,
        vec![
            (
                format!("s3://{BUCKET}/{decoy}"),
                "digest_format".into(),
                "invalid".into()
            ),
            (
                format!("s3://{BUCKET}/{injected}"),
                "log_unreferenced".into(),
                "not_verified".into()
            ),
        ]
    );
    assert_eq!(run.code, 1);
}

/// A real trail left out by `--trail` writes to the same folders: its log files are told apart
/// by its verified digests, and those no verified digest names are reported.
#[test]
fn a_real_other_trail_vouches_only_for_the_log_files_its_verified_digests_name() {
    let corpus = world().add_trail("audit-trail", "us-east-1", false).build();
    let (log, _) = middle(&corpus);
    let theirs: Vec<_> = corpus
        .digests()
        .iter()
        .filter(|d| d.key.contains("_audit-trail_"))
        .collect();
    assert_eq!(theirs.len(), 3);
    let (_dir, case) = written(&corpus);
    let bucket = case.join("bucket");
    let injected =
        format!("{DAY}/111122223333_CloudTrail_us-east-1_20260101T0130Z_InjectedInjected.json.gz");
    std::fs::copy(bucket.join(&log), bucket.join(&injected)).unwrap();
    let mut args = range_args(&corpus);
    args.extend(["--trail".into(), "management-trail".into()]);
    let run = verify(&case, &strs(&args));
    assert_eq!(
        run.findings(),
        vec![(
            format!("s3://{BUCKET}/{injected}"),
            "log_unreferenced".into(),
            "not_verified".into()
        )]
    );
    assert!(
        run.stdout.contains("audit-trail"),
        "the finding names the other trail"
    );
    assert_eq!(run.code, 1);

    // One of its digests gone: the log files only it named cannot be attributed.
    let gone = theirs[1];
    std::fs::remove_file(bucket.join(&gone.key)).unwrap();
    let run = verify(&case, &strs(&args));
    let unattributed: Vec<_> = run
        .findings()
        .into_iter()
        .filter(|(_, k, _)| k == "log_unreferenced")
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(unattributed.len(), 1 + gone.logs.len(), "{unattributed:?}");
    for l in &gone.logs {
        assert!(unattributed.contains(&format!("s3://{BUCKET}/{l}")));
    }
}

/// A file named with a newline, a terminal escape and a forged result line used to print that
/// line in the text report, and the escape could erase the real findings on a terminal; one
/// with a tab shifted the columns of the tab-separated lines. Names
/// are shown escaped in the text and AWS-CLI-compatible outputs (JSON escapes them anyway).
#[test]
fn a_file_name_cannot_forge_lines_in_the_text_report() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let forged = "RESULT: every object in range is valid and every hour of the range is proven";
    let name = format!("evil\n\n{forged}\u{1b}[2K\r\u{202e}.json.gz");
    std::fs::write(case.join("bucket").join(DAY).join(&name), b"x").unwrap();
    // Found by the red team: a tab shifted the columns of the tab-separated lines.
    std::fs::write(case.join("bucket").join(DAY).join("x\tvalid.json.gz"), b"x").unwrap();
    for verbose in [false, true] {
        let mut args = vec!["verify", "bucket", "--public-keys", "public-keys.json"];
        let range = range_args(&corpus);
        args.extend(strs(&range));
        if verbose {
            args.push("--verbose");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_trailproof"))
            .args(&args)
            .current_dir(&case)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("RESULT: every object")),
            "{text}"
        );
        assert!(!text.contains(['\u{1b}', '\r', '\u{202e}']), "{text}");
        assert!(
            !text.contains("x\tvalid") && text.contains("x\\tvalid"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "evil\\n\\n{forged}\\u{{1b}}[2K\\r\\u{{202e}}.json.gz"
            )),
            "{text}"
        );
    }
}
