//! One handler per client command. Each returns the reply to send (without its id), no reply,
//! or a [`CommandError`] that `Session::handle_command` turns into an error reply or a close.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_protocol::codes::{self};
use herald_protocol::proto::{
    ClientInfo, Command, ConnectRequest, ConnectResult, PingResult, PublishRequest, PublishResult,
    Push, RefreshRequest, RefreshResult, Reply, SubRefreshRequest, SubRefreshResult, Subscribe,
    SubscribeRequest, SubscribeResult, UnsubscribeRequest, UnsubscribeResult,
};

use super::{ChannelSub, Connected, Session, State};
use crate::auth::ConnectClaims;
use crate::channel::{is_private, user_limited_allows};
use crate::error::{CommandError, NodeError, connect_token_error, subscribe_token_error};
use crate::node::{PublishOptions, now_unix};
use crate::registry::ClientHandle;

type CommandResult = Result<Option<Reply>, CommandError>;

/// The request of a command: the first non-empty request field, as the protocol says.
pub(super) enum Method {
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(UnsubscribeRequest),
    Publish(PublishRequest),
    Presence,
    PresenceStats,
    History,
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
        } else if c.presence.is_some() {
            Method::Presence
        } else if c.presence_stats.is_some() {
            Method::PresenceStats
        } else if c.history.is_some() {
            Method::History
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
            Method::Presence => 4,
            Method::PresenceStats => 5,
            Method::History => 6,
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
            // Presence and history come with channel state (a later capability).
            Method::Presence | Method::PresenceStats | Method::History => {
                Err(codes::NOT_AVAILABLE.into())
            }
            Method::Rpc => Err(codes::METHOD_NOT_FOUND.into()),
            // No handler for asynchronous messages: accepted and dropped, as Centrifugo does.
            Method::Send => Ok(None),
            Method::Ping => reply(|r| r.ping = Some(PingResult {})),
            Method::Refresh(r) => self.handle_refresh(r),
            Method::SubRefresh(r) => self.handle_sub_refresh(r),
        }
    }

    fn connected(&self) -> &Connected {
        match &self.state {
            State::Connected(c) => c,
            _ => unreachable!("dispatch runs only on connected sessions"),
        }
    }

    fn connected_mut(&mut self) -> &mut Connected {
        match &mut self.state {
            State::Connected(c) => c,
            _ => unreachable!("dispatch runs only on connected sessions"),
        }
    }

    pub(super) async fn handle_connect(&mut self, req: ConnectRequest) -> CommandResult {
        let now = now_unix();
        let inner = self.node.inner();
        let claims = if req.token.is_empty() {
            if !inner.rules.insecure() {
                tracing::debug!("connect without credentials");
                return Err(codes::disconnect::BAD_REQUEST.into());
            }
            ConnectClaims::default()
        } else {
            match inner.verifier.verify_connect(&req.token, now) {
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
        inner.metrics.connected();
        let client_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let user: Arc<str> = Arc::from(claims.sub.as_str());
        inner.registry.add(
            &user,
            self.conn,
            ClientHandle {
                client_id: client_id.clone(),
                outbound: self.outbound.clone(),
            },
        );
        self.state = State::Connected(Box::new(Connected {
            client_id: client_id.clone(),
            user,
            info: claims.info.clone(),
            channels: HashMap::new(),
        }));
        let started = Instant::now();
        self.timers.connected(started);
        self.timers.set_expiry(
            started,
            expires_at.map(|t| Duration::from_secs(t.saturating_sub(now))),
        );

        // Server-side subscriptions from the token's `channels` claim.
        let mut subs = std::collections::BTreeMap::new();
        for channel in claims.channels {
            match self.add_server_side(&channel, None).await {
                Ok(()) => {
                    subs.insert(channel, SubscribeResult::default());
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
        reply(|r| {
            r.connect = Some(ConnectResult {
                client: client_id.to_string(),
                version: inner.version.clone(),
                expires: expires_at.is_some(),
                ttl: ttl(expires_at, now),
                subs,
                ping: inner.client.ping_interval.as_secs() as u32,
                pong: true,
                ..Default::default()
            })
        })
    }

    /// Subscribes the connection on the server's behalf (token `channels`, server API).
    async fn add_server_side(
        &mut self,
        channel: &str,
        info: Option<Bytes>,
    ) -> Result<(), NodeError> {
        self.node.inner().rules.resolve(channel)?;
        let c = self.connected();
        if c.channels.contains_key(channel) {
            return Ok(());
        }
        if c.channels.len() >= self.node.inner().max_channels_per_client {
            return Err(NodeError::BadRequest("channel limit reached".into()));
        }
        self.node
            .add_subscription(channel, self.conn, self.subscriber())
            .await?;
        self.connected_mut()
            .channels
            .insert(channel.to_string(), ChannelSub { info });
        Ok(())
    }

    pub(super) async fn server_subscribe(
        &mut self,
        channel: String,
        info: Option<Bytes>,
        data: Option<Bytes>,
    ) -> Result<(), NodeError> {
        if self.connected().channels.contains_key(&channel) {
            return Ok(());
        }
        self.add_server_side(&channel, info).await?;
        self.send(&Reply {
            push: Some(Push {
                channel,
                subscribe: Some(Subscribe {
                    data: data.unwrap_or_default(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        Ok(())
    }

    pub(super) fn server_unsubscribe(&mut self, channel: &str) {
        if self.connected_mut().channels.remove(channel).is_none() {
            return;
        }
        self.node.remove_subscription(channel, self.conn);
        let code = codes::UNSUBSCRIBE_SERVER;
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
                .verify_subscribe(&req.token, now)
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
            } else if let Some(listed) = user_limited_allows(&channel, &c.user)
                && options.allow_user_limited_channels
            {
                listed
            } else {
                options.allow_subscribe_for_client && !c.user.is_empty()
            };
            if !allowed {
                return Err(codes::PERMISSION_DENIED.into());
            }
        }
        self.node
            .add_subscription(&channel, self.conn, self.subscriber())
            .await?;
        self.connected_mut()
            .channels
            .insert(channel, ChannelSub { info });
        reply(|r| {
            r.subscribe = Some(SubscribeResult {
                expires: expires_at.is_some(),
                ttl: ttl(expires_at, now),
                ..Default::default()
            })
        })
    }

    fn handle_unsubscribe(&mut self, req: UnsubscribeRequest) -> CommandResult {
        if self.connected_mut().channels.remove(&req.channel).is_some() {
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
        let allowed = inner.rules.insecure()
            || options.allow_publish_for_client
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

    fn handle_refresh(&mut self, req: RefreshRequest) -> CommandResult {
        let now = now_unix();
        let inner = self.node.inner();
        let claims = match inner.verifier.verify_connect(&req.token, now) {
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

    fn handle_sub_refresh(&mut self, req: SubRefreshRequest) -> CommandResult {
        let now = now_unix();
        let inner = self.node.inner();
        let c = self.connected();
        if !c.channels.contains_key(&req.channel) {
            return Err(codes::PERMISSION_DENIED.into());
        }
        let claims = inner
            .verifier
            .verify_subscribe(&req.token, now)
            .map_err(|e| subscribe_token_error(&e))?;
        if claims.sub != *c.user || claims.channel != req.channel {
            return Err(codes::PERMISSION_DENIED.into());
        }
        let expires_at = claims.expires_at();
        reply(|r| {
            r.sub_refresh = Some(SubRefreshResult {
                expires: expires_at.is_some(),
                ttl: ttl(expires_at, now),
            })
        })
    }
}
