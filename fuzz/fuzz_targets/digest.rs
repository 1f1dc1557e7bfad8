//! The strict digest parser and the lenient log-file lister on any bytes: neither panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::digest::{listed_log_files, ParsedDigest};

fuzz_target!(|raw: &[u8]| {
    if let Ok(d) = ParsedDigest::parse(raw) {
        // The string to sign is built from every parsed field, so it touches them all.
        let _ = trailproof::core::sign::string_to_sign(&d);
    }
    // The engine calls this on exactly the bytes the strict parser refused.
    let _ = listed_log_files(raw);
});
