//! CloudTrail Lake sign files: parsing never panics, the string to sign is exactly the hash
//! list as written, no name leading out of the folder is ever read, and nothing is valid
//! without a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::lake::{
    is_result_name, judge_export, verify_sign_file, ResultRead, SignFile, SignFileFailure,
    SignState,
};
use trailproof::core::finding::Verdict;
use trailproof::core::sign::KeySet;

fuzz_target!(|raw: &[u8]| {
    let Ok(sign) = SignFile::parse(raw) else {
        return;
    };
    // What parses was written as lowercase hex: the rebuilt string is the hashes as written.
    let doc: serde_json::Value = serde_json::from_slice(raw).expect("parsed, so JSON");
    let written: Vec<&str> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["fileHashValue"].as_str().expect("a string"))
        .collect();
    assert_eq!(sign.string_to_sign(), written.join(" ").into_bytes());
    let readable = sign.readable();
    assert_eq!(readable.len(), sign.files.len());
    for (entry, read) in sign.files.iter().zip(&readable) {
        assert!(!read || is_result_name(&entry.name), "would read {:?}", entry.name);
    }
    assert!(matches!(
        verify_sign_file(&sign, &KeySet::default()),
        Err(SignFileFailure::KeyNotFound { .. })
    ));
    // Every file there with the listed hash, but no verified sign file: nothing is valid.
    let reads: Vec<_> = sign
        .files
        .iter()
        .map(|f| {
            Some(ResultRead::Hashed {
                sha256: f.hash,
                size: 1,
            })
        })
        .collect();
    let findings = judge_export(SignState::Unverified(&sign), &reads, &[], &|n| n.to_owned());
    assert_eq!(findings.len(), sign.files.len());
    assert!(findings.iter().all(|f| f.verdict != Verdict::Valid));
});
