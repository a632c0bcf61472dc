//! `publish`: server API throughput over K keep-alive connections, one step per batch size
//! (1 = `/api/publish`, N = `/api/batch` of N), as fast as the server answers (or at
//! `--rate`); optional subscribers to check delivery.

use std::sync::Arc;
use std::time::Duration;

use super::{Common, StepSpec, measure_step, parse_list, publishers};
use crate::fleet::Member;
use crate::progress::Live;
use crate::publisher::{Plan, Target};
use crate::report::Step;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Keep-alive API connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Batch sizes, one step each (1 = single /api/publish).
    #[arg(long, default_value = "1,10,100")]
    pub batch: String,
    /// Total publish rate (0 = as fast as possible, one request in flight per connection).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Upper bound of publications per step.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_per_step: u64,
    /// Subscribers of the channel (0 = none).
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    #[arg(long, default_value = "loadtest")]
    pub channel: String,
}

pub async fn run(
    c: &Common,
    a: &Args,
    live: &Arc<Live>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Step>> {
    c.require_herald("publish")?;
    let eps = c.endpoints()?;
    let fleet = if a.subscribers > 0 {
        let members = c
            .tokens(a.subscribers, "lt-pub-")?
            .into_iter()
            .map(|token| Member {
                endpoint: 0,
                token,
                channels: vec![a.channel.clone()],
            })
            .collect();
        let (f, _) = c
            .connect_fleet(members, &eps[..1], a.connections, 500, live, notes)
            .await?;
        Some(f)
    } else {
        None
    };
    let plan = Arc::new(Plan {
        channels: vec![a.channel.clone()],
        fanout: vec![a.subscribers as u64],
        target: Target::One(0),
        payload_size: c.payload_size,
    });
    let mut pubs = publishers(c.api_addr()?, &c.api_key, a.connections, 1).await?;
    let mut steps = Vec::new();
    for b in parse_list(&a.batch)? {
        let batch = (b as usize).max(1);
        live.set_step(format!("publish batch {batch}"));
        let mut step = measure_step(
            StepSpec {
                label: format!("batch {batch}"),
                rate: a.rate,
                batch,
                duration: Duration::from_secs_f64(a.step_secs),
                settle: Duration::from_secs(2),
                max_publications: a.max_per_step,
                server_pids: &c.server_pids,
                urls: &c.urls,
            },
            &mut pubs,
            &plan,
            fleet.as_ref(),
            live,
        )
        .await;
        step.extra.insert(
            "requests_per_s".into(),
            step.api_requests as f64 / step.duration_s.max(1e-6),
        );
        steps.push(step);
    }
    notes.push(
        "p50..max columns = delivery latency (only with --subscribers); api99ms = HTTP call p99"
            .into(),
    );
    if let Some(f) = fleet {
        f.shutdown().await;
    }
    Ok(steps)
}
