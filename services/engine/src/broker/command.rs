//! Commands between nodes, carried by the broker's control channel: what must reach a client
//! wherever it is connected (server API disconnect, subscribe, unsubscribe), and node heartbeats
//! so every node knows its live peers. Rare and small, so they travel as JSON.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NodeCommand {
    Disconnect {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        whitelist: Vec<String>,
        code: u16,
        reason: String,
    },
    Subscribe {
        user: String,
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        /// Raw JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        info: Option<String>,
        /// Raw JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    Unsubscribe {
        user: String,
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// A node is alive; sent every heartbeat interval.
    Heartbeat(NodeStats),
    /// A node is stopping; peers forget it at once instead of waiting for its heartbeat to expire.
    Leave { uid: String },
}

/// What a node tells its peers about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: u64,
    pub num_users: u64,
    pub num_channels: u64,
    pub num_subs: u64,
    pub uptime: u64,
}

impl NodeCommand {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<NodeCommand> {
        serde_json::from_slice(bytes)
            .inspect_err(|e| tracing::warn!(error = %e, "undecodable node command"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_unknown_fields() {
        let cmd = NodeCommand::Disconnect {
            user: "u".into(),
            client: None,
            whitelist: vec![],
            code: 3503,
            reason: "force disconnect".into(),
        };
        assert_eq!(NodeCommand::decode(&cmd.encode()), Some(cmd));
        let newer = br#"{"type":"leave","uid":"n1","from_the_future":1}"#;
        assert_eq!(
            NodeCommand::decode(newer),
            Some(NodeCommand::Leave { uid: "n1".into() })
        );
        assert_eq!(NodeCommand::decode(b"{\"type\":\"unknown\"}"), None);
    }
}
