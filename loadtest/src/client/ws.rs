//! The generator's own WebSocket client (RFC 6455, client side, no extensions): just what a
//! subscriber needs, and cheap per frame.
//!
//! tungstenite zeroes the free part of its read buffer before every read (`resize(.., 0)`):
//! with 16 KiB reads at ~50,000 frames/s that memset alone was 11% of the generator's CPU,
//! and its poll wrappers another ~8%. Here a read goes straight into the spare capacity of one
//! `BytesMut` (tokio's `read_buf`, no zeroing) and a message is split off it without a copy.
//! Server pings are answered here; the handshake checks the status (101) and the subprotocol
//! the caller asked for, not the accept key (the generator only talks to servers it started).
//!
//! Every read also asks the kernel when the data reached the socket (`SO_TIMESTAMPNS`):
//! [`Ws::arrival_ns`]. With thousands of connections on two cores, a subscriber may read its
//! frame milliseconds after the server delivered it, because the generator is busy with the
//! others; the arrival time is when the server's write reached this subscriber, which is what
//! a client on its own device would see.

use std::io;

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Room kept free for the next read: a batched frame of a few KiB in one syscall.
const READ_CHUNK: usize = 16 * 1024;
/// Largest message accepted (the server caps its frames far below this).
const MAX_MESSAGE: usize = 64 << 20;
const MAX_HANDSHAKE: usize = 16 * 1024;

/// One complete WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(Bytes),
    Binary(Bytes),
    /// The server's close frame: its code and reason, if it sent them.
    Close(Option<(u16, String)>),
}

impl Message {
    pub fn text(s: impl Into<String>) -> Message {
        Message::Text(Bytes::from(s.into()))
    }

    pub fn binary(b: impl Into<Bytes>) -> Message {
        Message::Binary(b.into())
    }
}

pub struct Ws {
    stream: TcpStream,
    buf: BytesMut,
    /// Opcode and payload of a message still arriving in continuation frames.
    partial: Option<(u8, BytesMut)>,
    mask_seed: u32,
    /// Kernel arrival time (unix ns) of the data of the latest read, if the kernel told.
    arrival_ns: Option<u64>,
}

const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;

impl Ws {
    /// Upgrades `stream` with a GET of `path` on `host`, asking for `protocol` if given.
    pub async fn handshake(
        mut stream: TcpStream,
        host: &str,
        path: &str,
        protocol: Option<&str>,
    ) -> io::Result<Ws> {
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(p) = protocol {
            req.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let head_len = loop {
            if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HANDSHAKE {
                return Err(invalid("handshake response too long"));
            }
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = buf.split_to(head_len);
        let head = std::str::from_utf8(&head).map_err(|_| invalid("handshake not UTF-8"))?;
        let status = head.lines().next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("101") {
            return Err(invalid(&format!("upgrade refused: {status}")));
        }
        if let Some(p) = protocol {
            let agreed = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("sec-websocket-protocol") && v.trim() == p
                })
            });
            if !agreed {
                return Err(invalid(&format!("subprotocol {p} not agreed")));
            }
        }
        // The kernel attaches the arrival time to what each read returns.
        crate::net::enable_socket_option(&stream, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS);
        Ok(Ws {
            stream,
            buf,
            partial: None,
            mask_seed: rand::random(),
            arrival_ns: None,
        })
    }

    /// When the kernel received the latest data read (unix ns): for a message just returned by
    /// [`Ws::next`], the arrival of its last byte or later.
    pub fn arrival_ns(&self) -> Option<u64> {
        self.arrival_ns
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        read_stamped(&self.stream, &mut self.buf, &mut self.arrival_ns).await
    }

    /// The next message (`None` once the connection ended without a close frame).
    pub async fn next(&mut self) -> Option<io::Result<Message>> {
        loop {
            match self.parse() {
                Ok(Some(Parsed::Message(m))) => return Some(Ok(m)),
                Ok(Some(Parsed::Ping(payload))) => {
                    if let Err(e) = self.write_frame(OP_PONG, &payload).await {
                        return Some(Err(e));
                    }
                    continue;
                }
                Ok(Some(Parsed::Skip)) => continue,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.read_more().await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Sends one message in one frame.
    pub async fn send(&mut self, message: Message) -> io::Result<()> {
        match message {
            Message::Text(b) => self.write_frame(OP_TEXT, &b).await,
            Message::Binary(b) => self.write_frame(OP_BINARY, &b).await,
            Message::Close(reason) => {
                let mut payload = Vec::new();
                if let Some((code, text)) = reason {
                    payload.extend_from_slice(&code.to_be_bytes());
                    payload.extend_from_slice(text.as_bytes());
                }
                self.write_frame(OP_CLOSE, &payload).await
            }
        }
    }

    /// Says goodbye with a normal close (1000); the server closes the TCP connection.
    pub async fn close(&mut self) -> io::Result<()> {
        self.send(Message::Close(Some((1000, String::new())))).await
    }

    /// One complete frame from the buffer, if there is one.
    fn parse(&mut self) -> io::Result<Option<Parsed>> {
        let Some((header, len)) = frame_header(&self.buf)? else {
            return Ok(None);
        };
        if len > MAX_MESSAGE {
            return Err(invalid("frame too large"));
        }
        if self.buf.len() < header + len {
            self.buf.reserve(header + len - self.buf.len());
            return Ok(None);
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let mask = (b1 & 0x80 != 0).then(|| {
            let at = header - 4;
            [
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]
        });
        self.buf.advance(header);
        let mut payload = self.buf.split_to(len);
        if let Some(mask) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        let fin = b0 & 0x80 != 0;
        let parsed = match b0 & 0x0f {
            OP_PING => Parsed::Ping(payload.freeze()),
            OP_PONG => Parsed::Skip,
            OP_CLOSE => Parsed::Message(Message::Close(close_reason(&payload))),
            op @ (OP_TEXT | OP_BINARY) if fin => Parsed::Message(message(op, payload.freeze())?),
            op @ (OP_TEXT | OP_BINARY) => {
                self.partial = Some((op, payload));
                Parsed::Skip
            }
            OP_CONTINUATION => {
                let Some((op, mut whole)) = self.partial.take() else {
                    return Err(invalid("continuation without a message"));
                };
                if whole.len() + payload.len() > MAX_MESSAGE {
                    return Err(invalid("message too large"));
                }
                whole.extend_from_slice(&payload);
                if fin {
                    Parsed::Message(message(op, whole.freeze())?)
                } else {
                    self.partial = Some((op, whole));
                    Parsed::Skip
                }
            }
            op => return Err(invalid(&format!("unknown opcode {op}"))),
        };
        Ok(Some(parsed))
    }

    async fn write_frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        // Client frames must be masked; the key only needs to vary, not to be secret here.
        self.mask_seed ^= self.mask_seed << 13;
        self.mask_seed ^= self.mask_seed >> 17;
        self.mask_seed ^= self.mask_seed << 5;
        let mask = self.mask_seed.to_be_bytes();
        let mut out = BytesMut::with_capacity(payload.len() + 14);
        out.put_u8(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.put_u8(0x80 | n as u8),
            n if n <= 0xffff => {
                out.put_u8(0x80 | 126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(0x80 | 127);
                out.put_u64(n as u64);
            }
        }
        out.put_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await
    }
}

/// Waits for `stream` to be readable and reads once into the spare capacity of `buf`, noting
/// the kernel's arrival time in `arrival`.
pub(super) async fn read_stamped(
    stream: &TcpStream,
    buf: &mut BytesMut,
    arrival: &mut Option<u64>,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || recv_stamped(fd, buf, arrival)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// One `recvmsg` into the spare capacity of `buf` (not zeroed first), noting the arrival time
/// the kernel attached, if any.
fn recv_stamped(fd: i32, buf: &mut BytesMut, arrival: &mut Option<u64>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // Room for one timestamp control message (aligned as the kernel writes it).
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the iovec points at `spare`, writable for its length; the control buffer is
    // local and its length is given; both outlive the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialized the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    // SAFETY: walking the control messages the kernel wrote into `control`, with the libc
    // macros and the header it filled in; the timestamp is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                *arrival = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n)
}

enum Parsed {
    Message(Message),
    Ping(Bytes),
    Skip,
}

/// Header length and payload length of the frame at the start of `buf`, once its header is in.
fn frame_header(buf: &[u8]) -> io::Result<Option<(usize, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let masked = buf[1] & 0x80 != 0;
    let mask_len = if masked { 4 } else { 0 };
    let (header, len) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(n);
            (
                10,
                usize::try_from(n).map_err(|_| invalid("frame too large"))?,
            )
        }
        n => (2, n as usize),
    };
    Ok(Some((header + mask_len, len)))
}

/// Text is not checked for UTF-8: the readers scan bytes, and the check cost 2% of the
/// generator at 60,000 frames/s.
fn message(opcode: u8, payload: Bytes) -> io::Result<Message> {
    if opcode == OP_TEXT {
        Ok(Message::Text(payload))
    } else {
        Ok(Message::Binary(payload))
    }
}

fn close_reason(payload: &[u8]) -> Option<(u16, String)> {
    (payload.len() >= 2).then(|| {
        (
            u16::from_be_bytes([payload[0], payload[1]]),
            String::from_utf8_lossy(&payload[2..]).into_owned(),
        )
    })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_length_form() {
        assert_eq!(frame_header(&[0x81]).unwrap(), None);
        assert_eq!(frame_header(&[0x81, 5]).unwrap(), Some((2, 5)));
        assert_eq!(frame_header(&[0x82, 126, 1]).unwrap(), None);
        assert_eq!(frame_header(&[0x82, 126, 1, 0]).unwrap(), Some((4, 256)));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(frame_header(&long).unwrap(), Some((10, 70_000)));
        assert_eq!(frame_header(&[0x81, 0x85]).unwrap(), Some((6, 5)), "masked");
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        assert_eq!(close_reason(&[]), None);
        let mut p = 3008u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"slow");
        assert_eq!(close_reason(&p), Some((3008, "slow".to_owned())));
    }
}
