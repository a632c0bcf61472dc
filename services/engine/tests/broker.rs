//! The brokers against their real backends: the memory broker, and the Redis broker against
//! redis-server processes the tests start on free ports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_engine::MemoryBroker;
use herald_engine::broker::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    NodeCommand, PresenceStats, RedisBroker, StreamPosition,
};
use herald_engine::config::{RedisConfig, RedisShardConfig};
use herald_engine::testing::redis::{RedisOptions, RedisServer};
use herald_protocol::proto::{ClientInfo, Publication};

/// Records what the broker delivers; `subscribed` answers `has_subscribers`.
#[derive(Default)]
struct Recorder {
    publications: Mutex<Vec<(String, Bytes)>>,
    /// (channel, client, join?) of join and leave messages.
    joins: Mutex<Vec<(String, String, bool)>>,
    /// (offset, epoch) of publications that came with a place in their stream.
    positions: Mutex<Vec<(u64, String)>>,
    commands: Mutex<Vec<NodeCommand>>,
    /// Messages sent to this node alone.
    node_messages: Mutex<Vec<Vec<u8>>>,
    subscribed: Mutex<Vec<String>>,
}

impl BrokerEventHandler for Recorder {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        if publication.offset > 0 {
            self.positions
                .lock()
                .unwrap()
                .push((publication.offset, publication.epoch.clone()));
        }
        self.publications
            .lock()
            .unwrap()
            .push((channel.to_string(), publication.data));
    }
    fn handle_join_leave(&self, channel: &str, info: ClientInfo, join: bool) {
        self.joins
            .lock()
            .unwrap()
            .push((channel.to_string(), info.client, join));
    }
    fn handle_command(&self, command: NodeCommand) {
        self.commands.lock().unwrap().push(command);
    }
    fn handle_node_message(&self, message: &[u8]) {
        self.node_messages.lock().unwrap().push(message.to_vec());
    }
    fn has_subscribers(&self, channel: &str) -> bool {
        self.subscribed.lock().unwrap().iter().any(|c| c == channel)
    }
}

impl Recorder {
    fn data(&self, channel: &str) -> Vec<Bytes> {
        self.publications
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, d)| d.clone())
            .collect()
    }
}

fn publication(n: usize) -> Publication {
    Publication {
        data: Bytes::from(format!("{{\"n\":{n}}}")),
        ..Default::default()
    }
}

/// Polls `check` until it holds (events arrive asynchronously through Redis).
async fn eventually(what: &str, wait: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn redis_config(urls: &[String]) -> RedisConfig {
    RedisConfig {
        shards: urls
            .iter()
            .map(|url| RedisShardConfig::Standalone { url: url.clone() })
            .collect(),
        prefix: format!("test{}", std::process::id()),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        pubsub_connections: 2,
        pool_size: 4,
        tls_ca_cert: None,
    }
}

fn started(broker: impl Broker) -> (Arc<dyn Broker>, Arc<Recorder>) {
    started_as("test-node", broker)
}

fn started_as(node_uid: &str, broker: impl Broker) -> (Arc<dyn Broker>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    broker.start(node_uid, recorder.clone());
    (Arc::new(broker), recorder)
}

async fn ready(broker: &Arc<dyn Broker>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.health().await.is_err() {
        assert!(Instant::now() < deadline, "broker never became healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What every broker must do: deliver in order, only subscribed channels, commands to all.
async fn delivers_in_order(broker: Arc<dyn Broker>, recorder: Arc<Recorder>) {
    ready(&broker).await;
    recorder.subscribed.lock().unwrap().push("ch".into());
    broker.subscribe("ch").await.unwrap();
    for n in 0..200 {
        broker.publish("ch", publication(n), None).await.unwrap();
    }
    eventually("200 publications", Duration::from_secs(5), || {
        recorder.data("ch").len() == 200
    })
    .await;
    let expected: Vec<Bytes> = (0..200).map(|n| publication(n).data).collect();
    assert_eq!(recorder.data("ch"), expected);

    broker
        .publish_command(&NodeCommand::Leave { uid: "n".into() })
        .await
        .unwrap();
    eventually("command", Duration::from_secs(5), || {
        !recorder.commands.lock().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn memory_broker_delivers_in_order() {
    let (broker, recorder) = started(MemoryBroker::new());
    delivers_in_order(broker, recorder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_broker_delivers_in_order() {
    let redis = RedisServer::start();
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    delivers_in_order(broker, recorder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_on_one_redis_see_each_others_publications() {
    let redis = RedisServer::start();
    let config = redis_config(&[redis.url()]);
    let (a, _) = started(RedisBroker::new(config.clone()).unwrap());
    let (b, b_seen) = started(RedisBroker::new(config).unwrap());
    ready(&a).await;
    ready(&b).await;
    b.subscribe("news").await.unwrap();
    for n in 0..50 {
        a.publish("news", publication(n), None).await.unwrap();
    }
    a.publish("elsewhere", publication(0), None).await.unwrap();
    eventually("50 on b", Duration::from_secs(5), || {
        b_seen.data("news").len() == 50
    })
    .await;
    assert_eq!(b_seen.data("news")[49], publication(49).data);
    assert!(b_seen.data("elsewhere").is_empty(), "not subscribed there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_subscription_per_channel_and_node_dropped_after_the_last_leave() {
    let redis = RedisServer::start();
    let config = redis_config(&[redis.url()]);
    let prefix = config.prefix.clone();
    let (broker, recorder) = started(RedisBroker::new(config).unwrap());
    ready(&broker).await;
    broker.subscribe("room").await.unwrap();
    let redis_channel = format!("{prefix}.client.{{room}}");
    let subscribers = || redis.cli(&["PUBSUB", "NUMSUB", &redis_channel]);
    assert_eq!(subscribers(), format!("{redis_channel}\n1"));

    // A leave while the hub still has a subscriber (a join raced it) keeps the subscription.
    recorder.subscribed.lock().unwrap().push("room".into());
    broker.unsubscribe("room").await.unwrap();
    broker.subscribe("other").await.unwrap(); // a request after it: the leave was processed
    assert_eq!(subscribers(), format!("{redis_channel}\n1"));

    recorder.subscribed.lock().unwrap().clear();
    broker.unsubscribe("room").await.unwrap();
    eventually("unsubscribed in redis", Duration::from_secs(5), || {
        subscribers() == format!("{redis_channel}\n0")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_spread_over_shards_and_every_shard_delivers() {
    let (r1, r2) = (RedisServer::start(), RedisServer::start());
    let config = redis_config(&[r1.url(), r2.url()]);
    let prefix = config.prefix.clone();
    let (broker, recorder) = started(RedisBroker::new(config).unwrap());
    ready(&broker).await;
    let channels: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    for ch in &channels {
        broker.subscribe(ch).await.unwrap();
        broker.publish(ch, publication(1), None).await.unwrap();
    }
    eventually(
        "one publication per channel",
        Duration::from_secs(5),
        || channels.iter().all(|ch| recorder.data(ch).len() == 1),
    )
    .await;
    let count = |r: &RedisServer| {
        r.cli(&["PUBSUB", "CHANNELS", &format!("{prefix}.client.*")])
            .lines()
            .count()
    };
    let (n1, n2) = (count(&r1), count(&r2));
    assert_eq!(n1 + n2, 20);
    assert!(n1 > 0 && n2 > 0, "both shards used: {n1} + {n2}");
}

fn offsets(page: &HistoryPage) -> Vec<u64> {
    page.publications.iter().map(|p| p.offset).collect()
}

fn query(since: Option<u64>, limit: Option<usize>, reverse: bool) -> HistoryQuery {
    HistoryQuery {
        since: since.map(|offset| StreamPosition {
            offset,
            epoch: String::new(),
        }),
        limit,
        reverse,
    }
}

/// What every broker must do with history: offsets in one epoch, delivered with them, the
/// last `size` kept and readable forwards and backwards, removal that keeps the position.
async fn keeps_history(broker: Arc<dyn Broker>, recorder: Arc<Recorder>) {
    ready(&broker).await;
    recorder.subscribed.lock().unwrap().push("h".into());
    broker.subscribe("h").await.unwrap();
    let options = HistoryOptions {
        size: 3,
        ttl: Duration::from_secs(60),
    };
    let mut positions = Vec::new();
    for n in 1..=5 {
        let p = broker
            .publish("h", publication(n), Some(&options))
            .await
            .unwrap();
        positions.push(p.expect("a position"));
    }
    let epoch = positions[0].epoch.clone();
    assert!(!epoch.is_empty());
    assert_eq!(
        positions,
        (1..=5)
            .map(|offset| StreamPosition {
                offset,
                epoch: epoch.clone()
            })
            .collect::<Vec<_>>()
    );
    eventually("delivered with positions", Duration::from_secs(5), || {
        recorder.positions.lock().unwrap().len() == 5
    })
    .await;
    assert_eq!(
        *recorder.positions.lock().unwrap(),
        (1..=5).map(|o| (o, epoch.clone())).collect::<Vec<_>>()
    );

    let all = broker
        .history("h", &query(None, None, false))
        .await
        .unwrap();
    assert_eq!(offsets(&all), [3, 4, 5], "the last 3");
    assert_eq!(all.position, positions[4]);
    assert_eq!(all.publications[0].data, publication(3).data);
    let after = broker
        .history("h", &query(Some(3), None, false))
        .await
        .unwrap();
    assert_eq!(offsets(&after), [4, 5]);
    let newest = broker
        .history("h", &query(None, Some(2), true))
        .await
        .unwrap();
    assert_eq!(offsets(&newest), [5, 4]);
    let before = broker
        .history("h", &query(Some(5), None, true))
        .await
        .unwrap();
    assert_eq!(offsets(&before), [4, 3]);
    // A limit beyond any stream (the API takes any i64) reads everything kept.
    for reverse in [false, true] {
        let huge = broker
            .history("h", &query(None, Some(usize::MAX - 1), reverse))
            .await
            .unwrap();
        assert_eq!(offsets(&huge).len(), 3, "reverse: {reverse}");
    }
    let top = broker
        .history("h", &query(None, Some(0), false))
        .await
        .unwrap();
    assert!(top.publications.is_empty());
    assert_eq!(top.position, positions[4]);

    broker.remove_history("h").await.unwrap();
    let removed = broker
        .history("h", &query(None, None, false))
        .await
        .unwrap();
    assert!(removed.publications.is_empty());
    assert_eq!(
        removed.position, positions[4],
        "the position outlives removal"
    );
    let next = broker
        .publish("h", publication(6), Some(&options))
        .await
        .unwrap();
    assert_eq!(next.unwrap().offset, 6);

    let fresh = broker
        .history("never", &query(None, None, false))
        .await
        .unwrap();
    assert_eq!(fresh.position.offset, 0);
    assert!(
        !fresh.position.epoch.is_empty(),
        "an epoch even before the first publication"
    );
}

#[tokio::test]
async fn memory_broker_keeps_history() {
    let (broker, recorder) = started(MemoryBroker::new());
    keeps_history(broker, recorder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_broker_keeps_history() {
    let redis = RedisServer::start();
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    keeps_history(broker, recorder).await;
}

fn who(user: &str, client: &str) -> ClientInfo {
    ClientInfo {
        user: user.into(),
        client: client.into(),
        conn_info: Bytes::from_static(b"{\"name\":\"x\"}"),
        ..Default::default()
    }
}

/// What every broker must do with presence: add, refresh, remove, read per channel.
async fn keeps_presence(broker: Arc<dyn Broker>) {
    ready(&broker).await;
    let ttl = Duration::from_secs(60);
    broker
        .add_presence("p", &who("u1", "c1"), ttl)
        .await
        .unwrap();
    broker
        .add_presence("p", &who("u1", "c2"), ttl)
        .await
        .unwrap();
    broker
        .add_presence("p", &who("u2", "c3"), ttl)
        .await
        .unwrap();
    broker
        .add_presence("p", &who("u2", "c3"), ttl)
        .await
        .unwrap(); // a refresh
    broker
        .add_presence("other", &who("u9", "c9"), ttl)
        .await
        .unwrap();
    let p = broker.presence("p").await.unwrap();
    let mut clients: Vec<&str> = p.keys().map(String::as_str).collect();
    clients.sort();
    assert_eq!(clients, ["c1", "c2", "c3"]);
    assert_eq!(p["c1"], who("u1", "c1"));
    let stats = |clients, users| PresenceStats { clients, users };
    assert_eq!(broker.presence_stats("p").await.unwrap(), stats(3, 2));
    broker.remove_presence("p", "c1").await.unwrap();
    assert_eq!(broker.presence("p").await.unwrap().len(), 2);
    assert_eq!(broker.presence_stats("p").await.unwrap(), stats(2, 2));
    broker.remove_presence("p", "c1").await.unwrap(); // twice: counted once
    broker.remove_presence("p", "c2").await.unwrap();
    assert_eq!(broker.presence_stats("p").await.unwrap(), stats(1, 1));
    assert!(broker.presence("empty").await.unwrap().is_empty());
    assert_eq!(broker.presence_stats("empty").await.unwrap(), stats(0, 0));
}

#[tokio::test]
async fn memory_broker_keeps_presence() {
    let (broker, _) = started(MemoryBroker::new());
    keeps_presence(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_broker_keeps_presence() {
    let redis = RedisServer::start();
    let (broker, _) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    keeps_presence(broker).await;
}

/// An entry nobody refreshes (its node died) is gone after its TTL; refreshed ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_presence_entries_expire_unless_refreshed() {
    let redis = RedisServer::start();
    let (broker, _) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    ready(&broker).await;
    let short = Duration::from_secs(1);
    broker
        .add_presence("p", &who("dead", "c1"), short)
        .await
        .unwrap();
    broker
        .add_presence("p", &who("alive", "c2"), short)
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        broker
            .add_presence("p", &who("alive", "c2"), short)
            .await
            .unwrap();
        let p = broker.presence("p").await.unwrap();
        if !p.contains_key("c1") {
            assert!(p.contains_key("c2"), "the refreshed entry stays");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "expired by its TTL"
    );
    // The dead client's user is gone from the counts too.
    let stats = broker.presence_stats("p").await.unwrap();
    assert_eq!(
        stats,
        PresenceStats {
            clients: 1,
            users: 1
        }
    );
}

/// `presence_stats` answers from counters: it never loads the channel's presence (no HGETALL
/// of the thousand entries), and it drops expired entries from the counts as it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_presence_stats_read_counters_not_the_presence() {
    let redis = RedisServer::start();
    let (broker, _) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    ready(&broker).await;
    let ttl = Duration::from_secs(60);
    for n in 0..1000 {
        let info = who(&format!("u{}", n % 100), &format!("c{n}"));
        broker.add_presence("big", &info, ttl).await.unwrap();
    }
    let hgetall = || {
        let stats = redis.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find(|l| l.starts_with("cmdstat_hgetall:"))
            .and_then(|l| l.split(['=', ',']).nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = hgetall();
    let stats = broker.presence_stats("big").await.unwrap();
    assert_eq!(
        stats,
        PresenceStats {
            clients: 1000,
            users: 100
        }
    );
    assert_eq!(hgetall(), before, "presence_stats read the whole hash");
    assert_eq!(broker.presence("big").await.unwrap().len(), 1000);
    assert_eq!(hgetall(), before + 1, "the probe sees an HGETALL");
}

/// Join and leave messages reach every node subscribed to the channel, in order, and are not
/// taken for publications.
async fn carries_joins_and_leaves(broker: Arc<dyn Broker>, recorder: Arc<Recorder>) {
    ready(&broker).await;
    recorder.subscribed.lock().unwrap().push("jl".into());
    broker.subscribe("jl").await.unwrap();
    broker
        .publish_join_leave("jl", &who("u1", "c1"), true)
        .await
        .unwrap();
    broker
        .publish_join_leave("jl", &who("u1", "c1"), false)
        .await
        .unwrap();
    eventually("join and leave", Duration::from_secs(5), || {
        recorder.joins.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        *recorder.joins.lock().unwrap(),
        [
            ("jl".into(), "c1".into(), true),
            ("jl".into(), "c1".into(), false)
        ]
    );
    assert!(recorder.data("jl").is_empty(), "not publications");
}

#[tokio::test]
async fn memory_broker_carries_joins_and_leaves() {
    let (broker, recorder) = started(MemoryBroker::new());
    carries_joins_and_leaves(broker, recorder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_broker_carries_joins_and_leaves() {
    let redis = RedisServer::start();
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    carries_joins_and_leaves(broker, recorder).await;
}

/// What every broker must do with idempotency keys: a repeated key publishes nothing and
/// answers the first result, per channel, with and without history.
async fn publishes_once_per_key(broker: Arc<dyn Broker>, recorder: Arc<Recorder>) {
    ready(&broker).await;
    recorder
        .subscribed
        .lock()
        .unwrap()
        .extend(["o".into(), "oh".into()]);
    broker.subscribe("o").await.unwrap();
    broker.subscribe("oh").await.unwrap();
    for _ in 0..3 {
        let r = broker
            .publish_once("o", publication(1), None, "k1")
            .await
            .unwrap();
        assert_eq!(r, None);
    }
    broker
        .publish_once("o", publication(2), None, "k2")
        .await
        .unwrap();
    let options = HistoryOptions {
        size: 10,
        ttl: Duration::from_secs(60),
    };
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(
            broker
                .publish_once("oh", publication(1), Some(&options), "k1")
                .await
                .unwrap()
                .expect("a position"),
        );
    }
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    assert_eq!(results[0].offset, 1);
    let next = broker
        .publish_once("oh", publication(2), Some(&options), "k2")
        .await
        .unwrap();
    assert_eq!(next.unwrap().offset, 2);
    eventually("deliveries", Duration::from_secs(5), || {
        recorder.data("o").len() == 2 && recorder.data("oh").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        recorder.data("o"),
        [publication(1).data, publication(2).data]
    );
    assert_eq!(recorder.data("oh").len(), 2, "no repeat was published");
}

#[tokio::test]
async fn memory_broker_publishes_once_per_key() {
    let (broker, recorder) = started(MemoryBroker::new());
    publishes_once_per_key(broker, recorder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_broker_publishes_once_per_key() {
    let redis = RedisServer::start();
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    publishes_once_per_key(broker, recorder).await;
}

/// The key is remembered in Redis, so a retry through another node does not publish again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_holds_across_nodes() {
    let redis = RedisServer::start();
    let (a, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    let (b, _) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    ready(&a).await;
    ready(&b).await;
    recorder.subscribed.lock().unwrap().push("x".into());
    a.subscribe("x").await.unwrap();
    a.publish_once("x", publication(1), None, "retry")
        .await
        .unwrap();
    b.publish_once("x", publication(1), None, "retry")
        .await
        .unwrap();
    a.publish("x", publication(2), None).await.unwrap();
    eventually("the marker", Duration::from_secs(5), || {
        recorder.data("x").contains(&publication(2).data)
    })
    .await;
    assert_eq!(
        recorder.data("x"),
        [publication(1).data, publication(2).data]
    );
}

/// History, presence, idempotency and joins on a Redis Cluster: every key of a channel and its
/// sharded PUB/SUB channel share one hash slot, so the scripts run there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_state_works_on_a_redis_cluster() {
    use herald_engine::testing::redis::RedisCluster;
    let cluster = RedisCluster::start();
    let mut config = redis_config(&[]);
    config.shards = vec![RedisShardConfig::Cluster {
        urls: cluster.urls(),
    }];
    let (broker, recorder) = started(RedisBroker::new(config.clone()).unwrap());
    keeps_history(broker.clone(), recorder.clone()).await;
    keeps_presence(broker.clone()).await;
    publishes_once_per_key(broker.clone(), recorder.clone()).await;
    carries_joins_and_leaves(broker, recorder).await;
    messages_reach_one_node(config).await;
}

/// Redis restarted without persistence has lost every stream: the next publication starts a
/// new epoch at offset 1, so clients of the old one can tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_redis_stream_starts_a_new_epoch() {
    let mut redis = RedisServer::start();
    let (broker, _recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    ready(&broker).await;
    let options = HistoryOptions {
        size: 10,
        ttl: Duration::from_secs(60),
    };
    broker
        .publish("h", publication(1), Some(&options))
        .await
        .unwrap();
    let before = broker
        .publish("h", publication(2), Some(&options))
        .await
        .unwrap()
        .unwrap();
    redis.kill();
    redis.restart();
    ready(&broker).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        if let Ok(p) = broker.publish("h", publication(3), Some(&options)).await {
            break p.unwrap();
        }
        assert!(Instant::now() < deadline, "publishing did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(after.offset, 1);
    assert_ne!(after.epoch, before.epoch);
    let page = broker
        .history("h", &query(None, None, false))
        .await
        .unwrap();
    assert_eq!(offsets(&page), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_reported_quickly_and_everything_heals_after_it_returns() {
    let mut redis = RedisServer::start();
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    ready(&broker).await;
    recorder.subscribed.lock().unwrap().push("live".into());
    broker.subscribe("live").await.unwrap();
    broker.publish("live", publication(0), None).await.unwrap();
    eventually("first", Duration::from_secs(5), || {
        recorder.data("live").len() == 1
    })
    .await;

    redis.kill();
    let started = Instant::now();
    let err = broker
        .publish("live", publication(1), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "publish must fail within the command timeout, took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        err,
        BrokerError::Unavailable(_) | BrokerError::Timeout
    ));
    eventually("unhealthy", Duration::from_secs(5), || {
        futures_util::FutureExt::now_or_never(broker.health()).is_some_and(|r| r.is_err())
    })
    .await;

    redis.restart();
    ready(&broker).await;
    // The subscription came back by itself: no one subscribed again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if broker.publish("live", publication(2), None).await.is_ok()
            && recorder.data("live").contains(&publication(2).data)
        {
            break;
        }
        assert!(Instant::now() < deadline, "delivery did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pubsub_connection_is_replaced_and_resubscribed() {
    let redis = RedisServer::start();
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[redis.url()])).unwrap());
    ready(&broker).await;
    broker.subscribe("x").await.unwrap();
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        broker.publish("x", publication(7), None).await.unwrap();
        if !recorder.data("x").is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery after the pubsub connection was killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_carries_channels_over_sharded_pubsub() {
    use herald_engine::testing::redis::RedisCluster;
    let cluster = RedisCluster::start();
    let mut config = redis_config(&[]);
    config.shards = vec![RedisShardConfig::Cluster {
        urls: cluster.urls(),
    }];
    let prefix = config.prefix.clone();
    let (a, _) = started(RedisBroker::new(config.clone()).unwrap());
    let (b, b_seen) = started(RedisBroker::new(config).unwrap());
    ready(&a).await;
    ready(&b).await;
    let channels: Vec<String> = (0..30).map(|i| format!("room{i}")).collect();
    for ch in &channels {
        b.subscribe(ch).await.unwrap();
    }
    for n in 0..10 {
        for ch in &channels {
            a.publish(ch, publication(n), None).await.unwrap();
        }
    }
    eventually("10 per channel on b", Duration::from_secs(10), || {
        channels.iter().all(|ch| b_seen.data(ch).len() == 10)
    })
    .await;
    for ch in &channels {
        let expected: Vec<Bytes> = (0..10).map(|n| publication(n).data).collect();
        assert_eq!(b_seen.data(ch), expected, "order on {ch}");
    }
    // Sharded PUB/SUB: the channels are spread over the masters, none of them plain channels.
    let mut per_node = Vec::new();
    for node in 0..3 {
        let sharded = cluster.cli(
            node,
            &["PUBSUB", "SHARDCHANNELS", &format!("{prefix}.client.*")],
        );
        per_node.push(sharded.lines().filter(|l| !l.is_empty()).count());
        let plain = cluster.cli(node, &["PUBSUB", "CHANNELS", &format!("{prefix}.client.*")]);
        assert!(plain.trim().is_empty(), "no plain PUB/SUB: {plain}");
    }
    assert_eq!(per_node.iter().sum::<usize>(), 30, "{per_node:?}");
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "{per_node:?}"
    );

    // Commands travel over the cluster too.
    a.publish_command(&NodeCommand::Leave { uid: "x".into() })
        .await
        .unwrap();
}

/// A broker that cannot get into its Redis: never healthy, and `publish` fails within the
/// command timeout (500 ms here) with an error instead of hanging. Returns the error.
async fn locked_out(config: RedisConfig) -> BrokerError {
    let (broker, _) = started(RedisBroker::new(config).unwrap());
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert!(
            broker.health().await.is_err(),
            "a broker without access must never be healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let err = broker
        .publish("ch", publication(0), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "publish must fail within the command timeout, took {:?}",
        started.elapsed()
    );
    assert!(broker.subscribe("ch").await.is_err(), "subscribe fails too");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_serves_the_right_password_only() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("s3cret".into()),
        ..Default::default()
    });
    let url = redis.url();
    assert!(url.starts_with("redis://:s3cret@"), "{url}");
    let (broker, recorder) = started(RedisBroker::new(redis_config(&[url])).unwrap());
    delivers_in_order(broker, recorder).await;

    let port = redis.port();
    for url in [
        format!("redis://:wrong@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        let err = locked_out(redis_config(std::slice::from_ref(&url))).await;
        let message = err.to_string();
        assert!(
            matches!(err, BrokerError::Unavailable(_)),
            "{url}: {message}"
        );
        assert!(
            message.contains("WRONGPASS")
                || message.contains("NOAUTH")
                || message.contains("uthenticat"),
            "{url}: the error says why: {message}"
        );
        assert!(!message.contains("wrong@"), "password redacted: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_its_password_publishes_and_subscribes() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("admin-pw".into()),
        ..Default::default()
    });
    redis.cli(&[
        "ACL", "SETUSER", "herald", "on", ">user-pw", "~*", "&*", "+@all",
    ]);
    let url = format!("redis://herald:user-pw@127.0.0.1:{}", redis.port());
    let config = redis_config(&[url]);
    let (a, _) = started(RedisBroker::new(config.clone()).unwrap());
    let (b, b_seen) = started(RedisBroker::new(config).unwrap());
    ready(&a).await;
    ready(&b).await;
    b.subscribe("news").await.unwrap();
    for n in 0..10 {
        a.publish("news", publication(n), None).await.unwrap();
    }
    eventually("10 on b", Duration::from_secs(5), || {
        b_seen.data("news").len() == 10
    })
    .await;
    // The connections really are the ACL user's.
    let clients = redis.cli(&["CLIENT", "LIST"]);
    assert!(
        clients.lines().any(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            fields.contains(&"user=herald")
                && fields
                    .iter()
                    .any(|f| f.starts_with("sub=") && *f != "sub=0")
        }),
        "{clients}"
    );

    let wrong = format!("redis://herald:admin-pw@127.0.0.1:{}", redis.port());
    locked_out(redis_config(&[wrong])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_redis_is_used_with_its_ca_and_refused_without_it() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("pw".into()),
        tls: true,
    });
    let url = redis.url();
    assert!(url.starts_with("rediss://:pw@127.0.0.1:"), "{url}");
    let ca = redis.ca_cert_pem().unwrap();
    assert_eq!(RedisBroker::check_tls_ca_cert(&ca), Ok(1));

    let mut config = redis_config(std::slice::from_ref(&url));
    config.tls_ca_cert = Some(ca.clone());
    let (broker, recorder) = started(RedisBroker::new(config.clone()).unwrap());
    delivers_in_order(broker, recorder).await;
    // Two nodes meet over TLS as well.
    let (a, _) = started(RedisBroker::new(config.clone()).unwrap());
    let (b, b_seen) = started(RedisBroker::new(config).unwrap());
    ready(&a).await;
    ready(&b).await;
    b.subscribe("tls").await.unwrap();
    a.publish("tls", publication(1), None).await.unwrap();
    eventually("over TLS", Duration::from_secs(5), || {
        b_seen.data("tls") == [publication(1).data]
    })
    .await;

    // Without the CA (webpki roots) the server's certificate is not trusted.
    let err = locked_out(redis_config(std::slice::from_ref(&url))).await;
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "the error says why: {err}"
    );
    // A CA that did not sign the server's certificate is not trusted either.
    let other = RedisServer::start_with(RedisOptions {
        tls: true,
        ..Default::default()
    });
    let mut config = redis_config(&[url]);
    config.tls_ca_cert = other.ca_cert_pem();
    locked_out(config).await;
}

#[test]
fn tls_ca_certs_are_checked() {
    assert!(RedisBroker::check_tls_ca_cert(b"").is_err());
    assert!(RedisBroker::check_tls_ca_cert(b"not a certificate").is_err());
    let err = RedisBroker::check_tls_ca_cert(
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(err.contains("CA"), "{err}");
    // A bad CA fails the broker at construction, not at first use.
    let mut config = redis_config(&["rediss://127.0.0.1:1".into()]);
    config.tls_ca_cert = Some(b"garbage".to_vec());
    assert!(RedisBroker::new(config).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_cluster_carries_channels_with_the_right_password_only() {
    use herald_engine::testing::redis::RedisCluster;
    let cluster = RedisCluster::start_with(RedisOptions {
        password: Some("cluster-pw".into()),
        ..Default::default()
    });
    let urls = cluster.urls();
    assert!(
        urls.iter().all(|u| u.starts_with("redis://:cluster-pw@")),
        "{urls:?}"
    );
    let mut config = redis_config(&[]);
    config.shards = vec![RedisShardConfig::Cluster { urls }];
    let (a, _) = started(RedisBroker::new(config.clone()).unwrap());
    let (b, b_seen) = started(RedisBroker::new(config).unwrap());
    ready(&a).await;
    ready(&b).await;
    let channels: Vec<String> = (0..10).map(|i| format!("room{i}")).collect();
    for ch in &channels {
        b.subscribe(ch).await.unwrap();
        a.publish(ch, publication(1), None).await.unwrap();
    }
    eventually("one per channel on b", Duration::from_secs(10), || {
        channels.iter().all(|ch| b_seen.data(ch).len() == 1)
    })
    .await;

    let mut wrong = redis_config(&[]);
    wrong.shards = vec![RedisShardConfig::Cluster {
        urls: cluster
            .ports()
            .iter()
            .map(|p| format!("redis://:wrong@127.0.0.1:{p}"))
            .collect(),
    }];
    locked_out(wrong).await;
}

/// A message to one node reaches that node alone, in order, and says whether anyone got it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_messages_to_one_node_reach_it_alone() {
    let redis = RedisServer::start();
    messages_reach_one_node(redis_config(&[redis.url()])).await;
}

/// Two brokers on `config`, as nodes "node-a" and "node-b".
async fn messages_reach_one_node(config: RedisConfig) {
    let (a, on_a) = started_as("node-a", RedisBroker::new(config.clone()).unwrap());
    let (b, on_b) = started_as("node-b", RedisBroker::new(config).unwrap());
    ready(&a).await;
    ready(&b).await;
    // The node's own channel is subscribed in the background: until then nobody listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.send_to_node("node-b", b"hello".to_vec()).await.unwrap() {
        assert!(Instant::now() < deadline, "node-b never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 0..50u8 {
        assert!(a.send_to_node("node-b", vec![n]).await.unwrap());
    }
    eventually("51 messages on node-b", Duration::from_secs(5), || {
        on_b.node_messages.lock().unwrap().len() >= 51
    })
    .await;
    let got = on_b.node_messages.lock().unwrap().clone();
    let tail: Vec<Vec<u8>> = (0..50u8).map(|n| vec![n]).collect();
    assert_eq!(&got[got.len() - 50..], &tail[..]);
    assert!(on_a.node_messages.lock().unwrap().is_empty());
    assert!(!b.send_to_node("node-c", b"nobody".to_vec()).await.unwrap());
}

#[tokio::test]
async fn the_memory_broker_reaches_no_other_node() {
    let (broker, _) = started(MemoryBroker::new());
    assert!(!broker.send_to_node("other", b"x".to_vec()).await.unwrap());
}
