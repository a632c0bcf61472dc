//! Replies as the node encodes them, from any field values: the input is a Protobuf `Reply`,
//! so `bytes` fields hold whatever a Protobuf client published (not necessarily JSON). Encoding
//! never panics; a JSON reply is one line that a client can parse, or the encoder's fallback
//! error with the same id; a Protobuf reply decodes to what was encoded.
#![no_main]

use herald_protocol::codec::{Format, encode_reply, try_encode_reply};
use herald_protocol::codes;
use herald_protocol::proto::Reply;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|input: &[u8]| {
    let Ok(reply) = Reply::decode(input) else {
        return;
    };

    let line = encode_reply(Format::Json, &reply);
    assert!(
        !line.contains(&b'\n'),
        "a JSON reply breaks newline framing"
    );
    let parsed: Reply = serde_json::from_slice(&line).expect("a JSON reply parses");
    if try_encode_reply(Format::Json, &reply).is_err() {
        assert_eq!(parsed.id, reply.id);
        assert_eq!(parsed.error, Some(codes::INTERNAL.to_proto()));
    }

    let framed = encode_reply(Format::Protobuf, &reply);
    let decoded = Reply::decode_length_delimited(framed).expect("a Protobuf reply decodes");
    assert_eq!(decoded, reply);
});
