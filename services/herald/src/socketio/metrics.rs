//! The Socket.IO transports' counts, shown on `/metrics` (`crate::metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cheap to clone: every session and request handler holds one.
#[derive(Clone, Default)]
pub struct SocketIoMetrics(Arc<Counts>);

#[derive(Default)]
struct Counts {
    sessions: AtomicU64,
    upgrades: AtomicU64,
    packets_in: AtomicU64,
    /// By [`RequestKind`].
    requests: [AtomicU64; 4],
}

/// What a polling request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Handshake = 0,
    Poll = 1,
    Post = 2,
    /// A poll or post for a session of another node, sent there through the broker.
    Forwarded = 3,
}

impl RequestKind {
    pub const ALL: [RequestKind; 4] = [
        RequestKind::Handshake,
        RequestKind::Poll,
        RequestKind::Post,
        RequestKind::Forwarded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RequestKind::Handshake => "handshake",
            RequestKind::Poll => "poll",
            RequestKind::Post => "post",
            RequestKind::Forwarded => "forwarded",
        }
    }
}

/// Counts a session open while it lives.
pub struct SessionGauge(SocketIoMetrics);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SocketIoMetrics {
    pub fn session(&self) -> SessionGauge {
        self.0.sessions.fetch_add(1, Ordering::Relaxed);
        SessionGauge(self.clone())
    }

    pub fn upgraded(&self) {
        self.0.upgrades.fetch_add(1, Ordering::Relaxed);
    }

    pub fn packets_in(&self, n: usize) {
        self.0.packets_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn request(&self, kind: RequestKind) {
        self.0.requests[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn sessions(&self) -> u64 {
        self.0.sessions.load(Ordering::Relaxed)
    }

    pub fn upgrades(&self) -> u64 {
        self.0.upgrades.load(Ordering::Relaxed)
    }

    pub fn packets_received(&self) -> u64 {
        self.0.packets_in.load(Ordering::Relaxed)
    }

    pub fn requests(&self, kind: RequestKind) -> u64 {
        self.0.requests[kind as usize].load(Ordering::Relaxed)
    }
}
