//! The `trailproof` command: flags in, report out, exit status 0 / 1 / 2.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use trailproof::cli::{Cli, Command, Format, VerifyArgs};
use trailproof::engine;
use trailproof::report;
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
    let report = engine::verify(&evidence, &keys, &args.settings()).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match args.format {
        Format::Text => report::text::write(&mut out, &report, args.verbose),
        Format::Json => report::json::write(&mut out, &report),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the report: {e}"))?;
    Ok(if report.exit_code() == 0 { 0 } else { 1 })
}
