//! Channel presence in Redis: a hash (client id → protobuf `ClientInfo`) and a sorted set
//! (client id → expiry, unix seconds) per channel. The node that holds a client refreshes its
//! entries; a node killed without a goodbye stops refreshing, and its clients' entries are
//! dropped by the next read after they expire. Both keys also expire as a whole, so a channel
//! nobody is present in leaves nothing behind.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_protocol::proto::ClientInfo;
use prost::Message as _;

use super::super::Presence;

/// KEYS: data hash, expiry zset. ARGV: client id, ClientInfo, expire at (unix ms), key ttl (s).
const ADD: &str = r#"
redis.call("zadd", KEYS[2], ARGV[3], ARGV[1])
redis.call("hset", KEYS[1], ARGV[1], ARGV[2])
redis.call("expire", KEYS[1], ARGV[4])
redis.call("expire", KEYS[2], ARGV[4])
return 1
"#;

/// KEYS: data hash, expiry zset. ARGV: client id.
const REMOVE: &str = r#"
redis.call("hdel", KEYS[1], ARGV[1])
redis.call("zrem", KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: data hash, expiry zset. ARGV: now (unix ms). Drops expired clients, then returns the
/// hash as a flat list.
const READ: &str = r#"
local expired = redis.call("zrangebyscore", KEYS[2], "-inf", ARGV[1])
for _, client in ipairs(expired) do
  redis.call("hdel", KEYS[1], client)
end
redis.call("zremrangebyscore", KEYS[2], "-inf", ARGV[1])
return redis.call("hgetall", KEYS[1])
"#;

fn keys(prefix: &str, channel: &str) -> (String, String) {
    (
        format!("{prefix}.presence.data.{{{channel}}}"),
        format!("{prefix}.presence.expire.{{{channel}}}"),
    )
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

static ADD_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADD));
static REMOVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REMOVE));
static READ_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(READ));

pub(super) fn add(
    prefix: &str,
    channel: &str,
    info: &ClientInfo,
    ttl: Duration,
) -> redis::ScriptInvocation<'static> {
    let (data, expire) = keys(prefix, channel);
    let mut invocation = ADD_SCRIPT.prepare_invoke();
    invocation
        .key(data)
        .key(expire)
        .arg(&info.client)
        .arg(info.encode_to_vec())
        .arg(unix_ms() + ttl.as_millis() as u64)
        .arg(ttl.as_secs().max(1) * 2);
    invocation
}

pub(super) fn remove(
    prefix: &str,
    channel: &str,
    client: &str,
) -> redis::ScriptInvocation<'static> {
    let (data, expire) = keys(prefix, channel);
    let mut invocation = REMOVE_SCRIPT.prepare_invoke();
    invocation.key(data).key(expire).arg(client);
    invocation
}

pub(super) fn read(prefix: &str, channel: &str) -> redis::ScriptInvocation<'static> {
    let (data, expire) = keys(prefix, channel);
    let mut invocation = READ_SCRIPT.prepare_invoke();
    invocation.key(data).key(expire).arg(unix_ms());
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
