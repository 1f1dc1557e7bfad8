//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
mod cli;

use cli::checkpoint::Hooks;
use cli::error::CliError;
use cli::{Cli, Command, VerifyArgs};
use trailproof::engine;
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
        Command::Plan(args) => cli::fanout::run_plan(args),
        Command::Merge(args) => cli::fanout::run_merge(args),
        #[cfg(feature = "aws")]
        Command::Crosscheck(command) => cli::crosscheck::run(command),
        #[cfg(feature = "aws")]
        Command::Watch(args) => cli::watch::run(args),
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
    if let Some(plan) = &args.plan {
        return cli::fanout::run_shard_verify(args, plan);
    }
    // The output is set up first, so a bad signing key stops the run before any work.
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let output = cli::report::Output::new(
        args.format,
        args.verbose,
        &args.sign,
        args.checkpoint.is_some(),
        stdout,
    )?;
    let mut settings = args.settings();
    // A checkpoint that does not verify stops the run before any work too.
    let resume = cli::checkpoint::Resume::open(args, &mut settings)?;
    let source = args.source.as_deref().unwrap_or_default();
    let local = (!source.starts_with("s3://")).then(|| Path::new(source));
    let run = |hooks: Hooks<'_>| match local {
        None => verify_s3(args, &settings, hooks),
        Some(dir) => args.evidence.open_local(dir).and_then(|(evidence, keys)| {
            cli::checkpoint::run(&evidence, &keys, &settings, hooks)
                .map_err(|e| CliError::in_folder(e, dir))
        }),
    };
    cli::checkpoint::verify(args, (&settings, resume.as_ref()), output, local, &run)
}

#[cfg(feature = "aws")]
fn verify_s3(
    args: &VerifyArgs,
    settings: &engine::Settings,
    hooks: Hooks<'_>,
) -> Result<Report, CliError> {
    cli::aws::verify_s3(args, settings, hooks)
}

#[cfg(not(feature = "aws"))]
fn verify_s3(
    _args: &VerifyArgs,
    _settings: &engine::Settings,
    _hooks: Hooks<'_>,
) -> Result<Report, CliError> {
    Err(CliError::NoS3Support)
}
