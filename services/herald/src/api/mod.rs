//! The server API: `POST /api/<method>` with Centrifugo's request and reply shapes, the legacy
//! `POST /api` newline-delimited form (cent.js `pipeline()`), the API key check, and the API's
//! OpenAPI document (docs/openapi.yaml) at `GET /api/openapi.json`.

pub mod error;
mod methods;
pub mod openapi;
pub mod types;

use std::time::Instant;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use herald_engine::Node;
use herald_engine::trace::Parent;
use serde::Deserialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use error::{ApiErrorBody, http_status};
pub use methods::{CallError, METHODS};

use crate::access;

/// The header that switches errors to HTTP statuses (Centrifugo ≥ 5.1).
const ERROR_MODE_HEADER: &str = "x-centrifugo-error-mode";

pub struct ApiState {
    pub node: Node,
    pub key: String,
    pub telemetry: web::Data<crate::metrics::Telemetry>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before `/api/{method}`, which would otherwise take the path.
    cfg.service(
        web::resource("/api/openapi.json")
            .route(web::get().to(openapi::handler))
            .route(web::head().to(openapi::handler))
            .route(web::route().to(method_not_allowed_get)),
    )
    .service(
        web::resource("/api")
            .route(web::post().to(legacy))
            .route(web::route().to(method_not_allowed)),
    )
    .service(
        web::resource("/api/{method}")
            .route(web::post().to(call))
            .route(web::route().to(method_not_allowed)),
    );
}

/// One server API method without the HTTP around it, for the admin page's endpoints.
pub(crate) async fn call_node_method(
    node: &Node,
    method: &str,
    params: &[u8],
) -> Result<serde_json::Value, CallError> {
    methods::call(node, method, params, &Parent::None).await
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .finish()
}

async fn method_not_allowed_get() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET, HEAD"))
        .finish()
}

/// The key from `X-API-Key`, `Authorization: apikey <key>` or `?api_key=`, compared in
/// constant time so response timing does not reveal how much of a guess was right.
fn authorized(req: &HttpRequest, key: &str) -> bool {
    let headers = req.headers();
    let given = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, rest) = v.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("apikey").then_some(rest.trim())
                })
        })
        .map(str::to_string)
        .or_else(|| {
            web::Query::<ApiKeyQuery>::from_query(req.query_string())
                .ok()
                .and_then(|q| q.into_inner().api_key)
        });
    match given {
        Some(given) => !key.is_empty() && bool::from(given.as_bytes().ct_eq(key.as_bytes())),
        None => false,
    }
}

#[derive(Deserialize)]
struct ApiKeyQuery {
    api_key: Option<String>,
}

fn transport_error_mode(req: &HttpRequest) -> bool {
    req.headers()
        .get(ERROR_MODE_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"transport"))
}

async fn call(
    req: HttpRequest,
    method: web::Path<String>,
    body: web::Bytes,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let started = Instant::now();
    let method = method.into_inner();
    let response = call_method(&req, &method, &body, &state).await;
    finish(&req, &state, &method, started, response)
}

async fn call_method(
    req: &HttpRequest,
    method: &str,
    body: &[u8],
    state: &ApiState,
) -> HttpResponse {
    if !authorized(req, &state.key) {
        return HttpResponse::Unauthorized().finish();
    }
    state.telemetry.api_request(method);
    let mut span = state
        .node
        .tracer()
        .and_then(|tracer| api_span(tracer, req, method));
    // Without a span of its own (tracing off, or this trace not sampled) an API call records
    // nothing below it either.
    let trace = match (state.node.tracer(), &span) {
        (None, _) => Parent::None,
        (Some(_), Some(span)) => Parent::Span(span.traceparent()),
        (Some(_), None) => Parent::Unsampled,
    };
    let outcome = if method == "batch" {
        methods::batch(&state.node, body, &trace).await
    } else {
        methods::call(&state.node, method, body, &trace).await
    };
    if let (Some(span), Err(e)) = (&mut span, &outcome) {
        span.fail(&match e {
            CallError::Parse(msg) => format!("bad request: {msg}"),
            CallError::UnknownMethod => "unknown method".to_owned(),
            CallError::Api(e) => format!("error {}: {}", e.code, e.message),
        });
    }
    drop(span);
    match outcome {
        Ok(value) if method == "batch" => HttpResponse::Ok().json(value),
        Ok(value) => HttpResponse::Ok().json(Wrapped::Result(value)),
        Err(CallError::Parse(msg)) => bad_request_text(&msg),
        Err(CallError::UnknownMethod) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("unknown API method {method:?}\n")),
        Err(CallError::Api(e)) => error_response(req, e),
    }
}

/// What every API response gets: its request id, its time in the method's histogram, and an
/// access-log line. `method` is the path's; the metrics label only the ones that exist.
fn finish(
    req: &HttpRequest,
    state: &ApiState,
    method: &str,
    started: Instant,
    mut response: HttpResponse,
) -> HttpResponse {
    let elapsed = started.elapsed();
    state.telemetry.api_duration(method, elapsed);
    let request_id = access::request_id(req.headers());
    tracing::debug!(
        target: herald_engine::ACCESS_LOG,
        request_id = %request_id,
        method,
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        remote = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
        "api call"
    );
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(
            header::HeaderName::from_static(access::REQUEST_ID_HEADER),
            value,
        );
    }
    response
}

/// The server span of an API call, continuing the caller's trace when the request carries a
/// W3C `traceparent` header. Only known methods get one (a span name per method, bounded).
fn api_span(
    tracer: &dyn herald_engine::trace::Tracer,
    req: &HttpRequest,
    method: &str,
) -> Option<Box<dyn herald_engine::trace::Span>> {
    let name = methods::span_name(method)?;
    let parent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    tracer.start(herald_engine::trace::SpanStart {
        name,
        kind: herald_engine::trace::SpanKind::Server,
        parent,
        attributes: &[("rpc.system", "herald"), ("rpc.method", method)],
    })
}

fn error_response(req: &HttpRequest, e: ApiErrorBody) -> HttpResponse {
    if transport_error_mode(req) {
        HttpResponse::build(http_status(&e)).json(e)
    } else {
        HttpResponse::Ok().json(Wrapped::<()>::Error(e))
    }
}

#[derive(serde::Serialize)]
enum Wrapped<T> {
    #[serde(rename = "result")]
    Result(T),
    #[serde(rename = "error")]
    Error(ApiErrorBody),
}

#[derive(Deserialize)]
struct LegacyCommand<'a> {
    method: String,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// `POST /api` with newline-delimited `{"method":…,"params":…}` commands; one reply line each.
async fn legacy(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> HttpResponse {
    let started = Instant::now();
    let response = legacy_commands(&req, &body, &state).await;
    finish(&req, &state, LEGACY, started, response)
}

/// The method label of `POST /api` requests (each may carry several commands).
const LEGACY: &str = "legacy";

async fn legacy_commands(req: &HttpRequest, body: &[u8], state: &ApiState) -> HttpResponse {
    if !authorized(req, &state.key) {
        return HttpResponse::Unauthorized().finish();
    }
    let mut lines = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let command: LegacyCommand = match serde_json::from_slice(line) {
            Ok(c) => c,
            Err(e) => return bad_request_text(&e.to_string()),
        };
        state.telemetry.api_request(&command.method);
        let params = command.params.map(|p| p.get().as_bytes()).unwrap_or(b"{}");
        let reply = match methods::call(&state.node, &command.method, params, &Parent::None).await {
            Ok(v) => Wrapped::Result(v),
            Err(CallError::UnknownMethod) => {
                Wrapped::Error(herald_protocol::codes::METHOD_NOT_FOUND.into())
            }
            Err(CallError::Parse(_)) => Wrapped::Error(error::bad_request()),
            Err(CallError::Api(e)) => Wrapped::Error(e),
        };
        lines.push(serde_json::to_string(&reply).unwrap_or_default());
    }
    // An empty 200 would not be JSON; Centrifugo answers a body without commands with 400.
    if lines.is_empty() {
        return bad_request_text("no commands");
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(lines.join("\n"))
}

/// HTTP 400 for a body that is not what the endpoint takes, with the reason in plain text.
fn bad_request_text(reason: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::BAD_REQUEST)
        .content_type("text/plain; charset=utf-8")
        .body(format!("bad request: {reason}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn api_key_from_header_authorization_or_query() {
        let key = "s3cret";
        let ok = |r: HttpRequest| authorized(&r, key);
        assert!(ok(TestRequest::default()
            .insert_header(("X-API-Key", "s3cret"))
            .to_http_request()));
        assert!(ok(TestRequest::default()
            .insert_header(("Authorization", "apikey s3cret"))
            .to_http_request()));
        assert!(ok(TestRequest::default()
            .uri("/api/info?api_key=s3cret")
            .to_http_request()));
        assert!(!ok(TestRequest::default()
            .insert_header(("X-API-Key", "s3cre"))
            .to_http_request()));
        assert!(!ok(TestRequest::default()
            .insert_header(("Authorization", "Bearer s3cret"))
            .to_http_request()));
        assert!(!ok(TestRequest::default().to_http_request()));
        assert!(!authorized(
            &TestRequest::default()
                .insert_header(("X-API-Key", ""))
                .to_http_request(),
            ""
        ));
    }
}
