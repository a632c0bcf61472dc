//! A WebSocket client that writes exactly the bytes a test asks for: hand-made handshakes,
//! fragmented messages, control frames, frames that lie about their length. For testing how a
//! node answers what a well-behaved client library would never send.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::WAIT;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The status line and headers of the answer to a handshake.
#[derive(Debug)]
pub struct HandshakeAnswer {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl HandshakeAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The code of a close frame (`None`: a close without a code).
    pub fn close_code(&self) -> Option<u16> {
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub struct RawWs {
    stream: TcpStream,
    /// Bytes read past what was handed out.
    buf: Vec<u8>,
}

/// The request of a valid handshake for `path` with `extra` header lines (each ending in
/// `\r\n`).
pub fn handshake_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

impl RawWs {
    /// Connects and sends `request` as is, then reads the answer's head.
    pub async fn open(addr: SocketAddr, request: &[u8]) -> (RawWs, HandshakeAnswer) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
        };
        ws.send_raw(request).await;
        let answer = ws.read_head().await;
        (ws, answer)
    }

    /// A valid handshake to `/connection/websocket`; panics unless it is answered with 101.
    pub async fn connect(addr: SocketAddr) -> RawWs {
        let request = handshake_request(addr, "/connection/websocket", "");
        let (ws, answer) = RawWs::open(addr, request.as_bytes()).await;
        assert_eq!(answer.status, 101, "{answer:?}");
        ws
    }

    async fn read_head(&mut self) -> HandshakeAnswer {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(
                self.fill().await,
                "connection closed before the handshake answer"
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        HandshakeAnswer { status, headers }
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .expect("timed out waiting for the server")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_raw(&client_frame(fin, opcode, payload)).await;
    }

    /// The next frame from the server; `None` once the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads frames until a close frame (returned) or the end of the connection (`None`).
    pub async fn until_close(&mut self) -> Option<ServerFrame> {
        while let Some(frame) = self.read_frame().await {
            if frame.opcode == OP_CLOSE {
                return Some(frame);
            }
        }
        None
    }

    /// Whether the server has closed the connection, reading (and dropping) what comes first.
    pub async fn closed(&mut self) -> bool {
        while self.fill().await {
            self.buf.clear();
        }
        true
    }
}

/// A masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame_header(fin, opcode, payload.len() as u64);
    let mask = [0x12, 0x34, 0x56, 0x78];
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The header (with mask key 12 34 56 78) of a client frame declaring `len` payload bytes.
pub fn client_frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    out
}

fn parse_server_frame(buf: &[u8]) -> Option<(ServerFrame, usize)> {
    let [first, second, ..] = *buf else {
        return None;
    };
    assert_eq!(second & 0x80, 0, "the server masked a frame");
    let (len, at) = match second & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let end = at + usize::try_from(len).ok()?;
    let payload = buf.get(at..end)?.to_vec();
    Some((
        ServerFrame {
            fin: first & 0x80 != 0,
            opcode: first & 0x0F,
            payload,
        },
        end,
    ))
}
