//! `trailproof plan`, `trailproof verify --plan PLAN --shard I` and `trailproof merge`: one run
//! cut into shards for a job engine's workers, and their signed reports made one report.

use std::path::{Path, PathBuf};

use clap::Args;
use jiff::Timestamp;

use super::error::CliError;
use super::progress::Bars;
use super::report::{Output, ReportCliError, SignArgs};
use super::{EvidenceArgs, Format, VerifyArgs};
use trailproof::engine::fanout::{
    keys_source, merge, plan_shards, run_shard, FanoutError, ShardPlan, ShardReport,
};
use trailproof::report::audit::{MergeStamp, ShardStamp};
use trailproof::report::dsse::Trust;
use trailproof::report::signing::{Certificate, PublicKey};
use trailproof::report::statement::{self, ReportError};
use trailproof::report::Report;
use trailproof::source::local::LocalEvidence;
use trailproof::source::{KeyProvider, ObjectSource, PinnedKeys};

/// The environment variables job engines set to a worker's array index, in the order they are
/// looked at: a Kubernetes Indexed Job's and an AWS Batch array job's. (A Step Functions
/// Distributed Map hands each worker one item of the plan's shard list, which carries its
/// index: pass it as `--shard`.)
pub const INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// `trailproof plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// s3://BUCKET[/PREFIX], or a directory holding each object at DIR/KEY, as for `verify`.
    pub source: String,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// How many shards (workers) to cut the run into.
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// Where to write the plan (JSON); its SHA-256 is printed.
    #[arg(long, value_name = "PLAN.json")]
    pub out: PathBuf,
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: super::aws::AwsArgs,
}

/// `trailproof merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' signed reports (`verify --plan ... --sign-out FILE`), one per shard.
    #[arg(required = true, value_name = "SHARD_REPORT")]
    pub reports: Vec<PathBuf>,
    /// The plan the shards ran.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: PathBuf,
    /// Trust shard reports signed by this public key (SubjectPublicKeyInfo PEM).
    #[arg(
        long,
        value_name = "PUB.pem",
        required_unless_present = "ca",
        conflicts_with = "ca"
    )]
    pub key: Option<PathBuf>,
    /// Trust shard reports whose signer's certificate this CA issued.
    #[arg(long, value_name = "CA.pem")]
    pub ca: Option<PathBuf>,
    /// As for `verify`.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub sign: SignArgs,
    /// Also print valid objects and finding details.
    #[arg(long)]
    pub verbose: bool,
    /// How to reach S3, for shard reports given as s3://BUCKET/KEY.
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: super::aws::AwsArgs,
}

/// Why a plan could not be made, run or merged, in the command's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutCliError {
    #[error(transparent)]
    Fanout(#[from] FanoutError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ShardReport {
        path: PathBuf,
        source: Box<ReportError>,
    },
    #[error("no shard index: give --shard I, or run under a job engine that sets {}", INDEX_VARIABLES.join(" or "))]
    NoIndex,
    #[error("the shard index is given twice, differently: {0}")]
    IndexConflict(String),
    #[error("{name}={value:?} is not a shard index (a number from 0)")]
    BadIndex { name: String, value: String },
    #[error("{flag} is set by the plan; it cannot be given with --plan")]
    PlanSets { flag: &'static str },
    #[error("the source {given} is not the plan's ({planned})")]
    OtherSource { given: String, planned: String },
    #[error("the plan was made against the S3 endpoint {planned}; this shard would read {given} (--endpoint-url, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)")]
    OtherEndpoint { given: String, planned: String },
    #[error("the plan says the keys come from {planned}; this shard's come from {given}")]
    OtherKeys { planned: String, given: String },
    #[error(
        "a shard's report must be signed, for merge to check it: give --sign-key and --sign-out"
    )]
    Unsigned,
    #[cfg(feature = "aws")]
    #[error("{uri}: {source}")]
    S3 {
        uri: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{uri} is not an s3://BUCKET/KEY URI")]
    NotS3Object { uri: String },
    #[cfg(not(feature = "aws"))]
    #[error("S3 URIs need a build with the `aws` feature")]
    NoS3,
}

impl FanoutCliError {
    /// What to do about it.
    pub fn advice(&self) -> Option<String> {
        Some(match self {
            FanoutCliError::OtherKeys { .. } => {
                "give every shard the key file the plan was made with (--public-keys), or none if the plan asks CloudTrail".to_owned()
            }
            FanoutCliError::Fanout(FanoutError::NoBucket) => {
                "give the bucket the copy was made from: --s3-bucket BUCKET".to_owned()
            }
            FanoutCliError::Fanout(FanoutError::Missing { .. }) => {
                "each shard writes its report with --sign-out; pass every one of them to merge".to_owned()
            }
            _ => return None,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, FanoutCliError> {
    std::fs::read(path).map_err(|source| FanoutCliError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `s3://BUCKET/KEY` as its bucket and key, if `path` is one.
fn s3_object(path: &Path) -> Option<Result<(String, String), FanoutCliError>> {
    let uri = path.to_str()?.strip_prefix("s3://")?;
    Some(match uri.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.to_owned(), key.to_owned()))
        }
        _ => Err(FanoutCliError::NotS3Object {
            uri: path.display().to_string(),
        }),
    })
}

/// Signed reports kept on S3 (`--sign-out s3://...`, shard reports given to `merge` as
/// `s3://...`): one object read or written with the configured credentials, in the configured
/// Region (us-east-1 when none is).
#[cfg(feature = "aws")]
struct ReportStore {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

#[cfg(feature = "aws")]
impl ReportStore {
    fn connect(aws: &super::aws::AwsArgs) -> Result<Self, CliError> {
        use trailproof::source::aws::{load, runtime};
        let options = aws.options(None);
        let runtime = runtime(false)?;
        let mut config = runtime.block_on(load(&options, None));
        if config.region().is_none() {
            config = runtime.block_on(load(&options, Some("us-east-1")));
        }
        let conf = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(options.custom_endpoint())
            .build();
        Ok(ReportStore {
            runtime,
            client: aws_sdk_s3::Client::from_conf(conf),
        })
    }

    fn get(&self, (bucket, key): &(String, String)) -> Result<Vec<u8>, FanoutCliError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| FanoutCliError::S3 {
            uri: format!("s3://{bucket}/{key}"),
            source,
        };
        self.runtime.block_on(async {
            let got = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| failed(Box::new(e)))?;
            let body = got.body.collect().await.map_err(|e| failed(Box::new(e)))?;
            Ok(body.into_bytes().to_vec())
        })
    }

    fn put(&self, (bucket, key): &(String, String), bytes: Vec<u8>) -> Result<(), FanoutCliError> {
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(bytes.into())
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| FanoutCliError::S3 {
                uri: format!("s3://{bucket}/{key}"),
                source: Box::new(e),
            })
    }
}

/// A signed report: a local file, or with the `aws` feature an `s3://` object.
fn read_report(
    path: &Path,
    #[cfg(feature = "aws")] aws: &super::aws::AwsArgs,
) -> Result<Vec<u8>, CliError> {
    match s3_object(path) {
        None => Ok(read(path)?),
        #[cfg(feature = "aws")]
        Some(object) => Ok(ReportStore::connect(aws)?.get(&object?)?),
        #[cfg(not(feature = "aws"))]
        Some(_) => Err(FanoutCliError::NoS3.into()),
    }
}

/// A source and its keys, S3 or a local copy, as `verify` opens them.
type Opened = (Box<dyn ObjectSource>, Box<dyn KeyProvider>);

fn open(
    source: &str,
    evidence: &EvidenceArgs,
    #[cfg(feature = "aws")] aws: &super::aws::AwsArgs,
) -> Result<Opened, CliError> {
    if source.starts_with("s3://") {
        #[cfg(feature = "aws")]
        {
            let (s3, keys) = super::aws::open_s3(source, aws, evidence.public_keys.as_ref())?;
            return Ok((Box::new(s3), keys));
        }
        #[cfg(not(feature = "aws"))]
        return Err(CliError::NoS3Support);
    }
    let (local, keys): (LocalEvidence, PinnedKeys) = evidence.open_local(Path::new(source))?;
    Ok((Box::new(local), Box::new(keys)))
}

/// `trailproof plan`: lists the digests, cuts the run, writes the plan, prints its SHA-256.
pub fn run_plan(args: &PlanArgs) -> Result<u8, CliError> {
    let (source, _keys) = open(
        &args.source,
        &args.evidence,
        #[cfg(feature = "aws")]
        &args.aws,
    )?;
    let pinned = match &args.evidence.public_keys {
        Some(p) => Some(read(p)?),
        None => None,
    };
    let settings = args.evidence.settings(false);
    let plan = plan_shards(
        source.as_ref(),
        &settings,
        args.shards,
        (&args.source, keys_source(pinned.as_deref())),
        &Bars::on_stderr(),
    )
    .map_err(FanoutCliError::from)?;
    let plan = ShardPlan {
        endpoint: s3_endpoint(
            &args.source,
            #[cfg(feature = "aws")]
            &args.aws,
        ),
        ..plan
    };
    let bytes = plan.to_bytes();
    std::fs::write(&args.out, &bytes).map_err(|source| FanoutCliError::Write {
        path: args.out.clone(),
        source,
    })?;
    let busy = plan.shards.iter().filter(|s| !s.items.is_empty()).count();
    println!(
        "plan {}: {} digests in {} shards ({} with work), SHA-256 {}",
        args.out.display(),
        plan.digests,
        plan.shards.len(),
        busy,
        trailproof::core::types::Sha256::of(&bytes)
    );
    Ok(0)
}

/// The S3 endpoint a run of `source` reads from when it is not AWS's own, as the SDK resolves
/// it; none for a local copy.
fn s3_endpoint(source: &str, #[cfg(feature = "aws")] aws: &super::aws::AwsArgs) -> Option<String> {
    #[cfg(feature = "aws")]
    if source.starts_with("s3://") {
        return aws
            .options(None)
            .endpoint(trailproof::source::aws::Service::S3);
    }
    let _ = source;
    None
}

/// The shard index: `--shard`, or the one the job engine set; all that are given must agree.
pub fn shard_index(
    flag: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<usize, FanoutCliError> {
    let mut found: Vec<(String, usize)> = flag
        .map(|i| ("--shard".to_owned(), i))
        .into_iter()
        .collect();
    for name in INDEX_VARIABLES {
        if let Some(value) = env(name) {
            let index = value
                .trim()
                .parse::<usize>()
                .map_err(|_| FanoutCliError::BadIndex {
                    name: name.to_owned(),
                    value: value.clone(),
                })?;
            found.push((name.to_owned(), index));
        }
    }
    let Some((_, index)) = found.first().cloned() else {
        return Err(FanoutCliError::NoIndex);
    };
    if found.iter().any(|(_, i)| *i != index) {
        let said: Vec<String> = found.iter().map(|(n, i)| format!("{n} {i}")).collect();
        return Err(FanoutCliError::IndexConflict(said.join(", ")));
    }
    Ok(index)
}

/// `trailproof verify --plan PLAN [--shard I]`: one shard, its report signed and stamped.
pub fn run_shard_verify(args: &VerifyArgs, plan_path: &Path) -> Result<u8, CliError> {
    let bytes = read(plan_path)?;
    let (plan, sha) = ShardPlan::parse(&bytes).map_err(FanoutCliError::from)?;
    let index = shard_index(args.shard, &|name| std::env::var(name).ok())?;
    let shard = plan.shard(index).map_err(FanoutCliError::from)?;
    let e = &args.evidence;
    for (given, flag) in [
        (e.start_time.is_some(), "--start-time"),
        (e.end_time.is_some(), "--end-time"),
        (!e.filters.accounts.is_empty(), "--account-id"),
        (!e.filters.regions.is_empty(), "--region"),
        (!e.filters.trails.is_empty(), "--trail"),
        (e.s3_bucket.is_some(), "--s3-bucket"),
    ] {
        if given {
            return Err(FanoutCliError::PlanSets { flag }.into());
        }
    }
    if let Some(given) = args.source.as_deref().filter(|s| *s != plan.source) {
        return Err(FanoutCliError::OtherSource {
            given: given.to_owned(),
            planned: plan.source.clone(),
        }
        .into());
    }
    let endpoint = s3_endpoint(
        &plan.source,
        #[cfg(feature = "aws")]
        &args.aws,
    );
    if endpoint != plan.endpoint {
        let name = |e: &Option<String>| e.clone().unwrap_or_else(|| "AWS's own".to_owned());
        return Err(FanoutCliError::OtherEndpoint {
            given: name(&endpoint),
            planned: name(&plan.endpoint),
        }
        .into());
    }
    if args.sign.sign_key.is_none() {
        return Err(FanoutCliError::Unsigned.into());
    }
    let pinned = match &e.public_keys {
        Some(p) => Some(read(p)?),
        None => None,
    };
    let keys = keys_source(pinned.as_deref());
    if keys != plan.keys {
        return Err(FanoutCliError::OtherKeys {
            planned: plan.keys.clone(),
            given: keys,
        }
        .into());
    }
    // An `s3://` --sign-out: the envelope is written to a folder of this process's own, then
    // put there.
    let upload = match args.sign.sign_out.as_deref().and_then(s3_object) {
        Some(object) => {
            let dir = std::env::temp_dir()
                .join(format!("trailproof-shard-{}-{index}", std::process::id()));
            // create_dir, not create_dir_all: a folder (or link) already there is refused.
            std::fs::create_dir(&dir).map_err(|source| FanoutCliError::Write {
                path: dir.clone(),
                source,
            })?;
            Some((object?, dir))
        }
        None => None,
    };
    let mut sign = args.sign.clone();
    if let Some((_, dir)) = &upload {
        sign.sign_out = Some(dir.join("shard.dsse.json"));
    }
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let output = Output::new(args.format, args.verbose, &sign, false, stdout)?.shard(ShardStamp {
        plan_sha256: sha.to_hex(),
        index,
        shards: plan.shards.len(),
        keys,
    });
    let (source, key_provider) = open(
        &plan.source,
        e,
        #[cfg(feature = "aws")]
        &args.aws,
    )?;
    let base = e.settings(false);
    let report = run_shard(
        source.as_ref(),
        key_provider.as_ref(),
        &plan,
        shard,
        &base,
        &Bars::on_stderr(),
    )
    .map_err(|err| match err {
        FanoutError::Engine(e) => CliError::from(e),
        other => FanoutCliError::from(other).into(),
    })?;
    finish(output, &report)?;
    if let Some((object, dir)) = upload {
        let local = dir.join("shard.dsse.json");
        let envelope = read(&local)?;
        #[cfg(feature = "aws")]
        let put = ReportStore::connect(&args.aws).and_then(|s| Ok(s.put(&object, envelope)?));
        #[cfg(not(feature = "aws"))]
        let put: Result<(), CliError> = {
            let _ = (object, envelope);
            Err(FanoutCliError::NoS3.into())
        };
        let _ = std::fs::remove_file(&local);
        let _ = std::fs::remove_dir(&dir);
        put?;
    }
    Ok(report.exit_code())
}

/// Writes `report`: for JSONL, its findings chain by chain first (as `verify` streams them),
/// then what every format writes at the end.
fn finish<W: std::io::Write + Send>(output: Output<W>, report: &Report) -> Result<(), CliError> {
    if let Some(sink) = output.sink() {
        for c in &report.chains {
            sink(Some(&c.chain), &c.findings);
        }
        sink(None, &report.unchained);
    }
    Ok(output.finish(report)?)
}

/// `trailproof merge`: every shard's report checked, then one report.
pub fn run_merge(args: &MergeArgs) -> Result<u8, CliError> {
    let plan_bytes = read(&args.plan)?;
    let (plan, sha) = ShardPlan::parse(&plan_bytes).map_err(FanoutCliError::from)?;
    let (key, ca): (PublicKey, Certificate);
    let trust = match (&args.key, &args.ca) {
        (Some(p), _) => {
            key = PublicKey::from_pem(&read(p)?).map_err(|source| ReportCliError::Key {
                path: p.clone(),
                source,
            })?;
            Trust::Key(&key)
        }
        (None, Some(p)) => {
            ca = Certificate::from_pem(&read(p)?).map_err(|source| ReportCliError::Cert {
                path: p.clone(),
                source: Box::new(source),
            })?;
            Trust::Ca(&ca)
        }
        // clap requires one of them.
        (None, None) => return Ok(2),
    };
    // The output first: a bad signing key stops the merge before any work.
    let stdout = std::io::BufWriter::new(std::io::stdout());
    // The report names the plan, so that it can be tied to the SHA-256 `plan` printed.
    let output =
        Output::new(args.format, args.verbose, &args.sign, false, stdout)?.merged(MergeStamp {
            plan_sha256: sha.to_hex(),
            shards: plan.shards.len(),
        });
    let now = Timestamp::now();
    let mut shards = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        let envelope = read_report(
            path,
            #[cfg(feature = "aws")]
            &args.aws,
        )?;
        let (stamp, report) = statement::read_shard(&envelope, trust, now).map_err(|source| {
            FanoutCliError::ShardReport {
                path: path.clone(),
                source: Box::new(source),
            }
        })?;
        shards.push(ShardReport {
            file: path.display().to_string(),
            stamp,
            report,
        });
    }
    let report = merge(&plan, &sha, shards).map_err(FanoutCliError::from)?;
    eprintln!(
        "trailproof: merged the {} shard reports of the plan with SHA-256 {sha}",
        plan.shards.len()
    );
    finish(output, &report)?;
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each engine's variable is read, `--shard` agrees with them, and a disagreement or a
    /// non-number is an error rather than a guess (a worker verifying someone else's shard
    /// leaves its own unverified).
    #[test]
    fn the_shard_index_comes_from_the_flag_or_the_engine_and_must_agree() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(shard_index(Some(3), &env(&[])).unwrap(), 3);
        assert_eq!(
            shard_index(None, &env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap(),
            2
        );
        assert_eq!(
            shard_index(None, &env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "7")])).unwrap(),
            7
        );
        assert_eq!(
            shard_index(Some(7), &env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "7")])).unwrap(),
            7
        );
        assert!(matches!(
            shard_index(Some(1), &env(&[("JOB_COMPLETION_INDEX", "2")])),
            Err(FanoutCliError::IndexConflict(_))
        ));
        assert!(matches!(
            shard_index(None, &env(&[("JOB_COMPLETION_INDEX", "-1")])),
            Err(FanoutCliError::BadIndex { .. })
        ));
        assert!(matches!(
            shard_index(None, &env(&[])),
            Err(FanoutCliError::NoIndex)
        ));
    }
}
