//! Test fixtures for the engine's and the `herald` binary's tests.
//!
//! Compiled only with the `testing` feature; never part of a production build.
//!
//! - [`jwks`]: a JWKS endpoint on a free port, serving what the test says and counting requests.
//! - [`node`]: a node configuration with a known token key, and tokens signed with it.
//! - [`lossy`]: a memory broker that loses chosen publications on their way to the node.
//! - [`session`]: a session driven as a JSON transport would (connect, commands, drain).
//! - [`redis`]: real `redis-server` processes (a standalone server and a three-master cluster) on
//!   free ports, started, killed and restarted by the test that owns them.

pub mod jwks;
pub mod lossy;
pub mod node;
pub mod redis;
pub mod session;
