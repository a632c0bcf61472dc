//! Sessions driven directly, without sockets: what a transport sees through `handle_frame`,
//! `drain` and `on_timer`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use herald_engine::config::{ChannelConfig, ChannelOptions, ClientConfig, Namespace};
use herald_engine::testing::node::node_config;
use herald_engine::{Flow, MemoryBroker, Node, NodeConfig, PublishOptions, Session};
use herald_protocol::Format;
use herald_protocol::codes::disconnect;
use serde_json::{Value, json};

fn node_with(client: ClientConfig) -> Node {
    let config = NodeConfig {
        client,
        ..node_config(ChannelConfig {
            namespaces: vec![Namespace {
                name: "chat".into(),
                options: ChannelOptions {
                    allow_subscribe_for_client: true,
                    allow_publish_for_subscriber: true,
                    ..Default::default()
                },
            }],
            ..Default::default()
        })
    };
    Node::new(config, Arc::new(MemoryBroker::new())).unwrap()
}

fn node() -> Node {
    node_with(ClientConfig::default())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(user: &str, exp: u64) -> String {
    herald_engine::testing::node::token(user, Some(exp))
}

async fn frame(session: &mut Session) -> (Flow, Vec<Value>) {
    let mut buf = BytesMut::new();
    let flow = session.drain(&mut buf).await;
    let text = String::from_utf8(buf.to_vec()).unwrap();
    let messages = text
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (flow, messages)
}

async fn connected(node: &Node, user: &str) -> Session {
    let mut s = node.session(Format::Json);
    let cmd = json!({"id":1,"connect":{"token":token(user, now() + 3600)}});
    assert_eq!(
        s.handle_frame(cmd.to_string().as_bytes()).await,
        Flow::Continue
    );
    let (_, replies) = frame(&mut s).await;
    assert!(replies[0]["connect"]["client"].is_string(), "{replies:?}");
    s
}

#[tokio::test]
async fn everything_queued_leaves_in_one_frame_in_order() {
    let node = node();
    let mut s = connected(&node, "alice").await;
    s.handle_frame(br#"{"id":2,"subscribe":{"channel":"chat:1"}}"#)
        .await;
    for n in 0..5 {
        node.publish(
            "chat:1",
            format!("{{\"n\":{n}}}").into(),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    let (flow, messages) = frame(&mut s).await;
    assert_eq!(flow, Flow::Continue);
    assert_eq!(messages[0], json!({"id":2,"subscribe":{}}));
    let ns: Vec<_> = messages[1..]
        .iter()
        .map(|m| m["push"]["pub"]["data"]["n"].clone())
        .collect();
    assert_eq!(ns, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn publications_of_several_channels_leave_in_the_order_they_were_published() {
    let node = node();
    let mut s = connected(&node, "alice").await;
    for (id, ch) in [(2, "chat:a"), (3, "chat:b"), (4, "chat:c")] {
        let cmd = json!({"id":id,"subscribe":{"channel":ch}});
        s.handle_frame(cmd.to_string().as_bytes()).await;
    }
    frame(&mut s).await;
    let order = [
        "chat:b", "chat:a", "chat:a", "chat:c", "chat:b", "chat:c", "chat:a",
    ];
    for (n, ch) in order.iter().enumerate() {
        node.publish(
            ch,
            format!("{{\"n\":{n}}}").into(),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    let (_, messages) = frame(&mut s).await;
    let got: Vec<(String, u64)> = messages
        .iter()
        .map(|m| {
            (
                m["push"]["channel"].as_str().unwrap().to_owned(),
                m["push"]["pub"]["data"]["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = order
        .iter()
        .enumerate()
        .map(|(n, ch)| (ch.to_string(), n as u64))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn server_requests_are_applied_by_the_session_itself() {
    let node = node();
    let mut s = connected(&node, "alice").await;
    node.subscribe("alice", "chat:x", None, None, None)
        .await
        .unwrap();
    let (_, messages) = frame(&mut s).await;
    assert!(
        messages.is_empty(),
        "the control is applied during this drain"
    );
    node.publish("chat:x", "{\"n\":1}".into(), PublishOptions::default())
        .await
        .unwrap();
    let (_, messages) = frame(&mut s).await;
    assert_eq!(
        messages,
        vec![
            json!({"push":{"channel":"chat:x","subscribe":{}}}),
            json!({"push":{"channel":"chat:x","pub":{"data":{"n":1}}}}),
        ],
        "the subscribe push before the channel's publications"
    );
    assert_eq!(node.info().num_subs, 1);

    node.unsubscribe("alice", "chat:x", None).await.unwrap();
    frame(&mut s).await;
    let (_, messages) = frame(&mut s).await;
    assert_eq!(messages[0]["push"]["unsubscribe"]["code"], 2000);
    assert_eq!(node.info().num_subs, 0);
}

#[tokio::test]
async fn dropping_a_session_leaves_the_hub_and_registry() {
    let node = node();
    let mut s = connected(&node, "alice").await;
    s.handle_frame(br#"{"id":2,"subscribe":{"channel":"chat:1"}}"#)
        .await;
    assert_eq!((node.info().num_clients, node.info().num_subs), (1, 1));
    drop(s);
    assert_eq!((node.info().num_clients, node.info().num_subs), (0, 0));
}

#[tokio::test]
async fn refresh_extends_the_connection_and_checks_the_user() {
    let node = node();
    let mut s = connected(&node, "alice").await;
    let refresh = json!({"id":2,"refresh":{"token":token("alice", now() + 7200)}});
    s.handle_frame(refresh.to_string().as_bytes()).await;
    let (_, replies) = frame(&mut s).await;
    let ttl = replies[0]["refresh"]["ttl"].as_u64().unwrap();
    assert!((7190..=7200).contains(&ttl), "{replies:?}");
    assert_eq!(replies[0]["refresh"]["expires"], true);

    let other = json!({"id":3,"refresh":{"token":token("mallory", now() + 60)}});
    assert_eq!(
        s.handle_frame(other.to_string().as_bytes()).await,
        Flow::Close(disconnect::INVALID_TOKEN)
    );
    let expired = json!({"id":3,"refresh":{"token":token("alice", now() - 1)}});
    let mut s = connected(&node, "alice").await;
    assert_eq!(
        s.handle_frame(expired.to_string().as_bytes()).await,
        Flow::Close(disconnect::EXPIRED)
    );
}

#[tokio::test]
async fn an_expired_connection_closes_after_the_grace_delay() {
    let node = node_with(ClientConfig {
        expired_close_delay: Duration::from_millis(50),
        ..Default::default()
    });
    let mut s = node.session(Format::Json);
    let cmd = json!({"id":1,"connect":{"token":token("alice", now() + 1)}});
    s.handle_frame(cmd.to_string().as_bytes()).await;
    let expiry = s.deadline();
    assert!(expiry <= Instant::now() + Duration::from_millis(1100));
    assert_eq!(s.on_timer(expiry), Flow::Close(disconnect::EXPIRED));
}

#[tokio::test]
async fn a_failed_connect_leaves_the_session_unusable() {
    let node = node();
    let mut s = node.session(Format::Json);
    let cmd = json!({"id":1,"connect":{"token":token("alice", now() - 5)}});
    assert_eq!(
        s.handle_frame(cmd.to_string().as_bytes()).await,
        Flow::Continue
    );
    let (_, replies) = frame(&mut s).await;
    assert_eq!(replies[0]["error"]["code"], 109);
    let retry = json!({"id":2,"connect":{"token":token("alice", now() + 60)}});
    assert_eq!(
        s.handle_frame(retry.to_string().as_bytes()).await,
        Flow::Close(disconnect::BAD_REQUEST)
    );
}

#[tokio::test]
async fn protobuf_sessions_get_delimited_frames() {
    use prost::Message as _;
    let node = node();
    let mut s = node.session(Format::Protobuf);
    let connect = herald_protocol::proto::Command {
        id: 1,
        connect: Some(herald_protocol::proto::ConnectRequest {
            token: token("alice", now() + 60),
            ..Default::default()
        }),
        ..Default::default()
    };
    let subscribe = herald_protocol::proto::Command {
        id: 2,
        subscribe: Some(herald_protocol::proto::SubscribeRequest {
            channel: "chat:1".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut buf = Vec::new();
    connect.encode_length_delimited(&mut buf).unwrap();
    subscribe.encode_length_delimited(&mut buf).unwrap();
    assert_eq!(s.handle_frame(&buf).await, Flow::Continue);
    let mut out = BytesMut::new();
    s.drain(&mut out).await;
    let mut rest = &out[..];
    let first = herald_protocol::proto::Reply::decode_length_delimited(&mut rest).unwrap();
    let second = herald_protocol::proto::Reply::decode_length_delimited(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(first.connect.is_some());
    assert_eq!(second.id, 2);
    assert!(second.subscribe.is_some());
}

#[tokio::test]
async fn a_unidirectional_session_connects_with_a_bare_request_and_pushes_bare() {
    let node = node();
    let mut s = node.uni_session();
    assert_eq!(s.mode(), herald_engine::Mode::Unidirectional);
    let request = json!({"token": token("alice", now() + 3600)});
    assert_eq!(
        s.handle_frame(request.to_string().as_bytes()).await,
        Flow::Continue
    );
    let (_, pushes) = frame(&mut s).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert!(pushes[0]["connect"]["client"].is_string(), "{pushes:?}");
    assert!(pushes[0].get("id").is_none(), "{pushes:?}");
    assert!(pushes[0]["connect"].get("pong").is_none(), "{pushes:?}");

    // What the client says after connecting changes nothing: not even garbage closes it.
    let subscribe = json!({"id":2,"subscribe":{"channel":"chat:x"}});
    let ignored = [subscribe.to_string().into_bytes(), b"garbage".to_vec()];
    for frame_bytes in ignored {
        assert_eq!(s.handle_frame(&frame_bytes).await, Flow::Continue);
    }
    let (_, nothing) = frame(&mut s).await;
    assert!(nothing.is_empty(), "{nothing:?}");

    // Pings go out and need no answer: the pong deadline never closes the connection.
    // (Other clocks, the position check, fire in between.)
    let mut pings = 0;
    for _ in 0..10 {
        assert_eq!(s.on_timer(s.deadline()), Flow::Continue);
        let (_, out) = frame(&mut s).await;
        assert!(out.is_empty() || out == [json!({})], "{out:?}");
        pings += out.len();
    }
    assert!(pings >= 3, "{pings} pings");
}

#[tokio::test]
async fn a_unidirectional_connect_refused_closes() {
    let node = node();
    let cases = [
        (
            json!({"token": "bad"}).to_string(),
            disconnect::INVALID_TOKEN,
        ),
        (
            json!({"token": token("alice", now() - 5)}).to_string(),
            disconnect::EXPIRED,
        ),
        ("[]".to_owned(), disconnect::BAD_REQUEST),
        // A command is not a connect request: its `connect` field is unknown.
        (
            json!({"id":1,"connect":{"token": token("alice", now() + 60)}}).to_string(),
            disconnect::BAD_REQUEST,
        ),
    ];
    for (request, expected) in cases {
        let mut s = node.uni_session();
        assert_eq!(
            s.handle_frame(request.as_bytes()).await,
            Flow::Close(expected),
            "{request}"
        );
    }
}
