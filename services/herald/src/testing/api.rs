//! A deliberately small HTTP/1.1 client for the server API, so tests see exactly the status and
//! body the node sends.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub key: String,
}

impl Api {
    pub fn new(addr: SocketAddr, key: &str) -> Self {
        Self {
            addr,
            key: key.to_string(),
        }
    }

    /// POST `/api/<method>` with the key; returns status and body.
    pub async fn post(&self, method: &str, body: &str) -> (u16, String) {
        let headers = [("X-API-Key", self.key.as_str())];
        self.request("POST", &format!("/api/{method}"), &headers, body)
            .await
    }

    /// POST and parse a 200 JSON body.
    pub async fn call(&self, method: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, body) = self.post(method, &body.to_string()).await;
        assert_eq!(status, 200, "api {method}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("api {method}: {e}: {body}"))
    }

    /// Publishes `{"n": 0..count, "pad": <pad bytes>}` to `channel` in API batches of 100, in
    /// order: a flood that fills a client's socket buffers and queue.
    pub async fn flood(&self, channel: &str, count: usize, pad: usize) {
        let pad = "y".repeat(pad);
        for first in (0..count).step_by(100) {
            let commands: Vec<_> = (first..count.min(first + 100))
                .map(
                    |n| serde_json::json!({"publish":{"channel":channel,"data":{"n":n,"pad":pad}}}),
                )
                .collect();
            self.call("batch", serde_json::json!({ "commands": commands }))
                .await;
        }
    }

    /// The value of a metric from `/metrics` (see [`super::metric`]); 0 when absent (a counter
    /// nothing has counted yet).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let (status, text) = self.request("GET", "/metrics", &[], "").await;
        assert_eq!(status, 200, "/metrics: {text}");
        super::metric(&text, name, labels).unwrap_or(0.0)
    }

    /// Any request; `Connection: close`, so the body is whatever comes until EOF. Every
    /// exchange with `/api` is checked against docs/openapi.yaml ([`super::openapi`]).
    pub async fn request(
        &self,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let (status, content_type, response) = self.exchange(verb, path, headers, body).await;
        if path == "/api" || path.starts_with("/api/") || path.starts_with("/api?") {
            let exchange = super::openapi::Exchange {
                verb,
                target: path,
                request_body: body,
                status,
                content_type: content_type.as_deref(),
                response_body: &response,
            };
            if let Err(e) = super::openapi::Spec::served().check(&exchange) {
                panic!("docs/openapi.yaml: {e}");
            }
        }
        (status, response)
    }

    /// A request as it goes: status, Content-Type and body, unchecked.
    pub async fn exchange(
        &self,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Option<String>, String) {
        let (status, head, body) = self.request_with_head(verb, path, headers, body).await;
        let content_type = head.to_ascii_lowercase().lines().find_map(|l| {
            l.strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        });
        (status, content_type, body)
    }

    /// A request as it goes, with the response's header lines (names lower-cased), unchecked.
    pub async fn with_headers(
        &self,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        let (status, head, body) = self.request_with_head(verb, path, headers, body).await;
        let header_lines = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, header_lines, body)
    }

    /// A request as it goes, with the response head (status line and headers, as sent),
    /// unchecked.
    pub async fn request_with_head(
        &self,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect api");
        let mut request = format!(
            "{verb} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write api request");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .expect("read api response");
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, head.to_string(), body)
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
