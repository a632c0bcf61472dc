//! The session: one client connection's protocol state machine, transport-free.
//!
//! The connection's task owns the `Session` and drives it with three calls: [`Session::handle_frame`]
//! for every inbound transport frame, [`Session::drain`] when its outbound queue is ready, and
//! [`Session::on_timer`] at [`Session::deadline`]. Each returns a [`Flow`]; `Close` carries the
//! disconnect code the transport must send. Dropping the session removes it from the hub and the
//! registry, so cleanup happens however the connection ends.

mod commands;
mod position;
mod subscriptions;
mod timers;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use herald_protocol::codec::{self, Format};
use herald_protocol::codes::{self, Disconnect};
use herald_protocol::proto::{Command, Reply};

use crate::channel_log::LogReader;
use crate::control::Control;
use crate::error::CommandError;
use crate::hub::{ConnId, Subscriber};
use crate::limits::CommandBucket;
use crate::metrics::Limit;
use crate::node::Node;
use crate::outbound::{Outbound, Outgoing};

use subscriptions::Subscriptions;
use timers::Timers;

/// About the most a transport frame carries: large enough to batch hundreds of messages into one
/// write, small enough to stay below the allocator's mmap threshold (a bigger buffer costs
/// mmap/munmap and page faults on every write).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// What the transport must do after a call into the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Close the connection with this code and reason.
    Close(Disconnect),
}

pub struct Session {
    node: Node,
    conn: ConnId,
    format: Format,
    outbound: Outbound,
    state: State,
    timers: Timers,
    /// A positioned subscribe whose reply is being sent: the queue gets a marker behind the
    /// reply, and the channel's held live publications go out when the drain reaches it.
    caught_up_after_reply: Vec<crate::hub::ChannelId>,
    /// Drains so far; a subscription made during a drain is read from the next one.
    drains: u64,
    /// The size of the last frame: what the next one reserves, so a busy connection builds
    /// its frame in one allocation instead of doubling its way up.
    last_frame_len: usize,
    /// The session id of an emulated transport (HTTP streaming, SSE): what its command
    /// requests name it by.
    emulation: Option<Arc<str>>,
    /// What is left of the connection's command allowance (`client.command_rate_limit`).
    commands: CommandBucket,
    /// A unidirectional connection (see [`Mode::Unidirectional`]).
    uni: bool,
}

/// How a session talks to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commands in, replies and pushes out (the protocol's transports).
    Bidirectional,
    /// The client speaks once, a bare connect request; then the server only pushes (JSON).
    /// The connect reply goes out as a `connect` push, every push bare (`{"channel":..,
    /// "pub":..}`, not wrapped in `{"push":..}`), pings expect no pong, a failed connect closes
    /// the connection, and whatever the client sends after connecting is ignored.
    Unidirectional,
}

enum State {
    /// Waiting for the connect command.
    Connecting,
    /// A connect failed with an error reply; the client must go away and come back.
    Failed,
    Connected(Box<Connected>),
}

struct Connected {
    client_id: Arc<str>,
    user: Arc<str>,
    /// Connection info from the token, raw JSON (shown to others in client publications).
    info: Option<Bytes>,
    channels: Subscriptions<ChannelSub>,
    /// Positioned subscriptions (few per connection), found by the hub's channel id.
    positions: Vec<position::Position>,
}

struct ChannelSub {
    /// Channel info from the subscription token or the server API, raw JSON.
    info: Option<Bytes>,
    /// The hub's id of the channel (its log reader, kept by the outbound queue, carries the
    /// same).
    channel_id: crate::hub::ChannelId,
    /// When the subscription ends because its token expired (None: it does not).
    close_at: Option<timers::SubClose>,
}

impl Session {
    pub(crate) fn new(
        node: Node,
        conn: ConnId,
        format: Format,
        emulation: Option<Arc<str>>,
        mode: Mode,
    ) -> Self {
        let config = node.client_config();
        let outbound = Outbound::new(config.max_queue_bytes);
        let now = Instant::now();
        let mut timers = Timers::connecting(now, config);
        let uni = mode == Mode::Unidirectional;
        if uni {
            timers.expect_no_pong();
        }
        let commands = CommandBucket::new(now, config.command_rate_burst);
        Self {
            node,
            conn,
            format,
            outbound,
            state: State::Connecting,
            timers,
            caught_up_after_reply: Vec::new(),
            drains: 0,
            last_frame_len: 0,
            emulation,
            commands,
            uni,
        }
    }

    pub fn mode(&self) -> Mode {
        if self.uni {
            Mode::Unidirectional
        } else {
            Mode::Bidirectional
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// How long the transport keeps a connection between two writes (`client.write_delay`).
    pub fn write_delay(&self) -> std::time::Duration {
        self.node.client_config().write_delay
    }

    /// The queue the transport waits on (`ready`) before calling [`Session::drain`].
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The client id, once connected.
    pub fn client_id(&self) -> Option<&str> {
        match &self.state {
            State::Connected(c) => Some(&c.client_id),
            _ => None,
        }
    }

    /// Decodes one transport frame (one or more commands) and handles each in order.
    pub async fn handle_frame(&mut self, frame: &[u8]) -> Flow {
        if self.uni {
            return self.handle_uni_frame(frame).await;
        }
        let commands = match codec::decode_commands(self.format, frame) {
            Ok(commands) => commands,
            Err(e) => {
                tracing::debug!(error = %e, "malformed frame");
                return Flow::Close(codes::disconnect::BAD_REQUEST);
            }
        };
        for command in commands {
            if let Flow::Close(d) = self.handle_command(command).await {
                return Flow::Close(d);
            }
        }
        Flow::Continue
    }

    /// A unidirectional client's message: its connect request first, then nothing it says
    /// matters.
    async fn handle_uni_frame(&mut self, frame: &[u8]) -> Flow {
        if !matches!(self.state, State::Connecting) {
            return Flow::Continue;
        }
        let connect = match codec::decode_connect_request(frame) {
            Ok(connect) => connect,
            Err(e) => {
                tracing::debug!(error = %e, "malformed connect request");
                return Flow::Close(codes::disconnect::BAD_REQUEST);
            }
        };
        let command = Command {
            id: 1,
            connect: Some(connect),
            ..Default::default()
        };
        self.handle_command(command).await
    }

    async fn handle_command(&mut self, command: Command) -> Flow {
        let id = command.id;
        let Some(method) = commands::Method::of(command) else {
            // An empty command is the pong of protocol v2; anything else without a method is
            // garbage.
            if id == 0 && matches!(self.state, State::Connected(_)) && self.timers.pong_received() {
                return Flow::Continue;
            }
            return Flow::Close(codes::disconnect::BAD_REQUEST);
        };
        self.node.metrics().command(method.index());
        if id == 0 && !method.allows_zero_id() {
            return Flow::Close(codes::disconnect::BAD_REQUEST);
        }
        let mut span = self
            .node
            .tracer()
            .and_then(|tracer| command_span(tracer, &method));
        let result = match (&self.state, method) {
            (State::Connecting, commands::Method::Connect(req)) => {
                let started = Instant::now();
                let result = self.handle_connect(req).await;
                self.node
                    .metrics()
                    .connect_duration
                    .observe(started.elapsed());
                result
            }
            (State::Connected(_), commands::Method::Connect(_))
            | (State::Connecting | State::Failed, _) => {
                return Flow::Close(codes::disconnect::BAD_REQUEST);
            }
            (State::Connected(_), method) => {
                let client = self.node.client_config();
                let (rate, burst) = (client.command_rate_limit, client.command_rate_burst);
                if self.commands.take(Instant::now(), rate, burst) {
                    self.dispatch(method).await
                } else {
                    self.node.metrics().limited(Limit::CommandRate);
                    Err(codes::TOO_MANY_REQUESTS.into())
                }
            }
        };
        if let (Some(span), Err(e)) = (&mut span, &result) {
            span.fail(&match e {
                CommandError::Reply(code) => format!("error {}: {}", code.code, code.message),
                CommandError::Disconnect(d) => format!("disconnect {}: {}", d.code, d.reason),
            });
        }
        drop(span);
        match result {
            Ok(Some(mut reply)) => {
                reply.id = id;
                if self.uni {
                    reply = connect_push(reply);
                }
                self.send(&reply);
                self.queue_caught_up();
                Flow::Continue
            }
            Ok(None) => Flow::Continue,
            Err(CommandError::Reply(code)) if self.uni => {
                // No reply can reach a unidirectional client: a refused connect closes.
                self.node.metrics().command_error(code.code);
                Flow::Close(uni_refusal(code))
            }
            Err(CommandError::Reply(code)) => {
                self.node.metrics().command_error(code.code);
                self.send(&Reply {
                    id,
                    error: Some(code.to_proto()),
                    ..Default::default()
                });
                // A positioned subscription made before the error holds nothing back forever.
                self.queue_caught_up();
                Flow::Continue
            }
            Err(CommandError::Disconnect(d)) => Flow::Close(d),
        }
    }

    /// When the transport must call [`Session::on_timer`] next.
    pub fn deadline(&self) -> Instant {
        self.timers.next()
    }

    /// Sends pings, and closes connections that are stale, silent or expired.
    pub fn on_timer(&mut self, now: Instant) -> Flow {
        let connected = matches!(self.state, State::Connected(_));
        match self.timers.fire(now, connected) {
            timers::Due::Nothing => Flow::Continue,
            timers::Due::Ping => {
                self.outbound.push(codec::ping(self.format));
                Flow::Continue
            }
            timers::Due::CheckPositions => {
                // Checked by the next drain: reading the stream's top is a broker call.
                if let State::Connected(c) = &self.state {
                    for p in &c.positions {
                        self.outbound.control(Control::PeriodicPositionCheck {
                            channel: p.channel.clone(),
                        });
                    }
                }
                Flow::Continue
            }
            timers::Due::SubscriptionsExpired => {
                self.close_expired_subscriptions(now);
                Flow::Continue
            }
            timers::Due::Close(d) => Flow::Close(d),
        }
    }

    /// Moves what is queued into `frame` as one transport frame (replies joined the way the
    /// format wants; at most about [`MAX_FRAME_BYTES`], the rest stays ready), applies server
    /// requests, then adds what the channel logs of its subscriptions have new. A slow
    /// client's backlog is not flushed.
    ///
    /// Replies go before publications: a subscription's reply is always queued before the
    /// drain that reads its channel's first publications.
    pub async fn drain(&mut self, frame: &mut BytesMut) -> Flow {
        let flow = self.drain_frame(frame).await;
        if self.uni {
            codec::unwrap_pushes(frame);
        }
        flow
    }

    async fn drain_frame(&mut self, frame: &mut BytesMut) -> Flow {
        self.drains += 1;
        // Not kept between drains: an idle connection holds no buffer, and publications do
        // not pass through here (only replies and node requests do).
        let mut items = Vec::new();
        let (bytes, close) = self.outbound.drain_up_to(MAX_FRAME_BYTES, &mut items);
        // One allocation of about the right size instead of a chain of reallocations.
        frame.reserve(bytes + items.len() + self.last_frame_len.min(MAX_FRAME_BYTES));
        let mut lost: Option<Flow> = None;
        for item in items {
            match item {
                Outgoing::Frame(bytes) => codec::append_to_frame(self.format, &bytes, frame),
                Outgoing::Control(control) => match *control {
                    Control::CaughtUp { channel_id } => {
                        if let Some(flow) = self.caught_up(channel_id, frame) {
                            lost.get_or_insert(flow);
                        }
                    }
                    Control::CheckPosition { channel } => {
                        if let Some(flow) = Box::pin(self.check_position(&channel, frame)).await {
                            lost.get_or_insert(flow);
                        }
                    }
                    Control::PeriodicPositionCheck { channel } => {
                        let check = self.periodic_position_check(&channel, frame);
                        if let Some(flow) = Box::pin(check).await {
                            lost.get_or_insert(flow);
                        }
                    }
                    control => self.apply_control(control).await,
                },
            }
        }
        if lost.is_none() && close != Some(codes::disconnect::SLOW) {
            lost = self.read_logs(frame);
        }
        self.last_frame_len = frame.len();
        if let Some(Flow::Close(d)) = lost {
            return Flow::Close(d);
        }
        match close {
            None => Flow::Continue,
            Some(d) => {
                if d == codes::disconnect::SLOW {
                    frame.clear();
                }
                Flow::Close(d)
            }
        }
    }

    /// Appends the publications the subscriptions' channel logs have new, up to about
    /// [`MAX_FRAME_BYTES`] (the rest makes the queue ready again), in the order they were
    /// published across channels. Positioned subscriptions go through their position.
    fn read_logs(&mut self, frame: &mut BytesMut) -> Option<Flow> {
        self.outbound.take_log_wake();
        let drains = self.drains;
        let mut readers = self.outbound.take_readers();
        let mut more = false;
        let mut flow = None;
        loop {
            // The reader whose next entry was published first, and the number of the next
            // entry of any other: the first reads up to there.
            let mut first: Option<(u64, usize)> = None;
            let mut until = u64::MAX;
            for (i, reader) in readers.iter_mut().enumerate() {
                if reader.since_drain == drains {
                    more = true;
                    continue;
                }
                let Some(seq) = reader.peek_seq() else {
                    continue;
                };
                match first {
                    Some((best, _)) if best < seq => until = until.min(seq),
                    _ => {
                        if let Some((best, _)) = first {
                            until = until.min(best);
                        }
                        first = Some((seq, i));
                    }
                }
            }
            let Some((_, i)) = first else {
                break;
            };
            match self.read_log(&mut readers[i], until, frame) {
                LogRead::Done => {}
                LogRead::Full => {
                    more = true;
                    break;
                }
                LogRead::Gone => {
                    readers.swap_remove(i);
                }
                LogRead::Close(f) => {
                    flow = Some(f);
                    break;
                }
            }
        }
        self.outbound.return_readers(readers);
        if more {
            self.outbound.wake_for_log();
        }
        flow
    }

    /// Reads one subscription's log up to entry number `until`.
    fn read_log(&mut self, reader: &mut LogReader, until: u64, frame: &mut BytesMut) -> LogRead {
        let format = self.format;
        let channel_id = reader.channel_id;
        let positioned = self.position_mut(channel_id).is_some();
        let mut outcome = LogRead::Done;
        reader.read(until, |entry| {
            if frame.len() >= MAX_FRAME_BYTES {
                outcome = LogRead::Full;
                return false;
            }
            let Some(bytes) = entry.frame(format) else {
                return true;
            };
            let at = entry.at.filter(|_| positioned);
            let Some(at) = at else {
                codec::append_to_frame(format, bytes, frame);
                return true;
            };
            if let Some(Flow::Close(d)) = self.positioned_publication(channel_id, at, bytes, frame)
            {
                outcome = LogRead::Close(Flow::Close(d));
                return false;
            }
            if self.position_mut(channel_id).is_none() {
                // A gap ended the subscription: nothing more of it goes out.
                outcome = LogRead::Gone;
                return false;
            }
            true
        });
        outcome
    }

    /// Records a new subscription and its reader of the channel's log.
    fn subscribed(
        &mut self,
        channel: String,
        info: Option<Bytes>,
        reader: LogReader,
        close_at: Option<timers::SubClose>,
    ) {
        let channel_id = reader.channel_id;
        self.outbound.add_reader(reader);
        if let State::Connected(c) = &mut self.state {
            let sub = ChannelSub {
                info,
                channel_id,
                close_at,
            };
            c.channels.insert(channel, sub);
        }
        if close_at.is_some() {
            self.rearm_sub_close();
        }
    }

    /// Points the session's clock at the earliest subscription close.
    fn rearm_sub_close(&mut self) {
        let earliest = match &self.state {
            State::Connected(c) => c.channels.values().filter_map(|s| s.close_at).min(),
            _ => None,
        };
        self.timers.set_sub_close(earliest);
    }

    /// Ends the subscriptions whose tokens expired without a refresh: unsubscribe 2501, on
    /// which the SDKs subscribe again with a fresh token.
    fn close_expired_subscriptions(&mut self, now: Instant) {
        let expired: Vec<String> = match &self.state {
            State::Connected(c) => c
                .channels
                .iter()
                .filter(|(_, s)| s.close_at.is_some_and(|at| self.timers.sub_due(at, now)))
                .map(|(name, _)| name.clone())
                .collect(),
            _ => Vec::new(),
        };
        for channel in expired {
            self.unsubscribe_with(&channel, codes::UNSUBSCRIBE_EXPIRED);
        }
        self.rearm_sub_close();
    }

    /// Ends the session's side of a subscription: its entry and its log reader.
    fn forget(&mut self, channel: &str) -> Option<ChannelSub> {
        let State::Connected(c) = &mut self.state else {
            return None;
        };
        let sub = c.channels.remove(channel)?;
        self.outbound.remove_reader(sub.channel_id);
        Some(sub)
    }

    async fn apply_control(&mut self, control: Control) {
        let result = match control.clone() {
            Control::Subscribe {
                channel,
                info,
                data,
            } => self.server_subscribe(channel, info, data).await,
            Control::Unsubscribe { channel } => {
                self.server_unsubscribe(&channel);
                Ok(())
            }
            Control::CaughtUp { .. }
            | Control::CheckPosition { .. }
            | Control::PeriodicPositionCheck { .. } => {
                tracing::error!(?control, "session marker outside a drain");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::info!(error = ?e, "server-side subscribe failed");
        }
    }

    /// Queues the caught-up markers of the positioned subscriptions whose reply (or subscribe
    /// push) was just queued.
    fn queue_caught_up(&mut self) {
        for channel_id in std::mem::take(&mut self.caught_up_after_reply) {
            self.outbound.control(Control::CaughtUp { channel_id });
        }
    }

    fn send(&self, reply: &Reply) -> bool {
        self.outbound.push(codec::encode_reply(self.format, reply))
    }

    fn subscriber(&self, join_leave: bool) -> Subscriber {
        Subscriber {
            outbound: self.outbound.clone(),
            format: self.format,
            join_leave,
        }
    }
}

/// The connect reply of a unidirectional session as the `connect` push it gets instead.
fn connect_push(reply: Reply) -> Reply {
    let Some(r) = reply.connect else {
        return reply;
    };
    Reply {
        push: Some(herald_protocol::proto::Push {
            connect: Some(herald_protocol::proto::Connect {
                client: r.client,
                version: r.version,
                data: r.data,
                subs: r.subs,
                expires: r.expires,
                ttl: r.ttl,
                ping: r.ping,
                pong: r.pong,
                session: r.session,
                node: r.node,
                time: r.time,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The disconnect a unidirectional client gets for a connect refused with an error reply:
/// an expired token cannot be refreshed without a way to ask, so the connection is over.
fn uni_refusal(code: codes::ErrorCode) -> Disconnect {
    if code.code == codes::TOKEN_EXPIRED.code {
        codes::disconnect::EXPIRED
    } else if code.code == codes::TOO_MANY_REQUESTS.code {
        codes::disconnect::TOO_MANY_REQUESTS
    } else {
        codes::disconnect::BAD_REQUEST
    }
}

/// How reading one channel log during a drain ended.
enum LogRead {
    /// Up to the entry asked for, or everything there was.
    Done,
    /// The frame is full; the rest waits for the next drain.
    Full,
    /// The subscription ended while reading (a gap in a positioned one).
    Gone,
    /// The connection must close (a gap in a server-side positioned subscription).
    Close(Flow),
}

impl Session {
    /// Ends the session, counting how it ended (`None`: the client went away). Dropping a
    /// session cleans up just the same, without the count.
    pub fn close(self, disconnect: Option<&Disconnect>) {
        let code = disconnect.map_or(codes::disconnect::CONNECTION_CLOSED.code, |d| d.code);
        self.node.metrics().disconnected(code);
        if let State::Connected(c) = &self.state {
            let reason = disconnect.map_or("connection closed", |d| d.reason.as_ref());
            tracing::debug!(target: crate::ACCESS_LOG, client = %c.client_id, user = %c.user, code, reason, "client disconnected");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Nothing may be queued for a connection that is gone, and nothing of the channel
        // logs kept for it.
        self.outbound.close(codes::disconnect::CONNECTION_CLOSED);
        drop(self.outbound.take_readers());
        if let Some(id) = &self.emulation {
            self.node.inner().emulated.close(id);
        }
        if let State::Connected(c) = &self.state {
            for channel in c.channels.keys() {
                self.node.remove_subscription(channel, self.conn);
            }
            self.node.inner().registry.remove(&c.user, self.conn);
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("conn", &self.conn)
            .field("format", &self.format)
            .field("client", &self.client_id())
            .finish_non_exhaustive()
    }
}

/// The span of a client command worth tracing (connect, subscribe): they wait on token checks,
/// the broker and history. Other commands get none.
fn command_span(
    tracer: &dyn crate::trace::Tracer,
    method: &commands::Method,
) -> Option<Box<dyn crate::trace::Span>> {
    use crate::trace::{SpanKind, SpanStart};
    let (name, channel) = match method {
        commands::Method::Connect(_) => ("connect", None),
        commands::Method::Subscribe(r) => ("subscribe", Some(r.channel.as_str())),
        _ => return None,
    };
    let attributes = [("messaging.destination.name", channel.unwrap_or_default())];
    tracer.start(SpanStart {
        name,
        kind: SpanKind::Server,
        parent: None,
        attributes: if channel.is_some() { &attributes } else { &[] },
    })
}
