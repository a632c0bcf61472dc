//! Transports: move frames between client sockets and engine sessions. They know nothing of
//! channels, tokens or commands — only bytes in, bytes out, and the close code the session asks
//! for.
//!
//! - `driver`: the one connection loop every transport runs (drain, write, clocks, close);
//!   a transport is a small [`driver::FrameIo`] adapter around it;
//! - `websocket`: `/connection/websocket`, the main transport, in two engines (`lean`, the
//!   default, on actix-http's upgrade hook; `actix-ws`);
//! - `emulated` + `stream`: the HTTP-streaming and SSE fallbacks, whose responses are the
//!   connections; `emulation_endpoint`: `/emulation`, where their commands arrive;
//! - `socket`: every client TCP connection, with the write timeout;
//! - `origin` and `cors`: which browser pages may use them.

pub mod cors;
pub mod driver;
pub mod emulated;
pub mod emulation_endpoint;
pub mod origin;
pub mod socket;
pub mod stream;
pub mod websocket;

use origin::OriginPolicy;

/// What the client transports need from the configuration.
#[derive(Clone)]
pub struct TransportConfig {
    pub origins: OriginPolicy,
    pub max_message_size: usize,
}
