//! Tokens verified with the keys of a JWKS served by a real HTTP endpoint on a free port
//! (`testing::jwks::JwksServer`): fetching, the cache, refreshing on an unknown `kid` within the
//! rate limit, an endpoint that goes down or hangs, and the algorithm pinning of JWKS keys.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_engine::auth::{
    AuthError, NewConnectToken, NewSubscribeToken, TokenSigner, TokenVerifier,
};
use herald_engine::config::{JwksConfig, TokenConfig, TokenKey};
use herald_engine::testing::jwks::JwksServer;
use serde_json::{Value, json};

// TEST-ONLY keys of the auth unit tests (src/auth/testdata/README.md).
const RSA_PRIVATE: &[u8] = include_bytes!("../src/auth/testdata/test_only_rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../src/auth/testdata/test_only_rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../src/auth/testdata/test_only_ec_p256_private.pem");

// The public halves of those keys as JWK members (base64url, no padding), derived once with
// openssl, independently of the code under test:
//   n: openssl rsa -pubin -in test_only_rsa_public.pem -modulus -noout
//      (hex after "Modulus=") | xxd -r -p | base64 -w0 | tr '+/' '-_' | tr -d '='
//   e: 65537 (openssl rsa -pubin -text: "Exponent: 65537") = 0x010001 = "AQAB"
//   x, y: openssl ec -pubin -in test_only_ec_p256_public.pem -text -noout: the "pub:" bytes
//      are 04 || x || y (32 bytes each), each encoded as above.
const RSA_N: &str = "tsm9GnxhXhSGL5h2XBCh5cXTKvJTpytduBH9YUNHfNmZsab06K8sNTaBNaU3blIt3yMhFFtaGGIuhauKLrkMobwgBS0jnvXE16yWVxpnE6yyJE6YshnJpWUuoHslWSf-7PKl0lULatqwDYcMYCyl362QdYF-0malMVg8euQEqLilLK8Zyg4lO8kwJLZeqZQjJijfpfXK3kSWBBnHN16N7uS_BYCqn2IdEoz-Ak8fUorC76oby57CvdAVi559bLViJSoabTeBffeffPDg5DVq0xsrPt1sV8UN-woBXTCCVAmzabirkDXAC8olGYaFubkzfhibmKbJcnvCiSnu-dYQ3Q";
const RSA_E: &str = "AQAB";
const EC_X: &str = "L1d7oEKilrSrnUVQu2bSVViMJNIts-X3TbwMcgKn-Y0";
const EC_Y: &str = "dWj9I138OJHg-9uxLe6H3bYbfkVcxVq7n0ilJoIB_rQ";

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": RSA_N, "e": RSA_E})
}

fn ec_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "x": EC_X, "y": EC_Y})
}

fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A verifier of the server's JWKS; `min_refresh` is the rate limit of unknown-kid fetches.
fn verifier(server: &JwksServer, min_refresh: Duration) -> TokenVerifier {
    TokenVerifier::new(&TokenConfig {
        key: TokenKey::Jwks(JwksConfig {
            min_refresh_interval: min_refresh,
            timeout: Duration::from_secs(2),
            ..JwksConfig::new(server.url())
        }),
        previous_key: None,
        audience: None,
        issuer: None,
    })
    .expect("verifier")
}

fn rsa_signer(kid: &str) -> TokenSigner {
    TokenSigner::from_pem(RSA_PRIVATE).unwrap().with_kid(kid)
}

fn ec_signer(kid: &str) -> TokenSigner {
    TokenSigner::from_pem(EC_PRIVATE).unwrap().with_kid(kid)
}

fn token(signer: &TokenSigner, user: &str, exp: u64) -> String {
    signer
        .sign(&NewConnectToken {
            sub: user.into(),
            exp: Some(exp),
            ..Default::default()
        })
        .unwrap()
}

fn assert_unknown_key<T: std::fmt::Debug>(result: Result<T, AuthError>) {
    assert!(
        matches!(result, Err(AuthError::UnknownKey(_))),
        "expected UnknownKey, got {result:?}"
    );
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, AuthError>, needle: &str) {
    match result {
        Err(AuthError::Invalid(why)) => assert!(why.contains(needle), "{why:?} lacks {needle:?}"),
        other => panic!("expected Invalid({needle}), got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_signed_with_served_rsa_and_ec_keys_verify() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1"), ec_jwk("ec-1")])).await;
    let v = verifier(&server, JwksConfig::MIN_REFRESH_INTERVAL);
    let exp = now() + 3600;
    let rsa_token = token(&rsa_signer("rsa-1"), "alice", exp);

    // Nothing is fetched until asked: the cache-only check does not wait.
    assert_unknown_key(v.verify_connect(&rsa_token, now()));
    assert_eq!(server.requests(), 0);

    assert_eq!(v.refresh_keys().await, Some(JwksConfig::REFRESH_INTERVAL));
    assert_eq!(server.requests(), 1);
    assert_eq!(v.verify_connect(&rsa_token, now()).unwrap().sub, "alice");
    let ec_token = token(&ec_signer("ec-1"), "bob", exp);
    let claims = v.verify_connect(&ec_token, now()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.exp), ("bob", Some(exp)));
    let sub_token = rsa_signer("rsa-1")
        .sign(&NewSubscribeToken {
            sub: "alice".into(),
            channel: "news".into(),
            exp: Some(exp),
            info: None,
        })
        .unwrap();
    assert_eq!(
        v.verify_subscribe(&sub_token, now()).unwrap().channel,
        "news"
    );

    // A key under another kid is not this key: the kid picks the key.
    let misnamed = token(&rsa_signer("ec-1"), "alice", exp);
    assert_invalid(v.verify_connect(&misnamed, now()), "algorithm not allowed");
    // Cached keys are used as they are: no more fetches.
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_verifier_without_keys_fetches_them_for_the_first_token() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    let v = verifier(&server, JwksConfig::MIN_REFRESH_INTERVAL);
    let token = token(&rsa_signer("rsa-1"), "alice", now() + 60);
    let claims = v.verify_connect_fetching(&token, now()).await.unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_rotated_jwks() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    // No rate limit here: this test is about picking up the new key.
    let v = verifier(&server, Duration::ZERO);
    v.refresh_keys().await;
    let new_key_token = token(&ec_signer("ec-2"), "carol", now() + 60);
    assert_unknown_key(v.verify_connect(&new_key_token, now()));

    // The issuer publishes its new key beside the old one.
    server.serve(jwks(&[rsa_jwk("rsa-1"), ec_jwk("ec-2")]));
    let claims = v
        .verify_connect_fetching(&new_key_token, now())
        .await
        .unwrap();
    assert_eq!(claims.sub, "carol");
    assert_eq!(server.requests(), 2);
    // From the cache from now on.
    assert_eq!(
        v.verify_connect(&new_key_token, now()).unwrap().sub,
        "carol"
    );
    let old_key_token = token(&rsa_signer("rsa-1"), "alice", now() + 60);
    assert_eq!(
        v.verify_connect(&old_key_token, now()).unwrap().sub,
        "alice"
    );

    // The old key is withdrawn: the next scheduled refresh drops it.
    server.serve(jwks(&[ec_jwk("ec-2")]));
    v.refresh_keys().await;
    assert_unknown_key(v.verify_connect(&old_key_token, now()));
    assert_eq!(
        v.verify_connect(&new_key_token, now()).unwrap().sub,
        "carol"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_once_per_rate_limit_window() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    let v = verifier(&server, Duration::from_secs(60));
    let exp = now() + 60;
    // Made up, as an attacker would: the kid is looked up before any signature is checked.
    let bogus: Vec<String> = (0..100)
        .map(|i| {
            let header = format!(r#"{{"alg":"RS256","kid":"bogus-{i}"}}"#);
            format!(
                "{}.{}.{}",
                base64url(header.as_bytes()),
                base64url(br#"{"sub":"mallory"}"#),
                base64url(b"not a signature")
            )
        })
        .collect();

    // All at once: they share one fetch.
    let results = futures_util::future::join_all(
        bogus[..50]
            .iter()
            .map(|t| v.verify_connect_fetching(t, now())),
    )
    .await;
    for result in results {
        assert_unknown_key(result);
    }
    assert_eq!(server.requests(), 1);
    // One after another, within the window: none fetches.
    for t in &bogus[50..] {
        assert_unknown_key(v.verify_connect_fetching(t, now()).await);
    }
    assert_eq!(server.requests(), 1);
    // The one fetch loaded the real key, which verifies without a fetch.
    let good = token(&rsa_signer("rsa-1"), "alice", exp);
    assert_eq!(
        v.verify_connect_fetching(&good, now()).await.unwrap().sub,
        "alice"
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn the_cached_keys_outlive_the_endpoint() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    let v = verifier(&server, Duration::ZERO);
    assert_eq!(v.refresh_keys().await, Some(JwksConfig::REFRESH_INTERVAL));
    let good = token(&rsa_signer("rsa-1"), "alice", now() + 60);

    server.go_down();
    // A failed refresh keeps the keys, and the next one is due sooner (after the rate limit,
    // but never in less than a second).
    assert_eq!(v.refresh_keys().await, Some(Duration::from_secs(1)));
    assert_eq!(server.requests(), 2);
    assert_eq!(
        v.verify_connect_fetching(&good, now()).await.unwrap().sub,
        "alice"
    );
    // An unknown kid fetches (and fails), and stays unknown.
    let unknown = token(&ec_signer("ec-9"), "bob", now() + 60);
    assert_unknown_key(v.verify_connect_fetching(&unknown, now()).await);
    assert_eq!(server.requests(), 3);
    assert_eq!(v.verify_connect(&good, now()).unwrap().sub, "alice");

    // Not a JWKS, or no usable key in it: the same.
    server.serve(json!({"not": "a jwks"}));
    v.refresh_keys().await;
    server.serve(jwks(&[json!({"kty": "oct", "kid": "k", "k": "c2VjcmV0"})]));
    v.refresh_keys().await;
    assert_eq!(server.requests(), 5);
    assert_eq!(v.verify_connect(&good, now()).unwrap().sub, "alice");
}

#[tokio::test]
async fn a_hanging_endpoint_costs_the_timeout_and_blocks_no_cached_key() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    let v = TokenVerifier::new(&TokenConfig {
        key: TokenKey::Jwks(JwksConfig {
            min_refresh_interval: Duration::ZERO,
            timeout: Duration::from_millis(300),
            ..JwksConfig::new(server.url())
        }),
        previous_key: None,
        audience: None,
        issuer: None,
    })
    .unwrap();
    v.refresh_keys().await;
    server.hang();
    let good = token(&rsa_signer("rsa-1"), "alice", now() + 60);
    let unknown = token(&ec_signer("ec-9"), "bob", now() + 60);

    let started = Instant::now();
    let waiting = {
        let v = v.clone();
        tokio::spawn(async move { v.verify_connect_fetching(&unknown, now()).await })
    };
    server.wait_for_requests(2).await;
    // While that fetch hangs, a token with a cached key is checked at once.
    assert_eq!(
        v.verify_connect_fetching(&good, now()).await.unwrap().sub,
        "alice"
    );
    assert_unknown_key(waiting.await.unwrap());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "the fetch took {took:?}");

    // The hung fetch is over (not merely given up on): once the endpoint answers again, the
    // next unknown kid fetches and finds its key.
    server.serve(jwks(&[rsa_jwk("rsa-1"), ec_jwk("ec-9")]));
    let unknown = token(&ec_signer("ec-9"), "bob", now() + 60);
    assert_eq!(
        v.verify_connect_fetching(&unknown, now())
            .await
            .unwrap()
            .sub,
        "bob"
    );
}

#[tokio::test]
async fn a_node_that_starts_while_the_endpoint_is_down_gets_the_keys_later() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    server.go_down();
    let v = verifier(&server, Duration::from_secs(2));
    assert_eq!(v.refresh_keys().await, Some(Duration::from_secs(2)));
    let v = verifier(&server, Duration::ZERO);
    assert_eq!(v.refresh_keys().await, Some(Duration::from_secs(1)));
    let good = token(&rsa_signer("rsa-1"), "alice", now() + 60);
    assert_unknown_key(v.verify_connect_fetching(&good, now()).await);

    server.serve(jwks(&[rsa_jwk("rsa-1")]));
    assert_eq!(
        v.verify_connect_fetching(&good, now()).await.unwrap().sub,
        "alice"
    );
}

#[tokio::test]
async fn hmac_tokens_never_verify_against_a_jwks() {
    let oct_secret = b"served-as-a-symmetric-jwk";
    let oct = json!({"kty": "oct", "kid": "oct-1", "k": base64url(oct_secret)});
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1"), oct])).await;
    let v = verifier(&server, Duration::ZERO);
    v.refresh_keys().await;
    let exp = now() + 60;
    let hs256 = |secret: &[u8], kid: Option<&str>| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        jsonwebtoken::encode(&header, &json!({"sub": "mallory", "exp": exp}), &key).unwrap()
    };

    // Algorithm confusion: the public key's bytes (its PEM, its modulus) as an HMAC secret,
    // under the RSA key's kid.
    for secret in [RSA_PUBLIC, RSA_N.as_bytes()] {
        assert_invalid(
            v.verify_connect_fetching(&hs256(secret, Some("rsa-1")), now())
                .await,
            "algorithm not allowed",
        );
    }
    // A symmetric key served in the JWKS is never taken.
    assert_unknown_key(
        v.verify_connect_fetching(&hs256(oct_secret, Some("oct-1")), now())
            .await,
    );
    // `alg: none`.
    let none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","kid":"rsa-1"}"#),
        base64url(br#"{"sub":"mallory"}"#)
    );
    assert_invalid(
        v.verify_connect_fetching(&none, now()).await,
        "\"none\" not allowed",
    );
}

#[tokio::test]
async fn an_expired_token_is_still_expired() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    let v = verifier(&server, Duration::ZERO);
    v.refresh_keys().await;
    let expired = token(&rsa_signer("rsa-1"), "alice", now() - 1);
    assert_eq!(
        v.verify_connect_fetching(&expired, now()).await,
        Err(AuthError::Expired)
    );
    // Unless it is not valid at all: a bad signature is invalid, expired or not.
    let forged = format!("{}x", &expired[..expired.len() - 1]);
    assert!(matches!(
        v.verify_connect(&forged, now()),
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_token_without_kid_needs_a_one_key_jwks() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rsa-1")])).await;
    let v = verifier(&server, Duration::ZERO);
    v.refresh_keys().await;
    let signer = TokenSigner::from_pem(RSA_PRIVATE).unwrap();
    let no_kid = token(&signer, "alice", now() + 60);
    assert_eq!(v.verify_connect(&no_kid, now()).unwrap().sub, "alice");

    server.serve(jwks(&[rsa_jwk("rsa-1"), ec_jwk("ec-1")]));
    v.refresh_keys().await;
    assert_invalid(v.verify_connect_fetching(&no_kid, now()).await, "no kid");
}

#[tokio::test]
async fn the_alg_of_a_jwk_pins_its_key_to_that_algorithm() {
    let server = JwksServer::start(jwks(&[rsa_jwk("rs256-only")])).await;
    let v = verifier(&server, Duration::ZERO);
    v.refresh_keys().await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
    header.kid = Some("rs256-only".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ps256 = jsonwebtoken::encode(&header, &json!({"sub": "alice"}), &key).unwrap();
    assert_invalid(v.verify_connect(&ps256, now()), "algorithm not allowed");

    // The same key without an `alg` takes every RSA algorithm.
    let mut jwk = rsa_jwk("rs256-only");
    jwk.as_object_mut().unwrap().remove("alg");
    server.serve(jwks(&[jwk]));
    v.refresh_keys().await;
    assert_eq!(v.verify_connect(&ps256, now()).unwrap().sub, "alice");
}

#[test]
fn bad_jwks_urls_are_refused() {
    for url in ["ftp://keys.example/jwks.json", "not a url", "https://"] {
        let result = TokenVerifier::new(&TokenConfig {
            key: TokenKey::Jwks(JwksConfig::new(url)),
            previous_key: None,
            audience: None,
            issuer: None,
        });
        assert!(
            matches!(result, Err(AuthError::BadKey(_))),
            "{url}: {result:?}"
        );
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
