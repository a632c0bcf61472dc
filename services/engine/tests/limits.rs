//! Limits of a node, driven through sessions: connections per node and per user, connects per
//! second, commands per connection, subscription token expiry and what a recovery may carry.
//! Each is shown at its limit and one past it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_engine::auth::{HmacAlg, NewSubscribeToken, TokenSigner};
use herald_engine::config::{ChannelConfig, ChannelOptions, ClientConfig, Namespace};
use herald_engine::testing::node::{TEST_SECRET, node_config, token};
use herald_engine::testing::session::{command, connected, drain_all};
use herald_engine::{Flow, MemoryBroker, Node, NodeConfig, PublishOptions, Session};
use herald_protocol::Format;
use herald_protocol::codes::disconnect;
use serde_json::{Value, json};

/// `chat:` lets users subscribe and keeps 100 publications for recovery; `$`-channels need a
/// subscription token.
fn node_with(client: ClientConfig) -> Node {
    let chat = ChannelOptions {
        allow_subscribe_for_client: true,
        allow_publish_for_subscriber: true,
        history_size: 100,
        history_ttl: Duration::from_secs(60),
        allow_recovery: true,
        ..Default::default()
    };
    let config = NodeConfig {
        client,
        ..node_config(ChannelConfig {
            namespaces: vec![Namespace {
                name: "chat".into(),
                options: chat,
            }],
            ..Default::default()
        })
    };
    Node::new(config, Arc::new(MemoryBroker::new())).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a connect for `user`; the session's answer: its flow and what it queued.
async fn connect(node: &Node, user: &str) -> (Session, Flow, Vec<Value>) {
    let mut s = node.session(Format::Json);
    let cmd = json!({"id":1,"connect":{"token":token(user, None)}});
    let flow = s.handle_frame(cmd.to_string().as_bytes()).await;
    let queued = if flow == Flow::Continue {
        drain_all(&mut s).await
    } else {
        Vec::new()
    };
    (s, flow, queued)
}

fn sub_token(user: &str, channel: &str, exp: u64) -> String {
    TokenSigner::hmac(TEST_SECRET, HmacAlg::HS256)
        .sign(&NewSubscribeToken {
            sub: user.into(),
            channel: channel.into(),
            exp: Some(exp),
            info: None,
        })
        .unwrap()
}

#[tokio::test]
async fn the_node_takes_connection_limit_clients_and_refuses_the_next_with_3504() {
    let node = node_with(ClientConfig {
        connection_limit: 2,
        ..Default::default()
    });
    let (first, ..) = connect(&node, "a").await;
    let (_second, flow, _) = connect(&node, "b").await;
    assert_eq!(flow, Flow::Continue, "at the limit");
    let (_, flow, _) = connect(&node, "c").await;
    assert_eq!(
        flow,
        Flow::Close(disconnect::CONNECTION_LIMIT),
        "one past it"
    );
    drop(first);
    let (_third, flow, _) = connect(&node, "c").await;
    assert_eq!(
        flow,
        Flow::Continue,
        "a slot freed by a disconnect is taken again"
    );
    assert_eq!(node.info().num_clients, 2);
}

#[tokio::test]
async fn a_user_gets_user_connection_limit_connections_and_others_are_not_affected() {
    let node = node_with(ClientConfig {
        user_connection_limit: 2,
        ..Default::default()
    });
    let (_a1, ..) = connect(&node, "alice").await;
    let (_a2, flow, _) = connect(&node, "alice").await;
    assert_eq!(flow, Flow::Continue);
    let (_, flow, _) = connect(&node, "alice").await;
    assert_eq!(flow, Flow::Close(disconnect::CONNECTION_LIMIT));
    let (_b, flow, _) = connect(&node, "bob").await;
    assert_eq!(flow, Flow::Continue);
}

#[tokio::test]
async fn connects_past_connection_rate_limit_get_error_111() {
    let node = node_with(ClientConfig {
        connection_rate_limit: 2,
        ..Default::default()
    });
    let started = Instant::now();
    let mut accepted = 0;
    let mut refused = 0;
    for n in 0..6 {
        let (_, flow, queued) = connect(&node, &format!("u{n}")).await;
        assert_eq!(flow, Flow::Continue);
        if queued[0]["connect"]["client"].is_string() {
            accepted += 1;
        } else {
            assert_eq!(queued[0]["error"]["code"], 111, "{queued:?}");
            assert_eq!(queued[0]["error"]["temporary"], true, "the SDKs retry");
            refused += 1;
        }
    }
    // Six connects within a second cross at most one window boundary: two windows of two.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!((2..=4).contains(&accepted), "accepted {accepted}");
    assert_eq!(accepted + refused, 6);
}

#[tokio::test]
async fn commands_past_the_burst_get_error_111_and_are_not_run() {
    let node = node_with(ClientConfig {
        command_rate_limit: 1,
        command_rate_burst: 3,
        ..Default::default()
    });
    let mut s = connected(&node, "alice").await;
    let frame: String = (2..=6)
        .map(|id| json!({"id":id,"subscribe":{"channel":format!("chat:{id}")}}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(s.handle_frame(frame.as_bytes()).await, Flow::Continue);
    let replies = drain_all(&mut s).await;
    let by_id = |id: u64| replies.iter().find(|r| r["id"] == id).unwrap().clone();
    for id in 2..=4 {
        assert!(
            by_id(id)["subscribe"].is_object(),
            "within the burst: {replies:?}"
        );
    }
    for id in 5..=6 {
        assert_eq!(
            by_id(id)["error"]["code"],
            111,
            "past the burst: {replies:?}"
        );
    }
    assert_eq!(node.info().num_subs, 3, "refused commands were not run");
    let metrics = node.metrics().snapshot();
    assert!(
        metrics.limited.contains(&("command_rate_limit", 2)),
        "{metrics:?}"
    );
}

#[tokio::test]
async fn an_expired_subscription_token_ends_the_subscription_with_2501() {
    let node = node_with(ClientConfig {
        expired_sub_close_delay: Duration::ZERO,
        ..Default::default()
    });
    let mut s = connected(&node, "alice").await;
    let exp = now() + 2;
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"$secret","token":sub_token("alice", "$secret", exp)}}),
    )
    .await;
    assert_eq!(replies[0]["subscribe"]["expires"], true, "{replies:?}");
    let deadline = s.deadline();
    assert!(deadline <= Instant::now() + Duration::from_secs(3));
    assert!(deadline >= Instant::now() + Duration::from_millis(500));
    assert_eq!(s.on_timer(deadline), Flow::Continue);
    let pushes = drain_all(&mut s).await;
    assert_eq!(
        pushes,
        [
            json!({"push":{"channel":"$secret","unsubscribe":{"code":2501,"reason":"subscription expired"}}})
        ]
    );
    assert_eq!(node.info().num_subs, 0);
}

#[tokio::test]
async fn sub_refresh_moves_the_expiry() {
    let node = node_with(ClientConfig {
        expired_sub_close_delay: Duration::ZERO,
        ..Default::default()
    });
    let mut s = connected(&node, "alice").await;
    let token = sub_token("alice", "$secret", now() + 2);
    command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"$secret","token":token}}),
    )
    .await;
    let first_deadline = s.deadline();
    let fresh = sub_token("alice", "$secret", now() + 3600);
    let replies = command(
        &mut s,
        json!({"id":3,"sub_refresh":{"channel":"$secret","token":fresh}}),
    )
    .await;
    assert_eq!(replies[0]["sub_refresh"]["expires"], true, "{replies:?}");
    assert!(s.deadline() > first_deadline);
    assert_eq!(s.on_timer(first_deadline), Flow::Continue);
    assert!(drain_all(&mut s).await.is_empty(), "still subscribed");
    assert_eq!(node.info().num_subs, 1);
}

#[tokio::test]
async fn a_recovery_carries_no_more_than_half_the_queue() {
    // 8 KiB queue: 4 KiB of recovered publications per reply.
    let node = node_with(ClientConfig {
        max_queue_bytes: 8 * 1024,
        ..Default::default()
    });
    let mut s = connected(&node, "alice").await;
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true}}),
    )
    .await;
    let epoch = replies[0]["subscribe"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(s);
    let publish = |n: usize| {
        let node = node.clone();
        async move {
            let data = format!("{{\"pad\":\"{}\"}}", "x".repeat(1000));
            for _ in 0..n {
                node.publish("chat:1", data.clone().into(), PublishOptions::default())
                    .await
                    .unwrap();
            }
        }
    };
    let recover = |offset: u64| json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true,"recover":true,"offset":offset,"epoch":epoch}});

    publish(3).await; // ~3 KiB: fits
    let mut s = connected(&node, "alice").await;
    let sub = command(&mut s, recover(0)).await[0]["subscribe"].clone();
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["publications"].as_array().unwrap().len(), 3);
    drop(s);

    publish(2).await; // ~5 KiB from offset 0: does not
    let mut s = connected(&node, "alice").await;
    let sub = command(&mut s, recover(0)).await[0]["subscribe"].clone();
    assert_eq!(sub["was_recovering"], true);
    assert!(sub.get("recovered").is_none(), "{sub}");
    assert!(sub.get("publications").is_none(), "{sub}");
    assert_eq!(sub["offset"], 5, "the position is still told");
}
