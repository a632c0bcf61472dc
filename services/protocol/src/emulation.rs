//! The body of an emulation request (`POST /emulation`, for the HTTP streaming and SSE
//! fallbacks): an [`EmulationRequest`] naming the node and the session of a connection and
//! carrying the commands its client would have sent over a WebSocket.
//!
//! It lives here, next to the frame codecs, so that the server and the fuzz targets decode
//! bodies with one function. What the decoded ids and commands mean (which node, which session,
//! how large) is for the engine and the transport to judge.

use crate::codec::Format;
use crate::proto::EmulationRequest;

/// Why an emulation request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EmulationDecodeError {
    #[error("malformed JSON emulation request: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed protobuf emulation request: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// JSON's form of the request. Unlike the generated JSON mapping, which embeds `bytes` fields as
/// raw JSON, `data` is a string here: it holds a whole frame of commands (several lines), which
/// is not one JSON value.
#[derive(serde::Deserialize)]
struct JsonRequest {
    #[serde(default)]
    node: String,
    #[serde(default)]
    session: String,
    #[serde(default)]
    data: String,
}

/// Decodes an emulation request body: the Protobuf message as is, or the JSON object
/// `{"node", "session", "data"}` with the commands as a string. Missing fields are empty; the
/// caller decides whether an empty field is acceptable.
pub fn decode_request(
    format: Format,
    body: &[u8],
) -> Result<EmulationRequest, EmulationDecodeError> {
    match format {
        Format::Protobuf => Ok(<EmulationRequest as prost::Message>::decode(body)?),
        Format::Json => {
            let json: JsonRequest = serde_json::from_slice(body)?;
            Ok(EmulationRequest {
                node: json.node,
                session: json.session,
                data: json.data.into_bytes().into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn json_data_is_a_string_of_commands() {
        let body = br#"{"node":"n","session":"s","data":"{\"id\":1}\n{\"id\":2}"}"#;
        let request = decode_request(Format::Json, body).unwrap();
        assert_eq!(request.node, "n");
        assert_eq!(request.session, "s");
        assert_eq!(&request.data[..], b"{\"id\":1}\n{\"id\":2}");
        // Embedded JSON (the generated mapping of `bytes`) is not this form.
        assert!(decode_request(Format::Json, br#"{"data":{"id":1}}"#).is_err());
        assert_eq!(
            decode_request(Format::Json, b"{}").unwrap(),
            EmulationRequest::default()
        );
        assert!(decode_request(Format::Json, b"").is_err());
    }

    #[test]
    fn protobuf_is_the_message() {
        let request = EmulationRequest {
            node: "n".into(),
            session: "s".into(),
            data: vec![0, 1, 2].into(),
        };
        let body = request.encode_to_vec();
        assert_eq!(decode_request(Format::Protobuf, &body).unwrap(), request);
        assert!(decode_request(Format::Protobuf, &body[..body.len() - 1]).is_err());
    }
}
