//! # herald
//!
//! The Herald node: configuration, CLI, and the actix-web application around the engine.
//!
//! Owns: the typed configuration (`config`), the command line (`cli`), transports that move
//! frames between sockets and engine sessions (`transport`), the Centrifugo-compatible server
//! API (`api`), health and readiness, and the process lifecycle (`server`).
//!
//! Must not know: protocol rules. Commands, permissions and fan-out live in `herald-engine`;
//! transports only carry bytes and the close code a session asks for.

pub mod api;
pub mod cli;
pub mod config;
pub mod devmode;
pub mod metrics;
pub mod server;
pub mod transport;

pub use server::{RunningNode, build_node, serve};
#[cfg(feature = "testing")]
pub mod testing;
