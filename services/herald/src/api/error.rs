//! The one mapping of server API failures to responses.
//!
//! Default (Centrifugo's) mode: HTTP 200 with `{"error":{"code","message"}}`. Transport error
//! mode (header `X-Centrifugo-Error-Mode: transport`): the HTTP status carries the error and the
//! body is `{"code","message"}`.

use actix_web::http::StatusCode;
use herald_engine::error::NodeError;
use herald_protocol::codes::{self, ErrorCode};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub code: u32,
    pub message: String,
    /// The same request may succeed later (e.g. the broker is unreachable right now).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

impl From<ErrorCode> for ApiErrorBody {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code,
            message: code.message.to_string(),
            temporary: code.temporary,
        }
    }
}

impl From<&NodeError> for ApiErrorBody {
    fn from(e: &NodeError) -> Self {
        if let NodeError::Broker(err) = e {
            tracing::warn!(error = %err, "server api: broker failed");
        }
        e.code().into()
    }
}

pub fn bad_request() -> ApiErrorBody {
    codes::BAD_REQUEST.into()
}

/// The HTTP status of an API error in transport error mode.
pub fn http_status(error: &ApiErrorBody) -> StatusCode {
    match error.code {
        // A temporary internal error is an unusable dependency: tell load balancers and
        // clients to retry.
        100 if error.temporary => StatusCode::SERVICE_UNAVAILABLE,
        100 => StatusCode::INTERNAL_SERVER_ERROR,
        102 | 104 => StatusCode::NOT_FOUND,
        107 | 108 => StatusCode::BAD_REQUEST,
        112 => StatusCode::RANGE_NOT_SATISFIABLE,
        113 => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_mode_statuses_follow_centrifugo() {
        let status = |code: u32, temporary: bool| {
            http_status(&ApiErrorBody {
                code,
                message: String::new(),
                temporary,
            })
        };
        assert_eq!(status(100, false), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(100, true), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(102, false), StatusCode::NOT_FOUND);
        assert_eq!(status(107, false), StatusCode::BAD_REQUEST);
        assert_eq!(status(108, false), StatusCode::BAD_REQUEST);
        assert_eq!(status(112, false), StatusCode::RANGE_NOT_SATISFIABLE);
    }
}
