//! The connection driver: the one loop that runs an engine session over any transport.
//!
//! A transport is a [`FrameIo`]: it hands over the client's messages, writes the frames the
//! session drains, answers pings and says goodbye in its own way (a close frame, a
//! `disconnect` push). Everything else happens here, once for every transport: waking on the
//! session's queue and clocks, `client.write_delay`, one frame per drain, and the close rule
//! (what was queued before a close still goes out, a slow client's backlog does not; the
//! session leaves the hub before the goodbye is written, as centrifuge does).

use std::future::Future;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use herald_engine::{Flow, Session};
use herald_protocol::codes::{Disconnect, disconnect};

/// What a transport read from its client.
#[derive(Debug)]
pub enum Inbound {
    /// One message: one or more commands (JSON lines or delimited Protobuf).
    Message(Bytes),
    /// A transport-level ping, to be answered with [`FrameIo::pong`].
    Ping(Bytes),
    /// The client went away or closed the connection.
    Closed,
    /// The client broke the transport's rules (a frame over the size limit, a malformed
    /// frame): close with this.
    Refused(Disconnect),
}

/// A transport as the driver sees it.
pub trait FrameIo {
    /// The next message from the client. Must be cancel-safe: the driver drops it whenever the
    /// session has something to write or a clock fires.
    fn recv(&mut self) -> impl Future<Output = Inbound>;

    /// Writes one frame: replies and publications joined by the session (JSON lines or
    /// delimited Protobuf). An error ends the connection with the disconnect it carries.
    fn send(&mut self, frame: BytesMut) -> impl Future<Output = Result<(), Disconnect>>;

    /// Answers an [`Inbound::Ping`].
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = Result<(), Disconnect>>;

    /// Ends the connection, telling the client why (`None`: it went away or closed first).
    /// The session has already left the node.
    fn close(self, disconnect: Option<Disconnect>) -> impl Future<Output = ()>;
}

/// Runs `session` over `io` until either ends.
///
/// This future lives as long as the connection, so everything it holds is paid by every idle
/// connection: command handling and draining run in boxed futures that exist only while they
/// run, instead of widening this state machine by their largest path. A plain fn returning an
/// `async move` block, not an `async fn`: an async fn keeps its arguments twice in its state
/// (as arguments and as the locals they are moved into).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
pub fn run<Io: FrameIo>(mut session: Session, mut io: Io) -> impl Future<Output = ()> {
    async move {
        let close = serve(&mut session, &mut io).await;
        // Replies queued before a close still go out (a slow client's backlog does not, and
        // nothing goes to a socket that failed).
        if flushes_queue(close.as_ref()) {
            let mut frame = BytesMut::new();
            let _ = Box::pin(session.drain(&mut frame)).await;
            if !frame.is_empty() {
                let _ = io.send(frame).await;
            }
        }
        // Leave the hub before the network goodbye, as centrifuge does. Boxed: the goodbye may
        // linger (the lean engine waits for the client's side of the close), and inline its
        // state would widen every connection's for the one moment it runs.
        session.close(close.as_ref());
        Box::pin(io.close(close)).await;
    }
}

/// Whether what was queued before a close still goes out: yes, but not a slow client's backlog,
/// nor to a socket that failed, nor when the client went away.
pub fn flushes_queue(close: Option<&Disconnect>) -> bool {
    close.is_some_and(|d| *d != disconnect::SLOW && *d != disconnect::WRITE_ERROR)
}

/// The connection's life: returns why it ends (`None`: the client went away).
async fn serve<Io: FrameIo>(session: &mut Session, io: &mut Io) -> Option<Disconnect> {
    let outbound = session.outbound().clone();
    let write_delay = session.write_delay();
    let mut next_write = tokio::time::Instant::now();
    // One timer for the session's clocks, moved only when its deadline changes: registering a
    // new timer on every loop turn would cost a timer-wheel insert and removal per frame.
    let mut deadline = session.deadline();
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    loop {
        if session.deadline() != deadline {
            deadline = session.deadline();
            timer.as_mut().reset(deadline.into());
        }
        tokio::select! {
            biased;
            _ = outbound.ready() => {
                // At most one write per write_delay: what arrives in between joins this frame.
                if !write_delay.is_zero() && tokio::time::Instant::now() < next_write {
                    tokio::time::sleep_until(next_write).await;
                }
                // Taken whole by the write, so an idle connection keeps no buffer.
                let mut frame = BytesMut::new();
                let flow = Box::pin(session.drain(&mut frame)).await;
                if !frame.is_empty() {
                    if let Err(d) = io.send(frame).await {
                        return Some(d);
                    }
                    if !write_delay.is_zero() {
                        next_write = tokio::time::Instant::now() + write_delay;
                    }
                }
                if let Flow::Close(d) = flow {
                    return Some(d);
                }
            }
            inbound = io.recv() => match inbound {
                Inbound::Message(message) => {
                    if let Flow::Close(d) = Box::pin(session.handle_frame(&message)).await {
                        return Some(d);
                    }
                }
                Inbound::Ping(payload) => {
                    if let Err(d) = io.pong(payload).await {
                        return Some(d);
                    }
                }
                Inbound::Closed => return None,
                Inbound::Refused(d) => return Some(d),
            },
            _ = &mut timer => {
                if let Flow::Close(d) = session.on_timer(Instant::now()) {
                    return Some(d);
                }
            }
        }
    }
}
