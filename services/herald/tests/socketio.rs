//! End-to-end tests of the Socket.IO endpoint (`/socket.io/`, docs/socketio.md) with the real
//! socket.io-client v4: tests/socketio/js/client.mjs, run as a program that prints one JSON line
//! per event and takes commands on stdin (see its header), against in-process nodes. Its
//! dependencies are installed by `bash .ci/install-test-deps` (node_modules in tests/socketio/js,
//! and tests/sdk/js for the centrifuge-js side of the mixed tests); a missing install fails the
//! tests rather than skipping them.
//!
//! Every test runs on the WebSocket engine CI asks for (`HERALD_TEST_WEBSOCKET_ENGINE`).
//! Environment: `HERALD_TEST_NODE` (default `node`) picks the interpreter; `HERALD_SDK_DEBUG=1`
//! turns on socket.io-client's debug log (shown on failure).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use herald::RunningNode;
use herald::config::WebSocketEngine;
use herald::testing::front_door::FrontDoor;
use herald::testing::program::{self, INSTALL_HINT, Program, node_bin};
use herald::testing::{
    Api, TEST_API_KEY, TEST_SECRET, eventually, node_from_toml, sign_connect, token, unix_now,
};
use herald_engine::auth::{HmacAlg, NewConnectToken, TokenSigner};
use serde_json::{Value, json};

/// Hard limit of one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The programs' own deadline (`--timeout`), below [`TEST_TIMEOUT`] so that they report first.
const PROGRAM_TIMEOUT_SECS: u32 = 40;

/// Namespaces of the test nodes:
/// - `chat`: clients subscribe, subscribers publish, history (so publications have offsets),
///   history and presence calls for subscribers;
/// - `feed`: history with forced recovery;
/// - `ro`: clients subscribe but never publish;
/// - `room`: join/leave pushed to every subscriber.
const NAMESPACES: &str = r#"
[[channels.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
history_size = 100
history_ttl = "300s"
allow_history_for_subscriber = true
presence = true
allow_presence_for_subscriber = true

[[channels.namespaces]]
name = "feed"
allow_subscribe_for_client = true
history_size = 100
history_ttl = "300s"
force_recovery = true

[[channels.namespaces]]
name = "ro"
allow_subscribe_for_client = true

[[channels.namespaces]]
name = "room"
allow_subscribe_for_client = true
presence = true
join_leave = true
force_push_join_leave = true
"#;

/// A node on the test configuration plus `extra_toml` (whole sections: `[socketio]`,
/// `[broker]`, …).
fn start_node_with(extra_toml: &str) -> RunningNode {
    let engine = WebSocketEngine::under_test().name();
    let secret = std::str::from_utf8(TEST_SECRET).expect("test secret is text");
    node_from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
name = "herald-socketio-test"
shutdown_timeout = "2s"
websocket_engine = "{engine}"

[auth]
hmac_secret = "{secret}"

[api]
key = "{TEST_API_KEY}"
{NAMESPACES}
{extra_toml}
"#
    ))
}

fn start_node() -> RunningNode {
    start_node_with("")
}

/// Connection state recovery on (off by default, as in the Socket.IO server).
const RECOVERY: &str = "[socketio]\nrecovery = true\n";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sio_dir() -> PathBuf {
    let dir = manifest_dir().join("tests/socketio/js");
    assert!(
        dir.join("node_modules/socket.io-client/package.json")
            .is_file(),
        "socket.io-client is not installed in {}: {INSTALL_HINT}",
        dir.display()
    );
    dir
}

fn sdk_js_dir() -> PathBuf {
    let dir = manifest_dir().join("tests/sdk/js");
    assert!(
        dir.join("node_modules/centrifuge/package.json").is_file(),
        "centrifuge-js is not installed in {}: {INSTALL_HINT}",
        dir.display()
    );
    dir
}

fn debug() -> bool {
    std::env::var("HERALD_SDK_DEBUG").is_ok_and(|v| !v.is_empty() && v != "0")
}

async fn with_timeout(name: &str, body: impl Future<Output = ()>) {
    program::with_timeout(name, TEST_TIMEOUT, body).await;
}

/// Publishes `data` to `channel` through the server API of `node`; returns the result
/// (`{offset, epoch}` in a channel with history).
async fn publish(node: &RunningNode, channel: &str, data: Value) -> Value {
    let reply = Api::new(node.addr, TEST_API_KEY)
        .call("publish", json!({"channel": channel, "data": data}))
        .await;
    assert!(reply.get("error").is_none(), "publish: {reply}");
    reply["result"].clone()
}

/// Connections on `node` (server API `info`).
async fn num_clients(node: &RunningNode) -> u64 {
    let info = Api::new(node.addr, TEST_API_KEY)
        .call("info", json!({}))
        .await;
    info["result"]["nodes"][0]["num_clients"]
        .as_u64()
        .unwrap_or_else(|| panic!("info: {info}"))
}

/// The sum of `herald_socketio_requests_total{kind=…}` over `kinds` on `node`.
async fn sio_requests(node: &RunningNode, kinds: &[&str]) -> f64 {
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut total = 0.0;
    for kind in kinds {
        total += api
            .metric(
                "herald_socketio_requests_total",
                &format!("kind=\"{kind}\""),
            )
            .await;
    }
    total
}

/// One socket.io-client (client.mjs). Reading events records the engine's `upgrade` events
/// (they come whenever the upgrade completes, before or after `connect`) instead of returning
/// them, and keeps the events that arrive while an ack is awaited for later reads.
struct Sio {
    program: Program,
    /// Events read ahead (while waiting for an ack).
    pending: VecDeque<Value>,
    /// Transports the engine upgraded to, in order.
    upgrades: Vec<String>,
    /// Emits with an ack so far (client.mjs numbers them from 1; 0 is `--channel`'s).
    emits: u64,
}

impl Sio {
    /// client.mjs against `url` (`http://host:port`) with auth `{token}` and `extra` arguments
    /// (`--transports`, `--upgrade`, `--reconnect`, …).
    fn spawn(name: &str, url: &str, token: &str, extra: &[&str]) -> Sio {
        let timeout = PROGRAM_TIMEOUT_SECS.to_string();
        let mut args = vec![
            "client.mjs",
            "--url",
            url,
            "--token",
            token,
            "--timeout",
            &timeout,
        ];
        args.extend(debug().then_some("--debug"));
        args.extend_from_slice(extra);
        Sio {
            program: Program::spawn(name, node_bin(), &sio_dir(), &args),
            pending: VecDeque::new(),
            upgrades: Vec::new(),
            emits: 0,
        }
    }

    /// A client of `node` for `user` on `transports` (`polling`, `websocket` or
    /// `polling,websocket`; the upgrade is on only for the last).
    fn on(node: &RunningNode, user: &str, transports: &str, extra: &[&str]) -> Sio {
        let upgrade = if transports.contains(',') {
            "true"
        } else {
            "false"
        };
        let mut args = vec!["--transports", transports, "--upgrade", upgrade];
        args.extend_from_slice(extra);
        Sio::spawn(
            &format!("client.mjs ({user}, {transports})"),
            &node.http_url(),
            &token(user),
            &args,
        )
    }

    /// The next event from the program, `upgrade` included (and recorded).
    async fn read_any(&mut self) -> Value {
        let v = self.program.next_event().await;
        if v["event"] == "upgrade" {
            let to = v["transport"].as_str().unwrap_or_default().to_owned();
            self.upgrades.push(to);
        }
        v
    }

    /// The next event from the program other than `upgrade`.
    async fn read(&mut self) -> Value {
        loop {
            let v = self.read_any().await;
            if v["event"] != "upgrade" {
                return v;
            }
        }
    }

    /// The next event (other than `upgrade`).
    async fn next(&mut self) -> Value {
        match self.pending.pop_front() {
            Some(v) => v,
            None => self.read().await,
        }
    }

    async fn fail(&mut self, message: &str) -> ! {
        let pending = format!("{:?}", self.pending);
        self.program
            .fail(&format!("{message} (read ahead: {pending})"))
            .await
    }

    /// The next event, which must be `event`.
    async fn expect(&mut self, event: &str) -> Value {
        let v = self.next().await;
        if v["event"] != event {
            self.fail(&format!("expected event {event:?}, got {v}"))
                .await;
        }
        v
    }

    /// The next event must be `connect`: returns it.
    async fn connected(&mut self) -> Value {
        let v = self.expect("connect").await;
        if v["sid"].as_str().is_none_or(str::is_empty) {
            self.fail(&format!("connect without a sid: {v}")).await;
        }
        v
    }

    async fn send(&mut self, command: Value) {
        self.program.send_line(&command.to_string()).await;
    }

    /// Emits `event` with `args` and an ack callback; returns the ack's argument. Events that
    /// arrive meanwhile are kept for [`Sio::next`].
    async fn emit(&mut self, event: &str, args: Value) -> Value {
        self.emits += 1;
        let n = self.emits;
        self.send(json!({"emit": event, "args": args})).await;
        let mut ahead = Vec::new();
        let ack = loop {
            let v = self.read().await;
            if v["event"] == "ack" && v["n"] == n {
                break v;
            }
            ahead.push(v);
        };
        self.pending.extend(ahead);
        if ack["emit"] != event {
            self.fail(&format!("ack {n} is for {}, not {event}", ack["emit"]))
                .await;
        }
        ack["value"].clone()
    }

    /// Emits without an ack callback.
    async fn emit_no_ack(&mut self, event: &str, args: Value) {
        self.send(json!({"emit": event, "args": args, "ack": false}))
            .await;
    }

    /// [`Sio::emit`] that must be answered `{ok: result}` (and nothing else): returns `result`.
    async fn ok(&mut self, event: &str, args: Value) -> Value {
        let value = self.emit(event, args.clone()).await;
        let fields = value.as_object().map(|o| o.len());
        if fields != Some(1) || value.get("ok").is_none() {
            self.fail(&format!("{event} {args}: expected {{ok: …}}, got {value}"))
                .await;
        }
        value["ok"].clone()
    }

    /// [`Sio::emit`] that must be answered `{error: {code, message}}` with `code`: returns the
    /// error.
    async fn error(&mut self, event: &str, args: Value, code: u64) -> Value {
        let value = self.emit(event, args.clone()).await;
        let error = &value["error"];
        let well_formed = value.as_object().is_some_and(|o| o.len() == 1)
            && error["code"].is_u64()
            && error["message"].is_string();
        if !well_formed || error["code"] != code {
            self.fail(&format!(
                "{event} {args}: expected {{error: {{code: {code}, message}}}}, got {value}"
            ))
            .await;
        }
        error.clone()
    }

    /// Subscribes: the ack is `{ok: result}`, and a `subscribed` event for the channel comes
    /// too (other events, e.g. the client's own join, may come around them). Returns the result.
    async fn subscribe(&mut self, channel: &str) -> Value {
        let result = self.ok("subscribe", json!([channel])).await;
        if !result.is_object() {
            self.fail(&format!("subscribe result is not an object: {result}"))
                .await;
        }
        self.take(|v| v["event"] == "subscribed" && v["args"][0]["channel"] == channel)
            .await;
        result
    }

    /// Unsubscribes: the ack is `{ok: {}}`, and an `unsubscribed` event for the channel follows.
    async fn unsubscribe(&mut self, channel: &str) {
        let result = self.ok("unsubscribe", json!([channel])).await;
        if result != json!({}) {
            self.fail(&format!("unsubscribe result {result}")).await;
        }
        self.channel_event("unsubscribed", channel).await;
    }

    /// The next event, which must be `event` about `channel`.
    async fn channel_event(&mut self, event: &str, channel: &str) -> Value {
        let v = self.expect(event).await;
        if v["args"][0]["channel"] != channel {
            self.fail(&format!("{v} is not about {channel}")).await;
        }
        v
    }

    /// The first event (read ahead or next) for which `wanted` holds; the others stay, in
    /// order, for later reads.
    async fn take(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&wanted) {
            return self.pending.remove(i).expect("position in range");
        }
        loop {
            let v = self.read().await;
            if wanted(&v) {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// The next event must be a `publication`: returns its first argument
    /// (`{channel, data, offset?, …}`).
    async fn publication(&mut self) -> Value {
        let v = self.expect("publication").await;
        let p = v["args"][0].clone();
        if !p["channel"].is_string() || p.get("data").is_none() {
            self.fail(&format!("malformed publication {v}")).await;
        }
        p
    }

    /// The next events must be publications of `data`, in this order, in `channel`, with
    /// offsets `first_offset`, `first_offset + 1`, … (or none when `first_offset` is `None`).
    async fn expect_publications(
        &mut self,
        channel: &str,
        data: &[Value],
        first_offset: Option<u64>,
    ) {
        for (i, want) in data.iter().enumerate() {
            let p = self.publication().await;
            let offset = first_offset.map(|o| json!(o + i as u64));
            if p["channel"] != channel
                || p["data"] != *want
                || offset.as_ref().is_some_and(|o| p["offset"] != *o)
            {
                self.fail(&format!(
                    "publication #{} is {p}, expected data {want} in {channel} with offset \
                     {offset:?} (exactly once, in order)",
                    i + 1
                ))
                .await;
            }
        }
    }

    /// The current transport's name (asked to the client).
    async fn transport(&mut self) -> String {
        self.send(json!({"transport": true})).await;
        let v = loop {
            let v = self.read().await;
            if v["event"] == "transport" {
                break v;
            }
            self.pending.push_back(v);
        };
        v["transport"].as_str().unwrap_or_default().to_owned()
    }

    /// Nothing was read ahead, and the next thing the client says is the answer to a question
    /// asked now: no event came in between.
    async fn expect_quiet(&mut self) {
        if let Some(v) = self.pending.pop_front() {
            self.fail(&format!("unexpected event {v}")).await;
        }
        self.send(json!({"transport": true})).await;
        let v = self.read().await;
        if v["event"] != "transport" {
            self.fail(&format!("unexpected event {v}")).await;
        }
    }

    /// Reads until the engine has upgraded (at once if it already has).
    async fn wait_upgrade(&mut self) {
        while self.upgrades.is_empty() {
            let v = self.read_any().await;
            if v["event"] != "upgrade" {
                self.pending.push_back(v);
            }
        }
    }

    /// Disconnects (socket.disconnect()) and expects a clean exit with nothing unread.
    async fn finish(mut self) {
        if let Some(v) = self.pending.pop_front() {
            self.fail(&format!("unexpected event {v}")).await;
        }
        self.send(json!({"exit": 0})).await;
        let v = self.expect("disconnect").await;
        if v["reason"] != "io client disconnect" {
            self.fail(&format!("unexpected disconnect {v}")).await;
        }
        self.program.expect_success().await;
    }
}

fn n(i: u64) -> Value {
    json!({"n": i})
}

/// The flow every transport must carry: connect, subscribe, publications from the server API
/// with channel, data and offset, history and presence through acks, the error acks, and
/// unsubscribe.
async fn basic_flow(transports: &str) {
    let node = start_node();
    let mut sio = Sio::on(&node, "alice", transports, &[]);
    let connect = sio.connected().await;
    let sid = connect["sid"].as_str().expect("sid").to_owned();
    assert_eq!(connect["recovered"], false, "{connect}");
    assert_eq!(
        connect["pid"],
        Value::Null,
        "recovery is off by default: CONNECT carries no pid: {connect}"
    );

    sio.subscribe("chat:1").await;
    let mut epoch = Value::Null;
    for i in 1..=3 {
        let result = publish(&node, "chat:1", n(i)).await;
        assert_eq!(result["offset"], i, "{result}");
        epoch = result["epoch"].clone();
    }
    sio.expect_publications("chat:1", &[n(1), n(2), n(3)], Some(1))
        .await;

    // History, oldest first, with the stream position.
    let history = sio.ok("history", json!(["chat:1", {"limit": 10}])).await;
    let pubs = history["publications"].as_array().expect("publications");
    let got: Vec<_> = pubs.iter().map(|p| (&p["data"], &p["offset"])).collect();
    assert_eq!(
        got,
        [(&n(1), &json!(1)), (&n(2), &json!(2)), (&n(3), &json!(3))],
        "{history}"
    );
    assert_eq!(history["offset"], 3, "{history}");
    assert_eq!(history["epoch"], epoch, "{history}");
    // Newest first, one.
    let newest = sio
        .ok("history", json!(["chat:1", {"limit": 1, "reverse": true}]))
        .await;
    assert_eq!(newest["publications"][0]["data"], n(3), "{newest}");
    assert_eq!(newest["publications"].as_array().map(Vec::len), Some(1));

    // Presence: this client, by its Socket.IO id.
    let presence = sio.ok("presence", json!(["chat:1"])).await;
    let clients = presence["presence"].as_object().expect("presence map");
    assert_eq!(clients.len(), 1, "{presence}");
    assert_eq!(clients[&sid]["client"], sid, "{presence}");
    assert_eq!(clients[&sid]["user"], "alice", "{presence}");
    let stats = sio.ok("presence_stats", json!(["chat:1"])).await;
    assert_eq!(stats, json!({"num_clients": 1, "num_users": 1}));

    // Errors come back in the ack.
    sio.error("subscribe", json!(["chat:1"]), 105).await;
    sio.error("no_such_event", json!(["chat:1"]), 104).await;
    sio.error("history", json!(["chat:2"]), 103).await;

    // After unsubscribe, chat:1's publications stop; chat:2's (subscribed later) still come.
    sio.unsubscribe("chat:1").await;
    sio.subscribe("chat:2").await;
    publish(&node, "chat:1", n(4)).await;
    publish(&node, "chat:2", n(5)).await;
    sio.expect_publications("chat:2", &[n(5)], Some(1)).await;

    assert_eq!(sio.transport().await, transports);
    assert!(sio.upgrades.is_empty(), "no upgrade: {:?}", sio.upgrades);
    sio.finish().await;
}

/// a. HTTP long-polling only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_only() {
    with_timeout("polling_only", basic_flow("polling")).await;
}

/// b. WebSocket only (no polling handshake first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_only() {
    with_timeout("websocket_only", basic_flow("websocket")).await;
}

/// c. socket.io-client's default: polling first, then the upgrade to WebSocket; publications
/// flow on the upgraded session, and the node counts it as a WebSocket session. With the
/// actix-ws engine polling sessions offer no upgrade (docs/socketio.md): the client stays on
/// polling and is served there.
///
/// Several clients upgrade at once, each within [`UPGRADE_WITHIN`] of its start: the Engine.IO
/// server answers a poll held during the probe at once (a noop), so that the client can send
/// `5`; a poll that waited for the next ping instead would take 12.5 to 25 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_upgrades_to_websocket() {
    with_timeout("polling_upgrades_to_websocket", async {
        const CLIENTS: usize = 4;
        const UPGRADE_WITHIN: Duration = Duration::from_secs(8);
        let node = start_node();
        let api = Api::new(node.addr, TEST_API_KEY);
        let upgrades = WebSocketEngine::under_test() == WebSocketEngine::Lean;
        let expected = if upgrades { "websocket" } else { "polling" };
        let started = std::time::Instant::now();
        let mut clients: Vec<Sio> = (0..CLIENTS)
            .map(|i| Sio::on(&node, &format!("user{i}"), "polling,websocket", &[]))
            .collect();
        for sio in &mut clients {
            sio.connected().await;
            if upgrades {
                sio.wait_upgrade().await;
                assert_eq!(sio.upgrades, ["websocket"]);
                let took = started.elapsed();
                assert!(
                    took < UPGRADE_WITHIN,
                    "{}: upgraded after {took:?}",
                    sio.program.name()
                );
            }
            sio.subscribe("chat:1").await;
        }
        for i in 1..=3 {
            publish(&node, "chat:1", n(i)).await;
        }
        for sio in &mut clients {
            sio.expect_publications("chat:1", &[n(1), n(2), n(3)], Some(1))
                .await;
            let stats = sio.ok("presence_stats", json!(["chat:1"])).await;
            assert_eq!(stats["num_clients"], CLIENTS, "{stats}");
            assert_eq!(sio.transport().await, expected);
            // Read after the round trips above: an upgrade, had one been offered, is long done.
            let expected_upgrades: &[&str] = if upgrades { &["websocket"] } else { &[] };
            assert_eq!(sio.upgrades, expected_upgrades);
        }
        // One session a client, whichever transport carries it; the upgrades counted where
        // they happen.
        let count = CLIENTS as f64;
        assert_eq!(api.metric("herald_socketio_sessions", "").await, count);
        assert_eq!(
            api.metric("herald_socketio_upgrades_total", "").await,
            if upgrades { count } else { 0.0 }
        );
        assert!(
            sio_requests(&node, &["handshake"]).await >= count,
            "the polling handshakes are counted"
        );
        for sio in clients {
            sio.finish().await;
        }
        eventually("no session left", || async {
            api.metric("herald_socketio_sessions", "").await == 0.0
        })
        .await;
    })
    .await;
}

/// d. Two nodes sharing one Redis behind a round-robin front door, polling only: each HTTP
/// request of the client (socket.io-client opens a connection per request) lands on the next
/// node, the one not holding the session forwards it through Redis, and every publication
/// arrives, in order, whichever node it was published on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_across_two_nodes_behind_a_round_robin_door() {
    with_timeout(
        "polling_across_two_nodes_behind_a_round_robin_door",
        async {
            let redis = herald_engine::testing::redis::RedisServer::start();
            let broker = format!(
                "[broker]\nkind = \"redis\"\nredis_urls = [\"{}\"]\nprefix = \"sio-test\"\n",
                redis.url()
            );
            let node_a = start_node_with(&broker);
            let node_b = start_node_with(&broker);
            let door = FrontDoor::round_robin(&[node_a.addr, node_b.addr]).await;
            let url = format!("http://{}", door.addr);
            let mut sio = Sio::spawn(
                "client.mjs (door, polling)",
                &url,
                &token("alice"),
                &["--transports", "polling", "--upgrade", "false"],
            );
            sio.connected().await;
            sio.subscribe("chat:1").await;
            let data: Vec<Value> = (1..=10).map(n).collect();
            for (i, d) in data.iter().enumerate() {
                let node = if i % 2 == 0 { &node_a } else { &node_b };
                publish(node, "chat:1", d.clone()).await;
            }
            sio.expect_publications("chat:1", &data, Some(1)).await;
            let presence = sio.ok("presence_stats", json!(["chat:1"])).await;
            assert_eq!(presence["num_clients"], 1, "{presence}");
            assert_eq!(sio.transport().await, "polling");

            let connections = door.connections();
            assert!(
                connections >= 2,
                "{connections} connection(s) through the door"
            );
            let all = ["handshake", "poll", "post", "forwarded"];
            let (on_a, on_b) = (
                sio_requests(&node_a, &all).await,
                sio_requests(&node_b, &all).await,
            );
            assert!(
                on_a > 0.0 && on_b > 0.0,
                "both nodes served the client: {on_a} and {on_b} requests"
            );
            let forwarded = sio_requests(&node_a, &["forwarded"]).await
                + sio_requests(&node_b, &["forwarded"]).await;
            assert!(forwarded > 0.0, "no request was forwarded");
            sio.finish().await;
        },
    )
    .await;
}

/// centrifuge-js's subscriber.mjs (tests/sdk/js) on `channel` of `node`, for `count`
/// publications.
fn centrifuge_js(node: &RunningNode, user: &str, channel: &str, count: usize) -> Program {
    let count = count.to_string();
    let timeout = PROGRAM_TIMEOUT_SECS.to_string();
    let token = token(user);
    let url = node.ws_url();
    let mut args = vec![
        "subscriber.mjs",
        "--url",
        &url,
        "--token",
        &token,
        "--channel",
        channel,
        "--count",
        &count,
        "--timeout",
        &timeout,
    ];
    args.extend(debug().then_some("--debug"));
    Program::spawn(
        &format!("subscriber.mjs ({user})"),
        node_bin(),
        &sdk_js_dir(),
        &args,
    )
}

/// e. A Socket.IO client and a centrifuge-js client in one channel see the same publications:
/// same data, same offsets, same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_and_centrifuge_js_see_the_same_publications() {
    with_timeout(
        "socketio_and_centrifuge_js_see_the_same_publications",
        async {
            let node = start_node();
            let mut js = centrifuge_js(&node, "bob", "chat:mixed", 5);
            js.expect_event("subscribed").await;
            let mut sio = Sio::on(&node, "alice", "polling,websocket", &[]);
            sio.connected().await;
            sio.subscribe("chat:mixed").await;
            for i in 1..=5 {
                publish(
                    &node,
                    "chat:mixed",
                    json!({"n": i, "text": format!("m{i}")}),
                )
                .await;
            }
            let mut from_sio = Vec::new();
            for _ in 0..5 {
                let p = sio.publication().await;
                from_sio.push((p["data"].clone(), p["offset"].clone()));
            }
            let mut from_js = Vec::new();
            for _ in 0..5 {
                let p = js.expect_event("publication").await;
                from_js.push((p["data"].clone(), p["offset"].clone()));
            }
            assert_eq!(from_sio, from_js, "Socket.IO vs centrifuge-js");
            let offsets: Vec<_> = from_sio.iter().map(|(_, o)| o.clone()).collect();
            assert_eq!(offsets, [1, 2, 3, 4, 5].map(|o| json!(o)));
            js.expect_success().await;
            sio.finish().await;
        },
    )
    .await;
}

/// f. A token with a wrong signature is refused with CONNECT_ERROR code 3500, an expired one
/// with 109, none at all with 3501; socket.io-client reports them as `connect_error` with
/// `err.data.code`, and nothing else (the socket never connected, so no `disconnect`).
async fn bad_and_expired_tokens_are_refused(transports: &str) {
    let node = start_node();
    let forged = TokenSigner::hmac(b"not-the-secret-0123456789abcdef0123456789", HmacAlg::HS256)
        .sign(&NewConnectToken {
            sub: "mallory".into(),
            exp: Some(unix_now() + 3600),
            ..Default::default()
        })
        .expect("sign");
    let expired = sign_connect(NewConnectToken {
        sub: "alice".into(),
        exp: Some(unix_now() - 60),
        ..Default::default()
    });
    // (token, code, message); without a token: 3501 as in the client protocol.
    let cases = [
        (forged.as_str(), 3500, Some("invalid token")),
        (expired.as_str(), 109, Some("token expired")),
        ("", 3501, None),
    ];
    for (token, code, message) in cases {
        let mut sio = Sio::spawn(
            &format!("client.mjs (code {code}, {transports})"),
            &node.http_url(),
            token,
            &["--transports", transports, "--upgrade", "false"],
        );
        let e = sio.expect("connect_error").await;
        assert_eq!(e["code"], code, "{e}");
        match message {
            Some(message) => assert_eq!(e["message"], message, "{e}"),
            None => assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}"),
        }
        // Refused for good: the client neither reconnects nor reports anything more.
        sio.expect_quiet().await;
    }
    // A valid token still connects.
    let mut sio = Sio::on(&node, "alice", transports, &[]);
    sio.connected().await;
    sio.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_expired_tokens_are_refused_over_polling() {
    with_timeout(
        "bad_and_expired_tokens_are_refused_over_polling",
        bad_and_expired_tokens_are_refused("polling"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_expired_tokens_are_refused_over_websocket() {
    with_timeout(
        "bad_and_expired_tokens_are_refused_over_websocket",
        bad_and_expired_tokens_are_refused("websocket"),
    )
    .await;
}

/// Namespaces other than `/` are refused with CONNECT_ERROR "Invalid namespace".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_namespaces_are_refused() {
    with_timeout("other_namespaces_are_refused", async {
        let node = start_node();
        let mut sio = Sio::on(&node, "alice", "polling", &["--namespace", "/admin"]);
        let e = sio.expect("connect_error").await;
        assert_eq!(e["message"], "Invalid namespace", "{e}");
    })
    .await;
}

/// g. With `[socketio] max_payload = 2000`, a polling client that emits a 10 kB publish is
/// disconnected (its POST gets 413 and the session closes), and another client on the node
/// keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_polling_payload_disconnects_only_its_client() {
    with_timeout(
        "oversize_polling_payload_disconnects_only_its_client",
        oversize_disconnects_only_its_client("polling"),
    )
    .await;
}

/// The same over WebSocket: a message over `max_payload` closes the socket (1009).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_websocket_message_disconnects_only_its_client() {
    with_timeout(
        "oversize_websocket_message_disconnects_only_its_client",
        oversize_disconnects_only_its_client("websocket"),
    )
    .await;
}

async fn oversize_disconnects_only_its_client(transports: &str) {
    let node = start_node_with("[socketio]\nmax_payload = 2000\n");
    let mut big = Sio::on(&node, "mallory", transports, &[]);
    let mut other = Sio::on(&node, "alice", transports, &[]);
    big.connected().await;
    other.connected().await;
    big.subscribe("chat:1").await;
    other.subscribe("chat:1").await;

    big.emit_no_ack("publish", json!(["chat:1", {"pad": "x".repeat(10_000)}]))
        .await;
    // Over polling the POST gets 413 (socket.io-client: "transport error"); over WebSocket the
    // client is told (`disconnected` 1009, no reconnect) and the socket closes.
    let mut gone = big.next().await;
    if gone["event"] == "disconnected" {
        assert_eq!(gone["args"][0]["code"], 1009, "{gone}");
        assert_eq!(gone["args"][0]["reconnect"], false, "{gone}");
        gone = big.next().await;
    }
    assert_eq!(gone["event"], "disconnect", "{gone}");
    let reason = gone["reason"].as_str().unwrap_or_default();
    assert!(
        ["transport error", "transport close", "io server disconnect"].contains(&reason),
        "the transport closes: {gone}"
    );

    // The node lets the client go; the oversize publication went nowhere; the other client is
    // unaffected.
    eventually("the node dropped the oversize client", || async {
        num_clients(&node).await == 1
    })
    .await;
    publish(&node, "chat:1", n(1)).await;
    other.expect_publications("chat:1", &[n(1)], Some(1)).await;
    let stats = other.ok("presence_stats", json!(["chat:1"])).await;
    assert_eq!(stats, json!({"num_clients": 1, "num_users": 1}));
    // Payloads under the limit pass.
    assert_eq!(
        other
            .ok("publish", json!(["chat:1", {"pad": "y".repeat(1000)}]))
            .await,
        json!({})
    );
    let p = other.publication().await;
    assert_eq!(p["offset"], 2, "{p}");
    other.finish().await;
}

/// h. A client-side `publish` event reaches a centrifuge-js subscriber (and the publisher's own
/// subscription); where the namespace forbids it the ack carries `{error: {code: 103}}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publish_reaches_other_subscribers() {
    with_timeout("client_publish_reaches_other_subscribers", async {
        let node = start_node();
        let mut js = centrifuge_js(&node, "bob", "chat:pub", 3);
        js.expect_event("subscribed").await;
        let mut sio = Sio::on(&node, "alice", "polling,websocket", &[]);
        sio.connected().await;
        sio.subscribe("chat:pub").await;
        let data: Vec<Value> = (1..=3).map(|i| json!({"n": i, "from": "sio"})).collect();
        for d in &data {
            assert_eq!(sio.ok("publish", json!(["chat:pub", d])).await, json!({}));
        }
        js.expect_publications(&data).await;
        js.expect_success().await;
        sio.expect_publications("chat:pub", &data, Some(1)).await;

        // `ro`: subscribing is allowed, publishing is not (subscribed or not).
        sio.subscribe("ro:1").await;
        sio.error("publish", json!(["ro:1", {"n": 1}]), 103).await;
        sio.error("publish", json!(["ro:2", {"n": 1}]), 103).await;
        // `chat` lets subscribers publish, not others.
        sio.error("publish", json!(["chat:other", {"n": 1}]), 103)
            .await;
        // Malformed: no channel.
        sio.error("publish", json!([]), 107).await;
        sio.finish().await;
    })
    .await;
}

/// i. Connection state recovery: a subscriber in a channel with history loses its transport,
/// three publications are made while it is away, and its reconnect (with the pid and offset
/// socket.io-client keeps) restores the subscription and delivers exactly those three, in
/// order, with `socket.recovered === true`.
async fn recovery(transports: &str) {
    let node = start_node_with(RECOVERY);
    let mut sio = Sio::on(&node, "alice", transports, &[]);
    let first = sio.connected().await;
    assert!(first["pid"].is_string(), "{first}");
    sio.subscribe("feed:1").await;
    for i in 1..=2 {
        publish(&node, "feed:1", n(i)).await;
    }
    sio.expect_publications("feed:1", &[n(1), n(2)], Some(1))
        .await;

    sio.send(json!({"disconnect_transport": true})).await;
    let gone = sio.expect("disconnect").await;
    assert_eq!(gone["reason"], "forced close", "{gone}");
    // The node lets the connection go before the publications: they are missed, not sent.
    eventually("the node dropped the connection", || async {
        num_clients(&node).await == 0
    })
    .await;
    for i in 3..=5 {
        publish(&node, "feed:1", n(i)).await;
    }

    sio.send(json!({"connect": true})).await;
    let again = sio.connected().await;
    assert_eq!(again["recovered"], true, "{again}");
    assert_eq!(again["pid"], first["pid"], "{again}");
    // Exactly the three missed, in order, then `subscribed` for the restored channel.
    sio.expect_publications("feed:1", &[n(3), n(4), n(5)], Some(3))
        .await;
    let restored = sio.channel_event("subscribed", "feed:1").await;
    assert_eq!(restored["args"][0]["recovered"], true, "{restored}");
    // And live again, with no duplicate in between.
    publish(&node, "feed:1", n(6)).await;
    sio.expect_publications("feed:1", &[n(6)], Some(6)).await;
    sio.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_over_polling() {
    with_timeout("recovery_over_polling", recovery("polling")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_over_websocket() {
    with_timeout("recovery_over_websocket", recovery("websocket")).await;
}

/// socket.io-client's own reconnection (after its transport is closed, with the default
/// transports) recovers too: what is published around the reconnect arrives exactly once and in
/// order, and the socket says it recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_reconnect_recovers() {
    with_timeout("automatic_reconnect_recovers", async {
        let node = start_node_with(RECOVERY);
        let mut sio = Sio::on(&node, "alice", "polling,websocket", &["--reconnect"]);
        sio.connected().await;
        sio.subscribe("feed:1").await;
        publish(&node, "feed:1", n(1)).await;
        sio.expect_publications("feed:1", &[n(1)], Some(1)).await;

        sio.send(json!({"disconnect_transport": true})).await;
        for i in 2..=4 {
            publish(&node, "feed:1", n(i)).await;
        }
        // The client's reconnect restores the subscription (`subscribed`); publications 2..4
        // arrive live before the transport closed, or recovered; either way once each and in
        // order.
        let mut got = Vec::new();
        let mut reconnected = None;
        let mut restored = None;
        while got.len() < 3 || reconnected.is_none() || restored.is_none() {
            let v = sio.next().await;
            match v["event"].as_str() {
                Some("publication") => got.push(v["args"][0]["data"]["n"].clone()),
                Some("connect") => reconnected = Some(v),
                Some("subscribed") => restored = Some(v),
                Some("disconnect") => {}
                _ => sio.fail(&format!("unexpected event {v}")).await,
            }
        }
        assert_eq!(got, [2, 3, 4].map(|i| json!(i)), "exactly once, in order");
        let reconnected = reconnected.expect("connect");
        assert_eq!(reconnected["recovered"], true, "{reconnected}");
        let restored = restored.expect("subscribed");
        assert_eq!(restored["args"][0]["channel"], "feed:1", "{restored}");
        assert_eq!(restored["args"][0]["recovered"], true, "{restored}");
        publish(&node, "feed:1", n(5)).await;
        sio.expect_publications("feed:1", &[n(5)], Some(5)).await;
        sio.finish().await;
    })
    .await;
}

/// j. The token's `channels` claim subscribes the connection server-side at connect: a
/// `subscribed` event, then the channel's publications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_channels_are_subscribed_at_connect() {
    with_timeout("token_channels_are_subscribed_at_connect", async {
        let node = start_node();
        let token = sign_connect(NewConnectToken {
            sub: "alice".into(),
            exp: Some(unix_now() + 3600),
            channels: vec!["chat:srv".into()],
            ..Default::default()
        });
        for transports in ["polling", "websocket"] {
            let mut sio = Sio::spawn(
                &format!("client.mjs (channels claim, {transports})"),
                &node.http_url(),
                &token,
                &["--transports", transports, "--upgrade", "false"],
            );
            sio.connected().await;
            let subscribed = sio.expect("subscribed").await;
            assert_eq!(subscribed["args"][0]["channel"], "chat:srv", "{subscribed}");
            let result = publish(&node, "chat:srv", json!({"t": transports})).await;
            let p = sio.publication().await;
            assert_eq!(p["channel"], "chat:srv", "{p}");
            assert_eq!(p["data"], json!({"t": transports}), "{p}");
            assert_eq!(p["offset"], result["offset"], "{p}");
            // Already subscribed, server-side.
            sio.error("subscribe", json!(["chat:srv"]), 105).await;
            sio.finish().await;
        }
    })
    .await;
}

/// Join and leave events in a namespace with join_leave: a Socket.IO subscriber sees a
/// centrifuge-js client join and leave, with its user and client id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_events() {
    with_timeout("join_and_leave_events", async {
        let node = start_node();
        let mut sio = Sio::on(&node, "alice", "websocket", &[]);
        sio.connected().await;
        sio.subscribe("room:1").await;
        // bob subscribes and, with --count 0, disconnects as soon as he is subscribed.
        let mut bob = centrifuge_js(&node, "bob", "room:1", 0);
        bob.expect_event("subscribed").await;
        bob.expect_success().await;
        let mut events = Vec::new();
        let left = loop {
            let v = sio.next().await;
            match v["event"].as_str() {
                Some("join") => events.push(v),
                Some("leave") if v["args"][0]["info"]["user"] == "bob" => break v,
                _ => sio.fail(&format!("unexpected event {v}")).await,
            }
        };
        let joined = events
            .iter()
            .find(|v| v["args"][0]["info"]["user"] == "bob")
            .unwrap_or_else(|| panic!("no join of bob before his leave: {events:?}"));
        assert_eq!(joined["args"][0]["channel"], "room:1", "{joined}");
        assert_eq!(left["args"][0]["channel"], "room:1", "{left}");
        let client = &left["args"][0]["info"]["client"];
        assert!(client.as_str().is_some_and(|c| !c.is_empty()), "{left}");
        assert_eq!(joined["args"][0]["info"]["client"], *client);
        sio.finish().await;
    })
    .await;
}

/// The client is told why the server ends its session: `disconnected {code, reason,
/// reconnect: false}`, then a Socket.IO DISCONNECT (socket.io-client: "io server disconnect",
/// and no reconnect although reconnection is on), and nothing else.
async fn expect_server_disconnect(sio: &mut Sio, code: u64, reason: &str) {
    let told = sio.expect("disconnected").await;
    assert_eq!(
        told["args"][0],
        json!({"code": code, "reason": reason, "reconnect": false}),
        "{told}"
    );
    let gone = sio.expect("disconnect").await;
    assert_eq!(gone["reason"], "io server disconnect", "{gone}");
    // No reconnect.
    sio.expect_quiet().await;
}

/// A BINARY_EVENT is refused: the server ends the session (3501 bad request).
async fn binary_events_end_the_session(transports: &str) {
    let node = start_node();
    let mut sio = Sio::on(&node, "alice", transports, &["--reconnect"]);
    sio.connected().await;
    sio.send(json!({"emit": "publish", "args": ["chat:1"], "binary": true, "ack": false}))
        .await;
    expect_server_disconnect(&mut sio, 3501, "bad request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_events_end_the_session_over_polling() {
    with_timeout(
        "binary_events_end_the_session_over_polling",
        binary_events_end_the_session("polling"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_events_end_the_session_over_websocket() {
    with_timeout(
        "binary_events_end_the_session_over_websocket",
        binary_events_end_the_session("websocket"),
    )
    .await;
}

/// The server API's `subscribe` and `unsubscribe` arrive as `subscribed` and `unsubscribed`
/// events; its `disconnect` with a terminal code as `disconnected` and a DISCONNECT.
async fn server_api_subscribe_unsubscribe_and_disconnect(transports: &str) {
    let node = start_node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut sio = Sio::on(&node, "alice", transports, &["--reconnect"]);
    sio.connected().await;
    let reply = api
        .call("subscribe", json!({"user": "alice", "channel": "chat:api"}))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    sio.channel_event("subscribed", "chat:api").await;
    publish(&node, "chat:api", n(1)).await;
    sio.expect_publications("chat:api", &[n(1)], Some(1)).await;

    let reply = api
        .call(
            "unsubscribe",
            json!({"user": "alice", "channel": "chat:api"}),
        )
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let unsubscribed = sio.channel_event("unsubscribed", "chat:api").await;
    let u = &unsubscribed["args"][0];
    assert!(
        u["code"].is_u64() && u["reason"].is_string(),
        "{unsubscribed}"
    );

    let reply = api
        .call(
            "disconnect",
            json!({"user": "alice", "disconnect": {"code": 4500, "reason": "bye"}}),
        )
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    expect_server_disconnect(&mut sio, 4500, "bye").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_subscribe_unsubscribe_and_disconnect_over_polling() {
    with_timeout(
        "server_api_subscribe_unsubscribe_and_disconnect_over_polling",
        server_api_subscribe_unsubscribe_and_disconnect("polling"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_subscribe_unsubscribe_and_disconnect_over_websocket() {
    with_timeout(
        "server_api_subscribe_unsubscribe_and_disconnect_over_websocket",
        server_api_subscribe_unsubscribe_and_disconnect("websocket"),
    )
    .await;
}
