//! Distributed tracing seam: where the engine opens spans, and how a publication's trace
//! context travels with it between nodes.
//!
//! The engine does not depend on OpenTelemetry. It opens spans through the [`Tracer`] trait,
//! which the binary implements with its exporter of choice (Herald's is OTLP, in
//! `herald::telemetry`), and it carries a trace context as an opaque W3C `traceparent`
//! string. Why a trait of its own rather than the `opentelemetry` API crate or `tracing`
//! spans: a node's tracer is a value the node holds (two nodes in one process, as in the
//! tests, export apart), nothing global is consulted on the hot path, and when tracing is off
//! the node holds no tracer at all: a publication then costs one `None` check, carries no
//! context and allocates no span. `tracing` spans would need the OpenTelemetry bridge to set a
//! remote parent, which the engine could not reach without depending on it anyway.
//!
//! Spans the engine opens: `broker publish` (producer, child of the caller's context, e.g. the
//! server API's span), `deliver` (consumer, once per publication per node, child of the
//! broker publish span whose context came with the publication), `connect` and `subscribe`
//! (server, one per client command).

use prost::Message as _;

/// What a span is to its trace (OpenTelemetry's span kinds, the ones the engine uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Handles a request from outside: an API call, a client command.
    Server,
    /// Hands a message to the broker.
    Producer,
    /// Handles a message from the broker.
    Consumer,
}

/// A span about to start.
#[derive(Debug, Clone, Copy)]
pub struct SpanStart<'a> {
    pub name: &'static str,
    pub kind: SpanKind,
    /// The W3C `traceparent` of the parent span; `None` (or one that does not parse) starts a
    /// new trace.
    pub parent: Option<&'a str>,
    pub attributes: &'a [(&'static str, &'a str)],
}

/// Where a span's caller stands, for spans started on a caller's behalf (the broker publish
/// under an API call).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Parent {
    /// No caller context: the span starts a new trace, if the tracer samples it.
    #[default]
    None,
    /// The caller's span, as a W3C `traceparent`.
    Span(String),
    /// The caller's trace is not recorded: neither are its children, and nothing is handed on.
    Unsampled,
}

/// Opens spans; the binary's implementation exports them.
pub trait Tracer: Send + Sync + 'static {
    /// Starts a span. `None` when it is not sampled: nothing is recorded, and nothing needs to
    /// be handed on to children (they would not be sampled either).
    fn start(&self, span: SpanStart<'_>) -> Option<Box<dyn Span>>;
    /// Exports what has been recorded and not exported yet, waiting for it.
    fn flush(&self) {}
}

/// A started span; it ends when dropped.
pub trait Span: Send {
    /// This span as a W3C `traceparent`, the parent of spans elsewhere.
    fn traceparent(&self) -> String;
    /// Marks the span failed, with why.
    fn fail(&mut self, message: &str);
    /// Adds a count to the span (e.g. how many local subscribers a delivery reached).
    fn count(&mut self, key: &'static str, value: u64);
}

/// Upper bound of a carried `traceparent` (a version 00 one is 55 bytes; later versions may
/// append fields).
pub const MAX_TRACEPARENT: usize = 256;

/// The trace context in a broker message: a protobuf field of its own, number
/// [`TRACE_FIELD`], written before the encoded `Publication`. A node that does not know it
/// decodes the publication and skips the field as unknown, and a message without it is a plain
/// `Publication`, so nodes with and without tracing share a broker.
pub const TRACE_FIELD: u32 = 1000;

/// The field's key (number 1000, length-delimited) as varint bytes.
const TRACE_KEY: [u8; 2] = [0xC2, 0x3E];

#[derive(Clone, PartialEq, prost::Message)]
struct TraceEnvelope {
    #[prost(string, tag = "1000")]
    traceparent: String,
}

/// The trace field to put before an encoded `Publication` (empty without a context).
pub fn encode_field(traceparent: Option<&str>) -> Vec<u8> {
    match traceparent {
        Some(tp) if !tp.is_empty() && tp.len() <= MAX_TRACEPARENT => TraceEnvelope {
            traceparent: tp.to_owned(),
        }
        .encode_to_vec(),
        _ => Vec::new(),
    }
}

/// Splits a broker message into its trace context (if it starts with the trace field) and the
/// encoded `Publication` after it. A message without the field costs a two-byte comparison.
pub fn split_field(payload: &[u8]) -> (Option<&str>, &[u8]) {
    let Some(mut rest) = payload.strip_prefix(&TRACE_KEY) else {
        return (None, payload);
    };
    let Ok(len) = prost::encoding::decode_varint(&mut rest) else {
        return (None, payload);
    };
    let Ok(len) = usize::try_from(len) else {
        return (None, payload);
    };
    if len > MAX_TRACEPARENT || len > rest.len() {
        return (None, payload);
    }
    let (value, publication) = rest.split_at(len);
    match std::str::from_utf8(value) {
        Ok(tp) => (Some(tp), publication),
        // Not ours after all: a publication that merely starts with these bytes.
        Err(_) => (None, payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::proto::Publication;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn the_key_is_field_1000_length_delimited() {
        let mut key = Vec::new();
        prost::encoding::encode_key(
            TRACE_FIELD,
            prost::encoding::WireType::LengthDelimited,
            &mut key,
        );
        assert_eq!(key, TRACE_KEY);
    }

    #[test]
    fn a_traced_message_splits_into_context_and_publication() {
        let publication = Publication {
            data: b"{\"a\":1}".to_vec().into(),
            offset: 7,
            ..Default::default()
        };
        let mut message = encode_field(Some(TP));
        message.extend(publication.encode_to_vec());
        let (tp, rest) = split_field(&message);
        assert_eq!(tp, Some(TP));
        assert_eq!(Publication::decode(rest).unwrap(), publication);
        // A node that knows nothing of the field reads the same publication.
        assert_eq!(
            Publication::decode(message.as_slice()).unwrap(),
            publication
        );
    }

    #[test]
    fn an_untraced_message_is_a_plain_publication() {
        assert!(encode_field(None).is_empty());
        let publication = Publication {
            data: b"x".to_vec().into(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(split_field(&publication), (None, publication.as_slice()));
        // Truncated or oversized fields are left to the publication decoder.
        let mut cut = encode_field(Some(TP));
        cut.truncate(10);
        assert_eq!(split_field(&cut), (None, cut.as_slice()));
        assert!(encode_field(Some(&"0".repeat(MAX_TRACEPARENT + 1))).is_empty());
    }
}
