//! `verify-query-results` end to end: the AWS CLI's own test vector, generated CloudTrail Lake
//! exports with every attack on them we could think of, the AWS CLI's flags, success line and
//! exit statuses, signed reports, and the S3 path against a real moto server on loopback.

mod support;

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::Value;
use support::{repo, trailproof, Moto, Output};
use trailproof_testgen::{LakeExport, SignEntry, TestKey};

const SUCCESS: &str = "Successfully validated sign and query result files\n";
/// The vector's `publicKeyFingerprint` is a label in the AWS CLI's tests; this is the MD5 of
/// its key's DER, the fingerprint CloudTrail would give that key.
const VECTOR_LABEL: &str = "67b9fa73676d86966b449dd677850753";
const VECTOR_FINGERPRINT: &str = "e00b881a39d15623efee61d0eaf2874a";

fn complete() -> Timestamp {
    "2026-01-10T12:00:00Z".parse().unwrap()
}

/// A generated export of three result files in `tmp/export`, its keys in `tmp/keys.json`.
fn export_in(tmp: &Path, export: &LakeExport) -> (PathBuf, PathBuf) {
    let dir = tmp.join("export");
    export.write(&dir).unwrap();
    let keys = tmp.join("keys.json");
    std::fs::write(&keys, export.public_keys_json().to_string()).unwrap();
    (dir, keys)
}

fn run(dir: &Path, keys: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "verify-query-results".into(),
        "--local-export-path".into(),
        dir.display().to_string(),
        "--public-keys".into(),
        keys.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    trailproof(&repo(), &args, &[])
}

/// (file name, kind) of every finding of a JSON report, and its exit code.
fn kinds(out: &Output) -> (Vec<(String, String)>, i64) {
    let v: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    let findings = v["unchained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let subject = f["subject"].as_str().unwrap();
            let name = subject.rsplit('/').next().unwrap().to_owned();
            (name, f["kind"].as_str().unwrap().to_owned())
        })
        .collect();
    (findings, v["exit_code"].as_i64().unwrap())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Runs text then JSON; the text must fail as the AWS CLI fails (255, nothing on stdout) and
/// the JSON must give `want` with exit status `code`. Answers the text's stderr.
fn assert_findings(dir: &Path, keys: &Path, want: &[(&str, &str)], code: i32) -> String {
    let text = run(dir, keys, &[]);
    assert_eq!(text.code, 255, "{}", text.stderr);
    assert_eq!(text.stdout, "");
    let json = run(dir, keys, &["--format", "json"]);
    assert_eq!(json.code, code, "{}", json.stderr);
    let (got, exit_code) = kinds(&json);
    assert_eq!(got, pairs(want));
    assert_eq!(exit_code, i64::from(code));
    text.stderr
}

#[test]
fn the_aws_cli_vector_verifies_once_its_label_is_its_keys_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = repo().join("testdata/lake");
    for name in ["result_sign.json", "result_1.csv.gz"] {
        std::fs::copy(
            lake.join("awscli-v2-functional").join(name),
            tmp.path().join(name),
        )
        .unwrap();
    }
    let keys = lake.join("awscli-v2-functional-keys.json");

    // As shipped, the fingerprint is a label no key has: never verified.
    let out = run(tmp.path(), &keys, &[]);
    assert_eq!(out.code, 255);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.starts_with(&format!(
        "No public keys found for key with fingerprint: {VECTOR_LABEL}\n"
    )));
    let (got, code) = kinds(&run(tmp.path(), &keys, &["--format", "json"]));
    assert_eq!(
        got,
        pairs(&[
            ("result_sign.json", "query_sign_key_unknown"),
            ("result_1.csv.gz", "query_result_unverifiable")
        ])
    );
    assert_eq!(code, 1);

    // The fingerprint is not signed: naming the key's real fingerprint, the AWS-authored
    // signature verifies, and the output is the AWS CLI's, byte for byte.
    let sign = tmp.path().join("result_sign.json");
    let text = std::fs::read_to_string(&sign).unwrap();
    std::fs::write(&sign, text.replace(VECTOR_LABEL, VECTOR_FINGERPRINT)).unwrap();
    let out = run(tmp.path(), &keys, &[]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, SUCCESS, "")
    );
}

#[test]
fn a_generated_export_verifies_and_lists_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, keys) = export_in(tmp.path(), &LakeExport::new(1, 3, 20, complete()));
    let out = run(&dir, &keys, &[]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, SUCCESS, "")
    );
    let out = run(&dir, &keys, &["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["totals"]["query_results"]["valid"], 3);
    assert_eq!(v["totals"]["query_sign_files"]["valid"], 1);
    assert_eq!(v["manifest"].as_array().unwrap().len(), 4);
    let verbose = run(&dir, &keys, &["--verbose"]);
    assert_eq!(verbose.stdout.lines().count(), 5, "{}", verbose.stdout);
}

#[test]
fn every_tampered_missing_renamed_and_added_file_is_named_not_just_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(2, 4, 20, complete());
    let before = export.files[0].1.clone();
    export.file_mut("result_1.csv.gz")[12] ^= 1;
    export.files.retain(|(n, _)| n != "result_2.csv.gz");
    export.files[2].0 = "result_5.csv.gz".into(); // result_4 renamed
    export.files.push(("notes.txt".into(), b"added".to_vec()));
    let (dir, keys) = export_in(tmp.path(), &export);
    std::fs::create_dir(dir.join("more")).unwrap();
    let stderr = assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_hash_mismatch"),
            ("result_2.csv.gz", "query_result_missing"),
            ("result_3.csv.gz", "query_result_valid"),
            ("result_4.csv.gz", "query_result_missing"),
            ("", "query_result_unlisted"), // more/
            ("notes.txt", "query_result_unlisted"),
            ("result_5.csv.gz", "query_result_unlisted"),
        ],
        1,
    );
    // The AWS CLI's own line for a changed file, then one line per other problem.
    let first = stderr.lines().next().unwrap();
    let expected = trailproof_testgen::sha256_hex(&before);
    let actual = trailproof_testgen::sha256_hex(&export.files[0].1);
    assert_eq!(first, format!("ValidationError: File result_1.csv.gz has inconsistent hash value with hash value recorded in sign file, hash value in sign file is {expected} , but get {actual}"));
    assert_eq!(stderr.lines().count(), 6, "{stderr}");
}

#[test]
fn swapped_result_files_fail_both_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(3, 2, 20, complete());
    let (a, b) = (export.files[0].1.clone(), export.files[1].1.clone());
    export.files[0].1 = b;
    export.files[1].1 = a;
    let (dir, keys) = export_in(tmp.path(), &export);
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_hash_mismatch"),
            ("result_2.csv.gz", "query_result_hash_mismatch"),
        ],
        1,
    );
}

#[test]
fn a_file_listed_twice_is_invalid_though_the_signature_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(4, 2, 20, complete());
    // Names are unsigned: the attacker points both entries at result_1 and deletes result_2.
    export.sign.files[1].file_name = "result_1.csv.gz".into();
    export.files.truncate(1);
    let (dir, keys) = export_in(tmp.path(), &export);
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_name"),
        ],
        1,
    );
}

#[test]
fn a_file_name_leading_out_of_the_folder_is_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(5, 2, 20, complete());
    // The genuine second file moved out of the folder, the unsigned name edited to follow it:
    // reading it would match its hash.
    let (_, second) = export.files.pop().unwrap();
    std::fs::write(tmp.path().join("outside.csv.gz"), &second).unwrap();
    export.sign.files[1].file_name = "../outside.csv.gz".into();
    let (dir, keys) = export_in(tmp.path(), &export);
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_valid"),
            ("outside.csv.gz", "query_result_name"),
        ],
        1,
    );

    // A link in the folder to the same file outside it is not followed either.
    export.sign.files[1].file_name = "result_2.csv.gz".into();
    export.write(&dir).unwrap();
    std::os::unix::fs::symlink(
        tmp.path().join("outside.csv.gz"),
        dir.join("result_2.csv.gz"),
    )
    .unwrap();
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_valid"),
            ("result_2.csv.gz", "query_result_not_a_file"),
        ],
        1,
    );
}

#[test]
fn a_sign_file_re_signed_with_a_key_that_is_not_cloudtrails_never_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(6, 2, 20, complete());
    export.file_mut("result_2.csv.gz")[12] ^= 1;
    let forged = trailproof_testgen::sha256_hex(&export.files[1].1);
    export.sign.files[1].file_hash_value = forged;
    export.sign.sign_with(TestKey::Attacker);
    let (dir, keys) = export_in(tmp.path(), &export);
    let stderr = assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_key_unknown"),
            ("result_1.csv.gz", "query_result_unverifiable"),
            ("result_2.csv.gz", "query_result_unverifiable"),
        ],
        1,
    );
    assert!(stderr.starts_with("No public keys found for key with fingerprint: "));

    // The same forgery naming the CloudTrail key's fingerprint fails the signature.
    export.sign.public_key_fingerprint = trailproof_testgen::signing_key(export.key.key)
        .fingerprint()
        .to_owned();
    export.write(&dir).unwrap();
    let stderr = assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_signature_invalid"),
            ("result_1.csv.gz", "query_result_unverifiable"),
            ("result_2.csv.gz", "query_result_unverifiable"),
        ],
        1,
    );
    assert!(stderr.starts_with("ValidationError: Invalid signature in sign file\n"));
}

#[test]
fn a_query_time_outside_the_keys_window_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(7, 1, 20, complete());
    // queryCompleteTime is unsigned; moved past the key's window.
    export.sign.query_complete_time = "2026-03-01T00:00:00Z".into();
    let (dir, keys) = export_in(tmp.path(), &export);
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_key_not_valid"),
            ("result_1.csv.gz", "query_result_unverifiable"),
        ],
        1,
    );
}

#[test]
fn odd_hash_spellings_an_empty_list_and_no_sign_file_are_findings() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(8, 2, 20, complete());
    let hash = export.sign.files[0].file_hash_value.clone();
    for odd in [hash.to_uppercase(), format!("{hash} "), format!(" {hash}")] {
        export.sign.files[0].file_hash_value = odd;
        let (dir, keys) = export_in(tmp.path(), &export);
        assert_findings(
            &dir,
            &keys,
            &[
                ("result_sign.json", "query_sign_format"),
                ("result_1.csv.gz", "query_result_unlisted"),
                ("result_2.csv.gz", "query_result_unlisted"),
            ],
            1,
        );
    }
    export.sign.files = Vec::<SignEntry>::new();
    let (dir, keys) = export_in(tmp.path(), &export);
    let stderr = assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_format"),
            ("result_1.csv.gz", "query_result_unlisted"),
            ("result_2.csv.gz", "query_result_unlisted"),
        ],
        1,
    );
    assert!(stderr.starts_with("ValidationError: No export file was found in sign file.\n"));
    std::fs::remove_file(dir.join("result_sign.json")).unwrap();
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_missing"),
            ("result_1.csv.gz", "query_result_unlisted"),
            ("result_2.csv.gz", "query_result_unlisted"),
        ],
        1,
    );
}

#[test]
fn fifos_and_folders_in_place_of_files_are_never_read_and_a_folder_is_no_object() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(12, 2, 20, complete());
    export.files.clear();
    let (dir, keys) = export_in(tmp.path(), &export);
    // A FIFO would block a reader forever. A folder is no file: the copy of an S3 folder
    // `result_2.csv.gz/...`, the object itself absent.
    let fifo = std::process::Command::new("mkfifo")
        .arg(dir.join("result_1.csv.gz"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::fs::create_dir(dir.join("result_2.csv.gz")).unwrap();
    assert_findings(
        &dir,
        &keys,
        &[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_not_a_file"),
            ("result_2.csv.gz", "query_result_missing"),
        ],
        1,
    );
    std::fs::remove_file(dir.join("result_sign.json")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(dir.join("result_sign.json"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let (got, _) = kinds(&run(&dir, &keys, &["--format", "json"]));
    assert_eq!(
        got[0],
        ("result_sign.json".into(), "query_sign_format".into())
    );
}

#[test]
fn a_sign_file_over_its_budget_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let export = LakeExport::new(13, 1, 20, complete());
    let (dir, keys) = export_in(tmp.path(), &export);
    // Sparse: 1 GiB stated, nothing on disk; refused from its size, never read.
    let sign = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("result_sign.json"))
        .unwrap();
    sign.set_len(1 << 30).unwrap();
    let text = run(&dir, &keys, &[]);
    assert_eq!(text.code, 255);
    assert!(
        text.stderr.contains("larger than 16777216 bytes"),
        "{}",
        text.stderr
    );
    let json = run(&dir, &keys, &["--format", "json"]);
    assert_eq!(json.code, 2);
    let (got, _) = kinds(&json);
    assert_eq!(
        got[0],
        ("result_sign.json".into(), "query_sign_unreadable".into())
    );
}

#[test]
fn flags_are_checked_with_the_aws_clis_words_and_exit_status() {
    let none = trailproof(&repo(), &["verify-query-results".to_owned()], &[]);
    assert_eq!(none.code, 252);
    assert!(none
        .stderr
        .contains("Require parameter --s3-bucket or --local-export-path."));
    for extra in [["--s3-bucket", "b"], ["--s3-prefix", "p"]] {
        let mut args = vec!["verify-query-results", "--local-export-path", "/tmp"];
        args.extend(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let both = trailproof(&repo(), &args, &[]);
        assert_eq!(both.code, 252);
        assert!(both.stderr.contains(
            "Parameter --local-export-path can not be specified with parameter --s3-bucket nor --s3-prefix."
        ));
    }
}

#[test]
fn a_folder_that_cannot_be_read_is_255_in_text_and_2_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let export = LakeExport::new(9, 1, 20, complete());
    let (_, keys) = export_in(tmp.path(), &export);
    let gone = tmp.path().join("no-such-folder");
    assert_eq!(run(&gone, &keys, &[]).code, 255);
    assert_eq!(run(&gone, &keys, &["--format", "json"]).code, 2);
}

#[test]
fn a_signed_report_of_a_tampered_export_verifies_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(10, 2, 20, complete());
    export.file_mut("result_2.csv.gz")[12] ^= 1;
    let (dir, keys) = export_in(tmp.path(), &export);
    let keydir = repo().join("testdata/report-keys");
    let envelope = tmp.path().join("report.dsse.json");
    let out = run(
        &dir,
        &keys,
        &[
            "--sign-key",
            keydir.join("ed25519.pem").to_str().unwrap(),
            "--sign-out",
            envelope.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 255, "{}", out.stderr);
    let check = trailproof(
        &repo(),
        &[
            "report".into(),
            "verify".into(),
            envelope.display().to_string(),
            "--key".into(),
            keydir.join("ed25519.pub.pem").display().to_string(),
        ],
        &[],
    );
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check
            .stdout
            .contains("Query results\t1/2 valid, 1 invalid, 0 not verified\n"),
        "{}",
        check.stdout
    );
    let payload: Value = serde_json::from_slice(&std::fs::read(&envelope).unwrap()).unwrap();
    let statement: Value = {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(statement["predicate"]["exit_code"], 1);
    // Subjects: the sign file and each result file by the SHA-256 of its stored bytes.
    let subjects = statement["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 3);
    let second = subjects
        .iter()
        .find(|s| s["name"].as_str().unwrap().ends_with("result_2.csv.gz"))
        .unwrap();
    assert_eq!(
        second["digest"]["sha256"],
        trailproof_testgen::sha256_hex(&export.files[1].1)
    );
}

/// Uploads `export` into a fresh bucket at `prefix`, with `others` (key, bytes) beside it.
fn upload(moto: &Moto, bucket: &str, prefix: &str, export: &LakeExport, others: &[(&str, &[u8])]) {
    let copy = tempfile::tempdir().unwrap();
    export
        .write(&copy.path().join("bucket").join(prefix))
        .unwrap();
    for (key, bytes) in others {
        let path = copy.path().join("bucket").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    moto.reset();
    moto.upload(copy.path(), bucket);
}

#[test]
fn s3_exports_are_verified_with_keys_from_list_public_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let mut export = LakeExport::new(11, 3, 20, complete());
    let (_, keys) = export_in(tmp.path(), &export);
    let moto = Moto::start(&keys);
    let bucket = "lake-results";
    let prefix = "AWSLogs/111122223333/CloudTrail-Lake/Query/2026/01/10/0f1e2d3c-query";
    // Another query's folder beside it and an object above it are not this export's.
    let other = format!("{prefix}-other/result_1.csv.gz");
    let others: [(&str, &[u8]); 2] = [(&other, b"x"), ("AWSLogs/readme.txt", b"x")];
    upload(&moto, bucket, prefix, &export, &others);
    let s3 = |prefix: &str, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "verify-query-results".into(),
            "--s3-bucket".into(),
            bucket.into(),
            "--s3-prefix".into(),
            prefix.into(),
            "--endpoint-url".into(),
            moto.endpoint(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        trailproof(&repo(), &args, &moto.env())
    };
    let out = s3(prefix, &[]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, SUCCESS, "")
    );
    let out = s3(&format!("{prefix}/"), &["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["keys"][0]["origin"], "cloudtrail:ListPublicKeys");
    assert_eq!(
        v["unchained"][1]["subject"],
        format!("s3://{bucket}/{prefix}/result_1.csv.gz")
    );

    // Tampered, deleted and added objects on S3 are each named.
    export.file_mut("result_1.csv.gz")[12] ^= 1;
    export.files.retain(|(n, _)| n != "result_3.csv.gz");
    export
        .files
        .push(("result_4.csv.gz".into(), b"added".to_vec()));
    upload(&moto, bucket, prefix, &export, &others);
    let out = s3(prefix, &[]);
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 3, "{}", out.stderr);
    let (got, code) = kinds(&s3(prefix, &["--format", "json"]));
    assert_eq!(
        got,
        pairs(&[
            ("result_sign.json", "query_sign_valid"),
            ("result_1.csv.gz", "query_result_hash_mismatch"),
            ("result_2.csv.gz", "query_result_valid"),
            ("result_3.csv.gz", "query_result_missing"),
            ("result_4.csv.gz", "query_result_unlisted"),
        ])
    );
    assert_eq!(code, 1);
}
