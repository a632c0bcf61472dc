//! Socket.IO v5 packets, encoded and decoded as socket.io-parser v4 does:
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//! ```
//!
//! The namespace is written only when it is not `/`, and always followed by `,`. Binary packets
//! (BINARY_EVENT, BINARY_ACK) are parsed up to their attachment count and their JSON with
//! placeholders, so the node can refuse them with a clear error; their attachments (the
//! following Engine.IO binary messages) are not reassembled here.
//!
//! The decoder is stricter than socket.io-parser where the reference accepts what no client
//! sends: an EVENT or ACK without a data array, an ACK without an id, an ack id beyond
//! JavaScript's safe integers, a type that is not a digit.

use serde_json::Value;

/// The root namespace, left out of encoded packets.
pub const ROOT_NAMESPACE: &str = "/";

/// The most attachments a binary packet may announce (socket.io-parser's `maxAttachments`).
pub const MAX_ATTACHMENTS: u32 = 10;

/// The largest ack id a JavaScript peer can hold exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_ACK_ID: u64 = (1 << 53) - 1;

/// Event names the client library keeps for itself; an EVENT may not use them.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The packet type digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl PacketType {
    fn from_digit(c: char) -> Option<Self> {
        Some(match c {
            '0' => PacketType::Connect,
            '1' => PacketType::Disconnect,
            '2' => PacketType::Event,
            '3' => PacketType::Ack,
            '4' => PacketType::ConnectError,
            '5' => PacketType::BinaryEvent,
            '6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// True for the types that carry binary attachments.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }

    /// The type's name, as the protocol docs spell it.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Event => "EVENT",
            PacketType::Ack => "ACK",
            PacketType::ConnectError => "CONNECT_ERROR",
            PacketType::BinaryEvent => "BINARY_EVENT",
            PacketType::BinaryAck => "BINARY_ACK",
        }
    }
}

/// A Socket.IO v5 packet. The constructors build packets in the form the decoder accepts,
/// provided the caller keeps event names out of [`RESERVED_EVENTS`] and `,` out of namespaces.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: PacketType,
    /// The namespace, `/` by default; never contains `,`.
    pub nsp: String,
    /// The ack id of an EVENT that wants an answer, or of the ACK answering it.
    pub id: Option<u64>,
    /// The number of binary attachments (BINARY_EVENT and BINARY_ACK only, 1 to 10).
    pub attachments: Option<u32>,
    /// The JSON data: the auth or handshake object of a CONNECT, the array of an EVENT or ACK
    /// (event name first), the object or string of a CONNECT_ERROR.
    pub data: Option<Value>,
}

/// Why a Socket.IO packet could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("empty Socket.IO packet")]
    Empty,
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownType(char),
    #[error("illegal attachment count in a binary Socket.IO packet")]
    IllegalAttachments,
    #[error("binary Socket.IO packet announces {0} attachments (at most {MAX_ATTACHMENTS})")]
    TooManyAttachments(u64),
    #[error("Socket.IO ack id out of range (at most {MAX_ACK_ID})")]
    AckIdOutOfRange,
    #[error("Socket.IO {0} packet has no ack id")]
    MissingAckId(&'static str),
    #[error("Socket.IO {0} packet has no data")]
    MissingData(&'static str),
    #[error("Socket.IO packet data is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("invalid data for a Socket.IO {0} packet")]
    InvalidPayload(&'static str),
}

impl Packet {
    fn new(kind: PacketType, nsp: &str, id: Option<u64>, data: Option<Value>) -> Self {
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            attachments: None,
            data,
        }
    }

    /// CONNECT: from a client with its optional `auth` object, from the server with
    /// `{"sid": …}` (and `pid` when connection state recovery is on).
    pub fn connect(nsp: &str, data: Option<serde_json::Map<String, Value>>) -> Self {
        Packet::new(PacketType::Connect, nsp, None, data.map(Value::Object))
    }

    /// DISCONNECT from a namespace.
    pub fn disconnect(nsp: &str) -> Self {
        Packet::new(PacketType::Disconnect, nsp, None, None)
    }

    /// EVENT `name` with its arguments, wanting an ack when `id` is set.
    pub fn event(nsp: &str, name: &str, args: Vec<Value>, id: Option<u64>) -> Self {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(name.to_owned()));
        data.extend(args);
        Packet::new(PacketType::Event, nsp, id, Some(Value::Array(data)))
    }

    /// ACK `id` with the answer's arguments.
    pub fn ack(nsp: &str, id: u64, args: Vec<Value>) -> Self {
        Packet::new(PacketType::Ack, nsp, Some(id), Some(Value::Array(args)))
    }

    /// CONNECT_ERROR with `{"message": …}` (and `data` when given), what socket.io-client
    /// hands to `connect_error` listeners.
    pub fn connect_error(nsp: &str, message: &str, data: Option<Value>) -> Self {
        let mut body = serde_json::Map::new();
        body.insert("message".into(), Value::String(message.to_owned()));
        if let Some(data) = data {
            body.insert("data".into(), data);
        }
        Packet::new(
            PacketType::ConnectError,
            nsp,
            None,
            Some(Value::Object(body)),
        )
    }

    /// The event name of an EVENT or BINARY_EVENT (a number is allowed by the protocol).
    pub fn event_name(&self) -> Option<&Value> {
        match (&self.kind, &self.data) {
            (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(items))) => {
                items.first()
            }
            _ => None,
        }
    }

    /// The arguments of an EVENT after its name, or of an ACK.
    pub fn args(&self) -> &[Value] {
        match (&self.kind, &self.data) {
            (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(items))) => {
                items.get(1..).unwrap_or(&[])
            }
            (PacketType::Ack | PacketType::BinaryAck, Some(Value::Array(items))) => items,
            _ => &[],
        }
    }

    /// The packet's text form.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        out.push(char::from(b'0' + self.kind as u8));
        if self.kind.is_binary() {
            out.push_str(&self.attachments.unwrap_or(0).to_string());
            out.push('-');
        }
        if !self.nsp.is_empty() && self.nsp != ROOT_NAMESPACE {
            out.push_str(&self.nsp);
            out.push(',');
        }
        if let Some(id) = self.id {
            out.push_str(&id.to_string());
        }
        if let Some(data) = &self.data {
            // A serde_json::Value always serializes.
            out.push_str(&serde_json::to_string(data).unwrap_or_default());
        }
        out
    }

    /// Decodes a packet from the text of an Engine.IO message.
    pub fn decode(text: &str) -> Result<Self, PacketError> {
        let first = text.chars().next().ok_or(PacketError::Empty)?;
        let kind = PacketType::from_digit(first).ok_or(PacketError::UnknownType(first))?;
        // Every delimiter below is ASCII, so byte offsets are char boundaries.
        let mut rest = &text[1..];

        let attachments = if kind.is_binary() {
            let dash = rest.find('-').ok_or(PacketError::IllegalAttachments)?;
            let count = parse_digits(&rest[..dash]).ok_or(PacketError::IllegalAttachments)?;
            if count == 0 {
                return Err(PacketError::IllegalAttachments);
            }
            if count > u64::from(MAX_ATTACHMENTS) {
                return Err(PacketError::TooManyAttachments(count));
            }
            rest = &rest[dash + 1..];
            Some(count as u32)
        } else {
            None
        };

        let nsp = if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            let nsp = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            nsp
        } else {
            ROOT_NAMESPACE
        };

        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = if digits > 0 {
            let id = parse_digits(&rest[..digits])
                .filter(|id| *id <= MAX_ACK_ID)
                .ok_or(PacketError::AckIdOutOfRange)?;
            rest = &rest[digits..];
            Some(id)
        } else {
            None
        };

        let data = if rest.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Value>(rest).map_err(PacketError::Json)?)
        };

        let packet = Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            attachments,
            data,
        };
        packet.validate()?;
        Ok(packet)
    }

    fn validate(&self) -> Result<(), PacketError> {
        let name = self.kind.name();
        let valid = match (self.kind, &self.data) {
            (PacketType::Connect, None) => true,
            (PacketType::Connect, Some(data)) => data.is_object(),
            (PacketType::Disconnect, data) => data.is_none(),
            (PacketType::ConnectError, None) => true,
            (PacketType::ConnectError, Some(data)) => data.is_string() || data.is_object(),
            (PacketType::Event | PacketType::BinaryEvent, None) => {
                return Err(PacketError::MissingData(name));
            }
            (PacketType::Event | PacketType::BinaryEvent, Some(data)) => match data {
                Value::Array(items) => match items.first() {
                    Some(Value::Number(_)) => true,
                    Some(Value::String(event)) => !RESERVED_EVENTS.contains(&event.as_str()),
                    _ => false,
                },
                _ => false,
            },
            (PacketType::Ack | PacketType::BinaryAck, None) => {
                return Err(PacketError::MissingData(name));
            }
            (PacketType::Ack | PacketType::BinaryAck, Some(data)) => data.is_array(),
        };
        if !valid {
            return Err(PacketError::InvalidPayload(name));
        }
        if matches!(self.kind, PacketType::Ack | PacketType::BinaryAck) && self.id.is_none() {
            return Err(PacketError::MissingAckId(name));
        }
        Ok(())
    }
}

/// A non-empty run of ASCII digits as a number; `None` when empty, not digits, or past u64.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
