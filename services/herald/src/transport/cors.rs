//! Cross-origin access to the HTTP transports. Browsers reach `/connection/http_stream`,
//! `/connection/sse` and `/emulation` with fetch and EventSource, which a page on another
//! origin may only read when the response names its origin. Allowed origins are the
//! WebSocket's (`server.allowed_origins`); requests without an Origin header always pass.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use super::origin::OriginPolicy;

/// How long a browser may cache a preflight answer, seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// A request from a browser page whose origin is not allowed.
#[derive(Debug)]
pub struct Refused;

impl Refused {
    pub fn response(self) -> HttpResponse {
        HttpResponse::Forbidden().body("request Origin is not allowed\n")
    }
}

/// The request's Origin, if it has one the policy allows.
pub fn check<'r>(
    req: &'r HttpRequest,
    origins: &OriginPolicy,
) -> Result<Option<&'r HeaderValue>, Refused> {
    let origin = req.headers().get(header::ORIGIN);
    if origins.allows(origin.and_then(|v| v.to_str().ok())) {
        Ok(origin)
    } else {
        tracing::info!(
            origin = ?origin,
            path = req.path(),
            "origin not allowed (see server.allowed_origins)"
        );
        Err(Refused)
    }
}

/// Lets the page of `origin` read the response (with its cookies).
pub fn allow(response: &mut HttpResponseBuilder, origin: Option<&HeaderValue>) {
    if let Some(origin) = origin {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
            .insert_header((header::VARY, "Origin"));
    }
}

/// The answer to a browser's preflight `OPTIONS` request.
pub fn preflight(req: &HttpRequest, origins: &OriginPolicy, methods: &'static str) -> HttpResponse {
    let origin = match check(req, origins) {
        Ok(origin) => origin,
        Err(refused) => return refused.response(),
    };
    let mut response = HttpResponse::NoContent();
    allow(&mut response, origin);
    response
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE));
    if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        response.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
    }
    response.finish()
}
