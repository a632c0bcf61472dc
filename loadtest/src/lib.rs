//! `herald-loadtest`: the load generator behind every performance claim about Herald.
//!
//! This crate owns the client side of a load test and nothing of the server: WebSocket
//! subscribers speaking the client protocol (JSON or Protobuf, [`client`]), HTTP API publishers
//! ([`publisher`]), stamped payloads ([`stamp`]), latency/loss/duplicate/order accounting
//! ([`stats`]), server CPU and RSS from /proc ([`procstat`]), connection limits and source
//! addresses ([`net`]), subscriber fleets in this process or spread over worker processes
//! ([`fleet`]), the scenarios ([`scenarios`]) and their reports (JSON, table, SVG:
//! [`report`], [`charts`], live [`progress`]). It only ever sends to 127.0.0.0/8, and every
//! loop is bounded in time and count.

pub mod charts;
pub mod cli;
pub mod client;
pub mod fleet;
pub mod net;
pub mod procstat;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod scenarios;
pub mod stamp;
pub mod stats;
