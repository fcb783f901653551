//! The event bus: an in-process broadcast (tokio), optionally bridged to Redis pub/sub or NATS so that
//! every instance sees every instance's events (the web UI's live updates, cache invalidation).
//!
//! Slow subscribers miss events rather than slowing publishers. With a bridge, [`EventBus::publish`]
//! delivers locally at once and hands the event to a background task that forwards it; events from the
//! other instances arrive through the same [`EventBus::subscribe`] receivers. Each event travels with
//! the id of the instance that published it, so an instance never receives its own events twice.
//! Delivery across instances is best effort (pub/sub semantics): while the broker is unreachable,
//! events are dropped, and bridges reconnect on their own.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{broadcast, mpsc};

mod bridge;
#[cfg(feature = "nats")]
pub use bridge::connect_nats;
pub use bridge::{connect_redis, BridgeError};

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
    /// The knowledge base was synced or re-indexed.
    KbSynced {
        /// Knowledge-base name.
        kb: String,
        /// Commit after the sync (git modes).
        commit: Option<String>,
        /// Documents re-indexed.
        changed: usize,
        /// Documents removed.
        deleted: usize,
    },
    /// A provider went up or down.
    ProviderHealthChanged {
        /// Provider name.
        provider: String,
        /// Whether it is up now.
        up: bool,
    },
    /// Spending reached a budget's limit in its current period (raised once per period and budget).
    BudgetReached {
        /// Budget id.
        budget_id: String,
        /// `user`, `team` or `key`.
        scope: String,
        /// Who the budget is for.
        subject_id: String,
        /// Spent in the period, in US dollars.
        spent_usd: f64,
        /// The limit, in US dollars.
        limit_usd: f64,
        /// Whether the budget refuses further requests (hard) or only warns (soft).
        hard: bool,
    },
    /// A live connection opened a conversation (`member` is set) or closed it (`member` is `None`).
    Presence {
        /// The presence tracker that sent it (one per instance).
        instance: String,
        /// Conversation.
        conversation_id: String,
        /// The live connection (an opaque id, one per WebSocket).
        connection: String,
        /// Who, when the connection joined.
        member: Option<PresenceMember>,
    },
    /// Every live connection one instance has on a conversation, replacing what was known of it
    /// (sent periodically, and when another instance's connection joins).
    PresenceSync {
        /// The presence tracker that sent it.
        instance: String,
        /// Conversation.
        conversation_id: String,
        /// Its connections there (bounded by the sender).
        members: Vec<PresenceMember>,
    },
    /// A participant started or stopped typing in a conversation.
    Typing {
        /// The presence tracker that sent it.
        instance: String,
        /// Conversation.
        conversation_id: String,
        /// The connection typing.
        connection: String,
        /// User id.
        user_id: String,
        /// The name shown to the other participants.
        name: String,
        /// Started (`true`) or stopped.
        typing: bool,
    },
    /// The players one instance has in a game zone (a location of a world), replacing what was known
    /// of that instance there (sent when it changes, at most once a second, and every few seconds).
    WorldPresence {
        /// The instance that sent it.
        instance: String,
        /// The world instance.
        world_id: String,
        /// The location (zone).
        location_id: String,
        /// Its players there (bounded by the sender).
        members: Vec<WorldPresenceMember>,
    },
    /// A game world changed (`gaia-world`): the delta every player whose view it touches gets, as
    /// the real-time protocol's `world_update` (v0.4).
    WorldUpdate {
        /// Experience.
        experience: String,
        /// The world instance (the experience for a shared world; one per player when isolated).
        world_id: String,
        /// Who made the change (`None`: an administrator's or the system's).
        user_id: Option<String>,
        /// The version the change applies to.
        base_version: i64,
        /// The version after it.
        snapshot_version: i64,
        /// The changes (`{operation, area_id, path?, instance_id, template_id?, item?}`).
        changes: Vec<serde_json::Value>,
    },
}

/// A player present in a game zone ([`Event::WorldPresence`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldPresenceMember {
    /// User id.
    pub user_id: String,
    /// The name shown to the other players.
    pub name: String,
    /// Distance to the zone's centre, in metres (rounded; never the player's coordinates).
    pub distance_m: u32,
    /// The coarse place they are in (`gaia_world::geo::area_cell`: a cell of about 0.1 km²; 0 when
    /// unknown), to list each player the others nearest to them.
    #[serde(default)]
    pub cell: u64,
}

/// One live connection's participant in a conversation ([`Event::Presence`], [`Event::PresenceSync`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceMember {
    /// The live connection.
    pub connection: String,
    /// User id.
    pub user_id: String,
    /// The name shown to the other participants.
    pub name: String,
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
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// This instance's id, sent with every forwarded event.
    origin: String,
    /// Events to forward to the other instances (set once a bridge is connected).
    outbox: OnceLock<mpsc::Sender<Envelope>>,
    /// `"memory"`, `"redis"` or `"nats"`.
    kind: OnceLock<&'static str>,
    /// Whether the bridge receives other instances' events (its subscription is in place).
    receiving: AtomicBool,
    /// Whether the bridge's last forward to the broker succeeded.
    sending: AtomicBool,
}

impl Shared {
    /// Records that the subscription was lost (`false`) or is in place (`true`).
    fn set_receiving(&self, up: bool) {
        self.receiving.store(up, Ordering::Relaxed);
    }
    /// Records whether the last forward to the broker succeeded.
    fn set_sending(&self, up: bool) {
        self.sending.store(up, Ordering::Relaxed);
    }
}

/// An event on the wire between instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: Event,
}

/// Events waiting to be forwarded; beyond this, new ones are dropped (and logged).
const OUTBOX: usize = 16_384;

impl Event {
    /// The conversation the event is about, if any.
    pub fn conversation_id(&self) -> Option<&str> {
        match self {
            Event::MessageCreated { conversation_id, .. }
            | Event::ConversationUpdated { conversation_id }
            | Event::Presence { conversation_id, .. }
            | Event::PresenceSync { conversation_id, .. }
            | Event::Typing { conversation_id, .. } => Some(conversation_id),
            _ => None,
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
        EventBus {
            tx: broadcast::channel(capacity.clamp(1, MAX_CAPACITY)).0,
            shared: Arc::new(Shared {
                origin: uuid::Uuid::new_v4().to_string(),
                outbox: OnceLock::new(),
                kind: OnceLock::new(),
                receiving: AtomicBool::new(true),
                sending: AtomicBool::new(true),
            }),
        }
    }

    /// This instance's id on the bus.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// Where events go beyond this process: `"memory"` (nowhere), `"redis"` or `"nats"`.
    pub fn kind(&self) -> &'static str {
        self.shared.kind.get().copied().unwrap_or("memory")
    }

    /// Whether events cross instances as they should: always with no bridge; with one, whether its
    /// subscription is in place and its last forward succeeded (readiness: `GET /health/ready`).
    pub fn broker_up(&self) -> bool {
        self.shared.receiving.load(Ordering::Relaxed) && self.shared.sending.load(Ordering::Relaxed)
    }

    /// Installs the forwarder of a bridge; returns its receiving end, or `None` if a bridge is already
    /// connected.
    fn attach(&self, kind: &'static str) -> Option<mpsc::Receiver<Envelope>> {
        let (tx, rx) = mpsc::channel(OUTBOX);
        self.shared.outbox.set(tx).ok()?;
        let _ = self.shared.kind.set(kind);
        Some(rx)
    }

    /// Delivers an event that arrived from another instance to this instance's subscribers.
    fn deliver_remote(&self, env: Envelope) {
        if env.origin != self.shared.origin {
            let _ = self.tx.send(env.event);
        }
    }

    /// How many subscriptions are open.
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publishes an event; returns how many subscribers will see it.
    pub fn publish(&self, event: Event) -> usize {
        if let Some(out) = self.shared.outbox.get() {
            let env = Envelope { origin: self.shared.origin.clone(), event: event.clone() };
            if let Err(mpsc::error::TrySendError::Full(_)) = out.try_send(env) {
                tracing::warn!("event bus: the bridge is behind; an event was not forwarded to other instances");
            }
        }
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

    async fn recv_one(rx: &mut broadcast::Receiver<Event>) -> Event {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("an event")
    }

    async fn bridged_pair(connect: impl Fn(EventBus) -> futures::future::BoxFuture<'static, ()>) {
        let (a, b) = (EventBus::default(), EventBus::default());
        connect(a.clone()).await;
        connect(b.clone()).await;
        let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
        let e = Event::ConversationUpdated { conversation_id: "c1".into() };
        a.publish(e.clone());
        assert_eq!(recv_one(&mut ra).await, e, "local delivery");
        assert_eq!(recv_one(&mut rb).await, e, "delivery to the other instance");
        let e2 = Event::KbSynced { kb: "world".into(), commit: None, changed: 2, deleted: 0 };
        b.publish(e2.clone());
        assert_eq!(recv_one(&mut ra).await, e2);
        assert_eq!(recv_one(&mut rb).await, e2);
        // Nobody receives their own event twice.
        let e3 = Event::ApiKeyRevoked { key_id: "k".into() };
        a.publish(e3.clone());
        assert_eq!(recv_one(&mut ra).await, e3);
        assert_eq!(recv_one(&mut rb).await, e3);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(ra.try_recv().is_err() && rb.try_recv().is_err());
    }

    #[tokio::test]
    async fn redis_carries_events_between_instances() {
        let Some(url) = crate::testing::redis_url() else {
            assert!(!crate::testing::services_required(), "GAIA_TEST_REDIS_URL is required");
            return;
        };
        let channel = format!("{}events", crate::testing::unique_redis_prefix());
        bridged_pair(move |bus| {
            let (url, channel) = (url.clone(), channel.clone());
            Box::pin(async move {
                bus.connect_redis(&url, &channel).await.unwrap();
                assert_eq!(bus.kind(), "redis");
                assert!(matches!(bus.connect_redis(&url, &channel).await, Err(BridgeError::AlreadyConnected(_))));
            })
        })
        .await;
        let e = EventBus::default().connect_redis("redis://127.0.0.1:1", "x").await.unwrap_err();
        assert!(e.to_string().contains("cannot connect"), "{e}");
    }

    #[cfg(feature = "nats")]
    #[tokio::test]
    async fn nats_carries_events_between_instances() {
        let Some(url) = std::env::var("GAIA_TEST_NATS_URL").ok().filter(|u| !u.is_empty()) else {
            assert!(!crate::testing::services_required(), "GAIA_TEST_NATS_URL is required");
            return;
        };
        let subject = format!("gaia.test.{}", uuid::Uuid::new_v4().simple());
        bridged_pair(move |bus| {
            let (url, subject) = (url.clone(), subject.clone());
            Box::pin(async move {
                bus.connect_nats(&url, &subject).await.unwrap();
                assert_eq!(bus.kind(), "nats");
            })
        })
        .await;
    }
}
