//! The channels one connection is subscribed to, by name: a sorted list, not a hash map. Most
//! connections follow a channel or two, and a map's smallest table costs ~270 bytes per
//! connection where a list of one costs 64; lookups stay O(log n) up to the configured
//! maximum per client.

/// A map from channel name to `V`, sorted by name.
pub(super) struct Subscriptions<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for Subscriptions<V> {
    fn default() -> Self {
        Subscriptions {
            entries: Vec::new(),
        }
    }
}

impl<V> Subscriptions<V> {
    fn find(&self, channel: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(name, _)| name.as_str().cmp(channel))
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn contains_key(&self, channel: &str) -> bool {
        self.find(channel).is_ok()
    }

    pub(super) fn get(&self, channel: &str) -> Option<&V> {
        self.find(channel).ok().map(|i| &self.entries[i].1)
    }

    /// Adds or replaces the entry of `channel`; returns the one replaced.
    pub(super) fn insert(&mut self, channel: String, value: V) -> Option<V> {
        match self.find(&channel) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                if self.entries.len() == self.entries.capacity() && self.entries.len() < 4 {
                    // Grow one at a time while small: no room for four subscriptions each.
                    self.entries.reserve_exact(1);
                }
                self.entries.insert(i, (channel, value));
                None
            }
        }
    }

    pub(super) fn remove(&mut self, channel: &str) -> Option<V> {
        let i = self.find(channel).ok()?;
        Some(self.entries.remove(i).1)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(name, _)| name)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|(name, v)| (name, v))
    }

    pub(super) fn get_mut(&mut self, channel: &str) -> Option<&mut V> {
        self.find(channel).ok().map(|i| &mut self.entries[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut s = Subscriptions::default();
        for (i, ch) in ["news", "chat:b", "chat:a", "zeta", "alpha"]
            .iter()
            .enumerate()
        {
            assert_eq!(s.insert(ch.to_string(), i), None);
        }
        assert_eq!(s.insert("chat:a".into(), 10), Some(2));
        assert_eq!(s.len(), 5);
        assert_eq!(s.get("chat:a"), Some(&10));
        assert_eq!(s.get("chat"), None);
        assert!(s.contains_key("zeta") && !s.contains_key("omega"));
        let keys: Vec<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(keys, ["alpha", "chat:a", "chat:b", "news", "zeta"]);
        assert_eq!(s.remove("news"), Some(0));
        assert_eq!(s.remove("news"), None);
        assert_eq!(s.len(), 4);
        assert!(!s.contains_key("news"));
    }

    #[test]
    fn one_subscription_takes_room_for_one() {
        let mut s = Subscriptions::default();
        s.insert("only".to_string(), ());
        assert_eq!(s.entries.capacity(), 1);
    }
}
