//! Verify a CloudTrail bucket straight from S3, with the keys from CloudTrail.
//!
//! ```sh
//! cargo run --example verify_s3 -- BUCKET [PREFIX]
//! ```
//!
//! Credentials, Region and endpoint come from the usual AWS chain (environment, profile, SSO,
//! instance role; `AWS_ENDPOINT_URL` for an S3-compatible server). Needs `s3:ListBucket`,
//! `s3:GetObject`, `s3:GetBucketLocation` on the bucket and `cloudtrail:ListPublicKeys`.
//! Prints the report as JSON and exits with its status.

use std::process::ExitCode;

use trailproof::report::audit::{Document, RunInfo};
use trailproof::source::aws::AwsOptions;
use trailproof::source::cloudtrail::CloudTrailKeys;
use trailproof::source::s3::{S3Source, DEFAULT_CONCURRENCY};
use trailproof::{Settings, Timestamp};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bucket, prefix) = match args.as_slice() {
        [bucket] => (bucket.as_str(), ""),
        [bucket, prefix] => (bucket.as_str(), prefix.as_str()),
        _ => {
            eprintln!("usage: verify_s3 BUCKET [PREFIX]");
            return ExitCode::from(2);
        }
    };
    match run(bucket, prefix) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("verify_s3: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(bucket: &str, prefix: &str) -> Result<u8, Box<dyn std::error::Error>> {
    let options = AwsOptions::default();
    let source = S3Source::connect(&options, bucket, prefix, DEFAULT_CONCURRENCY)?;
    let keys = CloudTrailKeys::new(&options)?;
    let started = Timestamp::now();
    let report = trailproof::verify(&source, &keys, &Settings::default())?;
    let run = RunInfo {
        started,
        finished: Timestamp::now(),
    };
    trailproof::report::json::write(&mut std::io::stdout().lock(), &Document::new(&report, run))?;
    Ok(report.exit_code())
}
