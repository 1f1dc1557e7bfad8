//! Signed-report verification (`report::statement::verify`: DSSE envelope, signature,
//! certificate, payload schema) on any bytes, under both kinds of trust. The envelope is
//! hostile input handed on by someone else: it must never panic, and a fuzzer that cannot sign
//! must never get one accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::report::dsse::Trust;
use trailproof::report::signing::{Certificate, PublicKey};
use trailproof::report::statement;

fuzz_target!(|raw: &[u8]| {
    let key = PublicKey::from_pem(include_bytes!("../../testdata/report-keys/ed25519.pub.pem"))
        .expect("the committed test key");
    let ca = Certificate::from_pem(include_bytes!("../../testdata/report-keys/ca.pem"))
        .expect("the committed test CA");
    let now = jiff::Timestamp::from_second(1_800_000_000).expect("a valid time");
    for trust in [Trust::Key(&key), Trust::Ca(&ca)] {
        if statement::verify(raw, trust, now).is_ok() {
            // Only the committed seeds, signed with the test key, may pass; any other input
            // that verifies is a forgery.
            let seeds = [
                include_bytes!("../seeds/envelope/clean-plain.ed25519.dsse").as_slice(),
                include_bytes!("../seeds/envelope/log-modified.ed25519-cert.dsse").as_slice(),
            ];
            assert!(seeds.contains(&raw), "an envelope the fuzzer made verified");
        }
    }
});
