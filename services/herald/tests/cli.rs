//! The `herald` binary as a user runs it: configuration errors, token subcommands, and a real
//! process that starts, serves and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_engine::auth::TokenVerifier;
use herald_engine::config::{TokenConfig, TokenKey};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("herald-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A command with no HERALD_* variables inherited from the developer's shell.
fn herald() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HERALD_LOG", "warn");
    cmd
}

#[test]
fn check_config_names_every_bad_key() {
    let path = temp_config(
        "bad.toml",
        "[server]\nlisten = \"not-an-address\"\n[broker]\nkind = \"carrier-pigeon\"\n[auth]\nhmac_secret = \"0123456789abcdef0123456789abcdef\"\n[api]\nkey = \"k\"\n",
    );
    let out = herald()
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("broker.kind"), "{stderr}");
}

#[test]
fn gentoken_signs_with_the_configured_secret() {
    let secret = "cli-test-secret-0123456789abcdef0123";
    let out = herald()
        .env("HERALD_AUTH__HMAC_SECRET", secret)
        .env("HERALD_API__KEY", "k")
        .args([
            "gentoken",
            "--user",
            "alice",
            "--ttl",
            "10m",
            "--channels",
            "news,alerts",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let verifier = TokenVerifier::new(&TokenConfig {
        key: TokenKey::Hmac(secret.as_bytes().to_vec()),
        previous_key: None,
        audience: None,
        issuer: None,
    })
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = verifier.verify_connect(token.trim(), now).unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.channels, vec!["news", "alerts"]);
    let exp = claims.exp.unwrap();
    assert!(exp > now + 590 && exp <= now + 600);
}

#[test]
fn gentoken_without_keys_refuses_instead_of_printing_a_useless_token() {
    let out = herald().args(["gentoken", "--user", "a"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hmac_secret"));
}

#[test]
fn gentoken_for_a_jwks_node_signs_with_a_private_key_and_names_its_kid() {
    let jwks_node = || {
        let mut cmd = herald();
        cmd.env("HERALD_AUTH__JWKS_URL", "https://auth.example/jwks.json")
            .env("HERALD_API__KEY", "k");
        cmd
    };
    // No private key: refused, saying what to pass.
    let out = jwks_node()
        .args(["gentoken", "--user", "a"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWKS") && stderr.contains("--private-key"),
        "{stderr}"
    );

    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa_private.pem"
    );
    let out = jwks_node()
        .args([
            "gentoken",
            "--user",
            "alice",
            "--private-key",
            key,
            "--kid",
            "rsa-7",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let header = token.trim().split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "rsa-7");
    assert_eq!(header["alg"], "RS256");
    let verifier = TokenVerifier::new(&TokenConfig {
        key: TokenKey::RsaPem(include_bytes!("fixtures/rsa_public.pem").to_vec()),
        previous_key: None,
        audience: None,
        issuer: None,
    })
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        verifier.verify_connect(token.trim(), now).unwrap().sub,
        "alice"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs `cmd` (a node on 127.0.0.1:`port`) until `/ready` answers, stops it with SIGTERM and
/// returns what it logged; fails if it does not start, or does not stop cleanly within 10 s.
fn serve_then_stop(mut cmd: Command, port: u16) -> String {
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Some(r) = http_get(port, "/ready") {
            break r;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("node exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("node did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let log: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .chain(BufReader::new(child.stdout.take().unwrap()).lines())
        .map_while(Result::ok)
        .collect();
    log.join("\n")
}

#[test]
fn bare_herald_is_a_dev_node_that_serves_and_stops_on_sigterm() {
    let port = free_port();
    let mut cmd = herald();
    cmd.env("HERALD_LOG", "info")
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let log = serve_then_stop(cmd, port);
    assert!(log.contains("DEV MODE"), "{log}");
    assert!(
        log.contains("X-API-Key"),
        "the banner shows a publish command: {log}"
    );
    assert!(
        log.contains("/connection/http_stream") && log.contains("/emulation"),
        "the banner shows the fallbacks: {log}"
    );
}

#[test]
fn run_without_keys_refuses_to_start_and_names_them() {
    let out = herald()
        .args(["run", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for named in ["auth.hmac_secret", "api.key", "--dev"] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

#[test]
fn dev_mode_refuses_a_public_address() {
    // The container image's listen address.
    let out = herald()
        .env("HERALD_SERVER__LISTEN", "0.0.0.0:8000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--dev") && stderr.contains("0.0.0.0:8000") && stderr.contains("loopback"),
        "{stderr}"
    );
}

#[test]
fn a_configured_node_logs_no_secret() {
    let secret = "log-test-secret-0123456789abcdef0123";
    let api_key = "log-test-api-key-7f3a";
    let port = free_port();
    let mut cmd = herald();
    cmd.env("HERALD_LOG", "debug")
        .env("HERALD_AUTH__HMAC_SECRET", secret)
        .env("HERALD_API__KEY", api_key)
        .args(["run", "--listen", &format!("127.0.0.1:{port}")]);
    let log = serve_then_stop(cmd, port);
    assert!(log.contains("herald node listening"), "{log}");
    assert!(!log.contains("DEV MODE"), "{log}");
    assert!(
        !log.contains(secret) && !log.contains(api_key),
        "a secret in the log: {log}"
    );
}

/// Output of a finished command; panics with its stderr if it could not run.
fn run_herald(cmd: &mut Command) -> std::process::Output {
    cmd.output().expect("run herald")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn version_prints_the_commit_and_build_without_any_configuration() {
    // Works with no keys and even with a configuration that would not load.
    let broken = temp_config("version-broken.toml", "[nope]\n");
    let out = run_herald(herald().env("HERALD_CONFIG", &broken).arg("version"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!herald::build_info::COMMIT.is_empty());
    assert_eq!(
        text.lines().next(),
        Some(
            format!(
                "herald {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                herald::build_info::COMMIT
            )
            .as_str()
        ),
        "{text}"
    );
    assert!(
        text.contains("target:") && text.contains("rustc:"),
        "{text}"
    );

    let out = run_herald(herald().args(["version", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["commit"], herald::build_info::COMMIT);
    assert!(json["target"].as_str().is_some_and(|t| !t.is_empty()));

    // clap's flag still answers.
    let out = run_herald(herald().arg("--version"));
    assert_eq!(
        stdout(&out).trim(),
        format!("herald {}", env!("CARGO_PKG_VERSION"))
    );
}

const CHECK_SECRET: &str = "checktoken-cli-secret-0123456789abcdef";

/// `herald` with an HMAC-configured node's environment.
fn hmac_node(secret: &str) -> Command {
    let mut cmd = herald();
    cmd.env("HERALD_AUTH__HMAC_SECRET", secret)
        .env("HERALD_API__KEY", "k");
    cmd
}

fn token_from(cmd: &mut Command) -> String {
    let out = run_herald(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn checktoken_accepts_the_tokens_of_gentoken_and_subtoken_and_shows_their_claims() {
    let connect = token_from(hmac_node(CHECK_SECRET).args([
        "gentoken",
        "--user",
        "alice",
        "--ttl",
        "10m",
        "--channels",
        "news,alerts",
        "--info",
        r#"{"name":"Ann"}"#,
    ]));
    let out = run_herald(hmac_node(CHECK_SECRET).args(["checktoken", &connect]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("valid connection token\n"), "{text}");
    assert!(text.contains("sub:       alice\n"), "{text}");
    assert!(text.contains("channels:  news, alerts\n"), "{text}");
    assert!(text.contains(r#"info:      {"name":"Ann"}"#), "{text}");
    assert!(
        text.contains("(in 9m") || text.contains("(in 10m"),
        "{text}"
    );

    // A subscription token, read from stdin (`-`), through the alias.
    let sub = token_from(hmac_node(CHECK_SECRET).args([
        "gensubtoken",
        "--user",
        "alice",
        "--channel",
        "$vip",
    ]));
    let mut child = hmac_node(CHECK_SECRET)
        .args(["checksubtoken", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), sub.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("valid subscription token\n"), "{text}");
    assert!(text.contains("channel:   $vip\n"), "{text}");
}

#[test]
fn checktoken_refuses_expired_wrong_key_and_garbage_tokens_with_their_exit_codes() {
    // --ttl 0s: `exp` is now, and a token is expired at its `exp`.
    let expired =
        token_from(hmac_node(CHECK_SECRET).args(["gentoken", "--user", "bob", "--ttl", "0s"]));
    let out = run_herald(hmac_node(CHECK_SECRET).args(["checktoken", &expired]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("token rejected: token expired"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("expired connection token\nsub:       bob\n"));

    let other_key = token_from(
        hmac_node("another-secret-0123456789abcdef-0123").args(["gentoken", "--user", "bob"]),
    );
    let out = run_herald(hmac_node(CHECK_SECRET).args(["checktoken", &other_key]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("token rejected: invalid token"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    for garbage in ["not-a-token", "a.b.c", " "] {
        let out = run_herald(hmac_node(CHECK_SECRET).args(["checktoken", garbage]));
        assert_eq!(out.status.code(), Some(3), "{garbage:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("token rejected: "),
            "{}",
            stderr(&out)
        );
    }

    // Not a token problem: no key to check with is an ordinary error (1).
    let out = run_herald(herald().args(["checktoken", &expired]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A path under the temp dir that does not exist yet.
fn temp_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("herald-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn check_config(path: &std::path::Path) -> String {
    let out = run_herald(herald().args(["--config", path.to_str().unwrap(), "checkconfig"]));
    assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
    stdout(&out)
}

#[test]
fn genconfig_writes_a_config_that_checks_and_starts_a_node() {
    let out = run_herald(herald().arg("genconfig"));
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = stdout(&out);
    assert!(toml.contains("[client]") && toml.contains("# "), "{toml}");
    let path = temp_path("gen.toml");
    std::fs::write(&path, &toml).unwrap();
    let summary = check_config(&path);
    assert!(summary.starts_with("configuration is valid"), "{summary}");

    // A production node: not dev mode, and the generated secrets work with the other tools.
    let token = token_from(herald().args([
        "--config",
        path.to_str().unwrap(),
        "gentoken",
        "--user",
        "u",
    ]));
    let out = run_herald(herald().args(["--config", path.to_str().unwrap(), "checktoken", &token]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let port = free_port();
    let mut cmd = herald();
    cmd.env("HERALD_LOG", "info").args([
        "--config",
        path.to_str().unwrap(),
        "run",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let log = serve_then_stop(cmd, port);
    assert!(log.contains("herald node listening"), "{log}");
    assert!(!log.contains("DEV MODE") && !log.contains("WARN"), "{log}");

    // YAML and JSON: the same configuration.
    for format in ["yaml", "json"] {
        let file = temp_path(&format!("gen.{format}"));
        let out = run_herald(herald().args([
            "genconfig",
            "--output",
            file.to_str().unwrap(),
            "--format",
            format,
        ]));
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        assert_eq!(check_config(&file), summary, "{format}");
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn genconfig_keeps_an_existing_file_unless_forced() {
    let path = temp_path("force.toml");
    let secret_line = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("hmac_secret = "))
            .unwrap()
            .to_owned()
    };
    let gen_config = |extra: &[&str]| {
        run_herald(
            herald()
                .args(["genconfig", "-o", path.to_str().unwrap()])
                .args(extra),
        )
    };
    let out = gen_config(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "writes the file, not stdout");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secrets readable by others: {mode:o}");
    }
    let first = secret_line(&path);

    let out = gen_config(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exists") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(secret_line(&path), first, "the file was changed");

    let out = gen_config(&["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(secret_line(&path), first, "fresh secrets");
    check_config(&path);

    // A format that --config would not read back from that name.
    let out = gen_config(&["--force", "--format", "json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--format json"), "{}", stderr(&out));
    let _ = std::fs::remove_file(path);
}

#[test]
fn check_config_keeps_its_name_and_answers_to_checkconfig() {
    for name in ["check-config", "checkconfig"] {
        let out = run_herald(hmac_node(CHECK_SECRET).arg(name));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("configuration is valid"), "{name}");
    }
}

/// `subtoken --private-key` (and its alias) signs subscription tokens that a node configured
/// with the matching public key accepts on a private channel.
#[tokio::test]
async fn subtoken_signs_with_rsa_and_ecdsa_private_keys_for_a_node_with_the_public_key() {
    use herald::testing::WsClient;
    use herald_engine::auth::{NewConnectToken, TokenSigner};
    use serde_json::json;

    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (
            "rsa_private.pem",
            TokenKey::RsaPem(include_bytes!("fixtures/rsa_public.pem").to_vec()),
            "HERALD_AUTH__RSA_PUBLIC_KEY",
            include_str!("fixtures/rsa_public.pem"),
            "RS256",
        ),
        (
            "ecdsa_private.pem",
            TokenKey::EcdsaPem(include_bytes!("fixtures/ecdsa_public.pem").to_vec()),
            "HERALD_AUTH__ECDSA_PUBLIC_KEY",
            include_str!("fixtures/ecdsa_public.pem"),
            "ES256",
        ),
    ];
    for (private, public, env_name, public_pem, alg) in cases {
        let node_env = || {
            let mut cmd = herald();
            cmd.env(env_name, public_pem).env("HERALD_API__KEY", "k");
            cmd
        };
        let sub_token = token_from(node_env().args([
            "gensubtoken",
            "--user",
            "alice",
            "--channel",
            "$vip",
            "--private-key",
            &fixture(private),
            "--kid",
            "k-1",
        ]));
        let header = sub_token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (header["alg"].as_str(), header["kid"].as_str()),
            (Some(alg), Some("k-1"))
        );

        // The binary's own check, with the node's configuration.
        let out = run_herald(node_env().args(["checktoken", &sub_token]));
        assert_eq!(out.status.code(), Some(0), "{alg}: {}", stderr(&out));

        // A node with the public key admits the subscription.
        let mut config = herald::config::Config::for_test();
        config.token.key = public;
        let node = herald::RunningNode::start(config).unwrap();
        let pem = std::fs::read(fixture(private)).unwrap();
        let connect = TokenSigner::from_pem(&pem)
            .unwrap()
            .sign(&NewConnectToken {
                sub: "alice".into(),
                ..Default::default()
            })
            .unwrap();
        let mut client = WsClient::connect(&node.ws_url()).await;
        client.handshake(&connect).await;
        client
            .send_json(&[json!({"id": 2, "subscribe": {"channel": "$vip", "token": sub_token}})])
            .await;
        let reply = client.reply(2).await;
        assert!(reply.error.is_none(), "{alg}: {reply:?}");
        assert!(reply.subscribe.is_some(), "{alg}: {reply:?}");
        node.stop().unwrap();
    }
}

/// With `auth.jwks_url`, checktoken fetches the key set and verifies by `kid`, as a node does.
#[tokio::test]
async fn checktoken_fetches_the_jwks_of_a_jwks_configured_node() {
    use herald_engine::testing::jwks::JwksServer;
    // The public half of tests/fixtures/rsa_private.pem (see tests/jwks.rs for its derivation).
    const RSA_N: &str = "0XT_vSb9nDU7Whnwit6mM7Qo8Hf-B2hiYPdhvYWqCzXlor8-9xW8_FvUizsaGBwt5rPWnDQxElTU4FVdn3-0P211KT12zb-QH-g6naBKp-11w_LELq_7tqsiiP29Cbur7ReOd4PWnmIq2SJ8H3Y3jcYwl6UaYBBYpnr8-jKjjEzVif8W_jiROEAhZBj2GiLRWpYrogTHAne4Znu4AWd5xOkRvH82EUm6OI0woZNqb-vWqLFvlqu2cqX-iQAmAhzZPoXUvuo-brCN7VN2dYdP65vQn8kHgvokIV9nFE5sEau-NKQmHSOYBHUJrAimlPdgrtbivhw1srszH0ENU2K09w";
    let jwks = JwksServer::start(serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": RSA_N, "e": "AQAB"}
    ]}))
    .await;
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa_private.pem"
    );
    let jwks_node = || {
        let mut cmd = herald();
        cmd.env("HERALD_AUTH__JWKS_URL", jwks.url())
            .env("HERALD_API__KEY", "k");
        tokio::process::Command::from(cmd)
    };
    // The JWKS server runs on this test's runtime: the commands are awaited, not blocked on.
    let sign = |kid: &'static str| {
        let mut cmd = jwks_node();
        cmd.args([
            "gentoken",
            "--user",
            "alice",
            "--private-key",
            key,
            "--kid",
            kid,
        ]);
        async move {
            let out = cmd.output().await.unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out).trim().to_owned()
        }
    };
    let good = sign("rsa-1").await;
    let out = jwks_node()
        .args(["checktoken", &good])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sub:       alice"),
        "{}",
        stdout(&out)
    );

    let unknown_kid = sign("rsa-9").await;
    let out = jwks_node()
        .args(["checktoken", &unknown_kid])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown key"), "{}", stderr(&out));
}
