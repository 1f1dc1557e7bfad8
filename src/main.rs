//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
mod cli;

use cli::error::CliError;
use cli::progress::Bars;
use cli::{Cli, Command, VerifyArgs};
use trailproof::engine::{self, FindingSink};
use trailproof::report::Report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify(args),
        Command::Events(args) => cli::events::run(args),
        Command::Report(args) => {
            cli::report::run(args, &mut std::io::stdout().lock()).map_err(CliError::from)
        }
        #[cfg(feature = "aws")]
        Command::ValidateLogs(args) => cli::aws::run_validate_logs(args),
        #[cfg(feature = "aws")]
        Command::Acquire(args) => cli::aws::run_acquire(args),
        #[cfg(feature = "aws")]
        Command::Keys(command) => cli::aws::run_keys(command),
        #[cfg(feature = "aws")]
        Command::VerifyQueryResults(args) => cli::lake::run(args),
        #[cfg(feature = "aws")]
        Command::Crosscheck(command) => cli::crosscheck::run(command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Said if stderr can take it (not with 2>/dev/full); the status tells anyway.
            let _ = writeln!(std::io::stderr(), "trailproof: {err}");
            ExitCode::from(2)
        }
    }
}

fn verify(args: &VerifyArgs) -> Result<u8, CliError> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(CliError::Threads)?;
    }
    // The output is set up first, so a bad signing key stops the run before any work.
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let output = cli::report::Output::new(args.format, args.verbose, &args.sign, stdout)?;
    let report = {
        let sink = output.sink();
        let sink = sink.as_ref().map(|s| s as FindingSink);
        if args.source.starts_with("s3://") {
            verify_s3(args, sink)?
        } else {
            let dir = Path::new(&args.source);
            let (evidence, keys) = args.evidence.open_local(dir)?;
            engine::verify_streaming(&evidence, &keys, &args.settings(), sink, &Bars::on_stderr())
                .map_err(|e| CliError::in_folder(e, dir))?
        }
    };
    output.finish(&report)?;
    Ok(report.exit_code())
}

#[cfg(feature = "aws")]
fn verify_s3(args: &VerifyArgs, sink: Option<FindingSink<'_>>) -> Result<Report, CliError> {
    cli::aws::verify_s3(args, sink)
}

#[cfg(not(feature = "aws"))]
fn verify_s3(_args: &VerifyArgs, _sink: Option<FindingSink<'_>>) -> Result<Report, CliError> {
    Err(CliError::NoS3Support)
}
