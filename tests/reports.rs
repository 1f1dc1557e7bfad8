//! Signed reports, `report verify`, the independent Python verifier, JSONL, and determinism, over
//! the committed cases in `testdata/cases/` and `testdata/sample`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use jiff::Timestamp;
use serde_json::Value;
use trailproof::core::finding::Finding;
use trailproof::engine;
use trailproof::report::audit::{Document, RunInfo};
use trailproof::report::dsse::Trust;
use trailproof::report::signing::{Certificate, PublicKey, SigningKey};
use trailproof::report::statement::{self, Signer};
use trailproof::report::{html, json, jsonl, Report};
use trailproof::source::local::LocalEvidence;
use trailproof::source::PinnedKeys;

mod support;
use support::{case_args, cases_dir, expected, repo};

fn key_path(name: &str) -> PathBuf {
    repo().join("testdata/report-keys").join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every committed case and the README sample.
fn cases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    out.sort();
    out.push(repo().join("testdata/sample"));
    assert!(out.len() > 20, "the committed cases are missing");
    out
}

fn trailproof(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailproof"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `trailproof verify` on a case with its own arguments plus `extra`.
fn verify_case(case: &Path, extra: &[&str]) -> Output {
    let args = case_args(case);
    let mut all: Vec<&str> = vec!["verify", "bucket"];
    all.extend(args.iter().map(String::as_str));
    all.extend(extra);
    trailproof(case, &all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The Python `cryptography` verifier in tests/interop. Fails (never skips) without Python.
fn python_verify(envelope: &Path, trust: &[&str]) -> Output {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the interop test and could not run: {e}")
        });
    assert!(
        probe.status.success(),
        "python3 cannot import `cryptography` (pip install cryptography): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    Command::new("python3")
        .arg(repo().join("tests/interop/verify_dsse.py"))
        .arg(envelope)
        .args(trust)
        .output()
        .unwrap()
}

fn decode_payload(envelope: &[u8]) -> Value {
    let env: Value = serde_json::from_slice(envelope).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn without(mut v: Value, fields: &[&str]) -> Value {
    for f in fields {
        v.as_object_mut().unwrap().remove(*f);
    }
    v
}

/// Sign every case (the three key types in turn), verify with trailproof by key and by CA, and
/// with the independent Python implementation; the predicate is the JSON report.
#[test]
fn every_case_signs_and_verifies_with_trailproof_and_python() {
    let tmp = tempfile::tempdir().unwrap();
    let kinds = ["ed25519", "p256", "rsa2048"];
    let ca = key_path("ca.pem");
    for (i, case) in cases().iter().enumerate() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let kind = kinds[i % kinds.len()];
        let env_path = tmp.path().join(format!("{name}.dsse.json"));
        let key = key_path(&format!("{kind}.pem"));
        let cert = key_path(&format!("{kind}.cert.pem"));
        let run = verify_case(
            case,
            &[
                "--format",
                "json",
                "--sign-key",
                key.to_str().unwrap(),
                "--sign-cert",
                cert.to_str().unwrap(),
                "--sign-out",
                env_path.to_str().unwrap(),
            ],
        );
        let want_code = expected(case)["exit_code"].as_i64().unwrap() as i32;
        assert_eq!(run.status.code(), Some(want_code), "{name}: {run:?}");
        let report: Value = serde_json::from_slice(&run.stdout).unwrap();
        let envelope = read(&env_path);
        let statement = decode_payload(&envelope);
        assert_eq!(
            statement["predicateType"],
            "https://trailproof.dev/verification-report/v1"
        );
        assert_eq!(
            without(statement["predicate"].clone(), &["run", "signer"]),
            without(report, &["run"]),
            "{name}: the signed predicate is the report"
        );

        let public = key_path(&format!("{kind}.pub.pem"));
        for trust in [
            ["--key", public.to_str().unwrap()],
            ["--ca", ca.to_str().unwrap()],
        ] {
            let mut args = vec!["report", "verify", env_path.to_str().unwrap()];
            args.extend(trust);
            let v = trailproof(&repo(), &args);
            assert_eq!(v.status.code(), Some(0), "{name} {trust:?}: {v:?}");
            let text = stdout(&v);
            assert!(text.contains("intact"), "{name}: {text}");
            assert!(
                text.contains(&format!("(exit_code {want_code})")),
                "{name}: {text}"
            );
            let py = python_verify(&env_path, &trust);
            assert_eq!(py.status.code(), Some(0), "{name} python {trust:?}: {py:?}");
            assert!(
                stdout(&py).contains(&format!("exit_code={want_code}")),
                "{name}: {py:?}"
            );
        }
    }
}

/// Every single-byte change of a real envelope is detected: verification fails, whatever byte
/// changed and however (every position flipped one way, a dense sample of positions more ways).
#[test]
fn every_byte_change_of_an_envelope_is_detected() {
    let case = repo().join("testdata/cases/log-modified");
    let tmp = tempfile::tempdir().unwrap();
    let env_path = tmp.path().join("e.json");
    for kind in ["ed25519", "p256"] {
        let key = key_path(&format!("{kind}.pem"));
        let cert = key_path(&format!("{kind}.cert.pem"));
        let run = verify_case(
            &case,
            &[
                "--sign-key",
                key.to_str().unwrap(),
                "--sign-cert",
                cert.to_str().unwrap(),
                "--sign-out",
                env_path.to_str().unwrap(),
            ],
        );
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        let envelope = read(&env_path);
        let public = PublicKey::from_pem(&read(&key_path(&format!("{kind}.pub.pem")))).unwrap();
        let ca = Certificate::from_pem(&read(&key_path("ca.pem"))).unwrap();
        let now = Timestamp::now();
        statement::verify(&envelope, Trust::Key(&public), now).unwrap();
        statement::verify(&envelope, Trust::Ca(&ca), now).unwrap();

        // Outside the payload's base64 (field names, quotes, key id, signature, certificate,
        // the final newline) every position; inside it, where any change alters the signed bytes,
        // every 5th. A sample (every 13th position) gets more kinds of change, under the CA too.
        // The ECDSA envelope is sampled more thinly: its verification is slower.
        let text = String::from_utf8(envelope.clone()).unwrap();
        let payload_start = text.find(r#"{"payload":""#).unwrap() + 12;
        let payload_end = text.find(r#"","payloadType""#).unwrap();
        let step = |pos: usize| {
            let inside = (payload_start..payload_end).contains(&pos);
            match (kind, inside) {
                ("ed25519", false) => 1,
                ("ed25519", true) => 5,
                (_, false) => 3,
                (_, true) => 29,
            }
        };
        let mut changed = 0;
        let mut pos = 0;
        while pos < envelope.len() {
            let sampled = pos % 13 == 0;
            let masks: &[u8] = if sampled {
                &[0x01, 0x20, 0x80, 0xff]
            } else {
                &[0x01]
            };
            for mask in masks {
                let mut bad = envelope.clone();
                bad[pos] ^= mask;
                let trusts: &[Trust] = if sampled {
                    &[Trust::Key(&public), Trust::Ca(&ca)]
                } else {
                    &[Trust::Key(&public)]
                };
                for trust in trusts {
                    assert!(
                        statement::verify(&bad, *trust, now).is_err(),
                        "{kind}: byte {pos} ^ {mask:#04x} ({:?}) went undetected",
                        char::from(envelope[pos])
                    );
                }
                changed += 1;
            }
            pos += step(pos);
        }
        // A removed or added byte as well.
        for pos in (0..envelope.len()).step_by(97) {
            let mut shorter = envelope.clone();
            shorter.remove(pos);
            let mut longer = envelope.clone();
            longer.insert(pos, b' ');
            for bad in [shorter, longer] {
                assert!(statement::verify(&bad, Trust::Key(&public), now).is_err());
            }
        }
        assert!(
            changed > (envelope.len() - payload_end) / 3,
            "{kind}: {changed} changes"
        );
        eprintln!(
            "{kind}: {} bytes, {changed} single-byte changes, all detected",
            envelope.len()
        );
    }
}

/// The Python verifier is not a rubber stamp: it refuses what trailproof refuses.
#[test]
fn python_refuses_tampered_envelopes() {
    let case = repo().join("testdata/cases/clean-plain");
    let tmp = tempfile::tempdir().unwrap();
    let env_path = tmp.path().join("e.json");
    let key = key_path("rsa2048.pem");
    let cert = key_path("rsa2048.cert.pem");
    let run = verify_case(
        &case,
        &[
            "--sign-key",
            key.to_str().unwrap(),
            "--sign-cert",
            cert.to_str().unwrap(),
            "--sign-out",
            env_path.to_str().unwrap(),
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let good: Value = serde_json::from_slice(&read(&env_path)).unwrap();
    let public = key_path("rsa2048.pub.pem");
    let other_ca = key_path("other-ca.pem");
    let b64 = base64::engine::general_purpose::STANDARD;

    let mut statement = decode_payload(&read(&env_path));
    statement["predicate"]["exit_code"] = 1.into();
    let mut forged_payload = good.clone();
    forged_payload["payload"] = b64.encode(serde_json::to_vec(&statement).unwrap()).into();
    let mut forged_sig = good.clone();
    let mut sig = b64
        .decode(good["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    sig[10] ^= 1;
    forged_sig["signatures"][0]["sig"] = b64.encode(sig).into();
    let mut other_cert = good.clone();
    other_cert["signatures"][0]["certificate"] =
        b64.encode(read(&key_path("p256.cert.pem"))).into();
    let mut no_cert = good.clone();
    no_cert["signatures"][0]
        .as_object_mut()
        .unwrap()
        .remove("certificate");

    let trust_key = ["--key", public.to_str().unwrap()];
    for (what, env, trust) in [
        ("payload", &forged_payload, trust_key),
        ("signature", &forged_sig, trust_key),
        ("certificate", &other_cert, trust_key),
        ("removed certificate", &no_cert, trust_key),
        ("other CA", &good, ["--ca", other_ca.to_str().unwrap()]),
    ] {
        let path = tmp.path().join("bad.json");
        let mut bytes = serde_json::to_vec(env).unwrap();
        bytes.push(b'\n');
        std::fs::write(&path, &bytes).unwrap();
        let py = python_verify(&path, &trust);
        assert_eq!(py.status.code(), Some(1), "python, {what}: {py:?}");
        assert!(stdout(&py).starts_with("NOT INTACT"), "{what}: {py:?}");
        let ours = trailproof(
            &repo(),
            &[
                "report",
                "verify",
                path.to_str().unwrap(),
                trust[0],
                trust[1],
            ],
        );
        assert_eq!(ours.status.code(), Some(1), "trailproof, {what}: {ours:?}");
        assert!(stdout(&ours).contains("NOT INTACT"), "{what}: {ours:?}");
    }
}

/// The report of a case through the library, with the case's flags turned into settings the
/// way the CLI turns them.
fn library_report(case: &Path, threads: usize, sink: Option<engine::FindingSink>) -> Report {
    let mut settings = engine::Settings::default();
    let mut keys = None;
    let args = case_args(case);
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            panic!("flags come with a value: {args:?}")
        };
        match flag.as_str() {
            "--s3-bucket" => settings.bucket = Some(value.clone()),
            "--start-time" => settings.start = Some(value.parse().unwrap()),
            "--end-time" => settings.end = Some(value.parse().unwrap()),
            // Paths in the case's flags are relative to the case directory.
            "--public-keys" => keys = Some(PinnedKeys::from_file(&case.join(value)).unwrap()),
            "--head-signature" => {
                let (key, sig) = value.split_once('=').unwrap();
                settings
                    .head_signatures
                    .insert(key.to_owned(), hex::decode(sig).unwrap());
            }
            other => panic!("a flag the cases do not use: {other}"),
        }
    }
    let keys = keys.expect("cases pin their keys");
    let evidence = LocalEvidence::open(&case.join("bucket")).unwrap();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| {
            engine::verify_streaming(&evidence, &keys, &settings, sink, &engine::NoObserver)
        })
        .unwrap()
}

const FIXED: RunInfo = RunInfo {
    started: Timestamp::UNIX_EPOCH,
    finished: Timestamp::UNIX_EPOCH,
};

/// With the run's clock fixed, every rendering and the signed envelope (Ed25519 signatures are
/// deterministic) are byte-identical at 1 and 4 threads; the engine's sink sees every finding
/// once, in report order, one chain at a time.
#[test]
fn reports_are_byte_identical_at_any_thread_count_and_the_sink_sees_everything_in_order() {
    let signer = Signer::new(
        SigningKey::from_pem(&read(&key_path("ed25519.pem"))).unwrap(),
        Some(Certificate::from_pem(&read(&key_path("ed25519.cert.pem"))).unwrap()),
    )
    .unwrap();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let mut renderings: Vec<Vec<Vec<u8>>> = Vec::new();
        for threads in [1, 4] {
            let batches = std::sync::Mutex::new(Vec::<(Option<String>, Vec<Finding>)>::new());
            let sink = |chain: Option<&trailproof::report::ChainInfo>, f: &[Finding]| {
                batches
                    .lock()
                    .unwrap()
                    .push((chain.map(|c| c.trail_arn.clone()), f.to_vec()));
            };
            let report = library_report(&case, threads, Some(&sink));
            let batches = batches.into_inner().unwrap();
            assert_eq!(
                batches.len(),
                report.chains.len() + 1,
                "{name}: one batch per chain, then the unchained pass"
            );
            let streamed: Vec<&Finding> = batches.iter().flat_map(|(_, f)| f).collect();
            let reported: Vec<&Finding> = report.all_findings().collect();
            assert_eq!(streamed, reported, "{name}: sink order");

            let doc = Document::new(&report, FIXED);
            let mut out = Vec::new();
            let mut j = Vec::new();
            json::write(&mut j, &doc).unwrap();
            out.push(j);
            let mut h = Vec::new();
            html::write(&mut h, &doc).unwrap();
            out.push(h);
            let mut l = Vec::new();
            for (c, f) in doc.chains.iter().map(|c| (Some(c.chain), c.findings)) {
                jsonl::write_findings(&mut l, c, f).unwrap();
            }
            jsonl::write_findings(&mut l, None, doc.unchained).unwrap();
            jsonl::write_summary(&mut l, &doc).unwrap();
            out.push(l);
            out.push(signer.seal(&doc, statement::MAX_OBJECT_SUBJECTS).unwrap());
            renderings.push(out);
        }
        assert!(
            renderings[0] == renderings[1],
            "{name}: a rendering differs between 1 and 4 threads"
        );
    }
}

/// A large run names the manifest by its digest instead of each object; both verifiers accept
/// it and check it against the signed manifest.
#[test]
fn the_manifest_subject_form_verifies_with_trailproof_and_python() {
    let case = repo().join("testdata/sample");
    let report = library_report(&case, 2, None);
    let key = SigningKey::from_pem(&read(&key_path("p256.pem"))).unwrap();
    let signer = Signer::new(key, None).unwrap();
    let doc = Document::new(&report, FIXED);
    let envelope = signer.seal(&doc, 3).unwrap();
    let statement = decode_payload(&envelope);
    assert_eq!(statement["subject"].as_array().unwrap().len(), 1);
    assert_eq!(statement["subject"][0]["name"], statement::MANIFEST_SUBJECT);
    assert!(doc.manifest.len() > 3);

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.json");
    std::fs::write(&path, &envelope).unwrap();
    let public = key_path("p256.pub.pem");
    let trust = ["--key", public.to_str().unwrap()];
    let ours = trailproof(
        &repo(),
        &[
            "report",
            "verify",
            path.to_str().unwrap(),
            trust[0],
            trust[1],
        ],
    );
    assert_eq!(ours.status.code(), Some(0), "{ours:?}");
    assert!(stdout(&ours).contains("subjects: the manifest's digest"));
    let py = python_verify(&path, &trust);
    assert_eq!(py.status.code(), Some(0), "{py:?}");
    assert!(stdout(&py).contains("subjects=1 "), "{py:?}");
    // Without a certificate there is nothing for a CA to vouch for.
    let ca = key_path("ca.pem");
    let ours = trailproof(
        &repo(),
        &[
            "report",
            "verify",
            path.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
        ],
    );
    assert_eq!(ours.status.code(), Some(1), "{ours:?}");
}

/// Bad signing material stops `verify` before it runs (exit 2, no report, no envelope); a
/// missing envelope or key file is exit 2 for `report verify`.
#[test]
fn unusable_signing_keys_and_files_are_errors_not_findings() {
    let case = repo().join("testdata/cases/clean-plain");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never.json");
    for (key, cert, says) in [
        ("ed25519.pem", "p256.cert.pem", "not for key"),
        ("rsa1024.pem", "", "1024 bits"),
        ("p384.pem", "", "not an Ed25519, ECDSA P-256 or RSA key"),
        ("p256.pub.pem", "", "PRIVATE KEY"),
    ] {
        let key = key_path(key);
        let cert = key_path(cert);
        let mut extra = vec![
            "--sign-key",
            key.to_str().unwrap(),
            "--sign-out",
            out.to_str().unwrap(),
        ];
        if cert.is_file() {
            extra.extend(["--sign-cert", cert.to_str().unwrap()]);
        }
        let run = verify_case(&case, &extra);
        assert_eq!(run.status.code(), Some(2), "{says}: {run:?}");
        assert!(run.stdout.is_empty(), "{says}: printed a report");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(says), "{says}: {err}");
        assert!(!out.exists());
    }
    // --sign-key needs --sign-out.
    let key = key_path("p256.pem");
    let run = verify_case(&case, &["--sign-key", key.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");

    let public = key_path("p256.pub.pem");
    let missing = tmp.path().join("missing.json");
    let r = trailproof(
        &repo(),
        &[
            "report",
            "verify",
            missing.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    std::fs::write(&missing, b"{}\n").unwrap();
    let r = trailproof(
        &repo(),
        &[
            "report",
            "verify",
            missing.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r.status.code(),
        Some(2),
        "a private key is not a public key: {r:?}"
    );
    let r = trailproof(
        &repo(),
        &[
            "report",
            "verify",
            missing.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status.code(), Some(1), "{r:?}");
}

/// `--format jsonl`: one finding per line, then the summary; the same findings in the same
/// order as the JSON report, and the same lines at any thread count (but for the clock).
#[test]
fn jsonl_lists_every_finding_then_a_summary() {
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let lines_of = |threads: &str| {
            let run = verify_case(&case, &["--format", "jsonl", "--threads", threads]);
            let code = run.status.code();
            let lines: Vec<Value> = stdout(&run)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
                .collect();
            (code, lines)
        };
        let (code, lines) = lines_of("1");
        let json_run = verify_case(&case, &["--format", "json"]);
        assert_eq!(code, json_run.status.code(), "{name}");
        let report: Value = serde_json::from_slice(&json_run.stdout).unwrap();
        let mut want: Vec<Value> = Vec::new();
        for c in report["chains"].as_array().unwrap() {
            for f in c["findings"].as_array().unwrap() {
                let mut line = serde_json::json!({"type": "finding", "chain": c["chain"]});
                line.as_object_mut()
                    .unwrap()
                    .extend(f.as_object().unwrap().clone());
                want.push(line);
            }
        }
        for f in report["unchained"].as_array().unwrap() {
            let mut line = serde_json::json!({"type": "finding", "chain": null});
            line.as_object_mut()
                .unwrap()
                .extend(f.as_object().unwrap().clone());
            want.push(line);
        }
        let (summary, findings) = lines.split_last().unwrap();
        assert_eq!(findings, want.as_slice(), "{name}: finding lines");
        assert_eq!(summary["type"], "summary");
        assert_eq!(summary["exit_code"], report["exit_code"], "{name}");
        assert_eq!(summary["totals"], report["totals"], "{name}");
        assert_eq!(summary["ledger"], report["ledger"], "{name}");
        assert_eq!(summary["not_proven"], report["not_proven"], "{name}");

        let (_, four) = lines_of("4");
        let strip = |mut l: Vec<Value>| {
            l.last_mut().unwrap().as_object_mut().unwrap().remove("run");
            l
        };
        assert_eq!(strip(four), strip(lines.clone()), "{name}: 4 threads");
    }
}

/// The HTML ledger table counts what the JSON report's ledger counts, chain by chain and in
/// total (issue 10 F: the page used to show amber "not verified" ends on a clean copy).
#[test]
fn the_html_ledger_counts_what_the_json_ledger_counts() {
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let report: Value =
            serde_json::from_slice(&verify_case(&case, &["--format", "json"]).stdout).unwrap();
        let page = stdout(&verify_case(&case, &["--format", "html"]));
        let table = page
            .split("<table class=\"grid\" id=\"ledger\">")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or_else(|| panic!("{name}: no ledger table"));
        let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
        let states = [
            "verified",
            "verified-empty",
            "gap",
            "missing",
            "invalid",
            "not-verified",
        ];
        let cells = |row: &str| -> Vec<u64> {
            states
                .iter()
                .map(|s| {
                    let at = format!("<td class=\"h-{s}\">");
                    row.split(&at)
                        .nth(1)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect()
        };
        let want = |counts: &Value| -> Vec<u64> {
            states.iter().map(|s| counts[s].as_u64().unwrap()).collect()
        };
        let ledgers: Vec<&Value> = report["chains"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["ledger"].is_null())
            .map(|c| &c["ledger"])
            .collect();
        assert_eq!(
            rows.len(),
            ledgers.len() + 1,
            "{name}: a row per chain and a total"
        );
        for (row, ledger) in rows.iter().zip(&ledgers) {
            assert_eq!(cells(row), want(&ledger["counts"]), "{name}");
        }
        assert_eq!(
            cells(rows.last().unwrap()),
            want(&report["ledger"]["counts"]),
            "{name}: total"
        );
        if report["exit_code"] == 0 {
            assert!(
                !page.contains("hour not-verified") && !page.contains("hours not-verified"),
                "{name}: a clean copy draws unproven hours"
            );
        }
    }
}
