//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
mod cli;

use cli::error::CliError;
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
    // Over a checkpoint, log files no digest names wait for the run's chain ends
    // (`checkpoint::hold_back`).
    let unchained: std::sync::Mutex<Option<Vec<trailproof::Finding>>> = Default::default();
    let streaming = output.sink();
    let stream = streaming.as_ref().map(|s| s as FindingSink);
    let held = |chain: Option<&trailproof::report::ChainInfo>, f: &[trailproof::Finding]| match (
        chain, stream,
    ) {
        (None, _) => *unchained.lock().unwrap_or_else(|e| e.into_inner()) = Some(f.to_vec()),
        (Some(_), Some(stream)) => stream(chain, f),
        (Some(_), None) => {}
    };
    // The checkpoint never goes into the evidence or over the files given.
    let inputs: Vec<&Path> = [
        &args.evidence.public_keys,
        &args.sign.sign_key,
        &args.checkpoint_key,
    ]
    .into_iter()
    .flatten()
    .map(|p| p.as_path())
    .collect();
    let whole = || output.streamed_whole() && cli::report::sync_stdout().is_ok();
    let streamed = stream.map(|_| &whole as &(dyn Fn() -> bool + Sync));
    let mover = resume
        .as_ref()
        .map(|r| cli::checkpoint::Mover::new(r, &settings, (local, &inputs), streamed));
    let chain_done = |c: &engine::FinishedChain<'_>| {
        if let Some(m) = &mover {
            m.chain_done(c)
        }
    };
    let done = mover.as_ref().map(|_| &chain_done as engine::ChainDone);
    let report = {
        let sink = match (&resume, stream) {
            (Some(_), Some(_)) => Some(&held as FindingSink),
            (_, sink) => sink,
        };
        match local {
            None => verify_s3(args, &settings, (sink, done)),
            Some(dir) => args.evidence.open_local(dir).and_then(|(evidence, keys)| {
                cli::checkpoint::run(&evidence, &keys, &settings, (sink, done))
                    .map_err(|e| CliError::in_folder(e, dir))
            }),
        }
    };
    // The chains finished since the mover last wrote, for a run that will not write its
    // final checkpoint (an error; a report that cannot be written): one write more otherwise.
    if let Some(m) = &mover {
        m.flush();
    }
    drop(mover);
    let mut report = match (report, &resume) {
        (Ok(report), _) => report,
        (Err(e), Some(resume)) => return Err(resume.failed(e)),
        (Err(e), None) => return Err(e),
    };
    if resume.is_some() {
        cli::checkpoint::hold_back(&mut report, &settings.resume);
        let batch = unchained.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(stream), Some(_)) = (stream, batch) {
            stream(None, &report.unchained);
        }
    }
    drop(streaming);
    // Checked against the checkpoint before anything is written: a contradiction writes
    // nothing.
    let next = resume.as_ref().map(|r| r.next(&report)).transpose()?;
    // Written (not yet in place) before the report, so that a checkpoint that cannot be
    // written stops the run before a summary says it went well; put in place only once the
    // report is out (a lost report leaves the checkpoint as the chains finished moved it: the
    // next run says the rest again).
    // A run that could not read everything moves no further than the chains it finished whole
    // (`Mover`): the next run reads the rest again.
    let prepared = match (&resume, &next) {
        (Some(resume), Some(next)) if report.exit_code() != 2 => {
            Some((resume.prepare(next, local, &inputs)?, next))
        }
        _ => None,
    };
    output.finish(&report)?;
    match prepared {
        Some((prepared, next)) => {
            cli::report::sync_stdout().map_err(cli::report::ReportCliError::Output)?;
            prepared.commit()?;
            eprintln!("trailproof: {}", cli::checkpoint::summary(next));
        }
        None if resume.is_some() => {
            eprintln!("trailproof: objects could not be read: the checkpoint moved on only for the chains finished without them; the next run reads the rest again");
        }
        None => {}
    }
    Ok(report.exit_code())
}

#[cfg(feature = "aws")]
fn verify_s3(
    args: &VerifyArgs,
    settings: &engine::Settings,
    hooks: (Option<FindingSink<'_>>, Option<engine::ChainDone<'_>>),
) -> Result<Report, CliError> {
    cli::aws::verify_s3(args, settings, hooks)
}

#[cfg(not(feature = "aws"))]
fn verify_s3(
    _args: &VerifyArgs,
    _settings: &engine::Settings,
    _hooks: (Option<FindingSink<'_>>, Option<engine::ChainDone<'_>>),
) -> Result<Report, CliError> {
    Err(CliError::NoS3Support)
}
