//! Tokens for the JWT targets: HMAC signing of arbitrary payload bytes, and one verifier per
//! kind of configured key.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_engine::auth::TokenVerifier;
use herald_engine::config::{TokenConfig, TokenKey};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

/// The HMAC secret the targets sign with and the HMAC verifiers check.
pub const SECRET: &[u8] = b"herald-fuzz-secret";

/// The audience and issuer of the verifier that requires them.
pub const AUDIENCE: &str = "herald";
pub const ISSUER: &str = "fuzz";

const RSA_PUBLIC: &[u8] = include_bytes!("../../engine/src/auth/testdata/test_only_rsa_public.pem");
const EC_PUBLIC: &[u8] =
    include_bytes!("../../engine/src/auth/testdata/test_only_ec_p256_public.pem");

/// HMAC verifiers: without claim requirements, and requiring `aud` and `iss`.
pub fn hmac_verifiers() -> &'static [TokenVerifier] {
    static VERIFIERS: OnceLock<Vec<TokenVerifier>> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        vec![
            verifier(TokenKey::Hmac(SECRET.to_vec()), None, None),
            verifier(
                TokenKey::Hmac(SECRET.to_vec()),
                Some(AUDIENCE),
                Some(ISSUER),
            ),
        ]
    })
}

/// Every kind of key: HMAC (with and without `aud`/`iss`), RSA, EC P-256.
pub fn all_verifiers() -> &'static [TokenVerifier] {
    static VERIFIERS: OnceLock<Vec<TokenVerifier>> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        let mut all = hmac_verifiers().to_vec();
        all.push(verifier(TokenKey::RsaPem(RSA_PUBLIC.to_vec()), None, None));
        all.push(verifier(TokenKey::EcdsaPem(EC_PUBLIC.to_vec()), None, None));
        all
    })
}

fn verifier(key: TokenKey, audience: Option<&str>, issuer: Option<&str>) -> TokenVerifier {
    TokenVerifier::new(&TokenConfig {
        key,
        audience: audience.map(str::to_owned),
        issuer: issuer.map(str::to_owned),
        previous_key: None,
    })
    .expect("the fuzz keys are valid")
}

/// A compact JWT whose payload is `payload` verbatim (any bytes, JSON or not), signed with
/// [`SECRET`]: HS256, HS384 or HS512 by `alg % 3`. The signature is right, so verification gets
/// past it to the claims.
pub fn sign_hmac(alg: u8, payload: &[u8]) -> String {
    type Sign = fn(&[u8]) -> Vec<u8>;
    let (name, sign): (&str, Sign) = match alg % 3 {
        0 => ("HS256", mac::<Hmac<Sha256>>),
        1 => ("HS384", mac::<Hmac<Sha384>>),
        _ => ("HS512", mac::<Hmac<Sha512>>),
    };
    let header = format!(r#"{{"alg":"{name}","typ":"JWT"}}"#);
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

fn mac<M: Mac + hmac::digest::KeyInit>(message: &[u8]) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(SECRET).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}
