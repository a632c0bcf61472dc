//! End-to-end tests with the official Centrifugo SDKs: centrifuge-js (JSON and Protobuf),
//! centrifuge-python (JSON and Protobuf) and the `cent` server API client, each run as a real
//! program (tests/sdk/js, tests/sdk/python) against an in-process node.
//!
//! The programs print one JSON line per event on stdout (`{"event":"subscribed"}`,
//! `{"event":"publication","data":…}`, …) and exit 0 on success. Their dependencies are
//! installed by `bash .ci/install-test-deps` (node_modules in tests/sdk/js, a virtualenv in
//! `<workspace>/target/sdk-venv`); a missing install fails the tests rather than skipping them.
//!
//! Environment: `HERALD_TEST_NODE` (default `node`) and `HERALD_TEST_PYTHON` (default
//! `<workspace>/target/sdk-venv/bin/python`) pick the interpreters; `HERALD_SDK_DEBUG=1` turns on
//! the SDKs' debug logging (shown on failure).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::RunningNode;
use herald::config::{Config, Overrides, WebSocketEngine};
use herald::testing::Api;
use herald::testing::front_door::FrontDoor;
use herald::testing::process::HeraldProcess;
use herald::testing::program::{self, INSTALL_HINT, Program, node_bin};
use herald_engine::auth::{HmacAlg, NewConnectToken, NewSubscribeToken, TokenSigner};
use serde_json::{Value, json};

/// Publications per test.
const N: usize = 20;
/// Hard limit of one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The programs' own deadline (`--timeout`), below [`TEST_TIMEOUT`] so that they report first.
const PROGRAM_TIMEOUT_SECS: u32 = 40;
const HMAC_SECRET: &str = "sdk-test-secret-0123456789abcdef0123456789";
const API_KEY: &str = "sdk-test-api-key";
const CHANNEL: &str = "chat:room";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_dir() -> PathBuf {
    manifest_dir().join("../..")
}

fn js_dir() -> PathBuf {
    let dir = manifest_dir().join("tests/sdk/js");
    assert!(
        dir.join("node_modules/centrifuge/package.json").is_file()
            && dir.join("node_modules/ws/package.json").is_file(),
        "centrifuge-js is not installed in {}: {INSTALL_HINT}",
        dir.display()
    );
    dir
}

fn python_dir() -> PathBuf {
    manifest_dir().join("tests/sdk/python")
}

fn python_bin() -> PathBuf {
    let python = match std::env::var_os("HERALD_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_dir().join("target/sdk-venv/bin/python"),
    };
    assert!(
        python.exists(),
        "Python for the SDK tests not found at {} (set HERALD_TEST_PYTHON or {INSTALL_HINT})",
        python.display()
    );
    python
}

fn debug_flag() -> Option<&'static str> {
    std::env::var("HERALD_SDK_DEBUG")
        .is_ok_and(|v| !v.is_empty() && v != "0")
        .then_some("--debug")
}

/// Starts a node with a `chat` namespace where clients may subscribe and subscribers may
/// publish, configured through a TOML file as an operator would.
fn start_node() -> RunningNode {
    start_node_with("")
}

/// [`start_node`] with extra TOML sections (e.g. a `[broker]`).
fn start_node_with(extra_toml: &str) -> RunningNode {
    let path = write_config(extra_toml);
    let config = Config::load(Some(&path), Some(HashMap::new()), &Overrides::default());
    let _ = std::fs::remove_file(&path);
    let config = config.expect("load test config");
    RunningNode::start(config).expect("start node")
}

/// Writes the test nodes' configuration (plus `extra_toml`) to a fresh temporary file.
fn write_config(extra_toml: &str) -> PathBuf {
    let engine = WebSocketEngine::under_test().name();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
name = "herald-sdk-test"
shutdown_timeout = "2s"
websocket_engine = "{engine}"

[auth]
hmac_secret = "{HMAC_SECRET}"

[api]
key = "{API_KEY}"

[[channels.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
{extra_toml}
"#
    );
    herald::testing::config_file(&toml)
}

/// These tests run against the engine CI asks for (`HERALD_TEST_WEBSOCKET_ENGINE`, see
/// `.ci/run`): the whole SDK suite runs on each engine.
#[tokio::test]
async fn nodes_run_the_websocket_engine_under_test() {
    let node = start_node();
    let engine = WebSocketEngine::under_test().name();
    let api = Api::new(node.addr, API_KEY);
    let label = format!("engine=\"{engine}\"");
    assert_eq!(api.metric("herald_websocket_engine", &label).await, 1.0);
}

fn connect_token(user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    TokenSigner::hmac(HMAC_SECRET.as_bytes(), HmacAlg::HS256)
        .sign(&NewConnectToken {
            sub: user.to_owned(),
            exp: Some(now + 3600),
            ..Default::default()
        })
        .expect("sign connect token")
}

/// Calls a server API method over HTTP and returns the parsed reply (any status).
async fn api_call(node: &RunningNode, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/api/{method}", node.http_url());
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        let mut response = agent
            .post(&url)
            .header("X-API-Key", API_KEY)
            .content_type("application/json")
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("POST {url}: reading the reply: {e}"));
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {url}: reply is not JSON ({e}): {text:?}"));
        (status, value)
    })
    .await
    .expect("api call task")
}

/// Publishes `{"n": i}` for i = 1..=N through the server API, one after the other.
async fn publish_n(node: &RunningNode) {
    for n in 1..=N {
        let body = json!({"channel": CHANNEL, "data": {"n": n}});
        let (status, reply) = api_call(node, "publish", body.clone()).await;
        assert!(
            status == 200 && reply.get("error").is_none() && reply["result"].is_object(),
            "publish {body}: HTTP {status} {reply}"
        );
    }
}

/// The SDK programs of tests/sdk (centrifuge-js, centrifuge-python) as [`Program`]s.
trait SdkProgram: Sized {
    /// centrifuge-js program `script` (subscriber.mjs, publisher.mjs) with the common arguments.
    fn js(script: &str, node: &RunningNode, user: &str, protobuf: bool, extra: &[&str]) -> Self;
    /// centrifuge-python subscriber.py.
    fn python_subscriber(node: &RunningNode, user: &str, protobuf: bool) -> Self;
    /// Answers the program's next `get_token` request (it must be the `n`th) with a
    /// subscription token for `user` and `channel` that expires `ttl` seconds from now.
    async fn give_sub_token(&mut self, n: u64, user: &str, channel: &str, ttl: u64);
}

impl SdkProgram for Program {
    fn js(script: &str, node: &RunningNode, user: &str, protobuf: bool, extra: &[&str]) -> Self {
        let dir = js_dir();
        let (url, token, count, timeout) = common_args(node, user);
        let mut args = vec![
            script,
            "--url",
            &url,
            "--token",
            &token,
            "--channel",
            CHANNEL,
            "--count",
            &count,
            "--timeout",
            &timeout,
        ];
        args.extend(protobuf.then_some("--protobuf"));
        args.extend(debug_flag());
        args.extend_from_slice(extra);
        let codec = if protobuf { "protobuf" } else { "json" };
        Program::spawn(&format!("{script} ({codec})"), node_bin(), &dir, &args)
    }

    fn python_subscriber(node: &RunningNode, user: &str, protobuf: bool) -> Self {
        let python = python_bin();
        let (url, token, count, timeout) = common_args(node, user);
        let mut args = vec![
            "subscriber.py",
            "--url",
            &url,
            "--token",
            &token,
            "--channel",
            CHANNEL,
            "--count",
            &count,
            "--timeout",
            &timeout,
        ];
        args.extend(protobuf.then_some("--protobuf"));
        args.extend(debug_flag());
        let codec = if protobuf { "protobuf" } else { "json" };
        Program::spawn(
            &format!("subscriber.py ({codec})"),
            python,
            &python_dir(),
            &args,
        )
    }

    async fn give_sub_token(&mut self, n: u64, user: &str, channel: &str, ttl: u64) {
        assert_eq!(self.expect_event("get_token").await["n"], n);
        self.send_line(&sub_token(user, channel, ttl)).await;
    }
}

fn common_args(node: &RunningNode, user: &str) -> (String, String, String, String) {
    (
        node.ws_url(),
        connect_token(user),
        N.to_string(),
        PROGRAM_TIMEOUT_SECS.to_string(),
    )
}

/// Publications the server API test publishes: `{"n": 1}` … `{"n": N}`.
fn api_publications() -> Vec<Value> {
    (1..=N).map(|n| json!({"n": n})).collect()
}

/// Publications publisher.mjs sends over the client protocol.
fn client_publications() -> Vec<Value> {
    (1..=N).map(|n| json!({"n": n, "from": "js"})).collect()
}

/// Runs `body` with the hard per-test timeout; programs still running are killed (on drop).
async fn with_timeout(name: &str, body: impl Future<Output = ()>) {
    program::with_timeout(name, TEST_TIMEOUT, body).await;
}

/// A subscriber program receives the N publications made through the server API, in order.
async fn run_subscriber_test(make: impl FnOnce(&RunningNode) -> Program) {
    let node = start_node();
    let mut subscriber = make(&node);
    subscriber.expect_event("subscribed").await;
    publish_n(&node).await;
    subscriber.expect_publications(&api_publications()).await;
    subscriber.expect_success().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_json() {
    with_timeout(
        "js_json",
        run_subscriber_test(|node| Program::js("subscriber.mjs", node, "alice", false, &[])),
    )
    .await;
}

/// centrifuge-js on a fallback transport: `--url` (given last, so it wins) is the endpoint.
fn js_over(transport: &str, node: &RunningNode, protobuf: bool) -> Program {
    let url = format!("http://{}/connection/{transport}", node.addr);
    Program::js(
        "subscriber.mjs",
        node,
        "alice",
        protobuf,
        &["--transport", transport, "--url", &url],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_over_http_stream_json() {
    with_timeout(
        "js_over_http_stream_json",
        run_subscriber_test(|node| js_over("http_stream", node, false)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_over_http_stream_protobuf() {
    with_timeout(
        "js_over_http_stream_protobuf",
        run_subscriber_test(|node| js_over("http_stream", node, true)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_over_sse() {
    with_timeout(
        "js_over_sse",
        run_subscriber_test(|node| js_over("sse", node, false)),
    )
    .await;
}

/// Behind a load balancer that sends each new connection to the next of two nodes, a
/// fallback client's stream lands on one node and its commands (separate HTTP requests) on the
/// other: they reach the stream's node through Redis, and the client gets every publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_fallbacks_work_when_commands_land_on_another_node() {
    with_timeout(
        "js_fallbacks_work_when_commands_land_on_another_node",
        async {
            let redis = herald_engine::testing::redis::RedisServer::start();
            let broker = format!(
                "[broker]\nkind = \"redis\"\nredis_urls = [\"{}\"]\nprefix = \"sdk-test\"\n",
                redis.url()
            );
            let node_a = start_node_with(&broker);
            let node_b = start_node_with(&broker);
            for (transport, protobuf) in [("http_stream", true), ("sse", false)] {
                let door = FrontDoor::round_robin(&[node_a.addr, node_b.addr]).await;
                let url = format!("http://{}/connection/{transport}", door.addr);
                let mut js = Program::js(
                    "subscriber.mjs",
                    &node_a,
                    "alice",
                    protobuf,
                    &["--transport", transport, "--url", &url],
                );
                js.expect_event("subscribed").await;
                publish_n(&node_a).await;
                js.expect_publications(&api_publications()).await;
                js.expect_success().await;
                // The stream took one connection and the commands at least one more: each
                // node had its turn.
                let connections = door.connections();
                assert!(connections >= 2, "{transport}: {connections} connection(s)");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_protobuf() {
    with_timeout(
        "js_protobuf",
        run_subscriber_test(|node| Program::js("subscriber.mjs", node, "alice", true, &[])),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_json() {
    with_timeout(
        "python_json",
        run_subscriber_test(|node| Program::python_subscriber(node, "alice", false)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_protobuf() {
    with_timeout(
        "python_protobuf",
        run_subscriber_test(|node| Program::python_subscriber(node, "alice", true)),
    )
    .await;
}

/// `cent` publishes through the server API (plus one batch and one info call, whose reply
/// shapes cent validates); centrifuge-js receives the publications in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cent_publishes_to_js_subscriber() {
    with_timeout("cent_publishes_to_js_subscriber", async {
        let node = start_node();
        let mut subscriber = Program::js("subscriber.mjs", &node, "alice", false, &[]);
        subscriber.expect_event("subscribed").await;

        let api = format!("{}/api", node.http_url());
        let count = N.to_string();
        let mut cent = Program::spawn(
            "publish_cent.py",
            python_bin(),
            &python_dir(),
            &[
                "publish_cent.py",
                "--api",
                &api,
                "--key",
                API_KEY,
                "--channel",
                CHANNEL,
                "--count",
                &count,
            ],
        );
        let summary = cent.expect_event("done").await;
        assert_eq!(summary["published"], json!(N), "cent summary: {summary}");
        assert_eq!(
            summary["batch_replies"],
            json!(2),
            "cent summary: {summary}"
        );
        assert_eq!(summary["nodes"], json!(1), "cent summary: {summary}");
        cent.expect_success().await;

        subscriber.expect_publications(&api_publications()).await;
        subscriber.expect_success().await;
    })
    .await;
}

/// A client-side publish (`publish` command of the client protocol) from a centrifuge-js client
/// using Protobuf reaches a centrifuge-python subscriber using JSON, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_protobuf_client_publish_reaches_python_json_subscriber() {
    with_timeout(
        "js_protobuf_client_publish_reaches_python_json_subscriber",
        client_publish_test(true, |node| {
            Program::python_subscriber(node, "alice", false)
        }),
    )
    .await;
}

/// Same with a centrifuge-js JSON publisher and a centrifuge-js Protobuf subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_json_client_publish_reaches_js_protobuf_subscriber() {
    with_timeout(
        "js_json_client_publish_reaches_js_protobuf_subscriber",
        client_publish_test(false, |node| {
            Program::js("subscriber.mjs", node, "alice", true, &[])
        }),
    )
    .await;
}

async fn client_publish_test(
    publisher_protobuf: bool,
    make_subscriber: impl FnOnce(&RunningNode) -> Program,
) {
    let node = start_node();
    let mut subscriber = make_subscriber(&node);
    subscriber.expect_event("subscribed").await;

    let mut publisher = Program::js("publisher.mjs", &node, "bob", publisher_protobuf, &[]);
    publisher.expect_event("subscribed").await;
    let mut acked = 0;
    let mut echoed = Vec::new();
    while acked < N || echoed.len() < N {
        let v = publisher.next_event().await;
        match v["event"].as_str() {
            Some("published") => {
                acked += 1;
                assert_eq!(v["n"], json!(acked), "publisher acks out of order: {v}");
            }
            Some("publication") => echoed.push(v["data"].clone()),
            _ => panic!("publisher: unexpected event {v}"),
        }
    }
    assert_eq!(echoed, client_publications(), "publisher's own echo");
    publisher.expect_success().await;

    subscriber.expect_publications(&client_publications()).await;
    subscriber.expect_success().await;
}

/// Scale-out: SDK clients connected to node B receive, in order, what the server API published
/// on node A; the two nodes meet only in Redis (a redis-server started by the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_on_node_b_receive_what_node_a_published() {
    with_timeout(
        "sdk_clients_on_node_b_receive_what_node_a_published",
        async {
            let redis = herald_engine::testing::redis::RedisServer::start();
            let broker = format!(
                "[broker]\nkind = \"redis\"\nredis_urls = [\"{}\"]\nprefix = \"sdk-test\"\n",
                redis.url()
            );
            let node_a = start_node_with(&broker);
            let node_b = start_node_with(&broker);
            let mut js = Program::js("subscriber.mjs", &node_b, "alice", true, &[]);
            let mut python = Program::python_subscriber(&node_b, "bob", false);
            js.expect_event("subscribed").await;
            python.expect_event("subscribed").await;
            publish_n(&node_a).await;
            js.expect_publications(&api_publications()).await;
            python.expect_publications(&api_publications()).await;
            js.expect_success().await;
            python.expect_success().await;
        },
    )
    .await;
}

/// A namespace that announces joins and leaves to the subscribers that ask for them (asking
/// needs the presence permission, as in Centrifugo).
const ROOM: &str = "[[channels.namespaces]]\nname = \"room\"\nallow_subscribe_for_client = true\n\
                    presence = true\njoin_leave = true\nallow_presence_for_subscriber = true\n";

/// centrifuge-js asks for join and leave messages (`joinLeave: true`): it sees another client
/// (centrifuge-js over Protobuf) join the channel and leave it when that client disconnects,
/// with the user and client id of the other side; a subscriber that did not ask sees none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sees_joins_and_leaves_it_asked_for() {
    with_timeout("js_sees_joins_and_leaves_it_asked_for", async {
        let node = start_node_with(ROOM);
        let channel = ["--channel", "room:lobby"];
        let mut alice = Program::js(
            "subscriber.mjs",
            &node,
            "alice",
            false,
            &[&channel[..], &["--count", "1", "--join-leave"]].concat(),
        );
        alice.expect_event("subscribed").await;
        // Carol subscribes without asking: she must see the publication and nothing else.
        let mut carol = Program::js(
            "subscriber.mjs",
            &node,
            "carol",
            false,
            &[&channel[..], &["--count", "1"]].concat(),
        );
        carol.expect_event("subscribed").await;
        // Bob subscribes and, with --count 0, disconnects as soon as he is subscribed.
        let mut bob = Program::js(
            "subscriber.mjs",
            &node,
            "bob",
            true,
            &[&channel[..], &["--count", "0"]].concat(),
        );
        bob.expect_event("subscribed").await;
        bob.expect_success().await;
        // Alice may see her own join and carol's first; then bob's join, then his leave.
        let mut seen = Vec::new();
        let bob_left = loop {
            let v = alice.next_event().await;
            seen.push(v.clone());
            if v["event"] == "leave" && v["user"] == "bob" {
                break v;
            }
        };
        let bob_joined = seen
            .iter()
            .find(|v| v["event"] == "join" && v["user"] == "bob")
            .unwrap_or_else(|| panic!("no join of bob before his leave: {seen:?}"));
        assert_eq!(bob_joined["client"], bob_left["client"], "{seen:?}");
        assert!(
            bob_left["client"].as_str().is_some_and(|c| !c.is_empty()),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .all(|v| v["event"] == "join" || v["event"] == "leave"),
            "{seen:?}"
        );
        let (status, _) = api_call(
            &node,
            "publish",
            json!({"channel": "room:lobby", "data": {"n": 1}}),
        )
        .await;
        assert_eq!(status, 200);
        alice.expect_publications(&[json!({"n": 1})]).await;
        alice.expect_success().await;
        carol.expect_publications(&[json!({"n": 1})]).await;
        carol.expect_success().await;
    })
    .await;
}

/// A subscription token for `user` and `channel` that expires `ttl` seconds from now (whole
/// seconds, so it lives between `ttl - 1` and `ttl` seconds).
fn sub_token(user: &str, channel: &str, ttl: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    TokenSigner::hmac(HMAC_SECRET.as_bytes(), HmacAlg::HS256)
        .sign(&NewSubscribeToken {
            sub: user.to_owned(),
            channel: channel.to_owned(),
            exp: Some(now + ttl),
            info: None,
        })
        .expect("sign subscription token")
}

/// For subscription tokens that live 2 to 3 s (see `sub_token`): a node that ends an expired
/// subscription 2 s after its token's expiry.
const SUB_EXPIRY: &str = "[client]\nexpired_sub_close_delay = \"2s\"\n";

/// centrifuge-js with `getToken` refreshes its subscription token before the node would end
/// the subscription: three tokens of 2 s, each refreshed with `sub_refresh`, carry it past the
/// first token's expiry plus the grace delay, and a publication after that still arrives,
/// without the subscription ever being lost (the node would end it with 2501, which the SDK
/// answers by resubscribing: the program fails on that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_get_token_refreshes_a_subscription_past_its_expiry() {
    with_timeout(
        "js_get_token_refreshes_a_subscription_past_its_expiry",
        async {
            let node = start_node_with(SUB_EXPIRY);
            let args = ["--channel", "$vip", "--count", "1", "--get-token"];
            let mut js = Program::js("sub_token.mjs", &node, "alice", false, &args);
            // Each token at least 2 s, signed when the SDK asks: the SDK refreshes before each
            // expires.
            js.give_sub_token(1, "alice", "$vip", 3).await;
            js.expect_event("subscribed").await;
            for n in 2..=3 {
                js.give_sub_token(n, "alice", "$vip", 3).await;
            }
            js.give_sub_token(4, "alice", "$vip", 3600).await;
            // The fourth call comes after three tokens of at least 2 s each: past the first
            // token's expiry (at most 3 s) and grace (2 s).
            let (status, reply) = api_call(
                &node,
                "publish",
                json!({"channel": "$vip", "data": {"n": 1}}),
            )
            .await;
            assert_eq!(status, 200, "{reply}");
            js.expect_publications(&[json!({"n": 1})]).await;
            js.expect_success().await;
        },
    )
    .await;
}

/// Without `getToken`, centrifuge-js cannot refresh: the subscription ends when its token does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_without_get_token_loses_the_subscription_when_its_token_expires() {
    with_timeout(
        "js_without_get_token_loses_the_subscription_when_its_token_expires",
        async {
            let node = start_node_with(SUB_EXPIRY);
            let args = ["--channel", "$vip"];
            let mut js = Program::js("sub_token.mjs", &node, "alice", false, &args);
            js.give_sub_token(1, "alice", "$vip", 3).await;
            js.expect_event("subscribed").await;
            let ended = loop {
                let v = js.next_event().await;
                if v["event"] == "unsubscribed" {
                    break v;
                }
                assert_eq!(v["event"], "refresh_error", "{v}");
            };
            assert!(ended["code"].as_u64().is_some(), "{ended}");
            js.expect_success().await;
        },
    )
    .await;
}

/// A namespace that keeps history and lets clients recover (memory broker).
const FEED: &str = "[[channels.namespaces]]\nname = \"feed\"\nallow_subscribe_for_client = true\n\
                    history_size = 100\nhistory_ttl = \"300s\"\nallow_recovery = true\n";

/// centrifuge-js with a recoverable subscription is disconnected with a reconnect code; what is
/// published while it is away comes back on resubscribe: every publication exactly once, in
/// order, and the SDK reports the subscription as recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_recovers_what_it_missed_while_reconnecting() {
    with_timeout("js_recovers_what_it_missed_while_reconnecting", async {
        let node = start_node_with(FEED);
        let total = 6;
        let count = total.to_string();
        let mut js = Program::js(
            "subscriber.mjs",
            &node,
            "alice",
            false,
            &[
                "--channel",
                "feed:1",
                "--count",
                &count,
                "--recoverable",
                "--reconnect",
            ],
        );
        let first = js.expect_event("subscribed").await;
        assert_eq!(first["recoverable"], true, "{first}");
        assert_eq!(first["wasRecovering"], false, "{first}");
        let publish = |n: u64| {
            let node = &node;
            async move {
                let (status, reply) =
                    api_call(node, "publish", json!({"channel":"feed:1","data":{"n":n}})).await;
                assert_eq!(status, 200, "{reply}");
                assert_eq!(reply["result"]["offset"], n, "{reply}");
            }
        };
        publish(1).await;
        publish(2).await;
        for n in 1..=2 {
            let p = js.expect_event("publication").await;
            assert_eq!(p["data"], json!({"n": n}));
        }
        // 3011 "force reconnect": the SDK reconnects after its backoff (0.5 s and more).
        let (_, reply) = api_call(
            &node,
            "disconnect",
            json!({"user":"alice","disconnect":{"code":3011,"reason":"force reconnect"}}),
        )
        .await;
        assert!(reply.get("error").is_none(), "{reply}");
        for n in 3..=5 {
            publish(n).await;
        }
        // Publications 3..5 reach the client either before the disconnect took effect or, from
        // history, on resubscribe; either way once each and in order.
        let mut got = vec![1, 2];
        let mut recovered = None;
        while got.len() < 5 {
            let e = js.next_event().await;
            match e["event"].as_str() {
                Some("publication") => got.push(e["data"]["n"].as_u64().expect("n")),
                Some("subscribed") => recovered = Some(e),
                _ => panic!("unexpected event {e}"),
            }
        }
        assert_eq!(got, [1, 2, 3, 4, 5], "exactly once, in order");
        let resubscribed = match recovered {
            Some(e) => e,
            None => js.expect_event("subscribed").await,
        };
        assert_eq!(resubscribed["wasRecovering"], true, "{resubscribed}");
        assert_eq!(resubscribed["recovered"], true, "{resubscribed}");
        publish(6).await;
        let p = js.expect_event("publication").await;
        assert_eq!(p["data"], json!({"n": 6}));
        js.expect_success().await;
    })
    .await;
}

/// A herald process (killable with SIGKILL) on the test configuration plus `extra_toml`.
async fn herald_process(extra_toml: &str) -> HeraldProcess {
    let config = write_config(extra_toml);
    let process = HeraldProcess::start(env!("CARGO_BIN_EXE_herald"), &config).await;
    let _ = std::fs::remove_file(&config);
    process
}

/// The deploy case: a client behind a front door on node A; node A is killed with SIGKILL
/// while publications flow (published through node B); the SDK reconnects through the door to
/// node B and recovers from Redis what it missed. It ends with every publication exactly once
/// and in order, and the SDK reports the subscription as recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_recovers_through_a_front_door_after_its_node_is_killed() {
    with_timeout(
        "js_recovers_through_a_front_door_after_its_node_is_killed",
        async {
            let redis = herald_engine::testing::redis::RedisServer::start();
            let extra = format!(
                "[broker]\nkind = \"redis\"\nredis_urls = [\"{}\"]\nprefix = \"sdk-door\"\n{FEED}",
                redis.url()
            );
            let mut node_a = herald_process(&extra).await;
            let addr_a = node_a.addr;
            let node_b = start_node_with(&extra);
            let door = FrontDoor::open(addr_a).await;
            let total: u64 = 60;
            let count = total.to_string();
            let url = format!("ws://{}/connection/websocket", door.addr);
            let mut js = Program::js(
                "subscriber.mjs",
                &node_b,
                "alice",
                false,
                &[
                    "--url",
                    &url,
                    "--channel",
                    "feed:1",
                    "--count",
                    &count,
                    "--recoverable",
                    "--reconnect",
                ],
            );
            js.expect_event("subscribed").await;

            // Publish 1..=total through node B, one every 20 ms, while the client's node dies.
            let publisher = {
                let api = format!("{}/api/publish", node_b.http_url());
                tokio::spawn(async move {
                    for n in 1..=total {
                        let url = api.clone();
                        let reply = tokio::task::spawn_blocking(move || {
                            ureq::post(&url)
                                .header("X-API-Key", API_KEY)
                                .send(json!({"channel":"feed:1","data":{"n":n}}).to_string())
                                .map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
                        })
                        .await
                        .expect("publish task")
                        .expect("publish");
                        assert!(reply.contains("\"offset\""), "{reply}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            };

            let mut got = Vec::new();
            let mut resubscribed = None;
            while got.len() < total as usize {
                let e = js.next_event().await;
                match e["event"].as_str() {
                    Some("publication") => {
                        got.push(e["data"]["n"].as_u64().expect("n"));
                        if got.len() == 15 {
                            node_a.kill();
                            door.point_to(node_b.addr);
                        }
                    }
                    Some("subscribed") => resubscribed = Some(e),
                    _ => panic!("unexpected event {e}"),
                }
            }
            publisher.await.expect("publisher");
            assert_eq!(
                got,
                (1..=total).collect::<Vec<_>>(),
                "exactly once, in order"
            );
            let resubscribed = resubscribed.expect("a resubscription after the kill");
            assert_eq!(resubscribed["wasRecovering"], true, "{resubscribed}");
            assert_eq!(resubscribed["recovered"], true, "{resubscribed}");
            js.expect_success().await;
        },
    )
    .await;
}

/// Redis restarted without persistence loses every stream: the next publications belong to a
/// new epoch. A recoverable client is not fed them as if nothing happened: it is made to
/// resubscribe (2500), its recovery fails on the changed epoch, and the SDK says so
/// (`recovered: false`); later publications reach it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_is_told_when_a_redis_restart_lost_the_stream() {
    with_timeout("js_is_told_when_a_redis_restart_lost_the_stream", async {
        let mut redis = herald_engine::testing::redis::RedisServer::start();
        let extra = format!(
            "[broker]\nkind = \"redis\"\nredis_urls = [\"{}\"]\nprefix = \"sdk-epoch\"\n{FEED}",
            redis.url()
        );
        let node = start_node_with(&extra);
        let mut js = Program::js(
            "subscriber.mjs",
            &node,
            "alice",
            false,
            &[
                "--channel",
                "feed:1",
                "--count",
                "1000",
                "--recoverable",
                "--reconnect",
            ],
        );
        js.expect_event("subscribed").await;
        let publish = |n: u64| {
            let node = &node;
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let (status, reply) =
                        api_call(node, "publish", json!({"channel":"feed:1","data":{"n":n}})).await;
                    if status == 200 && reply.get("error").is_none() {
                        return reply["result"]["epoch"].as_str().unwrap_or("").to_owned();
                    }
                    assert!(std::time::Instant::now() < deadline, "publish {n}: {reply}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let old_epoch = publish(1).await;
        publish(2).await;
        for n in 1..=2 {
            assert_eq!(js.expect_event("publication").await["data"]["n"], n);
        }

        redis.kill();
        redis.restart();
        // Publications go on (as an application's would). One made before the node's PUB/SUB
        // connection is back is lost on the way; the first that arrives shows the epoch changed.
        let new_epoch = publish(3).await;
        assert_ne!(new_epoch, old_epoch, "a restarted Redis has a new stream");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let publisher = {
            let url = format!("{}/api/publish", node.http_url());
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 4u64;
                while !stop.load(Ordering::Relaxed) {
                    let url = url.clone();
                    let body = json!({"channel":"feed:1","data":{"n":n}}).to_string();
                    let _ = tokio::task::spawn_blocking(move || {
                        ureq::post(&url).header("X-API-Key", API_KEY).send(body)
                    })
                    .await;
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        // The next event must be the resubscription: a publication first would be one of the
        // new stream passed off as the continuation of the old one.
        let resubscribed = js.expect_event("subscribed").await;
        assert_eq!(resubscribed["wasRecovering"], true, "{resubscribed}");
        assert_eq!(
            resubscribed["recovered"], false,
            "told, not fed a gap: {resubscribed}"
        );
        // From the new position on, publications flow again.
        let next = js.expect_event("publication").await;
        assert!(next["data"]["n"].as_u64().expect("n") >= 4, "{next}");
        stop.store(true, Ordering::Relaxed);
        publisher.await.expect("publisher");
    })
    .await;
}

/// `cent` (the Python server API client) on two nodes sharing Redis: history in order and
/// within limits, a publish retried with one idempotency key published once, and presence
/// counting centrifuge-js clients connected to both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cent_reads_history_and_presence_across_nodes() {
    with_timeout("cent_reads_history_and_presence_across_nodes", async {
        let redis = herald_engine::testing::redis::RedisServer::start();
        let extra = format!(
            "[broker]\nkind = \"redis\"\nredis_urls = [\"{}\"]\nprefix = \"sdk-cent\"\n{FEED}\
             [[channels.namespaces]]\nname = \"room\"\nallow_subscribe_for_client = true\n\
             presence = true\n",
            redis.url()
        );
        let node_a = start_node_with(&extra);
        let node_b = start_node_with(&extra);
        let mut on_a = Program::js(
            "subscriber.mjs",
            &node_a,
            "alice",
            false,
            // They stay connected (killed with the test).
            &["--channel", "room:1", "--count", "1000"],
        );
        let mut on_b = Program::js(
            "subscriber.mjs",
            &node_b,
            "bob",
            true,
            &["--channel", "room:1", "--count", "1000"],
        );
        on_a.expect_event("subscribed").await;
        on_b.expect_event("subscribed").await;

        let api = format!("{}/api", node_a.http_url());
        let mut cent = Program::spawn(
            "channel_state_cent.py",
            python_bin(),
            &python_dir(),
            &[
                "channel_state_cent.py",
                "--api",
                &api,
                "--key",
                API_KEY,
                "--channel",
                "feed:cent",
                "--presence-channel",
                "room:1",
            ],
        );
        let seen = cent.expect_event("done").await;
        cent.expect_success().await;
        let offsets: Vec<u64> = seen["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, [1, 2, 3, 4, 5], "{seen}");
        assert_eq!(seen["retries"], json!([6, 6, 6]), "published once: {seen}");
        assert_eq!(seen["all"], json!([1, 2, 3, 4, 5, 6]), "{seen}");
        assert_eq!(seen["all_data"][0], json!({"n": 1}), "{seen}");
        assert_eq!(seen["top"][0], 6, "{seen}");
        assert_eq!(seen["first_two"], json!([1, 2]), "{seen}");
        assert_eq!(seen["newest_two"], json!([6, 5]), "{seen}");
        assert_eq!(seen["after_4"], json!([5, 6]), "{seen}");
        assert_eq!(seen["presence_users"], json!(["alice", "bob"]), "{seen}");
        assert_eq!(seen["presence_stats"], json!([2, 2]), "{seen}");
    })
    .await;
}
