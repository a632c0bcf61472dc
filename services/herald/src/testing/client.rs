//! A WebSocket client that speaks the client protocol, for tests: it sends commands (JSON lines
//! or delimited Protobuf), splits batched frames back into messages, and reports how the server
//! closed the connection.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::Format;
use herald_protocol::proto::{Command, Reply};
use prost::Message as _;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any single expected event before failing.
pub const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the server ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

pub struct WsClient {
    ws: Ws,
    format: Format,
    /// Messages of an already received frame not yet handed out (replies, pushes, pings).
    pending: VecDeque<Reply>,
    /// Raw JSON of the pending messages, when the format is JSON (same order as `pending`).
    pending_json: VecDeque<Value>,
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, Format::Json, &[]).await
    }

    /// Connects with extra handshake headers (e.g. `Origin`); Protobuf offers the
    /// `centrifuge-protobuf` subprotocol.
    pub async fn connect_with(url: &str, format: Format, headers: &[(&str, &str)]) -> Self {
        Self::try_connect_with(url, format, headers)
            .await
            .unwrap_or_else(|e| panic!("websocket connect to {url}: {e}"))
    }

    pub async fn try_connect_with(
        url: &str,
        format: Format,
        headers: &[(&str, &str)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        if format == Format::Protobuf {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("centrifuge-protobuf"),
            );
        }
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self {
            ws,
            format,
            pending: VecDeque::new(),
            pending_json: VecDeque::new(),
        })
    }

    /// Sends commands in one frame (JSON: newline-joined; Protobuf: delimited).
    pub async fn send(&mut self, commands: &[Command]) {
        let frame = super::encode_commands(self.format, commands);
        let message = match self.format {
            Format::Json => Message::text(String::from_utf8(frame).expect("json is utf-8")),
            Format::Protobuf => Message::binary(frame),
        };
        self.ws.send(message).await.expect("send frame");
    }

    /// Sends JSON commands given as values, in one text frame.
    pub async fn send_json(&mut self, commands: &[Value]) {
        let text = commands
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        self.send_raw(Message::text(text)).await;
    }

    /// Sends any frame as is.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send frame");
    }

    /// `{"id":1,"connect":{"token":…}}`; returns the connect result.
    pub async fn handshake(&mut self, token: &str) -> Reply {
        self.send(&[Command {
            id: 1,
            connect: Some(herald_protocol::proto::ConnectRequest {
                token: token.into(),
                ..Default::default()
            }),
            ..Default::default()
        }])
        .await;
        let reply = self.reply(1).await;
        assert!(reply.error.is_none(), "connect failed: {reply:?}");
        reply
    }

    /// Subscribes with the given id; returns the reply (result or error).
    pub async fn subscribe(&mut self, id: u32, channel: &str) -> Reply {
        self.send(&[Command {
            id,
            subscribe: Some(herald_protocol::proto::SubscribeRequest {
                channel: channel.into(),
                ..Default::default()
            }),
            ..Default::default()
        }])
        .await;
        self.reply(id).await
    }

    /// The next message from the server, whatever it is (reply, push, ping).
    pub async fn next(&mut self) -> Reply {
        self.next_with_json().await.0
    }

    /// The next message, with its raw JSON when the format is JSON (`Value::Null` otherwise).
    pub async fn next_with_json(&mut self) -> (Reply, Value) {
        loop {
            if let Some(reply) = self.pending.pop_front() {
                let json = self.pending_json.pop_front().unwrap_or(Value::Null);
                return (reply, json);
            }
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a server message")
                .expect("connection ended")
                .expect("websocket error");
            self.absorb(message);
        }
    }

    /// Reads the next transport frame (ignoring control frames) and returns how many protocol
    /// messages it carried; they stay available to [`next`](Self::next).
    pub async fn next_frame_len(&mut self) -> usize {
        assert!(
            self.pending.is_empty(),
            "messages of an earlier frame are still pending"
        );
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a server frame")
                .expect("connection ended")
                .expect("websocket error");
            self.absorb(message);
            if !self.pending.is_empty() {
                return self.pending.len();
            }
        }
    }

    /// Skips pings and pushes until the reply to command `id`.
    pub async fn reply(&mut self, id: u32) -> Reply {
        loop {
            let reply = self.next().await;
            if reply.id == id {
                return reply;
            }
        }
    }

    /// The next publication push, skipping other messages and answering pings as an SDK
    /// does: a subscriber reading for longer than a ping interval stays connected.
    pub async fn publication(&mut self) -> (String, herald_protocol::proto::Publication) {
        loop {
            let reply = self.next().await;
            if is_ping(&reply) {
                self.pong().await;
                continue;
            }
            if let Some(push) = reply.push
                && let Some(publication) = push.r#pub
            {
                return (push.channel, publication);
            }
        }
    }

    fn absorb(&mut self, message: Message) {
        match message {
            Message::Text(text) => {
                assert_eq!(
                    self.format,
                    Format::Json,
                    "text frame on a protobuf connection"
                );
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("server sent bad JSON {line:?}: {e}"));
                    let reply: Reply = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("not a Reply {line:?}: {e}"));
                    self.pending.push_back(reply);
                    self.pending_json.push_back(value);
                }
            }
            Message::Binary(bytes) => {
                assert_eq!(
                    self.format,
                    Format::Protobuf,
                    "binary frame on a JSON connection"
                );
                let mut buf: &[u8] = &bytes;
                while !buf.is_empty() {
                    let reply =
                        Reply::decode_length_delimited(&mut buf).expect("server sent bad protobuf");
                    self.pending.push_back(reply);
                    self.pending_json.push_back(Value::Null);
                }
            }
            Message::Close(frame) => panic!("connection closed by server: {frame:?}"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    /// Reads (and drops) everything until the server closes; returns the close code and reason.
    pub async fn closed(&mut self) -> Closed {
        self.closed_within(WAIT).await
    }

    pub async fn closed_within(&mut self, wait: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for the server to close");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Closed {
                        code: u16::from(frame.code),
                        reason: frame.reason.to_string(),
                    };
                }
                Some(Ok(Message::Close(None))) | None => {
                    return Closed {
                        code: u16::from(CloseCode::Status),
                        reason: String::new(),
                    };
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error before close: {e}"),
            }
        }
    }

    /// Answers a server ping (an empty command).
    pub async fn pong(&mut self) {
        match self.format {
            Format::Json => self.send_raw(Message::text("{}")).await,
            Format::Protobuf => {
                self.send_raw(Message::binary(Bytes::from_static(&[0])))
                    .await
            }
        }
    }
}

/// Whether a message is the server's ping (no id, no push, nothing else).
pub fn is_ping(reply: &Reply) -> bool {
    *reply == Reply::default()
}
