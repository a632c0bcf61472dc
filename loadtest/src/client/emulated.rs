//! The generator's client of Herald's fallbacks: an HTTP-streaming or SSE response read as a
//! stream of messages, with commands (subscribes, pongs) posted to `/emulation` on short
//! connections of their own, from the same source address.
//!
//! [`Emulated::next`] hands out everything complete that arrived in one read as one
//! [`Message`] in WebSocket framing (JSON replies joined by `\n`, or delimited Protobuf), so
//! the read loop scans it like a WebSocket frame.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use herald_protocol::Format;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::ws::{Message, read_stamped};

const READ_CHUNK: usize = 16 * 1024;
const MAX_HEAD: usize = 16 * 1024;
/// Largest message accepted (the server caps its frames far below this).
const MAX_PENDING: usize = 64 << 20;

/// Which fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    HttpStream,
    Sse,
}

pub struct Emulated {
    stream: TcpStream,
    /// Raw bytes read and not yet de-chunked.
    raw: BytesMut,
    /// Body bytes not yet handed out as a message.
    body: BytesMut,
    /// Bytes left of the chunk being read (`None`: a chunk-size line comes next).
    chunk_left: Option<usize>,
    kind: Kind,
    format: Format,
    addr: SocketAddr,
    source: Option<IpAddr>,
    /// The connection's address for `/emulation`, from the connect reply.
    session: String,
    node: String,
    arrival_ns: Option<u64>,
}

impl Emulated {
    /// Sends the request that opens the stream, `connect` (one encoded connect command) in
    /// its body or, for SSE, its `cf_connect` parameter; reads the response head.
    pub async fn open(
        mut stream: TcpStream,
        addr: SocketAddr,
        source: Option<IpAddr>,
        kind: Kind,
        format: Format,
        connect: &[u8],
    ) -> io::Result<Emulated> {
        let host = addr.to_string();
        let request = match kind {
            Kind::HttpStream => {
                let content_type = match format {
                    Format::Json => "application/json",
                    Format::Protobuf => "application/octet-stream",
                };
                let mut r = format!(
                    "POST /connection/http_stream HTTP/1.1\r\nHost: {host}\r\n\
                     Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    connect.len()
                )
                .into_bytes();
                r.extend_from_slice(connect);
                r
            }
            Kind::Sse => format!(
                "GET /connection/sse?cf_connect={} HTTP/1.1\r\nHost: {host}\r\n\
                 Accept: text/event-stream\r\n\r\n",
                percent_encode(connect)
            )
            .into_bytes(),
        };
        stream.write_all(&request).await?;
        crate::net::enable_socket_option(&stream, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS);
        let mut raw = BytesMut::with_capacity(READ_CHUNK);
        let head_len = loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if raw.len() > MAX_HEAD {
                return Err(invalid("response head too large"));
            }
            if stream.read_buf(&mut raw).await? == 0 {
                return Err(invalid("closed before the response head"));
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_len]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            return Err(invalid(&format!("status {status}")));
        }
        if !head.contains("transfer-encoding: chunked") {
            return Err(invalid("stream not chunked"));
        }
        raw.advance(head_len);
        Ok(Emulated {
            stream,
            raw,
            body: BytesMut::new(),
            chunk_left: None,
            kind,
            format,
            addr,
            source,
            session: String::new(),
            node: String::new(),
            arrival_ns: None,
        })
    }

    /// Where `/emulation` requests go (from the connect reply).
    pub fn address(&mut self, session: String, node: String) {
        self.session = session;
        self.node = node;
    }

    pub fn arrival_ns(&self) -> Option<u64> {
        self.arrival_ns
    }

    /// Everything complete received so far, as one message (`None` once the stream ended).
    pub async fn next(&mut self) -> Option<io::Result<Message>> {
        loop {
            if let Err(e) = self.dechunk() {
                return Some(Err(e));
            }
            if let Some(message) = self.take_complete() {
                return Some(Ok(message));
            }
            if self.body.len() > MAX_PENDING {
                return Some(Err(invalid("message too large")));
            }
            if self.raw.capacity() - self.raw.len() < READ_CHUNK / 2 {
                self.raw.reserve(READ_CHUNK);
            }
            match self.read_more().await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        read_stamped(&self.stream, &mut self.raw, &mut self.arrival_ns).await
    }

    /// Moves whole or partial chunks from `raw` to `body`.
    fn dechunk(&mut self) -> io::Result<()> {
        loop {
            match self.chunk_left {
                Some(0) => {
                    // The chunk's trailing CRLF.
                    if self.raw.len() < 2 {
                        return Ok(());
                    }
                    self.raw.advance(2);
                    self.chunk_left = None;
                }
                Some(left) => {
                    if self.raw.is_empty() {
                        return Ok(());
                    }
                    let n = left.min(self.raw.len());
                    self.body.put_slice(&self.raw[..n]);
                    self.raw.advance(n);
                    self.chunk_left = Some(left - n);
                }
                None => {
                    let Some(end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(());
                    };
                    let line = std::str::from_utf8(&self.raw[..end])
                        .map_err(|_| invalid("bad chunk size"))?;
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                            .map_err(|_| invalid("bad chunk size"))?;
                    self.raw.advance(end + 2);
                    if size == 0 {
                        // The last chunk: the stream has ended; what follows is not read.
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
                    }
                    self.chunk_left = Some(size);
                }
            }
        }
    }

    /// The complete replies at the front of `body`, in WebSocket framing.
    fn take_complete(&mut self) -> Option<Message> {
        match (self.kind, self.format) {
            (Kind::HttpStream, Format::Json) => {
                let end = self.body.iter().rposition(|&b| b == b'\n')?;
                let lines = self.body.split_to(end + 1).freeze();
                Some(Message::Text(lines.slice(..end)))
            }
            (Kind::HttpStream, Format::Protobuf) => {
                let mut at = 0;
                loop {
                    let mut rest = &self.body[at..];
                    let before = rest.len();
                    let Ok(len) = prost::decode_length_delimiter(&mut rest) else {
                        break;
                    };
                    let header = before - rest.len();
                    if rest.len() < len {
                        break;
                    }
                    at += header + len;
                }
                (at > 0).then(|| Message::Binary(self.body.split_to(at).freeze()))
            }
            (Kind::Sse, _) => {
                let end = self.body.windows(2).rposition(|w| w == b"\n\n")?;
                let events = self.body.split_to(end + 2);
                let mut lines = BytesMut::new();
                for line in events[..].split(|&b| b == b'\n') {
                    if let Some(data) = line.strip_prefix(b"data: ") {
                        if !lines.is_empty() {
                            lines.put_u8(b'\n');
                        }
                        lines.put_slice(data);
                    }
                }
                if lines.is_empty() {
                    // Only the opening line so far.
                    return None;
                }
                Some(Message::Text(lines.freeze()))
            }
        }
    }

    /// Posts `message` (commands in the connection's format) to `/emulation`.
    pub async fn send(&mut self, message: Message) -> io::Result<()> {
        let data: Bytes = match message {
            Message::Text(b) | Message::Binary(b) => b,
            Message::Close(_) => return Ok(()),
        };
        let (content_type, body) = match self.format {
            Format::Json => {
                let text = std::str::from_utf8(&data).map_err(|_| invalid("commands not utf-8"))?;
                let body = serde_json::json!({
                    "node": self.node,
                    "session": self.session,
                    "data": text,
                });
                ("application/json", body.to_string().into_bytes())
            }
            Format::Protobuf => {
                let request = herald_protocol::proto::EmulationRequest {
                    node: self.node.clone(),
                    session: self.session.clone(),
                    data,
                };
                (
                    "application/octet-stream",
                    prost::Message::encode_to_vec(&request),
                )
            }
        };
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if let Some(ip) = self.source {
            crate::net::enable_socket_option(
                &socket,
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
            );
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let mut conn = socket.connect(self.addr).await?;
        let mut request = format!(
            "POST /emulation HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        conn.write_all(&request).await?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await?;
        let status = response
            .split(|&b| b == b' ')
            .nth(1)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        if status == "204" {
            Ok(())
        } else {
            Err(invalid(&format!("/emulation answered {status}")))
        }
    }

    /// Ends the stream (the server ends the session when the connection closes).
    pub async fn close(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Emulated` over a connected socket pair, fed by the test through the other end.
    async fn pair(kind: Kind, format: Format) -> (Emulated, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let opening = tokio::spawn(Emulated::open(client, addr, None, kind, format, b"{}"));
        let mut request = vec![0; 1024];
        let _ = server.read(&mut request).await.unwrap();
        server
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        (opening.await.unwrap().unwrap(), server)
    }

    #[tokio::test]
    async fn json_lines_split_across_chunks_come_out_whole() {
        let (mut stream, mut server) = pair(Kind::HttpStream, Format::Json).await;
        server
            .write_all(b"5\r\n{\"a\":\r\n6\r\n1}\n{}\n\r\n")
            .await
            .unwrap();
        let m = stream.next().await.unwrap().unwrap();
        assert_eq!(m, Message::Text(Bytes::from_static(b"{\"a\":1}\n{}")));
        server.write_all(b"0\r\n\r\n").await.unwrap();
        assert!(stream.next().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn protobuf_messages_come_out_whole() {
        let (mut stream, mut server) = pair(Kind::HttpStream, Format::Protobuf).await;
        // Two delimited messages (2 bytes and 0 bytes), the second split over two chunks.
        server.write_all(b"4\r\n\x02ab\x00\r\n").await.unwrap();
        let m = stream.next().await.unwrap().unwrap();
        assert_eq!(m, Message::Binary(Bytes::from_static(b"\x02ab\x00")));
        server.write_all(b"2\r\n\x03x\r\n").await.unwrap();
        server.write_all(b"2\r\nyz\r\n").await.unwrap();
        let m = stream.next().await.unwrap().unwrap();
        assert_eq!(m, Message::Binary(Bytes::from_static(b"\x03xyz")));
    }

    #[tokio::test]
    async fn sse_events_become_lines() {
        let (mut stream, mut server) = pair(Kind::Sse, Format::Json).await;
        server
            .write_all(b"2\r\n\r\n\r\n19\r\ndata: {\"a\":1}\n\ndata: {}\n\n\r\n")
            .await
            .unwrap();
        let m = stream.next().await.unwrap().unwrap();
        assert_eq!(m, Message::Text(Bytes::from_static(b"{\"a\":1}\n{}")));
    }
}
