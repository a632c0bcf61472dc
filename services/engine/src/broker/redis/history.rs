//! Channel history in Redis: one stream per channel (a Redis Stream trimmed to the history
//! size, its entry ids the offsets) and a meta hash (`e` epoch, `s` top offset).
//!
//! Publishing is one Lua script, so offset, append and PUBLISH happen as one step: no node ever
//! sees offsets out of order or a publication that is not in history. The PUB/SUB message
//! carries offset and epoch (`__p1:<offset>:<epoch>__<protobuf Publication>`), so every node
//! knows each publication's place without asking Redis. The meta hash outlives the stream
//! (`META_TTL`): a client at the top after the publications expired has missed nothing. If
//! the meta is gone (flushed, restarted without persistence), the next publish or read makes a
//! new epoch, and clients from the old one are told their position is gone.

use herald_protocol::proto::Publication;
use prost::Message as _;

use super::super::streams::META_TTL;
use super::super::{HistoryOptions, HistoryPage, HistoryQuery, IDEMPOTENCY_TTL, StreamPosition};

/// KEYS: stream, meta[, idempotency result]. ARGV: payload, size, ttl (s), meta ttl (s),
/// PUB/SUB channel, a fresh epoch (used if the stream has none), publish verb (PUBLISH or
/// SPUBLISH), the trace field (`crate::trace`; empty without one: it goes into the PUB/SUB
/// message only, never into the stream)[, result ttl (s)]. Returns `{offset, epoch}` (the
/// remembered ones for a repeated idempotency key).
pub(super) const PUBLISH: &str = r#"
if #KEYS == 3 then
  local r = redis.call("hmget", KEYS[3], "o", "e")
  if r[1] then
    return {tonumber(r[1]), r[2]}
  end
end
local epoch = redis.call("hget", KEYS[2], "e")
if not epoch then
  epoch = ARGV[6]
  redis.call("hset", KEYS[2], "e", epoch)
end
local offset = redis.call("hincrby", KEYS[2], "s", 1)
redis.call("expire", KEYS[2], ARGV[4])
if offset == 1 then
  redis.call("del", KEYS[1])
end
redis.call("xadd", KEYS[1], "MAXLEN", ARGV[2], offset, "d", ARGV[1])
redis.call("expire", KEYS[1], ARGV[3])
redis.call(ARGV[7], ARGV[5], "__p1:" .. offset .. ":" .. epoch .. "__" .. ARGV[8] .. ARGV[1])
if #KEYS == 3 then
  redis.call("hset", KEYS[3], "o", offset, "e", epoch)
  redis.call("expire", KEYS[3], ARGV[9])
end
return {offset, epoch}
"#;

/// A publication without history, once per idempotency key. KEYS: result. ARGV: PUB/SUB
/// channel, payload, result ttl (s), publish verb. Returns 1 if it published, 0 for a
/// repeated key.
pub(super) const PUBLISH_ONCE: &str = r#"
if redis.call("exists", KEYS[1]) == 1 then
  return 0
end
redis.call(ARGV[4], ARGV[1], ARGV[2])
redis.call("set", KEYS[1], "1", "EX", ARGV[3])
return 1
"#;

/// KEYS: stream, meta. ARGV: a fresh epoch, meta ttl (s), limit (-1 all, 0 none), since offset
/// ("" = from the end the direction starts at), reverse ("1"). Returns `{top, epoch, entries}`.
/// Ranges use whole ids (`(<offset>-0`): a bare `(5` as the upper end of XREVRANGE would mean
/// `5-<max>` and include entry 5.
/// COUNT is passed the limit as given: `tonumber` makes a Lua double, which Redis would get back
/// as `9.2233720368547758e+18` for a limit beyond 2^53 and refuse as not an integer.
pub(super) const READ: &str = r#"
local epoch = redis.call("hget", KEYS[2], "e")
if not epoch then
  epoch = ARGV[1]
  redis.call("hset", KEYS[2], "e", epoch)
  redis.call("expire", KEYS[2], ARGV[2])
end
local top = tonumber(redis.call("hget", KEYS[2], "s") or "0")
local limit = tonumber(ARGV[3])
if limit == 0 then
  return {top, epoch, {}}
end
local entries
if ARGV[5] == "1" then
  local from = "+"
  if ARGV[4] ~= "" then from = "(" .. ARGV[4] .. "-0" end
  if limit > 0 then
    entries = redis.call("xrevrange", KEYS[1], from, "-", "COUNT", ARGV[3])
  else
    entries = redis.call("xrevrange", KEYS[1], from, "-")
  end
else
  local from = "-"
  if ARGV[4] ~= "" then from = "(" .. ARGV[4] .. "-0" end
  if limit > 0 then
    entries = redis.call("xrange", KEYS[1], from, "+", "COUNT", ARGV[3])
  else
    entries = redis.call("xrange", KEYS[1], from, "+")
  end
end
return {top, epoch, entries}
"#;

// Every key of a channel carries the channel as a Redis Cluster hash tag (`{channel}`), as its
// PUB/SUB channel does: one slot for all of a script's keys and its SPUBLISH.

pub(super) fn stream_key(prefix: &str, channel: &str) -> String {
    format!("{prefix}.stream.{{{channel}}}")
}

pub(super) fn meta_key(prefix: &str, channel: &str) -> String {
    format!("{prefix}.meta.{{{channel}}}")
}

pub(super) fn result_key(prefix: &str, channel: &str, key: &str) -> String {
    format!("{prefix}.result.{{{channel}}}.{key}")
}

pub(super) fn new_epoch() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// What a publish with history sends: the encoded publication (kept in the stream and
/// published) and the trace field that goes before it in the PUB/SUB message only.
pub(super) struct Payload {
    pub publication: Vec<u8>,
    pub trace_field: Vec<u8>,
}

pub(super) fn publish_script(
    prefix: &str,
    channel: &str,
    pubsub_channel: &str,
    publish_verb: &str,
    payload: Payload,
    options: &HistoryOptions,
    idempotency_key: Option<&str>,
) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(PUBLISH));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(stream_key(prefix, channel))
        .key(meta_key(prefix, channel))
        .arg(payload.publication)
        .arg(options.size)
        .arg(options.ttl.as_secs().max(1))
        .arg(META_TTL.max(options.ttl).as_secs())
        .arg(pubsub_channel)
        .arg(new_epoch())
        .arg(publish_verb)
        .arg(payload.trace_field);
    if let Some(key) = idempotency_key {
        invocation
            .key(result_key(prefix, channel, key))
            .arg(IDEMPOTENCY_TTL.as_secs());
    }
    invocation
}

pub(super) fn publish_once_script(
    prefix: &str,
    channel: &str,
    pubsub_channel: &str,
    publish_verb: &str,
    payload: Vec<u8>,
    key: &str,
) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(PUBLISH_ONCE));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(result_key(prefix, channel, key))
        .arg(pubsub_channel)
        .arg(payload)
        .arg(IDEMPOTENCY_TTL.as_secs())
        .arg(publish_verb);
    invocation
}

pub(super) fn read_script(
    prefix: &str,
    channel: &str,
    query: &HistoryQuery,
) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(READ));
    let limit: i64 = match query.limit {
        None => -1,
        Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
    };
    let since = query
        .since
        .as_ref()
        .map(|s| s.offset.to_string())
        .unwrap_or_default();
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(stream_key(prefix, channel))
        .key(meta_key(prefix, channel))
        .arg(new_epoch())
        .arg(META_TTL.as_secs())
        .arg(limit)
        .arg(since)
        .arg(if query.reverse { "1" } else { "0" });
    invocation
}

/// One stream entry as XRANGE returns it: id `<offset>-0`, fields `["d", payload]`.
type Entry = (String, Vec<Vec<u8>>);

/// The read script's answer as a page.
pub(super) fn page(reply: (u64, String, Vec<Entry>)) -> Result<HistoryPage, String> {
    let (top, epoch, entries) = reply;
    let mut publications = Vec::with_capacity(entries.len());
    for (id, fields) in entries {
        let offset = id
            .split('-')
            .next()
            .and_then(|o| o.parse::<u64>().ok())
            .ok_or_else(|| format!("stream entry id {id:?}"))?;
        let payload = fields
            .chunks(2)
            .find(|kv| kv.first().is_some_and(|k| k == b"d"))
            .and_then(|kv| kv.get(1))
            .ok_or_else(|| format!("stream entry {id} without data"))?;
        let mut publication =
            Publication::decode(payload.as_slice()).map_err(|e| format!("entry {id}: {e}"))?;
        publication.offset = offset;
        publications.push(publication);
    }
    let oldest = publications.iter().map(|p| p.offset).min();
    Ok(HistoryPage {
        publications,
        position: StreamPosition { offset: top, epoch },
        oldest,
    })
}

/// A PUB/SUB message of a history channel: `(offset, epoch, protobuf Publication)`; `None`
/// for a plain publication.
pub(super) fn parse_positioned(payload: &[u8]) -> Option<(u64, &str, &[u8])> {
    let rest = payload.strip_prefix(b"__p1:")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let offset = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let rest = &rest[colon + 1..];
    let end = rest.windows(2).position(|w| w == b"__")?;
    let epoch = std::str::from_utf8(&rest[..end]).ok()?;
    Some((offset, epoch, &rest[end + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positioned_messages_parse() {
        assert_eq!(
            parse_positioned(b"__p1:42:ab12cd34__\x22\x01x"),
            Some((42, "ab12cd34", &b"\x22\x01x"[..]))
        );
        assert_eq!(parse_positioned(b"__p1:42:e__"), Some((42, "e", &b""[..])));
        assert_eq!(parse_positioned(b"\x22\x01x"), None, "a plain publication");
        assert_eq!(parse_positioned(b"__p1:x:e__"), None);
        assert_eq!(parse_positioned(b"__p1:1:e"), None);
    }
}
