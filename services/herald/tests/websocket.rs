//! The client protocol over real WebSockets against a node on a free port: connect, subscribe,
//! publish, server-side subscriptions, and every way a bad client is answered.

use std::time::Duration;

use herald::RunningNode;
use herald::config::{Config, WebSocketEngine};
use herald::testing::{
    Api, TEST_API_KEY, WsClient, eventually, sign_connect, sub_token, token, unix_now,
};
use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};
use herald_protocol::Format;
use herald_protocol::proto::{Command, PublishRequest, SubscribeRequest};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn start(config: Config) -> RunningNode {
    RunningNode::start(config).expect("start node")
}

fn node() -> RunningNode {
    start(Config::for_test())
}

async fn connected(node: &RunningNode, user: &str) -> WsClient {
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.handshake(&token(user)).await;
    c
}

/// These tests run against the engine CI asks for (`HERALD_TEST_WEBSOCKET_ENGINE`, see
/// `.ci/run`): each engine passes all of them.
#[tokio::test]
async fn the_node_runs_the_websocket_engine_under_test() {
    let node = node();
    let engine = WebSocketEngine::under_test().name();
    let api = Api::new(node.addr, TEST_API_KEY);
    let label = format!("engine=\"{engine}\"");
    assert_eq!(api.metric("herald_websocket_engine", &label).await, 1.0);
}

#[tokio::test]
async fn connect_reply_carries_client_version_ping_pong_and_expiry() {
    let node = node();
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{"token":token("alice"),"name":"js"}})])
        .await;
    let (reply, raw) = c.next_with_json().await;
    let result = reply.connect.expect("connect result");
    assert!(!result.client.is_empty());
    assert_eq!(result.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(result.ping, 25);
    assert!(result.pong);
    assert!(result.expires);
    assert!((3590..=3600).contains(&result.ttl), "ttl {}", result.ttl);
    assert_eq!(raw["id"], 1);
    assert!(raw["connect"]["client"].is_string());
}

#[tokio::test]
async fn api_publication_reaches_subscribers_in_order() {
    let node = node();
    let mut json_client = connected(&node, "alice").await;
    let mut pb_client = WsClient::connect_with(&node.ws_url(), Format::Protobuf, &[]).await;
    pb_client.handshake(&token("bob")).await;
    assert!(
        json_client
            .subscribe(2, "chat:room")
            .await
            .subscribe
            .is_some()
    );
    assert!(
        pb_client
            .subscribe(2, "chat:room")
            .await
            .subscribe
            .is_some()
    );

    let api = Api::new(node.addr, TEST_API_KEY);
    for n in 0..20 {
        let r = api
            .call(
                "publish",
                json!({"channel":"chat:room","data":{"n":n,"text":"héllo"}}),
            )
            .await;
        assert_eq!(r, json!({"result":{}}));
    }
    for client in [&mut json_client, &mut pb_client] {
        for n in 0..20 {
            let (channel, publication) = client.publication().await;
            assert_eq!(channel, "chat:room");
            let data: serde_json::Value = serde_json::from_slice(&publication.data).unwrap();
            assert_eq!(data, json!({"n":n,"text":"héllo"}));
        }
    }
}

#[tokio::test]
async fn raw_json_push_matches_the_wire_format() {
    let node = node();
    let mut c = connected(&node, "alice").await;
    c.subscribe(2, "chat:x").await;
    Api::new(node.addr, TEST_API_KEY)
        .call("publish", json!({"channel":"chat:x","data":{"text":"hi"}}))
        .await;
    let (_, raw) = c.next_with_json().await;
    assert_eq!(
        raw,
        json!({"push":{"channel":"chat:x","pub":{"data":{"text":"hi"}}}})
    );
}

#[tokio::test]
async fn commands_batched_in_one_frame_are_answered_in_order() {
    let node = node();
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[
        json!({"id":1,"connect":{"token":token("alice")}}),
        json!({"id":2,"subscribe":{"channel":"chat:a"}}),
        json!({"id":3,"subscribe":{"channel":"chat:b","unknown_field":true,"flag":1}}),
    ])
    .await;
    assert!(c.next().await.connect.is_some());
    let two = c.next().await;
    assert_eq!((two.id, two.subscribe.is_some()), (2, true));
    let three = c.next().await;
    assert_eq!((three.id, three.subscribe.is_some()), (3, true));
}

#[tokio::test]
async fn token_channels_become_server_side_subscriptions() {
    let node = node();
    let mut c = WsClient::connect(&node.ws_url()).await;
    let reply = c
        .handshake(&sign_connect(NewConnectToken {
            sub: "alice".into(),
            exp: Some(unix_now() + 60),
            channels: vec!["news".into(), "chat:general".into()],
            ..Default::default()
        }))
        .await;
    let subs = reply.connect.unwrap().subs;
    assert!(subs.contains_key("news") && subs.contains_key("chat:general"));
    Api::new(node.addr, TEST_API_KEY)
        .call("publish", json!({"channel":"news","data":{"n":1}}))
        .await;
    assert_eq!(c.publication().await.0, "news");
}

#[tokio::test]
async fn subscribe_errors_follow_the_protocol_codes() {
    let mut config = Config::for_test();
    config.channels.max_channels_per_client = 3;
    config.channels.namespaces[0]
        .options
        .allow_user_limited_channels = true;
    let node = start(config);
    let mut c = connected(&node, "42").await;

    let code = |r: herald_protocol::proto::Reply| r.error.map(|e| e.code);
    assert_eq!(
        code(c.subscribe(2, "nope:room").await),
        Some(102),
        "unknown namespace"
    );
    assert_eq!(
        code(c.subscribe(3, "news").await),
        Some(103),
        "not allowed without token"
    );
    assert_eq!(
        code(c.subscribe(4, "$chat:secret").await),
        Some(103),
        "private needs token"
    );
    assert_eq!(code(c.subscribe(5, "chat:1").await), None);
    assert_eq!(
        code(c.subscribe(6, "chat:1").await),
        Some(105),
        "already subscribed"
    );
    assert_eq!(
        code(c.subscribe(7, &"x".repeat(256)).await),
        Some(107),
        "too long"
    );
    assert_eq!(code(c.subscribe(8, "").await), Some(107), "empty");
    assert_eq!(
        code(c.subscribe(11, "chat:{room}").await),
        Some(107),
        "braces would pick the Redis Cluster slot of the channel's keys"
    );
    assert_eq!(
        code(c.subscribe(9, "chat:news#42").await),
        None,
        "listed user"
    );
    assert_eq!(
        code(c.subscribe(10, "chat:dm#7,8").await),
        Some(103),
        "not listed"
    );
    assert_eq!(code(c.subscribe(11, "chat:3").await), None);
    assert_eq!(
        code(c.subscribe(12, "chat:4").await),
        Some(106),
        "channel limit"
    );
}

/// Where user-limited channels are off, a name in their form (`news#42`) is refused to
/// everyone, the listed user included, unless a subscription token grants it.
#[tokio::test]
async fn user_limited_names_are_refused_where_user_limited_channels_are_off() {
    let node = node();
    let mut c = connected(&node, "42").await;
    let reply = c.subscribe(2, "chat:news#42").await;
    assert_eq!(reply.error.map(|e| e.code), Some(103));
    c.send_json(&[json!({"id":3,"subscribe":{"channel":"chat:news#42","token":sub_token("42","chat:news#42")}})])
        .await;
    assert!(
        c.reply(3).await.error.is_none(),
        "a subscription token grants it"
    );
}

#[tokio::test]
async fn subscription_token_grants_a_channel_the_namespace_does_not() {
    let node = node();
    let mut c = connected(&node, "alice").await;
    let with = |channel: &str, token: String| Command {
        id: 2,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            token,
            ..Default::default()
        }),
        ..Default::default()
    };
    c.send(&[with("$private", sub_token("alice", "$private"))])
        .await;
    let ok = c.reply(2).await;
    assert!(ok.error.is_none(), "{ok:?}");

    // Someone else's token, and a token for another channel, are refused.
    let mut d = connected(&node, "bob").await;
    d.send(&[with("$private", sub_token("alice", "$private"))])
        .await;
    assert_eq!(d.reply(2).await.error.unwrap().code, 103);
    d.send(&[with("$other", sub_token("bob", "$private"))])
        .await;
    assert_eq!(d.reply(2).await.error.unwrap().code, 103);
    let forged = TokenSigner::hmac(b"another-secret-another-secret-123", HmacAlg::HS256)
        .sign(&serde_json::json!({"sub":"bob","channel":"$private"}))
        .unwrap();
    d.send(&[with("$private", forged)]).await;
    assert_eq!(d.reply(2).await.error.unwrap().code, 103);
}

/// An anonymous connection (a token without `sub`) may not subscribe by itself, and
/// `allow_publish_for_client` does not let it publish where it could not read either.
#[tokio::test]
async fn an_anonymous_client_publishes_only_where_it_is_subscribed() {
    let mut config = Config::for_test();
    config.channels.namespaces[0]
        .options
        .allow_publish_for_client = true;
    let node = start(config);
    let mut anonymous = WsClient::connect(&node.ws_url()).await;
    anonymous.handshake(&token("")).await;
    let publish = |id: u32, channel: &str, token: Option<String>| {
        let mut commands = Vec::new();
        if let Some(token) = token {
            commands.push(json!({"id":id,"subscribe":{"channel":channel,"token":token}}));
        }
        commands.push(json!({"id":id+1,"publish":{"channel":channel,"data":{"n":1}}}));
        commands
    };
    assert_eq!(
        anonymous
            .subscribe(2, "chat:open")
            .await
            .error
            .map(|e| e.code),
        Some(103),
        "anonymous users do not subscribe by themselves"
    );
    anonymous.send_json(&publish(3, "chat:open", None)).await;
    assert_eq!(anonymous.reply(4).await.error.map(|e| e.code), Some(103));
    // Subscribed through a token, it publishes there.
    anonymous
        .send_json(&publish(
            5,
            "chat:granted",
            Some(sub_token("", "chat:granted")),
        ))
        .await;
    assert!(anonymous.reply(5).await.error.is_none());
    assert!(anonymous.reply(6).await.error.is_none());
    // A user publishes where allow_publish_for_client lets it, subscribed or not.
    let mut alice = connected(&node, "alice").await;
    alice.send_json(&publish(2, "chat:open", None)).await;
    assert!(alice.reply(3).await.error.is_none());
}

#[tokio::test]
async fn client_publish_only_where_the_namespace_allows_it() {
    let mut config = Config::for_test();
    config
        .channels
        .namespaces
        .push(herald_engine::config::Namespace {
            name: "feed".into(),
            options: herald_engine::config::ChannelOptions {
                allow_subscribe_for_client: true,
                ..Default::default()
            },
        });
    let node = start(config);
    let mut alice = connected(&node, "alice").await;
    let mut bob = connected(&node, "bob").await;
    bob.subscribe(2, "chat:room").await;
    alice.subscribe(2, "feed:x").await;

    let publish = |id: u32, channel: &str| Command {
        id,
        publish: Some(PublishRequest {
            channel: channel.into(),
            data: bytes::Bytes::from_static(br#"{"from":"alice"}"#),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Not subscribed to chat:room: publish_for_subscriber does not cover alice yet.
    alice.send(&[publish(3, "chat:room")]).await;
    assert_eq!(alice.reply(3).await.error.unwrap().code, 103);
    alice.subscribe(4, "chat:room").await;
    alice.send(&[publish(5, "chat:room")]).await;
    assert!(alice.reply(5).await.publish.is_some());
    let (_, publication) = bob.publication().await;
    assert_eq!(&publication.data[..], br#"{"from":"alice"}"#);
    let info = publication.info.expect("publisher info");
    assert_eq!(info.user, "alice");
    // feed: subscribers may not publish.
    alice.send(&[publish(6, "feed:x")]).await;
    assert_eq!(alice.reply(6).await.error.unwrap().code, 103);
}

#[tokio::test]
async fn presence_history_rpc_answer_cleanly() {
    let node = node();
    let mut c = connected(&node, "alice").await;
    c.subscribe(2, "chat:1").await;
    c.send_json(&[
        json!({"id":3,"presence":{"channel":"chat:1"}}),
        json!({"id":4,"presence_stats":{"channel":"chat:1"}}),
        json!({"id":5,"history":{"channel":"chat:1","limit":10}}),
        json!({"id":6,"rpc":{"method":"x","data":{}}}),
        json!({"id":7,"ping":{}}),
    ])
    .await;
    assert_eq!(c.reply(3).await.error.unwrap().code, 108);
    assert_eq!(c.reply(4).await.error.unwrap().code, 108);
    assert_eq!(c.reply(5).await.error.unwrap().code, 108);
    assert_eq!(c.reply(6).await.error.unwrap().code, 104);
    assert!(c.reply(7).await.ping.is_some());
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let node = node();
    let now = unix_now();

    // Wrong key → invalid token, the connection ends for good.
    let forged = TokenSigner::hmac(b"not-the-secret-not-the-secret-000", HmacAlg::HS256)
        .sign(&json!({"sub":"mallory"}))
        .unwrap();
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{"token":forged}})])
        .await;
    assert_eq!(c.closed().await.code, 3500);

    // alg: none.
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg":"none","typ":"JWT"})),
        b64(json!({"sub":"mallory"}))
    );
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{"token":none}})])
        .await;
    assert_eq!(c.closed().await.code, 3500);

    // Expired → error 109 so the SDK fetches a fresh token.
    let expired = sign_connect(NewConnectToken {
        sub: "alice".into(),
        exp: Some(now - 10),
        ..Default::default()
    });
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{"token":expired}})])
        .await;
    let reply = c.reply(1).await;
    assert_eq!(reply.error.unwrap().code, 109);

    // No credentials at all.
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{}})]).await;
    assert_eq!(c.closed().await.code, 3501);

    // A valid subscription token is no connection token.
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{"token":sub_token("alice","chat:1")}})])
        .await;
    assert_eq!(c.closed().await.code, 3500);
}

/// A token may say it is valid for billions of years: the connection is served, and its
/// expiry clock does not overflow (it panicked the connection's task before).
#[tokio::test]
async fn a_token_valid_for_ages_connects_and_refreshes() {
    let node = node();
    let ages = sign_connect(NewConnectToken {
        sub: "alice".into(),
        exp: Some(u64::MAX),
        ..Default::default()
    });
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.send_json(&[json!({"id":1,"connect":{"token":ages}})])
        .await;
    let connected = c.reply(1).await.connect.expect("connect result");
    assert!(connected.expires && connected.ttl > 0, "{connected:?}");
    c.send_json(&[
        json!({"id":2,"refresh":{"token":ages}}),
        json!({"id":3,"ping":{}}),
    ])
    .await;
    assert!(c.reply(2).await.refresh.is_some());
    assert!(c.reply(3).await.ping.is_some(), "still served");
}

#[tokio::test]
async fn garbage_and_out_of_order_frames_close_with_bad_request() {
    let node = node();
    let cases: Vec<Message> = vec![
        Message::text("this is not json"),
        Message::text("[1,2,3]"),
        Message::text(json!({"id":1,"subscribe":{"channel":"chat:1"}}).to_string()),
        Message::text("{}"),
        Message::binary(vec![0xff, 0xff, 0xff]),
    ];
    for frame in cases {
        let mut c = WsClient::connect(&node.ws_url()).await;
        c.send_raw(frame.clone()).await;
        assert_eq!(c.closed().await.code, 3501, "{frame:?}");
    }
    // After connect: a pong nobody asked for, a command without id, a second connect.
    for frame in [
        json!({}),
        json!({"subscribe":{"channel":"chat:1"}}),
        json!({"id":9,"connect":{"token":token("alice")}}),
    ] {
        let mut c = connected(&node, "alice").await;
        c.send_json(std::slice::from_ref(&frame)).await;
        assert_eq!(c.closed().await.code, 3501, "{frame}");
    }
    // A garbage protobuf frame.
    let mut c = WsClient::connect_with(&node.ws_url(), Format::Protobuf, &[]).await;
    c.send_raw(Message::binary(vec![0x05, 0x01])).await;
    assert_eq!(c.closed().await.code, 3501);
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_and_others_are_untouched() {
    let mut config = Config::for_test();
    config.client.max_message_size = 1024;
    let node = start(config);
    let mut bystander = connected(&node, "bob").await;
    bystander.subscribe(2, "chat:1").await;
    let mut c = connected(&node, "alice").await;
    c.send_raw(Message::text(format!(
        "{{\"id\":2,\"publish\":{{\"channel\":\"chat:1\",\"data\":\"{}\"}}}}",
        "x".repeat(2000)
    )))
    .await;
    assert_eq!(c.closed().await.code, 1009);
    Api::new(node.addr, TEST_API_KEY)
        .call("publish", json!({"channel":"chat:1","data":1}))
        .await;
    assert_eq!(bystander.publication().await.0, "chat:1");
}

#[tokio::test]
async fn silent_connection_is_closed_as_stale() {
    let mut config = Config::for_test();
    config.client.connect_timeout = Duration::from_millis(300);
    let node = start(config);
    let mut c = WsClient::connect(&node.ws_url()).await;
    assert_eq!(c.closed().await.code, 3502);
}

#[tokio::test]
async fn pings_arrive_and_a_missing_pong_closes_with_3012() {
    let mut config = Config::for_test();
    // Wide enough that a loaded machine answers in time; short enough for a test.
    config.client.ping_interval = Duration::from_millis(1000);
    config.client.pong_timeout = Duration::from_millis(900);
    let node = start(config);

    let mut good = connected(&node, "alice").await;
    for _ in 0..3 {
        let reply = good.next().await;
        assert!(herald::testing::is_ping(&reply), "{reply:?}");
        good.pong().await;
    }
    let mut silent = connected(&node, "bob").await;
    assert_eq!(silent.closed().await.code, 3012);
    // The one that answers is still served.
    good.send_json(&[json!({"id":5,"ping":{}})]).await;
    assert!(good.reply(5).await.ping.is_some());
}

#[tokio::test]
async fn origin_check_blocks_foreign_browsers_only() {
    let mut config = Config::for_test();
    config.server.allowed_origins = vec!["https://app.example.com".into()];
    let node = start(config);
    let url = node.ws_url();
    assert!(
        WsClient::try_connect_with(&url, Format::Json, &[("Origin", "https://evil.example")])
            .await
            .is_err()
    );
    let mut ok =
        WsClient::connect_with(&url, Format::Json, &[("Origin", "https://app.example.com")]).await;
    ok.handshake(&token("alice")).await;
    let mut no_origin = WsClient::connect(&url).await;
    no_origin.handshake(&token("bob")).await;
}

#[tokio::test]
async fn slow_consumer_is_cut_off_with_3008_while_a_fast_one_keeps_receiving() {
    // Default 1 MiB queue: one API batch (100 × 4 KB) fits, the slow client's backlog does not.
    // The write timeout is long here: this is the queue bound's cut-off, whose close frame
    // reaches a client that reads again (a client that never does is the write timeout's).
    let mut config = Config::for_test();
    config.client.write_timeout = Duration::from_secs(60);
    let node = start(config);
    let mut fast = connected(&node, "fast").await;
    let mut slow = connected(&node, "slow").await;
    fast.subscribe(2, "chat:firehose").await;
    slow.subscribe(2, "chat:firehose").await;

    // The slow client stops reading; the fast one reads everything concurrently. Enough data
    // to fill the kernel's socket buffers and then the queue.
    const PUBLICATIONS: usize = 6000;
    let api = Api::new(node.addr, TEST_API_KEY);
    let reader = tokio::spawn(async move {
        for n in 0..PUBLICATIONS {
            let (_, publication) = fast.publication().await;
            let data: serde_json::Value = serde_json::from_slice(&publication.data).unwrap();
            assert_eq!(data["n"], n, "fast client lost or reordered a publication");
        }
        fast
    });
    api.flood("chat:firehose", PUBLICATIONS, 4000).await;
    let mut fast = reader.await.expect("fast reader");
    assert_eq!(slow.closed_within(Duration::from_secs(30)).await.code, 3008);
    fast.send_json(&[json!({"id":9,"ping":{}})]).await;
    assert!(fast.reply(9).await.ping.is_some());
}

/// A client that stops reading long enough for the socket's buffers to fill (and actix-ws's own
/// channel, with that engine) then reads on: with a queue bound and a write timeout large
/// enough not to cut it, it gets every publication exactly once and in order. This is the path
/// where a write has to wait for room (partly written frames, with the lean engine), and is
/// retried after a first attempt that found none.
#[tokio::test]
async fn a_reader_that_pauses_past_full_buffers_gets_everything_once_in_order() {
    let mut config = Config::for_test();
    config.client.max_queue_bytes = 256 * 1024 * 1024;
    config.client.write_timeout = Duration::from_secs(60);
    let node = start(config);
    let mut paused = connected(&node, "paused").await;
    paused.subscribe(2, "chat:firehose").await;
    const PUBLICATIONS: usize = 6000;
    Api::new(node.addr, TEST_API_KEY)
        .flood("chat:firehose", PUBLICATIONS, 4000)
        .await;
    for n in 0..PUBLICATIONS {
        let (_, publication) = paused.publication().await;
        let data: serde_json::Value = serde_json::from_slice(&publication.data).unwrap();
        assert_eq!(
            data["n"], n,
            "a publication was lost, repeated or reordered"
        );
    }
    paused.send_json(&[json!({"id":9,"ping":{}})]).await;
    assert!(paused.reply(9).await.ping.is_some());
}

#[tokio::test]
async fn write_delay_joins_what_arrives_meanwhile_into_one_frame() {
    let mut config = Config::for_test();
    config.client.write_delay = Duration::from_millis(300);
    let node = start(config);
    let mut c = connected(&node, "alice").await;
    c.subscribe(2, "chat:1").await;
    let api = Api::new(node.addr, TEST_API_KEY);
    // The subscribe reply was a write: let a quiet period (longer than the delay) pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // After a quiet period the first message goes out at once...
    let started = std::time::Instant::now();
    api.call("publish", json!({"channel":"chat:1","data":{"n":0}}))
        .await;
    assert_eq!(c.next_frame_len().await, 1);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "not delayed"
    );
    c.publication().await;
    // ...and what follows within the delay shares the next write.
    for n in 1..=5 {
        api.call("publish", json!({"channel":"chat:1","data":{"n":n}}))
            .await;
    }
    assert_eq!(c.next_frame_len().await, 5);
    for n in 1..=5 {
        let (_, publication) = c.publication().await;
        let data: serde_json::Value = serde_json::from_slice(&publication.data).unwrap();
        assert_eq!(data["n"], n);
    }
}

/// The WebSocket layer itself, on raw bytes: what each engine answers to handshakes, control
/// frames, fragments and frames a client library would not send.
mod frames {
    use herald::testing::raw_ws::{self, RawWs};

    use super::*;

    fn connect_frame(user: &str) -> Vec<u8> {
        json!({"id":1,"connect":{"token":token(user)}})
            .to_string()
            .into_bytes()
    }

    /// Reads frames up to the reply with `id`.
    async fn reply(ws: &mut RawWs, id: u64) -> serde_json::Value {
        loop {
            let frame = ws.read_frame().await.expect("connection ended");
            assert_eq!(frame.opcode, raw_ws::OP_TEXT, "{frame:?}");
            for line in frame.payload.split(|&b| b == b'\n') {
                let message: serde_json::Value = serde_json::from_slice(line).unwrap();
                if message["id"] == id {
                    return message;
                }
            }
        }
    }

    #[tokio::test]
    async fn only_the_websocket_path_upgrades_and_a_plain_request_there_is_refused() {
        let node = node();
        let elsewhere = raw_ws::handshake_request(node.addr, "/nowhere", "");
        let (_, answer) = RawWs::open(node.addr, elsewhere.as_bytes()).await;
        assert_eq!(answer.status, 404);
        let api = Api::new(node.addr, TEST_API_KEY);
        let (status, _) = api.request("GET", "/connection/websocket", &[], "").await;
        assert_eq!(status, 400, "a GET without Upgrade");
    }

    #[tokio::test]
    async fn handshake_errors_get_their_status() {
        let node = node();
        let no_key = format!(
            "GET /connection/websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
            node.addr
        );
        let (_, answer) = RawWs::open(node.addr, no_key.as_bytes()).await;
        assert_eq!(answer.status, 400, "no Sec-WebSocket-Key");
        let old_version = format!(
            "GET /connection/websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 8\r\n\r\n",
            node.addr
        );
        let (_, answer) = RawWs::open(node.addr, old_version.as_bytes()).await;
        assert_eq!(answer.status, 426, "version 8");
        assert_eq!(answer.header("sec-websocket-version"), Some("13"));
    }

    #[tokio::test]
    async fn the_handshake_agrees_to_the_subprotocol_offered_first() {
        let node = node();
        let request = raw_ws::handshake_request(
            node.addr,
            "/connection/websocket",
            "Sec-WebSocket-Protocol: mqtt, centrifuge-protobuf, centrifuge-json\r\n",
        );
        let (_, answer) = RawWs::open(node.addr, request.as_bytes()).await;
        assert_eq!(answer.status, 101);
        assert_eq!(
            answer.header("sec-websocket-protocol"),
            Some("centrifuge-protobuf")
        );
        let (_, answer) = RawWs::open(
            node.addr,
            raw_ws::handshake_request(node.addr, "/connection/websocket", "").as_bytes(),
        )
        .await;
        assert_eq!(answer.header("sec-websocket-protocol"), None);
    }

    #[tokio::test]
    async fn a_node_shutting_down_refuses_new_websockets_with_503() {
        let node = node();
        node.node.shutdown();
        let request = raw_ws::handshake_request(node.addr, "/connection/websocket", "");
        let (_, answer) = RawWs::open(node.addr, request.as_bytes()).await;
        assert_eq!(answer.status, 503);
    }

    /// A client may send its first frame right behind the handshake request, in one write.
    #[tokio::test]
    async fn a_frame_sent_with_the_handshake_request_is_read() {
        let node = node();
        let mut bytes =
            raw_ws::handshake_request(node.addr, "/connection/websocket", "").into_bytes();
        bytes.extend(raw_ws::client_frame(
            true,
            raw_ws::OP_TEXT,
            &connect_frame("alice"),
        ));
        let (mut ws, answer) = RawWs::open(node.addr, &bytes).await;
        assert_eq!(answer.status, 101);
        assert!(reply(&mut ws, 1).await["connect"]["client"].is_string());
    }

    #[tokio::test]
    async fn fragmented_messages_are_joined_up_to_the_size_limit() {
        let mut config = Config::for_test();
        config.client.max_message_size = 1024;
        let node = start(config);
        let mut ws = RawWs::connect(node.addr).await;
        let connect = connect_frame("alice");
        let (a, rest) = connect.split_at(10);
        let (b, c) = rest.split_at(10);
        ws.send_frame(false, raw_ws::OP_TEXT, a).await;
        // A ping between fragments is answered and does not disturb the message.
        ws.send_frame(true, raw_ws::OP_PING, b"between").await;
        ws.send_frame(false, raw_ws::OP_CONTINUATION, b).await;
        ws.send_frame(true, raw_ws::OP_CONTINUATION, c).await;
        let pong = ws.read_frame().await.expect("pong");
        assert_eq!(
            (pong.opcode, &pong.payload[..]),
            (raw_ws::OP_PONG, &b"between"[..])
        );
        assert!(reply(&mut ws, 1).await["connect"]["client"].is_string());

        // Fragments of 600 bytes each: the second takes the message past 1024.
        ws.send_frame(false, raw_ws::OP_TEXT, &[b' '; 600]).await;
        ws.send_frame(true, raw_ws::OP_CONTINUATION, &[b' '; 600])
            .await;
        let close = ws.until_close().await.expect("close frame");
        assert_eq!(close.close_code(), Some(1009));
    }

    #[tokio::test]
    async fn a_continuation_without_a_message_is_a_bad_request() {
        let node = node();
        let mut ws = RawWs::connect(node.addr).await;
        ws.send_frame(true, raw_ws::OP_CONTINUATION, b"{}").await;
        let close = ws.until_close().await.expect("close frame");
        assert_eq!(close.close_code(), Some(3501));
    }

    #[tokio::test]
    async fn pings_get_their_payload_back_and_a_close_is_answered_with_a_close() {
        let node = node();
        let mut ws = RawWs::connect(node.addr).await;
        ws.send_frame(true, raw_ws::OP_PING, b"are you there").await;
        let pong = ws.read_frame().await.expect("pong");
        assert_eq!(pong.opcode, raw_ws::OP_PONG);
        assert_eq!(pong.payload, b"are you there");
        // An unsolicited pong is ignored.
        ws.send_frame(true, raw_ws::OP_PONG, b"").await;
        ws.send_frame(true, raw_ws::OP_CLOSE, &1000u16.to_be_bytes())
            .await;
        let close = ws.read_frame().await.expect("close answered");
        assert_eq!(close.opcode, raw_ws::OP_CLOSE);
        assert!(ws.closed().await);
    }

    /// The lean engine's upgrade service takes every upgrade request: on another path, even one
    /// of the application's, it answers a plain 404.
    #[tokio::test]
    async fn lean_answers_an_upgrade_on_any_other_path_with_404() {
        let mut config = Config::for_test();
        config.server.websocket_engine = WebSocketEngine::Lean;
        let node = start(config);
        for path in ["/api/publish", "/connection/websocket/x", "/connection/sse"] {
            let request = raw_ws::handshake_request(node.addr, path, "");
            let (_, answer) = RawWs::open(node.addr, request.as_bytes()).await;
            assert_eq!(answer.status, 404, "{path}");
        }
    }

    /// The lean engine refuses a frame over the limit from its header, before any of its payload
    /// arrives (actix-ws reads the whole frame first, so this one is the lean engine's).
    #[tokio::test]
    async fn lean_refuses_a_frame_over_the_limit_from_its_header_alone() {
        let mut config = Config::for_test();
        config.server.websocket_engine = WebSocketEngine::Lean;
        let node = start(config);
        let mut ws = RawWs::connect(node.addr).await;
        ws.send_raw(&raw_ws::client_frame_header(
            true,
            raw_ws::OP_TEXT,
            10_000_000,
        ))
        .await;
        let close = ws.until_close().await.expect("close frame");
        assert_eq!(close.close_code(), Some(1009));
    }

    /// A client whose socket takes nothing more (it stopped reading) is closed once a write has
    /// waited `client.write_timeout`, even while its queue bound would still take far more.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_gone_within_the_write_timeout() {
        let mut config = Config::for_test();
        config.client.write_timeout = Duration::from_millis(300);
        config.client.max_queue_bytes = 512 * 1024 * 1024;
        let node = start(config);
        let api = Api::new(node.addr, TEST_API_KEY);
        let mut stalled = connected(&node, "stalled").await;
        stalled.subscribe(2, "chat:firehose").await;
        // More than loopback's socket buffers hold, on both sides.
        api.flood("chat:firehose", 6000, 4000).await;
        eventually("the stalled client is gone", || {
            std::future::ready(node.node.info().num_clients == 0)
        })
        .await;
        assert_eq!(
            api.metric("herald_client_write_timeouts_total", "").await,
            1.0
        );
        drop(stalled);
    }
}
