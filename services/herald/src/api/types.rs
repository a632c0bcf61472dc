//! Request and result shapes of the server API, as Centrifugo's HTTP API defines them.
//! Unknown fields are ignored so newer clients keep working.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ApiErrorBody;

/// A JSON payload kept verbatim (publication data, info).
pub type Raw = Box<RawValue>;

pub fn raw_bytes(raw: &Option<Raw>) -> Option<Bytes> {
    raw.as_ref()
        .filter(|r| r.get() != "null")
        .map(|r| Bytes::copy_from_slice(r.get().as_bytes()))
}

#[derive(Debug, Deserialize)]
pub struct PublishRequest {
    #[serde(default)]
    pub channel: String,
    pub data: Option<Raw>,
    #[serde(default)]
    pub b64data: String,
    #[serde(default)]
    pub skip_history: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub idempotency_key: String,
}

#[derive(Debug, Deserialize)]
pub struct BroadcastRequest {
    #[serde(default)]
    pub channels: Vec<String>,
    pub data: Option<Raw>,
    #[serde(default)]
    pub b64data: String,
    #[serde(default)]
    pub skip_history: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub idempotency_key: String,
}

/// `{offset, epoch}`: a place in a channel's stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Position {
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub epoch: String,
}

/// `history`: `{channel, limit?, since?, reverse?}`. Without `limit` (or 0) only the stream's
/// position is returned; a negative limit returns everything kept.
#[derive(Debug, Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub since: Option<Position>,
    #[serde(default)]
    pub reverse: bool,
}

#[derive(Debug, Serialize)]
pub struct HistoryResult {
    pub publications: Vec<serde_json::Value>,
    pub epoch: String,
    pub offset: u64,
}

/// `history_remove`: `{channel}`.
#[derive(Debug, Deserialize)]
pub struct ChannelRequest {
    #[serde(default)]
    pub channel: String,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BroadcastResult {
    pub responses: Vec<Outcome<PublishResult>>,
}

/// One entry of a list of results: `{"result":…}` or `{"error":…}`.
#[derive(Debug, Serialize)]
pub enum Outcome<T> {
    #[serde(rename = "result")]
    Result(T),
    #[serde(rename = "error")]
    Error(ApiErrorBody),
}

#[derive(Debug, Deserialize)]
pub struct DisconnectRequest {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub session: String,
    #[serde(default)]
    pub whitelist: Vec<String>,
    pub disconnect: Option<DisconnectSpec>,
}

#[derive(Debug, Deserialize)]
pub struct DisconnectSpec {
    pub code: u32,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
pub struct UnsubscribeRequest {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub session: String,
}

#[derive(Debug, Deserialize)]
pub struct SubscribeRequest {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub session: String,
    pub info: Option<Raw>,
    pub data: Option<Raw>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChannelsRequest {
    #[serde(default)]
    pub pattern: String,
}

#[derive(Debug, Serialize)]
pub struct ChannelsResult {
    pub channels: BTreeMap<String, ChannelInfo>,
}

#[derive(Debug, Serialize)]
pub struct ChannelInfo {
    pub num_clients: usize,
}

#[derive(Debug, Serialize)]
pub struct InfoResult {
    pub nodes: Vec<NodeResult>,
}

#[derive(Debug, Serialize)]
pub struct NodeResult {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: usize,
    pub num_users: usize,
    pub num_channels: usize,
    pub num_subs: usize,
    pub uptime: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct Empty {}

/// `/api/batch`: `{"commands":[{"publish":{…}},{"broadcast":{…}},…]}`.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    #[serde(default)]
    pub commands: Vec<BTreeMap<String, Raw>>,
    #[serde(default)]
    pub parallel: bool,
}
