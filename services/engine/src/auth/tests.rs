//! Verification tests: every check here would let a bad token through if it were missing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use serde_json::value::RawValue;

use super::*;
use crate::config::{TokenConfig, TokenKey};

// TEST-ONLY keys, generated once with openssl (see testdata/README.md).
const RSA_PRIVATE: &[u8] = include_bytes!("testdata/test_only_rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("testdata/test_only_rsa_public.pem");
const OTHER_RSA_PUBLIC: &[u8] = include_bytes!("testdata/test_only_other_rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("testdata/test_only_ec_p256_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("testdata/test_only_ec_p256_public.pem");

const SECRET: &[u8] = b"test-only-hmac-secret";
const NOW: u64 = 1_700_000_000;

fn verifier(key: TokenKey) -> TokenVerifier {
    TokenVerifier::new(&TokenConfig {
        key,
        previous_key: None,
        audience: None,
        issuer: None,
    })
    .unwrap()
}

fn hmac_verifier() -> TokenVerifier {
    verifier(TokenKey::Hmac(SECRET.to_vec()))
}

fn rsa_verifier() -> TokenVerifier {
    verifier(TokenKey::RsaPem(RSA_PUBLIC.to_vec()))
}

fn ec_verifier() -> TokenVerifier {
    verifier(TokenKey::EcdsaPem(EC_PUBLIC.to_vec()))
}

fn hs256() -> TokenSigner {
    TokenSigner::hmac(SECRET, HmacAlg::HS256)
}

/// Signs a payload given as exact JSON text, so tests control key order and spacing.
fn sign_raw(signer: &TokenSigner, payload: &str) -> String {
    signer
        .sign(&RawValue::from_string(payload.to_owned()).unwrap())
        .unwrap()
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, AuthError>, what: &str) -> String {
    match result {
        Err(AuthError::Invalid(why)) => why,
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

const PAYLOAD: &str = r#"{"sub":"42","exp":1700000100,"info":{"z":"last","a":[1,2.5,null]},"channels":["news","chat:lobby"]}"#;

fn assert_payload_claims(claims: &ConnectClaims) {
    assert_eq!(claims.sub, "42");
    assert_eq!(claims.exp, Some(NOW + 100));
    assert_eq!(
        claims.info.as_deref(),
        Some(&br#"{"z":"last","a":[1,2.5,null]}"#[..])
    );
    assert_eq!(claims.channels, ["news", "chat:lobby"]);
    assert_eq!(claims.expire_at, None);
    assert_eq!(claims.expires_at(), Some(NOW + 100));
}

#[test]
fn hmac_tokens_of_every_size_verify() {
    for alg in [HmacAlg::HS256, HmacAlg::HS384, HmacAlg::HS512] {
        let signer = TokenSigner::hmac(SECRET, alg);
        assert_eq!(signer.alg_name(), alg.as_str());
        let token = sign_raw(&signer, PAYLOAD);
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["alg"], alg.as_str());
        let claims = hmac_verifier().verify_connect(&token, NOW).unwrap();
        assert_payload_claims(&claims);
    }
}

#[test]
fn rs256_token_verifies() {
    let signer = TokenSigner::from_pem(RSA_PRIVATE).unwrap();
    assert_eq!(signer.alg_name(), "RS256");
    let claims = rsa_verifier()
        .verify_connect(&sign_raw(&signer, PAYLOAD), NOW)
        .unwrap();
    assert_payload_claims(&claims);
}

#[test]
fn ps256_token_verifies_with_an_rsa_key() {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
    let token = jsonwebtoken::encode(&header, &json!({"sub": "7"}), &key).unwrap();
    assert_eq!(rsa_verifier().verify_connect(&token, NOW).unwrap().sub, "7");
}

#[test]
fn es256_token_verifies() {
    let signer = TokenSigner::from_pem(EC_PRIVATE).unwrap();
    assert_eq!(signer.alg_name(), "ES256");
    let claims = ec_verifier()
        .verify_connect(&sign_raw(&signer, PAYLOAD), NOW)
        .unwrap();
    assert_payload_claims(&claims);
}

#[test]
fn claim_builders_round_trip() {
    let token = hs256()
        .sign(&NewConnectToken {
            sub: "u1".into(),
            exp: Some(NOW + 1),
            info: Some(json!({"name": "Ann"})),
            channels: vec!["a".into()],
        })
        .unwrap();
    let claims = hmac_verifier().verify_connect(&token, NOW).unwrap();
    assert_eq!(claims.sub, "u1");
    assert_eq!(claims.info.as_deref(), Some(&br#"{"name":"Ann"}"#[..]));
    assert_eq!(claims.channels, ["a"]);

    let token = hs256()
        .sign(&NewSubscribeToken {
            sub: "u1".into(),
            channel: "news".into(),
            exp: None,
            info: Some(json!(5)),
        })
        .unwrap();
    let claims = hmac_verifier().verify_subscribe(&token, NOW).unwrap();
    assert_eq!(
        claims,
        SubscribeClaims {
            sub: "u1".into(),
            channel: "news".into(),
            exp: None,
            info: Some(bytes::Bytes::from_static(b"5")),
            expire_at: None,
        }
    );
}

#[test]
fn a_subscription_token_is_not_a_connection_token() {
    let token = hs256()
        .sign(&NewSubscribeToken {
            sub: "u1".into(),
            channel: "news".into(),
            exp: Some(NOW + 60),
            info: None,
        })
        .unwrap();
    assert!(hmac_verifier().verify_subscribe(&token, NOW).is_ok());
    let why = assert_invalid(
        hmac_verifier().verify_connect(&token, NOW),
        "a subscription token used to connect",
    );
    assert!(why.contains("channel claim"), "{why}");
    // Even an empty channel claim marks it.
    let token = sign_raw(&hs256(), r#"{"sub":"u1","channel":""}"#);
    assert_invalid(hmac_verifier().verify_connect(&token, NOW), "empty channel");
}

#[test]
fn anonymous_token_without_sub_or_exp_never_expires() {
    let token = sign_raw(&hs256(), r#"{"unknown":{"deep":[1]},"meta":"x"}"#);
    let claims = hmac_verifier().verify_connect(&token, u64::MAX).unwrap();
    assert_eq!(claims, ConnectClaims::default());
    assert_eq!(claims.expires_at(), None);
}

#[test]
fn wrong_hmac_secret_is_invalid() {
    let token = sign_raw(
        &TokenSigner::hmac(b"another-secret", HmacAlg::HS256),
        PAYLOAD,
    );
    let why = assert_invalid(hmac_verifier().verify_connect(&token, NOW), "wrong secret");
    assert!(why.contains("signature"), "{why}");
}

#[test]
fn tampered_payload_or_signature_is_invalid() {
    let token = sign_raw(&hs256(), r#"{"sub":"42"}"#);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(r#"{"sub":"1"}"#), parts[2]);
    assert_invalid(
        hmac_verifier().verify_connect(&forged, NOW),
        "forged payload",
    );
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_invalid(
        hmac_verifier().verify_connect(&flipped, NOW),
        "flipped signature",
    );
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert_invalid(
        hmac_verifier().verify_connect(&stripped, NOW),
        "no signature",
    );
}

#[test]
fn rsa_token_checked_with_another_rsa_key_is_invalid() {
    let token = sign_raw(&TokenSigner::from_pem(RSA_PRIVATE).unwrap(), PAYLOAD);
    let other = verifier(TokenKey::RsaPem(OTHER_RSA_PUBLIC.to_vec()));
    assert_invalid(other.verify_connect(&token, NOW), "other RSA key");
}

#[test]
fn alg_none_is_invalid_everywhere() {
    let header = b64(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(r#"{"sub":"admin","channel":"secret"}"#);
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        for v in [hmac_verifier(), rsa_verifier(), ec_verifier()] {
            assert_invalid(v.verify_connect(&token, NOW), "alg none");
            assert_invalid(v.verify_subscribe(&token, NOW), "alg none");
        }
    }
    let why = assert_invalid(
        hmac_verifier().verify_connect(&format!("{header}.{payload}."), NOW),
        "alg none",
    );
    assert!(why.contains("none"), "{why}");
}

#[test]
fn hs256_signed_with_the_public_key_is_invalid() {
    // Algorithm confusion: the public key PEM is no secret, so it must never work as one.
    let token = sign_raw(&TokenSigner::hmac(RSA_PUBLIC, HmacAlg::HS256), PAYLOAD);
    let why = assert_invalid(
        rsa_verifier().verify_connect(&token, NOW),
        "HS256 with RSA pem",
    );
    assert!(why.contains("algorithm"), "{why}");
    let token = sign_raw(&TokenSigner::hmac(EC_PUBLIC, HmacAlg::HS256), PAYLOAD);
    assert_invalid(
        ec_verifier().verify_connect(&token, NOW),
        "HS256 with EC pem",
    );
}

#[test]
fn tokens_of_another_family_are_invalid() {
    let hs = sign_raw(&hs256(), PAYLOAD);
    let rs = sign_raw(&TokenSigner::from_pem(RSA_PRIVATE).unwrap(), PAYLOAD);
    let es = sign_raw(&TokenSigner::from_pem(EC_PRIVATE).unwrap(), PAYLOAD);
    assert_invalid(rsa_verifier().verify_connect(&hs, NOW), "HS to RSA");
    assert_invalid(ec_verifier().verify_connect(&hs, NOW), "HS to EC");
    assert_invalid(hmac_verifier().verify_connect(&rs, NOW), "RS to HMAC");
    assert_invalid(ec_verifier().verify_connect(&rs, NOW), "RS to EC");
    assert_invalid(hmac_verifier().verify_connect(&es, NOW), "ES to HMAC");
    assert_invalid(rsa_verifier().verify_connect(&es, NOW), "ES to RSA");
}

#[test]
fn header_alg_cannot_be_swapped_within_the_ec_family() {
    // A P-256 key only accepts ES256, even though ES384 is in the EC family.
    let es = sign_raw(
        &TokenSigner::from_pem(EC_PRIVATE).unwrap(),
        r#"{"sub":"1"}"#,
    );
    let parts: Vec<&str> = es.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        b64(r#"{"typ":"JWT","alg":"ES384"}"#),
        parts[1],
        parts[2]
    );
    assert_invalid(ec_verifier().verify_connect(&swapped, NOW), "ES384 header");
}

#[test]
fn expiry_is_checked_against_now() {
    let token = |exp: u64| hs256().sign(&json!({"sub": "1", "exp": exp})).unwrap();
    let sub_token = |exp: u64| {
        hs256()
            .sign(&json!({"sub": "1", "exp": exp, "channel": "c"}))
            .unwrap()
    };
    let v = hmac_verifier();
    assert_eq!(v.verify_connect(&token(NOW), NOW), Err(AuthError::Expired));
    assert_eq!(
        v.verify_connect(&token(NOW - 1), NOW),
        Err(AuthError::Expired)
    );
    assert_eq!(v.verify_connect(&token(0), NOW), Err(AuthError::Expired));
    assert_eq!(
        v.verify_subscribe(&sub_token(NOW), NOW),
        Err(AuthError::Expired)
    );
    assert_eq!(
        v.verify_connect(&token(NOW + 1), NOW).unwrap().exp,
        Some(NOW + 1)
    );
    assert_eq!(
        v.verify_subscribe(&sub_token(NOW + 1), NOW).unwrap().exp,
        Some(NOW + 1)
    );
    // No leeway anywhere: the same token is expired one second later.
    assert_eq!(
        v.verify_connect(&token(NOW + 1), NOW + 1),
        Err(AuthError::Expired)
    );
}

#[test]
fn an_expired_token_with_a_bad_signature_is_invalid_not_expired() {
    let token = TokenSigner::hmac(b"wrong", HmacAlg::HS256)
        .sign(&json!({"exp": 1}))
        .unwrap();
    assert_invalid(
        hmac_verifier().verify_connect(&token, NOW),
        "bad sig + expired",
    );
}

#[test]
fn malformed_time_claims_are_invalid() {
    let v = hmac_verifier();
    for payload in [
        r#"{"exp":"soon"}"#,
        r#"{"exp":-5}"#,
        r#"{"expire_at":"x"}"#,
        r#"{"nbf":[]}"#,
    ] {
        assert_invalid(v.verify_connect(&sign_raw(&hs256(), payload), NOW), payload);
    }
    let float = sign_raw(&hs256(), &format!(r#"{{"exp":{}.5}}"#, NOW + 10));
    assert_eq!(v.verify_connect(&float, NOW).unwrap().exp, Some(NOW + 10));
}

#[test]
fn not_before_in_the_future_is_invalid() {
    let v = hmac_verifier();
    let token = hs256().sign(&json!({"nbf": NOW + 1})).unwrap();
    assert_invalid(v.verify_connect(&token, NOW), "nbf in future");
    assert!(v.verify_connect(&token, NOW + 1).is_ok());
}

#[test]
fn expire_at_comes_through_the_token() {
    let v = hmac_verifier();
    let token = hs256()
        .sign(&json!({"exp": NOW + 10, "expire_at": 0}))
        .unwrap();
    let claims = v.verify_connect(&token, NOW).unwrap();
    assert_eq!((claims.expire_at, claims.expires_at()), (Some(0), None));
    let token = hs256()
        .sign(&json!({"exp": NOW + 10, "expire_at": NOW + 3600}))
        .unwrap();
    assert_eq!(
        v.verify_connect(&token, NOW).unwrap().expires_at(),
        Some(NOW + 3600)
    );
    let token = hs256().sign(&json!({"exp": NOW + 10})).unwrap();
    assert_eq!(
        v.verify_connect(&token, NOW).unwrap().expires_at(),
        Some(NOW + 10)
    );
    let token = hs256()
        .sign(&json!({"channel": "c", "exp": NOW + 10, "expire_at": 0}))
        .unwrap();
    assert_eq!(v.verify_subscribe(&token, NOW).unwrap().expires_at(), None);
}

#[test]
fn audience_is_checked_only_when_configured() {
    let v = TokenVerifier::new(&TokenConfig {
        key: TokenKey::Hmac(SECRET.to_vec()),
        previous_key: None,
        audience: Some("herald".into()),
        issuer: None,
    })
    .unwrap();
    let sign = |claims: serde_json::Value| hs256().sign(&claims).unwrap();
    assert_invalid(
        v.verify_connect(&sign(json!({"sub": "1"})), NOW),
        "missing aud",
    );
    assert_invalid(
        v.verify_connect(&sign(json!({"aud": null})), NOW),
        "null aud",
    );
    assert_invalid(
        v.verify_connect(&sign(json!({"aud": "other"})), NOW),
        "wrong aud",
    );
    assert_invalid(
        v.verify_connect(&sign(json!({"aud": ["a", "b"]})), NOW),
        "aud list",
    );
    assert_invalid(
        v.verify_connect(&sign(json!({"aud": []})), NOW),
        "empty aud list",
    );
    assert_invalid(
        v.verify_connect(&sign(json!({"aud": 5})), NOW),
        "numeric aud",
    );
    assert!(
        v.verify_connect(&sign(json!({"aud": "herald"})), NOW)
            .is_ok()
    );
    assert!(
        v.verify_connect(&sign(json!({"aud": ["x", "herald"]})), NOW)
            .is_ok()
    );
    let sub = sign(json!({"aud": "other", "channel": "c"}));
    assert_invalid(v.verify_subscribe(&sub, NOW), "subscription aud");

    // Not configured: any aud (even odd ones) is ignored.
    assert!(
        hmac_verifier()
            .verify_connect(&sign(json!({"aud": "other"})), NOW)
            .is_ok()
    );
    assert!(
        hmac_verifier()
            .verify_connect(&sign(json!({"aud": [1]})), NOW)
            .is_ok()
    );
}

#[test]
fn issuer_is_checked_only_when_configured() {
    let v = TokenVerifier::new(&TokenConfig {
        key: TokenKey::Hmac(SECRET.to_vec()),
        previous_key: None,
        audience: None,
        issuer: Some("https://auth.example".into()),
    })
    .unwrap();
    let sign = |claims: serde_json::Value| hs256().sign(&claims).unwrap();
    assert_invalid(v.verify_connect(&sign(json!({})), NOW), "missing iss");
    assert_invalid(
        v.verify_connect(&sign(json!({"iss": "https://evil"})), NOW),
        "wrong iss",
    );
    assert_invalid(
        v.verify_connect(&sign(json!({"iss": ["https://auth.example"]})), NOW),
        "iss list",
    );
    assert!(
        v.verify_connect(&sign(json!({"iss": "https://auth.example"})), NOW)
            .is_ok()
    );
    assert!(
        hmac_verifier()
            .verify_connect(&sign(json!({"iss": "https://evil"})), NOW)
            .is_ok()
    );
}

#[test]
fn subscription_token_needs_a_channel() {
    let v = hmac_verifier();
    let missing = hs256()
        .sign(&json!({"sub": "1", "channels": ["a"]}))
        .unwrap();
    assert_invalid(v.verify_subscribe(&missing, NOW), "missing channel");
    let empty = hs256().sign(&json!({"sub": "1", "channel": ""})).unwrap();
    assert_invalid(v.verify_subscribe(&empty, NOW), "empty channel");
    let ok = sign_raw(
        &hs256(),
        r#"{"sub":"1","channel":"news","info":{"b":1,"a":2}}"#,
    );
    let claims = v.verify_subscribe(&ok, NOW).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.channel.as_str()),
        ("1", "news")
    );
    assert_eq!(claims.info.as_deref(), Some(&br#"{"b":1,"a":2}"#[..]));
}

#[test]
fn b64info_is_decoded_when_info_is_absent() {
    let token = hs256().sign(&json!({"b64info": "3q2+7w=="})).unwrap();
    let claims = hmac_verifier().verify_connect(&token, NOW).unwrap();
    assert_eq!(claims.info.as_deref(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
    let token = hs256().sign(&json!({"b64info": "not base64!"})).unwrap();
    assert_invalid(hmac_verifier().verify_connect(&token, NOW), "bad b64info");
}

#[test]
fn garbage_is_invalid_and_never_panics() {
    let valid = sign_raw(&hs256(), r#"{"sub":"1"}"#);
    let (header, rest) = valid.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let hs_header = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    let long = "a".repeat(100_000);
    let garbage: Vec<String> = [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b.c.d",
        "not a token",
        "ü.ö.ä",
        "Bearer x.y.z",
        "=.=.=",
        long.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("{valid}.extra"),
        format!("{header}.{}.{signature}", b64("not json")),
        format!("{header}.{}.{signature}", b64("[1,2]")),
        format!("{header}.{}.{signature}", b64("null")),
        format!("{}.{}.{signature}", b64("{}"), b64("{}")),
        format!("{}.{}.{signature}", b64(r#"{"alg":5}"#), b64("{}")),
        format!("{}.{}.{signature}", b64(r#"{"alg":"EdDSA"}"#), b64("{}")),
        format!("{hs_header}.{}.", b64("{}")),
        format!("{hs_header}.***.{signature}"),
        format!(" {valid}"),
    ])
    .collect();
    for v in [hmac_verifier(), rsa_verifier(), ec_verifier()] {
        for token in &garbage {
            assert_invalid(v.verify_connect(token, NOW), token);
            assert_invalid(v.verify_subscribe(token, NOW), token);
        }
    }
    // The untouched token still verifies: the failures above are the mutations.
    assert!(hmac_verifier().verify_connect(&valid, NOW).is_ok());
}

#[test]
fn unusable_keys_fail_at_start_naming_the_key_kind() {
    let new = |key: TokenKey| {
        TokenVerifier::new(&TokenConfig {
            key,
            previous_key: None,
            audience: None,
            issuer: None,
        })
    };
    let bad_key = |result: Result<TokenVerifier, AuthError>, kind: &str| match result {
        Err(AuthError::BadKey(why)) => assert!(why.contains(kind), "{why}"),
        other => panic!("expected BadKey mentioning {kind}, got {other:?}"),
    };
    bad_key(new(TokenKey::RsaPem(b"garbage".to_vec())), "RSA");
    bad_key(new(TokenKey::RsaPem(Vec::new())), "RSA");
    bad_key(new(TokenKey::RsaPem(EC_PUBLIC.to_vec())), "RSA");
    bad_key(new(TokenKey::RsaPem(RSA_PRIVATE.to_vec())), "RSA");
    let truncated = String::from_utf8(RSA_PUBLIC.to_vec())
        .unwrap()
        .replacen("MII", "MIJ", 1);
    bad_key(new(TokenKey::RsaPem(truncated.into_bytes())), "RSA");
    bad_key(new(TokenKey::EcdsaPem(b"garbage".to_vec())), "ECDSA");
    bad_key(new(TokenKey::EcdsaPem(RSA_PUBLIC.to_vec())), "ECDSA");
    bad_key(new(TokenKey::EcdsaPem(EC_PRIVATE.to_vec())), "ECDSA");
    bad_key(new(TokenKey::Hmac(Vec::new())), "HMAC");
}

#[test]
fn signer_refuses_keys_it_cannot_sign_with() {
    for pem in [&b"garbage"[..], RSA_PUBLIC, EC_PUBLIC, b""] {
        assert!(matches!(
            TokenSigner::from_pem(pem),
            Err(AuthError::BadKey(_))
        ));
    }
    let sec1 = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    match TokenSigner::from_pem(sec1) {
        Err(AuthError::BadKey(why)) => assert!(why.contains("PKCS#8"), "{why}"),
        other => panic!("expected BadKey, got {other:?}"),
    }
}

#[test]
fn hmac_alg_names() {
    assert_eq!(HmacAlg::default(), HmacAlg::HS256);
    assert_eq!("hs384".parse::<HmacAlg>(), Ok(HmacAlg::HS384));
    assert_eq!("HS512".parse::<HmacAlg>(), Ok(HmacAlg::HS512));
    assert!("RS256".parse::<HmacAlg>().is_err());
    assert_eq!(HmacAlg::HS256.to_string(), "HS256");
}

#[test]
fn debug_output_never_shows_keys() {
    let signer = format!("{:?}", TokenSigner::hmac(SECRET, HmacAlg::HS256));
    let verifier = format!("{:?}", hmac_verifier());
    for out in [signer, verifier] {
        assert!(!out.contains("test-only-hmac-secret"), "{out}");
        assert!(!out.contains(&format!("{:?}", SECRET)), "{out}");
    }
}

#[test]
fn a_broken_expired_subscription_token_is_invalid_not_expired() {
    // Refreshing cannot fix a token without a channel, so the client must not be told to.
    let token = hs256().sign(&json!({"sub": "1", "exp": 1})).unwrap();
    assert_invalid(
        hmac_verifier().verify_subscribe(&token, NOW),
        "no channel + expired",
    );
    let v = TokenVerifier::new(&TokenConfig {
        key: TokenKey::Hmac(SECRET.to_vec()),
        previous_key: None,
        audience: Some("herald".into()),
        issuer: None,
    })
    .unwrap();
    let token = hs256().sign(&json!({"aud": "other", "exp": 1})).unwrap();
    assert_invalid(v.verify_connect(&token, NOW), "wrong aud + expired");
}

fn rotating_verifier(key: TokenKey, previous: TokenKey) -> TokenVerifier {
    TokenVerifier::new(&TokenConfig {
        key,
        previous_key: Some(previous),
        audience: None,
        issuer: None,
    })
    .unwrap()
}

#[test]
fn while_hmac_secrets_rotate_tokens_of_either_secret_verify() {
    const NEW: &[u8] = b"test-only-new-hmac-secret";
    let v = rotating_verifier(
        TokenKey::Hmac(NEW.to_vec()),
        TokenKey::Hmac(SECRET.to_vec()),
    );
    let by_new = sign_raw(&TokenSigner::hmac(NEW, HmacAlg::HS256), PAYLOAD);
    let by_previous = sign_raw(&TokenSigner::hmac(SECRET, HmacAlg::HS512), PAYLOAD);
    assert_payload_claims(&v.verify_connect(&by_new, NOW).unwrap());
    assert_payload_claims(&v.verify_connect(&by_previous, NOW).unwrap());
    // Without the previous secret, its tokens fail: the rotation is what lets them through.
    let why = assert_invalid(
        verifier(TokenKey::Hmac(NEW.to_vec())).verify_connect(&by_previous, NOW),
        "previous secret alone",
    );
    assert_eq!(why, "bad signature");

    // A third secret verifies with neither; the reason is the current key's.
    let by_other = sign_raw(
        &TokenSigner::hmac(b"some-other-secret", HmacAlg::HS256),
        PAYLOAD,
    );
    let why = assert_invalid(v.verify_connect(&by_other, NOW), "third secret");
    assert_eq!(why, "bad signature");
    // Time checks apply to tokens of the previous secret too.
    assert_eq!(
        v.verify_connect(&by_previous, NOW + 100),
        Err(AuthError::Expired)
    );
    // Subscription tokens rotate the same way.
    let sub = TokenSigner::hmac(SECRET, HmacAlg::HS256)
        .sign(&NewSubscribeToken {
            sub: "42".into(),
            channel: "news".into(),
            exp: None,
            info: None,
        })
        .unwrap();
    assert_eq!(v.verify_subscribe(&sub, NOW).unwrap().channel, "news");
}

#[test]
fn each_key_of_a_rotation_keeps_its_algorithms() {
    // An RSA key with an HMAC secret as the previous key: an HS256 token made with the RSA
    // public key's PEM as its secret still fails (neither key takes it).
    let v = rotating_verifier(
        TokenKey::RsaPem(RSA_PUBLIC.to_vec()),
        TokenKey::Hmac(SECRET.to_vec()),
    );
    let confused = sign_raw(&TokenSigner::hmac(RSA_PUBLIC, HmacAlg::HS256), PAYLOAD);
    assert_invalid(
        v.verify_connect(&confused, NOW),
        "public key as HMAC secret",
    );
    let rs256 = sign_raw(&TokenSigner::from_pem(RSA_PRIVATE).unwrap(), PAYLOAD);
    assert_payload_claims(&v.verify_connect(&rs256, NOW).unwrap());
    assert_payload_claims(&v.verify_connect(&sign_raw(&hs256(), PAYLOAD), NOW).unwrap());
}

#[test]
fn a_jwks_takes_no_previous_key() {
    use crate::config::JwksConfig;
    let jwks = || TokenKey::Jwks(JwksConfig::new("https://auth.example/jwks.json"));
    for (key, previous) in [
        (jwks(), TokenKey::Hmac(SECRET.to_vec())),
        (TokenKey::Hmac(SECRET.to_vec()), jwks()),
    ] {
        let result = TokenVerifier::new(&TokenConfig {
            key,
            previous_key: Some(previous),
            audience: None,
            issuer: None,
        });
        assert!(matches!(result, Err(AuthError::BadKey(_))), "{result:?}");
    }
}

#[test]
fn a_bad_previous_key_fails_at_start() {
    let result = TokenVerifier::new(&TokenConfig {
        key: TokenKey::Hmac(SECRET.to_vec()),
        previous_key: Some(TokenKey::Hmac(Vec::new())),
        audience: None,
        issuer: None,
    });
    assert!(matches!(result, Err(AuthError::BadKey(_))), "{result:?}");
}
