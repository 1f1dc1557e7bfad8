//! RFC 3161 timestamps on signed reports, against a real TSA on loopback: `openssl ts -reply`
//! behind tests/support/tsa_server.py, with the test CA and TSA certificates of testdata/tsa.
//!
//! How an attacker would make a timestamp say what it should not, and the test for each: edit
//! the token (every byte is tried), move a token from another report, strip it (only a
//! verifier that asks for a time notices: `--tsa-ca`), bring a token from a TSA the verifier's
//! CA did not issue, from a certificate that may not timestamp, from an expired TSA
//! certificate, or replay a reply to another request to the signer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jiff::Timestamp;
use ring::rand::SystemRandom;
use serde_json::Value;
use trailproof::report::dsse::Trust;
use trailproof::report::signing::PublicKey;
use trailproof::report::statement;
use trailproof::report::timestamp::Request;
use trailproof::source::tsa::{post, TsaUrl};

mod support;
use support::{repo, serve, Output};

/// The test TSA (tests/support/tsa_server.py), stopped when dropped.
struct Tsa {
    child: Child,
    port: u16,
}

impl Tsa {
    fn start() -> Tsa {
        let dir = tsa_file("");
        let (child, port) = serve("tsa_server.py", &[dir.as_os_str()]);
        Tsa { child, port }
    }

    /// The URL of one of the server's TSAs (see its docstring).
    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// A token from TSA `name` over `signature`, taken out of the reply by openssl without any
    /// check: what an attacker could splice into an envelope.
    fn token(&self, name: &str, signature: &[u8], dir: &Path) -> Vec<u8> {
        let request = Request::new(signature, &SystemRandom::new()).unwrap();
        let reply = post(&TsaUrl::parse(&self.url(name)).unwrap(), request.der()).unwrap();
        let (reply_path, token_path) = (dir.join(format!("{name}.tsr")), dir.join("token.der"));
        std::fs::write(&reply_path, reply).unwrap();
        openssl(&[
            "ts",
            "-reply",
            "-in",
            reply_path.to_str().unwrap(),
            "-token_out",
            "-out",
            token_path.to_str().unwrap(),
        ]);
        std::fs::read(token_path).unwrap()
    }
}

impl Drop for Tsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tsa_file(name: &str) -> PathBuf {
    repo().join("testdata/tsa").join(name)
}

fn report_key(name: &str) -> PathBuf {
    repo().join("testdata/report-keys").join(name)
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Runs openssl; panics with its stderr if it fails.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `trailproof verify` of the README sample, signed with the P-256 test key into `out`.
fn sign(out: &Path, extra: &[&str]) -> Output {
    let sample = repo().join("testdata/sample");
    let mut args = vec![
        "verify".to_owned(),
        s(&sample.join("bucket")),
        "--public-keys".into(),
        s(&sample.join("public-keys.json")),
        "--sign-key".into(),
        s(&report_key("p256.pem")),
        "--sign-out".into(),
        s(out),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    support::trailproof(&repo(), &args, &[])
}

/// `trailproof report verify ENVELOPE --key p256.pub.pem` plus `extra`.
fn report_verify(envelope: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "report".to_owned(),
        "verify".into(),
        s(envelope),
        "--key".into(),
        s(&report_key("p256.pub.pem")),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    support::trailproof(&repo(), &args, &[])
}

fn signature_field(envelope: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(envelope).unwrap();
    v["signatures"][0].clone()
}

fn signature_of(envelope: &[u8]) -> Vec<u8> {
    STANDARD
        .decode(signature_field(envelope)["sig"].as_str().unwrap())
        .unwrap()
}

fn token_of(envelope: &[u8]) -> Vec<u8> {
    let sig = signature_field(envelope);
    assert_eq!(sig["timestamps"][0]["type"], "tsp");
    assert_eq!(sig["timestamps"].as_array().unwrap().len(), 1);
    STANDARD
        .decode(sig["timestamps"][0]["data"].as_str().unwrap())
        .unwrap()
}

/// The envelope with its timestamp removed and, if given, `token` put in its place, in the
/// exact form trailproof writes (the last field of the signature).
fn with_token(envelope: &[u8], token: Option<&[u8]>) -> Vec<u8> {
    let text = String::from_utf8(envelope.to_vec()).unwrap();
    let bare = match text.find(",\"timestamps\":[") {
        Some(i) => format!("{}}}]}}\n", &text[..i]),
        None => text,
    };
    match token {
        None => bare.into_bytes(),
        Some(t) => format!(
            "{},\"timestamps\":[{{\"type\":\"tsp\",\"data\":\"{}\"}}]}}]}}\n",
            &bare[..bare.len() - 4],
            STANDARD.encode(t)
        )
        .into_bytes(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn timestamp_line(out: &Output) -> &str {
    out.stdout
        .lines()
        .find(|l| l.starts_with("Timestamp\t"))
        .unwrap_or_else(|| panic!("no Timestamp line in:\n{}", out.stdout))
}

#[test]
fn a_timestamped_report_verifies_against_the_tsa_ca_for_each_key_type_and_form_and_openssl_agrees()
{
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    // (TSA path, the key that signs): openssl's tokens for each key type and for the older ESS
    // certificate id, and the re-signed token the attacks below start from (the control).
    for (name, key) in [
        ("p256", "p256"),
        ("p384", "p384"),
        ("rsa2048", "rsa2048"),
        ("ess-v1", "p256"),
        ("resigned", "p256"),
        ("resigned-key-id", "p256"),
    ] {
        let before = Timestamp::now().as_second();
        let env = dir.path().join(format!("{name}.dsse.json"));
        let pinned = s(&tsa_file(&format!("tsa-{key}.cert.pem")));
        let signer_cert = s(&report_key("p256.cert.pem"));
        let out = sign(
            &env,
            &[
                "--sign-cert",
                &signer_cert,
                "--tsa-url",
                &tsa.url(name),
                "--tsa-cert",
                &pinned,
            ],
        );
        let after = Timestamp::now().as_second();
        assert_eq!(out.code, 1, "the sample has findings: {}", out.stderr);
        assert!(out.stderr.contains("timestamped by"), "{}", out.stderr);
        let envelope = std::fs::read(&env).unwrap();
        let token = token_of(&envelope);

        let verified = report_verify(&env, &["--tsa-ca", &s(&tsa_file("ca.pem"))]);
        assert_eq!(verified.code, 0, "{name}: {}", verified.stdout);
        let line = timestamp_line(&verified);
        assert!(
            line.ends_with("the report existed no later than this"),
            "{line}"
        );
        assert!(
            line.contains(&format!("TSA \"CN=test TSA tsa-{key}")),
            "{line}"
        );
        assert!(line.contains("policy 1.3.6.1.4.1.59999.3161.1"), "{line}");
        let time: Timestamp = line["Timestamp\t".len()..][..20].parse().unwrap();
        assert!(
            (before - 1..=after + 1).contains(&time.as_second()),
            "{name}: genTime {time} outside the run"
        );
        assert!(verified.stdout.ends_with(
            "RESULT: the signed report is intact; it says: integrity findings (exit_code 1)\n"
        ));
        // The same with the signer's certificate checked against its CA: the two trust
        // anchors are independent.
        let by_ca = support::trailproof(
            &repo(),
            &[
                "report".into(),
                "verify".into(),
                s(&env),
                "--ca".into(),
                s(&report_key("ca.pem")),
                "--tsa-ca".into(),
                s(&tsa_file("ca.pem")),
            ],
            &[],
        );
        assert_eq!(by_ca.code, 0, "{}", by_ca.stdout);
        assert_eq!(timestamp_line(&by_ca), line);

        // openssl checks the same token over the same signature against the same CA (its `ts`
        // is built on PKCS#7, which cannot name a signer by key identifier).
        if name == "resigned-key-id" {
            continue;
        }
        let token_path = write(dir.path(), "token.der", &token);
        let digest = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &signature_of(&envelope),
        ));
        let ok = Command::new("openssl")
            .args(["ts", "-verify", "-token_in", "-in", &s(&token_path)])
            .args(["-digest", &digest, "-CAfile", &s(&tsa_file("ca.pem"))])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&ok.stdout).contains("Verification: OK"),
            "{name}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
}

#[test]
fn without_a_tsa_ca_the_time_is_shown_as_unchecked_and_stripping_the_token_leaves_the_report_as_signed(
) {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    assert_eq!(sign(&env, &["--tsa-url", &tsa.url("p256")]).code, 1);
    let unchecked = report_verify(&env, &[]);
    assert_eq!(unchecked.code, 0, "{}", unchecked.stdout);
    let line = timestamp_line(&unchecked);
    assert!(
        line.contains("claimed by TSA \"CN=test TSA tsa-p256")
            && line.contains("NOT CHECKED, nothing vouches for this TSA (give --tsa-ca CA.pem)"),
        "{line}"
    );

    // The token is outside the signature: without it the envelope is the report as signed,
    // and prints what a report without a timestamp always printed...
    let envelope = std::fs::read(&env).unwrap();
    let bare = write(dir.path(), "bare.dsse.json", &with_token(&envelope, None));
    let plain = report_verify(&bare, &[]);
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    let without_line: String = unchecked
        .stdout
        .lines()
        .filter(|l| !l.starts_with("Timestamp\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        plain.stdout.replace("bare.dsse.json", "r.dsse.json"),
        without_line
    );
    // ...so only a verifier that asks for a time notices it is gone.
    let asked = report_verify(&bare, &["--tsa-ca", &s(&tsa_file("ca.pem"))]);
    assert_eq!(asked.code, 1);
    assert_eq!(
        timestamp_line(&asked),
        "Timestamp\tNOT TRUSTED: the envelope has no timestamp token, and --tsa-ca asks for one"
    );
    assert!(asked
        .stdout
        .contains("RESULT: the signed report is intact, but its timestamp cannot be trusted"));
}

#[test]
fn a_report_signed_without_tsa_url_has_no_timestamps_field_and_no_timestamp_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    assert_eq!(sign(&env, &[]).code, 1);
    let envelope = std::fs::read(&env).unwrap();
    assert!(signature_field(&envelope).get("timestamps").is_none());
    let out = report_verify(&env, &[]);
    assert_eq!(out.code, 0);
    assert!(!out.stdout.contains("Timestamp"), "{}", out.stdout);
}

#[test]
fn every_byte_change_of_the_token_is_detected() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    assert_eq!(sign(&env, &["--tsa-url", &tsa.url("p256")]).code, 1);
    let envelope = std::fs::read(&env).unwrap();
    let token = token_of(&envelope);
    let key = PublicKey::from_pem(&std::fs::read(report_key("p256.pub.pem")).unwrap()).unwrap();
    let now = Timestamp::now();
    statement::verify(&with_token(&envelope, Some(&token)), Trust::Key(&key), now).unwrap();
    for i in 0..token.len() {
        let mut bad = token.clone();
        bad[i] ^= 0x01;
        let result = statement::verify(&with_token(&envelope, Some(&bad)), Trust::Key(&key), now);
        assert!(
            matches!(result, Err(statement::ReportError::Timestamp(_))),
            "a change at byte {i} of {} was not detected: {:?}",
            token.len(),
            result.map(|_| "the report verified")
        );
    }
    // And through the command: a changed genTime digit.
    let mut bad = token.clone();
    let at = token.windows(4).position(|w| w == b"2026").unwrap();
    bad[at + 3] = b'7';
    let tampered = write(
        dir.path(),
        "t.dsse.json",
        &with_token(&envelope, Some(&bad)),
    );
    let out = report_verify(&tampered, &["--tsa-ca", &s(&tsa_file("ca.pem"))]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(
            "NOT INTACT: timestamp token: the token's content does not match its signed digest"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn a_token_over_another_report_is_refused() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("a.dsse.json"),
        dir.path().join("b.dsse.json"),
    );
    assert_eq!(sign(&a, &["--tsa-url", &tsa.url("p256")]).code, 1);
    assert_eq!(sign(&b, &[]).code, 1);
    let token = token_of(&std::fs::read(&a).unwrap());
    let moved = with_token(&std::fs::read(&b).unwrap(), Some(&token));
    let moved = write(dir.path(), "moved.dsse.json", &moved);
    for extra in [&[][..], &["--tsa-ca", &s(&tsa_file("ca.pem"))]] {
        let out = report_verify(&moved, extra);
        assert_eq!(out.code, 1);
        assert!(
            out.stdout
                .contains("the token's imprint is not the SHA-256 of this report's signature"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn a_tsa_ca_that_did_not_issue_the_tsa_is_refused() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    assert_eq!(sign(&env, &["--tsa-url", &tsa.url("p256")]).code, 1);
    let out = report_verify(&env, &["--tsa-ca", &s(&tsa_file("other-ca.pem"))]);
    assert_eq!(out.code, 1);
    assert_eq!(
        timestamp_line(&out),
        "Timestamp\tNOT TRUSTED: the certificate was issued by \"CN=trailproof test TSA ca\", not by the CA \"CN=trailproof test TSA other-ca\""
    );
    // The report signers' CA is not a TSA CA either, though it is a CA.
    let out = report_verify(&env, &["--tsa-ca", &s(&report_key("ca.pem"))]);
    assert_eq!(out.code, 1);
    assert!(timestamp_line(&out).starts_with("Timestamp\tNOT TRUSTED"));
}

#[test]
fn a_token_from_a_certificate_without_the_timestamping_usage_is_refused() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    let out = sign(&env, &["--tsa-url", &tsa.url("notsa")]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("\"CN=test TSA notsa, O=trailproof tests\" is not a timestamp authority's certificate: it has no extendedKeyUsage"),
        "{}",
        out.stderr
    );
    assert!(
        !env.exists(),
        "no envelope is written when the timestamp fails"
    );

    // Spliced in by hand, the same token fails verification, with or without a TSA CA.
    assert_eq!(sign(&env, &[]).code, 1);
    let envelope = std::fs::read(&env).unwrap();
    let token = tsa.token("notsa", &signature_of(&envelope), dir.path());
    let spliced = write(
        dir.path(),
        "s.dsse.json",
        &with_token(&envelope, Some(&token)),
    );
    for extra in [&[][..], &["--tsa-ca", &s(&tsa_file("ca.pem"))]] {
        let out = report_verify(&spliced, extra);
        assert_eq!(out.code, 1);
        assert!(
            out.stdout
                .contains("is not a timestamp authority's certificate"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn a_token_without_the_ess_signing_certificate_attribute_is_refused() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let out = sign(
        &dir.path().join("r.dsse.json"),
        &["--tsa-url", &tsa.url("no-ess")],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("signed attribute signingCertificate: absent"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_token_from_an_expired_tsa_certificate_is_refused() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    let out = sign(&env, &["--tsa-url", &tsa.url("expired")]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(
            "the TSA's certificate \"CN=test TSA expired, O=trailproof tests\" is not valid at"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(sign(&env, &[]).code, 1);
    let envelope = std::fs::read(&env).unwrap();
    let token = tsa.token("expired", &signature_of(&envelope), dir.path());
    let spliced = write(
        dir.path(),
        "s.dsse.json",
        &with_token(&envelope, Some(&token)),
    );
    let out = report_verify(&spliced, &["--tsa-ca", &s(&tsa_file("ca.pem"))]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("is not valid at"), "{}", out.stdout);
}

#[test]
fn a_reply_to_another_request_is_refused_when_signing() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    let out = sign(&env, &["--tsa-url", &tsa.url("other-request")]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("the token does not carry the nonce of this request"),
        "{}",
        out.stderr
    );
    assert!(!env.exists());
}

#[test]
fn tsa_cert_pins_the_tsa_that_must_sign() {
    let tsa = Tsa::start();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    let other = s(&tsa_file("tsa-rsa2048.cert.pem"));
    let out = sign(&env, &["--tsa-url", &tsa.url("p256"), "--tsa-cert", &other]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("the token is signed by \"CN=test TSA tsa-p256, O=trailproof tests\", not by the pinned TSA certificate \"CN=test TSA tsa-rsa2048, O=trailproof tests\""),
        "{}",
        out.stderr
    );
    assert!(!env.exists());
}

#[test]
fn a_tsa_that_cannot_be_used_is_an_error_and_no_envelope_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("r.dsse.json");
    // Refused before the run starts.
    let out = sign(&env, &["--tsa-url", "https://tsa.example/"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("https:// is not supported"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "no run: {}", out.stdout);
    // Nothing listens on the port: the run is done, the envelope is not written.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = sign(&env, &["--tsa-url", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&format!("http://127.0.0.1:{port}/")),
        "{}",
        out.stderr
    );
    assert!(!env.exists());
    // A TSA flag without signing is refused by the command line.
    let out = support::trailproof(
        &repo(),
        &[
            "verify".into(),
            "x".into(),
            "--tsa-url".into(),
            "http://127.0.0.1/".into(),
        ],
        &[],
    );
    assert_eq!(out.code, 2);
}

/// Found by the red team: a certificate with a critical extension nothing here checks was
/// accepted (openssl refuses it, as RFC 5280 asks). A report signer's certificate with one,
/// issued by the test CA for the signing key, makes `report verify --ca` refuse the signer.
#[test]
fn a_certificate_with_an_unknown_critical_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ext = write(
        dir.path(),
        "ext.cnf",
        b"keyUsage=critical,digitalSignature\n1.3.6.1.4.1.99999.1=critical,DER:0500\n",
    );
    let csr = dir.path().join("signer.csr");
    let cert = dir.path().join("signer.pem");
    let key = report_key("p256.pem");
    openssl(&[
        "req",
        "-new",
        "-key",
        &s(&key),
        "-subj",
        "/CN=unknown critical",
        "-out",
        &s(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&tsa_file("ca.pem")),
        "-CAkey",
        &s(&tsa_file("ca-key.pem")),
        "-days",
        "3650",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    let env = dir.path().join("report.json");
    let out = sign(&env, &["--sign-cert", &s(&cert)]);
    assert!(out.code <= 1, "{}", out.stderr);
    let out = support::trailproof(
        &repo(),
        &[
            "report".into(),
            "verify".into(),
            s(&env),
            "--ca".into(),
            s(&tsa_file("ca.pem")),
        ],
        &[],
    );
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("critical extension 1.3.6.1.4.1.99999.1"),
        "{said}"
    );
}
