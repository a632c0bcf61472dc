//! HTTP long-polling payloads: Engine.IO packets in their text form, joined by the record
//! separator `\x1e`; binary packets as `b` + base64.
//!
//! The decoder checks the body's length against `maxPayload` before it splits anything, so an
//! oversize body costs no allocation; the transport answers it with 413, as the Engine.IO
//! server does. Every other error is a 400.

use crate::engineio::{Packet, PacketError};

/// The separator between packets in a polling payload (ASCII record separator).
pub const SEPARATOR: char = '\x1e';

/// The default `maxPayload` of the Engine.IO server: 1 MB.
pub const DEFAULT_MAX_PAYLOAD: usize = 1_000_000;

/// Why a polling payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("polling payload of {len} bytes exceeds maxPayload ({max} bytes)")]
    TooLarge { len: usize, max: usize },
    #[error("polling payload is not UTF-8 text")]
    NotUtf8,
    #[error("packet {index} of the polling payload: {source}")]
    Packet {
        index: usize,
        #[source]
        source: PacketError,
    },
}

/// Encodes packets as one polling payload.
pub fn encode(packets: &[Packet]) -> String {
    let mut out = String::new();
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        packet.write_text(&mut out);
    }
    out
}

/// Decodes a polling request body of at most `max_payload` bytes.
pub fn decode(body: &[u8], max_payload: usize) -> Result<Vec<Packet>, PayloadError> {
    if body.len() > max_payload {
        return Err(PayloadError::TooLarge {
            len: body.len(),
            max: max_payload,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    text.split(SEPARATOR)
        .enumerate()
        .map(|(index, part)| {
            Packet::decode_text(part).map_err(|source| PayloadError::Packet { index, source })
        })
        .collect()
}

#[cfg(test)]
mod tests;
