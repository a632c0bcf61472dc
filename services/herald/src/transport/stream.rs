//! The connection of an emulated transport (HTTP streaming, SSE) as a response body: polling
//! the body drives the session, so the connection costs no task of its own and ends, with its
//! session, when actix drops the body (the client went away) or the session closes.
//!
//! Commands come from the session's [`Inbox`] (posted to `/emulation` on any node), replies
//! and pushes go down the body in the transport's [`Framing`]. There are no close frames: the
//! last thing written is a `disconnect` push saying why the stream ends.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use herald_engine::{Flow, Inbox, Session};
use herald_protocol::Format;
use herald_protocol::codes::disconnect;

/// How replies are laid out in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `/connection/http_stream`: JSON replies each followed by `\n`, or Protobuf replies
    /// varint-delimited back to back.
    HttpStream,
    /// `/connection/sse`: one `data:` event per JSON reply.
    Sse,
}

impl Framing {
    /// Appends a drained frame (JSON replies joined by `\n`, or delimited Protobuf replies).
    fn append(self, format: Format, frame: &[u8], out: &mut BytesMut) {
        match (self, format) {
            (Framing::HttpStream, Format::Json) => {
                out.put_slice(frame);
                out.put_u8(b'\n');
            }
            (Framing::HttpStream, Format::Protobuf) => out.put_slice(frame),
            // A JSON reply never holds a raw newline (the codec replaces them in embedded
            // JSON), so each line is one reply and one event.
            (Framing::Sse, _) => {
                for line in frame.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    out.put_slice(b"data: ");
                    out.put_slice(line);
                    out.put_slice(b"\n\n");
                }
            }
        }
    }
}

struct Conn {
    session: Option<Session>,
    inbox: Inbox,
    framing: Framing,
    /// Written before anything else (SSE's opening line), then `None`.
    preface: Option<Bytes>,
    /// No write before this (`client.write_delay`): what arrives meanwhile joins the next.
    next_write: tokio::time::Instant,
}

/// The body of an emulated connection whose connect command `session` has handled already
/// (`connected` is what that returned).
pub fn body(
    session: Session,
    inbox: Inbox,
    framing: Framing,
    connected: Flow,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static {
    let preface = (framing == Framing::Sse).then(|| Bytes::from_static(b"\r\n"));
    let conn = Conn {
        session: Some(session),
        inbox,
        framing,
        preface,
        next_write: tokio::time::Instant::now(),
    };
    futures_util::stream::unfold((conn, connected), |(mut conn, mut flow)| async move {
        let chunk = next_chunk(&mut conn, &mut flow).await?;
        Some((Ok(chunk), (conn, Flow::Continue)))
    })
}

/// What to write next; `None` once the session has ended and said so.
async fn next_chunk(conn: &mut Conn, pending: &mut Flow) -> Option<Bytes> {
    let session = conn.session.as_mut()?;
    let format = session.format();
    let write_delay = session.write_delay();
    let mut out = BytesMut::new();
    if let Some(preface) = conn.preface.take() {
        out.put_slice(&preface);
    }
    let mut frame = BytesMut::new();
    let close = match std::mem::replace(pending, Flow::Continue) {
        Flow::Close(d) => Some(d),
        Flow::Continue => loop {
            if !out.is_empty() {
                // Something to write already (the preface): write it before waiting.
                return Some(out.freeze());
            }
            let outbound = session.outbound().clone();
            let deadline = session.deadline();
            tokio::select! {
                biased;
                _ = outbound.ready() => {
                    if !write_delay.is_zero() && tokio::time::Instant::now() < conn.next_write {
                        tokio::time::sleep_until(conn.next_write).await;
                    }
                    let flow = Box::pin(session.drain(&mut frame)).await;
                    if !frame.is_empty() {
                        conn.framing.append(format, &frame, &mut out);
                        frame.clear();
                        conn.next_write = tokio::time::Instant::now() + write_delay;
                    }
                    if let Flow::Close(d) = flow {
                        break Some(d);
                    }
                }
                request = conn.inbox.recv() => {
                    let Some(data) = request else { break None };
                    if let Flow::Close(d) = Box::pin(session.handle_frame(&data)).await {
                        break Some(d);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if let Flow::Close(d) = session.on_timer(Instant::now()) {
                        break Some(d);
                    }
                }
            }
        },
    };
    // The session ends: what it queued before the close still goes out (a slow client's
    // backlog does not), then the reason.
    if close.as_ref().is_some_and(|d| *d != disconnect::SLOW) {
        let _ = Box::pin(session.drain(&mut frame)).await;
        if !frame.is_empty() {
            conn.framing.append(format, &frame, &mut out);
        }
    }
    let session = conn.session.take()?;
    if let Some(d) = &close {
        conn.framing
            .append(format, &session.disconnect_push(d), &mut out);
    }
    session.close(close.as_ref());
    if out.is_empty() {
        None
    } else {
        Some(out.freeze())
    }
}
