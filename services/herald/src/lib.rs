//! # herald
//!
//! The Herald node: configuration, CLI, and the server around the engine.
//!
//! Owns: the typed configuration (`config`), the command line (`cli`), the server (`server`:
//! actix-server and actix-http's HTTP/1 service running the actix-web application for every
//! route, and the lean WebSocket engine on actix-http's upgrade hook), transports that move
//! frames between sockets and engine sessions, all through one connection driver
//! (`transport`), the Centrifugo-compatible server API (`api`), the admin page (`admin`),
//! health and readiness, trace export (`telemetry`: the engine's `Tracer` on the OpenTelemetry
//! SDK, OTLP/HTTP), Socket.IO v4 clients on `/socket.io/` (`socketio`: Engine.IO sessions
//! mapped onto engine sessions), and the process lifecycle.
//!
//! Must not know: protocol rules. Commands, permissions and fan-out live in `herald-engine`;
//! transports only carry bytes and the close code a session asks for.

pub mod access;
pub mod admin;
pub mod api;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod devmode;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod socketio;
pub mod telemetry;
pub mod transport;

pub use server::{RunningNode, build_node, serve};
#[cfg(feature = "testing")]
pub mod testing;
