//! `parse_key` on any UTF-8 key: never panics, and a digest key formats back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::layout::{parse_key, CloudTrailKey};

fuzz_target!(|key: &str| {
    if let Ok(CloudTrailKey::Digest(k)) = parse_key(key) {
        // Evidence keys are matched against `format()`ed link targets, so the two must agree.
        assert_eq!(k.format(), key, "digest key does not format back: {k:?}");
        assert_eq!(parse_key(&k.format()), Ok(CloudTrailKey::Digest(k)));
    }
});
