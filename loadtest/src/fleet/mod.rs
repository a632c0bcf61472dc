//! The subscriber fleet of a run. It lives in this process when one process can hold it;
//! otherwise (the open-files limit, or `--per-process`) it is spread over worker processes of
//! this same binary, each with its share of the connections, and the main process keeps only
//! the publishers. Either way the scenarios see one fleet: progress lands in the run's live
//! counters, and counts are merged per endpoint.

mod local;
mod remote;
pub mod wire;
pub mod worker;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::Endpoint;
use crate::progress::Live;
use crate::stamp::unix_ns;
use crate::stats::{Counts, new_histogram};
use local::Local;
use remote::Remote;
use wire::{EndpointSpec, Spec};

/// First argument that makes the binary a fleet worker instead of a scenario run.
pub const WORKER_COMMAND: &str = "fleet-worker";

/// Binary to start as worker instead of this executable (for embedders and tests).
pub const BIN_ENV: &str = "HERALD_LOADTEST_BIN";

/// Most worker processes a run starts; beyond that the run is refused with the reason.
pub const MAX_PROCESSES: usize = 64;

/// One subscriber to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub endpoint: usize,
    pub token: String,
    pub channels: Vec<String>,
}

/// How many connections a process may hold.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// In the main process, beside its publishers.
    pub local: usize,
    /// In a worker process.
    pub worker: usize,
    /// Tokio worker threads per worker process.
    pub threads: usize,
}

/// Members of each worker: none when the main process can hold them all, else the fewest
/// processes of at most `spread.worker` members, as even as possible.
pub fn plan(members: usize, spread: Spread) -> Vec<Range<usize>> {
    if members <= spread.local {
        return Vec::new();
    }
    let procs = members.div_ceil(spread.worker.max(1));
    let each = members.div_ceil(procs);
    (0..procs)
        .map(|p| p * each..((p + 1) * each).min(members))
        .collect()
}

pub struct Fleet {
    local: Option<Local>,
    remotes: Vec<Remote>,
    endpoints: usize,
    pub started: Instant,
    pub size: usize,
}

impl Fleet {
    /// Starts every member (at most `concurrency` connecting at once over the whole fleet;
    /// 0 = all), in this process or spread over workers per `spread`; says which in `notes`.
    pub async fn start(
        members: Vec<Member>,
        endpoints: &[Endpoint],
        streams: usize,
        concurrency: usize,
        spread: Spread,
        live: &Arc<Live>,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Fleet> {
        let size = members.len();
        let ranges = plan(size, spread);
        let started = Instant::now();
        if ranges.is_empty() {
            return Ok(Fleet {
                local: Some(Local::spawn(
                    members,
                    0,
                    endpoints,
                    streams,
                    concurrency,
                    live,
                )),
                remotes: Vec::new(),
                endpoints: endpoints.len(),
                started,
                size,
            });
        }
        if ranges.len() > MAX_PROCESSES {
            bail!(
                "{size} connections at {} per process need {} worker processes (at most \
                 {MAX_PROCESSES}): raise the open-files limit (ulimit -n) or --per-process",
                spread.worker,
                ranges.len()
            );
        }
        notes.push(format!(
            "subscribers spread over {} worker processes of at most {} connections each \
             (open-files limit or --per-process); publishers in the main process",
            ranges.len(),
            spread.worker
        ));
        let share = |n: usize| match concurrency {
            0 => 0,
            c => (c * n).div_ceil(size).max(1),
        };
        let wire_endpoints: Vec<EndpointSpec> = endpoints.iter().map(EndpointSpec::from).collect();
        let mut remotes = Vec::with_capacity(ranges.len());
        let mut members = members.into_iter();
        for r in ranges {
            let spec = Spec {
                endpoints: wire_endpoints.clone(),
                members: members.by_ref().take(r.len()).collect(),
                first_index: r.start,
                streams,
                concurrency: share(r.len()),
                workers: spread.threads,
            };
            let remote = match Remote::start(&spec, live).await {
                Ok(r) => r,
                Err(e) => {
                    for r in remotes {
                        Remote::stop(r).await;
                    }
                    return Err(e);
                }
            };
            remotes.push(remote);
        }
        Ok(Fleet {
            local: None,
            remotes,
            endpoints: endpoints.len(),
            started,
            size,
        })
    }

    /// Process ids of the worker processes (none when the fleet is in this process).
    pub fn pids(&self) -> Vec<u32> {
        self.remotes.iter().filter_map(|r| r.pid).collect()
    }

    /// Waits until every member is subscribed or failed (or `timeout`); returns the time from
    /// the start to the last successful subscription.
    pub async fn wait_ready(&self, live: &Live, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = live.connected.load(Relaxed) + live.failed.load(Relaxed);
            if done >= self.size as u64 {
                break;
            }
            if let Some(i) = self.remotes.iter().position(Remote::gone) {
                bail!(
                    "fleet worker {i} exited with {done} of {} connections settled (its \
                     stderr above says why)",
                    self.size
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "only {done} of {} connections settled within {timeout:?}",
                    self.size
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut last = self.local.as_ref().and_then(Local::last_ready);
        for r in &self.remotes {
            if let Some(ns) = r.summary().await?.last_ready_unix_ns {
                let ago = Duration::from_nanos(unix_ns().saturating_sub(ns));
                let at = Instant::now().checked_sub(ago).unwrap_or(self.started);
                last = last.max(Some(at));
            }
        }
        Ok(last
            .unwrap_or(self.started)
            .saturating_duration_since(self.started))
    }

    /// Failed connection attempts by reason.
    pub async fn failures(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut all = self.local.as_ref().map(Local::failures).unwrap_or_default();
        for r in &self.remotes {
            for (k, v) in r.summary().await?.failures {
                *all.entry(k).or_insert(0) += v;
            }
        }
        Ok(all)
    }

    /// Connect → subscribed times of every connection, µs.
    pub async fn connect_times(&self) -> anyhow::Result<Histogram<u64>> {
        let mut h = self
            .local
            .as_ref()
            .map(Local::connect_times)
            .unwrap_or_else(new_histogram);
        for r in &self.remotes {
            let _ = h.add(r.summary().await?.connect_times.into_histogram());
        }
        Ok(h)
    }

    /// Counts since the last take, per endpoint, over every process.
    pub async fn take(&self) -> anyhow::Result<Vec<Counts>> {
        let mut all: Vec<Counts> = match &self.local {
            Some(l) => l.take(),
            None => (0..self.endpoints).map(|_| Counts::default()).collect(),
        };
        for r in &self.remotes {
            for (sum, c) in all.iter_mut().zip(r.take().await?) {
                sum.merge(&c);
            }
        }
        Ok(all)
    }

    /// Stops every connection, in every process, and waits for them (bounded).
    pub async fn shutdown(self) {
        if let Some(l) = self.local {
            l.shutdown().await;
        }
        futures_util::future::join_all(self.remotes.into_iter().map(Remote::stop)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(local: usize, worker: usize) -> Spread {
        Spread {
            local,
            worker,
            threads: 1,
        }
    }

    #[test]
    fn one_process_while_it_fits() {
        assert!(plan(15_000, spread(19_700, 19_800)).is_empty());
        assert!(plan(19_700, spread(19_700, 19_800)).is_empty());
        assert!(plan(0, spread(0, 1)).is_empty());
    }

    #[test]
    fn fewest_even_workers_beyond() {
        assert_eq!(plan(19_701, spread(19_700, 19_800)), vec![0..19_701]);
        assert_eq!(
            plan(30_000, spread(19_700, 19_800)),
            vec![0..15_000, 15_000..30_000]
        );
        assert_eq!(
            plan(1_000, spread(250, 250)),
            vec![0..250, 250..500, 500..750, 750..1000]
        );
        assert_eq!(plan(7, spread(2, 3)), vec![0..3, 3..6, 6..7]);
        for (n, w) in [(1_001, 250), (99_999, 19_800), (5, 1)] {
            let r = plan(n, spread(0, w));
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, n);
            assert!(r.windows(2).all(|p| p[0].end == p[1].start));
            assert!(r.iter().all(|x| x.len() <= w && !x.is_empty()), "{r:?}");
            assert_eq!(r.len(), n.div_ceil(w));
        }
    }
}
