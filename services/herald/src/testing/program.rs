//! Client programs run by the end-to-end tests (the official SDKs in tests/sdk, socket.io-client
//! in tests/socketio): a child process that prints one JSON line per event on stdout
//! (`{"event": …}`), may read commands on stdin, and exits 0 on success. Killed when dropped (a
//! failed or timed-out test). Their dependencies are installed by `bash .ci/install-test-deps`;
//! a missing install fails the tests rather than skipping them.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

pub const INSTALL_HINT: &str = "run `bash .ci/install-test-deps` from the repository root";

/// The Node.js interpreter: `HERALD_TEST_NODE`, else `node` on the PATH.
pub fn node_bin() -> String {
    std::env::var("HERALD_TEST_NODE").unwrap_or_else(|_| "node".to_owned())
}

/// Runs `body`, failing the test after `limit`; programs still running are killed (on drop).
pub async fn with_timeout(name: &str, limit: Duration, body: impl Future<Output = ()>) {
    if tokio::time::timeout(limit, body).await.is_err() {
        panic!("{name}: timed out after {limit:?}");
    }
}

/// One client program: its stdout read line by line, its stderr collected for failure
/// messages.
pub struct Program {
    name: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// What the program reads, for the ones that take input.
    stdin: ChildStdin,
    stderr: Option<JoinHandle<String>>,
    /// Every stdout line so far, for failure messages.
    seen: Vec<String>,
}

impl Program {
    /// Starts `program args…` in `dir`; `name` labels it in failure messages.
    pub fn spawn(name: &str, program: impl AsRef<OsStr>, dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(program.as_ref())
            .args(args)
            .current_dir(dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{name}: cannot run {:?} ({e}); {INSTALL_HINT}",
                    program.as_ref()
                )
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        Program {
            name: name.to_owned(),
            child,
            lines: BufReader::new(stdout).lines(),
            stdin,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes one line to the program's stdin.
    pub async fn send_line(&mut self, line: &str) {
        let written = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.write_all(b"\n").await?;
            self.stdin.flush().await
        };
        written
            .await
            .unwrap_or_else(|e| panic!("{}: writing stdin: {e}", self.name));
    }

    /// The next stdout line, parsed; fails the test (with the program's stderr) at end of output
    /// or on an `{"event":"error"}` line.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .unwrap_or_else(|e| panic!("{}: reading stdout: {e}", self.name));
            let Some(line) = line else {
                let status = self.child.wait().await;
                let report = self.report().await;
                panic!(
                    "{}: stdout ended before the expected event (exit: {status:?})\n{report}",
                    self.name
                );
            };
            self.seen.push(line.clone());
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.get("event").is_some() => {
                    if v["event"] == "error" {
                        let _ = self.child.wait().await;
                        let report = self.report().await;
                        panic!("{}: reported an error: {line}\n{report}", self.name);
                    }
                    return v;
                }
                _ => eprintln!("{}: ignoring stdout line {line:?}", self.name),
            }
        }
    }

    /// Reads events until one named `event`; any other event on the way fails the test.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        let v = self.next_event().await;
        if v["event"] != event {
            self.fail(&format!("expected event {event:?}, got {v}"))
                .await;
        }
        v
    }

    /// Reads events until one for which `wanted` holds, skipping the others; returns it and
    /// the skipped ones.
    pub async fn skip_until(&mut self, wanted: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let v = self.next_event().await;
            if wanted(&v) {
                return (v, skipped);
            }
            skipped.push(v);
        }
    }

    /// Expects exactly `expected` publications (their `data`), in this order.
    pub async fn expect_publications(&mut self, expected: &[Value]) {
        for (i, want) in expected.iter().enumerate() {
            let v = self.expect_event("publication").await;
            if v["data"] != *want {
                self.fail(&format!(
                    "publication #{} is {}, expected {want} (publications must arrive exactly \
                     once and in order)",
                    i + 1,
                    v["data"]
                ))
                .await;
            }
        }
    }

    /// Expects end of output and exit status 0.
    pub async fn expect_success(mut self) {
        while let Some(line) = self
            .lines
            .next_line()
            .await
            .unwrap_or_else(|e| panic!("{}: reading stdout: {e}", self.name))
        {
            self.seen.push(line.clone());
            let is_event = serde_json::from_str::<Value>(&line)
                .map(|v| v.get("event").is_some())
                .unwrap_or(false);
            if is_event {
                self.fail(&format!("unexpected event after the last one: {line}"))
                    .await;
            }
        }
        let status: ExitStatus = self.child.wait().await.expect("wait for program");
        if !status.success() {
            self.fail(&format!("exited with {status}")).await;
        }
    }

    /// Fails the test with `message`, the program's output so far and its stderr.
    pub async fn fail(&mut self, message: &str) -> ! {
        let report = self.report().await;
        panic!("{}: {message}\n{report}", self.name);
    }

    /// Stdout so far and the program's stderr (kills the program, waits briefly for stderr).
    pub async fn report(&mut self) -> String {
        let _ = self.child.start_kill();
        let stderr = match self.stderr.take() {
            Some(h) => tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .map(|r| r.unwrap_or_default())
                .unwrap_or_else(|_| "<stderr not closed>".to_owned()),
            None => String::new(),
        };
        format!(
            "--- stdout of {} ---\n{}\n--- stderr of {} ---\n{}",
            self.name,
            self.seen.join("\n"),
            self.name,
            stderr
        )
    }
}
