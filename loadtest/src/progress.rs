//! The live progress line on stderr: counters that tasks bump with relaxed atomics (one add per
//! frame or request) and a printer that redraws at most twice a second.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Live counters shared by every task of a run.
#[derive(Debug, Default)]
pub struct Live {
    pub delivered: AtomicU64,
    pub published: AtomicU64,
    pub publish_errors: AtomicU64,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub closed: AtomicU64,
    /// Text describing the current step and the last step's results.
    pub step: Mutex<String>,
    pub done: AtomicBool,
}

impl Live {
    pub fn set_step(&self, s: impl Into<String>) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = s.into();
    }
}

/// Starts the printer (when `enabled`, i.e. stderr wanted); it stops when `live.done` is set.
pub fn spawn_printer(live: Arc<Live>, enabled: bool) -> Option<std::thread::JoinHandle<()>> {
    if !enabled {
        return None;
    }
    Some(std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = (Instant::now(), 0u64, 0u64);
        while !live.done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let now = Instant::now();
            let d = live.delivered.load(Relaxed);
            let p = live.published.load(Relaxed);
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let line = format!(
                "[{:>6.1}s] {} | pub {:>8.0}/s | deliv {:>9.0}/s | conn {} fail {} closed {} | pub err {}",
                start.elapsed().as_secs_f64(),
                live.step.lock().unwrap_or_else(|e| e.into_inner()),
                (p - last.2) as f64 / dt,
                (d - last.1) as f64 / dt,
                live.connected.load(Relaxed),
                live.failed.load(Relaxed),
                live.closed.load(Relaxed),
                live.publish_errors.load(Relaxed),
            );
            eprint!("\r\x1b[2K{line}");
            last = (now, d, p);
        }
        eprintln!();
    }))
}
