//! One verification key with the algorithms it may verify: the pinning the module doc
//! explains. Configured keys (a secret, a PEM) and the keys of a JWKS all end up here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::AuthError;
use super::claims::WireClaims;

/// Every RSA algorithm: RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS).
pub(crate) const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// A key and the only algorithms a token checked with it may use. Built once (at start, or
/// when a JWKS is fetched) so that a key that cannot be used fails then, not on every token.
#[derive(Clone)]
pub(crate) struct PinnedKey {
    key: DecodingKey,
    /// Signature and algorithm checks only; claim and time checks are the verifier's.
    validation: Validation,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key may be an HMAC secret.
        f.debug_struct("PinnedKey")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl PinnedKey {
    fn new(key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.aud = None;
        validation.iss = None;
        validation.sub = None;
        Self { key, validation }
    }

    /// An HMAC shared secret: HS256/HS384/HS512.
    pub(crate) fn hmac(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::BadKey("HMAC secret is empty".into()));
        }
        let algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        Ok(Self::new(DecodingKey::from_secret(secret), algorithms))
    }

    /// RSA public key PEM (PKCS#1 `RSA PUBLIC KEY` or SPKI `PUBLIC KEY`): RS256/384/512,
    /// PS256/384/512. The key is decoded to its modulus and exponent here, so a private key, an
    /// EC key or garbage fails at start rather than on every token.
    pub(crate) fn rsa_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let bad = |why: String| AuthError::BadKey(format!("RSA public key PEM: {why}"));
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| bad(e.to_string()))?;
        let der = key.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
        let (n, e) = (DEFAULT_PROVIDER
            .key_utils
            .rsa_pub_components_from_public_key)(der)
        .map_err(|e| bad(format!("not an RSA public key ({e})")))?;
        Ok(Self::rsa(&n, &e, RSA_ALGORITHMS.to_vec()))
    }

    /// An RSA public key from its modulus and exponent (big-endian bytes), for `algorithms`
    /// (a subset of [`RSA_ALGORITHMS`]).
    pub(crate) fn rsa(n: &[u8], e: &[u8], algorithms: Vec<Algorithm>) -> Self {
        Self::new(DecodingKey::from_rsa_raw_components(n, e), algorithms)
    }

    /// EC public key PEM (SPKI `PUBLIC KEY`): P-256 → ES256 only, P-384 → ES384 only.
    pub(crate) fn ec_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let bad = |why: String| AuthError::BadKey(format!("ECDSA public key PEM: {why}"));
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| bad(e.to_string()))?;
        let point = key.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
        let algorithm = match point.len() {
            65 => Algorithm::ES256,
            97 => Algorithm::ES384,
            _ => return Err(bad("unsupported curve (expected P-256 or P-384)".into())),
        };
        Self::ec(key, algorithm).map_err(bad)
    }

    /// An EC public key from its uncompressed point `04 || x || y`, for `algorithm` (ES256 for
    /// P-256, ES384 for P-384: the caller has matched the curve).
    pub(crate) fn ec_point(x: &[u8], y: &[u8], algorithm: Algorithm) -> Result<Self, String> {
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        Self::ec(key, algorithm)
    }

    fn ec(key: DecodingKey, algorithm: Algorithm) -> Result<Self, String> {
        // Building a verifier parses the curve point; a bad point fails here, not per token.
        jsonwebtoken::crypto::verify("", b"", &key, algorithm)
            .map_err(|e| format!("not a valid curve point ({e})"))?;
        Ok(Self::new(key, vec![algorithm]))
    }

    /// Checks the token's algorithm against this key's and its signature; returns the claims
    /// unchecked otherwise.
    pub(crate) fn decode(&self, token: &str) -> Result<WireClaims, AuthError> {
        jsonwebtoken::decode::<WireClaims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| describe(e, token))
    }
}

/// Why `jsonwebtoken` refused a token, for logs. Runs on the error path only.
fn describe(err: jsonwebtoken::errors::Error, token: &str) -> AuthError {
    let why = match err.kind() {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => "algorithm not allowed for the configured key".to_owned(),
        ErrorKind::InvalidToken => "malformed token (expected header.payload.signature)".to_owned(),
        ErrorKind::Base64(e) => format!("malformed token (base64: {e})"),
        ErrorKind::Json(e) => match header_alg(token) {
            // `alg: none` and other unknown names fail while parsing the header.
            Some(alg) if alg.parse::<Algorithm>().is_err() => {
                let alg: String = alg.chars().take(32).collect();
                format!("algorithm {alg:?} not allowed")
            }
            _ => format!("malformed token (json: {e})"),
        },
        ErrorKind::Utf8(e) => format!("malformed token (utf-8: {e})"),
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "configured key cannot verify this algorithm".to_owned()
        }
        _ => err.to_string(),
    };
    AuthError::Invalid(why)
}

/// The `alg` of a token's header, if the header decodes at all.
fn header_alg(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
    }
    let header = token.split('.').next()?;
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<Header>(&json).ok().map(|h| h.alg)
}
