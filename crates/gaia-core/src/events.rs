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

/// Largest per-subscriber buffer of an [`EventBus`].
pub const MAX_CAPACITY: usize = 1 << 20;

/// Publish/subscribe hub; cheap to clone (clones share subscribers).
///
/// A subscriber that falls more than `capacity` events behind gets
/// [`RecvError::Lagged`](broadcast::error::RecvError::Lagged) and continues with the oldest kept event.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Event {
    /// The conversation the event is about, if any.
    pub fn conversation_id(&self) -> Option<&str> {
        match self {
            Event::MessageCreated { conversation_id, .. } | Event::ConversationUpdated { conversation_id } => {
                Some(conversation_id)
            }
            Event::ApiKeyRevoked { .. } => None,
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus {
    /// A bus buffering up to `capacity` events per subscriber (clamped to 1..=[`MAX_CAPACITY`]).
    pub fn new(capacity: usize) -> Self {
        EventBus { tx: broadcast::channel(capacity.clamp(1, MAX_CAPACITY)).0 }
    }

    /// How many subscriptions are open.
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
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

    #[tokio::test]
    async fn slow_subscribers_lag_instead_of_blocking() {
        let bus = EventBus::new(2);
        let mut rx = bus.subscribe();
        let clone = bus.clone();
        assert_eq!(clone.subscriber_count(), 1);
        for i in 0..5 {
            clone.publish(Event::ApiKeyRevoked { key_id: i.to_string() });
        }
        assert!(matches!(rx.recv().await, Err(broadcast::error::RecvError::Lagged(3))));
        assert_eq!(rx.recv().await.unwrap(), Event::ApiKeyRevoked { key_id: "3".into() });
        let e = Event::MessageCreated { conversation_id: "c".into(), message_id: "m".into() };
        assert_eq!(e.conversation_id(), Some("c"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"type": "message_created", "conversation_id": "c", "message_id": "m"})
        );
        assert_eq!(EventBus::new(usize::MAX).publish(e), 0);
    }
}
