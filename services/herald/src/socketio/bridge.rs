//! The mapping between Socket.IO packets and the Centrifugo client protocol (JSON), for one
//! connection: the engine session speaks Centrifugo, the client Socket.IO, and this sits between.
//!
//! - client → session: CONNECT (`auth.token`) becomes a `connect` command; the events
//!   `subscribe`, `unsubscribe`, `publish`, `history`, `presence`, `presence_stats` and `refresh`
//!   become commands whose replies answer the event's ack as `{ok: result}` or
//!   `{error: {code, message}}`; an Engine.IO pong becomes the protocol's pong.
//! - session → client: publications, joins and leaves become `publication`, `join` and `leave`
//!   events, server-side subscriptions `subscribed`, unsubscriptions `unsubscribed`, messages
//!   `message`, the protocol's ping an Engine.IO ping.
//!
//! Connection state recovery (`[socketio] recovery`): the CONNECT answer carries a `pid`, and
//! every event a last string argument, the offset token socket.io-client keeps and sends back
//! with `pid` when it reconnects: the connection's channels and their stream positions
//! ([`Positions`]). Its channels are subscribed again, with the publications missed since.
//!
//! Pure: bytes in, packets out. What a publication costs here, per connection, is one scan of
//! its JSON and one string built from slices of it.

use std::collections::HashMap;

use herald_protocol::codes::{self, Disconnect};
use herald_socketio::socketio::{PacketType, ROOT_NAMESPACE};
use herald_socketio::{EioPacket, SioPacket};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::positions::Positions;

/// The name SDK clients report in their connect command.
const CLIENT_NAME: &str = "socket.io";

/// What a client's packet asks of the connection beyond commands.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client left the namespace (DISCONNECT): end the session.
    Left,
    /// The client sent what Herald does not take (binary events, a broken packet): end the
    /// session with this.
    Refused(Disconnect),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Connecting,
    Connected,
    /// The connect was refused: the client goes away.
    Failed,
}

/// What a command sent to the session was for.
#[derive(Debug)]
enum Pending {
    Connect,
    /// A client event, answered through its ack (if it asked for one).
    Event {
        ack: Option<u64>,
        method: Method,
    },
    /// A subscription restored after a recovered reconnect.
    Restore {
        channel: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Method {
    Subscribe(String),
    Unsubscribe(String),
    Other,
}

pub struct Bridge {
    state: State,
    next_id: u32,
    pending: HashMap<u32, Pending>,
    /// The recovery session id given to the client (`None`: recovery is off).
    pid: Option<String>,
    positions: Positions,
    /// Subscriptions to restore once connected, from a recovering client's offset token.
    restore: Vec<(String, Option<(u64, String)>)>,
}

impl Bridge {
    /// `recovery`: whether connection state recovery is on (`[socketio] recovery`).
    pub fn new(recovery: bool) -> Bridge {
        Bridge {
            state: State::AwaitingConnect,
            next_id: 1,
            pending: HashMap::new(),
            pid: recovery.then(new_pid),
            positions: Positions::default(),
            restore: Vec::new(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    fn command(&mut self, pending: Pending, method: &str, body: Value, out: &mut Vec<u8>) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.pending.insert(id, pending);
        let mut command = Map::new();
        command.insert("id".into(), id.into());
        command.insert(method.into(), body);
        if !out.is_empty() {
            out.push(b'\n');
        }
        // A map of JSON values always serializes.
        out.extend_from_slice(&serde_json::to_vec(&Value::Object(command)).unwrap_or_default());
    }

    /// The protocol's pong, for an Engine.IO pong; `None` before the session can take one.
    pub fn pong(&self) -> Option<&'static [u8]> {
        self.is_connected().then_some(b"{}")
    }

    /// One Socket.IO packet from the client: commands for the session go to `commands` (JSON
    /// lines), packets answered at once to `replies`.
    pub fn client_packet(
        &mut self,
        packet: SioPacket,
        commands: &mut Vec<u8>,
        replies: &mut Vec<EioPacket>,
    ) -> Result<(), Refusal> {
        if packet.nsp != ROOT_NAMESPACE {
            if packet.kind == PacketType::Connect {
                let refused = SioPacket::connect_error(&packet.nsp, "Invalid namespace", None);
                replies.push(EioPacket::Message(refused.encode()));
            }
            return Ok(());
        }
        match packet.kind {
            PacketType::Connect => {
                if self.state != State::AwaitingConnect {
                    return Ok(());
                }
                self.state = State::Connecting;
                let auth = match packet.data {
                    Some(Value::Object(auth)) => auth,
                    _ => Map::new(),
                };
                let token = auth
                    .get("token")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mut connect = json!({"token": token, "name": CLIENT_NAME});
                if let Some(data) = auth.get("data") {
                    connect["data"] = data.clone();
                }
                self.take_recovery(&auth);
                self.command(Pending::Connect, "connect", connect, commands);
                Ok(())
            }
            PacketType::Disconnect => Err(Refusal::Left),
            PacketType::Event => {
                self.event(packet, commands, replies);
                Ok(())
            }
            // Herald never asks the client for an ack.
            PacketType::Ack => Ok(()),
            PacketType::ConnectError | PacketType::BinaryEvent | PacketType::BinaryAck => {
                Err(Refusal::Refused(codes::disconnect::BAD_REQUEST))
            }
        }
    }

    /// A recovering client's `pid` and `offset`: if the pid is the one its offset token was
    /// made for, keep the pid and the subscriptions to restore.
    fn take_recovery(&mut self, auth: &Map<String, Value>) {
        let (Some(pid), Some(offset)) = (
            auth.get("pid").and_then(Value::as_str),
            auth.get("offset").and_then(Value::as_str),
        ) else {
            return;
        };
        if self.pid.is_none() {
            return;
        }
        if let Some((token_pid, channels)) = Positions::parse_token(offset)
            && token_pid == pid
        {
            self.pid = Some(pid.to_owned());
            self.restore = channels;
        }
    }

    fn event(&mut self, packet: SioPacket, commands: &mut Vec<u8>, replies: &mut Vec<EioPacket>) {
        let ack = packet.id;
        let name = packet
            .event_name()
            .and_then(Value::as_str)
            .unwrap_or_default();
        let args = packet.args();
        let channel = args.first().and_then(Value::as_str);
        let options = |i: usize| match args.get(i) {
            Some(Value::Object(o)) => Some(o.clone()),
            _ => None,
        };
        let request = match (name, channel) {
            ("subscribe", Some(channel)) => {
                let mut body = options(1).unwrap_or_default();
                body.insert("channel".into(), channel.into());
                Some((
                    Method::Subscribe(channel.to_owned()),
                    "subscribe",
                    Value::Object(body),
                ))
            }
            ("unsubscribe", Some(channel)) => Some((
                Method::Unsubscribe(channel.to_owned()),
                "unsubscribe",
                json!({ "channel": channel }),
            )),
            ("publish", Some(channel)) => args.get(1).map(|data| {
                let body = json!({"channel": channel, "data": data});
                (Method::Other, "publish", body)
            }),
            ("history", Some(channel)) => {
                let mut body = options(1).unwrap_or_default();
                body.insert("channel".into(), channel.into());
                Some((Method::Other, "history", Value::Object(body)))
            }
            ("presence" | "presence_stats", Some(channel)) => Some((
                Method::Other,
                if name == "presence" {
                    "presence"
                } else {
                    "presence_stats"
                },
                json!({ "channel": channel }),
            )),
            ("refresh", Some(token)) => Some((Method::Other, "refresh", json!({ "token": token }))),
            _ => None,
        };
        match request {
            Some((method, name, body)) => {
                self.command(Pending::Event { ack, method }, name, body, commands)
            }
            None => {
                let known = [
                    "subscribe",
                    "unsubscribe",
                    "publish",
                    "history",
                    "presence",
                    "presence_stats",
                    "refresh",
                ];
                let code = if known.contains(&name) {
                    codes::BAD_REQUEST
                } else {
                    codes::METHOD_NOT_FOUND
                };
                if let Some(ack) = ack {
                    let error = json!({"error": {"code": code.code, "message": code.message}});
                    replies.push(message(SioPacket::ack(ROOT_NAMESPACE, ack, vec![error])));
                }
            }
        }
    }

    /// One frame the session drained (JSON replies and pushes, one a line): the packets for
    /// the client go to `out`, commands the mapping sends on its own (restored subscriptions)
    /// to `commands`.
    pub fn session_frame(
        &mut self,
        frame: &[u8],
        out: &mut Vec<EioPacket>,
        commands: &mut Vec<u8>,
    ) {
        for line in frame.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            if line == b"{}" {
                out.push(EioPacket::Ping(None));
                continue;
            }
            let Ok(reply) = serde_json::from_slice::<ReplyLine<'_>>(line) else {
                tracing::warn!("unreadable reply from the session");
                continue;
            };
            match reply.push {
                Some(push) if reply.id == 0 => self.push(&push, out),
                _ => self.reply(line, reply.id, out, commands),
            }
        }
    }

    fn push(&mut self, push: &PushLine<'_>, out: &mut Vec<EioPacket>) {
        let channel = push.channel.map_or("\"\"", RawValue::get);
        if let Some(publication) = push.publication {
            self.publication(channel, publication.get(), out);
        } else if let Some(join) = push.join {
            self.channel_event(out, "join", channel, join.get());
        } else if let Some(leave) = push.leave {
            self.channel_event(out, "leave", channel, leave.get());
        } else if let Some(subscribe) = push.subscribe {
            self.track_subscribe(channel, subscribe.get());
            self.channel_event(out, "subscribed", channel, subscribe.get());
        } else if let Some(unsubscribe) = push.unsubscribe {
            self.positions.remove_raw(channel);
            self.channel_event(out, "unsubscribed", channel, unsubscribe.get());
        } else if let Some(message) = push.message {
            let data = serde_json::from_str::<MessageBody<'_>>(message.get())
                .ok()
                .and_then(|m| m.data)
                .map_or("null", RawValue::get);
            let mut text = String::with_capacity(data.len() + 16);
            text.push_str("2[\"message\",");
            text.push_str(data);
            self.close_event(&mut text);
            out.push(EioPacket::Message(text));
        }
        // A disconnect push never comes here: the transport says goodbye (see `goodbye`).
    }

    /// `publication` `{channel, ...pub}`, built from slices of the push.
    fn publication(&mut self, channel: &str, publication: &str, out: &mut Vec<EioPacket>) {
        if self.pid.is_some()
            && let Ok(position) = serde_json::from_str::<PubOffset>(publication)
            && let Some(offset) = position.offset
        {
            self.positions.advance_raw(channel, offset);
        }
        self.channel_event(out, "publication", channel, publication);
    }

    /// `2["<event>",{"channel":<channel>,<the object's fields>}(,"<offset token>")]`.
    fn channel_event(&self, out: &mut Vec<EioPacket>, event: &str, channel: &str, object: &str) {
        let mut text = String::with_capacity(object.len() + channel.len() + event.len() + 24);
        text.push_str("2[\"");
        text.push_str(event);
        text.push_str("\",{\"channel\":");
        text.push_str(channel);
        let fields = object.trim().strip_prefix('{').unwrap_or("}");
        if !fields.trim_start().starts_with('}') {
            text.push(',');
        }
        text.push_str(fields);
        self.close_event(&mut text);
        out.push(EioPacket::Message(text));
    }

    /// Ends an event's argument list, with the offset token when recovery is on.
    fn close_event(&self, text: &mut String) {
        if let Some(pid) = &self.pid {
            text.push(',');
            let token = self.positions.token(pid);
            // A string always serializes.
            text.push_str(&serde_json::to_string(&token).unwrap_or_default());
        }
        text.push(']');
    }

    fn track_subscribe(&mut self, channel_raw: &str, result: &str) {
        if self.pid.is_none() {
            return;
        }
        let result: SubscribeBody = serde_json::from_str(result).unwrap_or_default();
        self.positions.insert_raw(channel_raw, result.position());
    }

    fn reply(&mut self, line: &[u8], id: u32, out: &mut Vec<EioPacket>, commands: &mut Vec<u8>) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let error = reply.remove("error");
        reply.remove("id");
        let result = reply
            .into_iter()
            .next()
            .map_or_else(|| json!({}), |(_, v)| v);
        match pending {
            Pending::Connect => self.connected(result, error, out, commands),
            Pending::Event { ack, method } => {
                let answer = match error {
                    Some(error) => json!({ "error": error }),
                    None => {
                        self.after_event(&method, &result, out);
                        let result = match method {
                            // Recovered publications went out as events.
                            Method::Subscribe(_) => without_publications(result),
                            _ => result,
                        };
                        json!({ "ok": result })
                    }
                };
                if let Some(ack) = ack {
                    out.push(message(SioPacket::ack(ROOT_NAMESPACE, ack, vec![answer])));
                }
            }
            Pending::Restore { channel } => match error {
                None => {
                    self.subscribed(&channel, result, out);
                }
                Some(error) => {
                    let mut body = Map::new();
                    body.insert("channel".into(), channel.into());
                    if let Value::Object(error) = error {
                        body.extend(error);
                    }
                    self.event_value(out, "unsubscribed", Value::Object(body));
                }
            },
        }
    }

    /// After a client's successful subscribe (its recovered publications, then `subscribed`)
    /// or unsubscribe (`unsubscribed`).
    fn after_event(&mut self, method: &Method, result: &Value, out: &mut Vec<EioPacket>) {
        match method {
            Method::Subscribe(channel) => self.subscribed(channel, result.clone(), out),
            Method::Unsubscribe(channel) => {
                self.positions.remove(channel);
                self.event_value(out, "unsubscribed", json!({ "channel": channel }));
            }
            Method::Other => {}
        }
    }

    /// A subscription made: the publications its result recovered, then `subscribed`.
    fn subscribed(&mut self, channel: &str, result: Value, out: &mut Vec<EioPacket>) {
        let Value::Object(mut result) = result else {
            return;
        };
        let channel_raw = serde_json::to_string(channel).unwrap_or_default();
        let publications = result.remove("publications");
        if self.pid.is_some() {
            let body: SubscribeBody =
                serde_json::from_value(Value::Object(result.clone())).unwrap_or_default();
            self.positions.insert_raw(&channel_raw, body.position());
        }
        if let Some(Value::Array(publications)) = publications {
            for publication in publications {
                let text = serde_json::to_string(&publication).unwrap_or_default();
                self.publication(&channel_raw, &text, out);
            }
        }
        let mut body = Map::new();
        body.insert("channel".into(), channel.into());
        body.extend(result);
        self.event_value(out, "subscribed", Value::Object(body));
    }

    fn event_value(&self, out: &mut Vec<EioPacket>, event: &str, body: Value) {
        let mut text = String::from("2[\"");
        text.push_str(event);
        text.push_str("\",");
        text.push_str(&serde_json::to_string(&body).unwrap_or_default());
        self.close_event(&mut text);
        out.push(EioPacket::Message(text));
    }

    fn connected(
        &mut self,
        result: Value,
        error: Option<Value>,
        out: &mut Vec<EioPacket>,
        commands: &mut Vec<u8>,
    ) {
        if let Some(error) = error {
            self.state = State::Failed;
            let code = error.get("code").cloned().unwrap_or(Value::Null);
            let text = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("connect refused");
            let refused =
                SioPacket::connect_error(ROOT_NAMESPACE, text, Some(json!({ "code": code })));
            out.push(EioPacket::Message(refused.encode()));
            return;
        }
        self.state = State::Connected;
        let client = result
            .get("client")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut answer = Map::new();
        answer.insert("sid".into(), client.into());
        if let Some(pid) = &self.pid {
            answer.insert("pid".into(), pid.clone().into());
        }
        out.push(message(SioPacket::connect(ROOT_NAMESPACE, Some(answer))));
        let server_side = match result.get("subs") {
            Some(Value::Object(subs)) => subs.clone(),
            _ => Map::new(),
        };
        for (channel, sub) in server_side {
            self.subscribed(&channel, sub, out);
        }
        for (channel, position) in std::mem::take(&mut self.restore) {
            if self.positions.contains(&channel) {
                continue;
            }
            let mut body = json!({ "channel": channel });
            if let Some((offset, epoch)) = position {
                body["recover"] = true.into();
                body["offset"] = offset.into();
                body["epoch"] = epoch.into();
            }
            self.command(Pending::Restore { channel }, "subscribe", body, commands);
        }
    }

    /// What the client is told when the session ends: before connecting, a CONNECT_ERROR;
    /// after, a `disconnected` event, then a Socket.IO DISCONNECT when it must not reconnect.
    pub fn goodbye(&self, disconnect: &Disconnect, out: &mut Vec<EioPacket>) {
        let reconnect = codes::reconnect_for(disconnect.code);
        match self.state {
            State::AwaitingConnect | State::Connecting => {
                let data = json!({ "code": disconnect.code });
                let refused =
                    SioPacket::connect_error(ROOT_NAMESPACE, &disconnect.reason, Some(data));
                out.push(EioPacket::Message(refused.encode()));
            }
            State::Failed => {}
            State::Connected => {
                let body = json!({
                    "code": disconnect.code,
                    "reason": disconnect.reason,
                    "reconnect": reconnect,
                });
                self.event_value(out, "disconnected", body);
                if !reconnect {
                    out.push(message(SioPacket::disconnect(ROOT_NAMESPACE)));
                }
            }
        }
    }
}

fn message(packet: SioPacket) -> EioPacket {
    EioPacket::Message(packet.encode())
}

fn without_publications(mut result: Value) -> Value {
    if let Value::Object(map) = &mut result {
        map.remove("publications");
    }
    result
}

fn new_pid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// One line the session writes, read only as far as routing it needs.
#[derive(Deserialize)]
struct ReplyLine<'a> {
    #[serde(default)]
    id: u32,
    #[serde(borrow)]
    push: Option<PushLine<'a>>,
}

#[derive(Deserialize)]
struct PushLine<'a> {
    #[serde(borrow)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, rename = "pub")]
    publication: Option<&'a RawValue>,
    #[serde(borrow)]
    join: Option<&'a RawValue>,
    #[serde(borrow)]
    leave: Option<&'a RawValue>,
    #[serde(borrow)]
    subscribe: Option<&'a RawValue>,
    #[serde(borrow)]
    unsubscribe: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageBody<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PubOffset {
    offset: Option<u64>,
}

#[derive(Deserialize, Default)]
struct SubscribeBody {
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
}

impl SubscribeBody {
    fn position(self) -> Option<(u64, String)> {
        Some((self.offset.unwrap_or(0), self.epoch?))
    }
}

#[cfg(test)]
mod tests;
