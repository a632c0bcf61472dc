//! The broker: how publications travel between the nodes that have subscribers of a channel.
//!
//! The node asks the broker for a node-level subscription when the first local subscriber of a
//! channel arrives and drops it after the last one leaves; the broker pushes every publication
//! of a subscribed channel back into the node through [`BrokerEventHandler`]. The in-memory
//! broker serves a single node; the Redis broker (scale-out) implements the same trait.

mod command;
mod measured;
mod memory;
mod once;
mod redis;
mod streams;

use std::sync::Arc;

use herald_protocol::proto::{ClientInfo, Publication};

pub use command::{NodeCommand, NodeStats};
pub(crate) use measured::MeasuredBroker;
pub use memory::MemoryBroker;
pub use redis::RedisBroker;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached; the operation may succeed later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker did not answer in time.
    #[error("broker timed out")]
    Timeout,
    /// The broker cannot do this at all (not a transient failure).
    #[error("not supported by this broker: {0}")]
    Unsupported(&'static str),
}

/// Where a publication landed in its channel's stream (only for channels with history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

/// The size of a channel's presence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    pub clients: usize,
    pub users: usize,
}

/// A channel's presence: client id → who.
pub type Presence = std::collections::HashMap<String, ClientInfo>;

/// How long a publish's idempotency key is remembered (Centrifugo's default).
pub const IDEMPOTENCY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// How a channel keeps its publications (its namespace's `history_size` and `history_ttl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryOptions {
    pub size: usize,
    pub ttl: std::time::Duration,
}

/// What to read from a channel's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Forward: publications after this offset; reverse: before it. `None`: from the end the
    /// direction starts at. The epoch is checked by the node, not the broker.
    pub since: Option<StreamPosition>,
    /// At most this many publications; `None`: all kept.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// Publications read from a stream, and the stream's current position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    pub publications: Vec<Publication>,
    pub position: StreamPosition,
    /// Offset of the oldest publication still kept, if any.
    pub oldest: Option<u64>,
}

/// Receives what the broker delivers to this node. Implemented by the node, which hands
/// publications to the hub; it must never block (the broker's read loop calls it).
pub trait BrokerEventHandler: Send + Sync + 'static {
    fn handle_publication(&self, channel: &str, publication: Publication);
    /// A publication that came with a trace context (a W3C `traceparent`, see
    /// [`crate::trace`]): the delivery continues that trace.
    fn handle_traced_publication(&self, channel: &str, publication: Publication, _trace: &str) {
        self.handle_publication(channel, publication);
    }
    /// A client joined (`join`) or left `channel` on some node.
    fn handle_join_leave(&self, channel: &str, info: ClientInfo, join: bool);
    /// The broker subscribed `channels` again after losing its connection: publications made
    /// meanwhile never arrived, so positioned subscribers must check where their streams are.
    fn handle_resubscribed(&self, _channels: &[&str]) {}
    /// A command from a node (this one included) for every node.
    fn handle_command(&self, command: NodeCommand);
    /// A message sent to this node alone ([`Broker::send_to_node`]).
    fn handle_node_message(&self, _message: &[u8]) {}
    /// Whether this node still has local subscribers of `channel`: a broker checks it right
    /// before dropping a node-level subscription, so a join racing a leave keeps it.
    fn has_subscribers(&self, channel: &str) -> bool;
}

#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Called once when the node starts, before any subscribe. `node_uid` is the node's id:
    /// what [`Broker::send_to_node`] addresses it by.
    fn start(&self, node_uid: &str, handler: Arc<dyn BrokerEventHandler>);
    /// Publishes to every node subscribed to `channel`, this one included. With `history`, the
    /// publication first gets the next offset of the channel's stream and is kept there, in
    /// one step, and every node receives it with its offset; the position is returned.
    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
    ) -> Result<Option<StreamPosition>, BrokerError>;
    /// [`Broker::publish`] at most once per `(channel, key)` within [`IDEMPOTENCY_TTL`],
    /// across every node sharing the broker: a repeat publishes nothing and returns the first
    /// result.
    async fn publish_once(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: &str,
    ) -> Result<Option<StreamPosition>, BrokerError>;
    /// [`Broker::publish`], or with `key` [`Broker::publish_once`], carrying `trace` (a W3C
    /// `traceparent`) with the publication to every node, whose handler gets it through
    /// [`BrokerEventHandler::handle_traced_publication`]. No default: a broker that wraps
    /// another must hand the trace on, or traces would stop at it without a word.
    async fn publish_traced(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: Option<&str>,
        trace: &str,
    ) -> Result<Option<StreamPosition>, BrokerError>;
    /// Reads a channel's stream.
    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, BrokerError>;
    /// Forgets a channel's publications, keeping its position.
    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError>;
    /// Adds (or refreshes) a client in a channel's presence; it expires after `ttl` unless
    /// refreshed, so the entries of a node that died without a goodbye go away.
    async fn add_presence(
        &self,
        channel: &str,
        info: &ClientInfo,
        ttl: std::time::Duration,
    ) -> Result<(), BrokerError>;
    /// Removes a client from a channel's presence.
    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError>;
    /// Every client present in the channel, on every node, by client id.
    async fn presence(&self, channel: &str) -> Result<Presence, BrokerError>;
    /// How many clients and distinct users are present in the channel, from counters kept
    /// with the presence: the presence itself is not read.
    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError>;
    /// Tells every node that a client joined (`join`) or left a channel, for the subscribers
    /// that receive join/leave pushes. At most once, like PUB/SUB.
    async fn publish_join_leave(
        &self,
        channel: &str,
        info: &ClientInfo,
        join: bool,
    ) -> Result<(), BrokerError>;
    /// Sends a command to every node, this one included.
    async fn publish_command(&self, command: &NodeCommand) -> Result<(), BrokerError>;
    /// Sends `message` to the node `node_uid` alone. `Ok(false)`: no such node is listening.
    /// A broker serving a single node has no other node to reach.
    async fn send_to_node(&self, _node_uid: &str, _message: Vec<u8>) -> Result<bool, BrokerError> {
        Ok(false)
    }
    /// Starts node-level delivery of `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Stops node-level delivery of `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Ok when the broker can serve publishes and subscriptions right now.
    async fn health(&self) -> Result<(), BrokerError>;
    /// How many times a connection that delivers publications to this node was established
    /// again after it was lost (`herald_broker_reconnects_total`).
    fn reconnects(&self) -> u64 {
        0
    }
}
