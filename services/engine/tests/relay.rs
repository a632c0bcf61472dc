//! Requests to a session on any node (`Node::ask`, `Node::hand_local`): answered from this node
//! and, through a real Redis, from another.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_engine::broker::RedisBroker;
use herald_engine::config::{ChannelConfig, RedisConfig, RedisShardConfig};
use herald_engine::testing::node::node_config;
use herald_engine::testing::redis::RedisServer;
use herald_engine::{EmulationError, Inbox, MemoryBroker, Node, Relayed};

fn redis_node(redis: &RedisServer) -> Node {
    let config = RedisConfig {
        shards: vec![RedisShardConfig::Standalone { url: redis.url() }],
        prefix: format!("relay{}", std::process::id()),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        pubsub_connections: 1,
        pool_size: 2,
        tls_ca_cert: None,
    };
    let broker = RedisBroker::new(config).expect("redis broker");
    Node::new(node_config(ChannelConfig::default()), Arc::new(broker)).expect("node")
}

/// Answers every ask of `inbox` with "<question> answered", until the inbox is dropped.
fn answer_all(mut inbox: Inbox) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(item) = inbox.recv().await {
            if let Relayed::Ask(question, answer) = item {
                let mut text = String::from_utf8_lossy(&question).into_owned();
                text.push_str(" answered");
                answer.send(Bytes::from(text)).unwrap();
            }
        }
    })
}

/// Asks until the answer comes: the asked node's subscription to its node channel may still
/// be on its way when the test starts.
async fn ask_until_answered(asker: &Node, node: &str, session: &str) -> Bytes {
    for _ in 0..100 {
        match asker
            .ask(node, session, Bytes::from("poll"), Duration::from_secs(2))
            .await
        {
            Ok(answer) => return answer,
            Err(EmulationError::NoSuchNode(_) | EmulationError::NoAnswer) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("never answered");
}

#[tokio::test]
async fn an_ask_on_this_node_reaches_its_session_and_comes_back() {
    let node = Node::new(
        node_config(ChannelConfig::default()),
        Arc::new(MemoryBroker::new()),
    )
    .unwrap();
    let inbox = node.relay_inbox();
    let session = inbox.id().to_string();
    let task = answer_all(inbox);
    let answer = node
        .ask(
            node.uid(),
            &session,
            Bytes::from("poll"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(answer, Bytes::from("poll answered"));

    let unknown = "0".repeat(32);
    let refused = node
        .ask(node.uid(), &unknown, Bytes::new(), Duration::from_secs(5))
        .await;
    assert_eq!(refused, Err(EmulationError::NoSuchSession));
    let malformed = node
        .ask(node.uid(), "x", Bytes::new(), Duration::from_secs(5))
        .await;
    assert_eq!(malformed, Err(EmulationError::Malformed("session")));

    // A local hand-over reaches the session as it was sent.
    let mut inbox = node.relay_inbox();
    node.hand_local(inbox.id(), Box::new(7u32)).unwrap();
    let Some(Relayed::Local(item)) = inbox.recv().await else {
        panic!("not handed");
    };
    assert_eq!(*item.downcast::<u32>().unwrap(), 7);
    let gone = inbox.id().to_string();
    drop(inbox);
    assert!(node.hand_local(&gone, Box::new(8u32)).is_err());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_for_another_node_goes_through_redis_and_its_answer_comes_back() {
    let redis = RedisServer::start();
    let a = redis_node(&redis);
    let b = redis_node(&redis);
    let inbox = a.relay_inbox();
    let session = inbox.id().to_string();
    let task = answer_all(inbox);

    let answer = ask_until_answered(&b, a.uid(), &session).await;
    assert_eq!(answer, Bytes::from("poll answered"));
    // Several at once each get their own answer.
    let asks = (0..5).map(|i| {
        let b = b.clone();
        let (node, session) = (a.uid().to_owned(), session.clone());
        async move {
            b.ask(
                &node,
                &session,
                Bytes::from(format!("q{i}")),
                Duration::from_secs(5),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), Bytes::from(format!("q{i} answered")));
    }

    // A session the other node does not hold: refused from there, not waited out.
    let started = std::time::Instant::now();
    let refused = b
        .ask(
            a.uid(),
            &"0".repeat(32),
            Bytes::new(),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(refused, Err(EmulationError::NoSuchSession));
    assert!(started.elapsed() < Duration::from_secs(10));

    // A session that does not answer in time.
    let silent = a.relay_inbox();
    let timed_out = b
        .ask(
            a.uid(),
            silent.id(),
            Bytes::new(),
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(timed_out, Err(EmulationError::NoAnswer));
    task.abort();
}
