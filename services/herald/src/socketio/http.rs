//! `/socket.io/` over HTTP: the polling handshake, GET (wait for packets) and POST (send
//! packets), answered as the Engine.IO server answers them, wherever the session lives; and, on
//! the actix-ws engine, the WebSocket handshake (the lean engine takes WebSocket upgrades before
//! they reach here, see `transport::websocket::lean`).
//!
//! Errors: 400 with Engine.IO's `{"code","message"}` (0 transport unknown, 1 session ID unknown,
//! 2 bad handshake method, 3 bad request, 5 unsupported protocol version), 403 for an Origin
//! not allowed, 413 for a body over `socketio.max_payload`, 503 while the node shuts down or
//! when the broker cannot reach the session's node.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use herald_engine::EmulationError;
use serde::Deserialize;

use super::exchange::{Answer, EngineError, Request};
use super::metrics::RequestKind;
use super::session::Connection;
use super::{SocketIo, WsSocket, sid};
use crate::access;
use crate::transport::cors;
use crate::transport::websocket::actix_ws::ActixWsIo;

#[derive(Deserialize)]
pub struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl EngineQuery {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
}

/// What is wrong with a request's query, before anything else is looked at.
pub fn check_query(query: &EngineQuery, websocket: bool) -> Result<(), EngineError> {
    if query.eio.as_deref() != Some("4") {
        return Err(EngineError::UnsupportedProtocolVersion);
    }
    match (query.transport.as_deref(), websocket) {
        (Some("polling"), false) | (Some("websocket"), true) => Ok(()),
        (Some("websocket"), false) => Err(EngineError::BadRequest),
        _ => Err(EngineError::UnknownTransport),
    }
}

/// Parses `/socket.io/`'s query string (the lean engine's upgrade service has no extractor).
pub fn parse_query(query: &str) -> Option<EngineQuery> {
    serde_urlencoded::from_str(query).ok()
}

pub async fn handler(
    req: HttpRequest,
    payload: web::Payload,
    sio: web::Data<SocketIo>,
) -> HttpResponse {
    let origin = match cors::check(&req, &sio.transport.origins) {
        Ok(origin) => origin.cloned(),
        Err(refused) => return refused.response(),
    };
    let mut response = serve(&req, payload, &sio).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::HeaderValue::from_static("true"),
        );
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    response
}

async fn serve(req: &HttpRequest, payload: web::Payload, sio: &SocketIo) -> HttpResponse {
    let Some(query) = parse_query(req.query_string()) else {
        return error(EngineError::BadRequest);
    };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if let Err(e) = check_query(&query, upgrade) {
        return error(e);
    }
    if sio.node.is_shutting_down() {
        return HttpResponse::ServiceUnavailable().body("node is shutting down\n");
    }
    if upgrade {
        return websocket(req, payload, sio, query.sid.as_deref()).await;
    }
    match (req.method(), query.sid) {
        (&Method::GET, None) => handshake(req, sio),
        (_, None) => error(EngineError::BadHandshakeMethod),
        (&Method::GET, Some(sid)) => {
            sio.metrics.request(RequestKind::Poll);
            forward(sio, &sid, Request::Poll).await
        }
        (&Method::POST, Some(sid)) => {
            sio.metrics.request(RequestKind::Post);
            match read_body(payload, sio.config.max_payload).await {
                Ok(body) => forward(sio, &sid, Request::Post(body)).await,
                Err(BodyError::TooLarge) => {
                    // The session ends too, as the Engine.IO server's does.
                    let _ = forward(sio, &sid, Request::TooLarge).await;
                    HttpResponse::PayloadTooLarge().finish()
                }
                Err(BodyError::Read) => error(EngineError::BadRequest),
            }
        }
        _ => error(EngineError::BadRequest),
    }
}

/// A new polling session on this node: its task starts, the answer is the open packet.
fn handshake(req: &HttpRequest, sio: &SocketIo) -> HttpResponse {
    sio.metrics.request(RequestKind::Handshake);
    let (sid, session, inbox) = sio.open();
    let open = herald_socketio::EioPacket::Open(sio.handshake(sid, true));
    let connection = Connection::polling(
        inbox,
        sio.config.recovery,
        sio.config.max_payload,
        sio.node.client_config().max_queue_bytes,
        sio.metrics.clone(),
    );
    let span = access::connection_span(req.headers(), "socketio");
    access::spawn_connection(span, connection.run(session));
    text(200, Bytes::from(open.to_text()))
}

/// Hands a polling request to its session, here or on its node, and answers what it answers.
async fn forward(sio: &SocketIo, sid: &str, request: Request) -> HttpResponse {
    let Some((node, session)) = sid::split(sid) else {
        return error(EngineError::UnknownSid);
    };
    if node != sio.node.uid() {
        sio.metrics.request(RequestKind::Forwarded);
    }
    let wait = match request {
        Request::Poll => sio.poll_wait(),
        _ => sio.node.client_config().pong_timeout,
    };
    match sio.node.ask(&node, &session, request.encode(), wait).await {
        Ok(answer) => match Answer::decode(answer) {
            Some(answer) => text(answer.status, answer.body),
            None => error(EngineError::BadRequest),
        },
        Err(
            EmulationError::NoSuchSession
            | EmulationError::NoSuchNode(_)
            | EmulationError::Malformed(_),
        ) => error(EngineError::UnknownSid),
        Err(EmulationError::Busy | EmulationError::NoAnswer) => error(EngineError::BadRequest),
        Err(e @ EmulationError::Broker(_)) => {
            tracing::warn!(error = %e, "socket.io request not forwarded");
            HttpResponse::ServiceUnavailable().body("broker unavailable\n")
        }
    }
}

/// The actix-ws engine's WebSocket handshake on `/socket.io/`.
async fn websocket(
    req: &HttpRequest,
    payload: web::Payload,
    sio: &SocketIo,
    sid: Option<&str>,
) -> HttpResponse {
    let (response, ws, stream) = match actix_ws::handle(req, payload) {
        Ok(handshake) => handshake,
        Err(e) => return HttpResponse::from_error(e),
    };
    let socket = WsSocket::ActixWs(ActixWsIo::json(ws, stream, sio.config.max_payload));
    let span = access::connection_span(req.headers(), "socketio");
    sio.attach(sid, socket, span).await;
    response
}

enum BodyError {
    TooLarge,
    Read,
}

/// The body, refused past `limit` bytes (from its Content-Length before reading when it has one).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn text(status: u16, body: Bytes) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if status.is_success() {
        "text/plain; charset=UTF-8"
    } else {
        "application/json"
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn error(e: EngineError) -> HttpResponse {
    let answer = Answer::error(e);
    text(answer.status, answer.body)
}
