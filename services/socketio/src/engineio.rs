//! Engine.IO v4 packets: one packet type digit, then the packet's data.
//!
//! Text packets are `<type><data>` (`4hello`, `2probe`, `0{"sid":…}`). A binary message is the
//! raw bytes in a WebSocket binary frame, or `b` + base64 inside a polling text payload (see
//! [`crate::payload`]); a text frame starting with `b` is decoded as binary too, as
//! engine.io-parser does.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Standard alphabet, padding written; read with or without it, since browsers' encoders differ.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The data of a ping or pong that opens a WebSocket upgrade (`2probe` / `3probe`).
pub const PROBE: &str = "probe";

/// The prefix of a binary packet inside a text payload.
pub const BINARY_PREFIX: char = 'b';

/// The JSON of the open packet (`0{…}`), the server's answer to a new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The session id ([`crate::sid`]).
    pub sid: String,
    /// The transports the session may upgrade to (`["websocket"]` on polling, `[]` on WebSocket).
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong before closing the session.
    pub ping_timeout: u64,
    /// The largest polling payload, in bytes, either side accepts.
    pub max_payload: u64,
}

/// An Engine.IO v4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, sent by the server only.
    Open(Handshake),
    /// `1`: closes the session.
    Close,
    /// `2`: a heartbeat from the server, or `2probe` from a client testing a WebSocket.
    Ping(Option<String>),
    /// `3`: the answer to a ping; `3probe` answers a probe.
    Pong(Option<String>),
    /// `4`: a text message (a Socket.IO packet).
    Message(String),
    /// A binary message (a Socket.IO binary attachment).
    Binary(Bytes),
    /// `5`: the client switches the session to the probed WebSocket.
    Upgrade,
    /// `6`: nothing; ends a pending poll during an upgrade.
    Noop,
}

/// One packet as it travels in its own WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Bytes),
}

/// Why a packet could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("empty Engine.IO packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownType(char),
    #[error("Engine.IO {0} packet must carry no data")]
    UnexpectedData(&'static str),
    #[error("invalid Engine.IO open packet: {0}")]
    Handshake(#[source] serde_json::Error),
    #[error("invalid base64 in an Engine.IO binary packet: {0}")]
    Base64(#[source] base64::DecodeError),
}

impl Packet {
    /// A text message packet.
    pub fn message(text: impl Into<String>) -> Self {
        Packet::Message(text.into())
    }

    /// True for `2probe`.
    pub fn is_probe_ping(&self) -> bool {
        matches!(self, Packet::Ping(Some(d)) if d == PROBE)
    }

    /// True for `3probe`.
    pub fn is_probe_pong(&self) -> bool {
        matches!(self, Packet::Pong(Some(d)) if d == PROBE)
    }

    /// The packet's name, as the protocol docs spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Open(_) => "open",
            Packet::Close => "close",
            Packet::Ping(_) => "ping",
            Packet::Pong(_) => "pong",
            Packet::Message(_) | Packet::Binary(_) => "message",
            Packet::Upgrade => "upgrade",
            Packet::Noop => "noop",
        }
    }

    /// The packet as a WebSocket frame: text packets in text frames, binary data raw.
    pub fn encode(&self) -> Frame {
        match self {
            Packet::Binary(data) => Frame::Binary(data.clone()),
            other => {
                let mut out = String::new();
                other.write_text(&mut out);
                Frame::Text(out)
            }
        }
    }

    /// Appends the packet's text form, binary as `b` + base64 (the polling form).
    pub fn write_text(&self, out: &mut String) {
        let (digit, data): (char, Option<&str>) = match self {
            Packet::Open(handshake) => {
                out.push('0');
                // A struct of strings and integers always serializes.
                out.push_str(&serde_json::to_string(handshake).unwrap_or_default());
                return;
            }
            Packet::Close => ('1', None),
            Packet::Ping(data) => ('2', data.as_deref()),
            Packet::Pong(data) => ('3', data.as_deref()),
            Packet::Message(text) => ('4', Some(text)),
            Packet::Binary(data) => {
                out.push(BINARY_PREFIX);
                BASE64.encode_string(data, out);
                return;
            }
            Packet::Upgrade => ('5', None),
            Packet::Noop => ('6', None),
        };
        out.push(digit);
        if let Some(data) = data {
            out.push_str(data);
        }
    }

    /// The packet's text form as a new string.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    /// Decodes a text packet (a WebSocket text frame or one packet of a polling payload).
    pub fn decode_text(text: &str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let data = chars.as_str();
        let data_opt = || (!data.is_empty()).then(|| data.to_owned());
        let no_data = |packet: Packet| {
            if data.is_empty() {
                Ok(packet)
            } else {
                Err(PacketError::UnexpectedData(packet.name()))
            }
        };
        match kind {
            '0' => serde_json::from_str(data)
                .map(Packet::Open)
                .map_err(PacketError::Handshake),
            '1' => no_data(Packet::Close),
            '2' => Ok(Packet::Ping(data_opt())),
            '3' => Ok(Packet::Pong(data_opt())),
            '4' => Ok(Packet::Message(data.to_owned())),
            '5' => no_data(Packet::Upgrade),
            '6' => no_data(Packet::Noop),
            BINARY_PREFIX => BASE64
                .decode(data)
                .map(|bytes| Packet::Binary(Bytes::from(bytes)))
                .map_err(PacketError::Base64),
            other => Err(PacketError::UnknownType(other)),
        }
    }

    /// Decodes a WebSocket binary frame: always a binary message.
    pub fn decode_binary(data: Bytes) -> Self {
        Packet::Binary(data)
    }
}

#[cfg(test)]
pub(crate) mod tests;
