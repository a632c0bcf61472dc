//! The admin page's login session: a cookie holding an expiry and a nonce, signed with an HMAC
//! key derived from `admin.password`. Derived, not random per process, so a session stays valid
//! across restarts and on every node that shares the password (a load balancer in front of the
//! operator port), and changing the password ends every session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Name of the session cookie.
pub const COOKIE: &str = "herald_admin";

/// Signs and checks session cookies; compares login passwords.
pub struct SessionKeys {
    /// SHA-256 of the password: compared in constant time whatever the guess's length.
    password_digest: [u8; 32],
    signing_key: [u8; 32],
}

impl SessionKeys {
    pub fn new(password: &str) -> SessionKeys {
        let mut mac = HmacSha256::new_from_slice(password.as_bytes()).expect("any key length");
        mac.update(b"herald admin session v1");
        SessionKeys {
            password_digest: Sha256::digest(password.as_bytes()).into(),
            signing_key: mac.finalize().into_bytes().into(),
        }
    }

    pub fn password_matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(&self.password_digest))
    }

    /// A cookie value valid for `ttl` from `now`: `<expiry>.<nonce>.<signature>`.
    pub fn issue(&self, now: SystemTime, ttl: Duration) -> String {
        let expiry = unix(now).saturating_add(ttl.as_secs());
        let nonce: [u8; 16] = rand::random();
        let payload = format!("{expiry}.{}", hex(&nonce));
        let signature = hex(&self.sign(&payload));
        format!("{payload}.{signature}")
    }

    /// Whether `value` is a cookie these keys issued that has not expired at `now`.
    pub fn verify(&self, value: &str, now: SystemTime) -> bool {
        let Some((payload, signature)) = value.rsplit_once('.') else {
            return false;
        };
        let Some(signature) = unhex(signature) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        if mac.verify_slice(&signature).is_err() {
            return false;
        }
        payload
            .split_once('.')
            .and_then(|(expiry, _)| expiry.parse::<u64>().ok())
            .is_some_and(|expiry| unix(now) < expiry)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.signing_key).expect("any key length")
    }

    fn sign(&self, payload: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_verifies_until_it_expires_and_only_with_its_password() {
        let keys = SessionKeys::new("correct horse battery");
        let now = SystemTime::now();
        let cookie = keys.issue(now, Duration::from_secs(60));
        assert!(keys.verify(&cookie, now));
        assert!(keys.verify(&cookie, now + Duration::from_secs(59)));
        assert!(!keys.verify(&cookie, now + Duration::from_secs(61)));
        assert!(!SessionKeys::new("another password").verify(&cookie, now));
    }

    #[test]
    fn a_tampered_or_malformed_cookie_is_refused() {
        let keys = SessionKeys::new("correct horse battery");
        let now = SystemTime::now();
        let cookie = keys.issue(now, Duration::from_secs(60));
        let (payload, signature) = cookie.rsplit_once('.').unwrap();
        let (expiry, nonce) = payload.split_once('.').unwrap();
        let later = expiry.parse::<u64>().unwrap() + 3600;
        assert!(!keys.verify(&format!("{later}.{nonce}.{signature}"), now));
        for bad in ["", ".", "x.y.z", "1.2", "é.é.éé", &format!("{payload}.zz")] {
            assert!(!keys.verify(bad, now), "{bad:?}");
        }
    }

    #[test]
    fn passwords_compare_whole() {
        let keys = SessionKeys::new("correct horse battery");
        assert!(keys.password_matches("correct horse battery"));
        assert!(!keys.password_matches("correct horse batter"));
        assert!(!keys.password_matches(""));
    }
}
