//! Emulated connections (HTTP streaming, SSE, Socket.IO polling): the client's replies and
//! pushes flow down one long HTTP response (or a chain of polls) held by one node, while its
//! requests arrive as separate HTTP requests to whichever node the load balancer picks.
//!
//! Owns this node's table of emulated sessions (session id → the connection's inbox) and the
//! routing of a request to the node that holds its session: here, or through the broker. A
//! request either only hands data on ([`Relayed::Data`], what `/emulation` does) or waits for
//! the session's answer ([`Relayed::Ask`], what a Socket.IO poll does); transports of this node
//! may also hand their own sessions things that never cross nodes ([`Relayed::Local`]).
//!
//! Must not know HTTP: transports hand it a decoded [`EmulationRequest`] or bytes.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::broker::{Broker as _, BrokerError, MeasuredBroker};
use crate::sharded::Sharded;

pub use herald_protocol::proto::EmulationRequest;

/// Requests waiting for one emulated connection. A client that posts faster than its
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
    /// The node is alive but holds no such session (ended, or never existed).
    #[error("no such session")]
    NoSuchSession,
    /// The connection already has as many requests waiting as it may.
    #[error("too many requests in flight for this connection")]
    Busy,
    /// The session did not answer in time.
    #[error("the session did not answer in time")]
    NoAnswer,
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
    check_node_and_session(&request.node, &request.session)
}

fn check_node_and_session(node: &str, session: &str) -> Result<(), EmulationError> {
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let node = node.as_bytes();
    let node_ok = node.len() == 36
        && node.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => is_hex(b),
        });
    if !node_ok {
        return Err(EmulationError::Malformed("node"));
    }
    if session.len() != 32 || !session.bytes().all(is_hex) {
        return Err(EmulationError::Malformed("session"));
    }
    Ok(())
}

/// What reaches an emulated session.
pub enum Relayed {
    /// Data posted for the connection (commands, in the connection's format), from any node.
    Data(Bytes),
    /// A request that waits for the session's answer, from any node.
    Ask(Bytes, Answer),
    /// Something a transport of this node hands its own session (a socket, say); it never
    /// crosses nodes, and the engine does not look into it.
    Local(Box<dyn Any + Send>),
}

impl std::fmt::Debug for Relayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Relayed::Data(data) => f.debug_tuple("Data").field(&data.len()).finish(),
            Relayed::Ask(data, _) => f.debug_tuple("Ask").field(&data.len()).finish(),
            Relayed::Local(_) => f.write_str("Local"),
        }
    }
}

/// Where the answer to a [`Relayed::Ask`] goes.
pub struct Answer(AnswerTo);

enum AnswerTo {
    Here(oneshot::Sender<Bytes>),
    Node {
        broker: Arc<MeasuredBroker>,
        node: String,
        request: u64,
    },
}

impl Answer {
    pub(crate) fn here() -> (Answer, oneshot::Receiver<Bytes>) {
        let (tx, rx) = oneshot::channel();
        (Answer(AnswerTo::Here(tx)), rx)
    }

    pub(crate) fn to_node(broker: Arc<MeasuredBroker>, node: String, request: u64) -> Answer {
        Answer(AnswerTo::Node {
            broker,
            node,
            request,
        })
    }

    /// Answers the request. `Err(data)`: the asker is known to have stopped waiting (only
    /// seen for an asker on this node; the answer to another node is sent blind, from a task
    /// of its own, so answering never waits for the broker).
    pub fn send(self, data: Bytes) -> Result<(), Bytes> {
        match self.0 {
            AnswerTo::Here(tx) => tx.send(data),
            AnswerTo::Node {
                broker,
                node,
                request,
            } => {
                let message = RelayMessage {
                    request,
                    kind: Kind::Answer as u32,
                    data,
                    ..Default::default()
                };
                tokio::spawn(async move {
                    if let Err(e) = broker.send_to_node(&node, message.encode()).await {
                        tracing::debug!(error = %e, "answer to another node not sent");
                    }
                });
                Ok(())
            }
        }
    }
}

/// The requests of one emulated connection, in arrival order; held by its transport. Dropping
/// it takes the session out of the table.
pub struct Inbox {
    rx: mpsc::Receiver<Relayed>,
    id: Arc<str>,
    sessions: Weak<Sessions>,
}

impl Inbox {
    /// The next request. Never ends while the inbox lives: the table keeps the sending side.
    pub async fn recv(&mut self) -> Option<Relayed> {
        self.rx.recv().await
    }

    /// The session id requests name it by.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(sessions) = self.sessions.upgrade() {
            sessions.close(&self.id);
        }
    }
}

/// This node's emulated sessions, and the asks it has sent to other nodes.
pub(crate) struct Sessions {
    table: Sharded<mpsc::Sender<Relayed>>,
    asks: Asks,
}

/// What became of a request for a session of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    Queued,
    /// The session has ended (or never was).
    Gone,
    Busy,
}

impl Sessions {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            table: Sharded::new(SHARDS),
            asks: Asks::default(),
        })
    }

    /// A new session id, unguessable (it is what lets a request speak for the connection),
    /// and the inbox of its requests.
    pub(crate) fn open(self: &Arc<Self>) -> Inbox {
        // The form `check_ids` expects: 32 lower-case hex digits.
        let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let (tx, rx) = mpsc::channel(INBOX_REQUESTS);
        self.table.write(&id).insert(id.clone(), tx);
        Inbox {
            rx,
            id,
            sessions: Arc::downgrade(self),
        }
    }

    pub(crate) fn close(&self, id: &str) {
        self.table.write(id).remove(id);
    }

    pub(crate) fn hand(&self, id: &str, item: Relayed) -> Handed {
        let Some(tx) = self.table.read(id).get(id).cloned() else {
            return Handed::Gone;
        };
        match tx.try_send(item) {
            Ok(()) => Handed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Handed::Busy,
            Err(mpsc::error::TrySendError::Closed(_)) => Handed::Gone,
        }
    }

    pub(crate) fn sender(&self, id: &str) -> Option<mpsc::Sender<Relayed>> {
        self.table.read(id).get(id).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        self.table.for_each_shard(|shard| n += shard.len());
        n
    }

    pub(crate) fn asks(&self) -> &Asks {
        &self.asks
    }
}

/// Where the answer to an ask sent to another node is awaited.
type Waiter = oneshot::Sender<Result<Bytes, EmulationError>>;
type AnswerRx = oneshot::Receiver<Result<Bytes, EmulationError>>;

/// Asks sent to other nodes and waiting for their answer, by request number.
#[derive(Default)]
pub(crate) struct Asks {
    next: AtomicU64,
    /// Sharded by request number: asks of different connections rarely share a lock.
    waiting: [Mutex<HashMap<u64, Waiter>>; 8],
}

impl Asks {
    /// A new request number and where its answer will arrive. The entry goes when the answer
    /// arrives or the receiver is dropped (the next `open` or `answer` sweeps it).
    pub(crate) fn open(&self) -> (u64, AskGuard<'_>, AnswerRx) {
        let request = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.shard(request).insert(request, tx);
        (
            request,
            AskGuard {
                asks: self,
                request,
            },
            rx,
        )
    }

    fn shard(
        &self,
        request: u64,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Bytes, EmulationError>>>>
    {
        self.waiting[(request % 8) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn answer(&self, request: u64, answer: Result<Bytes, EmulationError>) {
        if let Some(tx) = self.shard(request).remove(&request) {
            let _ = tx.send(answer);
        }
    }
}

/// Takes an ask out of the table however the wait for it ends.
pub(crate) struct AskGuard<'a> {
    asks: &'a Asks,
    request: u64,
}

impl Drop for AskGuard<'_> {
    fn drop(&mut self) {
        self.asks.shard(self.request).remove(&self.request);
    }
}

/// What a node message is. Plain `EmulationRequest`s (what nodes sent before asks existed)
/// decode as `Data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    Data = 0,
    Ask = 1,
    Answer = 2,
    /// The answer to an ask for a session the node does not hold.
    NoSession = 3,
}

/// A message between nodes: an `EmulationRequest` (fields 1–3, the same wire form) with the
/// fields of asks and answers after them.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RelayMessage {
    #[prost(string, tag = "1")]
    pub node: String,
    #[prost(string, tag = "2")]
    pub session: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    /// An ask's node, where the answer goes.
    #[prost(string, tag = "16")]
    pub reply_to: String,
    /// An ask's number on the asking node, echoed by its answer.
    #[prost(uint64, tag = "17")]
    pub request: u64,
    #[prost(uint32, tag = "18")]
    pub kind: u32,
}

impl RelayMessage {
    pub(crate) fn encode(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    pub(crate) fn kind(&self) -> Option<Kind> {
        Some(match self.kind {
            0 => Kind::Data,
            1 => Kind::Ask,
            2 => Kind::Answer,
            3 => Kind::NoSession,
            _ => return None,
        })
    }
}

pub(crate) fn ask_ids(node: &str, session: &str) -> Result<(), EmulationError> {
    check_node_and_session(node, session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(item: Relayed) -> Bytes {
        match item {
            Relayed::Data(data) => data,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn hands_requests_in_order_and_refuses_past_the_bound() {
        let sessions = Sessions::new();
        let mut inbox = sessions.open();
        let id = inbox.id().clone();
        assert_eq!(id.len(), 32);
        let hand = |text: &str| sessions.hand(&id, Relayed::Data(Bytes::from(text.to_owned())));
        for i in 0..INBOX_REQUESTS {
            assert_eq!(hand(&i.to_string()), Handed::Queued);
        }
        assert_eq!(hand("x"), Handed::Busy);
        assert_eq!(data(inbox.recv().await.unwrap()), Bytes::from("0"));
        assert_eq!(hand("y"), Handed::Queued);
        assert_eq!(
            sessions.hand("no-such-session", Relayed::Data(Bytes::new())),
            Handed::Gone
        );
        assert_eq!(sessions.len(), 1);
        drop(inbox);
        assert_eq!(
            hand("z"),
            Handed::Gone,
            "dropping the inbox closes the session"
        );
        assert_eq!(sessions.len(), 0);
    }

    #[tokio::test]
    async fn an_ask_is_answered_through_its_answer() {
        let sessions = Sessions::new();
        let mut inbox = sessions.open();
        let (tx, rx) = oneshot::channel();
        let ask = Relayed::Ask(Bytes::from("poll"), Answer(AnswerTo::Here(tx)));
        assert_eq!(sessions.hand(inbox.id(), ask), Handed::Queued);
        let Some(Relayed::Ask(question, answer)) = inbox.recv().await else {
            panic!("not an ask");
        };
        assert_eq!(question, Bytes::from("poll"));
        answer.send(Bytes::from("packets")).unwrap();
        assert_eq!(rx.await.unwrap(), Bytes::from("packets"));

        // An asker that stopped waiting gets its data back.
        let (tx, rx) = oneshot::channel();
        drop(rx);
        let answer = Answer(AnswerTo::Here(tx));
        assert_eq!(answer.send(Bytes::from("kept")), Err(Bytes::from("kept")));
    }

    #[tokio::test]
    async fn remote_asks_wait_for_their_own_answer_and_leave_no_entry() {
        let asks = Asks::default();
        let (a, guard_a, rx_a) = asks.open();
        let (b, guard_b, rx_b) = asks.open();
        assert_ne!(a, b);
        asks.answer(b, Ok(Bytes::from("to b")));
        asks.answer(a, Err(EmulationError::NoSuchSession));
        assert_eq!(rx_b.await.unwrap(), Ok(Bytes::from("to b")));
        assert_eq!(rx_a.await.unwrap(), Err(EmulationError::NoSuchSession));
        drop((guard_a, guard_b));
        let (c, guard_c, _rx) = asks.open();
        drop(guard_c);
        asks.answer(c, Ok(Bytes::new()));
        let left: usize = asks.waiting.iter().map(|m| m.lock().unwrap().len()).sum();
        assert_eq!(left, 0);
    }

    #[test]
    fn relay_messages_read_plain_emulation_requests_as_data() {
        let plain = prost::Message::encode_to_vec(&EmulationRequest {
            node: "n".into(),
            session: "s".into(),
            data: Bytes::from_static(b"{}"),
        });
        let message: RelayMessage = prost::Message::decode(&plain[..]).unwrap();
        assert_eq!(message.kind(), Some(Kind::Data));
        assert_eq!(message.session, "s");
        let ask = RelayMessage {
            kind: Kind::Ask as u32,
            request: 7,
            reply_to: "me".into(),
            ..message
        };
        let back: RelayMessage = prost::Message::decode(&ask.encode()[..]).unwrap();
        assert_eq!(
            (back.kind(), back.request, &*back.reply_to),
            (Some(Kind::Ask), 7, "me")
        );
    }

    #[test]
    fn session_ids_differ() {
        let sessions = Sessions::new();
        let a = sessions.open();
        let b = sessions.open();
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn only_ids_of_the_form_nodes_hand_out_pass() {
        let request = |node: &str, session: &str| EmulationRequest {
            node: node.into(),
            session: session.into(),
            data: Bytes::from_static(b"{}"),
        };
        let node = uuid::Uuid::new_v4().to_string();
        let inbox = Sessions::new().open();
        let session = inbox.id().clone();
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
