//! Channel streams kept in process memory: the history of the memory broker.
//!
//! A channel with history is a stream. Its publications get consecutive offsets from 1; the
//! last `size` of them are kept until `ttl` has passed since the latest one. The stream has an
//! epoch: a client's position (offset, epoch) is only meaningful in that epoch. When the
//! publications expire, the position stays (a client at the top has missed nothing); only after
//! [`META_TTL`] without publications is the stream forgotten, and a new one starts with a new
//! epoch, so a client that comes back is told its position is gone instead of being fed a
//! silent gap.
//!
//! The table holds only streams that were published to, and loses each one [`META_TTL`] after
//! its last publication (swept every [`SWEEP_EVERY`]). Reading a channel that has no stream
//! leaves nothing behind: its position is offset 0 in the epoch a stream of that channel
//! would start with now, derived from the channel name, this process's random seed and the
//! current [`META_TTL`] window. A subscriber positioned on an empty channel therefore finds
//! the same epoch in the first publication, and a stream made again after one was forgotten
//! (a later window) gets a different epoch.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_protocol::proto::Publication;

use super::{HistoryOptions, HistoryPage, HistoryQuery, StreamPosition};
use crate::sharded::Sharded;

/// How long a stream's position (epoch and top offset) outlives its last publication.
pub const META_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often streams past their [`META_TTL`] are removed from the table.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

const SHARDS: usize = 64;

struct Stream {
    epoch: String,
    top: u64,
    /// Ascending, consecutive offsets ending at `top`.
    items: VecDeque<Publication>,
    items_expire: Instant,
    meta_expires: Instant,
}

impl Stream {
    fn new(epoch: String, now: Instant) -> Stream {
        Stream {
            epoch,
            top: 0,
            items: VecDeque::new(),
            items_expire: now,
            meta_expires: now + META_TTL,
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.top,
            epoch: self.epoch.clone(),
        }
    }

    fn forgotten(&self, now: Instant) -> bool {
        now >= self.meta_expires
    }

    /// Drops the publications that have expired by `now`.
    fn expire_items(&mut self, now: Instant) {
        if now >= self.items_expire && !self.items.is_empty() {
            self.items.clear();
            self.items.shrink_to_fit();
        }
    }
}

/// Every channel's stream; channels are sharded so appends to different channels never wait
/// for each other.
pub(crate) struct Streams {
    streams: Sharded<Stream>,
    /// What epochs are derived from (with the channel and the window of [`META_TTL`]).
    seed: std::hash::RandomState,
    started: Instant,
    next_sweep: Mutex<Instant>,
}

impl Default for Streams {
    fn default() -> Self {
        let started = Instant::now();
        Streams {
            streams: Sharded::new(SHARDS),
            seed: std::hash::RandomState::new(),
            started,
            next_sweep: Mutex::new(started + SWEEP_EVERY),
        }
    }
}

impl Streams {
    /// The epoch a stream of `channel` starts with at `now` (see the module doc).
    fn epoch(&self, channel: &str, now: Instant) -> String {
        let window = now.saturating_duration_since(self.started).as_secs() / META_TTL.as_secs();
        format!("{:08x}", self.seed.hash_one((channel, window)) as u32)
    }

    /// Gives `publication` the next offset of the channel's stream, keeps it, and calls `then`
    /// with it while the stream is still locked, so that whatever `then` does (delivery) happens
    /// in offset order.
    pub(crate) fn append<R>(
        &self,
        channel: &str,
        mut publication: Publication,
        options: &HistoryOptions,
        now: Instant,
        then: impl FnOnce(&Publication) -> R,
    ) -> (StreamPosition, R) {
        self.sweep_if_due(now);
        let mut shard = self.streams.write(channel);
        let stream = match shard.get_mut(channel) {
            Some(stream) => stream,
            None => shard
                .entry(channel.into())
                .or_insert_with(|| Stream::new(self.epoch(channel, now), now)),
        };
        if stream.forgotten(now) {
            *stream = Stream::new(self.epoch(channel, now), now);
        }
        stream.expire_items(now);
        stream.top += 1;
        publication.offset = stream.top;
        publication.epoch = stream.epoch.clone();
        let result = then(&publication);
        // The epoch travels with a live publication only; what clients read carries none.
        publication.epoch = String::new();
        stream.items.push_back(publication);
        while stream.items.len() > options.size {
            stream.items.pop_front();
        }
        stream.items_expire = now + options.ttl;
        stream.meta_expires = now + META_TTL.max(options.ttl);
        (stream.position(), result)
    }

    /// Reads the channel's stream. A channel without one reads as an empty stream (offset 0,
    /// the epoch one would start with) and stays without one.
    pub(crate) fn read(&self, channel: &str, query: &HistoryQuery, now: Instant) -> HistoryPage {
        let mut shard = self.streams.write(channel);
        if shard.get(channel).is_some_and(|s| s.forgotten(now)) {
            shard.remove(channel);
        }
        let Some(stream) = shard.get_mut(channel) else {
            return HistoryPage {
                publications: Vec::new(),
                position: StreamPosition {
                    offset: 0,
                    epoch: self.epoch(channel, now),
                },
                oldest: None,
            };
        };
        stream.expire_items(now);
        let limit = query.limit.unwrap_or(usize::MAX);
        let publications = if query.reverse {
            let before = query.since.as_ref().map_or(u64::MAX, |s| s.offset);
            stream
                .items
                .iter()
                .rev()
                .filter(|p| p.offset < before)
                .take(limit)
                .cloned()
                .collect()
        } else {
            let after = query.since.as_ref().map_or(0, |s| s.offset);
            // Offsets are consecutive, so the first one after `after` is found by arithmetic.
            let first = stream.items.front().map_or(0, |p| p.offset);
            let skip = usize::try_from(after.saturating_add(1).saturating_sub(first))
                .unwrap_or(usize::MAX);
            stream
                .items
                .iter()
                .skip(skip)
                .take(limit)
                .cloned()
                .collect()
        };
        HistoryPage {
            publications,
            position: stream.position(),
            oldest: stream.items.front().map(|p| p.offset),
        }
    }

    /// Removes the forgotten streams once per [`SWEEP_EVERY`]; whoever comes first after that
    /// does it, one shard lock at a time.
    fn sweep_if_due(&self, now: Instant) {
        {
            let mut next = self.next_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if now < *next {
                return;
            }
            *next = now + SWEEP_EVERY;
        }
        self.streams.for_each_shard_mut(|shard| {
            shard.retain(|_, stream| {
                stream.expire_items(now);
                !stream.forgotten(now)
            });
        });
    }

    /// Streams in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        let mut n = 0;
        self.streams.for_each_shard(|shard| n += shard.len());
        n
    }

    /// Forgets the channel's publications but keeps its position, so subscribers are not told
    /// their position is gone.
    pub(crate) fn remove(&self, channel: &str) {
        if let Some(stream) = self.streams.write(channel).get_mut(channel) {
            stream.items.clear();
            stream.items.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(size: usize, ttl_secs: u64) -> HistoryOptions {
        HistoryOptions {
            size,
            ttl: Duration::from_secs(ttl_secs),
        }
    }

    fn publication(n: u8) -> Publication {
        Publication {
            data: vec![n].into(),
            ..Default::default()
        }
    }

    fn offsets(page: &HistoryPage) -> Vec<u64> {
        page.publications.iter().map(|p| p.offset).collect()
    }

    fn query(since: Option<u64>, limit: Option<usize>, reverse: bool) -> HistoryQuery {
        HistoryQuery {
            since: since.map(|offset| StreamPosition {
                offset,
                epoch: String::new(),
            }),
            limit,
            reverse,
        }
    }

    #[test]
    fn offsets_are_consecutive_and_the_ring_keeps_the_last_size() {
        let s = Streams::default();
        let now = Instant::now();
        let mut delivered = Vec::new();
        for i in 1..=5u8 {
            let (pos, ()) = s.append("ch", publication(i), &opts(3, 60), now, |p| {
                delivered.push(p.offset)
            });
            assert_eq!(pos.offset, u64::from(i));
        }
        assert_eq!(delivered, [1, 2, 3, 4, 5], "delivered with their offsets");
        let page = s.read("ch", &query(None, None, false), now);
        assert_eq!(offsets(&page), [3, 4, 5]);
        assert_eq!(page.position.offset, 5);
        assert_eq!(page.oldest, Some(3));
        assert_eq!(page.publications[0].data.as_ref(), [3]);
    }

    #[test]
    fn since_limit_and_reverse() {
        let s = Streams::default();
        let now = Instant::now();
        for i in 1..=10u8 {
            s.append("ch", publication(i), &opts(100, 60), now, |_| ());
        }
        assert_eq!(
            offsets(&s.read("ch", &query(Some(7), None, false), now)),
            [8, 9, 10]
        );
        assert_eq!(
            offsets(&s.read("ch", &query(Some(2), Some(3), false), now)),
            [3, 4, 5]
        );
        assert_eq!(
            offsets(&s.read("ch", &query(Some(10), None, false), now)),
            Vec::<u64>::new()
        );
        assert_eq!(
            offsets(&s.read("ch", &query(None, Some(2), true), now)),
            [10, 9]
        );
        assert_eq!(
            offsets(&s.read("ch", &query(Some(4), None, true), now)),
            [3, 2, 1]
        );
        let top_only = s.read("ch", &query(None, Some(0), false), now);
        assert!(top_only.publications.is_empty());
        assert_eq!(top_only.position.offset, 10);
    }

    #[test]
    fn publications_expire_but_the_position_stays_until_the_stream_is_forgotten() {
        let s = Streams::default();
        let t0 = Instant::now();
        let (first, ()) = s.append("ch", publication(1), &opts(10, 5), t0, |_| ());
        s.append("ch", publication(2), &opts(10, 5), t0, |_| ());
        let later = t0 + Duration::from_secs(6);
        let page = s.read("ch", &query(None, None, false), later);
        assert!(page.publications.is_empty(), "ttl passed");
        assert_eq!(page.position.offset, 2, "the position stays");
        assert_eq!(page.position.epoch, first.epoch);
        let (next, ()) = s.append("ch", publication(3), &opts(10, 5), later, |_| ());
        assert_eq!(next.offset, 3, "offsets continue in the same epoch");

        let forgotten = later + META_TTL;
        let page = s.read("ch", &query(None, None, false), forgotten);
        assert_eq!(page.position.offset, 0);
        assert_ne!(
            page.position.epoch, first.epoch,
            "a new stream, a new epoch"
        );
    }

    #[test]
    fn remove_keeps_the_position() {
        let s = Streams::default();
        let now = Instant::now();
        let (pos, ()) = s.append("ch", publication(1), &opts(10, 60), now, |_| ());
        s.remove("ch");
        let page = s.read("ch", &query(None, None, false), now);
        assert!(page.publications.is_empty());
        assert_eq!(page.position, pos);
        s.remove("never-published");
    }

    #[test]
    fn an_unknown_channel_reads_as_an_empty_stream_with_an_epoch_and_leaves_nothing() {
        let s = Streams::default();
        let now = Instant::now();
        let a = s.read("new", &query(None, None, false), now);
        let b = s.read("new", &query(None, None, false), now);
        assert_eq!(a.position.offset, 0);
        assert!(!a.position.epoch.is_empty());
        assert_eq!(
            a.position, b.position,
            "the epoch is the same at every read"
        );
        for n in 0..1000 {
            s.read(&format!("probe-{n}"), &query(None, Some(0), false), now);
        }
        assert_eq!(s.len(), 0, "reads create no state");
        // The first publication starts the stream in the epoch the readers were told.
        let (first, ()) = s.append("new", publication(1), &opts(10, 60), now, |_| ());
        assert_eq!(first.epoch, a.position.epoch);
        assert_eq!(first.offset, 1);
        assert_eq!(s.len(), 1);
        assert_ne!(
            s.read("other", &query(None, None, false), now)
                .position
                .epoch,
            a.position.epoch,
            "epochs differ by channel"
        );
    }

    #[test]
    fn forgotten_streams_are_swept_from_the_table() {
        let s = Streams::default();
        let t0 = s.started;
        for n in 0..100 {
            s.append(&format!("ch-{n}"), publication(1), &opts(10, 5), t0, |_| ());
        }
        assert_eq!(s.len(), 100);
        // Still within META_TTL: a sweep keeps them (publications expire, positions stay).
        let soon = t0 + SWEEP_EVERY;
        s.append("busy", publication(1), &opts(10, 5), soon, |_| ());
        assert_eq!(s.len(), 101);
        // Past META_TTL since their last publication the next sweep drops them all.
        let later = t0 + META_TTL + SWEEP_EVERY * 2;
        s.append("fresh", publication(1), &opts(10, 5), later, |_| ());
        assert_eq!(s.len(), 1, "only the stream published to just now is left");
    }

    #[test]
    fn a_history_ttl_longer_than_the_meta_ttl_keeps_the_stream() {
        let s = Streams::default();
        let t0 = s.started;
        let long = Duration::from_secs(META_TTL.as_secs() * 2);
        let (pos, ()) = s.append(
            "ch",
            publication(1),
            &HistoryOptions {
                size: 10,
                ttl: long,
            },
            t0,
            |_| (),
        );
        let later = t0 + META_TTL + SWEEP_EVERY;
        s.append("other", publication(1), &opts(1, 1), later, |_| ());
        let page = s.read("ch", &query(None, None, false), later);
        assert_eq!(page.position, pos);
        assert_eq!(offsets(&page), [1]);
    }
}
