//! JWT claim parsing past the signature: the input is a token's payload, verbatim (JSON or
//! not), signed with the verifiers' HMAC secret. Verification must not panic on any claims
//! (huge or fractional dates, wrong types, odd `aud`/`iss`, bad `b64info`), and the claims of
//! an accepted token are the payload's claims.
#![no_main]

use herald_engine::auth::{ConnectClaims, SubscribeClaims};
use herald_fuzz::tokens::{hmac_verifiers, sign_hmac};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    // The algorithm and the clock follow the length, so that the corpus stays plain payloads
    // (and one signature check per verification keeps the target fast). The clocks are both
    // ends of `nbf` and `exp` comparisons, and a present-day one.
    let token = sign_hmac(payload.len() as u8, payload);
    let now = [0, 1_700_000_000, u64::MAX][payload.len() / 3 % 3];
    for verifier in hmac_verifiers() {
        if let Ok(claims) = verifier.verify_connect(&token, now) {
            let parsed: ConnectClaims =
                serde_json::from_slice(payload).expect("accepted claims parse");
            assert_eq!(claims, parsed);
        }
        if let Ok(claims) = verifier.verify_subscribe(&token, now) {
            let parsed: SubscribeClaims =
                serde_json::from_slice(payload).expect("accepted claims parse");
            assert_eq!(claims, parsed);
            assert!(!claims.channel.is_empty());
        }
    }
});
