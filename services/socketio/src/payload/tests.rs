use super::*;
use crate::engineio::tests::arb_packet;
use bytes::Bytes;
use proptest::prelude::*;

// The polling payloads of the Engine.IO v4 protocol document: a text and a binary message, and
// the Socket.IO v5 sample session's POST of two events.
#[test]
fn protocol_examples() {
    let two = vec![Packet::message("hello"), Packet::message("€")];
    assert_eq!(encode(&two), "4hello\x1e4€");
    assert_eq!(decode("4hello\x1e4€".as_bytes(), 100).unwrap(), two);

    let mixed = vec![
        Packet::message("hello"),
        Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
    ];
    assert_eq!(encode(&mixed), "4hello\x1ebAQIDBA==");
    assert_eq!(decode(b"4hello\x1ebAQIDBA==", 100).unwrap(), mixed);

    let events = decode(b"42[\"hello\"]\x1e42[\"world\"]", 100).unwrap();
    assert_eq!(
        events,
        vec![
            Packet::message("2[\"hello\"]"),
            Packet::message("2[\"world\"]")
        ]
    );
}

#[test]
fn single_packets_and_empty_list() {
    assert_eq!(encode(&[Packet::Noop]), "6");
    assert_eq!(decode(b"6", 1).unwrap(), vec![Packet::Noop]);
    assert_eq!(encode(&[]), "");
}

#[test]
fn max_payload_is_enforced_before_decoding() {
    let body = "4".repeat(11);
    assert!(decode(body.as_bytes(), 11).is_ok());
    match decode(body.as_bytes(), 10) {
        Err(PayloadError::TooLarge { len: 11, max: 10 }) => {}
        other => panic!("{other:?}"),
    }
    // Not even UTF-8 checking happens past the limit.
    assert!(matches!(
        decode(&[0xff; 2_000_000], DEFAULT_MAX_PAYLOAD),
        Err(PayloadError::TooLarge { .. })
    ));
}

#[test]
fn malformed_payloads_are_errors() {
    assert!(matches!(
        decode(&[0x34, 0xff], 10),
        Err(PayloadError::NotUtf8)
    ));
    for (bad, at) in [
        ("", 0),
        ("\x1e", 0),
        ("4a\x1e", 1),
        ("4a\x1e\x1e4b", 1),
        ("4a\x1e9", 1),
        ("4a\x1ebA", 1),
        ("1x\x1e4a", 0),
    ] {
        match decode(bad.as_bytes(), 100) {
            Err(PayloadError::Packet { index, .. }) => assert_eq!(index, at, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

proptest! {
    #[test]
    fn payload_round_trip(packets in proptest::collection::vec(arb_packet(), 1..8)) {
        let text = encode(&packets);
        prop_assert_eq!(decode(text.as_bytes(), text.len()).unwrap(), packets);
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..600) {
        let _ = decode(&body, max);
    }
}
