//! `verify s3://... --checkpoint` on a real S3 server (moto on loopback): the run after the
//! checkpoint asks S3 only about what is new, counted by the fault proxy in front of it.

mod support;

use std::path::Path;

use jiff::Timestamp;
use trailproof_testgen::World;

use support::{corpus_as_of, repo, trailproof, written, FaultProxy, Moto, Output};

const BUCKET: &str = "acme-cloudtrail-logs";

/// `verify s3://BUCKET --checkpoint FILE` through `proxy`, its requests counted in `count`.
fn run(proxy: &FaultProxy, rules: &Path, count: &Path, checkpoint: &Path) -> Output {
    std::fs::write(
        rules,
        serde_json::json!({ "count": count.display().to_string() }).to_string(),
    )
    .unwrap();
    let args: Vec<String> = [
        "verify",
        &format!("s3://{BUCKET}"),
        "--format",
        "json",
        "--checkpoint",
        &checkpoint.display().to_string(),
        "--sign-key",
        &repo()
            .join("testdata/report-keys/ed25519.pem")
            .display()
            .to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint()));
    let out = trailproof(Path::new("."), &args, &env);
    std::fs::write(rules, "{}").unwrap();
    out
}

/// Three days of two Regions up to now: the first two checkpointed, then the third. The second run
/// reads the third day's digests and log files and each chain's last verified digest, and
/// lists only the folders of the days from that digest on: nothing of the first day.
#[test]
fn the_run_after_a_checkpoint_reads_and_lists_only_what_is_new() {
    // Ending now, as a daily job sees it: a run without an end lists day folders up to now.
    let hour = 3600;
    let now = Timestamp::now().as_second();
    let start = Timestamp::from_second(now - now % hour - 72 * hour).unwrap();
    let corpus = World::new(BUCKET)
        .start(start)
        .regions(&["us-east-1", "eu-west-1"])
        .hours(72)
        .logs_per_hour(1)
        .records_per_log(1)
        .build();
    let cut = start + jiff::SignedDuration::from_hours(48);
    let first_day = start.strftime("%Y%%2F%m%%2F%d").to_string();
    let (_g1, first) = written(&corpus_as_of(&corpus, cut));
    let (g2, whole) = written(&corpus);
    let moto = Moto::start(&whole.join("public-keys.json"));
    let rules = g2.path().join("rules.json");
    std::fs::write(&rules, "{}").unwrap();
    let proxy = FaultProxy::start(&moto, &rules);
    let checkpoint = g2.path().join("trailproof.checkpoint");

    moto.upload(&first, BUCKET);
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
    let prefix = format!("GET /{BUCKET}/");
    let gets: Vec<&str> = all2
        .iter()
        .filter_map(|r| r.strip_prefix(&prefix))
        .filter(|r| !r.starts_with('?'))
        .map(|r| r.split('?').next().unwrap_or(r))
        .collect();
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
            new.iter().any(|k| *k == key) || last.iter().any(|k| k == key),
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
