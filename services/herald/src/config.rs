//! Herald's configuration: layering (defaults < file < environment < flags), validation, and the
//! validated [`Config`] the node runs with.
//!
//! # Configuration reference
//!
//! The file is TOML, YAML or JSON (picked by the extension: `.toml`, `.yaml`/`.yml`, `.json`).
//! Every key can also be set in the environment as `HERALD_<SECTION>__<KEY>` (e.g.
//! `HERALD_AUTH__HMAC_SECRET`, `HERALD_SERVER__LISTEN`); lists are comma-separated there
//! (`HERALD_SERVER__ALLOWED_ORIGINS=https://a.example,https://b.example`) and booleans are
//! `true`/`false`. Unknown keys are errors. Every key with its type, default, environment
//! variable and checks: docs/configuration.md. `herald genconfig` writes the block below with
//! fresh secrets.
//!
//! ```toml
//! [server]
//! # Address to listen on (host:port). Use 0.0.0.0:8000 in a container.
//! listen = "127.0.0.1:8000"
//! # Browser Origin values allowed to connect ("*" = any; "https://*.example.com" = its
//! # subdomains; a `*` anywhere else is an error). Requests without an Origin header (servers,
//! # mobile apps, CLI tools) always pass. Empty: no browser origin is admitted.
//! allowed_origins = []
//! # Node name in logs and stats. Default: the host name, or "herald".
//! # name = "node-1"
//! # How long a graceful shutdown waits for connections to close.
//! shutdown_timeout = "10s"
//! # How often the node tells the other nodes it is alive; silent for 3 intervals = gone.
//! heartbeat_interval = "3s"
//! # Worker threads serving connections (each runs its connections' tasks). Default: one per
//! # CPU. Fewer when several nodes or other busy processes share the machine's cores.
//! # workers = 2
//! # Connections the kernel queues until the node accepts them: a reconnect storm (every client
//! # of a restarted node at once) overflows a short queue, and each overflowed client waits a
//! # SYN retransmission (1 s or more). Capped by the kernel's net.core.somaxconn.
//! backlog = 4096
//! # The fallbacks of clients that cannot keep a WebSocket (a proxy that strips Upgrade, a
//! # corporate network): centrifuge-js's `http_stream` and `sse` transports on
//! # /connection/http_stream and /connection/sse, their commands posted to /emulation.
//! http_stream = true
//! sse = true
//! # The unidirectional transports, for clients with no SDK (a browser's EventSource, curl):
//! # /connection/uni_websocket, /connection/uni_sse and /connection/uni_http_stream take one
//! # connect request, then only push.
//! uni_websocket = true
//! uni_sse = true
//! uni_http_stream = true
//! # What serves /connection/websocket: "lean" (Herald's own frame loop on actix-http's upgrade
//! # hook: ~4 KiB per idle connection) or "actix-ws" (an actix-web route with actix-ws).
//! websocket_engine = "lean"
//! # A second listener for what only the operator's side should reach: the server API (/api),
//! # /metrics and the detailed /ready. With it, the public listener carries the client
//! # endpoints, /health and a /ready that says only ready or not. Default: none (all on one).
//! # internal_listen = "0.0.0.0:9000"
//! # Log lines as "text" (for people; colour only on a terminal and without NO_COLOR) or
//! # "json" (one object per line, for log collectors; the container image's default). The
//! # level comes from HERALD_LOG (or RUST_LOG), e.g. "info" or "info,herald::access=debug" for
//! # the access log (a line per API call, connect and disconnect, with request ids).
//! log_format = "text"
//!
//! [auth]
//! # Exactly one token key: a shared secret for HS256/384/512 (at least 32 bytes recommended),
//! # a PEM public key for RS*/PS* (rsa_public_key) or ES256/ES384 (ecdsa_public_key), or the
//! # URL of a JWKS (jwks_url).
//! hmac_secret = "..."
//! # While rotating hmac_secret: the secret being retired; tokens signed with either verify.
//! # Only with hmac_secret; never printed.
//! # previous_hmac_secret = "..."
//! # rsa_public_key = """-----BEGIN PUBLIC KEY----- ..."""
//! # ecdsa_public_key = """-----BEGIN PUBLIC KEY----- ..."""
//! # http:// or https:// URL of a JSON Web Key Set: its RSA and EC signature keys verify tokens,
//! # picked by the token's `kid` (a token without one needs a one-key set). Fetched at start
//! # (a node starts even if the endpoint is down, refusing tokens until keys arrive), every
//! # jwks_refresh_interval, and for a `kid` not cached, at most once per 10 s; fetches time
//! # out after 5 s and a failed one keeps the cached keys. Plain http to a non-loopback host
//! # is a warning. Environment: HERALD_AUTH__JWKS_URL.
//! # jwks_url = "https://auth.example/.well-known/jwks.json"
//! # How often the JWKS is fetched again (at least 10s; a warning without jwks_url).
//! # jwks_refresh_interval = "5m"
//! # When set, the token's `aud` claim must contain this value / `iss` must equal this value.
//! # audience = "herald"
//! # issuer = "https://auth.example"
//!
//! [api]
//! # Key of the server HTTP API. Required together with a token key.
//! key = "..."
//!
//! [broker]
//! # "memory": a single node. "redis": nodes share publications through Redis PUB/SUB.
//! kind = "memory"
//! # The keys below are used by kind = "redis" only (a warning if redis_urls is set with memory).
//! # Each entry is one independent shard holding a share of the channels; port default 6379.
//! #   redis://[user:password@]host[:port][/db]       one server (rediss:// for TLS)
//! #   redis+cluster://[user:password@]h1:p1|h2:p2    one Redis Cluster by its seed nodes,
//! #                                                  separated by "|" (rediss+cluster:// for TLS);
//! #                                                  the first seed's user:password applies to all
//! # Environment: HERALD_BROKER__REDIS_URLS=redis://a:6379,redis+cluster://:pw@b:7000|c:7001
//! # redis_urls = ["redis://127.0.0.1:6379"]   # the default with kind = "redis"
//! prefix = "herald"             # of every Redis channel/key; ^[A-Za-z0-9_.:-]{1,64}$
//! connect_timeout = "1s"        # (0, 60s]
//! command_timeout = "1s"        # (0, 60s]; publish/subscribe fail after it
//! pubsub_connections = 2        # PUB/SUB connections per shard, 1..=64
//! pool_size = 32                # publishing connections per shard, 1..=1024
//! # PEM file of the CA(s) that sign the Redis servers' certificates, for rediss:// entries
//! # (default: the built-in webpki roots). Read at start; unreadable or not PEM = error; a
//! # warning if no entry uses rediss://. Server certificates and host names are always verified
//! # (a `#insecure` fragment, which would turn that off, is refused).
//! # Environment: HERALD_BROKER__TLS_CA_FILE=/etc/herald/redis-ca.pem
//! # tls_ca_file = "/etc/herald/redis-ca.pem"
//!
//! [channels]
//! # Options for channels without a namespace (all off by default):
//! allow_subscribe_for_client = false    # any client may subscribe without a subscription token
//! allow_publish_for_subscriber = false  # subscribers may publish
//! allow_publish_for_client = false      # any client may publish, subscribed or not
//! allow_user_limited_channels = false   # `news#42` / `dialog#42,43` for the listed users only
//! # History: both or neither. Publications get offsets in a
//! # stream with an epoch; the last history_size are kept history_ttl after the latest one.
//! history_size = 0
//! history_ttl = "0s"
//! force_recovery = false                # every subscription recovers missed publications
//! allow_recovery = false                # clients may ask for recovery (SDK `recoverable`)
//! force_positioning = false             # every subscription is positioned (gap → resubscribe)
//! allow_history_for_subscriber = false  # subscribers may read history (client `history`)
//! presence = false                      # who is subscribed, on every node
//! allow_presence_for_subscriber = false # subscribers may call presence / presence_stats
//! join_leave = false                    # join/leave pushes for subscribers that ask for them
//!                                       # (SDK `joinLeave`; needs allow_presence_for_subscriber)
//! force_push_join_leave = false         # ... to every subscriber (needs join_leave)
//! max_channel_length = 255              # bytes
//! max_channels_per_client = 128
//!
//! # Namespaces: none by default. Channel "chat:room1" is in namespace "chat"; a namespace
//! # takes the same options as [channels] above, all off by default. For example:
//! # [[channels.namespaces]]
//! # name = "chat"                       # ^[-a-zA-Z0-9_]{2,}$, unique
//! # allow_subscribe_for_client = true
//! # allow_publish_for_subscriber = true
//! # history_size = 100
//! # history_ttl = "300s"
//!
//! [client]
//! ping_interval = "25s"        # server pings; must exceed pong_timeout
//! pong_timeout = "8s"          # time to answer a ping before close 3012
//! connect_timeout = "10s"      # time to send connect before close 3502
//! max_queue_size = 1048576     # bytes waiting for one client (queued, or behind in a channel) before close 3008 (slow)
//! max_message_size = 65536     # largest inbound message, bytes
//! expired_close_delay = "25s"  # grace after the connection token expires before close 3005
//! presence_update_interval = "25s"  # how often a node refreshes its clients' presence
//! presence_ttl = "60s"         # a presence entry not refreshed for this long is gone (a node
//!                              # killed without a goodbye); must exceed the interval
//! write_delay = "0s"            # a connection writes at most once per this interval (batching
//!                               # under load; a message after a quiet period goes out at once)
//! write_timeout = "1s"          # a client socket that takes no bytes for this long is closed
//!                               # (3008): a client that stopped reading; (0, 60s]
//! channel_position_check_delay = "40s"  # how often a positioned subscription is compared with
//!                               # its stream, to catch a lost last publication ("0s": never)
//! expired_sub_close_delay = "25s"  # grace after a subscription token expires before the
//!                               # subscription ends with unsubscribe 2501 (SDKs resubscribe)
//! connection_limit = 0          # most clients on this node, 0 = none; past it: disconnect 3504
//! user_connection_limit = 0     # most connections of one user on this node, 0 = none; 3504
//! connection_rate_limit = 0     # most connects per second on this node, 0 = none; error 111
//! command_rate_limit = 100      # commands per second per connection (average), 0 = none;
//!                               # past it a command gets error 111 and is not run
//! command_rate_burst = 200      # commands a connection may send at once above the average
//!
//! [admin]
//! # The admin page at / on the operator listener (server.internal_listen when set, else
//! # server.listen): node list and counts, a channel to watch, a publish box, a message log
//! # (docs/admin.md). Default: on in dev mode, off otherwise.
//! # enabled = true
//! # The page's login password, at least 12 characters; required when the page is on outside
//! # dev mode (in dev mode, set: a login is asked there too). Never printed.
//! # Environment: HERALD_ADMIN__PASSWORD.
//! # password = "..."
//! # How long a login lasts (1m to 7d).
//! session_ttl = "12h"
//!
//! [telemetry]
//! # OpenTelemetry traces (docs/tracing.md). Off unless otlp_endpoint is set: the base URL of an
//! # OTLP/HTTP collector (protobuf bodies); spans are POSTed to <otlp_endpoint>/v1/traces (a URL
//! # that already ends in /v1/traces is used as it is). http:// or https:// only.
//! # Environment: HERALD_TELEMETRY__OTLP_ENDPOINT=http://otel-collector:4318
//! # otlp_endpoint = "http://otel-collector:4318"
//! service_name = "herald"        # service.name of the spans; not empty
//! sampling_ratio = 1.0           # share of new traces recorded, 0.0 to 1.0; parent-based: an API
//!                                # request with a W3C traceparent follows its caller's decision
//! export_timeout = "10s"         # how long one export may take; (0, 60s]
//!
//! [socketio]
//! # Socket.IO v4 clients (socket.io-client) on /socket.io/: polling, WebSocket, upgrade
//! # (docs/socketio.md).
//! enabled = true
//! max_payload = 1000000         # Engine.IO maxPayload: largest polling body or WebSocket
//!                               # message, in bytes (1 KiB to 64 MiB); past it: 413 / 1009
//! recovery = false              # connection state recovery: subscriptions and missed
//!                               # publications come back after a reconnect
//! ```
//!
//! # Dev mode
//!
//! Only when asked for (`herald --dev`, which is also what a bare `herald` and `cargo run
//! --release` run): a random HMAC secret and API key are generated ([`DevMode`]) and every client
//! may subscribe and publish to any channel (`channels.insecure`). Dev mode refuses keys of its
//! own, a non-loopback `server.listen` and the Redis broker. Without `--dev` the token key (one
//! of `auth.hmac_secret`, `auth.rsa_public_key`, `auth.ecdsa_public_key`, `auth.jwks_url`) and
//! `api.key` are required, and a node without them does not start.

#[cfg(test)]
mod docs;
pub mod generate;
pub mod keys;
mod raw;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_engine::auth::check_jwks_url;
use herald_engine::config::{
    ChannelConfig, ChannelOptions, ClientConfig, JwksConfig, Namespace, RedisConfig,
    RedisShardConfig, TokenConfig, TokenKey, redact_url,
};

use self::raw::{RawConfig, RawOptions};

/// Prefix of configuration environment variables: `HERALD_<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "HERALD";

/// HMAC secrets shorter than this get a warning.
const MIN_HMAC_SECRET_LEN: usize = 32;
/// Most publications one channel's history may keep.
const MAX_HISTORY_SIZE: i64 = 1_000_000;

/// Validates and converts the options of `[channels]` or of a namespace (`section` names it in
/// problems).
fn channel_options(section: &str, o: RawOptions<'_>, problems: &mut Vec<String>) -> ChannelOptions {
    let size_ok = (0..=MAX_HISTORY_SIZE).contains(&o.history_size);
    let history_size = if size_ok {
        o.history_size as usize
    } else {
        problems.push(format!(
            "{section}.history_size: {} is out of range (0 to {MAX_HISTORY_SIZE})",
            o.history_size
        ));
        0
    };
    let ttl = parse_duration(&format!("{section}.history_ttl"), o.history_ttl, problems);
    let history_ttl = ttl.unwrap_or_default();
    if size_ok && ttl.is_some() && (history_size > 0) == history_ttl.is_zero() {
        problems.push(format!(
            "{section}.history_size and {section}.history_ttl: history needs both (e.g. history_size = 100, history_ttl = \"300s\"), or neither"
        ));
    }
    let history = history_size > 0 && !history_ttl.is_zero();
    for (key, on) in [
        ("force_recovery", o.force_recovery),
        ("allow_recovery", o.allow_recovery),
        ("force_positioning", o.force_positioning),
        (
            "allow_history_for_subscriber",
            o.allow_history_for_subscriber,
        ),
    ] {
        if on && !history {
            problems.push(format!(
                "{section}.{key}: needs history (set history_size and history_ttl)"
            ));
        }
    }
    if o.allow_presence_for_subscriber && !o.presence {
        problems.push(format!(
            "{section}.allow_presence_for_subscriber: needs presence = true"
        ));
    }
    if o.force_push_join_leave && !o.join_leave {
        problems.push(format!(
            "{section}.force_push_join_leave: needs join_leave = true"
        ));
    }
    ChannelOptions {
        allow_subscribe_for_client: o.allow_subscribe_for_client,
        allow_publish_for_subscriber: o.allow_publish_for_subscriber,
        allow_publish_for_client: o.allow_publish_for_client,
        allow_user_limited_channels: o.allow_user_limited_channels,
        history_size,
        history_ttl,
        force_recovery: o.force_recovery,
        allow_recovery: o.allow_recovery,
        force_positioning: o.force_positioning,
        presence: o.presence,
        join_leave: o.join_leave,
        force_push_join_leave: o.force_push_join_leave,
        allow_history_for_subscriber: o.allow_history_for_subscriber,
        allow_presence_for_subscriber: o.allow_presence_for_subscriber,
    }
}

/// More worker threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 1024;

/// The validated configuration of a node.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// How tokens are verified. In dev mode: the generated HMAC secret.
    pub token: TokenConfig,
    pub api: ApiConfig,
    pub broker: BrokerConfig,
    pub channels: ChannelConfig,
    pub client: ClientConfig,
    pub admin: AdminConfig,
    pub telemetry: TelemetryConfig,
    pub socketio: SocketIoConfig,
    /// `Some` when running in dev mode (no keys configured): the generated secrets.
    pub dev: Option<DevMode>,
    /// Non-fatal findings (e.g. a short HMAC secret) the binary should log at start.
    pub warnings: Vec<String>,
}

/// `[socketio]`, validated: Socket.IO v4 clients on `/socket.io/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketIoConfig {
    pub enabled: bool,
    /// Engine.IO's `maxPayload`: the largest polling body and WebSocket message, in bytes.
    pub max_payload: usize,
    /// Connection state recovery (pid and offset token).
    pub recovery: bool,
}

impl SocketIoConfig {
    /// The range `socketio.max_payload` must be in.
    pub const MAX_PAYLOAD_RANGE: std::ops::RangeInclusive<usize> = 1024..=(64 << 20);
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            enabled: true,
            max_payload: 1_000_000,
            recovery: false,
        }
    }
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Where spans are POSTed (OTLP/HTTP, protobuf): the configured base URL with
    /// `/v1/traces`. `None`: tracing off.
    pub otlp_traces_url: Option<String>,
    pub service_name: String,
    /// Share of new traces recorded (parent-based: a sampled parent is followed).
    pub sampling_ratio: f64,
    pub export_timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_traces_url: None,
            service_name: "herald".to_owned(),
            sampling_ratio: 1.0,
            export_timeout: Duration::from_secs(10),
        }
    }
}

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Browser `Origin` values allowed to connect, lower-cased; `"*"` allows any. Requests without
    /// an `Origin` header always pass.
    pub allowed_origins: Vec<String>,
    /// Node name; default: the host name, or `herald`.
    pub name: String,
    /// How long a graceful shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
    /// How often the node announces itself to its peers.
    pub heartbeat_interval: Duration,
    /// Worker threads; `None`: one per CPU.
    pub workers: Option<usize>,
    /// Listen backlog (pending connections not yet accepted).
    pub backlog: u32,
    /// Serve the HTTP-streaming fallback (`/connection/http_stream`).
    pub http_stream: bool,
    /// Serve the SSE fallback (`/connection/sse`).
    pub sse: bool,
    /// Serve the unidirectional WebSocket (`/connection/uni_websocket`).
    pub uni_websocket: bool,
    /// Serve the unidirectional SSE (`/connection/uni_sse`).
    pub uni_sse: bool,
    /// Serve the unidirectional HTTP streaming (`/connection/uni_http_stream`).
    pub uni_http_stream: bool,
    /// What serves `/connection/websocket`.
    pub websocket_engine: WebSocketEngine,
    /// The listener of the server API, `/metrics` and the detailed `/ready`, when they are
    /// kept off the public one.
    pub internal_listen: Option<SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// `server.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "server.log_format: {s:?} is not a log format (expected \"text\" or \"json\")"
            )),
        }
    }
}

/// `server.websocket_engine`: what runs the WebSocket transport. Both run the same connection
/// driver and speak the same protocol; they differ in what a connection costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebSocketEngine {
    /// Herald's own frame loop on actix-http's upgrade hook: after the handshake a connection
    /// is one task and its socket, with no HTTP/1 buffers or channel kept.
    #[default]
    Lean,
    /// An actix-web route with actix-ws: the socket stays with actix-http's HTTP/1 dispatcher.
    ActixWs,
}

impl WebSocketEngine {
    pub const NAMES: [&str; 2] = ["lean", "actix-ws"];

    pub fn name(self) -> &'static str {
        match self {
            WebSocketEngine::Lean => "lean",
            WebSocketEngine::ActixWs => "actix-ws",
        }
    }
}

impl std::str::FromStr for WebSocketEngine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lean" => Ok(WebSocketEngine::Lean),
            "actix-ws" | "actix_ws" => Ok(WebSocketEngine::ActixWs),
            _ => Err(format!(
                "server.websocket_engine: {s:?} is not an engine (expected one of: {})",
                WebSocketEngine::NAMES.join(", ")
            )),
        }
    }
}

/// `[api]`, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Key of the server API. In dev mode: the generated key.
    pub key: String,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("key", &"<redacted>")
            .finish()
    }
}

/// `[admin]`, validated: the admin page at `/` on the operator listener.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Serve the page and its `/admin/...` endpoints.
    pub enabled: bool,
    /// The login password; `None` only in dev mode (loopback only), where no login is asked.
    pub password: Option<String>,
    /// How long a login lasts.
    pub session_ttl: Duration,
}

impl AdminConfig {
    /// Shortest accepted `admin.password`.
    pub const MIN_PASSWORD_LEN: usize = 12;
    const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

    /// The page off (the default outside dev mode).
    pub fn disabled() -> AdminConfig {
        AdminConfig {
            enabled: false,
            password: None,
            session_ttl: Self::DEFAULT_SESSION_TTL,
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}

/// `[broker]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerConfig {
    /// In-process broker: a single node.
    Memory,
    /// Nodes share publications through Redis PUB/SUB (`broker.kind = "redis"`). Cluster seeds
    /// are already split into one `redis://`/`rediss://` URL per seed.
    Redis(RedisConfig),
}

/// Generated secrets of a node running in dev mode.
#[derive(Clone, PartialEq, Eq)]
pub struct DevMode {
    /// Random HMAC secret (64 hex characters) tokens are verified with.
    pub hmac_secret: String,
    /// Random server API key (64 hex characters).
    pub api_key: String,
}

impl fmt::Debug for DevMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevMode")
            .field("hmac_secret", &"<redacted>")
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Values from command-line flags; they override the file and the environment.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// `server.listen`
    pub listen: Option<String>,
    /// `api.key`
    pub api_key: Option<String>,
    /// `auth.hmac_secret`
    pub hmac_secret: Option<String>,
    /// `server.log_format`
    pub log_format: Option<String>,
    /// `--dev`: run in dev mode (generated keys, open channels; loopback and memory broker only)
    pub dev: bool,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Overrides")
            .field("listen", &self.listen)
            .field("api_key", &redact(&self.api_key))
            .field("hmac_secret", &redact(&self.hmac_secret))
            .field("log_format", &self.log_format)
            .field("dev", &self.dev)
            .finish()
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML/YAML/JSON.
    #[error("cannot parse config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// The file extension does not name a supported format.
    #[error(
        "config file {}: unsupported format (use a .toml, .yaml, .yml or .json extension)",
        path.display()
    )]
    UnsupportedFormat { path: PathBuf },
    /// Every problem found, one per entry, each naming its key.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads the configuration. Layers, later ones win: defaults < `file` (if `Some`) <
    /// environment `HERALD_<SECTION>__<KEY>` (`env`: the variables to use; `None` = the process
    /// environment) < `overrides` (flags).
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut builder = ::config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(read_file(path)?);
        }
        let env = env.unwrap_or_else(|| {
            // Variables that are not valid Unicode cannot be configuration; skip them.
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect()
        });
        let (env, env_warnings) = config_env_vars(env);
        // `try_parsing` stays off: it would turn `0123` into `123` and long digit strings into
        // floats, mangling secrets. Booleans and numbers are parsed from strings on
        // deserialization instead, and lists are split by the `allowed_origins` deserializer.
        builder = builder.add_source(
            ::config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .source(Some(env)),
        );
        let flags = [
            ("server.listen", &overrides.listen),
            ("api.key", &overrides.api_key),
            ("auth.hmac_secret", &overrides.hmac_secret),
            ("server.log_format", &overrides.log_format),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                builder = builder
                    .set_override(key, value.as_str())
                    .map_err(|e| ConfigError::Invalid(vec![format!("{key}: {e}")]))?;
            }
        }
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
        let mut raw = RawConfig::from_merged(&merged);
        raw.dev = overrides.dev;
        let mut config = Config::build_and_validate(raw)?;
        config.warnings.splice(0..0, env_warnings);
        Ok(config)
    }

    /// Checks every key of `raw` (plus the problems found while reading it) and builds the
    /// validated configuration, or reports all problems together.
    pub(crate) fn build_and_validate(mut raw: RawConfig) -> Result<Config, ConfigError> {
        let mut problems = std::mem::take(&mut raw.problems);
        let mut warnings = Vec::new();
        let failed = |section: &str| raw.failed.contains(&section);

        // [server]
        let listen = parse_listen(&raw.server.listen, &mut problems);
        let internal_listen = match non_empty(&raw.server.internal_listen) {
            None => None,
            Some(value) => match value.trim().parse::<SocketAddr>() {
                Ok(addr) if Some(addr) == listen && addr.port() != 0 => {
                    problems.push(format!(
                        "server.internal_listen: {addr} is server.listen too; give the internal listener an address of its own (or leave it out to serve everything on one)"
                    ));
                    None
                }
                Ok(addr) => Some(addr),
                Err(_) => {
                    problems.push(format!(
                        "server.internal_listen: {value:?} is not a socket address (expected host:port, e.g. 0.0.0.0:9000)"
                    ));
                    None
                }
            },
        };
        let mut allowed_origins = Vec::new();
        for (i, origin) in raw.server.allowed_origins.iter().enumerate() {
            match check_origin(origin) {
                Ok(origin) => allowed_origins.push(origin),
                Err(why) => problems.push(format!(
                    "server.allowed_origins[{i}]: {origin:?} {why} (expected scheme://host[:port], e.g. https://app.example, or \"*\")"
                )),
            }
        }
        let name = match raw.server.name.as_deref().map(str::trim) {
            Some("") => {
                problems.push("server.name: must not be empty".to_owned());
                String::new()
            }
            Some(name) => name.to_owned(),
            None => hostname(),
        };
        let shutdown_timeout = parse_duration(
            "server.shutdown_timeout",
            &raw.server.shutdown_timeout,
            &mut problems,
        );
        let heartbeat_interval = parse_duration(
            "server.heartbeat_interval",
            &raw.server.heartbeat_interval,
            &mut problems,
        );
        if let Some(w) = raw.server.workers
            && !(1..=MAX_WORKERS).contains(&w)
        {
            problems.push(format!(
                "server.workers: {w} is out of range (1 to {MAX_WORKERS}; leave it out for one per CPU)"
            ));
        }
        if raw.server.backlog == 0 {
            problems.push("server.backlog: must be at least 1 (default 4096)".to_owned());
        }
        let websocket_engine = raw
            .server
            .websocket_engine
            .parse::<WebSocketEngine>()
            .unwrap_or_else(|why| {
                problems.push(why);
                WebSocketEngine::default()
            });
        let log_format = raw
            .server
            .log_format
            .parse::<LogFormat>()
            .unwrap_or_else(|why| {
                problems.push(why);
                LogFormat::default()
            });
        if heartbeat_interval.is_some_and(|d| d < Duration::from_millis(100)) {
            problems.push(format!(
                "server.heartbeat_interval: {:?} is too short (at least 100ms)",
                raw.server.heartbeat_interval
            ));
        }

        // [auth] and [api]
        let hmac_secret = non_empty(&raw.auth.hmac_secret);
        let previous_hmac_secret = non_empty(&raw.auth.previous_hmac_secret);
        let rsa_public_key = non_empty(&raw.auth.rsa_public_key).map(unescape_pem);
        let ecdsa_public_key = non_empty(&raw.auth.ecdsa_public_key).map(unescape_pem);
        let jwks_url = non_empty(&raw.auth.jwks_url).map(str::trim);
        let api_key = non_empty(&raw.api.key);
        let mut token_keys = Vec::new();
        for (key, secret) in [
            ("auth.hmac_secret", hmac_secret),
            ("auth.previous_hmac_secret", previous_hmac_secret),
        ] {
            if let Some(secret) = secret
                && secret.len() < MIN_HMAC_SECRET_LEN
            {
                warnings.push(format!(
                    "{key} is {} bytes; use at least {MIN_HMAC_SECRET_LEN} random bytes",
                    secret.len()
                ));
            }
        }
        if let Some(secret) = hmac_secret {
            token_keys.push(TokenKey::Hmac(secret.as_bytes().to_vec()));
        }
        let previous_key = match (previous_hmac_secret, hmac_secret) {
            (Some(previous), Some(_)) => Some(TokenKey::Hmac(previous.as_bytes().to_vec())),
            (Some(_), None) => {
                problems.push(
                    "auth.previous_hmac_secret: only valid together with auth.hmac_secret (it is the secret being rotated out: tokens signed with either verify)"
                        .to_owned(),
                );
                None
            }
            (None, _) => None,
        };
        for (key, pem, kind) in [
            ("auth.rsa_public_key", &rsa_public_key, PemKind::Rsa),
            ("auth.ecdsa_public_key", &ecdsa_public_key, PemKind::Ecdsa),
        ] {
            if let Some(pem) = pem
                && let Some(key) = check_pem(key, pem, kind, &mut problems)
            {
                token_keys.push(key);
            }
        }
        let jwks_refresh_interval = match &raw.auth.jwks_refresh_interval {
            Some(value) => {
                if jwks_url.is_none() {
                    warnings.push(
                        "auth.jwks_refresh_interval is ignored without auth.jwks_url".to_owned(),
                    );
                }
                let interval = parse_duration("auth.jwks_refresh_interval", value, &mut problems);
                if interval.is_some_and(|d| d < JwksConfig::MIN_REFRESH_INTERVAL) {
                    problems.push(format!(
                        "auth.jwks_refresh_interval: {value:?} is too short (at least {})",
                        humantime::format_duration(JwksConfig::MIN_REFRESH_INTERVAL)
                    ));
                }
                interval.unwrap_or(JwksConfig::REFRESH_INTERVAL)
            }
            None => JwksConfig::REFRESH_INTERVAL,
        };
        if let Some(url) = jwks_url {
            match check_jwks_url(url) {
                Ok(()) => {
                    if plain_http_to_another_host(url) {
                        warnings.push(format!(
                            "auth.jwks_url {} is plain http: anyone on the way can swap the keys and sign tokens; use https",
                            redact_url(url)
                        ));
                    }
                    token_keys.push(TokenKey::Jwks(JwksConfig {
                        refresh_interval: jwks_refresh_interval,
                        ..JwksConfig::new(url)
                    }));
                }
                Err(why) => problems.push(format!(
                    "auth.jwks_url: {:?} {why} (expected the http:// or https:// URL of a JWKS, e.g. https://auth.example/.well-known/jwks.json)",
                    redact_url(url)
                )),
            }
        }
        let key_count = [
            hmac_secret.is_some(),
            rsa_public_key.is_some(),
            ecdsa_public_key.is_some(),
            jwks_url.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if key_count > 1 {
            problems.push(
                "auth: set only one of hmac_secret, rsa_public_key, ecdsa_public_key, jwks_url"
                    .to_owned(),
            );
        }
        let mut dev = None;
        if raw.dev {
            if key_count > 0 || previous_hmac_secret.is_some() || api_key.is_some() {
                problems.push(
                    "--dev: dev mode generates its own token key and API key, but auth or api.key is configured (run without --dev, e.g. `herald run`, to use the configured keys)"
                        .to_owned(),
                );
            } else if !failed("auth") && !failed("api") {
                dev = Some(DevMode {
                    hmac_secret: random_hex(32),
                    api_key: random_hex(32),
                });
            }
            if let Some(listen) = listen
                && !listen.ip().is_loopback()
            {
                problems.push(format!(
                    "--dev: dev mode lets anyone subscribe and publish anywhere, so it listens on a loopback address only, not {listen} (server.listen; configure auth and api.key to serve other hosts)"
                ));
            }
            if raw.broker.kind.trim() == "redis" {
                problems.push(
                    "--dev: dev mode runs one node on the memory broker only, not broker.kind = \"redis\" (configure auth and api.key to run a cluster)"
                        .to_owned(),
                );
            }
        } else if key_count == 0 && api_key.is_none() {
            if !failed("auth") && !failed("api") {
                problems.push(
                    "auth.hmac_secret (HERALD_AUTH__HMAC_SECRET; or auth.rsa_public_key / auth.ecdsa_public_key / auth.jwks_url) and api.key (HERALD_API__KEY) are required; for a local trial node with generated keys run `herald --dev`"
                        .to_owned(),
                );
            }
        } else if key_count == 0 {
            if !failed("auth") {
                problems.push(
                    "auth: a token key (hmac_secret, rsa_public_key, ecdsa_public_key or jwks_url) is required when api.key is set".to_owned(),
                );
            }
        } else if api_key.is_none() && !failed("api") {
            problems.push("api.key: is required when auth is configured".to_owned());
        }
        let key = match &dev {
            Some(dev) => TokenKey::Hmac(dev.hmac_secret.as_bytes().to_vec()),
            None => token_keys
                .into_iter()
                .next()
                .unwrap_or(TokenKey::Hmac(Vec::new())),
        };
        let token = TokenConfig {
            key,
            previous_key: dev.is_none().then_some(previous_key).flatten(),
            audience: non_empty(&raw.auth.audience).map(str::to_owned),
            issuer: non_empty(&raw.auth.issuer).map(str::to_owned),
        };
        let api = ApiConfig {
            key: match &dev {
                Some(dev) => dev.api_key.clone(),
                None => api_key.unwrap_or_default().to_owned(),
            },
        };

        // [broker]
        let broker = build_broker(&raw.broker, &mut problems, &mut warnings);

        // [channels]
        let c = &raw.channels;
        let without_namespace = channel_options("channels", c.options(), &mut problems);
        let max_channel_length = positive(
            "channels.max_channel_length",
            c.max_channel_length,
            &mut problems,
        );
        let max_channels_per_client = positive(
            "channels.max_channels_per_client",
            c.max_channels_per_client,
            &mut problems,
        );
        let mut namespaces: Vec<Namespace> = Vec::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, ns) in c.namespaces.iter().enumerate() {
            let key = format!("channels.namespaces[{i}].name");
            if ns.name.is_empty() {
                problems.push(format!("{key}: is required"));
            } else if !valid_namespace_name(&ns.name) {
                problems.push(format!(
                    "{key}: {:?} must match ^[-a-zA-Z0-9_]{{2,}}$",
                    ns.name
                ));
            } else if let Some(first) = seen.get(ns.name.as_str()) {
                problems.push(format!(
                    "{key}: duplicate namespace {:?} (already defined by channels.namespaces[{first}])",
                    ns.name
                ));
            } else {
                seen.insert(&ns.name, i);
            }
            namespaces.push(Namespace {
                name: ns.name.clone(),
                options: channel_options(
                    &format!("channels.namespaces[{i}]"),
                    ns.options(),
                    &mut problems,
                ),
            });
        }
        let channels = ChannelConfig {
            without_namespace,
            namespaces,
            max_channel_length,
            max_channels_per_client,
            insecure: dev.is_some(),
        };
        // [client]
        let cl = &raw.client;
        let ping_interval =
            parse_duration("client.ping_interval", &cl.ping_interval, &mut problems);
        let pong_timeout = parse_duration("client.pong_timeout", &cl.pong_timeout, &mut problems);
        let connect_timeout =
            parse_duration("client.connect_timeout", &cl.connect_timeout, &mut problems);
        let expired_close_delay = parse_duration(
            "client.expired_close_delay",
            &cl.expired_close_delay,
            &mut problems,
        );
        let write_delay = parse_duration("client.write_delay", &cl.write_delay, &mut problems);
        if write_delay.is_some_and(|d| d > Duration::from_secs(1)) {
            problems.push(format!(
                "client.write_delay: {:?} is longer than 1s (it delays every message under load)",
                cl.write_delay
            ));
        }
        let write_timeout =
            parse_duration("client.write_timeout", &cl.write_timeout, &mut problems);
        if write_timeout.is_some_and(|d| d.is_zero() || d > Duration::from_secs(60)) {
            problems.push(format!(
                "client.write_timeout: {:?} is out of range (more than 0, at most 60s): a client \
                 that stopped reading holds its connection and queue for this long",
                cl.write_timeout
            ));
        }
        let presence_update_interval = parse_duration(
            "client.presence_update_interval",
            &cl.presence_update_interval,
            &mut problems,
        );
        let presence_ttl = parse_duration("client.presence_ttl", &cl.presence_ttl, &mut problems);
        let position_check = parse_duration(
            "client.channel_position_check_delay",
            &cl.channel_position_check_delay,
            &mut problems,
        );
        if position_check.is_some_and(|d| !d.is_zero() && d < Duration::from_secs(1)) {
            problems.push(format!(
                "client.channel_position_check_delay: {} is below 1s (each check reads the \
                 channel's stream from the broker for every positioned subscription; \
                 \"0s\" turns the check off)",
                cl.channel_position_check_delay
            ));
        }
        if let (Some(every), Some(ttl)) = (presence_update_interval, presence_ttl)
            && ttl <= every
        {
            problems.push(format!(
                "client.presence_ttl: {} must exceed client.presence_update_interval ({}), or entries expire between refreshes",
                humantime::format_duration(ttl),
                humantime::format_duration(every)
            ));
        }
        for (key, value) in [
            ("client.pong_timeout", pong_timeout),
            ("client.connect_timeout", connect_timeout),
            ("client.presence_update_interval", presence_update_interval),
        ] {
            if value == Some(Duration::ZERO) {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        if let (Some(ping), Some(pong)) = (ping_interval, pong_timeout)
            && ping <= pong
        {
            problems.push(format!(
                "client.ping_interval: {} must exceed client.pong_timeout ({})",
                humantime::format_duration(ping),
                humantime::format_duration(pong)
            ));
        }
        let expired_sub_close_delay = parse_duration(
            "client.expired_sub_close_delay",
            &cl.expired_sub_close_delay,
            &mut problems,
        );
        let command_rate_limit = per_second(
            "client.command_rate_limit",
            cl.command_rate_limit,
            &mut problems,
        );
        let command_rate_burst = per_second(
            "client.command_rate_burst",
            cl.command_rate_burst,
            &mut problems,
        );
        if command_rate_limit > 0 && command_rate_burst == 0 {
            problems.push(
                "client.command_rate_burst: must be at least 1 while client.command_rate_limit is on (every command needs a token)"
                    .to_owned(),
            );
        }
        let defaults = ClientConfig::default();
        let client = ClientConfig {
            ping_interval: ping_interval.unwrap_or(defaults.ping_interval),
            pong_timeout: pong_timeout.unwrap_or(defaults.pong_timeout),
            connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
            max_queue_bytes: positive("client.max_queue_size", cl.max_queue_size, &mut problems),
            max_message_size: positive(
                "client.max_message_size",
                cl.max_message_size,
                &mut problems,
            ),
            expired_close_delay: expired_close_delay.unwrap_or(defaults.expired_close_delay),
            write_delay: write_delay.unwrap_or(defaults.write_delay),
            write_timeout: write_timeout.unwrap_or(defaults.write_timeout),
            presence_update_interval: presence_update_interval
                .unwrap_or(defaults.presence_update_interval),
            presence_ttl: presence_ttl.unwrap_or(defaults.presence_ttl),
            channel_position_check_delay: position_check
                .unwrap_or(defaults.channel_position_check_delay),
            expired_sub_close_delay: expired_sub_close_delay
                .unwrap_or(defaults.expired_sub_close_delay),
            connection_limit: non_negative(
                "client.connection_limit",
                cl.connection_limit,
                &mut problems,
            ),
            user_connection_limit: non_negative(
                "client.user_connection_limit",
                cl.user_connection_limit,
                &mut problems,
            ),
            connection_rate_limit: per_second(
                "client.connection_rate_limit",
                cl.connection_rate_limit,
                &mut problems,
            ),
            command_rate_limit,
            command_rate_burst,
        };

        // [admin]
        let admin = build_admin(&raw, dev.is_some(), &mut problems, &mut warnings);
        // [telemetry]
        let telemetry = telemetry(&raw.telemetry, &mut problems);
        // [socketio]
        let sio = &raw.socketio;
        if !SocketIoConfig::MAX_PAYLOAD_RANGE.contains(&sio.max_payload) {
            problems.push(format!(
                "socketio.max_payload: {} is out of range ({} to {} bytes)",
                sio.max_payload,
                SocketIoConfig::MAX_PAYLOAD_RANGE.start(),
                SocketIoConfig::MAX_PAYLOAD_RANGE.end()
            ));
        }
        let socketio = SocketIoConfig {
            enabled: sio.enabled,
            max_payload: sio.max_payload,
            recovery: sio.recovery,
        };

        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Config {
            server: ServerConfig {
                listen: listen.expect("checked above"),
                allowed_origins,
                name,
                shutdown_timeout: shutdown_timeout.expect("checked above"),
                heartbeat_interval: heartbeat_interval.expect("checked above"),
                workers: raw.server.workers,
                backlog: raw.server.backlog,
                http_stream: raw.server.http_stream,
                sse: raw.server.sse,
                uni_websocket: raw.server.uni_websocket,
                uni_sse: raw.server.uni_sse,
                uni_http_stream: raw.server.uni_http_stream,
                websocket_engine,
                internal_listen,
                log_format,
            },
            token,
            api,
            broker,
            channels,
            client,
            admin,
            telemetry,
            socketio,
            dev,
            warnings,
        })
    }

    /// A readable multi-line summary for `herald check-config`. Secrets are never shown: only
    /// whether a key is set and its kind.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let options = |o: &ChannelOptions| {
            let mut on = Vec::new();
            if o.allow_subscribe_for_client {
                on.push("subscribe_for_client");
            }
            if o.allow_publish_for_subscriber {
                on.push("publish_for_subscriber");
            }
            if o.allow_publish_for_client {
                on.push("publish_for_client");
            }
            if o.allow_user_limited_channels {
                on.push("user_limited_channels");
            }
            let mut text = if on.is_empty() {
                "nothing allowed".to_owned()
            } else {
                format!("allow {}", on.join(", "))
            };
            if o.has_history() {
                let mut extra = Vec::new();
                for (name, set) in [
                    ("force_recovery", o.force_recovery),
                    ("allow_recovery", o.allow_recovery),
                    ("force_positioning", o.force_positioning),
                    ("history_for_subscriber", o.allow_history_for_subscriber),
                ] {
                    if set {
                        extra.push(name);
                    }
                }
                let _ = write!(
                    text,
                    "; history {} for {}{}{}",
                    o.history_size,
                    humantime::format_duration(o.history_ttl),
                    if extra.is_empty() { "" } else { ", " },
                    extra.join(", ")
                );
            }
            text
        };
        let d = |d: Duration| humantime::format_duration(d).to_string();

        if self.dev.is_some() {
            let _ = writeln!(
                s,
                "mode:      DEV (no keys configured: generated token secret and API key; any client may subscribe to any channel)"
            );
        } else {
            let _ = writeln!(s, "mode:      production");
        }
        let _ = writeln!(s, "[server]");
        let _ = writeln!(s, "  listen:           {}", self.server.listen);
        let internal = self.server.internal_listen.map_or_else(
            || "none (API and metrics on listen)".to_owned(),
            |a| a.to_string(),
        );
        let _ = writeln!(s, "  internal_listen:  {internal}");
        let _ = writeln!(s, "  name:             {}", self.server.name);
        let origins = if self.server.allowed_origins.is_empty() {
            "none (only clients without an Origin header)".to_owned()
        } else {
            self.server.allowed_origins.join(", ")
        };
        let _ = writeln!(s, "  allowed_origins:  {origins}");
        let _ = writeln!(s, "  shutdown_timeout: {}", d(self.server.shutdown_timeout));
        let _ = writeln!(
            s,
            "  heartbeat_interval: {}",
            d(self.server.heartbeat_interval)
        );
        let workers = self
            .server
            .workers
            .map_or_else(|| "one per CPU".to_owned(), |w| w.to_string());
        let _ = writeln!(s, "  workers:          {workers}");
        let _ = writeln!(s, "  backlog:          {}", self.server.backlog);
        let _ = writeln!(s, "  http_stream:      {}", self.server.http_stream);
        let _ = writeln!(s, "  sse:              {}", self.server.sse);
        let _ = writeln!(s, "  uni_websocket:    {}", self.server.uni_websocket);
        let _ = writeln!(s, "  uni_sse:          {}", self.server.uni_sse);
        let _ = writeln!(s, "  uni_http_stream:  {}", self.server.uni_http_stream);
        let _ = writeln!(
            s,
            "  websocket_engine: {}",
            self.server.websocket_engine.name()
        );
        let _ = writeln!(s, "[auth]");
        let generated = if self.dev.is_some() {
            ", generated"
        } else {
            ""
        };
        let describe = |key: &TokenKey| match key {
            TokenKey::Hmac(_) => format!("HMAC secret (HS256/HS384/HS512) <redacted{generated}>"),
            TokenKey::RsaPem(_) => "RSA public key (RS*/PS*)".to_owned(),
            TokenKey::EcdsaPem(_) => "ECDSA public key (ES256/ES384)".to_owned(),
            TokenKey::Jwks(jwks) => format!(
                "JWKS at {} (RSA/EC keys by kid), refreshed every {}",
                redact_url(&jwks.url),
                d(jwks.refresh_interval)
            ),
        };
        let _ = writeln!(s, "  token key:        {}", describe(&self.token.key));
        if let Some(previous) = &self.token.previous_key {
            let _ = writeln!(
                s,
                "  previous key:     {} (rotating: its tokens still verify)",
                describe(previous)
            );
        }
        let _ = writeln!(
            s,
            "  audience:         {}",
            self.token.audience.as_deref().unwrap_or("(not checked)")
        );
        let _ = writeln!(
            s,
            "  issuer:           {}",
            self.token.issuer.as_deref().unwrap_or("(not checked)")
        );
        let _ = writeln!(s, "[api]");
        let _ = writeln!(s, "  key:              set <redacted{generated}>");
        let _ = writeln!(s, "[broker]");
        match &self.broker {
            BrokerConfig::Memory => {
                let _ = writeln!(s, "  kind:             memory (single node)");
            }
            BrokerConfig::Redis(r) => {
                let _ = writeln!(s, "  kind:             redis");
                for (i, shard) in r.shards.iter().enumerate() {
                    let shard = match shard {
                        RedisShardConfig::Standalone { url } => redact_url(url),
                        RedisShardConfig::Cluster { urls } => format!(
                            "cluster, seeds {}",
                            urls.iter()
                                .map(|u| redact_url(u))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    let _ = writeln!(s, "  shard {i}:          {shard}");
                }
                let _ = writeln!(s, "  prefix:           {}", r.prefix);
                let _ = writeln!(s, "  connect_timeout:  {}", d(r.connect_timeout));
                let _ = writeln!(s, "  command_timeout:  {}", d(r.command_timeout));
                let _ = writeln!(s, "  pubsub_connections: {}", r.pubsub_connections);
                let _ = writeln!(s, "  pool_size:        {}", r.pool_size);
                if r.tls_ca_cert.is_some() {
                    let _ = writeln!(s, "  tls_ca:           from broker.tls_ca_file");
                }
            }
        }
        let ch = &self.channels;
        let _ = writeln!(s, "[channels]");
        let _ = writeln!(s, "  insecure:         {}", yes_no(ch.insecure));
        let _ = writeln!(s, "  without namespace: {}", options(&ch.without_namespace));
        let _ = writeln!(s, "  max_channel_length: {}", ch.max_channel_length);
        let _ = writeln!(
            s,
            "  max_channels_per_client: {}",
            ch.max_channels_per_client
        );
        if ch.namespaces.is_empty() {
            let _ = writeln!(s, "  namespaces:       (none)");
        }
        for ns in &ch.namespaces {
            let _ = writeln!(s, "  namespace {:?}: {}", ns.name, options(&ns.options));
        }
        let c = &self.client;
        let _ = writeln!(s, "[client]");
        let _ = writeln!(s, "  ping_interval:    {}", d(c.ping_interval));
        let _ = writeln!(s, "  pong_timeout:     {}", d(c.pong_timeout));
        let _ = writeln!(s, "  connect_timeout:  {}", d(c.connect_timeout));
        let _ = writeln!(s, "  max_queue_size:   {} bytes", c.max_queue_bytes);
        let _ = writeln!(s, "  max_message_size: {} bytes", c.max_message_size);
        let _ = writeln!(s, "  expired_close_delay: {}", d(c.expired_close_delay));
        let _ = writeln!(s, "  write_delay:      {}", d(c.write_delay));
        let _ = writeln!(s, "  write_timeout:    {}", d(c.write_timeout));
        let _ = writeln!(
            s,
            "  channel_position_check_delay: {}",
            d(c.channel_position_check_delay)
        );
        let _ = writeln!(
            s,
            "  expired_sub_close_delay: {}",
            d(c.expired_sub_close_delay)
        );
        let limit = |n: usize| {
            if n == 0 {
                "none".to_owned()
            } else {
                n.to_string()
            }
        };
        let _ = writeln!(s, "  connection_limit: {}", limit(c.connection_limit));
        let _ = writeln!(
            s,
            "  user_connection_limit: {}",
            limit(c.user_connection_limit)
        );
        let _ = writeln!(
            s,
            "  connection_rate_limit: {}/s",
            limit(c.connection_rate_limit as usize)
        );
        let _ = writeln!(
            s,
            "  command_rate_limit: {}/s (burst {})",
            limit(c.command_rate_limit as usize),
            c.command_rate_burst
        );
        let _ = writeln!(
            s,
            "  presence:         refreshed every {}, expires after {}",
            d(c.presence_update_interval),
            d(c.presence_ttl)
        );
        let _ = writeln!(s, "[admin]");
        let page = if !self.admin.enabled {
            "off".to_owned()
        } else if self.admin.password.is_some() {
            format!(
                "on at / (login: password <redacted>, sessions last {})",
                d(self.admin.session_ttl)
            )
        } else {
            "on at / (dev mode: no login)".to_owned()
        };
        let _ = writeln!(s, "  page:             {page}");
        let _ = writeln!(s, "[socketio]");
        let sio = &self.socketio;
        if sio.enabled {
            let _ = writeln!(
                s,
                "  /socket.io/:      on (maxPayload {} bytes, recovery {})",
                sio.max_payload,
                if sio.recovery { "on" } else { "off" }
            );
        } else {
            let _ = writeln!(s, "  /socket.io/:      off");
        }
        let t = &self.telemetry;
        let _ = writeln!(s, "[telemetry]");
        match &t.otlp_traces_url {
            Some(url) => {
                let _ = writeln!(
                    s,
                    "  traces:           OTLP to {} as {:?}, sampling {} of new traces",
                    redact_url(url),
                    t.service_name,
                    t.sampling_ratio
                );
            }
            None => {
                let _ = writeln!(s, "  traces:           off");
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

#[cfg(any(test, feature = "testing"))]
impl WebSocketEngine {
    /// The variable that picks the engine the tests run against: CI runs the node tests once
    /// per engine (`.ci/run`).
    pub const UNDER_TEST_ENV: &str = "HERALD_TEST_WEBSOCKET_ENGINE";

    /// The engine of [`Config::for_test`] and of the tests' configuration files: the one
    /// [`Self::UNDER_TEST_ENV`] names, lean without it.
    pub fn under_test() -> WebSocketEngine {
        match std::env::var(Self::UNDER_TEST_ENV) {
            Ok(name) => name
                .parse()
                .unwrap_or_else(|why| panic!("{}: {why}", Self::UNDER_TEST_ENV)),
            Err(_) => WebSocketEngine::default(),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl Config {
    /// A valid non-dev configuration for tests: listen `127.0.0.1:0`, HMAC secret
    /// `test-secret-0123456789abcdef0123456789`, API key `test-api-key`, and namespace `chat`
    /// where clients may subscribe and subscribers may publish.
    pub fn for_test() -> Config {
        Config {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                allowed_origins: Vec::new(),
                name: "herald-test".to_owned(),
                shutdown_timeout: Duration::from_secs(10),
                heartbeat_interval: Duration::from_secs(3),
                workers: Some(2),
                backlog: 4096,
                http_stream: true,
                sse: true,
                uni_websocket: true,
                uni_sse: true,
                uni_http_stream: true,
                websocket_engine: WebSocketEngine::under_test(),
                internal_listen: None,
                log_format: LogFormat::Text,
            },
            token: TokenConfig {
                key: TokenKey::Hmac(b"test-secret-0123456789abcdef0123456789".to_vec()),
                previous_key: None,
                audience: None,
                issuer: None,
            },
            api: ApiConfig {
                key: "test-api-key".to_owned(),
            },
            broker: BrokerConfig::Memory,
            channels: ChannelConfig {
                namespaces: vec![
                    Namespace {
                        name: "chat".to_owned(),
                        options: ChannelOptions {
                            allow_subscribe_for_client: true,
                            allow_publish_for_subscriber: true,
                            ..ChannelOptions::default()
                        },
                    },
                    Namespace {
                        name: "room".to_owned(),
                        options: ChannelOptions {
                            allow_subscribe_for_client: true,
                            presence: true,
                            allow_presence_for_subscriber: true,
                            ..ChannelOptions::default()
                        },
                    },
                    Namespace {
                        name: "history".to_owned(),
                        options: ChannelOptions {
                            allow_subscribe_for_client: true,
                            history_size: 10,
                            history_ttl: Duration::from_secs(300),
                            allow_recovery: true,
                            allow_history_for_subscriber: true,
                            ..ChannelOptions::default()
                        },
                    },
                ],
                ..ChannelConfig::default()
            },
            client: ClientConfig::default(),
            admin: AdminConfig::disabled(),
            telemetry: TelemetryConfig::default(),
            socketio: SocketIoConfig::default(),
            dev: None,
            warnings: Vec::new(),
        }
    }
}

/// Parses the configuration file into a `config` source, picking the format by extension.
fn read_file(path: &Path) -> Result<::config::Config, ConfigError> {
    use ::config::FileFormat;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("toml") => FileFormat::Toml,
        Some("yaml" | "yml") => FileFormat::Yaml,
        Some("json") => FileFormat::Json,
        _ => {
            return Err(ConfigError::UnsupportedFormat {
                path: path.to_owned(),
            });
        }
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    ::config::Config::builder()
        .add_source(::config::File::from_str(&text, format))
        .build()
        .map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// `HERALD_*` variables that are not configuration keys: `HERALD_CONFIG` (the `--config` flag) and
/// `HERALD_LOG` (the log filter).
const NOT_CONFIG_VARS: &[&str] = &["CONFIG", "LOG"];

/// Keeps the configuration variables (`HERALD_<SECTION>__<KEY>`) and warns about other `HERALD_*`
/// variables (e.g. `HERALD_LISTEN`), which look like a misspelled key.
fn config_env_vars(env: HashMap<String, String>) -> (HashMap<String, String>, Vec<String>) {
    let prefix = format!("{ENV_PREFIX}_");
    let mut warnings = Vec::new();
    let mut vars = HashMap::new();
    for (name, value) in env {
        let Some(rest) = name
            .get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(&prefix))
            .map(|_| &name[prefix.len()..])
        else {
            continue;
        };
        if rest.contains("__") {
            vars.insert(name, value);
        } else if !rest.is_empty() && !NOT_CONFIG_VARS.iter().any(|v| rest.eq_ignore_ascii_case(v))
        {
            warnings.push(format!(
                "environment variable {name} is ignored: configuration variables are named {ENV_PREFIX}_<SECTION>__<KEY>, e.g. HERALD_SERVER__LISTEN"
            ));
        }
    }
    warnings.sort();
    (vars, warnings)
}

/// `[admin]`: on by default in dev mode only; outside it, on only with a password long enough.
fn build_admin(
    raw: &RawConfig,
    dev: bool,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> AdminConfig {
    let a = &raw.admin;
    let enabled = a.enabled.unwrap_or(dev);
    let session_ttl = parse_duration("admin.session_ttl", &a.session_ttl, problems);
    if let Some(ttl) = session_ttl
        && !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600)).contains(&ttl)
    {
        problems.push(format!(
            "admin.session_ttl: {} is out of range (1m to 7d)",
            humantime::format_duration(ttl)
        ));
    }
    // The password's value is never part of a message.
    let password = match &a.password {
        None => None,
        Some(p) if p.trim().is_empty() => {
            problems.push("admin.password: is empty".to_owned());
            None
        }
        Some(p) if p.chars().count() < AdminConfig::MIN_PASSWORD_LEN => {
            problems.push(format!(
                "admin.password: too short (at least {} characters; e.g. `openssl rand -hex 16`)",
                AdminConfig::MIN_PASSWORD_LEN
            ));
            None
        }
        Some(p) => Some(p.clone()),
    };
    if enabled && !dev && a.password.is_none() && !raw.failed.contains(&"admin") {
        problems.push(
            "admin.password: is required when admin.enabled is true outside dev mode (the page publishes to any channel); set it, or HERALD_ADMIN__PASSWORD".to_owned(),
        );
    }
    if !enabled && a.password.is_some() {
        warnings.push("admin.password is set but the admin page is off (admin.enabled)".to_owned());
    }
    AdminConfig {
        enabled,
        password,
        session_ttl: session_ttl.unwrap_or(AdminConfig::DEFAULT_SESSION_TTL),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// PEM keys in environment variables are often written on one line with literal `\n`.
fn unescape_pem(pem: &str) -> String {
    let pem = pem.trim();
    if !pem.contains('\n') && pem.contains("\\n") {
        pem.replace("\\n", "\n")
    } else {
        pem.to_owned()
    }
}

#[derive(Clone, Copy)]
enum PemKind {
    Rsa,
    Ecdsa,
}

fn check_pem(key: &str, pem: &str, kind: PemKind, problems: &mut Vec<String>) -> Option<TokenKey> {
    use jsonwebtoken::DecodingKey;
    if pem.contains("PRIVATE KEY") {
        problems.push(format!(
            "{key}: this is a private key; configure the public key (openssl pkey -in key.pem -pubout)"
        ));
        return None;
    }
    let parsed = match kind {
        PemKind::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
        PemKind::Ecdsa => DecodingKey::from_ec_pem(pem.as_bytes()),
    };
    match parsed {
        Ok(_) => Some(match kind {
            PemKind::Rsa => TokenKey::RsaPem(pem.as_bytes().to_vec()),
            PemKind::Ecdsa => TokenKey::EcdsaPem(pem.as_bytes().to_vec()),
        }),
        Err(e) => {
            let expected = match kind {
                PemKind::Rsa => "an RSA public key",
                PemKind::Ecdsa => "an ECDSA (P-256/P-384) public key",
            };
            problems.push(format!(
                "{key}: not a valid PEM {expected} ({e}); expected \"-----BEGIN PUBLIC KEY-----\\n...\""
            ));
            None
        }
    }
}

/// A plain-http URL to a host other than the loopback: anyone on the way could swap what it
/// serves. (The URL has passed `check_jwks_url`.)
fn plain_http_to_another_host(url: &str) -> bool {
    let Some(rest) = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

fn parse_listen(value: &str, problems: &mut Vec<String>) -> Option<SocketAddr> {
    match value.trim().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "server.listen: {value:?} is not a socket address (expected host:port, e.g. 127.0.0.1:8000)"
            ));
            None
        }
    }
}

fn parse_duration(key: &str, value: &str, problems: &mut Vec<String>) -> Option<Duration> {
    match humantime::parse_duration(value.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!(
                "{key}: {value:?} is not a duration ({e}; expected e.g. \"25s\", \"1m30s\", \"500ms\")"
            ));
            None
        }
    }
}

/// Validates `[telemetry]`.
fn telemetry(raw: &raw::RawTelemetry, problems: &mut Vec<String>) -> TelemetryConfig {
    let otlp_traces_url = non_empty(&raw.otlp_endpoint).and_then(|url| {
        let url = url.trim().trim_end_matches('/');
        let host = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match host {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                Some(if url.ends_with("/v1/traces") {
                    url.to_owned()
                } else {
                    format!("{url}/v1/traces")
                })
            }
            _ => {
                problems.push(format!(
                    "telemetry.otlp_endpoint: {url:?} is not an http:// or https:// URL (expected the collector's OTLP/HTTP address, e.g. \"http://otel-collector:4318\")"
                ));
                None
            }
        }
    });
    let service_name = raw.service_name.trim();
    if service_name.is_empty() {
        problems.push("telemetry.service_name: must not be empty".to_owned());
    }
    if !(0.0..=1.0).contains(&raw.sampling_ratio) {
        problems.push(format!(
            "telemetry.sampling_ratio: {} is out of range (0.0 to 1.0)",
            raw.sampling_ratio
        ));
    }
    let export_timeout = parse_duration("telemetry.export_timeout", &raw.export_timeout, problems);
    if export_timeout.is_some_and(|d| d.is_zero() || d > Duration::from_secs(60)) {
        problems.push(format!(
            "telemetry.export_timeout: {:?} is out of range (more than 0s, at most 60s)",
            raw.export_timeout
        ));
    }
    TelemetryConfig {
        otlp_traces_url,
        service_name: service_name.to_owned(),
        sampling_ratio: raw.sampling_ratio,
        export_timeout: export_timeout.unwrap_or(Duration::from_secs(10)),
    }
}

/// A count where 0 means "no limit".
fn non_negative(key: &str, value: i64, problems: &mut Vec<String>) -> usize {
    usize::try_from(value).unwrap_or_else(|_| {
        problems.push(format!("{key}: must be 0 (no limit) or more (got {value})"));
        0
    })
}

/// A rate per second where 0 means "no limit".
fn per_second(key: &str, value: i64, problems: &mut Vec<String>) -> u32 {
    u32::try_from(value).unwrap_or_else(|_| {
        problems.push(format!(
            "{key}: must be between 0 (no limit) and {} (got {value})",
            u32::MAX
        ));
        0
    })
}

fn positive(key: &str, value: i64, problems: &mut Vec<String>) -> usize {
    match usize::try_from(value) {
        Ok(v) if v > 0 => v,
        _ => {
            problems.push(format!("{key}: must be greater than 0 (got {value})"));
            0
        }
    }
}

/// Longest Redis timeout accepted; longer ones would only hide an unreachable Redis.
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(60);

/// The accepted `broker.redis_urls` entries, for error messages.
const REDIS_URL_SYNTAX: &str = "expected redis://[user:password@]host[:port][/db], rediss://..., or redis+cluster://[user:password@]host1:port1|host2:port2 (rediss+cluster:// for TLS) for a Redis Cluster; cluster seeds are separated by `|`, entries by `,`";

/// Checks `[broker]`. The Redis keys are checked (and used) with `kind = "redis"` only.
fn build_broker(
    raw: &raw::RawBroker,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> BrokerConfig {
    match raw.kind.trim() {
        "memory" => {
            if raw.redis_urls.as_ref().is_some_and(|urls| !urls.is_empty()) {
                warnings.push(
                    "broker.redis_urls is ignored: broker.kind is \"memory\" (set broker.kind = \"redis\" to use Redis)"
                        .to_owned(),
                );
            }
            if non_empty(&raw.tls_ca_file).is_some() {
                warnings.push(
                    "broker.tls_ca_file is ignored: broker.kind is \"memory\" (set broker.kind = \"redis\" to use Redis)"
                        .to_owned(),
                );
            }
            return BrokerConfig::Memory;
        }
        "redis" => {}
        other => {
            problems.push(format!(
                "broker.kind: {other:?} is not supported (supported: memory, redis)"
            ));
            return BrokerConfig::Memory;
        }
    }
    let defaults = RedisConfig::default();

    let mut shards = Vec::new();
    match &raw.redis_urls {
        None => shards = defaults.shards.clone(),
        Some(urls) if urls.is_empty() => problems.push(format!(
            "broker.redis_urls: must list at least one Redis URL with broker.kind = \"redis\" ({REDIS_URL_SYNTAX})"
        )),
        Some(urls) => {
            // host:port (lower-cased, default port filled in) -> index of the entry that uses it.
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (i, url) in urls.iter().enumerate() {
                let key = format!("broker.redis_urls[{i}]");
                let (shard, endpoints) = match parse_redis_url(url) {
                    Ok(parsed) => parsed,
                    Err(why) => {
                        problems.push(format!("{key}: {:?} {why}", redact(url)));
                        continue;
                    }
                };
                let mut duplicate = None;
                for endpoint in endpoints {
                    if let Some(&first) = seen.get(&endpoint) {
                        duplicate.get_or_insert((endpoint, first));
                    } else {
                        seen.insert(endpoint, i);
                    }
                }
                match duplicate {
                    Some((endpoint, first)) if first == i => problems.push(format!(
                        "{key}: {:?} lists the seed {endpoint} more than once",
                        redact(url)
                    )),
                    Some((endpoint, first)) => problems.push(format!(
                        "{key}: {:?} duplicates broker.redis_urls[{first}] (both use {endpoint}); every entry must be a different Redis server or cluster",
                        redact(url)
                    )),
                    None => shards.push(shard),
                }
            }
        }
    }

    let prefix = raw.prefix.trim();
    let prefix_ok = (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if !prefix_ok {
        problems.push(format!(
            "broker.prefix: {prefix:?} must match ^[A-Za-z0-9_.:-]{{1,64}}$"
        ));
    }

    let mut timeout = |key: &str, value: &str, default: Duration| {
        match parse_duration(key, value, problems) {
            Some(d) if d.is_zero() => problems.push(format!("{key}: must be greater than 0")),
            Some(d) if d > MAX_REDIS_TIMEOUT => problems.push(format!(
                "{key}: {} is too long (at most {})",
                humantime::format_duration(d),
                humantime::format_duration(MAX_REDIS_TIMEOUT)
            )),
            Some(d) => return d,
            None => {}
        }
        default
    };
    let connect_timeout = timeout(
        "broker.connect_timeout",
        &raw.connect_timeout,
        defaults.connect_timeout,
    );
    let command_timeout = timeout(
        "broker.command_timeout",
        &raw.command_timeout,
        defaults.command_timeout,
    );

    let tls_ca_cert = non_empty(&raw.tls_ca_file).and_then(|path| {
        let path = path.trim();
        let key = "broker.tls_ca_file";
        let pem = std::fs::read(path)
            .map_err(|e| problems.push(format!("{key}: cannot read {path:?}: {e}")))
            .ok()?;
        match herald_engine::broker::RedisBroker::check_tls_ca_cert(&pem) {
            Ok(_) => {
                let tls = shards.iter().any(|shard| match shard {
                    RedisShardConfig::Standalone { url } => url.starts_with("rediss://"),
                    RedisShardConfig::Cluster { urls } => {
                        urls.iter().any(|url| url.starts_with("rediss://"))
                    }
                });
                if !tls {
                    warnings.push(format!(
                        "{key} is ignored: no broker.redis_urls entry uses TLS (rediss:// or rediss+cluster://)"
                    ));
                }
                Some(pem)
            }
            Err(why) => {
                problems.push(format!("{key}: {path:?} {why}"));
                None
            }
        }
    });

    BrokerConfig::Redis(RedisConfig {
        shards,
        tls_ca_cert,
        prefix: prefix.to_owned(),
        connect_timeout,
        command_timeout,
        pubsub_connections: in_range(
            "broker.pubsub_connections",
            raw.pubsub_connections,
            1..=64,
            problems,
        ),
        pool_size: in_range("broker.pool_size", raw.pool_size, 1..=1024, problems),
    })
}

/// A configured Redis URL for messages: the password (if any) replaced by `***`, also when the
/// URL is too malformed for [`redact_url`] to find it.
fn redact(url: &str) -> String {
    let redacted = redact_url(url);
    if redacted != url {
        return redacted;
    }
    let Some(at) = url.rfind('@') else {
        return redacted;
    };
    let start = url
        .find("://")
        .map(|i| i + 3)
        .filter(|&i| i <= at)
        .unwrap_or(0);
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        // `user@host`: a user name only, no secret.
        None => redacted,
    }
}

/// Parses one `broker.redis_urls` entry into a shard and the `host:port` endpoints it uses
/// (lower-cased, default port filled in; for duplicate checks). Errors never quote parts of the
/// URL, which could be a misplaced password.
fn parse_redis_url(entry: &str) -> Result<(RedisShardConfig, Vec<String>), String> {
    let entry = entry.trim();
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain spaces (percent-encode them in a password) ({REDIS_URL_SYNTAX})"
        ));
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(format!("has no scheme ({REDIS_URL_SYNTAX})"));
    };
    let (tls, cluster) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, false),
        "rediss" => (true, false),
        "redis+cluster" => (false, true),
        "rediss+cluster" => (true, true),
        "unix" | "redis+unix" => {
            return Err(format!(
                "is a Unix socket, which the Redis broker does not support ({REDIS_URL_SYNTAX})"
            ));
        }
        _ => return Err(format!("has an unsupported scheme ({REDIS_URL_SYNTAX})")),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, suffix) = rest.split_at(authority_end);
    if suffix.contains('#') {
        // The Redis client reads `#insecure` as "TLS without checking the server's certificate":
        // a man in the middle would read every publication and presence.
        return Err(
            "has a `#` fragment, which is refused (`#insecure` would turn off the check of \
             the server's certificate; give its CA with broker.tls_ca_file instead, and \
             percent-encode a `#` in a password as %23)"
                .to_owned(),
        );
    }
    let path_end = suffix.find(['?', '#']).unwrap_or(suffix.len());
    let path = &suffix[..path_end];
    let db = path.strip_prefix('/').unwrap_or(path);
    if !db.is_empty() {
        if !db.bytes().all(|b| b.is_ascii_digit()) || db.parse::<u32>().is_err() {
            return Err("has a path that is not a database number (e.g. /0)".to_owned());
        }
        if cluster && db.parse::<u32>() != Ok(0) {
            return Err(
                "has a database number, but a Redis Cluster only has database 0".to_owned(),
            );
        }
    }
    let base = if tls { "rediss" } else { "redis" };

    if !cluster {
        if authority.contains('|') {
            return Err(format!(
                "has `|`, which separates seeds of redis+cluster:// URLs only ({REDIS_URL_SYNTAX})"
            ));
        }
        let host_port = match authority.rfind('@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        let endpoint = parse_host_port(host_port).map_err(|why| with_comma_hint(why, host_port))?;
        return Ok((
            RedisShardConfig::Standalone {
                url: entry.to_owned(),
            },
            vec![endpoint],
        ));
    }

    let mut seeds = authority.split('|');
    let first = seeds.next().unwrap_or_default();
    let (userinfo, first) = match first.rfind('@') {
        Some(at) => (&first[..=at], &first[at + 1..]),
        None => ("", first),
    };
    let mut urls = Vec::new();
    let mut endpoints = Vec::new();
    for (n, seed) in std::iter::once(first).chain(seeds).enumerate() {
        if seed.contains('@') {
            return Err("has user:password on a seed other than the first; give it once, before the first seed, and it applies to every seed".to_owned());
        }
        endpoints.push(
            parse_host_port(seed)
                .map_err(|why| with_comma_hint(format!("{why} in seed {}", n + 1), seed))?,
        );
        urls.push(format!("{base}://{userinfo}{seed}{suffix}"));
    }
    Ok((RedisShardConfig::Cluster { urls }, endpoints))
}

/// `why`, plus a hint when `part` has the `,` someone used to separate cluster seeds.
fn with_comma_hint(why: String, part: &str) -> String {
    if part.contains(',') {
        format!(
            "{why} (cluster seeds are separated by `|`, not `,`: redis+cluster://host1:7000|host2:7001)"
        )
    } else {
        why
    }
}

/// Checks `host[:port]` (IPv6 in brackets) and returns it lower-cased with the port filled in
/// (6379 when omitted).
fn parse_host_port(host_port: &str) -> Result<String, String> {
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an unclosed [ in its IPv6 host".to_owned());
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has an invalid IPv6 host".to_owned());
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err("has an invalid port (expected a number in 1..=65535)".to_owned());
                }
            },
        };
        (&host_port[..addr.len() + 2], port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err("has an invalid host".to_owned());
    }
    let port = match port {
        None => 6379,
        Some(port) => match port.parse::<u16>() {
            Ok(n) if n > 0 && port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err("has an invalid port (expected a number in 1..=65535)".to_owned()),
        },
    };
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

fn in_range(
    key: &str,
    value: i64,
    range: std::ops::RangeInclusive<usize>,
    problems: &mut Vec<String>,
) -> usize {
    match usize::try_from(value) {
        Ok(v) if range.contains(&v) => v,
        _ => {
            problems.push(format!(
                "{key}: must be in {}..={} (got {value})",
                range.start(),
                range.end()
            ));
            *range.start()
        }
    }
}

fn valid_namespace_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks an `allowed_origins` entry; returns it lower-cased and without a trailing slash, the
/// way browsers send the `Origin` header. `*` may stand for subdomains (`https://*.example.com`).
fn check_origin(origin: &str) -> Result<String, &'static str> {
    if origin == "*" {
        return Ok(origin.to_owned());
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err("has no scheme");
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err("has an invalid scheme");
    }
    if rest.is_empty() {
        return Err("has no host");
    }
    // Browsers send no trailing slash; tolerate one in the configuration.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err("has no host");
    }
    if rest.contains(['/', '?', '#']) {
        return Err("must not have a path");
    }
    // A wildcard stands for subdomains only: the whole leading label of the host, `*.`.
    // Anywhere else (`*example.com`, `a.example.com*`, `a.*.example.com`) it would admit sites
    // that merely end or start with the same letters.
    let wildcard_host = rest.strip_prefix("*.");
    let host = wildcard_host.unwrap_or(rest);
    if host.contains('*') {
        return Err(
            "has a `*` that is not the whole leading label of the host (`https://*.example.com`)",
        );
    }
    if wildcard_host.is_some_and(|h| h.is_empty() || h.starts_with([':', '.'])) {
        return Err("has a `*.` without a domain after it");
    }
    Ok(format!("{scheme}://{rest}").to_ascii_lowercase())
}

/// The host name, or `herald` when it cannot be found.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "herald".to_owned())
}

/// `bytes` random bytes, hex-encoded.
fn random_hex(bytes: usize) -> String {
    use rand::RngCore as _;
    use std::fmt::Write as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter()
        .fold(String::with_capacity(bytes * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
