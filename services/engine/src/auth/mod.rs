//! Connection and subscription tokens (Centrifugo-compatible JWTs).
//!
//! Owns: verifying connection and subscription JWTs against the configured key, or the keys of
//! a JWKS endpoint fetched and cached here ([`TokenVerifier`]), the claims a session gets out of them ([`ConnectClaims`],
//! [`SubscribeClaims`]), and signing tokens for the `herald gentoken` CLI and for tests
//! ([`TokenSigner`], [`NewConnectToken`], [`NewSubscribeToken`]).
//!
//! Does not own: deciding what the claims allow (channel rules), matching a subscription
//! token's `sub` against the connection's user, or scheduling connection expiry; those belong
//! to the session and channel modules, which get plain claims from here.
//!
//! # Why the algorithm is pinned by the key
//!
//! A JWT names its own algorithm in its header, and the header is chosen by whoever made the
//! token. If the verifier trusted it, an attacker could send `alg: none` (no signature at all),
//! or take the server's RSA/EC *public* key, which is not secret, and use its PEM bytes as an
//! HMAC secret for an HS256 token ("algorithm confusion"). So the family of accepted algorithms
//! is fixed by the kind of configured key, never by the token: an HMAC secret accepts only
//! HS256/HS384/HS512, an RSA public key only RS256/384/512 and PS256/384/512, an EC public key
//! only ES256 (P-256) or ES384 (P-384). Anything else is [`AuthError::Invalid`].
//!
//! The same holds for the keys of a JWKS: the token's `kid` picks a key, and the key (its
//! `kty`, its `crv`, its `alg` when the JWK names one) fixes the algorithms, so an HS256 token
//! never verifies against a JWKS. Symmetric JWKs (`kty: oct`) are never taken. While keys
//! rotate, a previous key may be configured beside the key: each keeps its own algorithms.
//!
//! Time checks (`exp`, `nbf`) are done here against the caller's `now_unix`, without leeway, so
//! behaviour is deterministic and testable; `jsonwebtoken` only checks the signature.

mod claims;
mod error;
mod jwk;
mod jwks;
mod key;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

pub use claims::{ConnectClaims, NewConnectToken, NewSubscribeToken, SubscribeClaims};
pub use error::AuthError;
pub use jwks::check_jwks_url;
pub use sign::{HmacAlg, TokenSigner};
pub use verify::TokenVerifier;
