//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use trailproof::cli::{self, read_keys, Cli, Command, VerifyArgs};
use trailproof::engine::{self, FindingSink};
use trailproof::report::Report;
use trailproof::source::local::LocalEvidence;
use trailproof::source::PinnedKeys;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify(args),
        Command::Report(args) => {
            cli::report::run(args, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
        #[cfg(feature = "aws")]
        Command::ValidateLogs(args) => cli::aws::run_validate_logs(args),
        #[cfg(feature = "aws")]
        Command::Acquire(args) => cli::aws::run_acquire(args),
        #[cfg(feature = "aws")]
        Command::Keys(command) => cli::aws::run_keys(command),
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
    // The output is set up first, so a bad signing key stops the run before any work.
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let output = cli::report::Output::new(args.format, args.verbose, &args.sign, stdout)
        .map_err(|e| e.to_string())?;
    let report = {
        let sink = output.sink();
        let sink = sink.as_ref().map(|s| s as FindingSink);
        if args.source.starts_with("s3://") {
            verify_s3(args, sink)?
        } else {
            let path = args.public_keys.as_ref().ok_or(
                "a local copy needs --public-keys (save them with `trailproof keys fetch` or `aws cloudtrail list-public-keys`)",
            )?;
            let keys = PinnedKeys {
                keys: read_keys(path).map_err(|e| e.to_string())?,
                path: path.clone(),
            };
            let evidence =
                LocalEvidence::open(Path::new(&args.source)).map_err(|e| e.to_string())?;
            engine::verify_streaming(
                &evidence,
                &keys,
                &args.settings(),
                sink,
                &engine::NoObserver,
            )
            .map_err(|e| e.to_string())?
        }
    };
    output.finish(&report).map_err(|e| e.to_string())?;
    Ok(report.exit_code())
}

#[cfg(feature = "aws")]
fn verify_s3(args: &VerifyArgs, sink: Option<FindingSink<'_>>) -> Result<Report, String> {
    let (bucket, prefix) = cli::aws::parse_s3_uri(&args.source)
        .ok_or_else(|| format!("{} is not an s3://BUCKET[/PREFIX] URI", args.source))?;
    cli::aws::verify_s3(args, &bucket, &prefix, sink)
}

#[cfg(not(feature = "aws"))]
fn verify_s3(_args: &VerifyArgs, _sink: Option<FindingSink<'_>>) -> Result<Report, String> {
    Err("this build has no S3 support (built without the `aws` feature)".into())
}
