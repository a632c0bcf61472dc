//! The memory broker's idempotency cache: the result of a publish per `(channel, key)`, kept
//! for [`IDEMPOTENCY_TTL`], so a retried publish is answered without publishing again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use super::{IDEMPOTENCY_TTL, StreamPosition};

/// Most keys remembered at once; beyond it the oldest are forgotten early (a retry after that
/// publishes again, as it would after the TTL).
const MAX_KEYS: usize = 1 << 20;

type Key = (String, String);

#[derive(Default)]
pub(crate) struct Once {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    results: HashMap<Key, Option<StreamPosition>>,
    /// Keys in the order they expire.
    expiry: VecDeque<(Instant, Key)>,
}

impl Once {
    /// Returns the remembered result for `(channel, key)`, or runs `publish` and remembers
    /// what it returns (only if it succeeded). Concurrent callers with one key wait for each
    /// other, so exactly one publishes.
    pub(crate) fn run<E>(
        &self,
        channel: &str,
        key: &str,
        now: Instant,
        publish: impl FnOnce() -> Result<Option<StreamPosition>, E>,
    ) -> Result<Option<StreamPosition>, E> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(now);
        let id = (channel.to_owned(), key.to_owned());
        if let Some(result) = inner.results.get(&id) {
            return Ok(result.clone());
        }
        let result = publish()?;
        inner.results.insert(id.clone(), result.clone());
        inner.expiry.push_back((now + IDEMPOTENCY_TTL, id));
        Ok(result)
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now && self.expiry.len() < MAX_KEYS {
                break;
            }
            if let Some((_, id)) = self.expiry.pop_front() {
                self.results.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> Option<StreamPosition> {
        Some(StreamPosition {
            offset,
            epoch: "e".into(),
        })
    }

    #[test]
    fn a_key_publishes_once_until_it_expires() {
        let once = Once::default();
        let t0 = Instant::now();
        let mut published = 0;
        for _ in 0..3 {
            let r: Result<_, ()> = once.run("ch", "k", t0, || {
                published += 1;
                Ok(pos(published))
            });
            assert_eq!(r, Ok(pos(1)), "the first result every time");
        }
        assert_eq!(published, 1);
        let other: Result<_, ()> = once.run("other", "k", t0, || Ok(pos(9)));
        assert_eq!(other, Ok(pos(9)), "keys are per channel");
        let later = t0 + IDEMPOTENCY_TTL;
        let again: Result<_, ()> = once.run("ch", "k", later, || Ok(pos(2)));
        assert_eq!(again, Ok(pos(2)), "forgotten after the TTL");
    }

    #[test]
    fn a_failed_publish_is_not_remembered() {
        let once = Once::default();
        let now = Instant::now();
        assert_eq!(once.run("ch", "k", now, || Err("down")), Err("down"));
        assert_eq!(once.run::<&str>("ch", "k", now, || Ok(None)), Ok(None));
    }
}
