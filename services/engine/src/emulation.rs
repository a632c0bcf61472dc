//! Emulated connections (HTTP streaming, SSE): the client's replies and pushes flow down one
//! long HTTP response held by one node, while its commands arrive as separate requests to the
//! emulation endpoint of whichever node the load balancer picks.
//!
//! Owns this node's table of emulated sessions (session id → the connection's inbox) and the
//! routing of a command to the node that holds its session: here, or through the broker.
//!
//! Must not know HTTP: transports hand it a decoded [`EmulationRequest`].

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::broker::BrokerError;
use crate::sharded::Sharded;

pub use herald_protocol::proto::EmulationRequest;

/// Command requests waiting for one emulated connection. A client that posts faster than its
/// connection handles them is refused the surplus instead of growing the node's memory.
const INBOX_REQUESTS: usize = 32;

const SHARDS: usize = 16;

/// Why an emulation request was not handed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    /// No live node has this id (restarted, scaled down, or never existed): the client must
    /// reconnect.
    #[error("no node {0} is alive")]
    NoSuchNode(String),
    /// The connection already has as many requests waiting as it may.
    #[error("too many requests in flight for this connection")]
    Busy,
    /// The node or session id is not one a node hands out: nothing is looked up or sent.
    #[error("not a node and session id: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Checks that a request names a node and a session the way nodes name them (a node's uid is a
/// hyphenated UUID, a session id 32 hex digits), so that garbage is refused before a table
/// lookup or a message to the broker.
pub fn check_ids(request: &EmulationRequest) -> Result<(), EmulationError> {
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let node = request.node.as_bytes();
    let node_ok = node.len() == 36
        && node.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => is_hex(b),
        });
    if !node_ok {
        return Err(EmulationError::Malformed("node"));
    }
    let session = request.session.as_bytes();
    if session.len() != 32 || !session.iter().all(|&b| is_hex(b)) {
        return Err(EmulationError::Malformed("session"));
    }
    Ok(())
}

/// The commands posted for one emulated connection, in arrival order; held by its transport.
pub struct Inbox {
    rx: mpsc::Receiver<Bytes>,
}

impl Inbox {
    /// The next request's commands (encoded in the connection's format). Never ends while the
    /// session lives: the table keeps the sending side until the session is dropped.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

/// This node's emulated sessions.
pub(crate) struct Sessions {
    table: Sharded<mpsc::Sender<Bytes>>,
}

/// What became of a request for a session of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    Queued,
    /// The session has ended; its stream has told the client already.
    Gone,
    Busy,
}

impl Sessions {
    pub(crate) fn new() -> Self {
        Self {
            table: Sharded::new(SHARDS),
        }
    }

    /// A new session id, unguessable (it is what lets a request speak for the connection),
    /// and the inbox of its commands.
    pub(crate) fn open(&self) -> (Arc<str>, Inbox) {
        // The form `check_ids` expects: 32 lower-case hex digits.
        let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let (tx, rx) = mpsc::channel(INBOX_REQUESTS);
        self.table.write(&id).insert(id.clone(), tx);
        (id, Inbox { rx })
    }

    pub(crate) fn close(&self, id: &str) {
        self.table.write(id).remove(id);
    }

    pub(crate) fn hand(&self, id: &str, data: Bytes) -> Handed {
        let Some(tx) = self.table.read(id).get(id).cloned() else {
            return Handed::Gone;
        };
        match tx.try_send(data) {
            Ok(()) => Handed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Handed::Busy,
            Err(mpsc::error::TrySendError::Closed(_)) => Handed::Gone,
        }
    }

    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        self.table.for_each_shard(|shard| n += shard.len());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_requests_in_order_and_refuses_past_the_bound() {
        let sessions = Sessions::new();
        let (id, mut inbox) = sessions.open();
        assert_eq!(id.len(), 32);
        for i in 0..INBOX_REQUESTS {
            assert_eq!(
                sessions.hand(&id, Bytes::from(i.to_string())),
                Handed::Queued
            );
        }
        assert_eq!(sessions.hand(&id, Bytes::from("x")), Handed::Busy);
        assert_eq!(inbox.recv().await.unwrap(), Bytes::from("0"));
        assert_eq!(sessions.hand(&id, Bytes::from("y")), Handed::Queued);
        assert_eq!(sessions.hand("no-such-session", Bytes::new()), Handed::Gone);
        assert_eq!(sessions.len(), 1);
        sessions.close(&id);
        assert_eq!(sessions.hand(&id, Bytes::new()), Handed::Gone);
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn session_ids_differ() {
        let sessions = Sessions::new();
        let (a, _ia) = sessions.open();
        let (b, _ib) = sessions.open();
        assert_ne!(a, b);
    }

    #[test]
    fn only_ids_of_the_form_nodes_hand_out_pass() {
        let request = |node: &str, session: &str| EmulationRequest {
            node: node.into(),
            session: session.into(),
            data: Bytes::from_static(b"{}"),
        };
        let node = uuid::Uuid::new_v4().to_string();
        let (session, _inbox) = Sessions::new().open();
        assert_eq!(check_ids(&request(&node, &session)), Ok(()));
        for (bad_node, bad_session, what) in [
            ("x", &*session, "node"),
            (&node[..35], &*session, "node"),
            (&node.to_uppercase(), &*session, "node"),
            (&node.replace('-', "_"), &*session, "node"),
            (&node, "", "session"),
            (&node, &session[..31], "session"),
            (&node, &"g".repeat(32), "session"),
            (&node, &"a".repeat(10_000), "session"),
        ] {
            assert_eq!(
                check_ids(&request(bad_node, bad_session)),
                Err(EmulationError::Malformed(what)),
                "{bad_node} {bad_session}"
            );
        }
    }
}
