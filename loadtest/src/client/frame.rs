//! Reading server frames without decoding them fully: a subscriber only needs each
//! publication's channel and stamp, and to notice pings. JSON frames are scanned line by line;
//! Protobuf frames are walked field by field (Reply.push(4) → Push.channel(2), Push.pub(4) →
//! Publication.data(4)). Socket.IO messages (one Engine.IO packet each) are matched on their
//! `42["pub",` prefix. No allocation per message.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::stamp::{Stamp, parse_stamp};

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
    for line in lines(frame) {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if line == b"{}" {
            f(Event::Ping);
            continue;
        }
        if let Some(publication) = herald_publication(line) {
            f(publication);
            continue;
        }
        if !line.starts_with(b"{\"push\":") {
            f(Event::Other(line));
            continue;
        }
        let Some(data_at) = PUB.find(line) else {
            f(Event::Other(line));
            continue;
        };
        let channel = CHANNEL
            .find(line)
            .and_then(|at| quoted(&line[at + CHANNEL.needle().len()..]))
            .unwrap_or(b"");
        let stamp = DATA
            .find(&line[data_at..])
            .and_then(|d| parse_stamp(&line[data_at + d + DATA.needle().len()..]));
        f(Event::Publication { channel, stamp });
    }
}

static PUB: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"pub\":"));
static CHANNEL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"channel\":\""));
static DATA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"data\":"));

/// The layout Herald writes, read without searching:
/// `{"push":{"channel":"<ch>","pub":{"data":<stamp>…`. `None` for anything else.
fn herald_publication(line: &[u8]) -> Option<Event<'_>> {
    let rest = line.strip_prefix(b"{\"push\":{\"channel\":\"")?;
    let channel = quoted(rest)?;
    let data = rest[channel.len()..].strip_prefix(b"\",\"pub\":{\"data\":")?;
    Some(Event::Publication {
        channel,
        stamp: parse_stamp(data),
    })
}

/// The string up to the next quote; our channel names never hold escapes.
fn quoted(s: &[u8]) -> Option<&[u8]> {
    Some(&s[..memchr::memchr(b'"', s)?])
}

/// The `'\n'`-separated pieces of `frame` (SIMD search for the separators).
fn lines(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', frame).chain(std::iter::once(frame.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let line = &frame[start.min(end)..end];
        start = end + 1;
        Some(line)
    })
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

/// One Engine.IO v4 packet carrying (for type 4) a Socket.IO v5 packet, as sent over
/// WebSocket in a text message: `<eio type>[<sio type>[/nsp,][ack id]<json>]`.
#[derive(Debug, PartialEq, Eq)]
pub enum SioPacket<'a> {
    /// `0{"sid":…,"pingInterval":…}`: the Engine.IO handshake (JSON).
    Open(&'a [u8]),
    /// `1`
    Close,
    /// `2`: server ping, answer `3`.
    Ping,
    /// `3`
    Pong,
    /// `6`
    Noop,
    /// `40{"sid":…}`: connected to the namespace (payload JSON, may be empty).
    Connect(&'a [u8]),
    /// `41`
    Disconnect,
    /// `42[id][name,args…]`: an event; `data` is the JSON array.
    Event { ack: Option<u64>, data: &'a [u8] },
    /// `43<id>[args…]`: the answer to an event sent with ack id `id`.
    Ack { id: u64, data: &'a [u8] },
    /// `44{"message":…}`
    ConnectError(&'a [u8]),
    /// Anything else (binary events, upgrades, malformed).
    Other(&'a [u8]),
}

/// Parses one Engine.IO packet (one WebSocket text message).
pub fn parse_socketio(msg: &[u8]) -> SioPacket<'_> {
    match msg.first() {
        Some(b'0') => SioPacket::Open(&msg[1..]),
        Some(b'1') => SioPacket::Close,
        Some(b'2') if msg.len() == 1 => SioPacket::Ping,
        Some(b'3') if msg.len() == 1 => SioPacket::Pong,
        Some(b'6') => SioPacket::Noop,
        Some(b'4') => {
            let Some(&t) = msg.get(1) else {
                return SioPacket::Other(msg);
            };
            let mut rest = &msg[2..];
            // A namespace other than `/` is written before a comma.
            if rest.first() == Some(&b'/') {
                match rest.iter().position(|&b| b == b',') {
                    Some(c) => rest = &rest[c + 1..],
                    None => rest = &[],
                }
            }
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let id = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse::<u64>().ok());
            let data = &rest[digits..];
            match (t, id) {
                (b'0', _) => SioPacket::Connect(rest),
                (b'1', _) => SioPacket::Disconnect,
                (b'2', ack) => SioPacket::Event { ack, data },
                (b'3', Some(id)) => SioPacket::Ack { id, data },
                (b'4', _) => SioPacket::ConnectError(rest),
                _ => SioPacket::Other(msg),
            }
        }
        _ => SioPacket::Other(msg),
    }
}

/// The event array prefix of a publication from the baseline server.
const SIO_PUB: &[u8] = b"[\"pub\",";
/// The event array prefix of a publication from a Herald node, up to the channel name:
/// `["publication",{"channel":"<ch>",…,"data":<data>,…}]`.
const HERALD_SIO_PUB: &[u8] = b"[\"publication\",{\"channel\":\"";

/// Calls `f` for the one packet of a Socket.IO WebSocket message: `42["pub",data]` (the
/// baseline's; Socket.IO events carry no channel name there: `channel` is empty) and
/// `42["publication",{"channel":…,"data":…}]` (a Herald node's) are publications, `2` a ping;
/// any other event (`subscribed`, …) is [`Event::Other`].
pub fn scan_socketio<'a>(msg: &'a [u8], mut f: impl FnMut(Event<'a>)) {
    // Fast paths: the exact bytes socket.io writes for io.to(room).emit("pub", data), and
    // those Herald writes for a publication.
    if let Some(rest) = msg.strip_prefix(b"42") {
        if let Some(data) = rest.strip_prefix(SIO_PUB) {
            f(Event::Publication {
                channel: b"",
                stamp: parse_stamp(data),
            });
            return;
        }
        if let Some(publication) = herald_socketio_publication(rest) {
            f(publication);
            return;
        }
    }
    match parse_socketio(msg) {
        SioPacket::Ping => f(Event::Ping),
        SioPacket::Event { data, .. } if data.starts_with(SIO_PUB) => f(Event::Publication {
            channel: b"",
            stamp: parse_stamp(&data[SIO_PUB.len()..]),
        }),
        SioPacket::Event { data, .. } => {
            f(herald_socketio_publication(data).unwrap_or(Event::Other(msg)))
        }
        _ => f(Event::Other(msg)),
    }
}

/// A Herald `publication` event array, `["publication",{"channel":"<ch>",…"data":<data>…}]`
/// (`data` right after the channel as Herald writes it, else searched for).
fn herald_socketio_publication(array: &[u8]) -> Option<Event<'_>> {
    let rest = array.strip_prefix(HERALD_SIO_PUB)?;
    let channel = quoted(rest)?;
    let after = &rest[channel.len() + 1..];
    let data = match after.strip_prefix(b",\"data\":") {
        Some(d) => d,
        None => &after[DATA.find(after)? + DATA.needle().len()..],
    };
    Some(Event::Publication {
        channel,
        stamp: parse_stamp(data),
    })
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

    fn sio(msg: &[u8]) -> Vec<Event<'_>> {
        let mut ev = Vec::new();
        scan_socketio(msg, |e| ev.push(e));
        ev
    }

    #[test]
    fn socketio_open_connect_and_ping() {
        let open = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":8000,"maxPayload":1000000}"#;
        match parse_socketio(open) {
            SioPacket::Open(j) => {
                let v: serde_json::Value = serde_json::from_slice(j).unwrap();
                assert_eq!(v["pingInterval"], 25000);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(
            parse_socketio(br#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#),
            SioPacket::Connect(br#"{"sid":"wZX3oN0bSVIhsaknAAAI"}"#)
        );
        assert_eq!(
            parse_socketio(br#"44{"message":"Not authorized"}"#),
            SioPacket::ConnectError(br#"{"message":"Not authorized"}"#)
        );
        assert_eq!(parse_socketio(b"2"), SioPacket::Ping);
        assert_eq!(parse_socketio(b"3"), SioPacket::Pong);
        assert_eq!(parse_socketio(b"41"), SioPacket::Disconnect);
        assert_eq!(parse_socketio(b"1"), SioPacket::Close);
        assert_eq!(sio(b"2"), vec![Event::Ping]);
        assert!(matches!(sio(open)[..], [Event::Other(_)]));
    }

    #[test]
    fn socketio_ack_and_events() {
        assert_eq!(
            parse_socketio(br#"431[{"ok":true}]"#),
            SioPacket::Ack {
                id: 1,
                data: br#"[{"ok":true}]"#
            }
        );
        assert_eq!(
            parse_socketio(br#"43/admin,12[{"ok":true}]"#),
            SioPacket::Ack {
                id: 12,
                data: br#"[{"ok":true}]"#
            }
        );
        assert_eq!(
            parse_socketio(br#"427["subscribe","loadtest"]"#),
            SioPacket::Event {
                ack: Some(7),
                data: br#"["subscribe","loadtest"]"#
            }
        );
        // An ack is not a publication, nor is another event.
        assert!(matches!(sio(br#"431[{"ok":true}]"#)[..], [Event::Other(_)]));
        assert!(matches!(sio(br#"42["hello",1]"#)[..], [Event::Other(_)]));
    }

    #[test]
    fn socketio_stamped_publication() {
        for (i, seq) in [0u64, 17, 123_456].into_iter().enumerate() {
            let st = Stamp {
                seq,
                stream: 3,
                sent_ns: 1_700_000_000_000_000_000 + seq,
            };
            let data = stamp_bytes(st, 100);
            // What socket.io writes: JSON.stringify(["pub", data]) after "42".
            let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
            let msg = format!("42{}", serde_json::to_string(&("pub", v)).unwrap());
            assert_eq!(
                sio(msg.as_bytes()),
                vec![Event::Publication {
                    channel: b"",
                    stamp: Some(st)
                }],
                "case {i}: {msg}"
            );
            // The slow path (with an ack id) reads the same stamp.
            let with_id = format!("425{}", &msg[2..]);
            assert_eq!(
                sio(with_id.as_bytes()),
                vec![Event::Publication {
                    channel: b"",
                    stamp: Some(st)
                }]
            );
        }
        assert_eq!(
            sio(br#"42["pub",{"text":"hi"}]"#),
            vec![Event::Publication {
                channel: b"",
                stamp: None
            }]
        );
    }

    #[test]
    fn herald_socketio_publication_names_its_channel() {
        let st = Stamp {
            seq: 42,
            stream: 1,
            sent_ns: 1_700_000_000_000_000_042,
        };
        let data = String::from_utf8(stamp_bytes(st, 100)).unwrap();
        let expected = vec![Event::Publication {
            channel: b"loadtest",
            stamp: Some(st),
        }];
        // As Herald writes it: data first, offset after (channels with history).
        let msg = format!(r#"42["publication",{{"channel":"loadtest","data":{data},"offset":7}}]"#);
        assert_eq!(sio(msg.as_bytes()), expected);
        // Other field orders and an ack id take the slow path.
        let msg = format!(r#"42["publication",{{"channel":"loadtest","offset":7,"data":{data}}}]"#);
        assert_eq!(sio(msg.as_bytes()), expected);
        let msg = format!(r#"425["publication",{{"channel":"loadtest","data":{data}}}]"#);
        assert_eq!(sio(msg.as_bytes()), expected);
        // Herald's other events are not publications.
        assert!(matches!(
            sio(br#"42["subscribed",{"channel":"loadtest","recoverable":false}]"#)[..],
            [Event::Other(_)]
        ));
        assert!(matches!(
            sio(br#"431[{"ok":{"epoch":"x"}}]"#)[..],
            [Event::Other(_)]
        ));
    }
}
