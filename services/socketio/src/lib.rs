//! Herald's Socket.IO wire layer: Engine.IO v4 and Socket.IO v5 as data.
//!
//! # Layout
//! * [`engineio`]: Engine.IO v4 packets (open, close, ping, pong, message, upgrade, noop; text
//!   and binary messages) and the open packet's handshake.
//! * [`payload`]: HTTP long-polling payloads (packets joined by `\x1e`, binary packets as `b` +
//!   base64), with `maxPayload` enforced before anything is allocated for the packets.
//! * [`socketio`]: Socket.IO v5 packets (CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR and the
//!   binary variants, parsed far enough to be refused), encoded and decoded as socket.io-parser
//!   v4 does.
//! * [`sid`]: Engine.IO session ids (URL-safe, unguessable, fixed length).
//! * [`phase`]: the transport phase of one Engine.IO session (polling → probing → websocket) and
//!   which packets each phase accepts, so transports only feed it packets.
//!
//! It is pure: no I/O, no async, no clocks (ping timers belong to the transports). It must not
//! know about actix, HTTP, WebSocket frames, channels, subscriptions, tokens or the engine; the
//! node's transports feed bytes in and take bytes out, and map Socket.IO events to channels.
//!
//! Errors are one `thiserror` enum per module, because each is met at a different boundary: a
//! bad packet closes a WebSocket, a bad payload answers a polling request with 400, an oversize
//! one with 413, a phase violation aborts an upgrade.

pub mod engineio;
pub mod payload;
pub mod phase;
pub mod sid;
pub mod socketio;

pub use engineio::{Handshake, Packet as EioPacket, PacketError as EioError};
pub use payload::PayloadError;
pub use phase::{Phase, PhaseError, TransportPhase};
pub use socketio::{Packet as SioPacket, PacketError as SioError};
