//! Transports: move frames between client sockets and engine sessions. They know nothing of
//! channels, tokens or commands — only bytes in, bytes out, and the close code the session asks
//! for.

pub mod origin;
pub mod websocket;
