//! What tokens carry: the claims handed to sessions after verification, the wire shape they are
//! parsed from, and the claim builders used for signing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::AuthError;

/// Claims of a verified connection token.
///
/// Also deserializable straight from a JWT payload (no signature or time checks then).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireClaims")]
pub struct ConnectClaims {
    /// The user ID; `""` is an anonymous user (also when the claim is missing).
    pub sub: String,
    /// Token expiry (seconds since the Unix epoch); `None` = the token never expires.
    pub exp: Option<u64>,
    /// The raw JSON of the `info` claim, verbatim (any JSON value), or the decoded `b64info`.
    pub info: Option<Bytes>,
    /// Server-side subscriptions the connection gets without asking.
    pub channels: Vec<String>,
    /// Connection expiry decoupled from `exp`; `Some(0)` = never.
    pub expire_at: Option<u64>,
}

impl ConnectClaims {
    /// When the connection expires: `expire_at` if set (`0` = never), else `exp`.
    pub fn expires_at(&self) -> Option<u64> {
        resolve_expiry(self.expire_at, self.exp)
    }
}

/// Claims of a verified subscription token.
///
/// The caller still has to check that `sub` is the connection's user and that `channel` is the
/// channel being subscribed to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireClaims")]
pub struct SubscribeClaims {
    /// The user ID the token was issued to; `""` = anonymous (also when missing).
    pub sub: String,
    /// The channel the token grants; never empty.
    pub channel: String,
    /// Token expiry (seconds since the Unix epoch); `None` = the token never expires.
    pub exp: Option<u64>,
    /// The raw JSON of the `info` claim (channel info), verbatim, or the decoded `b64info`.
    pub info: Option<Bytes>,
    /// Subscription expiry decoupled from `exp`; `Some(0)` = never.
    pub expire_at: Option<u64>,
}

impl SubscribeClaims {
    /// When the subscription expires: `expire_at` if set (`0` = never), else `exp`.
    pub fn expires_at(&self) -> Option<u64> {
        resolve_expiry(self.expire_at, self.exp)
    }
}

fn resolve_expiry(expire_at: Option<u64>, exp: Option<u64>) -> Option<u64> {
    match expire_at {
        Some(0) => None,
        Some(at) => Some(at),
        None => exp,
    }
}

/// Every claim Herald looks at, as it appears in a token payload. Unknown claims are ignored;
/// `aud` and `iss` are kept loosely typed because they are only interpreted when configured.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) nbf: Option<u64>,
    #[serde(default)]
    pub(crate) aud: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) iss: Option<serde_json::Value>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    expire_at: Option<u64>,
}

impl TryFrom<WireClaims> for ConnectClaims {
    type Error = AuthError;

    fn try_from(wire: WireClaims) -> Result<Self, AuthError> {
        if wire.channel.is_some() {
            // Signed by the same key, a subscription token would otherwise open a connection
            // for its user: whoever may join one channel is not thereby a client.
            return Err(AuthError::invalid(
                "a subscription token (it has a channel claim) is not a connection token",
            ));
        }
        Ok(Self {
            info: info_bytes(wire.info, wire.b64info)?,
            sub: wire.sub.unwrap_or_default(),
            exp: wire.exp,
            channels: wire.channels.unwrap_or_default(),
            expire_at: wire.expire_at,
        })
    }
}

impl TryFrom<WireClaims> for SubscribeClaims {
    type Error = AuthError;

    fn try_from(wire: WireClaims) -> Result<Self, AuthError> {
        let channel = match wire.channel {
            Some(channel) if !channel.is_empty() => channel,
            Some(_) => return Err(AuthError::invalid("empty channel claim")),
            None => return Err(AuthError::invalid("missing channel claim")),
        };
        Ok(Self {
            info: info_bytes(wire.info, wire.b64info)?,
            sub: wire.sub.unwrap_or_default(),
            channel,
            exp: wire.exp,
            expire_at: wire.expire_at,
        })
    }
}

/// `info` wins over `b64info`; `b64info` (standard base64, as Centrifugo) may carry non-JSON
/// bytes for binary-protocol clients.
fn info_bytes(
    info: Option<Box<RawValue>>,
    b64info: Option<String>,
) -> Result<Option<Bytes>, AuthError> {
    if let Some(raw) = info {
        let raw: Box<str> = raw.into();
        return Ok(Some(Bytes::from(String::from(raw))));
    }
    match b64info {
        Some(encoded) if !encoded.is_empty() => STANDARD
            .decode(encoded.as_bytes())
            .map(|decoded| Some(Bytes::from(decoded)))
            .map_err(|e| AuthError::invalid(format!("b64info is not valid base64: {e}"))),
        _ => Ok(None),
    }
}

/// A JWT NumericDate: a non-negative integer or float number of seconds (fractions are
/// truncated); `null` or missing = `None`. Anything else makes the token malformed.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct NumericDate;

    impl<'de> Visitor<'de> for NumericDate {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative NumericDate (seconds since the Unix epoch)")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom("negative NumericDate"))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // 2^64 is exactly representable; everything in [0, 2^64) truncates into a u64.
            // NaN and infinities fall outside the range.
            if (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(Some(v as u64))
            } else {
                Err(E::custom("NumericDate out of range"))
            }
        }
    }

    deserializer.deserialize_option(NumericDate)
}

/// Claims of a connection token to sign (`herald gentoken`, tests). Empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewConnectToken {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

/// Claims of a subscription token to sign (`herald gentoken`, tests). Empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewSubscribeToken {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(json: &str) -> Result<ConnectClaims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn expire_at_semantics() {
        let mut c = ConnectClaims {
            exp: Some(100),
            ..Default::default()
        };
        assert_eq!(c.expires_at(), Some(100), "no expire_at: exp decides");
        c.expire_at = Some(0);
        assert_eq!(c.expires_at(), None, "expire_at 0: never, even with exp");
        c.expire_at = Some(500);
        assert_eq!(c.expires_at(), Some(500), "expire_at wins over exp");
        c.exp = None;
        c.expire_at = None;
        assert_eq!(c.expires_at(), None, "neither: never");

        let mut s = SubscribeClaims {
            channel: "x".into(),
            exp: Some(7),
            ..Default::default()
        };
        assert_eq!(s.expires_at(), Some(7));
        s.expire_at = Some(0);
        assert_eq!(s.expires_at(), None);
        s.expire_at = Some(9);
        assert_eq!(s.expires_at(), Some(9));
    }

    #[test]
    fn info_is_verbatim_raw_json_of_any_kind() {
        for info in [
            r#"{"z":1,"a":[true,null,"x"]}"#,
            r#""text""#,
            "42",
            "[1,2]",
            "true",
        ] {
            let c = connect(&format!(r#"{{"info":{info}}}"#)).unwrap();
            assert_eq!(c.info.as_deref(), Some(info.as_bytes()));
        }
        assert_eq!(connect(r#"{"info":null}"#).unwrap().info, None);
    }

    #[test]
    fn b64info_is_used_only_without_info() {
        let c = connect(r#"{"b64info":"AAEC/w=="}"#).unwrap();
        assert_eq!(c.info.as_deref(), Some(&[0u8, 1, 2, 255][..]));
        let c = connect(r#"{"info":{"a":1},"b64info":"AAEC/w=="}"#).unwrap();
        assert_eq!(c.info.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert!(connect(r#"{"b64info":"%%%"}"#).is_err());
    }

    #[test]
    fn missing_and_null_fields_default() {
        let c = connect(r#"{"sub":null,"channels":null,"unknown":{"x":[1]},"meta":1}"#).unwrap();
        assert_eq!(c, ConnectClaims::default());
        let c = connect("{}").unwrap();
        assert_eq!(c, ConnectClaims::default());
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(connect(r#"{"exp":5}"#).unwrap().exp, Some(5));
        assert_eq!(connect(r#"{"exp":5.9}"#).unwrap().exp, Some(5));
        assert_eq!(connect(r#"{"exp":null}"#).unwrap().exp, None);
        assert_eq!(connect(r#"{"expire_at":0}"#).unwrap().expire_at, Some(0));
        assert!(connect(r#"{"exp":-1}"#).is_err());
        assert!(connect(r#"{"exp":"5"}"#).is_err());
        assert!(connect(r#"{"exp":1e300}"#).is_err());
        assert!(connect(r#"{"expire_at":[1]}"#).is_err());
    }

    #[test]
    fn subscribe_needs_a_channel() {
        let parse = |json: &str| serde_json::from_str::<SubscribeClaims>(json);
        assert!(parse(r#"{"sub":"1"}"#).is_err());
        assert!(parse(r#"{"sub":"1","channel":""}"#).is_err());
        assert!(parse(r#"{"sub":"1","channel":null}"#).is_err());
        let s = parse(r#"{"sub":"1","channel":"news","channels":["ignored"]}"#).unwrap();
        assert_eq!(s.channel, "news");
        assert_eq!(s.sub, "1");
    }

    #[test]
    fn new_tokens_skip_empty_fields() {
        let empty = serde_json::to_string(&NewConnectToken::default()).unwrap();
        assert_eq!(empty, "{}");
        let full = NewConnectToken {
            sub: "42".into(),
            exp: Some(10),
            info: Some(serde_json::json!({"a": 1})),
            channels: vec!["news".into()],
        };
        assert_eq!(
            serde_json::to_string(&full).unwrap(),
            r#"{"sub":"42","exp":10,"info":{"a":1},"channels":["news"]}"#
        );
        let sub = NewSubscribeToken {
            channel: "c".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&sub).unwrap(), r#"{"channel":"c"}"#);
    }
}
