//! Protobuf client frames: `decode_commands(Format::Protobuf, ..)` never panics, and whatever
//! it decodes survives an encode/decode round trip.
#![no_main]

use herald_protocol::codec::{Format, decode_commands};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Ok(commands) = decode_commands(Format::Protobuf, frame) {
        herald_fuzz::commands::check_protobuf(&commands);
    }
});
