//! Metrics export: the engine's counters and the node's live counts, as OpenTelemetry
//! instruments read at scrape time, the latency histograms (engine and server API), the
//! process' own figures, served in Prometheus text format on `GET /metrics`.
//!
//! Every label has a fixed set of values (API methods, broker operations, limits, codes the
//! node itself chooses), so no client can grow the number of series.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use herald_engine::Node;
use herald_engine::metrics::{Histogram, HistogramSnapshot};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder as _, TextEncoder};

use crate::build_info::{COMMIT, VERSION};
use crate::config::WebSocketEngine;
use crate::socketio::metrics::{RequestKind, SocketIoMetrics};
use crate::transport::socket::SocketConfig;

pub struct Telemetry {
    registry: prometheus::Registry,
    // Keeps the instruments and their callbacks alive.
    _provider: SdkMeterProvider,
    node: Node,
    api: Arc<ApiMetrics>,
}

/// `method` label values of the API metrics beyond the API's own methods.
const LEGACY: &str = "legacy";
const UNKNOWN: &str = "unknown";

/// The server API's counts and latencies by method; indexed like [`ApiMetrics::labels`].
struct ApiMetrics {
    /// The `method` label values: the API's methods, then `legacy` (`POST /api`), then
    /// `unknown` (any other name, so a client cannot grow the series).
    labels: Vec<&'static str>,
    requests: Vec<AtomicU64>,
    durations: Vec<Histogram>,
}

impl ApiMetrics {
    fn new(methods: &[&'static str]) -> Self {
        let labels: Vec<_> = methods.iter().copied().chain([LEGACY, UNKNOWN]).collect();
        Self {
            requests: labels.iter().map(|_| AtomicU64::new(0)).collect(),
            durations: labels.iter().map(|_| Histogram::default()).collect(),
            labels,
        }
    }

    fn index(&self, method: &str) -> usize {
        self.labels
            .iter()
            .position(|m| *m == method)
            .unwrap_or(self.labels.len() - 1)
    }
}

impl Telemetry {
    /// `sockets`: the client sockets' shared state (write timeouts); `engine`: what serves
    /// `/connection/websocket`.
    /// `api_methods`: the server API's method names, the values of the API metrics' `method`
    /// label.
    pub fn new(
        node: &Node,
        sockets: Arc<SocketConfig>,
        engine: WebSocketEngine,
        api_methods: &[&'static str],
        socketio: SocketIoMetrics,
    ) -> anyhow::Result<Telemetry> {
        let registry = prometheus::Registry::new();
        // process_cpu_seconds_total, process_open_fds, process_resident_memory_bytes, ...
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("herald");

        let gauge = |name: &'static str, help: &'static str, read: fn(&Node) -> usize| {
            let node = node.clone();
            meter
                .u64_observable_gauge(name)
                .with_description(help)
                .with_callback(move |o| o.observe(read(&node) as u64, &[]))
                .build();
        };
        gauge("herald_clients", "Connected clients on this node", |n| {
            n.info().num_clients
        });
        gauge(
            "herald_users",
            "Distinct users connected to this node",
            |n| n.info().num_users,
        );
        gauge(
            "herald_channels",
            "Channels with subscribers on this node",
            |n| n.info().num_channels,
        );
        gauge(
            "herald_emulated_sessions",
            "Open HTTP-streaming and SSE connections on this node",
            |n| n.emulated_sessions(),
        );
        gauge(
            "herald_subscriptions",
            "Client subscriptions on this node",
            |n| n.info().num_subs,
        );

        let counter = |name: &'static str, help: &'static str, read: fn(&Node) -> u64| {
            let node = node.clone();
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_callback(move |o| o.observe(read(&node), &[]))
                .build();
        };
        counter(
            "herald_client_connects",
            "Successful client connects",
            |n| n.metrics().snapshot().connects,
        );
        counter(
            "herald_publications_published",
            "Publications accepted for publishing by this node",
            |n| n.metrics().snapshot().published,
        );
        counter(
            "herald_publications_broadcast",
            "Publications fanned out to local subscribers",
            |n| n.metrics().snapshot().broadcasts,
        );
        counter(
            "herald_deliveries",
            "Messages queued to client connections by fan-out",
            |n| n.metrics().snapshot().deliveries,
        );

        let n = node.clone();
        meter
            .u64_observable_counter("herald_client_commands")
            .with_description("Client commands by method")
            .with_callback(move |o| {
                for (method, count) in n.metrics().snapshot().commands {
                    o.observe(count, &[KeyValue::new("method", method)]);
                }
            })
            .build();
        let n = node.clone();
        meter
            .u64_observable_counter("herald_client_command_errors")
            .with_description("Client command error replies by code")
            .with_callback(move |o| {
                for (code, count) in n.metrics().snapshot().command_errors {
                    o.observe(count, &[KeyValue::new("code", i64::from(code))]);
                }
            })
            .build();
        let n = node.clone();
        meter
            .u64_observable_counter("herald_client_limited")
            .with_description(
                "Connects and commands refused by a limit (client.connection_limit, user_connection_limit, connection_rate_limit, command_rate_limit)",
            )
            .with_callback(move |o| {
                for (limit, count) in n.metrics().snapshot().limited {
                    o.observe(count, &[KeyValue::new("limit", limit)]);
                }
            })
            .build();
        let n = node.clone();
        meter
            .u64_observable_counter("herald_client_disconnects")
            .with_description("Closed client connections by close code (3000: client went away)")
            .with_callback(move |o| {
                for (code, count) in n.metrics().snapshot().disconnects {
                    o.observe(count, &[KeyValue::new("code", i64::from(code))]);
                }
            })
            .build();
        meter
            .u64_observable_counter("herald_client_write_timeouts")
            .with_description(
                "Client sockets closed because they took no bytes for client.write_timeout",
            )
            .with_callback(move |o| o.observe(sockets.write_timeouts.load(Ordering::Relaxed), &[]))
            .build();
        meter
            .u64_observable_gauge("herald_websocket_engine")
            .with_description("What serves /connection/websocket (server.websocket_engine): 1 for the engine in use")
            .with_callback(move |o| o.observe(1, &[KeyValue::new("engine", engine.name())]))
            .build();
        let sio = socketio.clone();
        meter
            .u64_observable_gauge("herald_socketio_sessions")
            .with_description("Open Socket.IO (Engine.IO) sessions on this node")
            .with_callback(move |o| o.observe(sio.sessions(), &[]))
            .build();
        let sio = socketio.clone();
        meter
            .u64_observable_counter("herald_socketio_upgrades")
            .with_description("Socket.IO sessions moved from polling to WebSocket")
            .with_callback(move |o| o.observe(sio.upgrades(), &[]))
            .build();
        let sio = socketio.clone();
        meter
            .u64_observable_counter("herald_socketio_packets_received")
            .with_description("Engine.IO packets received from Socket.IO clients")
            .with_callback(move |o| o.observe(sio.packets_received(), &[]))
            .build();
        meter
            .u64_observable_counter("herald_socketio_requests")
            .with_description("Socket.IO polling requests by kind (forwarded: to the node holding the session, through the broker)")
            .with_callback(move |o| {
                for kind in RequestKind::ALL {
                    o.observe(socketio.requests(kind), &[KeyValue::new("kind", kind.label())]);
                }
            })
            .build();
        let n = node.clone();
        meter
            .u64_observable_counter("herald_broker_errors")
            .with_description("Failed broker operations by operation")
            .with_callback(move |o| {
                for (op, count) in n.metrics().snapshot().broker_errors {
                    o.observe(count, &[KeyValue::new("op", op)]);
                }
            })
            .build();
        let n = node.clone();
        meter
            .u64_observable_counter("herald_broker_reconnects")
            .with_description(
                "Broker connections that deliver publications, established again after being lost",
            )
            .with_callback(move |o| o.observe(n.broker_reconnects(), &[]))
            .build();
        meter
            .u64_observable_gauge("herald_build_info")
            .with_description("The running build: always 1, labelled with its version and commit")
            .with_callback(|o| {
                o.observe(
                    1,
                    &[
                        KeyValue::new("version", VERSION),
                        KeyValue::new("commit", COMMIT),
                    ],
                )
            })
            .build();
        let api = Arc::new(ApiMetrics::new(api_methods));
        let counts = api.clone();
        meter
            .u64_observable_counter("herald_api_requests")
            .with_description(
                "Server API calls by method (legacy: POST /api; unknown: any other name)",
            )
            .with_callback(move |o| {
                for (method, count) in counts.labels.iter().zip(&counts.requests) {
                    o.observe(
                        count.load(Ordering::Relaxed),
                        &[KeyValue::new("method", *method)],
                    );
                }
            })
            .build();

        Ok(Telemetry {
            registry,
            _provider: provider,
            node: node.clone(),
            api,
        })
    }

    /// An authorized API call of `method` (a name from the request; bounded here).
    pub fn api_request(&self, method: &str) {
        self.api.requests[self.api.index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// How long an API request took to answer, whatever the answer.
    pub fn api_duration(&self, method: &str, elapsed: Duration) {
        self.api.durations[self.api.index(method)].observe(elapsed);
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        let metrics = self.node.metrics();
        let mut text = String::new();
        histogram(
            &mut text,
            "herald_api_request_duration_seconds",
            "Time to answer a server API request, by method",
            self.api
                .labels
                .iter()
                .zip(&self.api.durations)
                .map(|(method, h)| (Some(("method", *method)), h.snapshot())),
        );
        histogram(
            &mut text,
            "herald_broker_publish_duration_seconds",
            "Time the broker took to publish a publication (and store it, with history)",
            [(None, metrics.broker_publish_duration.snapshot())],
        );
        histogram(
            &mut text,
            "herald_client_connect_duration_seconds",
            "Time to answer a client's connect command (token check, limits, token channels)",
            [(None, metrics.connect_duration.snapshot())],
        );
        out.extend_from_slice(text.as_bytes());
        out
    }
}

/// Appends one histogram family in the Prometheus text format: a series per label value.
fn histogram<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Option<(&'a str, &'a str)>, HistogramSnapshot)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (label, h) in series {
        let label = label
            .map(|(k, v)| format!("{k}=\"{v}\","))
            .unwrap_or_default();
        for (bound, count) in &h.buckets {
            let _ = writeln!(out, "{name}_bucket{{{label}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{label}le=\"+Inf\"}} {}", h.count);
        let label = label.trim_end_matches(',');
        let braces = if label.is_empty() {
            String::new()
        } else {
            format!("{{{label}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", h.sum_seconds);
        let _ = writeln!(out, "{name}_count{braces} {}", h.count);
    }
}

pub async fn handler(telemetry: web::Data<Telemetry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(telemetry.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_api_method_is_not_a_new_series() {
        let api = ApiMetrics::new(&["publish", "info"]);
        assert_eq!(api.index("publish"), 0);
        assert_eq!(api.index("info"), 1);
        assert_eq!(api.index(LEGACY), 2);
        assert_eq!(api.index("made_up"), 3);
        assert_eq!(api.index("another"), 3);
        assert_eq!(api.labels[3], UNKNOWN);
    }

    #[test]
    fn histograms_render_in_the_prometheus_text_format() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        histogram(
            &mut out,
            "x_seconds",
            "help",
            [(Some(("method", "info")), h.snapshot())],
        );
        histogram(&mut out, "y_seconds", "help", [(None, h.snapshot())]);
        assert!(out.contains("# TYPE x_seconds histogram\n"), "{out}");
        assert!(
            out.contains("x_seconds_bucket{method=\"info\",le=\"0.0025\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{method=\"info\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{method=\"info\",le=\"+Inf\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_count{method=\"info\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("y_seconds_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("y_seconds_sum 0.003\n"), "{out}");
        assert!(out.contains("y_seconds_count 1\n"), "{out}");
    }
}
