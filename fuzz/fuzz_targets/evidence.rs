//! The evidence-metadata parser on any bytes; what parses survives a serde round trip, and the
//! streaming parse that verification uses (digest records only) accepts exactly the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::evidence::{DigestFacts, DigestRecords, EvidenceMetadata};
use trailproof::core::layout::{parse_key, CloudTrailKey};

fuzz_target!(|raw: &[u8]| {
    let digests_only = DigestRecords::parse(raw);
    let Ok(m) = EvidenceMetadata::parse(raw) else {
        assert!(
            digests_only.is_err(),
            "accepted only by the streaming parse"
        );
        return;
    };
    let digests_only = digests_only.expect("accepted only by the full parse");
    assert_eq!(digests_only.bucket, m.bucket);
    assert!(digests_only.digests.iter().all(|(k, facts)| m
        .objects
        .get(k)
        .map(DigestFacts::from)
        .as_ref()
        == Some(facts)));
    // And it keeps every digest's record.
    assert!(m
        .objects
        .keys()
        .filter(|k| matches!(parse_key(k), Ok(CloudTrailKey::Digest(_))))
        .all(|k| digests_only.digests.contains_key(k)));
    for record in m.objects.values() {
        let _ = record.signature();
        let _ = record.backfill_generated();
    }
    // `acquire` writes this file with serde: what it writes must read back the same.
    let written = serde_json::to_vec(&m).expect("serialising parsed metadata");
    assert_eq!(EvidenceMetadata::parse(&written).as_ref(), Ok(&m));
});
