//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use trailproof::cli::{read_keys, Cli, Command, Format, VerifyArgs};
use trailproof::engine;
use trailproof::report;
use trailproof::source::local::LocalEvidence;
use trailproof::source::PinnedKeys;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify(args),
        #[cfg(feature = "aws")]
        Command::ValidateLogs(args) => trailproof::cli::aws::run_validate_logs(args),
        #[cfg(feature = "aws")]
        Command::Acquire(args) => trailproof::cli::aws::run_acquire(args),
        #[cfg(feature = "aws")]
        Command::Keys(command) => trailproof::cli::aws::run_keys(command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("trailproof: {message}");
            ExitCode::from(2)
        }
    }
}

fn verify(args: &VerifyArgs) -> Result<u8, String> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| e.to_string())?;
    }
    let report = if args.source.starts_with("s3://") {
        verify_s3(args)?
    } else {
        let path = args
            .public_keys
            .as_ref()
            .ok_or("a local copy needs --public-keys (save them with `trailproof keys fetch` or `aws cloudtrail list-public-keys`)")?;
        let keys = PinnedKeys {
            keys: read_keys(path).map_err(|e| e.to_string())?,
            path: path.clone(),
        };
        let evidence = LocalEvidence::open(Path::new(&args.source)).map_err(|e| e.to_string())?;
        engine::verify(&evidence, &keys, &args.settings()).map_err(|e| e.to_string())?
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match args.format {
        Format::Text => report::text::write(&mut out, &report, args.verbose),
        Format::Json => report::json::write(&mut out, &report),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the report: {e}"))?;
    Ok(report.exit_code())
}

#[cfg(feature = "aws")]
fn verify_s3(args: &VerifyArgs) -> Result<report::Report, String> {
    let (bucket, prefix) = trailproof::cli::aws::parse_s3_uri(&args.source)
        .ok_or_else(|| format!("{} is not an s3://BUCKET[/PREFIX] URI", args.source))?;
    trailproof::cli::aws::verify_s3(args, &bucket, &prefix)
}

#[cfg(not(feature = "aws"))]
fn verify_s3(_args: &VerifyArgs) -> Result<report::Report, String> {
    Err("this build has no S3 support (built without the `aws` feature)".into())
}
