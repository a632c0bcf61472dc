//! A client's TCP connection with the write timeout (`client.write_timeout`): a socket that
//! takes no bytes for that long fails its writes, whoever writes through it (actix-http's
//! dispatcher for HTTP responses, the fallbacks' streams and actix-ws; the lean WebSocket
//! engine directly), so a client that stopped reading is dropped instead of holding its
//! connection, its session and what is queued for it.
//!
//! The clock starts when a write finds the socket's buffer full and restarts whenever the
//! socket takes bytes again (as nginx's `send_timeout`); a client that keeps reading, however
//! slowly, is left to the byte bound of its queue (3008) instead.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_rt::net::TcpStream;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::time::Sleep;

/// What every socket of a listener shares.
#[derive(Debug)]
pub struct SocketConfig {
    pub write_timeout: Duration,
    /// Sockets closed because a write timed out, for `/metrics`.
    pub write_timeouts: AtomicU64,
}

impl SocketConfig {
    pub fn new(write_timeout: Duration) -> Arc<SocketConfig> {
        Arc::new(SocketConfig {
            write_timeout,
            write_timeouts: AtomicU64::new(0),
        })
    }
}

pub struct Socket {
    stream: TcpStream,
    config: Arc<SocketConfig>,
    /// Armed while a write waits for room; allocated the first time one has to wait and reset
    /// after that, so a connection that never fills its socket carries no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    timed_out: bool,
}

impl Socket {
    pub fn new(stream: TcpStream, config: Arc<SocketConfig>) -> Socket {
        Socket {
            stream,
            config,
            deadline: None,
            waiting: false,
            timed_out: false,
        }
    }

    /// Resolves when a read may find data, without holding a buffer while it waits.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Whether a read may find data; registers `cx` for when one may otherwise.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }

    /// Reads what is available into `buf` without waiting (`WouldBlock` if nothing is).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }

    /// Reads what is available into the spare capacity of `buf` without waiting.
    pub fn try_read_buf(&self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        self.stream.try_read_buf(buf)
    }

    /// Whether a write has failed for the write timeout.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// A write found no room: starts the clock if it is not running, and fails once it ran out.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let timeout = self.config.write_timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.waiting {
            self.waiting = true;
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + timeout);
        }
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.timed_out = true;
        self.config.write_timeouts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            timeout = ?timeout,
            "client socket took no bytes within the write timeout; closing"
        );
        Poll::Ready(Err(timed_out()))
    }

    fn wrote(&mut self, written: io::Result<usize>) -> Poll<io::Result<usize>> {
        if matches!(written, Ok(n) if n > 0) {
            self.waiting = false;
        }
        Poll::Ready(written)
    }

    /// Writes what the socket takes of `bufs`, with `sendmsg`: a write to a socket need not go
    /// through the file layer (`write`/`writev` take the file's position lock on every call,
    /// ~3% of a node at 2 M deliveries/s).
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.timed_out {
            return Poll::Ready(Err(timed_out()));
        }
        loop {
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.blocked(cx),
            }
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                SockRef::from(&self.stream).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            });
            match sent {
                // The readiness was cleared: the next turn waits for the socket again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                sent => return self.wrote(sent),
            }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "client.write_timeout")
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A connected pair whose client side never reads, with small kernel buffers so the
    /// server's writes block quickly.
    async fn stalled_pair(timeout: Duration) -> (Socket, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let client = client.connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server, _) = accepted.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        (
            Socket::new(server, SocketConfig::new(timeout)),
            client.unwrap(),
        )
    }

    #[tokio::test]
    async fn a_write_the_client_never_takes_fails_after_the_timeout() {
        let (mut socket, _client) = stalled_pair(Duration::from_millis(200)).await;
        let chunk = vec![0u8; 64 * 1024];
        let started = std::time::Instant::now();
        let error = loop {
            if let Err(e) = socket.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(socket.timed_out());
        assert_eq!(socket.config.write_timeouts.load(Ordering::Relaxed), 1);
        // Every later write fails at once.
        assert!(socket.write(b"x").await.is_err());
    }

    #[tokio::test]
    async fn a_client_that_keeps_reading_is_never_timed_out() {
        let (mut socket, mut client) = stalled_pair(Duration::from_millis(100)).await;
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = vec![0u8; 4096];
            while total < 200_000 {
                // Slower than the writer, in steps shorter than the timeout.
                tokio::time::sleep(Duration::from_millis(10)).await;
                total += client.read(&mut buf).await.unwrap();
            }
            total
        });
        let chunk = vec![1u8; 100_000];
        for _ in 0..2 {
            socket
                .write_all(&chunk)
                .await
                .expect("a reading client is not cut off");
        }
        assert!(!socket.timed_out());
        drop(socket);
        assert!(reader.await.unwrap() >= 200_000);
    }
}
