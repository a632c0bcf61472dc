//! The OpenAPI document of the server API (docs/openapi.yaml): served at `/api/openapi.json`
//! where the API is, equal to the YAML, describing every method the node serves and every
//! answer it gives (each `/api` exchange of the tests goes through the checker of
//! `herald::testing::openapi`, shown here to refuse what the document does not describe), and
//! a bounded schemathesis run against a live node that finds no server error.

#[path = "../build/yaml_json.rs"]
mod yaml_json;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use herald::RunningNode;
use herald::api::METHODS;
use herald::config::{BrokerConfig, Config};
use herald::testing::openapi::{Exchange, Spec};
use herald::testing::{Api, TEST_API_KEY};
use herald_engine::config::{RedisConfig, RedisShardConfig};
use herald_engine::testing::redis::RedisServer;
use serde_json::{Value, json};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn spec_path() -> PathBuf {
    manifest_dir().join("../../docs/openapi.yaml")
}

fn yaml_spec() -> Value {
    let source = std::fs::read_to_string(spec_path()).expect("read docs/openapi.yaml");
    yaml_json::convert(&source).expect("docs/openapi.yaml as JSON")
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_document_is_served_where_the_api_is_without_a_key() {
    let mut config = Config::for_test();
    config.server.internal_listen = Some("127.0.0.1:0".parse().unwrap());
    let node = RunningNode::start(config).expect("start node");
    let operator = Api::new(node.internal_addr.expect("internal listener"), "");
    let public = Api::new(node.addr, "");

    let (status, content_type, body) = operator.exchange("GET", "/api/openapi.json", &[], "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(
        parse(&body),
        yaml_spec(),
        "the served JSON is docs/openapi.yaml"
    );
    assert_eq!(parse(&body)["openapi"], "3.1.0");
    // Checked against the document itself: GET it, no key.
    assert_eq!(
        operator
            .request("GET", "/api/openapi.json", &[], "")
            .await
            .0,
        200
    );
    let (status, _, _) = public.exchange("GET", "/api/openapi.json", &[], "").await;
    assert_eq!(status, 404, "not on the public listener");
    let (status, _, _) = operator
        .exchange(
            "POST",
            "/api/openapi.json",
            &[("X-API-Key", TEST_API_KEY)],
            "{}",
        )
        .await;
    assert_eq!(status, 405, "not a method of the API");

    // Without an internal listener it is on the one listener, like the API.
    let single = RunningNode::start(Config::for_test()).expect("start node");
    let api = Api::new(single.addr, "");
    let (status, body) = api.request("GET", "/api/openapi.json", &[], "").await;
    assert_eq!((status, parse(&body)), (200, yaml_spec()));
}

/// The document lists exactly the methods the node serves, and every `$ref` in it resolves.
#[tokio::test]
async fn the_document_describes_every_method_the_node_serves() {
    let spec = yaml_spec();
    let documented: Vec<&str> = spec["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter_map(|p| p.strip_prefix("/api/"))
        .filter(|m| !matches!(*m, "{method}" | "openapi.json"))
        .collect();
    let mut want = METHODS.to_vec();
    want.sort_unstable();
    let mut documented_sorted = documented.clone();
    documented_sorted.sort_unstable();
    assert_eq!(documented_sorted, want);
    assert!(
        spec["paths"]["/api"]["post"].is_object(),
        "the legacy endpoint"
    );

    // What the node answers 404 to is exactly what is not documented, among the methods of
    // Centrifugo's API: implementing one more fails here until it is documented.
    let node = RunningNode::start(Config::for_test()).expect("start node");
    let api = Api::new(node.addr, TEST_API_KEY);
    let centrifugo = [
        "refresh",
        "user_connections",
        "update_user_status",
        "get_user_status",
        "delete_user_status",
        "block_user",
        "unblock_user",
        "revoke_token",
        "invalidate_user_tokens",
        "device_register",
        "send_push_notification",
        "rpc",
    ];
    for method in METHODS.iter().chain(&centrifugo) {
        let (status, _) = api.post(method, "{}").await;
        assert_eq!(
            status == 404,
            !documented.contains(method),
            "{method}: {status}"
        );
    }

    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(spec.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The checker every API test goes through refuses what the document does not describe.
#[test]
fn the_checker_refuses_answers_the_document_does_not_describe() {
    let spec = Spec::served();
    let ok = Exchange {
        verb: "POST",
        target: "/api/publish",
        request_body: r#"{"channel":"history:1","data":{"n":1}}"#,
        status: 200,
        content_type: Some("application/json"),
        response_body: r#"{"result":{"offset":1,"epoch":"abc"}}"#,
    };
    spec.check(&ok).expect("a publish reply");
    let refused = |ex: Exchange, why: &str| {
        let e = spec.check(&ex).expect_err(why);
        eprintln!("{why}: {e}");
    };
    refused(
        Exchange {
            response_body: r#"{"result":{"offset":"1","epoch":"abc"}}"#,
            ..ok
        },
        "an offset that is a string",
    );
    refused(
        Exchange {
            response_body: r#"{"result":{"offset":1},"extra":true}"#,
            ..ok
        },
        "a field the document does not list",
    );
    refused(
        Exchange {
            response_body: r#"{"error":{"code":107}}"#,
            ..ok
        },
        "an error without its message",
    );
    refused(
        Exchange {
            target: "/api/info",
            response_body: r#"{"result":{"nodes":[{"uid":"u","name":"n"}]}}"#,
            ..ok
        },
        "a node without its counts",
    );
    refused(
        Exchange { status: 418, ..ok },
        "a status the document does not list",
    );
    refused(
        Exchange {
            content_type: Some("text/html"),
            ..ok
        },
        "a content type the document does not list",
    );
    refused(
        Exchange {
            status: 401,
            content_type: Some("text/plain"),
            response_body: "no",
            ..ok
        },
        "a body where the document says none",
    );
    refused(
        Exchange {
            request_body: r#"{"channel":"history:1","data":{"n":1},"tags":{"a":1}}"#,
            ..ok
        },
        "an accepted request the document refuses (a tag that is not a string)",
    );
    refused(
        Exchange {
            status: 400,
            content_type: Some("text/plain; charset=utf-8"),
            response_body: "bad request: …\n",
            ..ok
        },
        "a request the document accepts refused as malformed",
    );
    refused(
        Exchange {
            target: "/api",
            request_body: r#"{"method":"publish","params":{}}"#,
            response_body: "{\"result\":{}}\n{\"oops\":1}",
            ..ok
        },
        "a legacy reply line of another shape",
    );
    refused(
        Exchange {
            verb: "GET",
            target: "/metrics",
            ..ok
        },
        "a path outside the document",
    );
}

fn redis_config(redis: &RedisServer) -> Config {
    let mut config = Config::for_test();
    config.broker = BrokerConfig::Redis(RedisConfig {
        shards: vec![RedisShardConfig::Standalone { url: redis.url() }],
        prefix: "herald-openapi".into(),
        connect_timeout: Duration::from_millis(500),
        // Generous: a command that times out on a loaded machine would be a 503.
        command_timeout: Duration::from_secs(10),
        pubsub_connections: 1,
        pool_size: 4,
        tls_ca_cert: None,
    });
    config
}

/// Every method and every kind of answer, each checked against the document by `Api`: in
/// both error modes, with the Redis broker.
#[tokio::test]
async fn every_method_and_answer_matches_the_document() {
    let redis = RedisServer::start();
    let node = RunningNode::start(redis_config(&redis)).expect("start node");
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut client = herald::testing::WsClient::connect(&node.ws_url()).await;
    client.handshake(&herald::testing::token("alice")).await;
    client.subscribe(2, "room:1").await;

    let calls = [
        (
            "publish",
            json!({"channel":"history:1","data":{"n":1},"tags":{"k":"v"}}),
        ),
        ("publish", json!({"channel":"history:1","b64data":"AAEC"})),
        ("publish", json!({"channel":"chat:1","data":"text"})),
        (
            "broadcast",
            json!({"channels":["history:1","nope:1"],"data":[1]}),
        ),
        (
            "subscribe",
            json!({"user":"alice","channel":"chat:news","data":{}}),
        ),
        ("unsubscribe", json!({"user":"alice","channel":"chat:news"})),
        ("info", json!({})),
        ("channels", json!({"pattern":"*"})),
        ("history", json!({"channel":"history:1","limit":-1})),
        (
            "history",
            json!({"channel":"history:1","limit":1,"reverse":true}),
        ),
        // Found by schemathesis: a limit beyond 2^53 was a Redis error (100, HTTP 503).
        (
            "history",
            json!({"channel":"history:1","limit":i64::MAX,"reverse":true}),
        ),
        ("history", json!({"channel":"chat:1"})),
        ("history_remove", json!({"channel":"history:1"})),
        ("presence", json!({"channel":"room:1"})),
        ("presence_stats", json!({"channel":"room:1"})),
        ("presence", json!({"channel":"chat:1"})),
        ("disconnect", json!({"user":"nobody","whitelist":["x"]})),
        ("publish", json!({"channel":"history:1"})),
        (
            "batch",
            json!({"parallel":true,"commands":[
                {"publish":{"channel":"history:1","data":{}}},
                {"broadcast":{"channels":["chat:1"],"data":{}}},
                {"history":{"channel":"history:1","limit":-1}},
                {"presence":{"channel":"room:1"}},
                {"presence_stats":{"channel":"room:1"}},
                {"channels":{}},
                {"info":{}},
                {"history_remove":{"channel":"history:1"}},
                {"subscribe":{"user":"bob","channel":"chat:1"}},
                {"unsubscribe":{"user":"bob","channel":"chat:1"}},
                {"disconnect":{"user":"bob"}},
                {"no_such":{}},
                {"publish":{"channel":""}},
                {}
            ]}),
        ),
    ];
    for (method, body) in calls {
        let (status, reply) = api.post(method, &body.to_string()).await;
        assert_eq!(status, 200, "{method}: {reply}");
    }
    let history = api
        .call("history", json!({"channel":"history:1","limit":-1}))
        .await;
    assert!(history["result"]["offset"].as_u64() > Some(0), "{history}");

    // Malformed, unknown, oversized, unauthorized.
    assert_eq!(api.post("publish", "{not json").await.0, 400);
    assert_eq!(api.post("publish", r#"{"channel":5}"#).await.0, 400);
    assert_eq!(api.post("batch", r#"{"commands":{}}"#).await.0, 400);
    assert_eq!(api.post("no_such_method", "{}").await.0, 404);
    let (status, content_type, body) = too_large(node.addr).await;
    let exchange = Exchange {
        verb: "POST",
        target: "/api/publish",
        request_body: "",
        status,
        content_type: content_type.as_deref(),
        response_body: &body,
    };
    assert_eq!(status, 413, "{body}");
    Spec::served().check(&exchange).expect("413 as documented");
    assert_eq!(Api::new(node.addr, "wrong").post("info", "{}").await.0, 401);

    // Transport error mode: each error status the node gives.
    let transport = [
        ("X-API-Key", TEST_API_KEY),
        ("X-Centrifugo-Error-Mode", "transport"),
    ];
    let in_transport_mode = |method: &str, body: Value| {
        let api = &api;
        let path = format!("/api/{method}");
        async move {
            api.request("POST", &path, &transport, &body.to_string())
                .await
        }
    };
    let (status, body) = in_transport_mode("publish", json!({"channel":"nope:1","data":1})).await;
    assert_eq!((status, parse(&body)["code"].clone()), (404, json!(102)));
    let (status, body) = in_transport_mode("history", json!({"channel":"chat:1"})).await;
    assert_eq!((status, parse(&body)["code"].clone()), (400, json!(108)));
    let stale = json!({"channel":"history:1","limit":1,"since":{"offset":1,"epoch":"gone"}});
    let (status, body) = in_transport_mode("history", stale).await;
    assert_eq!((status, parse(&body)["code"].clone()), (416, json!(112)));

    // The broker gone: error 100, temporary, 503 in transport mode.
    drop(redis);
    let (status, body) = in_transport_mode("publish", json!({"channel":"chat:1","data":1})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(parse(&body)["temporary"], true);
    let (status, body) = api
        .post("publish", r#"{"channel":"chat:1","data":1}"#)
        .await;
    assert_eq!(
        (status, parse(&body)["error"]["code"].clone()),
        (200, json!(100))
    );
}

/// A publish announcing a 2 MiB body (over the 1 MiB limit): the node answers from the
/// header, before any body, so none is sent (a body the node never reads would make its close
/// a reset that can lose the answer).
async fn too_large(addr: std::net::SocketAddr) -> (u16, Option<String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {TEST_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-type:")
            .map(|v| v.trim().to_owned())
    });
    (status, content_type, body.to_owned())
}

/// The legacy endpoint: one reply line per command; a body without commands is HTTP 400 (it
/// was an empty HTTP 200, which is not JSON), as Centrifugo answers.
#[tokio::test]
async fn the_legacy_endpoint_matches_the_document() {
    let node = RunningNode::start(Config::for_test()).expect("start node");
    let api = Api::new(node.addr, TEST_API_KEY);
    let key = [("X-API-Key", TEST_API_KEY)];
    let body = concat!(
        r#"{"method":"publish","params":{"channel":"chat:1","data":{}}}"#,
        "\n",
        r#"{"method":"info"}"#,
        "\n",
        r#"{"method":"batch","params":{}}"#,
    );
    let (status, reply) = api.request("POST", "/api", &key, body).await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = reply.lines().map(parse).collect();
    assert_eq!(lines.len(), 3, "{reply}");
    assert_eq!(lines[2]["error"]["code"], 104);
    for empty in ["", "\n  \n"] {
        let (status, reply) = api.request("POST", "/api", &key, empty).await;
        assert_eq!(
            (status, reply.as_str()),
            (400, "bad request: no commands\n")
        );
    }
    assert_eq!(api.request("POST", "/api", &key, "[1]").await.0, 400);
}

/// A program of target/sdk-venv (or `env`'s override). Missing: `None` with the reason
/// printed, outside CI; under CI (`CI` set) the test fails, so CI cannot pass without it.
fn venv_tool(name: &str, env: &str) -> Option<PathBuf> {
    let bin = match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => manifest_dir().join("../../target/sdk-venv/bin").join(name),
    };
    if bin.exists() {
        return Some(bin);
    }
    let why = format!(
        "{name} is not installed in target/sdk-venv: run `bash .ci/install-test-deps` from the repository root (or set {env})"
    );
    let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(!in_ci, "{why}");
    eprintln!("skipped: {why}");
    None
}

/// docs/openapi.yaml against the OpenAPI 3.1 schema (openapi-spec-validator): the structure
/// the tools reading it expect, which the schema checks of the other tests do not cover.
#[test]
fn the_document_is_valid_openapi_3_1() {
    let Some(python) = venv_tool("python", "HERALD_TEST_PYTHON") else {
        return;
    };
    let check = "import sys\n\
        from openapi_spec_validator import validate\n\
        from openapi_spec_validator.readers import read_from_filename\n\
        spec, _ = read_from_filename(sys.argv[1])\n\
        validate(spec)\n";
    let output = std::process::Command::new(python)
        .args(["-c", check])
        .arg(spec_path())
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        output.status.success(),
        "docs/openapi.yaml is not valid OpenAPI 3.1:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// schemathesis generates requests from docs/openapi.yaml (its examples, then generated and
/// negative ones, a bounded number per operation) against a live node with the Redis broker,
/// and checks that no answer is a server error and every answer matches the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let Some(bin) = venv_tool("schemathesis", "HERALD_TEST_SCHEMATHESIS") else {
        return;
    };
    let redis = RedisServer::start();
    let node = RunningNode::start(redis_config(&redis)).expect("start node");
    let output = tokio::process::Command::new(&bin)
        .arg("run")
        .arg(spec_path())
        .arg("--url")
        .arg(node.http_url())
        .args(["--header", &format!("X-API-Key: {TEST_API_KEY}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            // One worker: Hypothesis' generation is not thread-safe (with two, schemathesis
            // now and then fails inside it, not on the API).
            "--workers",
            "1",
            "--request-timeout",
            "10",
            // Hypothesis' health checks judge the generator's speed, not the API.
            "--suppress-health-check",
            "all",
            "--generation-database",
            "none",
            "--no-color",
        ])
        // Not the repository: schemathesis reads a schemathesis.toml from where it runs.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{stdout}");
}
