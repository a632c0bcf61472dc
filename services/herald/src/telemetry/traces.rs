//! OpenTelemetry traces: the engine's [`Tracer`] implemented with the OpenTelemetry SDK,
//! exported over OTLP/HTTP (protobuf) when `telemetry.otlp_endpoint` is set.
//!
//! Each node gets a tracer provider of its own (its resource names the node), with the SDK's
//! batch processor: spans are queued in memory and sent from the processor's thread every few
//! seconds, so no request waits on the collector; a collector that is down costs dropped spans
//! (and an error the SDK logs through `tracing`), never a failed publish. Sampling is parent-based: a request
//! carrying a `traceparent` follows its caller's decision, a new trace is recorded with
//! probability `telemetry.sampling_ratio`.

use std::collections::HashMap;
use std::sync::Arc;

use herald_engine::trace::{Span, SpanKind, SpanStart, Tracer};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Span as _, SpanKind as OtelKind, Status, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::TelemetryConfig;

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("telemetry.otlp_endpoint: cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

/// The node's tracer for `config`, or `None` when tracing is off (no endpoint).
pub fn tracer(
    config: &TelemetryConfig,
    node_name: &str,
) -> Result<Option<Arc<dyn Tracer>>, TracesError> {
    let Some(url) = &config.otlp_traces_url else {
        return Ok(None);
    };
    // reqwest is built on rustls without a default crypto provider (see the workspace's
    // Cargo.toml): https endpoints need one installed. A second install is a harmless error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.as_str())
        .with_timeout(config.export_timeout)
        .build()
        .map_err(|e| TracesError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes([
            KeyValue::new("service.instance.id", node_name.to_owned()),
            KeyValue::new("service.version", crate::build_info::VERSION),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("herald");
    Ok(Some(Arc::new(OtlpTracer { provider, tracer })))
}

struct OtlpTracer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Tracer for OtlpTracer {
    fn start(&self, span: SpanStart<'_>) -> Option<Box<dyn Span>> {
        // An explicit parent (or none): spans never pick up an ambient context.
        let parent = span.parent.map(parent_context).unwrap_or_default();
        let attributes = span
            .attributes
            .iter()
            .map(|(key, value)| KeyValue::new(*key, (*value).to_owned()));
        let started = self
            .tracer
            .span_builder(span.name)
            .with_kind(match span.kind {
                SpanKind::Server => OtelKind::Server,
                SpanKind::Producer => OtelKind::Producer,
                SpanKind::Consumer => OtelKind::Consumer,
            })
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        if !started.is_recording() {
            return None;
        }
        Some(Box::new(OtlpSpan(started)))
    }

    fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "trace export failed");
        }
    }
}

/// The context a W3C `traceparent` describes; an invalid one yields an empty context (a new
/// trace), as the W3C recommendation says.
fn parent_context(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

struct OtlpSpan(opentelemetry_sdk::trace::Span);

impl Span for OtlpSpan {
    fn traceparent(&self) -> String {
        let context = self.0.span_context();
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    }

    fn fail(&mut self, message: &str) {
        self.0.set_status(Status::error(message.to_owned()));
    }

    fn count(&mut self, key: &'static str, value: u64) {
        self.0
            .set_attribute(KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_traceparent_becomes_a_remote_parent() {
        let context = parent_context(TP);
        let parent = context.span().span_context().clone();
        assert!(parent.is_valid() && parent.is_remote() && parent.is_sampled());
        assert_eq!(
            parent.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        ] {
            assert!(
                !parent_context(bad).span().span_context().is_valid(),
                "{bad}"
            );
        }
    }
}
