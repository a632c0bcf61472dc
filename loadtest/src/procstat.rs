//! CPU and memory of a process from /proc: `/proc/<pid>/stat` (utime + stime) and
//! `/proc/<pid>/status` (VmRSS). Used for the server (`--server-pid`) and for the generator
//! (this process and its fleet workers).

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

/// Tracks the servers and the generator (this process and its fleet workers) across a
/// measurement window.
#[derive(Debug, Clone)]
pub struct Watch {
    started: Instant,
    servers: Vec<(u32, Option<Sample>)>,
    client: Vec<(u32, Option<Sample>)>,
}

impl Watch {
    /// Starts watching the given server pids, this process and its `workers`.
    pub fn start(server_pids: &[u32], workers: &[u32]) -> Watch {
        let with_sample = |&p: &u32| (p, sample(p));
        Watch {
            started: Instant::now(),
            servers: server_pids.iter().map(with_sample).collect(),
            client: std::iter::once(&0)
                .chain(workers)
                .map(with_sample)
                .collect(),
        }
    }

    /// (server usages, generator usage) since `start`. The generator is this process plus
    /// `workers`; a worker not watched from the start was born since, so all its CPU counts.
    pub fn finish(&self, workers: &[u32]) -> (Vec<Usage>, Option<Usage>) {
        let servers = self
            .servers
            .iter()
            .filter_map(|(pid, before)| Some(usage(*pid, before.as_ref()?, &sample(*pid)?)))
            .collect();
        let born = Sample {
            at: self.started,
            ticks: 0,
            rss_kib: 0,
        };
        let mut client: Option<Usage> = None;
        for pid in std::iter::once(&0).chain(workers) {
            let before = match self.client.iter().find(|(p, _)| p == pid) {
                Some((_, Some(s))) => *s,
                Some((_, None)) => continue,
                None => born,
            };
            let Some(after) = sample(*pid) else {
                continue;
            };
            let u = usage(*pid, &before, &after);
            match &mut client {
                None => {
                    client = Some(Usage {
                        pid: std::process::id(),
                        ..u
                    })
                }
                Some(c) => {
                    c.cpu_pct += u.cpu_pct;
                    c.rss_mib += u.rss_mib;
                }
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

    fn wait_until_asleep(pid: u32) {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3));
            let rss = sample(pid).map_or(0, |s| s.rss_kib);
            if state == Some("S") && rss > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "child {pid} never slept: {stat}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn generator_usage_adds_workers_born_during_the_window() {
        let watch = Watch::start(&[], &[]);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        // Right after spawn the child may still be loading `sleep`: its RSS grows until it
        // blocks in nanosleep, so wait for that before comparing sums.
        wait_until_asleep(pid);
        let own = watch.finish(&[]).1.expect("own usage");
        let with = watch.finish(&[pid]).1.expect("own usage");
        let worker = sample(pid).expect("child sample");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(with.pid, std::process::id());
        assert!(worker.rss_kib > 0);
        assert!(
            with.rss_mib >= own.rss_mib + worker.rss_kib as f64 / 1024.0 - 0.2,
            "{own:?} {with:?} {worker:?}"
        );
    }
}
