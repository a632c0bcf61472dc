//! Test fixtures shared by the integration tests (and handy for embedding): tokens signed with
//! the test key, a raw HTTP client for the server API, a WebSocket client that speaks the
//! client protocol in JSON or Protobuf, a client of the HTTP-streaming and SSE fallbacks, the
//! runner of the end-to-end tests' client programs and a round-robin TCP front door. Behind the
//! `testing` feature.

mod api;
pub mod browser;
mod client;
pub mod front_door;
pub mod openapi;
pub mod process;
pub mod program;
pub mod raw_ws;
pub mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use herald_engine::auth::{HmacAlg, NewConnectToken, NewSubscribeToken, TokenSigner};

pub use api::Api;
pub use client::{Closed, WsClient, is_ping};

/// The HMAC secret of [`crate::config::Config::for_test`].
pub const TEST_SECRET: &[u8] = b"test-secret-0123456789abcdef0123456789";
/// The API key of [`crate::config::Config::for_test`].
pub const TEST_API_KEY: &str = "test-api-key";

/// Commands the way a client sends them in one frame: JSON newline-joined, Protobuf
/// varint-delimited back to back.
pub fn encode_commands(
    format: herald_protocol::Format,
    commands: &[herald_protocol::proto::Command],
) -> Vec<u8> {
    use prost::Message as _;
    match format {
        herald_protocol::Format::Json => commands
            .iter()
            .map(|c| serde_json::to_string(c).expect("encode command"))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
        herald_protocol::Format::Protobuf => {
            let mut buf = Vec::new();
            for c in commands {
                c.encode_length_delimited(&mut buf).expect("encode command");
            }
            buf
        }
    }
}

/// The value of a Prometheus metric line `name{labels} value` in `text` (labels matched as a
/// substring).
pub fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `check` holds, polling; fails the test after 15 s with `what`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Writes `toml` to a fresh temporary configuration file (the caller removes it).
pub fn config_file(toml: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "herald-test-{}-{}.toml",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, toml).expect("write config file");
    path
}

/// A node on the configuration `toml`, loaded from a file as an operator's would be (no
/// environment variables, no overrides).
pub fn node_from_toml(toml: &str) -> crate::RunningNode {
    let path = config_file(toml);
    let config = crate::config::Config::load(
        Some(&path),
        Some(HashMap::new()),
        &crate::config::Overrides::default(),
    );
    let _ = std::fs::remove_file(&path);
    let config = config.unwrap_or_else(|e| {
        panic!(
            "load test config: {e}
{toml}"
        )
    });
    crate::RunningNode::start(config).expect("start node")
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn signer() -> TokenSigner {
    TokenSigner::hmac(TEST_SECRET, HmacAlg::HS256)
}

/// A connection token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    sign_connect(NewConnectToken {
        sub: user.into(),
        exp: Some(unix_now() + 3600),
        ..Default::default()
    })
}

pub fn sign_connect(claims: NewConnectToken) -> String {
    signer().sign(&claims).expect("sign test token")
}

/// A subscription token for `user` and `channel`, valid for an hour.
pub fn sub_token(user: &str, channel: &str) -> String {
    signer()
        .sign(&NewSubscribeToken {
            sub: user.into(),
            channel: channel.into(),
            exp: Some(unix_now() + 3600),
            info: None,
        })
        .expect("sign test token")
}
