//! A node in a process of its own, for what an in-process node cannot show: its resident
//! memory, or a SIGKILL. Started from the crate's binary (an integration test passes
//! `env!("CARGO_BIN_EXE_herald")`) with a configuration file, on a free port; killed when
//! dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct HeraldProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl HeraldProcess {
    /// Starts `bin --config config --listen 127.0.0.1:<free port>` and waits until `/ready`
    /// answers 200 (20 s at most).
    pub async fn start(bin: &str, config: &Path) -> HeraldProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(bin)
            .env("HERALD_LOG", "warn")
            // The tests' own switch, not a configuration variable: the engine is in `config`.
            .env_remove(crate::config::WebSocketEngine::UNDER_TEST_ENV)
            .arg("--config")
            .arg(config)
            .args(["--listen", &addr.to_string(), "run"])
            .spawn()
            .expect("spawn herald");
        let process = HeraldProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !process.ready().await {
            assert!(
                Instant::now() < deadline,
                "herald process never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    async fn ready(&self) -> bool {
        let api = super::Api::new(self.addr, "");
        let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(self.addr),
        )
        .await
        else {
            return false;
        };
        drop(stream);
        api.request("GET", "/ready", &[], "").await.0 == 200
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
