//! `crossnode`: subscribers spread round-robin over several nodes (`--url` repeated, nodes
//! sharing Redis); publications go through the API of the first node; latency per node.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::bail;

use super::{
    Common, Ramp, batch_for, parse_list, ramp_publisher_count, ramp_publishers, run_ramp,
    stop_on_loss,
};
use crate::fleet::Member;
use crate::progress::Live;
use crate::publisher::{Plan, Target};
use crate::report::Step;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Subscribers in all (spread over the nodes).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    #[arg(long, default_value = "loadtest")]
    pub channel: String,
    #[arg(long, default_value = "100,500,1000")]
    pub rates: String,
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    #[arg(long, default_value_t = 500)]
    pub concurrency: usize,
}

pub async fn run(
    c: &Common,
    a: &Args,
    live: &Arc<Live>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Step>> {
    let eps = c.endpoints()?;
    if eps.len() < 2 {
        notes.push("only one --url: this measures a single node".into());
    }
    let rates = parse_list(&a.rates)?;
    let tokens = c.tokens(a.subscribers, "lt-cross-")?;
    let members = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| Member {
            endpoint: i % eps.len(),
            token,
            channels: vec![a.channel.clone()],
        })
        .collect();
    let max_rate = rates.iter().copied().fold(0.0, f64::max);
    let publishers = ramp_publisher_count(c, a.publishers, max_rate, notes);
    live.set_step("connecting");
    let (fleet, _) = c
        .connect_fleet(members, &eps, publishers, a.concurrency, live, notes)
        .await?;
    let failures = fleet.failures().await?;
    if !failures.is_empty() {
        bail!("connect failures: {failures:?}");
    }
    // Give every node's broker subscription time to be in place before publishing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let plan = Arc::new(Plan {
        channels: vec![a.channel.clone()],
        fanout: vec![live.connected.load(Relaxed)],
        target: Target::One(0),
        payload_size: c.payload_size,
    });
    let mut pubs = ramp_publishers(c, publishers, 1).await?;
    let steps = run_ramp(
        Ramp {
            rates: &rates,
            step_secs: a.step_secs,
            settle_secs: a.settle_secs,
            describe: &|rate| format!("crossnode @ {rate}/s"),
            batch: &|rate| batch_for(c, a.batch, rate, publishers),
            stop: &stop_on_loss,
        },
        c,
        &mut pubs,
        &plan,
        &fleet,
        live,
        notes,
    )
    .await;
    fleet.shutdown().await;
    Ok(steps)
}
