//! The broker: how publications travel between the nodes that have subscribers of a channel.
//!
//! The node asks the broker for a node-level subscription when the first local subscriber of a
//! channel arrives and drops it after the last one leaves; the broker pushes every publication
//! of a subscribed channel back into the node through [`BrokerEventHandler`]. The in-memory
//! broker serves a single node; the Redis broker (scale-out) implements the same trait.

mod memory;

use std::sync::Arc;

use herald_protocol::proto::Publication;

pub use memory::MemoryBroker;

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
    /// Starts node-level delivery of `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Stops node-level delivery of `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Ok when the broker can serve publishes and subscriptions right now.
    async fn health(&self) -> Result<(), BrokerError>;
}
