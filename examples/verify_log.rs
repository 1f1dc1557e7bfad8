//! Verify one log file against the digest that lists it, with the verdict a full run gives.
//!
//! ```sh
//! cargo run --no-default-features --example verify_log -- \
//!     KEYS.json BUCKET DIGEST_KEY DIGEST.json.gz SIGNATURE_HEX LOG_KEY LOG.json.gz
//! ```
//!
//! The digest is verified first (its location, key window and signature; see the
//! `verify_digest` example); only a verified digest's hash list is believed. The log file is
//! streamed through the inflater in chunks, as it would come off the network, and judged by
//! the core's verdict rule. Exit status 0 valid, 1 not valid, 2 bad arguments.

use std::io::Read;
use std::process::ExitCode;

use trailproof::core::evidence::GenerationTime;
use trailproof::core::gz::{Inflater, Limits};
use trailproof::core::verdict::judge_log_file;
use trailproof::core::verify::{verify_digest_object, DigestObject};
use trailproof::{PinnedKeys, S3Location, Verdict};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [keys, bucket, digest_key, digest_file, signature, log_key, log_file] = args.as_slice()
    else {
        eprintln!("usage: verify_log KEYS.json BUCKET DIGEST_KEY DIGEST.json.gz SIGNATURE_HEX LOG_KEY LOG.json.gz");
        return ExitCode::from(2);
    };
    match run(
        keys,
        bucket,
        (digest_key, digest_file, signature),
        (log_key, log_file),
    ) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("verify_log: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(
    keys: &str,
    bucket: &str,
    (digest_key, digest_file, signature): (&str, &str, &str),
    (log_key, log_file): (&str, &str),
) -> Result<u8, Box<dyn std::error::Error>> {
    let keys = PinnedKeys::from_file(keys.as_ref())?;
    let digest_at = S3Location::new(bucket, digest_key);
    let stored = std::fs::read(digest_file)?;
    let signature = hex::decode(signature)?;
    let object = DigestObject {
        location: &digest_at,
        stored: &stored,
        signature: &signature,
        generated: &GenerationTime::Unknown,
    };
    let verified = match verify_digest_object(object, keys.keys()) {
        Ok(verified) => verified,
        Err(e) => {
            println!("{digest_at}: INVALID: {e}; it vouches for no log file");
            return Ok(1);
        }
    };
    let log_at = S3Location::new(bucket, log_key);
    let mut inflater = Inflater::new(Limits::LOG);
    let mut file = std::fs::File::open(log_file)?;
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        inflater.update(&chunk[..n]);
    }
    let (outcome, _) = inflater.finish();
    // Only a verified digest can vouch for a log file, and only for one it lists.
    let finding = match judge_log_file(&verified, &log_at, &outcome) {
        Ok(finding) => finding,
        Err(e) => {
            println!("{log_at}: NOT VERIFIED by {digest_at}: {e}");
            return Ok(1);
        }
    };
    println!("{log_at}: {:?}: {}", finding.verdict, finding.reason);
    Ok(u8::from(finding.verdict != Verdict::Valid))
}
