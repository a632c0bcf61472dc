//! `channels`: many clients, each subscribed to a personal channel `user:<i>` and a group
//! channel `group:<i/10>`; publications go to random personal and group channels.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::{Common, Ramp, auto_batch, parse_list, publishers, run_ramp, stop_on_loss};
use crate::fleet::Member;
use crate::progress::Live;
use crate::publisher::{Plan, Target};
use crate::report::Step;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Clients.
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    /// Clients per group channel.
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// Prefix of personal channels (the namespace must allow client subscriptions).
    #[arg(long, default_value = "user:")]
    pub personal_prefix: String,
    /// Prefix of group channels.
    #[arg(long, default_value = "group:")]
    pub group_prefix: String,
    /// Share of publications that go to personal channels (the rest to groups).
    #[arg(long, default_value_t = 0.5)]
    pub personal_share: f64,
    /// Publish rates, publications/s (one step each).
    #[arg(long, default_value = "1000,2000,5000")]
    pub rates: String,
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Publications per API request (0 = auto).
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
    c.require_herald("channels")?;
    let eps = c.endpoints()?;
    let gsize = a.group_size.max(1);
    let groups = a.clients.div_ceil(gsize);
    let mut channels: Vec<String> = (0..a.clients)
        .map(|i| format!("{}{i}", a.personal_prefix))
        .collect();
    channels.extend((0..groups).map(|g| format!("{}{g}", a.group_prefix)));
    let tokens = c.tokens(a.clients, "lt-chan-")?;
    let members = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| Member {
            endpoint: 0,
            token,
            channels: vec![channels[i].clone(), channels[a.clients + i / gsize].clone()],
        })
        .collect();
    live.set_step("connecting");
    let (fleet, ready) = c
        .connect_fleet(members, &eps[..1], a.publishers, a.concurrency, live, notes)
        .await?;
    let failures = fleet.failures().await?;
    if !failures.is_empty() {
        notes.push(format!(
            "connect failures: {failures:?}; expected deliveries assume every client is subscribed"
        ));
    }
    notes.push(format!(
        "{} clients ready in {:.2}s ({} personal + {groups} group channels)",
        live.connected.load(Relaxed),
        ready.as_secs_f64(),
        a.clients
    ));
    let mut fanout = vec![1u64; a.clients];
    fanout.extend((0..groups).map(|g| (a.clients - g * gsize).min(gsize) as u64));
    let plan = Arc::new(Plan {
        channels,
        fanout,
        target: Target::Mix(
            a.personal_share.clamp(0.0, 1.0),
            0..a.clients,
            a.clients..a.clients + groups,
        ),
        payload_size: c.payload_size,
    });
    let mut pubs = publishers(c.api_addr()?, &c.api_key, a.publishers, plan.channels.len()).await?;
    let rates = parse_list(&a.rates)?;
    let steps = run_ramp(
        Ramp {
            rates: &rates,
            step_secs: a.step_secs,
            settle_secs: a.settle_secs,
            describe: &|rate| format!("channels @ {rate}/s"),
            batch: &|rate| {
                if a.batch > 0 {
                    a.batch
                } else {
                    auto_batch(rate, a.publishers)
                }
            },
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
