//! The command line as a newcomer meets it: what each subcommand says when it cannot do its
//! job (the cause in one line, then what to do), and its `--help`. Runs the real binary.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use support::{repo, trailproof, Output};

/// The four subcommands that talk to AWS, each as a newcomer would first type it.
fn aws_commands(dir: &Path) -> Vec<Vec<String>> {
    let acquire_to = dir.join("evidence").display().to_string();
    [
        vec!["verify", "s3://trailproof-test-bucket"],
        vec![
            "validate-logs",
            "--trail-arn",
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/management-trail",
            "--start-time",
            "2026-01-01",
        ],
        vec![
            "acquire",
            "s3://trailproof-test-bucket",
            &acquire_to,
            "--start-time",
            "2026-01-01",
        ],
        vec![
            "keys",
            "fetch",
            "--region",
            "us-east-1",
            "--start-time",
            "2026-01-01",
        ],
    ]
    .iter()
    .map(|args| args.iter().map(|a| a.to_string()).collect())
    .collect()
}

/// Runs the binary with none of the caller's AWS settings: no credentials, profiles or
/// endpoints but those given, no instance metadata.
fn run_aws(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Output {
    let (config, credentials) = (dir.join("config"), dir.join("credentials"));
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailproof"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1");
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

const SOME_CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
];

/// Exit status 2, and stderr is the cause on one line and what to do on a second, with no
/// SDK internals.
fn assert_cause_and_hint(what: &str, out: &Output) -> (String, String) {
    assert_eq!(out.code, 2, "{what}: {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let [cause, hint] = lines.as_slice() else {
        panic!("{what}: not a cause and a hint:\n{}", out.stderr);
    };
    assert!(cause.starts_with("trailproof: "), "{what}: {cause}");
    assert!(hint.starts_with("hint: "), "{what}: {hint}");
    for internal in ["DispatchFailure", "SdkBody", "ConnectorError", "{ "] {
        assert!(!out.stderr.contains(internal), "{what}: {}", out.stderr);
    }
    (cause.to_string(), hint.to_string())
}

/// An address nothing listens on: a port the system just gave and took back.
fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_dead_endpoint_is_named_with_the_flag_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = dead_endpoint();
    for mut args in aws_commands(dir.path()) {
        args.extend(["--endpoint-url".to_owned(), endpoint.clone()]);
        let out = run_aws(dir.path(), &args, &SOME_CREDENTIALS);
        let (cause, hint) = assert_cause_and_hint(&args[0], &out);
        assert!(cause.contains(&endpoint), "{args:?}: {cause}");
        assert!(cause.contains("no connection"), "{args:?}: {cause}");
        assert!(hint.contains("--endpoint-url"), "{args:?}: {hint}");
    }
}

#[test]
fn no_credentials_says_so_and_how_to_give_them() {
    let dir = tempfile::tempdir().unwrap();
    for args in aws_commands(dir.path()) {
        let out = run_aws(dir.path(), &args, &[]);
        let (cause, hint) = assert_cause_and_hint(&args[0], &out);
        assert!(cause.contains("no AWS credentials"), "{args:?}: {cause}");
        for way in ["--profile", "AWS_ACCESS_KEY_ID", "aws sso login"] {
            assert!(hint.contains(way), "{args:?}: {hint}");
        }
    }
}

/// A server that answers every request with S3's 403 AccessDenied.
fn denying_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || deny(stream));
        }
    });
    endpoint
}

fn deny(mut stream: TcpStream) {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>TEST</RequestId></Error>";
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // The request's head; its body (there is none for a listing) is not needed.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let _ = write!(
        stream,
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn access_denied_names_the_code_and_the_permission() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = denying_server();
    let args: Vec<String> = [
        "verify",
        "s3://trailproof-test-bucket",
        "--endpoint-url",
        &endpoint,
    ]
    .map(String::from)
    .into();
    let out = run_aws(dir.path(), &args, &SOME_CREDENTIALS);
    let (cause, hint) = assert_cause_and_hint("verify", &out);
    assert!(
        cause.contains("ListObjectsV2") && cause.contains("AccessDenied (HTTP 403)"),
        "{cause}"
    );
    assert!(hint.contains("s3:ListBucket"), "{hint}");
}

fn verify_local(args: &[&str]) -> Output {
    let mut all = vec!["verify".to_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    trailproof(&repo(), &all, &[])
}

#[test]
fn the_folder_above_a_bucket_copy_is_named_as_such() {
    let out = verify_local(&[
        "testdata/sample",
        "--public-keys",
        "testdata/sample/public-keys.json",
    ]);
    let (cause, hint) = assert_cause_and_hint("verify testdata/sample", &out);
    assert!(
        cause.contains("testdata/sample holds no AWSLogs/ folder, but testdata/sample/bucket does"),
        "{cause}"
    );
    assert!(
        hint.contains("did you mean `trailproof verify testdata/sample/bucket`?"),
        "{hint}"
    );
    // Not the advice that would make every digest "moved".
    assert!(!out.stderr.contains("--s3-bucket"), "{}", out.stderr);
}

#[test]
fn format_names_are_case_insensitive() {
    let run = |format: &str| {
        verify_local(&[
            "testdata/sample/bucket",
            "--public-keys",
            "testdata/sample/public-keys.json",
            "--format",
            format,
        ])
    };
    let (upper, lower) = (run("JSON"), run("json"));
    assert_eq!(upper.code, lower.code, "{}", upper.stderr);
    let report: serde_json::Value = serde_json::from_str(&upper.stdout).unwrap();
    assert_eq!(report["schema"], "trailproof-report/1");
}

#[test]
fn a_key_file_that_is_not_one_says_which_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("KEYS.json");
    std::fs::write(&keys, "-----BEGIN PUBLIC KEY-----\n").unwrap();
    let keys = keys.display().to_string();
    let out = verify_local(&["testdata/sample/bucket", "--public-keys", &keys]);
    let (cause, hint) = assert_cause_and_hint("verify --public-keys", &out);
    assert!(
        cause.contains(&format!("{keys} is not a public-key file")),
        "{cause}"
    );
    assert!(
        cause.contains("expected the JSON that `aws cloudtrail list-public-keys` prints"),
        "{cause}"
    );
    assert!(hint.contains("trailproof keys fetch"), "{hint}");
}

/// Each option and argument of `--help` with its description (empty when it has none).
/// Clap prints a description after the name on the same line, or (long help) on the lines
/// below it, indented further.
fn documented_options(help: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().collect();
    let mut options = Vec::new();
    let mut in_section = false;
    for (i, line) in lines.iter().enumerate() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_section = matches!(*line, "Options:" | "Arguments:");
            continue;
        }
        let trimmed = line.trim_start();
        let is_entry = trimmed.starts_with('-') || trimmed.starts_with('<');
        if !in_section || !is_entry || line.len() - trimmed.len() > 6 {
            continue;
        }
        let (name, rest) = match trimmed.find("  ") {
            Some(at) => (&trimmed[..at], trimmed[at..].trim()),
            None => (trimmed, ""),
        };
        let below = lines.get(i + 1).map_or("", |next| {
            let indent = next.len() - next.trim_start().len();
            if indent > line.len() - trimmed.len() + 2 {
                next.trim()
            } else {
                ""
            }
        });
        let description = if rest.is_empty() { below } else { rest };
        options.push((name.to_owned(), description.to_owned()));
    }
    options
}

#[test]
fn every_option_of_every_subcommand_has_a_description() {
    for command in [
        &["verify"][..],
        &["validate-logs"],
        &["acquire"],
        &["keys", "fetch"],
        &["report", "verify"],
    ] {
        let mut args: Vec<String> = command.iter().map(|a| a.to_string()).collect();
        args.push("--help".into());
        let out = trailproof(&repo(), &args, &[]);
        assert_eq!(out.code, 0, "{command:?}: {}", out.stderr);
        let options = documented_options(&out.stdout);
        assert!(options.len() > 3, "{command:?}: {}", out.stdout);
        let bare: Vec<&String> = options
            .iter()
            .filter(|(_, description)| description.is_empty())
            .map(|(name, _)| name)
            .collect();
        assert!(bare.is_empty(), "{command:?}: no description for {bare:?}");
        // Every time flag states the forms it takes, and that a time without a zone is UTC.
        let help = out.stdout.replace('\n', " ");
        if help.contains("--start-time") {
            for form in ["RFC 3339", "2026-01-01T00:00:00", "2026-01-01)", "UTC"] {
                assert!(help.contains(form), "{command:?}: {form} not stated");
            }
        }
    }
}
