//! CPU and memory of a process from /proc: `/proc/<pid>/stat` (utime + stime) and
//! `/proc/<pid>/status` (VmRSS). Used for the server (`--server-pid`) and for ourselves.

use std::time::Instant;

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime in clock ticks.
    pub ticks: u64,
    pub rss_kib: u64,
}

/// CPU and RSS of one process over an interval.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub pid: u32,
    /// Percent of one core (200 = two cores busy).
    pub cpu_pct: f64,
    pub rss_mib: f64,
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Reads `pid` (0 = this process); `None` when it is gone or unreadable.
pub fn sample(pid: u32) -> Option<Sample> {
    let dir = if pid == 0 {
        "/proc/self".to_owned()
    } else {
        format!("/proc/{pid}")
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        at: Instant::now(),
        ticks,
        rss_kib,
    })
}

/// Usage between two samples of `pid` (RSS from the later one).
pub fn usage(pid: u32, before: &Sample, after: &Sample) -> Usage {
    let secs = after.at.duration_since(before.at).as_secs_f64().max(1e-6);
    let cpu = after.ticks.saturating_sub(before.ticks) as f64 / clk_tck() / secs * 100.0;
    Usage {
        pid,
        cpu_pct: (cpu * 10.0).round() / 10.0,
        rss_mib: (after.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0,
    }
}

/// Tracks a set of processes (the servers and this process) across a measurement window.
#[derive(Debug, Clone)]
pub struct Watch {
    pids: Vec<u32>,
    start: Vec<Option<Sample>>,
}

impl Watch {
    /// Starts watching the given server pids and this process.
    pub fn start(server_pids: &[u32]) -> Watch {
        let mut pids = server_pids.to_vec();
        pids.push(0);
        let start = pids.iter().map(|&p| sample(p)).collect();
        Watch { pids, start }
    }

    /// (server usages, client usage) since `start`.
    pub fn finish(&self) -> (Vec<Usage>, Option<Usage>) {
        let mut servers = Vec::new();
        let mut client = None;
        for (pid, before) in self.pids.iter().zip(&self.start) {
            let (Some(b), Some(a)) = (before, sample(*pid)) else {
                continue;
            };
            let mut u = usage(*pid, b, &a);
            if *pid == 0 {
                u.pid = std::process::id();
                client = Some(u);
            } else {
                servers.push(u);
            }
        }
        (servers, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        let a = sample(0).expect("own /proc");
        assert!(a.rss_kib > 0);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = sample(0).unwrap();
        let u = usage(1, &a, &b);
        assert!(u.cpu_pct >= 0.0);
        assert!(sample(u32::MAX - 1).is_none());
    }
}
