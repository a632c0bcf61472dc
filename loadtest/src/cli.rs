//! Command line: one subcommand per scenario, the runtime, and the output (table on stdout,
//! progress on stderr, `--json`, `--charts`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use clap::{Parser, Subcommand};

use crate::progress::{Live, spawn_printer};
use crate::report::{Machine, Report, Step, table};
use crate::scenarios::{self, Common};

#[derive(Debug, Parser)]
#[command(
    name = "herald-loadtest",
    version,
    about = "Load generator for Herald (127.0.0.0/8 only)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N subscribers of one channel; publish rate ramp through the HTTP API.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::fanout::Args,
    },
    /// Many clients, each on a personal and a group channel; random publications.
    Channels {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::channels::Args,
    },
    /// Subscribers spread over several --url nodes sharing Redis; publish on the first.
    Crossnode {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::crossnode::Args,
    },
    /// N idle subscribed connections: server RSS per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::idle::Args,
    },
    /// N clients connect + authenticate + subscribe at once.
    ConnectStorm {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::storm::Args,
    },
    /// Server API throughput: single publish vs batches.
    Publish {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::publish::Args,
    },
}

impl Scenario {
    pub fn common(&self) -> &Common {
        match self {
            Scenario::Fanout { common, .. }
            | Scenario::Channels { common, .. }
            | Scenario::Crossnode { common, .. }
            | Scenario::Idle { common, .. }
            | Scenario::ConnectStorm { common, .. }
            | Scenario::Publish { common, .. } => common,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout { .. } => "fanout",
            Scenario::Channels { .. } => "channels",
            Scenario::Crossnode { .. } => "crossnode",
            Scenario::Idle { .. } => "idle",
            Scenario::ConnectStorm { .. } => "connect-storm",
            Scenario::Publish { .. } => "publish",
        }
    }

    fn params(&self) -> serde_json::Value {
        let v = match self {
            Scenario::Fanout { args, .. } => serde_json::to_value(args),
            Scenario::Channels { args, .. } => serde_json::to_value(args),
            Scenario::Crossnode { args, .. } => serde_json::to_value(args),
            Scenario::Idle { args, .. } => serde_json::to_value(args),
            Scenario::ConnectStorm { args, .. } => serde_json::to_value(args),
            Scenario::Publish { args, .. } => serde_json::to_value(args),
        };
        serde_json::json!({
            "common": serde_json::to_value(self.common()).unwrap_or_default(),
            "scenario": v.unwrap_or_default(),
        })
    }
}

/// Runs a scenario inside the current runtime; returns the report (not printed).
pub async fn run_scenario(s: &Scenario, live: &Arc<Live>) -> anyhow::Result<Report> {
    let mut notes = Vec::new();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let steps: Vec<Step> = match s {
        Scenario::Fanout { common, args } => {
            scenarios::fanout::run(common, args, live, &mut notes).await?
        }
        Scenario::Channels { common, args } => {
            scenarios::channels::run(common, args, live, &mut notes).await?
        }
        Scenario::Crossnode { common, args } => {
            scenarios::crossnode::run(common, args, live, &mut notes).await?
        }
        Scenario::Idle { common, args } => {
            scenarios::idle::run(common, args, live, &mut notes).await?
        }
        Scenario::ConnectStorm { common, args } => {
            scenarios::storm::run(common, args, live, &mut notes).await?
        }
        Scenario::Publish { common, args } => {
            scenarios::publish::run(common, args, live, &mut notes).await?
        }
    };
    Ok(Report {
        scenario: s.name().to_owned(),
        command_line: std::env::args().collect(),
        machine: Machine::detect(),
        started_unix_s,
        params: s.params(),
        steps,
        notes,
    })
}

/// The binary's main: parse, run on a multi-thread runtime, print and write the outputs.
pub fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some(crate::fleet::WORKER_COMMAND) {
        return crate::fleet::worker::main();
    }
    let cli = Cli::parse();
    let common = cli.scenario.common().clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.workers.max(1))
        .enable_all()
        .build()?;
    let live = Arc::new(Live::default());
    let printer = spawn_printer(live.clone(), !common.quiet);
    let result = rt.block_on(run_scenario(&cli.scenario, &live));
    live.done.store(true, Relaxed);
    if let Some(p) = printer {
        let _ = p.join();
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let report = result?;
    print!("{}", table(&report));
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("json: {}", path.display());
    }
    if let Some(dir) = &common.charts {
        for f in crate::charts::write(&report, dir)? {
            println!("chart: {}", f.display());
        }
    }
    Ok(())
}
