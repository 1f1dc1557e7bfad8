//! Command-line flags, turned into validated engine settings.

pub mod checkpoint;
pub mod error;
pub mod events;
pub mod fanout;
pub mod output_file;
pub mod progress;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;

use trailproof::core::types::decode_lower_hex;
use trailproof::engine::Settings;
use trailproof::source::local::LocalEvidence;
use trailproof::source::PinnedKeys;

use error::CliError;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod crosscheck;
#[cfg(feature = "aws")]
pub mod lake;
#[cfg(feature = "aws")]
pub mod watch;

/// Integrity validation and forensics for AWS CloudTrail logs.
#[derive(Debug, Parser)]
#[command(name = "trailproof", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify the digest chains and log files of a CloudTrail bucket, on S3 or copied locally.
    ///
    /// SOURCE is s3://BUCKET[/PREFIX], an evidence directory, or a plain
    /// `aws s3 sync s3://BUCKET DIR` copy. Every organization, account, Region and trail found
    /// under AWSLogs/ is verified, each chain on its own. Exit status: 0 all valid, 1 integrity
    /// findings, 2 the job could not be done (or an object could not be read).
    Verify(Box<VerifyArgs>),
    /// Write the CloudTrail records of the log files a run proves, with their provenance under
    /// `trailproof` (a local copy or s3://BUCKET[/PREFIX]; JSON lines, Timesketch or Parquet).
    ///
    /// Records are taken only from the bytes whose hash a verified digest lists, sorted by
    /// (eventTime, eventID), one per eventID. Counts go to stderr. Exit status: 0 every log file
    /// in range proven and exported, 1 integrity findings or files left out, 2 the job could
    /// not be done.
    Events(Box<events::EventsArgs>),
    /// Work with signed reports: `report verify ENVELOPE`.
    Report(report::ReportArgs),
    /// A drop-in for `aws cloudtrail validate-logs`: same flags, lines, summary and exit codes.
    #[cfg(feature = "aws")]
    ValidateLogs(aws::ValidateLogsArgs),
    /// Download the objects in range into an evidence directory, with their S3 metadata.
    #[cfg(feature = "aws")]
    Acquire(aws::AcquireArgs),
    /// Public-key files for offline runs.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Keys(aws::KeysCommand),
    /// A drop-in for `aws cloudtrail verify-query-results`: checks a CloudTrail Lake query's
    /// saved results (result_sign.json and every result file) on S3 or in a local folder.
    ///
    /// Exit status as the AWS CLI v2's: 0 verified, 255 anything else, 252 wrong flags; with
    /// --format json, as for `verify` (0, 1 findings, 2 could not be done).
    #[cfg(feature = "aws")]
    VerifyQueryResults(Box<lake::VerifyQueryResultsArgs>),
    /// Cut a run into N shards for a job engine's workers (`verify --plan PLAN --shard I`
    /// each, then `merge`): lists the digests only, writes the plan and prints its SHA-256.
    Plan(Box<fanout::PlanArgs>),
    /// Check every shard's signed report of a plan (each there once, made for this plan, by a
    /// trusted signer) and write the one report of the whole run.
    ///
    /// Exit status as for `verify` (of the merged report); 2 also when a shard report is
    /// missing, given twice, made for another plan, or does not verify.
    Merge(Box<fanout::MergeArgs>),
    /// Compare the other places CloudTrail delivers events with the events its log files
    /// prove: `crosscheck cloudwatch SOURCE --log-group G --start-time T --end-time T`.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Crosscheck(crosscheck::CrosscheckCommand),
    /// Verify deliveries as they are announced on an SQS queue (S3 event notifications, or
    /// CloudTrail's SNS notifications), going on from a signed checkpoint: findings as JSONL,
    /// a chain whose next digest is late by --digest-grace reported the hour it happens.
    ///
    /// Exit status when it stops (SIGTERM, SIGINT, --exit-when-idle): 0 nothing but valid
    /// objects found, 1 findings, 2 it could not go on.
    #[cfg(feature = "aws")]
    Watch(Box<watch::WatchArgs>),
}

/// `--account-id`, `--region`, `--trail`: which chains, for every command that selects them.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only these accounts (repeatable).
    #[arg(long = "account-id", value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Only these source Regions (repeatable).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Only these trail names (repeatable).
    #[arg(long = "trail", value_name = "NAME")]
    pub trails: Vec<String>,
}

impl FilterArgs {
    /// As a report names them.
    pub fn filters(&self) -> trailproof::report::Filters {
        trailproof::report::Filters {
            accounts: self.accounts.clone(),
            regions: self.regions.clone(),
            trails: self.trails.clone(),
        }
    }
}

/// The flags that select the evidence, shared by the commands that verify it (`verify`,
/// `events`).
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// CloudTrail public keys, as printed by `aws cloudtrail list-public-keys` (required for
    /// a local copy; for S3 the default is to ask CloudTrail in each source Region).
    #[arg(long, value_name = "KEYS.json")]
    pub public_keys: Option<PathBuf>,
    /// Verify log files delivered from this time on (default: the oldest digest's start).
    /// TIME is RFC 3339 (2026-01-01T00:00:00Z), a date and time (2026-01-01T00:00:00) or a
    /// date (2026-01-01); without an offset it is UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start_time: Option<Timestamp>,
    /// Verify log files delivered up to this time (default: the newest digest's end); TIME as
    /// for --start-time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end_time: Option<Timestamp>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The bucket the copy was made from (default: from the evidence metadata or the digests).
    #[arg(long, value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// The S3 signature (x-amz-meta-signature) of a chain's newest digest (repeatable).
    #[arg(long = "head-signature", value_name = "KEY=HEX", value_parser = parse_head_signature)]
    pub head_signatures: Vec<(String, Vec<u8>)>,
}

impl EvidenceArgs {
    /// A local copy at `dir` and the pinned keys to verify it with (required for a copy).
    pub fn open_local(&self, dir: &Path) -> Result<(LocalEvidence, PinnedKeys), CliError> {
        let path = self.public_keys.as_ref().ok_or(CliError::NoPublicKeys)?;
        let keys = PinnedKeys::from_file(path)?;
        Ok((LocalEvidence::open(dir)?, keys))
    }

    /// The engine settings these flags select; `omit_valid_logs` as the output needs.
    pub fn settings(&self, omit_valid_logs: bool) -> Settings {
        Settings {
            start: self.start_time,
            end: self.end_time,
            accounts: self.filters.accounts.clone(),
            regions: self.filters.regions.clone(),
            trails: self.filters.trails.clone(),
            home_region: None,
            bucket: self.s3_bucket.clone(),
            resume: BTreeMap::new(),
            searched: BTreeMap::new(),
            head_signatures: self
                .head_signatures
                .iter()
                .cloned()
                .collect::<BTreeMap<_, _>>(),
            omit_valid_logs,
            allow_unmatched_filters: false,
            window: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// s3://BUCKET[/PREFIX], or a directory holding each object at DIR/KEY (its S3 key).
    /// With --plan, the plan's (and may be left out).
    #[arg(required_unless_present = "plan")]
    pub source: Option<String>,
    /// Verify one shard of this plan (`trailproof plan`), its index from --shard or from the
    /// job engine (JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX); needs --sign-key and
    /// --sign-out, for `merge`.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: Option<PathBuf>,
    /// The shard of --plan to verify, from 0.
    #[arg(long, value_name = "I", requires = "plan")]
    pub shard: Option<usize>,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// text: like `aws cloudtrail validate-logs`; json: the whole report; jsonl: one finding per
    /// line as decided, then a summary line; html: a self-contained page for auditors.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub sign: report::SignArgs,
    /// Also print valid objects and finding details.
    #[arg(long)]
    pub verbose: bool,
    /// Worker threads (default: one per core).
    /// At most 1024: each is a thread of the system's.
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: aws::AwsArgs,
    /// Verify only what is new since the signed checkpoint FILE, then write the next one in
    /// its place (needs --sign-key). Without FILE, a full run makes the first one. A
    /// checkpoint that does not verify, or that the evidence contradicts, stops the run
    /// (exit 2) and is left as it is. Not with --plan: a shard covers part of a range.
    #[arg(long, value_name = "FILE", conflicts_with = "plan")]
    pub checkpoint: Option<PathBuf>,
    /// The public key (PEM) that signed the checkpoint, when it is not --sign-key's.
    #[arg(long, value_name = "PUB.pem", requires = "checkpoint")]
    pub checkpoint_key: Option<PathBuf>,
}

// Described in `--format`'s help, as one sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
    Html,
}

impl VerifyArgs {
    pub fn settings(&self) -> Settings {
        // Only the plain text report prints nothing per valid log file; JSON, HTML, JSONL
        // and signed reports keep the full manifest.
        self.evidence
            .settings(self.format == Format::Text && !self.verbose && self.sign.sign_key.is_none())
    }
}

/// `--threads`: 0 (one per core) to 1024.
pub fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= 1024 => Ok(n),
        _ => Err("a number of threads from 0 (one per core) to 1024".to_owned()),
    }
}

/// Accepts RFC 3339 (`2026-01-01T00:00:00Z`), a date and time without offset (taken as UTC),
/// or a bare date (midnight UTC), as the AWS CLI does.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let utc =
        |dt: jiff::civil::DateTime| dt.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp());
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return utc(dt).map_err(|e| e.to_string());
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return utc(d.to_datetime(jiff::civil::Time::midnight())).map_err(|e| e.to_string());
    }
    Err(format!(
        "{text:?} is not a time; use RFC 3339 (2026-01-01T00:00:00Z), a date and time in UTC (2026-01-01T00:00:00) or a date (2026-01-01)"
    ))
}

fn parse_head_signature(text: &str) -> Result<(String, Vec<u8>), String> {
    let (key, sig) = text.split_once('=').ok_or("expected KEY=HEX")?;
    let key = match key.strip_prefix("s3://") {
        Some(rest) => rest
            .split_once('/')
            .map(|(_, k)| k)
            .ok_or("s3:// URI without a key")?,
        None => key,
    };
    let sig = decode_lower_hex(sig)
        .filter(|s| !s.is_empty())
        .ok_or("the signature must be lowercase hex")?;
    Ok((key.to_owned(), sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_forms_people_type() {
        let want = parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_time("2026-01-01T00:00:00").unwrap(), want);
        assert_eq!(parse_time("2026-01-01").unwrap(), want);
        assert_eq!(parse_time("2026-01-01T01:00:00+01:00").unwrap(), want);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn head_signatures_by_key_or_uri() {
        assert_eq!(
            parse_head_signature("a/b=0a").unwrap(),
            ("a/b".into(), vec![10])
        );
        assert_eq!(
            parse_head_signature("s3://bkt/a/b=0a").unwrap(),
            ("a/b".into(), vec![10])
        );
        assert!(parse_head_signature("a/b").is_err());
        assert!(parse_head_signature("a/b=0A").is_err());
    }
}
