//! The `actix-ws` WebSocket engine (`server.websocket_engine = "actix-ws"`): the handshake is
//! an actix-web route, frames travel through actix-ws's session and message stream, and the
//! socket stays with actix-http's HTTP/1 dispatcher (its own task, its two buffers). Kept to
//! compare with the lean engine and as a fallback; both run the same
//! driver (`crate::transport::driver`).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::FutureExt as _;
use herald_engine::Node;
use herald_protocol::Format;
use herald_protocol::codes::{Disconnect, disconnect};

use super::{SUBPROTOCOLS, UNI_PATH, format_for};
use crate::access;
use crate::transport::TransportConfig;
use crate::transport::driver::{self, FrameIo, Inbound};

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
    // A unidirectional client speaks bare JSON, whatever it offers.
    let uni = req.path() == UNI_PATH;
    let (response, ws, stream) = if uni {
        actix_ws::handle(&req, body)?
    } else {
        actix_ws::handle_with_protocols(&req, body, &SUBPROTOCOLS)?
    };
    let agreed = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let format = format_for(agreed, req.query_string());
    let stream = stream
        .max_frame_size(config.max_message_size)
        .aggregate_continuations()
        .max_continuation_size(config.max_message_size);
    let (session, name) = if uni {
        (node.uni_session(), "uni_websocket")
    } else {
        (node.session(format), "websocket")
    };
    let io = ActixWsIo {
        ws,
        stream,
        format: session.format(),
    };
    let span = access::connection_span(req.headers(), name);
    access::spawn_connection(span, driver::run(session, io));
    Ok(response)
}

pub(crate) struct ActixWsIo {
    ws: actix_ws::Session,
    stream: actix_ws::AggregatedMessageStream,
    format: Format,
}

impl ActixWsIo {
    /// A JSON connection on an accepted handshake, messages up to `max_message_size`.
    pub(crate) fn json(
        ws: actix_ws::Session,
        stream: actix_ws::MessageStream,
        max_message_size: usize,
    ) -> ActixWsIo {
        let stream = stream
            .max_frame_size(max_message_size)
            .aggregate_continuations()
            .max_continuation_size(max_message_size);
        ActixWsIo {
            ws,
            stream,
            format: Format::Json,
        }
    }

    /// Writes `texts` as text frames.
    pub(crate) async fn send_texts(&mut self, texts: &[String]) -> Result<(), Disconnect> {
        for text in texts {
            Box::pin(self.ws.text(text.clone()))
                .await
                .map_err(|_| disconnect::WRITE_ERROR)?;
        }
        Ok(())
    }
}

impl FrameIo for ActixWsIo {
    async fn recv(&mut self) -> Inbound {
        loop {
            return match self.stream.recv().await {
                Some(Ok(AggregatedMessage::Text(text))) => Inbound::Message(text.into_bytes()),
                Some(Ok(AggregatedMessage::Binary(bytes))) => Inbound::Message(bytes),
                Some(Ok(AggregatedMessage::Ping(payload))) => Inbound::Ping(payload),
                Some(Ok(AggregatedMessage::Pong(_))) => continue,
                Some(Ok(AggregatedMessage::Close(_))) | None => Inbound::Closed,
                Some(Err(ProtocolError::Overflow)) => Inbound::Refused(super::message_too_big()),
                // actix-ws says a joined message grew too big only in this error's text.
                Some(Err(ProtocolError::Io(e)))
                    if e.to_string() == "Exceeded maximum continuation size" =>
                {
                    Inbound::Refused(super::message_too_big())
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "websocket protocol error");
                    Inbound::Refused(disconnect::BAD_REQUEST)
                }
            };
        }
    }

    /// Hands a frame to actix-ws. Its channel almost always has room, and then the send
    /// completes in one poll without allocating; only a full channel makes the send wait,
    /// boxed (its future is 296 bytes, kept out of the connection's state). A first attempt
    /// that found the channel full is dropped unsent, and actix-ws's sender keeps its place for
    /// the retry: nothing is lost or sent twice.
    async fn send(&mut self, frame: BytesMut) -> Result<(), Disconnect> {
        let frame = frame.freeze();
        let ws = &mut self.ws;
        let sent = match self.format {
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

    async fn pong(&mut self, payload: Bytes) -> Result<(), Disconnect> {
        Box::pin(self.ws.pong(&payload))
            .await
            .map_err(|_| disconnect::WRITE_ERROR)
    }

    async fn close(self, disconnect: Option<Disconnect>) {
        let reason = disconnect.map(|d| CloseReason {
            code: CloseCode::Other(d.code),
            description: Some(d.reason.into_owned()),
        });
        let _ = Box::pin(self.ws.close(reason)).await;
    }
}
