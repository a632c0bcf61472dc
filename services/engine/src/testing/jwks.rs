//! A JWKS endpoint on a free loopback port: serves the document a test gives it (and swaps it
//! mid-test), can go down or hang, and counts the requests it gets.
//!
//! A minimal HTTP/1.1 server on a tokio listener: one request per connection, answered with
//! `Connection: close`. It runs on the runtime of the test that starts it, and stops when it is
//! dropped.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the endpoint answers.
#[derive(Debug, Clone)]
enum Serving {
    /// 200 with this JSON.
    Document(String),
    /// 503, as a proxy in front of a dead identity provider answers.
    Down,
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

/// The endpoint; see the module doc.
pub struct JwksServer {
    url: String,
    serving: Arc<Mutex<Serving>>,
    requests: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `jwks` (a JSON value) at `http://127.0.0.1:<port>/jwks.json`.
    pub async fn start(jwks: serde_json::Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind jwks server");
        let url = format!(
            "http://{}/jwks.json",
            listener.local_addr().expect("jwks server address")
        );
        let serving = Arc::new(Mutex::new(Serving::Document(jwks.to_string())));
        let (count, requests) = watch::channel(0usize);
        let task = tokio::spawn(serve(listener, serving.clone(), count));
        JwksServer {
            url,
            serving,
            requests,
            task,
        }
    }

    /// The URL of the document (`auth.jwks_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves `jwks` from now on (the issuer rotated its keys).
    pub fn serve(&self, jwks: serde_json::Value) {
        self.set(Serving::Document(jwks.to_string()));
    }

    /// Answers 503 from now on.
    pub fn go_down(&self) {
        self.set(Serving::Down);
    }

    /// Never answers from now on.
    pub fn hang(&self) {
        self.set(Serving::Hang);
    }

    /// Requests received so far (every one, answered or not).
    pub fn requests(&self) -> usize {
        *self.requests.borrow()
    }

    /// Waits until at least `n` requests have been received; fails the test after 15 s.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut requests = self.requests.clone();
        tokio::time::timeout(
            std::time::Duration::from_secs(15),
            requests.wait_for(|count| *count >= n),
        )
        .await
        .unwrap_or_else(|_| panic!("the JWKS endpoint got no {n} requests in 15 s"))
        .expect("jwks server running");
    }

    fn set(&self, serving: Serving) {
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = serving;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, serving: Arc<Mutex<Serving>>, count: watch::Sender<usize>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let serving = serving.clone();
        let count = count.clone();
        tokio::spawn(async move {
            // The request's head ends with an empty line; a GET has no body.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            count.send_modify(|n| *n += 1);
            let serving = serving.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let (status, body) = match serving {
                Serving::Document(body) => ("200 OK", body),
                Serving::Down => ("503 Service Unavailable", "down".to_owned()),
                Serving::Hang => {
                    // Holds the connection until the client gives up (or the test ends).
                    let _ = stream.read(&mut buf).await;
                    return;
                }
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
