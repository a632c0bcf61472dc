//! Connected clients of this node by user, so the server API can reach every connection of a
//! user (disconnect, subscribe, unsubscribe) and `/api/info` can count clients and users.
//! Sharded by user like the hub is by channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::hub::ConnId;
use crate::outbound::Outbound;
use crate::sharded::Sharded;

const SHARDS: usize = 32;

#[derive(Clone, Debug)]
pub struct ClientHandle {
    pub client_id: Arc<str>,
    pub outbound: Outbound,
}

pub struct Registry {
    users: Sharded<Conns>,
    /// Connections in the registry, kept beside the shards so the node's connection limit
    /// is checked without walking them.
    clients: AtomicUsize,
}

/// The most connections the registry takes (0: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionLimits {
    pub per_node: usize,
    /// Anonymous connections (the empty user) are not limited per user.
    pub per_user: usize,
}

/// Why a connection was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    #[error("the node has as many connections as client.connection_limit allows")]
    Node,
    #[error("the user has as many connections as client.user_connection_limit allows")]
    User,
}

/// Connections of a user past which they are kept in a map rather than a list.
const FEW: usize = 8;

/// The connections of one user. Usually a few (tabs and devices), kept in a list: a map of
/// one entry costs ~140 bytes per connection where the list costs 32. Past [`FEW`] (every
/// anonymous connection shares the empty user) a map keeps removal O(1).
enum Conns {
    Few(Vec<(ConnId, ClientHandle)>),
    Many(HashMap<ConnId, ClientHandle>),
}

impl Conns {
    /// Adds `conn`, or replaces its handle; true when it was not there before.
    fn insert(&mut self, conn: ConnId, handle: ClientHandle) -> bool {
        match self {
            Conns::Few(v) if v.len() < FEW => {
                let before = v.len();
                v.retain(|(c, _)| *c != conn);
                let new = v.len() == before;
                v.push((conn, handle));
                new
            }
            Conns::Few(v) => {
                let mut map: HashMap<_, _> = v.drain(..).collect();
                let new = map.insert(conn, handle).is_none();
                *self = Conns::Many(map);
                new
            }
            Conns::Many(m) => m.insert(conn, handle).is_none(),
        }
    }

    /// Removes `conn`; true when it was there.
    fn remove(&mut self, conn: ConnId) -> bool {
        match self {
            Conns::Few(v) => match v.iter().position(|(c, _)| *c == conn) {
                Some(i) => {
                    v.swap_remove(i);
                    true
                }
                None => false,
            },
            Conns::Many(m) => m.remove(&conn).is_some(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Conns::Few(v) => v.len(),
            Conns::Many(m) => m.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn handles(&self) -> Box<dyn Iterator<Item = &ClientHandle> + '_> {
        match self {
            Conns::Few(v) => Box::new(v.iter().map(|(_, h)| h)),
            Conns::Many(m) => Box::new(m.values()),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self {
            users: Sharded::new(SHARDS),
            clients: AtomicUsize::new(0),
        }
    }

    pub fn add(&self, user: &Arc<str>, conn: ConnId, handle: ClientHandle) {
        let unlimited = ConnectionLimits::default();
        let _always = self.try_add(user, conn, handle, unlimited);
    }

    /// Adds a connection unless that would pass `limits`. The node's slot is taken first
    /// (and given back on refusal), so concurrent connects cannot both take the last one.
    pub fn try_add(
        &self,
        user: &Arc<str>,
        conn: ConnId,
        handle: ClientHandle,
        limits: ConnectionLimits,
    ) -> Result<(), LimitReached> {
        let before = self.clients.fetch_add(1, Ordering::Relaxed);
        if limits.per_node > 0 && before >= limits.per_node {
            self.clients.fetch_sub(1, Ordering::Relaxed);
            return Err(LimitReached::Node);
        }
        let mut shard = self.users.write(user);
        if limits.per_user > 0
            && !user.is_empty()
            && shard.get(user).is_some_and(|c| c.len() >= limits.per_user)
        {
            self.clients.fetch_sub(1, Ordering::Relaxed);
            return Err(LimitReached::User);
        }
        let new = shard
            .entry(user.clone())
            .or_insert_with(|| Conns::Few(Vec::with_capacity(1)))
            .insert(conn, handle);
        if !new {
            self.clients.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn remove(&self, user: &str, conn: ConnId) {
        let mut shard = self.users.write(user);
        if let Some(conns) = shard.get_mut(user) {
            if conns.remove(conn) {
                self.clients.fetch_sub(1, Ordering::Relaxed);
            }
            if conns.is_empty() {
                shard.remove(user);
            }
        }
    }

    /// Connections of this node.
    pub fn len(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The connections of a user, optionally only the one with the given client id.
    pub fn connections_of(&self, user: &str, client: Option<&str>) -> Vec<ClientHandle> {
        let shard = self.users.read(user);
        shard
            .get(user)
            .map(|conns| {
                conns
                    .handles()
                    .filter(|h| client.is_none_or(|c| *h.client_id == *c))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Calls `f` for every connection of the node (shutdown).
    pub fn for_each(&self, mut f: impl FnMut(&ClientHandle)) {
        self.users
            .for_each_shard(|shard| shard.values().flat_map(Conns::handles).for_each(&mut f));
    }

    /// (connections, distinct users)
    pub fn counts(&self) -> (usize, usize) {
        let (mut clients, mut users) = (0, 0);
        self.users.for_each_shard(|shard| {
            clients += shard.values().map(Conns::len).sum::<usize>();
            users += shard.len();
        });
        (clients, users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: &str) -> ClientHandle {
        ClientHandle {
            client_id: Arc::from(id),
            outbound: Outbound::new(16),
        }
    }

    #[test]
    fn finds_connections_by_user_and_client() {
        let r = Registry::new();
        let alice: Arc<str> = Arc::from("alice");
        r.add(&alice, 1, handle("c1"));
        r.add(&alice, 2, handle("c2"));
        r.add(&Arc::from("bob"), 3, handle("c3"));
        assert_eq!(r.counts(), (3, 2));
        assert_eq!(r.connections_of("alice", None).len(), 2);
        assert_eq!(r.connections_of("alice", Some("c2")).len(), 1);
        assert_eq!(r.connections_of("alice", Some("c3")).len(), 0);
        r.remove("alice", 1);
        r.remove("alice", 2);
        assert_eq!(r.counts(), (1, 1));
    }

    #[test]
    fn many_connections_of_one_user_move_to_a_map_and_back_out() {
        let r = Registry::new();
        let anon: Arc<str> = Arc::from("");
        for conn in 0..100u64 {
            r.add(&anon, conn, handle(&format!("c{conn}")));
        }
        r.add(&anon, 7, handle("c7")); // the same connection again: replaced, not doubled
        assert_eq!(r.counts(), (100, 1));
        assert_eq!(r.connections_of("", Some("c42")).len(), 1);
        let mut seen = 0;
        r.for_each(|_| seen += 1);
        assert_eq!(seen, 100);
        for conn in (0..100u64).rev() {
            r.remove("", conn);
        }
        assert_eq!(r.counts(), (0, 0));
        // Few: duplicates replaced too, and removal of an unknown connection is harmless.
        r.add(&anon, 1, handle("a"));
        r.add(&anon, 1, handle("b"));
        r.remove("", 99);
        assert_eq!(r.connections_of("", None).len(), 1);
        assert_eq!(&*r.connections_of("", None)[0].client_id, "b");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn limits_per_node_and_per_user_hold_at_the_limit_and_refuse_one_past_it() {
        let r = Registry::new();
        let limits = ConnectionLimits {
            per_node: 4,
            per_user: 2,
        };
        let alice: Arc<str> = Arc::from("alice");
        let anon: Arc<str> = Arc::from("");
        assert_eq!(r.try_add(&alice, 1, handle("a1"), limits), Ok(()));
        assert_eq!(r.try_add(&alice, 2, handle("a2"), limits), Ok(()));
        assert_eq!(
            r.try_add(&alice, 3, handle("a3"), limits),
            Err(LimitReached::User)
        );
        // Anonymous connections share the empty user but are not limited per user.
        assert_eq!(r.try_add(&anon, 4, handle("x1"), limits), Ok(()));
        assert_eq!(r.try_add(&anon, 5, handle("x2"), limits), Ok(()));
        assert_eq!(r.len(), 4);
        assert_eq!(
            r.try_add(&anon, 6, handle("x3"), limits),
            Err(LimitReached::Node)
        );
        assert_eq!(r.counts(), (4, 2), "refusals leave nothing behind");
        r.remove("alice", 1);
        assert_eq!(r.len(), 3);
        assert_eq!(r.try_add(&alice, 3, handle("a3"), limits), Ok(()));
        r.remove("alice", 99); // unknown: the count stays
        assert_eq!(r.len(), 4);
    }
}
