use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/rsa_public.pem");
const ECDSA_PUBLIC: &str = include_str!("../../tests/fixtures/ecdsa_public.pem");
const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/rsa_private.pem");

const EXAMPLE_TOML: &str = r#"
[server]
listen = "127.0.0.1:8000"
allowed_origins = []          # browser Origin values allowed to connect ("*" = any); requests without Origin pass
[auth]
hmac_secret = "0123456789abcdef0123456789abcdef-secret"
[api]
key = "api-key-1"
[broker]
kind = "memory"               # or "redis" with redis_urls
[channels]                    # options for channels without a namespace (all off by default)
allow_subscribe_for_client = false
[[channels.namespaces]]       # channel "chat:room1" is in namespace "chat"
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_publish_for_client = false
"#;

const EXAMPLE_YAML: &str = r#"
server:
  listen: "127.0.0.1:8000"
  allowed_origins: []
auth:
  hmac_secret: "0123456789abcdef0123456789abcdef-secret"
api:
  key: "api-key-1"
broker:
  kind: memory
channels:
  allow_subscribe_for_client: false
  namespaces:
    - name: chat
      allow_subscribe_for_client: true
      allow_publish_for_subscriber: true
      allow_publish_for_client: false
"#;

const EXAMPLE_JSON: &str = r#"{
  "server": { "listen": "127.0.0.1:8000", "allowed_origins": [] },
  "auth": { "hmac_secret": "0123456789abcdef0123456789abcdef-secret" },
  "api": { "key": "api-key-1" },
  "broker": { "kind": "memory" },
  "channels": {
    "allow_subscribe_for_client": false,
    "namespaces": [
      { "name": "chat", "allow_subscribe_for_client": true,
        "allow_publish_for_subscriber": true, "allow_publish_for_client": false }
    ]
  }
}"#;

/// A file under the temp dir with a unique name; removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(ext: &str, contents: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "herald-config-test-{}-{}.{ext}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Loads `contents` as a file with extension `ext`, with the given environment. A file and an
/// environment that configure no key at all load as `herald --dev` would load them, so tests of
/// other keys need no secrets; the tests of dev mode itself call [`Config::load`].
fn load_str(ext: &str, contents: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = TempFile::new(ext, contents);
    let keyed = [
        "hmac_secret",
        "rsa_public_key",
        "ecdsa_public_key",
        "jwks_url",
        "[api]",
        "api:",
        "\"api\"",
    ]
    .iter()
    .any(|k| contents.contains(k))
        || vars
            .iter()
            .any(|(k, _)| k.starts_with("HERALD_AUTH__") || k.starts_with("HERALD_API__"));
    let overrides = Overrides {
        dev: !keyed,
        ..Overrides::default()
    };
    Config::load(Some(&file.0), env(vars), &overrides)
}

fn dev_flag() -> Overrides {
    Overrides {
        dev: true,
        ..Overrides::default()
    }
}

fn load_toml(contents: &str) -> Result<Config, ConfigError> {
    load_str("toml", contents, &[])
}

/// The problems of an invalid configuration.
fn problems(res: Result<Config, ConfigError>) -> Vec<String> {
    match res {
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(cfg) => panic!("expected an error, got {cfg:#?}"),
    }
}

/// Asserts exactly one problem, starting with `key:`, containing `needle`.
fn assert_one_problem(res: Result<Config, ConfigError>, key: &str, needle: &str) {
    let problems = problems(res);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(&format!("{key}:")) && problems[0].contains(needle),
        "expected `{key}: ...{needle}...`, got {:?}",
        problems[0]
    );
}

const AUTH: &str =
    "[auth]\nhmac_secret = \"0123456789abcdef0123456789abcdef\"\n[api]\nkey = \"k\"\n";

fn assert_example(cfg: &Config) {
    assert_eq!(cfg.server.listen, "127.0.0.1:8000".parse().unwrap());
    assert!(cfg.server.allowed_origins.is_empty());
    assert_eq!(
        cfg.token.key,
        TokenKey::Hmac(b"0123456789abcdef0123456789abcdef-secret".to_vec())
    );
    assert_eq!(cfg.api.key, "api-key-1");
    assert_eq!(cfg.broker, BrokerConfig::Memory);
    assert!(cfg.dev.is_none());
    assert!(!cfg.channels.insecure);
    assert_eq!(cfg.channels.without_namespace, ChannelOptions::default());
    assert_eq!(
        cfg.channels.namespaces,
        vec![Namespace {
            name: "chat".into(),
            options: ChannelOptions {
                allow_subscribe_for_client: true,
                allow_publish_for_subscriber: true,
                allow_publish_for_client: false,
                allow_user_limited_channels: false,
                ..Default::default()
            },
        }]
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn defaults_with_dev_flag_run_in_dev_mode() {
    let cfg = Config::load(None, env(&[]), &dev_flag()).unwrap();
    let dev = cfg.dev.clone().expect("dev mode");
    assert!(dev.hmac_secret.len() >= 32);
    assert!(dev.api_key.len() >= 32);
    assert_ne!(dev.hmac_secret, dev.api_key);
    assert_eq!(
        cfg.token.key,
        TokenKey::Hmac(dev.hmac_secret.as_bytes().to_vec())
    );
    assert_eq!(cfg.api.key, dev.api_key);
    assert!(cfg.channels.insecure);
    assert_eq!(cfg.server.listen, "127.0.0.1:8000".parse().unwrap());
    assert!(!cfg.server.name.is_empty());
    assert_eq!(cfg.server.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(cfg.broker, BrokerConfig::Memory);
    let defaults = ClientConfig::default();
    assert_eq!(cfg.client.ping_interval, defaults.ping_interval);
    assert_eq!(cfg.client.pong_timeout, Duration::from_secs(8));
    assert_eq!(cfg.client.connect_timeout, Duration::from_secs(10));
    assert_eq!(cfg.client.max_queue_bytes, 1_048_576);
    assert_eq!(cfg.client.max_message_size, 65_536);
    assert_eq!(cfg.client.expired_close_delay, Duration::from_secs(25));
    assert_eq!(cfg.channels.max_channel_length, 255);
    assert_eq!(cfg.channels.max_channels_per_client, 128);
    assert!(cfg.warnings.is_empty());

    // Fresh secrets every start.
    let again = Config::load(None, env(&[]), &dev_flag()).unwrap();
    assert_ne!(again.dev.unwrap().hmac_secret, dev.hmac_secret);
}

#[test]
fn example_toml() {
    assert_example(&load_toml(EXAMPLE_TOML).unwrap());
}

#[test]
fn example_yaml_and_json_are_equivalent() {
    assert_example(&load_str("yaml", EXAMPLE_YAML, &[]).unwrap());
    assert_example(&load_str("yml", EXAMPLE_YAML, &[]).unwrap());
    assert_example(&load_str("json", EXAMPLE_JSON, &[]).unwrap());
}

#[test]
fn every_key_in_a_file() {
    let cfg = load_toml(
        r#"
[server]
listen = "[::1]:9000"
allowed_origins = ["https://App.example", "*", "https://*.example.com/"]
name = "node-7"
shutdown_timeout = "3s"
workers = 3
backlog = 512
[auth]
hmac_secret = "0123456789abcdef0123456789abcdef"
audience = "herald"
issuer = "https://auth.example"
[api]
key = "k"
[broker]
kind = "memory"
[channels]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_publish_for_client = true
allow_user_limited_channels = true
max_channel_length = 64
max_channels_per_client = 8
[[channels.namespaces]]
name = "news"
allow_user_limited_channels = true
[[channels.namespaces]]
name = "a-b_c"
[client]
ping_interval = "30s"
pong_timeout = "5s"
connect_timeout = "2s"
max_queue_size = 1000
max_message_size = 100
expired_close_delay = "0s"
"#,
    )
    .unwrap();
    assert_eq!(cfg.server.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(
        cfg.server.allowed_origins,
        ["https://app.example", "*", "https://*.example.com"]
    );
    assert_eq!(cfg.server.name, "node-7");
    assert_eq!(cfg.server.shutdown_timeout, Duration::from_secs(3));
    assert_eq!(cfg.server.workers, Some(3));
    assert_eq!(cfg.server.backlog, 512);
    assert_eq!(cfg.token.audience.as_deref(), Some("herald"));
    assert_eq!(cfg.token.issuer.as_deref(), Some("https://auth.example"));
    let all = ChannelOptions {
        allow_subscribe_for_client: true,
        allow_publish_for_subscriber: true,
        allow_publish_for_client: true,
        allow_user_limited_channels: true,
        ..Default::default()
    };
    assert_eq!(cfg.channels.without_namespace, all);
    assert_eq!(cfg.channels.max_channel_length, 64);
    assert_eq!(cfg.channels.max_channels_per_client, 8);
    assert_eq!(cfg.channels.namespaces.len(), 2);
    assert!(
        cfg.channels.namespaces[0]
            .options
            .allow_user_limited_channels
    );
    assert!(
        !cfg.channels.namespaces[0]
            .options
            .allow_subscribe_for_client
    );
    assert_eq!(cfg.channels.namespaces[1].name, "a-b_c");
    assert_eq!(cfg.client.ping_interval, Duration::from_secs(30));
    assert_eq!(cfg.client.pong_timeout, Duration::from_secs(5));
    assert_eq!(cfg.client.connect_timeout, Duration::from_secs(2));
    assert_eq!(cfg.client.max_queue_bytes, 1000);
    assert_eq!(cfg.client.max_message_size, 100);
    assert_eq!(cfg.client.expired_close_delay, Duration::ZERO);
}

#[test]
fn env_overrides_file() {
    let cfg = load_str(
        "toml",
        EXAMPLE_TOML,
        &[
            ("HERALD_SERVER__LISTEN", "0.0.0.0:9001"),
            ("HERALD_API__KEY", "from-env"),
            (
                "HERALD_AUTH__HMAC_SECRET",
                "env-secret-0123456789abcdef0123456789",
            ),
            (
                "HERALD_SERVER__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("HERALD_CHANNELS__ALLOW_SUBSCRIBE_FOR_CLIENT", "true"),
            ("HERALD_CLIENT__MAX_QUEUE_SIZE", "2048"),
            ("HERALD_BROKER__KIND", "memory"),
            // Not configuration: ignored.
            ("HERALD_CONFIG", "/etc/herald.toml"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.server.listen, "0.0.0.0:9001".parse().unwrap());
    assert_eq!(cfg.api.key, "from-env");
    assert_eq!(
        cfg.token.key,
        TokenKey::Hmac(b"env-secret-0123456789abcdef0123456789".to_vec())
    );
    assert_eq!(
        cfg.server.allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert!(cfg.channels.without_namespace.allow_subscribe_for_client);
    assert_eq!(cfg.client.max_queue_bytes, 2048);
    // Untouched by the environment.
    assert_eq!(cfg.channels.namespaces.len(), 1);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn env_alone_configures_auth() {
    let cfg = Config::load(
        None,
        env(&[
            ("HERALD_AUTH__HMAC_SECRET", "s".repeat(40).as_str()),
            ("HERALD_API__KEY", "k"),
            ("HERALD_SERVER__ALLOWED_ORIGINS", "*"),
            ("HERALD_CHANNELS__ALLOW_PUBLISH_FOR_CLIENT", "TRUE"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(cfg.dev.is_none());
    assert!(!cfg.channels.insecure);
    assert_eq!(cfg.server.allowed_origins, ["*"]);
    assert!(cfg.channels.without_namespace.allow_publish_for_client);
}

#[test]
fn env_values_are_not_mangled() {
    // Digit-only secrets keep their leading zeros and are not turned into numbers.
    let cfg = Config::load(
        None,
        env(&[
            (
                "HERALD_AUTH__HMAC_SECRET",
                "00123456789012345678901234567890123456789ABC",
            ),
            ("HERALD_API__KEY", "1e5"),
            ("HERALD_SERVER__ALLOWED_ORIGINS", ""),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        cfg.token.key,
        TokenKey::Hmac(b"00123456789012345678901234567890123456789ABC".to_vec())
    );
    assert_eq!(cfg.api.key, "1e5");
    assert!(cfg.server.allowed_origins.is_empty());
}

#[test]
fn flags_override_env_and_file() {
    let file = TempFile::new("toml", EXAMPLE_TOML);
    let overrides = Overrides {
        listen: Some("127.0.0.1:7000".into()),
        api_key: Some("flag-key".into()),
        hmac_secret: Some("flag-secret-0123456789abcdef0123456789".into()),
        log_format: None,
        dev: false,
    };
    let cfg = Config::load(
        Some(&file.0),
        env(&[
            ("HERALD_SERVER__LISTEN", "0.0.0.0:9001"),
            ("HERALD_API__KEY", "env-key"),
        ]),
        &overrides,
    )
    .unwrap();
    assert_eq!(cfg.server.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(cfg.api.key, "flag-key");
    assert_eq!(
        cfg.token.key,
        TokenKey::Hmac(b"flag-secret-0123456789abcdef0123456789".to_vec())
    );
}

#[test]
fn bad_flag_names_the_key() {
    let overrides = Overrides {
        listen: Some("nope".into()),
        ..dev_flag()
    };
    let res = Config::load(None, env(&[]), &overrides);
    assert_one_problem(res, "server.listen", "\"nope\" is not a socket address");
}

#[test]
fn bad_listen() {
    assert_one_problem(
        load_toml("[server]\nlisten = \"abc\"\n"),
        "server.listen",
        "\"abc\" is not a socket address (expected host:port, e.g. 127.0.0.1:8000)",
    );
    assert_one_problem(
        load_str("toml", "", &[("HERALD_SERVER__LISTEN", "localhost")]),
        "server.listen",
        "not a socket address",
    );
}

#[test]
fn bad_workers() {
    assert_one_problem(
        load_toml("[server]\nworkers = 0\n"),
        "server.workers",
        "0 is out of range (1 to 1024; leave it out for one per CPU)",
    );
    let cfg = load_str("toml", "", &[("HERALD_SERVER__WORKERS", "1")]).expect("valid");
    assert_eq!(cfg.server.workers, Some(1));
    assert_eq!(load_toml("").expect("valid").server.workers, None);
    assert_one_problem(
        load_toml("[server]\nbacklog = 0\n"),
        "server.backlog",
        "must be at least 1",
    );
    assert_eq!(load_toml("").expect("valid").server.backlog, 4096);
}

#[test]
fn the_websocket_engine_is_lean_unless_asked_otherwise() {
    assert_eq!(
        load_toml("").expect("valid").server.websocket_engine,
        WebSocketEngine::Lean
    );
    let cfg = load_toml("[server]\nwebsocket_engine = \"actix-ws\"\n").expect("valid");
    assert_eq!(cfg.server.websocket_engine, WebSocketEngine::ActixWs);
    let cfg = load_str(
        "toml",
        "[server]\nwebsocket_engine = \"actix-ws\"\n",
        &[("HERALD_SERVER__WEBSOCKET_ENGINE", "lean")],
    )
    .expect("valid");
    assert_eq!(cfg.server.websocket_engine, WebSocketEngine::Lean);
    assert_one_problem(
        load_toml("[server]\nwebsocket_engine = \"tungstenite\"\n"),
        "server.websocket_engine",
        "expected one of: lean, actix-ws",
    );
    assert!(
        load_toml("")
            .expect("valid")
            .summary()
            .contains("websocket_engine: lean")
    );
}

#[test]
fn logs_are_text_unless_json_is_asked_for() {
    assert_eq!(
        load_toml("").expect("valid").server.log_format,
        LogFormat::Text
    );
    let cfg = load_toml("[server]\nlog_format = \"json\"\n").expect("valid");
    assert_eq!(cfg.server.log_format, LogFormat::Json);
    let cfg = load_str("toml", "", &[("HERALD_SERVER__LOG_FORMAT", "JSON")]).expect("valid");
    assert_eq!(cfg.server.log_format, LogFormat::Json);
    let flag = Overrides {
        log_format: Some("text".to_owned()),
        ..dev_flag()
    };
    let file = TempFile::new("toml", "[server]\nlog_format = \"json\"\n");
    let vars = env(&[("HERALD_SERVER__LOG_FORMAT", "json")]);
    let cfg = Config::load(Some(&file.0), vars, &flag).expect("valid");
    assert_eq!(cfg.server.log_format, LogFormat::Text, "the flag wins");
    assert_one_problem(
        load_toml("[server]\nlog_format = \"logfmt\"\n"),
        "server.log_format",
        "expected \"text\" or \"json\"",
    );
}

#[test]
fn write_timeout_defaults_to_a_second_and_must_be_within_a_minute() {
    let cfg = load_toml("").expect("valid");
    assert_eq!(cfg.client.write_timeout, Duration::from_secs(1));
    let cfg = load_str("toml", "", &[("HERALD_CLIENT__WRITE_TIMEOUT", "250ms")]).expect("valid");
    assert_eq!(cfg.client.write_timeout, Duration::from_millis(250));
    assert_one_problem(
        load_toml("[client]\nwrite_timeout = \"0s\"\n"),
        "client.write_timeout",
        "out of range",
    );
    assert_one_problem(
        load_toml("[client]\nwrite_timeout = \"2m\"\n"),
        "client.write_timeout",
        "at most 60s",
    );
    assert_one_problem(
        load_toml("[client]\nwrite_timeout = \"soon\"\n"),
        "client.write_timeout",
        "",
    );
}

#[test]
fn limits_default_to_off_except_the_command_rate_and_are_checked() {
    let cfg = load_toml("").expect("valid");
    let c = &cfg.client;
    assert_eq!(
        (
            c.connection_limit,
            c.user_connection_limit,
            c.connection_rate_limit
        ),
        (0, 0, 0)
    );
    assert_eq!((c.command_rate_limit, c.command_rate_burst), (100, 200));
    assert_eq!(c.expired_sub_close_delay, Duration::from_secs(25));
    let cfg = load_str(
        "toml",
        "[client]\nconnection_limit = 10000\nuser_connection_limit = 5\ncommand_rate_limit = 0\n",
        &[
            ("HERALD_CLIENT__CONNECTION_RATE_LIMIT", "500"),
            ("HERALD_CLIENT__EXPIRED_SUB_CLOSE_DELAY", "5s"),
        ],
    )
    .expect("valid");
    let c = &cfg.client;
    assert_eq!(
        (
            c.connection_limit,
            c.user_connection_limit,
            c.connection_rate_limit
        ),
        (10_000, 5, 500)
    );
    assert_eq!(c.command_rate_limit, 0);
    assert_eq!(c.expired_sub_close_delay, Duration::from_secs(5));
    assert!(cfg.summary().contains("connection_limit: 10000"));
    assert_one_problem(
        load_toml("[client]\nconnection_limit = -1\n"),
        "client.connection_limit",
        "must be 0 (no limit) or more",
    );
    assert_one_problem(
        load_toml("[client]\nconnection_rate_limit = 5000000000\n"),
        "client.connection_rate_limit",
        "must be between 0 (no limit) and",
    );
    assert_one_problem(
        load_toml("[client]\ncommand_rate_burst = 0\n"),
        "client.command_rate_burst",
        "must be at least 1",
    );
    assert!(load_toml("[client]\ncommand_rate_limit = 0\ncommand_rate_burst = 0\n").is_ok());
    assert_one_problem(
        load_toml("[client]\nexpired_sub_close_delay = \"later\"\n"),
        "client.expired_sub_close_delay",
        "",
    );
}

#[test]
fn internal_listen_is_off_unless_set_and_must_be_an_address_of_its_own() {
    assert_eq!(load_toml("").unwrap().server.internal_listen, None);
    let cfg = load_str(
        "toml",
        "",
        &[("HERALD_SERVER__INTERNAL_LISTEN", "0.0.0.0:9000")],
    )
    .unwrap();
    assert_eq!(
        cfg.server.internal_listen,
        Some("0.0.0.0:9000".parse().unwrap())
    );
    assert!(cfg.summary().contains("internal_listen:  0.0.0.0:9000"));
    assert_one_problem(
        load_toml("[server]\ninternal_listen = \"nine thousand\"\n"),
        "server.internal_listen",
        "is not a socket address",
    );
    assert_one_problem(
        load_toml("[server]\nlisten = \"127.0.0.1:8000\"\ninternal_listen = \"127.0.0.1:8000\"\n"),
        "server.internal_listen",
        "is server.listen too",
    );
}

#[test]
fn fallback_transports_are_on_unless_switched_off() {
    let cfg = load_toml("").expect("valid");
    assert!(cfg.server.http_stream && cfg.server.sse);
    let cfg = load_toml("[server]\nhttp_stream = false\n").expect("valid");
    assert!(!cfg.server.http_stream && cfg.server.sse);
    let cfg = load_str("toml", "", &[("HERALD_SERVER__SSE", "false")]).expect("valid");
    assert!(cfg.server.http_stream && !cfg.server.sse);
    let err = load_toml("[server]\nsse = \"maybe\"\n").expect_err("not a bool");
    assert!(err.to_string().contains("sse"), "{err}");
}

#[test]
fn unidirectional_transports_are_on_unless_switched_off() {
    let cfg = load_toml("").expect("valid");
    let server = &cfg.server;
    assert!(server.uni_websocket && server.uni_sse && server.uni_http_stream);
    let cfg = load_toml("[server]\nuni_websocket = false\n").expect("valid");
    assert!(!cfg.server.uni_websocket && cfg.server.uni_sse);
    let env = [("HERALD_SERVER__UNI_HTTP_STREAM", "false")];
    let cfg = load_str("toml", "", &env).expect("valid");
    assert!(!cfg.server.uni_http_stream && cfg.server.uni_sse);
    let err = load_toml("[server]\nuni_sse = \"maybe\"\n").expect_err("not a bool");
    assert!(err.to_string().contains("uni_sse"), "{err}");
}

#[test]
fn history_options_of_namespaces_and_their_checks() {
    let cfg = load_toml(&format!(
        "{AUTH}[channels]\nhistory_size = 10\nhistory_ttl = \"5m\"\nforce_recovery = true\n\
         [[channels.namespaces]]\nname = \"feed\"\nhistory_size = 300\nhistory_ttl = \"300s\"\n\
         allow_recovery = true\nforce_positioning = true\nallow_history_for_subscriber = true\n"
    ))
    .expect("valid");
    let top = &cfg.channels.without_namespace;
    assert_eq!(
        (top.history_size, top.history_ttl),
        (10, Duration::from_secs(300))
    );
    assert!(top.force_recovery && top.has_history());
    let feed = &cfg.channels.namespaces[0].options;
    assert!(feed.allow_recovery && feed.force_positioning && feed.allow_history_for_subscriber);
    assert_eq!(feed.history_size, 300);

    assert_one_problem(
        load_toml(&format!("{AUTH}[channels]\nhistory_size = 10\n")),
        "channels.history_size and channels.history_ttl",
        "history needs both",
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[[channels.namespaces]]\nname = \"feed\"\nforce_recovery = true\n"
        )),
        "channels.namespaces[0].force_recovery",
        "needs history",
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[channels]\nhistory_size = -1\nhistory_ttl = \"1s\"\n"
        )),
        "channels.history_size",
        "out of range",
    );
    assert_one_problem(
        load_toml(&format!("{AUTH}[channels]\nforce_push_join_leave = true\n")),
        "channels.force_push_join_leave",
        "needs join_leave = true",
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[channels]\nallow_presence_for_subscriber = true\n"
        )),
        "channels.allow_presence_for_subscriber",
        "needs presence = true",
    );
    assert!(
        load_toml(&format!(
            "{AUTH}[channels]\npresence = true\nallow_presence_for_subscriber = true\n"
        ))
        .expect("presence")
        .channels
        .without_namespace
        .presence
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[client]\npresence_update_interval = \"30s\"\npresence_ttl = \"30s\"\n"
        )),
        "client.presence_ttl",
        "must exceed client.presence_update_interval",
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[client]\nchannel_position_check_delay = \"100ms\"\n"
        )),
        "client.channel_position_check_delay",
        "below 1s",
    );
    let off = load_toml(&format!(
        "{AUTH}[client]\nchannel_position_check_delay = \"0s\"\n"
    ))
    .expect("position checks off");
    assert!(off.client.channel_position_check_delay.is_zero());
    assert_eq!(
        load_toml(AUTH)
            .expect("defaults")
            .client
            .channel_position_check_delay,
        Duration::from_secs(40)
    );
    let redis = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\n[channels]\nhistory_size = 10\nhistory_ttl = \"1m\"\n"
    ))
    .expect("history on Redis servers");
    assert!(redis.channels.without_namespace.has_history());
    let cluster = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\nredis_urls = [\"redis+cluster://a:1|b:2\"]\n\
         [channels]\nhistory_size = 10\nhistory_ttl = \"1m\"\npresence = true\n"
    ))
    .expect("history and presence on a Redis Cluster");
    assert!(cluster.channels.without_namespace.presence);
}

#[test]
fn unknown_key_typo() {
    let res = load_toml("[channels]\nalow_subscribe_for_client = true\n");
    assert_one_problem(
        res,
        "channels.alow_subscribe_for_client",
        "unknown key (did you mean `allow_subscribe_for_client`?",
    );
    let res =
        load_toml("[[channels.namespaces]]\nname = \"chat\"\nalow_subscribe_for_client = true\n");
    assert_one_problem(
        res,
        "channels.namespaces[0].alow_subscribe_for_client",
        "unknown key",
    );
    assert_one_problem(
        load_toml("[sever]\nlisten = \"127.0.0.1:1\"\n"),
        "sever",
        "unknown section (did you mean `server`?",
    );
    assert_one_problem(
        load_str("toml", "", &[("HERALD_SERVER__LISTN", "127.0.0.1:1")]),
        "server.listn",
        "unknown key (did you mean `listen`?",
    );
}

#[test]
fn ignored_env_vars_warn() {
    let cfg = Config::load(
        None,
        env(&[
            ("HERALD_LISTEN", "1.2.3.4:5"),
            ("HERALD_CONFIG", "x.toml"),
            ("HERALD_LOG", "debug"),
        ]),
        &dev_flag(),
    )
    .unwrap();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("HERALD_LISTEN"));
}

#[test]
fn wrong_types_name_the_key() {
    assert_one_problem(
        load_toml("[channels]\nallow_publish_for_client = \"maybe\"\n"),
        "channels.allow_publish_for_client",
        "expected a boolean",
    );
    assert_one_problem(
        load_str("toml", "", &[("HERALD_CLIENT__MAX_MESSAGE_SIZE", "big")]),
        "client.max_message_size",
        "expected an integer",
    );
    assert_one_problem(
        load_toml("[[channels.namespaces]]\nname = \"chat\"\nallow_publish_for_client = []\n"),
        "channels.namespaces[0].allow_publish_for_client",
        "expected a boolean",
    );
}

#[test]
fn bad_namespace_name() {
    let res = load_toml(&format!(
        "{AUTH}[[channels.namespaces]]\nname = \"chat\"\n[[channels.namespaces]]\nname = \"a\"\n[[channels.namespaces]]\nname = \"no:colon\"\n[[channels.namespaces]]\nallow_publish_for_client = true\n"
    ));
    let p = problems(res);
    assert_eq!(
        p,
        [
            r#"channels.namespaces[1].name: "a" must match ^[-a-zA-Z0-9_]{2,}$"#,
            r#"channels.namespaces[2].name: "no:colon" must match ^[-a-zA-Z0-9_]{2,}$"#,
            "channels.namespaces[3].name: is required",
        ]
    );
}

#[test]
fn duplicate_namespace() {
    let res = load_toml(&format!(
        "{AUTH}[[channels.namespaces]]\nname = \"chat\"\n[[channels.namespaces]]\nname = \"news\"\n[[channels.namespaces]]\nname = \"chat\"\n"
    ));
    assert_one_problem(
        res,
        "channels.namespaces[2].name",
        "duplicate namespace \"chat\" (already defined by channels.namespaces[0])",
    );
}

#[test]
fn two_key_kinds_at_once() {
    let file = format!(
        "[auth]\nhmac_secret = \"0123456789abcdef0123456789abcdef\"\nrsa_public_key = \"\"\"{RSA_PUBLIC}\"\"\"\n[api]\nkey = \"k\"\n"
    );
    assert_one_problem(
        load_toml(&file),
        "auth",
        "set only one of hmac_secret, rsa_public_key, ecdsa_public_key",
    );
}

#[test]
fn rsa_and_ecdsa_public_keys_are_accepted() {
    let cfg = load_toml(&format!(
        "[auth]\nrsa_public_key = \"\"\"{RSA_PUBLIC}\"\"\"\n[api]\nkey = \"k\"\n"
    ))
    .unwrap();
    assert!(
        matches!(&cfg.token.key, TokenKey::RsaPem(pem) if pem.starts_with(b"-----BEGIN PUBLIC KEY-----"))
    );
    assert!(cfg.summary().contains("RSA public key"));

    let cfg = load_str(
        "yaml",
        &format!(
            "auth:\n  ecdsa_public_key: |\n{}api:\n  key: k\n",
            ECDSA_PUBLIC
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.token.key,
        TokenKey::EcdsaPem(ECDSA_PUBLIC.trim().as_bytes().to_vec())
    );

    // From the environment, with real newlines or with literal `\n`.
    for pem in [
        ECDSA_PUBLIC.to_owned(),
        ECDSA_PUBLIC.trim().replace('\n', "\\n"),
    ] {
        let cfg = Config::load(
            None,
            env(&[
                ("HERALD_AUTH__ECDSA_PUBLIC_KEY", &pem),
                ("HERALD_API__KEY", "k"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            cfg.token.key,
            TokenKey::EcdsaPem(ECDSA_PUBLIC.trim().as_bytes().to_vec())
        );
    }
}

#[test]
fn bad_pem() {
    assert_one_problem(
        load_toml(
            "[auth]\nrsa_public_key = \"-----BEGIN PUBLIC KEY-----\\nnot base64\\n-----END PUBLIC KEY-----\"\n[api]\nkey = \"k\"\n",
        ),
        "auth.rsa_public_key",
        "not a valid PEM",
    );
    // An RSA key where an ECDSA key is expected.
    assert_one_problem(
        load_toml(&format!(
            "[auth]\necdsa_public_key = \"\"\"{RSA_PUBLIC}\"\"\"\n[api]\nkey = \"k\"\n"
        )),
        "auth.ecdsa_public_key",
        "not a valid PEM",
    );
    assert_one_problem(
        load_toml(&format!(
            "[auth]\nrsa_public_key = \"\"\"{RSA_PRIVATE}\"\"\"\n[api]\nkey = \"k\"\n"
        )),
        "auth.rsa_public_key",
        "private key",
    );
}

#[test]
fn unknown_broker_kind() {
    assert_one_problem(
        load_toml(&format!("{AUTH}[broker]\nkind = \"nats\"\n")),
        "broker.kind",
        "\"nats\" is not supported (supported: memory, redis)",
    );
    assert_one_problem(
        load_str("toml", AUTH, &[("HERALD_BROKER__KIND", "kafka")]),
        "broker.kind",
        "\"kafka\"",
    );
}

fn redis(cfg: &Config) -> &RedisConfig {
    match &cfg.broker {
        BrokerConfig::Redis(redis) => redis,
        other => panic!("expected the redis broker, got {other:?}"),
    }
}

fn standalone(url: &str) -> RedisShardConfig {
    RedisShardConfig::Standalone { url: url.into() }
}

#[test]
fn redis_broker_from_a_file() {
    let cfg = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\nredis_urls = [\"redis://a.example:6379\", \"rediss://:pw@b.example:6380/2\"]\n"
    ))
    .unwrap();
    let r = redis(&cfg);
    assert_eq!(
        r.shards,
        [
            standalone("redis://a.example:6379"),
            standalone("rediss://:pw@b.example:6380/2"),
        ]
    );
    // Defaults of the other keys.
    let defaults = RedisConfig::default();
    assert_eq!(r.prefix, "herald");
    assert_eq!(r.connect_timeout, Duration::from_secs(1));
    assert_eq!(r.command_timeout, Duration::from_secs(1));
    assert_eq!(r.pubsub_connections, 2);
    assert_eq!(r.pool_size, 32);
    assert_eq!(
        RedisConfig {
            shards: defaults.shards.clone(),
            ..r.clone()
        },
        defaults
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    // Every key.
    let cfg = load_toml(&format!(
        r#"{AUTH}[broker]
kind = "redis"
redis_urls = ["redis://[::1]:7000", "redis://user:pw@cache"]
prefix = "app1:herald.v2-x_y"
connect_timeout = "250ms"
command_timeout = "1m"
pubsub_connections = 64
pool_size = 1024
"#
    ))
    .unwrap();
    let r = redis(&cfg);
    assert_eq!(
        r.shards,
        [
            standalone("redis://[::1]:7000"),
            standalone("redis://user:pw@cache"),
        ]
    );
    assert_eq!(r.prefix, "app1:herald.v2-x_y");
    assert_eq!(r.connect_timeout, Duration::from_millis(250));
    assert_eq!(r.command_timeout, Duration::from_secs(60));
    assert_eq!(r.pubsub_connections, 64);
    assert_eq!(r.pool_size, 1024);
}

#[test]
fn redis_broker_from_env() {
    let cfg = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_BROKER__KIND", "redis"),
            ("HERALD_BROKER__REDIS_URLS", "redis://a:6379,redis://b:6380"),
            ("HERALD_BROKER__PREFIX", "prod"),
            ("HERALD_BROKER__COMMAND_TIMEOUT", "2s"),
            ("HERALD_BROKER__POOL_SIZE", "8"),
        ],
    )
    .unwrap();
    let r = redis(&cfg);
    assert_eq!(
        r.shards,
        [standalone("redis://a:6379"), standalone("redis://b:6380")]
    );
    assert_eq!(r.prefix, "prod");
    assert_eq!(r.command_timeout, Duration::from_secs(2));
    assert_eq!(r.pool_size, 8);

    // The environment switches a file's memory broker to redis.
    let cfg = load_str(
        "toml",
        EXAMPLE_TOML,
        &[
            ("HERALD_BROKER__KIND", "redis"),
            ("HERALD_BROKER__REDIS_URLS", "redis://redis:6379"),
        ],
    )
    .unwrap();
    assert_eq!(redis(&cfg).shards, [standalone("redis://redis:6379")]);

    // Without redis_urls: the local default.
    let cfg = load_str("toml", AUTH, &[("HERALD_BROKER__KIND", "redis")]).unwrap();
    assert_eq!(redis(&cfg).shards, [standalone("redis://127.0.0.1:6379")]);
}

#[test]
fn redis_cluster_urls() {
    let cfg = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\nredis_urls = [\"redis+cluster://:s3cret@h1:7000|h2:7001|h3:7002\"]\n"
    ))
    .unwrap();
    assert_eq!(
        redis(&cfg).shards,
        [RedisShardConfig::Cluster {
            urls: vec![
                "redis://:s3cret@h1:7000".into(),
                "redis://:s3cret@h2:7001".into(),
                "redis://:s3cret@h3:7002".into(),
            ]
        }]
    );

    // Through the environment, next to a standalone shard; TLS, a user, and options carried to
    // every seed.
    let cfg = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_BROKER__KIND", "redis"),
            (
                "HERALD_BROKER__REDIS_URLS",
                "rediss://a:6379, rediss+cluster://app:pw@c1:7000|C2|[::1]:7002/?protocol=resp3",
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        redis(&cfg).shards,
        [
            standalone("rediss://a:6379"),
            RedisShardConfig::Cluster {
                urls: vec![
                    "rediss://app:pw@c1:7000/?protocol=resp3".into(),
                    "rediss://app:pw@C2/?protocol=resp3".into(),
                    "rediss://app:pw@[::1]:7002/?protocol=resp3".into(),
                ]
            },
        ]
    );
}

/// The problems of `[broker]` with `kind = "redis"` and the given extra TOML.
fn redis_problems(extra: &str) -> Vec<String> {
    problems(load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\n{extra}\n"
    )))
}

#[test]
fn bad_redis_urls() {
    let p = redis_problems(
        r#"redis_urls = [
  "http://a:6379",
  "redis://:6379",
  "redis://a:port",
  "redis://a:70000",
  "a:6379",
  "redis://a/x",
  "redis+cluster://a:7000/1",
  "redis+cluster://a:7000|b:7001,c:7002",
  "redis+cluster://a:7000||c:7002",
  "redis+cluster://a:7000|:pw@b:7001",
  "redis://a:6379|b:6379",
  "unix:///tmp/redis.sock",
  "rediss://a:6379#insecure",
  "rediss+cluster://a:7000|b:7001/0#insecure",
  "redis://ok:6379",
]"#,
    );
    let expected = [
        r#"broker.redis_urls[0]: "http://a:6379" has an unsupported scheme (expected redis://"#,
        r#"broker.redis_urls[1]: "redis://:6379" has no host"#,
        r#"broker.redis_urls[2]: "redis://a:port" has an invalid port (expected a number in 1..=65535)"#,
        r#"broker.redis_urls[3]: "redis://a:70000" has an invalid port"#,
        r#"broker.redis_urls[4]: "a:6379" has no scheme (expected"#,
        r#"broker.redis_urls[5]: "redis://a/x" has a path that is not a database number"#,
        r#"broker.redis_urls[6]: "redis+cluster://a:7000/1" has a database number, but a Redis Cluster only has database 0"#,
        r#"broker.redis_urls[7]: "redis+cluster://a:7000|b:7001,c:7002" has an invalid port (expected a number in 1..=65535) in seed 2 (cluster seeds are separated by `|`, not `,`"#,
        r#"broker.redis_urls[8]: "redis+cluster://a:7000||c:7002" has no host in seed 2"#,
        r#"broker.redis_urls[9]: "redis+cluster://a:***@b:7001" has user:password on a seed other than the first"#,
        r#"broker.redis_urls[10]: "redis://a:6379|b:6379" has `|`, which separates seeds of redis+cluster:// URLs only"#,
        r#"broker.redis_urls[11]: "unix:///tmp/redis.sock" is a Unix socket"#,
        r#"broker.redis_urls[12]: "rediss://a:6379#insecure" has a `#` fragment, which is refused (`#insecure` would turn off"#,
        r#"broker.redis_urls[13]: "rediss+cluster://a:7000|b:7001/0#insecure" has a `#` fragment"#,
    ];
    assert_eq!(p.len(), expected.len(), "{p:#?}");
    for (problem, expected) in p.iter().zip(expected) {
        assert!(
            problem.starts_with(expected),
            "{problem:?}\n !~ {expected:?}"
        );
    }
    // The syntax is spelled out where the scheme is wrong.
    assert!(p[0].contains("redis+cluster://[user:password@]host1:port1|host2:port2"));

    // In the environment, a `,` between cluster seeds starts a new entry without a scheme.
    assert_one_problem(
        load_str(
            "toml",
            AUTH,
            &[
                ("HERALD_BROKER__KIND", "redis"),
                (
                    "HERALD_BROKER__REDIS_URLS",
                    "redis+cluster://h1:7000,h2:7001",
                ),
            ],
        ),
        "broker.redis_urls[1]",
        "\"h2:7001\" has no scheme (expected redis://[user:password@]host[:port][/db]",
    );
}

#[test]
fn empty_redis_urls() {
    assert_eq!(
        redis_problems("redis_urls = []")
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect::<Vec<_>>(),
        ["broker.redis_urls"]
    );
    assert_one_problem(
        load_str(
            "toml",
            AUTH,
            &[
                ("HERALD_BROKER__KIND", "redis"),
                ("HERALD_BROKER__REDIS_URLS", ""),
            ],
        ),
        "broker.redis_urls",
        "must list at least one Redis URL",
    );
}

#[test]
fn duplicate_redis_urls() {
    let p = redis_problems(
        r#"redis_urls = ["redis://A:6379", "redis://b:6380", "rediss://:pw@a", "redis+cluster://c:1|b:6380", "redis+cluster://d:1|D:1"]"#,
    );
    assert_eq!(
        p,
        [
            "broker.redis_urls[2]: \"rediss://:***@a\" duplicates broker.redis_urls[0] (both use a:6379); every entry must be a different Redis server or cluster",
            "broker.redis_urls[3]: \"redis+cluster://c:1|b:6380\" duplicates broker.redis_urls[1] (both use b:6380); every entry must be a different Redis server or cluster",
            "broker.redis_urls[4]: \"redis+cluster://d:1|D:1\" lists the seed d:1 more than once",
        ]
    );
}

#[test]
fn bad_redis_settings() {
    let p = redis_problems(
        "prefix = \"has space\"\nconnect_timeout = \"0s\"\ncommand_timeout = \"61s\"\npubsub_connections = 0\npool_size = 1025\n",
    );
    assert_eq!(
        p,
        [
            "broker.prefix: \"has space\" must match ^[A-Za-z0-9_.:-]{1,64}$",
            "broker.connect_timeout: must be greater than 0",
            "broker.command_timeout: 1m 1s is too long (at most 1m)",
            "broker.pubsub_connections: must be in 1..=64 (got 0)",
            "broker.pool_size: must be in 1..=1024 (got 1025)",
        ]
    );
    let p = redis_problems(&format!(
        "prefix = \"{}\"\ncommand_timeout = \"0s\"\nconnect_timeout = \"soon\"\npool_size = -1\n",
        "p".repeat(65)
    ));
    let keys: Vec<&str> = p.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "broker.prefix",
            "broker.connect_timeout",
            "broker.command_timeout",
            "broker.pool_size",
        ],
        "{p:#?}"
    );
    assert_one_problem(
        load_str(
            "toml",
            AUTH,
            &[
                ("HERALD_BROKER__KIND", "redis"),
                ("HERALD_BROKER__PREFIX", ""),
            ],
        ),
        "broker.prefix",
        "must match",
    );
    assert_one_problem(
        load_toml(&format!("{AUTH}[broker]\nredis_url = \"redis://a\"\n")),
        "broker.redis_url",
        "unknown key (did you mean `redis_urls`?",
    );
}

#[test]
fn redis_passwords_are_never_shown() {
    // In errors, also when the URL is too broken to parse.
    let p = redis_problems(
        r#"redis_urls = ["redis://:hunter2@a:port", "redis+cluster://user:hunter2@a:7000|b:x", "redis://:hun/ter2@a", "user:hunter2@host", "redis://:hunter2@a", "redis://:hunter2@A:6379"]"#,
    );
    assert_eq!(p.len(), 5, "{p:#?}");
    for problem in &p {
        assert!(!problem.contains("hunter2"), "{problem}");
        assert!(problem.contains(":***@"), "{problem}");
    }
    let err = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\nredis_urls = [\"ftp://:hunter2@a\"]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        !err.contains("hunter2") && err.contains("ftp://:***@a"),
        "{err}"
    );

    // In the summary and in debug output.
    let cfg = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\nredis_urls = [\"rediss://app:hunter2@a:6379/1\", \"redis+cluster://:hunter2@c1:7000|c2:7001\"]\nprefix = \"px\"\nconnect_timeout = \"2s\"\ncommand_timeout = \"500ms\"\n"
    ))
    .unwrap();
    let s = cfg.summary();
    assert!(!s.contains("hunter2"), "{s}");
    for needle in [
        "kind:             redis",
        "shard 0:          rediss://app:***@a:6379/1",
        "shard 1:          cluster, seeds redis://:***@c1:7000, redis://:***@c2:7001",
        "prefix:           px",
        "connect_timeout:  2s",
        "command_timeout:  500ms",
        "pubsub_connections: 2",
        "pool_size:        32",
    ] {
        assert!(s.contains(needle), "{needle:?} missing in\n{s}");
    }
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn redis_keys_with_the_memory_broker_warn() {
    let cfg = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_BROKER__REDIS_URLS", "redis://a:6379"),
            // Not checked while unused.
            ("HERALD_BROKER__POOL_SIZE", "0"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.broker, BrokerConfig::Memory);
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].starts_with("broker.redis_urls is ignored: broker.kind is \"memory\""),
        "{:?}",
        cfg.warnings
    );
    assert!(
        cfg.summary()
            .contains("warning: broker.redis_urls is ignored")
    );
    assert!(cfg.summary().contains("kind:             memory"));
    // Wrong types are still errors.
    assert_one_problem(
        load_toml(&format!("{AUTH}[broker]\npool_size = \"many\"\n")),
        "broker.pool_size",
        "expected an integer",
    );
    // An empty list is no warning.
    let cfg = load_toml(&format!("{AUTH}[broker]\nredis_urls = []\n")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn ping_must_exceed_pong() {
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[client]\nping_interval = \"8s\"\npong_timeout = \"8s\"\n"
        )),
        "client.ping_interval",
        "must exceed client.pong_timeout",
    );
}

#[test]
fn bad_durations_and_sizes() {
    let p = problems(load_toml(&format!(
        "{AUTH}[server]\nshutdown_timeout = \"soon\"\n[client]\nconnect_timeout = \"0s\"\nmax_queue_size = 0\nmax_message_size = -1\n[channels]\nmax_channel_length = 0\n"
    )));
    let keys: Vec<&str> = p.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "server.shutdown_timeout",
            "channels.max_channel_length",
            "client.connect_timeout",
            "client.max_queue_size",
            "client.max_message_size",
        ],
        "{p:#?}"
    );
}

#[test]
fn only_one_of_api_key_and_token_key() {
    assert_one_problem(
        load_toml("[api]\nkey = \"k\"\n"),
        "auth",
        "a token key (hmac_secret, rsa_public_key, ecdsa_public_key or jwks_url) is required when api.key is set",
    );
    assert_one_problem(
        load_str(
            "toml",
            "",
            &[(
                "HERALD_AUTH__HMAC_SECRET",
                "0123456789abcdef0123456789abcdef",
            )],
        ),
        "api.key",
        "is required when auth is configured",
    );
    // Empty values count as unset.
    let problems = problems(load_toml("[auth]\nhmac_secret = \"\"\n[api]\nkey = \"\"\n"));
    assert!(problems[0].contains("are required"), "{problems:?}");
}

#[test]
fn without_keys_a_node_runs_only_in_dev_mode_when_asked() {
    let problems = problems(Config::load(None, env(&[]), &Overrides::default()));
    assert_eq!(problems.len(), 1, "{problems:?}");
    for named in [
        "auth.hmac_secret",
        "HERALD_AUTH__HMAC_SECRET",
        "api.key",
        "HERALD_API__KEY",
        "--dev",
    ] {
        assert!(problems[0].contains(named), "{named}: {problems:?}");
    }
    assert!(
        Config::load(None, env(&[]), &dev_flag())
            .unwrap()
            .dev
            .is_some()
    );
}

#[test]
fn dev_mode_refuses_keys_other_hosts_and_redis() {
    let keyed = env(&[
        (
            "HERALD_AUTH__HMAC_SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
        ("HERALD_API__KEY", "k"),
    ]);
    let found = problems(Config::load(None, keyed, &dev_flag()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("--dev:") && found[0].contains("is configured"),
        "{found:?}"
    );

    for listen in ["0.0.0.0:8000", "[::]:8000", "10.1.2.3:8000"] {
        let res = Config::load(None, env(&[("HERALD_SERVER__LISTEN", listen)]), &dev_flag());
        let found = problems(res);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("--dev:") && found[0].contains(listen),
            "{found:?}"
        );
    }
    for listen in ["127.0.0.1:9000", "[::1]:9000", "127.0.0.2:0"] {
        let res = Config::load(None, env(&[("HERALD_SERVER__LISTEN", listen)]), &dev_flag());
        assert!(res.is_ok(), "{listen}: {res:?}");
    }

    let redis = env(&[
        ("HERALD_BROKER__KIND", "redis"),
        ("HERALD_BROKER__REDIS_URLS", "redis://127.0.0.1:6379"),
    ]);
    let found = problems(Config::load(None, redis, &dev_flag()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("--dev:") && found[0].contains("redis"),
        "{found:?}"
    );
}

#[test]
fn a_wildcard_origin_stands_for_a_whole_leading_label_only() {
    for good in [
        "*",
        "https://*.example.com",
        "https://*.example.com:8443",
        "http://*.localhost",
    ] {
        let toml = format!("[server]\nallowed_origins = [\"{good}\"]\n");
        assert!(load_toml(&toml).is_ok(), "{good}");
    }
    for bad in [
        "https://*example.com",
        "https://a.example.com*",
        "https://a.*.example.com",
        "https://*.*.example.com",
        "https://*",
        "https://*.",
        "https://*.:443",
        "*.example.com",
        "**",
    ] {
        let toml = format!("[server]\nallowed_origins = [\"{bad}\"]\n");
        let problems = problems(load_toml(&toml));
        assert!(
            problems.len() == 1 && problems[0].starts_with("server.allowed_origins[0]:"),
            "{bad}: {problems:?}"
        );
    }
}

#[test]
fn several_errors_reported_together() {
    let res = load_toml(
        r#"
[server]
listen = "abc"
allowed_origins = ["https://ok.example", "https://bad.example/path"]
[auth]
hmac_secret = "short"
[broker]
kind = "redis"
redis_urls = []
[channels]
alow_subscribe_for_client = true
[client]
ping_interval = "1s"
"#,
    );
    let err = res.unwrap_err();
    let text = err.to_string();
    let ConfigError::Invalid(p) = err else {
        panic!("{text}")
    };
    for key in [
        "channels.alow_subscribe_for_client:",
        "server.listen:",
        "server.allowed_origins[1]:",
        "api.key:",
        "broker.redis_urls:",
        "client.ping_interval:",
    ] {
        assert!(
            p.iter().any(|p| p.starts_with(key)),
            "{key} missing in {p:#?}"
        );
    }
    assert_eq!(p.len(), 6, "{p:#?}");
    assert!(text.starts_with("invalid configuration:\n  - "), "{text}");
    assert_eq!(text.lines().count(), 7, "{text}");
}

#[test]
fn short_hmac_secret_is_a_warning() {
    let cfg = load_toml("[auth]\nhmac_secret = \"short\"\n[api]\nkey = \"k\"\n").unwrap();
    assert_eq!(cfg.warnings.len(), 1);
    assert!(cfg.warnings[0].starts_with("auth.hmac_secret"));
    assert!(cfg.summary().contains("warning: auth.hmac_secret"));
}

#[test]
fn bad_origins() {
    let p = problems(load_toml(&format!(
        "{AUTH}[server]\nallowed_origins = [\"app.example\", \"https://a.example/app\", \"https://\"]\n"
    )));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].starts_with("server.allowed_origins[0]: \"app.example\" has no scheme"));
    assert!(p[1].starts_with("server.allowed_origins[1]:"));
    assert!(p[2].starts_with("server.allowed_origins[2]:"));
}

#[test]
fn file_errors() {
    let missing = std::env::temp_dir().join("herald-config-test-does-not-exist.toml");
    assert!(matches!(
        Config::load(Some(&missing), env(&[]), &Overrides::default()),
        Err(ConfigError::Read { .. })
    ));
    assert!(matches!(
        load_str("ini", "", &[]),
        Err(ConfigError::UnsupportedFormat { .. })
    ));
    let err = load_toml("[server\nlisten = 1").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    let err = load_str("json", "{ nope", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
}

#[test]
fn empty_files_mean_defaults() {
    for ext in ["toml", "yaml", "json"] {
        let contents = if ext == "json" { "{}" } else { "" };
        let cfg = load_str(ext, contents, &[]).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert!(cfg.dev.is_some(), "{ext}");
    }
}

#[test]
fn summary_redacts_secrets() {
    let cfg = load_toml(EXAMPLE_TOML).unwrap();
    let s = cfg.summary();
    assert!(
        !s.contains("0123456789abcdef0123456789abcdef-secret"),
        "{s}"
    );
    assert!(!s.contains("api-key-1"), "{s}");
    assert!(s.contains("HMAC secret"), "{s}");
    assert!(s.contains("namespace \"chat\": allow subscribe_for_client, publish_for_subscriber"));
    assert!(s.contains("127.0.0.1:8000"));
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains("api-key-1") && !debug.contains("-secret"),
        "{debug}"
    );

    let dev = Config::load(None, env(&[]), &dev_flag()).unwrap();
    let s = dev.summary();
    let secrets = dev.dev.unwrap();
    assert!(s.contains("DEV"));
    assert!(!s.contains(&secrets.hmac_secret) && !s.contains(&secrets.api_key));
}

#[test]
fn for_test_config() {
    let cfg = Config::for_test();
    assert_eq!(cfg.server.listen.port(), 0);
    assert_eq!(cfg.api.key, "test-api-key");
    assert!(cfg.dev.is_none());
    assert!(!cfg.channels.insecure);
    assert_eq!(cfg.channels.namespaces[0].name, "chat");
}

/// A self-signed test CA (ECDSA P-256), only ever parsed here.
const REDIS_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBdzCCAR6gAwIBAgIUGWN6dMq9L4c1R7L7RINZSp8gD3cwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOSGVyYWxkIFRlc3QgQ0EwIBcNMjYxMTIxMTQwMDE4WhgPMjEy
NjEwMjgxNDAwMThaMBkxFzAVBgNVBAMMDkhlcmFsZCBUZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEaJippPQO5TKDAA/PDuGqdP90nzeQ80bWRLWvpVkw
pCPD9hoZUqwbd0clgGwxjdsVfDJu+OzJ2zN/fnNnLgLUNaNCMEAwDwYDVR0TAQH/
BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFCQAJqzxSrVLLAExSSVt
ntCFsOKJMAoGCCqGSM49BAMCA0cAMEQCIHP0YReXeLqVdky0/V3+xBzikcc7GXp6
1UyKZaTPNog0AiBYEWEdso7gnHlmEBrsVmgWeBYTVCbYaLX2TyQBoU9N7g==
-----END CERTIFICATE-----
";

#[test]
fn redis_tls_ca_file_is_read_at_start() {
    let ca = TempFile::new("pem", REDIS_CA);
    let ca_path = ca.0.display().to_string();
    // From a file.
    let cfg = load_toml(&format!(
        "{AUTH}[broker]\nkind = \"redis\"\nredis_urls = [\"rediss://:pw@redis.example:6380\"]\ntls_ca_file = {ca_path:?}\n"
    ))
    .unwrap();
    assert_eq!(
        redis(&cfg).tls_ca_cert.as_deref(),
        Some(REDIS_CA.as_bytes())
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(cfg.summary().contains("tls_ca:"), "{}", cfg.summary());

    // From the environment, with a TLS cluster.
    let cfg = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_BROKER__KIND", "redis"),
            (
                "HERALD_BROKER__REDIS_URLS",
                "rediss+cluster://:pw@a:7000|b:7001",
            ),
            ("HERALD_BROKER__TLS_CA_FILE", &ca_path),
        ],
    )
    .unwrap();
    assert_eq!(
        redis(&cfg).tls_ca_cert.as_deref(),
        Some(REDIS_CA.as_bytes())
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    // Unset: the webpki roots.
    let cfg = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_BROKER__KIND", "redis"),
            ("HERALD_BROKER__REDIS_URLS", "rediss://a:6380"),
        ],
    )
    .unwrap();
    assert_eq!(redis(&cfg).tls_ca_cert, None);
}

#[test]
fn redis_tls_ca_file_problems_name_the_key() {
    let redis_env = |ca: &str| {
        load_str(
            "toml",
            AUTH,
            &[
                ("HERALD_BROKER__KIND", "redis"),
                ("HERALD_BROKER__REDIS_URLS", "rediss://a:6380"),
                ("HERALD_BROKER__TLS_CA_FILE", ca),
            ],
        )
    };
    assert_one_problem(
        redis_env("/nonexistent/herald/ca.pem"),
        "broker.tls_ca_file",
        "cannot read \"/nonexistent/herald/ca.pem\"",
    );
    let not_pem = TempFile::new("pem", "hello, I am not a certificate\n");
    assert_one_problem(
        redis_env(&not_pem.0.display().to_string()),
        "broker.tls_ca_file",
        "holds no PEM certificate",
    );
    let private_key = TempFile::new("pem", RSA_PRIVATE);
    assert_one_problem(
        redis_env(&private_key.0.display().to_string()),
        "broker.tls_ca_file",
        "holds no PEM certificate",
    );
    let broken = TempFile::new(
        "pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    assert_one_problem(
        redis_env(&broken.0.display().to_string()),
        "broker.tls_ca_file",
        "cannot be a CA",
    );
}

#[test]
fn redis_tls_ca_file_without_tls_is_a_warning() {
    let ca = TempFile::new("pem", REDIS_CA);
    let ca_path = ca.0.display().to_string();
    let cfg = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_BROKER__KIND", "redis"),
            ("HERALD_BROKER__REDIS_URLS", "redis://a:6379"),
            ("HERALD_BROKER__TLS_CA_FILE", &ca_path),
        ],
    )
    .unwrap();
    assert_eq!(
        cfg.warnings,
        [
            "broker.tls_ca_file is ignored: no broker.redis_urls entry uses TLS (rediss:// or rediss+cluster://)"
        ]
    );
    let cfg = load_str("toml", AUTH, &[("HERALD_BROKER__TLS_CA_FILE", &ca_path)]).unwrap();
    assert_eq!(cfg.broker, BrokerConfig::Memory);
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].starts_with("broker.tls_ca_file is ignored"));
}

#[test]
fn a_jwks_url_is_the_token_key() {
    let cfg = load_toml(
        "[auth]\njwks_url = \"https://auth.example/.well-known/jwks.json\"\n[api]\nkey = \"k\"\n",
    )
    .unwrap();
    assert!(
        cfg.dev.is_none(),
        "a JWKS and an API key are a production node"
    );
    assert_eq!(
        cfg.token.key,
        TokenKey::Jwks(JwksConfig {
            url: "https://auth.example/.well-known/jwks.json".into(),
            refresh_interval: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        })
    );
    assert_eq!(cfg.token.previous_key, None);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let s = cfg.summary();
    assert!(
        s.contains(
            "token key:        JWKS at https://auth.example/.well-known/jwks.json (RSA/EC keys by kid), refreshed every 5m"
        ),
        "{s}"
    );

    // From the environment, with its own refresh interval.
    let cfg = Config::load(
        None,
        env(&[
            ("HERALD_AUTH__JWKS_URL", "http://127.0.0.1:9000/jwks"),
            ("HERALD_AUTH__JWKS_REFRESH_INTERVAL", "1m"),
            ("HERALD_API__KEY", "k"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    let TokenKey::Jwks(jwks) = &cfg.token.key else {
        panic!("{:?}", cfg.token.key);
    };
    assert_eq!(jwks.url, "http://127.0.0.1:9000/jwks");
    assert_eq!(jwks.refresh_interval, Duration::from_secs(60));
    // Plain http to the loopback is no warning.
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    // Still needs the API key.
    assert_one_problem(
        load_toml("[auth]\njwks_url = \"https://auth.example/jwks\"\n"),
        "api.key",
        "is required when auth is configured",
    );
}

#[test]
fn jwks_url_problems_name_the_key() {
    let with = |auth: &str| load_toml(&format!("[auth]\n{auth}\n[api]\nkey = \"k\"\n"));
    for (url, why) in [
        (
            "ftp://auth.example/jwks",
            "scheme \"ftp\" is not http or https",
        ),
        ("auth.example/jwks", "not a URL"),
        ("https://", "not a URL"),
        ("file:///etc/jwks.json", "is not http or https"),
    ] {
        assert_one_problem(with(&format!("jwks_url = \"{url}\"")), "auth.jwks_url", why);
    }
    assert_one_problem(
        with("jwks_url = \"https://auth.example/jwks\"\njwks_refresh_interval = \"soon\""),
        "auth.jwks_refresh_interval",
        "is not a duration",
    );
    assert_one_problem(
        with("jwks_url = \"https://auth.example/jwks\"\njwks_refresh_interval = \"1s\""),
        "auth.jwks_refresh_interval",
        "too short (at least 10s)",
    );
    // One key kind: a JWKS instead of a static key, not beside it.
    assert_one_problem(
        with(
            "jwks_url = \"https://auth.example/jwks\"\nhmac_secret = \"0123456789abcdef0123456789abcdef\"",
        ),
        "auth",
        "set only one of hmac_secret, rsa_public_key, ecdsa_public_key, jwks_url",
    );

    // Plain http to another host works, with a warning.
    let cfg = with("jwks_url = \"http://auth.internal/jwks\"").unwrap();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].starts_with("auth.jwks_url http://auth.internal/jwks is plain http"),
        "{:?}",
        cfg.warnings
    );
    // A refresh interval without a JWKS is a warning.
    let cfg =
        with("hmac_secret = \"0123456789abcdef0123456789abcdef\"\njwks_refresh_interval = \"1m\"")
            .unwrap();
    assert_eq!(
        cfg.warnings,
        ["auth.jwks_refresh_interval is ignored without auth.jwks_url"]
    );
}

#[test]
fn jwks_url_credentials_are_never_shown() {
    let url = "https://herald:jwks-pass@auth.example/jwks";
    let cfg = load_toml(&format!(
        "[auth]\njwks_url = \"{url}\"\n[api]\nkey = \"k\"\n"
    ))
    .unwrap();
    let s = cfg.summary();
    assert!(
        s.contains("JWKS at https://herald:***@auth.example/jwks"),
        "{s}"
    );
    let debug = format!("{cfg:?}");
    assert!(
        !s.contains("jwks-pass") && !debug.contains("jwks-pass"),
        "{s}\n{debug}"
    );
    let problems = problems(load_toml(
        "[auth]\njwks_url = \"ftp://herald:jwks-pass@auth.example/jwks\"\n[api]\nkey = \"k\"\n",
    ));
    assert!(!problems[0].contains("jwks-pass"), "{problems:?}");
}

#[test]
fn a_previous_hmac_secret_rotates_with_the_hmac_secret() {
    const CURRENT: &str = "current-0123456789abcdef0123456789abcdef";
    const PREVIOUS: &str = "previous-0123456789abcdef0123456789abcdef";
    let cfg = load_toml(&format!(
        "[auth]\nhmac_secret = \"{CURRENT}\"\nprevious_hmac_secret = \"{PREVIOUS}\"\n[api]\nkey = \"k\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.token.key, TokenKey::Hmac(CURRENT.as_bytes().to_vec()));
    assert_eq!(
        cfg.token.previous_key,
        Some(TokenKey::Hmac(PREVIOUS.as_bytes().to_vec()))
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // Never printed.
    let s = cfg.summary();
    assert!(
        s.contains("previous key:     HMAC secret (HS256/HS384/HS512) <redacted> (rotating"),
        "{s}"
    );
    let debug = format!("{cfg:?}");
    for shown in [&s, &debug] {
        assert!(
            !shown.contains(PREVIOUS) && !shown.contains(CURRENT),
            "{shown}"
        );
    }
    let raw = super::raw::RawAuth {
        hmac_secret: Some(CURRENT.into()),
        previous_hmac_secret: Some(PREVIOUS.into()),
        ..Default::default()
    };
    let debug = format!("{raw:?}");
    assert!(
        !debug.contains(PREVIOUS) && !debug.contains(CURRENT),
        "{debug}"
    );

    // From the environment; a short one is a warning, as for hmac_secret.
    let cfg = Config::load(
        None,
        env(&[
            ("HERALD_AUTH__HMAC_SECRET", CURRENT),
            ("HERALD_AUTH__PREVIOUS_HMAC_SECRET", "short"),
            ("HERALD_API__KEY", "k"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        cfg.token.previous_key,
        Some(TokenKey::Hmac(b"short".to_vec()))
    );
    assert_eq!(
        cfg.warnings,
        ["auth.previous_hmac_secret is 5 bytes; use at least 32 random bytes"]
    );
}

#[test]
fn a_previous_hmac_secret_needs_the_hmac_secret() {
    let previous = format!("previous_hmac_secret = \"{}\"", "p".repeat(32));
    for other in [
        format!("rsa_public_key = \"\"\"{RSA_PUBLIC}\"\"\""),
        "jwks_url = \"https://auth.example/jwks\"".to_owned(),
    ] {
        assert_one_problem(
            load_toml(&format!(
                "[auth]\n{previous}\n{other}\n[api]\nkey = \"k\"\n"
            )),
            "auth.previous_hmac_secret",
            "only valid together with auth.hmac_secret",
        );
    }
    // Alone, it is no token key either.
    let found = problems(load_toml(&format!(
        "[auth]\n{previous}\n[api]\nkey = \"k\"\n"
    )));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("auth.previous_hmac_secret:"),
        "{found:?}"
    );
    assert!(found[1].contains("a token key"), "{found:?}");
    // Dev mode generates its own secret: a previous one is a configured key it refuses.
    let found = problems(Config::load(
        None,
        env(&[("HERALD_AUTH__PREVIOUS_HMAC_SECRET", &"p".repeat(32))]),
        &dev_flag(),
    ));
    assert!(found.iter().any(|p| p.starts_with("--dev:")), "{found:?}");
}

#[test]
fn the_admin_page_is_on_in_dev_mode_and_off_otherwise_unless_enabled() {
    let dev = Config::load(None, env(&[]), &dev_flag()).unwrap();
    assert!(dev.admin.enabled);
    assert_eq!(dev.admin.password, None);
    assert_eq!(dev.admin.session_ttl, Duration::from_secs(12 * 3600));
    let dev_off = Config::load(
        None,
        env(&[("HERALD_ADMIN__ENABLED", "false")]),
        &dev_flag(),
    );
    assert!(!dev_off.unwrap().admin.enabled);

    let production = load_toml(AUTH).unwrap();
    assert_eq!(production.admin, AdminConfig::disabled());
    assert!(production.summary().contains("page:             off"));

    let on = load_toml(&format!(
        "{AUTH}[admin]\nenabled = true\npassword = \"a-long-enough-password\"\nsession_ttl = \"30m\"\n"
    ))
    .unwrap();
    assert!(on.admin.enabled);
    assert_eq!(on.admin.password.as_deref(), Some("a-long-enough-password"));
    assert_eq!(on.admin.session_ttl, Duration::from_secs(1800));
    assert!(on.warnings.is_empty(), "{:?}", on.warnings);

    let from_env = load_str(
        "toml",
        AUTH,
        &[
            ("HERALD_ADMIN__ENABLED", "true"),
            ("HERALD_ADMIN__PASSWORD", "from-the-environment"),
        ],
    )
    .unwrap();
    assert!(from_env.admin.enabled);
    assert_eq!(
        from_env.admin.password.as_deref(),
        Some("from-the-environment")
    );
}

#[test]
fn the_admin_page_needs_a_password_outside_dev_mode_and_never_shows_it() {
    assert_one_problem(
        load_toml(&format!("{AUTH}[admin]\nenabled = true\n")),
        "admin.password",
        "is required when admin.enabled is true outside dev mode",
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[admin]\nenabled = true\npassword = \"short-pw\"\n"
        )),
        "admin.password",
        "too short (at least 12 characters",
    );
    assert_one_problem(
        load_toml(&format!(
            "{AUTH}[admin]\nenabled = true\npassword = \"   \"\n"
        )),
        "admin.password",
        "is empty",
    );
    for ttl in ["10s", "30d"] {
        assert_one_problem(
            load_toml(&format!(
                "{AUTH}[admin]\nenabled = true\npassword = \"a-long-enough-password\"\nsession_ttl = \"{ttl}\"\n"
            )),
            "admin.session_ttl",
            "out of range (1m to 7d)",
        );
    }
    assert_one_problem(
        load_toml(&format!("{AUTH}[admin]\npasword = \"x\"\n")),
        "admin.pasword",
        "did you mean `password`",
    );
    // A password in dev mode asks for a login there too.
    let dev = Config::load(
        None,
        env(&[("HERALD_ADMIN__PASSWORD", "a-long-enough-password")]),
        &dev_flag(),
    )
    .unwrap();
    assert!(dev.admin.enabled);
    assert!(dev.admin.password.is_some());

    let off = load_toml(&format!(
        "{AUTH}[admin]\npassword = \"a-long-enough-password\"\n"
    ))
    .unwrap();
    assert!(!off.admin.enabled);
    assert_eq!(
        off.warnings,
        ["admin.password is set but the admin page is off (admin.enabled)"]
    );

    let on = load_toml(&format!(
        "{AUTH}[admin]\nenabled = true\npassword = \"a-long-enough-password\"\n"
    ))
    .unwrap();
    let summary = on.summary();
    assert!(
        summary.contains("on at / (login: password <redacted>"),
        "{summary}"
    );
    for shown in [summary, format!("{on:?}")] {
        assert!(!shown.contains("a-long-enough-password"), "{shown}");
    }
}

#[test]
fn telemetry_is_off_by_default_and_its_endpoint_gets_the_traces_path() {
    let cfg = load_toml("").unwrap();
    assert_eq!(cfg.telemetry, TelemetryConfig::default());
    assert_eq!(cfg.telemetry.otlp_traces_url, None);
    assert_eq!(cfg.telemetry.service_name, "herald");
    assert_eq!(cfg.telemetry.sampling_ratio, 1.0);
    assert_eq!(cfg.telemetry.export_timeout, Duration::from_secs(10));
    assert!(cfg.summary().contains("traces:           off"));

    let cfg = load_toml(
        "[telemetry]\notlp_endpoint = \"http://collector:4318/\"\nservice_name = \"push\"\nsampling_ratio = 0.25\nexport_timeout = \"3s\"\n",
    )
    .unwrap();
    assert_eq!(
        cfg.telemetry.otlp_traces_url.as_deref(),
        Some("http://collector:4318/v1/traces")
    );
    assert_eq!(cfg.telemetry.service_name, "push");
    assert_eq!(cfg.telemetry.sampling_ratio, 0.25);
    assert_eq!(cfg.telemetry.export_timeout, Duration::from_secs(3));
    assert!(
        cfg.summary()
            .contains("OTLP to http://collector:4318/v1/traces")
    );

    // From the environment; a full traces URL is kept as it is.
    let cfg = load_str(
        "toml",
        "",
        &[
            (
                "HERALD_TELEMETRY__OTLP_ENDPOINT",
                "https://tempo.example/v1/traces",
            ),
            ("HERALD_TELEMETRY__SAMPLING_RATIO", "0.5"),
        ],
    )
    .unwrap();
    assert_eq!(
        cfg.telemetry.otlp_traces_url.as_deref(),
        Some("https://tempo.example/v1/traces")
    );
    assert_eq!(cfg.telemetry.sampling_ratio, 0.5);
}

#[test]
fn bad_telemetry() {
    assert_one_problem(
        load_toml("[telemetry]\notlp_endpoint = \"collector:4318\"\n"),
        "telemetry.otlp_endpoint",
        "is not an http:// or https:// URL",
    );
    assert_one_problem(
        load_toml("[telemetry]\nsampling_ratio = 1.5\n"),
        "telemetry.sampling_ratio",
        "out of range (0.0 to 1.0)",
    );
    assert_one_problem(
        load_toml("[telemetry]\nexport_timeout = \"0s\"\n"),
        "telemetry.export_timeout",
        "out of range",
    );
    assert_one_problem(
        load_toml("[telemetry]\nservice_name = \" \"\n"),
        "telemetry.service_name",
        "must not be empty",
    );
    assert_one_problem(
        load_toml("[telemetry]\notlp_endpont = \"http://c:4318\"\n"),
        "telemetry.otlp_endpont",
        "unknown key (did you mean `otlp_endpoint`?)",
    );
}
