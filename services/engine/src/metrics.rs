//! Counters of a node, kept as plain atomics so the hot path pays one relaxed add per
//! publication (never per subscriber) and the engine stays free of any metrics library. The
//! binary exports them (OpenTelemetry → Prometheus) by reading a snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// Broker operations, in the order of [`Metrics::broker_errors`]: the `op` label of
/// `herald_broker_errors_total`.
pub const BROKER_OPS: [&str; 12] = [
    "publish",
    "history",
    "remove_history",
    "add_presence",
    "remove_presence",
    "presence",
    "presence_stats",
    "join_leave",
    "command",
    "send_to_node",
    "subscribe",
    "unsubscribe",
];

/// A broker operation, by its position in [`BROKER_OPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerOp {
    Publish,
    History,
    RemoveHistory,
    AddPresence,
    RemovePresence,
    Presence,
    PresenceStats,
    JoinLeave,
    Command,
    SendToNode,
    Subscribe,
    Unsubscribe,
}

#[derive(Default)]
pub struct Metrics {
    connects: AtomicU64,
    /// How long a connect command took to answer (token check, limits, token channels).
    pub connect_duration: Histogram,
    /// How long the broker took to publish (and, with history, to store) a publication.
    pub broker_publish_duration: Histogram,
    broker_errors: [AtomicU64; BROKER_OPS.len()],
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
    /// Failed broker operations: (op, count).
    pub broker_errors: Vec<(&'static str, u64)>,
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

    pub(crate) fn broker_error(&self, op: BrokerOp) {
        self.broker_errors[op as usize].fetch_add(1, Ordering::Relaxed);
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
            broker_errors: BROKER_OPS
                .iter()
                .zip(&self.broker_errors)
                .map(|(name, c)| (*name, c.load(Ordering::Relaxed)))
                .collect(),
            command_errors: lock(&self.command_errors).clone(),
            disconnects: lock(&self.disconnects).clone(),
        }
    }
}

/// Upper bounds of [`Histogram`]'s buckets, in seconds: from half a millisecond (a publish to a
/// local Redis) to ten seconds (a JWKS fetch that nearly timed out).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the fixed [`LATENCY_BUCKETS`]. An observation is two relaxed adds
/// on cells of the observing thread's own shard, no lock and no allocation, so it may sit on any
/// path: with one set of cells, every publish of every worker thread would fight over the
/// same cache lines (measured: a tenth of the API's batch publish throughput).
pub struct Histogram {
    shards: Box<[Cells]>,
}

/// How many threads observe without sharing cells (more share them, still correctly).
const SHARDS: usize = 8;

/// One shard's counts: per bucket (not cumulative; the last counts what is above every
/// bound) and the sum, on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
struct Cells {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// [`LATENCY_BUCKETS`] in nanoseconds, for comparing without floating point.
const BOUNDS_NANOS: [u64; LATENCY_BUCKETS.len()] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The shard of the calling thread: threads are numbered as they first observe.
fn shard_index() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static INDEX: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// A copy of a [`Histogram`] in Prometheus' shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or below it), cumulative, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Cells::default()).collect(),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BOUNDS_NANOS.len());
        let cells = &self.shards[shard_index()];
        cells.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        cells.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut per_bucket = [0u64; LATENCY_BUCKETS.len() + 1];
        let mut sum_nanos = 0u64;
        for cells in self.shards.iter() {
            for (total, c) in per_bucket.iter_mut().zip(&cells.buckets) {
                *total += c.load(Ordering::Relaxed);
            }
            sum_nanos = sum_nanos.wrapping_add(cells.sum_nanos.load(Ordering::Relaxed));
        }
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&per_bucket)
            .map(|(bound, n)| {
                cumulative += n;
                (*bound, cumulative)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            // From the buckets read in this snapshot, so +Inf is never below the last bucket.
            count: cumulative + per_bucket[LATENCY_BUCKETS.len()],
            sum_seconds: sum_nanos as f64 / 1e9,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_what_is_above_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // first bucket
        h.observe(Duration::from_millis(1)); // exactly on the 1 ms bound
        h.observe(Duration::from_millis(30)); // 0.05 bucket
        h.observe(Duration::from_secs(60)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), LATENCY_BUCKETS.len());
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.0005), 1);
        assert_eq!(at(0.001), 2);
        assert_eq!(at(0.025), 2);
        assert_eq!(at(0.05), 3);
        assert_eq!(at(10.0), 3);
        assert!((s.sum_seconds - 60.0311).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn observations_from_many_threads_all_count() {
        let h = Histogram::default();
        std::thread::scope(|scope| {
            for _ in 0..3 * SHARDS {
                scope.spawn(|| {
                    for _ in 0..100 {
                        h.observe(Duration::from_millis(2));
                    }
                });
            }
        });
        let s = h.snapshot();
        assert_eq!(s.count, 3 * SHARDS as u64 * 100);
        assert_eq!(s.buckets[1].1, 0, "nothing at or below 1 ms");
        assert_eq!(s.buckets[2].1, s.count, "everything at or below 2.5 ms");
    }

    #[test]
    fn the_nanosecond_bounds_are_the_buckets() {
        for (nanos, seconds) in BOUNDS_NANOS.iter().zip(LATENCY_BUCKETS) {
            assert_eq!(Duration::from_nanos(*nanos).as_secs_f64(), seconds);
        }
    }

    #[test]
    fn broker_errors_are_counted_by_op() {
        let m = Metrics::default();
        m.broker_error(BrokerOp::Publish);
        m.broker_error(BrokerOp::Publish);
        m.broker_error(BrokerOp::Unsubscribe);
        let s = m.snapshot();
        assert_eq!(s.broker_errors.len(), BROKER_OPS.len());
        let get = |op| s.broker_errors.iter().find(|(o, _)| *o == op).unwrap().1;
        assert_eq!(get("publish"), 2);
        assert_eq!(get("unsubscribe"), 1);
        assert_eq!(get("history"), 0);
    }
}
