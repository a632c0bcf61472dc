//! The admin page (`[admin]`): served on the operator listener only when enabled, behind a
//! password login whose cookie the page's endpoints require, never holding the server API key;
//! its centrifuge-js client subscribes and its publish box publishes. The last test drives two
//! pages in headless Chromium (Debian's `chromium` and playwright-core from
//! tests/browser, both installed by `bash .ci/install-test-deps`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use herald::RunningNode;
use herald::config::{AdminConfig, Config, Overrides};
use herald::testing::{Api, WsClient};
use herald_engine::config::TokenKey;
use serde_json::{Value, json};

const PASSWORD: &str = "admin-test-password-0123";
const API_KEY: &str = "admin-test-api-key-that-must-not-leak";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test node with the page on (with a password) on an internal listener of its own.
fn admin_node(mut config: Config) -> RunningNode {
    config.api.key = API_KEY.to_owned();
    config.admin = AdminConfig {
        enabled: true,
        password: Some(PASSWORD.to_owned()),
        ..AdminConfig::disabled()
    };
    config.server.internal_listen = Some("127.0.0.1:0".parse().expect("addr"));
    RunningNode::start(config).expect("start node")
}

fn operator(node: &RunningNode) -> Api {
    Api::new(node.internal_addr.expect("internal listener"), "")
}

/// Logs in; returns the `Cookie` header value and the `Set-Cookie` header as sent.
async fn login(api: &Api) -> (String, String) {
    let body = json!({ "password": PASSWORD }).to_string();
    let (status, head, reply) = api
        .request_with_head("POST", "/admin/login", &[], &body)
        .await;
    assert_eq!(status, 204, "login: {reply}");
    let set_cookie = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_owned())
        })
        .expect("Set-Cookie");
    let pair = set_cookie.split(';').next().unwrap_or_default().to_owned();
    (pair, set_cookie)
}

async fn get_json(api: &Api, path: &str, cookie: &str) -> Value {
    let (status, body) = api.request("GET", path, &[("Cookie", cookie)], "").await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

async fn post_json(api: &Api, path: &str, cookie: &str, body: Value) -> (u16, Value) {
    let (status, body) = api
        .request("POST", path, &[("Cookie", cookie)], &body.to_string())
        .await;
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn the_page_is_off_by_default_outside_dev_mode() {
    let node = RunningNode::start(Config::for_test()).expect("start node");
    let api = Api::new(node.addr, "");
    for path in [
        "/",
        "/admin/centrifuge.js",
        "/admin/admin.js",
        "/admin/api/info",
    ] {
        assert_eq!(api.request("GET", path, &[], "").await.0, 404, "{path}");
    }
    let login = json!({ "password": PASSWORD }).to_string();
    assert_eq!(
        api.request("POST", "/admin/login", &[], &login).await.0,
        404
    );
}

#[tokio::test]
async fn in_dev_mode_the_page_is_on_without_a_login() {
    let env = HashMap::from([("HERALD_SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned())]);
    let overrides = Overrides {
        dev: true,
        ..Overrides::default()
    };
    let config = Config::load(None, Some(env), &overrides).expect("dev config");
    assert!(config.admin.enabled && config.admin.password.is_none());
    let node = RunningNode::start(config).expect("start node");
    let api = Api::new(node.addr, "");
    let (status, page) = api.request("GET", "/", &[], "").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Herald admin</title>"), "{page}");
    let info = get_json(&api, "/admin/api/info", "").await;
    assert_eq!(info["login"], false);
    assert_eq!(info["can_subscribe"], true);
    assert_eq!(info["info"]["nodes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_password_login_guards_every_endpoint_and_the_api_key_never_reaches_the_page() {
    let node = admin_node(Config::for_test());
    let public = Api::new(node.addr, "");
    let api = operator(&node);

    // The page is on the operator listener only.
    assert_eq!(public.request("GET", "/", &[], "").await.0, 404);
    assert_eq!(
        public.request("GET", "/admin/api/info", &[], "").await.0,
        404
    );

    let (status, head, page) = api.request_with_head("GET", "/", &[], "").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Herald admin</title>"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );

    // Without the cookie: 401 everywhere but the page's static files and the login.
    let guarded = [
        ("GET", "/admin/api/info", ""),
        (
            "POST",
            "/admin/api/publish",
            r#"{"channel":"news","data":{}}"#,
        ),
        ("POST", "/admin/api/connection_token", "{}"),
        (
            "POST",
            "/admin/api/subscription_token",
            r#"{"channel":"news"}"#,
        ),
        (
            "POST",
            "/admin/connection/http_stream",
            r#"{"id":1,"connect":{}}"#,
        ),
        ("POST", "/admin/emulation", "{}"),
    ];
    for (verb, path, body) in guarded {
        let (status, reply) = api.request(verb, path, &[], body).await;
        assert_eq!(status, 401, "{verb} {path}: {reply}");
    }

    // A wrong password, or a body that is not the login's JSON, gets no cookie.
    let wrong = json!({ "password": "not-the-password-000" }).to_string();
    let (status, head, reply) = api
        .request_with_head("POST", "/admin/login", &[], &wrong)
        .await;
    assert_eq!(status, 401, "{reply}");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    assert_eq!(
        api.request("POST", "/admin/login", &[], "password").await.0,
        400
    );

    let (cookie, set_cookie) = login(&api).await;
    assert!(cookie.starts_with("herald_admin="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    let info = get_json(&api, "/admin/api/info", &cookie).await;
    assert_eq!(info["login"], true);
    assert_eq!(info["can_subscribe"], true);
    assert_eq!(info["info"]["nodes"][0]["name"], "herald-test");
    assert_eq!(info["node_uid"], info["info"]["nodes"][0]["uid"]);

    // Another site's page is refused even with the cookie; a forged cookie is no login.
    let (status, _) = api
        .request(
            "GET",
            "/admin/api/info",
            &[("Cookie", &cookie), ("Origin", "https://evil.example")],
            "",
        )
        .await;
    assert_eq!(status, 403);
    let flipped = if cookie.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &cookie[..cookie.len() - 1]);
    assert_eq!(
        api.request("GET", "/admin/api/info", &[("Cookie", &forged)], "")
            .await
            .0,
        401
    );

    // Nothing the page loads or is answered carries the API key.
    let mut seen = page.clone();
    for path in [
        "/admin/admin.js",
        "/admin/admin.css",
        "/admin/centrifuge.js",
    ] {
        let (status, body) = api.request("GET", path, &[], "").await;
        assert_eq!(status, 200, "{path}");
        seen.push_str(&body);
    }
    seen.push_str(&info.to_string());
    let (_, token) = post_json(&api, "/admin/api/connection_token", &cookie, json!({})).await;
    seen.push_str(&token.to_string());
    assert!(!seen.contains(API_KEY), "the API key reached the page");

    // Logging out clears the cookie.
    let (status, head, _) = api
        .request_with_head("POST", "/admin/logout", &[("Cookie", &cookie)], "{}")
        .await;
    assert_eq!(status, 204);
    assert!(head.contains("herald_admin=; Path=/; Max-Age=0"), "{head}");
}

#[tokio::test]
async fn the_pages_tokens_subscribe_anywhere_and_its_publish_box_publishes() {
    let node = admin_node(Config::for_test());
    let api = operator(&node);
    let (cookie, _) = login(&api).await;

    let (status, token) = post_json(&api, "/admin/api/connection_token", &cookie, json!({})).await;
    assert_eq!(status, 200, "{token}");
    // "news" has no namespace: clients may not subscribe to it without a subscription token.
    let (status, sub_token) = post_json(
        &api,
        "/admin/api/subscription_token",
        &cookie,
        json!({"channel": "news"}),
    )
    .await;
    assert_eq!(status, 200, "{sub_token}");
    let (status, refused) = post_json(
        &api,
        "/admin/api/subscription_token",
        &cookie,
        json!({"channel": ""}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");

    let mut client = WsClient::connect(&node.ws_url()).await;
    client
        .handshake(token["token"].as_str().expect("token"))
        .await;
    client
        .send_json(&[
            json!({"id": 2, "subscribe": {"channel": "news", "token": sub_token["token"]}}),
        ])
        .await;
    let reply = client.reply(2).await;
    assert!(reply.error.is_none(), "subscribe: {reply:?}");

    let (status, published) = post_json(
        &api,
        "/admin/api/publish",
        &cookie,
        json!({"channel": "news", "data": {"text": "from the admin page"}}),
    )
    .await;
    assert_eq!((status, &published), (200, &json!({"result": {}})));
    let (channel, publication) = client.publication().await;
    assert_eq!(channel, "news");
    assert_eq!(
        serde_json::from_slice::<Value>(&publication.data).expect("json data"),
        json!({"text": "from the admin page"})
    );

    // A publish the node refuses is the API's error, with 400.
    let (status, refused) = post_json(
        &api,
        "/admin/api/publish",
        &cookie,
        json!({"channel": "", "data": {}}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["code"].is_number(), "{refused}");
}

#[tokio::test]
async fn with_a_public_key_the_page_cannot_subscribe_but_can_publish() {
    let mut config = Config::for_test();
    config.token.key = TokenKey::RsaPem(include_bytes!("fixtures/rsa_public.pem").to_vec());
    let node = admin_node(config);
    let api = operator(&node);
    let (cookie, _) = login(&api).await;
    let info = get_json(&api, "/admin/api/info", &cookie).await;
    assert_eq!(info["can_subscribe"], false);
    for (path, body) in [
        ("/admin/api/connection_token", json!({})),
        ("/admin/api/subscription_token", json!({"channel": "news"})),
    ] {
        let (status, reply) = post_json(&api, path, &cookie, body).await;
        assert_eq!(status, 409, "{path}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("subscribing is unavailable")),
            "{reply}"
        );
    }
    let (status, published) = post_json(
        &api,
        "/admin/api/publish",
        &cookie,
        json!({"channel": "news", "data": {}}),
    )
    .await;
    assert_eq!(status, 200, "{published}");
}

#[tokio::test]
async fn the_bundled_centrifuge_js_is_the_version_the_sdk_tests_pin() {
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("tests/sdk/js/package-lock.json"))
            .expect("read package-lock.json"),
    )
    .expect("package-lock.json");
    let version = lock["packages"]["node_modules/centrifuge"]["version"]
        .as_str()
        .expect("centrifuge in package-lock.json");
    let node = admin_node(Config::for_test());
    let (status, head, body) = operator(&node)
        .request_with_head("GET", "/admin/centrifuge.js", &[], "")
        .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with(&format!("/*!\n * centrifuge {version} ")),
        "the bundle is not centrifuge {version}: {}",
        &body[..80.min(body.len())]
    );
    assert!(body.contains("The MIT License (MIT)"));
    assert!(body.contains("globalThis.Centrifuge="));
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("cache-control: public, max-age=86400"),
        "{head}"
    );
    assert!(head.contains("content-type: text/javascript"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_in_chromium_see_a_message_published_through_one_of_them() {
    let Some((chromium, dir)) = herald::testing::browser::tools() else {
        return;
    };
    let node = admin_node(Config::for_test());
    let url = format!("http://{}", node.internal_addr.expect("internal listener"));
    // HERALD_ADMIN_SCREENSHOT=docs/admin.png renews the screenshot in the docs.
    let screenshot = match std::env::var_os("HERALD_ADMIN_SCREENSHOT") {
        Some(path) => PathBuf::from(path),
        None => std::env::temp_dir().join(format!("herald-admin-{}.png", std::process::id())),
    };
    let node_bin = std::env::var("HERALD_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    let run = tokio::process::Command::new(node_bin)
        .current_dir(&dir)
        .env("CHROMIUM", &chromium)
        .arg("admin_page.mjs")
        .args(["--url", &url, "--password", PASSWORD])
        .args(["--wrong-password", "not-the-password-000"])
        .args(["--node-name", "herald-test", "--channel", "chat:admin"])
        .args(["--api-key", API_KEY])
        .arg("--screenshot")
        .arg(&screenshot)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser script did not finish within 120 s")
        .expect("run node (Node 20+)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("admin page ok"),
        "browser script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("HERALD_ADMIN_SCREENSHOT").is_none() {
        let _ = std::fs::remove_file(&screenshot);
    }
}
