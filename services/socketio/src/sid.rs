//! Engine.IO session ids.
//!
//! A session id is the only credential of a polling request, so it must be unguessable: 15
//! bytes (120 bits) from the thread-local CSPRNG, which the OS seeds, as 20 characters of
//! URL-safe base64 (the length of the Engine.IO server's own ids), so it needs no escaping in
//! the `sid` query parameter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// The length of every session id, in characters.
pub const SID_LEN: usize = 20;

const SID_BYTES: usize = 15;

/// A new random session id.
pub fn generate() -> String {
    let mut bytes = [0u8; SID_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True if `sid` has the form [`generate`] produces; a cheap check before any lookup.
pub fn is_well_formed(sid: &str) -> bool {
    sid.len() == SID_LEN
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_fixed_length_and_url_safe() {
        for _ in 0..1000 {
            let sid = generate();
            assert_eq!(sid.len(), SID_LEN, "{sid}");
            assert!(is_well_formed(&sid), "{sid}");
        }
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn malformed_ids_are_recognised() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed("aaaaaaaaaaaaaaaaaaa="));
        assert!(!is_well_formed("aaaaaaaaaaaaaaaaaaa/"));
        assert!(!is_well_formed("aaaaaaaaaaaaaaaaaaaaa"));
        assert!(is_well_formed("lv_VI97HAXpY6yYWAAAC"));
    }
}
