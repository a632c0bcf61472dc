//! Several nodes meeting in Redis (redis-server processes started by the tests on free ports):
//! cross-node delivery, the control plane, membership, and healing after Redis comes back.

use std::time::{Duration, Instant};

use herald::RunningNode;
use herald::config::{BrokerConfig, Config};
use herald::testing::{Api, TEST_API_KEY, WsClient, eventually, token};
use herald_engine::config::{RedisConfig, RedisShardConfig};
use herald_engine::testing::redis::{RedisOptions, RedisServer};
use herald_protocol::Format;
use serde_json::{Value, json};

async fn redis_node(name: &str, urls: &[String]) -> RunningNode {
    redis_node_with(name, urls, |_| {}).await
}

async fn redis_node_with(
    name: &str,
    urls: &[String],
    adjust: impl FnOnce(&mut Config),
) -> RunningNode {
    let mut config = Config::for_test();
    config.server.name = name.into();
    config.server.heartbeat_interval = Duration::from_millis(200);
    config.server.shutdown_timeout = Duration::from_secs(2);
    config.broker = BrokerConfig::Redis(RedisConfig {
        shards: urls
            .iter()
            .map(|url| RedisShardConfig::Standalone { url: url.clone() })
            .collect(),
        prefix: "herald-test".into(),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        pubsub_connections: 2,
        pool_size: 4,
        tls_ca_cert: None,
    });
    adjust(&mut config);
    let node = RunningNode::start(config).expect("start node");
    let probe = api(&node);
    eventually("node ready", || async {
        probe.request("GET", "/ready", &[], "").await.0 == 200
    })
    .await;
    node
}

/// The environment of a node configured the way an operator would: test keys, open channels,
/// fast heartbeats, and the Redis broker on `redis_urls` (`HERALD_BROKER__REDIS_URLS` syntax).
fn redis_env(redis_urls: &str) -> std::collections::HashMap<String, String> {
    [
        (
            "HERALD_AUTH__HMAC_SECRET",
            "test-secret-0123456789abcdef0123456789",
        ),
        ("HERALD_API__KEY", TEST_API_KEY),
        ("HERALD_SERVER__LISTEN", "127.0.0.1:0"),
        ("HERALD_SERVER__HEARTBEAT_INTERVAL", "200ms"),
        ("HERALD_CHANNELS__ALLOW_SUBSCRIBE_FOR_CLIENT", "true"),
        ("HERALD_BROKER__KIND", "redis"),
        ("HERALD_BROKER__REDIS_URLS", redis_urls),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn api(node: &RunningNode) -> Api {
    Api::new(node.addr, TEST_API_KEY)
}

async fn subscribed(node: &RunningNode, user: &str, format: Format, channel: &str) -> WsClient {
    let mut c = WsClient::connect_with(&node.ws_url(), format, &[]).await;
    c.handshake(&token(user)).await;
    let reply = c.subscribe(2, channel).await;
    assert!(reply.error.is_none(), "{reply:?}");
    c
}

async fn expect_in_order(client: &mut WsClient, channel: &str, range: std::ops::Range<u64>) {
    for n in range {
        let (ch, publication) = client.publication().await;
        assert_eq!(ch, channel);
        let data: Value = serde_json::from_slice(&publication.data).unwrap();
        assert_eq!(data["n"], n, "lost or reordered publication");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_on_one_node_reaches_subscribers_on_every_node_in_order() {
    let redis = RedisServer::start();
    let urls = [redis.url()];
    let (a, b, c) = (
        redis_node("a", &urls).await,
        redis_node("b", &urls).await,
        redis_node("c", &urls).await,
    );
    let mut on_b = subscribed(&b, "bob", Format::Json, "chat:room").await;
    let mut on_c = subscribed(&c, "carol", Format::Protobuf, "chat:room").await;
    let mut on_a = subscribed(&a, "alice", Format::Json, "chat:room").await;
    for n in 0..100 {
        api(&a)
            .call("publish", json!({"channel":"chat:room","data":{"n":n}}))
            .await;
    }
    for client in [&mut on_a, &mut on_b, &mut on_c] {
        expect_in_order(client, "chat:room", 0..100).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_carry_every_channel_across_nodes() {
    let (r1, r2) = (RedisServer::start(), RedisServer::start());
    let urls = [r1.url(), r2.url()];
    let (a, b) = (redis_node("a", &urls).await, redis_node("b", &urls).await);
    let mut clients = Vec::new();
    for i in 0..8 {
        clients.push(subscribed(&b, "bob", Format::Json, &format!("chat:{i}")).await);
    }
    for i in 0..8 {
        for n in 0..5 {
            api(&a)
                .call(
                    "publish",
                    json!({"channel":format!("chat:{i}"),"data":{"n":n}}),
                )
                .await;
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        expect_in_order(client, &format!("chat:{i}"), 0..5).await;
    }
    let used = |r: &RedisServer| {
        r.cli(&["PUBSUB", "CHANNELS", "herald-test.client.*"])
            .lines()
            .count()
    };
    assert_eq!(used(&r1) + used(&r2), 8);
    assert!(used(&r1) > 0 && used(&r2) > 0, "both shards carry channels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_on_one_node_acts_on_clients_of_another() {
    let redis = RedisServer::start();
    let urls = [redis.url()];
    let (a, b) = (redis_node("a", &urls).await, redis_node("b", &urls).await);
    let mut bob = subscribed(&b, "bob", Format::Json, "chat:1").await;

    api(&a)
        .call("subscribe", json!({"user":"bob","channel":"news"}))
        .await;
    let push = loop {
        if let Some(push) = bob.next().await.push {
            break push;
        }
    };
    assert_eq!(
        (push.channel.as_str(), push.subscribe.is_some()),
        ("news", true)
    );
    api(&a)
        .call("publish", json!({"channel":"news","data":{"n":0}}))
        .await;
    expect_in_order(&mut bob, "news", 0..1).await;

    api(&a)
        .call("unsubscribe", json!({"user":"bob","channel":"chat:1"}))
        .await;
    let push = loop {
        if let Some(push) = bob.next().await.push {
            break push;
        }
    };
    assert_eq!(push.unsubscribe.map(|u| u.code), Some(2000));

    api(&a)
        .call(
            "disconnect",
            json!({"user":"bob","disconnect":{"code":4000,"reason":"moved"}}),
        )
        .await;
    let closed = bob.closed().await;
    assert_eq!((closed.code, closed.reason.as_str()), (4000, "moved"));
}

fn node_names(info: &Value) -> Vec<String> {
    let mut names: Vec<String> = info["result"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_lists_every_live_node_with_its_counts_and_forgets_stopped_ones() {
    let redis = RedisServer::start();
    let urls = [redis.url()];
    let (a, b, c) = (
        redis_node("a", &urls).await,
        redis_node("b", &urls).await,
        redis_node("c", &urls).await,
    );
    let _bob = subscribed(&b, "bob", Format::Json, "chat:1").await;
    let _bob2 = subscribed(&b, "bob", Format::Json, "chat:2").await;
    eventually("three nodes with b's counts", || async {
        let info = api(&a).call("info", json!({})).await;
        let b_counts = info["result"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "b")
            .map(|n| {
                (
                    n["num_clients"].clone(),
                    n["num_users"].clone(),
                    n["num_channels"].clone(),
                )
            });
        node_names(&info) == ["a", "b", "c"] && b_counts == Some((json!(2), json!(1), json!(2)))
    })
    .await;

    // A graceful stop says goodbye.
    c.stop().unwrap();
    eventually("c forgotten", || async {
        node_names(&api(&a).call("info", json!({})).await) == ["a", "b"]
    })
    .await;
    drop(b);
    eventually("b forgotten", || async {
        node_names(&api(&a).call("info", json!({})).await) == ["a"]
    })
    .await;
}

/// Presence is shared: node A sees the clients of node B. When B is killed with SIGKILL (no
/// goodbye), its clients leave presence once their entries expire (client.presence_ttl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_and_a_killed_nodes_clients_expire() {
    let redis = RedisServer::start();
    // Channels without a namespace keep presence on both nodes.
    let a = redis_node_with("a", &[redis.url()], |c| {
        let o = &mut c.channels.without_namespace;
        o.allow_subscribe_for_client = true;
        o.presence = true;
        c.client.presence_update_interval = Duration::from_millis(300);
        c.client.presence_ttl = Duration::from_secs(1);
    })
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env(
            "HERALD_AUTH__HMAC_SECRET",
            "test-secret-0123456789abcdef0123456789",
        )
        .env("HERALD_API__KEY", TEST_API_KEY)
        .env("HERALD_BROKER__KIND", "redis")
        .env("HERALD_BROKER__REDIS_URLS", redis.url())
        .env("HERALD_BROKER__PREFIX", "herald-test")
        .env("HERALD_CHANNELS__ALLOW_SUBSCRIBE_FOR_CLIENT", "true")
        .env("HERALD_CHANNELS__PRESENCE", "true")
        .env("HERALD_CLIENT__PRESENCE_UPDATE_INTERVAL", "300ms")
        .env("HERALD_CLIENT__PRESENCE_TTL", "1s")
        .env("HERALD_LOG", "warn")
        .args(["--listen", &format!("127.0.0.1:{port}"), "run"])
        .spawn()
        .unwrap();
    let b_url = format!("ws://127.0.0.1:{port}/connection/websocket");
    let b_client = async {
        loop {
            if let Ok(c) = WsClient::try_connect_with(&b_url, Format::Json, &[]).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut on_b = tokio::time::timeout(Duration::from_secs(20), b_client)
        .await
        .expect("node B up");
    on_b.handshake(&token("bob")).await;
    on_b.subscribe(2, "lobby").await;
    let _on_a = subscribed(&a, "alice", Format::Json, "lobby").await;
    let stats = || async {
        api(&a)
            .call("presence_stats", json!({"channel":"lobby"}))
            .await
    };
    eventually("both nodes' clients are present", || async {
        stats().await == json!({"result":{"num_clients":2,"num_users":2}})
    })
    .await;
    // Longer than the TTL: B keeps refreshing while it lives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        stats().await,
        json!({"result":{"num_clients":2,"num_users":2}})
    );
    b.kill().unwrap(); // SIGKILL: no goodbye, no removal
    b.wait().unwrap();
    let killed = Instant::now();
    eventually("the killed node's client expires", || async {
        stats().await == json!({"result":{"num_clients":1,"num_users":1}})
    })
    .await;
    assert!(
        killed.elapsed() >= Duration::from_millis(300),
        "expired by its TTL, not removed"
    );
    let presence = api(&a).call("presence", json!({"channel":"lobby"})).await;
    let users: Vec<&str> = presence["result"]["presence"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice"]);
}

/// A publication made while a node's PUB/SUB connection was down never reaches it. When the
/// connection is back, a positioned client of that node is told to recover (2500) even if
/// nothing is published after it, and recovering returns the lost publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_lost_during_a_pubsub_reconnect_is_recovered_without_waiting() {
    let redis = RedisServer::start();
    let node = redis_node("a", &[redis.url()]).await;
    let mut client = WsClient::connect_with(&node.ws_url(), Format::Json, &[]).await;
    client.handshake(&token("alice")).await;
    client
        .send_json(&[json!({"id":2,"subscribe":{"channel":"history:lost","recoverable":true}})])
        .await;
    let reply = client.reply(2).await;
    let sub = reply.subscribe.expect("subscribed");
    assert!(sub.positioned);
    let epoch = sub.epoch;
    let publish = |n: u64| {
        let api = api(&node);
        async move {
            api.call("publish", json!({"channel":"history:lost","data":{"n":n}}))
                .await
        }
    };
    publish(1).await;
    expect_in_order(&mut client, "history:lost", 1..2).await;

    // Cut the node's PUB/SUB connections and publish while they reconnect (50 ms at least).
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let lost = publish(2).await;
    assert_eq!(lost["result"]["offset"], 2, "{lost}");

    // Nothing else is published: the node itself must notice.
    let told = async {
        loop {
            let (reply, _) = client.next_with_json().await;
            if let Some(push) = reply.push {
                return push;
            }
        }
    };
    let push = tokio::time::timeout(Duration::from_secs(10), told)
        .await
        .expect("the node noticed the lost publication by itself");
    assert_eq!(push.channel, "history:lost");
    let unsubscribe = push.unsubscribe.expect("told to resubscribe");
    assert_eq!(unsubscribe.code, 2500, "{unsubscribe:?}");
    client
        .send_json(&[
            json!({"id":3,"subscribe":{"channel":"history:lost","recoverable":true,
            "recover":true,"offset":1,"epoch":epoch}}),
        ])
        .await;
    let sub = client.reply(3).await.subscribe.expect("resubscribed");
    assert!(sub.recovered, "{sub:?}");
    let recovered: Vec<Value> = sub
        .publications
        .iter()
        .map(|p| serde_json::from_slice(&p.data).unwrap())
        .collect();
    assert_eq!(recovered, [json!({"n":2})]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_expires_from_the_others() {
    let redis = RedisServer::start();
    let a = redis_node("a", &[redis.url()]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env(
            "HERALD_AUTH__HMAC_SECRET",
            "test-secret-0123456789abcdef0123456789",
        )
        .env("HERALD_API__KEY", TEST_API_KEY)
        .env("HERALD_BROKER__KIND", "redis")
        .env("HERALD_BROKER__REDIS_URLS", redis.url())
        .env("HERALD_BROKER__PREFIX", "herald-test")
        .env("HERALD_SERVER__NAME", "doomed")
        .env("HERALD_SERVER__HEARTBEAT_INTERVAL", "200ms")
        .env("HERALD_LOG", "warn")
        .args(["--listen", &format!("127.0.0.1:{port}"), "run"])
        .spawn()
        .unwrap();
    eventually("the process joins", || async {
        node_names(&api(&a).call("info", json!({})).await) == ["a", "doomed"]
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no goodbye
    child.wait().unwrap();
    let killed = Instant::now();
    eventually("the killed node expires", || async {
        node_names(&api(&a).call("info", json!({})).await) == ["a"]
    })
    .await;
    assert!(
        killed.elapsed() >= Duration::from_millis(300),
        "expired by heartbeat, not by goodbye"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_heals_without_clients_reconnecting() {
    let mut redis = RedisServer::start();
    let urls = [redis.url()];
    let (a, b) = (redis_node("a", &urls).await, redis_node("b", &urls).await);
    let mut bob = subscribed(&b, "bob", Format::Json, "chat:live").await;
    for n in 0..10 {
        api(&a)
            .call("publish", json!({"channel":"chat:live","data":{"n":n}}))
            .await;
    }
    expect_in_order(&mut bob, "chat:live", 0..10).await;

    redis.kill();
    let (a2, b2) = (api(&a), api(&b));
    eventually("both nodes not ready", || async {
        a2.request("GET", "/ready", &[], "").await.0 == 503
            && b2.request("GET", "/ready", &[], "").await.0 == 503
    })
    .await;
    let started = Instant::now();
    let (status, body) = a2
        .post("publish", r#"{"channel":"chat:live","data":{"n":-1}}"#)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "publish must not hang"
    );
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["temporary"], true);
    let (status, _) = a2
        .request(
            "POST",
            "/api/publish",
            &[
                ("X-API-Key", TEST_API_KEY),
                ("X-Centrifugo-Error-Mode", "transport"),
            ],
            r#"{"channel":"chat:live","data":{"n":-1}}"#,
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(
        a2.metric("herald_broker_errors_total", "op=\"publish\"")
            .await,
        2.0,
        "both failed publishes are counted"
    );
    assert_eq!(a2.metric("herald_broker_reconnects_total", "").await, 0.0);

    redis.restart();
    eventually("both nodes ready again", || async {
        a2.request("GET", "/ready", &[], "").await.0 == 200
            && b2.request("GET", "/ready", &[], "").await.0 == 200
    })
    .await;
    // Every PUB/SUB connection of the node came back (the test nodes have two).
    assert!(a2.metric("herald_broker_reconnects_total", "").await >= 2.0);
    // Nodes resubscribed by themselves: the same connection receives again.
    for n in 10..20 {
        api(&a)
            .call("publish", json!({"channel":"chat:live","data":{"n":n}}))
            .await;
    }
    expect_in_order(&mut bob, "chat:live", 10..20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_a_redis_cluster_deliver_over_sharded_pubsub() {
    use herald_engine::testing::redis::RedisCluster;
    let cluster = RedisCluster::start();
    let seeds: Vec<String> = cluster
        .ports()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    // Configured the way an operator would: one `redis+cluster://` entry, seeds joined by `|`.
    let env = redis_env(&format!("redis+cluster://{}", seeds.join("|")));
    let start = || async {
        let config = Config::load(None, Some(env.clone()), &Default::default()).expect("config");
        assert!(
            matches!(&config.broker, BrokerConfig::Redis(r) if matches!(r.shards[0], RedisShardConfig::Cluster { .. }))
        );
        let node = RunningNode::start(config).expect("start node");
        let probe = api(&node);
        eventually("node ready", || async {
            probe.request("GET", "/ready", &[], "").await.0 == 200
        })
        .await;
        node
    };
    let (a, b) = (start().await, start().await);
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(subscribed(&b, "bob", Format::Json, &format!("room{i}")).await);
    }
    for n in 0..10 {
        for i in 0..6 {
            api(&a)
                .call(
                    "publish",
                    json!({"channel":format!("room{i}"),"data":{"n":n}}),
                )
                .await;
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        expect_in_order(client, &format!("room{i}"), 0..10).await;
    }
    let sharded: usize = (0..3)
        .map(|node| {
            cluster
                .cli(node, &["PUBSUB", "SHARDCHANNELS", "herald.client.*"])
                .lines()
                .filter(|l| !l.is_empty())
                .count()
        })
        .sum();
    assert_eq!(
        sharded, 6,
        "one sharded subscription per channel (both nodes share them per Redis channel)"
    );
    // The control plane rides the cluster as well.
    eventually("both nodes listed", || async {
        node_names(&api(&a).call("info", json!({})).await).len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_meet_in_a_password_protected_tls_redis_configured_from_the_environment() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("pw".into()),
        tls: true,
    });
    let url = format!("rediss://:pw@127.0.0.1:{}", redis.port());
    assert_eq!(url, redis.url());
    let ca_file = redis.ca_cert_path().unwrap();
    let env = |ca: Option<&std::path::Path>| {
        let mut env = redis_env(&url);
        if let Some(ca) = ca {
            env.insert(
                "HERALD_BROKER__TLS_CA_FILE".to_string(),
                ca.display().to_string(),
            );
        }
        env
    };
    let ca_pem = redis.ca_cert_pem();
    let start = |env: std::collections::HashMap<String, String>| {
        let expected_ca = env
            .contains_key("HERALD_BROKER__TLS_CA_FILE")
            .then(|| ca_pem.clone().unwrap());
        async move {
            let config = Config::load(None, Some(env), &Default::default()).expect("config");
            assert!(config.warnings.is_empty(), "{:?}", config.warnings);
            assert!(
                matches!(&config.broker, BrokerConfig::Redis(r) if r.tls_ca_cert == expected_ca)
            );
            RunningNode::start(config).expect("start node")
        }
    };
    let ready = |node: &RunningNode| {
        let probe = api(node);
        async move {
            eventually("node ready", || async {
                probe.request("GET", "/ready", &[], "").await.0 == 200
            })
            .await;
        }
    };
    let (a, b) = (
        start(env(Some(&ca_file))).await,
        start(env(Some(&ca_file))).await,
    );
    ready(&a).await;
    ready(&b).await;
    let mut bob = subscribed(&b, "bob", Format::Json, "room").await;
    for n in 0..10 {
        api(&a)
            .call("publish", json!({"channel":"room","data":{"n":n}}))
            .await;
    }
    expect_in_order(&mut bob, "room", 0..10).await;
    eventually("both nodes listed", || async {
        node_names(&api(&a).call("info", json!({})).await).len() == 2
    })
    .await;

    // Without the CA file the server's certificate is not trusted: the node never gets ready.
    let untrusting = start(env(None)).await;
    let probe = api(&untrusting);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert_eq!(probe.request("GET", "/ready", &[], "").await.0, 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An emulated connection (HTTP streaming) holds its stream on one node while the load
/// balancer sends its commands to another: they reach it through Redis, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulation_requests_posted_to_any_node_reach_the_connection_in_order() {
    use herald::testing::stream::{self, StreamClient};
    use herald_protocol::proto::{Command, ConnectRequest, SubscribeRequest};

    let redis = RedisServer::start();
    let urls = [redis.url()];
    let (a, b) = (redis_node("a", &urls).await, redis_node("b", &urls).await);
    for format in [Format::Json, Format::Protobuf] {
        let connect = Command {
            id: 1,
            connect: Some(ConnectRequest {
                token: token("alice"),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut client = StreamClient::http_stream(a.addr, format, &[connect]).await;
        let reply = client.next().await.expect("connect reply");
        let result = reply.connect.expect("connect result");
        assert_eq!(result.node, a.node.uid());
        let subscribe = |id: u32| Command {
            id,
            subscribe: Some(SubscribeRequest {
                channel: format!("chat:{id}"),
                ..Default::default()
            }),
            ..Default::default()
        };
        for id in 2..12 {
            let status = stream::emulate(
                b.addr,
                format,
                &result.node,
                &result.session,
                &[subscribe(id)],
            )
            .await;
            assert_eq!(status, 204);
        }
        for id in 2..12 {
            let reply = client.next_non_ping().await.expect("subscribe reply");
            assert_eq!(reply.id, id, "{reply:?}");
            assert!(reply.subscribe.is_some(), "{reply:?}");
        }
        api(&b)
            .call("publish", json!({"channel": "chat:5", "data": {"n": 0}}))
            .await;
        let push = client.next_non_ping().await.expect("publication");
        assert_eq!(push.push.expect("push").channel, "chat:5");
    }
    // A node that is not running: refused from the heartbeats, without a message to Redis.
    let publishes = || {
        redis
            .cli(&["INFO", "commandstats"])
            .lines()
            .find(|l| l.starts_with("cmdstat_publish:"))
            .and_then(|l| l.split(['=', ',']).nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    eventually("b has heard its peers' heartbeats", || async {
        b.node.info().uptime > Duration::from_millis(500)
    })
    .await;
    let before = publishes();
    for _ in 0..20 {
        let (status, _) = stream::post(
            b.addr,
            "/emulation",
            "application/json",
            json!({"node": "00000000-0000-4000-8000-000000000000", "session": "0123456789abcdef0123456789abcdef", "data": "{}"})
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(status, 404);
    }
    // Heartbeats publish meanwhile (one per node per 200 ms), never one per request.
    let published = publishes() - before;
    assert!(
        published < 10,
        "{published} publishes: requests for a dead node went to Redis"
    );
}
