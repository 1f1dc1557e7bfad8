//! `verify s3://... --checkpoint` on a real S3 server (moto on loopback): the run after the
//! checkpoint asks S3 only about what is new, counted by the fault proxy in front of it.

mod support;

use std::path::Path;

use jiff::Timestamp;
use trailproof_testgen::World;

use support::{corpus_as_of, repo, trailproof, written, FaultProxy, Moto, Output};

const BUCKET: &str = "acme-cloudtrail-logs";

/// The arguments of `verify s3://BUCKET --format FORMAT --checkpoint FILE`.
fn verify_args(format: &str, checkpoint: &Path) -> Vec<String> {
    [
        "verify",
        &format!("s3://{BUCKET}"),
        "--format",
        format,
        "--checkpoint",
        &checkpoint.display().to_string(),
        "--sign-key",
        &repo()
            .join("testdata/report-keys/ed25519.pem")
            .display()
            .to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// The environment of a run through `proxy`.
fn env(proxy: &FaultProxy) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
    ]
}

/// `verify s3://BUCKET --checkpoint FILE` through `proxy`, its requests counted in `count`.
fn run(proxy: &FaultProxy, rules: &Path, count: &Path, checkpoint: &Path) -> Output {
    std::fs::write(
        rules,
        serde_json::json!({ "count": count.display().to_string() }).to_string(),
    )
    .unwrap();
    let out = trailproof(
        Path::new("."),
        &verify_args("json", checkpoint),
        &env(proxy),
    );
    std::fs::write(rules, "{}").unwrap();
    out
}

/// The keys of the objects `count` (a proxy's request log) says were read.
fn gets(count: &Path) -> Vec<String> {
    let prefix = format!("GET /{BUCKET}/");
    std::fs::read_to_string(count)
        .unwrap()
        .lines()
        .filter_map(|r| r.strip_prefix(&prefix))
        .filter(|r| !r.starts_with('?'))
        .map(|r| r.split('?').next().unwrap_or(r).to_owned())
        .collect()
}

/// HOURS of hourly digests of `regions` ending before now, as a daily job sees them (a run
/// without an end lists day folders up to now), on moto behind a fault proxy; the bucket holds
/// what was delivered in the first `cut` hours. The newest digest ends 31 to 91 minutes ago
/// (the generator's end 28:28 after the hour): one named for after the run's clock is not
/// CloudTrail's, and these tests failed when run in the first quarter of an hour.
struct UpToNow {
    corpus: trailproof_testgen::Corpus,
    start: Timestamp,
    cut: Timestamp,
    /// The whole corpus written out (`bucket/`, `public-keys.json`).
    whole: std::path::PathBuf,
    moto: Moto,
    proxy: FaultProxy,
    rules: std::path::PathBuf,
    checkpoint: std::path::PathBuf,
    dir: tempfile::TempDir,
    _first: tempfile::TempDir,
}

fn up_to_now(regions: &[&str], hours: u32, cut: u32) -> UpToNow {
    let hour = 3600;
    let now = Timestamp::now().as_second();
    let start = Timestamp::from_second(now - now % hour - i64::from(hours + 1) * hour).unwrap();
    let corpus = World::new(BUCKET)
        .start(start)
        .regions(regions)
        .hours(hours)
        .logs_per_hour(1)
        .records_per_log(1)
        .build();
    let cut = start + jiff::SignedDuration::from_hours(cut.into());
    let (first_dir, first) = written(&corpus_as_of(&corpus, cut));
    let (dir, whole) = written(&corpus);
    let moto = Moto::start(&whole.join("public-keys.json"));
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, "{}").unwrap();
    let proxy = FaultProxy::start(&moto, &rules);
    moto.upload(&first, BUCKET);
    UpToNow {
        corpus,
        start,
        cut,
        whole,
        moto,
        proxy,
        rules,
        checkpoint: dir.path().join("trailproof.checkpoint"),
        dir,
        _first: first_dir,
    }
}

/// Three days of two Regions up to now: the first two checkpointed, then the third. The second run
/// reads the third day's digests and log files and each chain's last verified digest, and
/// lists only the folders of the days from that digest on: nothing of the first day.
#[test]
fn the_run_after_a_checkpoint_reads_and_lists_only_what_is_new() {
    let UpToNow {
        corpus,
        start,
        cut,
        whole,
        moto,
        proxy,
        rules,
        checkpoint,
        dir: g2,
        ..
    } = up_to_now(&["us-east-1", "eu-west-1"], 72, 48);
    let first_day = start.strftime("%Y%%2F%m%%2F%d").to_string();

    let count1 = g2.path().join("requests.1");
    let out = run(&proxy, &rules, &count1, &checkpoint);
    assert_eq!(out.code, 0, "{}", out.stderr);

    moto.upload_more(&whole, BUCKET);
    let count2 = g2.path().join("requests.2");
    let out = run(&proxy, &rules, &count2, &checkpoint);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let requests = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (all1, all2) = (requests(&count1), requests(&count2));
    // Object GETs (the SDK adds `?x-id=GetObject`), by key.
    let gets = gets(&count2);
    let lists: Vec<&String> = all2.iter().filter(|r| r.contains("list-type=2")).collect();
    let new: Vec<&String> = corpus
        .digests()
        .iter()
        .filter(|d| d.end > cut)
        .flat_map(|d| d.logs.iter().chain([&d.key]))
        .collect();
    let last: Vec<String> = corpus
        .digests()
        .iter()
        .filter(|d| d.end <= cut)
        .fold(
            std::collections::BTreeMap::<&str, &trailproof_testgen::DigestInfo>::new(),
            |mut m, d| {
                let slot = m.entry(d.chain.as_str()).or_insert(d);
                if d.end > slot.end {
                    *slot = d;
                }
                m
            },
        )
        .values()
        .map(|d| d.key.clone())
        .collect();
    for key in &gets {
        assert!(
            new.contains(&key) || last.contains(key),
            "the second run read {key}, which is neither new nor a chain's last verified digest"
        );
    }
    for list in &lists {
        assert!(
            !list.contains(&first_day),
            "the second run listed a folder of the first day: {list}"
        );
    }
    // Every new object read: the digests (twice: for the walk and for their lists) and the
    // log files.
    for key in &new {
        assert!(
            gets.iter().any(|g| g.ends_with(key.as_str())),
            "{key} not read"
        );
    }
    // Each at most twice (a digest is read again for its list).
    assert!(
        gets.len() <= 2 * (new.len() + last.len()),
        "{} GETs",
        gets.len()
    );
    assert!(all1.len() > all2.len());
}

/// A run killed (SIGKILL) while a log file of its last chain hangs in transit has checkpointed
/// the chain it was done with, whose findings it had streamed: the checkpoint verifies, moves
/// that chain on (keeping where the search for log files no digest names was left) and not
/// the other. A run that cannot read a digest of that stretch again exits 2 and keeps the
/// mark; the run after it reads none of the finished chain's log files again, and ends with
/// nothing missing: a killed run loses only the chains in flight.
#[test]
fn a_run_killed_while_a_chain_is_in_flight_keeps_the_chains_it_finished() {
    // Enough digests for two batches of log files (see `engine::logs`): the first holds all of
    // eu-west-1 (first in chain order), the second the oldest of us-east-1.
    let corpus = World::new(BUCKET)
        .regions(&["us-east-1", "eu-west-1"])
        .hours(130)
        .logs_per_hour(1)
        .records_per_log(1)
        .build();
    let (g, case) = written(&corpus);
    let moto = Moto::start(&case.join("public-keys.json"));
    moto.upload(&case, BUCKET);
    let standard = |region: &str| -> Vec<&trailproof_testgen::DigestInfo> {
        let mut chain: Vec<_> = corpus
            .digests()
            .iter()
            .filter(|d| d.key.contains(&format!("/{region}/")) && !d.backfill)
            .collect();
        chain.sort_by_key(|d| d.end);
        chain
    };
    let stalled = standard("us-east-1")[0].logs[0].clone();
    let rules = g.path().join("rules.json");
    std::fs::write(
        &rules,
        serde_json::json!({ "stall": [stalled] }).to_string(),
    )
    .unwrap();
    let proxy = FaultProxy::start(&moto, &rules);
    let checkpoint = g.path().join("trailproof.checkpoint");
    let streamed = g.path().join("first.jsonl");

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trailproof"));
    cmd.args(verify_args("jsonl", &checkpoint))
        .envs(env(&proxy))
        .stdout(std::fs::File::create(&streamed).unwrap())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !checkpoint.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it checkpointed a chain"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint in 2 min"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let key = trailproof::report::signing::PublicKey::from_pem(
        &std::fs::read(repo().join("testdata/report-keys/ed25519.pub.pem")).unwrap(),
    )
    .unwrap();
    let opened = |path: &Path| {
        trailproof::report::checkpoint::VerifiedCheckpoint::open(
            &std::fs::read(path).unwrap(),
            trailproof::report::dsse::Trust::Key(&key),
        )
        .unwrap()
    };
    let partial = opened(&checkpoint);
    let marks = &partial.checkpoint().chains;
    let eu = marks
        .iter()
        .find(|m| m.chain.region == "eu-west-1" && !m.chain.backfill)
        .expect("the finished chain is in the checkpoint");
    let newest_eu = standard("eu-west-1").last().unwrap().key.clone();
    assert_eq!(eu.last.as_ref().unwrap().key, newest_eu);
    assert!(eu.searched.is_some());
    assert!(
        !marks
            .iter()
            .any(|m| m.chain.region == "us-east-1" && m.last.is_some()),
        "the chain in flight moved"
    );
    // Its findings were out before its mark moved.
    let first = std::fs::read_to_string(&streamed).unwrap();
    assert!(first.contains("eu-west-1"), "{first}");

    // Found by the red team: a digest of the moved chain that S3 will not give when read
    // again (for the log files it names) made a false `log_unreferenced`, exit status 1, and
    // the checkpoint moved past it. It is a digest that could not be read: exit 2, and the
    // chain keeps where its search was left.
    let refused = standard("eu-west-1")[3].key.clone();
    std::fs::write(
        &rules,
        serde_json::json!({ "denied": [refused] }).to_string(),
    )
    .unwrap();
    let out = trailproof(
        Path::new("."),
        &verify_args("json", &checkpoint),
        &env(&proxy),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.contains("digest_unreadable") && out.stdout.contains(&refused),
        "{}",
        out.stdout
    );
    let kept = opened(&checkpoint);
    assert!(kept
        .checkpoint()
        .chains
        .iter()
        .any(|m| m.chain.region == "eu-west-1" && m.searched.is_some()));

    let count = g.path().join("requests");
    let out = run(&proxy, &rules, &count, &checkpoint);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = gets(&count);
    let eu_logs: Vec<&String> = standard("eu-west-1")
        .iter()
        .flat_map(|d| &d.logs)
        .filter(|l| read.contains(l))
        .collect();
    assert!(eu_logs.is_empty(), "read again: {eu_logs:?}");
    // us-east-1 was verified whole by the run that could not read the digest (its chain had
    // nothing unread, so it moved).
    assert!(!read.contains(&stalled));
    let done = opened(&checkpoint);
    assert!(done
        .checkpoint()
        .chains
        .iter()
        .all(|m| m.searched.is_none()));
    let counts = done.checkpoint().counts();
    assert_eq!(counts.total(), counts.verified, "{counts:?}");
    assert!(counts.verified >= 2 * 129, "{counts:?}");
}

/// What an attacker puts where no run to now looked (red team): folders dated years ahead
/// (`2099/`), which a run over a range did not list on S3, a digest and a log file named for
/// 2099, a digest named for 40 minutes ahead, and an object directly in an older year's
/// folder, which the local copy reported and the bucket did not. The run from the checkpoint
/// reports everything dated after its clock, online as offline (the copy's records naming the
/// 2099 digest, as an acquisition's would), and not the older year's object (before its range
/// on both); the future digests take no part in the chains: the checkpoint moves neither to
/// 2099 nor past now (it did, and then no run found anything newer).
#[test]
fn objects_dated_after_the_clock_are_reported_by_a_run_to_now_and_do_not_move_the_checkpoint() {
    let UpToNow {
        corpus,
        start,
        cut,
        whole,
        moto,
        proxy,
        checkpoint,
        dir: _dir,
        ..
    } = up_to_now(&["us-east-1"], 48, 24);
    let out = trailproof(
        Path::new("."),
        &verify_args("json", &checkpoint),
        &env(&proxy),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let digest = corpus
        .digests()
        .iter()
        .find(|d| d.end > cut && !d.backfill && !d.logs.is_empty())
        .unwrap();
    // `AWSLogs/ACCOUNT/CloudTrail-Digest/REGION`, and the same for the logs.
    let folder = |key: &str| key.splitn(5, '/').take(4).collect::<Vec<_>>().join("/");
    let (digests, logs) = (folder(&digest.key), folder(&digest.logs[0]));
    let renamed = |key: &str, time: &str, future: &str| {
        let name = key.rsplit('/').next().unwrap();
        assert!(name.contains(time), "{name} {time}");
        name.replace(time, future)
    };
    let digest_time = digest.end.strftime("%Y%m%dT%H%M%SZ").to_string();
    let log_time = digest.logs[0].split('_').nth(3).unwrap().to_owned();
    let bytes = |key: &str| corpus.objects[key].bytes.clone();
    let soon = Timestamp::now() + jiff::SignedDuration::from_mins(40);
    let future = [
        (
            format!(
                "{digests}/2099/01/01/{}",
                renamed(&digest.key, &digest_time, "20990101T003000Z")
            ),
            bytes(&digest.key),
        ),
        (
            format!(
                "{logs}/2099/01/01/{}",
                renamed(&digest.logs[0], &log_time, "20990101T0030Z")
            ),
            bytes(&digest.logs[0]),
        ),
        // Within the hour ahead (red team): it took the checkpoint past now, and every run
        // after said "no digest is newer" until a real digest passed its time.
        (
            format!(
                "{digests}/{}/{}",
                soon.strftime("%Y/%m/%d"),
                renamed(
                    &digest.key,
                    &digest_time,
                    &soon.strftime("%Y%m%dT%H%M%SZ").to_string()
                )
            ),
            bytes(&digest.key),
        ),
        (format!("{logs}/2099/stray.json.gz"), b"x".to_vec()),
        (format!("{logs}/2099/01/01/garbage.txt"), b"x".to_vec()),
        (format!("{logs}/2099/13/stray.json.gz"), b"x".to_vec()),
    ];
    let older = format!(
        "{logs}/{}/stray.json.gz",
        start.strftime("%Y").to_string().parse::<i32>().unwrap() - 1
    );
    for (key, body) in future.iter().chain([&(older.clone(), b"x".to_vec())]) {
        moto.put(BUCKET, key, body);
        let path = whole.join("bucket").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    // The copy's records name the future digest as an acquisition would (red team: a digest
    // its records named, even 7 bytes of garbage, took the copy's range to 2099).
    let records = whole.join("bucket/trailproof-evidence.json");
    let mut evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records).unwrap()).unwrap();
    let entry = evidence["objects"][&digest.key].clone();
    assert!(entry.is_object(), "{evidence}");
    evidence["objects"][&future[0].0] = entry;
    std::fs::write(&records, evidence.to_string()).unwrap();
    moto.upload_more(&whole, BUCKET);
    let out = trailproof(
        Path::new("."),
        &verify_args("json", &checkpoint),
        &env(&proxy),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let strays = |out: &Output| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let mut found: Vec<String> = report["unchained"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["subject"].as_str().unwrap().to_owned())
            .collect();
        found.sort();
        // The chains themselves are all valid: what was put there takes no part in them.
        for chain in report["chains"].as_array().unwrap() {
            for f in chain["findings"].as_array().unwrap() {
                assert_eq!(f["verdict"], "valid", "{f}");
            }
        }
        found
    };
    let mut expected: Vec<String> = future
        .iter()
        .map(|(key, _)| format!("s3://{BUCKET}/{key}"))
        .collect();
    expected.sort();
    let online = strays(&out);
    assert_eq!(online, expected, "{}", out.stderr);
    assert!(
        out.stderr.contains("trailproof: checkpoint:"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("2099"), "{}", out.stderr);
    // Offline, the copy over the same range (to now) says the same.
    let offline = trailproof(
        &whole,
        &[
            "verify".to_owned(),
            "bucket".to_owned(),
            "--public-keys".to_owned(),
            "public-keys.json".to_owned(),
            "--start-time".to_owned(),
            (cut + jiff::SignedDuration::from_secs(1)).to_string(),
            "--format".to_owned(),
            "json".to_owned(),
        ],
        &[],
    );
    assert_eq!(offline.code, 1, "{}", offline.stderr);
    assert_eq!(strays(&offline), online);
    // Its range ends at the newest real digest, not at 2099 nor at now.
    let report: serde_json::Value = serde_json::from_str(&offline.stdout).unwrap();
    let newest = corpus.digests().iter().map(|d| d.end).max().unwrap();
    assert_eq!(
        report["range"]["end"],
        newest.to_string(),
        "{}",
        report["range"]
    );
    // Nothing newer: the checkpoint ends at the last real digest, not in 2099.
    let out = trailproof(
        Path::new("."),
        &verify_args("json", &checkpoint),
        &env(&proxy),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no digest is newer"), "{}", out.stderr);
    assert!(!out.stderr.contains("2099"), "{}", out.stderr);
}
