//! The hub: which local connections are subscribed to which channel, and the fan-out of a
//! publication to them.
//!
//! Channels are spread over shards by hash, each behind its own `RwLock`, so subscribes to
//! different channels and deliveries never meet on one global lock. A delivery holds only the
//! read lock of its channel's shard while it pushes the same encoded bytes into every
//! subscriber's bounded queue; a push never waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use herald_protocol::Format;

use crate::outbound::{Outbound, StreamTag};
use crate::sharded::Sharded;

const SHARDS: usize = 64;

/// Identifies a connection inside this node (cheaper to hash than the client id string).
pub type ConnId = u64;

/// Identifies a channel's entry inside this hub while it has subscribers. 32 bits keep queued
/// publications small; ids wrap after 2^32 channel entries, and only entries that exist at the
/// same time need different ids.
pub type ChannelId = u32;

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
}

/// A new local subscription: the channel's id in this hub, and its broker subscription.
pub struct Joined {
    pub channel_id: ChannelId,
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
    subscribers: HashMap<ConnId, Subscriber>,
    broker: BrokerSubscription,
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
                }),
        };
        if entry.subscribers.insert(conn, subscriber).is_some() {
            return None;
        }
        Some(Joined {
            channel_id: entry.id,
            broker: entry.broker.clone(),
        })
    }

    pub fn unsubscribe(&self, channel: &str, conn: ConnId) -> Membership {
        let mut shard = self.channels.write(channel);
        let Some(entry) = shard.get_mut(channel) else {
            return Membership::Noop;
        };
        if entry.subscribers.remove(&conn).is_none() {
            return Membership::Noop;
        }
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

    /// Pushes one publication to every local subscriber of `channel`. `encode` is called at most
    /// once per wire format, however many subscribers there are; `None` means the publication
    /// cannot be represented in that format (binary data for a JSON client), and such
    /// subscribers are closed with 3506. `at` is the publication's place in the channel's
    /// stream, for channels with history. Returns how many subscribers took it (a slow one is
    /// cut off by its own queue and not counted).
    pub fn deliver(
        &self,
        channel: &str,
        at: Option<StreamTag>,
        encode: impl FnMut(Format) -> Option<Bytes>,
    ) -> usize {
        self.push_all(channel, at, false, encode)
    }

    /// Pushes a join or leave to the local subscribers of `channel` that receive them.
    pub fn deliver_join_leave(
        &self,
        channel: &str,
        encode: impl FnMut(Format) -> Option<Bytes>,
    ) -> usize {
        self.push_all(channel, None, true, encode)
    }

    fn push_all(
        &self,
        channel: &str,
        at: Option<StreamTag>,
        join_leave_only: bool,
        mut encode: impl FnMut(Format) -> Option<Bytes>,
    ) -> usize {
        let shard = self.channels.read(channel);
        let Some(entry) = shard.get(channel) else {
            return 0;
        };
        let mut json: Option<Option<Bytes>> = None;
        let mut protobuf: Option<Option<Bytes>> = None;
        let mut delivered = 0;
        debug_assert_ne!(entry.id, 0, "0 marks an unplaced frame");
        for sub in entry.subscribers.values() {
            if join_leave_only && !sub.join_leave {
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
            let pushed = match at {
                None => sub.outbound.push(bytes),
                Some(at) => sub.outbound.push_publication(entry.id, at, bytes),
            };
            if pushed {
                delivered += 1;
            }
        }
        delivered
    }

    /// Queues `control` for every local subscriber of `channel`.
    pub fn tell_subscribers(&self, channel: &str, control: impl Fn() -> crate::control::Control) {
        if let Some(entry) = self.channels.read(channel).get(channel) {
            for sub in entry.subscribers.values() {
                sub.outbound.control(control());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Outgoing;

    fn sub(format: Format) -> (Subscriber, Outbound) {
        let outbound = Outbound::new(1024);
        (
            Subscriber {
                outbound: outbound.clone(),
                format,
                join_leave: false,
            },
            outbound,
        )
    }

    fn drained(q: &Outbound) -> Vec<Bytes> {
        let mut items = Vec::new();
        q.drain(&mut items);
        items
            .into_iter()
            .filter_map(|i| match i {
                Outgoing::Frame { frame, .. } => Some(frame),
                Outgoing::Control(_) => None,
            })
            .collect()
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

    #[test]
    fn deliver_encodes_once_per_format_and_shares_the_bytes() {
        let hub = Hub::new();
        let mut queues = Vec::new();
        for id in 0..10 {
            let format = if id % 2 == 0 {
                Format::Json
            } else {
                Format::Protobuf
            };
            let (s, q) = sub(format);
            hub.subscribe("ch", id, s);
            queues.push(q);
        }
        let mut encodes = Vec::new();
        let n = hub.deliver("ch", None, |f| {
            encodes.push(f);
            Some(Bytes::from(format!("{f:?}")))
        });
        assert_eq!(n, 10);
        encodes.sort_by_key(|f| *f == Format::Protobuf);
        assert_eq!(encodes, vec![Format::Json, Format::Protobuf]);
        let first = drained(&queues[0]).pop().unwrap();
        let third = drained(&queues[2]).pop().unwrap();
        assert_eq!(
            first.as_ptr(),
            third.as_ptr(),
            "same allocation, not a copy"
        );
        assert_eq!(hub.deliver("other", None, |_| unreachable!()), 0);
    }

    #[test]
    fn a_full_queue_does_not_stop_delivery_to_others() {
        let hub = Hub::new();
        let slow = Outbound::new(4);
        hub.subscribe(
            "ch",
            1,
            Subscriber {
                outbound: slow.clone(),
                format: Format::Json,
                join_leave: false,
            },
        );
        let (fast, fast_q) = sub(Format::Json);
        hub.subscribe("ch", 2, fast);
        for _ in 0..3 {
            hub.deliver("ch", None, |_| Some(Bytes::from_static(b"xyz")));
        }
        assert!(slow.is_closed());
        assert_eq!(drained(&fast_q).len(), 3);
    }
}
