//! The server API over real HTTP: key checks, request validation, result shapes, and the
//! methods that act on connected clients.

use herald::RunningNode;
use herald::config::Config;
use herald::testing::{Api, TEST_API_KEY, WsClient, metric, token};
use serde_json::{Value, json};

fn node() -> RunningNode {
    RunningNode::start(Config::for_test()).expect("start node")
}

async fn connected(node: &RunningNode, user: &str) -> WsClient {
    let mut c = WsClient::connect(&node.ws_url()).await;
    c.handshake(&token(user)).await;
    c
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn api_key_is_required_and_checked() {
    let node = node();
    let body = r#"{"channel":"chat:1","data":{}}"#;
    let wrong = Api::new(node.addr, "wrong-key");
    assert_eq!(wrong.post("publish", body).await, (401, String::new()));
    let api = Api::new(node.addr, TEST_API_KEY);
    let (status, _) = api.request("POST", "/api/publish", &[], body).await;
    assert_eq!(status, 401, "missing key");
    let (status, _) = api
        .request(
            "POST",
            "/api/publish",
            &[("Authorization", "apikey test-api-key")],
            body,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .request("POST", "/api/publish?api_key=test-api-key", &[], body)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn malformed_and_invalid_requests() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let (status, _) = api.post("publish", "{not json").await;
    assert_eq!(status, 400);
    let (status, body) = api.post("publish", r#"{"channel":"chat:1"}"#).await;
    assert_eq!(
        (status, parse(&body)),
        (200, json!({"error":{"code":107,"message":"bad request"}}))
    );
    let (_, body) = api.post("publish", r#"{"channel":"","data":1}"#).await;
    assert_eq!(parse(&body)["error"]["code"], 107);
    let (_, body) = api
        .post("publish", r#"{"channel":"chat:{1}","data":1}"#)
        .await;
    assert_eq!(
        parse(&body)["error"]["code"],
        107,
        "braces in a channel name"
    );
    let (_, body) = api
        .post("publish", r#"{"channel":"nope:1","data":1}"#)
        .await;
    assert_eq!(
        parse(&body),
        json!({"error":{"code":102,"message":"unknown channel"}})
    );
    let (status, _) = api.post("no_such_method", "{}").await;
    assert_eq!(status, 404);
    let (status, _) = api.request("GET", "/api/publish", &[], "").await;
    assert_eq!(status, 405);

    // Transport error mode: the status carries the error.
    let (status, body) = api
        .request(
            "POST",
            "/api/publish",
            &[
                ("X-API-Key", TEST_API_KEY),
                ("X-Centrifugo-Error-Mode", "transport"),
            ],
            r#"{"channel":"nope:1","data":1}"#,
        )
        .await;
    assert_eq!(
        (status, parse(&body)),
        (404, json!({"code":102,"message":"unknown channel"}))
    );
}

#[tokio::test]
async fn broadcast_and_batch_shapes() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut c = connected(&node, "alice").await;
    c.subscribe(2, "chat:a").await;
    c.subscribe(3, "chat:b").await;

    let r = api
        .call(
            "broadcast",
            json!({"channels":["chat:a","nope:x","chat:b"],"data":{"k":1}}),
        )
        .await;
    assert_eq!(
        r,
        json!({"result":{"responses":[
            {"result":{}},
            {"error":{"code":102,"message":"unknown channel"}},
            {"result":{}}
        ]}})
    );
    assert_eq!(c.publication().await.0, "chat:a");
    assert_eq!(c.publication().await.0, "chat:b");

    let r = api
        .call(
            "batch",
            json!({"commands":[
                {"publish":{"channel":"chat:a","data":{"n":1}}},
                {"publish":{"channel":"nope:1","data":{}}},
                {"info":{}}
            ]}),
        )
        .await;
    let replies = r["replies"].as_array().expect("replies");
    assert_eq!(replies[0], json!({"publish":{}}));
    assert_eq!(replies[1]["error"]["code"], 102);
    assert_eq!(replies[2]["info"]["nodes"][0]["num_clients"], 1);
}

#[tokio::test]
async fn info_and_channels_count_what_is_connected() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut a = connected(&node, "alice").await;
    let mut a2 = connected(&node, "alice").await;
    let mut b = connected(&node, "bob").await;
    a.subscribe(2, "chat:1").await;
    a2.subscribe(2, "chat:1").await;
    b.subscribe(2, "chat:2").await;

    let info = api.call("info", json!({})).await;
    let n = &info["result"]["nodes"][0];
    assert_eq!(n["num_clients"], 3);
    assert_eq!(n["num_users"], 2);
    assert_eq!(n["num_channels"], 2);
    assert_eq!(n["num_subs"], 3);
    assert_eq!(n["name"], "herald-test");
    assert!(n["uid"].is_string() && n["uptime"].is_number());

    let channels = api.call("channels", json!({})).await;
    assert_eq!(
        channels,
        json!({"result":{"channels":{"chat:1":{"num_clients":2},"chat:2":{"num_clients":1}}}})
    );
    let filtered = api.call("channels", json!({"pattern":"chat:2*"})).await;
    assert_eq!(
        filtered,
        json!({"result":{"channels":{"chat:2":{"num_clients":1}}}})
    );
}

#[tokio::test]
async fn disconnect_reaches_every_connection_of_the_user_with_its_code() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut a1 = connected(&node, "alice").await;
    let mut a2 = connected(&node, "alice").await;
    let mut bob = connected(&node, "bob").await;
    api.call(
        "disconnect",
        json!({"user":"alice","disconnect":{"code":4501,"reason":"banned"}}),
    )
    .await;
    for c in [&mut a1, &mut a2] {
        let closed = c.closed().await;
        assert_eq!((closed.code, closed.reason.as_str()), (4501, "banned"));
    }
    bob.send_json(&[json!({"id":3,"ping":{}})]).await;
    assert!(bob.reply(3).await.ping.is_some());
    // Default code when none is given.
    api.call("disconnect", json!({"user":"bob"})).await;
    assert_eq!(bob.closed().await.code, 3503);
    let (_, body) = api
        .post("disconnect", r#"{"user":"x","disconnect":{"code":1000}}"#)
        .await;
    assert_eq!(
        parse(&body)["error"]["code"],
        107,
        "reserved close codes are refused"
    );
}

#[tokio::test]
async fn server_subscribe_and_unsubscribe_of_a_user() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut c = connected(&node, "alice").await;
    api.call(
        "subscribe",
        json!({"user":"alice","channel":"news","data":{"welcome":true}}),
    )
    .await;
    let (push, raw) = loop {
        let (reply, raw) = c.next_with_json().await;
        if let Some(push) = reply.push {
            break (push, raw);
        }
    };
    assert_eq!(push.channel, "news");
    assert_eq!(
        raw,
        json!({"push":{"channel":"news","subscribe":{"data":{"welcome":true}}}})
    );
    api.call("publish", json!({"channel":"news","data":{"n":1}}))
        .await;
    assert_eq!(c.publication().await.0, "news");

    api.call("unsubscribe", json!({"user":"alice","channel":"news"}))
        .await;
    let (_, raw) = c.next_with_json().await;
    assert_eq!(
        raw,
        json!({"push":{"channel":"news","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}})
    );
    let info = api.call("info", json!({})).await;
    assert_eq!(info["result"]["nodes"][0]["num_channels"], 0);
}

#[tokio::test]
async fn history_publish_positions_reads_and_removal() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut epoch = String::new();
    for n in 1..=4 {
        let (_, body) = api
            .post(
                "publish",
                &json!({"channel":"history:1","data":{"n":n}}).to_string(),
            )
            .await;
        let result = &parse(&body)["result"];
        assert_eq!(result["offset"], n, "{body}");
        epoch = result["epoch"].as_str().expect("epoch").to_owned();
    }
    let (_, body) = api
        .post("publish", r#"{"channel":"chat:1","data":{}}"#)
        .await;
    assert_eq!(
        parse(&body),
        json!({"result":{}}),
        "no history, no position"
    );

    let (_, body) = api.post("history", r#"{"channel":"history:1"}"#).await;
    assert_eq!(
        parse(&body),
        json!({"result":{"publications":[],"epoch":epoch,"offset":4}}),
        "no limit: the position only"
    );
    let (_, body) = api
        .post("history", r#"{"channel":"history:1","limit":2}"#)
        .await;
    let pubs = &parse(&body)["result"]["publications"];
    assert_eq!(
        *pubs,
        json!([{"data":{"n":1},"offset":1},{"data":{"n":2},"offset":2}])
    );
    let since = json!({"channel":"history:1","limit":-1,"since":{"offset":2,"epoch":epoch}});
    let (_, body) = api.post("history", &since.to_string()).await;
    let offsets: Vec<u64> = parse(&body)["result"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [3, 4]);
    let (_, body) = api
        .post(
            "history",
            r#"{"channel":"history:1","limit":1,"reverse":true}"#,
        )
        .await;
    assert_eq!(parse(&body)["result"]["publications"][0]["offset"], 4);
    let stale = json!({"channel":"history:1","limit":-1,"since":{"offset":2,"epoch":"gone"}});
    let (_, body) = api.post("history", &stale.to_string()).await;
    assert_eq!(parse(&body)["error"]["code"], 112);
    let (_, body) = api.post("history", r#"{"channel":"chat:1"}"#).await;
    assert_eq!(parse(&body)["error"]["code"], 108, "no history in chat:");
    let (_, body) = api.post("history", r#"{"limit":1}"#).await;
    assert_eq!(parse(&body)["error"]["code"], 107);

    let (_, body) = api
        .post("history_remove", r#"{"channel":"history:1"}"#)
        .await;
    assert_eq!(parse(&body), json!({"result":{}}));
    let (_, body) = api
        .post("history", r#"{"channel":"history:1","limit":-1}"#)
        .await;
    assert_eq!(
        parse(&body),
        json!({"result":{"publications":[],"epoch":epoch,"offset":4}}),
        "the position stays"
    );
    let (_, body) = api
        .post(
            "publish",
            r#"{"channel":"history:1","data":{},"skip_history":true}"#,
        )
        .await;
    assert_eq!(parse(&body), json!({"result":{}}), "skip_history");
}

/// Presence lists every subscribed connection of a presence channel; the stats count clients
/// and distinct users; a connection that goes away leaves it.
#[tokio::test]
async fn presence_and_stats_follow_subscribers() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut a1 = connected(&node, "alice").await;
    let mut a2 = connected(&node, "alice").await;
    let mut b = connected(&node, "bob").await;
    for c in [&mut a1, &mut a2, &mut b] {
        c.subscribe(2, "room:1").await;
    }
    let presence = api.call("presence", json!({"channel":"room:1"})).await;
    let clients = presence["result"]["presence"]
        .as_object()
        .expect("presence map");
    assert_eq!(clients.len(), 3, "{presence}");
    let users: std::collections::BTreeSet<&str> = clients
        .values()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    assert_eq!(users.into_iter().collect::<Vec<_>>(), ["alice", "bob"]);
    for (id, c) in clients {
        assert_eq!(c["client"], *id);
    }
    assert_eq!(
        api.call("presence_stats", json!({"channel":"room:1"}))
            .await,
        json!({"result":{"num_clients":3,"num_users":2}})
    );
    // Leaving is done in the background: wait for it.
    let stats_become = |clients: u64, users: u64| {
        let api = &api;
        async move {
            let want = json!({"result":{"num_clients":clients,"num_users":users}});
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let stats = api
                    .call("presence_stats", json!({"channel":"room:1"}))
                    .await;
                if stats == want {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "{stats}, want {want}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    drop(b);
    stats_become(2, 1).await;
    a2.send_json(&[json!({"id":3,"unsubscribe":{"channel":"room:1"}})])
        .await;
    a2.reply(3).await;
    stats_become(1, 1).await;
    let (_, body) = api.post("presence", r#"{"channel":"chat:1"}"#).await;
    assert_eq!(parse(&body)["error"]["code"], 108, "no presence in chat:");
    let (_, body) = api.post("presence_stats", r#"{}"#).await;
    assert_eq!(parse(&body)["error"]["code"], 107);

    // The client commands, for subscribers.
    a1.send_json(&[
        json!({"id":4,"presence":{"channel":"room:1"}}),
        json!({"id":5,"presence_stats":{"channel":"room:1"}}),
        json!({"id":6,"presence":{"channel":"room:2"}}),
    ])
    .await;
    let presence = a1.reply(4).await.presence.expect("presence");
    assert_eq!(presence.presence.len(), 1);
    let stats = a1.reply(5).await.presence_stats.expect("stats");
    assert_eq!((stats.num_clients, stats.num_users), (1, 1));
    assert_eq!(
        a1.reply(6).await.error.expect("error").code,
        103,
        "not subscribed"
    );
}

/// A publish retried (here ten times at once, as a client whose requests timed out would) with
/// one idempotency key is published once; every try gets the first result.
#[tokio::test]
async fn idempotent_publish_under_retries() {
    let node = node();
    let mut c = connected(&node, "alice").await;
    c.subscribe(2, "history:1").await;
    let api = Api::new(node.addr, TEST_API_KEY);
    let body = json!({"channel":"history:1","data":{"n":1},"idempotency_key":"order-42"});
    let tries = (0..10).map(|_| api.call("publish", body.clone()));
    let results = futures_util::future::join_all(tries).await;
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    assert_eq!(results[0]["result"]["offset"], 1);
    let plain = json!({"channel":"chat:1","data":{},"idempotency_key":"order-42"});
    assert_eq!(
        api.call("publish", plain.clone()).await,
        json!({"result":{}})
    );
    assert_eq!(api.call("publish", plain).await, json!({"result":{}}));
    // A marker without a key: the next publication the client gets is it, not a repeat.
    let marker = api
        .call("publish", json!({"channel":"history:1","data":{"n":2}}))
        .await;
    assert_eq!(
        marker["result"]["offset"], 2,
        "exactly one was published before it"
    );
    let (_, first) = c.publication().await;
    let (_, second) = c.publication().await;
    assert_eq!((first.offset, second.offset), (1, 2));
    let broadcast =
        json!({"channels":["history:1","history:2"],"data":{},"idempotency_key":"b"}).to_string();
    let (_, reply) = api.post("broadcast", &broadcast).await;
    let (_, again) = api.post("broadcast", &broadcast).await;
    assert_eq!(
        parse(&reply),
        parse(&again),
        "broadcast remembers each channel's result"
    );
}

#[tokio::test]
async fn legacy_single_endpoint_takes_newline_delimited_commands() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let (status, body) = api
        .request(
            "POST",
            "/api",
            &[("X-API-Key", TEST_API_KEY)],
            "{\"method\":\"publish\",\"params\":{\"channel\":\"chat:1\",\"data\":{}}}\n{\"method\":\"publish\",\"params\":{\"channel\":\"nope:1\",\"data\":{}}}",
        )
        .await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = body.lines().map(parse).collect();
    assert_eq!(
        lines,
        vec![
            json!({"result":{}}),
            json!({"error":{"code":102,"message":"unknown channel"}})
        ]
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    assert_eq!(api.request("GET", "/health", &[], "").await.0, 200);
    assert_eq!(api.request("GET", "/ready", &[], "").await.0, 200);
    node.node.shutdown();
    let (status, body) = api.request("GET", "/ready", &[], "").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn shutdown_asks_clients_to_reconnect() {
    let node = node();
    let mut c = connected(&node, "alice").await;
    node.node.shutdown();
    assert_eq!(c.closed().await.code, 3001);
}

#[tokio::test]
async fn metrics_count_clients_commands_deliveries_and_disconnects() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut a = connected(&node, "alice").await;
    let mut b = connected(&node, "bob").await;
    a.subscribe(2, "chat:1").await;
    b.subscribe(2, "chat:1").await;
    assert_eq!(b.subscribe(3, "nope:1").await.error.unwrap().code, 102);
    for _ in 0..3 {
        api.call("publish", json!({"channel":"chat:1","data":{}}))
            .await;
    }
    for _ in 0..3 {
        a.publication().await;
    }
    api.call("disconnect", json!({"user":"bob"})).await;
    assert_eq!(b.closed().await.code, 3503);

    let (status, text) = api.request("GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let m = |name: &str, labels: &str| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    };
    assert_eq!(m("herald_clients", ""), 1.0);
    assert_eq!(m("herald_client_connects_total", ""), 2.0);
    assert_eq!(
        m("herald_client_commands_total", "method=\"subscribe\""),
        3.0
    );
    assert_eq!(m("herald_client_command_errors_total", "code=\"102\""), 1.0);
    assert_eq!(m("herald_publications_published_total", ""), 3.0);
    assert_eq!(m("herald_deliveries_total", ""), 6.0);
    assert_eq!(m("herald_client_disconnects_total", "code=\"3503\""), 1.0);
    assert_eq!(m("herald_api_requests_total", "method=\"publish\""), 3.0);
}

/// The latency histograms count what they time; API labels stay bounded whatever the path
/// says; the build and the process describe themselves.
#[tokio::test]
async fn metrics_time_api_calls_connects_and_publishes_with_bounded_labels() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut a = connected(&node, "alice").await;
    let _b = connected(&node, "bob").await;
    a.subscribe(2, "chat:1").await;
    for _ in 0..3 {
        api.call("publish", json!({"channel":"chat:1","data":{}}))
            .await;
    }
    for method in ["made_up", "another_one"] {
        assert_eq!(api.post(method, "{}").await.0, 404);
    }
    let legacy = r#"{"method":"info","params":{}}"#;
    let (status, _) = api
        .request("POST", "/api", &[("X-API-Key", TEST_API_KEY)], legacy)
        .await;
    assert_eq!(status, 200);
    assert_eq!(Api::new(node.addr, "wrong").post("info", "{}").await.0, 401);

    let (status, text) = api.request("GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let m = |name: &str, labels: &str| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    };
    let api_count = "herald_api_request_duration_seconds_count";
    assert_eq!(m(api_count, "method=\"publish\""), 3.0);
    // Two unknown names, one series; the refused key is timed under its method.
    assert_eq!(m(api_count, "method=\"unknown\""), 2.0);
    assert_eq!(m("herald_api_requests_total", "method=\"unknown\""), 2.0);
    assert!(
        !text.contains("made_up") && !text.contains("another_one"),
        "{text}"
    );
    assert_eq!(m(api_count, "method=\"legacy\""), 1.0);
    assert_eq!(m("herald_api_requests_total", "method=\"info\""), 1.0);
    assert_eq!(m(api_count, "method=\"info\""), 1.0);
    assert_eq!(m("herald_client_connect_duration_seconds_count", ""), 2.0);
    assert_eq!(m("herald_broker_publish_duration_seconds_count", ""), 3.0);
    assert!(m("herald_broker_publish_duration_seconds_sum", "") > 0.0);
    assert_eq!(m("herald_broker_errors_total", "op=\"publish\""), 0.0);
    assert_eq!(m("herald_broker_reconnects_total", ""), 0.0);
    // Buckets rise to +Inf, which is the count.
    for (name, labels) in [
        ("herald_api_request_duration_seconds", "method=\"publish\","),
        ("herald_client_connect_duration_seconds", ""),
        ("herald_broker_publish_duration_seconds", ""),
    ] {
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket{{{labels}le=")))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), 15, "{name}: {buckets:?}");
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{name}: {buckets:?}"
        );
        let count = m(&format!("{name}_count"), labels.trim_end_matches(','));
        assert_eq!(*buckets.last().unwrap(), count, "{name}");
    }
    let build = text
        .lines()
        .find(|l| l.starts_with("herald_build_info{"))
        .unwrap_or_else(|| panic!("no herald_build_info in\n{text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", herald::build_info::VERSION)),
        "{build}"
    );
    assert!(
        build.contains(&format!("commit=\"{}\"", herald::build_info::COMMIT)),
        "{build}"
    );
    assert!(build.ends_with(" 1"), "{build}");
    assert!(m("process_resident_memory_bytes", "") > 1e6);
    assert!(m("process_open_fds", "") >= 3.0);
    assert!(
        metric(&text, "process_cpu_seconds_total", "").is_some(),
        "{text}"
    );
}

/// The dashboard (deploy/grafana-dashboard.json) and the alerts
/// (k8s/overlays/production/prometheusrule.yaml) may only use the names listed in
/// .ci/deploy/metrics.py's NODE_METRICS, which .ci/validate-deploy checks; this holds the list
/// to what a node really serves.
#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_may_use_is_served() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/deploy/metrics.py");
    let script = std::fs::read_to_string(script).expect("read .ci/deploy/metrics.py");
    let start = script
        .find("NODE_METRICS = {")
        .expect("NODE_METRICS in metrics.py");
    let end = start + script[start..].find('}').expect("end of NODE_METRICS");
    let names: Vec<&str> = script[start..end].split('"').skip(1).step_by(2).collect();
    assert!(names.len() > 20, "{names:?}");

    // Traffic that gives every labelled counter at least one series.
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let mut a = connected(&node, "alice").await;
    a.subscribe(2, "chat:1").await;
    assert_eq!(a.subscribe(3, "nope:1").await.error.unwrap().code, 102);
    api.call("publish", json!({"channel":"chat:1","data":{}}))
        .await;
    a.publication().await;
    api.call("disconnect", json!({"user":"alice"})).await;
    a.closed().await;

    let (_, text) = api.request("GET", "/metrics", &[], "").await;
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            let served = |n: &str| {
                text.lines()
                    .any(|l| l.starts_with(n) && l[n.len()..].starts_with(['{', ' ']))
            };
            !(served(name) || served(&format!("{name}_bucket")))
        })
        .collect();
    assert!(missing.is_empty(), "not served: {missing:?}\n{text}");
}

/// Every API response carries a request id: the request's own `X-Request-Id` when it has a
/// usable one, else a new one.
#[tokio::test]
async fn api_responses_carry_the_request_id() {
    let node = node();
    let api = Api::new(node.addr, TEST_API_KEY);
    let id = |headers: &[(String, String)]| {
        headers
            .iter()
            .find(|(k, _)| k == "x-request-id")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no x-request-id in {headers:?}"))
    };
    let key = ("X-API-Key", TEST_API_KEY);
    let given = [key, ("X-Request-Id", "trace-me-42")];
    let (status, headers, _) = api.with_headers("POST", "/api/info", &given, "{}").await;
    assert_eq!((status, id(&headers).as_str()), (200, "trace-me-42"));
    let (status, headers, _) = api.with_headers("POST", "/api/info", &[key], "{}").await;
    assert_eq!(status, 200);
    let fresh = id(&headers);
    assert!(
        fresh.len() == 16 && fresh.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fresh}"
    );
    // Refusals too: they are what an operator goes looking for.
    let (status, headers, _) = api.with_headers("POST", "/api/info", &[], "{}").await;
    assert_eq!(status, 401);
    id(&headers);
}

/// With `server.internal_listen` the public listener carries client endpoints only: the server
/// API and metrics are on the internal one, and the public `/ready` says ready or not, never why.
#[tokio::test]
async fn an_internal_listener_takes_the_api_metrics_and_readiness_details() {
    let mut config = Config::for_test();
    config.server.internal_listen = Some("127.0.0.1:0".parse().unwrap());
    let node = RunningNode::start(config).expect("start node");
    let internal = node.internal_addr.expect("an internal listener");
    assert_ne!(internal, node.addr);
    let public = Api::new(node.addr, TEST_API_KEY);
    let operator = Api::new(internal, TEST_API_KEY);
    let body = r#"{"channel":"chat:1","data":{}}"#;

    // Unchecked against docs/openapi.yaml, which describes the listener the API is on.
    let key = [("X-API-Key", TEST_API_KEY)];
    let (status, _, _) = public.exchange("POST", "/api/publish", &key, body).await;
    assert_eq!(status, 404);
    assert_eq!(public.request("GET", "/metrics", &[], "").await.0, 404);
    assert_eq!(
        operator.post("publish", body).await,
        (200, "{\"result\":{}}".into())
    );
    let (status, metrics) = operator.request("GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("herald_client_connects"), "{metrics}");
    for api in [&public, &operator] {
        let (status, body) = api.request("GET", "/ready", &[], "").await;
        assert_eq!((status, parse(&body)), (200, json!({"status":"ready"})));
        assert_eq!(api.request("GET", "/health", &[], "").await.0, 200);
    }
    // Clients connect to the public listener only.
    let mut client = connected(&node, "alice").await;
    client.subscribe(2, "chat:1").await;
    operator
        .call("publish", json!({"channel":"chat:1","data":{"n":1}}))
        .await;
    let (channel, _) = client.publication().await;
    assert_eq!(channel, "chat:1");
    let ws = format!("ws://{internal}/connection/websocket");
    assert!(
        WsClient::try_connect_with(&ws, herald_protocol::Format::Json, &[])
            .await
            .is_err(),
        "no client endpoint on the internal listener"
    );

    // Not ready: the public listener says so, the internal one says why.
    node.node.shutdown();
    let (status, body) = public.request("GET", "/ready", &[], "").await;
    assert_eq!(
        (status, parse(&body)),
        (503, json!({"status":"unavailable"}))
    );
    let (status, body) = operator.request("GET", "/ready", &[], "").await;
    assert_eq!(status, 503);
    assert!(parse(&body)["error"].is_string(), "{body}");
}
