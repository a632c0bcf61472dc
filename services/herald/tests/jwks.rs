//! A node whose token keys come from a JWKS (`auth.jwks_url`), served by a real HTTP endpoint on
//! a free port, with real WebSocket clients: RSA and EC tokens picked by `kid`, a key published
//! after the start, HMAC tokens refused, and a node that starts while the endpoint is down.

use std::time::Duration;

use herald::RunningNode;
use herald::config::Config;
use herald::testing::{Api, TEST_API_KEY, TEST_SECRET, WsClient, unix_now};
use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};
use herald_engine::config::{JwksConfig, TokenKey};
use herald_engine::testing::jwks::JwksServer;
use serde_json::{Value, json};

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("fixtures/ecdsa_private.pem");

// The public halves of the fixture keys as JWK members, derived once with openssl:
//   n: openssl rsa -pubin -in fixtures/rsa_public.pem -modulus -noout
//      (hex after "Modulus=") | xxd -r -p | base64 -w0 | tr '+/' '-_' | tr -d '='
//   e: 65537 ("Exponent: 65537" in openssl rsa -pubin -text) = "AQAB"
//   x, y: the "pub:" bytes of openssl ec -pubin -in fixtures/ecdsa_public.pem -text -noout
//      are 04 || x || y, 32 bytes each, each encoded as above.
const RSA_N: &str = "0XT_vSb9nDU7Whnwit6mM7Qo8Hf-B2hiYPdhvYWqCzXlor8-9xW8_FvUizsaGBwt5rPWnDQxElTU4FVdn3-0P211KT12zb-QH-g6naBKp-11w_LELq_7tqsiiP29Cbur7ReOd4PWnmIq2SJ8H3Y3jcYwl6UaYBBYpnr8-jKjjEzVif8W_jiROEAhZBj2GiLRWpYrogTHAne4Znu4AWd5xOkRvH82EUm6OI0woZNqb-vWqLFvlqu2cqX-iQAmAhzZPoXUvuo-brCN7VN2dYdP65vQn8kHgvokIV9nFE5sEau-NKQmHSOYBHUJrAimlPdgrtbivhw1srszH0ENU2K09w";
const EC_X: &str = "OL77_-c0FtVRyM6Ty7I166a5VdC2Fyj6N2j8SI4vWn0";
const EC_Y: &str = "H2k0F9PNQddBXF-vjIWJ8NkciP7MDghW97p1dY2CBHc";

fn rsa_jwk() -> Value {
    json!({"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": RSA_N, "e": "AQAB"})
}

fn ec_jwk() -> Value {
    json!({"kty": "EC", "kid": "ec-2", "use": "sig", "crv": "P-256", "x": EC_X, "y": EC_Y})
}

/// A node verifying tokens with the JWKS at `url`. `min_refresh`: the rate limit of fetches
/// for unknown `kid`s (the default is 10 s).
fn node(url: &str, min_refresh: Duration) -> RunningNode {
    let mut config = Config::for_test();
    config.token.key = TokenKey::Jwks(JwksConfig {
        min_refresh_interval: min_refresh,
        ..JwksConfig::new(url)
    });
    RunningNode::start(config).expect("start node")
}

fn token(signer: TokenSigner, user: &str, exp: u64) -> String {
    signer
        .sign(&NewConnectToken {
            sub: user.into(),
            exp: Some(exp),
            ..Default::default()
        })
        .unwrap()
}

fn rsa_token(user: &str) -> String {
    let signer = TokenSigner::from_pem(RSA_PRIVATE)
        .unwrap()
        .with_kid("rsa-1");
    token(signer, user, unix_now() + 3600)
}

fn ec_token(user: &str) -> String {
    let signer = TokenSigner::from_pem(EC_PRIVATE).unwrap().with_kid("ec-2");
    token(signer, user, unix_now() + 3600)
}

/// Sends a connect with `token` and returns the close code the node ends the connection with.
async fn refused(node: &RunningNode, token: &str) -> u16 {
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id": 1, "connect": {"token": token}})])
        .await;
    c.closed().await.code
}

#[tokio::test]
async fn a_client_connects_with_a_token_whose_key_comes_from_the_jwks() {
    let jwks = JwksServer::start(json!({"keys": [rsa_jwk()]})).await;
    let node = node(jwks.url(), JwksConfig::MIN_REFRESH_INTERVAL);
    // The node fetches the keys as it starts.
    jwks.wait_for_requests(1).await;

    let mut alice = WsClient::connect(&node.ws_url()).await;
    let reply = alice.handshake(&rsa_token("alice")).await;
    assert!(reply.connect.expect("connect result").expires);
    // A working connection: subscribed, it gets what the API publishes.
    assert!(alice.subscribe(2, "chat:jwks").await.subscribe.is_some());
    let api = Api::new(node.addr, TEST_API_KEY);
    let published = api
        .call("publish", json!({"channel": "chat:jwks", "data": {"n": 1}}))
        .await;
    assert!(published.get("error").is_none(), "{published}");
    let (channel, publication) = alice.publication().await;
    assert_eq!(channel, "chat:jwks");
    assert_eq!(&publication.data[..], br#"{"n":1}"#);

    // HMAC tokens never verify against a JWKS: not with the secret a test node has otherwise,
    // nor with the RSA public key as the secret under its kid (algorithm confusion).
    let hs256 = token(
        TokenSigner::hmac(TEST_SECRET, HmacAlg::HS256),
        "mallory",
        unix_now() + 60,
    );
    assert_eq!(refused(&node, &hs256).await, 3500);
    let confused = token(
        TokenSigner::hmac(RSA_PUBLIC, HmacAlg::HS256).with_kid("rsa-1"),
        "mallory",
        unix_now() + 60,
    );
    assert_eq!(refused(&node, &confused).await, 3500);
    // A kid the JWKS does not hold: invalid. (The node fetched the JWKS as it started; it
    // fetches again for an unknown kid no sooner than 10 s later.)
    assert_eq!(refused(&node, &ec_token("mallory")).await, 3500);
    assert_eq!(jwks.requests(), 1);

    // An expired token of a JWKS key is expired (109: the SDK fetches a fresh one).
    let expired = token(
        TokenSigner::from_pem(RSA_PRIVATE)
            .unwrap()
            .with_kid("rsa-1"),
        "alice",
        unix_now() - 10,
    );
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id": 1, "connect": {"token": expired}})])
        .await;
    assert_eq!(c.reply(1).await.error.expect("error").code, 109);
}

#[tokio::test]
async fn a_key_published_after_the_start_is_fetched_by_the_connect_that_needs_it() {
    let jwks = JwksServer::start(json!({"keys": [rsa_jwk()]})).await;
    let node = node(jwks.url(), Duration::ZERO);
    // The node fetches the keys as it starts; a client connected with them.
    jwks.wait_for_requests(1).await;
    WsClient::connect(&node.ws_url())
        .await
        .handshake(&rsa_token("alice"))
        .await;
    let fetched = jwks.requests();
    assert_eq!(fetched, 1);

    // The issuer starts signing with a new key and publishes it.
    jwks.serve(json!({"keys": [rsa_jwk(), ec_jwk()]}));
    let mut bob = WsClient::connect(&node.ws_url()).await;
    bob.handshake(&ec_token("bob")).await;
    assert_eq!(jwks.requests(), fetched + 1);
    // Cached from now on.
    WsClient::connect(&node.ws_url())
        .await
        .handshake(&ec_token("carol"))
        .await;
    assert_eq!(jwks.requests(), fetched + 1);
}

#[tokio::test]
async fn a_node_started_while_the_jwks_endpoint_is_down_serves_once_it_is_back() {
    let jwks = JwksServer::start(json!({"keys": [rsa_jwk()]})).await;
    jwks.go_down();
    let node = node(jwks.url(), Duration::ZERO);
    // The node runs (its API answers), but has no key for the token yet.
    let api = Api::new(node.addr, TEST_API_KEY);
    let info = api.call("info", json!({})).await;
    assert!(info.get("error").is_none(), "{info}");
    assert_eq!(refused(&node, &rsa_token("alice")).await, 3500);

    jwks.serve(json!({"keys": [rsa_jwk()]}));
    WsClient::connect(&node.ws_url())
        .await
        .handshake(&rsa_token("alice"))
        .await;
}
