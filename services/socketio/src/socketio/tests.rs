use super::*;
use proptest::prelude::*;
use serde_json::json;

fn obj(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn binary(kind: PacketType, nsp: &str, id: Option<u64>, data: Value) -> Packet {
    Packet {
        kind,
        nsp: nsp.into(),
        id,
        attachments: Some(1),
        data: Some(data),
    }
}

/// The "Examples" of the Socket.IO v5 protocol document's "Packet encoding" section, and
/// packets of its sample session.
#[test]
fn protocol_examples_both_ways() {
    let placeholder = json!({"_placeholder": true, "num": 0});
    let cases = vec![
        (
            Packet::connect("/", Some(obj(json!({"token": "123"})))),
            r#"0{"token":"123"}"#,
        ),
        (
            Packet::connect("/admin", Some(obj(json!({"token": "123"})))),
            r#"0/admin,{"token":"123"}"#,
        ),
        (Packet::disconnect("/admin"), "1/admin,"),
        (
            Packet::event("/", "hello", vec![json!(1)], None),
            r#"2["hello",1]"#,
        ),
        (
            Packet::event("/admin", "project:delete", vec![json!(123)], Some(456)),
            r#"2/admin,456["project:delete",123]"#,
        ),
        (Packet::ack("/admin", 456, vec![]), "3/admin,456[]"),
        (
            Packet::connect_error("/admin", "Not authorized", None),
            r#"4/admin,{"message":"Not authorized"}"#,
        ),
        (
            binary(
                PacketType::BinaryEvent,
                "/",
                None,
                json!(["hello", placeholder]),
            ),
            r#"51-["hello",{"_placeholder":true,"num":0}]"#,
        ),
        (
            binary(
                PacketType::BinaryEvent,
                "/admin",
                Some(456),
                json!(["project:delete", placeholder]),
            ),
            r#"51-/admin,456["project:delete",{"_placeholder":true,"num":0}]"#,
        ),
        (
            binary(
                PacketType::BinaryAck,
                "/admin",
                Some(456),
                json!([placeholder]),
            ),
            r#"61-/admin,456[{"_placeholder":true,"num":0}]"#,
        ),
        // The sample session.
        (Packet::connect("/", None), "0"),
        (Packet::connect("/admin", None), "0/admin,"),
        (
            Packet::connect("/admin", Some(obj(json!({"sid": "-G5j-67EZFp-q59rADQM"})))),
            r#"0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#,
        ),
        (
            Packet::event("/", "hey", vec![json!("Jude")], None),
            r#"2["hey","Jude"]"#,
        ),
        (
            Packet::event("/admin", "tellme", vec![], Some(1)),
            r#"2/admin,1["tellme"]"#,
        ),
        (Packet::disconnect("/"), "1"),
    ];
    for (packet, text) in cases {
        assert_eq!(packet.encode(), text, "{packet:?}");
        assert_eq!(Packet::decode(text).unwrap(), packet, "{text}");
    }
}

#[test]
fn accessors() {
    let event = Packet::decode(r#"2/admin,7["publish","news",{"a":1}]"#).unwrap();
    assert_eq!(event.kind, PacketType::Event);
    assert_eq!(event.nsp, "/admin");
    assert_eq!(event.id, Some(7));
    assert_eq!(event.event_name(), Some(&json!("publish")));
    assert_eq!(event.args(), &[json!("news"), json!({"a": 1})]);
    let ack = Packet::decode(r#"37[{"ok":true}]"#).unwrap();
    assert_eq!(ack.event_name(), None);
    assert_eq!(ack.args(), &[json!({"ok": true})]);
    assert_eq!(Packet::decode("1").unwrap().args(), &[] as &[Value]);
    // A number is a valid event name for the reference parser.
    assert_eq!(
        Packet::decode("2[1,2]").unwrap().event_name(),
        Some(&json!(1))
    );
}

#[test]
fn binary_packets_are_parsed_far_enough_to_refuse() {
    let p = Packet::decode(
        r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .unwrap();
    assert_eq!(p.kind, PacketType::BinaryEvent);
    assert!(p.kind.is_binary());
    assert_eq!(p.attachments, Some(2));
    assert_eq!(p.nsp, "/admin");
    assert_eq!(p.event_name(), Some(&json!("baz")));
    assert!(!PacketType::Event.is_binary());
}

#[test]
fn connect_error_may_carry_data_or_a_string() {
    let p = Packet::connect_error("/", "unauthorized", Some(json!({"code": 101})));
    let text = p.encode();
    let body: Value = serde_json::from_str(text.strip_prefix('4').unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"message": "unauthorized", "data": {"code": 101}})
    );
    assert_eq!(Packet::decode(&p.encode()).unwrap(), p);
    assert!(Packet::decode(r#"4"Not authorized""#).is_ok());
    assert!(Packet::decode("4").is_ok());
}

#[test]
fn malformed_packets_are_errors() {
    use PacketError as E;
    type Expect = fn(&PacketError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("", |e| matches!(e, E::Empty)),
        ("7", |e| matches!(e, E::UnknownType('7'))),
        (" 0", |e| matches!(e, E::UnknownType(' '))),
        ("x[]", |e| matches!(e, E::UnknownType('x'))),
        ("5[\"a\"]", |e| matches!(e, E::IllegalAttachments)),
        ("5-[\"a\"]", |e| matches!(e, E::IllegalAttachments)),
        ("50-[\"a\"]", |e| matches!(e, E::IllegalAttachments)),
        ("5x-[\"a\"]", |e| matches!(e, E::IllegalAttachments)),
        ("511-[\"a\"]", |e| matches!(e, E::TooManyAttachments(11))),
        ("599999999999999999999999-[\"a\"]", |e| {
            matches!(e, E::IllegalAttachments)
        }),
        ("29007199254740992[\"a\"]", |e| {
            matches!(e, E::AckIdOutOfRange)
        }),
        ("299999999999999999999999[\"a\"]", |e| {
            matches!(e, E::AckIdOutOfRange)
        }),
        ("3[]", |e| matches!(e, E::MissingAckId("ACK"))),
        ("2", |e| matches!(e, E::MissingData("EVENT"))),
        ("31", |e| matches!(e, E::MissingData("ACK"))),
        ("2[", |e| matches!(e, E::Json(_))),
        ("2[\"a\"]x", |e| matches!(e, E::Json(_))),
        ("0[]", |e| matches!(e, E::InvalidPayload("CONNECT"))),
        ("0null", |e| matches!(e, E::InvalidPayload("CONNECT"))),
        ("0\"a\"", |e| matches!(e, E::InvalidPayload("CONNECT"))),
        ("1{}", |e| matches!(e, E::InvalidPayload("DISCONNECT"))),
        ("2{}", |e| matches!(e, E::InvalidPayload("EVENT"))),
        ("2[]", |e| matches!(e, E::InvalidPayload("EVENT"))),
        ("2[null]", |e| matches!(e, E::InvalidPayload("EVENT"))),
        ("2[\"connect\"]", |e| {
            matches!(e, E::InvalidPayload("EVENT"))
        }),
        ("2[\"disconnecting\"]", |e| {
            matches!(e, E::InvalidPayload("EVENT"))
        }),
        ("31{}", |e| matches!(e, E::InvalidPayload("ACK"))),
        ("4[]", |e| matches!(e, E::InvalidPayload("CONNECT_ERROR"))),
        ("4 1", |e| matches!(e, E::InvalidPayload("CONNECT_ERROR"))),
        // A namespace without its comma swallows the rest of the packet, as in the reference.
        ("2/admin[\"a\"]", |e| matches!(e, E::MissingData("EVENT"))),
    ];
    for (text, expected) in cases {
        match Packet::decode(text) {
            Err(e) => assert!(expected(&e), "{text:?}: {e}"),
            Ok(p) => panic!("{text:?} decoded to {p:?}"),
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let text = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(Packet::decode(&text), Err(PacketError::Json(_))));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_nsp() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_owned()), "/[^,]{1,8}"]
}

fn arb_event_name() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("reserved", |s| !RESERVED_EVENTS.contains(&s.as_str()))
}

fn arb_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    proptest::collection::btree_map("[a-z]{0,6}", arb_json(), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
    let id = proptest::option::of(0..=MAX_ACK_ID);
    prop_oneof![
        (arb_nsp(), proptest::option::of(arb_object()))
            .prop_map(|(nsp, auth)| Packet::connect(&nsp, auth)),
        arb_nsp().prop_map(|nsp| Packet::disconnect(&nsp)),
        (
            arb_nsp(),
            arb_event_name(),
            proptest::collection::vec(arb_json(), 0..4),
            id
        )
            .prop_map(|(nsp, name, args, id)| Packet::event(&nsp, &name, args, id)),
        (
            arb_nsp(),
            0..=MAX_ACK_ID,
            proptest::collection::vec(arb_json(), 0..4)
        )
            .prop_map(|(nsp, id, args)| Packet::ack(&nsp, id, args)),
        (arb_nsp(), any::<String>(), proptest::option::of(arb_json()))
            .prop_map(|(nsp, m, data)| Packet::connect_error(&nsp, &m, data)),
        (
            arb_nsp(),
            1..=MAX_ATTACHMENTS,
            proptest::option::of(0..=MAX_ACK_ID),
            arb_event_name()
        )
            .prop_map(|(nsp, n, id, name)| Packet {
                kind: PacketType::BinaryEvent,
                nsp,
                id,
                attachments: Some(n),
                data: Some(json!([name, {"_placeholder": true, "num": 0}])),
            }),
    ]
}

proptest! {
    #[test]
    fn round_trip(packet in arb_packet()) {
        let text = packet.encode();
        let back = Packet::decode(&text).unwrap();
        // The root namespace is written implicitly and reads back as "/".
        prop_assert_eq!(back, packet);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Packet::decode(&text);
    }

    #[test]
    fn arbitrary_headers_never_panic(text in "[0-6][0-9-]{0,6}(/[a-z,]{0,4})?[0-9]{0,20}[\\[\\]{}\"a,0-9]{0,12}") {
        let _ = Packet::decode(&text);
    }
}
