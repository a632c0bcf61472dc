//! The scenarios and what they share: common flags, a fleet of subscriber connections, the
//! publishers, and one measured step (publish for a while, drain, collect).

pub mod channels;
pub mod crossnode;
pub mod fanout;
pub mod idle;
pub mod publish;
pub mod storm;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};
use herald_protocol::Format;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::client::{self, Endpoint, Reader, ServerKind};
use crate::net;
use crate::procstat::Watch;
use crate::progress::Live;
use crate::publisher::{Plan, PubResult, Publisher};
use crate::report::{NodeLatency, Step};
use crate::stats::{Counts, Latency, Shards, new_histogram};

/// Count shards per node. Few: each holds a ~150 KiB latency histogram, and with many of them
/// every record is a cache miss (64 shards cost the generator 12% of its CPU in histogram
/// records); contention stays rare because a task locks its shard once per frame.
const SHARDS: usize = 8;

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
    /// Server under test: `herald`, or `socketio` (the Socket.IO v4 baseline,
    /// loadtest/socketio/server.mjs: Engine.IO v4 client, `POST /publish`, no batches;
    /// fanout, idle and crossnode only).
    #[arg(long = "target", value_enum, default_value_t = ServerKind::Herald)]
    pub target: ServerKind,
    /// Speak Protobuf (subprotocol centrifuge-protobuf) instead of JSON.
    #[arg(long)]
    pub protobuf: bool,
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
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
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
        if self.target == ServerKind::SocketIo && self.protobuf {
            bail!("--protobuf is a Herald protocol: Socket.IO speaks JSON text frames only");
        }
        self.urls
            .iter()
            .map(|u| {
                let addr = net::resolve(u)?;
                Ok(match self.target {
                    ServerKind::Herald => Endpoint::new(addr, self.format()),
                    ServerKind::SocketIo => Endpoint::socketio(addr),
                })
            })
            .collect()
    }

    /// Fails unless the scenario `name` supports the chosen `--target`.
    pub fn require_herald(&self, name: &str) -> anyhow::Result<()> {
        if self.target != ServerKind::Herald {
            bail!("{name} runs against Herald only (--target socketio: fanout, idle, crossnode)");
        }
        Ok(())
    }

    pub fn api_addr(&self) -> anyhow::Result<SocketAddr> {
        net::resolve(self.api_url.as_deref().unwrap_or(&self.urls[0]))
    }

    /// Connection tokens for users `prefix0 .. prefix{n-1}`, signed before any traffic.
    /// (The Socket.IO baseline has no authentication: empty tokens.)
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

    pub fn check_conns(&self, n: usize) -> anyhow::Result<()> {
        net::check_fds(n as u64 + 64)
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

/// One subscriber to start.
#[derive(Debug, Clone)]
pub struct Member {
    pub endpoint: usize,
    pub token: String,
    pub channels: Vec<String>,
}

/// Subscriber connections, one task each, with their counters (one shard set per endpoint).
pub struct Fleet {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    pub shards: Vec<Shards>,
    pub connect_times: Arc<Mutex<Histogram<u64>>>,
    pub failures: Arc<Mutex<BTreeMap<String, u64>>>,
    pub started: Instant,
    pub size: usize,
    last_ready: Arc<Mutex<Option<Instant>>>,
}

impl Fleet {
    /// Starts every member; at most `concurrency` connecting at once (0 = all).
    pub fn spawn(
        members: Vec<Member>,
        endpoints: &[Endpoint],
        streams: usize,
        concurrency: usize,
        live: &Arc<Live>,
    ) -> Fleet {
        let (stop, stop_rx) = watch::channel(false);
        let shards: Vec<Shards> = endpoints.iter().map(|_| Shards::new(SHARDS)).collect();
        let sem = Arc::new(Semaphore::new(if concurrency == 0 {
            Semaphore::MAX_PERMITS
        } else {
            concurrency
        }));
        let connect_times = Arc::new(Mutex::new(new_histogram()));
        let failures = Arc::new(Mutex::new(BTreeMap::new()));
        let last_ready = Arc::new(Mutex::new(None));
        let size = members.len();
        let started = Instant::now();
        let mut handles = Vec::with_capacity(size);
        for (i, m) in members.into_iter().enumerate() {
            let ep = endpoints[m.endpoint].clone();
            let shards = shards[m.endpoint].clone();
            let (sem, live, stop_rx) = (sem.clone(), live.clone(), stop_rx.clone());
            let (connect_times, failures, last_ready) =
                (connect_times.clone(), failures.clone(), last_ready.clone());
            let source = net::source_for(ep.addr, i);
            handles.push(tokio::spawn(async move {
                let permit = sem.acquire().await;
                let t0 = Instant::now();
                let opened = tokio::time::timeout(
                    Duration::from_secs(60),
                    client::open(&ep, source, &m.token, &m.channels),
                )
                .await
                .unwrap_or_else(|_| Err("timeout 60s".to_owned()));
                drop(permit);
                let ws = match opened {
                    Ok(ws) => ws,
                    Err(reason) => {
                        *failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(reason)
                            .or_insert(0) += 1;
                        live.failed.fetch_add(1, Relaxed);
                        return;
                    }
                };
                connect_times
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .saturating_record((t0.elapsed().as_micros() as u64).max(1));
                *last_ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                live.connected.fetch_add(1, Relaxed);
                let reader = Reader {
                    format: ep.format,
                    kind: ep.kind,
                    channels: m.channels,
                    streams,
                    shard: shards.shard(i),
                    live: &live,
                };
                client::read_loop(ws, reader, stop_rx).await;
            }));
        }
        Fleet {
            stop,
            handles,
            shards,
            connect_times,
            failures,
            started,
            size,
            last_ready,
        }
    }

    /// Waits until every member is subscribed or failed (or `timeout`); returns the time from
    /// the start to the last successful subscription.
    pub async fn wait_ready(&self, live: &Live, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = live.connected.load(Relaxed) + live.failed.load(Relaxed);
            if done >= self.size as u64 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {done} of {} connections settled within {timeout:?}",
                    self.size
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last = self
            .last_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(self.started);
        Ok(last.saturating_duration_since(self.started))
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts since the last take, per endpoint.
    pub fn take(&self) -> Vec<Counts> {
        self.shards.iter().map(Shards::take).collect()
    }

    /// Stops every connection and waits for the tasks (bounded).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.handles);
        let _ = tokio::time::timeout(Duration::from_secs(20), all).await;
    }
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

/// Publisher connections (streams 0..n) to the API of a `kind` server.
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
        p.kind = kind;
        v.push(p);
    }
    Ok(v)
}

/// Publisher connections for a ramp up to `max_rate` against `c.target`: Herald gets `n`
/// (batches absorb high rates); Socket.IO has no batch endpoint, so it gets enough
/// keep-alive connections for ≤ [`SIO_REQS_PER_CONN`] requests/s each (at least `n`).
pub async fn ramp_publishers(
    c: &Common,
    n: usize,
    max_rate: f64,
    channels: usize,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Publisher>> {
    let n = match c.target {
        ServerKind::Herald => n,
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
    };
    publishers_to(c.target, c.api_addr()?, &c.api_key, n, channels).await
}

/// Requests/s one Socket.IO publisher connection is planned for (one request in flight).
pub const SIO_REQS_PER_CONN: f64 = 250.0;

/// Publications per request: `batch` if set, else [`auto_batch`]; always 1 for Socket.IO.
pub fn batch_for(c: &Common, batch: usize, rate: f64, conns: usize) -> usize {
    match c.target {
        ServerKind::SocketIo => 1,
        ServerKind::Herald if batch > 0 => batch,
        ServerKind::Herald => auto_batch(rate, conns),
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
        f.take(); // drop anything counted between steps
    }
    let watch = Watch::start(spec.server_pids);
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
    let (servers, client) = watch.finish();
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
    if let Some(f) = fleet {
        let per = f.take();
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
