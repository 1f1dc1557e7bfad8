//! `trailproof watch` against real servers on loopback: moto serves S3 and SQS, the messages
//! are sent in the exact shapes S3 event notifications and CloudTrail's SNS notifications
//! have. Each scenario is what someone who can delete, add or rewrite objects, and send or
//! withhold messages, would try; the watch's findings are held to one full `verify` over the
//! same evidence.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use trailproof_testgen::{Corpus, World};

use support::{corpus_as_of, repo, trailproof, written, Moto, Output};

const BUCKET: &str = "acme-cloudtrail-logs";
const KEY: &str = "testdata/report-keys/ed25519.pem";

/// Two Regions, a day of hourly digests (one log file each), the newest ending 31 to 91
/// minutes ago (the generator's digests end 28:28 after the hour): all delivered by now.
fn day() -> Corpus {
    let now = Timestamp::now().as_second();
    let start = Timestamp::from_second(now - now % 3600 - 25 * 3600).unwrap();
    World::new(BUCKET)
        .start(start)
        .regions(&["us-east-1", "eu-west-1"])
        .hours(24)
        .logs_per_hour(1)
        .records_per_log(1)
        .build()
}

/// The digests of `region`'s chain, oldest first.
fn chain<'a>(corpus: &'a Corpus, region: &str) -> Vec<&'a trailproof_testgen::DigestInfo> {
    let mut v: Vec<_> = corpus
        .digests()
        .iter()
        .filter(|d| d.key.contains(&format!("/{region}/")) && !d.backfill)
        .collect();
    v.sort_by_key(|d| d.end);
    v
}

/// The objects delivered with the digests that end in (from, to]: their log files, then the
/// digests, as CloudTrail delivers them; only those still in the corpus.
fn delivered(corpus: &Corpus, from: Timestamp, to: Timestamp) -> Vec<String> {
    let digests: Vec<_> = corpus
        .digests()
        .iter()
        .filter(|d| d.end > from && d.end <= to)
        .collect();
    let logs = digests.iter().flat_map(|d| d.logs.iter());
    logs.chain(digests.iter().map(|d| &d.key))
        .filter(|k| corpus.objects.contains_key(*k))
        .cloned()
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sqs(moto: &Moto) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .http_client(trailproof::source::aws::http_client())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A queue whose messages come back 2 s after a receive that did not delete them.
fn queue(moto: &Moto, name: &str) -> String {
    runtime().block_on(async {
        sqs(moto)
            .create_queue()
            .queue_name(name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "2",
            )
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned()
    })
}

fn send(moto: &Moto, url: &str, bodies: &[String]) {
    runtime().block_on(async {
        let client = sqs(moto);
        for body in bodies {
            client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    })
}

/// Messages in the queue, visible or not.
fn queued(moto: &Moto, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    runtime().block_on(async {
        let attrs = sqs(moto)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = attrs.attributes().unwrap();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| attrs.get(a).unwrap().parse::<usize>().unwrap())
        .sum()
    })
}

/// The body S3 sends for one created object (keys form-encoded).
fn s3_event(bucket: &str, key: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": Timestamp::now().to_string(), "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "trailproof",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key.replace(' ', "+"), "size": 1, "sequencer": "0"}}
    }]})
    .to_string()
}

/// CloudTrail's SNS notification of a delivery, in the envelope SNS puts it in.
fn sns_cloudtrail(keys: &[String]) -> String {
    let message = serde_json::json!({"s3Bucket": BUCKET, "s3ObjectKey": keys}).to_string();
    serde_json::json!({"Type": "Notification", "MessageId": "1", "Message": message}).to_string()
}

/// Puts `keys` of the corpus into the bucket, with their S3 metadata (signatures).
fn put(moto: &Moto, corpus: &Corpus, keys: &[String]) {
    moto.s3(|s3| async move {
        for key in keys {
            let object = &corpus.objects[key];
            let mut put = s3
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(object.bytes.clone().into());
            for (k, v) in &object.metadata {
                put = put.metadata(k, v);
            }
            put.send().await.unwrap();
        }
    });
}

/// A day's corpus on moto: the objects up to `cut` in the bucket, and a checkpoint of them.
struct Setup {
    moto: Moto,
    corpus: Corpus,
    dir: tempfile::TempDir,
    case: PathBuf,
    checkpoint: PathBuf,
    queue: String,
}

fn setup(corpus: Corpus, cut: Timestamp) -> Setup {
    let (dir, case) = written(&corpus);
    let moto = Moto::start(&case.join("public-keys.json"));
    let (_g, first) = written(&corpus_as_of(&corpus, cut));
    moto.upload(&first, BUCKET);
    let checkpoint = dir.path().join("trailproof.checkpoint");
    let queue = queue(&moto, "trailproof-watch");
    let s = Setup {
        moto,
        corpus,
        dir,
        case,
        checkpoint,
        queue,
    };
    let out = s.verify(&["--checkpoint", &s.checkpoint.display().to_string()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    s
}

impl Setup {
    fn env(&self) -> Vec<(&'static str, String)> {
        self.moto.env()
    }

    /// `verify s3://BUCKET --format jsonl` with more arguments.
    fn verify(&self, more: &[&str]) -> Output {
        let mut args = strings(&[
            "verify",
            &format!("s3://{BUCKET}"),
            "--format",
            "jsonl",
            "--public-keys",
            &self.case.join("public-keys.json").display().to_string(),
            "--sign-key",
            &repo().join(KEY).display().to_string(),
        ]);
        if !more.contains(&"--checkpoint") {
            // The key is only for checkpoints.
            args.truncate(6);
        }
        args.extend(strings(more));
        trailproof(self.dir.path(), &args, &self.env())
    }

    /// `trailproof watch` with more arguments, its output piped.
    fn watch(&self, more: &[&str]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailproof"));
        cmd.current_dir(self.dir.path())
            .args(strings(&[
                "watch",
                &format!("s3://{BUCKET}"),
                "--sqs-queue",
                &self.queue,
                "--checkpoint",
                &self.checkpoint.display().to_string(),
                "--sign-key",
                &repo().join(KEY).display().to_string(),
                "--public-keys",
                &self.case.join("public-keys.json").display().to_string(),
            ]))
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Puts the objects of the digests ending in (from, to] and announces each as S3 does.
    fn deliver(&self, from: Timestamp, to: Timestamp) -> Vec<String> {
        let keys = delivered(&self.corpus, from, to);
        put(&self.moto, &self.corpus, &keys);
        let bodies: Vec<String> = keys.iter().map(|k| s3_event(BUCKET, k)).collect();
        send(&self.moto, &self.queue, &bodies);
        keys
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The lines a process writes to stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the process to end (at most 3 minutes): exit code, stderr.
fn finished(mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watch did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`problems`] of a watch's standard output.
fn problems_of(stdout: &[u8]) -> Vec<(String, String)> {
    problems(String::from_utf8_lossy(stdout).lines().map(str::to_owned))
}

/// (subject, kind) of every JSONL finding line that is not valid.
fn problems(lines: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in lines {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["type"] == "finding" && v["verdict"] != "valid" {
            found.push((
                v["subject"].as_str().unwrap().to_owned(),
                v["kind"].as_str().unwrap().to_owned(),
            ));
        }
    }
    found
}

fn set(v: &[(String, String)]) -> BTreeSet<(String, String)> {
    v.iter().cloned().collect()
}

/// The newest digest of every chain, as the checkpoint records it.
fn last_digests(checkpoint: &Path) -> BTreeSet<String> {
    let key = trailproof::report::signing::PublicKey::from_pem(
        &std::fs::read(repo().join("testdata/report-keys/ed25519.pub.pem")).unwrap(),
    )
    .unwrap();
    let opened = trailproof::report::checkpoint::VerifiedCheckpoint::open(
        &std::fs::read(checkpoint).unwrap(),
        trailproof::report::dsse::Trust::Key(&key),
    )
    .unwrap();
    opened
        .checkpoint()
        .chains
        .iter()
        .filter_map(|c| c.last.as_ref().map(|l| l.key.clone()))
        .collect()
}

fn newest(corpus: &Corpus) -> BTreeSet<String> {
    ["us-east-1", "eu-west-1"]
        .iter()
        .map(|r| {
            chain(corpus, r)
                .into_iter()
                .rev()
                .find(|d| corpus.objects.contains_key(&d.key))
                .unwrap()
                .key
                .clone()
        })
        .collect()
}

/// A day delivered hour by hour while the watch runs, with a digest deleted in the middle, a
/// log file tampered with, one injected, the newest digest signed by an attacker (and
/// announced like any other), a message sent twice, and messages that are no delivery of the
/// bucket: the watch says what one full `verify` over the same evidence says, each once, and
/// ends with every message deleted and a checkpoint at each chain's newest digest.
#[test]
fn a_day_delivered_hour_by_hour_gets_the_findings_of_one_full_verify() {
    let mut corpus = day();
    let us = chain(&corpus, "us-east-1");
    let deleted = us[12].key.clone();
    let (forged, before_forged) = (us[us.len() - 1].key.clone(), us[us.len() - 2].key.clone());
    let like = us[9].logs[0].clone();
    let tampered = chain(&corpus, "eu-west-1")[15].logs[0].clone();
    corpus.delete_digest(&deleted).unwrap();
    corpus.modify_log(&tampered).unwrap();
    // The newest digest signed by someone else: the message announcing it changes nothing.
    corpus.sign_with_attacker_key(&forged).unwrap();
    let injected = corpus.inject_log(&like).unwrap();
    let first = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let hour = |h: i64| first + SignedDuration::from_hours(h);
    let s = setup(corpus, hour(6));
    // A grace no chain of a generated day can reach: this scenario is about deliveries.
    let mut child = s.watch(&["--exit-when-idle", "4", "--digest-grace", "48h"]);
    let lines = lines_of(&mut child);
    let mut last = Vec::new();
    for h in 6..25 {
        last = s.deliver(hour(h), hour(h + 1));
        std::thread::sleep(Duration::from_millis(200));
    }
    // A log file no digest lists, announced as S3 would.
    put(&s.moto, &s.corpus, std::slice::from_ref(&injected));
    // The last hour's digests again, as CloudTrail's SNS notification; and what is no
    // delivery of the bucket.
    send(
        &s.moto,
        &s.queue,
        &[
            s3_event(BUCKET, &injected),
            sns_cloudtrail(&last),
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"acme-cloudtrail-logs"}"#
                .to_owned(),
            "not json".to_owned(),
            s3_event("another-bucket", &last[0]),
            s3_event(BUCKET, &last[0]).replace("ObjectCreated:Put", "ObjectRemoved:Delete"),
        ],
    );
    let (code, stderr) = finished(child);
    let watched: Vec<String> = lines.try_iter().collect();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.matches("message ignored").count(), 4, "{stderr}");
    let found = problems(watched);
    let full = s.verify(&[]);
    assert_eq!(full.code, 1, "{}", full.stderr);
    let expected = problems(full.stdout.lines().map(str::to_owned));
    assert_eq!(set(&found), set(&expected), "{stderr}");
    assert_eq!(
        found.len(),
        set(&found).len(),
        "a finding said twice: {found:#?}"
    );
    let subject = |k: &str| format!("s3://{BUCKET}/{k}");
    assert!(found.contains(&(subject(&deleted), "digest_missing".into())));
    assert!(found.contains(&(subject(&tampered), "log_hash_mismatch".into())));
    assert!(found.contains(&(subject(&forged), "digest_signature_invalid".into())));
    assert!(found.contains(&(subject(&injected), "log_unreferenced".into())));
    let mut want = newest(&s.corpus);
    want.remove(&forged);
    want.insert(before_forged);
    assert_eq!(last_digests(&s.checkpoint), want);
    assert_eq!(queued(&s.moto, &s.queue), 0, "messages left in the queue");
}

/// The newest digest of a chain deleted with its log files (or logging stopped), and every
/// message withheld: silence from the queue is not "valid". At the deadline the watch looks at
/// the bucket itself, verifies what was delivered, and reports the chain that fell silent, once;
/// the chain that is on time is not reported.
#[test]
fn a_chain_silent_past_the_grace_is_reported_even_when_no_message_comes() {
    let corpus = day();
    let eu = chain(&corpus, "eu-west-1");
    let (silent, withheld) = (eu[eu.len() - 2].clone(), eu[eu.len() - 1].clone());
    let us_end = chain(&corpus, "us-east-1").last().unwrap().end;
    let first = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let s = setup(corpus, first + SignedDuration::from_hours(20));
    // Everything after the checkpoint but the withheld digest and its log files is in the
    // bucket; no message says so.
    let keys: Vec<String> = delivered(&s.corpus, first, us_end + SignedDuration::from_hours(1))
        .into_iter()
        .filter(|k| *k != withheld.key && !withheld.logs.contains(k))
        .collect();
    put(&s.moto, &s.corpus, &keys);
    // On time for us-east-1 (20 minutes left), late for eu-west-1 (whose newest delivered
    // digest ends an hour before us-east-1's: 40 minutes late).
    let grace = Timestamp::now().duration_since(us_end) + SignedDuration::from_mins(20);
    let grace = format!("{}s", grace.as_secs());
    let child = s.watch(&["--exit-when-idle", "3", "--digest-grace", &grace]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let found = problems_of(&out.stdout);
    assert_eq!(
        found,
        vec![(
            format!("s3://{BUCKET}/{}", silent.key),
            "digest_successor_missing".to_owned()
        )],
        "{stderr}"
    );
    let mut want = newest(&s.corpus);
    want.remove(&withheld.key);
    want.insert(silent.key.clone());
    assert_eq!(last_digests(&s.checkpoint), want);
}

/// Which gaps were reported was kept in memory: a restarted watch reported a still-late chain
/// again at its first tick. The checkpoint records it now: restarted, the watch says nothing of
/// the gap it said; restarted once more after the other chain fell late too, it says that new
/// gap, and only that one. (A gap after a newer digest of the same chain is a new one too:
/// `engine::watch`'s unit tests.)
#[test]
fn a_restarted_watch_does_not_report_a_gap_again_but_reports_a_new_one() {
    let corpus = day();
    let eu = chain(&corpus, "eu-west-1");
    let (silent, withheld) = (eu[eu.len() - 2].clone(), eu[eu.len() - 1].clone());
    let us = (*chain(&corpus, "us-east-1").last().unwrap()).clone();
    let first = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let s = setup(corpus, first + SignedDuration::from_hours(20));
    let keys: Vec<String> = delivered(&s.corpus, first, us.end + SignedDuration::from_hours(1))
        .into_iter()
        .filter(|k| *k != withheld.key && !withheld.logs.contains(k))
        .collect();
    put(&s.moto, &s.corpus, &keys);
    // Late for eu-west-1 only (as in the test above).
    let watch = |late_by_mins: i64| {
        let grace =
            Timestamp::now().duration_since(us.end) - SignedDuration::from_mins(late_by_mins);
        let grace = format!("{}s", grace.as_secs());
        let out = s
            .watch(&["--exit-when-idle", "3", "--digest-grace", &grace])
            .wait_with_output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let found = problems_of(&out.stdout);
        (out.status.code(), found, stderr)
    };
    let gap = |key: &str| {
        (
            format!("s3://{BUCKET}/{key}"),
            "digest_successor_missing".to_owned(),
        )
    };
    let (code, found, stderr) = watch(-20);
    assert_eq!((code, found), (Some(1), vec![gap(&silent.key)]), "{stderr}");
    let (code, found, stderr) = watch(-20);
    assert_eq!(
        (code, found),
        (Some(0), vec![]),
        "said again after a restart: {stderr}"
    );
    // Now the other chain falls late too: its gap is new, and said; the first is not again.
    let (code, found, stderr) = watch(5);
    assert_eq!((code, found), (Some(1), vec![gap(&us.key)]), "{stderr}");
}

/// Found as a documented weakness: a log file rewritten after its hour was checkpointed, one
/// written into that hour's folder under a back-dated name, and a digest of a verified hour
/// rewritten (with another hour's), were seen by no tick even when S3 announced them (a tick
/// reads only what follows each chain's last verified digest). An S3 event naming an object
/// behind the checkpoint now has it verified again: the watch says of each what one full
/// `verify` says.
#[test]
fn objects_rewritten_or_back_dated_behind_the_checkpoint_and_announced_are_reported() {
    let corpus = day();
    let old = chain(&corpus, "us-east-1")[5].logs[0].clone();
    let first = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let mut s = setup(corpus, first + SignedDuration::from_hours(20));
    s.corpus.modify_log(&old).unwrap();
    let injected = s.corpus.inject_log(&old).unwrap();
    // A digest of an hour verified, rewritten with another hour's (signed) digest.
    let (rewritten, other) = {
        let us = chain(&s.corpus, "us-east-1");
        (us[8].key.clone(), us[9].key.clone())
    };
    let copy = s.corpus.objects[&other].clone();
    s.corpus.objects.insert(rewritten.clone(), copy);
    // Found by the red team: the same log file back-dated in a Region with no chain, and under
    // a name CloudTrail never writes in a verified day folder, were not verified again.
    let chainless = old.replace("us-east-1", "us-west-2");
    let stray = format!("{}/notes.json.gz", old.rsplit_once('/').unwrap().0);
    for key in [&chainless, &stray] {
        let copy = s.corpus.objects[&old].clone();
        s.corpus.objects.insert(key.clone(), copy);
    }
    let keys = [
        old.clone(),
        injected.clone(),
        rewritten.clone(),
        chainless.clone(),
        stray.clone(),
    ];
    put(&s.moto, &s.corpus, &keys);
    let bodies: Vec<String> = keys.iter().map(|k| s3_event(BUCKET, k)).collect();
    send(&s.moto, &s.queue, &bodies);
    let out = s
        .watch(&["--exit-when-idle", "3", "--digest-grace", "48h"])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let found = problems_of(&out.stdout);
    let subjects: BTreeSet<String> = keys.iter().map(|k| format!("s3://{BUCKET}/{k}")).collect();
    let full = s.verify(&[]);
    let expected: Vec<(String, String)> = problems(full.stdout.lines().map(str::to_owned))
        .into_iter()
        .filter(|(subject, _)| subjects.contains(subject))
        .collect();
    let said = |key: &str, kind: &str| {
        expected.contains(&(format!("s3://{BUCKET}/{key}"), kind.to_owned()))
    };
    assert!(said(&old, "log_hash_mismatch"));
    assert!(said(&injected, "log_unreferenced"));
    assert!(said(&rewritten, "digest_moved"));
    assert!(said(&chainless, "log_unreferenced"));
    assert!(said(&stray, "log_unrecognised"));
    assert_eq!(set(&found), set(&expected), "{stderr}");
    assert_eq!(queued(&s.moto, &s.queue), 0, "messages left in the queue");
}

/// Killed (-9) after it wrote a finding, the watch may not have written its checkpoint or
/// deleted its messages: restarted, it verifies again from the checkpoint on disk, and between
/// the two runs nothing a full verify says is left unsaid.
#[test]
fn a_watch_killed_mid_tick_skips_nothing_when_restarted() {
    let mut corpus = day();
    let tampered = chain(&corpus, "us-east-1")[20].logs[0].clone();
    corpus.modify_log(&tampered).unwrap();
    let first = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let s = setup(corpus, first + SignedDuration::from_hours(6));
    let before = std::fs::read(&s.checkpoint).unwrap();
    s.deliver(first, first + SignedDuration::from_hours(25));
    let mut child = s.watch(&["--digest-grace", "48h"]);
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while problems(seen.clone()).is_empty() {
        assert!(Instant::now() < deadline, "no finding came");
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            seen.push(line);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seen.extend(lines.try_iter());
    let moved = std::fs::read(&s.checkpoint).unwrap() != before;
    eprintln!("killed after a finding; checkpoint moved before the kill: {moved}");
    let child = s.watch(&["--digest-grace", "48h", "--exit-when-idle", "5"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1));
    let again = problems_of(&out.stdout);
    let tampered = (
        format!("s3://{BUCKET}/{tampered}"),
        "log_hash_mismatch".to_owned(),
    );
    if !moved {
        // The usual case: killed between the finding and the checkpoint, the restart
        // verifies the same digests again and says it again.
        assert!(again.contains(&tampered), "{again:#?}");
    }
    let mut found = problems(seen);
    found.extend(again);
    assert!(found.contains(&tampered));
    let full = s.verify(&[]);
    let expected = problems(full.stdout.lines().map(str::to_owned));
    assert!(!expected.is_empty());
    assert_eq!(set(&found), set(&expected));
    assert_eq!(last_digests(&s.checkpoint), newest(&s.corpus));
}

/// SIGTERM while a tick is in flight: the tick finishes, its checkpoint is written, and the
/// watch exits; meanwhile /metrics answered in the Prometheus text format.
#[test]
fn sigterm_finishes_the_tick_and_writes_the_checkpoint() {
    let corpus = day();
    let first = corpus.digests().iter().map(|d| d.start).min().unwrap();
    let s = setup(corpus, first + SignedDuration::from_hours(6));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = s.watch(&["--digest-grace", "48h", "--metrics-addr", &addr]);
    let lines = lines_of(&mut child);
    s.deliver(first, first + SignedDuration::from_hours(25));
    // The first finding line: a tick is under way.
    lines.recv_timeout(Duration::from_secs(120)).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, stderr) = finished(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    assert_eq!(last_digests(&s.checkpoint), newest(&s.corpus));

    // Metrics, from a watch that went on from there (a duplicate of every message: harmless).
    s.deliver(first, first + SignedDuration::from_hours(25));
    let child = s.watch(&[
        "--digest-grace",
        "48h",
        "--metrics-addr",
        &addr,
        "--exit-when-idle",
        "6",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        use std::io::{Read, Write};
        if let Ok(mut c) = std::net::TcpStream::connect(&addr) {
            write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            let ticks = reply
                .lines()
                .find_map(|l| l.strip_prefix("trailproof_watch_ticks_total "))
                .and_then(|n| n.parse::<u64>().ok());
            if ticks.is_some_and(|n| n > 0) {
                break reply;
            }
        }
        assert!(Instant::now() < deadline, "no metrics");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(metrics.contains("# TYPE trailproof_watch_lag_seconds gauge"));
    assert!(
        metrics.contains("\ntrailproof_watch_messages_total "),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ntrailproof_watch_digests_verified_total "),
        "{metrics}"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(problems(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
    )
    .is_empty());
}

/// What stops the watch before it starts, leaving the checkpoint file as it was: none at all
/// (watch never starts blind), one of another bucket, `--out` the checkpoint itself, one
/// edited. No server is needed.
#[test]
fn a_missing_foreign_or_edited_checkpoint_stops_the_watch() {
    let corpus = day();
    let (dir, case) = written(&corpus);
    let checkpoint = dir.path().join("trailproof.checkpoint");
    let key = repo().join(KEY).display().to_string();
    let keys = case.join("public-keys.json").display().to_string();
    // `watch s3://BUCKET` on the checkpoint, with MORE arguments.
    let watch_with = |bucket: &str, more: &[&str]| {
        let mut args = strings(&[
            "watch",
            &format!("s3://{bucket}"),
            "--sqs-queue",
            "http://127.0.0.1:9/queue/none",
            "--checkpoint",
            &checkpoint.display().to_string(),
            "--sign-key",
            &key,
            "--public-keys",
            &keys,
        ]);
        args.extend(strings(more));
        trailproof(dir.path(), &args, &[])
    };
    let watch = |bucket: &str| watch_with(bucket, &[]);
    // `verify --checkpoint FILE` of the whole copy, with MORE arguments.
    let make = |file: &Path, more: &[&str]| {
        let mut args = strings(&[
            "verify",
            &case.join("bucket").display().to_string(),
            "--public-keys",
            &keys,
            "--checkpoint",
            &file.display().to_string(),
            "--sign-key",
            &key,
        ]);
        args.extend(strings(more));
        trailproof(dir.path(), &args, &[])
    };
    let out = watch(BUCKET);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("trailproof verify s3://BUCKET --checkpoint"),
        "{}",
        out.stderr
    );
    assert!(!checkpoint.exists());

    let made = make(&checkpoint, &[]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let before = std::fs::read(&checkpoint).unwrap();
    let out = watch("another-bucket");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("the checkpoint is of bucket acme-cloudtrail-logs"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);

    // A valid checkpoint of the same bucket and key, made with --region, put in the watch's
    // one's place while it is stopped: taken as it is, it would narrow the watch to that
    // Region (red team). The filters come from the command line and must be the same.
    let narrow = dir.path().join("narrow.checkpoint");
    let made = make(&narrow, &["--region", "us-east-1"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let narrowed = std::fs::read(&narrow).unwrap();
    std::fs::write(&checkpoint, &narrowed).unwrap();
    let out = watch(BUCKET);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("made with other filters"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), narrowed);
    // Asked for by name, the same checkpoint passes that check (and stops at the queue,
    // which is not there).
    let out = watch_with(BUCKET, &["--region", "us-east-1"]);
    assert!(!out.stderr.contains("other filters"), "{}", out.stderr);
    std::fs::write(&checkpoint, &before).unwrap();

    // Findings appended to the checkpoint itself.
    let out = watch_with(BUCKET, &["--out", &checkpoint.display().to_string()]);
    assert_eq!(out.code, 2);
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);

    let mut edited = before.clone();
    let at = edited.len() / 2;
    edited[at] ^= 1;
    std::fs::write(&checkpoint, &edited).unwrap();
    let out = watch(BUCKET);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not verify"), "{}", out.stderr);
    assert_eq!(std::fs::read(&checkpoint).unwrap(), edited);
}
