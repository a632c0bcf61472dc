//! The bidirectional WebSocket transport on `/connection/websocket` (actix-ws).
//!
//! One task per connection: it reads frames into the session, writes everything the session
//! queued as one frame per wake-up, and fires the session's timers. JSON goes in text frames,
//! Protobuf in binary frames.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::FutureExt as _;
use herald_engine::{Flow, Node, Session};
use herald_protocol::Format;
use herald_protocol::codes::{Disconnect, disconnect};

use super::TransportConfig;

const SUBPROTOCOL_JSON: &str = "centrifuge-json";
const SUBPROTOCOL_PROTOBUF: &str = "centrifuge-protobuf";

/// WebSocket close code for a message over the size limit (RFC 6455).
const MESSAGE_TOO_BIG: u16 = 1009;

pub async fn handler(
    req: HttpRequest,
    body: web::Payload,
    node: web::Data<Node>,
    config: web::Data<TransportConfig>,
) -> actix_web::Result<HttpResponse> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !config.origins.allows(origin) {
        tracing::info!(
            origin,
            "websocket origin not allowed (see server.allowed_origins)"
        );
        return Ok(HttpResponse::Forbidden().body("request Origin is not allowed\n"));
    }
    if node.is_shutting_down() {
        return Ok(HttpResponse::ServiceUnavailable().body("node is shutting down\n"));
    }
    let (response, ws, stream) =
        actix_ws::handle_with_protocols(&req, body, &[SUBPROTOCOL_JSON, SUBPROTOCOL_PROTOBUF])?;
    let format = negotiated_format(&req, &response);
    let stream = stream
        .max_frame_size(config.max_message_size)
        .aggregate_continuations()
        .max_continuation_size(config.max_message_size);
    let session = node.session(format);
    actix_web::rt::spawn(run(session, ws, stream));
    Ok(response)
}

/// Protobuf when the `centrifuge-protobuf` subprotocol was agreed or the URL asks for it
/// (`?format=protobuf` or `?cf_protocol=protobuf`); JSON otherwise.
fn negotiated_format(req: &HttpRequest, response: &HttpResponse) -> Format {
    let agreed = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if agreed == Some(SUBPROTOCOL_PROTOBUF) {
        return Format::Protobuf;
    }
    let query = req.query_string();
    let asks_protobuf = query.split('&').any(|pair| {
        matches!(
            pair.split_once('='),
            Some(("format" | "cf_protocol", "protobuf"))
        )
    });
    if asks_protobuf {
        Format::Protobuf
    } else {
        Format::Json
    }
}

/// The connection's task. Its future lives as long as the connection, so everything it holds
/// is paid by every idle connection: command handling, draining, pongs, the close and a write
/// that has to wait run in boxed futures that exist only while they run, instead of widening
/// this state machine by their largest path (a waiting write's future alone is 296 bytes).
///
/// A plain fn returning an `async move` block, not an `async fn`: an async fn keeps its
/// arguments twice in its state (as arguments and as the locals they are moved into), 464
/// bytes per connection here.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
fn run(
    mut session: Session,
    mut ws: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
) -> impl std::future::Future<Output = ()> {
    async move {
        let format = session.format();
        let outbound = session.outbound().clone();
        let write_delay = session.write_delay();
        let mut next_write = tokio::time::Instant::now();
        // Taken whole by each write (not split off), so an idle connection keeps no buffer alive.
        let mut frame = BytesMut::new();
        // One timer for the session's clocks, moved only when its deadline changes: registering a
        // new timer on every loop turn would cost a timer-wheel insert and removal per frame.
        let mut deadline = session.deadline();
        let timer = tokio::time::sleep_until(deadline.into());
        tokio::pin!(timer);
        let close: Option<Disconnect> = loop {
            let next = session.deadline();
            if next != deadline {
                deadline = next;
                timer.as_mut().reset(deadline.into());
            }
            tokio::select! {
                biased;
                _ = outbound.ready() => {
                    // At most one write per write_delay: what arrives in between joins this frame.
                    if !write_delay.is_zero() && tokio::time::Instant::now() < next_write {
                        tokio::time::sleep_until(next_write).await;
                    }
                    let flow = Box::pin(session.drain(&mut frame)).await;
                    if !frame.is_empty() {
                        if let Err(d) = write(&mut ws, format, std::mem::take(&mut frame).freeze()).await {
                            break Some(d);
                        }
                        if !write_delay.is_zero() {
                            next_write = tokio::time::Instant::now() + write_delay;
                        }
                    }
                    if let Flow::Close(d) = flow {
                        break Some(d);
                    }
                }
                message = stream.recv() => match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if let Flow::Close(d) = Box::pin(session.handle_frame(text.as_bytes())).await {
                            break Some(d);
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(bytes))) => {
                        if let Flow::Close(d) = Box::pin(session.handle_frame(&bytes)).await {
                            break Some(d);
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        if Box::pin(ws.pong(&payload)).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(ProtocolError::Overflow)) => {
                        break Some(Disconnect::custom(MESSAGE_TOO_BIG, "message too big"));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket protocol error");
                        break Some(disconnect::BAD_REQUEST);
                    }
                },
                _ = &mut timer => {
                    if let Flow::Close(d) = session.on_timer(Instant::now()) {
                        break Some(d);
                    }
                }
            }
        };
        // Replies queued before a close still go out (a slow client's backlog does not).
        if close.as_ref().is_some_and(|d| *d != disconnect::SLOW) {
            let _ = Box::pin(session.drain(&mut frame)).await;
            if !frame.is_empty() {
                let _ = write(&mut ws, format, std::mem::take(&mut frame).freeze()).await;
            }
        }
        // Leave the hub before the network goodbye, as centrifuge does.
        session.close(close.as_ref());
        let reason = close.map(|d| CloseReason {
            code: CloseCode::Other(d.code),
            description: Some(d.reason.into_owned()),
        });
        let _ = Box::pin(ws.close(reason)).await;
    }
}

/// Hands a frame to actix-ws. Its channel almost always has room, and then the send completes
/// in one poll without allocating; only a full channel makes the send wait, boxed (its future
/// is 296 bytes, kept out of the connection task). A first attempt that found the channel full
/// is dropped unsent, and actix-ws's sender keeps its place for the retry: nothing is lost or
/// sent twice.
async fn write(ws: &mut actix_ws::Session, format: Format, frame: Bytes) -> Result<(), Disconnect> {
    let sent = match format {
        Format::Json => {
            let Ok(text) = ByteString::try_from(frame) else {
                return Err(disconnect::INAPPROPRIATE_PROTOCOL);
            };
            match ws.text(text.clone()).now_or_never() {
                Some(sent) => sent,
                None => Box::pin(ws.text(text)).await,
            }
        }
        Format::Protobuf => match ws.binary(frame.clone()).now_or_never() {
            Some(sent) => sent,
            None => Box::pin(ws.binary(frame)).await,
        },
    };
    sent.map_err(|_| disconnect::WRITE_ERROR)
}
