//! One handler per client command. Each returns the reply to send (without its id), no reply,
//! or a [`CommandError`] that `Session::handle_command` turns into an error reply or a close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_protocol::codes::{self};
use herald_protocol::proto::{
    ClientInfo, Command, ConnectRequest, ConnectResult, HistoryRequest, HistoryResult, PingResult,
    PresenceRequest, PresenceResult, PresenceStatsRequest, PresenceStatsResult, PublishRequest,
    PublishResult, Push, RefreshRequest, RefreshResult, Reply, SubRefreshRequest, SubRefreshResult,
    Subscribe, SubscribeRequest, SubscribeResult, UnsubscribeRequest, UnsubscribeResult,
};

use super::position::Position;
use super::{Connected, Session, State};
use crate::auth::ConnectClaims;
use crate::broker::{HistoryPage, HistoryQuery, StreamPosition};
use crate::channel::{is_private, user_limited_allows};
use crate::channel_log::StreamTag;
use crate::error::{CommandError, NodeError, connect_token_error, subscribe_token_error};
use crate::metrics::Limit;
use crate::node::{Member, PublishOptions, now_unix};
use crate::registry::{ClientHandle, ConnectionLimits, LimitReached};

type CommandResult = Result<Option<Reply>, CommandError>;

/// Most publications a recovering subscribe replies with (Centrifugo's
/// `client.recovery_max_publication_limit`); a client further behind is told it was not
/// recovered.
pub const MAX_RECOVERED: usize = 300;
/// Most publications a history command returns (Centrifugo's
/// `client.history_max_publication_limit`).
pub const MAX_HISTORY: usize = 300;

/// The request of a command: the first non-empty request field, as the protocol says.
pub(super) enum Method {
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(UnsubscribeRequest),
    Publish(PublishRequest),
    Presence(PresenceRequest),
    PresenceStats(PresenceStatsRequest),
    History(HistoryRequest),
    Ping,
    Send,
    Rpc,
    Refresh(RefreshRequest),
    SubRefresh(SubRefreshRequest),
}

impl Method {
    pub(super) fn of(c: Command) -> Option<Method> {
        Some(if let Some(r) = c.connect {
            Method::Connect(r)
        } else if let Some(r) = c.subscribe {
            Method::Subscribe(r)
        } else if let Some(r) = c.unsubscribe {
            Method::Unsubscribe(r)
        } else if let Some(r) = c.publish {
            Method::Publish(r)
        } else if let Some(r) = c.presence {
            Method::Presence(r)
        } else if let Some(r) = c.presence_stats {
            Method::PresenceStats(r)
        } else if let Some(r) = c.history {
            Method::History(r)
        } else if c.ping.is_some() {
            Method::Ping
        } else if c.send.is_some() {
            Method::Send
        } else if c.rpc.is_some() {
            Method::Rpc
        } else if let Some(r) = c.refresh {
            Method::Refresh(r)
        } else if let Some(r) = c.sub_refresh {
            Method::SubRefresh(r)
        } else {
            return None;
        })
    }

    /// Position in [`crate::metrics::COMMANDS`].
    pub(super) fn index(&self) -> usize {
        match self {
            Method::Connect(_) => 0,
            Method::Subscribe(_) => 1,
            Method::Unsubscribe(_) => 2,
            Method::Publish(_) => 3,
            Method::Presence(_) => 4,
            Method::PresenceStats(_) => 5,
            Method::History(_) => 6,
            Method::Ping => 7,
            Method::Send => 8,
            Method::Rpc => 9,
            Method::Refresh(_) => 10,
            Method::SubRefresh(_) => 11,
        }
    }

    /// Only asynchronous messages may come without an id (they get no reply).
    pub(super) fn allows_zero_id(&self) -> bool {
        matches!(self, Method::Send)
    }
}

fn reply(set: impl FnOnce(&mut Reply)) -> CommandResult {
    let mut r = Reply::default();
    set(&mut r);
    Ok(Some(r))
}

/// Seconds from `now` until `at`, for the `ttl` fields.
fn ttl(at: Option<u64>, now: u64) -> u32 {
    at.map(|t| t.saturating_sub(now).min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

impl Session {
    pub(super) async fn dispatch(&mut self, method: Method) -> CommandResult {
        match method {
            Method::Connect(_) => unreachable!("connect is handled before dispatch"),
            Method::Subscribe(r) => self.handle_subscribe(r).await,
            Method::Unsubscribe(r) => self.handle_unsubscribe(r),
            Method::Publish(r) => self.handle_publish(r).await,
            Method::History(r) => self.handle_history(r).await,
            Method::Presence(r) => {
                self.presence_allowed(&r.channel)?;
                let presence = self.node.presence(&r.channel).await?;
                reply(|r| {
                    r.presence = Some(PresenceResult {
                        presence: presence.into_iter().collect(),
                    })
                })
            }
            Method::PresenceStats(r) => {
                self.presence_allowed(&r.channel)?;
                let (clients, users) = self.node.presence_stats(&r.channel).await?;
                reply(|r| {
                    r.presence_stats = Some(PresenceStatsResult {
                        num_clients: u32::try_from(clients).unwrap_or(u32::MAX),
                        num_users: u32::try_from(users).unwrap_or(u32::MAX),
                    })
                })
            }
            Method::Rpc => Err(codes::METHOD_NOT_FOUND.into()),
            // No handler for asynchronous messages: accepted and dropped, as Centrifugo does.
            Method::Send => Ok(None),
            Method::Ping => reply(|r| r.ping = Some(PingResult {})),
            Method::Refresh(r) => self.handle_refresh(r).await,
            Method::SubRefresh(r) => self.handle_sub_refresh(r).await,
        }
    }

    fn connected(&self) -> &Connected {
        match &self.state {
            State::Connected(c) => c,
            _ => unreachable!("dispatch runs only on connected sessions"),
        }
    }

    pub(super) async fn handle_connect(&mut self, req: ConnectRequest) -> CommandResult {
        let now = now_unix();
        let inner = self.node.inner();
        if self.node.is_shutting_down() {
            // Reconnect elsewhere, as every client of this node was told.
            return Err(codes::disconnect::SHUTDOWN.into());
        }
        // Before the token's signature is checked: a connect storm past the limit costs
        // next to nothing.
        if !inner.connection_rate.admit(Instant::now()) {
            tracing::debug!("connect refused: client.connection_rate_limit");
            inner.metrics.limited(Limit::ConnectionRate);
            self.state = State::Failed;
            return Err(codes::TOO_MANY_REQUESTS.into());
        }
        let claims = if req.token.is_empty() {
            if !inner.rules.insecure() {
                tracing::debug!("connect without credentials");
                return Err(codes::disconnect::BAD_REQUEST.into());
            }
            ConnectClaims::default()
        } else {
            match inner
                .verifier
                .verify_connect_fetching(&req.token, now)
                .await
            {
                Ok(claims) => claims,
                Err(e) => {
                    tracing::debug!(error = %e, "connect token rejected");
                    let err = connect_token_error(&e);
                    self.state = State::Failed;
                    return Err(err);
                }
            }
        };
        let expires_at = claims.expires_at();
        if expires_at.is_some_and(|t| t <= now) {
            self.state = State::Failed;
            return Err(codes::TOKEN_EXPIRED.into());
        }
        let client_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let user: Arc<str> = Arc::from(claims.sub.as_str());
        let limits = ConnectionLimits {
            per_node: inner.client.connection_limit,
            per_user: inner.client.user_connection_limit,
        };
        let handle = ClientHandle {
            client_id: client_id.clone(),
            outbound: self.outbound.clone(),
        };
        if let Err(reached) = inner.registry.try_add(&user, self.conn, handle, limits) {
            tracing::debug!(user = %user, "connect refused: {reached}");
            inner.metrics.limited(match reached {
                LimitReached::Node => Limit::Connections,
                LimitReached::User => Limit::UserConnections,
            });
            self.state = State::Failed;
            return Err(codes::disconnect::CONNECTION_LIMIT.into());
        }
        inner.metrics.connected();
        tracing::debug!(target: crate::ACCESS_LOG, client = %client_id, user = %user, "client connected");
        if self.node.is_shutting_down() {
            // The shutdown went through the registry before this connection was in it.
            self.outbound.close(codes::disconnect::SHUTDOWN);
        }
        self.state = State::Connected(Box::new(Connected {
            client_id: client_id.clone(),
            user,
            info: claims.info.clone(),
            channels: Default::default(),
            positions: Vec::new(),
        }));
        let started = Instant::now();
        self.timers.connected(started);
        self.timers.set_expiry(
            started,
            expires_at.map(|t| Duration::from_secs(t.saturating_sub(now))),
        );

        // Server-side subscriptions from the token's `channels` claim: what they recover
        // shares one budget, as it goes out in one reply.
        let mut subs = std::collections::BTreeMap::new();
        let mut budget = self.recovery_budget();
        for channel in claims.channels {
            let recover_from = req
                .subs
                .get(&channel)
                .filter(|s| s.recover)
                .map(|s| (s.offset, s.epoch.clone()));
            match self
                .add_server_side(&channel, None, recover_from, &mut budget)
                .await
            {
                Ok(result) => {
                    subs.insert(channel, result.unwrap_or_default());
                }
                Err(NodeError::Broker(e)) => {
                    tracing::warn!(channel = %channel, error = %e, "server-side subscribe failed");
                    return Err(codes::disconnect::INTERNAL_SERVER_ERROR.into());
                }
                Err(e) => {
                    tracing::info!(channel = %channel, error = %e, "token channel skipped");
                }
            }
        }

        let inner = self.node.inner();
        let emulation = &self.emulation;
        reply(|r| {
            r.connect = Some(ConnectResult {
                client: client_id.to_string(),
                version: inner.version.clone(),
                expires: expires_at.is_some(),
                ttl: ttl(expires_at, now),
                subs,
                ping: inner.client.ping_interval.as_secs() as u32,
                pong: !self.uni,
                session: emulation.as_deref().unwrap_or_default().to_owned(),
                node: if emulation.is_some() {
                    inner.uid.clone()
                } else {
                    String::new()
                },
                ..Default::default()
            })
        })
    }

    /// Who this connection is in `channel`, if the channel keeps presence or announces joins.
    fn member(
        &self,
        channel: &str,
        chan_info: &Option<Bytes>,
    ) -> Result<Option<Member>, NodeError> {
        let options = self.node.inner().rules.resolve(channel)?;
        if !(options.presence || options.join_leave) {
            return Ok(None);
        }
        let c = self.connected();
        Ok(Some(Member {
            info: ClientInfo {
                user: c.user.to_string(),
                client: c.client_id.to_string(),
                conn_info: c.info.clone().unwrap_or_default(),
                chan_info: chan_info.clone().unwrap_or_default(),
            },
            presence: options.presence,
            join_leave: options.join_leave,
        }))
    }

    /// Subscribes the connection on the server's behalf (token `channels`, server API). A
    /// server-side subscription cannot ask for positioning or recovery: it gets them when the
    /// namespace forces them, and recovers from `recover_from` (the client's `subs` in its
    /// connect). Returns what the client is told about the subscription (`None`: it already
    /// had it); a positioned one gets its caught-up marker behind that reply.
    async fn add_server_side(
        &mut self,
        channel: &str,
        info: Option<Bytes>,
        recover_from: Option<(u64, String)>,
        budget: &mut usize,
    ) -> Result<Option<SubscribeResult>, NodeError> {
        let options = self.node.inner().rules.resolve(channel)?.clone();
        let c = self.connected();
        if c.channels.contains_key(channel) {
            return Ok(None);
        }
        if c.channels.len() >= self.node.inner().max_channels_per_client {
            return Err(NodeError::BadRequest("channel limit reached".into()));
        }
        let member = self.member(channel, &info)?;
        let join_leave = options.join_leave && options.force_push_join_leave;
        let Some(mut reader) = self
            .node
            .add_subscription(channel, self.conn, self.subscriber(join_leave), member)
            .await?
        else {
            return Ok(None);
        };
        reader.since_drain = self.drains;
        let channel_id = reader.channel_id;
        let history = options.has_history();
        let recoverable = history && options.force_recovery;
        let positioned = recoverable || (history && options.force_positioning);
        let mut result = SubscribeResult::default();
        if positioned {
            let recovering = recoverable.then_some(recover_from).flatten();
            let was_recovering = recovering.is_some();
            let read = self.read_position(channel, recovering, budget).await;
            let (stream, recovered) = match read {
                Ok(read) => read,
                Err(e) => {
                    self.node.remove_subscription(channel, self.conn);
                    return Err(e);
                }
            };
            result.recoverable = recoverable;
            result.positioned = true;
            result.epoch = stream.position.epoch.clone();
            result.offset = stream.position.offset;
            result.was_recovering = was_recovering;
            result.recovered = recovered;
            if recovered {
                result.publications = stream.publications;
            }
            self.track(Position {
                channel_id,
                channel: channel.to_owned(),
                last: StreamTag::new(stream.position.offset, &stream.position.epoch),
                held: Some(Vec::new()),
                server_side: true,
                pending_top: None,
            });
            self.caught_up_after_reply.push(channel_id);
        }
        self.subscribed(channel.to_string(), info, reader, None);
        Ok(Some(result))
    }

    pub(super) async fn server_subscribe(
        &mut self,
        channel: String,
        info: Option<Bytes>,
        data: Option<Bytes>,
    ) -> Result<(), NodeError> {
        let mut budget = self.recovery_budget();
        let added = self.add_server_side(&channel, info, None, &mut budget);
        let Some(result) = added.await? else {
            return Ok(());
        };
        self.send(&Reply {
            push: Some(Push {
                channel,
                subscribe: Some(Subscribe {
                    recoverable: result.recoverable,
                    epoch: result.epoch,
                    offset: result.offset,
                    positioned: result.positioned,
                    data: data.unwrap_or_default(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        self.queue_caught_up();
        Ok(())
    }

    pub(super) fn server_unsubscribe(&mut self, channel: &str) {
        self.unsubscribe_with(channel, codes::UNSUBSCRIBE_SERVER);
    }

    /// Ends a subscription from the server's side and tells the client why.
    pub(super) fn unsubscribe_with(&mut self, channel: &str, code: codes::UnsubscribeCode) {
        self.untrack(channel);
        if self.forget(channel).is_none() {
            return;
        }
        self.node.remove_subscription(channel, self.conn);
        self.send(&Reply {
            push: Some(Push {
                channel: channel.to_string(),
                unsubscribe: Some(code.to_proto()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    async fn handle_subscribe(&mut self, req: SubscribeRequest) -> CommandResult {
        let inner = self.node.inner();
        let channel = req.channel;
        let options = inner.rules.resolve(&channel).map_err(NodeError::from)?;
        let c = self.connected();
        if c.channels.contains_key(&channel) {
            return Err(codes::ALREADY_SUBSCRIBED.into());
        }
        if c.channels.len() >= inner.max_channels_per_client {
            return Err(codes::LIMIT_EXCEEDED.into());
        }
        let now = now_unix();
        let mut expires_at = None;
        let mut info = None;
        if !req.token.is_empty() {
            let claims = inner
                .verifier
                .verify_subscribe_fetching(&req.token, now)
                .await
                .map_err(|e| subscribe_token_error(&e))?;
            if claims.sub != *c.user || claims.channel != channel {
                return Err(codes::PERMISSION_DENIED.into());
            }
            expires_at = claims.expires_at();
            if expires_at.is_some_and(|t| t <= now) {
                return Err(codes::TOKEN_EXPIRED.into());
            }
            info = claims.info;
        } else {
            let allowed = if inner.rules.insecure() {
                true
            } else if is_private(&channel) {
                false
            } else if let Some(listed) = user_limited_allows(&channel, &c.user) {
                // A name in the user-limited form is only ever what it says: where such
                // channels are off, nobody gets in without a subscription token, so that
                // `dm#42,43` never turns into a channel anyone may join.
                listed && options.allow_user_limited_channels
            } else {
                options.allow_subscribe_for_client && !c.user.is_empty()
            };
            if !allowed {
                return Err(codes::PERMISSION_DENIED.into());
            }
        }
        // Recovery implies positioning; both need the channel's stream.
        let history = options.has_history();
        let recoverable =
            history && (options.force_recovery || (options.allow_recovery && req.recoverable));
        let positioned = recoverable || (history && (options.force_positioning || req.positioned));
        let recovering = recoverable && req.recover;
        let member = self.member(&channel, &info)?;
        let join_leave = options.join_leave
            && (options.force_push_join_leave
                || (req.join_leave && options.allow_presence_for_subscriber));
        let Some(mut reader) = self
            .node
            .add_subscription(&channel, self.conn, self.subscriber(join_leave), member)
            .await?
        else {
            return Err(codes::ALREADY_SUBSCRIBED.into());
        };
        reader.since_drain = self.drains;
        let channel_id = reader.channel_id;
        let mut result = SubscribeResult {
            expires: expires_at.is_some(),
            ttl: ttl(expires_at, now),
            ..Default::default()
        };
        if positioned {
            // Joined first, read second: what is published meanwhile comes live and is merged
            // by offset (see `position`).
            let mut budget = self.recovery_budget();
            let read = self
                .read_position(
                    &channel,
                    recovering.then(|| (req.offset, req.epoch.clone())),
                    &mut budget,
                )
                .await;
            let (stream, recovered) = match read {
                Ok(read) => read,
                Err(e) => {
                    self.node.remove_subscription(&channel, self.conn);
                    return Err(e.into());
                }
            };
            result.recoverable = recoverable;
            result.positioned = true;
            result.epoch = stream.position.epoch.clone();
            result.offset = stream.position.offset;
            result.was_recovering = recovering;
            result.recovered = recovered;
            if recovered {
                result.publications = stream.publications;
            }
            self.track(Position {
                channel_id,
                channel: channel.clone(),
                last: StreamTag::new(stream.position.offset, &stream.position.epoch),
                held: Some(Vec::new()),
                server_side: false,
                pending_top: None,
            });
            self.caught_up_after_reply.push(channel_id);
        }
        let close_at = self.timers.sub_close_at(
            Instant::now(),
            expires_at.map(|t| Duration::from_secs(t.saturating_sub(now))),
        );
        self.subscribed(channel, info, reader, close_at);
        reply(|r| r.subscribe = Some(result))
    }

    /// The channel's stream position and, when the client asks to recover from
    /// `(offset, epoch)`, what it missed: recovered only if the epoch is the same, the
    /// stream still holds every publication after `offset` (at most [`MAX_RECOVERED`]) and
    /// they fit in what is left of `budget` bytes, which they then use up. A reply the
    /// connection's queue could not take would only get the client cut off as slow: told it
    /// was not recovered, it restores its state its own way instead.
    async fn read_position(
        &self,
        channel: &str,
        recover_from: Option<(u64, String)>,
        budget: &mut usize,
    ) -> Result<(HistoryPage, bool), NodeError> {
        let Some((offset, epoch)) = recover_from else {
            let page = self
                .node
                .read_history(
                    channel,
                    &HistoryQuery {
                        limit: Some(0),
                        ..Default::default()
                    },
                )
                .await?;
            return Ok((page, false));
        };
        let page = self
            .node
            .read_history(
                channel,
                &HistoryQuery {
                    since: Some(StreamPosition {
                        offset,
                        epoch: epoch.clone(),
                    }),
                    limit: Some(MAX_RECOVERED + 1),
                    reverse: false,
                },
            )
            .await?;
        let top = page.position.offset;
        let missed = top.saturating_sub(offset);
        let complete = page.publications.len() as u64 == missed
            && page
                .publications
                .first()
                .is_none_or(|p| p.offset == offset + 1);
        let bytes: usize = page
            .publications
            .iter()
            .map(|p| {
                p.data.len()
                    + p.info
                        .as_ref()
                        .map_or(0, |i| i.conn_info.len() + i.chan_info.len())
            })
            .sum();
        let recovered = epoch == page.position.epoch
            && offset <= top
            && missed <= MAX_RECOVERED as u64
            && complete
            && bytes <= *budget;
        if recovered {
            *budget -= bytes;
        }
        Ok((page, recovered))
    }

    /// Bytes of recovered publications one reply may carry: half the connection's queue, so
    /// the reply fits beside what else is queued.
    fn recovery_budget(&self) -> usize {
        self.node.client_config().max_queue_bytes / 2
    }

    /// Presence reads: the channel keeps presence (108 otherwise), and the client is a
    /// subscriber allowed to read it (103 otherwise).
    fn presence_allowed(&self, channel: &str) -> Result<(), CommandError> {
        let options = self
            .node
            .inner()
            .rules
            .resolve(channel)
            .map_err(NodeError::from)?;
        if !options.presence {
            return Err(codes::NOT_AVAILABLE.into());
        }
        let subscribed = self.connected().channels.contains_key(channel);
        if !(subscribed && options.allow_presence_for_subscriber) {
            return Err(codes::PERMISSION_DENIED.into());
        }
        Ok(())
    }

    async fn handle_history(&mut self, req: HistoryRequest) -> CommandResult {
        let inner = self.node.inner();
        let options = inner.rules.resolve(&req.channel).map_err(NodeError::from)?;
        if !options.has_history() {
            return Err(codes::NOT_AVAILABLE.into());
        }
        let subscribed = self.connected().channels.contains_key(&req.channel);
        if !(subscribed && options.allow_history_for_subscriber) {
            return Err(codes::PERMISSION_DENIED.into());
        }
        let limit = match req.limit {
            0 => Some(0),
            n if n < 0 => Some(MAX_HISTORY),
            n => Some((n as usize).min(MAX_HISTORY)),
        };
        let page = self
            .node
            .history(
                &req.channel,
                HistoryQuery {
                    since: req.since.map(|s| StreamPosition {
                        offset: s.offset,
                        epoch: s.epoch,
                    }),
                    limit,
                    reverse: req.reverse,
                },
            )
            .await?;
        reply(|r| {
            r.history = Some(HistoryResult {
                publications: page.publications,
                epoch: page.position.epoch,
                offset: page.position.offset,
            })
        })
    }

    fn handle_unsubscribe(&mut self, req: UnsubscribeRequest) -> CommandResult {
        self.untrack(&req.channel);
        if self.forget(&req.channel).is_some() {
            self.node.remove_subscription(&req.channel, self.conn);
        }
        reply(|r| r.unsubscribe = Some(UnsubscribeResult {}))
    }

    async fn handle_publish(&mut self, req: PublishRequest) -> CommandResult {
        if req.data.is_empty() {
            return Err(codes::BAD_REQUEST.into());
        }
        let inner = self.node.inner();
        let options = inner.rules.resolve(&req.channel).map_err(NodeError::from)?;
        let c = self.connected();
        let sub = c.channels.get(&req.channel);
        // An anonymous client publishes only where it is subscribed: it may not subscribe
        // by itself (`allow_subscribe_for_client` is for users), so `allow_publish_for_client`
        // must not let it reach further than it could read.
        let anonymous = c.user.is_empty();
        let allowed = inner.rules.insecure()
            || (options.allow_publish_for_client && (!anonymous || sub.is_some()))
            || (sub.is_some() && options.allow_publish_for_subscriber);
        if !allowed {
            return Err(codes::PERMISSION_DENIED.into());
        }
        let info = ClientInfo {
            user: c.user.to_string(),
            client: c.client_id.to_string(),
            conn_info: c.info.clone().unwrap_or_default(),
            chan_info: sub.and_then(|s| s.info.clone()).unwrap_or_default(),
        };
        self.node
            .publish(
                &req.channel,
                req.data,
                PublishOptions {
                    info: Some(info),
                    ..Default::default()
                },
            )
            .await?;
        reply(|r| r.publish = Some(PublishResult {}))
    }

    async fn handle_refresh(&mut self, req: RefreshRequest) -> CommandResult {
        let now = now_unix();
        let inner = self.node.inner();
        let claims = match inner
            .verifier
            .verify_connect_fetching(&req.token, now)
            .await
        {
            Ok(claims) => claims,
            Err(crate::auth::AuthError::Expired) => {
                return Err(codes::disconnect::EXPIRED.into());
            }
            Err(_) => return Err(codes::disconnect::INVALID_TOKEN.into()),
        };
        let c = self.connected();
        if claims.sub != *c.user {
            return Err(codes::disconnect::INVALID_TOKEN.into());
        }
        let client = c.client_id.to_string();
        let version = inner.version.clone();
        let expires_at = claims.expires_at();
        self.timers.set_expiry(
            Instant::now(),
            expires_at.map(|t| Duration::from_secs(t.saturating_sub(now))),
        );
        reply(|r| {
            r.refresh = Some(RefreshResult {
                client,
                version,
                expires: expires_at.is_some(),
                ttl: ttl(expires_at, now),
            })
        })
    }

    async fn handle_sub_refresh(&mut self, req: SubRefreshRequest) -> CommandResult {
        let now = now_unix();
        let inner = self.node.inner();
        let c = self.connected();
        if !c.channels.contains_key(&req.channel) {
            return Err(codes::PERMISSION_DENIED.into());
        }
        let claims = inner
            .verifier
            .verify_subscribe_fetching(&req.token, now)
            .await
            .map_err(|e| subscribe_token_error(&e))?;
        if claims.sub != *c.user || claims.channel != req.channel {
            return Err(codes::PERMISSION_DENIED.into());
        }
        let expires_at = claims.expires_at();
        if expires_at.is_some_and(|t| t <= now) {
            return Err(codes::TOKEN_EXPIRED.into());
        }
        let close_at = self.timers.sub_close_at(
            Instant::now(),
            expires_at.map(|t| Duration::from_secs(t.saturating_sub(now))),
        );
        if let State::Connected(c) = &mut self.state
            && let Some(sub) = c.channels.get_mut(&req.channel)
        {
            sub.close_at = close_at;
        }
        self.rearm_sub_close();
        reply(|r| {
            r.sub_refresh = Some(SubRefreshResult {
                expires: expires_at.is_some(),
                ttl: ttl(expires_at, now),
            })
        })
    }
}
