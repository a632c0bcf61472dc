//! A subscriber that stops reading costs the node nothing that lasts: its connection goes once a
//! write has waited `client.write_timeout`, and the channel's log does not keep what it has not
//! read. Measured on a node in a process of its own, by its resident memory while 100,000
//! publications go to the stalled client's channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use herald::config::WebSocketEngine;
use herald::testing::process::HeraldProcess;
use herald::testing::{Api, TEST_API_KEY, TEST_SECRET, WsClient, eventually, token};
use serde_json::json;

const PUBLICATIONS: u64 = 100_000;
const PER_BATCH: u64 = 500;
/// Where the resident memory is first read: past what the socket buffers of the stalled client
/// absorb and past its queue bound, so it has been cut off by then.
const WARM: u64 = 30_000;

/// A node in a process of its own: the engine under test, and `client` settings.
async fn start_node(client: &str) -> HeraldProcess {
    let config = config_file(client);
    let node = HeraldProcess::start(env!("CARGO_BIN_EXE_herald"), &config).await;
    let _ = std::fs::remove_file(&config);
    node
}

fn config_file(client: &str) -> std::path::PathBuf {
    let engine = WebSocketEngine::under_test().name();
    let secret = std::str::from_utf8(TEST_SECRET).expect("utf-8 secret");
    let toml = format!(
        r#"
[server]
websocket_engine = "{engine}"
[auth]
hmac_secret = "{secret}"
[api]
key = "{TEST_API_KEY}"
[[channels.namespaces]]
name = "chat"
allow_subscribe_for_client = true
[client]
max_queue_size = 4194304
{client}
"#
    );
    let path = std::env::temp_dir().join(format!(
        "herald-stalled-{}-{}.toml",
        std::process::id(),
        client.len()
    ));
    std::fs::write(&path, toml).expect("write config");
    path
}

/// What 100,000 publications of ~600 bytes to a channel with one stalled and one reading
/// subscriber did: the node's RSS growth after the stalled one was cut off, in KiB. The two
/// clients are returned still open (the stalled one never read a thing).
async fn flood(node: &HeraldProcess) -> (i64, WsClient, WsClient) {
    let ws_url = format!("ws://{}/connection/websocket", node.addr);
    let mut stalled = WsClient::connect(&ws_url).await;
    stalled.handshake(&token("stalled")).await;
    stalled.subscribe(2, "chat:flood").await;
    let mut reader = WsClient::connect(&ws_url).await;
    reader.handshake(&token("reader")).await;
    reader.subscribe(2, "chat:flood").await;
    let read = Arc::new(AtomicU64::new(0));
    let progress = read.clone();
    let reading = tokio::spawn(async move {
        for n in 0..PUBLICATIONS {
            let (_, publication) = reader.publication().await;
            let data: serde_json::Value = serde_json::from_slice(&publication.data).unwrap();
            assert_eq!(data["n"], n, "the reading subscriber lost a publication");
            progress.store(n + 1, Ordering::Relaxed);
        }
        reader
    });
    let api = Api::new(node.addr, TEST_API_KEY);
    let pad = "p".repeat(560);
    let mut warm_kib = 0;
    for first in (0..PUBLICATIONS).step_by(PER_BATCH as usize) {
        let commands: Vec<_> = (first..first + PER_BATCH)
            .map(|n| json!({"publish":{"channel":"chat:flood","data":{"n":n,"pad":pad}}}))
            .collect();
        api.call("batch", json!({ "commands": commands })).await;
        // Publish no further ahead of the reading subscriber than its queue bound allows.
        eventually("the reading subscriber keeps up", || {
            std::future::ready(read.load(Ordering::Relaxed) + 4 * PER_BATCH > first)
        })
        .await;
        if first + PER_BATCH == WARM {
            eventually("the reader has read everything so far", || {
                std::future::ready(read.load(Ordering::Relaxed) >= WARM)
            })
            .await;
            warm_kib = node.rss_kib();
        }
    }
    let reader = reading.await.expect("reading subscriber");
    let end_kib = node.rss_kib();
    (end_kib as i64 - warm_kib as i64, stalled, reader)
}

async fn clients(node: &HeraldProcess) -> u64 {
    let info = Api::new(node.addr, TEST_API_KEY)
        .call("info", json!({}))
        .await;
    info["result"]["nodes"][0]["num_clients"]
        .as_u64()
        .expect("num_clients")
}

/// Within the default write timeout (1 s) the stalled client is gone; the node's memory stays
/// where it was while the channel carries 70,000 more publications (about 40 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_gone_and_the_node_stays_flat() {
    let node = start_node("").await;
    let (growth, _stalled, _reader) = flood(&node).await;
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB while a stalled client's channel carried 70,000 publications"
    );
    // Only the reading subscriber is left, though neither client has gone.
    eventually("the stalled client is gone", || async {
        clients(&node).await == 1
    })
    .await;
}

/// With a write timeout far away, the stalled client's connection stays (its write waits), but
/// the queue bound cut it off as slow, and that dropped its readers of the channel's log at
/// once: the log does not keep what it has not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_as_slow_pins_no_channel_memory_while_its_write_waits() {
    let node = start_node("write_timeout = \"60s\"").await;
    let (growth, _stalled, _reader) = flood(&node).await;
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB while a stalled client's channel carried 70,000 publications"
    );
}
