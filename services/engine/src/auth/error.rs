//! The one error type of the auth module.

/// Why a token (or a key) was refused.
///
/// The `Invalid` message says why, for logs; it is never sent to the client, which only
/// learns that its token was refused (or expired, so that it can refresh it).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The token's `exp` is at or before now. The client may refresh and retry.
    #[error("token expired")]
    Expired,
    /// The token is malformed, badly signed, uses a disallowed algorithm, or fails a claim
    /// check (audience, issuer, missing channel, ...).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token names a key (`kid`) the node's JWKS does not hold, or the node has no JWKS
    /// keys yet. The client is refused as for an invalid token; the node fetches the JWKS
    /// again first (see [`crate::auth::TokenVerifier::verify_connect_fetching`]).
    #[error("invalid token: unknown key: {0}")]
    UnknownKey(String),
    /// A configured or supplied key could not be used.
    #[error("bad key: {0}")]
    BadKey(String),
}

impl AuthError {
    pub(crate) fn invalid(why: impl Into<String>) -> Self {
        Self::Invalid(why.into())
    }
}
