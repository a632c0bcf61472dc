//! A map from string keys to values, spread over independently locked shards by hash, so that
//! operations on different keys rarely meet on the same lock.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) type Shard<V> = HashMap<Arc<str>, V>;

pub(crate) struct Sharded<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    hasher: RandomState,
}

impl<V> Sharded<V> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard<V>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    // Nothing that can panic runs under these locks, so a poisoned lock still holds a
    // consistent map and is used as is.
    pub(crate) fn read(&self, key: &str) -> RwLockReadGuard<'_, Shard<V>> {
        self.shard(key).read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self, key: &str) -> RwLockWriteGuard<'_, Shard<V>> {
        self.shard(key).write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every shard in turn, write-locked one at a time.
    pub(crate) fn for_each_shard_mut(&self, mut f: impl FnMut(&mut Shard<V>)) {
        for shard in self.shards.iter() {
            f(&mut shard.write().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Every shard in turn, read-locked one at a time.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&Shard<V>)) {
        for shard in self.shards.iter() {
            f(&shard.read().unwrap_or_else(|p| p.into_inner()));
        }
    }
}
