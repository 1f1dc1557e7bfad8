//! The strict digest parser and the lenient log-file lister on any bytes: neither panics. A
//! parsed digest's log list, set aside and read again from the same bytes, is the same list;
//! from other bytes, it is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::core::digest::{
    listed_log_files, named_log_files, LogFiles, ParsedDigest, MAX_LENIENTLY_LISTED,
};

fuzz_target!(|raw: &[u8]| {
    if let Ok(mut d) = ParsedDigest::parse(raw) {
        // The string to sign is built from every parsed field, so it touches them all.
        let _ = trailproof::core::sign::string_to_sign(&d);
        let LogFiles::Parsed(list) = d.log_files.clone() else {
            panic!("a fresh parse holds its list");
        };
        d.set_aside_log_files();
        assert_eq!(d.log_files.len(), list.len());
        assert_eq!(d.log_files_from(raw).as_deref(), Ok(&*list));
        let mut other = raw.to_vec();
        other.push(b' ');
        assert!(d.log_files_from(&other).is_err());
    }
    // The engine calls this on exactly the bytes the strict parser refused.
    // It keeps at most its cap of names, whatever the JSON holds.
    let listing = listed_log_files(raw);
    assert!(listing.names.len() <= listing.entries.min(MAX_LENIENTLY_LISTED));
    let _ = named_log_files(raw);
});
