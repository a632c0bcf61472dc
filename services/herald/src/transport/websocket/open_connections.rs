//! The lean engine's connections open on this node. They run in tasks of their own, which
//! actix-server's graceful stop does not count: the node waits on this count instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct OpenConnections {
    open: AtomicUsize,
    none_open: Notify,
}

/// One connection's place in [`OpenConnections`], given back when dropped.
pub struct Guard(Arc<OpenConnections>);

impl OpenConnections {
    pub(super) fn enter(self: &Arc<Self>) -> Guard {
        self.open.fetch_add(1, Ordering::Relaxed);
        Guard(self.clone())
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no lean connection is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.none_open.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_open.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn all_closed_waits_for_the_last_connection() {
        let open = Arc::<OpenConnections>::default();
        open.all_closed().await;
        let (a, b) = (open.enter(), open.enter());
        assert_eq!(open.open(), 2);
        drop(a);
        let waiting = tokio::time::timeout(Duration::from_millis(50), open.all_closed()).await;
        assert!(waiting.is_err(), "one connection is still open");
        let waiter = tokio::spawn({
            let open = open.clone();
            async move { open.all_closed().await }
        });
        drop(b);
        waiter.await.expect("all closed once the last one went");
        assert_eq!(open.open(), 0);
    }
}
