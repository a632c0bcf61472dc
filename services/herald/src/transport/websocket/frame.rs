//! WebSocket frames (RFC 6455) as the lean engine reads and writes them: client frames are
//! parsed and unmasked in the read buffer, server frames are a header written in front of a
//! payload the caller already holds (so a drained frame is sent without being copied).
//!
//! The size limit is checked against the length a frame header declares, before any of its
//! payload is buffered: an oversized message costs the node its header, not its bytes.

use bytes::{Buf, Bytes, BytesMut};

/// Control frames carry at most this much payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// A close frame's reason is what is left of a control payload after its 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// One frame from a client, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A data frame declared more payload than the limit.
    #[error("frame of {0} bytes over the limit")]
    TooBig(u64),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// Parses the frame at the front of `buf` and removes it from there. `Ok(None)`: the frame is
/// not complete yet (nothing is removed). Data frames declaring more than `max_payload` bytes
/// are refused from their header alone.
pub fn parse(buf: &mut BytesMut, max_payload: usize) -> Result<Option<Frame>, FrameError> {
    let [first, second, ..] = buf[..] else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let fin = first & 0x80 != 0;
    let opcode = OpCode::from_bits(first & 0x0F).ok_or(FrameError::Protocol("unknown opcode"))?;
    if second & 0x80 == 0 {
        return Err(FrameError::Protocol("unmasked client frame"));
    }
    let (len, len_bytes) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(FrameError::Protocol("payload length with its top bit set"));
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    if opcode.is_control() {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::Protocol("control frame over 125 bytes"));
        }
    } else if len > max_payload as u64 {
        return Err(FrameError::TooBig(len));
    }
    let len = len as usize;
    let header = 2 + len_bytes + 4;
    if buf.len() < header + len {
        // Room for the rest of this frame now, so its reads need no reallocation.
        buf.reserve(header + len - buf.len());
        return Ok(None);
    }
    let mask: [u8; 4] = buf[header - 4..header].try_into().expect("4 bytes");
    buf.advance(header);
    let mut payload = buf.split_to(len);
    unmask(&mut payload, mask);
    Ok(Some(Frame {
        fin,
        opcode,
        payload: payload.freeze(),
    }))
}

/// XORs `data` with the client's masking key, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // A chunk of eight keeps the mask's phase: the tail starts at mask byte 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// The header of an unfragmented, unmasked server frame of `len` payload bytes: the bytes to
/// write before the payload are `header.0[..header.1]`.
pub fn header(opcode: OpCode, len: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    out[0] = 0x80 | opcode.bits();
    let used = if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (out, used)
}

/// A whole close frame: `code` and `reason` (cut at a char boundary to fit), or no payload.
pub fn close_frame(close: Option<(u16, &str)>) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some((code, reason)) = close {
        payload.extend_from_slice(&code.to_be_bytes());
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
    }
    control_frame(OpCode::Close, &payload)
}

/// A whole control frame (pong, close) with `payload` (at most 125 bytes).
pub fn control_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
    let (head, used) = header(opcode, payload.len());
    let mut frame = Vec::with_capacity(used + payload.len());
    frame.extend_from_slice(&head[..used]);
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser would send it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn parses_masked_frames_of_every_length_form() {
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut buf = BytesMut::from(&client_frame(true, 0x2, &payload, [1, 2, 3, 4])[..]);
            let frame = parse(&mut buf, 1 << 20).unwrap().unwrap();
            assert_eq!(frame.opcode, OpCode::Binary);
            assert!(frame.fin);
            assert_eq!(&frame.payload[..], &payload[..], "length {len}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn an_incomplete_frame_waits_for_its_bytes_whatever_the_split() {
        let bytes = client_frame(true, 0x1, br#"{"id":1,"connect":{}}"#, [9, 8, 7, 6]);
        for split in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            assert_eq!(parse(&mut buf, 1024), Ok(None), "split at {split}");
            assert_eq!(buf.len(), split, "nothing consumed");
            buf.extend_from_slice(&bytes[split..]);
            let frame = parse(&mut buf, 1024).unwrap().unwrap();
            assert_eq!(&frame.payload[..], br#"{"id":1,"connect":{}}"#);
        }
    }

    #[test]
    fn two_frames_in_one_read_come_out_one_by_one() {
        let mut bytes = client_frame(true, 0x1, b"one", [1, 1, 1, 1]);
        bytes.extend(client_frame(true, 0x9, b"ping", [2, 2, 2, 2]));
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(&parse(&mut buf, 64).unwrap().unwrap().payload[..], b"one");
        let ping = parse(&mut buf, 64).unwrap().unwrap();
        assert_eq!(
            (ping.opcode, &ping.payload[..]),
            (OpCode::Ping, &b"ping"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        // 10 MB declared, only the header arrived.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(10_000_000u64).to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(parse(&mut buf, 65536), Err(FrameError::TooBig(10_000_000)));
        // The limit is inclusive.
        let mut buf = BytesMut::from(&client_frame(true, 0x2, &[0; 100], [0; 4])[..]);
        assert!(parse(&mut buf, 100).unwrap().is_some());
        let mut buf = BytesMut::from(&client_frame(true, 0x2, &[0; 101], [0; 4])[..]);
        assert_eq!(parse(&mut buf, 100), Err(FrameError::TooBig(101)));
    }

    #[test]
    fn protocol_violations_are_refused() {
        let unmasked = [0x81u8, 0x01, b'x'];
        let reserved = [0xC1u8, 0x80, 0, 0, 0, 0];
        let bad_opcode = [0x83u8, 0x80, 0, 0, 0, 0];
        let fragmented_ping = [0x09u8, 0x80, 0, 0, 0, 0];
        let mut long_ping = vec![0x89u8, 0x80 | 126, 0, 126];
        long_ping.extend_from_slice(&[0; 4 + 126]);
        let mut top_bit = vec![0x82u8, 0x80 | 127];
        top_bit.extend_from_slice(&u64::MAX.to_be_bytes());
        for bytes in [
            &unmasked[..],
            &reserved,
            &bad_opcode,
            &fragmented_ping,
            &long_ping,
            &top_bit,
        ] {
            let mut buf = BytesMut::from(bytes);
            assert!(
                matches!(parse(&mut buf, 1 << 20), Err(FrameError::Protocol(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_pending_frame_reserves_room_for_itself() {
        let bytes = client_frame(true, 0x2, &[7; 4000], [1, 2, 3, 4]);
        let mut buf = BytesMut::from(&bytes[..100]);
        assert_eq!(parse(&mut buf, 65536), Ok(None));
        assert!(buf.capacity() >= bytes.len());
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        assert_eq!(
            header(OpCode::Text, 0),
            ([0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        assert_eq!(header(OpCode::Text, 125).0[..2], [0x81, 125]);
        assert_eq!(header(OpCode::Binary, 126).0[..4], [0x82, 126, 0, 126]);
        assert_eq!(
            header(OpCode::Binary, 65535).0[..4],
            [0x82, 126, 0xFF, 0xFF]
        );
        let (big, used) = header(OpCode::Binary, 65536);
        assert_eq!(used, 10);
        assert_eq!(big[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn close_frames_carry_code_and_a_reason_cut_at_a_char_boundary() {
        assert_eq!(close_frame(None), vec![0x88, 0]);
        assert_eq!(
            close_frame(Some((3001, "shutdown"))),
            [&[0x88, 10, 0x0B, 0xB9][..], b"shutdown"].concat()
        );
        let long = "é".repeat(100); // 200 bytes
        let frame = close_frame(Some((3000, &long)));
        assert_eq!(frame[1] as usize, 2 + 122, "122 bytes of whole characters");
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
    }
}
