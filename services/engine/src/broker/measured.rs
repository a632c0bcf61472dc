//! The node's view of its broker: every operation's failures counted by operation, and the
//! time a publish takes, so `/metrics` shows a sick broker whichever implementation runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_protocol::proto::{ClientInfo, Publication};

use super::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    NodeCommand, Presence, PresenceStats, StreamPosition,
};
use crate::metrics::{BrokerOp, Metrics};

pub(crate) struct MeasuredBroker {
    inner: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
}

impl MeasuredBroker {
    pub(crate) fn new(inner: Arc<dyn Broker>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    /// Runs a publish made on [`MeasuredBroker::inner`] and measures it like
    /// [`Broker::publish`]: the node's publish path calls the broker through this, because
    /// each call through the trait boxes its future, and a publish is the one call frequent
    /// enough for a second box to show.
    pub(crate) async fn measure_publish<T>(
        &self,
        publish: impl std::future::Future<Output = Result<T, BrokerError>>,
    ) -> Result<T, BrokerError> {
        let started = Instant::now();
        let result = publish.await;
        self.published(started, result)
    }

    /// The broker being measured.
    pub(crate) fn inner(&self) -> &dyn Broker {
        &*self.inner
    }

    fn count<T>(&self, op: BrokerOp, result: Result<T, BrokerError>) -> Result<T, BrokerError> {
        if result.is_err() {
            self.metrics.broker_error(op);
        }
        result
    }

    fn published<T>(
        &self,
        started: Instant,
        result: Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        // A failed publish's time says how long the broker took to fail, not to publish.
        if result.is_ok() {
            self.metrics
                .broker_publish_duration
                .observe(started.elapsed());
        }
        self.count(BrokerOp::Publish, result)
    }
}

#[async_trait::async_trait]
impl Broker for MeasuredBroker {
    fn start(&self, node_uid: &str, handler: Arc<dyn BrokerEventHandler>) {
        self.inner.start(node_uid, handler);
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        let started = Instant::now();
        let result = self.inner.publish(channel, publication, history).await;
        self.published(started, result)
    }

    async fn publish_once(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        let started = Instant::now();
        let result = self
            .inner
            .publish_once(channel, publication, history, key)
            .await;
        self.published(started, result)
    }

    async fn publish_traced(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: Option<&str>,
        trace: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        let started = Instant::now();
        let result = self
            .inner
            .publish_traced(channel, publication, history, key, trace)
            .await;
        self.published(started, result)
    }

    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, BrokerError> {
        let result = self.inner.history(channel, query).await;
        self.count(BrokerOp::History, result)
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        let result = self.inner.remove_history(channel).await;
        self.count(BrokerOp::RemoveHistory, result)
    }

    async fn add_presence(
        &self,
        channel: &str,
        info: &ClientInfo,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let result = self.inner.add_presence(channel, info, ttl).await;
        self.count(BrokerOp::AddPresence, result)
    }

    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        let result = self.inner.remove_presence(channel, client).await;
        self.count(BrokerOp::RemovePresence, result)
    }

    async fn presence(&self, channel: &str) -> Result<Presence, BrokerError> {
        let result = self.inner.presence(channel).await;
        self.count(BrokerOp::Presence, result)
    }

    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError> {
        let result = self.inner.presence_stats(channel).await;
        self.count(BrokerOp::PresenceStats, result)
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: &ClientInfo,
        join: bool,
    ) -> Result<(), BrokerError> {
        let result = self.inner.publish_join_leave(channel, info, join).await;
        self.count(BrokerOp::JoinLeave, result)
    }

    async fn publish_command(&self, command: &NodeCommand) -> Result<(), BrokerError> {
        let result = self.inner.publish_command(command).await;
        self.count(BrokerOp::Command, result)
    }

    async fn send_to_node(&self, node_uid: &str, message: Vec<u8>) -> Result<bool, BrokerError> {
        let result = self.inner.send_to_node(node_uid, message).await;
        self.count(BrokerOp::SendToNode, result)
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let result = self.inner.subscribe(channel).await;
        self.count(BrokerOp::Subscribe, result)
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let result = self.inner.unsubscribe(channel).await;
        self.count(BrokerOp::Unsubscribe, result)
    }

    // Not counted: /ready asks often, and its answer already says the broker is down.
    async fn health(&self) -> Result<(), BrokerError> {
        self.inner.health().await
    }

    fn reconnects(&self) -> u64 {
        self.inner.reconnects()
    }
}
