//! Reading server frames without decoding them fully: a subscriber only needs each
//! publication's channel and stamp, and to notice pings. JSON frames are scanned line by line;
//! Protobuf frames are walked field by field (Reply.push(4) → Push.channel(2), Push.pub(4) →
//! Publication.data(4)). No allocation per message.

use crate::stamp::{Stamp, find, parse_stamp};

/// One message of a server frame, as a subscriber sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Server ping (`{}` / empty Protobuf message): answer with a pong.
    Ping,
    /// A publication; `stamp` is `None` when its data is not a stamped payload.
    Publication {
        channel: &'a [u8],
        stamp: Option<Stamp>,
    },
    /// Anything else (replies, other pushes such as disconnect or unsubscribe).
    Other(&'a [u8]),
}

/// Calls `f` for every message of a JSON frame (`'\n'`-separated objects).
pub fn scan_json<'a>(frame: &'a [u8], mut f: impl FnMut(Event<'a>)) {
    for line in frame.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if line == b"{}" {
            f(Event::Ping);
            continue;
        }
        if !line.starts_with(b"{\"push\":") {
            f(Event::Other(line));
            continue;
        }
        let Some(data_at) = find(line, b"\"pub\":") else {
            f(Event::Other(line));
            continue;
        };
        let channel = json_string_after(line, b"\"channel\":\"").unwrap_or(b"");
        let stamp =
            find(&line[data_at..], b"\"data\":").and_then(|d| parse_stamp(&line[data_at + d..]));
        f(Event::Publication { channel, stamp });
    }
}

/// The string value after `key` (which ends with the opening quote); our channel names never
/// hold escapes, so the value ends at the next quote.
fn json_string_after<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(line, key)? + key.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    Some(&line[start..start + len])
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Iterates the fields of a Protobuf message: calls `f(field number, bytes)` for every
/// length-delimited field; skips the others. Returns `None` on malformed input.
fn each_len_field<'a>(msg: &'a [u8], mut f: impl FnMut(u64, &'a [u8])) -> Option<()> {
    let mut pos = 0;
    while pos < msg.len() {
        let key = varint(msg, &mut pos)?;
        match key & 7 {
            0 => {
                varint(msg, &mut pos)?;
            }
            1 => pos = pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(msg, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                f(key >> 3, msg.get(pos..end)?);
                pos = end;
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
    }
    (pos == msg.len()).then_some(())
}

/// Calls `f` for every message of a Protobuf frame (varint-length-delimited Replies).
/// Returns false when the frame is malformed (the messages before the fault were reported).
pub fn scan_protobuf<'a>(frame: &'a [u8], mut f: impl FnMut(Event<'a>)) -> bool {
    let mut pos = 0;
    while pos < frame.len() {
        let Some(len) = varint(frame, &mut pos).and_then(|l| usize::try_from(l).ok()) else {
            return false;
        };
        let Some(msg) = pos.checked_add(len).and_then(|end| frame.get(pos..end)) else {
            return false;
        };
        pos += len;
        if msg.is_empty() {
            f(Event::Ping);
            continue;
        }
        let mut push: Option<&[u8]> = None;
        if each_len_field(msg, |n, b| {
            if n == 4 {
                push = Some(b);
            }
        })
        .is_none()
        {
            return false;
        }
        let Some(push) = push else {
            f(Event::Other(msg));
            continue;
        };
        let mut channel: &[u8] = b"";
        let mut publication: Option<&[u8]> = None;
        if each_len_field(push, |n, b| match n {
            2 => channel = b,
            4 => publication = Some(b),
            _ => {}
        })
        .is_none()
        {
            return false;
        }
        let Some(publication) = publication else {
            f(Event::Other(msg));
            continue;
        };
        let mut data: &[u8] = b"";
        if each_len_field(publication, |n, b| {
            if n == 4 {
                data = b;
            }
        })
        .is_none()
        {
            return false;
        }
        f(Event::Publication {
            channel,
            stamp: parse_stamp(data),
        });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::stamp_bytes;
    use bytes::{Bytes, BytesMut};
    use herald_protocol::Format;
    use herald_protocol::codec::{encode_reply, join_frame, ping};
    use herald_protocol::proto::{Publication, Push, Reply};

    fn push(channel: &str, seq: u64) -> Reply {
        Reply {
            push: Some(Push {
                channel: channel.into(),
                r#pub: Some(Publication {
                    data: stamp_bytes(
                        Stamp {
                            seq,
                            stream: 2,
                            sent_ns: 1000 + seq,
                        },
                        100,
                    )
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn frame(format: Format) -> BytesMut {
        let mut parts: Vec<Bytes> = (0..5)
            .map(|i| encode_reply(format, &push("c:1", i)))
            .collect();
        parts.insert(2, ping(format));
        parts.push(encode_reply(
            format,
            &Reply {
                id: 3,
                ..Default::default()
            },
        ));
        let mut out = BytesMut::new();
        join_frame(format, &parts, &mut out);
        out
    }

    fn check(events: Vec<Event<'_>>) {
        assert_eq!(events.len(), 7);
        assert_eq!(events[2], Event::Ping);
        let pubs: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Publication { channel, stamp } => Some((*channel, stamp.unwrap())),
                _ => None,
            })
            .collect();
        assert_eq!(pubs.len(), 5);
        for (i, (ch, st)) in pubs.iter().enumerate() {
            assert_eq!(*ch, b"c:1");
            assert_eq!(st.seq, i as u64);
            assert_eq!(st.stream, 2);
            assert_eq!(st.sent_ns, 1000 + i as u64);
        }
        assert!(matches!(events[6], Event::Other(_)));
    }

    #[test]
    fn batched_json_frame() {
        let f = frame(Format::Json);
        let mut ev = Vec::new();
        scan_json(&f, |e| ev.push(e));
        check(ev);
    }

    #[test]
    fn batched_protobuf_frame() {
        let f = frame(Format::Protobuf);
        let mut ev = Vec::new();
        assert!(scan_protobuf(&f, |e| ev.push(e)));
        check(ev);
    }

    #[test]
    fn truncated_protobuf_is_reported() {
        let f = frame(Format::Protobuf);
        let mut n = 0;
        assert!(!scan_protobuf(&f[..f.len() - 4], |_| n += 1));
        assert_eq!(n, 5);
    }
}
