//! Evidence custody against a real moto server on loopback, through the real SDK: recovering
//! the version CloudTrail delivered from a versioned bucket (online, and through `acquire` for
//! an offline copy), and what an attacker who may write or delete versions can and cannot make
//! of it.
//!
//! Measured on moto 5.2.1 (what these tests rely on): ListObjectVersions lists versions and
//! delete markers with `IsLatest`, an unversioned bucket answers one version `null`; GetObject
//! with a version id returns that version's user metadata.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{case_args, cases_dir, trailproof, Moto, Output};

const BUCKET: &str = "acme-cloudtrail-logs";

/// A log file the first us-east-1 digest (01:20) lists.
const LOG: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0112Z_rUPlW7IsTESc77Q0.json.gz";
/// A log file the first eu-west-1 digest lists: its content is genuine, for another key.
const OTHER_LOG: &str = "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/01/01/111122223333_CloudTrail_eu-west-1_20260101T0030Z_iDxmaB91Bb37Rbcd.json.gz";
/// The middle us-east-1 digest: the next one links to it.
const DIGEST: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_20260101T022058Z.json.gz";
/// The first us-east-1 digest: genuinely signed, for another key.
const OTHER_DIGEST: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_20260101T012058Z.json.gz";

fn case() -> PathBuf {
    cases_dir().join("clean-plain")
}

/// A moto server holding the clean case in a versioned bucket.
fn versioned() -> Moto {
    let moto = Moto::start(&case().join("public-keys.json"));
    moto.upload_versioned(&case(), BUCKET);
    moto
}

fn bytes_of(key: &str) -> Vec<u8> {
    std::fs::read(case().join("bucket").join(key)).unwrap()
}

/// The S3 signature the case records for a digest.
fn signature_of(key: &str) -> String {
    let meta: Value = serde_json::from_slice(
        &std::fs::read(case().join("bucket/trailproof-evidence.json")).unwrap(),
    )
    .unwrap();
    meta["objects"][key]["metadata"]["signature"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
    std::io::Write::write_all(&mut gz, content).unwrap();
    gz.finish().unwrap()
}

/// Writes a new version of `key` (with a signature in its metadata, if given); answers its id
/// (`null` in an unversioned bucket).
fn put(moto: &Moto, key: &str, body: Vec<u8>, signature: Option<String>) -> String {
    moto.s3(|s3| async move {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .set_metadata(signature.map(|s| [("signature".to_owned(), s)].into()))
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap_or("null")
            .to_owned()
    })
}

/// Every version id of `key`, oldest first, delete markers left out.
fn versions(moto: &Moto, key: &str) -> Vec<String> {
    moto.s3(|s3| async move {
        let out = s3
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(key)
            .send()
            .await
            .unwrap();
        let mut v: Vec<_> = out
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| {
                (
                    v.last_modified().unwrap().as_nanos(),
                    v.version_id().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    })
}

/// Deletes every version of `key` for good: what an attacker with s3:DeleteObjectVersion does.
fn destroy(moto: &Moto, key: &str) {
    for id in versions(moto, key) {
        moto.s3(|s3| async move {
            s3.delete_object()
                .bucket(BUCKET)
                .key(key)
                .version_id(id)
                .send()
                .await
                .unwrap();
        })
    }
}

fn run(moto: &Moto, args: &[String]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--endpoint-url".to_owned(), moto.endpoint()]);
    trailproof(&case(), &all, &moto.env())
}

/// `verify s3://BUCKET` with the case's arguments and `extra`.
fn verify_s3(moto: &Moto, extra: &[&str]) -> Output {
    let mut args = vec!["verify".to_owned(), format!("s3://{BUCKET}")];
    args.extend(case_args(&case()));
    args.extend(extra.iter().map(|s| s.to_string()));
    run(moto, &args)
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr))
}

/// The finding on `key` in a JSON report.
fn finding_on(report: &Value, key: &str) -> Value {
    let subject = format!("s3://{BUCKET}/{key}");
    report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .chain(report["unchained"].as_array().unwrap())
        .find(|f| f["subject"] == subject.as_str())
        .unwrap_or_else(|| panic!("no finding on {key}"))
        .clone()
}

#[test]
fn an_overwritten_log_is_still_invalid_and_its_delivered_version_is_named() {
    let moto = versioned();
    let delivered = versions(&moto, LOG)[0].clone();
    let forged = put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "the bucket was tampered with: {}", out.stderr);
    let f = finding_on(&json(&out), LOG);
    assert_eq!(
        f["kind"], "log_hash_mismatch",
        "the verdict is on what S3 holds now"
    );
    assert_eq!(f["versions"]["delivered"]["version_id"], delivered.as_str());
    assert_eq!(f["versions"]["current"]["state"], "overwritten");
    assert_eq!(f["versions"]["current"]["version_id"], forged.as_str());
    assert_eq!(f["versions"]["checked"], 1);

    // Text and validate-logs say it on the object's line or under it.
    let text = verify_s3(&moto, &[]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains(&format!(
            "\twhat CloudTrail delivered is still in the bucket, proven by its hash or signature: version {delivered} ("
        )),
        "{}",
        text.stdout
    );
    assert!(text
        .stdout
        .contains(&format!("the current version {forged} was written")));
    let jsonl = verify_s3(&moto, &["--format", "jsonl"]);
    let line = jsonl.stdout.lines().find(|l| l.contains(LOG)).unwrap();
    assert!(
        line.contains(&format!("\"delivered\":{{\"version_id\":\"{delivered}\"")),
        "{line}"
    );
    let html = verify_s3(&moto, &["--format", "html"]);
    assert!(html.stdout.contains(&format!(
        "versions: what CloudTrail delivered is still in the bucket, proven by its hash or signature: version {delivered}"
    )));
}

#[test]
fn a_deleted_log_is_still_missing_and_the_delete_marker_is_named() {
    let moto = versioned();
    let delivered = versions(&moto, LOG)[0].clone();
    moto.delete(BUCKET, LOG);

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let f = finding_on(&json(&out), LOG);
    assert_eq!(f["kind"], "log_missing");
    assert_eq!(f["versions"]["delivered"]["version_id"], delivered.as_str());
    assert_eq!(f["versions"]["current"]["state"], "delete_marker");
}

#[test]
fn an_overwritten_digest_is_recovered_by_its_signature() {
    let moto = versioned();
    let delivered = versions(&moto, DIGEST)[0].clone();
    // The digest rewritten with a signature that is not CloudTrail's over it.
    let mut raw = support_inflate(&bytes_of(DIGEST));
    raw.push(b' ');
    put(&moto, DIGEST, gzip(&raw), Some(signature_of(DIGEST)));

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let f = finding_on(&json(&out), DIGEST);
    assert_ne!(f["verdict"], "valid");
    assert_eq!(f["versions"]["delivered"]["version_id"], delivered.as_str());
}

#[test]
fn a_deleted_digest_is_recovered_from_behind_its_delete_marker() {
    let moto = versioned();
    let delivered = versions(&moto, DIGEST)[0].clone();
    moto.delete(BUCKET, DIGEST);

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let f = finding_on(&json(&out), DIGEST);
    assert_eq!(f["kind"], "digest_missing");
    assert_eq!(f["versions"]["delivered"]["version_id"], delivered.as_str());
    assert_eq!(f["versions"]["current"]["state"], "delete_marker");
}

/// An attacker with s3:PutObject and s3:DeleteObjectVersion destroys the delivered version and
/// writes forged ones: no version is taken for CloudTrail's on its id or its time.
#[test]
fn forged_versions_are_never_taken_for_the_delivered_one() {
    let moto = versioned();
    destroy(&moto, LOG);
    put(&moto, LOG, gzip(b"{\"Records\":[1]}"), None);
    put(&moto, LOG, gzip(b"{\"Records\":[2]}"), None);
    // A digest replaced by a genuine, CloudTrail-signed digest of another hour (moved), its
    // own versions gone.
    destroy(&moto, DIGEST);
    put(
        &moto,
        DIGEST,
        bytes_of(OTHER_DIGEST),
        Some(signature_of(OTHER_DIGEST)),
    );
    put(
        &moto,
        DIGEST,
        bytes_of(OTHER_DIGEST),
        Some(signature_of(OTHER_DIGEST)),
    );

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    let log = finding_on(&report, LOG);
    assert_eq!(log["kind"], "log_hash_mismatch");
    assert_eq!(log["versions"]["checked"], 1, "{log}");
    assert!(log["versions"].get("delivered").is_none(), "{log}");
    let digest = finding_on(&report, DIGEST);
    assert_eq!(digest["verdict"], "invalid", "{digest}");
    assert_eq!(digest["versions"]["checked"], 1);
    assert!(digest["versions"].get("delivered").is_none(), "{digest}");
    let text = verify_s3(&moto, &[]);
    assert!(text.stdout.contains(
        "no version in the bucket holds what CloudTrail delivered (1 other version checked)"
    ));
}

/// Every version deleted for good, and the delivered content planted under another key that
/// shares the prefix: nothing is recovered, the log file is still missing, and the run says
/// nothing about versions it does not have.
#[test]
fn a_log_whose_versions_are_all_gone_stays_missing_whatever_other_keys_hold() {
    let moto = versioned();
    destroy(&moto, LOG);
    put(&moto, &format!("{LOG}.bak"), bytes_of(LOG), None);
    put(&moto, OTHER_LOG, bytes_of(LOG), None);

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    let f = finding_on(&report, LOG);
    assert_eq!(f["kind"], "log_missing");
    assert!(f.get("versions").is_none(), "{f}");
    // The other log file holds content that is genuine, for another key: its own delivered
    // version is found behind it.
    let other = finding_on(&report, OTHER_LOG);
    assert_eq!(other["kind"], "log_hash_mismatch");
    assert!(other["versions"]["delivered"].is_object(), "{other}");
}

/// An unversioned bucket (one `null` version per key) reports exactly what it reported before
/// version recovery existed.
#[test]
fn an_unversioned_bucket_adds_nothing_to_the_report() {
    let moto = Moto::start(&case().join("public-keys.json"));
    moto.upload(&case(), BUCKET);
    put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);
    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains("\"versions\""), "{}", out.stdout);
    let text = verify_s3(&moto, &[]);
    assert!(!text.stdout.contains("delivered"), "{}", text.stdout);
}

fn support_inflate(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).unwrap();
    out
}

/// `acquire s3://BUCKET DIR` with the case's range and keys.
fn acquire_args(dir: &Path) -> Vec<String> {
    let args = case_args(&case());
    let mut acquire = vec![
        "acquire".to_owned(),
        format!("s3://{BUCKET}"),
        dir.display().to_string(),
    ];
    acquire.extend(
        args.windows(2)
            .filter(|w| w[0] == "--start-time" || w[0] == "--end-time" || w[0] == "--public-keys")
            .flat_map(|w| w.to_vec()),
    );
    acquire
}

fn acquire(moto: &Moto, dir: &Path) -> Output {
    run(moto, &acquire_args(dir))
}

fn verify_offline(dir: &Path) -> Output {
    let mut args = vec!["verify".to_owned(), dir.display().to_string()];
    args.extend(case_args(&case()));
    args.extend(["--format".to_owned(), "json".to_owned()]);
    trailproof(&case(), &args, &[])
}

#[test]
fn acquire_copies_the_delivered_versions_and_offline_verify_still_reports_the_tampering() {
    let moto = versioned();
    let log_version = versions(&moto, LOG)[0].clone();
    let digest_version = versions(&moto, DIGEST)[0].clone();
    let forged = put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);
    moto.delete(BUCKET, DIGEST);

    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let first = acquire(&moto, &evidence);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains(&format!("recovered from an earlier version (the bucket's current one is not CloudTrail's): {LOG}")), "{}", first.stderr);
    assert_eq!(std::fs::read(evidence.join(LOG)).unwrap(), bytes_of(LOG));
    assert_eq!(
        std::fs::read(evidence.join(DIGEST)).unwrap(),
        bytes_of(DIGEST)
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(evidence.join("trailproof-evidence.json")).unwrap())
            .unwrap();
    let log = &meta["objects"][LOG];
    assert_eq!(log["version_id"], log_version.as_str());
    assert_eq!(log["recovered"]["current"]["state"], "overwritten");
    assert_eq!(log["recovered"]["current"]["version_id"], forged.as_str());
    let digest = &meta["objects"][DIGEST];
    assert_eq!(digest["version_id"], digest_version.as_str());
    assert_eq!(digest["recovered"]["current"]["state"], "delete_marker");
    assert_eq!(
        digest["metadata"]["signature"],
        signature_of(DIGEST).as_str()
    );

    let offline = verify_offline(&evidence);
    assert_eq!(
        offline.code, 1,
        "the tampering is still reported: {}",
        offline.stdout
    );
    let report = json(&offline);
    let f = finding_on(&report, LOG);
    assert_eq!(f["kind"], "overwritten_in_bucket", "{f}");
    assert!(f.get("also").is_none(), "the content itself is proven: {f}");
    let f = finding_on(&report, DIGEST);
    assert_eq!(f["kind"], "deleted_in_bucket", "{f}");
    assert!(f.get("also").is_none(), "{f}");
    // Nothing else is wrong with the copy: every other object is valid.
    let bad: Vec<&Value> = report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .filter(|f| f["verdict"] != "valid")
        .collect();
    assert_eq!(bad.len(), 2, "{bad:?}");

    // Run again: the recovered copies are kept as they are (never replaced by the bucket's
    // forged current objects, even for a moment), and the records with them.
    let again = acquire(&moto, &evidence);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains(" 0 downloaded"), "{}", again.stderr);
    assert!(!again.stderr.contains("recovered from"), "{}", again.stderr);
    assert_eq!(std::fs::read(evidence.join(LOG)).unwrap(), bytes_of(LOG));
    assert_eq!(json(&verify_offline(&evidence))["chains"], report["chains"]);
}

/// The evidence-metadata file is not signed: a record may add a finding, never make content
/// valid. A recovery record on a copy whose content is not the delivered one leaves the content
/// finding in place; one on a genuine copy only adds a finding.
#[test]
fn a_lying_recovery_record_never_makes_a_copy_valid() {
    let moto = versioned();
    put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    assert_eq!(acquire(&moto, &evidence).code, 0);

    // The copy swapped for the forged bytes, its record still saying "recovered".
    std::fs::write(evidence.join(LOG), gzip(b"{\"Records\":[]}")).unwrap();
    let report = json(&verify_offline(&evidence));
    let f = finding_on(&report, LOG);
    let kinds: Vec<&Value> = std::iter::once(&f["kind"])
        .chain(
            f["also"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| &r["kind"]),
        )
        .collect();
    assert!(kinds.contains(&&Value::from("log_hash_mismatch")), "{f}");
    assert_ne!(f["verdict"], "valid");

    // A record made up for a genuine, untouched log file: it is reported, not believed away.
    let path = evidence.join("trailproof-evidence.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    meta["objects"][OTHER_LOG]["recovered"] =
        serde_json::json!({"written": "2026-01-01T00:31:00Z", "current": {"state": "absent"}});
    std::fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let out = verify_offline(&evidence);
    assert_eq!(out.code, 1);
    assert_eq!(
        finding_on(&json(&out), OTHER_LOG)["kind"],
        "overwritten_in_bucket"
    );
}

/// Object Lock is S3's word about retention, read from the GetObject responses (no other
/// request): it is recorded and counted over the proven objects only, and never makes an
/// object valid. A locked bucket still takes new versions: a log file overwritten there is
/// invalid, its delivered version recovered, and it is not counted as retained.
#[test]
fn locked_objects_are_recorded_and_counted_only_when_proven() {
    let moto = Moto::start(&case().join("public-keys.json"));
    moto.upload_locked(&case(), BUCKET, "COMPLIANCE", "2030-01-01T00:00:00Z");
    put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);

    let out = verify_s3(&moto, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    let retention = &report["retention"]["compliance"];
    // 6 digests and 12 log files, less the overwritten one.
    assert_eq!(retention["objects"], 17, "{}", report["retention"]);
    assert_eq!(retention["earliest_until"], "2030-01-01T00:00:00Z");
    assert_eq!(report["retention"]["governance"]["objects"], 0);
    let digest = finding_on(&report, DIGEST);
    assert_eq!(digest["verdict"], "valid");
    assert_eq!(digest["custody"]["lock_mode"], "COMPLIANCE");
    assert_eq!(
        digest["custody"]["lock_retain_until"],
        "2030-01-01T00:00:00Z"
    );
    assert!(digest["custody"]["version_id"].is_string());
    let log = finding_on(&report, LOG);
    assert_eq!(log["kind"], "log_hash_mismatch");
    assert!(log["versions"]["delivered"].is_object(), "{log}");
    let manifest = report["manifest"].as_array().unwrap();
    assert!(manifest.iter().all(|m| m["version_id"].is_string()));

    let text = verify_s3(&moto, &[]);
    assert!(
        text.stdout.contains("Object Lock, as S3 answered: of the proven objects, 17 under COMPLIANCE retention until 2030-01-01T00:00:00Z"),
        "{}",
        text.stdout
    );

    let html = verify_s3(&moto, &["--format", "html"]);
    assert!(html
        .stdout
        .contains("Object Lock, as S3 answered: of the proven objects, 17 under COMPLIANCE"));

    // The evidence-metadata file records what each GetObject said.
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    assert_eq!(acquire(&moto, &evidence).code, 0);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(evidence.join("trailproof-evidence.json")).unwrap())
            .unwrap();
    let record = &meta["objects"][OTHER_LOG];
    assert_eq!(record["lock_mode"], "COMPLIANCE");
    assert_eq!(record["lock_retain_until"], "2030-01-01T00:00:00Z");
    assert!(record["version_id"].is_string());
}

/// Writes the case's own object at `key` again, in an archive storage class.
fn archive(moto: &Moto, key: &str, class: &str) {
    let body = bytes_of(key);
    let signature = key.contains("-Digest").then(|| signature_of(key));
    let class = aws_sdk_s3::types::StorageClass::from(class);
    moto.s3(|s3| async move {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .storage_class(class)
            .set_metadata(signature.map(|s| [("signature".to_owned(), s)].into()))
            .send()
            .await
            .unwrap();
    })
}

/// `x-amz-restore` of `key`, if S3 says anything.
fn restore_state(moto: &Moto, key: &str) -> Option<String> {
    moto.s3(|s3| async move {
        s3.head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .restore()
            .map(str::to_owned)
    })
}

/// Measured on moto 5.2.1: GetObject on a GLACIER or DEEP_ARCHIVE object answers 403
/// `InvalidObjectState` (with its StorageClass); RestoreObject answers 202 and the object is
/// restored at once (`ongoing-request="false"`); a second RestoreObject answers 200.
#[test]
fn archived_objects_are_not_verified_and_acquire_restores_exactly_those_in_range() {
    let moto = Moto::start(&case().join("public-keys.json"));
    moto.upload(&case(), BUCKET);
    archive(&moto, LOG, "GLACIER");
    archive(&moto, DIGEST, "DEEP_ARCHIVE");
    // An archived log file of a later day, outside the range: never restored.
    let outside = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/05/111122223333_CloudTrail_us-east-1_20260105T0112Z_rUPlW7IsTESc77Q0.json.gz";
    moto.s3(|s3| async move {
        s3.put_object()
            .bucket(BUCKET)
            .key(outside)
            .body(gzip(b"{\"Records\":[]}").into())
            .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
            .send()
            .await
            .unwrap();
    });

    // Not verified, not unreadable: the run goes on and exits 1.
    let text = verify_s3(&moto, &[]);
    assert_eq!(text.code, 1, "{}{}", text.stdout, text.stderr);
    assert!(
        text.stdout.contains(&format!(
            "Log file\ts3://{BUCKET}/{LOG}\tNOT VERIFIED: archived (GLACIER), restore it first"
        )),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains(&format!(
        "Digest file\ts3://{BUCKET}/{DIGEST}\tNOT VERIFIED: archived (DEEP_ARCHIVE), restore it first"
    )), "{}", text.stdout);
    let report = json(&verify_s3(&moto, &["--format", "json"]));
    assert_eq!(finding_on(&report, LOG)["kind"], "log_archived");
    assert_eq!(finding_on(&report, DIGEST)["kind"], "digest_archived");

    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let plain = acquire(&moto, &evidence);
    assert_eq!(plain.code, 2, "incomplete: {}", plain.stderr);
    assert!(
        plain
            .stderr
            .contains("2 archived objects were not copied: restore requested now for 0"),
        "{}",
        plain.stderr
    );
    assert!(plain.stderr.contains(&format!("archived (GLACIER): {LOG}")));
    assert_eq!(
        restore_state(&moto, LOG),
        None,
        "nothing restored unless asked"
    );

    let mut asked = acquire_args(&evidence);
    asked.extend(["--restore-days", "2", "--restore-tier", "bulk"].map(String::from));
    let requested = run(&moto, &asked);
    assert_eq!(requested.code, 2, "{}", requested.stderr);
    assert!(requested.stderr.contains("2 archived objects were not copied: restore requested now for 2, already in progress for 0"), "{}", requested.stderr);
    assert!(restore_state(&moto, LOG).is_some());
    assert!(restore_state(&moto, DIGEST).is_some());
    assert_eq!(
        restore_state(&moto, outside),
        None,
        "only what the range needs"
    );

    // Restored (at once, in moto): the next run copies them, and everything is proven.
    let finished = run(&moto, &asked);
    assert_eq!(finished.code, 0, "{}", finished.stderr);
    assert_eq!(std::fs::read(evidence.join(LOG)).unwrap(), bytes_of(LOG));
    let offline = verify_offline(&evidence);
    assert_eq!(offline.code, 0, "{}", offline.stdout);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(evidence.join("trailproof-evidence.json")).unwrap())
            .unwrap();
    assert_eq!(meta["objects"][DIGEST]["storage_class"], "DEEP_ARCHIVE");
    assert_eq!(verify_s3(&moto, &[]).code, 0);
}

/// A caller without s3:ListBucketVersions still gets the verdicts, and a note saying that no
/// version was looked for; the run is not made to fail or to pass by it.
#[test]
fn versions_that_cannot_be_listed_are_noted_and_change_no_verdict() {
    let moto = versioned();
    put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, r#"{"versions_denied": true}"#).unwrap();
    let proxy = support::FaultProxy::start(&moto, &rules);

    let mut args = vec!["verify".to_owned(), format!("s3://{BUCKET}")];
    args.extend(case_args(&case()));
    args.extend(["--format", "json", "--endpoint-url"].map(String::from));
    args.push(proxy.endpoint());
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    let out = trailproof(&case(), &args, &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    let f = finding_on(&report, LOG);
    assert_eq!(f["kind"], "log_hash_mismatch");
    assert!(f.get("versions").is_none(), "{f}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("could not be listed") && notes.contains("s3:ListBucketVersions"),
        "{notes}"
    );
}

/// `validate-logs` keeps the AWS CLI's one line per object and says on it what the versions
/// hold.
#[test]
fn validate_logs_names_the_delivered_version_on_the_objects_line() {
    let moto = versioned();
    let delivered = versions(&moto, LOG)[0].clone();
    put(&moto, LOG, gzip(b"{\"Records\":[]}"), None);
    let keys = case().join("public-keys.json").display().to_string();
    let args = [
        "validate-logs",
        "--trail-arn",
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/management-trail",
        "--start-time",
        "2026-01-01T00:30:00Z",
        "--end-time",
        "2026-01-01T03:00:00Z",
        "--s3-bucket",
        BUCKET,
        "--region",
        "us-east-1",
        "--public-keys",
        &keys,
    ]
    .map(String::from);
    let out = run(&moto, &args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "Log file\ts3://{BUCKET}/{LOG}\tINVALID: hash value doesn't match; what CloudTrail delivered is still in the bucket, proven by its hash or signature: version {delivered} ("
        )),
        "{}",
        out.stderr
    );
}

/// Found by the red team: a log whose current version is the same bytes moved to GLACIER was
/// "recovered" from the older version by `acquire`, and the offline copy then said the bucket
/// overwrote it. An archived object is waiting for a restore, not tampered with.
#[test]
fn an_archived_current_version_is_not_recovered_as_an_overwrite() {
    let moto = versioned();
    archive(&moto, LOG, "GLACIER");
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let out = acquire(&moto, &evidence);
    assert_eq!(out.code, 2, "incomplete: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("archived (GLACIER): {LOG}")),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("recovered from an earlier version"),
        "{}",
        out.stderr
    );
    assert!(!evidence.join(LOG).exists(), "nothing copied in its place");
    let offline = json(&verify_offline(&evidence));
    let kinds: Vec<&str> = offline["chains"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"overwritten_in_bucket"), "{kinds:?}");
    assert_eq!(finding_on(&offline, LOG)["kind"], "log_missing");
}

/// Found by the red team: a log file and the newest digest deleted from an unversioned bucket
/// after a first acquisition. The second acquisition kept their copies and recorded nothing,
/// so the copy verified valid while the bucket did not. The copies stay (they are what
/// CloudTrail delivered), and the copy's `verify` says the bucket lost them; once the objects
/// are back, a later acquisition drops the mark.
#[test]
fn objects_deleted_after_an_acquisition_are_reported_by_the_copy_made_again() {
    const NEWEST: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/01/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_20260101T032058Z.json.gz";
    let moto = Moto::start(&case().join("public-keys.json"));
    moto.upload(&case(), BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let first = acquire(&moto, &evidence);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(verify_offline(&evidence).code, 0);

    for key in [LOG, NEWEST] {
        moto.delete(BUCKET, key);
    }
    assert_eq!(verify_s3(&moto, &[]).code, 1);
    let again = acquire(&moto, &evidence);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let offline = verify_offline(&evidence);
    assert_eq!(offline.code, 1, "{}", offline.stdout);
    let report = json(&offline);
    for key in [LOG, NEWEST] {
        assert!(again.stderr.contains(&format!("no longer in the bucket (the copy of an earlier acquisition is kept, recorded as gone): {key}")), "{}", again.stderr);
        assert_eq!(bytes_of(key), std::fs::read(evidence.join(key)).unwrap());
        let f = finding_on(&report, key);
        assert_eq!(f["kind"], "deleted_in_bucket", "{f}");
    }

    put(&moto, LOG, bytes_of(LOG), None);
    put(&moto, NEWEST, bytes_of(NEWEST), Some(signature_of(NEWEST)));
    let back = acquire(&moto, &evidence);
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(verify_offline(&evidence).code, 0, "the marks are dropped");

    // Found by the red team: another trail's prefix acquired into the same directory marked
    // every object of this one gone, though none had left the bucket.
    moto.upload_more(&cases_dir().join("clean-prefix"), BUCKET);
    let mut other = acquire_args(&evidence);
    other[1] = format!("s3://{BUCKET}/cloudtrail");
    let out = run(&moto, &other);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let meta = std::fs::read_to_string(evidence.join("trailproof-evidence.json")).unwrap();
    assert!(!meta.contains("\"gone\""), "{meta}");
}

/// Found by the red team: a log file of the day before the range, named by a digest of the
/// range, was copied, then deleted; no listing of the next acquisition has its day folder, so
/// nothing marked it, and the copy verified valid where the bucket did not.
#[test]
fn a_log_of_the_day_before_named_by_the_range_is_recorded_gone_too() {
    let corpus = trailproof_testgen::World::new(BUCKET)
        .start("2025-12-31T22:00:00Z".parse().unwrap())
        .hours(4)
        .logs_per_hour(2)
        .build();
    let (_guard, case) = support::written(&corpus);
    let moto = Moto::start(&case.join("public-keys.json"));
    moto.upload(&case, BUCKET);
    let range = [
        "--start-time",
        "2026-01-01T00:00:00Z",
        "--end-time",
        "2026-01-01T01:30:00Z",
    ];
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let mut args = vec![
        "acquire".to_owned(),
        format!("s3://{BUCKET}"),
        evidence.display().to_string(),
    ];
    args.extend(range.map(str::to_owned));
    args.extend([
        "--public-keys".to_owned(),
        case.join("public-keys.json").display().to_string(),
    ]);
    let first = run(&moto, &args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    // The day before's last log file: the range's first digest names it.
    let before = support::keys_under(&evidence)
        .into_iter()
        .filter(|k| k.contains("/CloudTrail/") && k.contains("/2025/12/31/"))
        .max()
        .expect("a log file of the day before");
    moto.delete(BUCKET, &before);
    let again = run(&moto, &args);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains(&before), "{}", again.stderr);
    let mut offline = vec!["verify".to_owned(), evidence.display().to_string()];
    offline.extend(range.map(str::to_owned));
    offline.extend([
        "--public-keys".to_owned(),
        case.join("public-keys.json").display().to_string(),
    ]);
    let out = trailproof(&case, &offline, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("acquired again"), "{}", out.stdout);
}
