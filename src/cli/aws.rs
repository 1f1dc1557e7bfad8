//! The commands that talk to AWS: `verify s3://...`, `validate-logs`, `acquire`, `keys fetch`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use jiff::{SignedDuration, Timestamp};

use super::error::CliError;
use super::progress::Bars;
use super::{parse_time, VerifyArgs};
use trailproof::core::keyfile::write_key_file;
use trailproof::core::time::later;
use trailproof::engine::acquire::{acquire, AcquireWith};
use trailproof::engine::{self, Settings};
use trailproof::report;
use trailproof::source::aws::{AwsOptions, DEFAULT_MIN_RATE_KIB};
use trailproof::source::cloudtrail::{describe_trail, CloudTrailKeys};
use trailproof::source::s3::{RestoreTier, S3Source, DEFAULT_CONCURRENCY};
use trailproof::source::{KeyNeeds, KeyProvider, PinnedKeys, SourceError};

/// How to reach AWS (credentials come from the usual chain: environment, profiles, SSO,
/// instance roles).
#[derive(Debug, Args, Clone, Default)]
pub struct AwsArgs {
    /// A named profile from the AWS config files.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// An S3-compatible endpoint (path-style). AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3 are
    /// honoured too, as by the AWS CLI.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Requests in flight at most: fewer while S3 throttles (503 SlowDown).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Seconds a response may stall before it is abandoned and retried.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub read_timeout: u64,
    /// The slowest an object may come, in KiB/s over its whole body: each object must be read
    /// within --read-timeout plus its size at this rate, or it is "not verified".
    #[arg(long, value_name = "KIB_PER_SEC", default_value_t = DEFAULT_MIN_RATE_KIB,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub min_rate: u64,
}

impl AwsArgs {
    pub(super) fn options(&self, region: Option<String>) -> AwsOptions {
        AwsOptions {
            profile: self.profile.clone(),
            region,
            endpoint_url: self.endpoint_url.clone(),
            read_timeout: std::time::Duration::from_secs(self.read_timeout.max(1)),
            min_rate: self.min_rate.saturating_mul(1024),
        }
    }
}

#[derive(Debug, Args)]
pub struct ValidateLogsArgs {
    /// The ARN of the trail, e.g. arn:aws:cloudtrail:us-east-1:111122223333:trail/main.
    #[arg(long)]
    pub trail_arn: String,
    /// Validate log files delivered on or after this time: RFC 3339 (2026-01-01T00:00:00Z), a
    /// date and time (2026-01-01T00:00:00) or a date (2026-01-01); without an offset it is UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start_time: Timestamp,
    /// Validate log files delivered on or before this time (default: now); TIME as for
    /// --start-time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end_time: Option<Timestamp>,
    /// The bucket holding the digests (default: from DescribeTrails).
    #[arg(long)]
    pub s3_bucket: Option<String>,
    /// The key prefix of the digests (default: from DescribeTrails).
    #[arg(long)]
    pub s3_prefix: Option<String>,
    /// The account to validate (member account of an organization trail).
    #[arg(long)]
    pub account_id: Option<String>,
    /// Print every valid digest and log file too.
    #[arg(long)]
    pub verbose: bool,
    /// The source Region of the chain (default: the configured Region).
    #[arg(long)]
    pub region: Option<String>,
    /// Pinned public keys instead of asking CloudTrail.
    #[arg(long, value_name = "KEYS.json")]
    pub public_keys: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// The bucket to copy from: s3://BUCKET[/PREFIX].
    pub source: String,
    /// The evidence directory to fill (created if needed; existing files are kept).
    pub dir: PathBuf,
    /// Acquire log files delivered from this time on: RFC 3339 (2026-01-01T00:00:00Z), a date
    /// and time (2026-01-01T00:00:00) or a date (2026-01-01); without an offset it is UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start_time: Timestamp,
    /// Acquire log files delivered up to this time (default: now); TIME as for --start-time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end_time: Option<Timestamp>,
    #[command(flatten)]
    pub filters: super::FilterArgs,
    /// Public keys to check object versions with (default: ask CloudTrail in each source
    /// Region): what the copy shows tampered with is recovered from the bucket's versions only
    /// when a version's hash or signature proves it CloudTrail's.
    #[arg(long, value_name = "KEYS.json")]
    pub public_keys: Option<PathBuf>,
    /// Ask S3 to restore the archived objects (GLACIER, DEEP_ARCHIVE) the range needs, for
    /// this many days (s3:RestoreObject); run again once restored to copy them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub restore_days: Option<i32>,
    /// How fast S3 restores them (with --restore-days).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Tier::Standard, requires = "restore_days")]
    pub restore_tier: Tier,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `RestoreObject` tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    Standard,
    Bulk,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Fetch CloudTrail public keys into the JSON shape `--public-keys` reads.
    Fetch(KeysFetchArgs),
}

#[derive(Debug, Args)]
pub struct KeysFetchArgs {
    /// Source Regions to fetch keys for (repeatable; keys are per Region).
    #[arg(long = "region", value_name = "REGION", required = true)]
    pub regions: Vec<String>,
    /// Keys valid from this time on: RFC 3339 (2026-01-01T00:00:00Z), a date and time
    /// (2026-01-01T00:00:00) or a date (2026-01-01); without an offset it is UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start_time: Timestamp,
    /// Keys valid up to this time (default: now); TIME as for --start-time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end_time: Option<Timestamp>,
    /// Where to write (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Splits `s3://bucket/prefix` into bucket and prefix.
pub fn parse_s3_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Keys from the pinned file if one is given, else from CloudTrail.
pub(super) fn key_provider(
    pinned: Option<&PathBuf>,
    options: &AwsOptions,
) -> Result<Box<dyn KeyProvider>, CliError> {
    Ok(match pinned {
        Some(path) => Box::new(PinnedKeys::from_file(path)?),
        None => Box::new(CloudTrailKeys::new(options)?),
    })
}

/// The source and keys of `verify s3://...` and `events s3://...`.
pub fn open_s3(
    uri: &str,
    aws: &AwsArgs,
    pinned: Option<&PathBuf>,
) -> Result<(S3Source, Box<dyn KeyProvider>), CliError> {
    let (bucket, prefix) = parse_s3_uri(uri).ok_or_else(|| CliError::NotS3Uri {
        uri: uri.to_owned(),
    })?;
    let options = aws.options(None);
    let source = S3Source::connect(&options, &bucket, &prefix, aws.concurrency)?;
    Ok((source, key_provider(pinned, &options)?))
}

/// `verify s3://...`.
pub fn verify_s3(
    args: &VerifyArgs,
    settings: &engine::Settings,
    hooks: (
        Option<engine::FindingSink<'_>>,
        Option<engine::ChainDone<'_>>,
    ),
) -> Result<report::Report, CliError> {
    let uri = args.source.as_deref().unwrap_or_default();
    let (source, keys) = open_s3(uri, &args.aws, args.evidence.public_keys.as_ref())?;
    let report = super::checkpoint::run(&source, keys.as_ref(), settings, hooks);
    say_adaptation(&source);
    Ok(report?)
}

/// Says on stderr how the run adapted to S3 throttling it (or timing out), if it did; a run
/// S3 keeps up with prints nothing more than before.
fn say_adaptation(source: &S3Source) {
    let seen = source.adaptation();
    if seen.throttled == 0 && seen.timed_out == 0 {
        return;
    }
    eprintln!(
        "trailproof: S3 throttled {} and timed out {} request attempts; requests in flight were lowered {} times, to {} at the fewest; {} requests were sent again after a pause, {} failed throttled",
        seen.throttled, seen.timed_out, seen.decreases, seen.lowest, seen.resent, seen.gave_up
    );
}

pub fn run_validate_logs(args: &ValidateLogsArgs) -> Result<u8, CliError> {
    let arn = TrailArn::parse(&args.trail_arn).ok_or_else(|| CliError::InvalidTrailArn {
        arn: args.trail_arn.clone(),
    })?;
    let end = args.end_time.unwrap_or_else(Timestamp::now);
    if args.start_time > end {
        return Err(CliError::InvalidTimeRange);
    }
    let source_region = match &args.region {
        Some(r) => r.clone(),
        None => configured_region(&args.aws)?.unwrap_or_else(|| arn.region.clone()),
    };
    let options = args.aws.options(Some(source_region.clone()));
    let (bucket, prefix) = match &args.s3_bucket {
        Some(b) => (b.clone(), args.s3_prefix.clone().unwrap_or_default()),
        None => {
            let trail = describe_trail(&options, &source_region, &args.trail_arn)?;
            if trail.organization_trail && args.account_id.is_none() {
                return Err(CliError::OrganizationTrailNeedsAccount);
            }
            (
                trail.bucket,
                args.s3_prefix.clone().or(trail.prefix).unwrap_or_default(),
            )
        }
    };
    let account = args
        .account_id
        .clone()
        .unwrap_or_else(|| arn.account.clone());
    // The trail's prefix is known: no other prefix is searched for trails.
    let source =
        S3Source::connect(&options, &bucket, &prefix, args.aws.concurrency)?.trail_prefix();
    let keys = key_provider(args.public_keys.as_ref(), &options)?;
    let settings = Settings {
        start: Some(args.start_time),
        end: Some(end),
        accounts: vec![account],
        regions: vec![source_region],
        trails: vec![arn.name.clone()],
        home_region: Some(arn.region.clone()),
        bucket: Some(bucket),
        resume: Default::default(),
        searched: Default::default(),
        head_signatures: Default::default(),
        // Without --verbose, valid log files are only counted in the summary.
        omit_valid_logs: !args.verbose,
        // The CLI says "No digests found" for an account, Region or trail without digests.
        allow_unmatched_filters: true,
        window: None,
    };
    let report = match engine::verify(&source, keys.as_ref(), &settings) {
        Ok(r) => r,
        // The CLI prints an empty summary when there is nothing at all.
        Err(engine::EngineError::NothingFound { .. }) => engine::empty_report(&source, &settings),
        Err(e) => return Err(e.into()),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let outcome = report::cli_compat::write(
        &mut out,
        &mut err,
        &report,
        &args.trail_arn,
        args.start_time,
        end,
        args.verbose,
    )
    .map_err(CliError::Output)?;
    out.flush().map_err(CliError::Output)?;
    Ok(outcome.exit_code)
}

pub fn run_acquire(args: &AcquireArgs) -> Result<u8, CliError> {
    let (bucket, prefix) = parse_s3_uri(&args.source).ok_or_else(|| CliError::NotS3Uri {
        uri: args.source.clone(),
    })?;
    let options = args.aws.options(None);
    let source =
        S3Source::connect(&options, &bucket, &prefix, args.aws.concurrency)?.remembering_listings();
    let settings = Settings {
        start: Some(args.start_time),
        end: Some(args.end_time.unwrap_or_else(Timestamp::now)),
        accounts: args.filters.accounts.clone(),
        regions: args.filters.regions.clone(),
        trails: args.filters.trails.clone(),
        ..Settings::default()
    };
    let keys = key_provider(args.public_keys.as_ref(), &options)?;
    let progress = Bars::on_stderr();
    let restore = args.restore_days.map(|days| {
        let tier = match args.restore_tier {
            Tier::Standard => RestoreTier::Standard,
            Tier::Bulk => RestoreTier::Bulk,
        };
        (days, tier)
    });
    let with = AcquireWith {
        keys: keys.as_ref(),
        restore,
        observer: &progress,
    };
    let acquired = acquire(&source, &options, &settings, &args.dir, with);
    say_adaptation(&source);
    let summary = acquired.map_err(|e| match e {
        // The bucket acquired is the one named, not one given by a flag: the directory is
        // another bucket's.
        engine::EngineError::BucketConflict { given, recorded } => CliError::OtherBucketsEvidence {
            dir: args.dir.clone(),
            bucket: given,
            recorded,
        },
        e => e.into(),
    })?;
    eprintln!("{summary}");
    // Archived objects not yet copied leave the acquisition incomplete, like failures.
    Ok(if summary.failed == 0 && summary.archived.is_empty() {
        0
    } else {
        2
    })
}

pub fn run_keys(command: &KeysCommand) -> Result<u8, CliError> {
    let KeysCommand::Fetch(args) = command;
    let end = args.end_time.unwrap_or_else(Timestamp::now);
    let provider = CloudTrailKeys::new(&args.aws.options(None))?;
    let needs = KeyNeeds {
        regions: args.regions.iter().cloned().collect(),
        // The window the AWS CLI uses for a range, so online and offline runs see the same keys.
        windows: vec![(args.start_time, later(end, SignedDuration::from_hours(2)))],
    };
    let records = provider.records(&needs)?;
    // Only keys that would verify are saved.
    trailproof::core::keyfile::key_set(&records)
        .map_err(|source| SourceError::UnusableKeys { source })?;
    let json = write_key_file(&records);
    match &args.out {
        Some(path) => std::fs::write(path, json).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?,
        None => std::io::stdout()
            .write_all(&json)
            .map_err(CliError::Output)?,
    }
    Ok(0)
}

/// The Region the AWS CLI would use: AWS_REGION, AWS_DEFAULT_REGION, then the profile's.
fn configured_region(aws: &AwsArgs) -> Result<Option<String>, CliError> {
    let runtime = trailproof::source::aws::runtime(false)?;
    let config = runtime.block_on(trailproof::source::aws::load(&aws.options(None), None));
    Ok(config.region().map(|r| r.to_string()))
}

/// `arn:PARTITION:cloudtrail:REGION:ACCOUNT:trail/NAME`
struct TrailArn {
    region: String,
    account: String,
    name: String,
}

impl TrailArn {
    fn parse(arn: &str) -> Option<Self> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", _partition, "cloudtrail", region, account, resource] = parts.as_slice() else {
            return None;
        };
        let name = resource.strip_prefix("trail/")?;
        (account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !region.is_empty()
            && !name.is_empty())
        .then(|| TrailArn {
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_uris() {
        let a =
            TrailArn::parse("arn:aws:cloudtrail:eu-west-1:111122223333:trail/my_trail").unwrap();
        assert_eq!(
            (a.region.as_str(), a.account.as_str(), a.name.as_str()),
            ("eu-west-1", "111122223333", "my_trail")
        );
        assert!(TrailArn::parse("arn:aws:s3:::bucket").is_none());
        assert!(TrailArn::parse("arn:aws:cloudtrail:eu-west-1:1111:trail/x").is_none());
        assert_eq!(
            parse_s3_uri("s3://b/p/q/"),
            Some(("b".into(), "p/q".into()))
        );
        assert_eq!(parse_s3_uri("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parse_s3_uri("/tmp/x"), None);
    }
}
