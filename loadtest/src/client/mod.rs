//! One subscriber connection: TCP connect (optionally from a chosen source address), WebSocket
//! upgrade, `connect` + `subscribe` pipelined in one frame, then a read loop that counts every
//! publication, answers server pings, and stops on request. One tokio task per connection.
//!
//! With [`ServerKind::SocketIo`] the same connection speaks Engine.IO v4 / Socket.IO v5 to the
//! baseline server in loadtest/socketio instead: open packet, `40` connect, one
//! `42<id>["subscribe",channel]` per channel (waiting for each ack), then the same read loop
//! over `42["pub",data]` messages, answering `2` pings with `3`. With
//! [`ServerKind::HeraldSocketIo`] it speaks the same to a Herald node's `/socket.io/`: the
//! connect carries the token (`40{"token":…}`), acks are `{"ok":{…}}`, and publications are
//! `42["publication",{"channel":…,"data":…}]`.
//!
//! With [`Transport::HttpStream`] or [`Transport::Sse`] the connection is one of Herald's
//! fallbacks instead ([`emulated`]): the connect command opens the stream, subscribes and pongs
//! are posted to `/emulation`, and the read loop is the same.

pub mod emulated;
pub mod frame;
pub mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use herald_protocol::Format;
use herald_protocol::proto::{Command, ConnectRequest, Reply, SubscribeRequest};
use prost::Message as _;
use tokio::net::TcpSocket;
use tokio::sync::watch;

use crate::progress::Live;
use crate::stamp::{find, unix_ns};
use crate::stats::{Counts, Seen, Tracker};
use frame::{Event, scan_json, scan_protobuf, scan_socketio};
pub use ws::{Message, Ws};

/// Which server (and so which client protocol and publish API) a run targets.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// A Herald node: centrifuge-style JSON/Protobuf client protocol, `/api/publish` and
    /// `/api/batch`.
    #[default]
    Herald,
    /// The Socket.IO v4 baseline (loadtest/socketio/server.mjs): Engine.IO v4 over WebSocket,
    /// `POST /publish`, no batch endpoint.
    #[value(name = "socketio")]
    SocketIo,
    /// Socket.IO v4 clients of a Herald node (`/socket.io/`, WebSocket transport): token in the
    /// CONNECT packet, `subscribe` events; publishing through Herald's API (batches too).
    #[value(name = "herald-socketio")]
    #[serde(rename = "herald-socketio")]
    HeraldSocketIo,
}

impl ServerKind {
    /// Whether subscribers speak Engine.IO / Socket.IO (rather than Herald's client protocol).
    pub fn speaks_socketio(self) -> bool {
        matches!(self, ServerKind::SocketIo | ServerKind::HeraldSocketIo)
    }

    /// Which API publishers talk to: Herald's for both Herald targets.
    pub fn api(self) -> ServerKind {
        match self {
            ServerKind::SocketIo => ServerKind::SocketIo,
            ServerKind::Herald | ServerKind::HeraldSocketIo => ServerKind::Herald,
        }
    }
}

/// How a Herald subscriber connects.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Websocket,
    /// `/connection/http_stream` (+ `/emulation`).
    #[value(name = "http_stream")]
    HttpStream,
    /// `/connection/sse` (+ `/emulation`), JSON only.
    Sse,
}

/// A subscriber's connection: a WebSocket, or a fallback's stream.
pub enum Conn {
    Ws(Ws),
    Emulated(Box<emulated::Emulated>),
}

impl Conn {
    pub async fn next(&mut self) -> Option<std::io::Result<Message>> {
        match self {
            Conn::Ws(ws) => ws.next().await,
            Conn::Emulated(e) => e.next().await,
        }
    }

    pub async fn send(&mut self, message: Message) -> std::io::Result<()> {
        match self {
            Conn::Ws(ws) => ws.send(message).await,
            Conn::Emulated(e) => e.send(message).await,
        }
    }

    pub fn arrival_ns(&self) -> Option<u64> {
        match self {
            Conn::Ws(ws) => ws.arrival_ns(),
            Conn::Emulated(e) => e.arrival_ns(),
        }
    }

    pub async fn close(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Ws(ws) => ws.close().await,
            Conn::Emulated(e) => e.close().await,
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `ws://host:port/connection/websocket` (Herald) or
    /// `ws://host:port/socket.io/?EIO=4&transport=websocket` (Socket.IO).
    pub ws_url: String,
    pub format: Format,
    pub kind: ServerKind,
    pub transport: Transport,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, format: Format) -> Endpoint {
        Endpoint {
            addr,
            ws_url: format!("ws://{addr}/connection/websocket"),
            format,
            kind: ServerKind::Herald,
            transport: Transport::Websocket,
        }
    }

    /// A Socket.IO server (JSON text frames only; `format` is kept as JSON): the baseline
    /// ([`ServerKind::SocketIo`]) or a Herald node ([`ServerKind::HeraldSocketIo`]).
    pub fn socketio(addr: SocketAddr, kind: ServerKind) -> Endpoint {
        debug_assert!(kind.speaks_socketio());
        Endpoint {
            addr,
            ws_url: format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
            format: Format::Json,
            kind,
            transport: Transport::Websocket,
        }
    }
}

fn encode(format: Format, cmds: &[Command]) -> Message {
    match format {
        Format::Json => {
            let lines: Vec<String> = cmds
                .iter()
                .map(|c| serde_json::to_string(c).unwrap_or_default())
                .collect();
            Message::text(lines.join("\n"))
        }
        Format::Protobuf => {
            let mut out = Vec::new();
            for c in cmds {
                out.extend(c.encode_length_delimited_to_vec());
            }
            Message::binary(out)
        }
    }
}

fn pong(kind: ServerKind, format: Format) -> Message {
    match (kind, format) {
        (ServerKind::SocketIo | ServerKind::HeraldSocketIo, _) => Message::text("3"),
        (_, Format::Json) => Message::text("{}"),
        (_, Format::Protobuf) => Message::binary(vec![0u8]),
    }
}

fn decode_replies(format: Format, data: &[u8]) -> Result<Vec<Reply>, String> {
    match format {
        Format::Json => data
            .split(|&b| b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| format!("bad reply: {e}")))
            .collect(),
        Format::Protobuf => {
            let mut buf = data;
            let mut out = Vec::new();
            while !buf.is_empty() {
                out.push(
                    Reply::decode_length_delimited(&mut buf)
                        .map_err(|e| format!("bad reply: {e}"))?,
                );
            }
            Ok(out)
        }
    }
}

fn close_reason(msg: &Message) -> String {
    match msg {
        Message::Close(Some((code, reason))) => format!("close {code} {reason}"),
        _ => "close".to_owned(),
    }
}

/// Short reason of an I/O or WebSocket error, for failure tables.
fn short(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    s.chars().take(60).collect()
}

/// Lets `bind` fix only the source address and leaves the port to `connect`, which may then
/// reuse a port for different destinations; without it, bind reserves a port of its own per
/// socket and the ephemeral range runs out at ~28k connections per process.
fn bind_address_no_port(socket: &TcpSocket) {
    crate::net::enable_socket_option(socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT);
}

/// Opens a connection, authenticates with `token` and subscribes to `channels`; returns the
/// ready stream or the reason it failed.
pub async fn open(
    ep: &Endpoint,
    source: Option<IpAddr>,
    token: &str,
    channels: &[String],
) -> Result<Conn, String> {
    let socket = if ep.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {}", short(&e)))?;
    if let Some(ip) = source {
        bind_address_no_port(&socket);
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {}", short(&e)))?;
    }
    let stream = socket
        .connect(ep.addr)
        .await
        .map_err(|e| format!("tcp: {}", short(&e)))?;
    let _ = stream.set_nodelay(true);
    if ep.transport != Transport::Websocket {
        return open_emulated(ep, stream, source, token, channels).await;
    }
    let (host, path) = ep
        .ws_url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| format!("url: not ws://host/path: {}", ep.ws_url))?;
    let protocol = (ep.format == Format::Protobuf).then_some("centrifuge-protobuf");
    let mut ws = Ws::handshake(stream, host, &format!("/{path}"), protocol)
        .await
        .map_err(|e| format!("upgrade: {}", short(&e)))?;
    if ep.kind.speaks_socketio() {
        socketio_handshake(&mut ws, ep.kind, token, channels).await?;
        return Ok(Conn::Ws(ws));
    }
    let mut cmds = vec![connect_command(token)];
    cmds.extend(subscribe_commands(channels));
    ws.send(encode(ep.format, &cmds))
        .await
        .map_err(|e| format!("send: {}", short(&e)))?;
    let mut conn = Conn::Ws(ws);
    await_replies(&mut conn, ep, cmds.len()).await?;
    Ok(conn)
}

fn connect_command(token: &str) -> Command {
    Command {
        id: 1,
        connect: Some(ConnectRequest {
            token: token.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ids 2, 3, … in channel order.
fn subscribe_commands(channels: &[String]) -> Vec<Command> {
    channels
        .iter()
        .enumerate()
        .map(|(i, ch)| Command {
            id: 2 + i as u32,
            subscribe: Some(SubscribeRequest {
                channel: ch.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// A fallback connection: the connect command opens the stream; once its reply names the
/// session, the subscribes are posted to `/emulation` and their replies come down the stream.
async fn open_emulated(
    ep: &Endpoint,
    stream: tokio::net::TcpStream,
    source: Option<IpAddr>,
    token: &str,
    channels: &[String],
) -> Result<Conn, String> {
    let kind = match ep.transport {
        Transport::Sse => emulated::Kind::Sse,
        _ => emulated::Kind::HttpStream,
    };
    let connect = match encode(ep.format, &[connect_command(token)]) {
        Message::Text(b) | Message::Binary(b) => b,
        Message::Close(_) => unreachable!("encode makes data messages"),
    };
    let mut stream = emulated::Emulated::open(stream, ep.addr, source, kind, ep.format, &connect)
        .await
        .map_err(|e| format!("stream: {}", short(&e)))?;
    let (session, node) = loop {
        let msg = match stream.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("stream: {}", short(&e))),
            None => return Err("eof".to_owned()),
        };
        let data: &[u8] = match &msg {
            Message::Text(t) | Message::Binary(t) => t,
            Message::Close(_) => return Err(close_reason(&msg)),
        };
        let replies = decode_replies(ep.format, data)?;
        if let Some(r) = replies.iter().find(|r| r.id == 1) {
            if let Some(err) = &r.error {
                return Err(format!("connect error {} {}", err.code, err.message));
            }
            let result = r.connect.clone().unwrap_or_default();
            break (result.session, result.node);
        }
        if let Some(d) = replies
            .iter()
            .find_map(|r| r.push.as_ref()?.disconnect.as_ref())
        {
            return Err(format!("disconnect {} {}", d.code, d.reason));
        }
    };
    stream.address(session, node);
    let mut conn = Conn::Emulated(Box::new(stream));
    let subscribes = subscribe_commands(channels);
    if !subscribes.is_empty() {
        conn.send(encode(ep.format, &subscribes))
            .await
            .map_err(|e| format!("emulation: {}", short(&e)))?;
        await_replies(&mut conn, ep, subscribes.len()).await?;
    }
    Ok(conn)
}

/// Waits for `pending` replies (answering pings); fails on an error reply or a close.
async fn await_replies(conn: &mut Conn, ep: &Endpoint, mut pending: usize) -> Result<(), String> {
    while pending > 0 {
        let msg = match conn.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("ws: {}", short(&e))),
            None => return Err("eof".to_owned()),
        };
        let data: &[u8] = match &msg {
            Message::Text(t) | Message::Binary(t) => t,
            Message::Close(_) => return Err(close_reason(&msg)),
        };
        for r in decode_replies(ep.format, data)? {
            if r.id == 0 {
                if let Some(d) = r.push.as_ref().and_then(|p| p.disconnect.as_ref()) {
                    return Err(format!("disconnect {} {}", d.code, d.reason));
                }
                if r.push.is_none() {
                    conn.send(pong(ep.kind, ep.format))
                        .await
                        .map_err(|e| format!("send: {}", short(&e)))?;
                }
                continue;
            }
            if let Some(err) = r.error {
                let what = if r.id == 1 { "connect" } else { "subscribe" };
                return Err(format!("{what} error {} {}", err.code, err.message));
            }
            pending = pending.saturating_sub(1);
        }
    }
    Ok(())
}

/// The next text message of a Socket.IO connection during the handshake (pings answered).
async fn socketio_next(ws: &mut Ws) -> Result<String, String> {
    loop {
        let msg = match ws.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("ws: {}", short(&e))),
            None => return Err("eof".to_owned()),
        };
        match msg {
            Message::Text(t) => {
                if frame::parse_socketio(&t) == frame::SioPacket::Ping {
                    ws.send(Message::text("3"))
                        .await
                        .map_err(|e| format!("send: {}", short(&e)))?;
                    continue;
                }
                return Ok(String::from_utf8_lossy(&t).into_owned());
            }
            Message::Close(_) => return Err(close_reason(&msg)),
            Message::Binary(_) => return Err("unexpected binary message".to_owned()),
        }
    }
}

/// The CONNECT packet to `/`: the baseline takes no authentication; a Herald node takes the
/// connection token as `auth`.
fn socketio_connect(kind: ServerKind, token: &str) -> Result<String, String> {
    if kind == ServerKind::SocketIo {
        return Ok("40".to_owned());
    }
    let auth = serde_json::to_string(&serde_json::json!({ "token": token }))
        .map_err(|e| format!("token: {e}"))?;
    Ok(format!("40{auth}"))
}

/// Whether a subscribe ack says yes: `[{"ok":true}]` (baseline) or `[{"ok":{…}}]` (Herald;
/// a refusal is `[{"error":{…}}]`).
fn socketio_subscribed(ack: &[u8]) -> bool {
    find(ack, b"\"ok\":true").is_some() || find(ack, b"\"ok\":{").is_some()
}

/// Engine.IO open → Socket.IO connect to `/` (with the token for a Herald node) → `subscribe`
/// every channel, waiting for each ack (so the room is joined before publishing starts).
async fn socketio_handshake(
    ws: &mut Ws,
    kind: ServerKind,
    token: &str,
    channels: &[String],
) -> Result<(), String> {
    use frame::SioPacket;
    let open = socketio_next(ws).await?;
    if !matches!(frame::parse_socketio(open.as_bytes()), SioPacket::Open(_)) {
        return Err(format!("expected open packet, got {:.40}", open));
    }
    ws.send(Message::text(socketio_connect(kind, token)?))
        .await
        .map_err(|e| format!("send: {}", short(&e)))?;
    let conn = socketio_next(ws).await?;
    match frame::parse_socketio(conn.as_bytes()) {
        SioPacket::Connect(_) => {}
        SioPacket::ConnectError(e) => {
            return Err(format!("connect error {:.40}", String::from_utf8_lossy(e)));
        }
        _ => return Err(format!("expected connect, got {:.40}", conn)),
    }
    for (i, ch) in channels.iter().enumerate() {
        let id = 1 + i as u64;
        let name = serde_json::to_string(ch).map_err(|e| format!("channel: {e}"))?;
        ws.send(Message::text(format!("42{id}[\"subscribe\",{name}]")))
            .await
            .map_err(|e| format!("send: {}", short(&e)))?;
        loop {
            let m = socketio_next(ws).await?;
            match frame::parse_socketio(m.as_bytes()) {
                SioPacket::Ack { id: got, data } if got == id => {
                    if !socketio_subscribed(data) {
                        return Err(format!(
                            "subscribe refused: {:.40}",
                            String::from_utf8_lossy(data)
                        ));
                    }
                    break;
                }
                SioPacket::Disconnect | SioPacket::Close => {
                    return Err("disconnected while subscribing".to_owned());
                }
                // A publication of an earlier channel, a `subscribed` event, or a foreign ack:
                // not ours yet.
                _ => {}
            }
        }
    }
    Ok(())
}

/// What the read loop needs to count publications of one connection.
pub struct Reader<'a> {
    pub format: Format,
    /// Client protocol of the connection.
    pub kind: ServerKind,
    /// Subscribed channels (publication channel names are matched against these).
    pub channels: Vec<String>,
    /// Publisher streams per channel (the `k` of stamps ranges over 0..streams).
    pub streams: usize,
    pub shard: &'a Mutex<Counts>,
    pub live: &'a Live,
}

/// Reads until `stop` turns true or the connection ends; answers pings; records every
/// publication into `r.shard` (one lock per frame).
pub async fn read_loop(mut ws: Conn, r: Reader<'_>, mut stop: watch::Receiver<bool>) {
    let streams = r.streams.max(1);
    let mut trackers = vec![Tracker::default(); r.channels.len() * streams];
    let chans: Vec<&[u8]> = r.channels.iter().map(|c| c.as_bytes()).collect();
    let mut closed: Option<String> = None;
    // One wait for the stop signal for the whole loop, not a new one per frame.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut stopped => break,
            m = ws.next() => m,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                closed = Some(format!("ws error: {}", short(&e)));
                break;
            }
            None => {
                closed = Some("eof".to_owned());
                break;
            }
        };
        let data: &[u8] = match &msg {
            Message::Text(t) | Message::Binary(t) => t,
            Message::Close(_) => {
                closed = Some(close_reason(&msg));
                break;
            }
        };
        let now = unix_ns();
        let arrived = ws.arrival_ns();
        let mut ping = false;
        let mut n = 0u64;
        {
            let mut c = r.shard.lock().unwrap_or_else(|e| e.into_inner());
            c.frames += 1;
            let mut on = |ev: Event<'_>| match ev {
                Event::Ping => ping = true,
                Event::Publication { channel, stamp } => {
                    n += 1;
                    c.received += 1;
                    let Some(st) = stamp else {
                        c.unstamped += 1;
                        return;
                    };
                    c.record_latency_ns(now, st.sent_ns);
                    if let Some(at) = arrived {
                        c.record_arrival_ns(at, st.sent_ns);
                    }
                    let ci = chans.iter().position(|x| *x == channel).unwrap_or(0);
                    let idx = ci * streams + (st.stream as usize % streams);
                    if let Some(t) = trackers.get_mut(idx) {
                        match t.record(st.seq) {
                            Seen::InOrder => {}
                            Seen::Reordered => c.reordered += 1,
                            Seen::Duplicate => c.duplicates += 1,
                        }
                    }
                }
                Event::Other(_) => {}
            };
            match (r.kind, r.format) {
                // One Engine.IO packet per WebSocket message. The baseline's has no channel
                // name (a subscriber is on one room, channels[0]); Herald's names it.
                (ServerKind::SocketIo | ServerKind::HeraldSocketIo, _) => {
                    scan_socketio(data, &mut on)
                }
                (_, Format::Json) => scan_json(data, &mut on),
                (_, Format::Protobuf) => {
                    scan_protobuf(data, &mut on);
                }
            }
            if ping {
                c.pings += 1;
            }
        }
        r.live.delivered.fetch_add(n, Relaxed);
        if ping && let Err(e) = ws.send(pong(r.kind, r.format)).await {
            closed = Some(format!("pong: {}", short(&e)));
            break;
        }
    }
    if let Some(reason) = closed {
        r.live.closed.fetch_add(1, Relaxed);
        r.shard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_close(reason);
    } else {
        let _ = tokio::time::timeout(Duration::from_millis(200), ws.close()).await;
    }
}
