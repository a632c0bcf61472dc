//! The banner a node prints in dev mode: the generated secrets, a ready-made client token and a
//! curl line that publishes, so a first run needs no reading.

use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};

use crate::config::{Config, DevMode};

/// Lifetime of the token printed in dev mode.
const DEV_TOKEN_TTL_SECS: u64 = 24 * 3600;

pub fn banner(config: &Config, dev: &DevMode) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let token = TokenSigner::hmac(dev.hmac_secret.as_bytes(), HmacAlg::HS256)
        .sign(&NewConnectToken {
            sub: "dev-user".into(),
            exp: Some(now + DEV_TOKEN_TTL_SECS),
            ..Default::default()
        })
        .unwrap_or_else(|e| format!("<cannot sign: {e}>"));
    let addr = config.server.listen;
    let mut fallbacks = Vec::new();
    if config.server.http_stream {
        fallbacks.push(format!("http://{addr}/connection/http_stream"));
    }
    if config.server.sse {
        fallbacks.push(format!("http://{addr}/connection/sse"));
    }
    let fallbacks = if fallbacks.is_empty() {
        "off".to_owned()
    } else {
        format!(
            "{} (commands: http://{addr}/emulation)",
            fallbacks.join(", ")
        )
    };
    let mut uni = Vec::new();
    if config.server.uni_websocket {
        uni.push(format!("ws://{addr}/connection/uni_websocket"));
    }
    if config.server.uni_sse {
        uni.push(format!("http://{addr}/connection/uni_sse"));
    }
    if config.server.uni_http_stream {
        uni.push(format!("http://{addr}/connection/uni_http_stream"));
    }
    let uni = if uni.is_empty() {
        "off".to_owned()
    } else {
        uni.join(", ")
    };
    let lines = [
        String::new(),
        "==================== DEV MODE: NOT FOR PRODUCTION ====================".into(),
        "No token key and no API key are configured, so this node generated them and lets any"
            .into(),
        "client subscribe and publish to any channel. Configure [auth] and [api] (see README)."
            .into(),
        String::new(),
        format!("  HMAC secret : {}", dev.hmac_secret),
        format!("  API key     : {}", dev.api_key),
        format!("  WebSocket   : ws://{addr}/connection/websocket"),
        format!("  Fallbacks   : {fallbacks}"),
        format!("  Uni         : {uni}"),
        format!(
            "  Socket.IO   : {}",
            if config.socketio.enabled {
                format!(
                    "http://{addr}/socket.io/ (socket.io-client: io(\"http://{addr}\", {{ auth: {{ token }} }}))"
                )
            } else {
                "off (socketio.enabled)".to_owned()
            }
        ),
        format!(
            "  Admin page  : {}",
            if config.admin.enabled {
                // The page is on the operator listener.
                format!("http://{}/", config.server.internal_listen.unwrap_or(addr))
            } else {
                "off (admin.enabled)".to_owned()
            }
        ),
        "  Client token (user \"dev-user\", valid 24h):".into(),
        format!("    {token}"),
        String::new(),
        "  Publish:".into(),
        format!(
            "    curl -s -X POST http://{addr}/api/publish -H 'X-API-Key: {}' \\",
            dev.api_key
        ),
        r#"      -d '{"channel":"news","data":{"text":"hello"}}'"#.into(),
        "=======================================================================".into(),
    ];
    lines.join("\n")
}
