//! The keys of a JWKS endpoint (`auth.jwks_url`): fetched, cached, refreshed.
//!
//! Tokens are checked against the cached keys without waiting (a read lock and a map lookup).
//! The keys are fetched again:
//! - every [`JwksConfig::refresh_interval`] by [`Jwks::refresh`], which the node runs in the
//!   background, so that a key the issuer removed stops verifying;
//! - when a token names a `kid` the cache does not hold ([`Jwks::refresh_for_unknown_key`]):
//!   the issuer may have started signing with a new key. At most one such fetch starts per
//!   [`JwksConfig::min_refresh_interval`], so tokens with made-up `kid`s cannot make the node
//!   hammer the endpoint; connections that wait for it share one fetch.
//!
//! A failed fetch (endpoint down, timeout, not a JWKS, no usable key) keeps the cached keys:
//! tokens signed with them go on verifying. A node that starts while the endpoint is down
//! starts without keys; its tokens are refused until a fetch succeeds.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::AuthError;
use super::jwk::{self, KeySet};
use crate::config::{JwksConfig, redact_url};

/// Largest JWKS document read; a real one is a few KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Shortest wait before a scheduled fetch retries a failed one, whatever the rate limit: a
/// limit of zero (tests) must not turn the refresh loop into a busy loop.
const MIN_RETRY: Duration = Duration::from_secs(1);

/// Why a fetch of the JWKS failed. The cached keys stay in use.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("endpoint answered HTTP {0}")]
    Status(u16),
    #[error("document is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("not a JWKS: {0}")]
    NotJwks(#[from] serde_json::Error),
    #[error("no usable key ({})", .0.join("; "))]
    NoUsableKey(Vec<String>),
}

impl From<reqwest::Error> for JwksError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's message leaves the cause out (refused, timed out, bad certificate).
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            why.push_str(": ");
            why.push_str(&cause.to_string());
            source = cause.source();
        }
        JwksError::Request(why)
    }
}

/// Checks a JWKS URL as [`crate::auth::TokenVerifier::new`] will: an absolute `http://` or
/// `https://` URL with a host. The error says why, for configuration problems.
pub fn check_jwks_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(())
}

/// The cached keys of one JWKS endpoint and what fetches them.
pub(crate) struct Jwks {
    config: JwksConfig,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    fetch: Mutex<FetchState>,
    /// Bumped when a fetch ends (success or not): what waiters for the running fetch watch.
    fetched: watch::Sender<u64>,
}

#[derive(Default)]
struct FetchState {
    running: bool,
    last_started: Option<Instant>,
    last_ok: bool,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("config", &self.config)
            .field("keys", &self.cached().len())
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// Checks the URL and builds the client; fetches nothing yet (no runtime is needed here).
    pub(crate) fn new(config: &JwksConfig) -> Result<Self, AuthError> {
        check_jwks_url(&config.url).map_err(|why| {
            AuthError::BadKey(format!("JWKS URL {}: {why}", redact_url(&config.url)))
        })?;
        // reqwest's rustls takes the process-wide provider; ring is the one the workspace
        // builds (the Redis broker installs it too). Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // An https JWKS must not be redirected to plain http, where anyone on the path
            // could swap the keys.
            .https_only(config.url.starts_with("https:"))
            // Fetches are minutes apart and may start on any worker's runtime: a pooled
            // connection would be tied to the runtime that opened it.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::BadKey(format!("JWKS client: {e}")))?;
        Ok(Self {
            config: config.clone(),
            client,
            keys: RwLock::default(),
            fetch: Mutex::default(),
            fetched: watch::Sender::new(0),
        })
    }

    /// The cached keys; never waits for a fetch.
    pub(crate) fn cached(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A token named a key the cache does not hold: waits for a fetch of the JWKS, unless one
    /// started less than `min_refresh_interval` ago (and is over). Returns when the fetch is
    /// over, successful or not; the caller looks the key up again.
    pub(crate) async fn refresh_for_unknown_key(self: &Arc<Self>) {
        self.fetch_and_wait(true).await;
    }

    /// Fetches the JWKS now (or waits for the fetch that is running) and returns how long to
    /// wait before the next scheduled fetch: the refresh interval after a success, the
    /// (shorter) minimum interval after a failure, but at least [`MIN_RETRY`].
    pub(crate) async fn refresh(self: &Arc<Self>) -> Duration {
        self.fetch_and_wait(false).await;
        let ok = self.state().last_ok;
        if ok {
            self.config.refresh_interval
        } else {
            self.config.min_refresh_interval.max(MIN_RETRY)
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.fetch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch_and_wait(self: &Arc<Self>, rate_limited: bool) {
        // Subscribed before looking at the state, so the end of a running fetch is not missed.
        let mut fetched = self.fetched.subscribe();
        {
            let mut state = self.state();
            if !state.running {
                let recent = state
                    .last_started
                    .is_some_and(|t| t.elapsed() < self.config.min_refresh_interval);
                if rate_limited && recent {
                    return;
                }
                state.running = true;
                state.last_started = Some(Instant::now());
                // A task of its own: the fetch completes (and is counted against the rate
                // limit) even when the connection that asked for it goes away.
                let jwks = self.clone();
                tokio::spawn(async move { jwks.fetch_and_store().await });
            }
        }
        // The fetch is bounded by the client's timeout; the margin only guards against a
        // runtime that stopped under the fetch task.
        let _ = tokio::time::timeout(
            self.config.timeout + Duration::from_secs(1),
            fetched.changed(),
        )
        .await;
    }

    async fn fetch_and_store(&self) {
        // Marks the fetch over even if this task is dropped half-way (its runtime stopping).
        struct Over<'a>(&'a Jwks, bool);
        impl Drop for Over<'_> {
            fn drop(&mut self) {
                let mut state = self.0.state();
                state.running = false;
                state.last_ok = self.1;
                drop(state);
                self.0.fetched.send_modify(|n| *n += 1);
            }
        }
        let mut over = Over(self, false);
        let url = redact_url(&self.config.url);
        match self.fetch().await {
            Ok((keys, skipped)) => {
                let old = self.cached();
                if old.kids() != keys.kids() || old.len() != keys.len() {
                    tracing::info!(
                        url = %url,
                        keys = keys.len(),
                        kids = ?keys.kids(),
                        skipped = ?skipped,
                        "JWKS keys loaded"
                    );
                } else {
                    tracing::debug!(url = %url, keys = keys.len(), "JWKS keys unchanged");
                }
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                over.1 = true;
            }
            Err(e) => {
                let kept = self.cached().len();
                tracing::warn!(url = %url, error = %e, kept, "JWKS fetch failed; keeping the cached keys");
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Vec<String>), JwksError> {
        let mut response = self
            .client
            .get(&self.config.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let (keys, skipped) = jwk::parse(&body)?;
        if keys.len() == 0 {
            // An empty set would make every token fail: more likely a broken endpoint than an
            // issuer that revoked every key at once.
            return Err(JwksError::NoUsableKey(skipped));
        }
        Ok((keys, skipped))
    }
}
