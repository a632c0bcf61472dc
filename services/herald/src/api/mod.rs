//! The server API: `POST /api/<method>` with Centrifugo's request and reply shapes, the legacy
//! `POST /api` newline-delimited form (cent.js `pipeline()`), and the API key check.

pub mod error;
mod methods;
pub mod types;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use herald_engine::Node;
use herald_engine::trace::Parent;
use serde::Deserialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use error::{ApiErrorBody, http_status};
pub use methods::CallError;

/// The header that switches errors to HTTP statuses (Centrifugo ≥ 5.1).
const ERROR_MODE_HEADER: &str = "x-centrifugo-error-mode";

pub struct ApiState {
    pub node: Node,
    pub key: String,
    pub telemetry: web::Data<crate::metrics::Telemetry>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
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

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
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
    if !authorized(&req, &state.key) {
        return HttpResponse::Unauthorized().finish();
    }
    let method = method.into_inner();
    state.telemetry.api_request(&method);
    let mut span = state
        .node
        .tracer()
        .and_then(|tracer| api_span(tracer, &req, &method));
    // Without a span of its own (tracing off, or this trace not sampled) an API call records
    // nothing below it either.
    let trace = match (state.node.tracer(), &span) {
        (None, _) => Parent::None,
        (Some(_), Some(span)) => Parent::Span(span.traceparent()),
        (Some(_), None) => Parent::Unsampled,
    };
    let outcome = if method == "batch" {
        methods::batch(&state.node, &body, &trace).await
    } else {
        methods::call(&state.node, &method, &body, &trace).await
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
        Err(CallError::Parse(msg)) => HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(format!("bad request: {msg}\n")),
        Err(CallError::UnknownMethod) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("unknown API method {method:?}\n")),
        Err(CallError::Api(e)) => error_response(&req, e),
    }
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
    if !authorized(&req, &state.key) {
        return HttpResponse::Unauthorized().finish();
    }
    let mut lines = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let command: LegacyCommand = match serde_json::from_slice(line) {
            Ok(c) => c,
            Err(e) => {
                return HttpResponse::build(StatusCode::BAD_REQUEST)
                    .body(format!("bad request: {e}\n"));
            }
        };
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
    HttpResponse::Ok()
        .content_type("application/json")
        .body(lines.join("\n"))
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
