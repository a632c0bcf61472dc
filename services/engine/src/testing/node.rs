//! Building blocks for nodes in tests: a configuration with a known HMAC key and tokens signed
//! with it.

use std::time::Duration;

use crate::auth::{HmacAlg, NewConnectToken, TokenSigner};
use crate::config::{ChannelConfig, ClientConfig, TokenConfig, TokenKey};
use crate::node::NodeConfig;

/// The HMAC key of [`node_config`].
pub const TEST_SECRET: &[u8] = b"engine-test-secret-0123456789abcdef";

/// A node configuration verifying tokens with [`TEST_SECRET`], with these channel rules.
pub fn node_config(channels: ChannelConfig) -> NodeConfig {
    NodeConfig {
        name: "test".into(),
        version: "0.0.0-test".into(),
        client: ClientConfig::default(),
        channels,
        token: TokenConfig {
            key: TokenKey::Hmac(TEST_SECRET.to_vec()),
            previous_key: None,
            audience: None,
            issuer: None,
        },
        heartbeat_interval: Duration::from_secs(3),
    }
}

/// A connection token for `user` signed with [`TEST_SECRET`] (`exp`: unix seconds, or none).
pub fn token(user: &str, exp: Option<u64>) -> String {
    TokenSigner::hmac(TEST_SECRET, HmacAlg::HS256)
        .sign(&NewConnectToken {
            sub: user.into(),
            exp,
            ..Default::default()
        })
        .expect("sign test token")
}

/// Hands `frame` (an encoded publication push, used for every format) to the node's local
/// subscribers of `channel` as the broker would, at `offset` of the stream `epoch`: how a test
/// makes a publication arrive twice, out of order, or from another stream. Returns how many
/// subscribers it reached.
pub fn arrive(
    node: &crate::Node,
    channel: &str,
    offset: u64,
    epoch: &str,
    frame: bytes::Bytes,
) -> usize {
    let at = crate::channel_log::StreamTag::new(offset, epoch);
    node.inner()
        .hub
        .deliver(channel, Some(at), |_| Some(frame.clone()))
}
