//! `trailproof plan`, `verify --plan --shard` and `merge`: an organization's run cut into shards,
//! each shard a separate process given its index the way each job engine gives it, the shard
//! reports merged, and the merged report held against a single run over the same bucket.

mod support;

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::Value;
use support::{trailproof, written, Moto, Output};
use trailproof::core::types::Sha256;
use trailproof_testgen::{Corpus, World};

const BUCKET: &str = "org-trail-bucket";
const START: &str = "2026-01-01T00:30:00Z";
const END: &str = "2026-01-01T13:00:00Z";

fn key(name: &str) -> String {
    support::repo()
        .join("testdata/report-keys")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// An organization: two member accounts, three Regions each (its own key per Region), a
/// multi-Region trail, half a day of hourly digests with late deliveries in backfill digests.
fn organization() -> World {
    World::new(BUCKET)
        .org("o-a1b2c3d4e5")
        .accounts(&["111122223333", "444455556666"])
        .regions(&["us-east-1", "eu-west-1", "ap-northeast-1"])
        .trail("org-trail", "us-east-1", true)
        .start(START.parse::<Timestamp>().unwrap() - jiff::SignedDuration::from_mins(30))
        .hours(13)
        .logs_per_hour(2)
        .backfill_hours(&[6])
}

/// The digests of one chain of `corpus`, oldest first (standard chain of account/Region).
fn chain<'a>(
    corpus: &'a Corpus,
    account: &str,
    region: &str,
) -> Vec<&'a trailproof_testgen::DigestInfo> {
    let mut digests: Vec<_> = corpus
        .digests()
        .iter()
        .filter(|d| {
            !d.backfill
                && d.key.contains(&format!("/{account}/"))
                && d.key.contains(&format!("/{region}/"))
        })
        .collect();
    digests.sort_by_key(|d| d.end);
    digests
}

/// A JSON report without the run's own fields (its clock).
fn without_run(out: &Output) -> Value {
    let mut v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", out.stdout, out.stderr));
    v.as_object_mut().unwrap().remove("run");
    // A merged report names its plan; a single run has none.
    v.as_object_mut().unwrap().remove("merged");
    v
}

/// A written corpus on moto, with an `audit-artifacts` bucket for reports, planned from START
/// to `end` into `shards` (`plan.json` in the run's folder).
struct OnS3 {
    tmp: tempfile::TempDir,
    moto: Moto,
    env: Vec<(&'static str, String)>,
    endpoint: Vec<String>,
    plan: PathBuf,
}

impl OnS3 {
    fn planned(corpus: Corpus, end: &str, shards: usize) -> Self {
        let (tmp, case) = written(&corpus);
        let moto = Moto::start(&case.join("public-keys.json"));
        moto.upload(&case, BUCKET);
        moto.s3(|s3| async move {
            s3.create_bucket()
                .bucket("audit-artifacts")
                .send()
                .await
                .unwrap();
        });
        let env = moto.env();
        let endpoint = strings(&["--endpoint-url", &moto.endpoint()]);
        let plan = tmp.path().join("plan.json");
        let mut args = strings(&["plan", &format!("s3://{BUCKET}"), "--start-time", START]);
        args.extend(strings(&[
            "--end-time",
            end,
            "--shards",
            &shards.to_string(),
        ]));
        args.extend(["--out".to_owned(), plan.to_string_lossy().into_owned()]);
        args.extend(endpoint.iter().cloned());
        assert_eq!(trailproof(tmp.path(), &args, &env).code, 0);
        OnS3 {
            tmp,
            moto,
            env,
            endpoint,
            plan,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// A plan's shards run as separate processes, each given its index as one job engine gives
/// it: a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`), an AWS Batch array job
/// (`AWS_BATCH_JOB_ARRAY_INDEX`), and a Step Functions Distributed Map, whose items are the
/// plan's shard list and carry their index (passed as `--shard`). Returns the reports' paths
/// and each shard's own output.
fn run_shards(
    dir: &Path,
    plan: &Path,
    extra: &[String],
    env: &[(&str, String)],
) -> (Vec<PathBuf>, Vec<Output>) {
    let plan_json: Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let items = plan_json["shards"].as_array().unwrap();
    let mut reports = Vec::new();
    let mut outputs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let out = dir.join(format!("shard-{i}.dsse.json"));
        let mut args = strings(&[
            "verify",
            "--plan",
            plan.to_str().unwrap(),
            "--format",
            "json",
        ]);
        args.extend(strings(&[
            "--sign-key",
            &key("ed25519.pem"),
            "--sign-out",
            out.to_str().unwrap(),
        ]));
        args.extend(extra.iter().cloned());
        let mut env = env.to_vec();
        match i % 3 {
            0 => env.push(("JOB_COMPLETION_INDEX", i.to_string())),
            1 => env.push(("AWS_BATCH_JOB_ARRAY_INDEX", i.to_string())),
            _ => args.extend([
                "--shard".to_owned(),
                item["index"].as_u64().unwrap().to_string(),
            ]),
        }
        let run = trailproof(dir, &args, &env);
        assert!(run.code == 0 || run.code == 1, "shard {i}: {}", run.stderr);
        reports.push(out);
        outputs.push(run);
    }
    (reports, outputs)
}

fn merge(dir: &Path, plan: &Path, reports: &[PathBuf], extra: &[&str]) -> Output {
    let mut args = strings(&[
        "merge",
        "--plan",
        plan.to_str().unwrap(),
        "--key",
        &key("ed25519.pub.pem"),
    ]);
    args.extend(reports.iter().map(|p| p.to_string_lossy().into_owned()));
    args.extend(strings(extra));
    trailproof(dir, &args, &[])
}

fn plan(
    dir: &Path,
    source: &str,
    shards: usize,
    extra: &[String],
    env: &[(&str, String)],
) -> PathBuf {
    let out = dir.join(format!("plan-{shards}.json"));
    let mut args = strings(&["plan", source, "--start-time", START, "--end-time", END]);
    args.extend([
        "--shards".to_owned(),
        shards.to_string(),
        "--out".to_owned(),
        out.to_string_lossy().into_owned(),
    ]);
    args.extend(extra.iter().cloned());
    let run = trailproof(dir, &args, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("SHA-256 "), "{}", run.stdout);
    out
}

/// Rewrites a digest of the copy at `case` in place: one listed hash changed, not signed again
/// (what someone covering up a changed log file would write). The generator's own attack is
/// for the newest digest only, whose report it can state; here a single run states it.
fn rewrite_digest(case: &Path, key: &str) {
    let path = case.join("bucket").join(key);
    let mut json = trailproof_testgen::gunzip(&std::fs::read(&path).unwrap()).unwrap();
    let needle = b"\"hashValue\":\"";
    let at = json
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len();
    json[at] = if json[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(&path, trailproof_testgen::gzip(&json)).unwrap();
}

/// The organization with evidence tampered with in the middle of the range, where shards
/// meet: two digests deleted in a row, a log file changed, one injected (and, once written, a
/// digest rewritten: [`rewrite_digest`]).
fn tampered_organization() -> Corpus {
    let mut corpus = organization().build();
    let digests = |c: &Corpus, a, r| {
        chain(c, a, r)
            .iter()
            .map(|d| (d.key.clone(), d.logs.clone()))
            .collect::<Vec<_>>()
    };
    let west = digests(&corpus, "444455556666", "eu-west-1");
    corpus.delete_two_digests(&west[5].0).unwrap();
    let tokyo = digests(&corpus, "111122223333", "ap-northeast-1");
    corpus.modify_log(&tokyo[7].1[0]).unwrap();
    let other = digests(&corpus, "444455556666", "ap-northeast-1");
    corpus.inject_log(&other[4].1[0]).unwrap();
    corpus
}

/// Planned into 1, 2, 3 and 8 shards (8: more shards than account/Region folders, so chains
/// are cut in time), run as separate processes on S3 (moto), merged: the JSON report equals a
/// single run's but for the run's clock, and the text report is the single run's byte for byte.
#[test]
fn sharded_runs_of_an_organization_equal_one_run_on_s3() {
    let corpus = tampered_organization();
    let (tmp, case) = written(&corpus);
    rewrite_digest(&case, &chain(&corpus, "111122223333", "us-east-1")[6].key);
    let moto = Moto::start(&case.join("public-keys.json"));
    moto.upload(&case, BUCKET);
    let env = moto.env();
    let source = format!("s3://{BUCKET}");
    let endpoint = strings(&["--endpoint-url", &moto.endpoint()]);
    let mut single_args = strings(&["verify", &source, "--start-time", START, "--end-time", END]);
    single_args.extend(endpoint.iter().cloned());
    let single_json = trailproof(
        tmp.path(),
        &[single_args.clone(), strings(&["--format", "json"])].concat(),
        &env,
    );
    assert_eq!(single_json.code, 1, "{}", single_json.stderr);
    let single_text = trailproof(tmp.path(), &single_args, &env);
    let single = without_run(&single_json);
    // The attacks are there to be found, in the chains the shards cut.
    let text = &single_text.stdout;
    for needle in [
        "signature verification failed",
        "INVALID: hash value doesn't match",
        "INVALID: not found",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }

    for shards in [1, 2, 3, 8] {
        let dir = tmp.path().join(format!("n{shards}"));
        std::fs::create_dir(&dir).unwrap();
        let plan = plan(&dir, &source, shards, &endpoint, &env);
        let (reports, _) = run_shards(&dir, &plan, &endpoint, &env);
        let merged = merge(&dir, &plan, &reports, &["--format", "json"]);
        assert_eq!(merged.code, 1, "{shards} shards: {}", merged.stderr);
        // Found by the red team: a plan edited before the shards ran (a folder left out)
        // merged into a report nothing tied to the plan `plan` printed. It names it now.
        let json: Value = serde_json::from_str(&merged.stdout).unwrap();
        let printed = Sha256::of(&std::fs::read(&plan).unwrap()).to_hex();
        assert_eq!(json["merged"]["plan_sha256"], printed.as_str());
        assert_eq!(json["merged"]["shards"], shards);
        assert_eq!(
            without_run(&merged),
            single,
            "{shards} shards: the merged report is not the single run's"
        );
        let merged_text = merge(&dir, &plan, &reports, &[]);
        assert_eq!(
            merged_text.stdout, single_text.stdout,
            "{shards} shards, text"
        );
        assert_eq!(merged_text.code, single_text.code);
    }
    // Found by the red team: a shard pointed at another S3 endpoint read another store's bucket
    // of the same name (there, untampered), and merge took its report as the plan's.
    let plan3 = tmp.path().join("n3/plan-3.json");
    for (extra, env) in [
        (
            strings(&["--endpoint-url", "http://127.0.0.1:9"]),
            env.clone(),
        ),
        (
            Vec::new(),
            [
                env.clone(),
                vec![("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_owned())],
            ]
            .concat(),
        ),
    ] {
        let mut args = strings(&["verify", "--plan", plan3.to_str().unwrap(), "--shard", "0"]);
        args.extend(strings(&[
            "--sign-key",
            &key("ed25519.pem"),
            "--sign-out",
            "x.json",
        ]));
        args.extend(extra);
        let out = trailproof(tmp.path(), &args, &env);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("the plan was made against the S3 endpoint"),
            "{}",
            out.stderr
        );
    }
    // 8 shards over 6 folders: some folder was cut in time, or the test proves less.
    let plan8: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("n8/plan-8.json")).unwrap()).unwrap();
    let items: Vec<&Value> = plan8["shards"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap())
        .collect();
    assert!(items.len() > 6, "{plan8}");
}

/// A rewritten digest on the boundary of two shards' shares is read by both: the shard that
/// owns it reports it, its neighbour (whose hours it covers) reports those hours invalid, the
/// shard further away sees nothing of it; merged, it is one finding, as in a single run.
#[test]
fn a_tampered_boundary_digest_is_caught_by_the_shards_that_share_it_and_said_once() {
    let corpus = World::new(BUCKET)
        .start(START.parse::<Timestamp>().unwrap() - jiff::SignedDuration::from_mins(30))
        .hours(13)
        .build();
    let (tmp, case) = written(&corpus);
    let source = case.join("bucket").to_string_lossy().into_owned();
    let keys = strings(&[
        "--public-keys",
        case.join("public-keys.json").to_str().unwrap(),
    ]);
    let plan_path = plan(tmp.path(), &source, 3, &keys, &[]);
    let plan_json: Value = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let cut: Timestamp = plan_json["shards"][1]["items"][0]["owned"]["from"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The first digest of shard 1's share: its window reaches back into shard 0's.
    let boundary = chain(&corpus, "111122223333", "us-east-1")
        .into_iter()
        .find(|d| d.end >= cut)
        .unwrap()
        .key
        .clone();
    rewrite_digest(&case, &boundary);

    let (reports, outputs) = run_shards(tmp.path(), &plan_path, &keys, &[]);
    let subject = format!("s3://{BUCKET}/{boundary}");
    let caught = |out: &Output| {
        let report = without_run(out);
        let named = report["chains"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["subject"] == subject.as_str() && f["verdict"] == "invalid");
        let hours = report["chains"][0]["ledger"]["counts"]["invalid"]
            .as_u64()
            .unwrap();
        (named, hours)
    };
    let (named0, hours0) = caught(&outputs[0]);
    let (named1, hours1) = caught(&outputs[1]);
    let (named2, hours2) = caught(&outputs[2]);
    assert!(
        !named0 && hours0 > 0,
        "shard 0 reads it and owns hours it covers: {}",
        outputs[0].stdout
    );
    assert!(
        named1 && hours1 > 0,
        "shard 1 owns it: {}",
        outputs[1].stdout
    );
    assert!(
        !named2 && hours2 == 0,
        "shard 2 does not share it: {}",
        outputs[2].stdout
    );
    assert_eq!(outputs[2].code, 0);

    let merged = merge(tmp.path(), &plan_path, &reports, &["--format", "json"]);
    let mut single_args = strings(&[
        "verify",
        &source,
        "--start-time",
        START,
        "--end-time",
        END,
        "--format",
        "json",
    ]);
    single_args.extend(keys);
    let single = trailproof(tmp.path(), &single_args, &[]);
    let merged_json = without_run(&merged);
    assert_eq!(merged_json, without_run(&single));
    let said = merged_json["chains"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"] == subject.as_str())
        .count();
    assert_eq!(said, 1, "{merged_json}");

    // JSONL: the findings, chain by chain, then the summary, as a single run streams them.
    let lines = |out: &Output| {
        let mut lines: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for l in &mut lines {
            l.as_object_mut().unwrap().remove("run");
        }
        lines
    };
    let jsonl = |args: &[String]| [args, &strings(&["--format", "jsonl"])].concat();
    let single_args: Vec<String> = single_args
        .into_iter()
        .filter(|a| a != "--format" && a != "json")
        .collect();
    let single = trailproof(tmp.path(), &jsonl(&single_args), &[]);
    let merged = merge(tmp.path(), &plan_path, &reports, &["--format", "jsonl"]);
    assert!(lines(&merged).len() > 10, "{}", merged.stdout);
    assert_eq!(lines(&merged), lines(&single));
}

/// Everything `merge` must refuse, each with exit status 2 and a message naming the problem,
/// never a smaller "valid": a shard missing, given twice, made for another plan, tampered,
/// signed by another key, not a shard report at all, or a plan edited after the shards ran;
/// and shards that would run other filters or keys than the plan's are refused up front.
#[test]
fn merge_refuses_anything_but_every_shard_of_the_plan_once() {
    let corpus = organization().build();
    let (tmp, case) = written(&corpus);
    let dir = tmp.path();
    let source = case.join("bucket").to_string_lossy().into_owned();
    let keys = strings(&[
        "--public-keys",
        case.join("public-keys.json").to_str().unwrap(),
    ]);
    let plan_path = plan(dir, &source, 3, &keys, &[]);
    let (reports, _) = run_shards(dir, &plan_path, &keys, &[]);
    let refused = |reports: &[PathBuf], plan: &Path, extra: &[&str], needle: &str| {
        let out = merge(dir, plan, reports, extra);
        assert_eq!(out.code, 2, "{needle}: {}", out.stdout);
        assert!(out.stdout.is_empty(), "{needle}: no report: {}", out.stdout);
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    };
    assert_eq!(merge(dir, &plan_path, &reports, &[]).code, 0);

    refused(&reports[..2], &plan_path, &[], "no report for shard(s) 2");
    refused(
        &[reports.clone(), vec![reports[1].clone()]].concat(),
        &plan_path,
        &[],
        "shard 1 is given twice",
    );
    // Shard 1's report in place of shard 2's: 1 twice, 2 missing.
    refused(
        &[reports[0].clone(), reports[1].clone(), reports[1].clone()],
        &plan_path,
        &[],
        "given twice",
    );

    // Another plan (two shards, same source and range): its reports are foreign here.
    let other_dir = dir.join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other_plan = plan(&other_dir, &source, 2, &keys, &[]);
    let (other_reports, _) = run_shards(&other_dir, &other_plan, &keys, &[]);
    refused(
        &[
            reports[0].clone(),
            reports[1].clone(),
            other_reports[1].clone(),
        ],
        &plan_path,
        &[],
        "made for another plan",
    );

    // The plan edited after the shards ran (a shard's share moved to another): another plan.
    let edited = dir.join("edited.json");
    let mut text = std::fs::read_to_string(&plan_path).unwrap();
    text.push('\n');
    std::fs::write(&edited, text).unwrap();
    refused(&reports, &edited, &[], "the plan file was changed");

    // A byte of a signed report's payload changed, in place (the envelope keeps its form).
    let tampered = dir.join("tampered.dsse.json");
    let mut bytes = std::fs::read(&reports[2]).unwrap();
    let start = bytes
        .windows(11)
        .position(|w| w == b"\"payload\":\"")
        .unwrap()
        + 11;
    let at = start + 400;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&tampered, bytes).unwrap();
    refused(
        &[reports[0].clone(), reports[1].clone(), tampered],
        &plan_path,
        &[],
        "tampered.dsse.json: ",
    );

    // Signed by another key than the one trusted.
    let p256 = dir.join("p256.dsse.json");
    let mut args = strings(&[
        "verify",
        "--plan",
        plan_path.to_str().unwrap(),
        "--shard",
        "2",
    ]);
    args.extend(strings(&[
        "--sign-key",
        &key("p256.pem"),
        "--sign-out",
        p256.to_str().unwrap(),
    ]));
    args.extend(keys.iter().cloned());
    assert_eq!(trailproof(dir, &args, &[]).code, 0);
    refused(
        &[reports[0].clone(), reports[1].clone(), p256],
        &plan_path,
        &[],
        "p256.dsse.json: ",
    );

    // A signed report of a plain run is no shard's.
    let plain = dir.join("plain.dsse.json");
    let mut args = strings(&["verify", &source, "--start-time", START, "--end-time", END]);
    args.extend(strings(&[
        "--sign-key",
        &key("ed25519.pem"),
        "--sign-out",
        plain.to_str().unwrap(),
    ]));
    args.extend(keys.iter().cloned());
    assert_eq!(trailproof(dir, &args, &[]).code, 0);
    refused(
        &[reports[0].clone(), reports[1].clone(), plain],
        &plan_path,
        &[],
        "not a shard's report",
    );

    // Shards cannot be run with other filters, keys or an index the plan does not have.
    let shard = |extra: &[&str], env: &[(&str, String)]| {
        let mut args = strings(&["verify", "--plan", plan_path.to_str().unwrap()]);
        args.extend(strings(&[
            "--sign-key",
            &key("ed25519.pem"),
            "--sign-out",
            dir.join("x.json").to_str().unwrap(),
        ]));
        args.extend(strings(extra));
        trailproof(dir, &args, env)
    };
    let keys_arg = keys.iter().map(String::as_str).collect::<Vec<_>>();
    for (extra, env, needle) in [
        (
            vec!["--shard", "0", "--account-id", "111122223333"],
            vec![],
            "--account-id is set by the plan",
        ),
        (
            vec!["--shard", "0", "--end-time", "2026-01-01T02:00:00Z"],
            vec![],
            "--end-time is set by the plan",
        ),
        (vec!["--shard", "3"], vec![], "shard 3 is not in the plan"),
        (
            vec!["--shard", "1"],
            vec![("JOB_COMPLETION_INDEX", "2".to_owned())],
            "given twice, differently",
        ),
        (vec![], vec![], "no shard index"),
    ] {
        let out = shard(&[keys_arg.clone(), extra].concat(), &env);
        assert_eq!(out.code, 2, "{needle}");
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    let other_keys = dir.join("other-keys.json");
    let mut k: Value =
        serde_json::from_slice(&std::fs::read(case.join("public-keys.json")).unwrap()).unwrap();
    k["PublicKeyList"].as_array_mut().unwrap().pop();
    std::fs::write(&other_keys, serde_json::to_vec(&k).unwrap()).unwrap();
    let out = shard(
        &[
            "--shard",
            "0",
            "--public-keys",
            other_keys.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("the plan says the keys come from pinned:"),
        "{}",
        out.stderr
    );
    let out = shard(&["--shard", "0"], &[]);
    assert_eq!(out.code, 2, "no keys where the plan pins them");
}

/// Plans `case` (a committed case or a written corpus, run with its own arguments) into
/// `shards`, runs every shard, merges: the merged JSON report must be the single run's but for
/// the run's clock.
fn assert_sharded_equals_single(case: &Path, args: &[String], shards: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let source = case.join("bucket").to_string_lossy().into_owned();
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "public-keys.json" => case.join(a).to_string_lossy().into_owned(),
            _ => a.clone(),
        })
        .collect();
    let single = trailproof(
        dir,
        &[
            strings(&["verify", &source, "--format", "json"]),
            args.clone(),
        ]
        .concat(),
        &[],
    );
    // The range, filters and keys go to the plan; the bucket and head signatures to each shard.
    let (mut planned, mut per_shard) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let (Some(flag), Some(value)) = (it.next(), it.next()) {
        let to = match flag.as_str() {
            "--head-signature" => &mut per_shard,
            "--public-keys" => {
                per_shard.extend([flag.clone(), value.clone()]);
                &mut planned
            }
            _ => &mut planned,
        };
        to.extend([flag.clone(), value.clone()]);
    }
    // A copy that does not say its bucket: the plan names the one the single run found.
    if !planned.iter().any(|a| a == "--s3-bucket") {
        let bucket = without_run(&single)["bucket"].as_str().unwrap().to_owned();
        planned.extend(["--s3-bucket".to_owned(), bucket]);
    }
    let out = dir.join("plan.json");
    let mut plan_args = strings(&[
        "plan",
        &source,
        "--shards",
        &shards.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    plan_args.extend(planned);
    let run = trailproof(dir, &plan_args, &[]);
    assert_eq!(run.code, 0, "{}: {}", case.display(), run.stderr);
    let (reports, _) = run_shards(dir, &out, &per_shard, &[]);
    let merged = merge(dir, &out, &reports, &["--format", "json"]);
    assert_eq!(
        merged.code,
        single.code,
        "{}: {}",
        case.display(),
        merged.stderr
    );
    assert_eq!(
        without_run(&merged),
        without_run(&single),
        "{} in {shards} shards",
        case.display()
    );
}

/// Every committed case (each attack, edge and layout), cut into 2 and 5 shards.
#[test]
fn every_committed_case_sharded_equals_its_single_run() {
    for name in support::case_names() {
        let case = support::cases_dir().join(&name);
        for shards in [2, 5] {
            assert_sharded_equals_single(&case, &support::case_args(&case), shards);
        }
    }
}

/// Every digest of one account and Region deleted (all time), its log files left: the folder
/// has no digest for the plan to find, yet a single run reports its log files; so must the
/// merged report, never a smaller "valid".
#[test]
fn a_folder_whose_digests_are_all_deleted_is_still_in_a_shard() {
    // A plain copy: no evidence-metadata file to remember the digests by.
    let mut corpus = organization().metadata(false).build();
    let folder = "/444455556666/CloudTrail-Digest/eu-west-1/";
    corpus.objects.retain(|key, _| !key.contains(folder));
    let (_tmp, case) = written(&corpus);
    let args = strings(&[
        "--start-time",
        START,
        "--end-time",
        END,
        "--public-keys",
        "public-keys.json",
    ]);
    for shards in [1, 4] {
        assert_sharded_equals_single(&case, &args, shards);
    }
}

/// The manifests of deploy/ read as data (PyYAML, JSON) with the fields each job engine needs;
/// and the check fails on a manifest that lacks one (an Indexed Job that is not indexed).
#[test]
fn deploy_manifests_have_what_the_engines_require() {
    let check = |dir: &Path| {
        let script = support::repo().join("tests/support/check_deploy.py");
        std::process::Command::new("python3")
            .arg(script)
            .arg(dir)
            .output()
            .unwrap()
    };
    let deploy = support::repo().join("deploy");
    let out = check(&deploy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let tmp = tempfile::tempdir().unwrap();
    for sub in ["kubernetes", "aws-batch", "step-functions"] {
        std::fs::create_dir(tmp.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(deploy.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), tmp.path().join(sub).join(entry.file_name())).unwrap();
        }
    }
    let job = tmp.path().join("kubernetes/indexed-job.yaml");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(
        &job,
        text.replace("completionMode: Indexed", "completionMode: NonIndexed"),
    )
    .unwrap();
    let asl = tmp.path().join("step-functions/state-machine.asl.json");
    let text = std::fs::read_to_string(&asl).unwrap();
    std::fs::write(&asl, text.replace("\"DISTRIBUTED\"", "\"INLINE\"")).unwrap();
    let out = check(tmp.path());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        said.contains("completionMode Indexed") && said.contains("Mode DISTRIBUTED"),
        "{said}"
    );
}

/// The container wrappers of deploy/ end to end on S3 (moto, the AWS CLI for the plan and the
/// reports): the plan uploaded, each shard's wrapper run with its index as its engine sets it,
/// the merge wrapper run; the merged report it uploads is a single run's.
#[test]
fn the_deploy_wrappers_run_a_plan_end_to_end_on_s3() {
    let end = "2026-01-01T05:00:00Z";
    let on = OnS3::planned(organization().hours(6).build(), end, 3);
    let (dir, moto, env, endpoint, out) = (on.dir(), &on.moto, &on.env, &on.endpoint, &on.plan);
    let source = format!("s3://{BUCKET}");
    let plan_bytes = std::fs::read(out).unwrap();
    moto.s3(|s3| async move {
        s3.put_object()
            .bucket("audit-artifacts")
            .key("p/plan.json")
            .body(plan_bytes.into())
            .send()
            .await
            .unwrap();
    });

    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_trailproof"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let pem = |name: &str| std::fs::read_to_string(key(name)).unwrap();
    let wrapper = |name: &str, extra: &[(&str, String)]| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg(support::repo().join("deploy/container").join(name))
            .current_dir(dir);
        for (k, v) in env.iter().chain(extra) {
            cmd.env(k, v);
        }
        cmd.env("PATH", &path)
            .env("PLAN_URI", "s3://audit-artifacts/p/plan.json")
            .env("REPORTS_URI", "s3://audit-artifacts/p/reports")
            .env("TRAILPROOF_ARGS", endpoint.join(" "));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let sign = ("SIGN_KEY_PEM", pem("ed25519.pem"));
    wrapper(
        "trailproof-shard",
        &[sign.clone(), ("JOB_COMPLETION_INDEX", "0".into())],
    );
    wrapper(
        "trailproof-shard",
        &[sign.clone(), ("AWS_BATCH_JOB_ARRAY_INDEX", "1".into())],
    );
    wrapper(
        "trailproof-shard",
        &[sign.clone(), ("TRAILPROOF_SHARD", "2".into())],
    );
    wrapper(
        "trailproof-merge",
        &[sign, ("TRUST_KEY_PEM", pem("ed25519.pub.pem"))],
    );

    let merged = moto.s3(|s3| async move {
        let got = s3
            .get_object()
            .bucket("audit-artifacts")
            .key("p/reports/merged.json")
            .send()
            .await
            .unwrap();
        got.body.collect().await.unwrap().into_bytes().to_vec()
    });
    let merged = Output {
        code: 0,
        stdout: String::from_utf8(merged).unwrap(),
        stderr: String::new(),
    };
    let mut single = strings(&[
        "verify",
        &source,
        "--start-time",
        START,
        "--end-time",
        end,
        "--format",
        "json",
    ]);
    single.extend(endpoint.iter().cloned());
    assert_eq!(
        without_run(&merged),
        without_run(&trailproof(dir, &single, env))
    );
}

/// Logging stopped and restarted (a new chain, a signed gap) and late deliveries in backfill
/// digests, with shards cut every hour or two of each folder: what the walk decides from
/// neighbours (gaps, chain starts and ends, backfill hours) is decided the same in every shard.
#[test]
fn restarts_and_late_deliveries_across_shard_boundaries_equal_one_run() {
    let corpus = organization()
        .regions(&["us-east-1", "eu-west-1"])
        .stop_logging(5, 2)
        .backfill_hours(&[3, 4, 9])
        .build();
    let (_tmp, case) = written(&corpus);
    let args = strings(&[
        "--start-time",
        START,
        "--end-time",
        END,
        "--public-keys",
        "public-keys.json",
    ]);
    for shards in [3, 8, 13] {
        assert_sharded_equals_single(&case, &args, shards);
    }
}

/// Six digests in a row deleted with their log files (someone hiding a stretch of activity),
/// in a chain cut into shares of a few hours: the hole is wider than a shard's margin in time,
/// yet each shard reads past it to the digests on either side, and says what one run says.
#[test]
fn a_hole_wider_than_a_share_equals_one_run() {
    // With the evidence-metadata file (which remembers the deleted digests) and without.
    for metadata in [true, false] {
        let mut corpus = World::new(BUCKET)
            .start(START.parse::<Timestamp>().unwrap() - jiff::SignedDuration::from_mins(30))
            .hours(30)
            .metadata(metadata)
            .build();
        let hidden: Vec<String> = chain(&corpus, "111122223333", "us-east-1")[10..16]
            .iter()
            .map(|d| d.key.clone())
            .collect();
        corpus.delete_digests_and_logs(&hidden).unwrap();
        let (_tmp, case) = written(&corpus);
        let end = "2026-01-02T05:00:00Z";
        let args = strings(&[
            "--start-time",
            START,
            "--end-time",
            end,
            "--public-keys",
            "public-keys.json",
        ]);
        for shards in [2, 7, 20] {
            assert_sharded_equals_single(&case, &args, shards);
        }
    }
}

/// Shard reports written straight to S3 (`--sign-out s3://...`) and merged from there: the
/// merged report is a single run's; a report key that is not there is exit status 2.
#[test]
fn shard_reports_go_to_s3_and_merge_reads_them_there() {
    let end = "2026-01-01T03:00:00Z";
    let on = OnS3::planned(
        organization().regions(&["us-east-1"]).hours(4).build(),
        end,
        2,
    );
    let (dir, env, endpoint, plan_path) = (on.dir(), &on.env, &on.endpoint, &on.plan);
    let source = format!("s3://{BUCKET}");
    let uri = |i: usize| format!("s3://audit-artifacts/r/shard-{i}.dsse.json");
    for i in 0..2 {
        let mut args = strings(&[
            "verify",
            "--plan",
            plan_path.to_str().unwrap(),
            "--shard",
            &i.to_string(),
        ]);
        args.extend(strings(&[
            "--sign-key",
            &key("ed25519.pem"),
            "--sign-out",
            &uri(i),
        ]));
        args.extend(endpoint.iter().cloned());
        let out = trailproof(dir, &args, env);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let merge_s3 = |reports: &[String]| {
        let mut args = strings(&[
            "merge",
            "--plan",
            plan_path.to_str().unwrap(),
            "--key",
            &key("ed25519.pub.pem"),
            "--format",
            "json",
        ]);
        args.extend(reports.iter().cloned());
        args.extend(endpoint.iter().cloned());
        trailproof(dir, &args, env)
    };
    let merged = merge_s3(&[uri(0), uri(1)]);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let mut single = strings(&[
        "verify",
        &source,
        "--start-time",
        START,
        "--end-time",
        end,
        "--format",
        "json",
    ]);
    single.extend(endpoint.iter().cloned());
    assert_eq!(
        without_run(&merged),
        without_run(&trailproof(dir, &single, env))
    );
    let missing = merge_s3(&[uri(0), uri(7)]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains(&uri(7)), "{}", missing.stderr);
}
