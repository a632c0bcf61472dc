//! The main process's side of one worker process: starts it with its share of the subscribers,
//! folds its progress into the run's live counters, and asks it for counts.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::wire::{Event, Progress, Request, Spec, Summary};
use super::{BIN_ENV, WORKER_COMMAND};
use crate::progress::Live;
use crate::stats::Counts;

/// Longest wait for a worker's answer; counting a step's deliveries takes milliseconds.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Remote {
    pub pid: Option<u32>,
    child: Child,
    stdin: Mutex<ChildStdin>,
    replies: Mutex<mpsc::UnboundedReceiver<Event>>,
    reader: JoinHandle<()>,
}

impl Remote {
    /// Starts a worker (this same binary, or `$HERALD_LOADTEST_BIN`) and hands it `spec`.
    pub async fn start(spec: &Spec, live: &Arc<Live>) -> anyhow::Result<Remote> {
        let exe = match std::env::var_os(BIN_ENV) {
            Some(p) => p.into(),
            None => std::env::current_exe().context("path of this herald-loadtest binary")?,
        };
        let mut child = Command::new(&exe)
            .arg(WORKER_COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start a fleet worker ({})", exe.display()))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("fleet worker started without pipes");
        };
        let mut line = serde_json::to_vec(spec)?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .await
            .context("send the fleet spec")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let live = live.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut seen = Progress::default();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Event>(&line) {
                    Ok(Event::Progress(p)) => {
                        add_progress(&live, &seen, &p);
                        seen = p;
                    }
                    Ok(reply) => {
                        let _ = tx.send(reply);
                    }
                    Err(e) => eprintln!("fleet worker: unreadable line ({e}): {line:.80}"),
                }
            }
        });
        Ok(Remote {
            pid: child.id(),
            child,
            stdin: Mutex::new(stdin),
            replies: Mutex::new(rx),
            reader,
        })
    }

    /// Whether the worker's stdout closed (it exited or crashed).
    pub fn gone(&self) -> bool {
        self.reader.is_finished()
    }

    async fn request(&self, req: Request) -> anyhow::Result<Event> {
        // Held for the whole exchange: one request in flight per worker.
        let mut replies = self.replies.lock().await;
        let mut line = serde_json::to_vec(&req)?;
        line.push(b'\n');
        self.stdin
            .lock()
            .await
            .write_all(&line)
            .await
            .map_err(|e| anyhow!("fleet worker gone ({e})"))?;
        match tokio::time::timeout(REPLY_TIMEOUT, replies.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => bail!("fleet worker exited (its stderr says why)"),
            Err(_) => bail!("fleet worker did not answer {req:?} within {REPLY_TIMEOUT:?}"),
        }
    }

    pub async fn take(&self) -> anyhow::Result<Vec<Counts>> {
        match self.request(Request::Take).await? {
            Event::Taken(v) => Ok(v.into_iter().map(Counts::from).collect()),
            other => bail!("fleet worker answered take with {other:?}"),
        }
    }

    pub async fn summary(&self) -> anyhow::Result<Summary> {
        match self.request(Request::Summary).await? {
            Event::Summary(s) => Ok(s),
            other => bail!("fleet worker answered summary with {other:?}"),
        }
    }

    /// Asks the worker to close its connections and exit; kills it if it does not (bounded).
    pub async fn stop(mut self) {
        let _ = self.request(Request::Stop).await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = self.reader.await;
    }
}

/// Adds what a worker's totals grew by since `seen` into the run's counters.
fn add_progress(live: &Live, seen: &Progress, now: &Progress) {
    let add = |c: &AtomicU64, old: u64, new: u64| {
        c.fetch_add(new.saturating_sub(old), Relaxed);
    };
    add(&live.connected, seen.connected, now.connected);
    add(&live.failed, seen.failed, now.failed);
    add(&live.delivered, seen.delivered, now.delivered);
    add(&live.closed, seen.closed, now.closed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_adds_only_growth() {
        let live = Live::default();
        let a = Progress {
            connected: 10,
            failed: 1,
            delivered: 100,
            closed: 0,
        };
        add_progress(&live, &Progress::default(), &a);
        let b = Progress {
            delivered: 250,
            closed: 2,
            ..a
        };
        add_progress(&live, &a, &b);
        assert_eq!(live.connected.load(Relaxed), 10);
        assert_eq!(live.failed.load(Relaxed), 1);
        assert_eq!(live.delivered.load(Relaxed), 250);
        assert_eq!(live.closed.load(Relaxed), 2);
    }
}
