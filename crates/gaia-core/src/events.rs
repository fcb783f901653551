//! In-process event bus (tokio broadcast). Slow subscribers miss events rather than slowing publishers.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A message was stored.
    MessageCreated {
        /// Conversation.
        conversation_id: String,
        /// Message.
        message_id: String,
    },
    /// A conversation was created, renamed or deleted.
    ConversationUpdated {
        /// Conversation.
        conversation_id: String,
    },
    /// An API key was revoked.
    ApiKeyRevoked {
        /// Key id.
        key_id: String,
    },
}

/// Publish/subscribe hub; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus {
    /// A bus buffering up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        EventBus { tx: broadcast::channel(capacity.max(1)).0 }
    }

    /// Publishes an event; returns how many subscribers will see it.
    pub fn publish(&self, event: Event) -> usize {
        self.tx.send(event).unwrap_or(0)
    }

    /// A new subscription that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_subscribers() {
        let bus = EventBus::default();
        assert_eq!(bus.publish(Event::ApiKeyRevoked { key_id: "k".into() }), 0);
        let mut rx = bus.subscribe();
        bus.publish(Event::ConversationUpdated { conversation_id: "c".into() });
        assert_eq!(rx.recv().await.unwrap(), Event::ConversationUpdated { conversation_id: "c".into() });
    }
}
