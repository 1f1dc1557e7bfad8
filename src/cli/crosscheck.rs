//! `trailproof crosscheck cloudwatch SOURCE --log-group G --start-time T --end-time T`: a
//! CloudWatch Logs group compared with the events SOURCE proves
//! ([`trailproof::engine::crosscheck`]).
//!
//! Text for people (`report::crosscheck`), `--format json` for machines, `--sign-key` for a
//! signed report, as `verify`. Exit status: 0 the group holds exactly the proven events of the
//! range and the S3 side is proven, 1 findings, 2 the job could not be done.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand, ValueEnum};
use jiff::SignedDuration;

use super::aws::AwsArgs;
use super::error::CliError;
use super::progress::Bars;
use super::report::{Output, SignArgs};
use super::{EvidenceArgs, Format};
use trailproof::engine::crosscheck::{crosscheck_cloudwatch, CrosscheckParams};
use trailproof::report;
use trailproof::source::cloudwatch::CloudWatchGroup;
use trailproof::source::{KeyProvider, ObjectSource};

#[derive(Debug, Subcommand)]
pub enum CrosscheckCommand {
    /// Compare a CloudWatch Logs group that a trail delivers to with the events its log files
    /// prove.
    ///
    /// Judges every event of the group with a timestamp or eventTime in
    /// [--start-time, --end-time), and every proven event with an eventTime there: events in
    /// the group no proven log file has (injected), proven events absent from it (missing;
    /// those over 256 KB, which CloudTrail does not send, are counted apart), and events whose
    /// content differs (altered, compared as parsed JSON). SOURCE is verified as `verify` does,
    /// over the range widened by the slack. Exit status: 0 the group matches and the S3 side is
    /// proven, 1 findings, 2 the job could not be done.
    Cloudwatch(Box<CloudWatchArgs>),
}

#[derive(Debug, Args)]
// The evidence flags' range is the comparison's here, and it is needed.
#[command(
    mut_arg("start_time", |a| a.required(true).help("Compare the events whose timestamp or eventTime is at or after TIME (RFC 3339, a date and time in UTC, or a date)")),
    mut_arg("end_time", |a| a.required(true).help("Compare the events whose timestamp or eventTime is before TIME"))
)]
pub struct CloudWatchArgs {
    /// s3://BUCKET[/PREFIX], or a directory holding each object at DIR/KEY (its S3 key).
    pub source: String,
    /// The log group the trail delivers to (its name, e.g. CloudTrail/logs).
    #[arg(long, value_name = "GROUP")]
    pub log_group: String,
    /// Only the streams whose names start so (e.g. 111122223333_CloudTrail_us-east-1). The
    /// proven events of other accounts and Regions are still looked for: limit the S3 side to
    /// the same ones with --account-id and --region.
    #[arg(long, value_name = "PREFIX")]
    pub log_stream_prefix: Option<String>,
    /// The log group's Region (default: the configured one, AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub log_group_region: Option<String>,
    /// How far a log event's timestamp may be from its eventTime (CloudWatch Logs stamps
    /// events when CloudTrail delivers them), in minutes. The S3 side is verified from the
    /// start minus this to the end plus twice this.
    #[arg(long, value_name = "MINUTES", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub slack_minutes: u32,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// text: each finding, then the counts and a result line; json: the whole report, as
    /// `verify --format json` writes it, with the comparison's counts under `crosscheck`.
    #[arg(long, value_enum, ignore_case = true, default_value_t = CrosscheckFormat::Text)]
    pub format: CrosscheckFormat,
    #[command(flatten)]
    pub sign: SignArgs,
    /// Also print the S3 side's finding details and the report's notes.
    #[arg(long)]
    pub verbose: bool,
    /// Minutes of the group read per FilterLogEvents window (memory holds a few windows).
    #[arg(long, value_name = "MINUTES", default_value_t = 15, hide = true,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub window_minutes: u32,
    /// Bytes of the S3 side's records the sort holds before it spills a run to a temporary
    /// file (for tests and measurements).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, hide = true)]
    pub sort_memory: usize,
    /// Events per FilterLogEvents page (the service's default without it; for tests).
    #[arg(long, value_name = "N", hide = true)]
    pub page_size: Option<i32>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

// Described in `--format`'s help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CrosscheckFormat {
    Text,
    Json,
}

pub fn run(command: &CrosscheckCommand) -> Result<u8, CliError> {
    match command {
        CrosscheckCommand::Cloudwatch(args) => run_cloudwatch(args),
    }
}

fn run_cloudwatch(args: &CloudWatchArgs) -> Result<u8, CliError> {
    let (Some(start), Some(end)) = (args.evidence.start_time, args.evidence.end_time) else {
        return Err(CliError::CrosscheckNeedsRange);
    };
    // The output is set up first, so a bad signing key stops the run before any work. In text
    // mode the JSON document is only signed, not printed.
    let json = args.format == CrosscheckFormat::Json;
    let out: Box<dyn Write + Send> = if json {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        Box::new(std::io::sink())
    };
    let output = Output::new(Format::Json, args.verbose, &args.sign, false, out)?;
    let (source, keys) = open(args)?;
    let group = CloudWatchGroup::connect(
        &args.aws.options(args.log_group_region.clone()),
        &args.log_group,
        args.aws.concurrency,
        args.page_size,
    )?;
    let params = CrosscheckParams {
        slack: SignedDuration::from_mins(i64::from(args.slack_minutes)),
        stream_prefix: args.log_stream_prefix.clone(),
        window: SignedDuration::from_mins(i64::from(args.window_minutes)),
        sort_memory: args.sort_memory,
        ..CrosscheckParams::new(start, end)
    };
    let report = crosscheck_cloudwatch(
        source.as_ref(),
        keys.as_ref(),
        &args.evidence.settings(false),
        &group,
        &params,
        &Bars::on_stderr(),
    )
    .map_err(|e| CliError::crosscheck(e, Path::new(&args.source)))?;
    output.finish(&report)?;
    if !json {
        let mut stdout = std::io::stdout().lock();
        report::crosscheck::write(&mut stdout, &report, args.verbose)
            .and_then(|()| stdout.flush())
            .map_err(CliError::Output)?;
    }
    Ok(report.exit_code())
}

/// The source and its keys: an S3 bucket or a local copy, opened as `verify` opens them.
type Opened = (Box<dyn ObjectSource>, Box<dyn KeyProvider>);

fn open(args: &CloudWatchArgs) -> Result<Opened, CliError> {
    if args.source.starts_with("s3://") {
        let (source, keys) =
            super::aws::open_s3(&args.source, &args.aws, args.evidence.public_keys.as_ref())?;
        return Ok((Box::new(source), keys));
    }
    let (evidence, keys) = args.evidence.open_local(Path::new(&args.source))?;
    Ok((Box::new(evidence), Box::new(keys)))
}
