//! The HTTP-streaming and SSE fallbacks over real sockets against a node on a free port: the
//! stream carries the replies, `/emulation` carries the commands, and every bad request is
//! answered with its status.

use std::time::Duration;

use herald::RunningNode;
use herald::config::Config;
use herald::testing::stream::{self, StreamClient, Transport};
use herald::testing::{Api, TEST_API_KEY, eventually, token};
use herald_protocol::Format;
use herald_protocol::proto::{Command, ConnectRequest, Reply, SubscribeRequest};
use serde_json::json;

fn node() -> RunningNode {
    RunningNode::start(Config::for_test()).expect("start node")
}

fn connect(token: &str) -> Command {
    Command {
        id: 1,
        connect: Some(ConnectRequest {
            token: token.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn subscribe(id: u32, channel: &str) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The connect reply's session id and node uid.
fn addressed(reply: &Reply) -> (String, String) {
    let result = reply.connect.as_ref().expect("connect result");
    assert!(!result.client.is_empty());
    (result.session.clone(), result.node.clone())
}

async fn publish(node: &RunningNode, channel: &str, data: serde_json::Value) {
    Api::new(node.addr, TEST_API_KEY)
        .call("publish", json!({"channel": channel, "data": data}))
        .await;
}

/// An HTTP-streaming client (JSON) connected to `node` and subscribed to `channel` through
/// `/emulation`, its subscribe reply read.
async fn streaming_subscriber(node: &RunningNode, channel: &str) -> StreamClient {
    let mut client =
        StreamClient::http_stream(node.addr, Format::Json, &[connect(&token("alice"))]).await;
    let (session, node_uid) = addressed(&client.next().await.expect("connect reply"));
    let commands = [subscribe(2, channel)];
    let status = stream::emulate(node.addr, Format::Json, &node_uid, &session, &commands).await;
    assert_eq!(status, 204);
    let reply = client.next_non_ping().await.expect("subscribe reply");
    assert!(reply.id == 2 && reply.subscribe.is_some(), "{reply:?}");
    client
}

/// Connect on the stream, subscribe through `/emulation`, receive a publication.
async fn round_trip(node: &RunningNode, mut client: StreamClient, format: Format) {
    assert_eq!(client.status, 200);
    let connected = client.next().await.expect("connect reply");
    let (session, node_uid) = addressed(&connected);
    assert_eq!(session.len(), 32, "session id {session:?}");
    assert_eq!(node_uid, node.node.uid());
    assert_eq!(node.node.emulated_sessions(), 1);

    let status = stream::emulate(
        node.addr,
        format,
        &node_uid,
        &session,
        &[subscribe(2, "chat:room")],
    )
    .await;
    assert_eq!(status, 204);
    let reply = client.next_non_ping().await.expect("subscribe reply");
    assert_eq!(reply.id, 2);
    assert!(reply.subscribe.is_some(), "{reply:?}");

    publish(node, "chat:room", json!({"n": 1})).await;
    let push = client.next_non_ping().await.expect("publication");
    let push = push.push.expect("push");
    assert_eq!(push.channel, "chat:room");
    assert_eq!(&push.r#pub.expect("pub").data[..], br#"{"n":1}"#);
}

#[tokio::test]
async fn http_stream_json_connects_subscribes_and_receives() {
    let node = node();
    let client =
        StreamClient::http_stream(node.addr, Format::Json, &[connect(&token("alice"))]).await;
    assert_eq!(client.header("content-type"), Some("application/json"));
    assert_eq!(client.header("x-accel-buffering"), Some("no"));
    round_trip(&node, client, Format::Json).await;
}

#[tokio::test]
async fn http_stream_protobuf_connects_subscribes_and_receives() {
    let node = node();
    let client =
        StreamClient::http_stream(node.addr, Format::Protobuf, &[connect(&token("alice"))]).await;
    assert_eq!(
        client.header("content-type"),
        Some("application/octet-stream")
    );
    round_trip(&node, client, Format::Protobuf).await;
}

#[tokio::test]
async fn sse_connects_subscribes_and_receives() {
    let node = node();
    let client = StreamClient::sse(node.addr, &[connect(&token("alice"))]).await;
    assert_eq!(
        client.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    round_trip(&node, client, Format::Json).await;
}

#[tokio::test]
async fn sse_takes_the_connect_command_as_a_post_body_too() {
    let node = node();
    let body = herald::testing::encode_commands(Format::Json, &[connect(&token("alice"))]);
    let client = StreamClient::open(
        node.addr,
        "POST",
        "/connection/sse",
        &[("Content-Type", "application/json")],
        &body,
        Transport::Sse,
        Format::Json,
    )
    .await;
    round_trip(&node, client, Format::Json).await;
}

#[tokio::test]
async fn a_bad_token_gets_its_error_and_the_stream_ends_with_the_disconnect() {
    let node = node();
    let mut client =
        StreamClient::http_stream(node.addr, Format::Json, &[connect("not-a-token")]).await;
    assert_eq!(client.status, 200);
    let codes = client.disconnects().await;
    assert_eq!(codes, [3500]);
    assert_eq!(node.node.emulated_sessions(), 0);
}

#[tokio::test]
async fn a_server_disconnect_ends_the_stream_and_later_commands_find_no_session() {
    let node = node();
    let mut client =
        StreamClient::http_stream(node.addr, Format::Json, &[connect(&token("alice"))]).await;
    let (session, node_uid) = addressed(&client.next().await.expect("connect reply"));
    Api::new(node.addr, TEST_API_KEY)
        .call("disconnect", json!({"user": "alice"}))
        .await;
    let codes = client.disconnects().await;
    assert_eq!(codes, [3503]);
    assert_eq!(node.node.emulated_sessions(), 0);
    // The session is gone: the request is accepted and goes nowhere (the client learnt from
    // its stream already).
    let status = stream::emulate(
        node.addr,
        Format::Json,
        &node_uid,
        &session,
        &[subscribe(2, "chat:room")],
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_nothing_behind() {
    let node = node();
    let mut client =
        StreamClient::http_stream(node.addr, Format::Json, &[connect(&token("alice"))]).await;
    client.next().await.expect("connect reply");
    assert_eq!(node.node.info().num_clients, 1);
    drop(client);
    eventually("the session ends with its connection", || {
        std::future::ready(node.node.emulated_sessions() == 0 && node.node.info().num_clients == 0)
    })
    .await;
}

#[tokio::test]
async fn emulation_requests_that_cannot_be_handed_on_get_their_status() {
    let node = node();
    let mut client =
        StreamClient::http_stream(node.addr, Format::Json, &[connect(&token("alice"))]).await;
    let (session, node_uid) = addressed(&client.next().await.expect("connect reply"));
    let post = |body: String| async move {
        stream::post(node.addr, "/emulation", "application/json", body.as_bytes())
            .await
            .0
    };
    // Not an emulation request.
    assert_eq!(post("{not json".into()).await, 400);
    assert_eq!(
        post(json!({"node": node_uid, "data": "{}"}).to_string()).await,
        400
    );
    assert_eq!(
        stream::post(
            node.addr,
            "/emulation",
            "application/octet-stream",
            b"\xff\xff"
        )
        .await
        .0,
        400
    );
    // Commands over client.max_message_size (64 KiB in the test config).
    let big = "x".repeat(70 * 1024);
    assert_eq!(
        post(json!({"node": node_uid, "session": session, "data": big}).to_string()).await,
        413
    );
    // Ids of a form no node hands out are refused before any lookup.
    for (bad_node, bad_session) in [
        ("no-such-node", session.as_str()),
        (node_uid.as_str(), "../../etc"),
        (node_uid.as_str(), &"a".repeat(4096)),
    ] {
        let body = json!({"node": bad_node, "session": bad_session, "data": "{}"});
        assert_eq!(
            post(body.to_string()).await,
            400,
            "{bad_node} {bad_session}"
        );
    }
    // A well-formed node nobody runs: the memory broker has no other node.
    let nobody = "00000000-0000-4000-8000-000000000000";
    assert_eq!(
        post(json!({"node": nobody, "session": session, "data": "{}"}).to_string()).await,
        404
    );
    // A body too large to hold allowed commands is refused from its length, before it is sent.
    let mut raw = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut raw,
        b"POST /emulation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = [0u8; 64];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut raw, &mut answer),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    let api = Api::new(node.addr, TEST_API_KEY);
    assert_eq!(api.request("GET", "/emulation", &[], "").await.0, 405);
    // The connection itself is unharmed.
    let status = stream::emulate(
        node.addr,
        Format::Json,
        &node_uid,
        &session,
        &[subscribe(2, "chat:room")],
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(client.next_non_ping().await.expect("reply").id, 2);
}

#[tokio::test]
async fn bad_stream_requests_get_their_status() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    assert_eq!(
        api.request("GET", "/connection/http_stream", &[], "")
            .await
            .0,
        405
    );
    let (status, _) = stream::post(
        node.addr,
        "/connection/http_stream",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(api.request("GET", "/connection/sse", &[], "").await.0, 400);
    let big = vec![b'x'; 70 * 1024];
    let (status, _) = stream::post(
        node.addr,
        "/connection/http_stream",
        "application/json",
        &big,
    )
    .await;
    assert_eq!(status, 413);
    // A first command that is not a connect: the stream says so and ends.
    let mut client =
        StreamClient::http_stream(node.addr, Format::Json, &[subscribe(1, "chat:room")]).await;
    let codes = client.disconnects().await;
    assert_eq!(codes, [3501]);
}

#[tokio::test]
async fn browser_origins_follow_allowed_origins_with_cors() {
    let mut config = Config::for_test();
    config.server.allowed_origins = vec!["https://app.example".into()];
    let node = RunningNode::start(config).expect("start node");
    let api = Api::new(node.addr, TEST_API_KEY);

    let (status, _) = api
        .request(
            "POST",
            "/connection/http_stream",
            &[("Origin", "https://evil.example")],
            "{}",
        )
        .await;
    assert_eq!(status, 403);

    let body = herald::testing::encode_commands(Format::Json, &[connect(&token("alice"))]);
    let mut client = StreamClient::open(
        node.addr,
        "POST",
        "/connection/http_stream",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "https://app.example"),
        ],
        &body,
        Transport::HttpStream,
        Format::Json,
    )
    .await;
    assert_eq!(client.status, 200);
    assert_eq!(
        client.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        client.header("access-control-allow-credentials"),
        Some("true")
    );
    client.next().await.expect("connect reply");

    let mut preflight = StreamClient::open(
        node.addr,
        "OPTIONS",
        "/emulation",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        &[],
        Transport::HttpStream,
        Format::Json,
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    preflight.text().await;
}

#[tokio::test]
async fn fallbacks_switched_off_are_not_served() {
    let mut config = Config::for_test();
    config.server.http_stream = false;
    config.server.sse = false;
    let node = RunningNode::start(config).expect("start node");
    let api = Api::new(node.addr, TEST_API_KEY);
    for path in ["/connection/http_stream", "/connection/sse", "/emulation"] {
        assert_eq!(api.request("POST", path, &[], "{}").await.0, 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_tells_stream_clients_to_reconnect() {
    let node = node();
    let mut client = StreamClient::sse(node.addr, &[connect(&token("alice"))]).await;
    client.next().await.expect("connect reply");
    let stopping = tokio::task::spawn_blocking(move || node.stop());
    let codes = client.disconnects().await;
    assert_eq!(codes, [3001]);
    stopping.await.expect("join").expect("clean stop");
}

/// The session's clocks run on a stream too: pings go down it, pongs come back through
/// `/emulation`, and a client that stops answering is closed with 3012.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_go_down_the_stream_and_pongs_come_back_through_emulation() {
    let mut config = Config::for_test();
    config.client.ping_interval = Duration::from_secs(1);
    config.client.pong_timeout = Duration::from_millis(800);
    let node = RunningNode::start(config).expect("start node");
    let mut client =
        StreamClient::http_stream(node.addr, Format::Protobuf, &[connect(&token("alice"))]).await;
    let (session, node_uid) = addressed(&client.next().await.expect("connect reply"));
    for _ in 0..2 {
        let ping = client.next().await.expect("a ping");
        assert!(herald::testing::is_ping(&ping), "{ping:?}");
        let pong = Command::default();
        let status =
            stream::emulate(node.addr, Format::Protobuf, &node_uid, &session, &[pong]).await;
        assert_eq!(status, 204);
    }
    // No pong this time.
    let codes = client.disconnects().await;
    assert_eq!(codes, [3012]);
}

/// `client.write_delay` batches a stream's writes as it does a WebSocket's: after a write,
/// whatever arrives within the delay goes out together in the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_writes_at_most_once_per_write_delay() {
    let mut config = Config::for_test();
    config.client.write_delay = Duration::from_secs(1);
    let node = RunningNode::start(config).expect("start node");
    let mut client = streaming_subscriber(&node, "chat:room").await;
    // The subscribe reply was a write: these ten arrive within the delay after it.
    for n in 0..10 {
        publish(&node, "chat:room", json!({"n": n})).await;
    }
    let mut chunk = client.next_chunk().await;
    chunk.retain(|r| !herald::testing::is_ping(r));
    assert_eq!(chunk.len(), 10, "one write for all ten: {chunk:?}");
}

/// A stream whose client stopped reading is dropped once the node's write has waited
/// `client.write_timeout`, with its session, though its queue bound would take far more: the
/// write timeout is the client socket's, under every transport.
#[tokio::test]
async fn a_stream_whose_client_stopped_reading_is_dropped_after_the_write_timeout() {
    let mut config = Config::for_test();
    config.client.write_timeout = Duration::from_millis(300);
    config.client.max_queue_bytes = 512 * 1024 * 1024;
    let node = RunningNode::start(config).expect("start node");
    let client = streaming_subscriber(&node, "chat:firehose").await;
    // The client reads no more. More than loopback's socket buffers hold, on both sides.
    let api = Api::new(node.addr, TEST_API_KEY);
    api.flood("chat:firehose", 6000, 4000).await;
    eventually("the stalled stream and its session are gone", || {
        std::future::ready(node.node.emulated_sessions() == 0 && node.node.info().num_clients == 0)
    })
    .await;
    assert_eq!(
        api.metric("herald_client_write_timeouts_total", "").await,
        1.0
    );
    drop(client);
}
