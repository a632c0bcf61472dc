//! A Socket.IO WebSocket, whichever engine accepted it (`server.websocket_engine`): Engine.IO
//! packets travel one per text frame.

use herald_protocol::codes::Disconnect;

use crate::transport::driver::{FrameIo as _, Inbound};
use crate::transport::websocket::actix_ws::ActixWsIo;
use crate::transport::websocket::connection::LeanConnection;

pub(crate) enum WsSocket {
    Lean(LeanConnection),
    ActixWs(ActixWsIo),
}

impl WsSocket {
    /// The next message; cancel-safe.
    pub async fn recv(&mut self) -> Inbound {
        match self {
            WsSocket::Lean(socket) => socket.recv().await,
            WsSocket::ActixWs(socket) => socket.recv().await,
        }
    }

    /// Writes each packet's text in a frame of its own.
    pub async fn send_texts(&mut self, texts: &[String]) -> Result<(), Disconnect> {
        match self {
            WsSocket::Lean(socket) => socket.send_texts(texts).await,
            WsSocket::ActixWs(socket) => socket.send_texts(texts).await,
        }
    }

    pub async fn pong(&mut self, payload: bytes::Bytes) -> Result<(), Disconnect> {
        match self {
            WsSocket::Lean(socket) => socket.pong(payload).await,
            WsSocket::ActixWs(socket) => socket.pong(payload).await,
        }
    }

    /// Closes the socket (a close frame with `disconnect`'s code, or a normal close).
    pub async fn close(self, disconnect: Option<Disconnect>) {
        match self {
            WsSocket::Lean(socket) => socket.close(disconnect).await,
            WsSocket::ActixWs(socket) => socket.close(disconnect).await,
        }
    }
}
