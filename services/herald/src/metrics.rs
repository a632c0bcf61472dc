//! Metrics export: the engine's counters and the node's live counts, as OpenTelemetry
//! instruments read at scrape time, served in Prometheus text format on `GET /metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use herald_engine::Node;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder as _, TextEncoder};

use crate::config::WebSocketEngine;
use crate::transport::socket::SocketConfig;

pub struct Telemetry {
    registry: prometheus::Registry,
    // Keeps the instruments and their callbacks alive.
    _provider: SdkMeterProvider,
    api_requests: Counter<u64>,
}

impl Telemetry {
    /// `sockets`: the client sockets' shared state (write timeouts); `engine`: what serves
    /// `/connection/websocket`.
    pub fn new(
        node: &Node,
        sockets: Arc<SocketConfig>,
        engine: WebSocketEngine,
    ) -> anyhow::Result<Telemetry> {
        let registry = prometheus::Registry::new();
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
        let api_requests = meter
            .u64_counter("herald_api_requests")
            .with_description("Server API calls by method")
            .build();

        Ok(Telemetry {
            registry,
            _provider: provider,
            api_requests,
        })
    }

    pub fn api_request(&self, method: &str) {
        self.api_requests
            .add(1, &[KeyValue::new("method", method.to_string())]);
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

pub async fn handler(telemetry: web::Data<Telemetry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(telemetry.render())
}
