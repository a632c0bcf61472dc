//! A JSON Web Key Set (RFC 7517) turned into pinned keys by `kid`.
//!
//! Only signature keys Herald can pin are taken: RSA (`kty: RSA`, at least 2048 bits) for
//! RS256/384/512 and PS256/384/512, or the one algorithm its `alg` names; EC P-256 for ES256
//! and P-384 for ES384. Everything else is skipped with a reason, never an error for the whole
//! set, since identity providers publish keys for other uses beside the signing keys. A
//! symmetric key (`kty: oct`) is always skipped: a key served over HTTP is public, and a
//! public HMAC secret would let anyone sign tokens.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::AuthError;
use super::key::{PinnedKey, RSA_ALGORITHMS};

/// Smallest RSA modulus taken, in bits (as ring, which verifies the signatures, requires).
const MIN_RSA_BITS: usize = 2048;

/// The usable keys of one fetched JWKS.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, PinnedKey>,
    /// Keys without a `kid`: only a token without one can use them, and only when the set
    /// holds no other key.
    without_kid: Vec<PinnedKey>,
}

impl KeySet {
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// The `kid`s of the set, sorted, for logs.
    pub(crate) fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// The key a token with this `kid` is checked with. A `kid` the set does not hold is
    /// [`AuthError::UnknownKey`] (the issuer may have published a new key since the last
    /// fetch); a token without a `kid` is checked with the only key of a one-key set, and is
    /// invalid when the set has several (it would have to be tried against each).
    pub(crate) fn select(&self, kid: Option<&str>) -> Result<&PinnedKey, AuthError> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .ok_or_else(|| AuthError::UnknownKey(format!("kid {:?}", truncate(kid)))),
            None => match (self.len(), self.by_kid.values().next()) {
                (0, _) => Err(AuthError::UnknownKey("no JWKS keys fetched yet".into())),
                (1, Some(key)) => Ok(key),
                (1, None) => Ok(&self.without_kid[0]),
                (n, _) => Err(AuthError::invalid(format!(
                    "token has no kid and the JWKS holds {n} keys"
                ))),
            },
        }
    }
}

/// One key as it appears in the set; only the members Herald reads.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawSet {
    // Each key parsed on its own: one odd key must not hide the others.
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document. Returns the usable keys and, for logs, why each other key was
/// skipped. A document that is not a JWKS (`{"keys": [...]}`) is an error.
pub(crate) fn parse(body: &[u8]) -> Result<(KeySet, Vec<String>), serde_json::Error> {
    let set: RawSet = serde_json::from_slice(body)?;
    let mut keys = KeySet::default();
    let mut skipped = Vec::new();
    for (i, value) in set.keys.into_iter().enumerate() {
        let jwk = match serde_json::from_value::<RawJwk>(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                skipped.push(format!("keys[{i}]: {e}"));
                continue;
            }
        };
        let name = match &jwk.kid {
            Some(kid) => format!("keys[{i}] (kid {:?})", truncate(kid)),
            None => format!("keys[{i}]"),
        };
        let key = match pin(&jwk) {
            Ok(key) => key,
            Err(why) => {
                skipped.push(format!("{name}: {why}"));
                continue;
            }
        };
        match jwk.kid {
            Some(kid) if keys.by_kid.contains_key(&kid) => {
                skipped.push(format!(
                    "{name}: duplicate kid (the first key with it is used)"
                ));
            }
            Some(kid) => {
                keys.by_kid.insert(kid, key);
            }
            None => keys.without_kid.push(key),
        }
    }
    Ok((keys, skipped))
}

/// The key and its algorithms, or why it cannot be used.
fn pin(jwk: &RawJwk) -> Result<PinnedKey, String> {
    if let Some(use_) = &jwk.use_
        && use_ != "sig"
    {
        return Err(format!("use {:?} is not \"sig\"", truncate(use_)));
    }
    let alg = jwk.alg.as_deref();
    match jwk.kty.as_deref() {
        Some("RSA") => {
            let algorithms = match alg {
                None => RSA_ALGORITHMS.to_vec(),
                Some(name) => vec![
                    name.parse::<Algorithm>()
                        .ok()
                        .filter(|a| RSA_ALGORITHMS.contains(a))
                        .ok_or_else(|| {
                            format!("alg {:?} is not an RSA signature algorithm", truncate(name))
                        })?,
                ],
            };
            let n = member(&jwk.n, "n")?;
            let e = member(&jwk.e, "e")?;
            let n = strip_leading_zeros(&n);
            if n.len() * 8 < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus of {} bits is under {MIN_RSA_BITS}",
                    n.len() * 8
                ));
            }
            if e.is_empty() {
                return Err("RSA exponent is empty".into());
            }
            Ok(PinnedKey::rsa(n, &e, algorithms))
        }
        Some("EC") => {
            let (algorithm, size) = match jwk.crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                Some(crv) => {
                    return Err(format!("curve {:?} is not P-256 or P-384", truncate(crv)));
                }
                None => return Err("EC key without crv".into()),
            };
            if let Some(name) = alg
                && name.parse::<Algorithm>().ok() != Some(algorithm)
            {
                return Err(format!(
                    "alg {:?} does not match curve {}",
                    truncate(name),
                    jwk.crv.as_deref().unwrap_or_default()
                ));
            }
            let x = member(&jwk.x, "x")?;
            let y = member(&jwk.y, "y")?;
            if x.len() != size || y.len() != size {
                return Err(format!("EC coordinates are not {size} bytes each"));
            }
            PinnedKey::ec_point(&x, &y, algorithm)
        }
        Some("oct") => Err("symmetric keys are never taken from a JWKS".into()),
        Some(kty) => Err(format!("kty {:?} is not RSA or EC", truncate(kty))),
        None => Err("no kty".into()),
    }
}

/// A base64url member of the key (padding tolerated), decoded.
fn member(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let value = value.as_deref().ok_or_else(|| format!("no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|e| format!("{name} is not base64url ({e})"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Values from the network or a token, cut for logs.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // A real P-256 point: the public key of testdata/test_only_ec_p256_public.pem (see
    // tests/jwks.rs for how it was derived).
    const EC_X: &str = "L1d7oEKilrSrnUVQu2bSVViMJNIts-X3TbwMcgKn-Y0";
    const EC_Y: &str = "dWj9I138OJHg-9uxLe6H3bYbfkVcxVq7n0ilJoIB_rQ";

    /// A base64url modulus of `bytes` bytes (the RSA key is not used to verify here).
    fn modulus(bytes: usize) -> String {
        URL_SAFE_NO_PAD.encode(vec![0xc5; bytes])
    }

    #[test]
    fn usable_keys_are_kept_and_every_other_is_skipped_with_a_reason() {
        let n = modulus(256);
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": EC_X},
            {"kty": "RSA", "kid": "small", "n": modulus(128), "e": "AQAB"},
            // Leading zero bytes do not count towards the size.
            {"kty": "RSA", "kid": "padded", "n": URL_SAFE_NO_PAD.encode([vec![0; 2], vec![0xc5; 254]].concat()), "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": EC_X, "y": EC_Y},
            {"kty": "EC", "kid": "mismatch", "crv": "P-256", "alg": "ES384", "x": EC_X, "y": EC_Y},
            {"kty": "EC", "kid": "short", "crv": "P-384", "x": EC_X, "y": EC_Y},
            {"kty": "EC", "kid": "b", "crv": "P-256", "alg": "ES256", "x": EC_X, "y": EC_Y},
            {"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": EC_X, "y": EC_X},
            {"kty": "RSA", "kid": "a", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "no-e", "n": n},
            {"kty": "RSA", "kid": "bad-n", "n": "***", "e": "AQAB"},
            "not an object",
            {"kid": "no-kty"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
        ]});
        let (keys, skipped) = parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.kids(), ["a", "b"]);
        assert_eq!(keys.len(), 3, "a, b and the key without kid");
        let reasons = skipped.join("\n");
        for needle in [
            r#"kid "enc""#,
            "not \"sig\"",
            "symmetric keys are never taken",
            r#"kty "OKP""#,
            "1024 bits is under 2048",
            "2032 bits is under 2048",
            r#"alg "HS256" is not an RSA signature algorithm"#,
            r#"curve "P-521""#,
            r#"alg "ES384" does not match curve P-256"#,
            "not 48 bytes each",
            "not a valid curve point",
            "duplicate kid",
            "no e",
            "n is not base64url",
            "keys[15]",
            "no kty",
        ] {
            assert!(reasons.contains(needle), "{needle:?} not in:\n{reasons}");
        }
        assert_eq!(skipped.len(), 15, "{reasons}");
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        for doc in ["", "[]", r#"{"keys": 1}"#, r#"{"kty": "RSA"}"#] {
            assert!(parse(doc.as_bytes()).is_err(), "{doc}");
        }
        let (keys, skipped) = parse(br#"{"keys": []}"#).unwrap();
        assert_eq!((keys.len(), skipped.len()), (0, 0));
    }

    #[test]
    fn the_kid_picks_the_key() {
        let n = modulus(256);
        let one = json!({"keys": [{"kty": "RSA", "kid": "a", "n": n, "e": "AQAB"}]});
        let (one, _) = parse(one.to_string().as_bytes()).unwrap();
        assert!(one.select(Some("a")).is_ok());
        assert!(
            one.select(None).is_ok(),
            "the only key serves a token without kid"
        );
        assert!(matches!(
            one.select(Some("b")),
            Err(AuthError::UnknownKey(_))
        ));

        let two = json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "b", "crv": "P-256", "x": EC_X, "y": EC_Y},
        ]});
        let (two, _) = parse(two.to_string().as_bytes()).unwrap();
        assert!(two.select(Some("b")).is_ok());
        assert!(matches!(two.select(None), Err(AuthError::Invalid(_))));

        let empty = KeySet::default();
        assert!(matches!(empty.select(None), Err(AuthError::UnknownKey(_))));
    }
}
