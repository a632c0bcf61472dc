//! `POST /emulation`: a command of an emulated connection (HTTP streaming, SSE), posted to any
//! node and handed to the session it names on the node it names. The body is an
//! `EmulationRequest`: JSON `{"node", "session", "data"}` with the commands as a string, or
//! Protobuf with `Content-Type: application/octet-stream`. Replies go down the connection's
//! stream; this request only says whether the command was handed on:
//!
//! - 204: handed on (or the session has ended: its stream has told the client);
//! - 400: not an emulation request, or node and session ids of a form no node hands out;
//! - 413: commands over `client.max_message_size` (a body that cannot hold less is refused from
//!   its `Content-Length`, before it is read, see [`body_limit`]);
//! - 404: no live node has that id (the client reconnects);
//! - 429: too many requests waiting for that connection;
//! - 503: the broker that carries requests between nodes is unavailable.

use actix_web::{HttpRequest, HttpResponse, web};
use herald_engine::{EmulationError, EmulationRequest, Node};
use herald_protocol::Format;
use herald_protocol::emulation::decode_request;

use super::TransportConfig;
use super::cors;
use super::emulated::is_protobuf;

/// The largest body `/emulation` reads: commands of `client.max_message_size` escaped in a JSON
/// string (at most twice as long: only `"` and `\` are escaped inside JSON text), and the
/// request around them.
pub fn body_limit(max_message_size: usize) -> usize {
    max_message_size.saturating_mul(2).saturating_add(1024)
}

pub async fn handler(
    req: HttpRequest,
    body: web::Bytes,
    node: web::Data<Node>,
    config: web::Data<TransportConfig>,
) -> HttpResponse {
    let origin = match cors::check(&req, &config.origins) {
        Ok(origin) => origin,
        Err(refused) => return refused.response(),
    };
    let mut response = match decode(&req, &body, config.max_message_size) {
        Ok(request) => match node.emulate(request).await {
            Ok(()) => HttpResponse::NoContent(),
            // emulate() says neither: a session that ended is not an error there.
            Err(EmulationError::NoSuchNode(_) | EmulationError::NoSuchSession) => {
                HttpResponse::NotFound()
            }
            Err(EmulationError::NoAnswer) => HttpResponse::ServiceUnavailable(),
            Err(EmulationError::Malformed(_)) => HttpResponse::BadRequest(),
            Err(EmulationError::Busy) => HttpResponse::TooManyRequests(),
            Err(e @ EmulationError::Broker(_)) => {
                tracing::warn!(error = %e, "emulation request not routed");
                HttpResponse::ServiceUnavailable()
            }
        },
        Err(rejected) => rejected,
    };
    cors::allow(&mut response, origin);
    response.finish()
}

fn decode(
    req: &HttpRequest,
    body: &[u8],
    max_message_size: usize,
) -> Result<EmulationRequest, actix_web::HttpResponseBuilder> {
    let format = if is_protobuf(req) {
        Format::Protobuf
    } else {
        Format::Json
    };
    let request = decode_request(format, body).map_err(|_| HttpResponse::BadRequest())?;
    if request.node.is_empty() || request.session.is_empty() || request.data.is_empty() {
        return Err(HttpResponse::BadRequest());
    }
    if request.data.len() > max_message_size {
        return Err(HttpResponse::PayloadTooLarge());
    }
    Ok(request)
}
