//! `connect-storm`: N clients connect + authenticate + subscribe at once (at most
//! `--concurrency` in flight); connects/s, time until all subscribed, failures by reason,
//! connect→subscribed latency. Every target: Herald clients, Socket.IO clients of Herald, and
//! the Socket.IO baseline.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::Common;
use crate::fleet::{Fleet, Member};
use crate::procstat::Watch;
use crate::progress::Live;
use crate::report::Step;
use crate::stats::Latency;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    #[arg(long, default_value_t = 15000)]
    pub connections: usize,
    #[arg(long, default_value = "loadtest")]
    pub channel: String,
    /// Connections opening at once (0 = all).
    #[arg(long, default_value_t = 0)]
    pub concurrency: usize,
}

pub async fn run(
    c: &Common,
    a: &Args,
    live: &Arc<Live>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Step>> {
    let spread = c.spread(0, a.connections)?;
    let eps = c.endpoints()?;
    // Signed before the storm: not part of the measured window.
    let tokens = c.tokens(a.connections, "lt-storm-")?;
    let members = tokens
        .into_iter()
        .map(|token| Member {
            endpoint: 0,
            token,
            channels: vec![a.channel.clone()],
        })
        .collect();
    live.set_step(format!("storm: {} connections", a.connections));
    let watch = Watch::start(&c.server_pids, &[]);
    let fleet = Fleet::start(members, &eps[..1], 1, a.concurrency, spread, live, notes).await?;
    let all = fleet
        .wait_ready(live, Duration::from_secs_f64(c.ready_timeout))
        .await;
    let elapsed = fleet.started.elapsed();
    let (servers, client) = watch.finish(&fleet.pids());
    let ok = live.connected.load(Relaxed);
    let failed = live.failed.load(Relaxed);
    let until_all = match all {
        Ok(d) => d,
        Err(e) => {
            notes.push(e.to_string());
            elapsed
        }
    };
    let lat = Latency::of(&fleet.connect_times().await?);
    let mut step = Step {
        label: format!("{} conns", a.connections),
        duration_s: until_all.as_secs_f64(),
        latency: lat,
        servers,
        client,
        closes: fleet.failures().await?,
        ..Default::default()
    };
    step.extra.insert("subscribed".into(), ok as f64);
    step.extra.insert("failed".into(), failed as f64);
    step.extra
        .insert("until_all_subscribed_s".into(), until_all.as_secs_f64());
    step.extra.insert(
        "connects_per_s".into(),
        ok as f64 / until_all.as_secs_f64().max(1e-6),
    );
    notes.push("latency columns = connect→subscribed time per client".into());
    fleet.shutdown().await;
    Ok(vec![step])
}
