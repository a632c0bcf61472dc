//! Node-level behaviour with a broker whose answers the test controls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use herald_engine::broker::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    NodeCommand, Presence, StreamPosition,
};
use herald_engine::config::ChannelConfig;
use herald_engine::testing::node::{node_config, token};
use herald_engine::{Flow, Node, Session};
use herald_protocol::Format;
use herald_protocol::proto::{ClientInfo, Publication};
use serde_json::json;
use tokio::sync::Semaphore;

/// Subscribes only when the test adds permits; fails while `fail` is set.
struct GatedBroker {
    gate: Semaphore,
    subscribes: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
}

impl Default for GatedBroker {
    fn default() -> Self {
        Self {
            gate: Semaphore::new(0),
            subscribes: AtomicUsize::new(0),
            fail: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Broker for GatedBroker {
    fn start(&self, _node_uid: &str, _handler: Arc<dyn BrokerEventHandler>) {}
    async fn publish(
        &self,
        _: &str,
        _: Publication,
        _: Option<&HistoryOptions>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        Ok(None)
    }
    async fn publish_once(
        &self,
        _: &str,
        _: Publication,
        _: Option<&HistoryOptions>,
        _: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        Ok(None)
    }
    async fn publish_traced(
        &self,
        _: &str,
        _: Publication,
        _: Option<&HistoryOptions>,
        _: Option<&str>,
        _: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        Ok(None)
    }
    async fn add_presence(&self, _: &str, _: &ClientInfo, _: Duration) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn remove_presence(&self, _: &str, _: &str) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn presence(&self, _: &str) -> Result<Presence, BrokerError> {
        Ok(Presence::new())
    }
    async fn presence_stats(
        &self,
        _: &str,
    ) -> Result<herald_engine::broker::PresenceStats, BrokerError> {
        Ok(Default::default())
    }
    async fn publish_join_leave(
        &self,
        _: &str,
        _: &ClientInfo,
        _: bool,
    ) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn history(&self, _: &str, _: &HistoryQuery) -> Result<HistoryPage, BrokerError> {
        Err(BrokerError::Unsupported("history"))
    }
    async fn remove_history(&self, _: &str) -> Result<(), BrokerError> {
        Err(BrokerError::Unsupported("history"))
    }
    async fn publish_command(&self, _: &NodeCommand) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn subscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        self.subscribes.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.expect("gate open").forget();
        if self.fail.load(Ordering::SeqCst) {
            return Err(BrokerError::Unavailable("down".into()));
        }
        Ok(())
    }
    async fn unsubscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn health(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

fn node(broker: Arc<GatedBroker>) -> Node {
    let channels = ChannelConfig {
        insecure: true,
        ..Default::default()
    };
    Node::new(node_config(channels), broker).unwrap()
}

async fn connected(node: &Node) -> Session {
    let mut s = node.session(Format::Json);
    let connect = json!({"id":1,"connect":{"token":token("u", None)}}).to_string();
    assert_eq!(s.handle_frame(connect.as_bytes()).await, Flow::Continue);
    s.drain(&mut BytesMut::new()).await;
    s
}

async fn reply(s: &mut Session) -> serde_json::Value {
    let mut buf = BytesMut::new();
    s.drain(&mut buf).await;
    serde_json::from_slice(&buf).unwrap()
}

#[tokio::test]
async fn concurrent_joiners_wait_for_the_one_node_level_subscription() {
    let broker = Arc::new(GatedBroker::default());
    let node = node(broker.clone());
    let (mut a, mut b) = (connected(&node).await, connected(&node).await);
    let subscribe = json!({"id":2,"subscribe":{"channel":"room"}}).to_string();
    let (sa, sb) = (subscribe.clone(), subscribe);

    let first = tokio::spawn(async move {
        a.handle_frame(sa.as_bytes()).await;
        a
    });
    let second = tokio::spawn(async move {
        b.handle_frame(sb.as_bytes()).await;
        b
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "nobody is subscribed yet"
    );
    assert_eq!(
        broker.subscribes.load(Ordering::SeqCst),
        1,
        "one broker subscription"
    );

    broker.gate.add_permits(1);
    let (mut a, mut b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(reply(&mut a).await, json!({"id":2,"subscribe":{}}));
    assert_eq!(reply(&mut b).await, json!({"id":2,"subscribe":{}}));
    assert_eq!(broker.subscribes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_broker_subscription_is_an_error_and_the_next_join_retries() {
    let broker = Arc::new(GatedBroker::default());
    broker.fail.store(true, Ordering::SeqCst);
    broker.gate.add_permits(1);
    let node = node(broker.clone());
    let mut a = connected(&node).await;
    a.handle_frame(br#"{"id":2,"subscribe":{"channel":"room"}}"#)
        .await;
    let r = reply(&mut a).await;
    assert_eq!(r["error"]["code"], 100, "{r}");
    assert_eq!(node.info().num_subs, 0, "rolled back");

    broker.fail.store(false, Ordering::SeqCst);
    broker.gate.add_permits(1);
    a.handle_frame(br#"{"id":3,"subscribe":{"channel":"room"}}"#)
        .await;
    assert_eq!(reply(&mut a).await, json!({"id":3,"subscribe":{}}));
    assert_eq!(broker.subscribes.load(Ordering::SeqCst), 2);
}
