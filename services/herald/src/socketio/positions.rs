//! The offset token of Socket.IO connection state recovery: which channels a connection is in,
//! and, for channels with history, the position of the last publication it was sent.
//!
//! socket.io-client keeps the last string argument of every event it receives and sends it
//! back, with the `pid` of its session, when it reconnects. Herald's nodes keep no state for a
//! disconnected client, so the token carries it all: `["<pid>",[["<channel>",<offset>,"<epoch>"],
//! ["<channel without history>"]]]`, as JSON text.

use std::collections::BTreeMap;

use serde_json::Value;

/// The most channels a token restores: a client cannot make a reconnect cost more than this.
pub const MAX_CHANNELS: usize = 128;

/// The channels of a token, each with its position when its channel has history.
pub type Channels = Vec<(String, Option<(u64, String)>)>;

#[derive(Debug, Default)]
pub struct Positions {
    channels: BTreeMap<String, Option<(u64, String)>>,
}

/// The channel of a JSON string literal (what a push carries).
fn unquote(raw: &str) -> Option<String> {
    serde_json::from_str(raw).ok()
}

impl Positions {
    pub fn insert_raw(&mut self, channel_raw: &str, position: Option<(u64, String)>) {
        if let Some(channel) = unquote(channel_raw) {
            self.channels.insert(channel, position);
        }
    }

    pub fn remove_raw(&mut self, channel_raw: &str) {
        if let Some(channel) = unquote(channel_raw) {
            self.remove(&channel);
        }
    }

    pub fn remove(&mut self, channel: &str) {
        self.channels.remove(channel);
    }

    pub fn contains(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// A publication at `offset` was sent in the channel.
    pub fn advance_raw(&mut self, channel_raw: &str, offset: u64) {
        let Some(channel) = unquote(channel_raw) else {
            return;
        };
        if let Some(Some((at, _))) = self.channels.get_mut(&channel) {
            *at = (*at).max(offset);
        }
    }

    /// The token for session `pid`.
    pub fn token(&self, pid: &str) -> String {
        let channels: Vec<Value> = self
            .channels
            .iter()
            .map(|(channel, position)| match position {
                Some((offset, epoch)) => serde_json::json!([channel, offset, epoch]),
                None => serde_json::json!([channel]),
            })
            .collect();
        serde_json::json!([pid, channels]).to_string()
    }

    /// The pid and channels of a token; `None` for anything that is not one.
    pub fn parse_token(token: &str) -> Option<(String, Channels)> {
        let Value::Array(parts) = serde_json::from_str::<Value>(token).ok()? else {
            return None;
        };
        let [Value::String(pid), Value::Array(channels)] = &parts[..] else {
            return None;
        };
        if channels.len() > MAX_CHANNELS {
            return None;
        }
        let channels = channels
            .iter()
            .map(|entry| match entry.as_array()?.as_slice() {
                [Value::String(channel)] => Some((channel.clone(), None)),
                [Value::String(channel), offset, Value::String(epoch)] => {
                    Some((channel.clone(), Some((offset.as_u64()?, epoch.clone()))))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some((pid.clone(), channels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_follows_publications() {
        let mut positions = Positions::default();
        positions.insert_raw("\"news\"", Some((3, "ep".into())));
        positions.insert_raw("\"chat \\\"x\\\"\"", None);
        positions.advance_raw("\"news\"", 7);
        positions.advance_raw("\"news\"", 5);
        positions.advance_raw("\"chat \\\"x\\\"\"", 9);
        let token = positions.token("p1");
        let (pid, channels) = Positions::parse_token(&token).unwrap();
        assert_eq!(pid, "p1");
        assert_eq!(
            channels,
            vec![
                ("chat \"x\"".to_owned(), None),
                ("news".to_owned(), Some((7, "ep".to_owned())))
            ]
        );
        positions.remove_raw("\"news\"");
        assert!(!positions.contains("news"));
    }

    #[test]
    fn anything_else_is_not_a_token() {
        for bad in [
            "",
            "x",
            "[]",
            "[\"p\"]",
            "[\"p\",[[1]]]",
            "[\"p\",[[\"c\",-1,\"e\"]]]",
            "[\"p\",[[\"c\",1]]]",
            "{\"p\":1}",
        ] {
            assert!(Positions::parse_token(bad).is_none(), "{bad}");
        }
        let many: Vec<Value> = (0..=MAX_CHANNELS)
            .map(|i| serde_json::json!([i.to_string()]))
            .collect();
        let token = serde_json::json!(["p", many]).to_string();
        assert!(Positions::parse_token(&token).is_none());
    }
}
