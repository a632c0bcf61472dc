//! Subscriber connections to a single Redis server: plain SUBSCRIBE on a dedicated connection.

use futures_util::StreamExt;

use super::pubsub::{Connector, Messages, SubscriberSink};

/// The client of one server. A `rediss://` URL with `tls_ca_cert` trusts that CA (PEM) instead
/// of the webpki roots; plain `redis://` URLs ignore it. The password (and ACL user) come from
/// the URL and are sent by every connection, pooled or PUB/SUB.
pub(super) fn client(url: &str, tls_ca_cert: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    let client = redis::Client::open(url)?;
    match tls_ca_cert {
        Some(ca) if is_tls(client.get_connection_info().addr()) => redis::Client::build_with_tls(
            client.get_connection_info().clone(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            },
        ),
        _ => Ok(client),
    }
}

fn is_tls(addr: &redis::ConnectionAddr) -> bool {
    matches!(addr, redis::ConnectionAddr::TcpTls { .. })
}

pub(super) struct StandaloneConnector(pub redis::Client);

#[async_trait::async_trait]
impl Connector for StandaloneConnector {
    async fn connect(&self) -> redis::RedisResult<(Box<dyn SubscriberSink>, Messages)> {
        let (sink, stream) = self.0.get_async_pubsub().await?.split();
        let messages = stream.map(|m| {
            (
                m.get_channel_name().to_string(),
                m.get_payload_bytes().to_vec(),
            )
        });
        Ok((Box::new(Sink(sink)), Box::pin(messages)))
    }
}

struct Sink(redis::aio::PubSubSink);

#[async_trait::async_trait]
impl SubscriberSink for Sink {
    async fn subscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        self.0.subscribe(channels).await
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        self.0.unsubscribe(channels).await
    }

    async fn ping(&mut self) -> redis::RedisResult<()> {
        self.0.ping::<redis::Value>().await.map(|_| ())
    }
}
