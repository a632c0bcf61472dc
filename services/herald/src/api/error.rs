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
}

impl From<ErrorCode> for ApiErrorBody {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code,
            message: code.message.to_string(),
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
pub fn http_status(code: u32) -> StatusCode {
    match code {
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
        assert_eq!(http_status(100), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(http_status(102), StatusCode::NOT_FOUND);
        assert_eq!(http_status(107), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(108), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(112), StatusCode::RANGE_NOT_SATISFIABLE);
    }
}
