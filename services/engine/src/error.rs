//! The one place where engine errors become protocol codes (reply errors and disconnects).

use herald_protocol::codes::{self, Disconnect, ErrorCode};

use crate::auth::AuthError;
use crate::broker::BrokerError;
use crate::channel::ChannelError;

/// Errors of node operations shared by client commands and the server API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not available")]
    NotAvailable,
    #[error("permission denied")]
    PermissionDenied,
    /// A history position from another epoch of the stream.
    #[error("unrecoverable position")]
    UnrecoverablePosition,
}

impl NodeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            NodeError::Channel(ChannelError::UnknownNamespace(_)) => codes::UNKNOWN_CHANNEL,
            NodeError::Channel(
                ChannelError::Empty | ChannelError::TooLong { .. } | ChannelError::Braces,
            ) => codes::BAD_REQUEST,
            NodeError::Broker(BrokerError::Unsupported(_)) => codes::NOT_AVAILABLE,
            NodeError::Broker(_) => codes::INTERNAL,
            NodeError::BadRequest(_) => codes::BAD_REQUEST,
            NodeError::NotAvailable => codes::NOT_AVAILABLE,
            NodeError::PermissionDenied => codes::PERMISSION_DENIED,
            NodeError::UnrecoverablePosition => codes::UNRECOVERABLE_POSITION,
        }
    }
}

/// How a client command failed: an error reply, or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Reply(ErrorCode),
    Disconnect(Disconnect),
}

impl From<ErrorCode> for CommandError {
    fn from(code: ErrorCode) -> Self {
        CommandError::Reply(code)
    }
}

impl From<Disconnect> for CommandError {
    fn from(d: Disconnect) -> Self {
        CommandError::Disconnect(d)
    }
}

impl From<NodeError> for CommandError {
    fn from(e: NodeError) -> Self {
        if let NodeError::Broker(err) = &e {
            tracing::warn!(error = %err, "broker operation failed");
        }
        CommandError::Reply(e.code())
    }
}

/// A connection token that fails: expired asks the SDK for a fresh token (109), anything else
/// ends the connection for good (3500).
pub fn connect_token_error(e: &AuthError) -> CommandError {
    match e {
        AuthError::Expired => CommandError::Reply(codes::TOKEN_EXPIRED),
        _ => CommandError::Disconnect(codes::disconnect::INVALID_TOKEN),
    }
}

/// A subscription token that fails: expired asks the SDK for a fresh token (109); an invalid
/// one refuses this subscription only (103), leaving the connection's other channels alone.
pub fn subscribe_token_error(e: &AuthError) -> CommandError {
    match e {
        AuthError::Expired => CommandError::Reply(codes::TOKEN_EXPIRED),
        _ => CommandError::Reply(codes::PERMISSION_DENIED),
    }
}
