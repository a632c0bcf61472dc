//! `GET /api/openapi.json`: docs/openapi.yaml, converted to JSON by build.rs. Served without
//! the API key: it describes the API, it does not use it, and it is only reachable where the
//! API is (the internal listener when there is one).

use actix_web::HttpResponse;
use actix_web::http::header;

/// The OpenAPI document of the server API, as JSON.
pub const SPEC_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

pub async fn handler() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(SPEC_JSON)
}
