//! The connection of an emulated transport (HTTP streaming, SSE) as a response body: polling
//! the body polls the connection's driver (`super::driver`), so the connection costs no task
//! of its own and ends, with its session, when actix drops the body (the client went away) or
//! the session closes.
//!
//! Commands come from the session's [`Inbox`] (posted to `/emulation` on any node), frames go
//! down the body in the transport's [`Framing`]. There are no close frames: the last thing
//! written is a `disconnect` push saying why the stream ends.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use herald_engine::{Flow, Inbox, Mode, Relayed, Session};
use herald_protocol::Format;
use herald_protocol::codec;
use herald_protocol::codes::Disconnect;

use super::driver::{self, FrameIo, Inbound};

/// How frames are laid out in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `/connection/http_stream`: JSON replies each followed by `\n`, or Protobuf replies
    /// varint-delimited back to back.
    HttpStream,
    /// `/connection/sse`: one `data:` event per JSON reply.
    Sse,
    /// `/connection/uni_http_stream`: bare JSON pushes, each followed by `\n`.
    UniHttpStream,
    /// `/connection/uni_sse`: one `data:` event per bare JSON push.
    UniSse,
}

impl Framing {
    /// The transport's name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Framing::HttpStream => "http_stream",
            Framing::Sse => "sse",
            Framing::UniHttpStream => "uni_http_stream",
            Framing::UniSse => "uni_sse",
        }
    }

    fn is_sse(self) -> bool {
        matches!(self, Framing::Sse | Framing::UniSse)
    }

    /// One drained frame (JSON replies joined by `\n`, or delimited Protobuf replies) as a
    /// chunk of the body; HTTP streaming sends the frame's own buffer.
    fn chunk(self, format: Format, mut frame: BytesMut) -> Bytes {
        match (self, format) {
            (Framing::HttpStream | Framing::UniHttpStream, Format::Json) => {
                frame.put_u8(b'\n');
                frame.freeze()
            }
            (Framing::HttpStream | Framing::UniHttpStream, Format::Protobuf) => frame.freeze(),
            // A JSON reply never holds a raw newline (the codec replaces them in embedded
            // JSON), so each line is one reply and one event.
            (Framing::Sse | Framing::UniSse, _) => {
                let mut out = BytesMut::with_capacity(frame.len() + 64);
                for line in frame[..].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    out.put_slice(b"data: ");
                    out.put_slice(line);
                    out.put_slice(b"\n\n");
                }
                out.freeze()
            }
        }
    }
}

/// The chunk the driver wrote and the body has not yet handed to actix.
type Slot = Rc<Cell<Option<Bytes>>>;

/// The transport side the driver writes to: a chunk at a time, taken by the body.
struct StreamIo {
    /// How the connect command, handled before the stream started, ended the session, if it
    /// did: the first thing the driver hears, after the replies queued before it.
    refused: Option<Disconnect>,
    /// Where the commands of an emulated connection arrive (`None`: a unidirectional one,
    /// whose client has said all it says in its connect request).
    inbox: Option<Inbox>,
    /// The session's mode: a unidirectional client gets its `disconnect` push bare.
    mode: Mode,
    framing: Framing,
    format: Format,
    out: Slot,
}

impl StreamIo {
    /// Hands `chunk` to the body and waits until the body has passed it on. The body polls
    /// the driver again as soon as actix wants the next chunk, so the wait needs no waker.
    async fn hand(&self, chunk: Bytes) {
        self.out.set(Some(chunk));
        std::future::poll_fn(|_| {
            let pending = self.out.take();
            if pending.is_some() {
                self.out.set(pending);
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

impl FrameIo for StreamIo {
    async fn recv(&mut self) -> Inbound {
        if let Some(d) = self.refused.take() {
            return Inbound::Refused(d);
        }
        let Some(inbox) = self.inbox.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match inbox.recv().await {
                Some(Relayed::Data(commands)) => return Inbound::Message(commands),
                // Nothing asks or hands these sessions anything else.
                Some(Relayed::Ask(_, answer)) => {
                    let _ = answer.send(bytes::Bytes::new());
                }
                Some(Relayed::Local(_)) => {}
                None => return Inbound::Closed,
            }
        }
    }

    async fn send(&mut self, frame: BytesMut) -> Result<(), Disconnect> {
        let chunk = self.framing.chunk(self.format, frame);
        self.hand(chunk).await;
        Ok(())
    }

    /// Streams have no transport-level pings (the protocol's own go down the stream).
    async fn pong(&mut self, _payload: Bytes) -> Result<(), Disconnect> {
        Ok(())
    }

    async fn close(self, disconnect: Option<Disconnect>) {
        if let Some(d) = disconnect {
            let push = codec::disconnect_push(self.format, &d);
            let mut frame = BytesMut::from(&push[..]);
            if self.mode == Mode::Unidirectional {
                codec::unwrap_pushes(&mut frame);
            }
            let chunk = self.framing.chunk(self.format, frame);
            self.hand(chunk).await;
        }
    }
}

/// The body of a streamed connection whose connect command `session` has handled already
/// (`connected` is what that returned); `inbox` carries an emulated one's later commands.
pub fn body(
    session: Session,
    inbox: Option<Inbox>,
    framing: Framing,
    connected: Flow,
    span: Option<tracing::Span>,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static {
    let out = Slot::default();
    let io = StreamIo {
        refused: match connected {
            Flow::Close(d) => Some(d),
            Flow::Continue => None,
        },
        inbox,
        mode: session.mode(),
        framing,
        format: session.format(),
        out: out.clone(),
    };
    DriverBody {
        // SSE's opening line, so a client sees the stream open before its first event.
        preface: framing.is_sse().then(|| Bytes::from_static(b"\r\n")),
        driver: Some(Box::pin(driver::run(session, io))),
        out,
        span,
    }
}

struct DriverBody<F> {
    preface: Option<Bytes>,
    /// `None` once the session has ended.
    driver: Option<Pin<Box<F>>>,
    out: Slot,
    /// The connection's access-log span (crate::access), entered while the driver runs.
    span: Option<tracing::Span>,
}

impl<F: Future<Output = ()>> Stream for DriverBody<F> {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(preface) = self.preface.take() {
            return Poll::Ready(Some(Ok(preface)));
        }
        let span = self.span.clone();
        let entered = span.as_ref().map(tracing::Span::enter);
        if let Some(driver) = self.driver.as_mut()
            && driver.as_mut().poll(cx).is_ready()
        {
            self.driver = None;
        }
        drop(entered);
        if let Some(chunk) = self.out.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if self.driver.is_none() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}
