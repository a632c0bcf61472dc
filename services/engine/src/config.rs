//! The engine's own validated configuration. The binary builds it from the file/env/flag layers;
//! the engine never sees raw configuration.

use std::time::Duration;

/// Options a channel gets from its namespace (or from the top-level `[channels]` section for
/// channels without a namespace). All permissions and features are off by default; the meaning
/// of each is Centrifugo's.
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
    /// Publications kept per channel (0 = no history). With `history_ttl`, publications get
    /// offsets in a stream with an epoch, and subscribers can recover what they missed.
    pub history_size: usize,
    /// How long a channel's history is kept after its last publication (0 = no history).
    pub history_ttl: Duration,
    /// Every subscription is recoverable (the client need not ask).
    pub force_recovery: bool,
    /// A client may ask for a recoverable subscription.
    pub allow_recovery: bool,
    /// Every subscription is positioned: the node watches offsets and makes the client
    /// recover (unsubscribe 2500 / disconnect 3010) when it missed a publication.
    pub force_positioning: bool,
    /// The channel keeps presence (who is subscribed, on every node).
    pub presence: bool,
    /// Joins and leaves are sent to subscribers that asked for them.
    pub join_leave: bool,
    /// Joins and leaves are sent to every subscriber, asked or not.
    pub force_push_join_leave: bool,
    /// Subscribers may read the channel's history.
    pub allow_history_for_subscriber: bool,
    /// Subscribers may read the channel's presence.
    pub allow_presence_for_subscriber: bool,
}

impl ChannelOptions {
    /// Whether publications into the channel are kept (and so get offsets).
    pub fn has_history(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
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
    /// A connection writes at most once per this interval; what arrives meanwhile is joined into
    /// the next frame. A message after a quiet period still goes out at once, so it costs
    /// latency only under load, where it saves one write (a syscall and a frame) per message.
    /// Zero writes as soon as anything is queued.
    pub write_delay: Duration,
    /// A client socket that takes no bytes for this long is closed (3008): a client that stopped
    /// reading does not keep its connection and what is queued for it. Applied by transports.
    pub write_timeout: Duration,
    /// How often a node refreshes its clients' presence entries.
    pub presence_update_interval: Duration,
    /// How long a presence entry lives without a refresh: the clients of a node that died
    /// without a goodbye leave presence after this.
    pub presence_ttl: Duration,
    /// How often a connection compares each positioned subscription with its channel's
    /// stream, to catch a lost publication that no later one reveals (0: never).
    pub channel_position_check_delay: Duration,
    /// Grace after a subscription token expires before the subscription ends with
    /// unsubscribe 2501 (the SDK resubscribes with a fresh token), unless `sub_refresh`
    /// brought a new one.
    pub expired_sub_close_delay: Duration,
    /// Most connected clients on this node (0: no limit); past it a connect is refused with
    /// disconnect 3504.
    pub connection_limit: usize,
    /// Most connections of one user on this node (0: no limit; anonymous clients are not
    /// counted per user); past it a connect is refused with disconnect 3504.
    pub user_connection_limit: usize,
    /// Most connects this node accepts per second (0: no limit); past it a connect gets error
    /// 111, which the SDKs retry with backoff.
    pub connection_rate_limit: u32,
    /// Commands a connection may send per second, on average (0: no limit); past it a command
    /// gets error 111 without being run.
    pub command_rate_limit: u32,
    /// Commands a connection may send at once above the average rate (a token bucket's size).
    pub command_rate_burst: u32,
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
            write_delay: Duration::ZERO,
            write_timeout: Duration::from_secs(1),
            presence_update_interval: Duration::from_secs(25),
            presence_ttl: Duration::from_secs(60),
            channel_position_check_delay: Duration::from_secs(40),
            expired_sub_close_delay: Duration::from_secs(25),
            connection_limit: 0,
            user_connection_limit: 0,
            connection_rate_limit: 0,
            command_rate_limit: 100,
            command_rate_burst: 200,
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
    /// RSA and EC public keys fetched from a JWKS endpoint, picked by the token's `kid`; each
    /// key pins its own algorithms (see [`crate::auth`]).
    Jwks(JwksConfig),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug logs.
        match self {
            TokenKey::Hmac(_) => f.write_str("Hmac(<redacted>)"),
            TokenKey::RsaPem(_) => f.write_str("RsaPem(..)"),
            TokenKey::EcdsaPem(_) => f.write_str("EcdsaPem(..)"),
            TokenKey::Jwks(jwks) => f.debug_tuple("Jwks").field(jwks).finish(),
        }
    }
}

/// Where and how often the keys of a JWKS ([`TokenKey::Jwks`]) are fetched.
#[derive(Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// `http://` or `https://` URL serving a JSON Web Key Set (`{"keys": [...]}`).
    pub url: String,
    /// How often the keys are fetched again, so that a key the issuer removed stops verifying.
    pub refresh_interval: Duration,
    /// A token whose `kid` is not cached has the keys fetched again, but at most once per this
    /// interval, so that tokens with made-up `kid`s cannot make the node hammer the endpoint.
    /// Also the retry interval after a failed fetch.
    pub min_refresh_interval: Duration,
    /// Longest a fetch may take, connect to last byte.
    pub timeout: Duration,
}

impl JwksConfig {
    /// Default of [`JwksConfig::refresh_interval`].
    pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
    /// Default of [`JwksConfig::min_refresh_interval`].
    pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
    /// Default of [`JwksConfig::timeout`].
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    /// The keys at `url`, with the default intervals and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            refresh_interval: Self::REFRESH_INTERVAL,
            min_refresh_interval: Self::MIN_REFRESH_INTERVAL,
            timeout: Self::TIMEOUT,
        }
    }
}

impl std::fmt::Debug for JwksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry credentials.
        f.debug_struct("JwksConfig")
            .field("url", &redact_url(&self.url))
            .field("refresh_interval", &self.refresh_interval)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub key: TokenKey,
    /// While keys rotate: a second key tokens may be signed with (the one being retired). A
    /// token verifies if either key verifies it; each pins its own algorithms. Not a JWKS (a
    /// JWKS rotates by serving several keys).
    pub previous_key: Option<TokenKey>,
    /// When set, the `aud` claim must contain it.
    pub audience: Option<String>,
    /// When set, the `iss` claim must equal it.
    pub issuer: Option<String>,
}

/// One Redis deployment that holds a share of the channels.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisShardConfig {
    /// A single Redis server (`redis://` or `rediss://` URL, password and db in the URL).
    Standalone { url: String },
    /// A Redis Cluster, given by one or more seed node URLs; channels use sharded PUB/SUB.
    Cluster { urls: Vec<String> },
}

impl std::fmt::Debug for RedisShardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry passwords.
        match self {
            RedisShardConfig::Standalone { url } => {
                write!(f, "Standalone({})", redact_url(url))
            }
            RedisShardConfig::Cluster { urls } => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// A URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The Redis broker: nodes meet through Redis PUB/SUB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Independent shards; a channel lives on one, chosen by a consistent hash of its name.
    pub shards: Vec<RedisShardConfig>,
    /// Prefix of every Redis channel and key Herald uses.
    pub prefix: String,
    /// How long connecting to Redis may take.
    pub connect_timeout: Duration,
    /// How long a Redis command (publish, subscribe) may take before the caller gets an error.
    pub command_timeout: Duration,
    /// Dedicated PUB/SUB connections per shard for channel subscriptions.
    pub pubsub_connections: usize,
    /// Most pooled connections per shard for publishing.
    pub pool_size: usize,
    /// PEM of the CA(s) that sign the Redis servers' certificates, trusted for `rediss://`
    /// shards instead of the built-in (webpki) roots. `None` = the webpki roots. Ignored for
    /// plain `redis://` shards. Certificates are always verified, host name included.
    pub tls_ca_cert: Option<Vec<u8>>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            shards: vec![RedisShardConfig::Standalone {
                url: "redis://127.0.0.1:6379".into(),
            }],
            prefix: "herald".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            pubsub_connections: 2,
            pool_size: 32,
            tls_ca_cert: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("redis://:s3cret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:pw@h:6379"),
            "rediss://user:***@h:6379"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
