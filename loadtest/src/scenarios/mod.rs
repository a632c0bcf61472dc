//! The scenarios and what they share: common flags, a fleet of subscriber connections, the
//! publishers, and one measured step (publish for a while, drain, collect).

pub mod channels;
pub mod crossnode;
pub mod fanout;
pub mod idle;
pub mod publish;
pub mod storm;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};
use herald_protocol::Format;

use crate::client::{Endpoint, ServerKind, Transport};
use crate::fleet::{Fleet, Member, Spread};
use crate::net;
use crate::procstat::Watch;
use crate::progress::Live;
use crate::publisher::{Plan, PubResult, Publisher};
use crate::report::{NodeLatency, Step};
use crate::stats::{Counts, Latency};

/// Flags every scenario takes.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Common {
    /// Node base URL (http://127.0.0.1:PORT); repeat for several nodes (crossnode).
    #[arg(long = "url", default_value = "http://127.0.0.1:8000")]
    pub urls: Vec<String>,
    /// Server API base URL (default: the first --url).
    #[arg(long)]
    pub api_url: Option<String>,
    /// Server API key.
    #[arg(
        long,
        env = "HERALD_API__KEY",
        default_value = "",
        hide_env_values = true
    )]
    #[serde(skip)]
    pub api_key: String,
    /// HMAC secret the node verifies connection tokens with (HS256).
    #[arg(
        long,
        env = "HERALD_AUTH__HMAC_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    #[serde(skip)]
    pub secret: String,
    /// Server under test: `herald`; `herald-socketio` (Socket.IO v4 clients of a Herald node
    /// on /socket.io/, publishing through Herald's API); or `socketio` (the Socket.IO v4
    /// baseline, loadtest/socketio/server.mjs: Engine.IO v4 client, `POST /publish`, no
    /// batches). Both Socket.IO targets: fanout, idle, connect-storm and crossnode only.
    #[arg(long = "target", value_enum, default_value_t = ServerKind::Herald)]
    pub target: ServerKind,
    /// Speak Protobuf (subprotocol centrifuge-protobuf) instead of JSON.
    #[arg(long)]
    pub protobuf: bool,
    /// How Herald subscribers connect: `websocket`, or a fallback (`http_stream`, `sse`: the
    /// stream plus `/emulation` requests for subscribes and pongs; sse is JSON only).
    #[arg(long, value_enum, default_value_t = Transport::Websocket)]
    pub transport: Transport,
    /// Size of each published payload, bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_size: usize,
    /// Server process id to sample CPU and RSS of (repeatable).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG charts into this directory.
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Tokio worker threads of the load generator (of each of its processes).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Most subscriber connections per process (default: what the open-files limit allows,
    /// less a reserve); a run with more spreads its subscribers over worker processes.
    #[arg(long)]
    pub per_process: Option<usize>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Longest time to wait for all connections to be subscribed, s.
    #[arg(long, default_value_t = 120.0)]
    pub ready_timeout: f64,
}

impl Common {
    pub fn format(&self) -> Format {
        if self.protobuf {
            Format::Protobuf
        } else {
            Format::Json
        }
    }

    pub fn endpoints(&self) -> anyhow::Result<Vec<Endpoint>> {
        if self.target.speaks_socketio() && self.protobuf {
            bail!("--protobuf is a Herald protocol: Socket.IO speaks JSON text frames only");
        }
        if self.target.speaks_socketio() && self.transport != Transport::Websocket {
            bail!("--transport is Herald's: Socket.IO clients are driven over WebSocket");
        }
        if self.transport == Transport::Sse && self.protobuf {
            bail!("--transport sse carries JSON only (SSE events are text)");
        }
        self.urls
            .iter()
            .map(|u| {
                let addr = net::resolve(u)?;
                Ok(match self.target {
                    ServerKind::Herald => Endpoint {
                        transport: self.transport,
                        ..Endpoint::new(addr, self.format())
                    },
                    kind @ (ServerKind::SocketIo | ServerKind::HeraldSocketIo) => {
                        Endpoint::socketio(addr, kind)
                    }
                })
            })
            .collect()
    }

    /// Fails unless the scenario `name` supports the chosen `--target`.
    pub fn require_herald(&self, name: &str) -> anyhow::Result<()> {
        if self.target != ServerKind::Herald {
            bail!(
                "{name} runs against Herald only (Socket.IO targets: fanout, idle, \
                 connect-storm, crossnode)"
            );
        }
        Ok(())
    }

    pub fn api_addr(&self) -> anyhow::Result<SocketAddr> {
        net::resolve(self.api_url.as_deref().unwrap_or(&self.urls[0]))
    }

    /// Connection tokens for users `prefix0 .. prefix{n-1}`, signed before any traffic.
    /// (The Socket.IO baseline has no authentication: empty tokens. Socket.IO clients of a
    /// Herald node send theirs in the CONNECT packet.)
    pub fn tokens(&self, n: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
        if self.target == ServerKind::SocketIo {
            return Ok(vec![String::new(); n]);
        }
        if self.secret.is_empty() {
            bail!("--secret (or HERALD_AUTH__HMAC_SECRET) is required to sign connection tokens");
        }
        let signer = TokenSigner::hmac(self.secret.as_bytes(), HmacAlg::HS256);
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + 24 * 3600;
        (0..n)
            .map(|i| {
                signer
                    .sign(&NewConnectToken {
                        sub: format!("{prefix}{i}"),
                        exp: Some(exp),
                        ..Default::default()
                    })
                    .context("sign token")
            })
            .collect()
    }

    /// Starts the subscribers (in this process, or spread over worker processes where one
    /// cannot hold them beside `publishers` connections) and waits until each is subscribed or
    /// failed; returns the fleet and the time from its start to the last subscription.
    pub async fn connect_fleet(
        &self,
        members: Vec<Member>,
        endpoints: &[Endpoint],
        publishers: usize,
        concurrency: usize,
        live: &Arc<Live>,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<(Fleet, Duration)> {
        let mut per_endpoint = vec![0usize; endpoints.len()];
        for m in &members {
            per_endpoint[m.endpoint] += 1;
        }
        let most = per_endpoint.into_iter().max().unwrap_or(0);
        let spread = self.spread(publishers, most)?;
        let fleet = Fleet::start(
            members,
            endpoints,
            publishers,
            concurrency,
            spread,
            live,
            notes,
        )
        .await?;
        let ready = fleet
            .wait_ready(live, Duration::from_secs_f64(self.ready_timeout))
            .await?;
        Ok((fleet, ready))
    }

    /// How many connections each process of the run may hold, given that the main process
    /// also keeps `publishers` connections; checks the port range for `per_endpoint`
    /// subscribers to one node.
    pub fn spread(&self, publishers: usize, per_endpoint: usize) -> anyhow::Result<Spread> {
        net::check_ports(per_endpoint as u64)?;
        let per = net::conns_per_process(net::raise_nofile().0) as usize;
        let per = self.per_process.map_or(per, |n| n.clamp(1, per.max(1)));
        Ok(Spread {
            local: per.saturating_sub(publishers),
            worker: per,
            threads: self.workers.max(1),
        })
    }
}

/// Parses a comma-separated list of numbers.
pub fn parse_list(s: &str) -> anyhow::Result<Vec<f64>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .with_context(|| format!("bad number {x:?}"))
        })
        .collect()
}

/// Publisher connections (streams 0..n) to a Herald API.
pub async fn publishers(
    addr: SocketAddr,
    key: &str,
    n: usize,
    channels: usize,
) -> anyhow::Result<Vec<Publisher>> {
    publishers_to(ServerKind::Herald, addr, key, n, channels).await
}

/// Publisher connections (streams 0..n) to the API of a `kind` server (see
/// [`ServerKind::api`]).
pub async fn publishers_to(
    kind: ServerKind,
    addr: SocketAddr,
    key: &str,
    n: usize,
    channels: usize,
) -> anyhow::Result<Vec<Publisher>> {
    let mut v = Vec::with_capacity(n);
    for k in 0..n {
        let mut p = Publisher::connect(addr, key, k as u32, channels).await?;
        p.kind = kind.api();
        v.push(p);
    }
    Ok(v)
}

/// How many publisher connections (streams) a ramp up to `max_rate` against `c.target` uses:
/// Herald's API gets `n` (batches absorb high rates); the Socket.IO baseline has no batch
/// endpoint, so it gets enough keep-alive connections for ≤ [`SIO_REQS_PER_CONN`] requests/s
/// each (at least `n`). Decide it before the subscribers connect: they track one sequence per
/// stream, and a stream they do not know would be counted against another one's.
pub fn ramp_publisher_count(c: &Common, n: usize, max_rate: f64, notes: &mut Vec<String>) -> usize {
    match c.target.api() {
        ServerKind::Herald | ServerKind::HeraldSocketIo => n,
        ServerKind::SocketIo => {
            let need = (max_rate / SIO_REQS_PER_CONN).ceil() as usize;
            let m = n.max(need).clamp(1, 256);
            if m != n {
                notes.push(format!(
                    "socketio: {m} publisher connections (one publication per request, \
                     ≤ {SIO_REQS_PER_CONN}/s each) instead of --publishers {n}"
                ));
            }
            m
        }
    }
}

/// `n` publisher connections (from [`ramp_publisher_count`]) to the API of `c.target`.
pub async fn ramp_publishers(
    c: &Common,
    n: usize,
    channels: usize,
) -> anyhow::Result<Vec<Publisher>> {
    publishers_to(c.target, c.api_addr()?, &c.api_key, n, channels).await
}

/// Requests/s one Socket.IO publisher connection is planned for (one request in flight).
pub const SIO_REQS_PER_CONN: f64 = 250.0;

/// Publications per request: `batch` if set, else [`auto_batch`]; always 1 for the Socket.IO
/// baseline.
pub fn batch_for(c: &Common, batch: usize, rate: f64, conns: usize) -> usize {
    match c.target.api() {
        ServerKind::SocketIo => 1,
        _ if batch > 0 => batch,
        _ => auto_batch(rate, conns),
    }
}

/// Batch size for a total rate over `conns` connections: about ≤ 250 requests/s each.
pub fn auto_batch(rate: f64, conns: usize) -> usize {
    if rate <= 0.0 {
        return 100;
    }
    ((rate / (conns.max(1) as f64 * 250.0)).ceil() as usize).clamp(1, 1000)
}

/// Settings of one measured step.
pub struct StepSpec<'a> {
    pub label: String,
    pub rate: f64,
    pub batch: usize,
    pub duration: Duration,
    /// Longest wait for outstanding deliveries after publishing stops.
    pub settle: Duration,
    pub max_publications: u64,
    pub server_pids: &'a [u32],
    pub urls: &'a [String],
}

/// How a publish-rate ramp is run: the same for every scenario that publishes in steps.
pub struct Ramp<'a> {
    pub rates: &'a [f64],
    pub step_secs: f64,
    pub settle_secs: f64,
    /// Progress-line label of a step.
    pub describe: &'a dyn Fn(f64) -> String,
    /// Publications per API request at a rate.
    pub batch: &'a dyn Fn(f64) -> usize,
    /// Why the ramp stops after a step, if it does.
    pub stop: &'a dyn Fn(f64, &Step) -> Option<String>,
}

/// Runs one measured step per rate, in order, until `stop` ends the ramp (its reason goes into
/// `notes`).
pub async fn run_ramp(
    ramp: Ramp<'_>,
    common: &Common,
    pubs: &mut Vec<Publisher>,
    plan: &Arc<Plan>,
    fleet: &Fleet,
    live: &Arc<Live>,
    notes: &mut Vec<String>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for &rate in ramp.rates {
        live.set_step((ramp.describe)(rate));
        let step = measure_step(
            StepSpec {
                label: format!("{rate}/s"),
                rate,
                batch: (ramp.batch)(rate),
                duration: Duration::from_secs_f64(ramp.step_secs),
                settle: Duration::from_secs_f64(ramp.settle_secs),
                max_publications: (rate * ramp.step_secs * 1.1) as u64 + 10,
                server_pids: &common.server_pids,
                urls: &common.urls,
            },
            pubs,
            plan,
            Some(fleet),
            live,
        )
        .await;
        let stop = (ramp.stop)(rate, &step);
        live.set_step(format!(
            "{rate}/s done: p99 {:.1} ms lost {}",
            step.latency.p99_ms, step.lost
        ));
        steps.push(step);
        if let Some(reason) = stop {
            notes.push(reason);
            break;
        }
    }
    steps
}

/// The usual reason to stop a ramp: deliveries went missing.
pub fn stop_on_loss(rate: f64, step: &Step) -> Option<String> {
    (step.lost > 0).then(|| format!("stopped at {rate}/s: {} deliveries lost", step.lost))
}

/// Publishes per `spec` with every publisher, waits for the deliveries to drain, and collects
/// the step's numbers.
pub async fn measure_step(
    spec: StepSpec<'_>,
    pubs: &mut Vec<Publisher>,
    plan: &Arc<Plan>,
    fleet: Option<&Fleet>,
    live: &Arc<Live>,
) -> Step {
    if let Some(f) = fleet {
        let _ = f.take().await; // drop anything counted between steps
    }
    let workers = fleet.map(Fleet::pids).unwrap_or_default();
    let watch = Watch::start(spec.server_pids, &workers);
    let delivered0 = live.delivered.load(Relaxed);
    let t0 = Instant::now();
    let n = pubs.len().max(1);
    let per_rate = spec.rate / n as f64;
    let per_max = spec.max_publications.div_ceil(n as u64);
    let mut tasks = Vec::new();
    for mut p in pubs.drain(..) {
        let (plan, live) = (plan.clone(), live.clone());
        let (batch, dur) = (spec.batch, spec.duration);
        tasks.push(tokio::spawn(async move {
            let r = p.run(&plan, per_rate, batch, dur, per_max, &live).await;
            (p, r)
        }));
    }
    let mut res = PubResult::default();
    for t in tasks {
        if let Ok((p, r)) = t.await {
            res.merge(&r);
            pubs.push(p);
        }
    }
    let pub_secs = t0.elapsed().as_secs_f64();
    // Drain: until every expected delivery arrived or the settle time ran out.
    let drain_end = Instant::now() + spec.settle;
    if fleet.is_some() {
        while Instant::now() < drain_end {
            let got = live.delivered.load(Relaxed) - delivered0;
            if got >= res.expected_deliveries {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let total_secs = t0.elapsed().as_secs_f64();
    let (servers, client) = watch.finish(&workers);
    let mut step = Step {
        label: spec.label,
        target_rate: spec.rate,
        duration_s: pub_secs,
        published: res.published,
        publish_errors: res.errors,
        publish_rate: res.published as f64 / pub_secs.max(1e-6),
        api_requests: res.requests,
        api_call: Latency::of(&res.call_latency),
        expected: res.expected_deliveries,
        servers,
        client,
        first_error: res.first_error,
        ..Default::default()
    };
    let taken = match fleet.map(Fleet::take) {
        Some(t) => Some(t.await),
        None => None,
    };
    if let Some(Err(e)) = &taken {
        step.first_error
            .get_or_insert_with(|| format!("counting deliveries: {e:#}"));
    }
    if let Some(Ok(per)) = taken {
        let mut all = Counts::default();
        for (i, c) in per.iter().enumerate() {
            all.merge(c);
            if per.len() > 1 {
                step.per_node.push(NodeLatency {
                    url: spec.urls.get(i).cloned().unwrap_or_default(),
                    delivered: c.unique(),
                    latency: Latency::of(&c.latency),
                    arrival: Latency::of(&c.arrival),
                });
            }
        }
        step.delivered = all.unique();
        step.deliveries_per_s = all.unique() as f64 / total_secs.max(1e-6);
        step.frames_per_s = all.frames as f64 / total_secs.max(1e-6);
        step.lost = res.expected_deliveries.saturating_sub(all.unique());
        step.duplicates = all.duplicates;
        step.reordered = all.reordered;
        step.latency = Latency::of(&all.latency);
        step.arrival = Latency::of(&all.arrival);
        step.closes = all.closes;
        if all.unstamped > 0 {
            step.extra.insert("unstamped".into(), all.unstamped as f64);
        }
    }
    step
}
