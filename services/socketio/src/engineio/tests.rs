use super::*;
use proptest::prelude::*;

fn handshake() -> Handshake {
    Handshake {
        sid: "lv_VI97HAXpY6yYWAAAC".into(),
        upgrades: vec!["websocket".into()],
        ping_interval: 25000,
        ping_timeout: 5000,
        max_payload: 1_000_000,
    }
}

// The open packet of the Engine.IO v4 protocol document's handshake example.
const OPEN_VECTOR: &str = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}"#;

#[test]
fn open_packet_matches_the_protocol_example() {
    assert_eq!(Packet::Open(handshake()).to_text(), OPEN_VECTOR);
    assert_eq!(
        Packet::decode_text(OPEN_VECTOR).unwrap(),
        Packet::Open(handshake())
    );
}

#[test]
fn every_packet_type_both_ways() {
    let cases = [
        (Packet::Close, "1"),
        (Packet::Ping(None), "2"),
        (Packet::Pong(None), "3"),
        (Packet::Ping(Some(PROBE.into())), "2probe"),
        (Packet::Pong(Some(PROBE.into())), "3probe"),
        (Packet::message("hello"), "4hello"),
        (Packet::message(""), "4"),
        (Packet::message("€"), "4€"),
        (Packet::Upgrade, "5"),
        (Packet::Noop, "6"),
        (
            Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            "bAQIDBA==",
        ),
    ];
    for (packet, text) in cases {
        assert_eq!(packet.to_text(), text, "{packet:?}");
        assert_eq!(Packet::decode_text(text).unwrap(), packet, "{text}");
    }
}

#[test]
fn websocket_frames_carry_binary_raw() {
    let data = Bytes::from_static(&[1, 2, 3, 4]);
    assert_eq!(
        Packet::Binary(data.clone()).encode(),
        Frame::Binary(data.clone())
    );
    assert_eq!(Packet::decode_binary(data.clone()), Packet::Binary(data));
    assert_eq!(
        Packet::message("hello").encode(),
        Frame::Text("4hello".into())
    );
}

#[test]
fn probes_are_recognised() {
    let ping = Packet::decode_text("2probe").unwrap();
    assert!(ping.is_probe_ping());
    assert!(!ping.is_probe_pong());
    assert!(Packet::decode_text("3probe").unwrap().is_probe_pong());
    assert!(!Packet::decode_text("2").unwrap().is_probe_ping());
    assert!(!Packet::decode_text("2probes").unwrap().is_probe_ping());
}

#[test]
fn base64_without_padding_is_read() {
    assert_eq!(
        Packet::decode_text("bAQIDBA").unwrap(),
        Packet::Binary(Bytes::from_static(&[1, 2, 3, 4]))
    );
    assert_eq!(
        Packet::decode_text("b").unwrap(),
        Packet::Binary(Bytes::new())
    );
}

#[test]
fn malformed_packets_are_errors() {
    assert!(matches!(Packet::decode_text(""), Err(PacketError::Empty)));
    for bad in ["7", "9x", "x", "é", "\u{1e}"] {
        assert!(
            matches!(Packet::decode_text(bad), Err(PacketError::UnknownType(_))),
            "{bad:?}"
        );
    }
    for bad in ["1x", "5probe", "6 "] {
        assert!(
            matches!(
                Packet::decode_text(bad),
                Err(PacketError::UnexpectedData(_))
            ),
            "{bad:?}"
        );
    }
    for bad in ["0", "0{", "0{}", r#"0{"sid":1}"#, "0[]"] {
        assert!(
            matches!(Packet::decode_text(bad), Err(PacketError::Handshake(_))),
            "{bad:?}"
        );
    }
    for bad in ["b!!!!", "bA", "bAQID=A"] {
        assert!(
            matches!(Packet::decode_text(bad), Err(PacketError::Base64(_))),
            "{bad:?}"
        );
    }
}

pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
    let text = any::<String>();
    prop_oneof![
        (
            "[A-Za-z0-9_-]{20}",
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(sid, i, t, m)| Packet::Open(Handshake {
                sid,
                upgrades: vec!["websocket".into()],
                ping_interval: i.into(),
                ping_timeout: t.into(),
                max_payload: m.into(),
            })),
        Just(Packet::Close),
        proptest::option::of("[^\u{1e}]+").prop_map(Packet::Ping),
        proptest::option::of("[^\u{1e}]+").prop_map(Packet::Pong),
        text.prop_filter("no separator", |s| !s.contains('\u{1e}'))
            .prop_map(Packet::Message),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Packet::Binary(Bytes::from(v))),
        Just(Packet::Upgrade),
        Just(Packet::Noop),
    ]
}

proptest! {
    #[test]
    fn text_round_trip(packet in arb_packet()) {
        prop_assert_eq!(Packet::decode_text(&packet.to_text()).unwrap(), packet);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Packet::decode_text(&text);
    }
}
