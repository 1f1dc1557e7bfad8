//! Verify one CloudTrail digest file you already hold, in one call.
//!
//! ```sh
//! cargo run --no-default-features --example verify_digest -- \
//!     KEYS.json BUCKET KEY DIGEST.json.gz SIGNATURE_HEX
//! ```
//!
//! KEYS.json is what `aws cloudtrail list-public-keys` prints; BUCKET and KEY say where the
//! digest was read from (its S3 object key, `AWSLogs/...`); SIGNATURE_HEX is its `x-amz-meta-signature` metadata. Exit status 0
//! when the digest verifies, 1 when it does not, 2 on bad arguments.

use std::process::ExitCode;

use trailproof::core::evidence::GenerationTime;
use trailproof::core::verify::{verify_digest_object, DigestObject};
use trailproof::{PinnedKeys, S3Location};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [keys, bucket, key, file, signature] = args.as_slice() else {
        eprintln!("usage: verify_digest KEYS.json BUCKET KEY DIGEST.json.gz SIGNATURE_HEX");
        return ExitCode::from(2);
    };
    let keys = match PinnedKeys::from_file(keys.as_ref()) {
        Ok(keys) => keys,
        Err(e) => return usage_error(&e),
    };
    let location = S3Location::new(bucket, key);
    let stored = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => return usage_error(&format!("{file}: {e}")),
    };
    let Ok(signature) = hex::decode(signature) else {
        return usage_error(&"the signature is not hex");
    };
    let object = DigestObject {
        location: &location,
        stored: &stored,
        signature: &signature,
        // A standard digest's key must be valid at its end time; for a backfill digest, pass
        // the object's `backfill-generation-timestamp` metadata when you have it.
        generated: &GenerationTime::Unknown,
    };
    match verify_digest_object(object, keys.keys()) {
        Ok(verified) => {
            let digest = verified.digest();
            println!(
                "{location}: valid, signed with key {} ({}); covers {} to {}, lists {} log files",
                verified.fingerprint(),
                verified.signed(),
                digest.start,
                digest.end,
                digest.log_files.len(),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{location}: INVALID: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("verify_digest: {e}");
    ExitCode::from(2)
}
