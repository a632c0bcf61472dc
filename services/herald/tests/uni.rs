//! The unidirectional transports over real sockets against a node on a free port:
//! `/connection/uni_websocket`, `/connection/uni_sse` and `/connection/uni_http_stream`. The
//! client sends one bare connect request; the node answers with a `connect` push, then bare
//! pushes (publications of the token's channels), pings as `{}`, and a refusal as a
//! `disconnect` push (a close frame on the WebSocket).

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use herald::RunningNode;
use herald::config::Config;
use herald::testing::stream::{self, StreamClient, Transport};
use herald::testing::{Api, TEST_API_KEY, sign_connect, token, unix_now};
use herald_engine::auth::NewConnectToken;
use herald_protocol::Format;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn start(config: Config) -> RunningNode {
    RunningNode::start(config).expect("start node")
}

/// A token for `user` whose `channels` claim subscribes the connection server-side.
fn token_with(user: &str, channels: &[&str]) -> String {
    sign_connect(NewConnectToken {
        sub: user.into(),
        exp: Some(unix_now() + 3600),
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        ..Default::default()
    })
}

async fn publish(node: &RunningNode, channel: &str, data: Value) {
    let reply = Api::new(node.addr, TEST_API_KEY)
        .call("publish", json!({"channel": channel, "data": data}))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
}

/// The unidirectional streaming transports (their framing is the bidirectional ones').
#[derive(Debug, Clone, Copy)]
enum Http {
    Stream,
    SseGet,
    SsePost,
}

const HTTP: [Http; 3] = [Http::Stream, Http::SseGet, Http::SsePost];

async fn open(node: &RunningNode, http: Http, connect: &[u8]) -> StreamClient {
    let json = [("Content-Type", "application/json")];
    let (verb, path, transport, headers) = match http {
        Http::Stream => (
            "POST",
            "/connection/uni_http_stream".to_owned(),
            Transport::HttpStream,
            &json[..],
        ),
        Http::SseGet => (
            "GET",
            format!(
                "/connection/uni_sse?cf_connect={}",
                stream::percent_encode(connect)
            ),
            Transport::Sse,
            &[][..],
        ),
        Http::SsePost => (
            "POST",
            "/connection/uni_sse".to_owned(),
            Transport::Sse,
            &json[..],
        ),
    };
    let body = if matches!(http, Http::SseGet) {
        &[][..]
    } else {
        connect
    };
    StreamClient::open(
        node.addr,
        verb,
        &path,
        headers,
        body,
        transport,
        Format::Json,
    )
    .await
}

/// The connect push a unidirectional client gets first.
fn connect_push(message: &Value) -> &Value {
    let connect = &message["connect"];
    assert!(
        connect["client"].is_string(),
        "not a connect push: {message}"
    );
    assert!(message.get("id").is_none(), "{message}");
    connect
}

/// The next message that is not a ping.
async fn next_push(client: &mut StreamClient) -> Value {
    loop {
        let message = client.next_value().await.expect("stream open");
        if message != json!({}) {
            return message;
        }
    }
}

#[tokio::test]
async fn streams_push_the_connect_then_publications_of_the_token_channels() {
    let node = start(Config::for_test());
    for http in HTTP {
        let request = json!({"token": token_with("alice", &["news"])}).to_string();
        let mut client = open(&node, http, request.as_bytes()).await;
        assert_eq!(client.status, 200, "{http:?}: {}", client.head);
        let connect = client.next_value().await.expect("connect push");
        let result = connect_push(&connect);
        assert!(result["subs"]["news"].is_object(), "{http:?}: {connect}");
        assert_eq!(result["ping"], 25, "{connect}");
        // Nobody is asked to answer a ping they cannot send.
        assert!(result.get("pong").is_none(), "{connect}");

        publish(&node, "news", json!({"n": 1})).await;
        let message = next_push(&mut client).await;
        assert_eq!(message["channel"], "news", "{http:?}: {message}");
        assert_eq!(message["pub"]["data"], json!({"n": 1}), "{message}");
        assert!(
            message.get("push").is_none(),
            "bare, not wrapped: {message}"
        );
    }
}

#[tokio::test]
async fn a_bad_token_gets_the_invalid_token_disconnect() {
    let node = start(Config::for_test());
    for http in HTTP {
        let request = json!({"token": "not.a.jwt"}).to_string();
        let mut client = open(&node, http, request.as_bytes()).await;
        assert_eq!(client.status, 200, "{http:?}");
        let message = client.next_value().await.expect("disconnect push");
        assert_eq!(
            message,
            json!({"disconnect": {"code": 3500, "reason": "invalid token"}}),
            "{http:?}"
        );
        assert_eq!(client.next_value().await, None, "{http:?}: the stream ends");
    }
    // Not an object at all: a bad request.
    let mut client = open(&node, Http::Stream, b"[1]").await;
    let message = client.next_value().await.expect("disconnect push");
    assert_eq!(message["disconnect"]["code"], 3501, "{message}");
}

#[tokio::test]
async fn an_oversized_connect_request_is_refused() {
    let mut config = Config::for_test();
    config.client.max_message_size = 1024;
    let node = start(config);
    let request = json!({"token": token("alice"), "data": "x".repeat(2000)}).to_string();
    for http in [Http::Stream, Http::SsePost, Http::SseGet] {
        let mut client = open(&node, http, request.as_bytes()).await;
        let expected = match http {
            Http::SseGet => [413, 414, 431],
            _ => [413, 413, 413],
        };
        assert!(
            expected.contains(&client.status),
            "{http:?}: {}",
            client.head
        );
        client.text().await;
    }
}

#[tokio::test]
async fn pings_arrive_and_need_no_answer() {
    let mut config = Config::for_test();
    config.client.ping_interval = Duration::from_millis(1000);
    config.client.pong_timeout = Duration::from_millis(900);
    let node = start(config);
    let request = json!({"token": token("alice")}).to_string();
    let mut client = open(&node, Http::Stream, request.as_bytes()).await;
    connect_push(&client.next_value().await.expect("connect push"));
    // More pings than a pong timeout allows: a bidirectional client would be gone (3012).
    for _ in 0..3 {
        assert_eq!(client.next_value().await, Some(json!({})));
    }
}

#[tokio::test]
async fn missed_publications_are_recovered_through_subs() {
    let mut config = Config::for_test();
    // Server-side subscriptions recover in a namespace that forces recovery.
    for ns in &mut config.channels.namespaces {
        if ns.name == "history" {
            ns.options.force_recovery = true;
        }
    }
    let node = start(config);
    let channel = "history:feed";
    let token = token_with("alice", &[channel]);
    let request = json!({"token": token}).to_string();
    let mut client = open(&node, Http::Stream, request.as_bytes()).await;
    let connect = client.next_value().await.expect("connect push");
    let sub = connect_push(&connect)["subs"][channel].clone();
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    let offset = sub["offset"].as_u64().unwrap_or(0);
    drop(client);

    publish(&node, channel, json!({"n": 1})).await;
    publish(&node, channel, json!({"n": 2})).await;
    let request = json!({
        "token": token,
        "subs": {channel: {"recover": true, "offset": offset, "epoch": epoch}},
    })
    .to_string();
    let mut client = open(&node, Http::SsePost, request.as_bytes()).await;
    let connect = client.next_value().await.expect("connect push");
    let sub = &connect_push(&connect)["subs"][channel];
    assert_eq!(sub["recovered"], true, "{connect}");
    let data: Vec<&Value> = sub["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| &p["data"])
        .collect();
    assert_eq!(data, [&json!({"n": 1}), &json!({"n": 2})], "{connect}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_tells_stream_clients_3001() {
    let node = start(Config::for_test());
    let request = json!({"token": token("alice")}).to_string();
    let mut client = open(&node, Http::SseGet, request.as_bytes()).await;
    connect_push(&client.next_value().await.expect("connect push"));
    let stopping = tokio::task::spawn_blocking(move || node.stop());
    let message = next_push(&mut client).await;
    assert_eq!(message["disconnect"]["code"], 3001, "{message}");
    assert_eq!(client.next_value().await, None);
    stopping.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn switched_off_they_are_not_served() {
    let mut config = Config::for_test();
    config.server.uni_websocket = false;
    config.server.uni_sse = false;
    config.server.uni_http_stream = false;
    let node = start(config);
    let api = Api::new(node.addr, TEST_API_KEY);
    for path in ["/connection/uni_http_stream", "/connection/uni_sse"] {
        assert_eq!(api.request("POST", path, &[], "{}").await.0, 404, "{path}");
    }
    let url = format!("ws://{}/connection/uni_websocket", node.addr);
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn uni_ws(node: &RunningNode) -> Ws {
    let url = format!("ws://{}/connection/uni_websocket", node.addr);
    tokio_tungstenite::connect_async(&url)
        .await
        .expect("uni websocket handshake")
        .0
}

/// The next text message (skipping pings), or the close frame's code.
async fn ws_next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("message in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("json message");
                if value != json!({}) {
                    return Ok(value);
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map_or(1005, |f| f.code.into())),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(1006),
        }
    }
}

#[tokio::test]
async fn the_websocket_pushes_after_one_connect_request_and_ignores_the_rest() {
    let node = start(Config::for_test());
    let mut ws = uni_ws(&node).await;
    let request = json!({"token": token_with("alice", &["news"])}).to_string();
    ws.send(Message::text(request)).await.expect("send connect");
    let connect = ws_next(&mut ws).await.expect("connect push");
    assert!(
        connect_push(&connect)["subs"]["news"].is_object(),
        "{connect}"
    );
    // A unidirectional client has nothing more to say; what it says anyway changes nothing.
    ws.send(Message::text(
        r#"{"id":2,"subscribe":{"channel":"chat:x"}}"#,
    ))
    .await
    .expect("send");
    ws.send(Message::text("garbage")).await.expect("send");
    publish(&node, "news", json!({"n": 1})).await;
    let message = ws_next(&mut ws).await.expect("publication");
    assert_eq!(message["channel"], "news", "{message}");
    assert_eq!(message["pub"]["data"], json!({"n": 1}), "{message}");
}

#[tokio::test]
async fn the_websocket_closes_on_a_bad_token_or_an_oversized_request() {
    let mut config = Config::for_test();
    config.client.max_message_size = 1024;
    let node = start(config);
    let mut ws = uni_ws(&node).await;
    ws.send(Message::text(json!({"token": "bad"}).to_string()))
        .await
        .expect("send");
    assert_eq!(ws_next(&mut ws).await, Err(3500));

    let mut ws = uni_ws(&node).await;
    let request = json!({"token": token("alice"), "data": "x".repeat(2000)}).to_string();
    ws.send(Message::text(request)).await.expect("send");
    assert_eq!(ws_next(&mut ws).await, Err(1009));
}

#[tokio::test]
async fn websocket_pings_need_no_answer() {
    let mut config = Config::for_test();
    config.client.ping_interval = Duration::from_millis(1000);
    config.client.pong_timeout = Duration::from_millis(900);
    let node = start(config);
    let mut ws = uni_ws(&node).await;
    let request = json!({"token": token("alice")}).to_string();
    ws.send(Message::text(request)).await.expect("send");
    connect_push(&ws_next(&mut ws).await.expect("connect push"));
    for _ in 0..3 {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("ping in time");
        match message {
            Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "{}"),
            other => panic!("not a ping: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_event_source_gets_the_connect_push_and_a_publication() {
    let Some((chromium, dir)) = herald::testing::browser::tools() else {
        return;
    };
    let node = start(Config::for_test());
    let url = format!("http://{}", node.addr);
    let token = token_with("alice", &["news"]);
    let node_bin = std::env::var("HERALD_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    let run = tokio::process::Command::new(node_bin)
        .current_dir(&dir)
        .env("CHROMIUM", &chromium)
        .arg("uni_sse.mjs")
        .args(["--url", &url, "--token", &token, "--channel", "news"])
        .args(["--api-key", TEST_API_KEY])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser script did not finish within 120 s")
        .expect("run node (Node 20+)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("uni sse ok"),
        "browser script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn browser_origins_follow_allowed_origins() {
    let mut config = Config::for_test();
    config.server.allowed_origins = vec!["https://app.example".into()];
    let node = start(config);
    let api = Api::new(node.addr, TEST_API_KEY);
    let evil = [("Origin", "https://evil.example")];
    for path in ["/connection/uni_http_stream", "/connection/uni_sse"] {
        let (status, _) = api.request("POST", path, &evil, "{}").await;
        assert_eq!(status, 403, "{path}");
    }
    let request = json!({"token": token("alice")}).to_string();
    let mut client = StreamClient::open(
        node.addr,
        "POST",
        "/connection/uni_sse",
        &[("Origin", "https://app.example")],
        request.as_bytes(),
        Transport::Sse,
        Format::Json,
    )
    .await;
    assert_eq!(client.status, 200);
    assert_eq!(
        client.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    connect_push(&client.next_value().await.expect("connect push"));

    let url = format!("ws://{}/connection/uni_websocket", node.addr);
    let mut request = url.as_str().into_client_request().expect("request");
    let origin = "https://evil.example".parse().expect("header value");
    request.headers_mut().insert("Origin", origin);
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a forbidden origin upgraded: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_closes_the_websocket_with_3001() {
    let node = start(Config::for_test());
    let mut ws = uni_ws(&node).await;
    let request = json!({"token": token("alice")}).to_string();
    ws.send(Message::text(request)).await.expect("send");
    connect_push(&ws_next(&mut ws).await.expect("connect push"));
    let stopping = tokio::task::spawn_blocking(move || node.stop());
    assert_eq!(ws_next(&mut ws).await, Err(3001));
    stopping.await.expect("join").expect("clean stop");
}

/// A unidirectional client that stops reading goes once a write has waited
/// `client.write_timeout`, as on every transport (the queue bound is out of reach here, so
/// only the write timeout can cut it off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_client_that_stops_reading_is_dropped_by_the_write_timeout() {
    let mut config = Config::for_test();
    config.client.max_queue_bytes = 256 * 1024 * 1024;
    let node = start(config);
    let api = Api::new(node.addr, TEST_API_KEY);
    let clients = || async {
        let info = api.call("info", json!({})).await;
        info["result"]["nodes"][0]["num_clients"]
            .as_u64()
            .expect("num_clients")
    };
    let request = json!({"token": token_with("alice", &["news"])}).to_string();
    let mut stalled = open(&node, Http::Stream, request.as_bytes()).await;
    connect_push(&stalled.next_value().await.expect("connect push"));
    assert_eq!(clients().await, 1);
    // Far more than the socket buffers hold; the client never reads again.
    api.flood("news", 4000, 4096).await;
    herald::testing::eventually("the stalled client is gone", || async {
        clients().await == 0
    })
    .await;
    drop(stalled);
}
