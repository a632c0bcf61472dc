//! The broker: how publications travel between the nodes that have subscribers of a channel.
//!
//! The node asks the broker for a node-level subscription when the first local subscriber of a
//! channel arrives and drops it after the last one leaves; the broker pushes every publication
//! of a subscribed channel back into the node through [`BrokerEventHandler`]. The in-memory
//! broker serves a single node; the Redis broker (scale-out) implements the same trait.

mod command;
mod memory;
mod redis;

use std::sync::Arc;

use herald_protocol::proto::Publication;

pub use command::{NodeCommand, NodeStats};
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
}

/// Where a publication landed in its channel's stream (only for channels with history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

/// Receives what the broker delivers to this node. Implemented by the node, which hands
/// publications to the hub; it must never block (the broker's read loop calls it).
pub trait BrokerEventHandler: Send + Sync + 'static {
    fn handle_publication(&self, channel: &str, publication: Publication);
    /// A command from a node (this one included) for every node.
    fn handle_command(&self, command: NodeCommand);
    /// Whether this node still has local subscribers of `channel`: a broker checks it right
    /// before dropping a node-level subscription, so a join racing a leave keeps it.
    fn has_subscribers(&self, channel: &str) -> bool;
}

#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Called once when the node starts, before any subscribe.
    fn start(&self, handler: Arc<dyn BrokerEventHandler>);
    /// Publishes to every node subscribed to `channel`, this one included.
    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
    ) -> Result<Option<StreamPosition>, BrokerError>;
    /// Sends a command to every node, this one included.
    async fn publish_command(&self, command: &NodeCommand) -> Result<(), BrokerError>;
    /// Starts node-level delivery of `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Stops node-level delivery of `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Ok when the broker can serve publishes and subscriptions right now.
    async fn health(&self) -> Result<(), BrokerError>;
}
