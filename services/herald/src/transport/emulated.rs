//! The two emulated bidirectional transports of centrifuge-js, for clients that cannot keep a
//! WebSocket: `/connection/http_stream` (a POST whose body is the connect command and whose
//! response streams the replies) and `/connection/sse` (the same over Server-Sent Events, the
//! connect command in the `cf_connect` query parameter or a POST body; JSON only). Later
//! commands arrive through `/emulation` (see `emulation_endpoint`).
//!
//! Also their unidirectional counterparts, for clients with no SDK (`curl`, `EventSource`):
//! `/connection/uni_http_stream` and `/connection/uni_sse` take one bare connect request and
//! then only push (see `herald_engine::Mode::Unidirectional`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use herald_engine::Node;
use herald_protocol::Format;
use serde::Deserialize;

use tracing::Instrument as _;

use super::TransportConfig;
use super::cors;
use super::stream::{self, Framing};
use crate::access;

/// `POST /connection/http_stream`.
pub async fn http_stream(
    req: HttpRequest,
    body: web::Bytes,
    node: web::Data<Node>,
    config: web::Data<TransportConfig>,
) -> HttpResponse {
    let format = if is_protobuf(&req) {
        Format::Protobuf
    } else {
        Format::Json
    };
    let content_type = match format {
        Format::Json => "application/json",
        Format::Protobuf => "application/octet-stream",
    };
    start(
        &req,
        &body,
        format,
        Framing::HttpStream,
        content_type,
        &node,
        &config,
    )
    .await
}

#[derive(Deserialize)]
pub struct SseQuery {
    cf_connect: Option<String>,
}

/// `GET /connection/sse?cf_connect=<connect command>` (what EventSource sends), or `POST` with
/// the command as the body.
pub async fn sse(
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<SseQuery>,
    node: web::Data<Node>,
    config: web::Data<TransportConfig>,
) -> HttpResponse {
    let connect = match (
        &query.cf_connect,
        req.method() == actix_web::http::Method::GET,
    ) {
        (Some(connect), true) => web::Bytes::copy_from_slice(connect.as_bytes()),
        (None, true) => {
            return HttpResponse::BadRequest().body("no connect command (cf_connect)\n");
        }
        (_, false) => body,
    };
    let content_type = "text/event-stream; charset=utf-8";
    start(
        &req,
        &connect,
        Format::Json,
        Framing::Sse,
        content_type,
        &node,
        &config,
    )
    .await
}

/// `POST /connection/uni_http_stream`: the body is a bare connect request; the response
/// streams bare JSON pushes, one a line.
pub async fn uni_http_stream(
    req: HttpRequest,
    body: web::Bytes,
    node: web::Data<Node>,
    config: web::Data<TransportConfig>,
) -> HttpResponse {
    let content_type = "application/json";
    let framing = Framing::UniHttpStream;
    start(
        &req,
        &body,
        Format::Json,
        framing,
        content_type,
        &node,
        &config,
    )
    .await
}

/// `GET /connection/uni_sse?cf_connect=<connect request>` (what EventSource sends), or `POST`
/// with the request as the body: bare JSON pushes as `data:` events.
pub async fn uni_sse(
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<SseQuery>,
    node: web::Data<Node>,
    config: web::Data<TransportConfig>,
) -> HttpResponse {
    let connect = match (
        &query.cf_connect,
        req.method() == actix_web::http::Method::GET,
    ) {
        (Some(connect), true) => web::Bytes::copy_from_slice(connect.as_bytes()),
        (None, true) => {
            return HttpResponse::BadRequest().body("no connect request (cf_connect)\n");
        }
        (_, false) => body,
    };
    let content_type = "text/event-stream; charset=utf-8";
    let framing = Framing::UniSse;
    start(
        &req,
        &connect,
        Format::Json,
        framing,
        content_type,
        &node,
        &config,
    )
    .await
}

async fn start(
    req: &HttpRequest,
    connect: &[u8],
    format: Format,
    framing: Framing,
    content_type: &'static str,
    node: &Node,
    config: &TransportConfig,
) -> HttpResponse {
    let origin = match cors::check(req, &config.origins) {
        Ok(origin) => origin,
        Err(refused) => return refused.response(),
    };
    if node.is_shutting_down() {
        return HttpResponse::ServiceUnavailable().body("node is shutting down\n");
    }
    if connect.is_empty() {
        return HttpResponse::BadRequest().body("no connect command\n");
    }
    if connect.len() > config.max_message_size {
        return HttpResponse::PayloadTooLarge().body(format!(
            "connect command over client.max_message_size ({} bytes)\n",
            config.max_message_size
        ));
    }
    let (mut session, inbox) = match framing {
        Framing::UniHttpStream | Framing::UniSse => (node.uni_session(), None),
        Framing::HttpStream | Framing::Sse => {
            let (session, inbox) = node.emulated_session(format);
            (session, Some(inbox))
        }
    };
    let span = access::connection_span(req.headers(), framing.name());
    let connected = match &span {
        Some(span) => session.handle_frame(connect).instrument(span.clone()).await,
        None => session.handle_frame(connect).await,
    };
    let mut response = HttpResponse::Ok();
    cors::allow(&mut response, origin);
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CACHE_CONTROL,
            "private, no-cache, no-store, must-revalidate, max-age=0",
        ))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::EXPIRES, "0"))
        // nginx would otherwise hold the stream back in its buffer.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream::body(session, inbox, framing, connected, span))
}

pub(super) fn is_protobuf(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/octet-stream"))
}
