//! `idle`: N authenticated, subscribed connections that only answer pings; server RSS before
//! (R0), once all are subscribed (R1) and after a settle time (R2); RSS per connection =
//! (R − R0) / N.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::Common;
use crate::fleet::Member;
use crate::procstat;
use crate::progress::Live;
use crate::report::Step;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    #[arg(long, default_value_t = 15000)]
    pub connections: usize,
    /// Channel every connection subscribes to.
    #[arg(long, default_value = "loadtest")]
    pub channel: String,
    /// Seconds to hold the connections after all are subscribed.
    #[arg(long, default_value_t = 10.0)]
    pub settle_secs: f64,
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
}

pub async fn run(
    c: &Common,
    a: &Args,
    live: &Arc<Live>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Step>> {
    if c.server_pids.is_empty() {
        notes.push("no --server-pid: RSS per connection cannot be measured".into());
    }
    let eps = c.endpoints()?;
    let tokens = c.tokens(a.connections, "lt-idle-")?;
    let r0: Vec<Option<procstat::Sample>> =
        c.server_pids.iter().map(|&p| procstat::sample(p)).collect();
    let members = tokens
        .into_iter()
        .map(|token| Member {
            endpoint: 0,
            token,
            channels: vec![a.channel.clone()],
        })
        .collect();
    live.set_step(format!("idle: opening {}", a.connections));
    let t0 = Instant::now();
    // One publisher stream (none publishes here).
    let (fleet, ready) = c
        .connect_fleet(members, &eps[..1], 1, a.concurrency, live, notes)
        .await?;
    let n = live.connected.load(Relaxed);
    let r1: Vec<Option<procstat::Sample>> =
        c.server_pids.iter().map(|&p| procstat::sample(p)).collect();
    live.set_step(format!("idle: holding {n} for {}s", a.settle_secs));
    tokio::time::sleep(Duration::from_secs_f64(a.settle_secs)).await;
    let r2: Vec<Option<procstat::Sample>> =
        c.server_pids.iter().map(|&p| procstat::sample(p)).collect();
    let counts = fleet.take().await?;
    let closes: u64 = counts.iter().flat_map(|c| c.closes.values()).sum();
    let mut step = Step {
        label: format!("{n} idle"),
        duration_s: t0.elapsed().as_secs_f64(),
        ..Default::default()
    };
    step.extra.insert("connected".into(), n as f64);
    step.extra
        .insert("failed".into(), live.failed.load(Relaxed) as f64);
    step.extra.insert("ready_s".into(), ready.as_secs_f64());
    step.extra.insert("closed_while_idle".into(), closes as f64);
    step.extra.insert(
        "pings_answered".into(),
        counts.iter().map(|c| c.pings).sum::<u64>() as f64,
    );
    for (i, pid) in c.server_pids.iter().enumerate() {
        let (Some(a0), Some(a1), Some(a2)) = (r0[i], r1[i], r2[i]) else {
            notes.push(format!("pid {pid}: /proc not readable"));
            continue;
        };
        let per = |r: &procstat::Sample| (r.rss_kib as f64 - a0.rss_kib as f64) / n.max(1) as f64;
        step.extra
            .insert(format!("pid{pid}_rss0_mib"), a0.rss_kib as f64 / 1024.0);
        step.extra.insert(
            format!("pid{pid}_rss_subscribed_mib"),
            a1.rss_kib as f64 / 1024.0,
        );
        step.extra.insert(
            format!("pid{pid}_rss_settled_mib"),
            a2.rss_kib as f64 / 1024.0,
        );
        step.extra
            .insert(format!("pid{pid}_kib_per_conn_subscribed"), per(&a1));
        step.extra
            .insert(format!("pid{pid}_kib_per_conn_settled"), per(&a2));
        step.servers.push(procstat::usage(*pid, &a0, &a2));
    }
    let f = fleet.failures().await?;
    if !f.is_empty() {
        step.closes = f;
    }
    step.closes
        .extend(counts.into_iter().flat_map(|c| c.closes));
    fleet.shutdown().await;
    Ok(vec![step])
}
