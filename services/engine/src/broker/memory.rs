//! The embedded broker of a node that runs alone: a publication goes straight to the local hub,
//! and channel history lives in this process ([`Streams`]).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use herald_protocol::proto::{ClientInfo, Publication};

use super::once::Once;
use super::streams::Streams;
use super::{
    Broker, BrokerError, BrokerEventHandler, HistoryOptions, HistoryPage, HistoryQuery,
    NodeCommand, Presence, PresenceStats, StreamPosition,
};
use crate::sharded::Sharded;

/// Who is present in one channel, and how many connections each user has there, so the
/// counts need no walk over the clients.
#[derive(Default)]
struct ChannelPresence {
    clients: Presence,
    users: std::collections::HashMap<String, usize>,
}

pub struct MemoryBroker {
    handler: OnceLock<Arc<dyn BrokerEventHandler>>,
    streams: Streams,
    once: Once,
    /// Channel → present clients. One process: entries leave with their sessions, no expiry.
    presence: Sharded<ChannelPresence>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker {
            handler: OnceLock::new(),
            streams: Streams::default(),
            once: Once::default(),
            presence: Sharded::new(64),
        }
    }
}

impl MemoryBroker {
    pub fn new() -> Self {
        Self::default()
    }

    fn handler(&self) -> Result<&Arc<dyn BrokerEventHandler>, BrokerError> {
        self.handler
            .get()
            .ok_or_else(|| BrokerError::Unavailable("broker not started".into()))
    }

    fn publish_now(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        trace: Option<&str>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        let handler = self.handler()?;
        let deliver = |p: Publication| match trace {
            Some(trace) => handler.handle_traced_publication(channel, p, trace),
            None => handler.handle_publication(channel, p),
        };
        let Some(history) = history else {
            deliver(publication);
            return Ok(None);
        };
        // Delivered under the stream's lock: concurrent publishers' publications reach every
        // subscriber in offset order.
        let (position, ()) =
            self.streams
                .append(channel, publication, history, Instant::now(), |p| {
                    deliver(p.clone())
                });
        Ok(Some(position))
    }
}

#[async_trait::async_trait]
impl Broker for MemoryBroker {
    fn start(&self, _node_uid: &str, handler: Arc<dyn BrokerEventHandler>) {
        let _ = self.handler.set(handler);
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.publish_now(channel, publication, history, None)
    }

    async fn publish_once(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        self.once.run(channel, key, Instant::now(), || {
            self.publish_now(channel, publication, history, None)
        })
    }

    async fn publish_traced(
        &self,
        channel: &str,
        publication: Publication,
        history: Option<&HistoryOptions>,
        key: Option<&str>,
        trace: &str,
    ) -> Result<Option<StreamPosition>, BrokerError> {
        let publish = || self.publish_now(channel, publication, history, Some(trace));
        match key {
            Some(key) => self.once.run(channel, key, Instant::now(), publish),
            None => publish(),
        }
    }

    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, BrokerError> {
        Ok(self.streams.read(channel, query, Instant::now()))
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        self.streams.remove(channel);
        Ok(())
    }

    async fn add_presence(
        &self,
        channel: &str,
        info: &ClientInfo,
        _ttl: std::time::Duration,
    ) -> Result<(), BrokerError> {
        let mut shard = self.presence.write(channel);
        let present = match shard.get_mut(channel) {
            Some(present) => present,
            None => shard.entry(channel.into()).or_default(),
        };
        if present
            .clients
            .insert(info.client.clone(), info.clone())
            .is_none()
        {
            *present.users.entry(info.user.clone()).or_default() += 1;
        }
        Ok(())
    }

    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        let mut shard = self.presence.write(channel);
        if let Some(present) = shard.get_mut(channel) {
            if let Some(info) = present.clients.remove(client)
                && let Some(count) = present.users.get_mut(&info.user)
            {
                *count -= 1;
                if *count == 0 {
                    present.users.remove(&info.user);
                }
            }
            if present.clients.is_empty() {
                shard.remove(channel);
            }
        }
        Ok(())
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: &ClientInfo,
        join: bool,
    ) -> Result<(), BrokerError> {
        let handler = self.handler()?;
        handler.handle_join_leave(channel, info.clone(), join);
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<Presence, BrokerError> {
        Ok(self
            .presence
            .read(channel)
            .get(channel)
            .map(|p| p.clients.clone())
            .unwrap_or_default())
    }

    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError> {
        Ok(self
            .presence
            .read(channel)
            .get(channel)
            .map(|p| PresenceStats {
                clients: p.clients.len(),
                users: p.users.len(),
            })
            .unwrap_or_default())
    }

    async fn publish_command(&self, command: &NodeCommand) -> Result<(), BrokerError> {
        let handler = self.handler()?;
        handler.handle_command(command.clone());
        Ok(())
    }

    async fn subscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn health(&self) -> Result<(), BrokerError> {
        match self.handler.get() {
            Some(_) => Ok(()),
            None => Err(BrokerError::Unavailable("broker not started".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Publication)>>);
    impl BrokerEventHandler for Recorder {
        fn handle_publication(&self, channel: &str, publication: Publication) {
            self.0.lock().unwrap().push((channel.into(), publication));
        }
        fn handle_join_leave(&self, _channel: &str, _info: ClientInfo, _join: bool) {}
        fn handle_command(&self, _command: NodeCommand) {}
        fn has_subscribers(&self, _channel: &str) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn publishes_reach_the_handler_in_order() {
        let broker = MemoryBroker::new();
        assert!(broker.health().await.is_err(), "not ready before start");
        let rec = Arc::new(Recorder::default());
        broker.start("n1", rec.clone());
        assert!(broker.health().await.is_ok());
        for i in 0..3u8 {
            let publication = Publication {
                data: bytes::Bytes::from(vec![b'0' + i]),
                ..Default::default()
            };
            broker.publish("ch", publication, None).await.unwrap();
        }
        let got = rec.0.lock().unwrap();
        let data: Vec<_> = got.iter().map(|(_, p)| p.data.clone()).collect();
        assert_eq!(data, vec!["0", "1", "2"]);
    }
}
