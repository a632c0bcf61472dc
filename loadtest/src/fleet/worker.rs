//! The worker process (`herald-loadtest fleet-worker`, started by the run's main process, never
//! by hand): runs its share of the subscribers from the [`Spec`] on stdin and answers requests
//! until told to stop or until its stdin closes (the main process is gone).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::local::Local;
use super::wire::{Event, Progress, Request, Spec, Summary, WireCounts};
use crate::client::Endpoint;
use crate::net;
use crate::progress::Live;
use crate::stamp::unix_ns;

/// How often changed counters are reported: the main process waits on deliveries with it.
const PROGRESS_EVERY: Duration = Duration::from_millis(20);

pub fn main() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("read the fleet spec")?;
    let spec: Spec = serde_json::from_str(&line).context("parse the fleet spec")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.workers.max(1))
        .enable_all()
        .build()?;
    let result = rt.block_on(serve(spec));
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn serve(spec: Spec) -> anyhow::Result<()> {
    net::raise_nofile();
    let live = Arc::new(Live::default());
    let endpoints: Vec<Endpoint> = spec.endpoints.into_iter().map(Endpoint::from).collect();
    let fleet = Local::spawn(
        spec.members,
        spec.first_index,
        &endpoints,
        spec.streams,
        spec.concurrency,
        &live,
    );
    // One task owns stdout, so progress and replies never interleave within a line.
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(ev) = rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&ev) else {
                continue;
            };
            line.push(b'\n');
            if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    let reporter = {
        let (tx, live) = (tx.clone(), live.clone());
        tokio::spawn(async move {
            let mut last = Progress::default();
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            loop {
                tick.tick().await;
                let now = progress(&live);
                if now != last {
                    if tx.send(Event::Progress(now)).is_err() {
                        break;
                    }
                    last = now;
                }
            }
        })
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line)
            .with_context(|| format!("fleet request {line:.80}"))?
        {
            Request::Take => Event::Taken(fleet.take().iter().map(WireCounts::from).collect()),
            Request::Summary => Event::Summary(Summary {
                connect_times: (&fleet.connect_times()).into(),
                failures: fleet.failures(),
                last_ready_unix_ns: fleet.last_ready().map(unix_ns_of),
            }),
            Request::Stop => break,
        };
        // Progress first, so the main process's counters are current when the reply lands.
        let _ = tx.send(Event::Progress(progress(&live)));
        let _ = tx.send(reply);
    }
    reporter.abort();
    fleet.shutdown().await;
    let _ = tx.send(Event::Progress(progress(&live)));
    let _ = tx.send(Event::Stopped);
    drop(tx);
    let _ = writer.await;
    Ok(())
}

fn progress(live: &Live) -> Progress {
    Progress {
        connected: live.connected.load(Relaxed),
        failed: live.failed.load(Relaxed),
        delivered: live.delivered.load(Relaxed),
        closed: live.closed.load(Relaxed),
    }
}

fn unix_ns_of(at: Instant) -> u64 {
    unix_ns().saturating_sub(at.elapsed().as_nanos() as u64)
}
