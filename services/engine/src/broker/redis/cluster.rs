//! A Redis Cluster shard: sharded PUB/SUB (SSUBSCRIBE/SPUBLISH), so a channel's traffic stays on
//! the cluster node that owns its slot and capacity grows with the cluster's shards. The cluster
//! client follows the topology and re-subscribes after a node reconnects; our worker rebuilds
//! the whole connection when its ping fails.

use futures_util::StreamExt;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushKind, Value};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::pubsub::{Connector, Messages, SubscriberSink};
use crate::config::RedisConfig;

pub(super) fn client(urls: &[String], config: &RedisConfig) -> redis::RedisResult<ClusterClient> {
    builder(urls, config).build()
}

/// Passwords (and ACL users) come from the seed URLs. With `rediss://` seeds and
/// `config.tls_ca_cert`, every node's certificate is verified against that CA (connections to
/// nodes discovered from the topology included); without it, against the webpki roots.
fn builder(urls: &[String], config: &RedisConfig) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(urls.to_vec())
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .retries(1);
    // `certs` turns TLS on, so it is only given for rediss:// seeds.
    let tls = urls.iter().any(|url| url.starts_with("rediss://"));
    match &config.tls_ca_cert {
        Some(ca) if tls => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        }),
        _ => builder,
    }
}

pub(super) struct ClusterConnector {
    pub urls: Vec<String>,
    pub config: RedisConfig,
}

#[async_trait::async_trait]
impl Connector for ClusterConnector {
    async fn connect(&self) -> redis::RedisResult<(Box<dyn SubscriberSink>, Messages)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let connection = builder(&self.urls, &self.config)
            .push_sender(tx)
            .build()?
            .get_async_connection()
            .await?;
        let messages = UnboundedReceiverStream::new(rx).filter_map(|push| async move {
            if push.kind != PushKind::SMessage {
                return None;
            }
            let mut data = push.data.into_iter();
            match (data.next(), data.next()) {
                (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
                    Some((String::from_utf8_lossy(&channel).into_owned(), payload))
                }
                _ => None,
            }
        });
        Ok((Box::new(Sink(connection)), Box::pin(messages)))
    }
}

struct Sink(ClusterConnection);

#[async_trait::async_trait]
impl SubscriberSink for Sink {
    async fn subscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        // One command per channel: channels of one SSUBSCRIBE must share a slot.
        for channel in channels {
            self.0.ssubscribe(channel).await?;
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        for channel in channels {
            self.0.sunsubscribe(channel).await?;
        }
        Ok(())
    }

    async fn ping(&mut self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async::<Value>(&mut self.0)
            .await
            .map(|_| ())
    }
}
