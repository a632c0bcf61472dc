//! A channel's recent publications, written once and read by every local subscriber.
//!
//! Pushing each publication into every subscriber's own queue costs a lock and a queue slot
//! per subscriber, each a cache line last touched by the core that drained it: at 2,000
//! subscribers that was the node's largest cost. Here a publication is appended once, to a
//! chain of chunks of write-once slots; each subscriber keeps a cursor into the chain and
//! copies what is new into its next frame when its connection drains. The publisher then only
//! needs to wake a subscriber that is not already due to drain.
//!
//! Memory follows the slowest reader: a chunk is freed once no cursor and not the log's tail
//! need it. A reader that falls more than its queue bound behind is cut off as slow by the
//! hub (it compares [`Cursor::consumed`] with [`ChannelLog::appended`]), and a channel that
//! went quiet drops the publications of its tail chunk at the next [`ChannelLog::seal_if_idle`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_protocol::Format;

/// Identifies a channel's entry inside the hub while it has subscribers. 32 bits keep queued
/// publications small; ids wrap after 2^32 channel entries, and only entries that exist at the
/// same time need different ids.
pub type ChannelId = u32;

/// Slots of a channel's first chunk; each next chunk doubles up to [`MAX_SLOTS`], so a quiet
/// channel keeps a small chunk and a busy one few chunk changes.
const FIRST_SLOTS: usize = 2;
const MAX_SLOTS: usize = 64;
/// A chunk is closed after this many payload bytes too, so a quiet channel's tail holds little.
const CHUNK_BYTES: u64 = 16 * 1024;

/// A publication's place in its channel's stream, compactly: the offset, and a hash of the
/// stream's epoch (a new epoch means the stream was lost and offsets started again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTag {
    pub offset: u64,
    pub epoch: u32,
}

impl StreamTag {
    pub fn new(offset: u64, epoch: &str) -> StreamTag {
        StreamTag {
            offset,
            epoch: epoch_tag(epoch),
        }
    }
}

/// FNV-1a of an epoch string: equal epochs, equal tags; a changed epoch is noticed but for a
/// 1 in 2^32 chance.
pub fn epoch_tag(epoch: &str) -> u32 {
    epoch.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// One publication, encoded for each wire format some subscriber used when it was appended
/// (`None`: no subscriber of that format, or the publication cannot be sent in it).
#[derive(Debug)]
pub struct Entry {
    pub json: Option<Bytes>,
    pub protobuf: Option<Bytes>,
    /// Its place in the channel's stream, for channels with history.
    pub at: Option<StreamTag>,
    /// Its place among the publications of every channel of this node: a connection that reads
    /// several logs sends their entries in this order, the order they were published in.
    pub seq: u64,
    /// Bytes appended to the log up to and including this entry.
    end: u64,
}

impl Entry {
    pub fn frame(&self, format: Format) -> Option<&Bytes> {
        match format {
            Format::Json => self.json.as_ref(),
            Format::Protobuf => self.protobuf.as_ref(),
        }
    }

    fn len(&self) -> u64 {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        len(&self.json).max(len(&self.protobuf))
    }
}

struct Chunk {
    slots: Box<[OnceLock<Entry>]>,
    /// Set once, when the appender moved on: a reader at the end of this chunk follows it.
    next: OnceLock<Arc<Chunk>>,
}

impl Chunk {
    fn new(slots: usize) -> Arc<Chunk> {
        Arc::new(Chunk {
            slots: (0..slots).map(|_| OnceLock::new()).collect(),
            next: OnceLock::new(),
        })
    }
}

impl Drop for Chunk {
    // Frees a long chain in a loop: dropping it recursively could overflow the stack.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(chunk) = next {
            next = Arc::into_inner(chunk).and_then(|mut c| c.next.take());
        }
    }
}

/// Where the appender writes next.
struct Tail {
    chunk: Arc<Chunk>,
    filled: usize,
    chunk_bytes: u64,
    appended: u64,
    last_append: Instant,
}

pub struct ChannelLog {
    tail: Mutex<Tail>,
}

impl Default for ChannelLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelLog {
    pub fn new() -> Self {
        Self {
            tail: Mutex::new(Tail {
                chunk: Chunk::new(FIRST_SLOTS),
                filled: 0,
                chunk_bytes: 0,
                appended: 0,
                last_append: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tail> {
        // Every mutation under this lock completes without panicking points in between.
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one publication, numbered from `seq` (shared by the logs of a node, drawn under
    /// this log's lock so numbers rise along each log); returns the log's byte count after it.
    pub fn append(
        &self,
        seq: &AtomicU64,
        json: Option<Bytes>,
        protobuf: Option<Bytes>,
        at: Option<StreamTag>,
    ) -> u64 {
        let mut tail = self.lock();
        let mut entry = Entry {
            json,
            protobuf,
            at,
            seq: seq.fetch_add(1, Ordering::Relaxed),
            end: 0,
        };
        let len = entry.len();
        if tail.filled == tail.chunk.slots.len() || tail.chunk_bytes >= CHUNK_BYTES {
            let slots = (tail.chunk.slots.len() * 2).min(MAX_SLOTS);
            roll(&mut tail, slots);
        }
        tail.appended += len;
        tail.chunk_bytes += len;
        tail.last_append = Instant::now();
        entry.end = tail.appended;
        let slot = tail.filled;
        tail.filled += 1;
        // The slot is empty: only the appender writes, under this lock, each slot once.
        let _ = tail.chunk.slots[slot].set(entry);
        tail.appended
    }

    /// Bytes appended since the log was created.
    pub fn appended(&self) -> u64 {
        self.lock().appended
    }

    /// A reader positioned after everything appended so far.
    pub fn reader(&self, channel_id: ChannelId) -> LogReader {
        let tail = self.lock();
        LogReader {
            chunk: tail.chunk.clone(),
            next: tail.filled,
            consumed: tail.appended,
            cursor: Arc::new(Cursor {
                consumed: AtomicU64::new(tail.appended),
            }),
            channel_id,
            since_drain: 0,
        }
    }

    /// If nothing was appended for `idle` and the tail chunk holds publications, starts an
    /// empty chunk, so the old one is freed once its readers move on (the caller wakes them).
    /// Returns whether it did.
    pub fn seal_if_idle(&self, now: Instant, idle: Duration) -> bool {
        let mut tail = self.lock();
        if tail.filled == 0 || now.duration_since(tail.last_append) < idle {
            return false;
        }
        roll(&mut tail, FIRST_SLOTS);
        true
    }
}

fn roll(tail: &mut Tail, slots: usize) {
    let chunk = Chunk::new(slots);
    let _ = tail.chunk.next.set(chunk.clone());
    tail.chunk = chunk;
    tail.filled = 0;
    tail.chunk_bytes = 0;
}

/// How far a reader has read, shared with the hub so a publisher can tell a slow reader.
#[derive(Debug)]
pub struct Cursor {
    consumed: AtomicU64,
}

impl Cursor {
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }
}

/// One subscriber's place in a channel's log; only its connection's session reads through it.
pub struct LogReader {
    chunk: Arc<Chunk>,
    next: usize,
    consumed: u64,
    cursor: Arc<Cursor>,
    pub channel_id: ChannelId,
    /// The session's drain count when this subscription was made: a subscription made during a
    /// drain is read from the next one, after the reply or push that announces it.
    pub since_drain: u64,
}

impl LogReader {
    pub fn cursor(&self) -> &Arc<Cursor> {
        &self.cursor
    }

    /// The number (`Entry::seq`) of the next unread entry, if there is one.
    pub fn peek_seq(&mut self) -> Option<u64> {
        if !self.settle() {
            return None;
        }
        self.chunk.slots[self.next].get().map(|e| e.seq)
    }

    /// Hands each entry appended since the last read and numbered below `before` to `take`, in
    /// order, until `take` returns false (that entry stays unread) or none is left. Returns
    /// whether `take` stopped it.
    pub fn read(&mut self, before: u64, mut take: impl FnMut(&Entry) -> bool) -> bool {
        let mut stopped = false;
        while self.settle() {
            let Some(entry) = self.chunk.slots[self.next].get() else {
                break;
            };
            if entry.seq >= before {
                break;
            }
            if !take(entry) {
                stopped = true;
                break;
            }
            self.consumed = entry.end;
            self.next += 1;
        }
        self.cursor.consumed.store(self.consumed, Ordering::Relaxed);
        stopped
    }

    /// Moves to where the next unread entry is (following the chain past a chunk the appender
    /// left); returns whether there is one.
    fn settle(&mut self) -> bool {
        loop {
            if self.slot_filled() {
                return true;
            }
            let Some(next) = self.chunk.next.get().cloned() else {
                return false;
            };
            // The appender moved on after every slot it filled here: look once more.
            if self.slot_filled() {
                return true;
            }
            self.chunk = next;
            self.next = 0;
        }
    }

    fn slot_filled(&self) -> bool {
        self.chunk
            .slots
            .get(self.next)
            .is_some_and(|s| s.get().is_some())
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("channel_id", &self.channel_id)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    static SEQ: AtomicU64 = AtomicU64::new(0);

    fn read_all(reader: &mut LogReader) -> Vec<String> {
        let mut out = Vec::new();
        reader.read(u64::MAX, |e| {
            out.push(String::from_utf8(e.json.clone().unwrap().to_vec()).unwrap());
            true
        });
        out
    }

    #[test]
    fn readers_see_what_was_appended_after_they_joined_in_order_across_chunks() {
        let log = ChannelLog::new();
        log.append(&SEQ, text("before"), None, None);
        let mut a = log.reader(1);
        let expected: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        for s in &expected[..150] {
            log.append(&SEQ, text(s), None, None);
        }
        let mut b = log.reader(1);
        for s in &expected[150..] {
            log.append(&SEQ, text(s), None, None);
        }
        assert_eq!(read_all(&mut a), expected);
        assert_eq!(read_all(&mut b), expected[150..].to_vec());
        assert!(read_all(&mut a).is_empty(), "nothing twice");
        log.append(&SEQ, text("more"), None, None);
        assert_eq!(read_all(&mut a), vec!["more"]);
    }

    #[test]
    fn a_reader_that_stops_resumes_at_the_entry_it_refused() {
        let log = ChannelLog::new();
        let mut r = log.reader(1);
        for i in 0..10 {
            log.append(&SEQ, text(&i.to_string()), None, None);
        }
        let mut first = Vec::new();
        let stopped = r.read(u64::MAX, |e| {
            if first.len() == 4 {
                return false;
            }
            first.push(e.json.clone().unwrap());
            true
        });
        assert!(stopped);
        assert_eq!(first.len(), 4);
        assert_eq!(read_all(&mut r), vec!["4", "5", "6", "7", "8", "9"]);
    }

    #[test]
    fn the_cursor_tells_how_far_behind_a_reader_is() {
        let log = ChannelLog::new();
        log.append(&SEQ, text("xx"), None, None);
        let mut r = log.reader(1);
        let cursor = r.cursor().clone();
        assert_eq!(cursor.consumed(), 2);
        log.append(&SEQ, text("abc"), text("abcd"), None);
        assert_eq!(log.appended(), 6, "the larger encoding counts");
        assert_eq!(log.appended() - cursor.consumed(), 4);
        read_all(&mut r);
        assert_eq!(cursor.consumed(), log.appended());
    }

    #[test]
    fn chunks_are_freed_once_every_reader_moved_past_them() {
        let log = ChannelLog::new();
        let mut r = log.reader(1);
        let payload = Bytes::from(vec![b'x'; 100]);
        let first = Arc::downgrade(&log.lock().chunk);
        for _ in 0..100 {
            log.append(&SEQ, Some(payload.clone()), None, None);
        }
        assert!(first.upgrade().is_some(), "the reader still needs it");
        read_all(&mut r);
        assert!(first.upgrade().is_none());
    }

    #[test]
    fn sealing_an_idle_log_lets_its_publications_go() {
        let log = ChannelLog::new();
        let mut r = log.reader(1);
        let payload = Bytes::from(vec![b'x'; 100]);
        log.append(&SEQ, Some(payload.clone()), None, None);
        read_all(&mut r);
        let now = Instant::now();
        assert!(
            !log.seal_if_idle(now, Duration::from_secs(60)),
            "not idle yet"
        );
        assert!(log.seal_if_idle(now + Duration::from_secs(61), Duration::from_secs(60)));
        assert!(
            !log.seal_if_idle(now + Duration::from_secs(62), Duration::from_secs(60)),
            "already empty"
        );
        let sealed = Arc::downgrade(&r.chunk);
        assert!(read_all(&mut r).is_empty());
        assert!(
            sealed.upgrade().is_none(),
            "the caught-up reader moved to the new chunk"
        );
        assert_eq!(payload.len(), 100);
        log.append(&SEQ, text("after"), None, None);
        assert_eq!(read_all(&mut r), vec!["after"]);
    }

    #[test]
    fn entries_are_numbered_across_logs_and_a_read_stops_at_a_number() {
        let seq = AtomicU64::new(1);
        let (a, b) = (ChannelLog::new(), ChannelLog::new());
        let (mut ra, mut rb) = (a.reader(1), b.reader(2));
        a.append(&seq, text("a1"), None, None);
        b.append(&seq, text("b2"), None, None);
        a.append(&seq, text("a3"), None, None);
        assert_eq!((ra.peek_seq(), rb.peek_seq()), (Some(1), Some(2)));
        let mut got = Vec::new();
        ra.read(2, |e| {
            got.push(e.seq);
            true
        });
        assert_eq!(got, [1], "stops before the other log's next");
        assert_eq!(ra.peek_seq(), Some(3));
        assert_eq!(read_all(&mut rb), vec!["b2"]);
        assert_eq!(rb.peek_seq(), None);
    }

    #[test]
    fn a_long_chain_is_freed_without_recursion() {
        let log = ChannelLog::new();
        let r = log.reader(1);
        for _ in 0..200_000 {
            log.append(&SEQ, text("x"), None, None);
        }
        drop(log);
        drop(r);
    }

    #[test]
    fn concurrent_appends_and_reads_lose_and_repeat_nothing() {
        let log = Arc::new(ChannelLog::new());
        let mut reader = log.reader(1);
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u32 {
                        log.append(&SEQ, Some(Bytes::from(format!("{w}:{i}"))), None, None);
                    }
                })
            })
            .collect();
        let mut seen = [0u32; 2];
        let mut total = 0;
        while total < 40_000 {
            reader.read(u64::MAX, |e| {
                let s = std::str::from_utf8(e.json.as_ref().unwrap()).unwrap();
                let (w, i) = s.split_once(':').unwrap();
                let (w, i): (usize, u32) = (w.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, seen[w], "writer {w} in order, nothing lost or repeated");
                seen[w] += 1;
                total += 1;
                true
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(read_all(&mut reader).is_empty());
    }
}
