//! Real Redis servers for tests: [`RedisServer`] (one standalone server) and [`RedisCluster`]
//! (three masters, no replicas, `cluster-enabled yes`).
//!
//! # Why real servers
//!
//! The Redis broker's hard parts are exactly what a mock would get wrong: the wire protocol,
//! pub/sub delivery, `MOVED` redirections in a cluster, and what happens when the server goes
//! away and comes back. So every fixture here spawns a real `redis-server` process, owned by
//! the test: the test can [`kill`](RedisServer::kill) it (SIGKILL, no goodbye to the clients),
//! [`restart`](RedisServer::restart) it on the same port, or cut its pub/sub clients with
//! `server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"])`. Fixtures never use a shared or
//! pre-existing Redis (not even one named by an environment variable): a test that kills its
//! server must not kill anyone else's.
//!
//! If `redis-server` (or `redis-cli`) is not installed the fixtures **panic** with instructions
//! (`apt-get install redis-server`, or `bash .ci/install-test-deps`) rather than skipping: a
//! Redis test that silently skips is a test that cannot fail.
//!
//! # Synchronous by design
//!
//! The API is blocking (`std::process`, `std::net`, short sleeps), so one set of fixtures serves
//! plain `#[test]`s and `#[tokio::test]`s on both the current-thread and the multi-thread
//! runtime. Calling it directly from async code is fine in tests:
//!
//! - [`RedisServer::start`], [`RedisServer::restart`] and [`RedisServer::kill`] normally take
//!   a few tens of milliseconds (the wait for PING is bounded by 10 s, reached only when
//!   something is broken, and then the test panics anyway);
//! - [`RedisServer::cli`] spawns `redis-cli` once, a few milliseconds;
//! - [`RedisCluster::start`] takes one to three seconds (`redis-cli --cluster create` waits for
//!   the nodes to agree). Call it at the top of the test, before spawning tasks that would need
//!   the runtime meanwhile; on a multi-thread runtime `tokio::task::spawn_blocking` also works.
//!
//! While a fixture blocks, a current-thread runtime runs nothing else, so don't call `kill`
//! or `restart` while a spawned task on that runtime is expected to make progress *during* the
//! call; it resumes when the call returns.
//!
//! # Cleanup
//!
//! Each server gets its own directory under [`std::env::temp_dir`]
//! (`herald-redis-<pid>-<counter>-<port>`), with `redis.log` (the server's log, quoted in
//! panic messages) and `stdio.log`. Dropping a fixture SIGKILLs its processes, reaps them (no
//! zombies) and removes the directories. `Drop` also runs while a failing test unwinds, so a
//! panicking test cleans up too; only a test process that is itself killed (SIGKILL, abort)
//! leaves its servers running, since nothing in the process gets to run then.
//!
//! # Passwords and TLS
//!
//! [`RedisServer::start_with`] takes [`RedisOptions`]: a `password` (`--requirepass`; the
//! [`url`](RedisServer::url) then carries `:password@`), and `tls`: the server then listens
//! with TLS only (`--port 0 --tls-port <port>`, clients are not asked for certificates) with a
//! certificate for `127.0.0.1` (IP SAN) and `localhost`, signed by a test CA generated with the
//! `openssl` command-line tool into the server's directory (once per server: a
//! [`restart`](RedisServer::restart) keeps options and certificates). The URL is then
//! `rediss://`, [`ca_cert_pem`](RedisServer::ca_cert_pem) gives the CA, and `cli` runs
//! `redis-cli --tls --cacert <ca>` (with `-a <password>` when there is one).
//! [`RedisCluster::start_with`] takes a password (every node requires it), not TLS.
//!
//! # Example
//!
//! ```no_run
//! use herald_engine::testing::redis::RedisServer;
//!
//! let mut redis = RedisServer::start();
//! assert_eq!(redis.cli(&["PING"]), "PONG");
//! let url = redis.url(); // redis://127.0.0.1:<port>
//! redis.kill();
//! assert!(redis.try_cli(&["PING"]).is_err());
//! redis.restart(); // same port, empty data set
//! # let _ = url;
//! ```

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const HOST: &str = "127.0.0.1";
const SERVER_BIN: &str = "redis-server";
const CLI_BIN: &str = "redis-cli";
const OPENSSL_BIN: &str = "openssl";
/// File names of the generated TLS material, in the server's directory.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
/// The openssl configuration for the test CA and the server certificate (ECDSA P-256).
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = Herald Test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";
const INSTALL_HINT: &str = "install it with `apt-get install redis-server` (which also brings redis-cli), \
     or run `bash .ci/install-test-deps` from the repository root";

/// How long a started server has to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster has, from `--cluster create` on, to report `cluster_state:ok` everywhere.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `redis-cli` invocation may take before it is killed.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting a server on a fresh free port when the chosen one was taken meanwhile.
const BIND_ATTEMPTS: usize = 3;
/// The cluster bus listens on the client port + 10000.
const CLUSTER_BUS_OFFSET: u16 = 10000;
/// Number of masters in a [`RedisCluster`].
const CLUSTER_NODES: usize = 3;
const POLL: Duration = Duration::from_millis(10);

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Standalone,
    ClusterNode,
}

/// Why one start attempt failed.
enum StartError {
    /// The port (or the cluster bus port) was taken between choosing it and binding it.
    AddrInUse(String),
    /// Anything else; the message says what and quotes the log.
    Other(String),
}

/// How [`RedisServer::start_with`] sets a server up; the default is [`RedisServer::start`]'s
/// (no password, no TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// `--requirepass <password>`: clients must `AUTH` (the `default` user).
    pub password: Option<String>,
    /// Serve TLS only (`--port 0 --tls-port <port>`), with a certificate for `127.0.0.1` and
    /// `localhost` signed by a CA generated for this server.
    pub tls: bool,
}

/// One real `redis-server` process on `127.0.0.1:<port>`, owned by the test.
///
/// Killed, reaped and its directory removed on drop (also while a test panics).
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    kind: Kind,
    options: RedisOptions,
}

impl RedisServer {
    /// Starts a fresh standalone server on a free port and waits until it answers PING.
    ///
    /// Always starts its own server (never a shared one), so the test may kill and restart it.
    /// Runs `redis-server --port <free> --bind 127.0.0.1 --daemonize no --save "" --appendonly
    /// no --dir <tempdir> --logfile <tempdir>/redis.log`. If the port was taken by someone else
    /// between choosing and binding it, retries on another port (3 attempts in all).
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be spawned (with instructions to install it), if it exits
    /// before answering, or if it does not answer PING within 10 s (quoting its log).
    pub fn start() -> RedisServer {
        Self::launch(Kind::Standalone, RedisOptions::default())
    }

    /// Like [`start`](Self::start), with a password and/or TLS (see [`RedisOptions`] and the
    /// [module docs](self#passwords-and-tls)). With `tls`, the CA and server certificates are
    /// generated first with `openssl` (a few tens of milliseconds).
    ///
    /// # Panics
    ///
    /// Like [`start`](Self::start), or if `openssl` is missing or fails.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        Self::launch(Kind::Standalone, options)
    }

    /// The options the server was started with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The PEM of the CA that signed the server's certificate, `None` without TLS.
    pub fn ca_cert_pem(&self) -> Option<Vec<u8>> {
        let path = self.ca_cert_path()?;
        Some(fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display())))
    }

    /// The path of the CA certificate (PEM) in the server's directory, `None` without TLS.
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.join(CA_CERT))
    }

    /// The server's TCP port on 127.0.0.1; the same across [`kill`](Self::kill) and
    /// [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`; `rediss://` with TLS, and `redis://:<password>@127.0.0.1:<port>`
    /// with a password (percent-encoded where needed).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        let auth = match &self.options.password {
            Some(password) => format!(":{}@", percent_encode(password)),
            None => String::new(),
        };
        format!("{scheme}://{auth}{HOST}:{}", self.port)
    }

    /// The process id of the running server, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running (it was started or restarted, not killed, and has
    /// not exited on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The server's own directory (its `--dir`), which holds `redis.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server with SIGKILL (clients see the connection drop, nothing is flushed) and
    /// waits for the process. The port number is kept for [`restart`](Self::restart).
    /// Does nothing if the server is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Err only if it has already exited; wait() then reaps it all the same.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the SAME port and waits until it answers PING. The data set
    /// starts empty (no persistence); a cluster node reloads its `nodes-<port>.conf`.
    /// Kills the running server first if it was not killed.
    ///
    /// # Panics
    ///
    /// If the server cannot be started on its port (for instance because another process took
    /// the port after [`kill`](Self::kill)), quoting its log.
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        for attempt in 1..=BIND_ATTEMPTS {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::AddrInUse(log)) => {
                    last = log;
                    if attempt < BIND_ATTEMPTS {
                        thread::sleep(Duration::from_millis(200));
                    }
                }
                Err(StartError::Other(message)) => {
                    panic!("restarting redis-server on port {}: {message}", self.port)
                }
            }
        }
        panic!(
            "restarting redis-server on port {}: the port stayed in use ({BIND_ATTEMPTS} \
             attempts); redis.log:\n{last}",
            self.port
        );
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args...>` and returns its stdout, trimmed. With
    /// TLS it adds `--tls --cacert <ca>`, with a password `-a <password> --no-auth-warning`.
    ///
    /// # Panics
    ///
    /// If the command fails: see [`try_cli`](Self::try_cli) for what counts as failing.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|error| {
            panic!("redis-cli -p {} {}: {error}", self.port, args.join(" "))
        })
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args...>`: `Ok(stdout trimmed)`, or `Err` with
    /// what went wrong when redis-cli exits non-zero (e.g. connection refused after
    /// [`kill`](Self::kill)), when the reply is a Redis error (`ERR ...`, `WRONGTYPE ...`, ...;
    /// recognised by the first line of output, so a *value* that starts like an error reply
    /// reads as one), or when it runs longer than 10 s.
    ///
    /// # Panics
    ///
    /// If `redis-cli` itself cannot be spawned: a missing tool is not a failed command.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let prefix = self.cli_prefix();
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        run_cli(&prefix, args, CLI_TIMEOUT)
    }

    /// `-h 127.0.0.1 -p <port>`, plus the TLS and password options the server needs.
    fn cli_prefix(&self) -> Vec<String> {
        let mut prefix = vec![
            "-h".to_owned(),
            HOST.to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
        ];
        if self.options.tls {
            prefix.extend([
                "--tls".to_owned(),
                "--cacert".to_owned(),
                self.dir.join(CA_CERT).display().to_string(),
            ]);
        }
        if let Some(password) = &self.options.password {
            prefix.extend([
                "-a".to_owned(),
                password.clone(),
                "--no-auth-warning".to_owned(),
            ]);
        }
        prefix
    }

    fn launch(kind: Kind, options: RedisOptions) -> RedisServer {
        let mut last = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = match kind {
                Kind::Standalone => free_port(),
                Kind::ClusterNode => free_cluster_port(),
            };
            let dir = unique_dir(port);
            // Constructed before spawning, so that Drop cleans up whatever happens next.
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                kind,
                options: options.clone(),
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::AddrInUse(log)) => last = log,
                Err(StartError::Other(message)) => {
                    panic!("starting redis-server on port {port}: {message}")
                }
            }
        }
        panic!(
            "starting redis-server: the chosen free port was taken before redis-server could \
             bind it, {BIND_ATTEMPTS} times in a row; last redis.log:\n{last}"
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn args(&self) -> Vec<OsString> {
        let port = self.port.to_string();
        let mut args: Vec<OsString> = if self.options.tls {
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.into(),
                "--tls-cert-file".into(),
                self.dir.join(SERVER_CERT).into(),
                "--tls-key-file".into(),
                self.dir.join(SERVER_KEY).into(),
                "--tls-ca-cert-file".into(),
                self.dir.join(CA_CERT).into(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]
        } else {
            vec!["--port".into(), port.into()]
        };
        if let Some(password) = &self.options.password {
            args.extend(["--requirepass".into(), password.into()]);
            if self.kind == Kind::ClusterNode {
                args.extend(["--masterauth".into(), password.into()]);
            }
        }
        args.extend([
            "--bind".into(),
            HOST.into(),
            "--daemonize".into(),
            "no".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.clone().into(),
            "--logfile".into(),
            self.log_path().into(),
        ]);
        if self.kind == Kind::ClusterNode {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                self.dir.join(format!("nodes-{}.conf", self.port)).into(),
                "--cluster-node-timeout".into(),
                "2000".into(),
            ]);
        }
        args
    }

    /// Spawns the process on `self.port` and waits until it answers PING as itself.
    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        debug_assert!(self.child.is_none());
        fs::create_dir_all(&self.dir).map_err(|error| {
            StartError::Other(format!("creating {}: {error}", self.dir.display()))
        })?;
        if self.options.tls && !self.dir.join(SERVER_CERT).exists() {
            generate_certificates(&self.dir).map_err(StartError::Other)?;
        }
        // Early errors (bad arguments) go to stdout/stderr before --logfile takes over.
        let stdio_path = self.dir.join("stdio.log");
        let stdio = File::options()
            .create(true)
            .append(true)
            .open(&stdio_path)
            .and_then(|file| Ok((file.try_clone()?, file)))
            .map_err(|error| {
                StartError::Other(format!("creating {}: {error}", stdio_path.display()))
            })?;
        let child = Command::new(SERVER_BIN)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(stdio.0)
            .stderr(stdio.1)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run `{SERVER_BIN}` ({error}); the Redis tests need a real Redis: {INSTALL_HINT}")
            });
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(self.exited_early(status));
            }
            if self.answers_as(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartError::Other(format!(
                    "no PONG within {READY_TIMEOUT:?}; {}",
                    self.logs()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the server answers PING and is the process `pid` (not some other process that
    /// took the port while ours failed to bind it).
    fn answers_as(&self, pid: u32) -> bool {
        if !self.options.tls {
            return answers_as(self.port, self.options.password.as_deref(), pid);
        }
        let prefix = self.cli_prefix();
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let expected = format!("process_id:{pid}");
        run_cli(&prefix, &["INFO", "server"], Duration::from_secs(2))
            .is_ok_and(|info| info.lines().any(|line| line.trim() == expected))
    }

    fn exited_early(&self, status: ExitStatus) -> StartError {
        let logs = self.logs();
        if logs.contains("Address already in use") {
            StartError::AddrInUse(logs)
        } else {
            StartError::Other(format!(
                "redis-server exited ({status}) before answering PING; {logs}"
            ))
        }
    }

    /// The server's log and its early stdout/stderr, for panic messages.
    fn logs(&self) -> String {
        let read = |path: PathBuf| fs::read_to_string(&path).unwrap_or_default();
        let mut text = format!("redis.log:\n{}", read(self.log_path()));
        let stdio = read(self.dir.join("stdio.log"));
        if !stdio.trim().is_empty() {
            let _ = write!(text, "\nstdout/stderr:\n{stdio}");
        }
        text
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A real three-master Redis Cluster (no replicas) on 127.0.0.1, owned by the test.
///
/// Each node is a [`RedisServer`] started with `--cluster-enabled yes`, so
/// [`node_mut`](Self::node_mut) gives kill/restart of single nodes. All nodes are killed,
/// reaped and their directories removed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled masters on free ports (each below 55535, with port + 10000
    /// free for the cluster bus), joins them with `redis-cli --cluster create ...
    /// --cluster-replicas 0 --cluster-yes`, and waits until every node's `CLUSTER INFO` shows
    /// `cluster_state:ok` and `cluster_known_nodes:3` (20 s at most). Takes one to three
    /// seconds.
    ///
    /// # Panics
    ///
    /// Like [`RedisServer::start`], or if the cluster does not come up in time (quoting each
    /// node's `CLUSTER INFO` and the output of `--cluster create`).
    pub fn start() -> RedisCluster {
        Self::start_with(RedisOptions::default())
    }

    /// Like [`start`](Self::start), every node requiring `options.password` (the
    /// [`urls`](Self::urls) then carry `:password@`, and `cli` passes `-a`).
    ///
    /// # Panics
    ///
    /// Like [`start`](Self::start), or with `options.tls` (not supported for clusters).
    pub fn start_with(options: RedisOptions) -> RedisCluster {
        assert!(!options.tls, "RedisCluster does not support TLS");
        let mut cluster = RedisCluster {
            nodes: Vec::with_capacity(CLUSTER_NODES),
        };
        for _ in 0..CLUSTER_NODES {
            // Running nodes hold their ports and bus ports, so the next pick avoids them.
            cluster
                .nodes
                .push(RedisServer::launch(Kind::ClusterNode, options.clone()));
        }

        let addresses: Vec<String> = cluster
            .ports()
            .iter()
            .map(|port| format!("{HOST}:{port}"))
            .collect();
        let mut args: Vec<&str> = addresses.iter().map(String::as_str).collect();
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let mut prefix = vec!["--cluster", "create"];
        if let Some(password) = &options.password {
            prefix.extend(["-a", password, "--no-auth-warning"]);
        }
        let created = run_cli(&prefix, &args, CLUSTER_TIMEOUT);
        if let Err(error) = &created {
            panic!(
                "redis-cli --cluster create {}: {error}",
                addresses.join(" ")
            );
        }

        let expected_nodes = format!("cluster_known_nodes:{CLUSTER_NODES}");
        loop {
            let infos: Vec<Result<String, String>> = (0..CLUSTER_NODES)
                .map(|node| cluster.try_cli(node, &["CLUSTER", "INFO"]))
                .collect();
            let ready = infos.iter().all(|info| {
                info.as_ref().is_ok_and(|info| {
                    info.lines().any(|line| line.trim() == "cluster_state:ok")
                        && info.lines().any(|line| line.trim() == expected_nodes)
                })
            });
            if ready {
                return cluster;
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for (node, info) in infos.iter().enumerate() {
                    let _ = write!(report, "\n--- node {node} ({}):\n{info:?}", addresses[node]);
                }
                panic!(
                    "Redis Cluster not ok within {CLUSTER_TIMEOUT:?}; --cluster create said:\n{}{report}",
                    created.unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The three nodes' client ports, in node order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// `redis://127.0.0.1:<port>` for each node, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Runs `redis-cli -c -h 127.0.0.1 -p <port of node> <args...>` (`-c`: follows `MOVED` and
    /// `ASK` redirections) and returns stdout trimmed.
    ///
    /// # Panics
    ///
    /// If `node` is out of range or the command fails (see [`RedisServer::try_cli`]).
    pub fn cli(&self, node: usize, args: &[&str]) -> String {
        self.try_cli(node, args).unwrap_or_else(|error| {
            panic!(
                "redis-cli -c -p {} {}: {error}",
                self.nodes[node].port,
                args.join(" ")
            )
        })
    }

    /// Like [`cli`](Self::cli), returning failures as `Err` (see [`RedisServer::try_cli`]).
    pub fn try_cli(&self, node: usize, args: &[&str]) -> Result<String, String> {
        let prefix = self.nodes[node].cli_prefix();
        let prefix: Vec<&str> = ["-c"]
            .into_iter()
            .chain(prefix.iter().map(String::as_str))
            .collect();
        run_cli(&prefix, args, CLI_TIMEOUT)
    }

    /// One node, for its port, URL or non-redirecting `cli`.
    pub fn node(&self, node: usize) -> &RedisServer {
        &self.nodes[node]
    }

    /// One node, to [`kill`](RedisServer::kill) or [`restart`](RedisServer::restart) it. With no
    /// replicas, the cluster is down (`cluster_state:fail` after the 2 s node timeout) while a
    /// node is down; a restarted node rejoins from its `nodes-<port>.conf`.
    pub fn node_mut(&mut self, node: usize) -> &mut RedisServer {
        &mut self.nodes[node]
    }
}

/// Runs `redis-cli <prefix...> <args...>` with a time limit; see [`RedisServer::try_cli`].
fn run_cli(prefix: &[&str], args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(CLI_BIN)
        .args(prefix)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run `{CLI_BIN}` ({error}); the Redis tests need it: {INSTALL_HINT}")
        });
    // Drain both pipes while waiting, so a large reply cannot block redis-cli on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let output = || format!("{}{}", stderr.trim(), stdout.trim());
    match status {
        None => Err(format!(
            "redis-cli timed out after {timeout:?}: {}",
            output()
        )),
        Some(status) if !status.success() => {
            Err(format!("redis-cli exited ({status}): {}", output()))
        }
        Some(_) if is_error_reply(&stdout) => Err(stdout.trim().to_string()),
        Some(_) => Ok(stdout.trim().to_string()),
    }
}

/// Whether redis-cli's (non-tty, raw) output is an error reply: redis-cli prints those as
/// `ERR ...`, `WRONGTYPE ...` etc. and still exits 0.
fn is_error_reply(stdout: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "ERR",
        "WRONGTYPE",
        "MOVED",
        "ASK",
        "NOAUTH",
        "NOPERM",
        "WRONGPASS",
        "CROSSSLOT",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "LOADING",
        "BUSY",
        "BUSYKEY",
        "NOSCRIPT",
        "READONLY",
        "EXECABORT",
        "NOPROTO",
        "MASTERDOWN",
        "MISCONF",
        "OOM",
        "NOREPLICAS",
        "UNKILLABLE",
        "NOTBUSY",
        "NOGOODSLAVE",
    ];
    let first = stdout.trim_start().lines().next().unwrap_or("");
    // An error reply is a code, a space and a message; a bare "ERR" is a value.
    first
        .split_once(' ')
        .is_some_and(|(code, _)| PREFIXES.contains(&code))
}

/// Whether `127.0.0.1:<port>` (plain TCP) answers PING with PONG and is the server with process
/// id `pid` (not some other process that took the port while ours failed to bind it); with a
/// password, after `AUTH`.
fn answers_as(port: u16, password: Option<&str>, pid: u32) -> bool {
    let probe = || -> io::Result<bool> {
        let address = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        if let Some(password) = password {
            // A RESP array, so any byte of the password is sent as is.
            let mut auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n", password.len()).into_bytes();
            auth.extend_from_slice(password.as_bytes());
            auth.extend_from_slice(b"\r\n");
            stream.write_all(&auth)?;
        }
        stream.write_all(b"PING\r\nINFO server\r\n")?;
        let mut reader = BufReader::new(stream);
        if password.is_some() && read_reply(&mut reader)? != "OK" {
            return Ok(false);
        }
        if read_reply(&mut reader)? != "PONG" {
            return Ok(false);
        }
        let info = read_reply(&mut reader)?;
        let expected = format!("process_id:{pid}");
        Ok(info.lines().any(|line| line.trim() == expected))
    };
    probe().unwrap_or(false)
}

/// Reads one simple-string, error or bulk-string RESP reply; errors keep their `-`.
fn read_reply(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    match line.as_bytes().first() {
        Some(b'+') => Ok(line[1..].to_string()),
        Some(b'-') => Ok(line.to_string()),
        Some(b'$') => {
            let length: usize = line[1..]
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, line.to_string()))?;
            let mut body = vec![0; length + 2];
            reader.read_exact(&mut body)?;
            body.truncate(length);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, line.to_string())),
    }
}

/// Generates a CA and a server certificate for `127.0.0.1`/`localhost` signed by it into `dir`
/// (see the `*_CERT`/`*_KEY` names), with the `openssl` command-line tool.
fn generate_certificates(dir: &Path) -> Result<(), String> {
    let config = dir.join("openssl.cnf");
    fs::write(&config, OPENSSL_CONFIG)
        .map_err(|error| format!("writing {}: {error}", config.display()))?;
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509", "-new"][..],
            &new_key,
            &["-keyout", CA_KEY, "-out", CA_CERT],
        ]
        .concat()
        .into_iter()
        .chain([
            "-days",
            "3650",
            "-config",
            "openssl.cnf",
            "-extensions",
            "v3_ca",
        ])
        .collect(),
        [&["req", "-new"][..], &new_key]
            .concat()
            .into_iter()
            .chain([
                "-keyout",
                SERVER_KEY,
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            CA_CERT,
            "-CAkey",
            CA_KEY,
            "-set_serial",
            "2",
            "-days",
            "3650",
            "-out",
            SERVER_CERT,
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "v3_server",
        ],
    ];
    for args in steps {
        let output = Command::new(OPENSSL_BIN)
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run `{OPENSSL_BIN}` ({error}); the Redis TLS tests need it to make \
                     certificates: install it with `apt-get install openssl`"
                )
            });
        if !output.status.success() {
            return Err(format!(
                "openssl {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    Ok(())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a URL's userinfo.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read it, release it).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("binding 127.0.0.1:0 to find a free port: {error}"));
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// A port below 55535 that was free a moment ago, together with port + 10000 (the cluster bus).
fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let Ok(address) = listener.local_addr() else {
            continue;
        };
        let port = address.port();
        let Some(bus) = port.checked_add(CLUSTER_BUS_OFFSET) else {
            continue;
        };
        // Redis binds the bus on the same address as the client port.
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return port;
        }
    }
    panic!("found no free port P below 55535 with P + 10000 also free, in 1000 tries");
}

/// A new directory path under the system temp dir: `herald-redis-<pid>-<counter>-<port>`.
fn unique_dir(port: u16) -> PathBuf {
    let counter = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "herald-redis-{}-{counter}-{port}",
        std::process::id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts_connections(port: u16) -> bool {
        let address = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
    }

    fn process_exists(pid: u32) -> bool {
        // Reaped processes leave no /proc entry; zombies would.
        Path::new("/proc").join(pid.to_string()).exists()
    }

    #[test]
    fn start_kill_restart_on_the_same_port() {
        let mut redis = RedisServer::start();
        let port = redis.port();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
        assert_eq!(redis.cli(&["PING"]), "PONG");
        assert_eq!(redis.cli(&["SET", "k", "v"]), "OK");
        assert!(redis.is_running());
        let first_pid = redis.pid().expect("running");

        redis.kill();
        assert!(!redis.is_running());
        assert_eq!(redis.pid(), None);
        let error = redis
            .try_cli(&["PING"])
            .expect_err("PING must fail after kill");
        assert!(error.contains("Connection refused"), "{error}");
        assert!(!accepts_connections(port));
        if cfg!(target_os = "linux") {
            assert!(!process_exists(first_pid), "killed server not reaped");
        }
        redis.kill(); // idempotent

        redis.restart();
        assert_eq!(redis.port(), port);
        assert_eq!(redis.cli(&["PING"]), "PONG");
        assert_ne!(redis.pid(), Some(first_pid));
        assert_eq!(
            redis.cli(&["EXISTS", "k"]),
            "0",
            "no persistence across restart"
        );

        // restart() while running kills first.
        redis.restart();
        assert_eq!(redis.cli(&["PING"]), "PONG");
    }

    #[test]
    fn error_replies_are_errors() {
        let redis = RedisServer::start();
        let error = redis
            .try_cli(&["NOSUCHCOMMAND"])
            .expect_err("unknown command");
        assert!(error.starts_with("ERR "), "{error}");
        redis.cli(&["SET", "s", "x"]);
        let error = redis.try_cli(&["LPUSH", "s", "y"]).expect_err("wrong type");
        assert!(error.starts_with("WRONGTYPE "), "{error}");
        // Values and empty replies are not errors.
        assert_eq!(redis.cli(&["SET", "e", "ERR"]), "OK");
        assert_eq!(redis.cli(&["GET", "e"]), "ERR");
        assert_eq!(redis.cli(&["GET", "missing"]), "");
        assert_eq!(redis.cli(&["PUBSUB", "CHANNELS", "*"]), "");
        assert_eq!(redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]), "0");
    }

    #[test]
    #[should_panic(expected = "redis-cli -p")]
    fn cli_panics_on_failure() {
        let mut redis = RedisServer::start();
        redis.kill();
        redis.cli(&["PING"]);
    }

    #[test]
    fn two_servers_get_different_ports_and_dirs() {
        let a = RedisServer::start();
        let b = RedisServer::start();
        assert_ne!(a.port(), b.port());
        assert_ne!(a.dir(), b.dir());
        assert_eq!(a.cli(&["PING"]), "PONG");
        assert_eq!(b.cli(&["PING"]), "PONG");
        a.cli(&["SET", "only", "a"]);
        assert_eq!(b.cli(&["EXISTS", "only"]), "0");
    }

    #[test]
    fn drop_stops_the_process_and_removes_the_dir() {
        let redis = RedisServer::start();
        let (port, pid, dir) = (redis.port(), redis.pid().unwrap(), redis.dir().to_owned());
        assert!(accepts_connections(port));
        assert!(dir.join("redis.log").exists());
        drop(redis);
        assert!(
            !accepts_connections(port),
            "port {port} still accepts connections"
        );
        assert!(!dir.exists(), "{} not removed", dir.display());
        if cfg!(target_os = "linux") {
            assert!(!process_exists(pid), "dropped server not reaped");
        }
    }

    #[test]
    fn drop_runs_when_the_test_panics() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let result = std::panic::catch_unwind(move || {
            let redis = RedisServer::start();
            sender.send(redis.port()).unwrap();
            panic!("test failure while the server runs");
        });
        assert!(result.is_err());
        let port = receiver.recv().unwrap();
        assert!(
            !accepts_connections(port),
            "port {port} still accepts connections"
        );
    }

    #[test]
    fn password_protected_server() {
        let mut redis = RedisServer::start_with(RedisOptions {
            password: Some("s3cret p@ss".into()),
            tls: false,
        });
        let port = redis.port();
        assert_eq!(
            redis.url(),
            format!("redis://:s3cret%20p%40ss@127.0.0.1:{port}")
        );
        assert_eq!(redis.ca_cert_pem(), None);
        assert_eq!(redis.cli(&["PING"]), "PONG");
        let port_arg = port.to_string();
        let error = run_cli(&["-h", HOST, "-p", &port_arg], &["PING"], CLI_TIMEOUT)
            .expect_err("no password, no PING");
        assert!(error.starts_with("NOAUTH"), "{error}");
        redis.restart();
        assert_eq!(redis.cli(&["PING"]), "PONG");
    }

    #[test]
    fn tls_server_with_password_keeps_its_certificates_across_restarts() {
        let mut redis = RedisServer::start_with(RedisOptions {
            password: Some("pw".into()),
            tls: true,
        });
        let port = redis.port();
        assert_eq!(redis.url(), format!("rediss://:pw@127.0.0.1:{port}"));
        let ca = redis.ca_cert_pem().expect("a CA with TLS");
        assert!(ca.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(redis.cli(&["PING"]), "PONG");
        // TLS only: a plain-text client gets nowhere.
        let port_arg = port.to_string();
        assert!(
            run_cli(
                &["-h", HOST, "-p", &port_arg, "-a", "pw", "--no-auth-warning"],
                &["PING"],
                Duration::from_secs(3)
            )
            .is_err()
        );
        redis.restart();
        assert_eq!(redis.cli(&["PING"]), "PONG");
        assert_eq!(redis.ca_cert_pem(), Some(ca), "same CA after restart");
    }

    #[test]
    fn cluster_starts_and_redirects() {
        let cluster = RedisCluster::start();
        let ports = cluster.ports();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        assert!(ports.iter().all(|&port| port < 55535));
        assert_eq!(
            cluster.urls(),
            ports
                .iter()
                .map(|port| format!("redis://127.0.0.1:{port}"))
                .collect::<Vec<_>>()
        );
        for node in 0..3 {
            let info = cluster.cli(node, &["CLUSTER", "INFO"]);
            assert!(info.contains("cluster_state:ok"), "node {node}: {info}");
            assert!(
                info.contains("cluster_known_nodes:3"),
                "node {node}: {info}"
            );
            assert!(info.contains("cluster_size:3"), "node {node}: {info}");
        }
        // Keys hash to slots on different nodes; -c follows MOVED either way.
        for key in ["k", "a", "b", "c", "herald"] {
            assert_eq!(cluster.cli(0, &["SET", key, "v"]), "OK");
            for node in 0..3 {
                assert_eq!(cluster.cli(node, &["GET", key]), "v");
            }
        }
        // Without -c, some node answers MOVED for "k": an error for try_cli.
        let moved = (0..3).filter(|&node| cluster.node(node).try_cli(&["GET", "k"]).is_err());
        assert_eq!(moved.count(), 2);
    }

    #[test]
    fn cluster_drop_stops_every_node() {
        let cluster = RedisCluster::start();
        let ports = cluster.ports();
        let pids: Vec<u32> = (0..3).map(|n| cluster.node(n).pid().unwrap()).collect();
        drop(cluster);
        for port in ports {
            assert!(
                !accepts_connections(port),
                "port {port} still accepts connections"
            );
            assert!(
                !accepts_connections(port + CLUSTER_BUS_OFFSET),
                "bus of {port}"
            );
        }
        if cfg!(target_os = "linux") {
            assert!(pids.iter().all(|&pid| !process_exists(pid)));
        }
    }
}
