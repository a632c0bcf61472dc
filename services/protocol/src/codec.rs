//! Frame codecs for the two client protocol formats.
//!
//! * JSON: one object per line; a frame holds one or more lines joined by
//!   `'\n'` (no trailing newline when we write; blank lines, surrounding
//!   whitespace and `\r\n` tolerated when we read).
//! * Protobuf: varint-length-delimited messages back to back; a zero-length
//!   message is an empty message (client pong / server ping).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::codes;
use crate::proto;

/// Wire format negotiated for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Protobuf,
}

/// Why a client frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A line of a JSON frame is not a valid command object.
    #[error("malformed JSON command on line {line}: {source}")]
    Json {
        /// 1-based line number within the frame.
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A line of a JSON frame is valid-looking JSON but not an object.
    #[error("malformed JSON command on line {line}: expected an object")]
    NotAnObject {
        /// 1-based line number within the frame.
        line: usize,
    },
    /// A length prefix is not a valid varint (truncated or longer than 10 bytes).
    #[error("bad varint length prefix at byte {offset}")]
    BadVarint { offset: usize },
    /// A length prefix announces more bytes than the frame holds.
    #[error(
        "truncated protobuf message at byte {offset}: length {len}, only {remaining} bytes left"
    )]
    Truncated {
        offset: usize,
        len: u64,
        remaining: usize,
    },
    /// A length-delimited message is not a valid Command.
    #[error("malformed protobuf command at byte {offset}: {source}")]
    Protobuf {
        offset: usize,
        #[source]
        source: prost::DecodeError,
    },
}

/// Why a reply could not be encoded (only JSON can fail: a `bytes` field
/// that is not valid JSON).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode reply as JSON: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// Decode every command in one transport frame.
///
/// JSON: newline-separated objects (each line trimmed, empty lines skipped;
/// `{}` is a valid empty Command = pong). Protobuf: varint-length-delimited
/// Commands back to back (a zero-length message = empty Command = pong).
pub fn decode_commands(format: Format, frame: &[u8]) -> Result<Vec<proto::Command>, DecodeError> {
    match format {
        Format::Json => decode_json(frame),
        Format::Protobuf => decode_protobuf(frame),
    }
}

fn decode_json(frame: &[u8]) -> Result<Vec<proto::Command>, DecodeError> {
    let mut out = Vec::new();
    for (i, line) in frame.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        // serde would accept a struct written as an array; the protocol doesn't.
        if line[0] != b'{' {
            return Err(DecodeError::NotAnObject { line: i + 1 });
        }
        let cmd = serde_json::from_slice(line).map_err(|source| DecodeError::Json {
            line: i + 1,
            source,
        })?;
        out.push(cmd);
    }
    Ok(out)
}

/// Decode a varint at `buf[pos..]`: returns (value, bytes used).
fn read_varint(buf: &[u8], pos: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(pos + i)?;
        if i == 9 && b > 1 {
            return None; // overflows u64
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn decode_protobuf(frame: &[u8]) -> Result<Vec<proto::Command>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < frame.len() {
        let (len, used) = read_varint(frame, pos).ok_or(DecodeError::BadVarint { offset: pos })?;
        let start = pos + used;
        let remaining = frame.len() - start;
        if len > remaining as u64 {
            return Err(DecodeError::Truncated {
                offset: pos,
                len,
                remaining,
            });
        }
        let end = start + len as usize;
        let cmd =
            proto::Command::decode(&frame[start..end]).map_err(|source| DecodeError::Protobuf {
                offset: pos,
                source,
            })?;
        out.push(cmd);
        pos = end;
    }
    Ok(out)
}

/// Encode one Reply for the wire, or fail if a JSON `bytes` field does not
/// hold valid JSON. JSON: one object, no trailing newline. Protobuf: the
/// message with its varint length prefix.
pub fn try_encode_reply(format: Format, reply: &proto::Reply) -> Result<Bytes, EncodeError> {
    match format {
        Format::Json => Ok(Bytes::from(serde_json::to_vec(reply)?)),
        Format::Protobuf => Ok(Bytes::from(reply.encode_length_delimited_to_vec())),
    }
}

/// One Reply encoded for the wire, ready to be joined into a frame: JSON
/// object with no trailing newline; Protobuf WITH its varint length prefix.
///
/// Infallible: if JSON encoding fails (a `bytes` field holding invalid JSON,
/// which is a bug upstream), the reply is replaced by an `internal server
/// error` reply carrying the same id, so the frame stays valid. Use
/// [`try_encode_reply`] to observe the failure.
pub fn encode_reply(format: Format, reply: &proto::Reply) -> Bytes {
    match try_encode_reply(format, reply) {
        Ok(b) => b,
        Err(_) => {
            let fallback = proto::Reply {
                id: reply.id,
                error: Some(codes::INTERNAL.to_proto()),
                ..Default::default()
            };
            // Cannot fail: no bytes fields are set.
            try_encode_reply(format, &fallback).unwrap_or_else(|_| ping(format))
        }
    }
}

/// Join encoded replies into one frame: JSON with `'\n'` between them (no
/// trailing newline), Protobuf concatenated. Appends to `out`.
pub fn join_frame(format: Format, parts: &[Bytes], out: &mut BytesMut) {
    let extra: usize = parts.iter().map(Bytes::len).sum::<usize>() + parts.len();
    out.reserve(extra);
    for part in parts {
        append_to_frame(format, part, out);
    }
}

/// Append one more encoded reply to a frame being built (`out` empty means
/// this is the first element).
pub fn append_to_frame(format: Format, part: &[u8], out: &mut BytesMut) {
    if format == Format::Json && !out.is_empty() {
        out.put_u8(b'\n');
    }
    out.extend_from_slice(part);
}

/// The `disconnect` push that tells a client of a transport without close frames (HTTP
/// streaming, SSE) why its connection ends: the last thing such a transport writes.
pub fn disconnect_push(format: Format, disconnect: &codes::Disconnect) -> Bytes {
    let reply = proto::Reply {
        push: Some(proto::Push {
            disconnect: Some(disconnect.to_proto()),
            ..Default::default()
        }),
        ..Default::default()
    };
    encode_reply(format, &reply)
}

/// The connect request of a unidirectional transport: a bare `ConnectRequest` JSON object (not
/// a command), e.g. `{"token":"<JWT>","subs":{"news":{"recover":true,"offset":3,"epoch":"x"}}}`.
pub fn decode_connect_request(body: &[u8]) -> Result<proto::ConnectRequest, DecodeError> {
    let body = body.trim_ascii();
    // serde would accept a struct written as an array; the protocol doesn't.
    if body.first() != Some(&b'{') {
        return Err(DecodeError::NotAnObject { line: 1 });
    }
    serde_json::from_slice(body).map_err(|source| DecodeError::Json { line: 1, source })
}

/// A JSON frame as unidirectional transports send it: their clients get bare pushes, so each
/// `{"push":P}` line becomes `P` (`{"channel":"news","pub":{...}}`); other lines (the ping
/// `{}`) stay as they are.
pub fn unwrap_pushes(frame: &mut BytesMut) {
    const PREFIX: &[u8] = b"{\"push\":";
    if !frame.windows(PREFIX.len()).any(|w| w == PREFIX) {
        return;
    }
    let mut out = BytesMut::with_capacity(frame.len());
    for line in frame[..].split(|&b| b == b'\n') {
        let bare = line
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(b"}"))
            .unwrap_or(line);
        append_to_frame(Format::Json, bare, &mut out);
    }
    *frame = out;
}

/// The server ping: `{}` for JSON, a single 0x00 byte (empty delimited
/// message) for Protobuf.
pub fn ping(format: Format) -> Bytes {
    match format {
        Format::Json => Bytes::from_static(b"{}"),
        Format::Protobuf => Bytes::from_static(&[0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unidirectional_frames_carry_bare_pushes() {
        let mut frame = BytesMut::from(
            &b"{\"push\":{\"connect\":{\"client\":\"c\"}}}\n{}\n{\"push\":{\"channel\":\"a\",\"pub\":{\"data\":{\"push\":1}}}}"[..],
        );
        unwrap_pushes(&mut frame);
        assert_eq!(
            &frame[..],
            &b"{\"connect\":{\"client\":\"c\"}}\n{}\n{\"channel\":\"a\",\"pub\":{\"data\":{\"push\":1}}}"[..]
        );
    }

    #[test]
    fn a_unidirectional_connect_request_is_a_bare_object() {
        let req =
            decode_connect_request(br#" {"token":"t","subs":{"a":{"recover":true,"offset":3}}} "#)
                .unwrap();
        assert_eq!(req.token, "t");
        assert!(req.subs["a"].recover);
        assert!(decode_connect_request(b"[]").is_err());
        assert!(decode_connect_request(b"").is_err());
        assert!(decode_connect_request(br#"{"token":1}"#).is_err());
    }

    #[test]
    fn varint_reader() {
        assert_eq!(read_varint(&[0], 0), Some((0, 1)));
        assert_eq!(read_varint(&[0xac, 0x02], 0), Some((300, 2)));
        assert_eq!(read_varint(&[9, 0xac, 0x02], 1), Some((300, 2)));
        assert_eq!(read_varint(&[0xac], 0), None);
        assert_eq!(read_varint(&[], 0), None);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max, 0), Some((u64::MAX, 10)));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_varint(&over, 0), None);
    }

    #[test]
    fn json_non_object_lines_rejected() {
        for bad in [&b"[1]"[..], b"1", b"null", b"\"x\""] {
            assert!(matches!(
                decode_commands(Format::Json, bad),
                Err(DecodeError::NotAnObject { line: 1 })
            ));
        }
        assert!(matches!(
            decode_commands(Format::Json, b"{}\n{"),
            Err(DecodeError::Json { line: 2, .. })
        ));
    }

    #[test]
    fn protobuf_error_offsets() {
        // First message fine, second truncated.
        let err = decode_commands(Format::Protobuf, &[0, 5, 8]).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Truncated {
                offset: 1,
                len: 5,
                remaining: 1
            }
        ));
        assert!(err.to_string().contains("truncated"));
    }

    #[test]
    fn json_encode_has_no_trailing_newline() {
        let r = proto::Reply {
            id: 1,
            ..Default::default()
        };
        assert_eq!(&encode_reply(Format::Json, &r)[..], br#"{"id":1}"#);
        assert_eq!(
            &encode_reply(Format::Json, &proto::Reply::default())[..],
            b"{}"
        );
    }
}
