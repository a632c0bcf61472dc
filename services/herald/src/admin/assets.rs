//! The page's files, embedded in the binary: no build step, nothing fetched from elsewhere.

use actix_web::HttpResponse;
use actix_web::http::header;

const INDEX_HTML: &str = include_str!("../../assets/admin/index.html");
const ADMIN_JS: &str = include_str!("../../assets/admin/admin.js");
const ADMIN_CSS: &str = include_str!("../../assets/admin/admin.css");
/// The browser build of the `centrifuge` npm package, at the version the SDK tests pin
/// (services/herald/tests/sdk/js/package-lock.json), with its licence prepended.
pub const CENTRIFUGE_JS: &str = include_str!("../../assets/centrifuge.js");

/// Scripts and styles from this origin only, requests to this origin only, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &str, cache: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

pub async fn index() -> HttpResponse {
    let mut response = asset("text/html; charset=utf-8", "no-store", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

// The page's own script and style change with the binary: revalidated on every load.
pub async fn admin_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", "no-cache", ADMIN_JS)
}

pub async fn admin_css() -> HttpResponse {
    asset("text/css; charset=utf-8", "no-cache", ADMIN_CSS)
}

/// A day: the SDK changes only with a new pinned version.
pub async fn centrifuge_js() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        "public, max-age=86400",
        CENTRIFUGE_JS,
    )
}
