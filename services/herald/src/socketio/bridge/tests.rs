use super::*;

fn texts(packets: &[EioPacket]) -> Vec<String> {
    packets.iter().map(EioPacket::to_text).collect()
}

/// Feeds the client packet `text` (a Socket.IO packet) and returns the commands it made.
fn client(bridge: &mut Bridge, text: &str) -> (Vec<Value>, Vec<String>) {
    let mut commands = Vec::new();
    let mut replies = Vec::new();
    bridge
        .client_packet(
            SioPacket::decode(text).unwrap(),
            &mut commands,
            &mut replies,
        )
        .unwrap();
    let commands = commands
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (commands, texts(&replies))
}

fn session(bridge: &mut Bridge, frame: &str) -> (Vec<String>, Vec<u8>) {
    let mut out = Vec::new();
    let mut commands = Vec::new();
    bridge.session_frame(frame.as_bytes(), &mut out, &mut commands);
    (texts(&out), commands)
}

fn connected(recovery: bool) -> Bridge {
    let mut bridge = Bridge::new(recovery);
    let (commands, _) = client(&mut bridge, r#"0{"token":"t"}"#);
    assert_eq!(
        commands,
        vec![json!({"id": 1, "connect": {"token": "t", "name": "socket.io"}})]
    );
    let (out, _) = session(
        &mut bridge,
        r#"{"id":1,"connect":{"client":"c1","ping":25}}"#,
    );
    assert!(
        out[0].starts_with("40{") && out[0].contains(r#""sid":"c1""#),
        "{out:?}"
    );
    bridge
}

#[test]
fn connect_answers_with_the_client_id_or_a_connect_error() {
    let bridge = connected(false);
    assert!(bridge.is_connected());

    let mut refused = Bridge::new(false);
    client(&mut refused, r#"0{"token":"expired"}"#);
    let (out, _) = session(
        &mut refused,
        r#"{"id":1,"error":{"code":109,"message":"token expired"}}"#,
    );
    assert_eq!(
        out,
        vec![r#"44{"data":{"code":109},"message":"token expired"}"#]
    );
    assert!(!refused.is_connected());
    assert_eq!(refused.pong(), None, "no pong before a connect");
}

#[test]
fn events_become_commands_and_replies_answer_their_acks() {
    let mut bridge = connected(false);
    let (commands, _) = client(&mut bridge, r#"27["subscribe","news",{"token":"s"}]"#);
    assert_eq!(
        commands,
        vec![json!({"id": 2, "subscribe": {"channel": "news", "token": "s"}})]
    );
    let (out, _) = session(&mut bridge, r#"{"id":2,"subscribe":{"recoverable":true}}"#);
    assert_eq!(
        out,
        vec![
            r#"42["subscribed",{"channel":"news","recoverable":true}]"#,
            r#"437[{"ok":{"recoverable":true}}]"#
        ]
    );
    let (commands, _) = client(&mut bridge, r#"28["publish","news",{"a":1}]"#);
    assert_eq!(
        commands,
        vec![json!({"id": 3, "publish": {"channel": "news", "data": {"a": 1}}})]
    );
    let (out, _) = session(
        &mut bridge,
        r#"{"id":3,"error":{"code":103,"message":"permission denied"}}"#,
    );
    assert_eq!(
        out,
        vec![r#"438[{"error":{"code":103,"message":"permission denied"}}]"#]
    );
    // History keeps its publications in the ack.
    client(&mut bridge, r#"29["history","news",{"limit":2}]"#);
    let (out, _) = session(
        &mut bridge,
        r#"{"id":4,"history":{"publications":[{"data":1,"offset":1}],"offset":1,"epoch":"e"}}"#,
    );
    assert_eq!(
        out,
        vec![r#"439[{"ok":{"epoch":"e","offset":1,"publications":[{"data":1,"offset":1}]}}]"#]
    );
}

#[test]
fn unknown_events_and_bad_arguments_get_an_error_ack_and_no_command() {
    let mut bridge = connected(false);
    let (commands, replies) = client(&mut bridge, r#"25["dance","x"]"#);
    assert!(commands.is_empty());
    assert_eq!(
        replies,
        vec![r#"435[{"error":{"code":104,"message":"method not found"}}]"#]
    );
    let (commands, replies) = client(&mut bridge, r#"26["subscribe",42]"#);
    assert!(commands.is_empty());
    assert_eq!(
        replies,
        vec![r#"436[{"error":{"code":107,"message":"bad request"}}]"#]
    );
    let (commands, replies) = client(&mut bridge, r#"0/admin,{"token":"t"}"#);
    assert!(commands.is_empty());
    assert_eq!(replies, vec![r#"44/admin,{"message":"Invalid namespace"}"#]);
    let mut commands = Vec::new();
    let refused = bridge.client_packet(
        SioPacket::decode(r#"51-["upload",{"_placeholder":true,"num":0}]"#).unwrap(),
        &mut commands,
        &mut Vec::new(),
    );
    assert_eq!(
        refused,
        Err(Refusal::Refused(codes::disconnect::BAD_REQUEST))
    );
    let left = bridge.client_packet(
        SioPacket::decode("1").unwrap(),
        &mut commands,
        &mut Vec::new(),
    );
    assert_eq!(left, Err(Refusal::Left));
}

#[test]
fn pushes_become_events_and_pings_engine_io_pings() {
    let mut bridge = connected(false);
    let frame = [
        r#"{"push":{"channel":"news","pub":{"data":{"x":"a\"b"},"offset":4}}}"#,
        "{}",
        r#"{"push":{"channel":"news","join":{"info":{"user":"u","client":"c"}}}}"#,
        r#"{"push":{"channel":"news","leave":{"info":{"user":"u","client":"c"}}}}"#,
        r#"{"push":{"channel":"n2","pub":{}}}"#,
        r#"{"push":{"message":{"data":"hello"}}}"#,
        r#"{"push":{"channel":"n2","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}"#,
    ]
    .join("\n");
    let (out, _) = session(&mut bridge, &frame);
    assert_eq!(
        out,
        vec![
            r#"42["publication",{"channel":"news","data":{"x":"a\"b"},"offset":4}]"#,
            "2",
            r#"42["join",{"channel":"news","info":{"user":"u","client":"c"}}]"#,
            r#"42["leave",{"channel":"news","info":{"user":"u","client":"c"}}]"#,
            r#"42["publication",{"channel":"n2"}]"#,
            r#"42["message","hello"]"#,
            r#"42["unsubscribed",{"channel":"n2","code":2000,"reason":"server unsubscribe"}]"#,
        ]
    );
    assert_eq!(bridge.pong(), Some(&b"{}"[..]));
}

#[test]
fn goodbyes_say_why_and_whether_to_come_back() {
    let bridge = connected(false);
    let mut out = Vec::new();
    bridge.goodbye(&codes::disconnect::SHUTDOWN, &mut out);
    assert_eq!(
        texts(&out),
        vec![r#"42["disconnected",{"code":3001,"reason":"shutdown","reconnect":true}]"#]
    );
    let mut out = Vec::new();
    bridge.goodbye(&codes::disconnect::FORCE_DISCONNECT, &mut out);
    assert_eq!(
        texts(&out),
        vec![
            r#"42["disconnected",{"code":3503,"reason":"force disconnect","reconnect":false}]"#,
            "41"
        ]
    );
    let mut out = Vec::new();
    Bridge::new(false).goodbye(&codes::disconnect::INVALID_TOKEN, &mut out);
    assert_eq!(
        texts(&out),
        vec![r#"44{"data":{"code":3500},"message":"invalid token"}"#]
    );
}

#[test]
fn with_recovery_events_carry_the_offset_token_and_a_reconnect_restores() {
    let mut bridge = connected(true);
    let pid = bridge.pid.clone().unwrap();
    client(&mut bridge, r#"2["subscribe","news"]"#);
    client(&mut bridge, r#"2["subscribe","plain"]"#);
    session(
        &mut bridge,
        "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"e\",\"offset\":3}}\n{\"id\":3,\"subscribe\":{}}",
    );
    let (out, _) = session(
        &mut bridge,
        r#"{"push":{"channel":"news","pub":{"data":1,"offset":4}}}"#,
    );
    let event: Value = serde_json::from_str(&out[0][2..]).unwrap();
    let token = event[2].as_str().unwrap().to_owned();
    assert_eq!(
        Positions::parse_token(&token),
        Some((
            pid.clone(),
            vec![
                ("news".to_owned(), Some((4, "e".to_owned()))),
                ("plain".to_owned(), None)
            ]
        ))
    );

    // The reconnect, on a new bridge (any node): the same pid, the channels again.
    let mut again = Bridge::new(true);
    let connect = json!({"token": "t", "pid": pid, "offset": token});
    client(&mut again, &format!("0{connect}"));
    let (out, commands) = session(&mut again, r#"{"id":1,"connect":{"client":"c2"}}"#);
    assert_eq!(out, vec![format!(r#"40{{"pid":"{pid}","sid":"c2"}}"#)]);
    let commands: Vec<Value> = commands
        .split(|&b| b == b'\n')
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        commands,
        vec![
            json!({"id": 2, "subscribe": {"channel": "news", "recover": true, "offset": 4, "epoch": "e"}}),
            json!({"id": 3, "subscribe": {"channel": "plain"}}),
        ]
    );
    let (out, _) = session(
        &mut again,
        r#"{"id":2,"subscribe":{"recovered":true,"epoch":"e","offset":5,"publications":[{"data":5,"offset":5}]}}"#,
    );
    assert!(
        out[0].starts_with(r#"42["publication",{"channel":"news","data":5,"offset":5},"#),
        "{out:?}"
    );
    assert!(
        out[1].starts_with(
            r#"42["subscribed",{"channel":"news","epoch":"e","offset":5,"recovered":true},"#
        ),
        "{out:?}"
    );

    // A token made for another pid restores nothing.
    let mut other = Bridge::new(true);
    let connect = json!({"token": "t", "pid": "someone-else", "offset": token});
    client(&mut other, &format!("0{connect}"));
    let (out, commands) = session(&mut other, r#"{"id":1,"connect":{"client":"c3"}}"#);
    assert!(commands.is_empty());
    assert!(!out[0].contains("someone-else"));
}
