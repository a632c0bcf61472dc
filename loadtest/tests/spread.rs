//! Runs bigger than one process: the binary spreads its subscribers over worker processes
//! (at a low open-files limit on its own, or by `--per-process`), and every connection,
//! delivery and connect time is still counted once in the one report.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use herald::RunningNode;
use herald::config::Config;
use serde_json::Value;

fn secret() -> String {
    String::from_utf8(herald::testing::TEST_SECRET.to_vec()).unwrap()
}

fn report_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("herald-spread-{}-{name}.json", std::process::id()))
}

/// Runs the herald-loadtest binary with `args` (plus `--json`), optionally under an open-files
/// limit of `nofile` (soft and hard), and returns its report.
fn run(name: &str, nofile: Option<u64>, args: &[&str]) -> Value {
    let path = report_path(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald-loadtest"));
    cmd.args(args).arg("--quiet").arg("--json").arg(&path);
    if let Some(n) = nofile {
        // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("run herald-loadtest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}: {}\nstdout:\n{}\nstderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let report = std::fs::read(&path).expect("report written");
    let _ = std::fs::remove_file(&path);
    serde_json::from_slice(&report).expect("report is JSON")
}

fn node() -> RunningNode {
    herald_loadtest::net::raise_nofile();
    RunningNode::start(Config::for_test()).expect("start node")
}

fn notes(report: &Value) -> String {
    report["notes"].to_string()
}

#[test]
fn idle_run_past_the_open_files_limit_spreads_over_workers() {
    let node = node();
    let url = node.http_url();
    let secret = secret();
    let pid = std::process::id().to_string();
    // 450 open files hold 250 connections per process (200 reserved): 600 need 3 workers.
    let report = run(
        "idle",
        Some(450),
        &[
            "idle",
            "--url",
            &url,
            "--secret",
            &secret,
            "--channel",
            "chat:idle",
            "--connections",
            "600",
            "--settle-secs",
            "0.5",
            "--server-pid",
            &pid,
        ],
    );
    let step = &report["steps"][0];
    assert_eq!(step["extra"]["connected"], 600.0, "{report:#}");
    assert_eq!(step["extra"]["failed"], 0.0, "{report:#}");
    assert_eq!(step["extra"]["closed_while_idle"], 0.0, "{report:#}");
    assert!(
        notes(&report).contains("spread over 3 worker processes"),
        "{report:#}"
    );
    let per_conn = step["extra"][format!("pid{pid}_kib_per_conn_subscribed")]
        .as_f64()
        .expect("RSS per connection measured");
    assert!(per_conn > 0.0, "{report:#}");
    // The workers are gone with their connections (none lingers after the run).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.node.info().num_clients > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} clients still connected after the run",
            node.node.info().num_clients
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn fanout_over_workers_counts_every_delivery() {
    let node = node();
    let url = node.http_url();
    let secret = secret();
    let report = run(
        "fanout",
        None,
        &[
            "fanout",
            "--url",
            &url,
            "--api-key",
            herald::testing::TEST_API_KEY,
            "--secret",
            &secret,
            "--channel",
            "chat:spread",
            "--protobuf",
            "--subscribers",
            "30",
            "--per-process",
            "10",
            "--publishers",
            "2",
            "--rates",
            "200",
            "--step-secs",
            "1",
            "--settle-secs",
            "5",
        ],
    );
    assert!(
        notes(&report).contains("spread over 3 worker processes"),
        "{report:#}"
    );
    let s = &report["steps"][0];
    let published = s["published"].as_u64().unwrap();
    assert!(published >= 150, "{report:#}");
    assert_eq!(s["expected"].as_u64(), Some(published * 30), "{report:#}");
    assert_eq!(s["delivered"], s["expected"], "{report:#}");
    assert_eq!(s["latency"]["count"], s["delivered"], "{report:#}");
    assert_eq!(s["arrival"]["count"], s["delivered"], "{report:#}");
    for k in ["lost", "duplicates", "reordered"] {
        assert_eq!(s[k], 0, "{k}: {report:#}");
    }
}

#[test]
fn connect_storm_over_workers_times_every_connection() {
    let node = node();
    let url = node.http_url();
    let secret = secret();
    let report = run(
        "storm",
        None,
        &[
            "connect-storm",
            "--url",
            &url,
            "--secret",
            &secret,
            "--channel",
            "chat:storm",
            "--connections",
            "300",
            "--per-process",
            "100",
        ],
    );
    let s = &report["steps"][0];
    assert_eq!(s["extra"]["subscribed"], 300.0, "{report:#}");
    assert_eq!(s["latency"]["count"], 300, "{report:#}");
    assert!(
        notes(&report).contains("spread over 3 worker processes"),
        "{report:#}"
    );
}
