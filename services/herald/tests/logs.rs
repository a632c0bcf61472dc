//! What a node process writes to its log: JSON lines when asked, no colour codes off a
//! terminal, and the access log's request ids on API calls, connects and disconnects.

use herald::testing::process::HeraldProcess;
use herald::testing::{Api, TEST_API_KEY, TEST_SECRET, WsClient, token};
use herald_protocol::Format;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

fn config(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("herald-logs-{}-{name}.toml", std::process::id()));
    let secret = std::str::from_utf8(TEST_SECRET).unwrap();
    let text = format!("[auth]\nhmac_secret = \"{secret}\"\n[api]\nkey = \"{TEST_API_KEY}\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// One API call and one WebSocket client that connects and leaves, each with its own
/// `X-Request-Id`.
async fn traffic(node: &HeraldProcess) {
    let api = Api::new(node.addr, TEST_API_KEY);
    let headers = [("X-API-Key", TEST_API_KEY), ("X-Request-Id", "api-call-7")];
    let (status, _) = api.request("POST", "/api/info", &headers, "{}").await;
    assert_eq!(status, 200);
    let url = format!("ws://{}/connection/websocket", node.addr);
    let mut client =
        WsClient::connect_with(&url, Format::Json, &[("X-Request-Id", "ws-conn-9")]).await;
    client.handshake(&token("alice")).await;
    drop(client);
    // The node logs the disconnect when it sees the socket close: wait until it counted it.
    herald::testing::eventually("the disconnect counted", || async {
        api.metric("herald_client_disconnects_total", "").await >= 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_access_log_with_request_ids() {
    let path = config("json");
    let env = [
        ("HERALD_LOG", "info,herald::access=debug"),
        ("HERALD_SERVER__LOG_FORMAT", "json"),
    ];
    let node = HeraldProcess::start_with(BIN, &path, &env, true).await;
    traffic(&node).await;
    let log = node.stop();

    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in\n{log}"))
    };
    assert_eq!(find("herald node listening")["level"], "INFO");
    let api = find("api call");
    assert_eq!(api["target"], "herald::access");
    assert_eq!(api["request_id"], "api-call-7");
    assert_eq!(api["method"], "info");
    assert_eq!(api["status"], 200);
    for message in ["client connected", "client disconnected"] {
        let line = find(message);
        assert_eq!(line["span"]["request_id"], "ws-conn-9", "{line}");
        assert_eq!(line["span"]["transport"], "websocket", "{line}");
        assert_eq!(line["user"], "alice", "{line}");
    }
    assert!(!log.contains('\x1b'), "escape codes in\n{log}");
}

/// Text logs written to a pipe (a container runtime, systemd, a file) have no colour codes,
/// and the access log is off unless asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_off_a_terminal_have_no_colour_codes() {
    let path = config("text");
    let node = HeraldProcess::start_with(BIN, &path, &[("HERALD_LOG", "info")], true).await;
    traffic(&node).await;
    let log = node.stop();
    assert!(log.contains("herald node listening"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in\n{log}");
    assert!(
        !log.contains("api call") && !log.contains("client connected"),
        "{log}"
    );
}
