//! The raw, unvalidated configuration as it comes out of the file/env/flag layers.
//!
//! Every section rejects unknown keys (`deny_unknown_fields`) so a typo is an error that names
//! the key instead of a silently ignored setting. Every key has a default in code; the values are
//! checked and converted by [`super::Config::build_and_validate`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Names of the top-level sections, in the order they are documented.
pub(crate) const SECTIONS: &[&str] = &[
    "server",
    "auth",
    "api",
    "broker",
    "channels",
    "client",
    "admin",
    "telemetry",
    "socketio",
];

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    /// Address to listen on, `host:port`. Default `127.0.0.1:8000`; use `0.0.0.0:8000` in a
    /// container.
    pub listen: String,
    /// Browser `Origin` values allowed to connect (`"*"` = any). Requests without an `Origin`
    /// header (servers, mobile apps, CLI tools) always pass. In the environment: a
    /// comma-separated list.
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
    /// Node name shown in logs and stats. Default: the host name, or `herald`.
    pub name: Option<String>,
    /// How long a graceful shutdown waits for connections to close. Default `10s`.
    pub shutdown_timeout: String,
    /// How often the node tells the other nodes it is alive (shown by `/api/info`); a node
    /// silent for three intervals is forgotten. Default `3s`.
    pub heartbeat_interval: String,
    /// Worker threads serving connections. Default: one per CPU.
    pub workers: Option<usize>,
    /// Pending connections the kernel queues before the node accepts them. Default 4096.
    pub backlog: u32,
    /// Serve the HTTP-streaming fallback transport. Default true.
    pub http_stream: bool,
    /// Serve the SSE fallback transport. Default true.
    pub sse: bool,
    /// Serve the unidirectional WebSocket (`/connection/uni_websocket`). Default true.
    pub uni_websocket: bool,
    /// Serve the unidirectional SSE (`/connection/uni_sse`). Default true.
    pub uni_sse: bool,
    /// Serve the unidirectional HTTP streaming (`/connection/uni_http_stream`). Default true.
    pub uni_http_stream: bool,
    /// What runs `/connection/websocket`: `lean` (Herald's own frame loop on actix-http's
    /// upgrade hook) or `actix-ws`. Default `lean`.
    pub websocket_engine: String,
    /// A second listener, `host:port`, for the server API, `/metrics` and the detailed
    /// `/ready`; the public one then carries client endpoints only. Default: none.
    pub internal_listen: Option<String>,
    /// `text` or `json`. Default `text`.
    pub log_format: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".to_owned(),
            allowed_origins: Vec::new(),
            name: None,
            shutdown_timeout: "10s".to_owned(),
            heartbeat_interval: "3s".to_owned(),
            workers: None,
            backlog: 4096,
            http_stream: true,
            sse: true,
            uni_websocket: true,
            uni_sse: true,
            uni_http_stream: true,
            websocket_engine: "lean".to_owned(),
            internal_listen: None,
            log_format: "text".to_owned(),
        }
    }
}

/// `[auth]`: how connection and subscription tokens are verified.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuth {
    /// Shared secret for HS256/HS384/HS512 tokens.
    pub hmac_secret: Option<String>,
    /// While rotating the HMAC secret: the secret being retired, whose tokens still verify.
    /// Only with `hmac_secret`.
    pub previous_hmac_secret: Option<String>,
    /// PEM public key for RS256/RS384/RS512 (and PS*) tokens.
    pub rsa_public_key: Option<String>,
    /// PEM public key for ES256/ES384 tokens.
    pub ecdsa_public_key: Option<String>,
    /// `http(s)://` URL of a JWKS whose RSA and EC keys verify tokens, picked by `kid`.
    pub jwks_url: Option<String>,
    /// How often the JWKS is fetched again. Default `5m` (set: only with `jwks_url`).
    pub jwks_refresh_interval: Option<String>,
    /// When set, the token's `aud` claim must contain it.
    pub audience: Option<String>,
    /// When set, the token's `iss` claim must equal it.
    pub issuer: Option<String>,
}

impl fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never reach a log, not even a debug one.
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("RawAuth")
            .field("hmac_secret", &redact(&self.hmac_secret))
            .field("previous_hmac_secret", &redact(&self.previous_hmac_secret))
            .field("rsa_public_key", &self.rsa_public_key)
            .field("ecdsa_public_key", &self.ecdsa_public_key)
            .field(
                "jwks_url",
                &self
                    .jwks_url
                    .as_deref()
                    .map(herald_engine::config::redact_url),
            )
            .field("jwks_refresh_interval", &self.jwks_refresh_interval)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// `[api]`: the server API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawApi {
    /// Key of the server API (`Authorization: apikey <key>` or `X-API-Key: <key>`).
    pub key: Option<String>,
}

/// `[broker]`: how nodes exchange publications. Every key but `kind` is used by the Redis broker
/// only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBroker {
    /// `memory` (a single node: publications reach the clients of this node only) or `redis`
    /// (nodes share publications through Redis PUB/SUB). Default `memory`.
    pub kind: String,
    /// Redis servers; each entry is one independent shard that holds a share of the channels.
    /// In the environment: a comma-separated list. Entries:
    /// - `redis://[user:password@]host[:port][/db]` (`rediss://` for TLS; port default 6379):
    ///   one Redis server;
    /// - `redis+cluster://[user:password@]host1:port1|host2:port2|...` (`rediss+cluster://` for
    ///   TLS): one Redis Cluster, given by its seed nodes separated by `|` (never `,`, which
    ///   separates entries in the environment); the user/password of the first seed applies to
    ///   every seed.
    ///
    /// Passwords must be percent-encoded if they contain `@ : / ? # | %` or spaces.
    /// Default (when unset): `["redis://127.0.0.1:6379"]`; an empty list is an error with
    /// `kind = "redis"`. `None` = not set anywhere (a warning when `kind = "memory"`).
    #[serde(deserialize_with = "optional_string_list")]
    pub redis_urls: Option<Vec<String>>,
    /// Prefix of every Redis channel and key Herald uses, `^[A-Za-z0-9_.:-]{1,64}$`, so several
    /// Herald clusters can share one Redis. Default `herald`.
    pub prefix: String,
    /// How long connecting to Redis may take, `(0, 60s]`. Default `1s`.
    pub connect_timeout: String,
    /// How long a Redis command (publish, subscribe) may take before it fails, `(0, 60s]`.
    /// Default `1s`.
    pub command_timeout: String,
    /// Dedicated PUB/SUB connections per shard for channel subscriptions, 1..=64. Default 2.
    pub pubsub_connections: i64,
    /// Most pooled connections per shard for publishing, 1..=1024. Default 32.
    pub pool_size: i64,
    /// Path of a PEM file with the CA certificate(s) that sign the Redis servers' certificates,
    /// for `rediss://` / `rediss+cluster://` entries (instead of the built-in webpki roots).
    /// Read at start: an unreadable file or one without a PEM certificate is an error; a
    /// warning when no entry uses TLS. Default: unset (webpki roots).
    pub tls_ca_file: Option<String>,
}

impl Default for RawBroker {
    fn default() -> Self {
        Self {
            kind: "memory".to_owned(),
            redis_urls: None,
            prefix: "herald".to_owned(),
            connect_timeout: "1s".to_owned(),
            command_timeout: "1s".to_owned(),
            pubsub_connections: 2,
            pool_size: 32,
            tls_ca_file: None,
        }
    }
}

/// `[channels]`: options of channels without a namespace, limits, and the namespaces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawChannels {
    pub allow_subscribe_for_client: bool,
    pub allow_publish_for_subscriber: bool,
    pub allow_publish_for_client: bool,
    pub allow_user_limited_channels: bool,
    pub history_size: i64,
    pub history_ttl: String,
    pub force_recovery: bool,
    pub allow_recovery: bool,
    pub force_positioning: bool,
    pub presence: bool,
    pub join_leave: bool,
    pub force_push_join_leave: bool,
    pub allow_history_for_subscriber: bool,
    pub allow_presence_for_subscriber: bool,
    /// Longest accepted channel name, in bytes. Default 255.
    pub max_channel_length: i64,
    /// Most channels one connection may be subscribed to. Default 128.
    pub max_channels_per_client: i64,
    pub namespaces: Vec<RawNamespace>,
}

impl Default for RawChannels {
    fn default() -> Self {
        Self {
            allow_subscribe_for_client: false,
            allow_publish_for_subscriber: false,
            allow_publish_for_client: false,
            allow_user_limited_channels: false,
            history_size: 0,
            history_ttl: "0s".to_owned(),
            force_recovery: false,
            allow_recovery: false,
            force_positioning: false,
            presence: false,
            join_leave: false,
            force_push_join_leave: false,
            allow_history_for_subscriber: false,
            allow_presence_for_subscriber: false,
            max_channel_length: 255,
            max_channels_per_client: 128,
            namespaces: Vec::new(),
        }
    }
}

/// One `[[channels.namespaces]]` entry: a name and the same options as `[channels]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawNamespace {
    pub name: String,
    pub allow_subscribe_for_client: bool,
    pub allow_publish_for_subscriber: bool,
    pub allow_publish_for_client: bool,
    pub allow_user_limited_channels: bool,
    pub history_size: i64,
    pub history_ttl: String,
    pub force_recovery: bool,
    pub allow_recovery: bool,
    pub force_positioning: bool,
    pub presence: bool,
    pub join_leave: bool,
    pub force_push_join_leave: bool,
    pub allow_history_for_subscriber: bool,
    pub allow_presence_for_subscriber: bool,
}

impl Default for RawNamespace {
    fn default() -> Self {
        let c = RawChannels::default();
        Self {
            name: String::new(),
            allow_subscribe_for_client: c.allow_subscribe_for_client,
            allow_publish_for_subscriber: c.allow_publish_for_subscriber,
            allow_publish_for_client: c.allow_publish_for_client,
            allow_user_limited_channels: c.allow_user_limited_channels,
            history_size: c.history_size,
            history_ttl: c.history_ttl,
            force_recovery: c.force_recovery,
            allow_recovery: c.allow_recovery,
            force_positioning: c.force_positioning,
            presence: c.presence,
            join_leave: c.join_leave,
            force_push_join_leave: c.force_push_join_leave,
            allow_history_for_subscriber: c.allow_history_for_subscriber,
            allow_presence_for_subscriber: c.allow_presence_for_subscriber,
        }
    }
}

/// The channel options of `[channels]` or of one namespace, borrowed, so both are validated
/// and converted by one function.
pub(crate) struct RawOptions<'a> {
    pub allow_subscribe_for_client: bool,
    pub allow_publish_for_subscriber: bool,
    pub allow_publish_for_client: bool,
    pub allow_user_limited_channels: bool,
    pub history_size: i64,
    pub history_ttl: &'a str,
    pub force_recovery: bool,
    pub allow_recovery: bool,
    pub force_positioning: bool,
    pub presence: bool,
    pub join_leave: bool,
    pub force_push_join_leave: bool,
    pub allow_history_for_subscriber: bool,
    pub allow_presence_for_subscriber: bool,
}

macro_rules! raw_options {
    ($from:expr) => {{
        let r = $from;
        RawOptions {
            allow_subscribe_for_client: r.allow_subscribe_for_client,
            allow_publish_for_subscriber: r.allow_publish_for_subscriber,
            allow_publish_for_client: r.allow_publish_for_client,
            allow_user_limited_channels: r.allow_user_limited_channels,
            history_size: r.history_size,
            history_ttl: &r.history_ttl,
            force_recovery: r.force_recovery,
            allow_recovery: r.allow_recovery,
            force_positioning: r.force_positioning,
            presence: r.presence,
            join_leave: r.join_leave,
            force_push_join_leave: r.force_push_join_leave,
            allow_history_for_subscriber: r.allow_history_for_subscriber,
            allow_presence_for_subscriber: r.allow_presence_for_subscriber,
        }
    }};
}

impl RawChannels {
    pub fn options(&self) -> RawOptions<'_> {
        raw_options!(self)
    }
}

impl RawNamespace {
    pub fn options(&self) -> RawOptions<'_> {
        raw_options!(self)
    }
}

/// `[client]`: limits and timings of client sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawClient {
    pub ping_interval: String,
    pub pong_timeout: String,
    pub connect_timeout: String,
    pub max_queue_size: i64,
    pub max_message_size: i64,
    pub expired_close_delay: String,
    pub write_delay: String,
    pub write_timeout: String,
    pub presence_update_interval: String,
    pub presence_ttl: String,
    pub channel_position_check_delay: String,
    pub expired_sub_close_delay: String,
    pub connection_limit: i64,
    pub user_connection_limit: i64,
    pub connection_rate_limit: i64,
    pub command_rate_limit: i64,
    pub command_rate_burst: i64,
}

impl Default for RawClient {
    fn default() -> Self {
        Self {
            ping_interval: "25s".to_owned(),
            pong_timeout: "8s".to_owned(),
            connect_timeout: "10s".to_owned(),
            max_queue_size: 1024 * 1024,
            max_message_size: 64 * 1024,
            expired_close_delay: "25s".to_owned(),
            write_delay: "0s".to_owned(),
            write_timeout: "1s".to_owned(),
            presence_update_interval: "25s".to_owned(),
            presence_ttl: "60s".to_owned(),
            channel_position_check_delay: "40s".to_owned(),
            expired_sub_close_delay: "25s".to_owned(),
            connection_limit: 0,
            user_connection_limit: 0,
            connection_rate_limit: 0,
            command_rate_limit: 100,
            command_rate_burst: 200,
        }
    }
}

/// `[admin]`: the admin page at `/` on the operator listener.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    /// Serve the admin page. Default: on in dev mode, off otherwise.
    pub enabled: Option<bool>,
    /// The page's login password; required when the page is on outside dev mode.
    pub password: Option<String>,
    /// How long a login lasts. Default `12h`.
    pub session_ttl: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            enabled: None,
            password: None,
            session_ttl: "12h".to_owned(),
        }
    }
}

/// `[telemetry]`: OpenTelemetry trace export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTelemetry {
    /// Base URL of an OTLP/HTTP collector (`http://collector:4318`); spans go to
    /// `<url>/v1/traces`. Default: none (tracing off).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans. Default `herald`.
    pub service_name: String,
    /// Share of new traces recorded, 0.0 to 1.0; a request that carries a trace context
    /// follows its parent's decision. Default 1.0.
    pub sampling_ratio: f64,
    /// How long one export may take before it is given up. Default `10s`.
    pub export_timeout: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "herald".to_owned(),
            sampling_ratio: 1.0,
            export_timeout: "10s".to_owned(),
        }
    }
}

/// `[socketio]`: Socket.IO v4 clients on `/socket.io/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSocketIo {
    /// Serve Socket.IO clients on `/socket.io/`. Default true.
    pub enabled: bool,
    /// The largest polling request body and WebSocket message, in bytes (Engine.IO's
    /// `maxPayload`). Default 1000000.
    pub max_payload: usize,
    /// Connection state recovery: after a reconnect, a client's subscriptions come back with
    /// what it missed in channels with history. Default false.
    pub recovery: bool,
}

impl Default for RawSocketIo {
    fn default() -> Self {
        Self {
            enabled: true,
            max_payload: 1_000_000,
            recovery: false,
        }
    }
}

impl fmt::Debug for RawAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAdmin")
            .field("enabled", &self.enabled)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}

/// All sections. A section that failed to deserialize keeps its defaults and is listed in
/// `failed`, so checks that span sections can stay quiet about it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub auth: RawAuth,
    pub api: RawApi,
    pub broker: RawBroker,
    pub channels: RawChannels,
    pub client: RawClient,
    pub admin: RawAdmin,
    pub telemetry: RawTelemetry,
    pub socketio: RawSocketIo,
    /// `--dev` was given: generate the keys and open the channels (not a file or env key).
    pub dev: bool,
    /// Sections that could not be read (their problems are in `problems`).
    pub failed: Vec<&'static str>,
    /// Problems found while reading the sections, each naming its key.
    pub problems: Vec<String>,
}

impl RawConfig {
    /// Splits the merged layers into sections and deserializes each one on its own, so a problem
    /// in one section does not hide the problems of the others.
    pub(crate) fn from_merged(merged: &::config::Config) -> RawConfig {
        let mut raw = RawConfig::default();
        let mut top: BTreeMap<String, ::config::Value> = match merged.clone().try_deserialize() {
            Ok(top) => top,
            Err(err) => {
                raw.problems.push(format!("configuration root: {err}"));
                return raw;
            }
        };
        for name in top.keys() {
            if !SECTIONS.contains(&name.as_str()) {
                let hint = did_you_mean(name, SECTIONS)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                raw.problems.push(format!(
                    "{name}: unknown section ({hint}known sections: {})",
                    SECTIONS.join(", ")
                ));
            }
        }
        section(&mut raw, &mut top, "server", |raw, v| raw.server = v);
        section(&mut raw, &mut top, "auth", |raw, v| raw.auth = v);
        section(&mut raw, &mut top, "api", |raw, v| raw.api = v);
        section(&mut raw, &mut top, "broker", |raw, v| raw.broker = v);
        section(&mut raw, &mut top, "channels", |raw, v| raw.channels = v);
        section(&mut raw, &mut top, "client", |raw, v| raw.client = v);
        section(&mut raw, &mut top, "admin", |raw, v| raw.admin = v);
        section(&mut raw, &mut top, "telemetry", |raw, v| raw.telemetry = v);
        section(&mut raw, &mut top, "socketio", |raw, v| raw.socketio = v);
        raw
    }
}

fn section<T: for<'de> Deserialize<'de>>(
    raw: &mut RawConfig,
    top: &mut BTreeMap<String, ::config::Value>,
    name: &'static str,
    set: impl FnOnce(&mut RawConfig, T),
) {
    let Some(value) = top.remove(name) else {
        return;
    };
    match T::deserialize(value) {
        Ok(v) => set(raw, v),
        Err(err) => {
            raw.failed.push(name);
            raw.problems.push(describe(name, err));
        }
    }
}

/// Turns a `config` deserialization error into `<full.key>: <problem>`.
fn describe(section: &str, err: ::config::ConfigError) -> String {
    use ::config::ConfigError as E;
    let join = |key: Option<&str>| match key.map(fix_path).as_deref() {
        None | Some("") => section.to_owned(),
        Some(k) if k.starts_with('[') => format!("{section}{k}"),
        Some(k) => format!("{section}.{k}"),
    };
    let from = |origin: &Option<String>| match origin.as_deref() {
        Some(o) => format!(" (from {o})"),
        None => String::new(),
    };
    match err {
        E::Type {
            origin,
            unexpected,
            expected,
            key,
        } => format!(
            "{}: invalid value: {unexpected}, expected {expected}{}",
            join(key.as_deref()),
            from(&origin)
        ),
        E::At { error, origin, key } => {
            let path = join(key.as_deref());
            match *error {
                E::Message(msg) => format!("{}{}", message(&path, &msg), from(&origin)),
                E::NotFound(field) => format!("{path}.{field}: is required"),
                other => format!("{path}: {other}{}", from(&origin)),
            }
        }
        E::NotFound(key) => format!("{}: is required", join(Some(&key))),
        E::Message(msg) => message(section, &msg),
        other => format!("{section}: {other}"),
    }
}

/// `config` joins an index and a following field without a dot (`namespaces[0]name`); put it back.
fn fix_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']' && chars.peek().is_some_and(|n| *n != '[' && *n != '.') {
            out.push('.');
        }
    }
    out
}

/// Rewrites serde's `unknown field `x`, expected one of ...` into `<path>.x: unknown key ...`.
fn message(path: &str, msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let expected = expected.trim_start_matches(", ");
        let known: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        return match did_you_mean(field, &known) {
            Some(s) => format!("{path}.{field}: unknown key (did you mean `{s}`?)"),
            None => format!("{path}.{field}: unknown key ({expected})"),
        };
    }
    format!("{path}: {msg}")
}

/// The closest known name, when it is close enough to be a likely typo.
fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A list of strings given as a list (files) or as one comma-separated string (environment).
/// Entries are trimmed; empty entries are dropped, so `""` and `[]` are both the empty list.
fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings or a comma-separated string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                let item = item.trim();
                if !item.is_empty() {
                    out.push(item.to_owned());
                }
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(ListVisitor)
}

/// [`string_list`] for keys whose absence matters: `Some` whenever the key is set, even to `[]`.
fn optional_string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    string_list(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_hint() {
        assert_eq!(
            did_you_mean(
                "alow_subscribe_for_client",
                &["allow_subscribe_for_client", "name"]
            ),
            Some("allow_subscribe_for_client")
        );
        assert_eq!(did_you_mean("sever", SECTIONS), Some("server"));
        assert_eq!(did_you_mean("zzzzzz", SECTIONS), None);
        assert_eq!(fix_path("namespaces[0]name"), "namespaces[0].name");
        assert_eq!(fix_path("a[0][1].b"), "a[0][1].b");
    }
}
