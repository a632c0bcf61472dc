//! Connected clients of this node by user, so the server API can reach every connection of a
//! user (disconnect, subscribe, unsubscribe) and `/api/info` can count clients and users.
//! Sharded by user like the hub is by channel.

use std::collections::HashMap;
use std::sync::Arc;

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
    fn insert(&mut self, conn: ConnId, handle: ClientHandle) {
        match self {
            Conns::Few(v) if v.len() < FEW => {
                v.retain(|(c, _)| *c != conn);
                v.push((conn, handle));
            }
            Conns::Few(v) => {
                let mut map: HashMap<_, _> = v.drain(..).collect();
                map.insert(conn, handle);
                *self = Conns::Many(map);
            }
            Conns::Many(m) => {
                m.insert(conn, handle);
            }
        }
    }

    fn remove(&mut self, conn: ConnId) {
        match self {
            Conns::Few(v) => {
                if let Some(i) = v.iter().position(|(c, _)| *c == conn) {
                    v.swap_remove(i);
                }
            }
            Conns::Many(m) => {
                m.remove(&conn);
            }
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
        }
    }

    pub fn add(&self, user: &Arc<str>, conn: ConnId, handle: ClientHandle) {
        let mut shard = self.users.write(user);
        shard
            .entry(user.clone())
            .or_insert_with(|| Conns::Few(Vec::with_capacity(1)))
            .insert(conn, handle);
    }

    pub fn remove(&self, user: &str, conn: ConnId) {
        let mut shard = self.users.write(user);
        if let Some(conns) = shard.get_mut(user) {
            conns.remove(conn);
            if conns.is_empty() {
                shard.remove(user);
            }
        }
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
    }
}
