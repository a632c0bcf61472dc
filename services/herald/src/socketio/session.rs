//! One Socket.IO connection: an Engine.IO session around an engine session, in a task of its
//! own on the node that opened it.
//!
//! Its client reaches it three ways: polling requests (from any node, through the session's
//! relay inbox: `Node::ask`), a WebSocket it upgrades to (handed over by this node's upgrade
//! service, [`herald_engine::Relayed::Local`]), or a WebSocket it opened directly. The loop
//! waits on the engine session's queue and clocks, the inbox and the sockets; what the session
//! drains is mapped to Socket.IO packets ([`Bridge`]) and written to the WebSocket or kept for
//! the next poll. The kept packets are bounded by `client.max_queue_bytes`: past it the loop
//! stops draining, and the engine's own queue bound cuts a client that does not poll.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use herald_engine::{Answer as Reply, Flow, Inbox, Relayed, Session};
use herald_protocol::codes::{Disconnect, disconnect};
use herald_socketio::payload::{self, PayloadError};
use herald_socketio::phase::{Action, Transport};
use herald_socketio::{EioPacket, SioPacket, TransportPhase};

use super::bridge::{Bridge, Refusal};
use super::exchange::{Answer, EngineError, Request};
use super::metrics::{SessionGauge, SocketIoMetrics};
use super::socket::WsSocket;
use crate::transport::driver::Inbound;
use crate::transport::websocket::connection::LeanConnection;

/// How long a session that ended waits for its client's last poll (to tell it why).
const GOODBYE_WAIT: Duration = Duration::from_secs(5);

/// Where the session's packets go.
enum Link {
    /// Kept as a polling payload for the next GET; `waiting` is a GET held open.
    Polling {
        payload: String,
        waiting: Option<Reply>,
    },
    WebSocket(WsSocket),
}

pub struct Connection {
    inbox: Inbox,
    bridge: Bridge,
    phase: TransportPhase,
    link: Link,
    /// A WebSocket probing an upgrade.
    probe: Option<WsSocket>,
    max_payload: usize,
    max_kept: usize,
    metrics: SocketIoMetrics,
    _gauge: SessionGauge,
}

/// What woke the loop.
enum Event {
    Ready,
    Relayed(Option<Relayed>),
    Socket(Inbound),
    Probe(Inbound),
    Timer,
}

impl Connection {
    /// A session opened by a polling handshake.
    pub fn polling(
        inbox: Inbox,
        recovery: bool,
        max_payload: usize,
        max_kept: usize,
        metrics: SocketIoMetrics,
    ) -> Connection {
        Connection {
            inbox,
            bridge: Bridge::new(recovery),
            phase: TransportPhase::polling(),
            link: Link::Polling {
                payload: String::new(),
                waiting: None,
            },
            probe: None,
            max_payload,
            max_kept,
            _gauge: metrics.session(),
            metrics,
        }
    }

    /// A session opened on a WebSocket (its open packet already written).
    pub fn websocket(
        inbox: Inbox,
        socket: WsSocket,
        recovery: bool,
        max_payload: usize,
        metrics: SocketIoMetrics,
    ) -> Connection {
        Connection {
            inbox,
            bridge: Bridge::new(recovery),
            phase: TransportPhase::websocket(),
            link: Link::WebSocket(socket),
            probe: None,
            max_payload,
            max_kept: usize::MAX,
            _gauge: metrics.session(),
            metrics,
        }
    }

    /// Runs the connection until either side ends it.
    pub async fn run(mut self, mut session: Session) {
        let close = self.serve(&mut session).await;
        let mut packets = Vec::new();
        if crate::transport::driver::flushes_queue(close.as_ref()) {
            let mut frame = BytesMut::new();
            let _ = Box::pin(session.drain(&mut frame)).await;
            let mut commands = Vec::new();
            self.bridge
                .session_frame(&frame, &mut packets, &mut commands);
        }
        session.close(close.as_ref());
        if let Some(d) = &close {
            self.bridge.goodbye(d, &mut packets);
        }
        self.phase.close();
        if let Some(probe) = self.probe.take() {
            probe.close(None).await;
        }
        match std::mem::replace(
            &mut self.link,
            Link::Polling {
                payload: String::new(),
                waiting: None,
            },
        ) {
            Link::WebSocket(mut socket) => {
                if close.is_some() {
                    let texts: Vec<String> = packets.iter().map(EioPacket::to_text).collect();
                    let _ = socket.send_texts(&texts).await;
                }
                socket.close(close).await;
            }
            Link::Polling { payload, waiting } => {
                if close.is_some() {
                    let mut payload = payload;
                    append(&mut payload, &packets);
                    // The close packet in a poll of its own, as the Engine.IO server sends it:
                    // socket.io-client acts on an Engine.IO close at once but on the Socket.IO
                    // packets before it a tick later, and would lose them.
                    let mut waiting = waiting;
                    if !payload.is_empty() {
                        self.last_poll(payload, waiting.take()).await;
                    }
                    let mut closing = String::new();
                    append(&mut closing, &[EioPacket::Close]);
                    self.last_poll(closing, waiting).await;
                }
            }
        }
    }

    /// Hands the last packets to the held poll, or to the next one if it comes soon.
    async fn last_poll(&mut self, payload: String, waiting: Option<Reply>) {
        if let Some(reply) = waiting {
            let _ = reply.send(Answer::ok(payload).encode());
            return;
        }
        let deadline = tokio::time::Instant::now() + GOODBYE_WAIT;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, self.inbox.recv()).await {
            if let Relayed::Ask(data, reply) = item {
                if Request::decode(data) == Some(Request::Poll) {
                    let _ = reply.send(Answer::ok(payload).encode());
                    return;
                }
                let _ = reply.send(Answer::ok("ok").encode());
            }
        }
    }

    /// Whether the loop may take more from the session: not while the client has not polled
    /// what it was given.
    fn has_room(&self) -> bool {
        match &self.link {
            Link::Polling { payload, .. } => payload.len() < self.max_kept,
            Link::WebSocket(_) => true,
        }
    }

    async fn serve(&mut self, session: &mut Session) -> Option<Disconnect> {
        let outbound = session.outbound().clone();
        let mut deadline = session.deadline();
        let timer = tokio::time::sleep_until(deadline.into());
        tokio::pin!(timer);
        loop {
            if session.deadline() != deadline {
                deadline = session.deadline();
                timer.as_mut().reset(deadline.into());
            }
            let has_room = self.has_room();
            let event = {
                let Connection {
                    inbox, link, probe, ..
                } = self;
                tokio::select! {
                    biased;
                    _ = outbound.ready(), if has_room => Event::Ready,
                    item = inbox.recv() => Event::Relayed(item),
                    inbound = recv_socket(link) => Event::Socket(inbound),
                    inbound = recv_probe(probe) => Event::Probe(inbound),
                    _ = &mut timer => Event::Timer,
                }
            };
            let flow = match event {
                Event::Ready => {
                    let mut frame = BytesMut::new();
                    let flow = Box::pin(session.drain(&mut frame)).await;
                    let mut packets = Vec::new();
                    let mut commands = Vec::new();
                    self.bridge
                        .session_frame(&frame, &mut packets, &mut commands);
                    if let Err(d) = Box::pin(self.deliver(packets)).await {
                        return Some(d);
                    }
                    if let Flow::Close(d) = flow {
                        return Some(d);
                    }
                    if commands.is_empty() {
                        Ok(())
                    } else {
                        flow_result(Box::pin(session.handle_frame(&commands)).await)
                    }
                }
                Event::Relayed(None) => return None,
                // Boxed, as every handler here: the loop's state lives as long as the
                // connection, and would otherwise be as wide as its widest handler.
                Event::Relayed(Some(item)) => Box::pin(self.relayed(item, session)).await,
                Event::Socket(inbound) => Box::pin(self.on_socket(inbound, session)).await,
                Event::Probe(inbound) => Box::pin(self.on_probe(inbound)).await,
                Event::Timer => flow_result(session.on_timer(Instant::now())),
            };
            if let Err(close) = flow {
                return close;
            }
        }
    }

    /// Sends packets to the client: over the WebSocket, or kept for its next poll (answering a
    /// poll held open at once).
    async fn deliver(&mut self, packets: Vec<EioPacket>) -> Result<(), Disconnect> {
        if packets.is_empty() {
            return Ok(());
        }
        match &mut self.link {
            Link::WebSocket(socket) => {
                let texts: Vec<String> = packets.iter().map(EioPacket::to_text).collect();
                socket.send_texts(&texts).await
            }
            Link::Polling { payload, waiting } => {
                append(payload, &packets);
                if let Some(reply) = waiting.take() {
                    answer_poll(payload, reply);
                }
                Ok(())
            }
        }
    }

    /// A polling request, or a WebSocket handed over for an upgrade. `Err(close)`: the session
    /// ends (`None`: the client ended it).
    async fn relayed(
        &mut self,
        item: Relayed,
        session: &mut Session,
    ) -> Result<(), Option<Disconnect>> {
        match item {
            Relayed::Data(_) => Ok(()),
            Relayed::Local(socket) => {
                let Ok(socket) = socket.downcast::<LeanConnection>() else {
                    return Ok(());
                };
                let socket = WsSocket::Lean(*socket);
                if self.phase.check_upgrade_request().is_ok() && self.probe.is_none() {
                    self.probe = Some(socket);
                } else {
                    socket.close(None).await;
                }
                Ok(())
            }
            Relayed::Ask(data, reply) => match Request::decode(data) {
                Some(Request::Poll) => self.poll(reply),
                Some(Request::Post(body)) => self.post(body, reply, session).await,
                Some(Request::TooLarge) => {
                    let _ = reply.send(Answer::ok("ok").encode());
                    Err(Some(message_too_big()))
                }
                None => {
                    let _ = reply.send(Answer::error(EngineError::BadRequest).encode());
                    Ok(())
                }
            },
        }
    }

    fn poll(&mut self, reply: Reply) -> Result<(), Option<Disconnect>> {
        if self.phase.check_poll().is_err() {
            let _ = reply.send(Answer::error(EngineError::BadRequest).encode());
            return Ok(());
        }
        let Link::Polling { payload, waiting } = &mut self.link else {
            let _ = reply.send(Answer::error(EngineError::BadRequest).encode());
            return Ok(());
        };
        if let Some(held) = waiting.take() {
            // Two GETs at once: the Engine.IO server closes such a session.
            let _ = held.send(Answer::error(EngineError::BadRequest).encode());
            let _ = reply.send(Answer::error(EngineError::BadRequest).encode());
            return Err(Some(disconnect::BAD_REQUEST));
        }
        // A poll that arrives while a WebSocket probes was sent before the client paused
        // polling; held, it would keep the client from finishing the upgrade until a ping.
        if payload.is_empty() && self.phase.phase() == herald_socketio::Phase::Probing {
            let _ = reply.send(Answer::ok(EioPacket::Noop.to_text()).encode());
        } else if payload.is_empty() {
            *waiting = Some(reply);
        } else {
            answer_poll(payload, reply);
        }
        Ok(())
    }

    async fn post(
        &mut self,
        body: Bytes,
        reply: Reply,
        session: &mut Session,
    ) -> Result<(), Option<Disconnect>> {
        if self.phase.check_poll().is_err() {
            let _ = reply.send(Answer::error(EngineError::BadRequest).encode());
            return Ok(());
        }
        let packets = match payload::decode(&body, self.max_payload) {
            Ok(packets) => packets,
            Err(PayloadError::TooLarge { .. }) => {
                let _ = reply.send(Answer::ok("").with_status(413).encode());
                return Err(Some(message_too_big()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "bad polling payload");
                let _ = reply.send(Answer::error(EngineError::BadRequest).encode());
                return Err(Some(disconnect::BAD_REQUEST));
            }
        };
        let _ = reply.send(Answer::ok("ok").encode());
        self.metrics.packets_in(packets.len());
        self.on_client_packets(packets, Transport::Polling, session)
            .await
    }

    /// Packets the client sent over the transport it lives on.
    async fn on_client_packets(
        &mut self,
        packets: Vec<EioPacket>,
        via: Transport,
        session: &mut Session,
    ) -> Result<(), Option<Disconnect>> {
        let mut commands = Vec::new();
        let mut replies = Vec::new();
        let mut ended = None;
        for packet in packets {
            match self.phase.on_packet(via, &packet) {
                Ok(Action::Deliver) => {
                    let EioPacket::Message(text) = packet else {
                        // Binary attachments: Herald takes no binary events.
                        ended = Some(Some(disconnect::BAD_REQUEST));
                        break;
                    };
                    let sio = match SioPacket::decode(&text) {
                        Ok(sio) => sio,
                        Err(e) => {
                            tracing::debug!(error = %e, "bad Socket.IO packet");
                            ended = Some(Some(disconnect::BAD_REQUEST));
                            break;
                        }
                    };
                    match self.bridge.client_packet(sio, &mut commands, &mut replies) {
                        Ok(()) => {}
                        Err(Refusal::Left) => {
                            ended = Some(None);
                            break;
                        }
                        Err(Refusal::Refused(d)) => {
                            ended = Some(Some(d));
                            break;
                        }
                    }
                }
                Ok(Action::Heartbeat) => {
                    if let Some(pong) = self.bridge.pong() {
                        if !commands.is_empty() {
                            commands.push(b'\n');
                        }
                        commands.extend_from_slice(pong);
                    }
                }
                Ok(Action::Close) => {
                    ended = Some(None);
                    break;
                }
                Ok(Action::AnswerProbe | Action::Upgraded) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Engine.IO packet refused");
                    ended = Some(Some(disconnect::BAD_REQUEST));
                    break;
                }
            }
        }
        if !commands.is_empty() {
            flow_result(Box::pin(session.handle_frame(&commands)).await)?;
        }
        self.deliver(replies).await.map_err(Some)?;
        match ended {
            Some(close) => Err(close),
            None => Ok(()),
        }
    }

    async fn on_socket(
        &mut self,
        inbound: Inbound,
        session: &mut Session,
    ) -> Result<(), Option<Disconnect>> {
        match inbound {
            Inbound::Message(message) => {
                let packet = decode_frame(&message).map_err(Some)?;
                self.metrics.packets_in(1);
                self.on_client_packets(vec![packet], Transport::WebSocket, session)
                    .await
            }
            Inbound::Ping(payload) => {
                if let Link::WebSocket(socket) = &mut self.link {
                    socket.pong(payload).await.map_err(Some)?;
                }
                Ok(())
            }
            Inbound::Closed => Err(None),
            Inbound::Refused(d) => Err(Some(d)),
        }
    }

    /// What the probing WebSocket sent: `2probe`, then `5`; anything else ends the probe.
    async fn on_probe(&mut self, inbound: Inbound) -> Result<(), Option<Disconnect>> {
        let packet = match inbound {
            Inbound::Message(message) => decode_frame(&message).ok(),
            Inbound::Ping(payload) => {
                if let Some(probe) = &mut self.probe {
                    let _ = probe.pong(payload).await;
                }
                return Ok(());
            }
            Inbound::Closed | Inbound::Refused(_) => None,
        };
        let action = match packet {
            Some(packet) => self.phase.on_packet(Transport::WebSocket, &packet),
            None => Err(herald_socketio::PhaseError::ProbeAborted("close")),
        };
        match action {
            Ok(Action::AnswerProbe) => {
                let answered = match &mut self.probe {
                    Some(probe) => {
                        probe
                            .send_texts(&[EioPacket::Pong(Some("probe".into())).to_text()])
                            .await
                    }
                    None => Ok(()),
                };
                if answered.is_err() {
                    self.abort_probe().await;
                    return Ok(());
                }
                // The client pauses polling: its held poll ends with a noop.
                if let Link::Polling { waiting, .. } = &mut self.link
                    && let Some(reply) = waiting.take()
                {
                    let _ = reply.send(Answer::ok(EioPacket::Noop.to_text()).encode());
                }
                Ok(())
            }
            Ok(Action::Upgraded) => {
                let Some(mut socket) = self.probe.take() else {
                    return Ok(());
                };
                let previous = std::mem::replace(
                    &mut self.link,
                    Link::Polling {
                        payload: String::new(),
                        waiting: None,
                    },
                );
                if let Link::Polling { payload, waiting } = previous {
                    if let Some(reply) = waiting {
                        let _ = reply.send(Answer::ok(EioPacket::Noop.to_text()).encode());
                    }
                    if !payload.is_empty() {
                        let texts: Vec<String> = payload
                            .split(payload::SEPARATOR)
                            .map(str::to_owned)
                            .collect();
                        socket.send_texts(&texts).await.map_err(Some)?;
                    }
                }
                self.link = Link::WebSocket(socket);
                self.metrics.upgraded();
                Ok(())
            }
            _ => {
                self.abort_probe().await;
                Ok(())
            }
        }
    }

    async fn abort_probe(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.close(None).await;
        }
    }
}

/// A polling body over `socketio.max_payload` (a WebSocket message over it closes the same way).
fn message_too_big() -> Disconnect {
    crate::transport::websocket::message_too_big()
}

/// A WebSocket's Engine.IO packet.
fn decode_frame(message: &[u8]) -> Result<EioPacket, Disconnect> {
    let text = std::str::from_utf8(message).map_err(|_| disconnect::BAD_REQUEST)?;
    EioPacket::decode_text(text).map_err(|e| {
        tracing::debug!(error = %e, "bad Engine.IO packet");
        disconnect::BAD_REQUEST
    })
}

fn flow_result(flow: Flow) -> Result<(), Option<Disconnect>> {
    match flow {
        Flow::Continue => Ok(()),
        Flow::Close(d) => Err(Some(d)),
    }
}

fn append(payload: &mut String, packets: &[EioPacket]) {
    for packet in packets {
        if !payload.is_empty() {
            payload.push(payload::SEPARATOR);
        }
        packet.write_text(payload);
    }
}

/// Answers a held poll with what is kept; if the poller has gone, keeps it for the next.
fn answer_poll(payload: &mut String, reply: Reply) {
    let taken = std::mem::take(payload);
    if let Err(unsent) = reply.send(Answer::ok(taken).encode())
        && let Some(answer) = Answer::decode(unsent)
    {
        let kept = std::mem::take(payload);
        *payload = String::from_utf8_lossy(&answer.body).into_owned();
        if !kept.is_empty() {
            payload.push(payload::SEPARATOR);
            payload.push_str(&kept);
        }
    }
}

async fn recv_socket(link: &mut Link) -> Inbound {
    match link {
        Link::WebSocket(socket) => socket.recv().await,
        Link::Polling { .. } => std::future::pending().await,
    }
}

async fn recv_probe(probe: &mut Option<WsSocket>) -> Inbound {
    match probe {
        Some(probe) => probe.recv().await,
        None => std::future::pending().await,
    }
}
