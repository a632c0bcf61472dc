//! `fanout`: N subscribers of one channel on one node; the publish rate ramps up step by step
//! until loss appears or p99 passes a limit.

use std::sync::Arc;

use super::{Common, Ramp, batch_for, parse_list, ramp_publisher_count, ramp_publishers, run_ramp};
use crate::fleet::Member;
use crate::progress::Live;
use crate::publisher::{Plan, Target};
use crate::report::Step;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Subscribers.
    #[arg(long, default_value_t = 2000)]
    pub subscribers: usize,
    /// The channel (must be open to client subscriptions on the node).
    #[arg(long, default_value = "loadtest")]
    pub channel: String,
    /// Publish rates of the ramp, publications/s.
    #[arg(long, default_value = "100,200,500,1000,2000,5000")]
    pub rates: String,
    /// Seconds of publishing per step.
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Longest drain after each step, s.
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    /// Publisher connections (each one a numbered stream).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Publications per API request (0 = auto: about ≤ 250 requests/s per connection).
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// Stop the ramp when a step's p99 exceeds this, ms.
    #[arg(long, default_value_t = 1000.0)]
    pub max_p99_ms: f64,
    /// Connections opening at once.
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
    let rates = parse_list(&a.rates)?;
    let tokens = c.tokens(a.subscribers, "lt-fanout-")?;
    let members = tokens
        .into_iter()
        .map(|token| Member {
            endpoint: 0,
            token,
            channels: vec![a.channel.clone()],
        })
        .collect();
    let max_rate = rates.iter().copied().fold(0.0, f64::max);
    let publishers = ramp_publisher_count(c, a.publishers, max_rate, notes);
    live.set_step("connecting");
    let (fleet, ready) = c
        .connect_fleet(members, &eps[..1], publishers, a.concurrency, live, notes)
        .await?;
    let failures = fleet.failures().await?;
    if !failures.is_empty() {
        notes.push(format!("connect failures: {failures:?}"));
    }
    notes.push(format!(
        "{} subscribers ready in {:.2}s",
        a.subscribers - failures.values().sum::<u64>() as usize,
        ready.as_secs_f64()
    ));
    let subs = live.connected.load(std::sync::atomic::Ordering::Relaxed);
    let plan = Arc::new(Plan {
        channels: vec![a.channel.clone()],
        fanout: vec![subs],
        target: Target::One(0),
        payload_size: c.payload_size,
    });
    let mut pubs = ramp_publishers(c, publishers, 1).await?;
    let steps = run_ramp(
        Ramp {
            rates: &rates,
            step_secs: a.step_secs,
            settle_secs: a.settle_secs,
            describe: &|rate| format!("fanout {subs} subs @ {rate}/s"),
            batch: &|rate| batch_for(c, a.batch, rate, publishers),
            stop: &|rate, step| {
                if step.lost > 0 {
                    Some(format!(
                        "ramp stopped at {rate}/s: {} deliveries missing after the settle time (lost or late)",
                        step.lost
                    ))
                } else if step.latency.p99_ms > a.max_p99_ms {
                    Some(format!(
                        "ramp stopped at {rate}/s: p99 {:.1} ms > --max-p99-ms {}",
                        step.latency.p99_ms, a.max_p99_ms
                    ))
                } else if step.published == 0 {
                    Some(format!("ramp stopped at {rate}/s: nothing published"))
                } else {
                    None
                }
            },
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
