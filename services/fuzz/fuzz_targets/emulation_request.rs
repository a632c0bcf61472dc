//! `POST /emulation` bodies as the node handles them: the body decoded in each format, the
//! node and session ids checked, the commands it carries decoded in the same format (a JSON
//! connection posts JSON bodies, a Protobuf one Protobuf bodies).
#![no_main]

use herald_engine::emulation::check_ids;
use herald_protocol::codec::{Format, decode_commands};
use herald_protocol::emulation::decode_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for format in [Format::Json, Format::Protobuf] {
        let Ok(request) = decode_request(format, body) else {
            continue;
        };
        if check_ids(&request).is_ok() {
            // What check_ids promises the table lookup and the broker message.
            assert_eq!(request.node.len(), 36);
            assert_eq!(request.session.len(), 32);
        }
        let _ = decode_commands(format, &request.data);
    }
});
