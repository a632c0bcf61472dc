//! What a fleet process and the run's main process say to each other: one JSON object per
//! line; the spec, then requests, on the worker's stdin; progress and replies on its stdout.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hdrhistogram::Histogram;
use herald_protocol::Format;
use serde::{Deserialize, Serialize};

use super::Member;
use crate::client::{Endpoint, ServerKind, Transport};
use crate::stats::{Counts, new_histogram};

/// Everything a worker needs to run its share of the subscribers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    pub endpoints: Vec<EndpointSpec>,
    pub members: Vec<Member>,
    /// Index of the first member in the whole run (source addresses and shards follow it).
    pub first_index: usize,
    pub streams: usize,
    pub concurrency: usize,
    /// Tokio worker threads of the worker process.
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub addr: SocketAddr,
    pub ws_url: String,
    pub protobuf: bool,
    pub kind: ServerKind,
    #[serde(default)]
    pub transport: Transport,
}

impl From<&Endpoint> for EndpointSpec {
    fn from(e: &Endpoint) -> Self {
        EndpointSpec {
            addr: e.addr,
            ws_url: e.ws_url.clone(),
            protobuf: e.format == Format::Protobuf,
            kind: e.kind,
            transport: e.transport,
        }
    }
}

impl From<EndpointSpec> for Endpoint {
    fn from(e: EndpointSpec) -> Self {
        Endpoint {
            addr: e.addr,
            ws_url: e.ws_url,
            format: if e.protobuf {
                Format::Protobuf
            } else {
                Format::Json
            },
            kind: e.kind,
            transport: e.transport,
        }
    }
}

/// The main process → a worker (after the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Counts since the last take, per endpoint: answered with [`Event::Taken`].
    Take,
    /// Connection outcomes so far: answered with [`Event::Summary`].
    Summary,
    /// Close every connection and exit: answered with [`Event::Stopped`].
    Stop,
}

/// A worker → the main process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The worker's live counters (totals), sent whenever they changed, a few times per
    /// second at most 50.
    Progress(Progress),
    Taken(Vec<WireCounts>),
    Summary(Summary),
    Stopped,
}

/// Totals of a worker's live counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub connected: u64,
    pub failed: u64,
    pub delivered: u64,
    pub closed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    pub connect_times: WireHistogram,
    pub failures: BTreeMap<String, u64>,
    /// Wall clock (ns since the Unix epoch) of the worker's last successful subscription:
    /// `Instant`s do not cross processes, the clock of one machine does.
    pub last_ready_unix_ns: Option<u64>,
}

/// A histogram as (value, count) of every recorded bucket: re-recording the value lands in
/// the same bucket, so quantiles, max and count survive the trip.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WireHistogram(Vec<(u64, u64)>);

impl From<&Histogram<u64>> for WireHistogram {
    fn from(h: &Histogram<u64>) -> Self {
        WireHistogram(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }
}

impl WireHistogram {
    pub fn into_histogram(self) -> Histogram<u64> {
        let mut h = new_histogram();
        for (value, count) in self.0 {
            h.saturating_record_n(value, count);
        }
        h
    }
}

/// [`Counts`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireCounts {
    latency: WireHistogram,
    arrival: WireHistogram,
    received: u64,
    duplicates: u64,
    reordered: u64,
    unstamped: u64,
    frames: u64,
    pings: u64,
    closes: BTreeMap<String, u64>,
}

impl From<&Counts> for WireCounts {
    fn from(c: &Counts) -> Self {
        WireCounts {
            latency: (&c.latency).into(),
            arrival: (&c.arrival).into(),
            received: c.received,
            duplicates: c.duplicates,
            reordered: c.reordered,
            unstamped: c.unstamped,
            frames: c.frames,
            pings: c.pings,
            closes: c.closes.clone(),
        }
    }
}

impl From<WireCounts> for Counts {
    fn from(w: WireCounts) -> Self {
        Counts {
            latency: w.latency.into_histogram(),
            arrival: w.arrival.into_histogram(),
            received: w.received,
            duplicates: w.duplicates,
            reordered: w.reordered,
            unstamped: w.unstamped,
            frames: w.frames,
            pings: w.pings,
            closes: w.closes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(v: &T) -> T {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    #[test]
    fn counts_survive_the_wire() {
        let mut c = Counts::default();
        for i in 1..=10_000u64 {
            c.record_latency_ns(i * 7_919_000, 0);
            c.record_arrival_ns(i * 1_000_000, 0);
        }
        c.received = 10_000;
        c.duplicates = 3;
        c.frames = 77;
        c.add_close("close 3008 slow".into());
        let back: Counts = round_trip(&WireCounts::from(&c)).into();
        assert_eq!(back.received, 10_000);
        assert_eq!(back.duplicates, 3);
        assert_eq!(back.frames, 77);
        assert_eq!(back.closes["close 3008 slow"], 1);
        assert_eq!(back.latency.len(), c.latency.len());
        let (a, b) = (Latency::of(&c.latency), Latency::of(&back.latency));
        assert_eq!(
            (a.p50_ms, a.p99_ms, a.max_ms),
            (b.p50_ms, b.p99_ms, b.max_ms)
        );
        assert_eq!(
            Latency::of(&c.arrival).p90_ms,
            Latency::of(&back.arrival).p90_ms
        );
    }

    #[test]
    fn messages_are_one_line_each() {
        let spec = Spec {
            endpoints: vec![EndpointSpec::from(&Endpoint::new(
                "127.0.0.1:9".parse().unwrap(),
                Format::Protobuf,
            ))],
            members: vec![Member {
                endpoint: 0,
                token: "t".into(),
                channels: vec!["a\nb".into()],
            }],
            first_index: 5,
            streams: 2,
            concurrency: 10,
            workers: 1,
        };
        let line = serde_json::to_string(&spec).unwrap();
        assert!(!line.contains('\n'));
        let back: Spec = serde_json::from_str(&line).unwrap();
        let ep: Endpoint = back.endpoints[0].clone().into();
        assert_eq!(ep.format, Format::Protobuf);
        assert_eq!(back.members[0].channels[0], "a\nb");
        assert_eq!(round_trip(&Request::Take), Request::Take);
        let p = Progress {
            connected: 1,
            failed: 2,
            delivered: 3,
            closed: 4,
        };
        match round_trip(&Event::Progress(p)) {
            Event::Progress(q) => assert_eq!(p, q),
            other => panic!("{other:?}"),
        }
    }
}
