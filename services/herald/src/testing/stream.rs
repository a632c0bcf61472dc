//! A client of the emulated transports over a raw socket, so tests see exactly what the node
//! streams: `/connection/http_stream` (JSON lines or delimited Protobuf) and `/connection/sse`
//! (`data:` events), and the `/emulation` requests that carry its commands.

use std::net::SocketAddr;
use std::time::Duration;

use herald_protocol::Format;
use herald_protocol::proto::{Command, EmulationRequest, Reply};

use super::encode_commands;
use prost::Message as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a test waits for the next reply before failing.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    HttpStream,
    Sse,
}

pub struct StreamClient {
    reader: BufReader<TcpStream>,
    pub status: u16,
    /// The response head as received.
    pub head: String,
    transport: Transport,
    format: Format,
    /// Body bytes received and not yet taken as replies.
    body: Vec<u8>,
    chunked: bool,
    /// Bytes left of a `Content-Length` body.
    remaining: usize,
    ended: bool,
}

impl StreamClient {
    /// `POST /connection/http_stream` with `commands` (encoded in `format`) as the body.
    pub async fn http_stream(addr: SocketAddr, format: Format, commands: &[Command]) -> Self {
        let body = encode_commands(format, commands);
        let content_type = content_type(format);
        Self::open(
            addr,
            "POST",
            "/connection/http_stream",
            &[("Content-Type", content_type)],
            &body,
            Transport::HttpStream,
            format,
        )
        .await
    }

    /// `GET /connection/sse?cf_connect=<commands as JSON>`, as EventSource sends it.
    pub async fn sse(addr: SocketAddr, commands: &[Command]) -> Self {
        let connect = encode_commands(Format::Json, commands);
        let path = format!("/connection/sse?cf_connect={}", percent_encode(&connect));
        Self::open(
            addr,
            "GET",
            &path,
            &[("Accept", "text/event-stream")],
            &[],
            Transport::Sse,
            Format::Json,
        )
        .await
    }

    /// Any request to a streaming endpoint.
    pub async fn open(
        addr: SocketAddr,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        transport: Transport,
        format: Format,
    ) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "{verb} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.expect("write request");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, reader.read_line(&mut line))
                .await
                .expect("response head in time")
                .expect("read response head");
            if n == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let lower = head.to_ascii_lowercase();
        let chunked = lower.contains("transfer-encoding: chunked");
        let remaining = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Self {
            reader,
            status,
            head,
            transport,
            format,
            body: Vec::new(),
            chunked,
            remaining,
            ended: !chunked && remaining == 0,
        }
    }

    /// The header's value, if the response has it (the name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, value) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The next reply, or `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<Reply> {
        loop {
            if let Some(reply) = self.take_reply() {
                return Some(reply);
            }
            if self.ended {
                return None;
            }
            tokio::time::timeout(WAIT, self.read_more())
                .await
                .expect("next reply in time");
        }
    }

    /// The next JSON message as it is, or `None` when the stream has ended: what a
    /// unidirectional stream carries (bare pushes, not replies).
    pub async fn next_value(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(json) = self.take_json() {
                return Some(serde_json::from_slice(&json).unwrap_or_else(|e| {
                    panic!("json message {:?}: {e}", String::from_utf8_lossy(&json))
                }));
            }
            if self.ended {
                return None;
            }
            tokio::time::timeout(WAIT, self.read_more())
                .await
                .expect("next message in time");
        }
    }

    /// The next reply that is not a ping (answering none of them).
    pub async fn next_non_ping(&mut self) -> Option<Reply> {
        loop {
            let reply = self.next().await?;
            if !super::is_ping(&reply) {
                return Some(reply);
            }
        }
    }

    /// The replies of the next HTTP chunk, which is one write of the node (for a chunked
    /// stream with nothing left over from earlier reads).
    pub async fn next_chunk(&mut self) -> Vec<Reply> {
        assert!(
            self.body.is_empty(),
            "replies of an earlier chunk are pending"
        );
        tokio::time::timeout(WAIT, self.read_more())
            .await
            .expect("next chunk in time");
        let mut replies = Vec::new();
        while let Some(reply) = self.take_reply() {
            replies.push(reply);
        }
        assert!(self.body.is_empty(), "a chunk ended inside a reply");
        replies
    }

    /// Reads the stream to its end; the codes of the `disconnect` pushes it carried.
    pub async fn disconnects(&mut self) -> Vec<u32> {
        let mut codes = Vec::new();
        while let Some(reply) = self.next().await {
            if let Some(d) = reply.push.and_then(|p| p.disconnect) {
                codes.push(d.code);
            }
        }
        codes
    }

    /// The whole body as text, up to the end of the stream (for error responses).
    pub async fn text(&mut self) -> String {
        while !self.ended {
            tokio::time::timeout(WAIT, self.read_more())
                .await
                .expect("body in time");
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.body)).into_owned()
    }

    /// Everything received so far, raw, waiting for at least `bytes`.
    pub async fn raw(&mut self, bytes: usize) -> Vec<u8> {
        while self.body.len() < bytes && !self.ended {
            tokio::time::timeout(WAIT, self.read_more())
                .await
                .expect("body in time");
        }
        std::mem::take(&mut self.body)
    }

    /// Reads one more piece of the body.
    async fn read_more(&mut self) {
        if !self.chunked {
            let mut buf = vec![0; self.remaining.min(64 * 1024)];
            let n = self.reader.read(&mut buf).await.unwrap_or(0);
            self.body.extend_from_slice(&buf[..n]);
            self.remaining -= n;
            self.ended = n == 0 || self.remaining == 0;
            return;
        }
        let mut size = String::new();
        if self.reader.read_line(&mut size).await.unwrap_or(0) == 0 {
            self.ended = true;
            return;
        }
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            self.ended = true;
            return;
        }
        let mut chunk = vec![0; size + 2];
        if self.reader.read_exact(&mut chunk).await.is_err() {
            self.ended = true;
            return;
        }
        self.body.extend_from_slice(&chunk[..size]);
    }

    fn take_reply(&mut self) -> Option<Reply> {
        match (self.transport, self.format) {
            (Transport::HttpStream, Format::Protobuf) => self.take_protobuf(),
            _ => self.take_json().map(|json| decode_json(&json)),
        }
    }

    /// The next JSON line or SSE event's data.
    fn take_json(&mut self) -> Option<Vec<u8>> {
        match self.transport {
            Transport::HttpStream => {
                let end = self.body.iter().position(|&b| b == b'\n')?;
                let mut line: Vec<u8> = self.body.drain(..=end).collect();
                line.truncate(end);
                Some(line)
            }
            Transport::Sse => loop {
                let end = self.body.windows(2).position(|w| w == b"\n\n")?;
                let event: Vec<u8> = self.body.drain(..end + 2).collect();
                let text = String::from_utf8(event).expect("utf-8 event");
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return Some(data.join("\n").into_bytes());
                }
            },
        }
    }

    fn take_protobuf(&mut self) -> Option<Reply> {
        let mut buf = &self.body[..];
        let len = prost::decode_length_delimiter(&mut buf).ok()?;
        let header = self.body.len() - buf.len();
        if buf.len() < len {
            return None;
        }
        let reply = Reply::decode(&buf[..len]).expect("protobuf reply");
        self.body.drain(..header + len);
        Some(reply)
    }
}

fn decode_json(line: &[u8]) -> Reply {
    serde_json::from_slice(line)
        .unwrap_or_else(|e| panic!("json reply {:?}: {e}", String::from_utf8_lossy(line)))
}

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Protobuf => "application/octet-stream",
    }
}

/// `POST /emulation` carrying `commands` for `session` on `node`; returns the status.
pub async fn emulate(
    addr: SocketAddr,
    format: Format,
    node: &str,
    session: &str,
    commands: &[Command],
) -> u16 {
    let data = encode_commands(format, commands);
    let body = match format {
        Format::Json => serde_json::json!({
            "node": node,
            "session": session,
            "data": String::from_utf8(data).expect("json commands"),
        })
        .to_string()
        .into_bytes(),
        Format::Protobuf => EmulationRequest {
            node: node.into(),
            session: session.into(),
            data: data.into(),
        }
        .encode_to_vec(),
    };
    post(addr, "/emulation", content_type(format), &body)
        .await
        .0
}

/// A POST with a raw body; `Connection: close`. Returns status and body.
pub async fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut client = StreamClient::open(
        addr,
        "POST",
        path,
        &[("Content-Type", content_type), ("Connection", "close")],
        body,
        Transport::HttpStream,
        Format::Json,
    )
    .await;
    let status = client.status;
    (status, client.text().await)
}

pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
