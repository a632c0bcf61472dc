//! The bidirectional WebSocket transport on `/connection/websocket`, in two engines that run
//! the same [`driver`](super::driver) (`server.websocket_engine`):
//!
//! - `lean` (the default): the upgrade hook of actix-http hands the socket over after the
//!   HTTP/1 handshake, and the connection is one task reading and writing frames itself
//!   (`lean`, `connection`, `frame`, `open_connections`): no HTTP/1 buffers kept, no channel,
//!   no second task;
//! - `actix-ws`: an actix-web route with actix-ws (`actix_ws`).
//!
//! JSON goes in text frames, Protobuf in binary frames.

pub mod actix_ws;
pub(crate) mod connection;
pub mod frame;
pub mod lean;
mod open_connections;

use herald_protocol::Format;
use herald_protocol::codes::Disconnect;

pub const PATH: &str = "/connection/websocket";

/// The unidirectional WebSocket (`server.uni_websocket`): the client's first message is a bare
/// connect request, then the server only pushes (JSON, no subprotocol).
pub const UNI_PATH: &str = "/connection/uni_websocket";

const SUBPROTOCOL_JSON: &str = "centrifuge-json";
const SUBPROTOCOL_PROTOBUF: &str = "centrifuge-protobuf";
/// The subprotocols a client may ask for, in `Sec-WebSocket-Protocol`.
const SUBPROTOCOLS: [&str; 2] = [SUBPROTOCOL_JSON, SUBPROTOCOL_PROTOBUF];

/// WebSocket close code for a message over the size limit (RFC 6455).
const MESSAGE_TOO_BIG: u16 = 1009;

pub(crate) fn message_too_big() -> Disconnect {
    Disconnect::custom(MESSAGE_TOO_BIG, "message too big")
}

/// The first subprotocol the client offers (`Sec-WebSocket-Protocol`, comma-separated) that
/// Herald speaks: what the handshake agrees to.
fn choose_subprotocol(offered: Option<&str>) -> Option<&'static str> {
    offered?
        .split(',')
        .map(str::trim)
        .find_map(|p| SUBPROTOCOLS.into_iter().find(|ours| *ours == p))
}

/// Protobuf when the `centrifuge-protobuf` subprotocol was agreed or the URL asks for it
/// (`?format=protobuf` or `?cf_protocol=protobuf`); JSON otherwise.
fn format_for(agreed: Option<&str>, query: &str) -> Format {
    if agreed == Some(SUBPROTOCOL_PROTOBUF) {
        return Format::Protobuf;
    }
    let asks_protobuf = query.split('&').any(|pair| {
        matches!(
            pair.split_once('='),
            Some(("format" | "cf_protocol", "protobuf"))
        )
    });
    if asks_protobuf {
        Format::Protobuf
    } else {
        Format::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_offered_subprotocol_we_speak_wins() {
        assert_eq!(choose_subprotocol(None), None);
        assert_eq!(choose_subprotocol(Some("mqtt, v2")), None);
        assert_eq!(
            choose_subprotocol(Some("mqtt, centrifuge-protobuf, centrifuge-json")),
            Some(SUBPROTOCOL_PROTOBUF)
        );
        assert_eq!(
            choose_subprotocol(Some("centrifuge-json")),
            Some(SUBPROTOCOL_JSON)
        );
    }

    #[test]
    fn protobuf_by_subprotocol_or_query() {
        assert_eq!(format_for(Some(SUBPROTOCOL_PROTOBUF), ""), Format::Protobuf);
        assert_eq!(format_for(Some(SUBPROTOCOL_JSON), ""), Format::Json);
        assert_eq!(
            format_for(None, "a=1&cf_protocol=protobuf"),
            Format::Protobuf
        );
        assert_eq!(format_for(None, "format=protobuf"), Format::Protobuf);
        assert_eq!(format_for(None, "format=json"), Format::Json);
    }
}
