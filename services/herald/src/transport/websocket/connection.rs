//! One connection of the lean WebSocket engine, as the driver's [`FrameIo`]: frames are read
//! and written on the socket itself, with nothing kept while the connection is idle.
//!
//! - Reads wait for readiness without a buffer, then read into a scratch array on the stack;
//!   only a frame that is not complete yet is kept on the heap (sized for that frame), and the
//!   buffer is released as soon as it is empty again.
//! - A write is the frame header, written from the stack, and the session's drained frame
//!   itself, in one vectored write: no copy of the payload.
//! - Control frames: pings are answered, pongs ignored, a close is answered with a close.
//!   Fragmented messages are joined up to `client.max_message_size` (1009 past it).

use std::future::Future;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use herald_protocol::Format;
use herald_protocol::codes::{Disconnect, disconnect};
use tokio::io::AsyncWriteExt as _;

use super::frame::{self, Frame, FrameError, OpCode};
use super::open_connections::Guard;
use crate::transport::driver::{FrameIo, Inbound};
use crate::transport::socket::Socket;

/// Bytes one read takes when no frame is pending: commands are small, and a larger frame
/// gets a heap buffer of its own size after its header.
const SCRATCH: usize = 4096;
/// How long a closing connection waits for the client to close its side after the close
/// frame, so that the close frame is read before the connection goes (closing a socket with
/// unread input resets it, and a reset can discard the close frame on the client's side).
const LINGER: Duration = Duration::from_secs(1);

pub(crate) struct LeanConnection {
    socket: Socket,
    /// Bytes of a frame not complete yet; unallocated while none is pending.
    read_buf: BytesMut,
    /// The frames so far of a fragmented message.
    fragments: Option<BytesMut>,
    max_message_size: usize,
    /// Text frames for JSON, binary frames for Protobuf.
    opcode: OpCode,
    _open: Guard,
}

impl LeanConnection {
    /// `read_buf`: what the HTTP/1 layer had read past the handshake request.
    pub(crate) fn new(
        socket: Socket,
        read_buf: BytesMut,
        format: Format,
        max_message_size: usize,
        open: Guard,
    ) -> LeanConnection {
        let read_buf = if read_buf.is_empty() {
            BytesMut::new()
        } else {
            read_buf
        };
        LeanConnection {
            socket,
            read_buf,
            fragments: None,
            max_message_size,
            opcode: match format {
                Format::Json => OpCode::Text,
                Format::Protobuf => OpCode::Binary,
            },
            _open: open,
        }
    }

    /// The next inbound event from the frames already read, if they hold one.
    fn buffered(&mut self) -> Option<Inbound> {
        let inbound = self.next_buffered();
        if self.read_buf.is_empty() {
            // Nothing pending: an idle connection holds no read buffer. Also when its capacity
            // is 0: an emptied buffer still shares the allocation of the messages split off it.
            self.read_buf = BytesMut::new();
        }
        inbound
    }

    fn next_buffered(&mut self) -> Option<Inbound> {
        loop {
            let frame = match frame::parse(&mut self.read_buf, self.max_message_size) {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(FrameError::TooBig(_)) => {
                    return Some(Inbound::Refused(super::message_too_big()));
                }
                Err(FrameError::Protocol(what)) => {
                    tracing::debug!(what, "websocket protocol error");
                    return Some(Inbound::Refused(disconnect::BAD_REQUEST));
                }
            };
            if let Some(inbound) = self.message(frame) {
                return Some(inbound);
            }
        }
    }

    /// What one frame means, joining fragments; `None`: nothing for the driver yet.
    fn message(&mut self, frame: Frame) -> Option<Inbound> {
        let refused = |what: &'static str| {
            tracing::debug!(what, "websocket protocol error");
            Some(Inbound::Refused(disconnect::BAD_REQUEST))
        };
        match (frame.opcode, self.fragments.as_mut()) {
            (OpCode::Ping, _) => Some(Inbound::Ping(frame.payload)),
            (OpCode::Pong, _) => None,
            (OpCode::Close, _) => Some(Inbound::Closed),
            (OpCode::Text | OpCode::Binary, None) if frame.fin => {
                Some(Inbound::Message(frame.payload))
            }
            (OpCode::Text | OpCode::Binary, None) => {
                self.fragments = Some(BytesMut::from(frame.payload));
                None
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                refused("new message inside a fragmented one")
            }
            (OpCode::Continuation, None) => refused("continuation without a message"),
            (OpCode::Continuation, Some(joined)) => {
                if joined.len() + frame.payload.len() > self.max_message_size {
                    return Some(Inbound::Refused(super::message_too_big()));
                }
                joined.extend_from_slice(&frame.payload);
                if !frame.fin {
                    return None;
                }
                self.fragments.take().map(|m| Inbound::Message(m.freeze()))
            }
        }
    }

    /// Reads what the socket has into the read buffer: `Ready(Ok(()))` once some bytes were
    /// added, `Ready(Err)` at the end of the stream or on an error. Waits for readiness
    /// without a future of its own, so a waiting connection keeps only its readiness
    /// registration.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            let read = if self.read_buf.capacity() > self.read_buf.len() {
                // A frame is pending and its buffer has room for it.
                self.socket.try_read_buf(&mut self.read_buf)
            } else {
                let mut scratch = [0u8; SCRATCH];
                self.socket.try_read(&mut scratch).inspect(|&n| {
                    self.read_buf.extend_from_slice(&scratch[..n]);
                })
            };
            match read {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => return Poll::Ready(Ok(())),
                // The readiness was cleared: the next turn registers for the next bytes.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes `head` then `body` with as few writes as the socket allows.
    async fn write_all(&mut self, mut head: &[u8], mut body: &[u8]) -> Result<(), Disconnect> {
        while !head.is_empty() || !body.is_empty() {
            let parts = [IoSlice::new(head), IoSlice::new(body)];
            let written = match self.socket.write_vectored(&parts).await {
                Ok(0) => return Err(disconnect::WRITE_ERROR),
                Ok(n) => n,
                Err(_) if self.socket.timed_out() => return Err(disconnect::SLOW),
                Err(_) => return Err(disconnect::WRITE_ERROR),
            };
            let from_head = written.min(head.len());
            head = &head[from_head..];
            body = &body[written - from_head..];
        }
        Ok(())
    }

    /// Writes `texts` as text frames, in one write when the socket takes it.
    pub(crate) async fn send_texts(&mut self, texts: &[String]) -> Result<(), Disconnect> {
        let mut out = Vec::with_capacity(texts.iter().map(|t| t.len() + 10).sum());
        for text in texts {
            let (head, used) = frame::header(OpCode::Text, text.len());
            out.extend_from_slice(&head[..used]);
            out.extend_from_slice(text.as_bytes());
        }
        self.write_all(&out, &[]).await
    }

    /// Reads and drops what the client still sends until it closes its side, for at most
    /// [`LINGER`].
    async fn linger(&mut self) {
        let drained = async {
            loop {
                if self.socket.readable().await.is_err() {
                    return;
                }
                let mut scratch = [0u8; 512];
                match self.socket.try_read(&mut scratch) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drained).await;
    }
}

impl FrameIo for LeanConnection {
    fn recv(&mut self) -> impl Future<Output = Inbound> {
        std::future::poll_fn(|cx| {
            loop {
                if let Some(inbound) = self.buffered() {
                    return Poll::Ready(inbound);
                }
                if ready!(self.poll_fill(cx)).is_err() {
                    return Poll::Ready(Inbound::Closed);
                }
            }
        })
    }

    async fn send(&mut self, frame: BytesMut) -> Result<(), Disconnect> {
        let (head, used) = frame::header(self.opcode, frame.len());
        self.write_all(&head[..used], &frame).await
    }

    async fn pong(&mut self, payload: Bytes) -> Result<(), Disconnect> {
        let pong = frame::control_frame(OpCode::Pong, &payload);
        self.write_all(&pong, &[]).await
    }

    async fn close(mut self, disconnect: Option<Disconnect>) {
        if self.socket.timed_out() {
            return;
        }
        let close = frame::close_frame(disconnect.as_ref().map(|d| (d.code, &*d.reason)));
        if self.write_all(&close, &[]).await.is_err() {
            return;
        }
        if self.socket.shutdown().await.is_ok() {
            self.linger().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt as _;

    use super::*;
    use crate::testing::raw_ws::client_frame;
    use crate::transport::socket::SocketConfig;
    use crate::transport::websocket::open_connections::OpenConnections;

    async fn connection() -> (LeanConnection, tokio::net::TcpStream, Arc<OpenConnections>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let socket = Socket::new(
            accepted.unwrap().0,
            SocketConfig::new(Duration::from_secs(1)),
        );
        let open = Arc::<OpenConnections>::default();
        let connection =
            LeanConnection::new(socket, BytesMut::new(), Format::Json, 1 << 20, open.enter());
        (connection, client.unwrap(), open)
    }

    #[tokio::test]
    async fn the_read_buffer_exists_only_while_a_frame_is_incomplete() {
        let (mut connection, mut client, open) = connection().await;
        assert_eq!(open.open(), 1);
        assert_eq!(connection.read_buf.capacity(), 0, "idle: no buffer");

        let payload = vec![b'x'; 40_000];
        let frame = client_frame(true, 0x1, &payload);
        client.write_all(&frame[..1000]).await.unwrap();
        // Half a frame: nothing for the driver yet (and waiting for more is cancel-safe).
        let waited = tokio::time::timeout(Duration::from_millis(200), connection.recv()).await;
        assert!(waited.is_err(), "a message out of half a frame");
        assert!(
            connection.read_buf.capacity() >= frame.len(),
            "room for the whole frame once its header is read"
        );
        client.write_all(&frame[1000..]).await.unwrap();
        match connection.recv().await {
            Inbound::Message(message) => assert_eq!(message.len(), payload.len()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            connection.read_buf.capacity(),
            0,
            "released after the frame"
        );

        // Small frames in one read come out one by one, and nothing is kept after them.
        let mut two = client_frame(true, 0x1, b"one");
        two.extend(client_frame(true, 0x1, b"two"));
        client.write_all(&two).await.unwrap();
        let mut messages = Vec::new();
        for expected in [&b"one"[..], b"two"] {
            let Inbound::Message(message) = connection.recv().await else {
                panic!("not a message");
            };
            assert_eq!(&message[..], expected);
            messages.push(message);
        }
        drop(messages.remove(0));
        assert!(
            messages[0].is_unique(),
            "once read, the buffer's share is gone"
        );
        assert_eq!(connection.read_buf.capacity(), 0);
        drop(connection);
        assert_eq!(open.open(), 0, "the connection counted out when dropped");
    }

    /// A buffer emptied by its last frame has no capacity left but still shares that frame's
    /// allocation: it must go too, or every idle connection keeps its last read.
    #[tokio::test]
    async fn a_message_read_to_the_end_of_the_buffer_keeps_nothing_of_it_alive() {
        let (mut connection, _client, _open) = connection().await;
        connection.read_buf = BytesMut::from(&client_frame(true, 0x1, b"{}")[..]);
        let Some(Inbound::Message(message)) = connection.buffered() else {
            panic!("a whole frame was buffered");
        };
        assert!(
            message.is_unique(),
            "the read buffer still shares the message"
        );
    }

    #[tokio::test]
    async fn a_frame_is_written_as_its_header_and_the_drained_frame() {
        let (mut connection, mut client, _open) = connection().await;
        connection
            .send(BytesMut::from(&b"{\"id\":1}"[..]))
            .await
            .unwrap();
        let mut read = [0u8; 16];
        let n = tokio::io::AsyncReadExt::read(&mut client, &mut read)
            .await
            .unwrap();
        assert_eq!(&read[..n], b"\x81\x08{\"id\":1}");
    }
}
