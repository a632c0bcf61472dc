//! Whole tokens as a client sends them (any string): connect and subscribe verification with
//! every kind of configured key never panics, whatever the header, the algorithm, the base64
//! or the number of segments.
#![no_main]

use herald_fuzz::tokens::all_verifiers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &[u8]| {
    let token = String::from_utf8_lossy(token);
    for verifier in all_verifiers() {
        let _ = verifier.verify_connect(&token, 1_700_000_000);
        let _ = verifier.verify_subscribe(&token, 1_700_000_000);
    }
});
