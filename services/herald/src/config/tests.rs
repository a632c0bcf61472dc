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
kind = "memory"               # "redis" comes with the next issue
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

/// Loads `contents` as a file with extension `ext`, with the given environment.
fn load_str(ext: &str, contents: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = TempFile::new(ext, contents);
    Config::load(Some(&file.0), env(vars), &Overrides::default())
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
            },
        }]
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn defaults_without_file_or_env_run_in_dev_mode() {
    let cfg = Config::load(None, env(&[]), &Overrides::default()).unwrap();
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
    let again = Config::load(None, env(&[]), &Overrides::default()).unwrap();
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
    assert_eq!(cfg.token.audience.as_deref(), Some("herald"));
    assert_eq!(cfg.token.issuer.as_deref(), Some("https://auth.example"));
    let all = ChannelOptions {
        allow_subscribe_for_client: true,
        allow_publish_for_subscriber: true,
        allow_publish_for_client: true,
        allow_user_limited_channels: true,
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
        ..Overrides::default()
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
        &Overrides::default(),
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
        load_toml(&format!("{AUTH}[broker]\nkind = \"redis\"\n")),
        "broker.kind",
        "\"redis\" is not supported yet (supported: memory)",
    );
    assert_one_problem(
        load_str("toml", AUTH, &[("HERALD_BROKER__KIND", "kafka")]),
        "broker.kind",
        "\"kafka\"",
    );
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
        "a token key (hmac_secret, rsa_public_key or ecdsa_public_key) is required when api.key is set",
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
        "is required when auth is configured (or remove both to run in dev mode)",
    );
    // Empty values count as unset.
    assert!(
        load_toml("[auth]\nhmac_secret = \"\"\n[api]\nkey = \"\"\n")
            .unwrap()
            .dev
            .is_some()
    );
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
        "broker.kind:",
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

    let dev = Config::load(None, env(&[]), &Overrides::default()).unwrap();
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
