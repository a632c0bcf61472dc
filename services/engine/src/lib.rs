//! # herald-engine
//!
//! The transport-free core of a Herald node.
//!
//! Owns: auth (JWT verification), channel rules (namespaces, permissions), the session state
//! machine (commands in, replies and pushes out), emulated sessions (HTTP-streaming and SSE
//! commands, Socket.IO polls: requests routed to the node that holds the connection, and answers
//! routed back), the hub (channel → local subscribers, fan-out
//! through one shared log per channel), per-connection bounded outbound queues, and the `Broker` seam with its in-memory implementation.
//!
//! Traces: spans open through the node's [`trace::Tracer`], a trait the binary implements
//! (OpenTelemetry lives there, not here), and a publication's trace context crosses nodes as
//! an opaque W3C `traceparent` in the broker message; without a tracer none of it happens.
//! Why this seam rather than the `opentelemetry` crate: see [`trace`].
//!
//! Must not know: actix, HTTP, WebSocket frames, configuration files. Transports feed it bytes
//! and drain bytes from it; the binary hands it an already validated configuration.

pub mod auth;
pub mod broker;
pub mod channel;
pub mod channel_log;
pub mod config;
pub mod control;
pub mod emulation;
pub mod error;
pub mod hub;
mod limits;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod registry;
pub mod session;
mod sharded;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use broker::{Broker, BrokerError, MemoryBroker};

/// The `tracing` target of the access log (one line per connect, disconnect and API call, at
/// debug): `HERALD_LOG=info,herald::access=debug` turns it on alone.
pub const ACCESS_LOG: &str = "herald::access";
pub use emulation::{Answer, EmulationError, EmulationRequest, Inbox, Relayed};
pub use node::{Node, NodeConfig, NodeInfo, PublishOptions};
pub use session::{Flow, Mode, Session};
