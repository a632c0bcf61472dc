//! A broker that loses publications on their way to this node, as a PUB/SUB connection that
//! drops messages would: the stream (history) keeps them, the node's subscribers never get
//! them. Everything else is the memory broker's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald_protocol::proto::{ClientInfo, Publication};

use crate::broker::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    MemoryBroker, NodeCommand, Presence, StreamPosition,
};

#[derive(Default)]
pub struct LossyBroker {
    inner: MemoryBroker,
    lose: Arc<AtomicUsize>,
}

impl LossyBroker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` publications reach the stream but not this node.
    pub fn lose_next(&self, n: usize) {
        self.lose.store(n, Ordering::SeqCst);
    }
}

struct Dropping {
    inner: Arc<dyn BrokerEventHandler>,
    lose: Arc<AtomicUsize>,
}

impl Dropping {
    /// Whether this publication is one of those to lose.
    fn lost(&self) -> bool {
        self.lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl BrokerEventHandler for Dropping {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        if !self.lost() {
            self.inner.handle_publication(channel, publication);
        }
    }

    fn handle_traced_publication(&self, channel: &str, publication: Publication, trace: &str) {
        if !self.lost() {
            self.inner
                .handle_traced_publication(channel, publication, trace);
        }
    }

    fn handle_join_leave(&self, channel: &str, info: ClientInfo, join: bool) {
        self.inner.handle_join_leave(channel, info, join);
    }

    fn handle_resubscribed(&self, channels: &[&str]) {
        self.inner.handle_resubscribed(channels);
    }

    fn handle_command(&self, command: NodeCommand) {
        self.inner.handle_command(command);
    }

    fn handle_node_message(&self, message: &[u8]) {
        self.inner.handle_node_message(message);
    }

    fn has_subscribers(&self, channel: &str) -> bool {
        self.inner.has_subscribers(channel)
    }
}

#[async_trait::async_trait]
impl Broker for LossyBroker {
    fn start(&self, node_uid: &str, handler: Arc<dyn BrokerEventHandler>) {
        self.inner.start(
            node_uid,
            Arc::new(Dropping {
                inner: handler,
                lose: self.lose.clone(),
            }),
        );
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.inner.publish(channel, publication, history).await
    }

    async fn publish_once(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.inner
            .publish_once(channel, publication, history, key)
            .await
    }

    async fn publish_traced(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: Option<&str>,
        trace: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.inner
            .publish_traced(channel, publication, history, key, trace)
            .await
    }

    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, BrokerError> {
        self.inner.history(channel, query).await
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        self.inner.remove_history(channel).await
    }

    async fn add_presence(
        &self,
        channel: &str,
        info: &ClientInfo,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        self.inner.add_presence(channel, info, ttl).await
    }

    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        self.inner.remove_presence(channel, client).await
    }

    async fn presence(&self, channel: &str) -> Result<Presence, BrokerError> {
        self.inner.presence(channel).await
    }

    async fn presence_stats(
        &self,
        channel: &str,
    ) -> Result<crate::broker::PresenceStats, BrokerError> {
        self.inner.presence_stats(channel).await
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: &ClientInfo,
        join: bool,
    ) -> Result<(), BrokerError> {
        self.inner.publish_join_leave(channel, info, join).await
    }

    async fn publish_command(&self, command: &NodeCommand) -> Result<(), BrokerError> {
        self.inner.publish_command(command).await
    }

    async fn send_to_node(&self, node_uid: &str, message: Vec<u8>) -> Result<bool, BrokerError> {
        self.inner.send_to_node(node_uid, message).await
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        self.inner.subscribe(channel).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        self.inner.unsubscribe(channel).await
    }

    async fn health(&self) -> Result<(), BrokerError> {
        self.inner.health().await
    }
}
