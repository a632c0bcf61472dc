//! The session: one client connection's protocol state machine, transport-free.
//!
//! The connection's task owns the `Session` and drives it with three calls: [`Session::handle_frame`]
//! for every inbound transport frame, [`Session::drain`] when its outbound queue is ready, and
//! [`Session::on_timer`] at [`Session::deadline`]. Each returns a [`Flow`]; `Close` carries the
//! disconnect code the transport must send. Dropping the session removes it from the hub and the
//! registry, so cleanup happens however the connection ends.

mod commands;
mod position;
mod timers;

use std::collections::HashMap;
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
use crate::node::Node;
use crate::outbound::{Outbound, Outgoing};

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
    /// Reused between drains so a drain allocates nothing in the steady state.
    scratch: Vec<Outgoing>,
    /// A positioned subscribe whose reply is being sent: the queue gets a marker behind the
    /// reply, and the channel's held live publications go out when the drain reaches it.
    caught_up_after_reply: Vec<crate::hub::ChannelId>,
    /// Drains so far; a subscription made during a drain is read from the next one.
    drains: u64,
    /// The size of the last frame: what the next one reserves, so a busy connection builds
    /// its frame in one allocation instead of doubling its way up.
    last_frame_len: usize,
    /// Reused between drains: the positioned channels whose logs a drain reads.
    positioned_scratch: Vec<crate::hub::ChannelId>,
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
    channels: HashMap<String, ChannelSub>,
    /// Positioned subscriptions (few per connection), found by the hub's channel id.
    positions: Vec<position::Position>,
}

struct ChannelSub {
    /// Channel info from the subscription token or the server API, raw JSON.
    info: Option<Bytes>,
    /// Where this subscription is in the channel's log; out of its place only while a drain
    /// reads through it.
    reader: Option<LogReader>,
}

impl Session {
    pub(crate) fn new(node: Node, conn: ConnId, format: Format) -> Self {
        let config = node.client_config();
        let outbound = Outbound::new(config.max_queue_bytes);
        let timers = Timers::connecting(Instant::now(), config);
        Self {
            node,
            conn,
            format,
            outbound,
            state: State::Connecting,
            timers,
            scratch: Vec::new(),
            caught_up_after_reply: Vec::new(),
            drains: 0,
            last_frame_len: 0,
            positioned_scratch: Vec::new(),
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
        let result = match (&self.state, method) {
            (State::Connecting, commands::Method::Connect(req)) => self.handle_connect(req).await,
            (State::Connected(_), commands::Method::Connect(_))
            | (State::Connecting | State::Failed, _) => {
                return Flow::Close(codes::disconnect::BAD_REQUEST);
            }
            (State::Connected(_), method) => self.dispatch(method).await,
        };
        match result {
            Ok(Some(mut reply)) => {
                reply.id = id;
                self.send(&reply);
                self.queue_caught_up();
                Flow::Continue
            }
            Ok(None) => Flow::Continue,
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
        self.drains += 1;
        let mut items = std::mem::take(&mut self.scratch);
        let (bytes, close) = self.outbound.drain_up_to(MAX_FRAME_BYTES, &mut items);
        // One allocation of about the right size instead of a chain of reallocations.
        frame.reserve(bytes + items.len() + self.last_frame_len.min(MAX_FRAME_BYTES));
        let mut lost: Option<Flow> = None;
        for item in items.drain(..) {
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
                    control => self.apply_control(control).await,
                },
            }
        }
        self.scratch = items;
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
    /// [`MAX_FRAME_BYTES`] (the rest makes the queue ready again). Positioned subscriptions
    /// go through their position, the others straight into the frame.
    fn read_logs(&mut self, frame: &mut BytesMut) -> Option<Flow> {
        self.outbound.take_log_wake();
        let format = self.format;
        let drains = self.drains;
        let State::Connected(c) = &mut self.state else {
            return None;
        };
        let mut more = false;
        let mut positioned = std::mem::take(&mut self.positioned_scratch);
        for sub in c.channels.values_mut() {
            let Some(reader) = sub.reader.as_mut() else {
                continue;
            };
            if reader.since_drain == drains {
                more = true;
                continue;
            }
            if c.positions
                .iter()
                .any(|p| p.channel_id == reader.channel_id)
            {
                positioned.push(reader.channel_id);
                continue;
            }
            more |= reader.read(|entry| {
                if frame.len() >= MAX_FRAME_BYTES {
                    return false;
                }
                if let Some(bytes) = entry.frame(format) {
                    codec::append_to_frame(format, bytes, frame);
                }
                true
            });
        }
        let mut flow = None;
        for channel_id in positioned.drain(..) {
            if flow.is_some() {
                break;
            }
            let (stopped, result) = self.read_positioned(channel_id, frame);
            more |= stopped;
            flow = result;
        }
        self.positioned_scratch = positioned;
        if more {
            self.outbound.wake_for_log();
        }
        flow
    }

    /// Reads a positioned subscription's log through its position. Returns whether it stopped
    /// at the frame budget, and a close if the client must recover and cannot be told otherwise.
    fn read_positioned(
        &mut self,
        channel_id: crate::hub::ChannelId,
        frame: &mut BytesMut,
    ) -> (bool, Option<Flow>) {
        let format = self.format;
        let State::Connected(c) = &mut self.state else {
            return (false, None);
        };
        let Some(position) = c.positions.iter().find(|p| p.channel_id == channel_id) else {
            return (false, None);
        };
        let channel = position.channel.clone();
        let Some(mut reader) = c.channels.get_mut(&channel).and_then(|s| s.reader.take()) else {
            return (false, None);
        };
        let mut flow = None;
        let mut gone = false;
        let stopped = reader.read(|entry| {
            if frame.len() >= MAX_FRAME_BYTES {
                return false;
            }
            let Some(bytes) = entry.frame(format) else {
                return true;
            };
            let Some(at) = entry.at else {
                codec::append_to_frame(format, bytes, frame);
                return true;
            };
            match self.positioned_publication(channel_id, at, bytes, frame) {
                None => true,
                Some(f) => {
                    flow = Some(f);
                    false
                }
            }
        });
        if let State::Connected(c) = &mut self.state {
            match c.channels.get_mut(&channel) {
                Some(sub) => sub.reader = Some(reader),
                // The gap ended the subscription: nothing more of it goes out.
                None => gone = true,
            }
        }
        (stopped && !gone && flow.is_none(), flow)
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
            Control::CaughtUp { .. } | Control::CheckPosition { .. } => {
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

impl Session {
    /// Ends the session, counting how it ended (`None`: the client went away). Dropping a
    /// session cleans up just the same, without the count.
    pub fn close(self, disconnect: Option<&Disconnect>) {
        self.node
            .metrics()
            .disconnected(disconnect.map_or(codes::disconnect::CONNECTION_CLOSED.code, |d| d.code));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Nothing may be queued for a connection that is gone.
        self.outbound.close(codes::disconnect::CONNECTION_CLOSED);
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
