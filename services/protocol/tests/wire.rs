//! Wire-level tests of the public API: exact JSON strings, raw JSON bytes,
//! frame batching, protobuf framing and field numbers, and fuzz-ish input.

use bytes::{Bytes, BytesMut};
use herald_protocol::codec::{self, DecodeError, Format};
use herald_protocol::codes;
use herald_protocol::proto::{
    ClientInfo, Command, ConnectRequest, ConnectResult, HistoryRequest, PingRequest, Publication,
    PublishRequest, PublishResult, Push, Reply, StreamPosition, SubscribeRequest, SubscribeResult,
};
use prost::Message;

fn json(reply: &Reply) -> String {
    String::from_utf8(codec::encode_reply(Format::Json, reply).to_vec()).unwrap()
}

fn one_json(line: &str) -> Command {
    let mut cmds = codec::decode_commands(Format::Json, line.as_bytes()).unwrap();
    assert_eq!(cmds.len(), 1);
    cmds.pop().unwrap()
}

// ---------- JSON exact strings and round trips ----------

#[test]
fn json_connect_command_decodes() {
    let cmd = one_json(r#"{"id":1,"connect":{"token":"T","name":"js"}}"#);
    assert_eq!(cmd.id, 1);
    let c = cmd.connect.unwrap();
    assert_eq!(c.token, "T");
    assert_eq!(c.name, "js");
    assert!(c.data.is_empty());
    assert!(cmd.subscribe.is_none());
}

#[test]
fn json_connect_reply_exact() {
    let reply = Reply {
        id: 1,
        connect: Some(ConnectResult {
            client: "c".into(),
            version: "0.1.0".into(),
            ping: 25,
            pong: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        json(&reply),
        r#"{"id":1,"connect":{"client":"c","version":"0.1.0","ping":25,"pong":true}}"#
    );
}

#[test]
fn json_publication_push_exact() {
    let reply = Reply {
        push: Some(Push {
            channel: "chat:42".into(),
            r#pub: Some(Publication {
                data: Bytes::from_static(br#"{"text":"hi"}"#),
                offset: 15,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = json(&reply);
    assert_eq!(
        s,
        r#"{"push":{"channel":"chat:42","pub":{"data":{"text":"hi"},"offset":15}}}"#
    );
    // And back.
    let back: Reply = serde_json::from_str(&s).unwrap();
    assert_eq!(back, reply);
}

#[test]
fn json_empty_result_is_present() {
    let reply = Reply {
        id: 3,
        publish: Some(PublishResult {}),
        ..Default::default()
    };
    assert_eq!(json(&reply), r#"{"id":3,"publish":{}}"#);
    let reply = Reply {
        id: 4,
        subscribe: Some(SubscribeResult::default()),
        ..Default::default()
    };
    assert_eq!(json(&reply), r#"{"id":4,"subscribe":{}}"#);
}

#[test]
fn json_error_reply_exact() {
    let reply = Reply {
        id: 2,
        error: Some(codes::PERMISSION_DENIED.to_proto()),
        ..Default::default()
    };
    assert_eq!(
        json(&reply),
        r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#
    );
    let reply = Reply {
        id: 2,
        error: Some(codes::INTERNAL.to_proto()),
        ..Default::default()
    };
    assert_eq!(
        json(&reply),
        r#"{"id":2,"error":{"code":100,"message":"internal server error","temporary":true}}"#
    );
}

#[test]
fn json_raw_identifier_fields_and_numbers() {
    let cmd = one_json(
        r#"{"id":7,"subscribe":{"channel":"a","type":2,"offset":18446744073709551615,"epoch":"e","recover":true}}"#,
    );
    let s = cmd.subscribe.unwrap();
    assert_eq!(s.r#type, 2);
    assert_eq!(s.offset, u64::MAX);
    assert!(s.recover);
    let reply = Reply {
        id: 7,
        subscribe: Some(SubscribeResult {
            r#type: 1,
            offset: u64::MAX,
            id: -5,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        json(&reply),
        r#"{"id":7,"subscribe":{"offset":18446744073709551615,"id":-5,"type":1}}"#
    );
}

#[test]
fn json_unknown_fields_ignored_and_nulls_are_zero() {
    let cmd = one_json(
        r#"{"id":5,"future":{"x":1},"publish":{"channel":"c","data":null,"key":null,"type":null,"extra":[1,2]}}"#,
    );
    let p = cmd.publish.unwrap();
    assert_eq!(p.channel, "c");
    assert!(p.data.is_empty());
    assert_eq!(p.key, "");
    assert_eq!(p.r#type, 0);
    let cmd = one_json(r#"{"id":null,"connect":null,"subscribe":{"channel":"x","tf":null}}"#);
    assert_eq!(cmd.id, 0);
    assert!(cmd.connect.is_none());
    assert!(cmd.subscribe.unwrap().tf.is_none());
    let cmd = one_json(r#"{"connect":{"subs":null,"headers":null}}"#);
    assert!(cmd.connect.unwrap().subs.is_empty());
}

#[test]
fn json_maps_and_nested_messages() {
    let cmd = one_json(
        r#"{"id":1,"connect":{"subs":{"news":{"recover":true,"offset":3,"epoch":"x"}},"headers":{"a":"b"},"data":{"k":[1,2]}}}"#,
    );
    let c: ConnectRequest = cmd.connect.unwrap();
    assert_eq!(c.headers.get("a").map(String::as_str), Some("b"));
    let s: &SubscribeRequest = &c.subs["news"];
    assert!(s.recover);
    assert_eq!(s.offset, 3);
    assert_eq!(&c.data[..], br#"{"k":[1,2]}"#);

    let cmd = one_json(
        r#"{"id":9,"history":{"channel":"h","limit":10,"since":{"offset":4,"epoch":"e"},"reverse":true}}"#,
    );
    assert_eq!(
        cmd.history.unwrap(),
        HistoryRequest {
            channel: "h".into(),
            limit: 10,
            since: Some(StreamPosition {
                offset: 4,
                epoch: "e".into()
            }),
            reverse: true,
        }
    );
}

#[test]
fn json_reply_round_trip_full() {
    let mut tags = std::collections::BTreeMap::new();
    tags.insert("t".to_string(), "v".to_string());
    let publication = Publication {
        data: Bytes::from_static(br#"[1,{"a":null},"s",true,1.5e3]"#),
        info: Some(ClientInfo {
            user: "u".into(),
            client: "c".into(),
            conn_info: Bytes::from_static(br#"{"name":"Ann"}"#),
            chan_info: Bytes::new(),
        }),
        offset: 1 << 60,
        tags,
        time: 1_700_000_000_000,
        score: -3,
        ..Default::default()
    };
    let reply = Reply {
        id: 11,
        subscribe: Some(SubscribeResult {
            expires: true,
            ttl: 60,
            recoverable: true,
            epoch: "ep".into(),
            publications: vec![publication.clone(), publication],
            recovered: true,
            offset: 9,
            data: Bytes::from_static(b"\"str\""),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = json(&reply);
    let back: Reply = serde_json::from_str(&s).unwrap();
    assert_eq!(back, reply);
    assert!(s.contains(r#""conn_info":{"name":"Ann"}"#), "{s}");
    assert!(!s.contains("chan_info"), "{s}");
    assert!(s.contains(r#""time":1700000000000"#), "{s}");
    assert!(s.contains(r#""offset":1152921504606846976"#), "{s}");
}

// ---------- raw JSON bytes ----------

#[test]
fn raw_json_survives_verbatim() {
    let data = r#"{"a":[1,2,{"b":"c\"d"}],"u":"привет ☃ \u00e9","n":-0.5e-3,"e":{},"z":[]}"#;
    let line = format!(r#"{{"id":1,"publish":{{"channel":"c","data":{data}}}}}"#);
    let cmd = one_json(&line);
    let got = cmd.publish.unwrap().data;
    assert_eq!(std::str::from_utf8(&got).unwrap(), data);

    let reply = Reply {
        id: 1,
        rpc: Some(herald_protocol::proto::RpcResult { data: got.clone() }),
        ..Default::default()
    };
    assert_eq!(
        json(&reply),
        format!(r#"{{"id":1,"rpc":{{"data":{data}}}}}"#)
    );

    // Scalars as data.
    for v in ["\"s\"", "42", "true", "[1]"] {
        let cmd = one_json(&format!(r#"{{"send":{{"data":{v}}}}}"#));
        assert_eq!(&cmd.send.unwrap().data[..], v.as_bytes());
    }
}

#[test]
fn raw_json_newlines_removed_on_encode() {
    let pretty = "{\r\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"x\"\n}";
    let reply = Reply {
        push: Some(Push {
            channel: "c".into(),
            r#pub: Some(Publication {
                data: Bytes::from(pretty),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = json(&reply);
    assert!(!s.contains('\n') && !s.contains('\r'), "{s}");
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["push"]["pub"]["data"]["a"][1], 2);
    assert_eq!(v["push"]["pub"]["data"]["b"], "x");
}

#[test]
fn invalid_raw_json_is_an_error_not_broken_output() {
    let reply = Reply {
        id: 8,
        rpc: Some(herald_protocol::proto::RpcResult {
            data: Bytes::from_static(b"{not json"),
        }),
        ..Default::default()
    };
    assert!(codec::try_encode_reply(Format::Json, &reply).is_err());
    assert!(serde_json::to_string(&reply).is_err());
    // The infallible encoder substitutes an internal error with the same id.
    assert_eq!(
        json(&reply),
        r#"{"id":8,"error":{"code":100,"message":"internal server error","temporary":true}}"#
    );
    // Protobuf does not care.
    assert!(codec::try_encode_reply(Format::Protobuf, &reply).is_ok());
}

// ---------- newline batching ----------

#[test]
fn json_batch_frames() {
    let frame = b"{\"id\":1,\"ping\":{}}\r\n\n  {\"id\":2,\"publish\":{\"channel\":\"a\",\"data\":{\"x\":1}}}  \r\n{}\n\n";
    let cmds = codec::decode_commands(Format::Json, frame).unwrap();
    assert_eq!(cmds.len(), 3);
    assert_eq!(cmds[0].id, 1);
    assert_eq!(cmds[0].ping, Some(PingRequest {}));
    assert_eq!(cmds[1].publish.as_ref().unwrap().channel, "a");
    assert_eq!(cmds[2], Command::default());

    assert!(
        codec::decode_commands(Format::Json, b"")
            .unwrap()
            .is_empty()
    );
    assert!(
        codec::decode_commands(Format::Json, b"\n\r\n  ")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn json_garbage_line_is_error() {
    let err = codec::decode_commands(Format::Json, b"{\"id\":1}\nnot json\n{}").unwrap_err();
    match &err {
        DecodeError::Json { line, .. } | DecodeError::NotAnObject { line } => {
            assert_eq!(*line, 2)
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("line 2"), "{err}");
    // Wrong types are errors too.
    assert!(codec::decode_commands(Format::Json, br#"{"id":"x"}"#).is_err());
    assert!(codec::decode_commands(Format::Json, br#"[1]"#).is_err());
    assert!(matches!(
        codec::decode_commands(Format::Json, b"{\"id\":1,"),
        Err(DecodeError::Json { line: 1, .. })
    ));
}

#[test]
fn join_and_append_frames() {
    let a = Bytes::from_static(b"{\"id\":1}");
    let b = Bytes::from_static(b"{\"id\":2}");
    let mut out = BytesMut::new();
    codec::join_frame(Format::Json, &[a.clone(), b.clone()], &mut out);
    assert_eq!(&out[..], b"{\"id\":1}\n{\"id\":2}");
    codec::append_to_frame(Format::Json, &codec::ping(Format::Json), &mut out);
    assert_eq!(&out[..], b"{\"id\":1}\n{\"id\":2}\n{}");
    let cmds = codec::decode_commands(Format::Json, &out).unwrap();
    assert_eq!(cmds.len(), 3);

    let mut out = BytesMut::new();
    codec::append_to_frame(Format::Json, &a, &mut out);
    assert_eq!(&out[..], &a[..]);

    let mut out = BytesMut::new();
    codec::join_frame(
        Format::Protobuf,
        &[Bytes::from_static(&[1, 8]), Bytes::from_static(&[0])],
        &mut out,
    );
    assert_eq!(&out[..], &[1, 8, 0]);
}

// ---------- protobuf ----------

#[test]
fn protobuf_delimited_commands_decode() {
    let c1 = Command {
        id: 1,
        connect: Some(ConnectRequest {
            token: "tok".into(),
            data: Bytes::from_static(b"\x00\xffbinary ok"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c2 = Command {
        id: 2,
        publish: Some(PublishRequest {
            channel: "ch".into(),
            data: Bytes::from(vec![7u8; 300]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut frame = c1.encode_length_delimited_to_vec();
    frame.extend(c2.encode_length_delimited_to_vec());
    frame.push(0); // pong
    let cmds = codec::decode_commands(Format::Protobuf, &frame).unwrap();
    assert_eq!(cmds, vec![c1, c2, Command::default()]);

    assert_eq!(
        codec::decode_commands(Format::Protobuf, &[0]).unwrap(),
        vec![Command::default()]
    );
    assert!(
        codec::decode_commands(Format::Protobuf, &[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn protobuf_truncated_is_error() {
    let c = Command {
        id: 300,
        subscribe: Some(SubscribeRequest {
            channel: "news".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let full = c.encode_length_delimited_to_vec();
    for cut in 1..full.len() {
        assert!(
            codec::decode_commands(Format::Protobuf, &full[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Unterminated varint.
    assert!(matches!(
        codec::decode_commands(Format::Protobuf, &[0x80]),
        Err(DecodeError::BadVarint { offset: 0 })
    ));
    // Varint longer than 10 bytes.
    assert!(codec::decode_commands(Format::Protobuf, &[0xff; 11]).is_err());
    // Huge length.
    let huge = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
    ];
    assert!(matches!(
        codec::decode_commands(Format::Protobuf, &huge),
        Err(DecodeError::Truncated { .. })
    ));
    // Length fits but content is not a Command (field 1 with wire type 7).
    assert!(matches!(
        codec::decode_commands(Format::Protobuf, &[1, 0x0f]),
        Err(DecodeError::Protobuf { .. })
    ));
}

#[test]
fn protobuf_reply_is_delimited() {
    let reply = Reply {
        id: 1,
        ping: Some(Default::default()),
        ..Default::default()
    };
    let enc = codec::encode_reply(Format::Protobuf, &reply);
    // len=4: field 1 varint (0x08 0x01), field 12 len 0 (0x62 0x00).
    assert_eq!(&enc[..], &[4, 0x08, 0x01, 0x62, 0x00]);
    assert_eq!(Reply::decode_length_delimited(enc).unwrap(), reply);
    assert_eq!(&codec::ping(Format::Protobuf)[..], &[0]);
    assert_eq!(&codec::ping(Format::Json)[..], b"{}");
    assert_eq!(
        &codec::encode_reply(Format::Protobuf, &Reply::default())[..],
        &[0]
    );
}

#[test]
fn protobuf_field_numbers_byte_level() {
    // Publication{data=4 "{}", offset=6 5}
    let p = Publication {
        data: Bytes::from_static(b"{}"),
        offset: 5,
        ..Default::default()
    };
    let expected_pub = [0x22, 0x02, b'{', b'}', 0x30, 0x05];
    assert_eq!(p.encode_to_vec(), expected_pub);

    // Push{channel=2 "c", pub=4 <publication>}
    let push = Push {
        channel: "c".into(),
        r#pub: Some(p),
        ..Default::default()
    };
    let mut expected_push = vec![0x12, 0x01, b'c', 0x22, expected_pub.len() as u8];
    expected_push.extend_from_slice(&expected_pub);
    assert_eq!(push.encode_to_vec(), expected_push);

    // Reply{push=4 <push>}
    let reply = Reply {
        push: Some(push),
        ..Default::default()
    };
    let mut expected_reply = vec![0x22, expected_push.len() as u8];
    expected_reply.extend_from_slice(&expected_push);
    assert_eq!(reply.encode_to_vec(), expected_reply);

    // Command{id=1 3, subscribe=5 {channel=1 "x", recover=3 true, offset=7 2}}
    let cmd = Command {
        id: 3,
        subscribe: Some(SubscribeRequest {
            channel: "x".into(),
            recover: true,
            offset: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        cmd.encode_to_vec(),
        [
            0x08, 0x03, 0x2a, 0x07, 0x0a, 0x01, b'x', 0x18, 0x01, 0x38, 0x02
        ]
    );

    // Publication.score is sint64 (zigzag): -1 -> 1, field 13 -> tag 0x68.
    let p = Publication {
        score: -1,
        ..Default::default()
    };
    assert_eq!(p.encode_to_vec(), [0x68, 0x01]);
}

// ---------- fuzz-ish: never panic ----------

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"{}[]\":,0123456789.-eE \n\r\tabcdefnulltruefalse\\u";
    let seed_cmd = Command {
        id: 77,
        connect: Some(ConnectRequest {
            token: "t".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_length_delimited_to_vec();
    for round in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = codec::decode_commands(Format::Protobuf, &buf);
        let _ = codec::decode_commands(Format::Json, &buf);
        // JSON-ish alphabet hits deeper parser paths.
        for b in &mut buf {
            *b = alphabet[(*b as usize) % alphabet.len()];
        }
        let _ = codec::decode_commands(Format::Json, &buf);
        // Mutated valid protobuf.
        let mut m = seed_cmd.clone();
        let i = round % m.len();
        m[i] = rng.next() as u8;
        let _ = codec::decode_commands(Format::Protobuf, &m);
    }
}
