//! Requests that reach a live session through its outbound queue, in order with what is
//! queued: the node's (server API subscribe and unsubscribe of a user), so the session stays
//! the only owner of its subscription state, and the session's own markers.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Subscribe the connection to a channel on the server's behalf (a server-side subscription).
    Subscribe {
        channel: String,
        /// Channel info for the subscriber, raw JSON.
        info: Option<Bytes>,
        /// Data for the client in the subscribe push, raw JSON.
        data: Option<Bytes>,
    },
    /// Remove the connection from a channel and tell the client.
    Unsubscribe { channel: String },
    /// Queued by the session itself right behind a positioned subscribe reply: from here on
    /// the channel's live publications (held back until now) follow the reply.
    CaughtUp {
        channel_id: crate::channel_log::ChannelId,
    },
    /// Publications of the channel may have been lost on their way to this node (its broker
    /// connection was re-established): compare the client's position with the stream's.
    CheckPosition { channel: String },
    /// The periodic check of a positioned subscription (`channel_position_check_delay`): a
    /// publication the stream held at the previous check and the client still has not got
    /// was lost.
    PeriodicPositionCheck { channel: String },
}
