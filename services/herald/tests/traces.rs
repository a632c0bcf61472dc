//! OpenTelemetry traces (`telemetry.otlp_endpoint`): two nodes on a real Redis export their
//! spans over OTLP/HTTP to a collector stand-in (an HTTP server in the test that decodes the
//! protobuf bodies); a publication's trace runs from the API call on one node through the
//! broker to the delivery on every node. Without an endpoint no trace context enters Redis.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::RunningNode;
use herald::config::{BrokerConfig, Config};
use herald::testing::{Api, TEST_API_KEY, WsClient, eventually, token};
use herald_engine::config::{RedisConfig, RedisShardConfig};
use herald_engine::testing::redis::RedisServer;
use herald_protocol::Format;
use herald_protocol::proto::Publication;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const PREFIX: &str = "herald-traces";

/// One span as the collector received it, with the node (`service.instance.id`) that sent it.
#[derive(Debug, Clone)]
struct Received {
    node: String,
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP collector stand-in: answers every `POST /v1/traces` with 200 and keeps the
/// spans of the protobuf `ExportTraceServiceRequest` bodies.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (keep, seen) = (spans.clone(), paths.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, keep.clone(), seen.clone()));
            }
        });
        Collector { url, spans, paths }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// HTTP/1.1 requests on one connection (the exporter keeps it alive), until it closes.
async fn serve(
    stream: TcpStream,
    spans: Arc<Mutex<Vec<Received>>>,
    paths: Arc<Mutex<Vec<String>>>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.expect("request body");
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        paths.lock().unwrap().push(path);
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        spans.lock().unwrap().extend(received(request));
        stream
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
            .await
            .expect("answer exporter");
    }
}

fn received(request: ExportTraceServiceRequest) -> Vec<Received> {
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    };
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let resource_attribute = |key: &str| {
            resource
                .attributes
                .iter()
                .find(|a| a.key == key)
                .map(|a| text(&a.value))
                .unwrap_or_default()
        };
        let node = resource_attribute("service.instance.id");
        let service = resource_attribute("service.name");
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(Received {
                    node: node.clone(),
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect(),
                });
            }
        }
    }
    out
}

async fn node(name: &str, redis: &RedisServer, traces: Option<&Collector>) -> RunningNode {
    let mut config = Config::for_test();
    config.server.name = name.into();
    config.server.shutdown_timeout = Duration::from_secs(2);
    config.broker = BrokerConfig::Redis(RedisConfig {
        shards: vec![RedisShardConfig::Standalone { url: redis.url() }],
        prefix: PREFIX.into(),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        pubsub_connections: 1,
        pool_size: 4,
        tls_ca_cert: None,
    });
    if let Some(collector) = traces {
        // The configured base URL, as an operator writes it: the node appends /v1/traces.
        config.telemetry.otlp_traces_url = Some(format!("{}/v1/traces", collector.url));
        config.telemetry.service_name = "herald-under-test".into();
    }
    let node = RunningNode::start(config).expect("start node");
    let probe = Api::new(node.addr, TEST_API_KEY);
    eventually("node ready", || async {
        probe.request("GET", "/ready", &[], "").await.0 == 200
    })
    .await;
    node
}

async fn subscriber(node: &RunningNode, user: &str, channel: &str) -> WsClient {
    let mut c = WsClient::connect_with(&node.ws_url(), Format::Json, &[]).await;
    c.handshake(&token(user)).await;
    let reply = c.subscribe(2, channel).await;
    assert!(reply.error.is_none(), "{reply:?}");
    c
}

/// A plain Redis connection SUBSCRIBEd to a channel's PUB/SUB channel: sees exactly what the
/// nodes send each other.
struct RawSubscriber(BufReader<TcpStream>);

impl RawSubscriber {
    async fn start(redis: &RedisServer, channel: &str) -> RawSubscriber {
        let stream = TcpStream::connect(("127.0.0.1", redis.port()))
            .await
            .expect("connect redis");
        let mut raw = RawSubscriber(BufReader::new(stream));
        let name = format!("{PREFIX}.client.{{{channel}}}");
        raw.command(&["SUBSCRIBE", &name]).await;
        let confirmation = raw.array().await;
        assert_eq!(confirmation[0], b"subscribe");
        raw
    }

    async fn command(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0
            .get_mut()
            .write_all(out.as_bytes())
            .await
            .expect("write redis");
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).await.expect("read redis");
        line.trim_end().to_owned()
    }

    /// One RESP array of bulk strings and integers.
    async fn array(&mut self) -> Vec<Vec<u8>> {
        let header = self.line().await;
        let n: usize = header.strip_prefix('*').expect("array").parse().unwrap();
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let item = self.line().await;
            if let Some(len) = item.strip_prefix('$') {
                let mut bulk = vec![0; len.parse::<usize>().unwrap() + 2];
                self.0.read_exact(&mut bulk).await.expect("read bulk");
                bulk.truncate(bulk.len() - 2);
                items.push(bulk);
            } else {
                items.push(item.into_bytes());
            }
        }
        items
    }

    /// The payload of the next message.
    async fn message(&mut self) -> Vec<u8> {
        let mut message = self.array().await;
        assert_eq!(message[0], b"message");
        message.pop().expect("payload")
    }
}

/// The publication in a PUB/SUB payload and the trace context before it, if any.
fn decode_payload(payload: &[u8]) -> (Option<String>, Publication) {
    // With history: `__p1:<offset>:<epoch>__` comes first.
    let payload = match payload.strip_prefix(b"__p1:") {
        Some(rest) => {
            let end = rest
                .windows(2)
                .position(|w| w == b"__")
                .expect("positioned");
            &rest[end + 2..]
        }
        None => payload,
    };
    let (trace, publication) = herald_engine::trace::split_field(payload);
    (
        trace.map(str::to_owned),
        Publication::decode(publication).expect("publication"),
    )
}

async fn publish_traced(api: &Api, channel: &str, data: &str) {
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let body = format!(r#"{{"channel":"{channel}","data":{data}}}"#);
    let (status, reply) = api
        .request(
            "POST",
            "/api/publish",
            &[("X-API-Key", TEST_API_KEY), ("traceparent", &traceparent)],
            &body,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("\"result\""), "{reply}");
}

/// Exports what both nodes recorded until `done` holds for what the collector has.
async fn collected(
    collector: &Collector,
    nodes: &[&RunningNode],
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let handles: Vec<_> = nodes.iter().map(|n| n.node.clone()).collect();
    let done = &done;
    eventually(what, || {
        let handles = handles.clone();
        async move {
            tokio::task::spawn_blocking(move || handles.iter().for_each(|n| n.flush_traces()))
                .await
                .expect("flush");
            done(&collector.spans())
        }
    })
    .await;
    collector.spans()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_is_one_trace_from_the_api_to_every_node() {
    let redis = RedisServer::start();
    let collector = Collector::start().await;
    let a = node("node-a", &redis, Some(&collector)).await;
    let b = node("node-b", &redis, Some(&collector)).await;
    let channel = "chat:traced";
    let mut on_a = subscriber(&a, "alice", channel).await;
    // Two subscribers on B: still one delivery span there.
    let mut on_b = subscriber(&b, "bob", channel).await;
    let mut also_on_b = subscriber(&b, "carol", channel).await;
    let mut raw = RawSubscriber::start(&redis, channel).await;

    publish_traced(&Api::new(a.addr, TEST_API_KEY), channel, r#"{"n":1}"#).await;
    for c in [&mut on_a, &mut on_b, &mut also_on_b] {
        let (ch, publication) = c.publication().await;
        assert_eq!(
            (ch.as_str(), &publication.data[..]),
            (channel, &br#"{"n":1}"#[..])
        );
    }

    let spans = collected(&collector, &[&a, &b], "the publication's spans", |spans| {
        spans
            .iter()
            .filter(|s| s.name == "deliver" && s.trace_id == TRACE_ID)
            .count()
            >= 2
    })
    .await;
    let in_trace: Vec<&Received> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let one = |name: &str| {
        let found: Vec<&&Received> = in_trace.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span in {in_trace:#?}");
        (*found[0]).clone()
    };
    let api = one("api publish");
    assert_eq!(
        api.parent_span_id, CALLER_SPAN,
        "the caller's span is the API span's parent"
    );
    assert_eq!(
        (api.node.as_str(), api.kind),
        ("node-a", SpanKind::Server as i32)
    );
    assert_eq!(api.service, "herald-under-test");
    assert_eq!(api.attribute("rpc.method"), Some("publish"));
    let publish = one("broker publish");
    assert_eq!(publish.parent_span_id, api.span_id);
    assert_eq!(
        (publish.node.as_str(), publish.kind),
        ("node-a", SpanKind::Producer as i32)
    );
    assert_eq!(
        publish.attribute("messaging.destination.name"),
        Some(channel)
    );
    let deliveries: Vec<&&Received> = in_trace.iter().filter(|s| s.name == "deliver").collect();
    let mut nodes: Vec<&str> = deliveries.iter().map(|s| s.node.as_str()).collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["node-a", "node-b"],
        "one delivery span per node: {deliveries:#?}"
    );
    for delivery in &deliveries {
        assert_eq!(delivery.parent_span_id, publish.span_id, "{delivery:?}");
        assert_eq!(delivery.kind, SpanKind::Consumer as i32);
        let expected = if delivery.node == "node-b" { "2" } else { "1" };
        assert_eq!(delivery.attribute("herald.delivered"), Some(expected));
    }
    assert_eq!(in_trace.len(), 4, "{in_trace:#?}");

    // What travelled through Redis: the broker publish span's context, then the publication.
    let (trace, publication) = decode_payload(&raw.message().await);
    assert_eq!(
        trace.as_deref(),
        Some(format!("00-{TRACE_ID}-{}-01", publish.span_id).as_str())
    );
    assert_eq!(&publication.data[..], br#"{"n":1}"#);

    // Connect and subscribe spans (root spans: clients send no trace context).
    for name in ["connect", "subscribe"] {
        let span = spans
            .iter()
            .find(|s| s.name == name && s.node == "node-b")
            .unwrap_or_else(|| panic!("a {name} span from node-b in {spans:#?}"));
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert!(span.parent_span_id.is_empty(), "{span:?}");
    }
    let subscribe = spans.iter().find(|s| s.name == "subscribe").unwrap();
    assert_eq!(
        subscribe.attribute("messaging.destination.name"),
        Some(channel)
    );
    assert!(
        collector
            .paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| p == "/v1/traces"),
        "{:?}",
        collector.paths.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_with_history_carries_its_trace_to_the_other_node() {
    let redis = RedisServer::start();
    let collector = Collector::start().await;
    let a = node("node-a", &redis, Some(&collector)).await;
    let b = node("node-b", &redis, Some(&collector)).await;
    let channel = "history:traced";
    let mut on_b = subscriber(&b, "bob", channel).await;
    let mut raw = RawSubscriber::start(&redis, channel).await;

    publish_traced(&Api::new(a.addr, TEST_API_KEY), channel, r#""kept""#).await;
    let (_, publication) = on_b.publication().await;
    assert_eq!(publication.offset, 1);

    let spans = collected(&collector, &[&a, &b], "the delivery on node-b", |spans| {
        spans
            .iter()
            .any(|s| s.name == "deliver" && s.node == "node-b")
    })
    .await;
    let publish = spans
        .iter()
        .find(|s| s.name == "broker publish" && s.trace_id == TRACE_ID)
        .expect("broker publish span");
    let delivery = spans.iter().find(|s| s.name == "deliver").unwrap();
    assert_eq!(
        (delivery.trace_id.as_str(), delivery.parent_span_id.as_str()),
        (TRACE_ID, publish.span_id.as_str())
    );
    let (trace, publication) = decode_payload(&raw.message().await);
    assert!(trace.is_some_and(|t| t.contains(TRACE_ID)));
    assert_eq!(&publication.data[..], br#""kept""#);
    // The stream keeps the publication alone: history reads know nothing of traces.
    let history = Api::new(b.addr, TEST_API_KEY)
        .call(
            "history",
            serde_json::json!({"channel": channel, "limit": 10}),
        )
        .await;
    assert_eq!(
        history["result"]["publications"][0]["data"], "kept",
        "{history}"
    );
    let stream = redis.cli(&[
        "XRANGE",
        &format!("{PREFIX}.stream.{{{channel}}}"),
        "-",
        "+",
    ]);
    assert!(!stream.contains(TRACE_ID), "{stream}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_no_trace_context_enters_redis() {
    let redis = RedisServer::start();
    let a = node("node-a", &redis, None).await;
    assert!(a.node.tracer().is_none());
    let channel = "chat:untraced";
    let mut on_a = subscriber(&a, "alice", channel).await;
    let mut raw = RawSubscriber::start(&redis, channel).await;
    // The caller's traceparent is not passed on either.
    publish_traced(&Api::new(a.addr, TEST_API_KEY), channel, r#"{"n":2}"#).await;
    on_a.publication().await;
    let payload = raw.message().await;
    let (trace, publication) = decode_payload(&payload);
    assert_eq!(trace, None);
    assert_eq!(&publication.data[..], br#"{"n":2}"#);
    assert_eq!(
        payload,
        publication.encode_to_vec(),
        "the payload is the publication alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_trace_records_nothing_and_carries_nothing() {
    let redis = RedisServer::start();
    let collector = Collector::start().await;
    let a = node("node-a", &redis, Some(&collector)).await;
    let channel = "chat:unsampled";
    let mut on_a = subscriber(&a, "alice", channel).await;
    let mut raw = RawSubscriber::start(&redis, channel).await;
    let api = Api::new(a.addr, TEST_API_KEY);
    // The caller decided not to sample (flags 00): parent-based sampling follows it.
    let (status, reply) = api
        .request(
            "POST",
            "/api/publish",
            &[
                ("X-API-Key", TEST_API_KEY),
                ("traceparent", &format!("00-{TRACE_ID}-{CALLER_SPAN}-00")),
            ],
            &format!(r#"{{"channel":"{channel}","data":{{"n":3}}}}"#),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    on_a.publication().await;
    let (trace, _) = decode_payload(&raw.message().await);
    assert_eq!(trace, None, "nothing to continue: no context in Redis");
    let node = a.node.clone();
    tokio::task::spawn_blocking(move || node.flush_traces())
        .await
        .unwrap();
    let in_trace: Vec<Received> = collector
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == TRACE_ID)
        .collect();
    assert!(in_trace.is_empty(), "{in_trace:#?}");
}
