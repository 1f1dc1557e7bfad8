//! `trailproof crosscheck cloudwatch` against a real moto server (S3 + CloudWatch Logs) through
//! the real aws-sdk clients: a generated, signed bucket on S3, and a log group holding the
//! events of its log files as CloudTrail would deliver them (one log event per record,
//! re-serialised, stamped a minute after its eventTime, in `ACCOUNT_CloudTrail_REGION`
//! streams). Each test changes the group (or the bucket) as an attacker with
//! `logs:PutLogEvents`, `logs:DeleteLogStream` or S3 write access would, and checks the
//! verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use trailproof_testgen::{cloudwatch_events, gunzip, CloudWatchEvent as Event, Corpus, World};

mod support;
use support::{repo, trailproof, written, Moto, Output};

const BUCKET: &str = "acme-cloudtrail-logs";
const GROUP: &str = "CloudTrail/logs";
const ACCT: &str = "111122223333";
/// The range compared: within the corpus's five hours, the slack (30 minutes) either side and
/// twice after it still inside what its digests cover.
const START: &str = "2026-01-01T01:00:00Z";
const END: &str = "2026-01-01T03:00:00Z";

fn world() -> World {
    World::new(BUCKET)
        .regions(&["us-east-1", "eu-west-1"])
        .hours(5)
        .logs_per_hour(2)
        .records_per_log(3)
        .seed(0xC0C0)
}

fn ms(t: &str) -> i64 {
    t.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// What CloudTrail would have delivered to the group: each record once, re-serialised, stamped
/// a minute after its eventTime.
fn delivered(corpus: &Corpus) -> Vec<Event> {
    cloudwatch_events(corpus, jiff::SignedDuration::from_mins(1))
}

/// Creates `group` on the server and puts `events` into it, stream by stream.
fn put_group(moto: &Moto, group: &str, events: &[Event]) {
    let mut streams: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        streams.entry(&e.stream).or_default().push(e);
    }
    moto.logs(|logs| async move {
        logs.create_log_group()
            .log_group_name(group)
            .send()
            .await
            .unwrap();
        for (stream, mut events) in streams {
            logs.create_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send()
                .await
                .unwrap();
            events.sort_by_key(|e| e.timestamp);
            for chunk in events.chunks(500) {
                let batch = chunk
                    .iter()
                    .map(|e| {
                        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                            .timestamp(e.timestamp)
                            .message(&e.message)
                            .build()
                            .unwrap()
                    })
                    .collect();
                logs.put_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .set_log_events(Some(batch))
                    .send()
                    .await
                    .unwrap();
            }
        }
    });
}

/// A moto server holding `corpus` in the bucket and `events` in the group, and the corpus
/// written out (for its public keys).
struct Setup {
    moto: Moto,
    _dir: tempfile::TempDir,
    case: PathBuf,
}

fn setup(corpus: &Corpus, events: &[Event]) -> Setup {
    let (dir, case) = written(corpus);
    let moto = Moto::start(&case.join("public-keys.json"));
    moto.upload(&case, BUCKET);
    put_group(&moto, GROUP, events);
    Setup {
        moto,
        _dir: dir,
        case,
    }
}

impl Setup {
    /// `trailproof crosscheck cloudwatch s3://BUCKET` over the range, small FilterLogEvents
    /// pages (so that every answer takes several), plus `args`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_group(GROUP, args)
    }

    fn run_group(&self, group: &str, args: &[&str]) -> Output {
        let mut all: Vec<String> = [
            "crosscheck",
            "cloudwatch",
            &format!("s3://{BUCKET}"),
            "--log-group",
            group,
            "--start-time",
            START,
            "--end-time",
            END,
            "--slack-minutes",
            "30",
            "--public-keys",
            self.case.join("public-keys.json").to_str().unwrap(),
            "--page-size",
            "7",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let out = trailproof(&self.case, &all, &self.moto.env());
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        out
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let out = self.run(&[&["--format", "json"], args].concat());
        let report = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
        (out.code, report)
    }
}

/// The kinds of the report's CloudWatch findings, with their subjects.
fn cloudwatch_findings(report: &Value) -> Vec<(String, String)> {
    report["unchained"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"].as_str().unwrap().starts_with("cloud_watch"))
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn kinds(report: &Value) -> Vec<String> {
    cloudwatch_findings(report)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// An event of the group whose eventTime is well inside the range.
fn inside(events: &[Event]) -> usize {
    let (from, to) = (ms(START) + 20 * 60_000, ms(END) - 20 * 60_000);
    events
        .iter()
        .position(|e| e.timestamp > from && e.timestamp < to)
        .unwrap()
}

#[test]
fn a_group_holding_exactly_the_proven_events_matches() {
    let corpus = world().build();
    let events = delivered(&corpus);
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(kinds(&report).is_empty());
    let c = &report["crosscheck"];
    let in_range = events
        .iter()
        .filter(|e| {
            let v: Value = serde_json::from_str(&e.message).unwrap();
            let t = ms(v["eventTime"].as_str().unwrap());
            t >= ms(START) && t < ms(END)
        })
        .count() as u64;
    assert!(in_range > 10);
    assert_eq!(c["proven_events"], in_range);
    assert_eq!(c["matched"], in_range);
    assert_eq!(c["streams"], 2);
    assert_eq!(report["exit_code"], 0);

    let text = s.run(&[]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .ends_with("RESULT: the log group matches the proven events of the range\n"),
        "{}",
        text.stdout
    );
}

#[test]
fn an_injected_event_is_named() {
    let corpus = world().build();
    let mut events = delivered(&corpus);
    let i = inside(&events);
    let forged = events[i].message.replace(
        &events[i].event_id(),
        "00000000-0000-4000-8000-00000000f0f0",
    );
    events.push(Event {
        message: forged,
        ..events[i].clone()
    });
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(kinds(&report), ["cloud_watch_injected"]);
    let text = s.run(&[]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("INVALID: injected in CloudWatch Logs: no proven log file has eventID 00000000-0000-4000-8000-00000000f0f0"), "{}", text.stdout);
    assert!(text
        .stdout
        .contains("RESULT: the log group does not match the proven events: injected events\n"));
}

#[test]
fn a_deleted_event_is_missing() {
    let corpus = world().build();
    let mut events = delivered(&corpus);
    let gone = events.remove(inside(&events));
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    let found = cloudwatch_findings(&report);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "cloud_watch_missing");
    assert!(found[0].1.starts_with(&format!("s3://{BUCKET}/AWSLogs/")));
    assert!(found[0].1.ends_with(&format!("#{}", gone.event_id())));
}

#[test]
fn a_real_event_id_with_altered_content_is_altered_not_matched() {
    let corpus = world().build();
    let mut events = delivered(&corpus);
    let i = inside(&events);
    let mut v: Value = serde_json::from_str(&events[i].message).unwrap();
    v["sourceIPAddress"] = "198.51.100.66".into();
    events[i].message = serde_json::to_string(&v).unwrap();
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(kinds(&report), ["cloud_watch_altered"]);
    let reason = report["unchained"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "cloud_watch_altered")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.ends_with("in sourceIPAddress"), "{reason}");
}

#[test]
fn an_event_over_256_kb_absent_from_the_group_is_expected() {
    let mut corpus = world().build();
    // CloudTrail delivered a record over 256 KB in a log file of the range.
    let key = corpus
        .digests()
        .iter()
        .flat_map(|d| d.logs.iter())
        .find(|k| k.contains("_20260101T02"))
        .unwrap()
        .clone();
    let mut doc: Value =
        serde_json::from_slice(&gunzip(&corpus.objects[&key].bytes).unwrap()).unwrap();
    let big = {
        let records = doc["Records"].as_array_mut().unwrap();
        let mut big = records[0].clone();
        big["eventID"] = "00000000-0000-4000-8000-0000000b16b1".into();
        big["requestParameters"] = serde_json::json!({"policy": "x".repeat(300 * 1024)});
        records.push(big.clone());
        big
    };
    corpus
        .deliver_log(&key, &serde_json::to_vec(&doc).unwrap())
        .unwrap();
    let events: Vec<Event> = delivered(&corpus)
        .into_iter()
        .filter(|e| !e.message.contains(big["eventID"].as_str().unwrap()))
        .collect();
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["crosscheck"]["oversized_absent"], 1);
}

#[test]
fn a_deleted_stream_makes_each_of_its_events_missing() {
    let corpus = world().build();
    let events = delivered(&corpus);
    let s = setup(&corpus, &events);
    let stream = format!("{ACCT}_CloudTrail_eu-west-1");
    s.moto.logs(|logs| async move {
        logs.delete_log_stream()
            .log_group_name(GROUP)
            .log_stream_name(stream)
            .send()
            .await
            .unwrap();
    });
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    let found = kinds(&report);
    assert!(found.len() > 3);
    assert!(
        found.iter().all(|k| k == "cloud_watch_missing"),
        "{found:?}"
    );
    assert!(cloudwatch_findings(&report)
        .iter()
        .all(|(_, s)| s.contains("/eu-west-1/")));
}

#[test]
fn an_event_moved_to_another_accounts_stream_is_moved() {
    let corpus = world().build();
    let mut events = delivered(&corpus);
    let i = inside(&events);
    events[i].stream = "999999999999_CloudTrail_us-east-1".into();
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(kinds(&report), ["cloud_watch_moved"]);
}

#[test]
fn a_tampered_log_file_that_the_group_agrees_with_is_still_a_finding() {
    // The attacker rewrote a log file in S3 and the group's copy of it the same way: the two
    // sides agree, but the log file is no longer CloudTrail's.
    let mut corpus = world().build();
    let key = corpus
        .digests()
        .iter()
        .flat_map(|d| d.logs.iter())
        .find(|k| k.contains("_20260101T02"))
        .unwrap()
        .clone();
    corpus.modify_log(&key).unwrap();
    let events = delivered(&corpus);
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    let s3_side: Vec<&Value> = report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .filter(|f| f["kind"] == "log_hash_mismatch")
        .collect();
    assert_eq!(s3_side.len(), 1);
    // Its records are not proven: the group's copies of them prove nothing either.
    assert!(!kinds(&report).is_empty());
    assert!(
        kinds(&report).iter().all(|k| k == "cloud_watch_injected"),
        "{:#}",
        report["unchained"]
    );
}

#[test]
fn events_only_in_a_log_file_no_digest_names_are_not_proven_by_it() {
    // A log file in the bucket that no digest lists (injected, or delivered while validation was
    // off), and its events in the group: neither side proves the other.
    let mut corpus = world().build();
    let like = corpus
        .digests()
        .iter()
        .flat_map(|d| d.logs.iter())
        .find(|k| k.contains("us-east-1_20260101T02"))
        .unwrap()
        .clone();
    let unreferenced = corpus.inject_log(&like).unwrap();
    let mut events = delivered(&corpus);
    let doc: Value =
        serde_json::from_slice(&gunzip(&corpus.objects[&unreferenced].bytes).unwrap()).unwrap();
    let records = doc["Records"].as_array().unwrap();
    for r in records {
        events.push(Event {
            stream: format!("{ACCT}_CloudTrail_us-east-1"),
            timestamp: ms(r["eventTime"].as_str().unwrap()) + 60_000,
            message: serde_json::to_string(r).unwrap(),
        });
    }
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    assert!(report["unchained"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "log_unreferenced"));
    let found = kinds(&report);
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|k| k == "cloud_watch_not_proven"),
        "{found:?}"
    );
    assert_eq!(
        report["crosscheck"]["matched"],
        report["crosscheck"]["proven_events"]
    );
}

#[test]
fn events_forged_at_the_edges_of_the_range_are_judged() {
    let corpus = world().build();
    let mut events = delivered(&corpus);
    let i = inside(&events);
    let template: Value = serde_json::from_str(&events[i].message).unwrap();
    let forge = |id: &str, event_time: &str, timestamp: i64| {
        let mut v = template.clone();
        v["eventID"] = id.into();
        v["eventTime"] = event_time.into();
        Event {
            stream: events[i].stream.clone(),
            timestamp,
            message: serde_json::to_string(&v).unwrap(),
        }
    };
    // Stamped the last millisecond of the range, dated after it.
    let a = forge(
        "00000000-0000-4000-8000-0000000edge1",
        "2026-01-01T03:20:00Z",
        ms(END) - 1,
    );
    // Stamped at the end (outside), dated inside.
    let b = forge(
        "00000000-0000-4000-8000-0000000edge2",
        "2026-01-01T02:59:59Z",
        ms(END),
    );
    // Neither inside: the next range's business.
    let c = forge(
        "00000000-0000-4000-8000-0000000edge3",
        "2026-01-01T03:10:00Z",
        ms(END),
    );
    events.extend([a, b, c]);
    let s = setup(&corpus, &events);
    let (code, report) = s.json(&[]);
    assert_eq!(code, 1);
    let found = cloudwatch_findings(&report);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(k, _)| k == "cloud_watch_injected"));
}

#[test]
fn a_signed_crosscheck_report_verifies_and_carries_its_counts() {
    let corpus = world().build();
    let mut events = delivered(&corpus);
    events.remove(inside(&events));
    let s = setup(&corpus, &events);
    let keydir = repo().join("testdata/report-keys");
    let envelope = s.case.join("../crosscheck.dsse.json");
    let out = s.run(&[
        "--sign-key",
        keydir.join("ed25519.pem").to_str().unwrap(),
        "--sign-out",
        envelope.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
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
            .contains("CloudWatch events\t0/1 valid, 1 invalid, 0 not verified\n"),
        "{}",
        check.stdout
    );
    assert!(check
        .stdout
        .contains("Crosscheck\tlog group CloudTrail/logs: "));
    assert!(check.stdout.contains("(exit_code 1)"));
}

#[test]
fn a_stream_prefix_and_region_select_one_region_and_a_mistyped_prefix_leaves_all_missing() {
    let corpus = world().build();
    let events = delivered(&corpus);
    let s = setup(&corpus, &events);
    let stream = format!("{ACCT}_CloudTrail_eu-west-1");
    let (code, report) = s.json(&["--log-stream-prefix", &stream, "--region", "eu-west-1"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["crosscheck"]["streams"], 1);
    assert!(report["crosscheck"]["matched"].as_u64().unwrap() > 3);
    let (code, report) = s.json(&[
        "--log-stream-prefix",
        "111122223333_CloudTrial",
        "--region",
        "eu-west-1",
    ]);
    assert_eq!(code, 1);
    assert_eq!(report["crosscheck"]["streams"], 0);
    let found = kinds(&report);
    assert!(found.len() > 3 && found.iter().all(|k| k == "cloud_watch_missing"));
}

#[test]
fn a_filter_log_events_answer_that_never_ends_stops_the_run_in_seconds() {
    let corpus = world().build();
    let s = setup(&corpus, &delivered(&corpus));
    let rules = s.case.join("../rules.json");
    std::fs::write(&rules, "{}").unwrap();
    let proxy = support::FaultProxy::start(&s.moto, &rules);
    let mut env = s.moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.endpoint()));
    env.push(("AWS_ENDPOINT_URL_S3", s.moto.endpoint()));
    // Asked again, the first page comes back: its events twice, or, when it is empty, its
    // token a second time or empty pages without end.
    for kind in ["same", "fresh"] {
        std::fs::write(&rules, format!(r#"{{"events_loop": "{kind}"}}"#)).unwrap();
        let started = std::time::Instant::now();
        let args: Vec<String> = [
            "crosscheck",
            "cloudwatch",
            &format!("s3://{BUCKET}"),
            "--log-group",
            GROUP,
            "--start-time",
            START,
            "--end-time",
            END,
            "--public-keys",
            s.case.join("public-keys.json").to_str().unwrap(),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        let out = trailproof(&s.case, &args, &env);
        assert_eq!(out.code, 2, "{kind}: {}", out.stdout);
        assert!(
            out.stderr.contains("FilterLogEvents")
                && ["twice", "a second time", "in a row brought nothing"]
                    .iter()
                    .any(|said| out.stderr.contains(said)),
            "{kind}: {}",
            out.stderr
        );
        assert!(started.elapsed().as_secs() < 60);
    }
}

#[test]
fn a_log_group_that_does_not_exist_cannot_be_checked() {
    let corpus = world().build();
    let s = setup(&corpus, &[]);
    let out = s.run_group("no/such/group", &[]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("ResourceNotFoundException"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: check --log-group"),
        "{}",
        out.stderr
    );
}
