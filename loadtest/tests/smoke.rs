//! End to end: an in-process Herald node, a tiny fanout, every delivery counted.

use std::sync::Arc;

use clap::Parser;
use herald::RunningNode;
use herald::config::Config;
use herald_loadtest::cli::{Cli, run_scenario};
use herald_loadtest::progress::Live;

fn secret() -> String {
    String::from_utf8(herald::testing::TEST_SECRET.to_vec()).unwrap()
}

async fn fanout(protobuf: bool) {
    fanout_over(protobuf, "websocket").await;
}

async fn fanout_over(protobuf: bool, transport: &str) {
    fanout_of("herald", protobuf, transport).await;
}

async fn fanout_of(target: &str, protobuf: bool, transport: &str) {
    let node = RunningNode::start(Config::for_test()).expect("start node");
    let url = node.http_url();
    let secret = secret();
    let mut argv = vec![
        "herald-loadtest",
        "fanout",
        "--url",
        &url,
        "--api-key",
        herald::testing::TEST_API_KEY,
        "--secret",
        &secret,
        "--channel",
        "chat:fanout",
        "--subscribers",
        "10",
        "--publishers",
        "2",
        "--rates",
        "200",
        "--step-secs",
        "1",
        "--settle-secs",
        "5",
        "--quiet",
        "--transport",
        transport,
        "--target",
        target,
    ];
    if protobuf {
        argv.push("--protobuf");
    }
    let cli = Cli::try_parse_from(argv).expect("parse");
    let live = Arc::new(Live::default());
    let report = run_scenario(&cli.scenario, &live).await.expect("run");
    assert_eq!(report.steps.len(), 1, "{report:?}");
    let s = &report.steps[0];
    assert!(s.published >= 150 && s.published <= 230, "{s:?}");
    assert_eq!(s.publish_errors, 0, "{s:?}");
    assert_eq!(s.expected, s.published * 10, "{s:?}");
    assert_eq!(s.delivered, s.expected, "{s:?}");
    assert_eq!((s.lost, s.duplicates, s.reordered), (0, 0, 0), "{s:?}");
    assert_eq!(s.latency.count, s.delivered, "{s:?}");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fanout_json_counts_every_delivery() {
    fanout(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fanout_protobuf_counts_every_delivery() {
    fanout(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fanout_over_http_stream_counts_every_delivery() {
    fanout_over(false, "http_stream").await;
    fanout_over(true, "http_stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fanout_over_sse_counts_every_delivery() {
    fanout_over(false, "sse").await;
}

/// Socket.IO clients of the node (`/socket.io/`, WebSocket): token in the CONNECT packet,
/// `subscribe` events, `publication` events; publishing through Herald's API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fanout_of_socketio_clients_counts_every_delivery() {
    fanout_of("herald-socketio", false, "websocket").await;
}

/// The connect storm and idle accept Socket.IO clients of the node; a bad token is counted as
/// a failure with Herald's CONNECT_ERROR reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_clients_storm_idle_and_bad_token() {
    let node = RunningNode::start(Config::for_test()).expect("start node");
    let url = node.http_url();
    let secret = secret();
    let run = |argv: Vec<&str>| {
        let cli = Cli::try_parse_from(argv).expect("parse");
        async move {
            let live = Arc::new(Live::default());
            run_scenario(&cli.scenario, &live).await.expect("run")
        }
    };
    let common = [
        "--target",
        "herald-socketio",
        "--url",
        &url,
        "--api-key",
        herald::testing::TEST_API_KEY,
        "--channel",
        "chat:storm",
        "--quiet",
    ];
    let mut argv = vec!["herald-loadtest", "connect-storm", "--connections", "40"];
    argv.extend(common);
    argv.extend(["--secret", &secret]);
    let s = &run(argv).await.steps[0];
    assert_eq!(s.extra["subscribed"], 40.0, "{s:?}");
    assert_eq!(s.extra["failed"], 0.0, "{s:?}");
    assert_eq!(s.latency.count, 40, "{s:?}");

    let pid = std::process::id().to_string();
    let mut argv = vec!["herald-loadtest", "idle", "--connections", "30"];
    argv.extend(common);
    argv.extend([
        "--secret",
        &secret,
        "--settle-secs",
        "0.5",
        "--server-pid",
        &pid,
    ]);
    let s = &run(argv).await.steps[0];
    assert_eq!(s.extra["connected"], 30.0, "{s:?}");
    assert_eq!(s.extra["failed"], 0.0, "{s:?}");
    assert_eq!(s.extra["closed_while_idle"], 0.0, "{s:?}");

    let wrong = "another-secret-0123456789abcdef0123456789";
    let mut argv = vec!["herald-loadtest", "connect-storm", "--connections", "3"];
    argv.extend(common);
    argv.extend(["--secret", wrong, "--ready-timeout", "10"]);
    let s = &run(argv).await.steps[0];
    assert_eq!(s.extra["failed"], 3.0, "{s:?}");
    assert!(
        s.closes.keys().any(|k| k.starts_with("connect error")),
        "{s:?}"
    );
    drop(node);
}

#[test]
fn sse_with_protobuf_is_refused_with_a_reason() {
    let cli = Cli::try_parse_from([
        "herald-loadtest",
        "idle",
        "--transport",
        "sse",
        "--protobuf",
    ])
    .expect("parse");
    let live = Arc::new(Live::default());
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run_scenario(&cli.scenario, &live))
        .expect_err("sse is JSON only");
    assert!(err.to_string().contains("JSON only"), "{err}");
}
