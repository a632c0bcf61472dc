//! The lean WebSocket engine (`server.websocket_engine = "lean"`, the default): actix-http's
//! upgrade hook hands every request with `Upgrade: websocket` to [`upgrade`], which owns the
//! connection from there. It routes by path itself (only `/connection/websocket`; anything
//! else gets a plain 404), checks the Origin (403) and the node's shutdown (503), answers the
//! handshake with the subprotocol it agrees to, and then runs the connection's driver in a
//! task of its own over the bare socket (`LeanConnection`). The HTTP/1 dispatcher, its two
//! buffers and its task are gone by then.
//!
//! Because these tasks are not actix-server's connections, the node counts them
//! (`OpenConnections`) and waits for them when it shuts down.

use std::sync::Arc;

use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::header::{self, HeaderValue};
use actix_http::{ConnectionType, Request, Response, StatusCode, h1, ws};
use bytes::Bytes;
use futures_util::SinkExt as _;
use herald_engine::Node;

use super::connection::LeanConnection;
use super::open_connections::OpenConnections;
use super::{PATH, UNI_PATH, choose_subprotocol, format_for};
use crate::access;
use crate::transport::TransportConfig;
use crate::transport::driver;
use crate::transport::socket::Socket;

/// What the upgrade service needs, shared by every worker.
pub struct LeanEngine {
    pub node: Node,
    pub config: TransportConfig,
    pub connections: Arc<OpenConnections>,
    /// Whether `/connection/uni_websocket` is served (`server.uni_websocket`).
    pub uni_websocket: bool,
    /// Socket.IO's WebSocket on `/socket.io/` (`[socketio] enabled`).
    pub socketio: Option<Arc<crate::socketio::SocketIo>>,
}

/// Takes over one upgrade request and its connection. Errors are answered on the connection
/// itself, which then closes; nothing is returned to actix but the end of the connection.
pub async fn upgrade(
    engine: Arc<LeanEngine>,
    req: Request,
    mut framed: Framed<Socket, h1::Codec>,
) -> Result<(), actix_http::Error> {
    let head = req.head();
    let uni = engine.uni_websocket && head.uri.path() == UNI_PATH;
    let socketio = engine
        .socketio
        .as_ref()
        .filter(|_| head.uri.path() == crate::socketio::PATH);
    if head.uri.path() != PATH && !uni && socketio.is_none() {
        return refuse(framed, status(StatusCode::NOT_FOUND), "not found\n").await;
    }
    let origin = head
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !engine.config.origins.allows(origin) {
        tracing::info!(
            origin,
            "websocket origin not allowed (see server.allowed_origins)"
        );
        let forbidden = status(StatusCode::FORBIDDEN);
        return refuse(framed, forbidden, "request Origin is not allowed\n").await;
    }
    if engine.node.is_shutting_down() {
        let unavailable = status(StatusCode::SERVICE_UNAVAILABLE);
        return refuse(framed, unavailable, "node is shutting down\n").await;
    }
    let sio_query = match socketio {
        Some(_) => {
            use crate::socketio::http::{check_query, parse_query};
            let query = parse_query(head.uri.query().unwrap_or(""));
            match query.as_ref().map(|q| check_query(q, true)) {
                Some(Ok(())) => query,
                _ => {
                    let bad = status(StatusCode::BAD_REQUEST);
                    return refuse(framed, bad, "bad socket.io request\n").await;
                }
            }
        }
        None => None,
    };
    let mut response = match ws::handshake(head) {
        Ok(response) => response,
        Err(e) => {
            let refused = Response::from(e).drop_body();
            return refuse(framed, refused, "").await;
        }
    };
    let offered = head
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    // A unidirectional client speaks bare JSON, whatever it offers; so does Socket.IO.
    let agreed = choose_subprotocol(offered).filter(|_| !uni && socketio.is_none());
    if let Some(protocol) = agreed {
        response.insert_header((
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        ));
    }
    let format = format_for(agreed, head.uri.query().unwrap_or(""));
    let switching = response.finish().drop_body();
    if let Err(e) = framed
        .send(h1::Message::Item((switching, BodySize::None)))
        .await
    {
        tracing::debug!(error = %e, "websocket handshake not written");
        return Ok(());
    }
    let parts = framed.into_parts();
    let max_message_size = match socketio {
        Some(sio) => sio.config.max_payload,
        None => engine.config.max_message_size,
    };
    let connection = LeanConnection::new(
        parts.io,
        parts.read_buf,
        format,
        max_message_size,
        engine.connections.enter(),
    );
    if let (Some(sio), Some(query)) = (socketio, sio_query) {
        let span = access::connection_span(&head.headers, "socketio");
        let socket = crate::socketio::WsSocket::Lean(connection);
        sio.attach(query.sid(), socket, span).await;
        return Ok(());
    }
    let (session, name) = if uni {
        (engine.node.uni_session(), "uni_websocket")
    } else {
        (engine.node.session(format), "websocket")
    };
    let span = access::connection_span(&head.headers, name);
    access::spawn_connection(span, driver::run(session, connection));
    Ok(())
}

/// `/connection/websocket` without `Upgrade: websocket` (the upgrade service takes every
/// request with it): what is missing for a WebSocket handshake.
pub async fn not_an_upgrade(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    let refused = match ws::verify_handshake(req.head()) {
        Err(e) => Response::from(e),
        Ok(()) => Response::bad_request(),
    };
    actix_web::HttpResponse::from(refused)
}

fn status(status: StatusCode) -> Response<()> {
    Response::with_body(status, ())
}

/// Answers `response` with a plain-text `body` and ends the connection.
async fn refuse(
    mut framed: Framed<Socket, h1::Codec>,
    mut response: Response<()>,
    body: &'static str,
) -> Result<(), actix_http::Error> {
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    if !body.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    let sent = async {
        let length = BodySize::Sized(body.len() as u64);
        framed.feed(h1::Message::Item((response, length))).await?;
        if !body.is_empty() {
            let chunk = Bytes::from_static(body.as_bytes());
            framed.feed(h1::Message::Chunk(Some(chunk))).await?;
        }
        framed.feed(h1::Message::Chunk(None)).await?;
        // actix-codec's close only flushes the socket, not what the codec buffered.
        framed.flush().await?;
        framed.close().await
    };
    if let Err(e) = sent.await {
        tracing::debug!(error = %e, "refusal of a websocket upgrade not written");
    }
    Ok(())
}
