//! The spans a node opens through its `Tracer` on the memory broker: a publication's broker
//! publish and delivery in one trace under the caller's context, one delivery span however many
//! subscribers, connect and subscribe spans (failed ones marked), and nothing at all for a
//! publication whose trace is not sampled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald_engine::config::{ChannelConfig, ChannelOptions, Namespace};
use herald_engine::testing::node::node_config;
use herald_engine::testing::session::{command, connected, drain_all};
use herald_engine::trace::{Parent, Span, SpanKind, SpanStart, Tracer};
use herald_engine::{MemoryBroker, Node, PublishOptions};
use serde_json::json;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[derive(Debug, Clone)]
struct Recorded {
    name: &'static str,
    kind: SpanKind,
    parent: Option<String>,
    traceparent: String,
    attributes: Vec<(String, String)>,
    failed: Option<String>,
    counts: Vec<(&'static str, u64)>,
}

/// Records every span; `sample` says whether spans are started at all.
#[derive(Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<Recorded>>>,
    next: AtomicU64,
    unsampled: bool,
}

impl Recorder {
    fn spans(&self) -> Vec<Recorded> {
        self.spans.lock().unwrap().clone()
    }
}

struct RecordingSpan {
    index: usize,
    traceparent: String,
    spans: Arc<Mutex<Vec<Recorded>>>,
}

impl Tracer for Recorder {
    fn start(&self, span: SpanStart<'_>) -> Option<Box<dyn Span>> {
        if self.unsampled {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let trace = span
            .parent
            .and_then(|p| p.split('-').nth(1))
            .unwrap_or("0000000000000000000000000000000f");
        let traceparent = format!("00-{trace}-{id:016x}-01");
        let mut spans = self.spans.lock().unwrap();
        spans.push(Recorded {
            name: span.name,
            kind: span.kind,
            parent: span.parent.map(str::to_owned),
            traceparent: traceparent.clone(),
            attributes: span
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            failed: None,
            counts: Vec::new(),
        });
        Some(Box::new(RecordingSpan {
            index: spans.len() - 1,
            traceparent,
            spans: self.spans.clone(),
        }))
    }
}

impl Span for RecordingSpan {
    fn traceparent(&self) -> String {
        self.traceparent.clone()
    }

    fn fail(&mut self, message: &str) {
        self.spans.lock().unwrap()[self.index].failed = Some(message.to_owned());
    }

    fn count(&mut self, key: &'static str, value: u64) {
        self.spans.lock().unwrap()[self.index]
            .counts
            .push((key, value));
    }
}

fn node(tracer: Arc<Recorder>) -> Node {
    let config = node_config(ChannelConfig {
        namespaces: vec![Namespace {
            name: "chat".into(),
            options: ChannelOptions {
                allow_subscribe_for_client: true,
                history_size: 5,
                history_ttl: Duration::from_secs(60),
                ..Default::default()
            },
        }],
        ..Default::default()
    });
    Node::with_tracer(config, Arc::new(MemoryBroker::new()), Some(tracer)).unwrap()
}

async fn publish(node: &Node, channel: &str, trace: Parent) {
    node.publish(
        channel,
        Bytes::from_static(b"{}"),
        PublishOptions {
            trace,
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_publication_is_traced_from_the_caller_to_the_delivery() {
    let recorder = Arc::new(Recorder::default());
    let node = node(recorder.clone());
    let mut alice = connected(&node, "alice").await;
    let mut bob = connected(&node, "bob").await;
    for s in [&mut alice, &mut bob] {
        let reply = command(s, json!({"id": 2, "subscribe": {"channel": "chat:1"}})).await;
        assert!(reply[0]["subscribe"].is_object(), "{reply:?}");
    }
    let refused = command(
        &mut alice,
        json!({"id": 3, "subscribe": {"channel": "closed"}}),
    )
    .await;
    assert!(refused[0]["error"].is_object(), "{refused:?}");

    publish(&node, "chat:1", Parent::Span(CALLER.into())).await;
    for s in [&mut alice, &mut bob] {
        let pushed = drain_all(s).await;
        assert_eq!(pushed[0]["push"]["channel"], "chat:1", "{pushed:?}");
    }

    let spans = recorder.spans();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    assert_eq!(named("connect").len(), 2);
    assert!(
        named("connect")
            .iter()
            .all(|s| s.kind == SpanKind::Server && s.parent.is_none() && s.failed.is_none())
    );
    let subscribes = named("subscribe");
    assert_eq!(subscribes.len(), 3);
    assert_eq!(
        subscribes[0].attributes,
        [("messaging.destination.name".to_owned(), "chat:1".to_owned())]
    );
    assert!(
        subscribes[2]
            .failed
            .as_deref()
            .is_some_and(|f| f.starts_with("error 103"))
    );

    let [publish] = named("broker publish")[..] else {
        panic!("one broker publish span: {spans:#?}");
    };
    assert_eq!(
        (publish.kind, publish.parent.as_deref()),
        (SpanKind::Producer, Some(CALLER))
    );
    let [deliver] = named("deliver")[..] else {
        panic!("one deliver span for two subscribers: {spans:#?}");
    };
    assert_eq!(deliver.kind, SpanKind::Consumer);
    assert_eq!(deliver.parent.as_ref(), Some(&publish.traceparent));
    assert_eq!(deliver.counts, [("herald.delivered", 2)]);
    assert!(
        deliver
            .traceparent
            .contains("4bf92f3577b34da6a3ce929d0e0e4736")
    );
}

#[tokio::test]
async fn an_unsampled_publication_opens_no_delivery_span() {
    let recorder = Arc::new(Recorder {
        unsampled: true,
        ..Default::default()
    });
    let node = node(recorder.clone());
    let mut alice = connected(&node, "alice").await;
    command(
        &mut alice,
        json!({"id": 2, "subscribe": {"channel": "chat:1"}}),
    )
    .await;
    publish(&node, "chat:1", Parent::Span(CALLER.into())).await;
    assert_eq!(drain_all(&mut alice).await.len(), 1);
    assert!(recorder.spans().is_empty());
}

#[tokio::test]
async fn a_caller_that_is_not_sampled_gets_no_spans_below_it() {
    let recorder = Arc::new(Recorder::default());
    let node = node(recorder.clone());
    let mut alice = connected(&node, "alice").await;
    command(
        &mut alice,
        json!({"id": 2, "subscribe": {"channel": "chat:1"}}),
    )
    .await;
    publish(&node, "chat:1", Parent::Unsampled).await;
    assert_eq!(drain_all(&mut alice).await.len(), 1);
    let names: Vec<&str> = recorder.spans().iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["connect", "subscribe"],
        "no publish or delivery span"
    );
    // No caller at all: the publication starts a trace of its own.
    publish(&node, "chat:1", Parent::None).await;
    assert_eq!(drain_all(&mut alice).await.len(), 1);
    let spans = recorder.spans();
    assert_eq!(spans[2].name, "broker publish");
    assert_eq!(spans[2].parent, None);
    assert_eq!(spans[3].parent.as_ref(), Some(&spans[2].traceparent));
}
