//! Connected clients of this node by user, so the server API can reach every connection of a
//! user (disconnect, subscribe, unsubscribe) and `/api/info` can count clients and users.
//! Sharded by user like the hub is by channel.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, RwLock};

use crate::hub::ConnId;
use crate::outbound::Outbound;

const SHARDS: usize = 32;

#[derive(Clone, Debug)]
pub struct ClientHandle {
    pub client_id: Arc<str>,
    pub outbound: Outbound,
}

type Shard = RwLock<HashMap<Arc<str>, HashMap<ConnId, ClientHandle>>>;

pub struct Registry {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, user: &str) -> &Shard {
        let mut h = self.hasher.build_hasher();
        user.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    pub fn add(&self, user: &Arc<str>, conn: ConnId, handle: ClientHandle) {
        let mut shard = self.shard(user).write().unwrap_or_else(|p| p.into_inner());
        shard.entry(user.clone()).or_default().insert(conn, handle);
    }

    pub fn remove(&self, user: &str, conn: ConnId) {
        let mut shard = self.shard(user).write().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = shard.get_mut(user) {
            conns.remove(&conn);
            if conns.is_empty() {
                shard.remove(user);
            }
        }
    }

    /// The connections of a user, optionally only the one with the given client id.
    pub fn connections_of(&self, user: &str, client: Option<&str>) -> Vec<ClientHandle> {
        let shard = self.shard(user).read().unwrap_or_else(|p| p.into_inner());
        shard
            .get(user)
            .map(|conns| {
                conns
                    .values()
                    .filter(|h| client.is_none_or(|c| *h.client_id == *c))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Calls `f` for every connection of the node (shutdown).
    pub fn for_each(&self, mut f: impl FnMut(&ClientHandle)) {
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|p| p.into_inner());
            shard.values().flat_map(HashMap::values).for_each(&mut f);
        }
    }

    /// (connections, distinct users)
    pub fn counts(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(clients, users), shard| {
            let shard = shard.read().unwrap_or_else(|p| p.into_inner());
            (
                clients + shard.values().map(HashMap::len).sum::<usize>(),
                users + shard.len(),
            )
        })
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
}
