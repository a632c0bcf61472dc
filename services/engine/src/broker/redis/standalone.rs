//! Subscriber connections to a single Redis server: plain SUBSCRIBE on a dedicated connection.

use futures_util::StreamExt;

use super::pubsub::{Connector, Messages, SubscriberSink};

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
