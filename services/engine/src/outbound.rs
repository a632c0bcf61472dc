//! The bounded outbound queue of one connection.
//!
//! The hub pushes already-encoded frames into it from any thread without ever waiting; the
//! connection's own task drains everything queued at once, so one wake-up becomes one write.
//! The bound is in bytes: a client that cannot keep up is cut off with 3008 (slow) instead of
//! growing the node's memory, and nobody else notices.
//!
//! The connection's readers of its channels' logs live here too, beside the queue, so that
//! whoever cuts the connection off as slow drops them at once: a reader that stopped keeps the
//! chunks of its channel's log alive, and its connection's task may be stuck in a write.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use herald_protocol::codes::{self, Disconnect};
use tokio::sync::Notify;

use crate::channel_log::ChannelId;
use crate::channel_log::LogReader;
use crate::control::Control;

/// What a connection's task takes out of its queue.
#[derive(Debug)]
pub enum Outgoing {
    /// One encoded reply or push, ready to be joined into a frame. (Publications do not come
    /// this way: they are read from the channel's log, see `channel_log`.)
    Frame(Bytes),
    /// A request from the node (server API) that the session itself must apply. Boxed: it is
    /// rare, and keeping it small keeps every queued item at the size of one `Bytes`.
    Control(Box<Control>),
}

/// Bytes a control message is charged against the bound, so a flood of them is bounded too.
const CONTROL_COST: usize = 64;

/// The sending side of a connection's queue; cheap to clone, held by the hub and the registry.
#[derive(Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
    limit: usize,
    /// Some channel log this connection reads has something new (see `channel_log`). Set by
    /// publishers, cleared by the drain; while set, publishers skip the wake-up.
    log_pending: AtomicBool,
}

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    close: Option<Disconnect>,
    /// Where the session is in each channel log it follows; out of here while a drain reads
    /// through them.
    readers: Vec<LogReader>,
}

impl State {
    /// Marks the connection slow: its backlog and its log readers go (returned, to be dropped
    /// outside the lock).
    fn cut_off(&mut self) -> Vec<LogReader> {
        self.items = VecDeque::new();
        self.bytes = 0;
        self.close = Some(codes::disconnect::SLOW);
        std::mem::take(&mut self.readers)
    }

    fn is_slow(&self) -> bool {
        self.close.as_ref() == Some(&codes::disconnect::SLOW)
    }
}

impl Outbound {
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                limit: limit_bytes,
                log_pending: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every mutation is
        // a single push or clear), so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one encoded frame. Returns false when the connection is closing or the frame did
    /// not fit; in the latter case the connection is marked slow and will be closed with 3008.
    pub fn push(&self, frame: Bytes) -> bool {
        self.enqueue(frame.len(), Outgoing::Frame(frame))
    }

    /// The most bytes this connection may have waiting before it is cut off as slow.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// Queues a request for the session (server API subscribe/unsubscribe).
    pub fn control(&self, control: Control) -> bool {
        self.enqueue(CONTROL_COST, Outgoing::Control(Box::new(control)))
    }

    fn enqueue(&self, size: usize, item: Outgoing) -> bool {
        let mut state = self.lock();
        if state.close.is_some() {
            return false;
        }
        if state.bytes + size > self.shared.limit {
            // Drop what is queued: a slow client is not flushed, it is cut off.
            let readers = state.cut_off();
            drop(state);
            drop(readers);
            self.shared.notify.notify_one();
            return false;
        }
        let was_empty = state.items.is_empty();
        state.items.push_back(item);
        state.bytes += size;
        drop(state);
        if was_empty {
            self.shared.notify.notify_one();
        }
        true
    }

    /// Asks the connection to close after writing what is already queued. The first close wins.
    /// A close as slow (3008) drops the backlog and the log readers instead.
    pub fn close(&self, disconnect: Disconnect) {
        let mut state = self.lock();
        if state.close.is_some() {
            return;
        }
        let readers = if disconnect == codes::disconnect::SLOW {
            state.cut_off()
        } else {
            state.close = Some(disconnect);
            Vec::new()
        };
        drop(state);
        drop(readers);
        self.shared.notify.notify_one();
    }

    /// Adds the reader of a new subscription; a connection cut off as slow takes none.
    pub(crate) fn add_reader(&self, reader: LogReader) {
        let mut state = self.lock();
        if state.is_slow() {
            return;
        }
        if state.readers.len() < 4 {
            // Most connections follow a channel or two: no room for four readers each.
            state.readers.reserve_exact(1);
        }
        state.readers.push(reader);
    }

    /// Drops the reader of a channel the session left.
    pub(crate) fn remove_reader(&self, channel_id: ChannelId) {
        let mut state = self.lock();
        let Some(at) = state
            .readers
            .iter()
            .position(|r| r.channel_id == channel_id)
        else {
            return;
        };
        let reader = state.readers.swap_remove(at);
        drop(state);
        drop(reader);
    }

    /// Takes the readers for a drain to read through; [`Outbound::return_readers`] puts them back.
    pub(crate) fn take_readers(&self) -> Vec<LogReader> {
        std::mem::take(&mut self.lock().readers)
    }

    /// Puts back what [`Outbound::take_readers`] took, unless the connection was cut off as slow
    /// meanwhile.
    pub(crate) fn return_readers(&self, readers: Vec<LogReader>) {
        let mut state = self.lock();
        if state.is_slow() {
            drop(state);
            drop(readers);
            return;
        }
        if state.readers.is_empty() {
            state.readers = readers;
        } else {
            // A subscription made while the drain read (none today): keep both.
            state.readers.extend(readers);
        }
    }

    /// Tells the connection that a channel log it reads has something new. The publisher must
    /// have appended first and called [`publications_appended`] once since.
    pub fn wake_for_log(&self) {
        let pending = &self.shared.log_pending;
        if !pending.load(Ordering::Relaxed) && !pending.swap(true, Ordering::AcqRel) {
            self.shared.notify.notify_one();
        }
    }

    /// Called by the drain before it reads the channel logs: wake-ups for what it reads now
    /// are spent, later appends wake the connection again.
    pub fn take_log_wake(&self) {
        self.shared.log_pending.swap(false, Ordering::SeqCst);
        // Pairs with the fence in `publications_appended`: either this drain sees an append,
        // or that append's publisher sees the flag cleared and wakes the connection.
        fence(Ordering::SeqCst);
    }

    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Resolves when there is something to drain or the connection must close. Only the
    /// connection's own task calls it (a single consumer).
    pub async fn ready(&self) {
        loop {
            {
                let state = self.lock();
                if !state.items.is_empty()
                    || state.close.is_some()
                    || self.shared.log_pending.load(Ordering::Acquire)
                {
                    return;
                }
            }
            // A notify between the check above and this await is kept as a permit.
            self.shared.notify.notified().await;
        }
    }

    /// Moves everything queued into `into`. Returns the close request, if any, after the items
    /// queued before it.
    pub fn drain(&self, into: &mut Vec<Outgoing>) -> Option<Disconnect> {
        self.drain_up_to(usize::MAX, into).1
    }

    /// Moves queued items into `into` until about `budget` bytes are taken (at least one item),
    /// so one write stays a bounded size; the rest stays queued and `ready` fires again at once.
    /// Returns the bytes taken, and the close request once nothing is left before it.
    pub fn drain_up_to(
        &self,
        budget: usize,
        into: &mut Vec<Outgoing>,
    ) -> (usize, Option<Disconnect>) {
        let mut state = self.lock();
        let mut taken = 0;
        while let Some(item) = state.items.front() {
            let size = match item {
                Outgoing::Frame(frame) => frame.len(),
                Outgoing::Control(_) => CONTROL_COST,
            };
            if taken > 0 && taken + size > budget {
                break;
            }
            taken += size;
            into.extend(state.items.pop_front());
        }
        state.bytes -= taken;
        if state.items.is_empty() {
            // An idle connection keeps no queue allocated. Publications do not pass through
            // here (they are read from the channel logs), so this costs an allocation per
            // drain of replies only.
            state.items = VecDeque::new();
        }
        let close = if state.items.is_empty() {
            state.close.clone()
        } else {
            None
        };
        (taken, close)
    }
}

/// Called once by a publisher after appending to a channel log and before waking its readers
/// with [`Outbound::wake_for_log`] (see [`Outbound::take_log_wake`]).
pub fn publications_appended() {
    fence(Ordering::SeqCst);
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("limit", &self.shared.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(items: Vec<Outgoing>) -> Vec<Bytes> {
        items
            .into_iter()
            .map(|i| match i {
                Outgoing::Frame(frame) => frame,
                Outgoing::Control(_) => panic!("unexpected control"),
            })
            .collect()
    }

    #[tokio::test]
    async fn drains_everything_queued_in_order() {
        let q = Outbound::new(1024);
        assert!(q.push(Bytes::from_static(b"a")));
        assert!(q.push(Bytes::from_static(b"b")));
        q.ready().await;
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), None);
        assert_eq!(
            frames(out),
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert_eq!(q.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_marks_the_connection_slow_and_drops_the_backlog() {
        let q = Outbound::new(10);
        assert!(q.push(Bytes::from_static(b"12345")));
        assert!(q.push(Bytes::from_static(b"12345")));
        assert!(!q.push(Bytes::from_static(b"1")));
        q.ready().await;
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Some(codes::disconnect::SLOW));
        assert!(out.is_empty());
        assert!(
            !q.push(Bytes::from_static(b"x")),
            "closed queues take nothing"
        );
    }

    #[tokio::test]
    async fn close_keeps_queued_frames_before_it() {
        let q = Outbound::new(100);
        q.push(Bytes::from_static(b"last words"));
        q.close(codes::disconnect::FORCE_DISCONNECT);
        q.close(codes::disconnect::SHUTDOWN);
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Some(codes::disconnect::FORCE_DISCONNECT));
        assert_eq!(frames(out).len(), 1);
    }

    #[tokio::test]
    async fn drain_up_to_takes_a_bounded_batch_and_leaves_the_rest_ready() {
        let q = Outbound::new(1024);
        for _ in 0..5 {
            q.push(Bytes::from_static(b"0123456789"));
        }
        q.close(codes::disconnect::FORCE_DISCONNECT);
        let mut out = Vec::new();
        assert_eq!(
            q.drain_up_to(25, &mut out),
            (20, None),
            "close waits behind items"
        );
        assert_eq!(out.len(), 2);
        q.ready().await;
        out.clear();
        assert_eq!(q.drain_up_to(5, &mut out), (10, None), "at least one item");
        out.clear();
        assert_eq!(
            q.drain_up_to(100, &mut out),
            (20, Some(codes::disconnect::FORCE_DISCONNECT))
        );
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn a_cut_as_slow_drops_the_log_readers_at_once_other_closes_keep_them() {
        let log = crate::channel_log::ChannelLog::new();
        let cut = Outbound::new(1024);
        cut.add_reader(log.reader(1));
        let taken = cut.take_readers();
        assert_eq!(taken.len(), 1);
        // Cut off while a drain holds its readers: they are not put back.
        cut.close(codes::disconnect::SLOW);
        cut.return_readers(taken);
        assert!(cut.take_readers().is_empty());
        // Nor does a cut-off connection take new ones.
        cut.add_reader(log.reader(1));
        assert!(cut.take_readers().is_empty());

        let overflowed = Outbound::new(10);
        overflowed.add_reader(log.reader(2));
        assert!(!overflowed.push(Bytes::from_static(b"more than ten bytes")));
        assert!(
            overflowed.take_readers().is_empty(),
            "a full queue cuts too"
        );

        // Other closes keep them: what was published before the close still goes out.
        let closing = Outbound::new(1024);
        closing.add_reader(log.reader(3));
        closing.close(codes::disconnect::FORCE_DISCONNECT);
        assert_eq!(closing.take_readers().len(), 1);
    }

    #[tokio::test]
    async fn ready_wakes_on_a_push_from_another_task() {
        let q = Outbound::new(100);
        let producer = q.clone();
        let waiter = tokio::spawn(async move {
            q.ready().await;
            let mut out = Vec::new();
            q.drain(&mut out);
            out.len()
        });
        tokio::task::yield_now().await;
        producer.push(Bytes::from_static(b"x"));
        assert_eq!(waiter.await.unwrap(), 1);
    }
}

#[cfg(test)]
mod size {
    /// Every queued item costs the largest variant: keep it the size of one `Bytes`.
    #[test]
    fn a_queued_item_stays_small() {
        assert!(
            std::mem::size_of::<super::Outgoing>() <= 32,
            "{}",
            std::mem::size_of::<super::Outgoing>()
        );
    }
}
