//! Wire types generated from `proto/client.proto` (package `herald.client`).
//!
//! Every message derives `prost::Message` and serde's `Serialize` /
//! `Deserialize` with the Centrifugo JSON mapping applied by `build.rs`.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/herald.client.rs"));
