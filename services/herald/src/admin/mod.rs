//! The admin page at `/` (`[admin]`), on the operator listener: the node list and counts of
//! `/api/info`, a channel to watch with centrifuge-js, a publish box and a message log.
//!
//! The browser never holds the server API key: the page calls its own `/admin/...` endpoints,
//! which take a login session (an HttpOnly, SameSite=Strict cookie signed with a key derived
//! from `admin.password`; no login in dev mode, which listens on loopback only). Its
//! centrifuge-js client connects through the HTTP-streaming fallback at
//! `/admin/connection/http_stream` (commands to `/admin/emulation`): ordinary requests on the
//! page's own origin and listener, so neither `server.allowed_origins` nor the public port is
//! involved. Tokens for that client are minted here, which needs an HMAC token key.

mod assets;
pub mod session;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use herald_engine::Node;
use herald_engine::auth::{HmacAlg, NewConnectToken, NewSubscribeToken, TokenSigner};
use herald_engine::config::TokenKey;
use serde::Deserialize;
use serde_json::json;

use crate::api::{self, CallError};
use crate::config::Config;
use crate::transport::origin::OriginPolicy;
use crate::transport::{TransportConfig, emulated, emulation_endpoint};
use session::{COOKIE, SessionKeys};

/// The user id of the page's connections.
pub const ADMIN_USER: &str = "herald-admin";
/// Lifetime of the tokens minted for the page (centrifuge-js asks for new ones before).
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the admin endpoints need; built once per node.
pub struct AdminState {
    node: web::Data<Node>,
    /// `None`: no login (dev mode without `admin.password`).
    login: Option<SessionKeys>,
    session_ttl: Duration,
    /// `None` when the token key is not an HMAC secret: the page cannot subscribe then.
    signer: Option<TokenSigner>,
    /// For the page's fallback transport: its requests are same-origin, checked here.
    transport: web::Data<TransportConfig>,
}

impl AdminState {
    /// The admin state when `[admin]` enables the page, else `None`.
    pub fn new(config: &Config, node: &Node) -> Option<AdminState> {
        if !config.admin.enabled {
            return None;
        }
        let signer = match &config.token.key {
            TokenKey::Hmac(secret) => Some(TokenSigner::hmac(secret, HmacAlg::HS256)),
            _ => None,
        };
        Some(AdminState {
            node: web::Data::new(node.clone()),
            login: config.admin.password.as_deref().map(SessionKeys::new),
            session_ttl: config.admin.session_ttl,
            signer,
            transport: web::Data::new(TransportConfig {
                origins: OriginPolicy::new(&["*".to_owned()]),
                max_message_size: config.client.max_message_size,
            }),
        })
    }
}

/// The page and its endpoints. A method a route does not take gets 404, like any unknown path.
pub fn configure(app: &mut web::ServiceConfig, state: web::Data<AdminState>) {
    app.app_data(state)
        .route("/", web::get().to(assets::index))
        // The page has no icon: an empty answer instead of a 404 in the browser's console.
        .route(
            "/favicon.ico",
            web::get().to(|| async { HttpResponse::NoContent().finish() }),
        )
        .route("/admin/admin.js", web::get().to(assets::admin_js))
        .route("/admin/admin.css", web::get().to(assets::admin_css))
        .route("/admin/centrifuge.js", web::get().to(assets::centrifuge_js))
        .route("/admin/login", web::post().to(login))
        .route("/admin/logout", web::post().to(logout))
        .route("/admin/api/info", web::get().to(info))
        .route("/admin/api/publish", web::post().to(publish))
        .route(
            "/admin/api/connection_token",
            web::post().to(connection_token),
        )
        .route(
            "/admin/api/subscription_token",
            web::post().to(subscription_token),
        )
        .route("/admin/connection/http_stream", web::post().to(http_stream))
        .route("/admin/emulation", web::post().to(emulation));
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": message }))
}

/// A request from another site is refused even with the cookie (SameSite=Strict keeps it from
/// being sent there; this covers browsers that do not). The Origin's host must be the Host.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// Why an admin endpoint refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// 403: the request's Origin is not the page's.
    CrossOrigin,
    /// 401: no valid session cookie.
    LoginRequired,
    /// 409: the token key is a public key or a JWKS, which cannot sign.
    CannotSign,
}

impl Refused {
    fn response(self) -> HttpResponse {
        match self {
            Refused::CrossOrigin => error(StatusCode::FORBIDDEN, "cross-origin request refused"),
            Refused::LoginRequired => error(StatusCode::UNAUTHORIZED, "login required"),
            Refused::CannotSign => error(
                StatusCode::CONFLICT,
                "subscribing is unavailable: the node verifies tokens with a public key or a JWKS, so it cannot sign tokens for this page (it can with auth.hmac_secret)",
            ),
        }
    }
}

/// Same origin, and logged in when a login is needed.
fn authorize(req: &HttpRequest, state: &AdminState) -> Result<(), Refused> {
    if !same_origin(req) {
        return Err(Refused::CrossOrigin);
    }
    let Some(keys) = &state.login else {
        return Ok(());
    };
    let now = SystemTime::now();
    if session_cookies(req).any(|value| keys.verify(value, now)) {
        Ok(())
    } else {
        Err(Refused::LoginRequired)
    }
}

/// The values of the session cookie in the request's `Cookie` headers.
fn session_cookies(req: &HttpRequest) -> impl Iterator<Item = &str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[derive(Deserialize)]
struct LoginRequest {
    password: String,
}

/// `POST /admin/login` `{"password": …}`: 204 with the session cookie, 401 for a wrong
/// password, 400 for a body that is not that JSON.
async fn login(req: HttpRequest, body: web::Bytes, state: web::Data<AdminState>) -> HttpResponse {
    if !same_origin(&req) {
        return Refused::CrossOrigin.response();
    }
    let Some(keys) = &state.login else {
        return HttpResponse::NoContent().finish();
    };
    let request: LoginRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"password\": \"...\"}",
            );
        }
    };
    if !keys.password_matches(&request.password) {
        tracing::warn!(peer = ?req.peer_addr(), "admin login refused: wrong password");
        return error(StatusCode::UNAUTHORIZED, "wrong password");
    }
    let value = keys.issue(SystemTime::now(), state.session_ttl);
    HttpResponse::NoContent()
        .insert_header((
            header::SET_COOKIE,
            cookie(&req, &value, state.session_ttl.as_secs()),
        ))
        .finish()
}

/// `POST /admin/logout`: clears the cookie.
async fn logout(req: HttpRequest) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, cookie(&req, "", 0)))
        .finish()
}

/// The session cookie: unreadable by scripts, never sent by another site's page, `Secure`
/// when the page came over HTTPS (directly or through a proxy that says so).
fn cookie(req: &HttpRequest, value: &str, max_age: u64) -> String {
    let https = req.connection_info().scheme() == "https";
    format!(
        "{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if https { "; Secure" } else { "" }
    )
}

/// `GET /admin/api/info`: what `/api/info` answers, the name of the node serving the page, and
/// whether the page can subscribe (an HMAC token key).
async fn info(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(refused) = authorize(&req, &state) {
        return refused.response();
    }
    match api::call_node_method(&state.node, "info", b"{}").await {
        Ok(info) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
                "info": info,
                "node_uid": state.node.uid(),
                "can_subscribe": state.signer.is_some(),
                "login": state.login.is_some(),
            })),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "info failed"),
    }
}

/// `POST /admin/api/publish`: the body of the server API's `publish`; its reply is
/// `{"result": …}`, or `{"error": {code, message}}` with 400.
async fn publish(req: HttpRequest, body: web::Bytes, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(refused) = authorize(&req, &state) {
        return refused.response();
    }
    match api::call_node_method(&state.node, "publish", &body).await {
        Ok(result) => HttpResponse::Ok().json(json!({ "result": result })),
        Err(CallError::Api(e)) => HttpResponse::BadRequest().json(json!({ "error": e })),
        Err(CallError::Parse(msg)) => error(StatusCode::BAD_REQUEST, &msg),
        Err(CallError::UnknownMethod) => error(StatusCode::INTERNAL_SERVER_ERROR, "no publish"),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signer, when the token key can sign.
fn signer(state: &AdminState) -> Result<&TokenSigner, Refused> {
    state.signer.as_ref().ok_or(Refused::CannotSign)
}

fn signed(result: Result<String, herald_engine::auth::AuthError>) -> HttpResponse {
    match result {
        Ok(token) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "token": token })),
        Err(e) => {
            tracing::warn!(error = %e, "admin page: cannot sign a token");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot sign a token")
        }
    }
}

/// `POST /admin/api/connection_token`: `{"token"}` for user [`ADMIN_USER`], valid an hour.
async fn connection_token(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if let Err(refused) = authorize(&req, &state) {
        return refused.response();
    }
    let signer = match signer(&state) {
        Ok(s) => s,
        Err(refused) => return refused.response(),
    };
    signed(signer.sign(&NewConnectToken {
        sub: ADMIN_USER.into(),
        exp: Some(now_secs() + TOKEN_TTL.as_secs()),
        ..Default::default()
    }))
}

#[derive(Deserialize)]
struct SubscriptionTokenRequest {
    channel: String,
}

/// `POST /admin/api/subscription_token` `{"channel"}`: `{"token"}` that lets the page's
/// connection into that channel whatever its namespace allows.
async fn subscription_token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Err(refused) = authorize(&req, &state) {
        return refused.response();
    }
    let signer = match signer(&state) {
        Ok(s) => s,
        Err(refused) => return refused.response(),
    };
    let channel = match serde_json::from_slice::<SubscriptionTokenRequest>(&body) {
        Ok(r) if !r.channel.is_empty() => r.channel,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"channel\": \"...\"} with a channel name",
            );
        }
    };
    signed(signer.sign(&NewSubscribeToken {
        sub: ADMIN_USER.into(),
        channel,
        exp: Some(now_secs() + TOKEN_TTL.as_secs()),
        info: None,
    }))
}

/// The page's centrifuge-js connection (HTTP streaming), behind the login.
async fn http_stream(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Err(refused) = authorize(&req, &state) {
        return refused.response();
    }
    emulated::http_stream(req, body, state.node.clone(), state.transport.clone()).await
}

/// The commands of that connection, behind the login.
async fn emulation(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Err(refused) = authorize(&req, &state) {
        return refused.response();
    }
    emulation_endpoint::handler(req, body, state.node.clone(), state.transport.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_pages_own_origin_passes() {
        let req = |origin: Option<&str>| {
            let mut r = TestRequest::default().insert_header((header::HOST, "127.0.0.1:9000"));
            if let Some(o) = origin {
                r = r.insert_header((header::ORIGIN, o));
            }
            r.to_http_request()
        };
        assert!(same_origin(&req(None)));
        assert!(same_origin(&req(Some("http://127.0.0.1:9000"))));
        assert!(same_origin(&req(Some("https://127.0.0.1:9000"))));
        assert!(!same_origin(&req(Some("http://127.0.0.1:9001"))));
        assert!(!same_origin(&req(Some("https://evil.example"))));
        assert!(!same_origin(&req(Some("null"))));
    }
}
