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
