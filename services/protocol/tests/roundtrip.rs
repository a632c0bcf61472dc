//! Property tests of the codecs: generated commands, replies and pushes survive encoding and
//! decoding in both formats, emulation request bodies decode to what was sent, and no input
//! makes the command decoder panic.
//!
//! Commands are encoded as an SDK encodes them (JSON: one `serde_json` object per line;
//! Protobuf: varint-length-delimited messages) and decoded with [`codec::decode_commands`];
//! replies are encoded with [`codec::encode_reply`] and [`codec::join_frame`] and decoded as an
//! SDK decodes them.
//!
//! `bytes` fields differ between the formats: Protobuf carries any bytes, the JSON mapping
//! embeds them as raw JSON, so JSON values hold JSON text (or nothing: `null` decodes as empty).

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use herald_protocol::codec::{self, Format};
use herald_protocol::emulation;
use herald_protocol::proto::{
    ClientInfo, Command, Connect, ConnectRequest, ConnectResult, Disconnect, EmulationRequest,
    Error, FilterNode, HistoryRequest, HistoryResult, Join, Leave, Message, PingRequest,
    PingResult, PresenceRequest, PresenceResult, PresenceStatsRequest, PresenceStatsResult,
    Publication, PublishRequest, PublishResult, Push, Refresh, RefreshRequest, RefreshResult,
    Reply, RpcRequest, RpcResult, SendRequest, StreamPosition, SubRefreshRequest, SubRefreshResult,
    Subscribe, SubscribeRequest, SubscribeResult, Unsubscribe, UnsubscribeRequest,
    UnsubscribeResult,
};
use proptest::collection::{btree_map, vec};
use proptest::option::weighted;
use proptest::prelude::*;
use prost::Message as _;
use serde_json::Value;

// ---------- strategies ----------

/// What the `bytes` fields of a generated message hold.
#[derive(Debug, Clone, Copy)]
enum Data {
    /// Any bytes: Protobuf.
    Any,
    /// Compact JSON text or nothing: the JSON mapping.
    Json,
}

/// Short strings of any characters (quotes, backslashes, control characters, non-ASCII).
fn text() -> impl Strategy<Value = String> + Clone {
    ".{0,8}"
}

/// Optional fields are set one time in four, so that a message mixes set and unset ones.
fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    weighted(0.25, s)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Finite only: serde_json writes NaN and infinities as null.
        (-1e300f64..1e300).prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn data(kind: Data) -> BoxedStrategy<Bytes> {
    match kind {
        Data::Any => vec(any::<u8>(), 0..24).prop_map(Bytes::from).boxed(),
        Data::Json => json_value()
            .prop_map(|v| match v {
                // The mapping decodes `null` as empty bytes.
                Value::Null => Bytes::new(),
                v => Bytes::from(serde_json::to_vec(&v).expect("a Value encodes")),
            })
            .boxed(),
    }
}

fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(text(), text(), 0..3)
}

fn filter() -> impl Strategy<Value = FilterNode> {
    let leaf = (text(), text(), text(), text(), vec(text(), 0..3)).prop_map(
        |(op, key, cmp, val, vals)| FilterNode {
            op,
            key,
            cmp,
            val,
            vals,
            nodes: Vec::new(),
        },
    );
    leaf.prop_recursive(3, 12, 3, |inner| {
        (text(), vec(inner, 0..3)).prop_map(|(op, nodes)| FilterNode {
            op,
            nodes,
            ..Default::default()
        })
    })
}

fn subscribe_request(kind: Data) -> impl Strategy<Value = SubscribeRequest> {
    (
        (
            text(),
            text(),
            any::<bool>(),
            text(),
            any::<u64>(),
            data(kind),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>(), text()),
        (opt(filter()), any::<i64>(), any::<i32>(), any::<i32>()),
        (text(), any::<i32>(), any::<bool>()),
    )
        .prop_map(
            |(
                (channel, token, recover, epoch, offset, data),
                (positioned, recoverable, join_leave, delta),
                (tf, flag, r#type, phase),
                (cursor, limit, asc),
            )| SubscribeRequest {
                channel,
                token,
                recover,
                epoch,
                offset,
                data,
                positioned,
                recoverable,
                join_leave,
                delta,
                tf,
                flag,
                r#type,
                phase,
                cursor,
                limit,
                asc,
            },
        )
}

fn connect_request(kind: Data) -> impl Strategy<Value = ConnectRequest> {
    (
        text(),
        data(kind),
        btree_map(text(), subscribe_request(kind), 0..2),
        text(),
        text(),
        tags(),
        any::<i64>(),
    )
        .prop_map(
            |(token, data, subs, name, version, headers, flag)| ConnectRequest {
                token,
                data,
                subs,
                name,
                version,
                headers,
                flag,
            },
        )
}

fn command(kind: Data) -> impl Strategy<Value = Command> {
    let first = (
        opt(connect_request(kind)),
        opt(subscribe_request(kind)),
        opt(text().prop_map(|channel| UnsubscribeRequest { channel })),
        opt(
            (text(), data(kind), any::<i32>(), text(), any::<bool>()).prop_map(
                |(channel, data, r#type, key, removed)| PublishRequest {
                    channel,
                    data,
                    r#type,
                    key,
                    removed,
                },
            ),
        ),
        opt(text().prop_map(|channel| PresenceRequest { channel })),
        opt(text().prop_map(|channel| PresenceStatsRequest { channel })),
    );
    let second = (
        opt(
            (text(), any::<i32>(), opt(stream_position()), any::<bool>()).prop_map(
                |(channel, limit, since, reverse)| HistoryRequest {
                    channel,
                    limit,
                    since,
                    reverse,
                },
            ),
        ),
        opt(Just(PingRequest {})),
        opt(data(kind).prop_map(|data| SendRequest { data })),
        opt((data(kind), text()).prop_map(|(data, method)| RpcRequest { data, method })),
        opt(text().prop_map(|token| RefreshRequest { token })),
        opt((text(), text()).prop_map(|(channel, token)| SubRefreshRequest { channel, token })),
    );
    (any::<u32>(), first, second).prop_map(
        |(
            id,
            (connect, subscribe, unsubscribe, publish, presence, presence_stats),
            (history, ping, send, rpc, refresh, sub_refresh),
        )| Command {
            id,
            connect,
            subscribe,
            unsubscribe,
            publish,
            presence,
            presence_stats,
            history,
            ping,
            send,
            rpc,
            refresh,
            sub_refresh,
        },
    )
}

fn stream_position() -> impl Strategy<Value = StreamPosition> {
    (any::<u64>(), text()).prop_map(|(offset, epoch)| StreamPosition { offset, epoch })
}

fn client_info(kind: Data) -> impl Strategy<Value = ClientInfo> {
    (text(), text(), data(kind), data(kind)).prop_map(|(user, client, conn_info, chan_info)| {
        ClientInfo {
            user,
            client,
            conn_info,
            chan_info,
        }
    })
}

fn publication(kind: Data) -> impl Strategy<Value = Publication> {
    (
        (data(kind), opt(client_info(kind)), any::<u64>(), tags()),
        (any::<bool>(), any::<i64>(), text(), text(), any::<bool>()),
        (any::<i64>(), text(), data(kind), any::<u64>()),
    )
        .prop_map(
            |(
                (data, info, offset, tags),
                (delta, time, channel, key, removed),
                (score, epoch, prev_data, version),
            )| Publication {
                data,
                info,
                offset,
                tags,
                delta,
                time,
                channel,
                key,
                removed,
                score,
                epoch,
                prev_data,
                version,
            },
        )
}

fn subscribe_result(kind: Data) -> impl Strategy<Value = SubscribeResult> {
    (
        (any::<bool>(), any::<u32>(), any::<bool>(), text()),
        (vec(publication(kind), 0..2), any::<bool>(), any::<u64>()),
        (any::<bool>(), data(kind), any::<bool>(), any::<bool>()),
        (any::<i64>(), any::<i32>(), any::<i32>(), text()),
        (vec(publication(kind), 0..2), any::<u32>()),
    )
        .prop_map(
            |(
                (expires, ttl, recoverable, epoch),
                (publications, recovered, offset),
                (positioned, data, was_recovering, delta),
                (id, r#type, phase, cursor),
                (state, publish_debounce),
            )| SubscribeResult {
                expires,
                ttl,
                recoverable,
                epoch,
                publications,
                recovered,
                offset,
                positioned,
                data,
                was_recovering,
                delta,
                id,
                r#type,
                phase,
                cursor,
                state,
                publish_debounce,
            },
        )
}

fn connect_result(kind: Data) -> impl Strategy<Value = ConnectResult> {
    (
        (text(), text(), any::<bool>(), any::<u32>(), data(kind)),
        btree_map(text(), subscribe_result(kind), 0..2),
        (any::<u32>(), any::<bool>(), text(), text(), any::<i64>()),
    )
        .prop_map(
            |((client, version, expires, ttl, data), subs, (ping, pong, session, node, time))| {
                ConnectResult {
                    client,
                    version,
                    expires,
                    ttl,
                    data,
                    subs,
                    ping,
                    pong,
                    session,
                    node,
                    time,
                }
            },
        )
}

/// The push's connect is the connect result under another name.
fn connect_push(kind: Data) -> impl Strategy<Value = Connect> {
    connect_result(kind).prop_map(|r| Connect {
        client: r.client,
        version: r.version,
        data: r.data,
        subs: r.subs,
        expires: r.expires,
        ttl: r.ttl,
        ping: r.ping,
        pong: r.pong,
        session: r.session,
        node: r.node,
        time: r.time,
    })
}

fn push(kind: Data) -> impl Strategy<Value = Push> {
    let first = (
        opt(publication(kind)),
        opt(opt(client_info(kind)).prop_map(|info| Join { info })),
        opt(opt(client_info(kind)).prop_map(|info| Leave { info })),
        opt((any::<u32>(), text()).prop_map(|(code, reason)| Unsubscribe { code, reason })),
        opt(data(kind).prop_map(|data| Message { data })),
    );
    let second = (
        opt((
            any::<bool>(),
            text(),
            any::<u64>(),
            any::<bool>(),
            data(kind),
        )
            .prop_map(|(recoverable, epoch, offset, positioned, data)| Subscribe {
                recoverable,
                epoch,
                offset,
                positioned,
                data,
            })),
        opt(connect_push(kind)),
        opt(
            (any::<u32>(), text(), any::<bool>()).prop_map(|(code, reason, reconnect)| {
                Disconnect {
                    code,
                    reason,
                    reconnect,
                }
            }),
        ),
        opt((any::<bool>(), any::<u32>()).prop_map(|(expires, ttl)| Refresh { expires, ttl })),
    );
    (any::<i64>(), text(), first, second).prop_map(
        |(
            id,
            channel,
            (r#pub, join, leave, unsubscribe, message),
            (subscribe, connect, disconnect, refresh),
        )| Push {
            id,
            channel,
            r#pub,
            join,
            leave,
            unsubscribe,
            message,
            subscribe,
            connect,
            disconnect,
            refresh,
        },
    )
}

fn reply(kind: Data) -> impl Strategy<Value = Reply> {
    let first = (
        opt(
            (any::<u32>(), text(), any::<bool>()).prop_map(|(code, message, temporary)| Error {
                code,
                message,
                temporary,
            }),
        ),
        opt(push(kind)),
        opt(connect_result(kind)),
        opt(subscribe_result(kind)),
        opt(Just(UnsubscribeResult {})),
        opt(Just(PublishResult {})),
    );
    let second = (
        opt(btree_map(text(), client_info(kind), 0..3)
            .prop_map(|presence| PresenceResult { presence })),
        opt(
            (any::<u32>(), any::<u32>()).prop_map(|(num_clients, num_users)| PresenceStatsResult {
                num_clients,
                num_users,
            }),
        ),
        opt(
            (vec(publication(kind), 0..3), text(), any::<u64>()).prop_map(
                |(publications, epoch, offset)| HistoryResult {
                    publications,
                    epoch,
                    offset,
                },
            ),
        ),
        opt(Just(PingResult {})),
        opt(data(kind).prop_map(|data| RpcResult { data })),
        opt((text(), text(), any::<bool>(), any::<u32>()).prop_map(
            |(client, version, expires, ttl)| RefreshResult {
                client,
                version,
                expires,
                ttl,
            },
        )),
        opt((any::<bool>(), any::<u32>())
            .prop_map(|(expires, ttl)| SubRefreshResult { expires, ttl })),
    );
    (any::<u32>(), first, second).prop_map(
        |(
            id,
            (error, push, connect, subscribe, unsubscribe, publish),
            (presence, presence_stats, history, ping, rpc, refresh, sub_refresh),
        )| Reply {
            id,
            error,
            push,
            connect,
            subscribe,
            unsubscribe,
            publish,
            presence,
            presence_stats,
            history,
            ping,
            rpc,
            refresh,
            sub_refresh,
        },
    )
}

// ---------- how an SDK encodes commands and decodes replies ----------

fn encode_commands(format: Format, commands: &[Command]) -> Vec<u8> {
    let mut frame = Vec::new();
    for command in commands {
        match format {
            Format::Json => {
                if !frame.is_empty() {
                    frame.push(b'\n');
                }
                frame.extend(serde_json::to_vec(command).expect("a command encodes"));
            }
            Format::Protobuf => frame.extend(command.encode_length_delimited_to_vec()),
        }
    }
    frame
}

fn decode_replies(format: Format, frame: Bytes) -> Vec<Reply> {
    match format {
        Format::Json => frame
            .split(|&b| b == b'\n')
            .map(|line| serde_json::from_slice(line).expect("a reply line decodes"))
            .collect(),
        Format::Protobuf => {
            let mut buf = frame;
            let mut out = Vec::new();
            while buf.has_remaining() {
                out.push(Reply::decode_length_delimited(&mut buf).expect("a reply decodes"));
            }
            out
        }
    }
}

fn encode_replies(format: Format, replies: &[Reply]) -> Bytes {
    let parts: Vec<Bytes> = replies
        .iter()
        .map(|r| codec::try_encode_reply(format, r).expect("a generated reply encodes"))
        .collect();
    let mut frame = BytesMut::new();
    codec::join_frame(format, &parts, &mut frame);
    frame.freeze()
}

// ---------- round trips ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn json_commands_round_trip(commands in vec(command(Data::Json), 1..4)) {
        let frame = encode_commands(Format::Json, &commands);
        prop_assert_eq!(codec::decode_commands(Format::Json, &frame).unwrap(), commands);
    }

    #[test]
    fn protobuf_commands_round_trip(commands in vec(command(Data::Any), 1..4)) {
        let frame = encode_commands(Format::Protobuf, &commands);
        prop_assert_eq!(codec::decode_commands(Format::Protobuf, &frame).unwrap(), commands);
    }

    #[test]
    fn json_replies_round_trip(replies in vec(reply(Data::Json), 1..4)) {
        let frame = encode_replies(Format::Json, &replies);
        prop_assert_eq!(decode_replies(Format::Json, frame), replies);
    }

    #[test]
    fn protobuf_replies_round_trip(replies in vec(reply(Data::Any), 1..4)) {
        let frame = encode_replies(Format::Protobuf, &replies);
        prop_assert_eq!(decode_replies(Format::Protobuf, frame), replies);
    }

    /// Pushes travel alone (id 0) as well as next to replies; the infallible encoder must not
    /// have replaced one with its fallback error.
    #[test]
    fn pushes_round_trip(json in push(Data::Json), any_bytes in push(Data::Any)) {
        for (format, push) in [(Format::Json, json), (Format::Protobuf, any_bytes)] {
            let reply = Reply { push: Some(push), ..Default::default() };
            let frame = codec::encode_reply(format, &reply);
            prop_assert_eq!(decode_replies(format, frame), vec![reply]);
        }
    }

    /// Pretty-printed JSON in a `bytes` field: the encoded reply stays on one line (newline
    /// framing) and the client gets the same JSON text, its line breaks turned into spaces.
    /// (Text, not parsed values, is compared: serde_json's default float parsing may be one
    /// ulp off, which is no concern of the codec, that never parses `bytes` values.)
    #[test]
    fn multi_line_json_data_stays_on_one_line(value in json_value(), crlf in any::<bool>()) {
        let mut pretty = serde_json::to_string_pretty(&value).unwrap();
        if crlf {
            pretty = pretty.replace('\n', "\r\n");
        }
        let reply = Reply {
            rpc: Some(RpcResult { data: Bytes::from(pretty.clone()) }),
            ..Default::default()
        };
        let line = codec::try_encode_reply(Format::Json, &reply).unwrap();
        prop_assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        let back: Reply = serde_json::from_slice(&line).unwrap();
        let data = back.rpc.unwrap_or_default().data;
        if value.is_null() {
            prop_assert!(data.is_empty());
        } else {
            let one_line = pretty.replace(['\n', '\r'], " ");
            prop_assert_eq!(&data[..], one_line.as_bytes());
        }
    }

    #[test]
    fn emulation_requests_round_trip(
        node in text(),
        session in text(),
        commands in vec(command(Data::Json), 0..3),
    ) {
        // A JSON connection posts its commands as a string...
        let data = String::from_utf8(encode_commands(Format::Json, &commands)).unwrap();
        let body = serde_json::json!({"node": node, "session": session, "data": data});
        let request = emulation::decode_request(Format::Json, body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&request.node, &node);
        prop_assert_eq!(&request.session, &session);
        prop_assert_eq!(codec::decode_commands(Format::Json, &request.data).unwrap(), commands);
        // ...a Protobuf one posts the message.
        let sent = EmulationRequest {
            node,
            session,
            data: Bytes::from(encode_commands(Format::Protobuf, &[Command::default()])),
        };
        let got = emulation::decode_request(Format::Protobuf, &sent.encode_to_vec()).unwrap();
        prop_assert_eq!(got, sent);
    }
}

// ---------- no input panics ----------

/// The command decoders on hostile input: each case may fail to decode, none may panic.
fn decode_anyhow(frame: &[u8]) {
    let _ = codec::decode_commands(Format::Json, frame);
    let _ = codec::decode_commands(Format::Protobuf, frame);
    let _ = emulation::decode_request(Format::Json, frame);
    let _ = emulation::decode_request(Format::Protobuf, frame);
}

/// One edit of an encoded frame: overwrite, insert or remove the byte at `at` (mod length).
fn mutate(mut frame: Vec<u8>, op: u8, at: usize, byte: u8) -> Vec<u8> {
    if frame.is_empty() {
        return vec![byte];
    }
    let at = at % frame.len();
    match op % 3 {
        0 => frame[at] = byte,
        1 => frame.insert(at, byte),
        _ => {
            frame.remove(at);
        }
    }
    frame
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(frame in vec(any::<u8>(), 0..256)) {
        decode_anyhow(&frame);
    }

    /// Bytes from JSON's alphabet reach deeper into the JSON parser than random bytes.
    #[test]
    fn json_like_text_never_panics(frame in r#"[{}\[\]":,0-9.eE+\-a-z_\\ \n\r\t]{0,128}"#) {
        decode_anyhow(frame.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Valid frames with one byte changed: close to valid, so every decoder stage is reached.
    #[test]
    fn mutated_frames_never_panic(
        json in command(Data::Json),
        any_bytes in command(Data::Any),
        edits in vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut json = encode_commands(Format::Json, &[json]);
        let mut protobuf = encode_commands(Format::Protobuf, &[any_bytes]);
        for (op, at, byte) in edits {
            json = mutate(json, op, at, byte);
            protobuf = mutate(protobuf, op, at, byte);
            decode_anyhow(&json);
            decode_anyhow(&protobuf);
        }
    }
}
