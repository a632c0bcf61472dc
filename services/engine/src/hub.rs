//! The hub: which local connections are subscribed to which channel, and the fan-out of a
//! publication to them.
//!
//! Channels are spread over shards by hash, each behind its own `RwLock`, so subscribes to
//! different channels and deliveries never meet on one global lock. A publication is encoded
//! once per wire format and appended once to the channel's log (see `channel_log`), which
//! every local subscriber reads from its own cursor; delivering it holds only the read lock of
//! the channel's shard and wakes the subscribers not already due to drain. Nothing waits.
//! Join and leave pushes, rare and only for some subscribers, go into each one's own queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_protocol::Format;

use crate::channel_log::{ChannelLog, Cursor, LogReader, StreamTag};
use crate::outbound::{Outbound, publications_appended};
use crate::sharded::Sharded;

const SHARDS: usize = 64;
/// How often, in bytes of a channel's log, a publisher checks its readers for one that fell
/// further behind than its queue bound: rarely enough that the check costs nothing per
/// publication, often enough that a stuck reader is cut off near its bound.
const SLOW_CHECK_BYTES: u64 = 16 * 1024;

/// Identifies a connection inside this node (cheaper to hash than the client id string).
pub type ConnId = u64;

pub use crate::channel_log::ChannelId;

#[derive(Clone, Debug)]
pub struct Subscriber {
    pub outbound: Outbound,
    pub format: Format,
    /// Receives join and leave pushes of the channel.
    pub join_leave: bool,
}

pub struct Hub {
    channels: Sharded<ChannelEntry>,
    next_id: AtomicU32,
    /// Numbers every publication of this node (see `channel_log::Entry::seq`).
    next_seq: AtomicU64,
}

/// A new local subscription: its reader of the channel's log (which carries the channel's id
/// in this hub), and the channel's broker subscription.
pub struct Joined {
    pub reader: LogReader,
    pub broker: BrokerSubscription,
}

/// The node's node-level broker subscription of a channel: set once the broker confirmed it.
/// Every local subscriber awaits it, so nobody is told "subscribed" before publications can
/// actually reach this node; only the first one performs it.
pub type BrokerSubscription = Arc<tokio::sync::OnceCell<()>>;

struct ChannelEntry {
    /// Unique in this hub for the life of the entry: tells a session which of its channels a
    /// queued publication belongs to, without a string per queued item.
    id: ChannelId,
    subscribers: HashMap<ConnId, Listener>,
    broker: BrokerSubscription,
    log: ChannelLog,
    /// Subscribers per wire format: a publication is encoded only in the formats in use.
    json: usize,
    protobuf: usize,
}

struct Listener {
    sub: Subscriber,
    cursor: Arc<Cursor>,
}

impl ChannelEntry {
    fn count(&mut self, format: Format) -> &mut usize {
        match format {
            Format::Json => &mut self.json,
            Format::Protobuf => &mut self.protobuf,
        }
    }
}

/// What an unsubscribe did to the channel on this node: the broker's node-level subscription
/// can be dropped after the last local subscriber left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The last local subscriber left.
    Edge,
    /// Others are still subscribed.
    Unchanged,
    /// The connection was not subscribed.
    Noop,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            channels: Sharded::new(SHARDS),
            next_id: AtomicU32::new(1),
            next_seq: AtomicU64::new(0),
        }
    }

    /// A fresh channel id; never 0, which marks frames that are not positioned publications.
    fn new_id(&self) -> ChannelId {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Adds a local subscriber. Returns the channel's id and broker subscription to await (and
    /// to perform, for whoever gets there first), or `None` if the connection was already in.
    pub fn subscribe(&self, channel: &str, conn: ConnId, subscriber: Subscriber) -> Option<Joined> {
        let mut shard = self.channels.write(channel);
        let entry = match shard.get_mut(channel) {
            Some(entry) => entry,
            None => shard
                .entry(Arc::from(channel))
                .or_insert_with(|| ChannelEntry {
                    id: self.new_id(),
                    subscribers: HashMap::new(),
                    broker: BrokerSubscription::default(),
                    log: ChannelLog::new(),
                    json: 0,
                    protobuf: 0,
                }),
        };
        if entry.subscribers.contains_key(&conn) {
            return None;
        }
        let reader = entry.log.reader(entry.id);
        *entry.count(subscriber.format) += 1;
        entry.subscribers.insert(
            conn,
            Listener {
                sub: subscriber,
                cursor: reader.cursor().clone(),
            },
        );
        Some(Joined {
            reader,
            broker: entry.broker.clone(),
        })
    }

    pub fn unsubscribe(&self, channel: &str, conn: ConnId) -> Membership {
        let mut shard = self.channels.write(channel);
        let Some(entry) = shard.get_mut(channel) else {
            return Membership::Noop;
        };
        let Some(left) = entry.subscribers.remove(&conn) else {
            return Membership::Noop;
        };
        *entry.count(left.sub.format) -= 1;
        if entry.subscribers.is_empty() {
            shard.remove(channel);
            Membership::Edge
        } else {
            Membership::Unchanged
        }
    }

    /// Whether any local connection is subscribed to the channel.
    pub fn has_subscribers(&self, channel: &str) -> bool {
        self.channels.read(channel).contains_key(channel)
    }

    /// Delivers one publication to every local subscriber of `channel`: appended once to the
    /// channel's log, read by each subscriber's session at its next drain. `encode` is called
    /// at most once per wire format in use; `None` means the publication cannot be represented
    /// in that format (binary data for a JSON client), and such subscribers are closed with
    /// 3506. `at` is the publication's place in the channel's stream, for channels with
    /// history. Returns how many subscribers it was delivered to.
    pub fn deliver(
        &self,
        channel: &str,
        at: Option<StreamTag>,
        mut encode: impl FnMut(Format) -> Option<Bytes>,
    ) -> usize {
        let shard = self.channels.read(channel);
        let Some(entry) = shard.get(channel) else {
            return 0;
        };
        let json = (entry.json > 0).then(|| encode(Format::Json)).flatten();
        let protobuf = (entry.protobuf > 0)
            .then(|| encode(Format::Protobuf))
            .flatten();
        let unsendable = |format| match format {
            Format::Json => json.is_none(),
            Format::Protobuf => protobuf.is_none(),
        };
        let (json_unsendable, protobuf_unsendable) =
            (unsendable(Format::Json), unsendable(Format::Protobuf));
        let len = json
            .as_ref()
            .map_or(0, Bytes::len)
            .max(protobuf.as_ref().map_or(0, Bytes::len)) as u64;
        let appended = entry.log.append(&self.next_seq, json, protobuf, at);
        publications_appended();
        let check_slow = appended / SLOW_CHECK_BYTES != (appended - len) / SLOW_CHECK_BYTES;
        let mut delivered = 0;
        for listener in entry.subscribers.values() {
            let sub = &listener.sub;
            let cannot = match sub.format {
                Format::Json => json_unsendable,
                Format::Protobuf => protobuf_unsendable,
            };
            if cannot {
                sub.outbound
                    .close(herald_protocol::codes::disconnect::INAPPROPRIATE_PROTOCOL);
                continue;
            }
            if check_slow && lags_beyond(appended, listener.cursor.consumed(), sub.outbound.limit())
            {
                // A slow client is not flushed, it is cut off, and the cut drops its log
                // readers: what it has not read stops keeping the log's chunks alive at once.
                sub.outbound.close(herald_protocol::codes::disconnect::SLOW);
                continue;
            }
            sub.outbound.wake_for_log();
            delivered += 1;
        }
        delivered
    }

    /// Lets the logs of channels without a publication for `idle` drop what they hold, and
    /// wakes their readers so they move on from it. Returns how many logs it sealed.
    pub fn seal_idle_logs(&self, now: Instant, idle: Duration) -> usize {
        let mut sealed = 0;
        self.channels.for_each_shard(|shard| {
            for entry in shard.values() {
                if entry.log.seal_if_idle(now, idle) {
                    sealed += 1;
                    publications_appended();
                    for listener in entry.subscribers.values() {
                        listener.sub.outbound.wake_for_log();
                    }
                }
            }
        });
        sealed
    }

    /// Pushes a join or leave to the local subscribers of `channel` that receive them.
    pub fn deliver_join_leave(
        &self,
        channel: &str,
        mut encode: impl FnMut(Format) -> Option<Bytes>,
    ) -> usize {
        let shard = self.channels.read(channel);
        let Some(entry) = shard.get(channel) else {
            return 0;
        };
        let mut json: Option<Option<Bytes>> = None;
        let mut protobuf: Option<Option<Bytes>> = None;
        let mut delivered = 0;
        for sub in entry.subscribers.values().map(|l| &l.sub) {
            if !sub.join_leave {
                continue;
            }
            let slot = match sub.format {
                Format::Json => &mut json,
                Format::Protobuf => &mut protobuf,
            };
            let Some(bytes) = slot.get_or_insert_with(|| encode(sub.format)).clone() else {
                sub.outbound
                    .close(herald_protocol::codes::disconnect::INAPPROPRIATE_PROTOCOL);
                continue;
            };
            if sub.outbound.push(bytes) {
                delivered += 1;
            }
        }
        delivered
    }

    /// Queues `control` for every local subscriber of `channel`.
    pub fn tell_subscribers(&self, channel: &str, control: impl Fn() -> crate::control::Control) {
        if let Some(entry) = self.channels.read(channel).get(channel) {
            for listener in entry.subscribers.values() {
                listener.sub.outbound.control(control());
            }
        }
    }

    /// Number of channels with local subscribers, and number of (channel, connection) pairs.
    pub fn counts(&self) -> (usize, usize) {
        let (mut channels, mut subs) = (0, 0);
        self.channels.for_each_shard(|shard| {
            channels += shard.len();
            subs += shard.values().map(|e| e.subscribers.len()).sum::<usize>();
        });
        (channels, subs)
    }

    /// Every channel with local subscribers and its number of local subscribers.
    pub fn channels(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        self.channels.for_each_shard(|shard| {
            out.extend(
                shard
                    .iter()
                    .map(|(ch, e)| (ch.to_string(), e.subscribers.len())),
            );
        });
        out
    }
}

/// Whether a reader at `consumed` is more than `limit` bytes behind a log at `appended`. A reader
/// may already be past `appended`, at what a concurrent publisher appended meanwhile: that is
/// not behind at all.
fn lags_beyond(appended: u64, consumed: u64, limit: usize) -> bool {
    appended.saturating_sub(consumed) > limit as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Outgoing;

    fn sub(format: Format) -> (Subscriber, Outbound) {
        let outbound = Outbound::new(1024 * 1024);
        (
            Subscriber {
                outbound: outbound.clone(),
                format,
                join_leave: false,
            },
            outbound,
        )
    }

    fn read(reader: &mut LogReader, format: Format) -> Vec<Bytes> {
        let mut out = Vec::new();
        reader.read(u64::MAX, |e| {
            out.extend(e.frame(format).cloned());
            true
        });
        out
    }

    #[test]
    fn joiners_share_one_broker_subscription_and_the_last_leave_is_the_edge() {
        let hub = Hub::new();
        let (a, _) = sub(Format::Json);
        let (b, _) = sub(Format::Json);
        let first = hub.subscribe("ch", 1, a.clone()).expect("joined").broker;
        assert!(hub.subscribe("ch", 1, a).is_none(), "already in");
        let second = hub.subscribe("ch", 2, b).expect("joined").broker;
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(hub.unsubscribe("ch", 1), Membership::Unchanged);
        assert_eq!(hub.unsubscribe("ch", 1), Membership::Noop);
        assert_eq!(hub.unsubscribe("ch", 2), Membership::Edge);
        assert!(!hub.has_subscribers("ch"));
        assert_eq!(hub.counts(), (0, 0));
    }

    #[tokio::test]
    async fn deliver_encodes_once_per_format_in_use_and_shares_the_bytes() {
        let hub = Hub::new();
        let mut readers = Vec::new();
        for id in 0..10 {
            let format = if id % 2 == 0 {
                Format::Json
            } else {
                Format::Protobuf
            };
            let (s, q) = sub(format);
            readers.push((hub.subscribe("ch", id, s).unwrap().reader, format, q));
        }
        let mut encodes = Vec::new();
        let n = hub.deliver("ch", None, |f| {
            encodes.push(f);
            Some(Bytes::from(format!("{f:?}")))
        });
        assert_eq!(n, 10);
        assert_eq!(encodes, vec![Format::Json, Format::Protobuf]);
        for (_, _, q) in &readers {
            // Woken, with nothing in its own queue.
            tokio::time::timeout(std::time::Duration::from_secs(1), q.ready())
                .await
                .expect("woken");
            assert_eq!(q.queued_bytes(), 0);
        }
        let first = read(&mut readers[0].0, Format::Json).pop().unwrap();
        let third = read(&mut readers[2].0, Format::Json).pop().unwrap();
        assert_eq!(first, Bytes::from("Json"));
        assert_eq!(
            first.as_ptr(),
            third.as_ptr(),
            "same allocation, not a copy"
        );
        assert_eq!(
            read(&mut readers[1].0, Format::Protobuf),
            vec![Bytes::from("Protobuf")]
        );
        assert_eq!(hub.deliver("other", None, |_| unreachable!()), 0);

        // Only JSON subscribers left: nothing is encoded for Protobuf.
        for id in (1..10).step_by(2) {
            hub.unsubscribe("ch", id);
        }
        encodes.clear();
        hub.deliver("ch", None, |f| {
            encodes.push(f);
            Some(Bytes::new())
        });
        assert_eq!(encodes, vec![Format::Json]);
    }

    #[test]
    fn a_reader_ahead_of_a_publishers_count_is_not_behind() {
        assert!(
            !lags_beyond(1_000, 1_200, 100),
            "read what a concurrent publisher added"
        );
        assert!(!lags_beyond(1_000, 900, 100));
        assert!(lags_beyond(1_000, 899, 100));
    }

    #[test]
    fn a_subscriber_too_far_behind_is_cut_off_and_others_are_not() {
        let hub = Hub::new();
        let slow = Outbound::new(SLOW_CHECK_BYTES as usize);
        let _slow_reader = hub
            .subscribe(
                "ch",
                1,
                Subscriber {
                    outbound: slow.clone(),
                    format: Format::Json,
                    join_leave: false,
                },
            )
            .unwrap()
            .reader;
        let (fast, fast_q) = sub(Format::Json);
        let mut fast_reader = hub.subscribe("ch", 2, fast).unwrap().reader;
        let payload = Bytes::from(vec![b'x'; 1000]);
        let mut received = 0;
        for _ in 0..(3 * SLOW_CHECK_BYTES / 1000) {
            hub.deliver("ch", None, |_| Some(payload.clone()));
            received += read(&mut fast_reader, Format::Json).len();
        }
        assert!(slow.is_closed(), "the reader that never read is cut off");
        assert!(!fast_q.is_closed());
        assert_eq!(received as u64, 3 * SLOW_CHECK_BYTES / 1000);
    }

    #[test]
    fn binary_data_closes_json_subscribers_only() {
        let hub = Hub::new();
        let (json, json_q) = sub(Format::Json);
        let (proto, proto_q) = sub(Format::Protobuf);
        hub.subscribe("ch", 1, json).unwrap();
        let mut reader = hub.subscribe("ch", 2, proto).unwrap().reader;
        let n = hub.deliver("ch", None, |f| {
            (f == Format::Protobuf).then(|| Bytes::from("p"))
        });
        assert_eq!(n, 1);
        assert!(json_q.is_closed());
        assert!(!proto_q.is_closed());
        assert_eq!(read(&mut reader, Format::Protobuf), vec![Bytes::from("p")]);
    }

    #[test]
    fn join_and_leave_go_to_the_queues_of_those_who_asked() {
        let hub = Hub::new();
        let (mut with, with_q) = sub(Format::Json);
        with.join_leave = true;
        let (without, without_q) = sub(Format::Json);
        hub.subscribe("ch", 1, with).unwrap();
        hub.subscribe("ch", 2, without).unwrap();
        assert_eq!(
            hub.deliver_join_leave("ch", |_| Some(Bytes::from("join"))),
            1
        );
        let mut items = Vec::new();
        with_q.drain(&mut items);
        assert!(matches!(&items[..], [Outgoing::Frame(b)] if b == "join"));
        assert_eq!(without_q.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn sealing_idle_logs_wakes_their_readers() {
        let hub = Hub::new();
        let (s, q) = sub(Format::Json);
        let mut reader = hub.subscribe("ch", 1, s).unwrap().reader;
        hub.deliver("ch", None, |_| Some(Bytes::from("a")));
        q.take_log_wake();
        read(&mut reader, Format::Json);
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(hub.seal_idle_logs(later, Duration::from_secs(1)), 1);
        tokio::time::timeout(Duration::from_secs(1), q.ready())
            .await
            .expect("woken to move on");
        assert_eq!(hub.seal_idle_logs(later, Duration::from_secs(1)), 0);
    }
}
