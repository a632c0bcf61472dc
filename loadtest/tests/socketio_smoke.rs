//! End to end against the Socket.IO baseline (loadtest/socketio/server.mjs): a tiny fanout, a
//! tiny idle run and a tiny connect storm with `--target socketio`, every delivery counted.
//!
//! It needs Node 20 and `npm ci` in loadtest/socketio, which `.ci/install-test-deps` runs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use herald_loadtest::cli::{Cli, run_scenario};
use herald_loadtest::progress::Live;

/// The node process, killed (by its own handle) when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> (Server, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("socketio");
    assert!(
        dir.join("node_modules/socket.io").is_dir(),
        "run bash .ci/install-test-deps (npm ci in loadtest/socketio, Node 20) before this test"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("API_KEY", "smoke-key")
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("start node (is Node 20 installed?)");
    let server = Server(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node server did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_tiny_fanout_and_idle() {
    let (server, url) = start_server();
    let argv = [
        "herald-loadtest",
        "fanout",
        "--target",
        "socketio",
        "--url",
        &url,
        "--api-key",
        "smoke-key",
        "--subscribers",
        "10",
        "--publishers",
        "2",
        "--rates",
        "200",
        "--step-secs",
        "1",
        "--settle-secs",
        "5",
        "--quiet",
    ];
    let cli = Cli::try_parse_from(argv).expect("parse");
    let live = Arc::new(Live::default());
    let report = run_scenario(&cli.scenario, &live)
        .await
        .expect("run fanout");
    assert_eq!(report.steps.len(), 1, "{report:?}");
    let s = &report.steps[0];
    assert!(s.published >= 150 && s.published <= 230, "{s:?}");
    assert_eq!(s.publish_errors, 0, "{s:?}");
    assert_eq!(s.expected, s.published * 10, "{s:?}");
    assert_eq!(s.delivered, s.expected, "{s:?}");
    assert_eq!((s.lost, s.duplicates, s.reordered), (0, 0, 0), "{s:?}");
    assert_eq!(s.latency.count, s.delivered, "{s:?}");
    assert!(!s.extra.contains_key("unstamped"), "{s:?}");

    // A ramp whose top rate needs more publisher connections than --publishers: every stream
    // is known to the subscribers (none is counted as another's duplicate).
    let argv = [
        "herald-loadtest",
        "fanout",
        "--target",
        "socketio",
        "--url",
        &url,
        "--api-key",
        "smoke-key",
        "--subscribers",
        "10",
        "--publishers",
        "1",
        "--rates",
        "50,300",
        "--step-secs",
        "1",
        "--settle-secs",
        "5",
        "--quiet",
    ];
    let cli = Cli::try_parse_from(argv).expect("parse");
    let live = Arc::new(Live::default());
    let report = run_scenario(&cli.scenario, &live)
        .await
        .expect("run fanout");
    assert_eq!(report.steps.len(), 2, "{report:?}");
    for s in &report.steps {
        assert_eq!(s.delivered, s.expected, "{s:?}");
        assert_eq!((s.lost, s.duplicates, s.reordered), (0, 0, 0), "{s:?}");
    }

    let argv = [
        "herald-loadtest",
        "idle",
        "--target",
        "socketio",
        "--url",
        &url,
        "--api-key",
        "smoke-key",
        "--connections",
        "50",
        "--settle-secs",
        "0.5",
        "--server-pid",
        &server.0.id().to_string(),
        "--quiet",
    ];
    let cli = Cli::try_parse_from(argv).expect("parse");
    let live = Arc::new(Live::default());
    let report = run_scenario(&cli.scenario, &live).await.expect("run idle");
    let s = &report.steps[0];
    assert_eq!(s.extra["connected"], 50.0, "{s:?}");
    assert_eq!(s.extra["failed"], 0.0, "{s:?}");
    assert_eq!(s.extra["closed_while_idle"], 0.0, "{s:?}");

    // The connect storm measures the baseline's connects/s too.
    let argv = [
        "herald-loadtest",
        "connect-storm",
        "--target",
        "socketio",
        "--url",
        &url,
        "--connections",
        "40",
        "--quiet",
    ];
    let cli = Cli::try_parse_from(argv).expect("parse");
    let live = Arc::new(Live::default());
    let report = run_scenario(&cli.scenario, &live)
        .await
        .expect("run connect-storm");
    let s = &report.steps[0];
    assert_eq!(s.extra["subscribed"], 40.0, "{s:?}");
    assert_eq!(s.extra["failed"], 0.0, "{s:?}");

    // Herald-only scenarios refuse the Socket.IO target instead of measuring nonsense.
    let cli = Cli::try_parse_from([
        "herald-loadtest",
        "channels",
        "--target",
        "socketio",
        "--url",
        &url,
        "--quiet",
    ])
    .expect("parse");
    let err = run_scenario(&cli.scenario, &Arc::new(Live::default()))
        .await
        .expect_err("channels must refuse socketio");
    assert!(err.to_string().contains("Herald only"), "{err}");
    drop(server);
}
