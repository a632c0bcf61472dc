//! Channel names and the rules that apply to them: namespace lookup, private (`$`) channels and
//! user-limited channels (`news#42`, `dialog#42,43`).

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{ChannelConfig, ChannelOptions};

/// Separates the namespace from the rest of a channel name: `chat:room1`.
pub const NAMESPACE_BOUNDARY: char = ':';
/// Separates the user list of a user-limited channel: `news#42`.
pub const USER_BOUNDARY: char = '#';
/// Channels starting with it always need a subscription token.
pub const PRIVATE_PREFIX: char = '$';

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("unknown namespace {0:?}")]
    UnknownNamespace(String),
    /// `{` and `}` mark a Redis Cluster hash tag in the channel's keys: a name holding them
    /// would choose the slot of its history and presence keys itself.
    #[error("channel name holds `{{` or `}}`")]
    Braces,
}

/// Options granted to every channel in dev mode, where anyone may do anything.
/// Options of a channel in an unconfigured namespace in dev mode: every permission, no
/// history or presence (they cost memory and are a per-namespace decision).
static INSECURE: ChannelOptions = ChannelOptions {
    allow_subscribe_for_client: true,
    allow_publish_for_subscriber: true,
    allow_publish_for_client: true,
    allow_user_limited_channels: true,
    history_size: 0,
    history_ttl: Duration::ZERO,
    force_recovery: false,
    allow_recovery: true,
    force_positioning: false,
    presence: false,
    join_leave: false,
    force_push_join_leave: false,
    allow_history_for_subscriber: true,
    allow_presence_for_subscriber: true,
};

/// Resolves a channel name to its options. Built once per node; lookups are lock-free reads.
#[derive(Debug)]
pub struct ChannelRules {
    without_namespace: ChannelOptions,
    namespaces: HashMap<String, ChannelOptions>,
    max_length: usize,
    insecure: bool,
}

impl ChannelRules {
    pub fn new(config: &ChannelConfig) -> Self {
        // In dev mode every permission is granted, but a namespace's features (history,
        // presence) stay as configured.
        let grant = |o: &ChannelOptions| {
            if !config.insecure {
                return o.clone();
            }
            ChannelOptions {
                allow_subscribe_for_client: true,
                allow_publish_for_subscriber: true,
                allow_publish_for_client: true,
                allow_user_limited_channels: true,
                allow_recovery: o.allow_recovery || o.has_history(),
                allow_history_for_subscriber: o.allow_history_for_subscriber || o.has_history(),
                allow_presence_for_subscriber: o.allow_presence_for_subscriber || o.presence,
                ..o.clone()
            }
        };
        Self {
            without_namespace: grant(&config.without_namespace),
            namespaces: config
                .namespaces
                .iter()
                .map(|ns| (ns.name.clone(), grant(&ns.options)))
                .collect(),
            max_length: config.max_channel_length,
            insecure: config.insecure,
        }
    }

    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// Validates the name and finds the options of its namespace.
    pub fn resolve(&self, channel: &str) -> Result<&ChannelOptions, ChannelError> {
        if channel.is_empty() {
            return Err(ChannelError::Empty);
        }
        if channel.len() > self.max_length {
            return Err(ChannelError::TooLong {
                max: self.max_length,
            });
        }
        if channel.contains(['{', '}']) {
            return Err(ChannelError::Braces);
        }
        match namespace_of(channel) {
            None => Ok(&self.without_namespace),
            Some(ns) => match self.namespaces.get(ns) {
                Some(options) => Ok(options),
                // Dev mode takes any namespace.
                None if self.insecure => Ok(&INSECURE),
                None => Err(ChannelError::UnknownNamespace(ns.to_string())),
            },
        }
    }
}

/// The namespace of a channel: the part before the first `:`, after a leading `$`.
pub fn namespace_of(channel: &str) -> Option<&str> {
    let name = channel.strip_prefix(PRIVATE_PREFIX).unwrap_or(channel);
    name.split_once(NAMESPACE_BOUNDARY).map(|(ns, _)| ns)
}

pub fn is_private(channel: &str) -> bool {
    channel.starts_with(PRIVATE_PREFIX)
}

/// For a user-limited channel (`news#42`, `dialog#42,43`), whether `user` is one of its users.
/// `None` when the channel is not user-limited.
pub fn user_limited_allows(channel: &str, user: &str) -> Option<bool> {
    let (_, users) = channel.rsplit_once(USER_BOUNDARY)?;
    Some(!user.is_empty() && users.split(',').any(|u| u == user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Namespace;

    fn rules() -> ChannelRules {
        ChannelRules::new(&ChannelConfig {
            namespaces: vec![Namespace {
                name: "chat".into(),
                options: ChannelOptions {
                    allow_subscribe_for_client: true,
                    ..Default::default()
                },
            }],
            ..Default::default()
        })
    }

    #[test]
    fn namespace_is_the_part_before_the_first_colon() {
        assert_eq!(namespace_of("chat:room:1"), Some("chat"));
        assert_eq!(namespace_of("$chat:room"), Some("chat"));
        assert_eq!(namespace_of("room"), None);
    }

    #[test]
    fn resolve_finds_namespace_options_and_rejects_unknown() {
        let r = rules();
        assert!(r.resolve("chat:1").unwrap().allow_subscribe_for_client);
        assert!(!r.resolve("news").unwrap().allow_subscribe_for_client);
        assert_eq!(
            r.resolve("nope:1"),
            Err(ChannelError::UnknownNamespace("nope".into()))
        );
        assert_eq!(r.resolve(""), Err(ChannelError::Empty));
        assert_eq!(r.resolve(&"a".repeat(255)).map(|_| ()), Ok(()));
        assert_eq!(
            r.resolve(&"a".repeat(256)),
            Err(ChannelError::TooLong { max: 255 })
        );
        for braced in ["chat:{room}", "{x}", "news}", "chat:a{"] {
            assert_eq!(r.resolve(braced), Err(ChannelError::Braces), "{braced}");
        }
    }

    #[test]
    fn user_limited_channels_list_their_users() {
        assert_eq!(user_limited_allows("news#42", "42"), Some(true));
        assert_eq!(user_limited_allows("dialog#42,43", "43"), Some(true));
        assert_eq!(user_limited_allows("dialog#42,43", "4"), Some(false));
        assert_eq!(user_limited_allows("news#", ""), Some(false));
        assert_eq!(user_limited_allows("news", "42"), None);
    }
}
