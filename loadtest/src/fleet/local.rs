//! The subscriber connections this process runs itself: one task each, counting into shards.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::Member;
use crate::client::{self, Endpoint, Reader};
use crate::net;
use crate::progress::Live;
use crate::stats::{Counts, Shards, new_histogram};

/// Count shards per endpoint. Few: each holds a ~150 KiB latency histogram, and with many of
/// them every record is a cache miss (64 shards cost the generator 12% of its CPU in histogram
/// records); contention stays rare because a task locks its shard once per frame.
const SHARDS: usize = 8;

/// Subscriber connections of this process, with their counters (one shard set per endpoint).
pub struct Local {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    shards: Vec<Shards>,
    connect_times: Arc<Mutex<Histogram<u64>>>,
    failures: Arc<Mutex<BTreeMap<String, u64>>>,
    last_ready: Arc<Mutex<Option<Instant>>>,
}

impl Local {
    /// Starts every member; at most `concurrency` connecting at once (0 = all). Member `k` is
    /// connection `first_index + k` of the whole run: it picks the source address and shard.
    pub fn spawn(
        members: Vec<Member>,
        first_index: usize,
        endpoints: &[Endpoint],
        streams: usize,
        concurrency: usize,
        live: &Arc<Live>,
    ) -> Local {
        let (stop, stop_rx) = watch::channel(false);
        let shards: Vec<Shards> = endpoints.iter().map(|_| Shards::new(SHARDS)).collect();
        let sem = Arc::new(Semaphore::new(if concurrency == 0 {
            Semaphore::MAX_PERMITS
        } else {
            concurrency
        }));
        let connect_times = Arc::new(Mutex::new(new_histogram()));
        let failures = Arc::new(Mutex::new(BTreeMap::new()));
        let last_ready = Arc::new(Mutex::new(None));
        let mut handles = Vec::with_capacity(members.len());
        for (k, m) in members.into_iter().enumerate() {
            let i = first_index + k;
            let ep = endpoints[m.endpoint].clone();
            let shards = shards[m.endpoint].clone();
            let (sem, live, stop_rx) = (sem.clone(), live.clone(), stop_rx.clone());
            let (connect_times, failures, last_ready) =
                (connect_times.clone(), failures.clone(), last_ready.clone());
            let source = net::source_for(ep.addr, i);
            handles.push(tokio::spawn(async move {
                let permit = sem.acquire().await;
                let t0 = Instant::now();
                let opened = tokio::time::timeout(
                    Duration::from_secs(60),
                    client::open(&ep, source, &m.token, &m.channels),
                )
                .await
                .unwrap_or_else(|_| Err("timeout 60s".to_owned()));
                drop(permit);
                let ws = match opened {
                    Ok(ws) => ws,
                    Err(reason) => {
                        *lock(&failures).entry(reason).or_insert(0) += 1;
                        live.failed.fetch_add(1, Relaxed);
                        return;
                    }
                };
                lock(&connect_times).saturating_record((t0.elapsed().as_micros() as u64).max(1));
                *lock(&last_ready) = Some(Instant::now());
                live.connected.fetch_add(1, Relaxed);
                let reader = Reader {
                    format: ep.format,
                    kind: ep.kind,
                    channels: m.channels,
                    streams,
                    shard: shards.shard(i),
                    live: &live,
                };
                client::read_loop(ws, reader, stop_rx).await;
            }));
        }
        Local {
            stop,
            handles,
            shards,
            connect_times,
            failures,
            last_ready,
        }
    }

    /// When the last connection got subscribed, if any did.
    pub fn last_ready(&self) -> Option<Instant> {
        *lock(&self.last_ready)
    }

    /// Failed connection attempts by reason.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        lock(&self.failures).clone()
    }

    /// Connect → subscribed times, µs.
    pub fn connect_times(&self) -> Histogram<u64> {
        lock(&self.connect_times).clone()
    }

    /// Counts since the last take, per endpoint.
    pub fn take(&self) -> Vec<Counts> {
        self.shards.iter().map(Shards::take).collect()
    }

    /// Stops every connection and waits for the tasks (bounded).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.handles);
        let _ = tokio::time::timeout(Duration::from_secs(20), all).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
