//! RFC 3161 timestamp tokens (`report::timestamp::Token::parse`: strict DER, CMS SignedData,
//! signed attributes, ESS certificate id, TSTInfo, the TSA's certificate) on any bytes. A token
//! comes from the network or inside an envelope: it must never panic, and a fuzzer that cannot
//! sign must never get one accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailproof::report::timestamp::{Token, TsaCertificate};

/// The "report signature" the seeds were timestamped over (fuzz/make-seeds.sh).
const SIGNATURE: &[u8] = b"trailproof fuzz seed signature";

fuzz_target!(|raw: &[u8]| {
    if let Ok(token) = Token::parse(raw, SIGNATURE) {
        // Only the committed seeds, made by `openssl ts -reply` with the test TSAs, may pass;
        // any other token that verifies is a forgery.
        let seeds = [
            include_bytes!("../seeds/timestamp/p256.tst").as_slice(),
            include_bytes!("../seeds/timestamp/rsa2048.tst").as_slice(),
        ];
        assert!(seeds.contains(&raw), "a token the fuzzer made verified");
        let ca = TsaCertificate::from_pem(include_bytes!("../../testdata/tsa/ca.pem"))
            .expect("the committed test CA");
        token.check_issued_by(&ca).expect("the seeds' TSAs are the CA's");
    }
});
