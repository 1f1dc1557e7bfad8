//! The evidence-metadata parser on any bytes; what parses survives a serde round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::evidence::EvidenceMetadata;

fuzz_target!(|raw: &[u8]| {
    let Ok(m) = EvidenceMetadata::parse(raw) else {
        return;
    };
    for record in m.objects.values() {
        let _ = record.signature();
        let _ = record.backfill_generated();
    }
    // `acquire` writes this file with serde: what it writes must read back the same.
    let written = serde_json::to_vec(&m).expect("serialising parsed metadata");
    assert_eq!(EvidenceMetadata::parse(&written).as_ref(), Ok(&m));
});
