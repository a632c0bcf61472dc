//! Channel presence in Redis, per channel: a hash (client id → protobuf `ClientInfo`), a sorted
//! set (client id → expiry, unix ms), and for the counts (Centrifugo's user mapping) a hash
//! client id → user and a hash user → number of present clients. The node that holds a client
//! refreshes its entries; a node killed without a goodbye stops refreshing, and its clients'
//! entries are dropped by the next read after they expire, counts included. Every key also
//! expires as a whole, so a channel nobody is present in leaves nothing behind.
//!
//! `presence_stats` reads two sizes (ZCARD, HLEN) after dropping the expired entries: it never
//! loads the channel's presence, however many clients are in it.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_protocol::proto::ClientInfo;
use prost::Message as _;

use super::super::Presence;

/// Drops the clients whose entries expired by ARGV[1] (unix ms), with their counts. KEYS: data
/// hash, expiry zset, client → user hash, user → count hash.
const PURGE: &str = r#"
local expired = redis.call("zrangebyscore", KEYS[2], "-inf", ARGV[1])
for _, client in ipairs(expired) do
  if redis.call("hdel", KEYS[1], client) == 1 then
    local user = redis.call("hget", KEYS[3], client)
    redis.call("hdel", KEYS[3], client)
    if user and redis.call("hincrby", KEYS[4], user, -1) <= 0 then
      redis.call("hdel", KEYS[4], user)
    end
  end
end
redis.call("zremrangebyscore", KEYS[2], "-inf", ARGV[1])
"#;

/// ARGV: client id, ClientInfo, expire at (unix ms), key ttl (s), user. A new client counts
/// once for its user; a refresh only moves its expiry.
const ADD: &str = r#"
redis.call("zadd", KEYS[2], ARGV[3], ARGV[1])
if redis.call("hset", KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call("hset", KEYS[3], ARGV[1], ARGV[5])
  redis.call("hincrby", KEYS[4], ARGV[5], 1)
end
for i = 1, 4 do
  redis.call("expire", KEYS[i], ARGV[4])
end
return 1
"#;

/// ARGV: client id.
const REMOVE: &str = r#"
if redis.call("hdel", KEYS[1], ARGV[1]) == 1 then
  local user = redis.call("hget", KEYS[3], ARGV[1])
  redis.call("hdel", KEYS[3], ARGV[1])
  if user and redis.call("hincrby", KEYS[4], user, -1) <= 0 then
    redis.call("hdel", KEYS[4], user)
  end
end
redis.call("zrem", KEYS[2], ARGV[1])
return 1
"#;

/// ARGV: now (unix ms). Returns the hash as a flat list.
const READ: &str = r#"
return redis.call("hgetall", KEYS[1])
"#;

/// ARGV: now (unix ms). Returns {clients, users}.
const STATS: &str = r#"
return {redis.call("zcard", KEYS[2]), redis.call("hlen", KEYS[4])}
"#;

/// The channel's keys, in the order the scripts take them.
fn keys(prefix: &str, channel: &str) -> [String; 4] {
    [
        format!("{prefix}.presence.data.{{{channel}}}"),
        format!("{prefix}.presence.expire.{{{channel}}}"),
        format!("{prefix}.presence.client_user.{{{channel}}}"),
        format!("{prefix}.presence.user_count.{{{channel}}}"),
    ]
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn script(body: &str) -> redis::Script {
    redis::Script::new(body)
}

static ADD_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(ADD));
static REMOVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(REMOVE));
static READ_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(&format!("{PURGE}{READ}")));
static STATS_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(&format!("{PURGE}{STATS}")));

fn invocation(
    script: &'static redis::Script,
    prefix: &str,
    channel: &str,
) -> redis::ScriptInvocation<'static> {
    let mut invocation = script.prepare_invoke();
    for key in keys(prefix, channel) {
        invocation.key(key);
    }
    invocation
}

pub(super) fn add(
    prefix: &str,
    channel: &str,
    info: &ClientInfo,
    ttl: Duration,
) -> redis::ScriptInvocation<'static> {
    let mut invocation = invocation(&ADD_SCRIPT, prefix, channel);
    invocation
        .arg(&info.client)
        .arg(info.encode_to_vec())
        .arg(unix_ms() + ttl.as_millis() as u64)
        .arg(ttl.as_secs().max(1) * 2)
        .arg(&info.user);
    invocation
}

pub(super) fn remove(
    prefix: &str,
    channel: &str,
    client: &str,
) -> redis::ScriptInvocation<'static> {
    let mut invocation = invocation(&REMOVE_SCRIPT, prefix, channel);
    invocation.arg(client);
    invocation
}

pub(super) fn read(prefix: &str, channel: &str) -> redis::ScriptInvocation<'static> {
    let mut invocation = invocation(&READ_SCRIPT, prefix, channel);
    invocation.arg(unix_ms());
    invocation
}

/// The channel's numbers of clients and of distinct users, as `(clients, users)`.
pub(super) fn stats(prefix: &str, channel: &str) -> redis::ScriptInvocation<'static> {
    let mut invocation = invocation(&STATS_SCRIPT, prefix, channel);
    invocation.arg(unix_ms());
    invocation
}

/// The read script's flat `[client, info, client, info, …]` as a map.
pub(super) fn decode(flat: Vec<Vec<u8>>) -> Result<Presence, String> {
    let mut presence = Presence::with_capacity(flat.len() / 2);
    for pair in flat.chunks(2) {
        let [client, info] = pair else {
            return Err("odd presence reply".into());
        };
        let info = ClientInfo::decode(info.as_slice()).map_err(|e| e.to_string())?;
        presence.insert(String::from_utf8_lossy(client).into_owned(), info);
    }
    Ok(presence)
}
