//! Assembles a node and its actix-web application, and runs it until a shutdown signal.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol};
use actix_rt::net::TcpStream;
use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use herald_engine::broker::RedisBroker;
use herald_engine::{Broker, MemoryBroker, Node, NodeConfig};

use crate::admin::AdminState;
use crate::api::{self, ApiState};
use crate::config::{BrokerConfig, Config, ServerConfig, WebSocketEngine};
use crate::metrics::{self, Telemetry};
use crate::socketio::{SocketIo, SocketIoMetrics};
use crate::transport::origin::OriginPolicy;
use crate::transport::socket::{Socket, SocketConfig};
use crate::transport::websocket::{self, lean::LeanEngine};
use crate::transport::{TransportConfig, cors, emulated, emulation_endpoint};

/// Builds the node (engine and broker) a configuration describes.
pub fn build_node(config: &Config) -> anyhow::Result<Node> {
    let broker: Arc<dyn Broker> = match &config.broker {
        BrokerConfig::Memory => Arc::new(MemoryBroker::new()),
        BrokerConfig::Redis(redis) => {
            Arc::new(RedisBroker::new(redis.clone()).context("redis broker")?)
        }
    };
    let tracer = crate::telemetry::traces::tracer(&config.telemetry, &config.server.name)?;
    let node = Node::with_tracer(
        NodeConfig {
            name: config.server.name.clone(),
            version: crate::build_info::VERSION.to_string(),
            client: config.client.clone(),
            channels: config.channels.clone(),
            token: config.token.clone(),
            heartbeat_interval: config.server.heartbeat_interval,
        },
        broker,
        tracer,
    )
    .context("token key")?;
    Ok(node)
}

/// The node's listening socket, with `backlog` pending connections queued by the kernel.
/// `std::net::TcpListener::bind` would fix the queue at 128: a reconnect storm overflows that
/// at once, and each overflowed client then waits for a SYN retransmission (1 s and up).
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Rebinding right after a restart must not fail on the old connections' TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// The node's listeners: the public one (client endpoints), and the internal one (server API,
/// metrics, detailed readiness) when `server.internal_listen` keeps those apart.
pub struct Listeners {
    pub public: TcpListener,
    pub internal: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen` and, if set, `server.internal_listen`.
    pub fn bind(server: &ServerConfig) -> anyhow::Result<Listeners> {
        let public = bind_listener(server.listen, server.backlog)
            .with_context(|| format!("cannot listen on {} (server.listen)", server.listen))?;
        let internal = server
            .internal_listen
            .map(|addr| {
                bind_listener(addr, 1024)
                    .with_context(|| format!("cannot listen on {addr} (server.internal_listen)"))
            })
            .transpose()?;
        Ok(Listeners { public, internal })
    }
}

/// Serves `node` on `listeners` until `shutdown` resolves; then asks every client to reconnect
/// elsewhere (3001) and stops within `server.shutdown_timeout`. Must run inside an actix system.
///
/// The server is actix-server with actix-http's HTTP/1 service and the actix-web application
/// for every route; with the lean WebSocket engine, requests to upgrade to a WebSocket go to
/// its upgrade service instead (`transport::websocket::lean`). Every accepted socket carries
/// the write timeout (`transport::socket`).
pub async fn serve(
    config: Config,
    node: Node,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Listeners {
        public: listener,
        internal,
    } = listeners;
    // With an internal listener the public one carries client endpoints only.
    let operator_routes_public = internal.is_none();
    let transport = TransportConfig {
        origins: OriginPolicy::new(&config.server.allowed_origins),
        max_message_size: config.client.max_message_size,
    };
    let engine = config.server.websocket_engine;
    let sockets = SocketConfig::new(config.client.write_timeout);
    let socketio_metrics = SocketIoMetrics::default();
    let telemetry = web::Data::new(Telemetry::new(
        &node,
        sockets.clone(),
        engine,
        &api::METHODS,
        socketio_metrics.clone(),
    )?);
    let socketio = config.socketio.enabled.then(|| {
        web::Data::new(SocketIo {
            node: node.clone(),
            config: config.socketio.clone(),
            transport: transport.clone(),
            metrics: socketio_metrics,
            upgrades: engine == WebSocketEngine::Lean,
        })
    });
    let api_state = web::Data::new(ApiState {
        node: node.clone(),
        key: config.api.key.clone(),
        telemetry: telemetry.clone(),
    });
    let lean = Arc::new(LeanEngine {
        node: node.clone(),
        config: transport.clone(),
        connections: Arc::default(),
        uni_websocket: config.server.uni_websocket,
        socketio: socketio.as_ref().map(|s| s.clone().into_inner()),
    });
    let connections = lean.connections.clone();
    let node_data = web::Data::new(node.clone());
    let transport_data = web::Data::new(transport);
    let max_message_size = config.client.max_message_size;
    let max_body = max_message_size.max(1024 * 1024);
    let server_config = config.server.clone();
    let addr = listener.local_addr()?;

    // The admin page (`[admin]`) goes where the server API goes: the operator's listener.
    let admin = AdminState::new(&config, &node).map(web::Data::new);
    let internal_admin = admin.clone();
    let internal_apps = (node_data.clone(), api_state.clone(), telemetry.clone());
    let mut builder = actix_server::Server::build();
    let graceful_shutdown = builder.graceful_shutdown_signal();
    let internal_shutdown = graceful_shutdown.clone();
    builder = builder
        .backlog(config.server.backlog)
        .shutdown_timeout(config.server.shutdown_timeout.as_secs())
        .disable_signals();
    if let Some(workers) = config.server.workers {
        builder = builder.workers(workers);
    }
    builder = builder.listen("herald", listener, move || {
        let app = App::new()
            .app_data(node_data.clone())
            .app_data(transport_data.clone())
            .app_data(api_state.clone())
            .app_data(telemetry.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(|app| websocket_route(app, engine, server_config.uni_websocket))
            .configure(|app| fallbacks(app, &server_config, max_message_size))
            .configure(|app| socketio_route(app, socketio.clone()))
            .route("/health", web::get().to(health))
            .configure(|app| {
                if operator_routes_public {
                    operator_routes(app, admin.clone());
                } else {
                    app.route("/ready", web::get().to(ready_brief));
                }
            });
        let app = app
            .into_factory()
            .map_err(|err: actix_web::Error| err.error_response());
        let signal = graceful_shutdown.clone();
        let http = HttpService::build()
            // Idle keep-alive connections close when the server stops instead of holding
            // its graceful stop until they time out (as actix-web's HttpServer does).
            .graceful_shutdown_signal(move || {
                let signal = signal.clone();
                async move { signal.notified().await }
            })
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            // A streaming response (HTTP streaming, SSE) is the connection: when its client
            // goes away the node must drop it at once, not at the next write that fails.
            // Push clients do not half-close a request they await a response to.
            .h1_allow_half_closed(false)
            .local_addr(addr)
            .finish(map_config(app, |_| AppConfig::default()))
            .upgrade((engine == WebSocketEngine::Lean).then(|| {
                let lean = lean.clone();
                // Boxed: the dispatcher's state holds this future beside its HTTP/1 state,
                // so inline it would widen every connection's dispatcher (1,288 bytes).
                fn_service(move |(req, framed)| {
                    Box::pin(websocket::lean::upgrade(lean.clone(), req, framed))
                })
            }));
        let sockets = sockets.clone();
        fn_service(move |stream: TcpStream| {
            // A push server writes small frames back to back: with Nagle's algorithm on, a
            // frame written while the previous one is unacknowledged waits for the client's
            // delayed ACK (up to 40 ms).
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr().ok();
            let socket = Socket::new(stream, sockets.clone());
            std::future::ready(Ok::<_, DispatchError>((socket, Protocol::Http1, peer)))
        })
        .and_then(http)
    })?;
    let internal_addr = match internal {
        Some(internal) => {
            let addr = internal.local_addr()?;
            let (node_data, api_state, telemetry) = internal_apps;
            let graceful_shutdown = internal_shutdown;
            builder = builder.listen("herald-internal", internal, move || {
                let app = App::new()
                    .app_data(node_data.clone())
                    .app_data(api_state.clone())
                    .app_data(telemetry.clone())
                    .app_data(web::PayloadConfig::new(max_body))
                    .route("/health", web::get().to(health))
                    .configure(|app| operator_routes(app, internal_admin.clone()));
                let signal = graceful_shutdown.clone();
                HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let signal = signal.clone();
                        async move { signal.notified().await }
                    })
                    .client_request_timeout(Duration::from_secs(5))
                    // The admin page's HTTP-streaming connection lives here: it ends when the
                    // page goes away, as on the public listener.
                    .h1_allow_half_closed(false)
                    .local_addr(addr)
                    .finish(map_config(app, |_| AppConfig::default()))
                    .tcp()
            })?;
            Some(addr)
        }
        None => None,
    };
    let server = builder.run();
    let handle = server.handle();
    tracing::info!(engine = engine.name(), %addr, internal = ?internal_addr, "serving");
    let heartbeats = node.clone();
    actix_web::rt::spawn(async move { heartbeats.run_heartbeats().await });
    let presence = node.clone();
    actix_web::rt::spawn(async move { presence.run_presence().await });
    let logs = node.clone();
    actix_web::rt::spawn(async move { logs.run_channel_logs().await });
    // The first JWKS fetch (auth.jwks_url) starts with the server; a connection that comes
    // before it ends waits for it.
    let token_keys = node.clone();
    actix_web::rt::spawn(async move { token_keys.run_token_keys().await });
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("http server"),
        () = shutdown => {}
    }
    tracing::info!("shutting down: closing client connections");
    node.shutdown();
    // Lean WebSocket connections run in tasks of their own, which actix-server's graceful stop
    // does not wait for: they get the time to say goodbye first.
    let all_closed = connections.all_closed();
    if tokio::time::timeout(config.server.shutdown_timeout, all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.open(),
            "websocket connections still open at the shutdown timeout"
        );
    }
    // The server future runs the stop command, so it must be polled while the stop is awaited.
    let (_, result) = tokio::join!(handle.stop(true), server);
    // Spans still queued for export leave before the process does.
    if node.tracer().is_some() {
        let flushing = node.clone();
        let _ = tokio::task::spawn_blocking(move || flushing.flush_traces()).await;
    }
    result.context("http server")
}

/// The answer to a browser's preflight of an endpoint that takes `methods`.
fn preflight(
    methods: &'static str,
) -> impl Fn(HttpRequest, web::Data<TransportConfig>) -> std::future::Ready<HttpResponse> + Clone {
    move |req, config| std::future::ready(cors::preflight(&req, &config.origins, methods))
}

/// `/socket.io/` (`[socketio] enabled`): polling, and the WebSocket handshake of the actix-ws
/// engine (the lean engine's upgrade service takes WebSocket upgrades first).
fn socketio_route(app: &mut web::ServiceConfig, socketio: Option<web::Data<SocketIo>>) {
    if let Some(socketio) = socketio {
        app.service(
            web::resource(crate::socketio::PATH)
                .app_data(socketio)
                .route(web::get().to(crate::socketio::http::handler))
                .route(web::post().to(crate::socketio::http::handler))
                .route(web::method(Method::OPTIONS).to(preflight("GET, POST, OPTIONS"))),
        );
    }
}

/// `/connection/websocket` in the application: the actix-ws engine's handshake, or, with the
/// lean engine (whose upgrade service takes every upgrade request), the answer to a request
/// that did not ask for an upgrade.
fn websocket_route(app: &mut web::ServiceConfig, engine: WebSocketEngine, uni: bool) {
    let paths: &[&str] = if uni {
        &[websocket::PATH, websocket::UNI_PATH]
    } else {
        &[websocket::PATH]
    };
    for path in paths {
        match engine {
            WebSocketEngine::ActixWs => {
                app.route(path, web::get().to(websocket::actix_ws::handler));
            }
            WebSocketEngine::Lean => {
                app.route(path, web::to(websocket::lean::not_an_upgrade));
            }
        }
    }
}

/// The HTTP-streaming and SSE fallbacks (`server.http_stream`, `server.sse`) and the
/// endpoint of their commands; the unidirectional HTTP streaming and SSE
/// (`server.uni_http_stream`, `server.uni_sse`). A method an endpoint does not take gets 405.
fn fallbacks(app: &mut web::ServiceConfig, server: &ServerConfig, max_message_size: usize) {
    let not_allowed = || web::to(|| async { HttpResponse::MethodNotAllowed().finish() });
    if server.http_stream {
        app.service(
            web::resource("/connection/http_stream")
                .route(web::post().to(emulated::http_stream))
                .route(web::method(Method::OPTIONS).to(preflight("POST, OPTIONS")))
                .default_service(not_allowed()),
        );
    }
    if server.sse {
        app.service(
            web::resource("/connection/sse")
                .route(web::get().to(emulated::sse))
                .route(web::post().to(emulated::sse))
                .route(web::method(Method::OPTIONS).to(preflight("GET, POST, OPTIONS")))
                .default_service(not_allowed()),
        );
    }
    if server.uni_http_stream {
        app.service(
            web::resource("/connection/uni_http_stream")
                .route(web::post().to(emulated::uni_http_stream))
                .route(web::method(Method::OPTIONS).to(preflight("POST, OPTIONS")))
                .default_service(not_allowed()),
        );
    }
    if server.uni_sse {
        app.service(
            web::resource("/connection/uni_sse")
                .route(web::get().to(emulated::uni_sse))
                .route(web::post().to(emulated::uni_sse))
                .route(web::method(Method::OPTIONS).to(preflight("GET, POST, OPTIONS")))
                .default_service(not_allowed()),
        );
    }
    if server.http_stream || server.sse {
        let body_limit = emulation_endpoint::body_limit(max_message_size);
        app.service(
            web::resource("/emulation")
                .app_data(web::PayloadConfig::new(body_limit))
                .route(web::post().to(emulation_endpoint::handler))
                .route(web::method(Method::OPTIONS).to(preflight("POST, OPTIONS")))
                .default_service(not_allowed()),
        );
    }
}

/// What only the operator's side should reach: the server API, metrics, the detailed
/// readiness, and the admin page when it is on.
fn operator_routes(app: &mut web::ServiceConfig, admin: Option<web::Data<AdminState>>) {
    app.route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics::handler))
        .configure(api::configure);
    if let Some(admin) = admin {
        crate::admin::configure(app, admin);
    }
}

/// Process alive.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready to serve: not shutting down and the broker is usable.
async fn ready(node: web::Data<Node>) -> HttpResponse {
    match node.health().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "error": e.to_string()})),
    }
}

/// Readiness for the public listener when an internal one exists: ready or not, without why.
async fn ready_brief(node: web::Data<Node>) -> HttpResponse {
    match node.health().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

/// A node running on its own thread and actix system; for tests and embedding.
pub struct RunningNode {
    pub addr: SocketAddr,
    /// The internal listener's address, with `server.internal_listen`.
    pub internal_addr: Option<SocketAddr>,
    pub node: Node,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl RunningNode {
    /// Binds `config.server.listen` (port 0 picks a free port) and starts serving.
    pub fn start(config: Config) -> anyhow::Result<RunningNode> {
        let listeners = Listeners::bind(&config.server)?;
        let addr = listeners.public.local_addr()?;
        let internal_addr = match &listeners.internal {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let node = build_node(&config)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = node.clone();
        let thread = std::thread::Builder::new()
            .name(format!("herald-{addr}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(serve(config, serving, listeners, async {
                    let _ = stopped.await;
                }))
            })?;
        Ok(RunningNode {
            addr,
            internal_addr,
            node,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// Graceful shutdown; waits for the server thread.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections that the node has not accepted yet still complete their handshake, up to
    /// the backlog: with std's fixed 128, the 129th client's SYN is dropped and it waits a
    /// second for the retransmission.
    #[tokio::test]
    async fn the_listener_queues_a_storm_up_to_its_backlog() {
        let listener = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)), 1024).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connects: Vec<_> = (0..600)
            .map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)))
            .collect();
        let all = async {
            let mut streams = Vec::new();
            for c in connects {
                streams.push(c.await.expect("task").expect("connect"));
            }
            streams
        };
        // Well under the kernel's first SYN retransmission (1 s).
        let streams = tokio::time::timeout(std::time::Duration::from_millis(900), all)
            .await
            .expect("600 connects completed without being accepted");
        assert_eq!(streams.len(), 600);
        drop(listener);
    }
}
