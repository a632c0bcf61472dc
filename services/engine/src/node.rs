//! The node: one Herald process's shared state (hub, registry, broker, rules, token verifier)
//! and the operations the server API and sessions perform on it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_protocol::codec::{self, Format};
use herald_protocol::codes::{self, Disconnect};
use herald_protocol::proto::{ClientInfo, Join, Leave, Publication, Push, Reply};

use crate::auth::{AuthError, TokenVerifier};
use crate::broker::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    MeasuredBroker, NodeCommand, NodeStats, Presence, StreamPosition,
};
use crate::channel::ChannelRules;
use crate::channel_log::LogReader;
use crate::channel_log::StreamTag;
use crate::config::{ChannelConfig, ClientConfig, TokenConfig};
use crate::control::Control;
use crate::emulation::{self, EmulationError, EmulationRequest, Inbox, Relayed};
use crate::error::NodeError;
use crate::hub::{ConnId, Hub, Membership, Subscriber};
use crate::limits::ConnectionRate;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::session::{Mode, Session};
use crate::trace::{Parent, Span, SpanKind, SpanStart, Tracer};

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
    /// How often the node tells its peers it is alive; a peer silent for three intervals is
    /// forgotten.
    pub heartbeat_interval: Duration,
}

/// Who a connection is in a channel with presence or join/leave.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub info: ClientInfo,
    /// Entered into the channel's presence.
    pub presence: bool,
    /// Announced to the channel with join and leave pushes.
    pub join_leave: bool,
}

/// The default heartbeat interval of nodes.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

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
    /// Connects per second (`client.connection_rate_limit`).
    pub(crate) connection_rate: ConnectionRate,
    /// This node's emulated (HTTP streaming, SSE) sessions, by session id.
    pub(crate) emulated: Arc<emulation::Sessions>,
    pub(crate) broker: Arc<MeasuredBroker>,
    pub(crate) metrics: Arc<Metrics>,
    /// Spans go here; `None` (tracing off) costs the hot path a `None` check.
    pub(crate) tracer: Option<Arc<dyn Tracer>>,
    /// Other live nodes, by uid, with when they were last heard of.
    peers: std::sync::Mutex<std::collections::HashMap<String, (NodeStats, Instant)>>,
    /// Who this node's connections are in channels with presence or join/leave:
    /// (channel, connection) → member. Presence entries are refreshed by `run_presence`.
    members: std::sync::Mutex<std::collections::HashMap<(String, ConnId), Member>>,
    heartbeat_interval: Duration,
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
    /// Publish without keeping the publication in the channel's history (no offset).
    pub skip_history: bool,
    /// Publish at most once per key and channel within five minutes, on every node; a repeat
    /// returns the first result.
    pub idempotency_key: Option<String>,
    /// The caller's span (e.g. the server API's): the broker publish span is its child.
    /// Ignored without a tracer.
    pub trace: Parent,
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
        Self::with_tracer(config, broker, None)
    }

    /// A node whose spans (publish, delivery, connect, subscribe) go to `tracer`.
    pub fn with_tracer(
        config: NodeConfig,
        broker: Arc<dyn Broker>,
        tracer: Option<Arc<dyn Tracer>>,
    ) -> Result<Node, AuthError> {
        let metrics = Arc::new(Metrics::default());
        let broker = Arc::new(MeasuredBroker::new(broker, metrics.clone()));
        let inner = Arc::new(Inner {
            uid: uuid::Uuid::new_v4().to_string(),
            name: config.name,
            version: config.version,
            max_channels_per_client: config.channels.max_channels_per_client,
            rules: ChannelRules::new(&config.channels),
            verifier: TokenVerifier::new(&config.token)?,
            hub: Hub::new(),
            registry: Registry::new(),
            connection_rate: ConnectionRate::new(config.client.connection_rate_limit),
            emulated: emulation::Sessions::new(),
            broker,
            metrics,
            tracer,
            members: Default::default(),
            peers: Default::default(),
            heartbeat_interval: config.heartbeat_interval,
            client: config.client,
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        });
        inner
            .broker
            .start(&inner.uid, Arc::new(Events(Arc::downgrade(&inner))));
        Ok(Node { inner })
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A new client session speaking `format`. The transport feeds it frames and drains its queue.
    pub fn session(&self, format: Format) -> Session {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        Session::new(self.clone(), conn, format, None, Mode::Bidirectional)
    }

    /// A new session of a unidirectional transport (JSON; see [`Mode::Unidirectional`]): the
    /// transport hands it the client's connect request as its first frame.
    pub fn uni_session(&self) -> Session {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        Session::new(self.clone(), conn, Format::Json, None, Mode::Unidirectional)
    }

    /// A new session of an emulated transport (HTTP streaming, SSE), and the inbox of the
    /// commands that reach it through [`Node::emulate`], from this node or any other. Its
    /// connect reply tells the client the session id and this node's uid to address them.
    pub fn emulated_session(&self, format: Format) -> (Session, Inbox) {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let inbox = self.inner.emulated.open();
        let id = inbox.id().clone();
        (
            Session::new(self.clone(), conn, format, Some(id), Mode::Bidirectional),
            inbox,
        )
    }

    /// Open emulated (HTTP streaming, SSE) sessions on this node.
    pub fn emulated_sessions(&self) -> usize {
        self.inner.emulated.len()
    }

    /// A session id of this node and the inbox of what [`Node::emulate`], [`Node::ask`] and
    /// [`Node::hand_local`] send it, for a transport that keeps its own session (Socket.IO);
    /// dropping the inbox ends the id.
    pub fn relay_inbox(&self) -> Inbox {
        self.inner.emulated.open()
    }

    /// Hands a command request of an emulated connection to its session, on whichever node
    /// holds it. A session that has ended is not an error: its stream has told the client.
    /// Requests to another node travel through the broker and are not confirmed beyond the
    /// node having received them.
    pub async fn emulate(&self, request: EmulationRequest) -> Result<(), EmulationError> {
        emulation::check_ids(&request)?;
        if request.node == self.inner.uid {
            let data = Relayed::Data(request.data);
            return match self.inner.emulated.hand(&request.session, data) {
                emulation::Handed::Busy => Err(EmulationError::Busy),
                emulation::Handed::Queued | emulation::Handed::Gone => Ok(()),
            };
        }
        self.check_peer(&request.node)?;
        let node = request.node.clone();
        let message = prost::Message::encode_to_vec(&request);
        if self.inner.broker.send_to_node(&node, message).await? {
            Ok(())
        } else {
            Err(EmulationError::NoSuchNode(node))
        }
    }

    /// Hands `data` to the session `session` of node `node` (this one or another, through the
    /// broker) and waits up to `wait` for its answer ([`Relayed::Ask`]).
    pub async fn ask(
        &self,
        node: &str,
        session: &str,
        data: Bytes,
        wait: Duration,
    ) -> Result<Bytes, EmulationError> {
        emulation::ask_ids(node, session)?;
        if node == self.inner.uid {
            let (answer, rx) = emulation::Answer::here();
            return match self
                .inner
                .emulated
                .hand(session, Relayed::Ask(data, answer))
            {
                emulation::Handed::Busy => Err(EmulationError::Busy),
                emulation::Handed::Gone => Err(EmulationError::NoSuchSession),
                emulation::Handed::Queued => match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(answer)) => Ok(answer),
                    // The session ended without answering.
                    Ok(Err(_)) => Err(EmulationError::NoSuchSession),
                    Err(_) => Err(EmulationError::NoAnswer),
                },
            };
        }
        self.check_peer(node)?;
        let asks = self.inner.emulated.asks();
        let (request, _guard, rx) = asks.open();
        let message = emulation::RelayMessage {
            node: node.to_owned(),
            session: session.to_owned(),
            data,
            reply_to: self.inner.uid.clone(),
            request,
            kind: emulation::Kind::Ask as u32,
        };
        if !self
            .inner
            .broker
            .send_to_node(node, message.encode())
            .await?
        {
            return Err(EmulationError::NoSuchNode(node.to_owned()));
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) | Err(_) => Err(EmulationError::NoAnswer),
        }
    }

    /// Hands `item` to the session `session` of this node. `Err(item)`: no such session, or
    /// its inbox is full.
    pub fn hand_local(
        &self,
        session: &str,
        item: Box<dyn std::any::Any + Send>,
    ) -> Result<(), Box<dyn std::any::Any + Send>> {
        let (tx, item) = (self.inner.emulated.sender(session), item);
        match tx {
            Some(tx) => tx
                .try_send(Relayed::Local(item))
                .map_err(|e| match e.into_inner() {
                    Relayed::Local(item) => item,
                    _ => unreachable!("sent a local item"),
                }),
            None => Err(item),
        }
    }

    /// Only a node that is alive by its heartbeats is sent to: a made-up or departed node id
    /// costs a map lookup, not a message through the broker. A node that started less than two
    /// heartbeat intervals ago may not have heard every peer yet, and sends anyway.
    fn check_peer(&self, node: &str) -> Result<(), EmulationError> {
        let knows_its_peers = self.inner.started.elapsed() >= self.inner.heartbeat_interval * 2;
        if knows_its_peers && !self.is_live_peer(node) {
            return Err(EmulationError::NoSuchNode(node.to_owned()));
        }
        Ok(())
    }

    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Times the broker re-established a lost delivery connection.
    pub fn broker_reconnects(&self) -> u64 {
        self.inner.broker.reconnects()
    }

    /// The node's tracer, when tracing is on.
    pub fn tracer(&self) -> Option<&dyn Tracer> {
        self.inner.tracer.as_deref()
    }

    /// Exports the spans recorded so far and waits for it (at shutdown, and in tests). Blocks.
    pub fn flush_traces(&self) {
        if let Some(tracer) = &self.inner.tracer {
            tracer.flush();
        }
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
        let channel_options = self.inner.rules.resolve(channel)?;
        let history =
            (channel_options.has_history() && !options.skip_history).then_some(HistoryOptions {
                size: channel_options.history_size,
                ttl: channel_options.history_ttl,
            });
        let publication = Publication {
            data,
            info: options.info,
            tags: options.tags,
            ..Default::default()
        };
        let key = options.idempotency_key.as_deref();
        let parent = match &options.trace {
            Parent::None => Some(None),
            Parent::Span(traceparent) => Some(Some(traceparent.as_str())),
            Parent::Unsampled => None,
        };
        let mut span = match (&self.inner.tracer, parent) {
            (Some(tracer), Some(parent)) => tracer.start(SpanStart {
                name: "broker publish",
                kind: SpanKind::Producer,
                parent,
                attributes: &[("messaging.destination.name", channel)],
            }),
            _ => None,
        };
        let trace = span.as_ref().map(|span| span.traceparent());
        let measured = &self.inner.broker;
        let broker = measured.inner();
        // The broker's own (boxed) future, so the publication and its arguments live in that
        // box and not in this future's state, which every API publish moves around.
        let publish = match (trace.as_deref(), key) {
            (Some(trace), key) => {
                broker.publish_traced(channel, publication, history.as_ref(), key, trace)
            }
            (None, Some(key)) => broker.publish_once(channel, publication, history.as_ref(), key),
            (None, None) => broker.publish(channel, publication, history.as_ref()),
        };
        let position = measured.measure_publish(publish).await;
        if let (Err(e), Some(span)) = (&position, &mut span) {
            span.fail(&e.to_string());
        }
        let position = position?;
        self.inner.metrics.published();
        Ok(position)
    }

    /// Disconnects the connections of a user (all, or the one with `client`) on every node,
    /// sparing the client ids in `whitelist`.
    pub async fn disconnect(
        &self,
        user: &str,
        client: Option<&str>,
        whitelist: &[String],
        disconnect: Disconnect,
    ) -> Result<(), NodeError> {
        self.command(&NodeCommand::Disconnect {
            user: user.into(),
            client: client.map(Into::into),
            whitelist: whitelist.to_vec(),
            code: disconnect.code,
            reason: disconnect.reason.into_owned(),
        })
        .await
    }

    /// Unsubscribes the connections of a user from a channel, on every node.
    pub async fn unsubscribe(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
    ) -> Result<(), NodeError> {
        self.inner.rules.resolve(channel)?;
        self.command(&NodeCommand::Unsubscribe {
            user: user.into(),
            channel: channel.into(),
            client: client.map(Into::into),
        })
        .await
    }

    /// Subscribes the connections of a user to a channel (server-side subscription), on every
    /// node. `info` and `data` are raw JSON.
    pub async fn subscribe(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
        info: Option<Bytes>,
        data: Option<Bytes>,
    ) -> Result<(), NodeError> {
        self.inner.rules.resolve(channel)?;
        let text = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
        self.command(&NodeCommand::Subscribe {
            user: user.into(),
            channel: channel.into(),
            client: client.map(Into::into),
            info: text(info),
            data: text(data),
        })
        .await
    }

    async fn command(&self, command: &NodeCommand) -> Result<(), NodeError> {
        Ok(self.inner.broker.publish_command(command).await?)
    }

    /// This node's own counts.
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

    /// Whether `uid` is another node heard from within three heartbeat intervals.
    fn is_live_peer(&self, uid: &str) -> bool {
        let expiry = self.inner.heartbeat_interval * 3;
        self.inner
            .peers()
            .get(uid)
            .is_some_and(|(_, seen)| seen.elapsed() < expiry)
    }

    /// This node and every live peer, this node first.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = vec![self.info()];
        let expiry = self.inner.heartbeat_interval * 3;
        let mut peers = self.inner.peers();
        peers.retain(|_, (_, seen)| seen.elapsed() < expiry);
        let mut others: Vec<NodeInfo> = peers
            .values()
            .map(|(s, _)| NodeInfo {
                uid: s.uid.clone(),
                name: s.name.clone(),
                version: s.version.clone(),
                num_clients: s.num_clients as usize,
                num_users: s.num_users as usize,
                num_channels: s.num_channels as usize,
                num_subs: s.num_subs as usize,
                uptime: Duration::from_secs(s.uptime),
            })
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name).then(a.uid.cmp(&b.uid)));
        nodes.extend(others);
        nodes
    }

    /// Tells the peers this node is alive, every heartbeat interval, until the node shuts down;
    /// then says goodbye. Run it once, in the background.
    pub async fn run_heartbeats(&self) {
        let mut tick = tokio::time::interval(self.inner.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_shutting_down() {
            tick.tick().await;
            let info = self.info();
            let heartbeat = NodeCommand::Heartbeat(NodeStats {
                uid: info.uid,
                name: info.name,
                version: info.version,
                num_clients: info.num_clients as u64,
                num_users: info.num_users as u64,
                num_channels: info.num_channels as u64,
                num_subs: info.num_subs as u64,
                uptime: info.uptime.as_secs(),
            });
            if let Err(e) = self.inner.broker.publish_command(&heartbeat).await {
                tracing::debug!(error = %e, "heartbeat not sent");
            }
        }
        let leave = NodeCommand::Leave {
            uid: self.inner.uid.clone(),
        };
        let _ = self.inner.broker.publish_command(&leave).await;
    }

    /// Keeps the keys of a JWKS fresh (`TokenKey::Jwks`): fetches them now, then every refresh
    /// interval, and sooner after a failed fetch (which keeps the cached keys). Returns at once
    /// when tokens are checked with configured keys, and when the node shuts down. Runs beside
    /// [`Node::run_heartbeats`].
    pub async fn run_token_keys(&self) {
        while !self.is_shutting_down() {
            let Some(next) = self.inner.verifier.refresh_keys().await else {
                return;
            };
            tokio::time::sleep(next).await;
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

    /// Adds a local subscriber and returns once the node-level broker subscription of the
    /// channel exists: the first subscriber takes it, concurrent ones wait for it, later ones
    /// find it. If the broker refuses, this subscriber is rolled back (the next one retries).
    /// Returns the subscription's reader of the channel's log (`None` if the connection was
    /// already subscribed).
    /// With a `member`, the connection is also entered into the channel's presence (kept there
    /// by [`Node::run_presence`] until it leaves) and/or announced with a join.
    pub(crate) async fn add_subscription(
        &self,
        channel: &str,
        conn: ConnId,
        subscriber: Subscriber,
        member: Option<Member>,
    ) -> Result<Option<LogReader>, NodeError> {
        let Some(joined) = self.inner.hub.subscribe(channel, conn, subscriber) else {
            return Ok(None);
        };
        let subscribed = joined
            .broker
            .get_or_try_init(|| self.inner.broker.subscribe(channel))
            .await;
        if let Err(e) = subscribed {
            self.remove_subscription(channel, conn);
            return Err(e.into());
        }
        let Some(member) = member else {
            return Ok(Some(joined.reader));
        };
        if member.presence {
            let added = self
                .inner
                .broker
                .add_presence(channel, &member.info, self.inner.client.presence_ttl)
                .await;
            if let Err(e) = added {
                self.remove_subscription(channel, conn);
                return Err(e.into());
            }
        }
        if member.join_leave {
            let announced = self
                .inner
                .broker
                .publish_join_leave(channel, &member.info, true)
                .await;
            if let Err(e) = announced {
                // Joins are at most once; the subscription stands without it.
                tracing::debug!(channel, error = %e, "join not published");
            }
        }
        self.inner
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((channel.to_owned(), conn), member);
        Ok(Some(joined.reader))
    }

    /// Keeps this node's clients in the presence of their channels: refreshes every entry each
    /// `client.presence_update_interval`, so entries outlive `client.presence_ttl` only while
    /// the node lives. Run it once, in the background.
    pub async fn run_presence(&self) {
        let mut tick = tokio::time::interval(self.inner.client.presence_update_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        while !self.is_shutting_down() {
            tick.tick().await;
            let entries: Vec<(String, ClientInfo)> = self
                .inner
                .members
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, m)| m.presence)
                .map(|((channel, _), m)| (channel.clone(), m.info.clone()))
                .collect();
            for (channel, info) in entries {
                let refreshed = self
                    .inner
                    .broker
                    .add_presence(&channel, &info, self.inner.client.presence_ttl)
                    .await;
                if let Err(e) = refreshed {
                    tracing::debug!(channel, error = %e, "presence not refreshed");
                }
            }
        }
    }

    /// Every second, lets the logs of channels that have been quiet for a second drop the
    /// publications they still hold (see `channel_log`), so a quiet channel costs no memory
    /// for what it once published. Runs until shutdown.
    pub async fn run_channel_logs(&self) {
        const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_shutting_down() {
            tick.tick().await;
            self.inner
                .hub
                .seal_idle_logs(std::time::Instant::now(), EVERY);
        }
    }

    /// Clients in a channel's presence, on every node, by client id.
    pub async fn presence(&self, channel: &str) -> Result<Presence, NodeError> {
        if !self.inner.rules.resolve(channel)?.presence {
            return Err(NodeError::NotAvailable);
        }
        Ok(self.inner.broker.presence(channel).await?)
    }

    /// Number of clients and of distinct users in a channel's presence.
    pub async fn presence_stats(&self, channel: &str) -> Result<(usize, usize), NodeError> {
        if !self.inner.rules.resolve(channel)?.presence {
            return Err(NodeError::NotAvailable);
        }
        let stats = self.inner.broker.presence_stats(channel).await?;
        Ok((stats.clients, stats.users))
    }

    /// Reads a channel's history. The channel's namespace must keep history (108 otherwise);
    /// a `since` from another epoch of the stream is refused (112): the client's position is
    /// gone, and reading from an offset of another stream would hand it the wrong publications.
    pub async fn history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage, NodeError> {
        let options = self.inner.rules.resolve(channel)?;
        if !options.has_history() {
            return Err(NodeError::NotAvailable);
        }
        let page = self.inner.broker.history(channel, &query).await?;
        if let Some(since) = &query.since
            && !since.epoch.is_empty()
            && since.epoch != page.position.epoch
        {
            return Err(NodeError::UnrecoverablePosition);
        }
        Ok(page)
    }

    /// Reads a channel's stream without the namespace check (the session checked it).
    pub(crate) async fn read_history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, NodeError> {
        Ok(self.inner.broker.history(channel, query).await?)
    }

    /// Forgets a channel's publications; its position (offset, epoch) stays, so subscribers
    /// are not told their position is gone.
    pub async fn remove_history(&self, channel: &str) -> Result<(), NodeError> {
        let options = self.inner.rules.resolve(channel)?;
        if !options.has_history() {
            return Err(NodeError::NotAvailable);
        }
        Ok(self.inner.broker.remove_history(channel).await?)
    }

    /// Removes a local subscriber; after the last one the broker subscription is dropped in the
    /// background, so closing a connection never waits on the broker.
    pub(crate) fn remove_subscription(&self, channel: &str, conn: ConnId) {
        let membership = self.inner.hub.unsubscribe(channel, conn);
        let left = self
            .inner
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(channel.to_owned(), conn));
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(member) = left {
            let node = self.clone();
            let channel = channel.to_string();
            rt.spawn(async move {
                let broker = &node.inner.broker;
                if member.presence
                    && let Err(e) = broker.remove_presence(&channel, &member.info.client).await
                {
                    // The entry expires by itself after client.presence_ttl.
                    tracing::debug!(channel = %channel, error = %e, "presence not removed");
                }
                if member.join_leave
                    && let Err(e) = broker
                        .publish_join_leave(&channel, &member.info, false)
                        .await
                {
                    tracing::debug!(channel = %channel, error = %e, "leave not published");
                }
            });
        }
        if membership != Membership::Edge {
            return;
        }
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

impl Inner {
    fn peers(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (NodeStats, Instant)>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a node command to this node's own connections.
    fn apply(&self, command: NodeCommand) {
        match command {
            NodeCommand::Disconnect {
                user,
                client,
                whitelist,
                code,
                reason,
            } => {
                let disconnect = Disconnect::custom(code, reason);
                for handle in self.registry.connections_of(&user, client.as_deref()) {
                    if !whitelist.iter().any(|w| **w == *handle.client_id) {
                        handle.outbound.close(disconnect.clone());
                    }
                }
            }
            NodeCommand::Subscribe {
                user,
                channel,
                client,
                info,
                data,
            } => {
                let info = info.map(Bytes::from);
                let data = data.map(Bytes::from);
                for handle in self.registry.connections_of(&user, client.as_deref()) {
                    handle.outbound.control(Control::Subscribe {
                        channel: channel.clone(),
                        info: info.clone(),
                        data: data.clone(),
                    });
                }
            }
            NodeCommand::Unsubscribe {
                user,
                channel,
                client,
            } => {
                for handle in self.registry.connections_of(&user, client.as_deref()) {
                    handle.outbound.control(Control::Unsubscribe {
                        channel: channel.clone(),
                    });
                }
            }
            NodeCommand::Heartbeat(stats) => {
                if stats.uid != self.uid {
                    self.peers()
                        .insert(stats.uid.clone(), (stats, Instant::now()));
                }
            }
            NodeCommand::Leave { uid } => {
                self.peers().remove(&uid);
            }
        }
    }
}

/// The node's side of the broker: hands publications to the hub, encoded once per format.
struct Events(Weak<Inner>);

impl Events {
    /// Hands a publication to the local subscribers, under a `deliver` span when it came with
    /// a trace context and the node traces: one span per publication and node, whatever the
    /// number of subscribers.
    fn deliver(&self, channel: &str, mut publication: Publication, trace: Option<&str>) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let mut span: Option<Box<dyn Span>> = match (trace, &inner.tracer) {
            (Some(parent), Some(tracer)) => tracer.start(SpanStart {
                name: "deliver",
                kind: SpanKind::Consumer,
                parent: Some(parent),
                attributes: &[
                    ("messaging.destination.name", channel),
                    ("herald.node", &inner.name),
                ],
            }),
            _ => None,
        };
        // The epoch is the node's to check, not the client's to see.
        let epoch = std::mem::take(&mut publication.epoch);
        let at = (publication.offset > 0).then(|| StreamTag::new(publication.offset, &epoch));
        let reply = Reply {
            push: Some(Push {
                channel: channel.to_string(),
                r#pub: Some(publication),
                ..Default::default()
            }),
            ..Default::default()
        };
        let delivered = inner.hub.deliver(channel, at, |format| {
            codec::try_encode_reply(format, &reply)
                .inspect_err(|e| tracing::debug!(channel, error = %e, "publication not encodable"))
                .ok()
        });
        inner.metrics.broadcast(delivered);
        if let Some(span) = &mut span {
            span.count("herald.delivered", delivered as u64);
        }
    }
}

impl BrokerEventHandler for Events {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        self.deliver(channel, publication, None);
    }

    fn handle_traced_publication(&self, channel: &str, publication: Publication, trace: &str) {
        self.deliver(channel, publication, Some(trace));
    }

    fn handle_join_leave(&self, channel: &str, info: ClientInfo, join: bool) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let push = if join {
            Push {
                channel: channel.to_string(),
                join: Some(Join { info: Some(info) }),
                ..Default::default()
            }
        } else {
            Push {
                channel: channel.to_string(),
                leave: Some(Leave { info: Some(info) }),
                ..Default::default()
            }
        };
        let reply = Reply {
            push: Some(push),
            ..Default::default()
        };
        inner.hub.deliver_join_leave(channel, |format| {
            codec::try_encode_reply(format, &reply).ok()
        });
    }

    fn handle_resubscribed(&self, channels: &[&str]) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        for channel in channels {
            if inner.rules.resolve(channel).is_ok_and(|o| o.has_history()) {
                inner
                    .hub
                    .tell_subscribers(channel, || Control::CheckPosition {
                        channel: channel.to_string(),
                    });
            }
        }
    }

    fn handle_command(&self, command: NodeCommand) {
        if let Some(inner) = self.0.upgrade() {
            inner.apply(command);
        }
    }

    fn handle_node_message(&self, message: &[u8]) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let message = match <emulation::RelayMessage as prost::Message>::decode(message) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable node message");
                return;
            }
        };
        match message.kind() {
            Some(emulation::Kind::Data) => {
                let data = Relayed::Data(message.data);
                if inner.emulated.hand(&message.session, data) == emulation::Handed::Busy {
                    // The posting node answered already; the client's command times out and
                    // it retries.
                    tracing::debug!(
                        "emulation request refused: too many in flight for the connection"
                    );
                }
            }
            Some(emulation::Kind::Ask) => {
                let answer = emulation::Answer::to_node(
                    inner.broker.clone(),
                    message.reply_to.clone(),
                    message.request,
                );
                let handed = inner
                    .emulated
                    .hand(&message.session, Relayed::Ask(message.data, answer));
                if handed != emulation::Handed::Queued {
                    let refusal = emulation::RelayMessage {
                        request: message.request,
                        kind: emulation::Kind::NoSession as u32,
                        ..Default::default()
                    };
                    let broker = inner.broker.clone();
                    let reply_to = message.reply_to;
                    tokio::spawn(async move {
                        let _ = broker.send_to_node(&reply_to, refusal.encode()).await;
                    });
                }
            }
            Some(emulation::Kind::Answer) => {
                inner
                    .emulated
                    .asks()
                    .answer(message.request, Ok(message.data));
            }
            Some(emulation::Kind::NoSession) => {
                let answer = Err(EmulationError::NoSuchSession);
                inner.emulated.asks().answer(message.request, answer);
            }
            None => tracing::warn!(kind = message.kind, "node message of an unknown kind"),
        }
    }

    fn has_subscribers(&self, channel: &str) -> bool {
        self.0
            .upgrade()
            .is_some_and(|inner| inner.hub.has_subscribers(channel))
    }
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
