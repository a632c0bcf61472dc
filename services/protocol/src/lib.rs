//! Herald's client protocol crate: the Centrifugo client protocol v2 as data.
//!
//! This crate owns:
//! * the wire types, generated from `proto/client.proto` ([`proto`]);
//! * their JSON mapping as spoken by the Centrifugo SDKs (snake_case names,
//!   zero values omitted, `bytes` fields as raw embedded JSON);
//! * the frame codecs for the JSON (newline-delimited) and Protobuf
//!   (varint-length-delimited) formats ([`codec`]);
//! * the protocol's numeric codes: reply errors, disconnects and
//!   unsubscribes ([`codes`]);
//! * the body of an emulation request, the commands of an HTTP streaming or
//!   SSE connection ([`emulation`]).
//!
//! It is pure: no I/O, no async, no clocks. It must not know about sockets,
//! transports, channels, subscriptions, sessions or any server state; those
//! belong to the engine and the server binary, which feed bytes in and take
//! bytes out.

pub mod codec;
pub mod codes;
pub mod emulation;
pub mod proto;
mod raw_json;

pub use codec::Format;
