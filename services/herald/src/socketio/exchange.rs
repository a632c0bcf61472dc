//! What a polling request asks of its session, and what the session answers: the bytes that
//! travel through `Node::ask`, to this node's session or through the broker to another's.

use bytes::{BufMut as _, Bytes, BytesMut};

/// A polling request, as the session receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// GET: the packets waiting for the client (wait for some if there are none).
    Poll,
    /// POST: packets from the client (a polling payload).
    Post(Bytes),
    /// A POST over `maxPayload`, refused with 413 by the node that took it: the session ends.
    TooLarge,
}

impl Request {
    pub fn encode(&self) -> Bytes {
        match self {
            Request::Poll => Bytes::from_static(b"G"),
            Request::TooLarge => Bytes::from_static(b"T"),
            Request::Post(body) => {
                let mut out = BytesMut::with_capacity(body.len() + 1);
                out.put_u8(b'P');
                out.put_slice(body);
                out.freeze()
            }
        }
    }

    pub fn decode(mut data: Bytes) -> Option<Request> {
        let kind = *data.first()?;
        let rest = data.split_off(1);
        match (kind, rest.is_empty()) {
            (b'G', true) => Some(Request::Poll),
            (b'T', true) => Some(Request::TooLarge),
            (b'P', _) => Some(Request::Post(rest)),
            _ => None,
        }
    }
}

/// The HTTP answer to a polling request: a status and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn ok(body: impl Into<Bytes>) -> Answer {
        Answer {
            status: 200,
            body: body.into(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Answer {
        self.status = status;
        self
    }

    /// An Engine.IO error: `{"code":…,"message":…}` with 400 (403 for code 4).
    pub fn error(error: EngineError) -> Answer {
        let (code, message) = error.code_and_message();
        Answer {
            status: if code == 4 { 403 } else { 400 },
            body: Bytes::from(format!("{{\"code\":{code},\"message\":\"{message}\"}}")),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.body.len() + 3);
        out.put_slice(format!("{:03}", self.status.min(999)).as_bytes());
        out.put_slice(&self.body);
        out.freeze()
    }

    pub fn decode(mut data: Bytes) -> Option<Answer> {
        if data.len() < 3 {
            return None;
        }
        let body = data.split_off(3);
        let status = std::str::from_utf8(&data).ok()?.parse().ok()?;
        Some(Answer { status, body })
    }
}

/// The errors of the Engine.IO server, with its codes and messages (what clients show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocolVersion,
}

impl EngineError {
    pub fn code_and_message(self) -> (u8, &'static str) {
        match self {
            EngineError::UnknownTransport => (0, "Transport unknown"),
            EngineError::UnknownSid => (1, "Session ID unknown"),
            EngineError::BadHandshakeMethod => (2, "Bad handshake method"),
            EngineError::BadRequest => (3, "Bad request"),
            EngineError::Forbidden => (4, "Forbidden"),
            EngineError::UnsupportedProtocolVersion => (5, "Unsupported protocol version"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        for request in [
            Request::Poll,
            Request::TooLarge,
            Request::Post(Bytes::from("4hello\x1e3")),
            Request::Post(Bytes::new()),
        ] {
            assert_eq!(Request::decode(request.encode()), Some(request));
        }
        assert_eq!(Request::decode(Bytes::from("Gx")), None);
        assert_eq!(Request::decode(Bytes::new()), None);
        let answer = Answer::ok("6");
        assert_eq!(Answer::decode(answer.encode()), Some(answer));
        let refused = Answer::error(EngineError::UnknownSid);
        assert_eq!(refused.status, 400);
        assert_eq!(
            &refused.body[..],
            br#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(Answer::decode(refused.encode()), Some(refused));
        assert_eq!(Answer::decode(Bytes::from("20")), None);
    }
}
