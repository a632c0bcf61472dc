//! The engine's own validated configuration. The binary builds it from the file/env/flag layers;
//! the engine never sees raw configuration.

use std::time::Duration;

/// Options a channel gets from its namespace (or from the top-level `[channels]` section for
/// channels without a namespace). All permissions are off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// Any authenticated client may subscribe without a subscription token.
    pub allow_subscribe_for_client: bool,
    /// A client subscribed to the channel may publish into it.
    pub allow_publish_for_subscriber: bool,
    /// Any authenticated client may publish into the channel, subscribed or not.
    pub allow_publish_for_client: bool,
    /// Channels like `news#42` or `dialog#42,43` may be subscribed by the listed users only.
    pub allow_user_limited_channels: bool,
}

/// A named namespace: channel `chat:room1` belongs to namespace `chat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub options: ChannelOptions,
}

/// Channel rules of a node.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Options of channels without a namespace.
    pub without_namespace: ChannelOptions,
    pub namespaces: Vec<Namespace>,
    /// Longest accepted channel name, in bytes.
    pub max_channel_length: usize,
    /// Most channels one connection may be subscribed to.
    pub max_channels_per_client: usize,
    /// Dev mode: every client may subscribe to (and publish into) any channel.
    pub insecure: bool,
}

/// Limits and timings of client sessions.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Interval of server pings (`{}` in JSON); the first one is jittered into `[interval/2, interval)`.
    pub ping_interval: Duration,
    /// How long a client has to answer a ping before it is closed with 3012.
    pub pong_timeout: Duration,
    /// How long a new connection may stay without a connect command before it is closed with 3502.
    pub connect_timeout: Duration,
    /// Bytes a connection may have queued for writing before it is closed with 3008 (slow).
    pub max_queue_bytes: usize,
    /// Largest inbound message, in bytes (the transport closes with 1009 above it).
    pub max_message_size: usize,
    /// Grace after a connection token expires before the client is closed with 3005.
    pub expired_close_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            max_queue_bytes: 1024 * 1024,
            max_message_size: 64 * 1024,
            expired_close_delay: Duration::from_secs(25),
        }
    }
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            without_namespace: ChannelOptions::default(),
            namespaces: Vec::new(),
            max_channel_length: 255,
            max_channels_per_client: 128,
            insecure: false,
        }
    }
}

/// The key connection and subscription tokens are verified with. The kind of key pins the
/// algorithm family, so a token can never pick a weaker check (`alg: none`, HS256 signed with a
/// public key, ...).
#[derive(Clone, PartialEq, Eq)]
pub enum TokenKey {
    /// Shared secret for HS256/HS384/HS512.
    Hmac(Vec<u8>),
    /// PEM public key for RS256/RS384/RS512 (and PS*).
    RsaPem(Vec<u8>),
    /// PEM public key for ES256/ES384.
    EcdsaPem(Vec<u8>),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug logs.
        match self {
            TokenKey::Hmac(_) => f.write_str("Hmac(<redacted>)"),
            TokenKey::RsaPem(_) => f.write_str("RsaPem(..)"),
            TokenKey::EcdsaPem(_) => f.write_str("EcdsaPem(..)"),
        }
    }
}

/// How tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub key: TokenKey,
    /// When set, the `aud` claim must contain it.
    pub audience: Option<String>,
    /// When set, the `iss` claim must equal it.
    pub issuer: Option<String>,
}
