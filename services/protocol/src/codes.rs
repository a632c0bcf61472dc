//! Protocol codes as named values.
//!
//! Naming: reply error codes ([`ErrorCode`]) are constants at the top of this
//! module (`codes::PERMISSION_DENIED`); disconnect codes ([`Disconnect`]) live
//! in the [`disconnect`] submodule (`codes::disconnect::SHUTDOWN`) because
//! several names collide with error codes; unsubscribe codes
//! ([`UnsubscribeCode`]) are top-level constants prefixed `UNSUBSCRIBE_`.

use std::borrow::Cow;

use crate::proto;

/// An error carried in a reply (`Reply.error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u32,
    pub message: &'static str,
    pub temporary: bool,
}

impl ErrorCode {
    /// The wire form of this error.
    pub fn to_proto(&self) -> proto::Error {
        proto::Error {
            code: self.code,
            message: self.message.to_owned(),
            temporary: self.temporary,
        }
    }
}

impl From<&ErrorCode> for proto::Error {
    fn from(e: &ErrorCode) -> Self {
        e.to_proto()
    }
}

const fn err(code: u32, message: &'static str, temporary: bool) -> ErrorCode {
    ErrorCode {
        code,
        message,
        temporary,
    }
}

pub const INTERNAL: ErrorCode = err(100, "internal server error", true);
pub const UNAUTHORIZED: ErrorCode = err(101, "unauthorized", false);
pub const UNKNOWN_CHANNEL: ErrorCode = err(102, "unknown channel", false);
pub const PERMISSION_DENIED: ErrorCode = err(103, "permission denied", false);
pub const METHOD_NOT_FOUND: ErrorCode = err(104, "method not found", false);
pub const ALREADY_SUBSCRIBED: ErrorCode = err(105, "already subscribed", false);
pub const LIMIT_EXCEEDED: ErrorCode = err(106, "limit exceeded", false);
pub const BAD_REQUEST: ErrorCode = err(107, "bad request", false);
pub const NOT_AVAILABLE: ErrorCode = err(108, "not available", false);
pub const TOKEN_EXPIRED: ErrorCode = err(109, "token expired", false);
pub const EXPIRED: ErrorCode = err(110, "expired", false);
pub const TOO_MANY_REQUESTS: ErrorCode = err(111, "too many requests", true);
pub const UNRECOVERABLE_POSITION: ErrorCode = err(112, "unrecoverable position", false);

/// Maximum disconnect reason length in bytes (WebSocket close frames allow
/// 123 bytes of reason; the protocol keeps it short).
pub const MAX_DISCONNECT_REASON_LEN: usize = 32;

/// Why the server closes a connection. On WebSocket this becomes the close
/// frame's code and reason; elsewhere a `Push.disconnect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    pub reason: Cow<'static, str>,
    /// Whether the client should reconnect; derived from the code ranges
    /// 3000–3499 and 4000–4499.
    pub reconnect: bool,
}

impl Disconnect {
    /// An application-defined disconnect. The reason is truncated at a char
    /// boundary to at most [`MAX_DISCONNECT_REASON_LEN`] bytes; `reconnect`
    /// follows the code range.
    pub fn custom(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_DISCONNECT_REASON_LEN {
            let mut end = MAX_DISCONNECT_REASON_LEN;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason = match reason {
                Cow::Borrowed(s) => Cow::Borrowed(&s[..end]),
                Cow::Owned(mut s) => {
                    s.truncate(end);
                    Cow::Owned(s)
                }
            };
        }
        Disconnect {
            code,
            reason,
            reconnect: reconnect_for(code),
        }
    }

    /// Whether the client should reconnect after this disconnect.
    pub fn reconnect(&self) -> bool {
        self.reconnect
    }

    /// The wire form, for `Push.disconnect` on non-WebSocket transports.
    pub fn to_proto(&self) -> proto::Disconnect {
        proto::Disconnect {
            code: u32::from(self.code),
            reason: self.reason.clone().into_owned(),
            reconnect: self.reconnect,
        }
    }
}

/// Reconnect rule of the protocol: 3000–3499 and 4000–4499 reconnect,
/// everything else (3500–3999, 4500–4999, ...) does not.
pub const fn reconnect_for(code: u16) -> bool {
    matches!(code, 3000..=3499 | 4000..=4499)
}

/// Built-in disconnect codes.
pub mod disconnect {
    use super::{Disconnect, reconnect_for};
    use std::borrow::Cow;

    const fn d(code: u16, reason: &'static str) -> Disconnect {
        Disconnect {
            code,
            reason: Cow::Borrowed(reason),
            reconnect: reconnect_for(code),
        }
    }

    pub const CONNECTION_CLOSED: Disconnect = d(3000, "connection closed");
    pub const SHUTDOWN: Disconnect = d(3001, "shutdown");
    pub const INTERNAL_SERVER_ERROR: Disconnect = d(3004, "internal server error");
    pub const EXPIRED: Disconnect = d(3005, "connection expired");
    pub const SUBSCRIPTION_EXPIRED: Disconnect = d(3006, "subscription expired");
    pub const SLOW: Disconnect = d(3008, "slow");
    pub const WRITE_ERROR: Disconnect = d(3009, "write error");
    pub const INSUFFICIENT_STATE: Disconnect = d(3010, "insufficient state");
    pub const FORCE_RECONNECT: Disconnect = d(3011, "force reconnect");
    pub const NO_PONG: Disconnect = d(3012, "no pong");
    pub const TOO_MANY_REQUESTS: Disconnect = d(3013, "too many requests");
    pub const INVALID_TOKEN: Disconnect = d(3500, "invalid token");
    pub const BAD_REQUEST: Disconnect = d(3501, "bad request");
    pub const STALE: Disconnect = d(3502, "stale");
    pub const FORCE_DISCONNECT: Disconnect = d(3503, "force disconnect");
    pub const CONNECTION_LIMIT: Disconnect = d(3504, "connection limit");
    pub const CHANNEL_LIMIT: Disconnect = d(3505, "channel limit");
    pub const INAPPROPRIATE_PROTOCOL: Disconnect = d(3506, "inappropriate protocol");
    pub const PERMISSION_DENIED: Disconnect = d(3507, "permission denied");
    pub const NOT_AVAILABLE: Disconnect = d(3508, "not available");
    pub const TOO_MANY_ERRORS: Disconnect = d(3509, "too many errors");
}

/// Why the server unsubscribed a client from a channel (`Push.unsubscribe`).
/// Codes 2000–2499 let the client resubscribe; 2500+ do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeCode {
    pub code: u32,
    pub reason: &'static str,
}

impl UnsubscribeCode {
    /// The wire form of this unsubscribe.
    pub fn to_proto(&self) -> proto::Unsubscribe {
        proto::Unsubscribe {
            code: self.code,
            reason: self.reason.to_owned(),
        }
    }
}

pub const UNSUBSCRIBE_SERVER: UnsubscribeCode = UnsubscribeCode {
    code: 2000,
    reason: "server unsubscribe",
};
pub const UNSUBSCRIBE_INSUFFICIENT_STATE: UnsubscribeCode = UnsubscribeCode {
    code: 2500,
    reason: "insufficient state",
};
pub const UNSUBSCRIBE_EXPIRED: UnsubscribeCode = UnsubscribeCode {
    code: 2501,
    reason: "subscription expired",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_ranges() {
        assert!(disconnect::SHUTDOWN.reconnect());
        assert!(disconnect::TOO_MANY_REQUESTS.clone().reconnect());
        assert!(!disconnect::INVALID_TOKEN.reconnect());
        assert!(!disconnect::TOO_MANY_ERRORS.reconnect());
        assert!(Disconnect::custom(4000, "x").reconnect());
        assert!(Disconnect::custom(4499, "x").reconnect());
        assert!(!Disconnect::custom(4500, "x").reconnect());
        assert!(!Disconnect::custom(3500, "x").reconnect());
        assert!(Disconnect::custom(3499, "x").reconnect());
        assert!(!Disconnect::custom(1000, "x").reconnect());
    }

    #[test]
    fn custom_reason_truncated_at_char_boundary() {
        let long = "é".repeat(20); // 40 bytes
        let d = Disconnect::custom(4001, long.clone());
        assert_eq!(d.reason.len(), 32);
        assert_eq!(d.reason, "é".repeat(16));
        // Odd boundary: 1 ASCII byte then 2-byte chars: 1 + 2*15 = 31.
        let d = Disconnect::custom(4001, format!("a{long}"));
        assert_eq!(d.reason.len(), 31);
        let d = Disconnect::custom(4001, "short");
        assert_eq!(d.reason, "short");
        let all: [&Disconnect; 3] = [
            &disconnect::SHUTDOWN,
            &disconnect::NO_PONG,
            &disconnect::SLOW,
        ];
        for d in all {
            assert!(d.reason.len() <= MAX_DISCONNECT_REASON_LEN);
        }
    }

    #[test]
    fn error_to_proto() {
        let e = PERMISSION_DENIED.to_proto();
        assert_eq!(e.code, 103);
        assert_eq!(e.message, "permission denied");
        assert!(!e.temporary);
        assert!(INTERNAL.to_proto().temporary && TOO_MANY_REQUESTS.to_proto().temporary);
        let u = UNSUBSCRIBE_EXPIRED.to_proto();
        assert_eq!((u.code, u.reason.as_str()), (2501, "subscription expired"));
        let d = disconnect::FORCE_DISCONNECT.to_proto();
        assert_eq!(
            (d.code, d.reason.as_str(), d.reconnect),
            (3503, "force disconnect", false)
        );
    }
}
