//! Counters of a node, kept as plain atomics so the hot path pays one relaxed add per
//! publication (never per subscriber) and the engine stays free of any metrics library. The
//! binary exports them (OpenTelemetry → Prometheus) by reading a snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Client command names, in the order of [`Metrics::commands`].
pub const COMMANDS: [&str; 12] = [
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "ping",
    "send",
    "rpc",
    "refresh",
    "sub_refresh",
];

/// A limit that refused something, in the order of [`Metrics::limited`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `client.connection_limit`
    Connections,
    /// `client.user_connection_limit`
    UserConnections,
    /// `client.connection_rate_limit`
    ConnectionRate,
    /// `client.command_rate_limit`
    CommandRate,
}

/// Label values of [`Limit`], by its position.
pub const LIMITS: [&str; 4] = [
    "connection_limit",
    "user_connection_limit",
    "connection_rate_limit",
    "command_rate_limit",
];

#[derive(Default)]
pub struct Metrics {
    connects: AtomicU64,
    commands: [AtomicU64; COMMANDS.len()],
    /// Publications this node accepted for publishing (server API and clients).
    published: AtomicU64,
    /// Publications the broker handed to this node for its local subscribers.
    broadcasts: AtomicU64,
    /// Messages queued to client connections by fan-out.
    deliveries: AtomicU64,
    limited: [AtomicU64; LIMITS.len()],
    // Rare events: a lock is cheaper than an atomic per possible code.
    command_errors: Mutex<BTreeMap<u32, u64>>,
    disconnects: Mutex<BTreeMap<u16, u64>>,
}

/// A consistent-enough copy of the counters for export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub connects: u64,
    pub commands: Vec<(&'static str, u64)>,
    pub published: u64,
    pub broadcasts: u64,
    pub deliveries: u64,
    /// What each limit refused: (label, count).
    pub limited: Vec<(&'static str, u64)>,
    pub command_errors: BTreeMap<u32, u64>,
    pub disconnects: BTreeMap<u16, u64>,
}

impl Metrics {
    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn command(&self, index: usize) {
        if let Some(c) = self.commands.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn command_error(&self, code: u32) {
        *lock(&self.command_errors).entry(code).or_default() += 1;
    }

    pub(crate) fn disconnected(&self, code: u16) {
        *lock(&self.disconnects).entry(code).or_default() += 1;
    }

    pub(crate) fn limited(&self, limit: Limit) {
        self.limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn broadcast(&self, delivered: usize) {
        self.broadcasts.fetch_add(1, Ordering::Relaxed);
        self.deliveries
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connects: self.connects.load(Ordering::Relaxed),
            commands: COMMANDS
                .iter()
                .zip(&self.commands)
                .map(|(name, c)| (*name, c.load(Ordering::Relaxed)))
                .collect(),
            published: self.published.load(Ordering::Relaxed),
            broadcasts: self.broadcasts.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            limited: LIMITS
                .iter()
                .zip(&self.limited)
                .map(|(name, c)| (*name, c.load(Ordering::Relaxed)))
                .collect(),
            command_errors: lock(&self.command_errors).clone(),
            disconnects: lock(&self.disconnects).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
