//! A node in a process of its own, for what an in-process node cannot show: its resident
//! memory, or a SIGKILL. Started from the crate's binary (an integration test passes
//! `env!("CARGO_BIN_EXE_herald")`) with a configuration file, on a free port; killed when
//! dropped.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct HeraldProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl HeraldProcess {
    /// Starts `bin --config config --listen 127.0.0.1:<free port>` and waits until `/ready`
    /// answers 200 (20 s at most).
    pub async fn start(bin: &str, config: &Path) -> HeraldProcess {
        Self::start_with(bin, config, &[("HERALD_LOG", "warn")], false).await
    }

    /// [`HeraldProcess::start`] with these environment variables, and with its stdout and
    /// stderr kept for [`HeraldProcess::stop`] when `capture`.
    pub async fn start_with(
        bin: &str,
        config: &Path,
        env: &[(&str, &str)],
        capture: bool,
    ) -> HeraldProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(bin);
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD_") {
                command.env_remove(key);
            }
        }
        if capture {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let child = command
            .envs(env.iter().copied())
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

    /// SIGTERM; waits (10 s at most) for a clean exit and returns what the process wrote to
    /// stdout, then stderr (empty unless started with `capture`).
    pub fn stop(mut self) -> String {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(terminated.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for herald") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "herald did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "herald exited with {status}");
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut out);
        }
        out
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
