//! Which shard a channel lives on: a jump consistent hash of a stable hash of its name, so every
//! node agrees, and adding a shard moves only about 1/n of the channels.

/// FNV-1a: stable across processes and versions (unlike std's randomized hasher).
pub(super) fn stable_hash(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm".
pub(super) fn jump(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

pub(super) fn shard_of(channel: &str, shards: usize) -> usize {
    jump(stable_hash(channel), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_and_moves_few_channels_when_a_shard_is_added() {
        let channels: Vec<String> = (0..10_000).map(|i| format!("chat:{i}")).collect();
        let mut counts = [0usize; 4];
        for ch in &channels {
            counts[shard_of(ch, 4)] += 1;
        }
        assert!(
            counts.iter().all(|c| (2_000..3_000).contains(c)),
            "{counts:?}"
        );
        let moved = channels
            .iter()
            .filter(|ch| shard_of(ch, 4) != shard_of(ch, 5))
            .count();
        // Ideal is 1/5 of the channels.
        assert!((1_500..2_500).contains(&moved), "{moved}");
        assert!(
            channels
                .iter()
                .all(|ch| shard_of(ch, 5) == shard_of(ch, 4) || shard_of(ch, 5) == 4),
            "moved channels only go to the new shard"
        );
        assert_eq!(shard_of("x", 1), 0);
    }

    #[test]
    fn is_stable_fnv1a() {
        // Published FNV-1a 64 test vectors: every node must compute the same shard.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
