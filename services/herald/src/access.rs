//! The access log: request ids, and the span that puts one on every line a connection logs.
//!
//! A request id is the client's (or its proxy's) `X-Request-Id` when it is a sane token, else
//! a fresh one; API responses echo it. Lines go to the `herald::access` target at debug
//! ([`herald_engine::ACCESS_LOG`]): `HERALD_LOG=info,herald::access=debug`. A connection only
//! carries a span while that target is on, so with the access log off (the default) an idle
//! connection costs no byte more.

use std::future::Future;

use actix_web::http::header::HeaderMap;
use herald_engine::ACCESS_LOG;
use tracing::Instrument as _;

/// The header a request id travels in, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id taken from a client; a longer one is replaced.
const MAX_LEN: usize = 128;

/// The request's id: its `X-Request-Id` if that is 1 to 128 visible ASCII characters (what a
/// proxy or a load balancer puts there), else a new random one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_id)
}

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether access lines are logged at all.
pub fn enabled() -> bool {
    tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
}

/// The span of one client connection, when the access log is on: every line the connection
/// logs (connected, disconnected, refusals) carries its request id and transport.
pub fn connection_span(headers: &HeaderMap, transport: &'static str) -> Option<tracing::Span> {
    enabled().then(|| {
        tracing::debug_span!(target: ACCESS_LOG, "connection", request_id = %request_id(headers), transport)
    })
}

/// Spawns a connection's task, inside its span if it has one.
pub fn spawn_connection<F>(span: Option<tracing::Span>, task: F)
where
    F: Future<Output = ()> + 'static,
{
    match span {
        Some(span) => {
            actix_rt::spawn(task.instrument(span));
        }
        None => {
            actix_rt::spawn(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_str(id).unwrap(),
        );
        h
    }

    #[test]
    fn a_sane_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(&headers("abc-123_X")), "abc-123_X");
        for bad in ["", "has space", &"x".repeat(MAX_LEN + 1)] {
            let id = request_id(&headers(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        let fresh = request_id(&HeaderMap::new());
        assert_eq!(fresh.len(), 16);
        assert_ne!(fresh, request_id(&HeaderMap::new()));
    }
}
