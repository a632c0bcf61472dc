//! Verifying connection and subscription tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::AuthError;
use super::claims::{ConnectClaims, SubscribeClaims, WireClaims};
use crate::config::{TokenConfig, TokenKey};

/// Checks tokens against the configured key. Built once at start (key parsing, allowed
/// algorithms, validation options), then shared: verification takes `&self`, so one verifier
/// serves every connect without per-call setup.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    /// Signature and algorithm checks only; claim and time checks are done here, after it.
    validation: Validation,
    audience: Option<String>,
    issuer: Option<String>,
}

impl TokenVerifier {
    /// Parses the key and pins the accepted algorithms to its kind. A key that cannot be used
    /// is [`AuthError::BadKey`], naming the kind of key.
    pub fn new(config: &TokenConfig) -> Result<Self, AuthError> {
        let (key, algorithms) = match &config.key {
            TokenKey::Hmac(secret) => {
                if secret.is_empty() {
                    return Err(AuthError::BadKey("HMAC secret is empty".into()));
                }
                let algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
                (DecodingKey::from_secret(secret), algorithms)
            }
            TokenKey::RsaPem(pem) => rsa_public_key(pem)?,
            TokenKey::EcdsaPem(pem) => ec_public_key(pem)?,
        };

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

        Ok(Self {
            key,
            validation,
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
        })
    }

    /// Verifies a connection token at `now_unix` (seconds).
    pub fn verify_connect(&self, token: &str, now_unix: u64) -> Result<ConnectClaims, AuthError> {
        self.verify(token, now_unix)
    }

    /// Verifies a subscription token at `now_unix` (seconds). A missing or empty `channel`
    /// claim is invalid.
    pub fn verify_subscribe(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<SubscribeClaims, AuthError> {
        self.verify(token, now_unix)
    }

    fn verify<C>(&self, token: &str, now_unix: u64) -> Result<C, AuthError>
    where
        C: TryFrom<WireClaims, Error = AuthError>,
    {
        let wire = jsonwebtoken::decode::<WireClaims>(token, &self.key, &self.validation)
            .map_err(|e| describe(e, token))?
            .claims;
        self.check_audience_and_issuer(&wire)?;
        let (exp, nbf) = (wire.exp, wire.nbf);
        let claims = C::try_from(wire)?;
        // Time comes last so that `Expired` (which makes a client refresh its token) is only
        // reported for tokens that would otherwise be accepted.
        check_time(exp, nbf, now_unix)?;
        Ok(claims)
    }

    fn check_audience_and_issuer(&self, claims: &WireClaims) -> Result<(), AuthError> {
        if let Some(audience) = &self.audience {
            let matches = match &claims.aud {
                None | Some(serde_json::Value::Null) => {
                    return Err(AuthError::invalid("missing aud claim"));
                }
                Some(serde_json::Value::String(aud)) => aud == audience,
                Some(serde_json::Value::Array(auds)) => auds
                    .iter()
                    .any(|aud| aud.as_str() == Some(audience.as_str())),
                Some(_) => false,
            };
            if !matches {
                return Err(AuthError::invalid("audience mismatch"));
            }
        }
        if let Some(issuer) = &self.issuer {
            match &claims.iss {
                None | Some(serde_json::Value::Null) => {
                    return Err(AuthError::invalid("missing iss claim"));
                }
                Some(serde_json::Value::String(iss)) if iss == issuer => {}
                Some(_) => return Err(AuthError::invalid("issuer mismatch")),
            }
        }
        Ok(())
    }
}

/// `nbf` after now is invalid; `exp` at or before now is expired. No leeway: callers pass the
/// clock they trust.
fn check_time(exp: Option<u64>, nbf: Option<u64>, now_unix: u64) -> Result<(), AuthError> {
    if let Some(nbf) = nbf
        && nbf > now_unix
    {
        return Err(AuthError::invalid("token not valid yet (nbf)"));
    }
    if let Some(exp) = exp
        && exp <= now_unix
    {
        return Err(AuthError::Expired);
    }
    Ok(())
}

/// RSA public key (PKCS#1 `RSA PUBLIC KEY` or SPKI `PUBLIC KEY`): RS256/384/512, PS256/384/512.
/// The key is decoded to its modulus and exponent here, so a private key, an EC key or
/// garbage fails at start rather than on every token.
fn rsa_public_key(pem: &[u8]) -> Result<(DecodingKey, Vec<Algorithm>), AuthError> {
    let bad = |why: String| AuthError::BadKey(format!("RSA public key PEM: {why}"));
    let key = DecodingKey::from_rsa_pem(pem).map_err(|e| bad(e.to_string()))?;
    let der = key.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
    let (n, e) = (DEFAULT_PROVIDER
        .key_utils
        .rsa_pub_components_from_public_key)(der)
    .map_err(|e| bad(format!("not an RSA public key ({e})")))?;
    let algorithms = vec![
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    Ok((DecodingKey::from_rsa_raw_components(&n, &e), algorithms))
}

/// EC public key (SPKI `PUBLIC KEY`): P-256 → ES256 only, P-384 → ES384 only.
fn ec_public_key(pem: &[u8]) -> Result<(DecodingKey, Vec<Algorithm>), AuthError> {
    let bad = |why: String| AuthError::BadKey(format!("ECDSA public key PEM: {why}"));
    let key = DecodingKey::from_ec_pem(pem).map_err(|e| bad(e.to_string()))?;
    let point = key.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
    let algorithm = match point.len() {
        65 => Algorithm::ES256,
        97 => Algorithm::ES384,
        _ => return Err(bad("unsupported curve (expected P-256 or P-384)".into())),
    };
    // Building a verifier parses the curve point; a bad point fails here, not per token.
    jsonwebtoken::crypto::verify("", b"", &key, algorithm)
        .map_err(|e| bad(format!("not a valid curve point ({e})")))?;
    Ok((key, vec![algorithm]))
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
