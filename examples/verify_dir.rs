//! Verify a local copy of a CloudTrail bucket and stream the findings as they are decided.
//!
//! ```sh
//! cargo run --no-default-features --example verify_dir -- \
//!     testdata/sample/bucket testdata/sample/public-keys.json
//! ```
//!
//! The copy is `aws s3 sync s3://BUCKET DIR` or an evidence directory made by `trailproof
//! acquire`; the keys are what `aws cloudtrail list-public-keys` prints. Prints every finding
//! that is not "valid" as its chain is decided, then the totals; exits with the report's
//! status (0 all proven, 1 findings, 2 could not do the job).

use std::process::ExitCode;

use std::sync::atomic::{AtomicU64, Ordering};

use trailproof::engine::{Observer, Phase};
use trailproof::report::ChainInfo;
use trailproof::{Finding, LocalEvidence, PinnedKeys, Settings, Verdict};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, keys] = args.as_slice() else {
        eprintln!("usage: verify_dir DIR KEYS.json");
        return ExitCode::from(2);
    };
    match run(dir, keys) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("verify_dir: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(dir: &str, keys: &str) -> Result<u8, Box<dyn std::error::Error>> {
    let evidence = LocalEvidence::open(dir.as_ref())?;
    let keys = PinnedKeys::from_file(keys.as_ref())?;
    // Everything the copy holds; set `start`/`end`, `accounts`, `regions` or `trails` to narrow.
    let settings = Settings::default();
    // Called from worker threads as each chain (or, with `None`, the unchained objects) is
    // decided; here it prints as it goes.
    let sink = |chain: Option<&ChainInfo>, findings: &[Finding]| {
        for f in findings.iter().filter(|f| f.verdict != Verdict::Valid) {
            let chain = chain.map_or_else(
                || "-".to_owned(),
                |c| format!("{} {} {}", c.account, c.region, c.trail),
            );
            println!("[{chain}] {:?} {}: {}", f.verdict, f.subject, f.reason);
        }
    };
    let tally = Tally::default();
    let report = trailproof::verify_streaming(&evidence, &keys, &settings, Some(&sink), &tally)?;
    eprintln!(
        "read {} objects, {:.1} MB stored",
        tally.objects.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    let totals = report.totals();
    println!(
        "digests: {} valid, {} invalid, {} not verified; log files: {} valid, {} invalid, {} not verified",
        totals.digests.valid,
        totals.digests.invalid,
        totals.digests.not_verified,
        totals.logs.valid,
        totals.logs.invalid,
        totals.logs.not_verified,
    );
    Ok(report.exit_code())
}

/// An observer: the engine tells it about each object it finishes, from worker threads, so it
/// keeps its counts in atomics. A progress bar would draw here; this one only counts.
#[derive(Default)]
struct Tally {
    objects: AtomicU64,
    bytes: AtomicU64,
}

impl Observer for Tally {
    fn objects_done(&self, phase: Phase, objects: u64, stored_bytes: u64) {
        // The search for AWSLogs/ folders (S3 only) counts listed objects, not reads.
        if phase != Phase::AwsLogsFoldersSearched {
            self.objects.fetch_add(objects, Ordering::Relaxed);
            self.bytes.fetch_add(stored_bytes, Ordering::Relaxed);
        }
    }
}
