//! Serde helpers used by the generated types (see `build.rs`).
//!
//! * [`is_default`] omits zero values on serialize.
//! * [`null_default`] decodes JSON `null` as the zero value.
//! * [`raw_bytes`] maps protobuf `bytes` fields to raw embedded JSON.

use serde::{Deserialize, Deserializer};

/// `skip_serializing_if` predicate: true for the type's zero value.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Deserialize a value, treating JSON `null` as `T::default()`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `bytes` fields as raw embedded JSON.
///
/// Serialize writes the bytes verbatim as a JSON value (raw `\n`/`\r`
/// replaced by spaces so newline-delimited framing stays intact; outside
/// strings newlines can only be whitespace, inside strings they are invalid
/// JSON anyway). Bytes that are not valid JSON produce a serde error.
///
/// Deserialize captures any JSON value verbatim; `null` becomes empty bytes.
pub(crate) mod raw_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, ser};
    use serde_json::value::RawValue;

    pub(crate) fn serialize<S: Serializer>(v: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(v)
            .map_err(|e| ser::Error::custom(format!("bytes field is not UTF-8 JSON: {e}")))?;
        let owned = if text.contains(['\n', '\r']) {
            text.replace(['\n', '\r'], " ")
        } else {
            text.to_owned()
        };
        let raw = RawValue::from_string(owned)
            .map_err(|e| ser::Error::custom(format!("bytes field is not valid JSON: {e}")))?;
        raw.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        if text == "null" {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::{Message, RpcRequest};
    use bytes::Bytes;

    #[test]
    fn bytes_round_trip_and_omission() {
        let m = Message {
            data: Bytes::from_static(br#"{"a":"b\nc"}"#),
        };
        // Escaped newline inside a string is two characters, kept verbatim.
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"data":{"a":"b\nc"}}"#
        );
        assert_eq!(serde_json::to_string(&Message::default()).unwrap(), "{}");
        let back: Message = serde_json::from_str(r#"{"data": [ 1, 2 ] }"#).unwrap();
        assert_eq!(&back.data[..], b"[ 1, 2 ]");
        let null: Message = serde_json::from_str(r#"{"data":null}"#).unwrap();
        assert!(null.data.is_empty());
    }

    #[test]
    fn from_value_and_non_utf8() {
        let v = serde_json::json!({"method": "m", "data": {"x": [1, 2]}});
        let r: RpcRequest = serde_json::from_value(v).unwrap();
        assert_eq!(r.method, "m");
        assert_eq!(&r.data[..], br#"{"x":[1,2]}"#);
        let bad = Message {
            data: Bytes::from_static(b"\xff"),
        };
        assert!(serde_json::to_string(&bad).is_err());
    }
}
