//! The Redis broker: nodes meet through Redis PUB/SUB.
//!
//! Per node and channel there is one SUBSCRIBE (taken for the first local subscriber, dropped
//! after the last), and per publication one PUBLISH: Redis traffic never grows with clients.
//! Channels are spread over independent shards by a consistent hash of their name, and within a
//! shard over several dedicated PUB/SUB connections. Publishing uses pooled connections. All
//! Redis I/O runs on the broker's own small runtime, so it neither depends on nor stalls the
//! runtime of whoever calls it (actix workers, tests).

mod cluster;
mod history;
mod jump;
mod presence;
mod pubsub;
mod standalone;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use herald_protocol::proto::{ClientInfo, Publication};
use prost::Message as _;

use super::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    NodeCommand, Presence, PresenceStats, StreamPosition,
};

use crate::config::{RedisConfig, RedisShardConfig, redact_url};
use pubsub::{Connector, PubSub, Worker};

/// Join and leave messages share the channel's PUB/SUB channel, marked (a protobuf
/// `Publication` never starts with `_`).
const JOIN: &[u8] = b"__j__";
const LEAVE: &[u8] = b"__l__";

pub struct RedisBroker {
    config: RedisConfig,
    runtime: OwnedRuntime,
    shards: Vec<Arc<Shard>>,
    /// PUB/SUB connections, created by `start` (they need the handler).
    pubsubs: OnceLock<Vec<Vec<PubSub>>>,
    channel_prefix: String,
    command_channel: String,
    /// `<prefix>.node.`: followed by a node's uid, the channel of messages to that node alone.
    node_channel_prefix: String,
    /// PUB/SUB connections established again after being lost, over every shard.
    reconnects: Arc<AtomicU64>,
}

/// One independent Redis deployment holding a share of the channels.
// A node has a handful of shards, each behind an `Arc`: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Shard {
    Standalone {
        label: String,
        client: redis::Client,
        pool: deadpool_redis::Pool,
    },
    Cluster(ClusterShard),
}

struct ClusterShard {
    label: String,
    urls: Vec<String>,
    client: redis::cluster::ClusterClient,
    /// Multiplexed: one connection per cluster node carries every publish.
    publisher: tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>,
}

impl Shard {
    fn new(config: &RedisConfig, shard: &RedisShardConfig) -> Result<Shard, BrokerError> {
        match shard {
            RedisShardConfig::Standalone { url } => {
                let label = redact_url(url);
                let bad =
                    |e: &dyn std::fmt::Display| BrokerError::Unavailable(format!("{label}: {e}"));
                let client =
                    standalone::client(url, config.tls_ca_cert.as_deref()).map_err(|e| bad(&e))?;
                // The pool connects with the client's connection info, TLS parameters included.
                let manager = deadpool_redis::Manager::new(client.get_connection_info().clone())
                    .map_err(|e| bad(&e))?;
                let pool = deadpool_redis::Pool::builder(manager)
                    .max_size(config.pool_size)
                    .wait_timeout(Some(config.command_timeout))
                    .create_timeout(Some(config.connect_timeout))
                    .recycle_timeout(Some(config.command_timeout))
                    .runtime(deadpool_redis::Runtime::Tokio1)
                    .build()
                    .map_err(|e| bad(&e))?;
                Ok(Shard::Standalone {
                    label,
                    client,
                    pool,
                })
            }
            RedisShardConfig::Cluster { urls } => {
                let label = format!(
                    "cluster({})",
                    urls.iter()
                        .map(|u| redact_url(u))
                        .collect::<Vec<_>>()
                        .join("|")
                );
                let client = cluster::client(urls, config)
                    .map_err(|e| BrokerError::Unavailable(format!("{label}: {e}")))?;
                Ok(Shard::Cluster(ClusterShard {
                    label,
                    urls: urls.clone(),
                    client,
                    publisher: tokio::sync::OnceCell::new(),
                }))
            }
        }
    }

    fn label(&self) -> &str {
        match self {
            Shard::Standalone { label, .. } => label,
            Shard::Cluster(cluster) => &cluster.label,
        }
    }

    fn connector(&self, config: &RedisConfig) -> Box<dyn Connector> {
        match self {
            Shard::Standalone { client, .. } => {
                Box::new(standalone::StandaloneConnector(client.clone()))
            }
            Shard::Cluster(cluster) => Box::new(cluster::ClusterConnector {
                urls: cluster.urls.clone(),
                config: config.clone(),
            }),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> BrokerError {
        BrokerError::Unavailable(format!("{}: {e}", self.label()))
    }

    /// Runs one command on this shard: pooled for a single server, multiplexed for a cluster.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BrokerError> {
        match self {
            Shard::Standalone { pool, label, .. } => {
                let mut conn = pool.get().await.map_err(|e| pool_error(label, e))?;
                cmd.query_async(&mut conn).await.map_err(|e| self.error(e))
            }
            Shard::Cluster(cluster) => {
                let conn = cluster
                    .publisher
                    .get_or_try_init(|| cluster.client.get_async_connection())
                    .await
                    .map_err(|e| self.error(e))?;
                cmd.query_async(&mut conn.clone())
                    .await
                    .map_err(|e| self.error(e))
            }
        }
    }

    /// Runs a Lua script (EVALSHA, loading it on first use) on a single-server shard.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'static>,
    ) -> Result<T, BrokerError> {
        match self {
            Shard::Standalone { pool, label, .. } => {
                let mut conn = pool.get().await.map_err(|e| pool_error(label, e))?;
                script
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| self.error(e))
            }
            Shard::Cluster(cluster) => {
                let conn = cluster
                    .publisher
                    .get_or_try_init(|| cluster.client.get_async_connection())
                    .await
                    .map_err(|e| self.error(e))?;
                script
                    .invoke_async(&mut conn.clone())
                    .await
                    .map_err(|e| self.error(e))
            }
        }
    }

    /// PUBLISH on a single server; sharded PUB/SUB's SPUBLISH on a cluster.
    fn publish_verb(&self) -> &'static str {
        match self {
            Shard::Standalone { .. } => "PUBLISH",
            Shard::Cluster(_) => "SPUBLISH",
        }
    }

    fn publish_command(&self, channel: &str, payload: Vec<u8>) -> redis::Cmd {
        let mut cmd = redis::cmd(self.publish_verb());
        cmd.arg(channel).arg(payload);
        cmd
    }
}

impl RedisBroker {
    pub fn new(config: RedisConfig) -> Result<RedisBroker, BrokerError> {
        // rustls needs a process-wide crypto provider for rediss:// URLs; a second install is a
        // harmless no-op error. `rediss://` shards verify the server certificate (and host name)
        // against `config.tls_ca_cert` when set, else against the webpki roots.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if config.shards.is_empty() {
            return Err(BrokerError::Unavailable("no redis shard configured".into()));
        }
        if let Some(ca) = &config.tls_ca_cert {
            Self::check_tls_ca_cert(ca)
                .map_err(|why| BrokerError::Unavailable(format!("tls_ca_cert {why}")))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("herald-redis")
            .enable_all()
            .build()
            .map_err(|e| BrokerError::Unavailable(format!("redis runtime: {e}")))?;
        let shards = config
            .shards
            .iter()
            .map(|shard| Shard::new(&config, shard).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RedisBroker {
            channel_prefix: format!("{}.client.", config.prefix),
            command_channel: format!("{}.control", config.prefix),
            node_channel_prefix: format!("{}.node.", config.prefix),
            config,
            runtime: OwnedRuntime(Some(runtime)),
            shards,
            pubsubs: OnceLock::new(),
            reconnects: Arc::default(),
        })
    }

    /// Checks a [`RedisConfig::tls_ca_cert`] the way TLS connections will use it: PEM holding
    /// at least one certificate, each usable as a trust anchor. Returns how many there are.
    pub fn check_tls_ca_cert(pem: &[u8]) -> Result<usize, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("is not valid PEM ({e})"))?;
            store
                .add(cert)
                .map_err(|e| format!("holds a certificate that cannot be a CA ({e})"))?;
        }
        if store.is_empty() {
            return Err(
                "holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")".into(),
            );
        }
        Ok(store.len())
    }

    fn redis_channel(&self, channel: &str) -> String {
        redis_channel(&self.channel_prefix, channel)
    }

    fn shard_index(&self, channel: &str) -> usize {
        jump::shard_of(channel, self.shards.len())
    }

    fn pubsub_for(&self, channel: &str) -> Result<&PubSub, BrokerError> {
        let pubsubs = self
            .pubsubs
            .get()
            .ok_or_else(|| BrokerError::Unavailable("broker not started".into()))?;
        let shard = &pubsubs[self.shard_index(channel)];
        // A second, independent hash spreads a shard's channels over its connections.
        let index = jump::stable_hash(channel).rotate_left(32) as usize % shard.len();
        Ok(&shard[index])
    }

    /// Runs `fut` on the broker's runtime, bounded by the command timeout.
    async fn on_runtime<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, BrokerError>> + Send + 'static,
    ) -> Result<T, BrokerError> {
        let timeout = self.config.command_timeout;
        let task = self.runtime.handle().spawn(async move {
            tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or(Err(BrokerError::Timeout))
        });
        task.await
            .map_err(|e| BrokerError::Unavailable(format!("redis task: {e}")))?
    }

    async fn publish_raw(
        &self,
        shard: usize,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), BrokerError> {
        self.publish_counted(shard, channel, payload)
            .await
            .map(|_| ())
    }

    /// Publishes and returns how many connections received it.
    async fn publish_counted(
        &self,
        shard: usize,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<i64, BrokerError> {
        let shard = self.shards[shard].clone();
        self.on_runtime(async move {
            let cmd = shard.publish_command(&channel, payload);
            shard.query::<i64>(&cmd).await
        })
        .await
    }
}

impl RedisBroker {
    /// Offset, stream append and PUBLISH in one script (see `history`).
    async fn publish_with_history(
        &self,
        channel: &str,
        publication: Publication,
        options: &HistoryOptions,
        idempotency_key: Option<&str>,
        trace_field: Vec<u8>,
    ) -> Result<StreamPosition, BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let script = history::publish_script(
            &self.config.prefix,
            channel,
            &self.redis_channel(channel),
            shard.publish_verb(),
            history::Payload {
                publication: publication.encode_to_vec(),
                trace_field,
            },
            options,
            idempotency_key,
        );
        let (offset, epoch): (u64, String) = self
            .on_runtime(async move { shard.invoke(&script).await })
            .await?;
        Ok(StreamPosition { offset, epoch })
    }

    /// Every kind of publish: with history or not, once per key or not. `trace_field` (empty,
    /// or `crate::trace::encode_field`) goes before the publication in the PUB/SUB message.
    async fn publish_with(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: Option<&str>,
        trace_field: Vec<u8>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        if let Some(options) = history {
            return self
                .publish_with_history(channel, publication, options, key, trace_field)
                .await
                .map(Some);
        }
        let mut payload = trace_field;
        payload.reserve_exact(publication.encoded_len());
        publication
            .encode(&mut payload)
            .map_err(|e| BrokerError::Unavailable(format!("encode: {e}")))?;
        match key {
            None => {
                self.publish_raw(
                    self.shard_index(channel),
                    self.redis_channel(channel),
                    payload,
                )
                .await?
            }
            Some(key) => {
                let shard = self.shards[self.shard_index(channel)].clone();
                let script = history::publish_once_script(
                    &self.config.prefix,
                    channel,
                    &self.redis_channel(channel),
                    shard.publish_verb(),
                    payload,
                    key,
                );
                self.on_runtime(async move { shard.invoke::<i64>(&script).await })
                    .await?;
            }
        }
        Ok(None)
    }
}

/// A channel's PUB/SUB channel: `<prefix>.client.{<channel>}`. The braces are a Redis Cluster
/// hash tag: the channel's stream, meta, presence and idempotency keys carry the same one, so
/// a script can touch them all and SPUBLISH to the channel in one slot.
fn redis_channel(channel_prefix: &str, channel: &str) -> String {
    format!("{channel_prefix}{{{channel}}}")
}

/// The channel of a PUB/SUB channel made by [`redis_channel`].
fn channel_of<'a>(channel_prefix: &str, redis_channel: &'a str) -> Option<&'a str> {
    redis_channel
        .strip_prefix(channel_prefix)?
        .strip_prefix('{')?
        .strip_suffix('}')
}

fn pool_error(label: &str, e: deadpool_redis::PoolError) -> BrokerError {
    match e {
        deadpool_redis::PoolError::Timeout(_) => BrokerError::Timeout,
        e => BrokerError::Unavailable(format!("{label}: {e}")),
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    fn start(&self, node_uid: &str, handler: Arc<dyn BrokerEventHandler>) {
        let prefix = self.channel_prefix.clone();
        let command_channel = self.command_channel.clone();
        let node_channel = format!("{}{node_uid}", self.node_channel_prefix);
        let dispatch: pubsub::Dispatch = {
            let handler = handler.clone();
            let command_channel = command_channel.clone();
            let node_channel = node_channel.clone();
            Arc::new(move |redis_channel: &str, payload: &[u8]| {
                if let Some(channel) = channel_of(&prefix, redis_channel) {
                    for (marker, join) in [(JOIN, true), (LEAVE, false)] {
                        if let Some(info) = payload.strip_prefix(marker) {
                            match ClientInfo::decode(info) {
                                Ok(info) => handler.handle_join_leave(channel, info, join),
                                Err(e) => {
                                    tracing::warn!(channel, error = %e, "undecodable join/leave")
                                }
                            }
                            return;
                        }
                    }
                    let (position, payload) = match history::parse_positioned(payload) {
                        Some((offset, epoch, rest)) => (Some((offset, epoch)), rest),
                        None => (None, payload),
                    };
                    let (trace, payload) = crate::trace::split_field(payload);
                    match Publication::decode(payload) {
                        Ok(mut publication) => {
                            if let Some((offset, epoch)) = position {
                                publication.offset = offset;
                                publication.epoch = epoch.to_owned();
                            }
                            match trace {
                                Some(trace) => {
                                    handler.handle_traced_publication(channel, publication, trace)
                                }
                                None => handler.handle_publication(channel, publication),
                            }
                        }
                        Err(e) => tracing::warn!(channel, error = %e, "undecodable publication"),
                    }
                } else if redis_channel == command_channel {
                    if let Some(command) = NodeCommand::decode(payload) {
                        handler.handle_command(command);
                    }
                } else if redis_channel == node_channel {
                    handler.handle_node_message(payload);
                }
            })
        };
        let keep: pubsub::Keep = {
            let prefix = self.channel_prefix.clone();
            let handler = handler.clone();
            Arc::new(move |redis_channel: &str| {
                channel_of(&prefix, redis_channel)
                    .is_some_and(|channel| handler.has_subscribers(channel))
            })
        };
        let resubscribed: pubsub::Resubscribed = {
            let prefix = self.channel_prefix.clone();
            let handler = handler.clone();
            Arc::new(move |redis_channels: &[String]| {
                let channels: Vec<&str> = redis_channels
                    .iter()
                    .filter_map(|c| channel_of(&prefix, c))
                    .collect();
                if !channels.is_empty() {
                    handler.handle_resubscribed(&channels);
                }
            })
        };
        let pubsubs = self
            .shards
            .iter()
            .enumerate()
            .map(|(shard_index, shard)| {
                (0..self.config.pubsub_connections.max(1))
                    .map(|i| {
                        // The command channel and this node's own channel live on the first
                        // connection of the first shard.
                        let permanent = if shard_index == 0 && i == 0 {
                            vec![command_channel.clone(), node_channel.clone()]
                        } else {
                            Vec::new()
                        };
                        PubSub::spawn(
                            self.runtime.handle(),
                            Worker {
                                connector: shard.connector(&self.config),
                                connect_timeout: self.config.connect_timeout,
                                command_timeout: self.config.command_timeout,
                                permanent,
                                dispatch: dispatch.clone(),
                                keep: keep.clone(),
                                resubscribed: resubscribed.clone(),
                                label: format!("{}#{i}", shard.label()),
                                reconnects: self.reconnects.clone(),
                            },
                        )
                    })
                    .collect()
            })
            .collect();
        let _ = self.pubsubs.set(pubsubs);
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.publish_with(channel, publication, history, None, Vec::new())
            .await
    }

    async fn publish_once(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.publish_with(channel, publication, history, Some(key), Vec::new())
            .await
    }

    async fn publish_traced(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: Option<&str>,
        trace: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        let field = crate::trace::encode_field(Some(trace));
        self.publish_with(channel, publication, history, key, field)
            .await
    }

    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let script = history::read_script(&self.config.prefix, channel, query);
        let label = shard.label().to_owned();
        self.on_runtime(async move {
            let reply = shard.invoke(&script).await?;
            history::page(reply)
                .map_err(|e| BrokerError::Unavailable(format!("{label}: history: {e}")))
        })
        .await
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let mut cmd = redis::cmd("DEL");
        cmd.arg(history::stream_key(&self.config.prefix, channel));
        self.on_runtime(async move { shard.query::<i64>(&cmd).await.map(|_| ()) })
            .await
    }

    async fn add_presence(
        &self,
        channel: &str,
        info: &ClientInfo,
        ttl: std::time::Duration,
    ) -> Result<(), BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let script = presence::add(&self.config.prefix, channel, info, ttl);
        self.on_runtime(async move { shard.invoke::<i64>(&script).await.map(|_| ()) })
            .await
    }

    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let script = presence::remove(&self.config.prefix, channel, client);
        self.on_runtime(async move { shard.invoke::<i64>(&script).await.map(|_| ()) })
            .await
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: &ClientInfo,
        join: bool,
    ) -> Result<(), BrokerError> {
        let mut payload = if join { JOIN.to_vec() } else { LEAVE.to_vec() };
        info.encode(&mut payload)
            .map_err(|e| BrokerError::Unavailable(format!("encode: {e}")))?;
        self.publish_raw(
            self.shard_index(channel),
            self.redis_channel(channel),
            payload,
        )
        .await
    }

    async fn presence(&self, channel: &str) -> Result<Presence, BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let script = presence::read(&self.config.prefix, channel);
        let label = shard.label().to_owned();
        self.on_runtime(async move {
            let flat = shard.invoke(&script).await?;
            presence::decode(flat)
                .map_err(|e| BrokerError::Unavailable(format!("{label}: presence: {e}")))
        })
        .await
    }

    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError> {
        let shard = self.shards[self.shard_index(channel)].clone();
        let script = presence::stats(&self.config.prefix, channel);
        self.on_runtime(async move {
            let (clients, users): (usize, usize) = shard.invoke(&script).await?;
            Ok(PresenceStats { clients, users })
        })
        .await
    }

    async fn publish_command(&self, command: &NodeCommand) -> Result<(), BrokerError> {
        self.publish_raw(0, self.command_channel.clone(), command.encode())
            .await
    }

    async fn send_to_node(&self, node_uid: &str, message: Vec<u8>) -> Result<bool, BrokerError> {
        let channel = format!("{}{node_uid}", self.node_channel_prefix);
        Ok(self.publish_counted(0, channel, message).await? > 0)
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let pubsub = self.pubsub_for(channel)?.clone();
        let redis_channel = self.redis_channel(channel);
        self.on_runtime(async move { pubsub.subscribe(redis_channel).await })
            .await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        self.pubsub_for(channel)?
            .unsubscribe(self.redis_channel(channel));
        Ok(())
    }

    async fn health(&self) -> Result<(), BrokerError> {
        let pubsubs = self
            .pubsubs
            .get()
            .ok_or_else(|| BrokerError::Unavailable("broker not started".into()))?;
        for (shard, connections) in self.shards.iter().zip(pubsubs) {
            if !connections.iter().all(PubSub::is_healthy) {
                return Err(shard.error("pubsub connection down"));
            }
            let shard = shard.clone();
            self.on_runtime(async move {
                shard
                    .query::<redis::Value>(&redis::cmd("PING"))
                    .await
                    .map(|_| ())
            })
            .await?;
        }
        Ok(())
    }

    fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
}

/// A runtime that may be dropped anywhere, including inside another runtime (where a plain
/// `Runtime` drop would panic).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("runtime present until drop")
            .handle()
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
