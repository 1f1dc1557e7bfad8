//! Pinned public-key files: parsing never panics, and what reads back writes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::keyfile::{parse_key_file, read_key_file, write_key_file};

fuzz_target!(|raw: &[u8]| {
    let _ = parse_key_file(raw);
    let Ok(records) = read_key_file(raw) else {
        return;
    };
    // `keys fetch` writes with `write_key_file` and every later run reads with
    // `read_key_file`: one write-read must reach a fixed point (sorted, deduplicated).
    let written = write_key_file(&records);
    let again = read_key_file(&written).expect("a written key file reads back");
    assert_eq!(write_key_file(&again), written);
    for r in &again {
        assert!(records.contains(r), "writing invented a record: {r:?}");
    }
});
