//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use trailproof::cli::{self, Cli, Command, VerifyArgs};
use trailproof::engine;
use trailproof::source::local::LocalEvidence;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => match verify(&args) {
            Ok(code) => ExitCode::from(code),
            Err(message) => {
                eprintln!("trailproof: {message}");
                ExitCode::from(2)
            }
        },
        Command::Report(args) => match cli::report::run(&args, &mut std::io::stdout().lock()) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("trailproof: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn verify(args: &VerifyArgs) -> Result<u8, String> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| e.to_string())?;
    }
    let keys = trailproof::source::PinnedKeys {
        keys: args.keys().map_err(|e| e.to_string())?,
        path: args.public_keys.clone(),
    };
    let evidence = LocalEvidence::open(&args.dir).map_err(|e| e.to_string())?;
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let output = cli::report::Output::new(args.format, args.verbose, &args.sign, stdout)
        .map_err(|e| e.to_string())?;
    let report = {
        let sink = output.sink();
        engine::verify_streaming(
            &evidence,
            &keys,
            &args.settings(),
            sink.as_ref().map(|s| s as engine::FindingSink),
        )
        .map_err(|e| e.to_string())?
    };
    output.finish(&report).map_err(|e| e.to_string())?;
    Ok(if report.exit_code() == 0 { 0 } else { 1 })
}
