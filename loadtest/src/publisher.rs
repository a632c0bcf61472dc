//! Publishing through the server HTTP API: a lean HTTP/1.1 keep-alive client (one request in
//! flight per connection, so a connection's publications reach the server in order), paced
//! loops that publish stamped payloads to chosen channels, single `/api/publish` or
//! `/api/batch` of N commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hdrhistogram::Histogram;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::ServerKind;
use crate::progress::Live;
use crate::stamp::{Stamp, find, unix_ns, write_stamp};
use crate::stats::new_histogram;

/// One keep-alive HTTP/1.1 connection to the server API.
pub struct HttpConn {
    stream: TcpStream,
    addr: SocketAddr,
    key: String,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr, key: &str) -> anyhow::Result<HttpConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to the API at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            addr,
            key: key.to_owned(),
            buf: Vec::with_capacity(16 * 1024),
            req: Vec::with_capacity(16 * 1024),
        })
    }

    /// POSTs `body` to `path`; returns the status and the response body.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        use std::io::Write;
        self.req.clear();
        write!(
            self.req,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            self.key,
            body.len()
        )?;
        self.req.extend_from_slice(body);
        self.stream.write_all(&self.req).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).context("response head")?;
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow!("bad status line"))?;
                let mut len = None;
                let mut chunked = false;
                for line in head.split("\r\n").skip(1) {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse::<usize>().ok();
                        } else if k.eq_ignore_ascii_case("transfer-encoding") {
                            if !v.trim().eq_ignore_ascii_case("chunked") {
                                bail!("unsupported transfer-encoding {}", v.trim());
                            }
                            chunked = true;
                        }
                    }
                }
                if chunked {
                    // Node's http (the Socket.IO baseline) answers chunked.
                    self.buf.drain(..end + 4);
                    return Ok((status, self.read_chunked().await?));
                }
                let len = len.unwrap_or(0);
                let total = end + 4 + len;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    /// Reads a chunked body (the head already consumed); trailers are skipped.
    async fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                if self.buf.len() > 1024 {
                    bail!("bad chunk size line");
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[..line_end]).context("chunk size")?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16)
                .with_context(|| format!("bad chunk size {hex:?}"))?;
            if size == 0 {
                // Optional trailers, then an empty line.
                self.buf.drain(..line_end + 2);
                loop {
                    if let Some(p) = find(&self.buf, b"\r\n") {
                        self.buf.drain(..p + 2);
                        if p == 0 {
                            return Ok(body);
                        }
                        continue;
                    }
                    self.fill().await?;
                }
            }
            let total = line_end + 2 + size + 2;
            while self.buf.len() < total {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            self.buf.drain(..total);
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp).await?;
        if n == 0 {
            bail!("API connection closed");
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }
}

/// Which channel each publication goes to.
#[derive(Debug, Clone)]
pub enum Target {
    /// Always this channel index.
    One(usize),
    /// A uniformly random index in the range.
    Random(std::ops::Range<usize>),
    /// With probability `p` from the first range, else from the second.
    Mix(f64, std::ops::Range<usize>, std::ops::Range<usize>),
}

impl Target {
    fn pick(&self, rng: &mut impl Rng) -> usize {
        match self {
            Target::One(i) => *i,
            Target::Random(r) => rng.random_range(r.clone()),
            Target::Mix(p, a, b) => {
                if rng.random_bool(*p) {
                    rng.random_range(a.clone())
                } else {
                    rng.random_range(b.clone())
                }
            }
        }
    }
}

/// Shared description of what to publish.
#[derive(Debug)]
pub struct Plan {
    pub channels: Vec<String>,
    /// Subscribers per channel (expected deliveries of one publication).
    pub fanout: Vec<u64>,
    pub target: Target,
    pub payload_size: usize,
}

/// One publisher connection and its per-channel sequence numbers (kept across steps).
pub struct Publisher {
    conn: HttpConn,
    /// API shape: Herald (`/api/publish`, `/api/batch`) or Socket.IO (`/publish` only).
    pub kind: ServerKind,
    /// Stream number written in stamps (`k`).
    pub stream: u32,
    seqs: Vec<u64>,
    rng: rand::rngs::SmallRng,
    body: Vec<u8>,
}

/// Results of one publisher over one step.
#[derive(Debug, Clone)]
pub struct PubResult {
    pub published: u64,
    pub errors: u64,
    pub requests: u64,
    pub expected_deliveries: u64,
    pub call_latency: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Default for PubResult {
    fn default() -> Self {
        PubResult {
            published: 0,
            errors: 0,
            requests: 0,
            expected_deliveries: 0,
            call_latency: new_histogram(),
            first_error: None,
        }
    }
}

impl PubResult {
    pub fn merge(&mut self, o: &PubResult) {
        self.published += o.published;
        self.errors += o.errors;
        self.requests += o.requests;
        self.expected_deliveries += o.expected_deliveries;
        let _ = self.call_latency.add(&o.call_latency);
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }
}

impl Publisher {
    pub async fn connect(
        addr: SocketAddr,
        key: &str,
        stream: u32,
        channels: usize,
    ) -> anyhow::Result<Publisher> {
        use rand::SeedableRng;
        Ok(Publisher {
            conn: HttpConn::connect(addr, key).await?,
            kind: ServerKind::Herald,
            stream,
            seqs: vec![0; channels],
            rng: rand::rngs::SmallRng::seed_from_u64(0x5eed + u64::from(stream)),
            body: Vec::with_capacity(64 * 1024),
        })
    }

    /// Publishes for `dur` at `rate` publications/s (0 = as fast as one request in flight
    /// allows), `batch` publications per request (1 = `/api/publish`), at most `max` in all.
    pub async fn run(
        &mut self,
        plan: &Plan,
        rate: f64,
        batch: usize,
        dur: Duration,
        max: u64,
        live: &Arc<Live>,
    ) -> PubResult {
        let sio = self.kind == ServerKind::SocketIo;
        // No batch endpoint on the Socket.IO baseline: one publication per request.
        let batch = if sio { 1 } else { batch.max(1) };
        let mut res = PubResult::default();
        let start = Instant::now();
        let end = start + dur;
        // Open loop: publication j is due at start + j / rate. When the server falls behind,
        // everything due goes out in the next request (up to `cap`), so the offered rate holds
        // until the server cannot take it.
        let cap = if sio { 1 } else { batch.max(1000) };
        let mut attempted: u64 = 0;
        let mut picked = Vec::with_capacity(batch);
        while Instant::now() < end && attempted < max {
            let mut n = batch;
            if rate > 0.0 {
                let due = (start.elapsed().as_secs_f64() * rate) as u64 + 1;
                let ready = due.saturating_sub(attempted) as usize;
                if ready < batch {
                    let at = start
                        + Duration::from_secs_f64((attempted + batch as u64 - 1) as f64 / rate);
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    continue;
                }
                n = ready.min(cap);
            }
            let n = n.min((max - attempted) as usize);
            attempted += n as u64;
            self.body.clear();
            picked.clear();
            let t = unix_ns();
            if n > 1 {
                self.body.extend_from_slice(b"{\"commands\":[");
            }
            for i in 0..n {
                let ci = plan.target.pick(&mut self.rng);
                picked.push(ci);
                let seq = self.seqs[ci];
                self.seqs[ci] += 1;
                if n > 1 {
                    if i > 0 {
                        self.body.push(b',');
                    }
                    self.body.extend_from_slice(b"{\"publish\":");
                }
                self.body.extend_from_slice(b"{\"channel\":\"");
                self.body.extend_from_slice(plan.channels[ci].as_bytes());
                self.body.extend_from_slice(b"\",\"data\":");
                write_stamp(
                    &mut self.body,
                    Stamp {
                        seq,
                        stream: self.stream,
                        sent_ns: t,
                    },
                    plan.payload_size,
                );
                self.body.push(b'}');
                if n > 1 {
                    self.body.push(b'}');
                }
            }
            let path = if sio {
                "/publish"
            } else if n > 1 {
                self.body.extend_from_slice(b"]}");
                "/api/batch"
            } else {
                "/api/publish"
            };
            let sent = Instant::now();
            let r = self.conn.post(path, &self.body).await;
            res.call_latency
                .saturating_record((sent.elapsed().as_micros() as u64).max(1));
            res.requests += 1;
            let failed = match r {
                Ok((200, body)) => {
                    let errs = count(&body, b"\"error\"");
                    if errs > 0 && res.first_error.is_none() {
                        res.first_error =
                            Some(String::from_utf8_lossy(&body).chars().take(200).collect());
                    }
                    errs.min(n as u64)
                }
                Ok((status, body)) => {
                    if res.first_error.is_none() {
                        res.first_error = Some(format!(
                            "HTTP {status}: {}",
                            String::from_utf8_lossy(&body)
                                .chars()
                                .take(200)
                                .collect::<String>()
                        ));
                    }
                    n as u64
                }
                Err(e) => {
                    if res.first_error.is_none() {
                        res.first_error = Some(e.to_string());
                    }
                    res.errors += n as u64;
                    live.publish_errors.fetch_add(n as u64, Relaxed);
                    // The connection is unusable: stop this publisher for the step.
                    break;
                }
            };
            // Errors are counted, not delivered; which ones failed in a batch is not known
            // cheaply, so expected deliveries assume the failures were the cheapest.
            let ok = n as u64 - failed;
            res.published += ok;
            res.errors += failed;
            let mut fan: Vec<u64> = picked.iter().map(|&c| plan.fanout[c]).collect();
            if failed > 0 {
                fan.sort_unstable();
                fan.drain(..failed as usize);
            }
            res.expected_deliveries += fan.iter().sum::<u64>();
            live.published.fetch_add(ok, Relaxed);
            live.publish_errors.fetch_add(failed, Relaxed);
        }
        res
    }
}

fn count(hay: &[u8], needle: &[u8]) -> u64 {
    let mut n = 0;
    let mut at = 0;
    while let Some(p) = find(&hay[at..], needle) {
        n += 1;
        at += p + needle.len();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node's http answers `POST /publish` chunked; Herald with a Content-Length.
    #[tokio::test]
    async fn reads_chunked_and_sized_responses() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for answer in [
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n{\"result\":{}}\r\n0\r\n\r\n"[..],
                &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"[..],
            ] {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(answer).await.unwrap();
            }
        });
        let mut c = HttpConn::connect(addr, "k").await.unwrap();
        let (st, body) = c.post("/publish", b"{}").await.unwrap();
        assert_eq!((st, &body[..]), (200, &b"{\"result\":{}}"[..]));
        let (st, body) = c.post("/api/publish", b"{}").await.unwrap();
        assert_eq!((st, &body[..]), (200, &b"{}"[..]));
        server.await.unwrap();
    }
}
