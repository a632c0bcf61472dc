//! Round-trip checks for decoded command frames.

use herald_protocol::codec::{Format, decode_commands};
use herald_protocol::proto::Command;
use prost::Message;

/// Every command decoded from a JSON frame encodes back to one JSON line, and that line decodes
/// to a command that encodes to the very same line.
///
/// The first re-encoding is not compared with the input: the decoder keeps `bytes` fields
/// (embedded JSON) verbatim, and the encoder turns a raw `\r` inside them into a space so that
/// newline framing survives, so one pass may normalize; after it the encoding is a fixed point.
pub fn check_json(commands: &[Command]) {
    for command in commands {
        let line = serde_json::to_vec(command).expect("a decoded JSON command encodes");
        let again = decode_commands(Format::Json, &line).expect("its encoding decodes");
        assert_eq!(again.len(), 1, "one command, one line: {line:?}");
        let line_again = serde_json::to_vec(&again[0]).expect("it encodes again");
        assert_eq!(line, line_again, "JSON encoding is not stable");
        if !contains_raw_cr(command) {
            assert_eq!(&again[0], command, "JSON round trip changed the command");
        }
    }
}

/// Whether a decoded command may carry a raw `\r` in embedded JSON (which the encoder
/// normalizes): cheaper to check the debug text than to walk every `bytes` field.
fn contains_raw_cr(command: &Command) -> bool {
    format!("{command:?}").contains("\\r")
}

/// Commands decoded from a Protobuf frame, re-encoded as a frame, decode to the same commands.
pub fn check_protobuf(commands: &[Command]) {
    let mut frame = Vec::new();
    for command in commands {
        command
            .encode_length_delimited(&mut frame)
            .expect("a Vec grows");
    }
    let again = decode_commands(Format::Protobuf, &frame).expect("its encoding decodes");
    assert_eq!(again, commands, "Protobuf round trip changed the commands");
}
