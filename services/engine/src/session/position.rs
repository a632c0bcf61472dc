//! Positioned subscriptions: the session follows the offsets of a history channel's
//! publications, so a client never sees one twice or misses one silently.
//!
//! A subscription joins the hub first and reads the stream second, so publications can arrive
//! live while the stream is read, and the same publication can come both ways. Until the
//! subscribe reply (with what was read) has gone into a frame, the channel's live publications
//! are held back; then those after the reply's position follow it, in order, and duplicates
//! are dropped. A live publication that skips an offset means one was lost on its way (a
//! broker reconnect), and one from another epoch that the stream itself was lost (Redis
//! flushed or restarted without persistence): either way the client is made to recover, with unsubscribe 2500 (it resubscribes
//! with its position) or, for a server-side subscription, disconnect 3010.

use std::cmp::Ordering;

use bytes::{Bytes, BytesMut};
use herald_protocol::codec;
use herald_protocol::codes;
use herald_protocol::proto::{Push, Reply};

use super::{Flow, Session, State};
use crate::broker::HistoryQuery;
use crate::channel_log::StreamTag;
use crate::hub::ChannelId;

pub(super) struct Position {
    /// The hub's id of the channel (as in `outbound::Placed`).
    pub channel_id: ChannelId,
    pub channel: String,
    /// Where the client is: a publication at or below it is a duplicate; one from another
    /// epoch means the stream was lost.
    pub last: StreamTag,
    /// Live publications that came before the subscribe reply went out.
    pub held: Option<Vec<(StreamTag, Bytes)>>,
    pub server_side: bool,
    /// The stream's top at the last periodic check when the client was behind it: what the
    /// client must have got by the next check, or it was lost.
    pub pending_top: Option<StreamTag>,
}

/// What to do with a publication at `at` given the client is at `last`.
enum Next {
    Deliver,
    Duplicate,
    Gap,
}

fn next(last: StreamTag, at: StreamTag) -> Next {
    if at.epoch != last.epoch {
        return Next::Gap;
    }
    match at.offset.cmp(&(last.offset + 1)) {
        Ordering::Less => Next::Duplicate,
        Ordering::Equal => Next::Deliver,
        Ordering::Greater => Next::Gap,
    }
}

impl Session {
    pub(super) fn position_mut(&mut self, channel_id: ChannelId) -> Option<&mut Position> {
        match &mut self.state {
            State::Connected(c) => c.positions.iter_mut().find(|p| p.channel_id == channel_id),
            _ => None,
        }
    }

    /// Starts following a channel: live publications are held until the reply's marker.
    pub(super) fn track(&mut self, position: Position) {
        if let State::Connected(c) = &mut self.state {
            c.positions.retain(|p| p.channel != position.channel);
            c.positions.push(position);
        }
    }

    pub(super) fn untrack(&mut self, channel: &str) {
        if let State::Connected(c) = &mut self.state {
            c.positions.retain(|p| p.channel != channel);
        }
    }

    /// A publication of a channel with history, read from its log. Returns a close when the client must
    /// recover and cannot be told otherwise.
    pub(super) fn positioned_publication(
        &mut self,
        channel_id: ChannelId,
        at: StreamTag,
        bytes: &Bytes,
        frame: &mut BytesMut,
    ) -> Option<Flow> {
        let format = self.format;
        let Some(position) = self.position_mut(channel_id) else {
            codec::append_to_frame(format, bytes, frame);
            return None;
        };
        if let Some(held) = &mut position.held {
            held.push((at, bytes.clone()));
            return None;
        }
        match next(position.last, at) {
            Next::Deliver => {
                position.last = at;
                codec::append_to_frame(format, bytes, frame);
                None
            }
            Next::Duplicate => None,
            Next::Gap => self.lost_position(channel_id, frame),
        }
    }

    /// The subscribe reply is in the frame: what was held follows it.
    pub(super) fn caught_up(
        &mut self,
        channel_id: ChannelId,
        frame: &mut BytesMut,
    ) -> Option<Flow> {
        let format = self.format;
        let position = self.position_mut(channel_id)?;
        let held = position.held.take().unwrap_or_default();
        for (at, bytes) in held {
            match next(position.last, at) {
                Next::Deliver => {
                    position.last = at;
                    codec::append_to_frame(format, &bytes, frame);
                }
                Next::Duplicate => {}
                Next::Gap => return self.lost_position(channel_id, frame),
            }
        }
        None
    }

    /// After the node's broker connection came back: if the stream moved past the client (or
    /// is another stream), what it missed never arrived, and it must recover. A publication
    /// still queued behind this check makes it recover needlessly, never wrongly.
    pub(super) async fn check_position(
        &mut self,
        channel: &str,
        frame: &mut BytesMut,
    ) -> Option<Flow> {
        let (channel_id, last, holding) = match &self.state {
            State::Connected(c) => c
                .positions
                .iter()
                .find(|p| p.channel == channel)
                .map(|p| (p.channel_id, p.last, p.held.is_some()))?,
            _ => return None,
        };
        if holding {
            return None;
        }
        let top = self.stream_top(channel).await?;
        if top.epoch == last.epoch && top.offset <= last.offset {
            return None;
        }
        self.lost_position(channel_id, frame)
    }

    /// The periodic check (`channel_position_check_delay`): catches a publication lost on its
    /// way to this node when no later one reveals the gap. Checking against the stream's top
    /// alone would take a publication still on its way for a lost one, so the top is only
    /// remembered, and the client must have reached it by the next check, a whole delay later:
    /// a live publication takes milliseconds, and a client that far behind is cut as slow.
    pub(super) async fn periodic_position_check(
        &mut self,
        channel: &str,
        frame: &mut BytesMut,
    ) -> Option<Flow> {
        let (channel_id, last, holding, pending) = match &self.state {
            State::Connected(c) => c
                .positions
                .iter()
                .find(|p| p.channel == channel)
                .map(|p| (p.channel_id, p.last, p.held.is_some(), p.pending_top))?,
            _ => return None,
        };
        if holding {
            return None;
        }
        if pending.is_some_and(|top| top.epoch != last.epoch || last.offset < top.offset) {
            return self.lost_position(channel_id, frame);
        }
        let top = self.stream_top(channel).await?;
        let position = self.position_mut(channel_id)?;
        position.pending_top =
            (top.epoch != position.last.epoch || top.offset > position.last.offset).then_some(top);
        None
    }

    /// Where the channel's stream is now; `None` (checked later) when the broker cannot say.
    async fn stream_top(&self, channel: &str) -> Option<StreamTag> {
        let query = HistoryQuery {
            limit: Some(0),
            ..Default::default()
        };
        match self.node.read_history(channel, &query).await {
            Ok(page) => Some(StreamTag::new(page.position.offset, &page.position.epoch)),
            Err(e) => {
                tracing::debug!(channel, error = %e, "position not checked");
                None
            }
        }
    }

    /// A publication was lost: the client must recover from history.
    fn lost_position(&mut self, channel_id: ChannelId, frame: &mut BytesMut) -> Option<Flow> {
        let position = self.position_mut(channel_id)?;
        let channel = position.channel.clone();
        tracing::info!(channel, "publication gap; asking the client to recover");
        if position.server_side {
            return Some(Flow::Close(codes::disconnect::INSUFFICIENT_STATE));
        }
        self.untrack(&channel);
        self.forget(&channel);
        self.node.remove_subscription(&channel, self.conn);
        let push = Reply {
            push: Some(Push {
                channel,
                unsubscribe: Some(codes::UNSUBSCRIBE_INSUFFICIENT_STATE.to_proto()),
                ..Default::default()
            }),
            ..Default::default()
        };
        codec::append_to_frame(self.format, &codec::encode_reply(self.format, &push), frame);
        None
    }
}
