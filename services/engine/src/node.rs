//! The node: one Herald process's shared state (hub, registry, broker, rules, token verifier)
//! and the operations the server API and sessions perform on it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_protocol::codec::{self, Format};
use herald_protocol::codes::{self, Disconnect};
use herald_protocol::proto::{ClientInfo, Publication, Push, Reply};

use crate::auth::{AuthError, TokenVerifier};
use crate::broker::{Broker, BrokerError, BrokerEventHandler, StreamPosition};
use crate::channel::ChannelRules;
use crate::config::{ChannelConfig, ClientConfig, TokenConfig};
use crate::control::Control;
use crate::error::NodeError;
use crate::hub::{ConnId, Hub, Membership, Subscriber};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::session::Session;

/// Everything a node needs, validated by the binary.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Human-readable node name (shown by `/api/info`).
    pub name: String,
    /// Server version announced to clients in the connect reply.
    pub version: String,
    pub client: ClientConfig,
    pub channels: ChannelConfig,
    pub token: TokenConfig,
}

/// A cheap handle to the node; clone it freely.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) uid: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) client: ClientConfig,
    pub(crate) max_channels_per_client: usize,
    pub(crate) rules: ChannelRules,
    pub(crate) verifier: TokenVerifier,
    pub(crate) hub: Hub,
    pub(crate) registry: Registry,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) metrics: Metrics,
    started: Instant,
    next_conn: AtomicU64,
    shutting_down: AtomicBool,
}

/// Extra fields of a publication.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Publisher info, set for publications that come from a client.
    pub info: Option<ClientInfo>,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// What `/api/info` reports about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: usize,
    pub num_users: usize,
    pub num_channels: usize,
    pub num_subs: usize,
    pub uptime: Duration,
}

impl Node {
    pub fn new(config: NodeConfig, broker: Arc<dyn Broker>) -> Result<Node, AuthError> {
        let inner = Arc::new(Inner {
            uid: uuid::Uuid::new_v4().to_string(),
            name: config.name,
            version: config.version,
            max_channels_per_client: config.channels.max_channels_per_client,
            rules: ChannelRules::new(&config.channels),
            verifier: TokenVerifier::new(&config.token)?,
            client: config.client,
            hub: Hub::new(),
            registry: Registry::new(),
            broker,
            metrics: Metrics::default(),
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        });
        inner.broker.start(Arc::new(Events(Arc::downgrade(&inner))));
        Ok(Node { inner })
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A new client session speaking `format`. The transport feeds it frames and drains its queue.
    pub fn session(&self, format: Format) -> Session {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        Session::new(self.clone(), conn, format)
    }

    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn client_config(&self) -> &ClientConfig {
        &self.inner.client
    }

    /// Publishes into a channel through the broker, to subscribers on every node.
    pub async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        options: PublishOptions,
    ) -> Result<Option<StreamPosition>, NodeError> {
        self.inner.rules.resolve(channel)?;
        let publication = Publication {
            data,
            info: options.info,
            tags: options.tags,
            ..Default::default()
        };
        let position = self.inner.broker.publish(channel, publication).await?;
        self.inner.metrics.published();
        Ok(position)
    }

    /// Disconnects the connections of a user (all, or the one with `client`), sparing the
    /// client ids in `whitelist`. Returns how many were told to close.
    pub fn disconnect(
        &self,
        user: &str,
        client: Option<&str>,
        whitelist: &[String],
        disconnect: Disconnect,
    ) -> usize {
        let mut closed = 0;
        for handle in self.inner.registry.connections_of(user, client) {
            if whitelist.iter().any(|w| **w == *handle.client_id) {
                continue;
            }
            handle.outbound.close(disconnect.clone());
            closed += 1;
        }
        closed
    }

    /// Unsubscribes the connections of a user from a channel.
    pub fn unsubscribe(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
    ) -> Result<usize, NodeError> {
        self.inner.rules.resolve(channel)?;
        Ok(self.send_control(user, client, || Control::Unsubscribe {
            channel: channel.to_string(),
        }))
    }

    /// Subscribes the connections of a user to a channel (server-side subscription).
    pub fn subscribe(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
        info: Option<Bytes>,
        data: Option<Bytes>,
    ) -> Result<usize, NodeError> {
        self.inner.rules.resolve(channel)?;
        Ok(self.send_control(user, client, || Control::Subscribe {
            channel: channel.to_string(),
            info: info.clone(),
            data: data.clone(),
        }))
    }

    fn send_control(&self, user: &str, client: Option<&str>, make: impl Fn() -> Control) -> usize {
        self.inner
            .registry
            .connections_of(user, client)
            .iter()
            .filter(|h| h.outbound.control(make()))
            .count()
    }

    pub fn info(&self) -> NodeInfo {
        let (num_clients, num_users) = self.inner.registry.counts();
        let (num_channels, num_subs) = self.inner.hub.counts();
        NodeInfo {
            uid: self.inner.uid.clone(),
            name: self.inner.name.clone(),
            version: self.inner.version.clone(),
            num_clients,
            num_users,
            num_channels,
            num_subs,
            uptime: self.inner.started.elapsed(),
        }
    }

    /// Channels with subscribers on this node, with their number of subscribers.
    pub fn channels(&self) -> Vec<(String, usize)> {
        self.inner.hub.channels()
    }

    /// Ok when the node can serve: not shutting down and the broker is usable.
    pub async fn health(&self) -> Result<(), BrokerError> {
        if self.is_shutting_down() {
            return Err(BrokerError::Unavailable("node is shutting down".into()));
        }
        self.inner.broker.health().await
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Stops taking connections and asks every connected client to reconnect elsewhere (3001).
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner
            .registry
            .for_each(|h| h.outbound.close(codes::disconnect::SHUTDOWN));
    }

    /// Adds a local subscriber; the first one of a channel takes the node-level broker
    /// subscription, rolled back if the broker refuses.
    pub(crate) async fn add_subscription(
        &self,
        channel: &str,
        conn: ConnId,
        subscriber: Subscriber,
    ) -> Result<(), NodeError> {
        if self.inner.hub.subscribe(channel, conn, subscriber) == Membership::Edge
            && let Err(e) = self.inner.broker.subscribe(channel).await
        {
            self.remove_subscription(channel, conn);
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes a local subscriber; after the last one the broker subscription is dropped in the
    /// background, so closing a connection never waits on the broker.
    pub(crate) fn remove_subscription(&self, channel: &str, conn: ConnId) {
        if self.inner.hub.unsubscribe(channel, conn) != Membership::Edge {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let node = self.clone();
        let channel = channel.to_string();
        rt.spawn(async move {
            // A join may have raced this leave; keep the subscription then.
            if node.inner.hub.has_subscribers(&channel) {
                return;
            }
            if let Err(e) = node.inner.broker.unsubscribe(&channel).await {
                tracing::warn!(channel = %channel, error = %e, "broker unsubscribe failed");
            }
        });
    }
}

/// The node's side of the broker: hands publications to the hub, encoded once per format.
struct Events(Weak<Inner>);

impl BrokerEventHandler for Events {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let reply = Reply {
            push: Some(Push {
                channel: channel.to_string(),
                r#pub: Some(publication),
                ..Default::default()
            }),
            ..Default::default()
        };
        let delivered = inner.hub.deliver(channel, |format| {
            codec::try_encode_reply(format, &reply)
                .inspect_err(|e| tracing::debug!(channel, error = %e, "publication not encodable"))
                .ok()
        });
        inner.metrics.broadcast(delivered);
    }
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
