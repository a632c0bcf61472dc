//! Rate limits of a node: how many connects it takes per second, and how many commands one
//! connection may send. Counts of connections (per node, per user) live with the registry,
//! which holds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Connects per second on this node: a count per one-second window, in one atomic (window in
/// the high half, count in the low half), so a connect storm takes no lock.
#[derive(Debug)]
pub(crate) struct ConnectionRate {
    per_second: u32,
    started: Instant,
    window_and_count: AtomicU64,
}

impl ConnectionRate {
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            started: Instant::now(),
            window_and_count: AtomicU64::new(0),
        }
    }

    /// Counts one connect at `now`; false when this second's allowance is used up.
    pub(crate) fn admit(&self, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let window = now.saturating_duration_since(self.started).as_secs() as u32 as u64;
        let mut current = self.window_and_count.load(Ordering::Relaxed);
        loop {
            let (w, count) = (current >> 32, current & u32::MAX as u64);
            let next = if w == window {
                if count >= self.per_second as u64 {
                    return false;
                }
                current + 1
            } else {
                (window << 32) | 1
            };
            match self.window_and_count.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

/// A connection's command allowance: a token bucket of `burst` tokens refilled at `rate` per
/// second. Owned by the session, so it needs no synchronisation.
#[derive(Debug)]
pub(crate) struct CommandBucket {
    tokens: f32,
    last: Instant,
}

impl CommandBucket {
    pub(crate) fn new(now: Instant, burst: u32) -> Self {
        Self {
            tokens: burst as f32,
            last: now,
        }
    }

    /// Takes a token for one command at `now`; false when none is left (`rate` 0: no limit).
    pub(crate) fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        let refill = elapsed.min(Duration::from_secs(3600)).as_secs_f32() * rate as f32;
        self.tokens = (self.tokens + refill).min(burst.max(1) as f32);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_rate_admits_the_limit_per_second_then_refuses_until_the_next() {
        let rate = ConnectionRate::new(3);
        let t0 = rate.started;
        assert!((0..3).all(|_| rate.admit(t0)));
        assert!(!rate.admit(t0 + Duration::from_millis(999)));
        assert!(rate.admit(t0 + Duration::from_secs(1)));
        assert!(rate.admit(t0 + Duration::from_millis(1500)));
        assert!(rate.admit(t0 + Duration::from_millis(1900)));
        assert!(!rate.admit(t0 + Duration::from_millis(1950)));
        // A window long gone starts over.
        assert!(rate.admit(t0 + Duration::from_secs(50)));
    }

    #[test]
    fn connection_rate_zero_is_no_limit() {
        let rate = ConnectionRate::new(0);
        assert!((0..10_000).all(|_| rate.admit(Instant::now())));
    }

    #[test]
    fn command_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = CommandBucket::new(t0, 5);
        assert!((0..5).all(|_| b.take(t0, 10, 5)));
        assert!(!b.take(t0, 10, 5), "the burst is spent");
        // 10 per second: one more token every 100 ms.
        assert!(b.take(t0 + Duration::from_millis(100), 10, 5));
        assert!(!b.take(t0 + Duration::from_millis(150), 10, 5));
        // A long pause refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..5).all(|_| b.take(later, 10, 5)));
        assert!(!b.take(later, 10, 5));
    }

    #[test]
    fn command_bucket_rate_zero_is_no_limit() {
        let t0 = Instant::now();
        let mut b = CommandBucket::new(t0, 0);
        assert!((0..10_000).all(|_| b.take(t0, 0, 0)));
    }
}
