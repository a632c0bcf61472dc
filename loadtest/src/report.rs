//! What a run reports: per-step numbers (serialized as JSON with the command line and machine
//! info) and the human summary table printed on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::procstat::Usage;
use crate::stats::Latency;

/// Latency of deliveries through one node (crossnode).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeLatency {
    pub url: String,
    pub delivered: u64,
    pub latency: Latency,
    pub arrival: Latency,
}

/// The numbers of one step of a scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Step {
    pub label: String,
    /// Requested publish rate (publications/s; 0 = as fast as possible).
    pub target_rate: f64,
    /// Publishing time, s.
    pub duration_s: f64,
    pub published: u64,
    pub publish_errors: u64,
    /// Achieved publish rate, publications/s.
    pub publish_rate: f64,
    pub api_requests: u64,
    /// Latency of the HTTP API calls.
    pub api_call: Latency,
    /// Deliveries expected (publications × subscribers of their channel).
    pub expected: u64,
    /// Unique deliveries counted by subscribers.
    pub delivered: u64,
    /// Deliveries per second over the publishing time plus the drain after it.
    pub deliveries_per_s: f64,
    /// WebSocket messages (frames) subscribers read per second over the same time: deliveries
    /// per frame is how much the server batched.
    pub frames_per_s: f64,
    /// Expected deliveries not counted by the end of the settle time: lost (3008 cuts, gaps)
    /// or late (still queued at the server).
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Publish → receive latency: until the subscriber's task has parsed the publication.
    pub latency: Latency,
    /// Publish → socket arrival latency: until the kernel put the publication into the
    /// subscriber's socket (`SO_TIMESTAMPNS`), without the generator's own queueing.
    pub arrival: Latency,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_node: Vec<NodeLatency>,
    pub servers: Vec<Usage>,
    pub client: Option<Usage>,
    /// Connections that ended during the step, by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub closes: BTreeMap<String, u64>,
    /// Scenario-specific numbers (connects/s, KiB per connection, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub rustc: String,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            rustc: option_env!("RUSTC_VERSION").unwrap_or("unknown").to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub command_line: Vec<String>,
    pub machine: Machine,
    pub started_unix_s: u64,
    pub params: serde_json::Value,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

fn f(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// The human summary table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== herald-loadtest {} ==", r.scenario);
    let _ = writeln!(
        s,
        "{:<14} {:>9} {:>9} {:>6} {:>11} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>9} {:>8} {:>6} {:>4} {:>4} {:>15} {:>7}",
        "step",
        "target/s",
        "pub/s",
        "perr",
        "deliv/s",
        "p50ms",
        "p90ms",
        "p99ms",
        "p999ms",
        "maxms",
        "sock99ms",
        "frames/s",
        "api99ms",
        "lost",
        "dup",
        "ooo",
        "srvCPU%/RSSMiB",
        "cliCPU%"
    );
    for st in &r.steps {
        let srv: Vec<String> = st
            .servers
            .iter()
            .map(|u| format!("{:.0}/{:.0}", u.cpu_pct, u.rss_mib))
            .collect();
        let _ = writeln!(
            s,
            "{:<14} {:>9} {:>9} {:>6} {:>11} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>9} {:>8} {:>6} {:>4} {:>4} {:>15} {:>7}",
            st.label,
            f(st.target_rate),
            f(st.publish_rate),
            st.publish_errors,
            f(st.deliveries_per_s),
            f(st.latency.p50_ms),
            f(st.latency.p90_ms),
            f(st.latency.p99_ms),
            f(st.latency.p999_ms),
            f(st.latency.max_ms),
            f(st.arrival.p99_ms),
            f(st.frames_per_s),
            f(st.api_call.p99_ms),
            st.lost,
            st.duplicates,
            st.reordered,
            if srv.is_empty() {
                "-".to_owned()
            } else {
                srv.join(",")
            },
            st.client
                .as_ref()
                .map(|c| format!("{:.0}", c.cpu_pct))
                .unwrap_or_default(),
        );
        for n in &st.per_node {
            let _ = writeln!(
                s,
                "  node {:<28} delivered {:>9}  p50 {} p99 {} max {} ms; at the socket p50 {} p99 {} ms",
                n.url,
                n.delivered,
                f(n.latency.p50_ms),
                f(n.latency.p99_ms),
                f(n.latency.max_ms),
                f(n.arrival.p50_ms),
                f(n.arrival.p99_ms)
            );
        }
        if !st.extra.is_empty() {
            let parts: Vec<String> = st
                .extra
                .iter()
                .map(|(k, v)| format!("{k}={}", f(*v)))
                .collect();
            let _ = writeln!(s, "  {}", parts.join("  "));
        }
        if !st.closes.is_empty() {
            let _ = writeln!(s, "  closed/failed: {:?}", st.closes);
        }
        if let Some(e) = &st.first_error {
            let _ = writeln!(s, "  first error: {e}");
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
