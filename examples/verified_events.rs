//! The records of a local CloudTrail copy that the copy proves, each with the log file and
//! digest that prove it: a timeline you can trust, in a few lines of library code.
//!
//! ```sh
//! cargo run --no-default-features --example verified_events -- \
//!     testdata/sample/bucket testdata/sample/public-keys.json
//! ```
//!
//! Verifies the copy, then prints one line per record of a proven log file, sorted by
//! (eventTime, eventID), one record per eventID: time, event, who, and the file it came from.
//! Log files that are not proven give no records; how many were left out, and why, goes to
//! standard error. Exits 0 when every log file in range is proven and nothing was left out.

use std::process::ExitCode;

use trailproof::engine::events::{verify_and_export, ExportOptions};
use trailproof::{LocalEvidence, NoObserver, PinnedKeys, Settings};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, keys] = args.as_slice() else {
        eprintln!("usage: verified_events DIR KEYS.json");
        return ExitCode::from(2);
    };
    match run(dir, keys) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("verified_events: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(dir: &str, keys: &str) -> Result<u8, Box<dyn std::error::Error>> {
    let evidence = LocalEvidence::open(dir.as_ref())?;
    let keys = PinnedKeys::from_file(keys.as_ref())?;
    // One pass: the records are taken from the bytes the run hashes and proves. Sorted,
    // duplicates merged; see `ExportOptions` for filters and the unsorted order.
    let options = ExportOptions::default();
    let (report, mut records) = verify_and_export(
        &evidence,
        &keys,
        &Settings::default(),
        options,
        None,
        &NoObserver,
    )?;
    for record in &mut records {
        let record = record?;
        // The record's text is exactly as CloudTrail wrote it; read what you need from it.
        let fields: serde_json::Value = serde_json::from_str(&record.text)?;
        let proof = &record.provenance.carrier;
        println!(
            "{} {} {} by {} [{} proved by {}]",
            fields["eventTime"].as_str().unwrap_or("-"),
            fields["eventSource"].as_str().unwrap_or("-"),
            fields["eventName"].as_str().unwrap_or("-"),
            fields["userIdentity"]["arn"].as_str().unwrap_or("-"),
            proof.log.key.rsplit('/').next().unwrap_or_default(),
            proof
                .digest
                .as_ref()
                .map_or("-", |d| d.key.rsplit('/').next().unwrap_or_default()),
        );
    }
    let stats = records.stats();
    eprintln!(
        "{} records, {} duplicates merged, {} log files left out",
        stats.written,
        stats.duplicates,
        stats.left_out.total()
    );
    for (reason, n) in stats.left_out.iter() {
        eprintln!("  {reason}: {n}");
    }
    let left_out = u8::from(stats.left_out.total() > 0);
    Ok(report.exit_code().max(left_out))
}
