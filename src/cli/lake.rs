//! `verify-query-results`: a drop-in for `aws cloudtrail verify-query-results` (AWS CLI v2).
//!
//! Same flags, success line and exit statuses as the AWS CLI in text mode: 0 verified, 255
//! anything else (a finding, or the job could not be done), 252 when the flags are wrong. With
//! `--format json` the exit status is `verify`'s: 0 / 1 findings / 2 could not be done.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use jiff::Timestamp;

use super::aws::{key_provider, AwsArgs};
use super::error::CliError;
use super::progress::Bars;
use super::report::{Output, SignArgs};
use super::Format;
use trailproof::engine::lake::verify_query_results;
use trailproof::report::{self, Report};
use trailproof::source::lake::ExportFolder;
use trailproof::source::local::LocalEvidence;
use trailproof::source::s3::S3Source;

/// The AWS CLI v2's exit status when a command fails.
const AWS_FAILED: u8 = 255;
/// The AWS CLI v2's exit status for flags that do not go together.
const AWS_BAD_PARAMETERS: u8 = 252;

#[derive(Debug, Args)]
pub struct VerifyQueryResultsArgs {
    /// The bucket holding the query's result files and result_sign.json.
    #[arg(long, value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// The folder of the query in the bucket (e.g.
    /// AWSLogs/111122223333/CloudTrail-Lake/Query/2026/01/01/QUERY_ID/); none for the bucket's
    /// root.
    #[arg(long, value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// A local folder holding the result files and result_sign.json.
    #[arg(long, value_name = "DIR")]
    pub local_export_path: Option<PathBuf>,
    /// CloudTrail public keys, as `aws cloudtrail list-public-keys` prints them (default: ask
    /// CloudTrail in the sign file's Region, as the AWS CLI does).
    #[arg(long, value_name = "KEYS.json")]
    pub public_keys: Option<PathBuf>,
    /// The Region whose CloudTrail keys to ask for, as the AWS CLI's --region (default: the
    /// sign file's `region`).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// text: the AWS CLI's success line, or every problem on stderr (exit 255); json: the whole
    /// report, exit status as for `verify` (0, 1, 2).
    #[arg(long, value_enum, ignore_case = true, default_value_t = QueryFormat::Text)]
    pub format: QueryFormat,
    #[command(flatten)]
    pub sign: SignArgs,
    /// Also print each valid file.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

// Described in `--format`'s help, as one sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    Text,
    Json,
}

/// Where the export folder is.
#[derive(Clone, Copy)]
enum Place<'a> {
    Local(&'a Path),
    /// Bucket and prefix.
    S3(&'a str, &'a str),
}

pub fn run(args: &VerifyQueryResultsArgs) -> Result<u8, CliError> {
    // Checked as the AWS CLI checks them, with its words and its exit status.
    let place = match (&args.local_export_path, &args.s3_bucket) {
        (Some(dir), None) if args.s3_prefix.is_none() => Place::Local(dir),
        (None, Some(bucket)) => Place::S3(bucket, args.s3_prefix.as_deref().unwrap_or_default()),
        (None, None) => {
            eprintln!("\nRequire parameter --s3-bucket or --local-export-path.");
            return Ok(AWS_BAD_PARAMETERS);
        }
        (Some(_), _) => {
            eprintln!("\nParameter --local-export-path can not be specified with parameter --s3-bucket nor --s3-prefix.");
            return Ok(AWS_BAD_PARAMETERS);
        }
    };
    let text = args.format == QueryFormat::Text;
    match run_checked(args, place) {
        Ok(report) if text => {
            let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
            let (mut out, mut err) = (stdout.lock(), stderr.lock());
            let valid = report::lake::write(&mut out, &mut err, &report, args.verbose)
                .and_then(|valid| out.flush().map(|()| valid))
                .map_err(CliError::Output)?;
            Ok(if valid { 0 } else { AWS_FAILED })
        }
        Ok(report) => Ok(report.exit_code()),
        Err(e) if text => {
            eprintln!("trailproof: {e}");
            Ok(AWS_FAILED)
        }
        Err(e) => Err(e),
    }
}

/// Checks the folder and writes the JSON report (with `--format json`) and the signed envelope
/// (with `--sign-key`); the text is left to the caller.
fn run_checked(args: &VerifyQueryResultsArgs, place: Place<'_>) -> Result<Report, CliError> {
    // The output is set up first, so a bad signing key stops the run before any work. In text
    // mode the JSON document is only signed, not printed.
    let json = args.format == QueryFormat::Json;
    let out: Box<dyn Write + Send> = if json {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        Box::new(std::io::sink())
    };
    let output = Output::new(Format::Json, args.verbose, &args.sign, false, out)?;
    let options = args.aws.options(None);
    let keys = key_provider(args.public_keys.as_ref(), &options)?;
    let folder: Box<dyn ExportFolder> = match place {
        Place::Local(dir) => Box::new(LocalEvidence::open(dir)?),
        Place::S3(bucket, prefix) => Box::new(S3Source::connect(
            &options,
            bucket,
            prefix,
            args.aws.concurrency,
        )?),
    };
    let report = verify_query_results(
        folder.as_ref(),
        keys.as_ref(),
        args.region.as_deref(),
        &Bars::on_stderr(),
        Timestamp::now(),
    )?;
    output.finish(&report)?;
    Ok(report)
}
