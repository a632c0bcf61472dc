//! Verifying connection and subscription tokens.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::AuthError;
use super::claims::{ConnectClaims, SubscribeClaims, WireClaims};
use super::jwks::Jwks;
use super::key::PinnedKey;
use crate::config::{TokenConfig, TokenKey};

/// Checks tokens against the configured key(s). Built once at start (key parsing, allowed
/// algorithms, validation options), then shared: verification takes `&self`, so one verifier
/// serves every connect without per-call setup.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    keys: Keys,
    audience: Option<String>,
    issuer: Option<String>,
}

#[derive(Debug, Clone)]
enum Keys {
    /// Configured keys, tried in order: the key, then (while keys rotate) the previous one.
    Static(Vec<PinnedKey>),
    /// Keys of a JWKS, picked by the token's `kid`.
    Jwks(Arc<Jwks>),
}

impl TokenVerifier {
    /// Parses the key(s) and pins the accepted algorithms to their kind. A key that cannot be
    /// used is [`AuthError::BadKey`], naming the kind of key. A JWKS is not fetched here: see
    /// [`TokenVerifier::refresh_keys`].
    pub fn new(config: &TokenConfig) -> Result<Self, AuthError> {
        let keys = match (&config.key, &config.previous_key) {
            (TokenKey::Jwks(_), Some(_)) | (_, Some(TokenKey::Jwks(_))) => {
                return Err(AuthError::BadKey(
                    "a JWKS rotates by serving several keys; it takes no previous key".into(),
                ));
            }
            (TokenKey::Jwks(jwks), None) => Keys::Jwks(Arc::new(Jwks::new(jwks)?)),
            (key, previous) => {
                let mut keys = vec![pin(key)?];
                if let Some(previous) = previous {
                    keys.push(pin(previous)?);
                }
                Keys::Static(keys)
            }
        };
        Ok(Self {
            keys,
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
        })
    }

    /// Verifies a connection token at `now_unix` (seconds) with the keys at hand; never waits.
    /// With a JWKS, a token whose `kid` is not cached is [`AuthError::UnknownKey`].
    pub fn verify_connect(&self, token: &str, now_unix: u64) -> Result<ConnectClaims, AuthError> {
        self.verify(token, now_unix)
    }

    /// Verifies a subscription token at `now_unix` (seconds) with the keys at hand; never
    /// waits. A missing or empty `channel` claim is invalid.
    pub fn verify_subscribe(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<SubscribeClaims, AuthError> {
        self.verify(token, now_unix)
    }

    /// [`TokenVerifier::verify_connect`], but a token signed with a JWKS key the node does not
    /// hold yet (the issuer published a new key) waits for a fetch of the JWKS and is checked
    /// again. Such fetches are shared by every token that waits and rate-limited
    /// ([`crate::config::JwksConfig::min_refresh_interval`]). A token whose key is cached is
    /// checked at once, without waiting on anything.
    pub async fn verify_connect_fetching(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<ConnectClaims, AuthError> {
        self.verify_fetching(token, now_unix).await
    }

    /// [`TokenVerifier::verify_subscribe`], fetching an unknown JWKS key as
    /// [`TokenVerifier::verify_connect_fetching`] does.
    pub async fn verify_subscribe_fetching(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<SubscribeClaims, AuthError> {
        self.verify_fetching(token, now_unix).await
    }

    /// With a JWKS: fetches its keys now (or waits for the fetch under way) and returns when
    /// the next scheduled fetch is due. `None` for configured keys, which never change. The
    /// node calls it in a loop ([`crate::Node::run_token_keys`]).
    pub async fn refresh_keys(&self) -> Option<std::time::Duration> {
        match &self.keys {
            Keys::Jwks(jwks) => Some(jwks.refresh().await),
            Keys::Static(_) => None,
        }
    }

    async fn verify_fetching<C>(&self, token: &str, now_unix: u64) -> Result<C, AuthError>
    where
        C: TryFrom<WireClaims, Error = AuthError>,
    {
        match (self.verify(token, now_unix), &self.keys) {
            (Err(AuthError::UnknownKey(_)), Keys::Jwks(jwks)) => {
                jwks.refresh_for_unknown_key().await;
                self.verify(token, now_unix)
            }
            (result, _) => result,
        }
    }

    fn verify<C>(&self, token: &str, now_unix: u64) -> Result<C, AuthError>
    where
        C: TryFrom<WireClaims, Error = AuthError>,
    {
        let wire = match &self.keys {
            Keys::Static(keys) => decode_with_any(keys, token)?,
            Keys::Jwks(jwks) => {
                let kid = header_kid(token)?;
                jwks.cached().select(kid.as_deref())?.decode(token)?
            }
        };
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

fn pin(key: &TokenKey) -> Result<PinnedKey, AuthError> {
    match key {
        TokenKey::Hmac(secret) => PinnedKey::hmac(secret),
        TokenKey::RsaPem(pem) => PinnedKey::rsa_pem(pem),
        TokenKey::EcdsaPem(pem) => PinnedKey::ec_pem(pem),
        TokenKey::Jwks(_) => unreachable!("a JWKS is not a static key"),
    }
}

/// The claims of a token signed with any of `keys` (the current key first). When none
/// verifies it, the current key's reason is reported: the previous key is only a grace.
fn decode_with_any(keys: &[PinnedKey], token: &str) -> Result<WireClaims, AuthError> {
    let (current, previous) = keys.split_first().expect("at least one key");
    match current.decode(token) {
        Ok(claims) => Ok(claims),
        Err(e) => previous
            .iter()
            .find_map(|key| key.decode(token).ok())
            .ok_or(e),
    }
}

/// The `kid` of a token's header (`None` when it names none). A header that does not decode
/// is invalid here already: there is no key to pick for it.
fn header_kid(token: &str) -> Result<Option<String>, AuthError> {
    #[derive(serde::Deserialize)]
    struct Header {
        kid: Option<String>,
    }
    let header = token.split('.').next().unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<Header>(&json).ok())
        .map(|h| h.kid)
        .ok_or_else(|| AuthError::invalid("malformed token header"))
}
