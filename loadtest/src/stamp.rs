//! Payload stamping: what a publisher puts in every publication and how a subscriber reads it
//! back without allocating.
//!
//! A stamped payload is a compact JSON object of (about) `size` bytes:
//! `{"s":<seq>,"k":<stream>,"t":<send unix ns>,"p":"xxxx…"}`. `s` numbers the publications of
//! one stream on one channel from 0; `k` is the publisher stream (one per publisher
//! connection, so that order is only checked where the server promises it); `t` is the send
//! time; `p` pads the object to the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

/// What a subscriber reads back from a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub stream: u32,
    pub sent_ns: u64,
}

/// Unix time in nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Appends the stamped payload to `out`; it is `size` bytes long unless the fixed fields alone
/// are longer (then it has an empty padding).
pub fn write_stamp(out: &mut Vec<u8>, stamp: Stamp, size: usize) {
    use std::io::Write;
    let start = out.len();
    let _ = write!(
        out,
        "{{\"s\":{},\"k\":{},\"t\":{},\"p\":\"",
        stamp.seq, stamp.stream, stamp.sent_ns
    );
    let used = out.len() - start + 2; // closing `"}`
    let pad = size.saturating_sub(used);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
}

/// The stamped payload as a fresh vector.
pub fn stamp_bytes(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size.max(64));
    write_stamp(&mut v, stamp, size);
    v
}

/// Position of `needle` in `hay`. For short, cold searches; hot paths keep a prebuilt
/// `memchr::memmem::Finder`, since building one costs more than a short search.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads the unsigned integer after `key` (e.g. `"s":`), allowing spaces after the colon.
fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(data, key)? + key.len();
    let mut i = at;
    while i < data.len() && data[i] == b' ' {
        i += 1;
    }
    digits(data, &mut i)
}

/// The unsigned integer starting at `*i` (at least one digit); `*i` ends after it.
fn digits(data: &[u8], i: &mut usize) -> Option<u64> {
    let mut n: u64 = 0;
    let begin = *i;
    while let Some(d) = data.get(*i).filter(|d| d.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        *i += 1;
    }
    (*i > begin).then_some(n)
}

/// Our own compact layout, read in one pass: `{"s":<seq>,"k":<stream>,"t":<ns>,`.
fn parse_compact(data: &[u8]) -> Option<Stamp> {
    let mut i = b"{\"s\":".len();
    if !data.starts_with(b"{\"s\":") {
        return None;
    }
    let seq = digits(data, &mut i)?;
    data.get(i..)?.starts_with(b",\"k\":").then_some(())?;
    i += b",\"k\":".len();
    let stream = digits(data, &mut i)?;
    data.get(i..)?.starts_with(b",\"t\":").then_some(())?;
    i += b",\"t\":".len();
    let sent_ns = digits(data, &mut i)?;
    Some(Stamp {
        seq,
        stream: u32::try_from(stream).ok()?,
        sent_ns,
    })
}

/// Reads a stamp from publication data (the JSON object written by [`write_stamp`], possibly
/// re-spaced). `k` is optional (0 when absent). No allocation.
pub fn parse_stamp(data: &[u8]) -> Option<Stamp> {
    if let Some(stamp) = parse_compact(data) {
        return Some(stamp);
    }
    let seq = number_after(data, b"\"s\":")?;
    let sent_ns = number_after(data, b"\"t\":")?;
    let stream = number_after(data, b"\"k\":").unwrap_or(0);
    Some(Stamp {
        seq,
        stream: u32::try_from(stream).ok()?,
        sent_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        for size in [0usize, 20, 64, 100, 1000] {
            let st = Stamp {
                seq: 123_456,
                stream: 7,
                sent_ns: 1_700_000_000_123_456_789,
            };
            let b = stamp_bytes(st, size);
            if size >= 64 {
                assert_eq!(b.len(), size);
            }
            let v: serde_json::Value = serde_json::from_slice(&b).expect("valid JSON");
            assert_eq!(v["s"], 123_456);
            assert_eq!(parse_stamp(&b), Some(st));
        }
    }

    #[test]
    fn parses_spaced_and_rejects_garbage() {
        let b = br#"{"s": 5, "t": 99, "p": "x"}"#;
        assert_eq!(
            parse_stamp(b),
            Some(Stamp {
                seq: 5,
                stream: 0,
                sent_ns: 99
            })
        );
        assert_eq!(parse_stamp(br#"{"text":"hello"}"#), None);
        assert_eq!(parse_stamp(br#"{"s":,"t":1}"#), None);
    }

    #[test]
    fn find_works() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"xxabc", b"abc"), Some(2));
    }
}
