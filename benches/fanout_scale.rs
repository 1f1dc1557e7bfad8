//! Organization scale, measured without objects (issue #15 part 7): `trailproof plan` over a
//! synthetic listing of a 1,000-account x 17-Region organization, one day (408,000 digest keys
//! and the log keys beside them), and `merge` of the 1,000 signed shard reports of that plan.
//!
//!   cargo bench --no-default-features --bench fanout_scale -- plan [SHARDS] [LOGS_PER_DIGEST]
//!   cargo bench --no-default-features --bench fanout_scale -- prepare DIR [SHARDS] [LOGS_PER_DIGEST]
//!   cargo bench --no-default-features --bench fanout_scale -- merge DIR
//!
//! `plan` prints `keys=K shards=N seconds=S peak_rss_mib=M`. `prepare` writes DIR/plan.json and
//! one signed report per shard (every digest and log file valid, as `verify --plan` would
//! write them), untimed; `merge` then reads them back as `trailproof merge` does (signature,
//! schema, stamp, every check) and writes the merged JSON report to nowhere, and prints
//! `reports=N findings=F seconds=S peak_rss_mib=M`. Each mode is its own process, so the peak
//! is its own.

use std::path::Path;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use trailproof::core::finding::{Evidence, Finding, Kind};
use trailproof::core::layout::{DigestKey, ObjectType, Scope};
use trailproof::core::ledger::{HourState, Ledger, Span};
use trailproof::core::types::{Fingerprint, S3Location, Sha256};
use trailproof::engine::fanout::{keys_source, merge, plan_shards, ShardPlan, ShardReport};
use trailproof::engine::Settings;
use trailproof::report::audit::{Document, RunInfo, ShardStamp};
use trailproof::report::dsse::Trust;
use trailproof::report::signing::SigningKey;
use trailproof::report::statement::{self, Signer};
use trailproof::report::{ChainInfo, ChainReport, KeyInfo, RangeInfo, Report};
use trailproof::source::progress::{NoObserver, Observer, Progress};
use trailproof::source::{ListRequest, ObjectSource, ReadError, SourceError, StoredObject};

const BUCKET: &str = "org-trail-bucket";
const ORG: &str = "o-a1b2c3d4e5";
const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-south-1",
    "sa-east-1",
];
const ACCOUNTS: u64 = 1000;
const HOURS: i64 = 24;

fn start() -> Timestamp {
    "2026-01-01T00:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn scope(account: u64, region: &str) -> Scope {
    Scope {
        prefix: String::new(),
        organization: Some(ORG.to_owned()),
        account: format!("{:012}", 100_000_000_000 + account),
        region: region.to_owned(),
    }
}

/// The digest of `hour` (0..24) of one chain: delivered a few minutes past the hour after.
fn digest(scope: &Scope, hour: i64) -> DigestKey {
    DigestKey {
        scope: scope.clone(),
        trail: "org-trail".to_owned(),
        home_region: "us-east-1".to_owned(),
        end_time: start() + SignedDuration::from_secs(3600 * (hour + 1) + 248),
        backfill: false,
    }
}

fn log_key(scope: &Scope, hour: i64, n: usize) -> String {
    let t = start() + SignedDuration::from_secs(3600 * hour + 60 * (5 + 13 * n as i64));
    format!(
        "{}{}/{}_CloudTrail_{}_{}_{:016}.json.gz",
        scope.folder(ObjectType::Log),
        t.strftime("%Y/%m/%d"),
        scope.account,
        scope.region,
        t.strftime("%Y%m%dT%H%MZ"),
        n
    )
}

/// A bucket that lists an organization's keys and holds no object.
struct Listing {
    logs_per_digest: usize,
}

impl ObjectSource for Listing {
    fn describe(&self) -> String {
        format!("s3://{BUCKET}")
    }
    fn bucket(&self) -> Option<String> {
        Some(BUCKET.to_owned())
    }
    fn list(
        &self,
        request: &ListRequest,
        each: &(dyn Fn(String) + Sync),
        _observer: &dyn Observer,
    ) -> Result<(), SourceError> {
        for account in 0..ACCOUNTS {
            for region in REGIONS {
                let scope = scope(account, region);
                for hour in 0..HOURS {
                    match request.objects {
                        ObjectType::Digest => each(digest(&scope, hour).format()),
                        _ => (0..self.logs_per_digest).for_each(|n| each(log_key(&scope, hour, n))),
                    }
                }
            }
        }
        Ok(())
    }
    fn read_digests(
        &self,
        keys: &[String],
        _: &Progress<'_>,
    ) -> Vec<Result<StoredObject, ReadError>> {
        keys.iter().map(|_| Err(ReadError::NotFound)).collect()
    }
    fn hash_logs(
        &self,
        _: &str,
        locations: &[&S3Location],
        _: &Progress<'_>,
    ) -> Vec<Result<trailproof::core::gz::GzOutcome, ReadError>> {
        locations.iter().map(|_| Err(ReadError::NotFound)).collect()
    }
    fn inflate_logs(
        &self,
        _: &str,
        locations: &[&S3Location],
        _: &Progress<'_>,
    ) -> Vec<Result<trailproof::source::InflatedLog, ReadError>> {
        locations.iter().map(|_| Err(ReadError::NotFound)).collect()
    }
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The peak resident memory of this process so far, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn make_plan(shards: usize, logs_per_digest: usize) -> (ShardPlan, f64) {
    let settings = Settings {
        start: Some(start()),
        end: Some(start() + SignedDuration::from_hours(HOURS)),
        ..Settings::default()
    };
    let source = Listing { logs_per_digest };
    let began = Instant::now();
    let plan = plan_shards(
        &source,
        &settings,
        shards,
        (&source.describe(), keys_source(None)),
        &NoObserver,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (plan, began.elapsed().as_secs_f64())
}

fn signing_key() -> SigningKey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/report-keys/ed25519.pem");
    SigningKey::from_pem(&std::fs::read(path).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"))
}

/// One shard's report as `verify --plan` writes it when everything is valid: each digest it
/// owns and the log files that digest lists, each chain's ledger over its share.
fn shard_report(plan: &ShardPlan, index: usize, logs_per_digest: usize) -> Report {
    let range = (plan.range.start, plan.range.end);
    let fingerprint = Fingerprint::parse("0123456789abcdef0123456789abcdef");
    let mut chains = Vec::new();
    for item in &plan.shards[index].items {
        let region = REGIONS
            .iter()
            .find(|r| **r == item.region)
            .copied()
            .unwrap_or("us-east-1");
        let account: u64 = item.account.parse::<u64>().unwrap_or(0) - 100_000_000_000;
        let scope = scope(account, region);
        let mut findings = Vec::new();
        for hour in (0..HOURS).rev() {
            let key = digest(&scope, hour);
            let owned = (item.owned.from <= range.0 || key.end_time >= item.owned.from)
                && (item.owned.to >= range.1 || key.end_time < item.owned.to);
            if !owned {
                continue;
            }
            let uri = S3Location::new(BUCKET, key.format()).uri();
            findings.push(
                Finding::new(&uri, Kind::DigestValid, "valid").with(Evidence {
                    actual_sha256: Some(Sha256::of(uri.as_bytes())),
                    fingerprint: fingerprint.clone(),
                    from: Some(key.end_time - SignedDuration::from_hours(1)),
                    to: Some(key.end_time),
                    ..Evidence::default()
                }),
            );
            for n in 0..logs_per_digest {
                let log = S3Location::new(BUCKET, log_key(&scope, hour, n)).uri();
                let hash = Some(Sha256::of(log.as_bytes()));
                findings.push(Finding::new(&log, Kind::LogValid, "valid").with(Evidence {
                    expected_sha256: hash,
                    actual_sha256: hash,
                    named_by: Some(uri.clone()),
                    ..Evidence::default()
                }));
            }
        }
        let from = item.owned.from;
        let to = if item.owned.to >= range.1 {
            range.1
        } else {
            item.owned.to
        };
        let span = Span {
            from: range.0,
            to: range.1,
            state: HourState::Verified,
        };
        chains.push(ChainReport {
            chain: ChainInfo::from(&key_chain(&scope)),
            findings,
            omitted_valid_logs: 0,
            omitted_valid_files: 0,
            ledger: Some(Ledger::of(from, to, &[span])),
        });
    }
    Report {
        tool: "trailproof",
        version: env!("CARGO_PKG_VERSION"),
        source: plan.source.clone(),
        bucket: plan.bucket.clone(),
        range: RangeInfo {
            start: range.0,
            end: range.1,
            derived_from_evidence: false,
        },
        filters: plan.filters.clone(),
        keys: vec![KeyInfo {
            fingerprint: "0123456789abcdef0123456789abcdef".to_owned(),
            valid_from: range.0,
            valid_to: range.1,
            origin: "cloudtrail:ListPublicKeys".to_owned(),
        }],
        chains,
        unchained: Vec::new(),
        notes: Vec::new(),
        retention: Default::default(),
        chain_ends: Vec::new(),
        crosscheck: None,
    }
}

fn key_chain(scope: &Scope) -> trailproof::core::layout::ChainId {
    digest(scope, 0).chain()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("plan") => {
            let (shards, logs) = (number(1, 1000), number(2, 4));
            let (plan, seconds) = make_plan(shards, logs);
            println!(
                "keys={} shards={} seconds={seconds:.2} peak_rss_mib={}",
                plan.digests as usize * (1 + logs),
                plan.shards.len(),
                peak_rss_mib()
            );
        }
        Some("prepare") => {
            let dir = Path::new(args.get(1).map_or(".", String::as_str));
            let (shards, logs) = (number(2, 1000), number(3, 1));
            let (plan, _) = make_plan(shards, logs);
            let bytes = plan.to_bytes();
            std::fs::write(dir.join("plan.json"), &bytes).unwrap_or_else(|e| panic!("{e}"));
            let signer = Signer::new(signing_key(), None).unwrap_or_else(|e| panic!("{e}"));
            let sha = Sha256::of(&bytes).to_hex();
            for index in 0..plan.shards.len() {
                let report = shard_report(&plan, index, logs);
                let now = Timestamp::now();
                let doc = Document {
                    shard: Some(ShardStamp {
                        plan_sha256: sha.clone(),
                        index,
                        shards: plan.shards.len(),
                        keys: plan.keys.clone(),
                    }),
                    ..Document::new(&report, RunInfo { started: now, finished: now })
                };
                let envelope = signer.seal(&doc, statement::MAX_OBJECT_SUBJECTS).unwrap_or_else(|e| panic!("{e}"));
                std::fs::write(dir.join(format!("shard-{index}.dsse.json")), envelope).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        Some("merge") => {
            let dir = Path::new(args.get(1).map_or(".", String::as_str));
            let bytes = std::fs::read(dir.join("plan.json")).unwrap_or_else(|e| panic!("{e}"));
            let public = signing_key().public().clone();
            let began = Instant::now();
            let (plan, sha) = ShardPlan::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
            let mut shards = Vec::new();
            for index in 0..plan.shards.len() {
                let file = dir.join(format!("shard-{index}.dsse.json"));
                let envelope = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
                let (stamp, report) = statement::read_shard(&envelope, Trust::Key(&public), Timestamp::now())
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                shards.push(ShardReport { file: file.display().to_string(), stamp, report });
            }
            let merged = merge(&plan, &sha, shards).unwrap_or_else(|e| panic!("{e}"));
            let now = Timestamp::now();
            let doc = Document::new(&merged, RunInfo { started: now, finished: now });
            let mut out = std::io::BufWriter::new(std::io::sink());
            trailproof::report::json::write(&mut out, &doc).unwrap_or_else(|e| panic!("{e}"));
            let seconds = began.elapsed().as_secs_f64();
            println!(
                "reports={} findings={} exit_code={} seconds={seconds:.2} peak_rss_mib={}",
                plan.shards.len(),
                merged.all_findings().count(),
                merged.exit_code(),
                peak_rss_mib()
            );
        }
        _ => eprintln!("usage: fanout_scale plan [SHARDS] [LOGS_PER_DIGEST] | prepare DIR [SHARDS] [LOGS_PER_DIGEST] | merge DIR"),
    }
}
