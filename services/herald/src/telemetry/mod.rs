//! Telemetry the node exports: traces over OTLP (`traces`). Metrics are served by
//! `crate::metrics`.

pub mod traces;
