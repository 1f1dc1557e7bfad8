//! Shared by the integration tests: the committed cases, running the binary, comparing a
//! report with a case's expectations, and a real moto server on loopback.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A generated corpus written to a fresh directory: `(guard, case)`, the copy at
/// `case/bucket`.
pub fn written(corpus: &trailproof_testgen::Corpus) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case");
    corpus.write(&case).unwrap();
    (dir, case)
}

/// `corpus` as it was at `cut`: the digests that end later, and the log files they list, not
/// delivered yet (also gone from its evidence-metadata file).
pub fn corpus_as_of(
    corpus: &trailproof_testgen::Corpus,
    cut: jiff::Timestamp,
) -> trailproof_testgen::Corpus {
    let mut early = corpus.clone();
    for d in corpus.digests().iter().filter(|d| d.end > cut) {
        for key in d.logs.iter().chain([&d.key]) {
            early.objects.remove(key);
            if let Some(evidence) = early.evidence.as_mut() {
                evidence.remove(key);
            }
        }
    }
    early
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn cases_dir() -> PathBuf {
    repo().join("testdata/cases")
}

pub fn expected(case: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap()
}

/// The case's own arguments, as strings.
pub fn case_args(case: &Path) -> Vec<String> {
    expected(case)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `trailproof ARGS` in `dir` with extra environment.
pub fn trailproof(dir: &Path, args: &[String], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailproof"));
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub type Triple = (String, String, String);

/// (subject, kind, verdict) of every finding that is not valid, plus valid counts.
pub fn summarize(report: &Value) -> (Vec<Triple>, usize, usize) {
    let mut findings: Vec<&Value> = Vec::new();
    for chain in report["chains"].as_array().unwrap() {
        findings.extend(chain["findings"].as_array().unwrap());
    }
    findings.extend(report["unchained"].as_array().unwrap());
    let s = |f: &Value, k: &str| f[k].as_str().unwrap().to_owned();
    // An object has one finding; its further reasons are in `also`, each one listed here.
    let mut bad: Vec<_> = findings
        .iter()
        .filter(|f| f["verdict"] != "valid")
        .flat_map(|f| {
            let also = f["also"].as_array().cloned().unwrap_or_default();
            std::iter::once((s(f, "subject"), s(f, "kind"), s(f, "verdict"))).chain(
                also.into_iter()
                    .map(|r| (s(f, "subject"), s(&r, "kind"), s(&r, "verdict"))),
            )
        })
        .collect();
    bad.sort();
    let count = |kind: &str| findings.iter().filter(|f| f["kind"] == kind).count();
    (bad, count("digest_valid"), count("log_valid"))
}

/// Asserts that a JSON report (and the exit code that came with it) is what the case states.
pub fn assert_report_matches(name: &str, case: &Path, out: &Output) {
    let expected = expected(case);
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: no JSON report ({e}); stderr: {}", out.stderr));
    let (got, valid_digests, valid_logs) = summarize(&report);
    let mut want: Vec<Triple> = expected["findings"]
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
        (valid_digests as u64, valid_logs as u64),
        (
            expected["valid"]["digests"].as_u64().unwrap(),
            expected["valid"]["logs"].as_u64().unwrap()
        ),
        "{name}: valid (digests, logs)"
    );
    assert_eq!(
        out.code as i64,
        expected["exit_code"].as_i64().unwrap(),
        "{name}: exit status; stderr: {}",
        out.stderr
    );
    assert_eq!(
        report["exit_code"].as_i64().unwrap(),
        out.code as i64,
        "{name}: exit_code field"
    );
}

/// Every committed case name.
pub fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| cases_dir().join(n).join("expected.json").exists())
        .collect();
    names.sort();
    names
}

/// A moto server (S3 + CloudTrail + CloudWatch Logs + SQS, with ListPublicKeys added, PutLogEvents
/// of any age) on a free loopback port,
/// stopped when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts the server; `keys` is the key file ListPublicKeys answers from. Fails loudly if
    /// python3 or moto is missing: these tests are never skipped.
    pub fn start(keys: &Path) -> Moto {
        let (child, port) = serve("moto_server.py", &[keys.as_os_str()]);
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for any AWS client pointed at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Forgets every bucket and trail.
    pub fn reset(&self) {
        post(self.port, "/moto-api/reset", "");
    }

    #[cfg(feature = "aws")]
    /// Puts one object, whatever its key (`..`, a leading slash): what a hostile writer can.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            self.client()
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.to_vec().into())
                .send()
                .await
                .unwrap();
        });
    }

    #[cfg(feature = "aws")]
    /// Deletes one object (a delete marker, in a versioned bucket).
    pub fn delete(&self, bucket: &str, key: &str) {
        self.s3(|s3| async move {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
        })
    }

    #[cfg(feature = "aws")]
    fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .http_client(trailproof::source::aws::http_client())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    #[cfg(feature = "aws")]
    /// Creates `bucket` and uploads a case's bucket copy, S3 metadata (signatures) included
    /// when the case has an evidence-metadata file.
    pub fn upload(&self, case: &Path, bucket: &str) {
        self.upload_into(case, bucket, false)
    }

    #[cfg(feature = "aws")]
    /// Puts a case's bucket copy into `bucket`, which exists: what was delivered since an
    /// earlier [`Moto::upload`].
    pub fn upload_more(&self, case: &Path, bucket: &str) {
        self.put_all(case, bucket, &|put| put);
    }

    #[cfg(feature = "aws")]
    /// [`Moto::upload`] into a bucket with versioning enabled from the start.
    pub fn upload_versioned(&self, case: &Path, bucket: &str) {
        self.upload_into(case, bucket, true)
    }

    #[cfg(feature = "aws")]
    /// [`Moto::upload`] into a bucket with Object Lock (and so versioning), every object
    /// retained in `mode` until `until` (RFC 3339).
    pub fn upload_locked(&self, case: &Path, bucket: &str, mode: &str, until: &str) {
        self.s3(|s3| async move {
            s3.create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(true)
                .send()
                .await
                .unwrap();
        });
        let until = aws_sdk_s3::primitives::DateTime::from_str(
            until,
            aws_sdk_s3::primitives::DateTimeFormat::DateTime,
        )
        .unwrap();
        self.put_all(case, bucket, &|put| {
            put.object_lock_mode(mode.into())
                .object_lock_retain_until_date(until)
        });
    }

    #[cfg(feature = "aws")]
    /// Runs `calls` with an S3 client of this server: what anyone with the bucket's
    /// permissions can do.
    pub fn s3<T, F: std::future::Future<Output = T>>(
        &self,
        calls: impl FnOnce(aws_sdk_s3::Client) -> F,
    ) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(calls(self.client()))
    }

    #[cfg(feature = "aws")]
    /// Runs `calls` with a CloudWatch Logs client of this server: what anyone with the log
    /// group's permissions can do.
    pub fn logs<T, F: std::future::Future<Output = T>>(
        &self,
        calls: impl FnOnce(aws_sdk_cloudwatchlogs::Client) -> F,
    ) -> T {
        let conf = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .http_client(trailproof::source::aws::http_client())
            .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(calls(aws_sdk_cloudwatchlogs::Client::from_conf(conf)))
    }

    #[cfg(feature = "aws")]
    fn upload_into(&self, case: &Path, bucket: &str, versioned: bool) {
        self.s3(|s3| async move {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
            if versioned {
                let on = aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build();
                s3.put_bucket_versioning()
                    .bucket(bucket)
                    .versioning_configuration(on)
                    .send()
                    .await
                    .unwrap();
            }
        });
        self.put_all(case, bucket, &|put| put);
    }

    #[cfg(feature = "aws")]
    /// Puts every object of a case's bucket copy into `bucket`, with its S3 metadata when the
    /// case has an evidence-metadata file, each request shaped by `more`.
    fn put_all(
        &self,
        case: &Path,
        bucket: &str,
        more: &dyn Fn(
            aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
        )
            -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) {
        self.s3(|s3| async move {
            let root = case.join("bucket");
            let meta: Value = std::fs::read(root.join("trailproof-evidence.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            for key in keys_under(&root) {
                let path = root.join(&key);
                if key == "trailproof-evidence.json" {
                    continue;
                }
                let mut put = s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(std::fs::read(&path).unwrap().into());
                if let Some(m) = meta["objects"][&key]["metadata"].as_object() {
                    for (k, v) in m {
                        put = put.metadata(k, v.as_str().unwrap());
                    }
                }
                more(put).send().await.unwrap();
            }
        });
    }
}

/// The fault-injecting proxy (tests/support/fault_proxy.py) in front of a moto server.
pub struct FaultProxy {
    child: Child,
    pub port: u16,
}

impl FaultProxy {
    /// `rules` is a JSON file the proxy re-reads at every request.
    pub fn start(upstream: &Moto, rules: &Path) -> FaultProxy {
        let upstream = upstream.port.to_string();
        let (child, port) = serve("fault_proxy.py", &[upstream.as_ref(), rules.as_os_str()]);
        FaultProxy { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tests/support/SCRIPT PORT ARGS...` on a free loopback port and waits until it
/// listens. Fails loudly if python3 or the script's packages are missing: these tests are
/// never skipped.
pub fn serve(script: &str, args: &[&std::ffi::OsStr]) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("python3")
        .arg(repo().join("tests/support").join(script))
        .arg(port.to_string())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is needed, with tests/requirements.txt installed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{script} exited at start ({status}); is `pip install -r tests/requirements.txt` done?");
        }
        assert!(
            Instant::now() < deadline,
            "{script} did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, port)
}

/// The paths of the files under `root`, relative to it, sorted; links to folders are not
/// followed. Lossy: acquire's unfinished files end in a byte that is not UTF-8.
pub fn keys_under(root: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            } else {
                keys.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    keys.sort();
    keys
}

fn post(port: u16, path: &str, body: &str) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "moto {path}: {reply}"
    );
}
