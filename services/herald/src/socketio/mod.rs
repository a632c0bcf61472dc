//! Socket.IO v4 clients (socket.io-client) on `/socket.io/`, in the same channels as the
//! Centrifugo clients: Engine.IO v4 over HTTP long-polling and WebSocket (with the upgrade
//! from one to the other), Socket.IO v5 packets mapped onto the Centrifugo protocol an engine
//! session speaks.
//!
//! - `http`: the polling requests (handshake, GET, POST) and the WebSocket handshake of the
//!   actix-ws engine; a request for a session of another node goes there through the broker;
//! - `session`: one connection's task, the Engine.IO session around the engine session;
//! - `bridge` (+ `positions`): Socket.IO events ↔ Centrifugo commands, replies and pushes;
//! - `exchange`: what a polling request asks of its session and what it answers;
//! - `socket`: the session's WebSocket, whichever engine accepted it;
//! - `metrics`: counts for `/metrics`.
//!
//! The wire format itself (packets, payloads, the upgrade's phases) is the `herald-socketio`
//! crate's. What this module must not know: channels' rules, tokens, history (the engine
//! session applies them, as for any client).

pub mod bridge;
mod exchange;
pub mod http;
pub mod metrics;
mod positions;
mod session;
mod socket;

use std::time::Duration;

use herald_engine::Node;
use herald_protocol::Format;
use herald_socketio::Handshake;

use crate::config::SocketIoConfig;
use crate::transport::TransportConfig;
use crate::transport::websocket::connection::LeanConnection;
pub use metrics::SocketIoMetrics;
pub(crate) use socket::WsSocket;

/// Where Socket.IO clients connect (socket.io-client's default `path`).
pub const PATH: &str = "/socket.io/";

/// Everything the Socket.IO endpoints need, shared by every worker.
pub struct SocketIo {
    pub node: Node,
    pub config: SocketIoConfig,
    pub transport: TransportConfig,
    pub metrics: SocketIoMetrics,
    /// Whether polling sessions are offered the upgrade to WebSocket: with the lean engine
    /// only, whose sockets can move to the worker thread that runs the session (actix-ws's
    /// belong to the thread that accepted them). A WebSocket opened directly works on both.
    pub upgrades: bool,
}

impl SocketIo {
    fn handshake(&self, sid: String, upgrades: bool) -> Handshake {
        let client = self.node.client_config();
        Handshake {
            sid,
            upgrades: if upgrades && self.upgrades {
                vec!["websocket".to_owned()]
            } else {
                Vec::new()
            },
            ping_interval: client.ping_interval.as_millis() as u64,
            ping_timeout: client.pong_timeout.as_millis() as u64,
            max_payload: self.config.max_payload as u64,
        }
    }

    /// How long a poll waits for its session's answer: a held poll is answered at the latest by
    /// the next ping.
    fn poll_wait(&self) -> Duration {
        let client = self.node.client_config();
        client.ping_interval + client.pong_timeout + Duration::from_secs(5)
    }

    /// A new session of this node: its sid, the engine session and the relay inbox.
    fn open(&self) -> (String, herald_engine::Session, herald_engine::Inbox) {
        let inbox = self.node.relay_inbox();
        let sid = sid::compose(self.node.uid(), inbox.id());
        (sid, self.node.session(Format::Json), inbox)
    }

    /// A WebSocket accepted on `/socket.io/` (either engine): a new session when `sid` is
    /// `None`, else the upgrade of that polling session, which must live on this node (a
    /// WebSocket cannot cross nodes; the client then stays on polling).
    pub(crate) async fn attach(
        &self,
        sid: Option<&str>,
        mut socket: WsSocket,
        span: Option<tracing::Span>,
    ) {
        let Some(sid) = sid else {
            let (sid, session, inbox) = self.open();
            let open = herald_socketio::EioPacket::Open(self.handshake(sid, false));
            if socket.send_texts(&[open.to_text()]).await.is_err() {
                return;
            }
            let connection = session::Connection::websocket(
                inbox,
                socket,
                self.config.recovery,
                self.config.max_payload,
                self.metrics.clone(),
            );
            crate::access::spawn_connection(span, connection.run(session));
            return;
        };
        let local = sid::split(sid).filter(|(node, _)| node == self.node.uid());
        let refused = match (local, socket) {
            (Some((_, session)), WsSocket::Lean(socket)) => self
                .node
                .hand_local(&session, Box::new(socket))
                .err()
                .and_then(|item| item.downcast::<LeanConnection>().ok())
                .map(|socket| WsSocket::Lean(*socket)),
            (_, socket) => Some(socket),
        };
        if let Some(socket) = refused {
            tracing::debug!("socket.io upgrade refused: not a session of this node's lean engine");
            socket.close(None).await;
        }
    }
}

/// Session ids: the node's uid and the relay session's id, as 64 hex digits, so that any node
/// can tell where a polling request must go.
pub mod sid {
    pub const LEN: usize = 64;

    /// `node`: a hyphenated UUID; `session`: 32 hex digits.
    pub fn compose(node: &str, session: &str) -> String {
        let mut sid: String = node.chars().filter(|c| *c != '-').collect();
        sid.push_str(session);
        sid
    }

    /// The node (hyphenated) and session of a sid; `None` when it is not one.
    pub fn split(sid: &str) -> Option<(String, String)> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if sid.len() != LEN || !sid.bytes().all(hex) {
            return None;
        }
        let n = &sid[..32];
        let node = format!(
            "{}-{}-{}-{}-{}",
            &n[..8],
            &n[8..12],
            &n[12..16],
            &n[16..20],
            &n[20..]
        );
        Some((node, sid[32..].to_owned()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_sid_names_its_node_and_session() {
            let node = uuid::Uuid::new_v4().to_string();
            let session = uuid::Uuid::new_v4().simple().to_string();
            let sid = compose(&node, &session);
            assert_eq!(sid.len(), LEN);
            assert_eq!(split(&sid), Some((node, session)));
            assert_eq!(split(&sid[1..]), None);
            assert_eq!(split(&sid.to_uppercase()), None);
            assert_eq!(split(&format!("{}g", &sid[1..])), None);
        }
    }
}
