//! The S3 path, end to end, against a real moto server on loopback through the real SDK:
//! `verify s3://` on every committed case, `acquire` + offline `verify` equal to online
//! `verify`, `keys fetch` and online keys, and `validate-logs` against the AWS CLI itself.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use support::{assert_report_matches, case_args, case_names, cases_dir, trailproof, Moto, Output};

const BUCKET: &str = "acme-cloudtrail-logs";

fn keys_of(case: &str) -> std::path::PathBuf {
    cases_dir().join(case).join("public-keys.json")
}

/// `trailproof verify s3://BUCKET` with the case's own arguments.
fn verify_s3(moto: &Moto, case: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify".to_owned(), format!("s3://{BUCKET}")];
    args.extend(case_args(case));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--endpoint-url".to_owned(), moto.endpoint()]);
    trailproof(case, &args, &moto.env())
}

/// The findings of a JSON report without the fields that name the source.
fn findings(out: &Output) -> Value {
    let mut v: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    let o = v.as_object_mut().unwrap();
    for k in ["source", "keys", "notes"] {
        o.remove(k);
    }
    v
}

#[test]
fn verify_s3_gives_every_case_its_expected_verdicts() {
    let moto = Moto::start(&keys_of("clean-plain"));
    for name in case_names() {
        let case = cases_dir().join(&name);
        moto.reset();
        moto.upload(&case, BUCKET);
        let out = verify_s3(&moto, &case, &["--format", "json"]);
        assert_report_matches(&format!("s3 {name}"), &case, &out);
    }
}

#[test]
fn acquire_then_offline_verify_equals_online_verify() {
    let moto = Moto::start(&keys_of("clean-plain"));
    for name in [
        "clean-org",
        "digest-deleted-two",
        "log-modified",
        "log-injected",
        "clean-plain-nometa",
    ] {
        let case = cases_dir().join(name);
        moto.reset();
        moto.upload(&case, BUCKET);
        let online = verify_s3(&moto, &case, &["--format", "json"]);

        let dir = tempfile::tempdir().unwrap();
        let evidence = dir.path().join("evidence");
        let args = case_args(&case);
        let range: Vec<String> = args
            .windows(2)
            .filter(|w| w[0] == "--start-time" || w[0] == "--end-time")
            .flat_map(|w| w.to_vec())
            .collect();
        let mut acquire = vec![
            "acquire".to_owned(),
            format!("s3://{BUCKET}"),
            evidence.display().to_string(),
        ];
        acquire.extend(range.clone());
        acquire.extend(["--endpoint-url".to_owned(), moto.endpoint()]);
        let first = trailproof(&case, &acquire, &moto.env());
        assert_eq!(first.code, 0, "{name}: acquire failed: {}", first.stderr);
        assert!(evidence.join("trailproof-evidence.json").exists());
        let record: Value = serde_json::from_slice(
            &std::fs::read(evidence.join("trailproof-acquisition.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            record[0]["caller"]["Ok"]["account"], "123456789012",
            "{name}: STS identity recorded"
        );

        let mut offline_args = vec!["verify".to_owned(), evidence.display().to_string()];
        offline_args.extend(args.clone());
        offline_args.extend(["--format".to_owned(), "json".to_owned()]);
        let offline = trailproof(&case, &offline_args, &[]);
        assert_eq!(
            offline.code, online.code,
            "{name}: exit status offline vs online"
        );
        assert_eq!(
            findings(&offline),
            findings(&online),
            "{name}: offline verify differs from online verify"
        );

        // A second acquisition fetches nothing: everything is present and unchanged.
        let second = trailproof(&case, &acquire, &moto.env());
        assert_eq!(second.code, 0, "{name}: {}", second.stderr);
        assert!(
            second.stderr.contains(" 0 downloaded"),
            "{name}: second acquire fetched again: {}",
            second.stderr
        );
    }
}

#[test]
fn keys_come_from_cloudtrail_when_not_pinned() {
    let case = cases_dir().join("clean-key-rotation");
    let moto = Moto::start(&keys_of("clean-key-rotation"));
    moto.upload(&case, BUCKET);

    // Online keys give the same verdicts as the pinned file.
    let args: Vec<String> = case_args(&case);
    let mut online = vec!["verify".to_owned(), format!("s3://{BUCKET}")];
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--public-keys" {
            skip = true;
            continue;
        }
        online.push(a.clone());
    }
    online.extend([
        "--format".into(),
        "json".into(),
        "--endpoint-url".into(),
        moto.endpoint(),
    ]);
    let out = trailproof(&case, &online, &moto.env());
    assert_report_matches("online keys", &case, &out);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["origin"] == "cloudtrail:ListPublicKeys"));

    // `keys fetch` writes a file that `--public-keys` reads, with the same keys.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    let fetch = trailproof(
        &case,
        &[
            "keys".into(),
            "fetch".into(),
            "--region".into(),
            "us-east-1".into(),
            "--start-time".into(),
            "2026-01-01T00:00:00Z".into(),
            "--end-time".into(),
            "2026-01-01T05:00:00Z".into(),
            "--out".into(),
            file.display().to_string(),
            "--endpoint-url".into(),
            moto.endpoint(),
        ],
        &moto.env(),
    );
    assert_eq!(fetch.code, 0, "{}", fetch.stderr);
    let fingerprints = |p: &Path| -> BTreeSet<String> {
        let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        v["PublicKeyList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["Fingerprint"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!fingerprints(&file).is_empty());
    assert!(fingerprints(&file).is_subset(&fingerprints(&keys_of("clean-key-rotation"))));
    let mut pinned = online.clone();
    pinned.extend(["--public-keys".into(), file.display().to_string()]);
    let out = trailproof(&case, &pinned, &moto.env());
    assert_report_matches("fetched keys", &case, &out);
}
