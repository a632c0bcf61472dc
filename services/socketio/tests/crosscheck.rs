//! Cross-check against the reference implementation: engine.io-parser 5 (Engine.IO v4) and
//! socket.io-parser 4 (Socket.IO v5), pinned in tests/js/package.json and installed by
//! `.ci/install-test-deps`. For every case, the reference encoder must produce exactly the text
//! ours produces (and ours must decode it back to the same packet), and the reference decoder
//! must read our text as the packet we meant. Malformed Socket.IO packets must be refused by
//! both. Outside CI a missing `node_modules` skips the test with a message; under CI it fails.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use bytes::Bytes;
use herald_socketio::engineio::{Handshake, PROBE, Packet as Eio};
use herald_socketio::payload;
use herald_socketio::socketio::{Packet as Sio, PacketType};
use serde_json::{Value, json};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// True when node and the pinned parsers are there; under CI their absence is a failure.
fn reference_available() -> bool {
    let dir = js_dir();
    let installed = dir.join("node_modules/engine.io-parser").is_dir()
        && dir.join("node_modules/socket.io-parser").is_dir();
    let node = Command::new("node").arg("--version").output().is_ok();
    if installed && node {
        return true;
    }
    let why = format!(
        "the reference parsers are missing (node found: {node}, node_modules in {}: {installed}); \
         run: bash .ci/install-test-deps",
        dir.display()
    );
    assert!(!in_ci(), "{why}");
    eprintln!("skipping the cross-check: {why}");
    false
}

fn run_reference(cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg("crosscheck.mjs")
        .current_dir(js_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().expect("node ran");
    assert!(
        out.status.success(),
        "crosscheck.mjs failed: {}",
        out.status
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("answers are JSON");
    assert_eq!(answers.len(), cases.len());
    answers
}

fn eio_describe(packet: &Eio) -> Value {
    let with = |ty: &str, data: &Option<String>| match data {
        Some(d) => json!({"type": ty, "data": d}),
        None => json!({"type": ty}),
    };
    match packet {
        Eio::Open(h) => json!({"type": "open", "data": serde_json::to_string(h).unwrap()}),
        Eio::Close => json!({"type": "close"}),
        Eio::Ping(d) => with("ping", d),
        Eio::Pong(d) => with("pong", d),
        // The reference writes no data for an empty message, and reads none back.
        Eio::Message(text) if text.is_empty() => json!({"type": "message"}),
        Eio::Message(text) => json!({"type": "message", "data": text}),
        Eio::Binary(data) => json!({
            "type": "message",
            "binary": base64::engine::general_purpose::STANDARD.encode(data)
        }),
        Eio::Upgrade => json!({"type": "upgrade"}),
        Eio::Noop => json!({"type": "noop"}),
    }
}

fn sio_describe(packet: &Sio) -> Value {
    let mut d = json!({"type": packet.kind as u8, "nsp": packet.nsp});
    if let Some(id) = packet.id {
        d["id"] = json!(id);
    }
    if let Some(data) = &packet.data {
        d["data"] = data.clone();
    }
    if let Some(n) = packet.attachments {
        d["attachments"] = json!(n);
    }
    d
}

fn eio_packets() -> Vec<Eio> {
    vec![
        Eio::Open(Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        }),
        Eio::Close,
        Eio::Ping(None),
        Eio::Pong(None),
        Eio::Ping(Some(PROBE.into())),
        Eio::Pong(Some(PROBE.into())),
        Eio::message("hello"),
        Eio::message(""),
        Eio::message("€ ünïcødé 🚀\n"),
        Eio::message(r#"2["publication",{"channel":"news","data":{"n":1}}]"#),
        Eio::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        Eio::Binary(Bytes::from_static(&[0xff, 0, 0x1e])),
        Eio::Binary(Bytes::new()),
        Eio::Upgrade,
        Eio::Noop,
    ]
}

fn payloads() -> Vec<Vec<Eio>> {
    vec![
        vec![Eio::message("hello"), Eio::message("€")],
        vec![
            Eio::message("hello"),
            Eio::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        ],
        vec![Eio::message(r#"2["hello"]"#), Eio::message(r#"2["world"]"#)],
        vec![Eio::Noop],
        vec![Eio::Pong(None), Eio::message("40"), Eio::Close],
    ]
}

fn sio_packets() -> Vec<Sio> {
    let obj = |v: Value| v.as_object().cloned();
    let placeholder = json!({"_placeholder": true, "num": 0});
    let binary = |kind, nsp: &str, id, data| Sio {
        kind,
        nsp: nsp.into(),
        id,
        attachments: Some(1),
        data: Some(data),
    };
    vec![
        Sio::connect("/", None),
        Sio::connect("/", obj(json!({"token": "eyJhbGciOi.x.y"}))),
        Sio::connect("/admin", obj(json!({"token": "123"}))),
        Sio::connect(
            "/",
            obj(json!({"sid": "wZX3oN0bSVIhsaknAAAI", "pid": "p1"})),
        ),
        Sio::disconnect("/"),
        Sio::disconnect("/admin"),
        Sio::event("/", "hello", vec![json!(1)], None),
        Sio::event("/admin", "project:delete", vec![json!(123)], Some(456)),
        Sio::event(
            "/",
            "publish",
            vec![
                json!("news"),
                json!({"text": "€ 🚀 \"q\" \\ \n\t\u{1}", "n": [1, -2, null, true]}),
            ],
            Some(9_007_199_254_740_991),
        ),
        Sio::event(
            "/",
            "publication",
            vec![json!({"channel": "news", "data": {"a": 1}, "offset": 42})],
            None,
        ),
        Sio::ack("/", 0, vec![json!({"ok": true})]),
        Sio::ack("/admin", 456, vec![]),
        Sio::ack(
            "/",
            7,
            vec![json!({"error": {"code": 103, "message": "permission denied"}})],
        ),
        Sio::connect_error("/", "Not authorized", None),
        Sio::connect_error("/admin", "invalid token", Some(json!({"code": 3500}))),
        binary(
            PacketType::BinaryEvent,
            "/",
            None,
            json!(["hello", placeholder]),
        ),
        binary(
            PacketType::BinaryEvent,
            "/admin",
            Some(456),
            json!(["project:delete", placeholder]),
        ),
        binary(
            PacketType::BinaryAck,
            "/admin",
            Some(456),
            json!([placeholder]),
        ),
    ]
}

/// Texts both decoders refuse.
const SIO_REJECTS: &[&str] = &[
    "7",
    "x",
    r#"2["connect"]"#,
    r#"2["disconnect",1]"#,
    "2[]",
    "2{}",
    "2[",
    "0[]",
    "0null",
    "1{}",
    "4[]",
    r#"511-["a"]"#,
    r#"50-["a"]"#,
    r#"5x-["a"]"#,
    r#"5["a"]"#,
];

#[test]
fn reference_parsers_agree_with_ours() {
    if !reference_available() {
        return;
    }
    let eio = eio_packets();
    let payloads = payloads();
    let sio = sio_packets();

    let mut cases = Vec::new();
    for p in &eio {
        cases.push(json!({"kind": "eio", "packet": eio_describe(p), "text": p.to_text()}));
    }
    for ps in &payloads {
        let described: Vec<Value> = ps.iter().map(eio_describe).collect();
        cases.push(json!({"kind": "payload", "packets": described, "text": payload::encode(ps)}));
    }
    for p in &sio {
        cases.push(json!({"kind": "sio", "packet": sio_describe(p), "text": p.encode()}));
    }
    for text in SIO_REJECTS {
        cases.push(json!({"kind": "sio-reject", "text": text}));
    }
    let answers = run_reference(&cases);

    let mut answers = answers.into_iter();
    let mut next = |case: &Value| {
        let answer = answers.next().unwrap();
        assert!(answer.get("error").is_none(), "{case}: {answer}");
        answer
    };
    for p in &eio {
        let case = json!({"eio": eio_describe(p)});
        let answer = next(&case);
        let reference_text = answer["encoded"].as_str().unwrap();
        assert_eq!(reference_text, p.to_text(), "reference encoding of {p:?}");
        assert_eq!(&Eio::decode_text(reference_text).unwrap(), p);
        assert_eq!(
            answer["decoded"],
            eio_describe(p),
            "reference decoding of {p:?}"
        );
    }
    for ps in &payloads {
        let case = json!({"payload": format!("{ps:?}")});
        let answer = next(&case);
        let reference_text = answer["encoded"].as_str().unwrap();
        assert_eq!(
            reference_text,
            payload::encode(ps),
            "reference payload {ps:?}"
        );
        assert_eq!(
            &payload::decode(reference_text.as_bytes(), payload::DEFAULT_MAX_PAYLOAD).unwrap(),
            ps
        );
        let described: Vec<Value> = ps.iter().map(eio_describe).collect();
        assert_eq!(
            answer["decoded"],
            json!(described),
            "reference decoding of {ps:?}"
        );
    }
    for p in &sio {
        let case = json!({"sio": sio_describe(p)});
        let answer = next(&case);
        let reference_text = answer["encoded"].as_str().unwrap();
        assert_eq!(reference_text, p.encode(), "reference encoding of {p:?}");
        assert_eq!(&Sio::decode(reference_text).unwrap(), p);
        assert_eq!(
            answer["decoded"],
            sio_describe(p),
            "reference decoding of {p:?}"
        );
    }
    for text in SIO_REJECTS {
        let answer = next(&json!({"reject": text}));
        assert_eq!(
            answer["rejected"],
            json!(true),
            "reference accepted {text:?}: {answer}"
        );
        assert!(Sio::decode(text).is_err(), "we accepted {text:?}");
    }
}
