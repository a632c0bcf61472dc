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
    users: Sharded<HashMap<ConnId, ClientHandle>>,
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
        shard.entry(user.clone()).or_default().insert(conn, handle);
    }

    pub fn remove(&self, user: &str, conn: ConnId) {
        let mut shard = self.users.write(user);
        if let Some(conns) = shard.get_mut(user) {
            conns.remove(&conn);
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
                    .values()
                    .filter(|h| client.is_none_or(|c| *h.client_id == *c))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Calls `f` for every connection of the node (shutdown).
    pub fn for_each(&self, mut f: impl FnMut(&ClientHandle)) {
        self.users
            .for_each_shard(|shard| shard.values().flat_map(HashMap::values).for_each(&mut f));
    }

    /// (connections, distinct users)
    pub fn counts(&self) -> (usize, usize) {
        let (mut clients, mut users) = (0, 0);
        self.users.for_each_shard(|shard| {
            clients += shard.values().map(HashMap::len).sum::<usize>();
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
}
