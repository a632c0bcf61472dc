//! One function per server API method: parse the params, call the node, shape the result.

use base64::Engine as _;
use bytes::Bytes;
use herald_engine::broker::{HistoryQuery, StreamPosition};
use herald_engine::trace::Parent;
use herald_engine::{Node, PublishOptions};
use herald_protocol::codes::{self, Disconnect};
use herald_protocol::proto::Publication;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::error::{ApiErrorBody, bad_request};
use super::types::*;

/// Every method of `POST /api/<method>`: the values of the API metrics' `method` label (any
/// other name counts as `unknown`, so a client cannot grow the series).
pub const METHODS: [&str; 12] = [
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "info",
    "channels",
    "history",
    "history_remove",
    "presence",
    "presence_stats",
    "batch",
];

#[derive(Debug)]
pub enum CallError {
    /// The body is not JSON of the method's shape (HTTP 400).
    Parse(String),
    /// No such method (HTTP 404).
    UnknownMethod,
    /// A well-formed request that failed (an `error` in the reply).
    Api(ApiErrorBody),
}

impl From<ApiErrorBody> for CallError {
    fn from(e: ApiErrorBody) -> Self {
        CallError::Api(e)
    }
}

fn parse<T: DeserializeOwned>(params: &[u8]) -> Result<T, CallError> {
    let params = if params.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        params
    };
    serde_json::from_slice(params).map_err(|e| CallError::Parse(e.to_string()))
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The span name of each method (`None`: no such method). Static names keep the span names a
/// bounded set whatever the requests say.
pub fn span_name(method: &str) -> Option<&'static str> {
    Some(match method {
        "publish" => "api publish",
        "broadcast" => "api broadcast",
        "subscribe" => "api subscribe",
        "unsubscribe" => "api unsubscribe",
        "disconnect" => "api disconnect",
        "info" => "api info",
        "channels" => "api channels",
        "history" => "api history",
        "history_remove" => "api history_remove",
        "presence" => "api presence",
        "presence_stats" => "api presence_stats",
        "batch" => "api batch",
        _ => return None,
    })
}

/// Runs one method. `trace`: the API call's span, the parent of what the method publishes.
pub async fn call(
    node: &Node,
    method: &str,
    params: &[u8],
    trace: &Parent,
) -> Result<Value, CallError> {
    match method {
        "publish" => publish(node, parse(params)?, trace).await.map(to_value),
        "broadcast" => Ok(to_value(broadcast(node, parse(params)?, trace).await?)),
        "subscribe" => subscribe(node, parse(params)?).await.map(to_value),
        "unsubscribe" => unsubscribe(node, parse(params)?).await.map(to_value),
        "disconnect" => disconnect(node, parse(params)?).await.map(to_value),
        "info" => Ok(to_value(info(node))),
        "channels" => Ok(to_value(channels(node, parse(params)?))),
        "history" => history(node, parse(params)?).await.map(to_value),
        "history_remove" => history_remove(node, parse(params)?).await.map(to_value),
        "presence" => presence(node, parse(params)?).await.map(to_value),
        "presence_stats" => presence_stats(node, parse(params)?).await.map(to_value),
        _ => Err(CallError::UnknownMethod),
    }
}

/// `/api/batch`: every command in order (or concurrently with `parallel`), one reply each.
pub async fn batch(node: &Node, body: &[u8], trace: &Parent) -> Result<Value, CallError> {
    let request: BatchRequest = parse(body)?;
    let run = |command: std::collections::BTreeMap<String, Raw>| async move {
        let Some((method, params)) = command.into_iter().next() else {
            return json!({"error": bad_request()});
        };
        match call(node, &method, params.get().as_bytes(), trace).await {
            Ok(v) => json!({ method: v }),
            Err(CallError::Api(e)) => json!({"error": e}),
            Err(CallError::Parse(_)) => json!({"error": bad_request()}),
            Err(CallError::UnknownMethod) => {
                json!({"error": ApiErrorBody::from(codes::METHOD_NOT_FOUND)})
            }
        }
    };
    let replies = if request.parallel {
        futures_util::future::join_all(request.commands.into_iter().map(run)).await
    } else {
        let mut replies = Vec::with_capacity(request.commands.len());
        for command in request.commands {
            replies.push(run(command).await);
        }
        replies
    };
    Ok(json!({ "replies": replies }))
}

fn payload(data: &Option<Raw>, b64data: &str) -> Result<Bytes, CallError> {
    if let Some(data) = raw_bytes(data) {
        return Ok(data);
    }
    if !b64data.is_empty() {
        return base64::engine::general_purpose::STANDARD
            .decode(b64data)
            .map(Bytes::from)
            .map_err(|_| bad_request().into());
    }
    Err(bad_request().into())
}

async fn publish(
    node: &Node,
    req: PublishRequest,
    trace: &Parent,
) -> Result<PublishResult, CallError> {
    if req.channel.is_empty() {
        return Err(bad_request().into());
    }
    let data = payload(&req.data, &req.b64data)?;
    let key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key.as_str());
    publish_one(
        node,
        &req.channel,
        data,
        &req.tags,
        req.skip_history,
        key,
        trace,
    )
    .await
}

async fn publish_one(
    node: &Node,
    channel: &str,
    data: Bytes,
    tags: &std::collections::BTreeMap<String, String>,
    skip_history: bool,
    idempotency_key: Option<&str>,
    trace: &Parent,
) -> Result<PublishResult, CallError> {
    let position = node
        .publish(
            channel,
            data,
            PublishOptions {
                info: None,
                tags: tags.clone(),
                skip_history,
                idempotency_key: idempotency_key.map(str::to_owned),
                trace: trace.clone(),
            },
        )
        .await
        .map_err(|e| CallError::Api((&e).into()))?;
    Ok(match position {
        Some(p) => PublishResult {
            offset: Some(p.offset),
            epoch: Some(p.epoch),
        },
        None => PublishResult::default(),
    })
}

async fn broadcast(
    node: &Node,
    req: BroadcastRequest,
    trace: &Parent,
) -> Result<BroadcastResult, CallError> {
    if req.channels.is_empty() {
        return Err(bad_request().into());
    }
    let data = payload(&req.data, &req.b64data)?;
    // One key for every channel: each channel remembers it on its own.
    let key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key.as_str());
    let mut responses = Vec::with_capacity(req.channels.len());
    for channel in &req.channels {
        responses.push(
            match publish_one(
                node,
                channel,
                data.clone(),
                &req.tags,
                req.skip_history,
                key,
                trace,
            )
            .await
            {
                Ok(r) => Outcome::Result(r),
                Err(CallError::Api(e)) => Outcome::Error(e),
                Err(_) => Outcome::Error(bad_request()),
            },
        );
    }
    Ok(BroadcastResult { responses })
}

fn client_filter(client: &str) -> Option<&str> {
    (!client.is_empty()).then_some(client)
}

async fn subscribe(node: &Node, req: SubscribeRequest) -> Result<Empty, CallError> {
    if req.user.is_empty() || req.channel.is_empty() {
        return Err(bad_request().into());
    }
    node.subscribe(
        &req.user,
        &req.channel,
        client_filter(&req.client),
        raw_bytes(&req.info),
        raw_bytes(&req.data),
    )
    .await
    .map_err(|e| CallError::Api((&e).into()))?;
    Ok(Empty {})
}

async fn unsubscribe(node: &Node, req: UnsubscribeRequest) -> Result<Empty, CallError> {
    if req.user.is_empty() || req.channel.is_empty() {
        return Err(bad_request().into());
    }
    node.unsubscribe(&req.user, &req.channel, client_filter(&req.client))
        .await
        .map_err(|e| CallError::Api((&e).into()))?;
    Ok(Empty {})
}

async fn disconnect(node: &Node, req: DisconnectRequest) -> Result<Empty, CallError> {
    if req.user.is_empty() {
        return Err(bad_request().into());
    }
    let disconnect = match req.disconnect {
        None => codes::disconnect::FORCE_DISCONNECT,
        Some(spec) => {
            // Custom codes must stay in the ranges clients understand.
            let code = u16::try_from(spec.code)
                .ok()
                .filter(|c| (3000..5000).contains(c))
                .ok_or_else(bad_request)?;
            Disconnect::custom(code, spec.reason)
        }
    };
    node.disconnect(
        &req.user,
        client_filter(&req.client),
        &req.whitelist,
        disconnect,
    )
    .await
    .map_err(|e| CallError::Api((&e).into()))?;
    Ok(Empty {})
}

async fn history(node: &Node, req: HistoryRequest) -> Result<HistoryResult, CallError> {
    if req.channel.is_empty() {
        return Err(bad_request().into());
    }
    let limit = match req.limit {
        None | Some(0) => Some(0),
        Some(n) if n < 0 => None,
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let page = node
        .history(
            &req.channel,
            HistoryQuery {
                since: req.since.map(|s| StreamPosition {
                    offset: s.offset,
                    epoch: s.epoch,
                }),
                limit,
                reverse: req.reverse,
            },
        )
        .await
        .map_err(|e| CallError::Api((&e).into()))?;
    Ok(HistoryResult {
        publications: page.publications.iter().map(publication_json).collect(),
        epoch: page.position.epoch,
        offset: page.position.offset,
    })
}

/// A publication as the API shows it: `data` verbatim when it is JSON, `b64data` otherwise.
fn publication_json(p: &Publication) -> Value {
    let mut v = serde_json::Map::new();
    match serde_json::from_slice::<&RawValue>(&p.data) {
        Ok(raw) => v.insert(
            "data".into(),
            serde_json::to_value(raw).unwrap_or(Value::Null),
        ),
        Err(_) => v.insert(
            "b64data".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&p.data)),
        ),
    };
    if let Some(info) = &p.info {
        v.insert(
            "info".into(),
            serde_json::to_value(info).unwrap_or(Value::Null),
        );
    }
    v.insert("offset".into(), Value::from(p.offset));
    if !p.tags.is_empty() {
        v.insert(
            "tags".into(),
            serde_json::to_value(&p.tags).unwrap_or(Value::Null),
        );
    }
    Value::Object(v)
}

async fn presence(node: &Node, req: ChannelRequest) -> Result<Value, CallError> {
    if req.channel.is_empty() {
        return Err(bad_request().into());
    }
    let presence = node
        .presence(&req.channel)
        .await
        .map_err(|e| CallError::Api((&e).into()))?;
    let clients: serde_json::Map<String, Value> = presence
        .into_iter()
        .map(|(client, info)| (client, serde_json::to_value(&info).unwrap_or(Value::Null)))
        .collect();
    Ok(json!({ "presence": clients }))
}

async fn presence_stats(node: &Node, req: ChannelRequest) -> Result<Value, CallError> {
    if req.channel.is_empty() {
        return Err(bad_request().into());
    }
    let (clients, users) = node
        .presence_stats(&req.channel)
        .await
        .map_err(|e| CallError::Api((&e).into()))?;
    Ok(json!({ "num_clients": clients, "num_users": users }))
}

async fn history_remove(node: &Node, req: ChannelRequest) -> Result<Empty, CallError> {
    if req.channel.is_empty() {
        return Err(bad_request().into());
    }
    node.remove_history(&req.channel)
        .await
        .map_err(|e| CallError::Api((&e).into()))?;
    Ok(Empty {})
}

fn info(node: &Node) -> InfoResult {
    InfoResult {
        nodes: node
            .nodes()
            .into_iter()
            .map(|i| NodeResult {
                uid: i.uid,
                name: i.name,
                version: i.version,
                num_clients: i.num_clients,
                num_users: i.num_users,
                num_channels: i.num_channels,
                num_subs: i.num_subs,
                uptime: i.uptime.as_secs(),
            })
            .collect(),
    }
}

fn channels(node: &Node, req: ChannelsRequest) -> ChannelsResult {
    ChannelsResult {
        channels: node
            .channels()
            .into_iter()
            .filter(|(ch, _)| req.pattern.is_empty() || glob_match(&req.pattern, ch))
            .map(|(ch, n)| (ch, ChannelInfo { num_clients: n }))
            .collect(),
    }
}

/// Glob with `*` (any run, possibly empty) and `?` (one character).
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::{CallError, METHODS, call, glob_match};
    use herald_engine::config::ChannelConfig;
    use herald_engine::testing::node::node_config;
    use herald_engine::trace::Parent;
    use herald_engine::{MemoryBroker, Node};

    /// The metrics label only the methods in METHODS: each must be one `call` serves.
    #[tokio::test]
    async fn every_listed_method_is_served_and_no_other() {
        let broker = std::sync::Arc::new(MemoryBroker::new());
        let node = Node::new(node_config(ChannelConfig::default()), broker).unwrap();
        for method in METHODS.iter().filter(|m| **m != "batch") {
            let outcome = call(&node, method, b"[not json", &Parent::None).await;
            assert!(
                !matches!(outcome, Err(CallError::UnknownMethod)),
                "{method} is listed but not served"
            );
        }
        let outcome = call(&node, "no_such_method", b"{}", &Parent::None).await;
        assert!(matches!(outcome, Err(CallError::UnknownMethod)));
    }

    #[test]
    fn glob() {
        assert!(glob_match("chat:*", "chat:room"));
        assert!(glob_match("*", ""));
        assert!(glob_match("c?at:*1", "chat:room1"));
        assert!(!glob_match("chat:*", "news:1"));
        assert!(!glob_match("a?", "a"));
    }
}
