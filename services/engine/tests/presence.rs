//! Presence and join/leave pushes on the memory broker, driven through sessions.

use std::sync::Arc;

use herald_engine::config::{ChannelConfig, ChannelOptions, Namespace};
use herald_engine::testing::node::node_config;
use herald_engine::testing::session::{command, connected, drain_all};
use herald_engine::{MemoryBroker, Node};
use serde_json::{Value, json};

/// `lobby:` keeps presence and sends joins/leaves to subscribers that ask; `hall:` to all.
fn node() -> Node {
    let lobby = ChannelOptions {
        allow_subscribe_for_client: true,
        presence: true,
        allow_presence_for_subscriber: true,
        join_leave: true,
        ..Default::default()
    };
    let hall = ChannelOptions {
        force_push_join_leave: true,
        ..lobby.clone()
    };
    let config = node_config(ChannelConfig {
        namespaces: vec![
            Namespace {
                name: "lobby".into(),
                options: lobby,
            },
            Namespace {
                name: "hall".into(),
                options: hall,
            },
        ],
        ..Default::default()
    });
    Node::new(config, Arc::new(MemoryBroker::new())).unwrap()
}

/// (event, user) of the join/leave pushes among `messages`.
fn joins(messages: &[Value]) -> Vec<(&'static str, String)> {
    messages
        .iter()
        .filter_map(|m| {
            let push = m.get("push")?;
            let (kind, body) = if let Some(j) = push.get("join") {
                ("join", j)
            } else {
                ("leave", push.get("leave")?)
            };
            Some((kind, body["info"]["user"].as_str()?.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn joins_and_leaves_reach_subscribers_that_asked() {
    let node = node();
    let mut bob = connected(&node, "bob").await;
    let mut alice = connected(&node, "alice").await;
    let own = command(
        &mut bob,
        json!({"id":2,"subscribe":{"channel":"lobby:1","join_leave":true}}),
    )
    .await;
    assert_eq!(
        joins(&own),
        [("join", "bob".to_owned())],
        "its own join too"
    );
    command(
        &mut alice,
        json!({"id":2,"subscribe":{"channel":"lobby:1"}}),
    )
    .await;
    assert_eq!(
        joins(&drain_all(&mut bob).await),
        [("join", "alice".to_owned())]
    );

    command(
        &mut alice,
        json!({"id":3,"unsubscribe":{"channel":"lobby:1"}}),
    )
    .await;
    // The leave is published in the background.
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(drain_all(&mut bob).await);
        if !got.is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(joins(&got), [("leave", "alice".to_owned())]);
    let mut carol = connected(&node, "carol").await;
    command(
        &mut carol,
        json!({"id":2,"subscribe":{"channel":"lobby:1"}}),
    )
    .await;
    assert!(
        joins(&drain_all(&mut alice).await).is_empty(),
        "alice never asked"
    );
}

#[tokio::test]
async fn forced_join_leave_reaches_everyone() {
    let node = node();
    let mut bob = connected(&node, "bob").await;
    command(&mut bob, json!({"id":2,"subscribe":{"channel":"hall:1"}})).await;
    let mut alice = connected(&node, "alice").await;
    command(&mut alice, json!({"id":2,"subscribe":{"channel":"hall:1"}})).await;
    assert_eq!(
        joins(&drain_all(&mut bob).await),
        [("join", "alice".to_owned())]
    );
}

#[tokio::test]
async fn presence_follows_subscriptions() {
    let node = node();
    let mut bob = connected(&node, "bob").await;
    let mut alice = connected(&node, "alice").await;
    command(&mut bob, json!({"id":2,"subscribe":{"channel":"lobby:1"}})).await;
    command(
        &mut alice,
        json!({"id":2,"subscribe":{"channel":"lobby:1"}}),
    )
    .await;
    assert_eq!(node.presence_stats("lobby:1").await.unwrap(), (2, 2));
    let replies = command(&mut bob, json!({"id":3,"presence":{"channel":"lobby:1"}})).await;
    assert_eq!(
        replies[0]["presence"]["presence"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    drop(alice);
    for _ in 0..100 {
        if node.presence_stats("lobby:1").await.unwrap() == (1, 1) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("alice never left presence");
}
