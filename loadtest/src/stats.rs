//! Counting what subscribers receive: per-stream sequence tracking (loss, duplicates,
//! reordering), latency histograms (HDR, microseconds), and the shards that connection tasks
//! record into (one lock per frame, never a global lock per message).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram records, in µs (larger values are clamped).
pub const MAX_LATENCY_US: u64 = 120_000_000;

/// A latency histogram in microseconds, 2 significant digits (values within 1%): with 3, the
/// buckets a run touches outgrow the CPU cache and every record is a miss (measured: 13% of the
/// generator's CPU at 2 M deliveries/s).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("static histogram bounds")
}

/// How many missing sequence numbers a tracker remembers to tell a late arrival (reordered)
/// from a duplicate; beyond that, gaps are counted as lost for good.
const MAX_MISSING: usize = 65_536;

/// What one received sequence number turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    InOrder,
    /// Arrived after later numbers (it had been counted missing).
    Reordered,
    Duplicate,
}

/// Expected-sequence tracking of one stream (one publisher stream on one channel) at one
/// subscriber.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    next: u64,
    missing: BTreeSet<u64>,
    forgotten: u64,
}

impl Tracker {
    /// Records sequence number `seq`; returns how it arrived and updates the gaps.
    pub fn record(&mut self, seq: u64) -> Seen {
        if seq == self.next {
            self.next += 1;
            Seen::InOrder
        } else if seq > self.next {
            for s in self.next..seq {
                if self.missing.len() < MAX_MISSING {
                    self.missing.insert(s);
                } else {
                    self.forgotten += 1;
                }
            }
            self.next = seq + 1;
            Seen::InOrder
        } else if self.missing.remove(&seq) {
            Seen::Reordered
        } else {
            Seen::Duplicate
        }
    }

    /// Numbers currently missing (gaps not filled yet).
    pub fn gaps(&self) -> u64 {
        self.missing.len() as u64 + self.forgotten
    }

    /// Lost numbers given that the publisher sent `sent` of them (0..sent): the gaps plus the
    /// tail never received.
    pub fn lost(&self, sent: u64) -> u64 {
        self.gaps() + sent.saturating_sub(self.next)
    }
}

/// Counters and latencies recorded by connection tasks; taken and reset at each step end.
#[derive(Debug, Clone)]
pub struct Counts {
    /// Publish → the subscriber's task has parsed it.
    pub latency: Histogram<u64>,
    /// Publish → the kernel put it in the subscriber's socket (see `client::ws`).
    pub arrival: Histogram<u64>,
    /// Publications received (including duplicates).
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Publications whose data carried no stamp.
    pub unstamped: u64,
    pub frames: u64,
    pub pings: u64,
    /// Connections closed by the server or failed while running, by reason.
    pub closes: BTreeMap<String, u64>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            latency: new_histogram(),
            arrival: new_histogram(),
            received: 0,
            duplicates: 0,
            reordered: 0,
            unstamped: 0,
            frames: 0,
            pings: 0,
            closes: BTreeMap::new(),
        }
    }
}

impl Counts {
    pub fn record_latency_ns(&mut self, now_ns: u64, sent_ns: u64) {
        let us = now_ns.saturating_sub(sent_ns) / 1000;
        self.latency.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    pub fn record_arrival_ns(&mut self, arrived_ns: u64, sent_ns: u64) {
        let us = arrived_ns.saturating_sub(sent_ns) / 1000;
        self.arrival.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    pub fn add_close(&mut self, reason: String) {
        *self.closes.entry(reason).or_insert(0) += 1;
    }

    /// Adds `other` into `self` (histograms merged).
    pub fn merge(&mut self, other: &Counts) {
        // Same bounds on both sides: cannot fail; saturate if it ever did.
        let _ = self.latency.add(&other.latency);
        let _ = self.arrival.add(&other.arrival);
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.unstamped += other.unstamped;
        self.frames += other.frames;
        self.pings += other.pings;
        for (k, v) in &other.closes {
            *self.closes.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Unique publications received.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }
}

/// Shards that connection tasks record into: task `i` uses shard `i % len`, so contention is
/// rare and a step's collection locks each shard once.
#[derive(Debug, Clone)]
pub struct Shards(Arc<Vec<Mutex<Counts>>>);

impl Shards {
    pub fn new(n: usize) -> Self {
        Shards(Arc::new(
            (0..n.max(1))
                .map(|_| Mutex::new(Counts::default()))
                .collect(),
        ))
    }

    pub fn shard(&self, i: usize) -> &Mutex<Counts> {
        &self.0[i % self.0.len()]
    }

    /// Takes (and resets) every shard's counts, merged.
    pub fn take(&self) -> Counts {
        let mut total = Counts::default();
        for s in self.0.iter() {
            let taken = std::mem::take(&mut *s.lock().unwrap_or_else(|e| e.into_inner()));
            total.merge(&taken);
        }
        total
    }
}

/// Latency summary of a histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_loss_dup_and_reorder() {
        let mut t = Tracker::default();
        let seen: Vec<Seen> = [0, 1, 3, 4, 2, 4, 7].iter().map(|&s| t.record(s)).collect();
        assert_eq!(
            seen,
            vec![
                Seen::InOrder,
                Seen::InOrder,
                Seen::InOrder,
                Seen::InOrder,
                Seen::Reordered,
                Seen::Duplicate,
                Seen::InOrder
            ]
        );
        // 5 and 6 missing; the publisher sent 0..10 so 8 and 9 are missing at the end too.
        assert_eq!(t.gaps(), 2);
        assert_eq!(t.lost(10), 4);
        assert_eq!(t.lost(8), 2);
    }

    #[test]
    fn tracker_with_no_loss() {
        let mut t = Tracker::default();
        for s in 0..1000 {
            assert_eq!(t.record(s), Seen::InOrder);
        }
        assert_eq!(t.lost(1000), 0);
    }

    #[test]
    fn hdr_merge_over_shards() {
        let shards = Shards::new(4);
        for i in 0..100u64 {
            let mut c = shards.shard(i as usize).lock().unwrap();
            c.received += 1;
            c.record_latency_ns(i * 1_000_000 + 1_000, 0); // (i + 0.001) ms
        }
        shards
            .shard(1)
            .lock()
            .unwrap()
            .add_close("3008 slow".into());
        let total = shards.take();
        assert_eq!(total.received, 100);
        assert_eq!(total.latency.len(), 100);
        let l = Latency::of(&total.latency);
        // Two significant digits: within 1%.
        assert!((l.p50_ms - 49.0).abs() < 0.49, "{l:?}");
        assert!((l.max_ms - 99.0).abs() < 0.99, "{l:?}");
        assert_eq!(total.closes["3008 slow"], 1);
        // Taking resets.
        assert_eq!(shards.take().received, 0);
    }
}
