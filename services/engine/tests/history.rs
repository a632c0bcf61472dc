//! History, positioning and recovery on the memory broker, driven through sessions: what a
//! client sees when it subscribes, recovers, reads history, or misses a publication.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_engine::broker::{HistoryQuery, StreamPosition};
use herald_engine::config::{ChannelConfig, ChannelOptions, ClientConfig, Namespace};
use herald_engine::error::NodeError;
use herald_engine::testing::lossy::LossyBroker;
use herald_engine::testing::node::{arrive, node_config};
use herald_engine::testing::session::{command, connected, drain_all};
use herald_engine::{Flow, MemoryBroker, Node, NodeConfig, PublishOptions, Session};
use serde_json::{Value, json};

/// `chat:` keeps 5 publications for a minute and lets clients recover and read history;
/// `plain:` has no history.
fn node() -> Node {
    let chat = ChannelOptions {
        allow_subscribe_for_client: true,
        history_size: 5,
        history_ttl: Duration::from_secs(60),
        allow_recovery: true,
        allow_history_for_subscriber: true,
        ..Default::default()
    };
    let plain = ChannelOptions {
        allow_subscribe_for_client: true,
        ..Default::default()
    };
    let config = node_config(ChannelConfig {
        namespaces: vec![
            Namespace {
                name: "chat".into(),
                options: chat,
            },
            Namespace {
                name: "plain".into(),
                options: plain,
            },
        ],
        ..Default::default()
    });
    Node::new(config, Arc::new(MemoryBroker::new())).unwrap()
}

async fn publish(node: &Node, channel: &str, n: u64) -> Option<StreamPosition> {
    node.publish(
        channel,
        format!("{{\"n\":{n}}}").into(),
        PublishOptions::default(),
    )
    .await
    .unwrap()
}

fn ns(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| m["push"]["pub"]["data"]["n"].as_u64())
        .collect()
}

#[tokio::test]
async fn publications_get_consecutive_offsets_in_one_epoch() {
    let node = node();
    let first = publish(&node, "chat:1", 1).await.expect("history channel");
    let second = publish(&node, "chat:1", 2).await.expect("history channel");
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(first.epoch, second.epoch);
    assert!(!first.epoch.is_empty());
    assert_eq!(
        publish(&node, "plain:1", 1).await,
        None,
        "no history, no position"
    );
    let skipped = node
        .publish(
            "chat:1",
            Bytes::from_static(b"{}"),
            PublishOptions {
                skip_history: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(skipped, None, "skip_history publishes without an offset");
}

#[tokio::test]
async fn a_positioned_subscribe_tells_the_position_and_live_publications_carry_offsets() {
    let node = node();
    publish(&node, "chat:1", 1).await;
    let mut s = connected(&node, "alice").await;
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true}}),
    )
    .await;
    let sub = &replies[0]["subscribe"];
    assert_eq!(sub["recoverable"], true);
    assert_eq!(sub["positioned"], true);
    assert_eq!(sub["offset"], 1);
    assert!(sub["epoch"].is_string());
    assert!(sub.get("recovered").is_none(), "not asked to recover");

    publish(&node, "chat:1", 2).await;
    let messages = drain_all(&mut s).await;
    assert_eq!(messages[0]["push"]["pub"]["offset"], 2);
}

#[tokio::test]
async fn a_client_recovers_exactly_what_it_missed_then_continues_live() {
    let node = node();
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
    publish(&node, "chat:1", 1).await;
    publish(&node, "chat:1", 2).await;
    assert_eq!(ns(&drain_all(&mut s).await), [1, 2]);
    drop(s); // the connection is lost

    for n in 3..=5 {
        publish(&node, "chat:1", n).await;
    }
    let mut s = connected(&node, "alice").await;
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true,"recover":true,"offset":2,"epoch":epoch}}),
    )
    .await;
    let sub = &replies[0]["subscribe"];
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["was_recovering"], true);
    assert_eq!(sub["offset"], 5);
    let recovered: Vec<u64> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(recovered, [3, 4, 5]);
    publish(&node, "chat:1", 6).await;
    assert_eq!(ns(&drain_all(&mut s).await), [6]);
}

#[tokio::test]
async fn live_publications_around_the_subscribe_are_merged_by_offset_after_the_reply() {
    let node = node();
    let first = publish(&node, "chat:1", 1).await.unwrap();
    let mut s = connected(&node, "alice").await;
    let cmd = json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true,"recover":true,"offset":0,"epoch":"old"}});
    assert_eq!(
        s.handle_frame(cmd.to_string().as_bytes()).await,
        Flow::Continue
    );
    // Before the reply goes out, publication 1 (already in the reply's position) arrives live
    // too, as it does when the hub join and the stream read race; then 2.
    let live = |n: u64| {
        Bytes::from(format!(
            r#"{{"push":{{"channel":"chat:1","pub":{{"data":{{"n":{n}}},"offset":{n}}}}}}}"#
        ))
    };
    assert_eq!(arrive(&node, "chat:1", 1, &first.epoch, live(1)), 1);
    assert_eq!(arrive(&node, "chat:1", 2, &first.epoch, live(2)), 1);
    let messages = drain_all(&mut s).await;
    assert_eq!(messages[0]["subscribe"]["offset"], 1, "{messages:?}");
    // `false` is left out of the JSON, as Centrifugo does.
    assert_eq!(
        messages[0]["subscribe"].get("recovered"),
        None,
        "another epoch"
    );
    assert_eq!(messages[0]["subscribe"]["was_recovering"], true);
    assert_eq!(
        ns(&messages[1..]),
        [2],
        "after the reply, without the one the reply covers"
    );
}

/// Subscribes alice to chat:1 (positioned) and returns the session and the stream's epoch.
async fn positioned(node: &Node) -> (Session, String) {
    let mut s = connected(node, "alice").await;
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true}}),
    )
    .await;
    let epoch = replies[0]["subscribe"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    (s, epoch)
}

#[tokio::test]
async fn a_live_publication_already_in_the_reply_is_not_sent_twice() {
    let node = node();
    let (mut s, epoch) = positioned(&node).await;
    publish(&node, "chat:1", 1).await;
    assert_eq!(ns(&drain_all(&mut s).await), [1]);
    // Offset 1 again (delivered twice on its way): dropped.
    assert_eq!(
        arrive(
            &node,
            "chat:1",
            1,
            &epoch,
            Bytes::from_static(b"{\"dup\":true}")
        ),
        1
    );
    publish(&node, "chat:1", 2).await;
    assert_eq!(ns(&drain_all(&mut s).await), [2]);
}

const LOST: &str =
    r#"{"push":{"channel":"chat:1","unsubscribe":{"code":2500,"reason":"insufficient state"}}}"#;

#[tokio::test]
async fn a_gap_makes_the_client_resubscribe_with_2500() {
    let node = node();
    let (mut s, epoch) = positioned(&node).await;
    publish(&node, "chat:1", 1).await;
    assert_eq!(ns(&drain_all(&mut s).await), [1]);
    // Offset 3 arrives while 2 never did (lost between broker and node).
    assert_eq!(
        arrive(&node, "chat:1", 3, &epoch, Bytes::from_static(b"{}")),
        1
    );
    let messages = drain_all(&mut s).await;
    assert_eq!(messages, [serde_json::from_str::<Value>(LOST).unwrap()]);
    assert_eq!(node.info().num_subs, 0, "the subscription is gone");
    publish(&node, "chat:1", 4).await;
    assert!(drain_all(&mut s).await.is_empty());
}

#[tokio::test]
async fn a_publication_from_a_new_epoch_makes_the_client_resubscribe() {
    let node = node();
    let (mut s, _) = positioned(&node).await;
    publish(&node, "chat:1", 1).await;
    assert_eq!(ns(&drain_all(&mut s).await), [1]);
    // The stream was lost and started again: offset 1 of another epoch is not a duplicate.
    assert_eq!(
        arrive(&node, "chat:1", 1, "a-new-epoch", Bytes::from_static(b"{}")),
        1
    );
    let messages = drain_all(&mut s).await;
    assert_eq!(messages, [serde_json::from_str::<Value>(LOST).unwrap()]);
}

#[tokio::test]
async fn too_far_behind_or_another_epoch_is_not_recovered() {
    let node = node();
    let first = publish(&node, "chat:1", 1).await.unwrap();
    for n in 2..=8 {
        publish(&node, "chat:1", n).await;
    }
    let mut s = connected(&node, "alice").await;
    // Offset 1: publications 2..8 were missed, but only 4..8 are kept (history_size 5).
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true,"recover":true,"offset":1,"epoch":first.epoch}}),
    )
    .await;
    assert_eq!(
        replies[0]["subscribe"].get("recovered"),
        None,
        "not recovered"
    );
    assert_eq!(replies[0]["subscribe"]["was_recovering"], true);
    assert!(replies[0]["subscribe"].get("publications").is_none());
    assert_eq!(replies[0]["subscribe"]["offset"], 8);

    let mut s = connected(&node, "bob").await;
    let replies = command(
        &mut s,
        json!({"id":2,"subscribe":{"channel":"chat:1","recoverable":true,"recover":true,"offset":7,"epoch":"other"}}),
    )
    .await;
    assert_eq!(
        replies[0]["subscribe"].get("recovered"),
        None,
        "another epoch"
    );
    assert_eq!(replies[0]["subscribe"]["was_recovering"], true);
}

#[tokio::test]
async fn the_history_command_reads_with_limits_for_subscribers_only() {
    let node = node();
    for n in 1..=4 {
        publish(&node, "chat:1", n).await;
    }
    let mut s = connected(&node, "alice").await;
    let replies = command(
        &mut s,
        json!({"id":2,"history":{"channel":"chat:1","limit":-1}}),
    )
    .await;
    assert_eq!(replies[0]["error"]["code"], 103, "not subscribed");
    command(&mut s, json!({"id":3,"subscribe":{"channel":"chat:1"}})).await;
    let replies = command(
        &mut s,
        json!({"id":4,"history":{"channel":"chat:1","limit":2}}),
    )
    .await;
    let h = &replies[0]["history"];
    assert_eq!(h["offset"], 4);
    let offsets: Vec<u64> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2]);
    let replies = command(
        &mut s,
        json!({"id":5,"history":{"channel":"chat:1","limit":-1,"reverse":true}}),
    )
    .await;
    assert_eq!(replies[0]["history"]["publications"][0]["offset"], 4);
    let replies = command(
        &mut s,
        json!({"id":6,"history":{"channel":"chat:1","limit":-1,"since":{"offset":1,"epoch":"nope"}}}),
    )
    .await;
    assert_eq!(replies[0]["error"]["code"], 112, "another epoch");
    command(&mut s, json!({"id":7,"subscribe":{"channel":"plain:1"}})).await;
    let replies = command(&mut s, json!({"id":8,"history":{"channel":"plain:1"}})).await;
    assert_eq!(replies[0]["error"]["code"], 108, "plain: keeps no history");
}

#[tokio::test]
async fn node_history_checks_the_namespace_and_the_epoch() {
    let node = node();
    let pos = publish(&node, "chat:1", 1).await.unwrap();
    let page = node
        .history(
            "chat:1",
            HistoryQuery {
                limit: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.position, pos);
    assert_eq!(
        node.history("plain:1", HistoryQuery::default()).await,
        Err(NodeError::NotAvailable)
    );
    node.remove_history("chat:1").await.unwrap();
    let page = node
        .history(
            "chat:1",
            HistoryQuery {
                limit: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(page.position, pos, "the position outlives the publications");
}

/// `feed:` forces recovery: server-side subscriptions (token `channels`) are positioned too.
fn forcing_node() -> Node {
    let feed = ChannelOptions {
        history_size: 10,
        history_ttl: Duration::from_secs(60),
        force_recovery: true,
        ..Default::default()
    };
    let config = node_config(ChannelConfig {
        namespaces: vec![Namespace {
            name: "feed".into(),
            options: feed,
        }],
        ..Default::default()
    });
    Node::new(config, Arc::new(MemoryBroker::new())).unwrap()
}

/// Connects with a token whose `channels` claim subscribes it to `feed:1`; `subs` is the
/// connect request's recovery map.
async fn connected_to_feed(node: &Node, subs: Value) -> (Session, Value) {
    use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};
    let token = TokenSigner::hmac(herald_engine::testing::node::TEST_SECRET, HmacAlg::HS256)
        .sign(&NewConnectToken {
            sub: "alice".into(),
            channels: vec!["feed:1".into()],
            ..Default::default()
        })
        .unwrap();
    let mut s = node.session(herald_protocol::Format::Json);
    let replies = command(
        &mut s,
        json!({"id":1,"connect":{"token":token,"subs":subs}}),
    )
    .await;
    let result = replies[0]["connect"]["subs"]["feed:1"].clone();
    (s, result)
}

#[tokio::test]
async fn server_side_subscriptions_are_positioned_and_recover_through_connect() {
    let node = forcing_node();
    publish(&node, "feed:1", 1).await;
    let (mut s, sub) = connected_to_feed(&node, json!({})).await;
    assert_eq!(sub["recoverable"], true, "{sub}");
    assert_eq!(sub["positioned"], true);
    assert_eq!(sub["offset"], 1);
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    publish(&node, "feed:1", 2).await;
    assert_eq!(ns(&drain_all(&mut s).await), [2]);
    drop(s);

    for n in 3..=4 {
        publish(&node, "feed:1", n).await;
    }
    let subs = json!({"feed:1":{"recover":true,"offset":2,"epoch":epoch}});
    let (mut s, sub) = connected_to_feed(&node, subs).await;
    assert_eq!(sub["recovered"], true, "{sub}");
    let recovered: Vec<u64> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(recovered, [3, 4]);
    publish(&node, "feed:1", 5).await;
    assert_eq!(ns(&drain_all(&mut s).await), [5]);
}

#[tokio::test]
async fn a_gap_in_a_server_side_subscription_disconnects_with_3010() {
    let node = forcing_node();
    let (mut s, sub) = connected_to_feed(&node, json!({})).await;
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    assert_eq!(
        arrive(&node, "feed:1", 2, &epoch, Bytes::from_static(b"{}")),
        1
    );
    let mut frame = bytes::BytesMut::new();
    assert_eq!(
        s.drain(&mut frame).await,
        Flow::Close(herald_protocol::codes::disconnect::INSUFFICIENT_STATE)
    );
}

/// A node whose broker loses the publications a test asks it to (`chat:` as in [`node`]),
/// with periodic position checks every 40 s and no pings in the way.
fn lossy_node() -> (Node, Arc<LossyBroker>) {
    let chat = ChannelOptions {
        allow_subscribe_for_client: true,
        history_size: 5,
        history_ttl: Duration::from_secs(60),
        allow_recovery: true,
        ..Default::default()
    };
    let config = NodeConfig {
        client: ClientConfig {
            ping_interval: Duration::from_secs(3600),
            channel_position_check_delay: Duration::from_secs(40),
            ..Default::default()
        },
        ..node_config(ChannelConfig {
            namespaces: vec![Namespace {
                name: "chat".into(),
                options: chat,
            }],
            ..Default::default()
        })
    };
    let broker = Arc::new(LossyBroker::new());
    (Node::new(config, broker.clone()).unwrap(), broker)
}

/// Fires the session's clocks at `at` and drains what that queued.
async fn tick(s: &mut Session, at: Instant) -> Vec<Value> {
    assert_eq!(s.on_timer(at), Flow::Continue);
    drain_all(s).await
}

#[tokio::test]
async fn a_lost_last_publication_is_caught_by_the_periodic_position_check() {
    let (node, broker) = lossy_node();
    let (mut s, _) = positioned(&node).await;
    let t0 = Instant::now();
    publish(&node, "chat:1", 1).await;
    assert_eq!(ns(&drain_all(&mut s).await), [1]);
    // Publication 2 reaches the stream but never this node, and nothing follows it.
    broker.lose_next(1);
    publish(&node, "chat:1", 2).await;
    assert!(drain_all(&mut s).await.is_empty());
    // The first check finds the client behind the stream: maybe still on its way.
    assert!(tick(&mut s, t0 + Duration::from_secs(41)).await.is_empty());
    // A whole delay later it still has not arrived: lost, the client must recover.
    let messages = tick(&mut s, t0 + Duration::from_secs(82)).await;
    assert_eq!(messages, [serde_json::from_str::<Value>(LOST).unwrap()]);
    assert_eq!(node.info().num_subs, 0, "the subscription is gone");
}

#[tokio::test]
async fn a_publication_still_on_its_way_at_a_check_is_not_taken_for_lost() {
    let (node, broker) = lossy_node();
    let (mut s, epoch) = positioned(&node).await;
    let t0 = Instant::now();
    publish(&node, "chat:1", 1).await;
    assert_eq!(ns(&drain_all(&mut s).await), [1]);
    broker.lose_next(1);
    publish(&node, "chat:1", 2).await;
    assert!(tick(&mut s, t0 + Duration::from_secs(41)).await.is_empty());
    // It arrives late (between the two checks), as a slow broker would deliver it.
    let late = r#"{"push":{"channel":"chat:1","pub":{"data":{"n":2},"offset":2}}}"#;
    assert_eq!(
        arrive(
            &node,
            "chat:1",
            2,
            &epoch,
            Bytes::from_static(late.as_bytes())
        ),
        1
    );
    assert_eq!(ns(&drain_all(&mut s).await), [2]);
    assert!(tick(&mut s, t0 + Duration::from_secs(82)).await.is_empty());
    assert!(tick(&mut s, t0 + Duration::from_secs(123)).await.is_empty());
    // Still subscribed and positioned: the next publication comes through.
    publish(&node, "chat:1", 3).await;
    assert_eq!(ns(&drain_all(&mut s).await), [3]);
    assert_eq!(node.info().num_subs, 1);
}
