//! One dedicated Redis PUB/SUB connection and the task that owns it.
//!
//! The task keeps the set of Redis channels this node wants and makes the connection match it:
//! subscribe requests are batched, a dead connection is noticed by a ping (a connection that
//! only reads would otherwise wait forever on a half-dead socket), and after a reconnect every
//! wanted channel is subscribed again. Incoming messages are handed to the broker's dispatch
//! function, which only enqueues: this loop never waits on a client. The same loop serves plain
//! PUB/SUB and a Redis Cluster's sharded PUB/SUB, through [`Connector`].

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::super::BrokerError;

/// Messages of a subscriber connection: (redis channel, payload).
pub(super) type Messages = Pin<Box<dyn Stream<Item = (String, Vec<u8>)> + Send>>;

/// The command half of a subscriber connection.
#[async_trait::async_trait]
pub(super) trait SubscriberSink: Send {
    async fn subscribe(&mut self, channels: &[String]) -> redis::RedisResult<()>;
    async fn unsubscribe(&mut self, channels: &[String]) -> redis::RedisResult<()>;
    async fn ping(&mut self) -> redis::RedisResult<()>;
}

/// Opens subscriber connections.
#[async_trait::async_trait]
pub(super) trait Connector: Send + Sync + 'static {
    async fn connect(&self) -> redis::RedisResult<(Box<dyn SubscriberSink>, Messages)>;
}

/// Most channels in one SUBSCRIBE/UNSUBSCRIBE.
const BATCH: usize = 512;
/// How often an idle PUB/SUB connection proves it is alive.
const PING_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(super) enum Request {
    Subscribe(String, oneshot::Sender<Result<(), BrokerError>>),
    /// Drop the subscription unless `keep` says it is wanted again by the time it is processed.
    Unsubscribe(String),
}

/// Called for every message: (redis channel, payload).
pub(super) type Dispatch = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;
/// Whether a Redis channel still has local subscribers (checked before unsubscribing).
pub(super) type Keep = Arc<dyn Fn(&str) -> bool + Send + Sync>;
/// Told which channels a connection subscribed again after a reconnect.
pub(super) type Resubscribed = Arc<dyn Fn(&[String]) + Send + Sync>;

/// The handle the broker keeps.
#[derive(Clone)]
pub(super) struct PubSub {
    requests: mpsc::UnboundedSender<Request>,
    healthy: Arc<AtomicBool>,
}

pub(super) struct Worker {
    pub connector: Box<dyn Connector>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Channels subscribed for the node's lifetime (the command channel).
    pub permanent: Vec<String>,
    pub dispatch: Dispatch,
    pub keep: Keep,
    pub resubscribed: Resubscribed,
    pub label: String,
    /// Counts connections established after the first (`Broker::reconnects`).
    pub reconnects: Arc<AtomicU64>,
}

impl PubSub {
    pub(super) fn spawn(rt: &tokio::runtime::Handle, worker: Worker) -> PubSub {
        let (requests, rx) = mpsc::unbounded_channel();
        let healthy = Arc::new(AtomicBool::new(false));
        rt.spawn(worker.run(rx, healthy.clone()));
        PubSub { requests, healthy }
    }

    pub(super) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(super) async fn subscribe(&self, channel: String) -> Result<(), BrokerError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Subscribe(channel, tx))
            .map_err(|_| BrokerError::Unavailable("pubsub worker stopped".into()))?;
        rx.await
            .map_err(|_| BrokerError::Unavailable("pubsub worker stopped".into()))?
    }

    pub(super) fn unsubscribe(&self, channel: String) {
        let _ = self.requests.send(Request::Unsubscribe(channel));
    }
}

impl Worker {
    async fn run(self, mut requests: mpsc::UnboundedReceiver<Request>, healthy: Arc<AtomicBool>) {
        let mut wanted: HashSet<String> = self.permanent.iter().cloned().collect();
        let mut backoff = BACKOFF_MIN;
        let mut connected_before = false;
        loop {
            match self
                .session(&mut requests, &mut wanted, &healthy, &mut connected_before)
                .await
            {
                Ended::Stopped => return,
                Ended::Lost(reason) => {
                    if healthy.swap(false, Ordering::AcqRel) {
                        tracing::warn!(pubsub = %self.label, %reason, "redis pubsub connection lost; reconnecting");
                    } else {
                        tracing::debug!(pubsub = %self.label, %reason, "redis pubsub connect failed");
                    }
                }
                Ended::Healthy(reason) => {
                    tracing::warn!(pubsub = %self.label, %reason, "redis pubsub connection lost; reconnecting");
                    healthy.store(false, Ordering::Release);
                    backoff = BACKOFF_MIN;
                }
            }
            // Requests that arrive while disconnected must not hang their callers.
            while let Ok(request) = requests.try_recv() {
                match request {
                    Request::Subscribe(ch, reply) => {
                        wanted.insert(ch);
                        let _ =
                            reply.send(Err(BrokerError::Unavailable("redis unreachable".into())));
                    }
                    Request::Unsubscribe(ch) => {
                        if !(self.keep)(&ch) {
                            wanted.remove(&ch);
                        }
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's life. Returns why it ended.
    async fn session(
        &self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        wanted: &mut HashSet<String>,
        healthy: &AtomicBool,
        connected_before: &mut bool,
    ) -> Ended {
        let (mut sink, mut stream) =
            match tokio::time::timeout(self.connect_timeout, self.connector.connect()).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(e)) => return Ended::Lost(e.to_string()),
                Err(_) => return Ended::Lost("connect timed out".into()),
            };
        let all: Vec<String> = wanted.iter().cloned().collect();
        for batch in all.chunks(BATCH) {
            match tokio::time::timeout(self.command_timeout, sink.subscribe(batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Ended::Lost(e.to_string()),
                Err(_) => return Ended::Lost("resubscribe timed out".into()),
            }
        }
        if !all.is_empty() {
            tracing::info!(pubsub = %self.label, channels = all.len(), "redis pubsub (re)subscribed");
            (self.resubscribed)(&all);
        }
        // Counted before it shows as healthy: whoever sees the node ready sees the count.
        if std::mem::replace(connected_before, true) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        healthy.store(true, Ordering::Release);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return Ended::Stopped };
                    if let Err(reason) = self.apply(request, requests, wanted, &mut sink).await {
                        return Ended::Healthy(reason);
                    }
                }
                message = stream.next() => {
                    let Some((channel, payload)) = message else {
                        return Ended::Healthy("connection closed".into());
                    };
                    (self.dispatch)(&channel, &payload);
                }
                _ = ping.tick() => {
                    match tokio::time::timeout(self.command_timeout, sink.ping()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ended::Healthy(format!("ping failed: {e}")),
                        Err(_) => return Ended::Healthy("ping timed out".into()),
                    }
                }
            }
        }
    }

    /// Applies one request, and every request of the same kind already waiting, in one command.
    async fn apply(
        &self,
        first: Request,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        wanted: &mut HashSet<String>,
        sink: &mut Box<dyn SubscriberSink>,
    ) -> Result<(), String> {
        let mut subscribe: Vec<(String, oneshot::Sender<Result<(), BrokerError>>)> = Vec::new();
        let mut unsubscribe: Vec<String> = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Subscribe(ch, reply) => subscribe.push((ch, reply)),
                Request::Unsubscribe(ch) => unsubscribe.push(ch),
            }
            if subscribe.len() + unsubscribe.len() < BATCH {
                next = requests.try_recv().ok();
            }
        }
        // Leaves first: a leave and a later join of the same channel end subscribed.
        let leaving: Vec<String> = unsubscribe
            .into_iter()
            .filter(|ch| !(self.keep)(ch) && !subscribe.iter().any(|(s, _)| s == ch))
            .filter(|ch| wanted.remove(ch))
            .collect();
        if !leaving.is_empty() {
            match tokio::time::timeout(self.command_timeout, sink.unsubscribe(&leaving)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("unsubscribe timed out".into()),
            }
        }
        if subscribe.is_empty() {
            return Ok(());
        }
        let channels: Vec<String> = subscribe.iter().map(|(ch, _)| ch.clone()).collect();
        let result =
            match tokio::time::timeout(self.command_timeout, sink.subscribe(&channels)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("subscribe timed out".into()),
            };
        for (ch, reply) in subscribe {
            // Wanted either way: a failed subscribe is retried by the resubscribe after reconnect.
            wanted.insert(ch);
            let _ = reply.send(
                result
                    .clone()
                    .map_err(|e| BrokerError::Unavailable(format!("redis subscribe: {e}"))),
            );
        }
        result
    }
}

enum Ended {
    /// The broker is gone.
    Stopped,
    /// The connection could not be (re)established.
    Lost(String),
    /// A working connection broke.
    Healthy(String),
}
