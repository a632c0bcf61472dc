//! Signing tokens, for the `herald gentoken` CLI and for tests.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::AuthError;

/// The HMAC algorithm of an HMAC-signed token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HmacAlg {
    #[default]
    HS256,
    HS384,
    HS512,
}

impl HmacAlg {
    /// The JWT `alg` name, e.g. `"HS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HmacAlg::HS256 => "HS256",
            HmacAlg::HS384 => "HS384",
            HmacAlg::HS512 => "HS512",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            HmacAlg::HS256 => Algorithm::HS256,
            HmacAlg::HS384 => Algorithm::HS384,
            HmacAlg::HS512 => Algorithm::HS512,
        }
    }
}

impl fmt::Display for HmacAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HmacAlg {
    type Err = String;

    /// Accepts `HS256`, `HS384`, `HS512` in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        [HmacAlg::HS256, HmacAlg::HS384, HmacAlg::HS512]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown HMAC algorithm {s:?} (expected HS256, HS384 or HS512)"))
    }
}

/// Signs tokens with one key and one algorithm.
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
    alg_name: &'static str,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("TokenSigner")
            .field("alg", &self.alg_name)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    fn new(key: EncodingKey, alg: Algorithm, alg_name: &'static str) -> Self {
        Self {
            key,
            header: Header::new(alg),
            alg_name,
        }
    }

    /// Signs with an HMAC shared secret.
    pub fn hmac(secret: &[u8], alg: HmacAlg) -> Self {
        Self::new(
            EncodingKey::from_secret(secret),
            alg.algorithm(),
            alg.as_str(),
        )
    }

    /// Signs with a private key PEM, the algorithm following the key: RSA (PKCS#1
    /// `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) → RS256, EC P-256 (PKCS#8) → ES256,
    /// EC P-384 (PKCS#8) → ES384.
    pub fn from_pem(private_pem: &[u8]) -> Result<Self, AuthError> {
        let bad = |why: &str| AuthError::BadKey(format!("private key PEM: {why}"));
        if contains(private_pem, b"-----BEGIN EC PRIVATE KEY-----") {
            return Err(bad(
                "SEC1 `EC PRIVATE KEY` is not supported, convert it to PKCS#8 with \
                 `openssl pkcs8 -topk8 -nocrypt`",
            ));
        }
        if let Ok(key) = EncodingKey::from_ec_pem(private_pem) {
            let ec_components = DEFAULT_PROVIDER
                .key_utils
                .ec_pub_components_from_private_key;
            return [(Algorithm::ES256, "ES256"), (Algorithm::ES384, "ES384")]
                .into_iter()
                .find(|&(alg, _)| ec_components(key.as_bytes(), alg).is_ok())
                .map(|(alg, name)| Self::new(key, alg, name))
                .ok_or_else(|| bad("unsupported EC curve (expected P-256 or P-384)"));
        }
        if let Ok(key) = EncodingKey::from_rsa_pem(private_pem) {
            // `from_rsa_pem` also takes public keys; make sure this one can sign.
            (DEFAULT_PROVIDER
                .key_utils
                .rsa_pub_components_from_private_key)(key.as_bytes())
            .map_err(|_| bad("the RSA key is not a private key"))?;
            return Ok(Self::new(key, Algorithm::RS256, "RS256"));
        }
        Err(bad(
            "expected an RSA private key (PKCS#1 or PKCS#8) or an EC P-256/P-384 private key \
             (PKCS#8)",
        ))
    }

    /// Names the signing key in the token's header (`kid`), as a JWKS-verified node needs when
    /// its JWKS holds several keys.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.header.kid = Some(kid.into());
        self
    }

    /// The JWT `alg` this signer writes, e.g. `"RS256"`.
    pub fn alg_name(&self) -> &'static str {
        self.alg_name
    }

    /// Signs `claims` (any JSON object) into a compact JWT with a `{"typ":"JWT","alg":..}`
    /// header.
    pub fn sign<C: serde::Serialize>(&self, claims: &C) -> Result<String, AuthError> {
        jsonwebtoken::encode(&self.header, claims, &self.key).map_err(|e| match e.kind() {
            ErrorKind::Json(_) => AuthError::Invalid(format!("cannot encode claims: {e}")),
            _ => AuthError::BadKey(format!("cannot sign: {e}")),
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
