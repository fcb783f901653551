//! Live presence: who has a conversation open, and who is typing in it, across every instance.
//!
//! Each live connection (a `/ws/chat` WebSocket, or an embedder's own) is a [`Connection`]: it
//! [joins](Connection::join) the conversations it shows and says when its user is
//! [typing](Connection::typing). Every change is applied at once on this instance and published on
//! the event bus ([`Event::Presence`], [`Event::Typing`]), so that the other instances (through Redis or
//! NATS) know it too; [`Presence::subscribe`] hands the resulting [`PresenceUpdate`]s to the
//! connections, which pass on those of the conversations they show.
//!
//! Delivery across instances is best effort, like the bus. What is lost heals on its own: every
//! instance sends the full list of its connections on each conversation every [`SYNC_EVERY`] (and at
//! once, at most every second, when another instance's connection joins a conversation it has
//! connections on), and forgets another instance's connections that were not confirmed for
//! [`FORGET_AFTER`] (an instance that stopped without saying goodbye).
//!
//! "Typing" is a state with a lifetime: a client repeats `typing: true` while its user types and
//! sends `typing: false` when they stop or send; receivers drop an indicator that was not repeated
//! within [`TYPING_TTL`]. One connection's `typing: true` is forwarded at most once per
//! [`TYPING_EVERY`] and conversation, so a client cannot flood the others.
//!
//! ```
//! use gaia_chat::presence::{Participant, Presence, PresenceUpdate};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let presence = Presence::new(gaia_core::events::EventBus::default());
//! let mut updates = presence.subscribe();
//! let mut tab = presence.connect(Participant { user_id: "u1".into(), name: "Mara".into() });
//! tab.join("c1");
//! match updates.recv().await.unwrap() {
//!     PresenceUpdate::Participants { participants, .. } => assert_eq!(participants[0].name, "Mara"),
//!     other => panic!("{other:?}"),
//! }
//! # }
//! ```

use gaia_core::events::{Event, EventBus, PresenceMember};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How often an instance sends the full list of its connections on each conversation.
pub const SYNC_EVERY: Duration = Duration::from_secs(15);

/// How long another instance's connection is kept without being confirmed by a sync.
pub const FORGET_AFTER: Duration = Duration::from_secs(45);

/// How long a `typing: true` holds when it is not repeated (receivers hide the indicator after it).
pub const TYPING_TTL: Duration = Duration::from_secs(6);

/// At most one `typing: true` per connection and conversation is forwarded in this time.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Most participants listed in one [`PresenceUpdate::Participants`] (the total is always given).
pub const MAX_LISTED: usize = 50;

/// Most connections one instance reports on one conversation in a sync.
const MAX_SYNC_MEMBERS: usize = 1000;

/// Least time between two syncs of one conversation sent because another instance's connection joined.
const SYNC_DEBOUNCE: Duration = Duration::from_secs(1);

/// Updates buffered per subscriber; a slower one gets `Lagged` and should ask for the lists again.
const UPDATES: usize = 1024;

/// Someone present in a conversation, as the other participants see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// The name shown to the others (a display name; never a secret).
    pub name: String,
}

/// A change the connections showing a conversation should pass on.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceUpdate {
    /// Who has the conversation open now (each user once, sorted by name).
    Participants {
        /// Conversation.
        conversation_id: String,
        /// Up to [`MAX_LISTED`] participants.
        participants: Vec<Participant>,
        /// How many distinct users have it open.
        total: usize,
    },
    /// Someone started or stopped typing.
    Typing {
        /// Conversation.
        conversation_id: String,
        /// The connection typing (not to be echoed back to it).
        connection: String,
        /// Who.
        participant: Participant,
        /// Started (`true`) or stopped.
        typing: bool,
    },
}

impl Participant {
    /// The participant `user_id`, named by their display name, else the part of their email before
    /// the `@` (what others in a shared conversation see of them), else "someone".
    pub fn named(user_id: &str, display_name: Option<&str>, email: Option<&str>) -> Participant {
        let name = display_name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .or_else(|| email.and_then(|e| e.split('@').next()).filter(|n| !n.is_empty()))
            .unwrap_or("someone");
        Participant { user_id: user_id.to_string(), name: name.to_string() }
    }
}

impl PresenceUpdate {
    /// The conversation the update is about.
    pub fn conversation_id(&self) -> &str {
        match self {
            PresenceUpdate::Participants { conversation_id, .. } | PresenceUpdate::Typing { conversation_id, .. } => {
                conversation_id
            }
        }
    }
}

/// The presence tracker of one instance; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("instance", &self.inner.instance).finish_non_exhaustive()
    }
}

struct Inner {
    /// This tracker's id on the bus (one per instance; several in one process in tests).
    instance: String,
    bus: EventBus,
    rooms: Mutex<Rooms>,
    updates: broadcast::Sender<PresenceUpdate>,
    listening: Once,
}

#[derive(Default)]
struct Rooms {
    /// Conversation → connection → who and from where.
    by_conversation: HashMap<String, HashMap<String, Entry>>,
    /// When a sync of a conversation was last sent because another instance's connection joined.
    synced: HashMap<String, Instant>,
}

struct Entry {
    who: Participant,
    /// `None` for this instance's connections; the other instance and when it last confirmed it.
    remote: Option<(String, Instant)>,
}

impl Rooms {
    fn participants(&self, conversation_id: &str) -> (Vec<Participant>, usize) {
        let Some(room) = self.by_conversation.get(conversation_id) else {
            return (Vec::new(), 0);
        };
        let mut seen = HashSet::new();
        let mut all: Vec<&Participant> = room.values().map(|e| &e.who).filter(|p| seen.insert(&p.user_id)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.user_id.cmp(&b.user_id)));
        let total = all.len();
        (all.into_iter().take(MAX_LISTED).cloned().collect(), total)
    }

    fn local_members(&self, conversation_id: &str) -> Vec<PresenceMember> {
        self.by_conversation
            .get(conversation_id)
            .into_iter()
            .flatten()
            .filter(|(_, e)| e.remote.is_none())
            .take(MAX_SYNC_MEMBERS)
            .map(|(id, e)| PresenceMember {
                connection: id.clone(),
                user_id: e.who.user_id.clone(),
                name: e.who.name.clone(),
            })
            .collect()
    }

    fn remove(&mut self, conversation_id: &str, connection: &str, remote_only: bool) -> bool {
        let Some(room) = self.by_conversation.get_mut(conversation_id) else {
            return false;
        };
        if remote_only && room.get(connection).is_some_and(|e| e.remote.is_none()) {
            return false;
        }
        let removed = room.remove(connection).is_some();
        if room.is_empty() {
            self.by_conversation.remove(conversation_id);
            self.synced.remove(conversation_id);
        }
        removed
    }
}

impl Presence {
    /// A tracker publishing on, and listening to, `bus`. Its listener starts with the first
    /// connection (on the current tokio runtime).
    pub fn new(bus: EventBus) -> Presence {
        Presence {
            inner: Arc::new(Inner {
                instance: uuid::Uuid::new_v4().to_string(),
                bus,
                rooms: Mutex::new(Rooms::default()),
                updates: broadcast::channel(UPDATES).0,
                listening: Once::new(),
            }),
        }
    }

    /// A new live connection of `who`. Dropping it leaves every conversation it joined.
    pub fn connect(&self, who: Participant) -> Connection {
        self.listen();
        Connection {
            presence: self.clone(),
            id: uuid::Uuid::new_v4().to_string(),
            who,
            joined: HashSet::new(),
            typing: HashMap::new(),
        }
    }

    /// Updates from now on, for every conversation (each connection keeps those it shows).
    pub fn subscribe(&self) -> broadcast::Receiver<PresenceUpdate> {
        self.inner.updates.subscribe()
    }

    /// Who has `conversation_id` open now (up to [`MAX_LISTED`]) and how many they are.
    pub fn participants(&self, conversation_id: &str) -> (Vec<Participant>, usize) {
        self.inner.lock().participants(conversation_id)
    }

    fn listen(&self) {
        let inner = Arc::downgrade(&self.inner);
        self.inner.listening.call_once(|| {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                tracing::warn!("presence: no tokio runtime; other instances' presence is not followed");
                return;
            };
            let events = self.inner.bus.subscribe();
            rt.spawn(listen(inner, events));
        });
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rooms> {
        // The lock is never held across a panic that could leave the rooms half-changed.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce(&self, rooms: &Rooms, conversation_id: &str) {
        let (participants, total) = rooms.participants(conversation_id);
        let _ = self.updates.send(PresenceUpdate::Participants {
            conversation_id: conversation_id.to_string(),
            participants,
            total,
        });
    }

    fn sync(&self, rooms: &Rooms, conversation_id: &str) {
        self.bus.publish(Event::PresenceSync {
            instance: self.instance.clone(),
            conversation_id: conversation_id.to_string(),
            members: rooms.local_members(conversation_id),
        });
    }

    /// Applies another instance's event; announces what changed.
    fn apply(&self, ev: Event) {
        match ev {
            Event::Presence { instance, conversation_id, connection, member } if instance != self.instance => {
                let mut rooms = self.lock();
                let before = rooms.participants(&conversation_id);
                match member {
                    Some(m) => {
                        let entry = Entry {
                            who: Participant { user_id: m.user_id, name: m.name },
                            remote: Some((instance, Instant::now())),
                        };
                        let room = rooms.by_conversation.entry(conversation_id.clone()).or_default();
                        if room.get(&connection).is_some_and(|e| e.remote.is_none()) {
                            return; // never let a remote message replace a connection of ours
                        }
                        room.insert(connection, entry);
                        // Tell the newcomer's instance who is here, at most once a second.
                        let now = Instant::now();
                        let due =
                            rooms.synced.get(&conversation_id).is_none_or(|t| now.duration_since(*t) >= SYNC_DEBOUNCE);
                        if due && !rooms.local_members(&conversation_id).is_empty() {
                            rooms.synced.insert(conversation_id.clone(), now);
                            self.sync(&rooms, &conversation_id);
                        }
                    }
                    None => {
                        rooms.remove(&conversation_id, &connection, true);
                    }
                }
                if rooms.participants(&conversation_id) != before {
                    self.announce(&rooms, &conversation_id);
                }
            }
            Event::PresenceSync { instance, conversation_id, members } if instance != self.instance => {
                let mut rooms = self.lock();
                let before = rooms.participants(&conversation_id);
                let now = Instant::now();
                let room = rooms.by_conversation.entry(conversation_id.clone()).or_default();
                room.retain(|_, e| e.remote.as_ref().is_none_or(|(i, _)| *i != instance));
                for m in members.into_iter().take(MAX_SYNC_MEMBERS) {
                    if room.get(&m.connection).is_some_and(|e| e.remote.is_none()) {
                        continue;
                    }
                    let who = Participant { user_id: m.user_id, name: m.name };
                    room.insert(m.connection, Entry { who, remote: Some((instance.clone(), now)) });
                }
                if room.is_empty() {
                    rooms.by_conversation.remove(&conversation_id);
                    rooms.synced.remove(&conversation_id);
                }
                if rooms.participants(&conversation_id) != before {
                    self.announce(&rooms, &conversation_id);
                }
            }
            // Only worth passing on where someone here shows the conversation.
            Event::Typing { instance, conversation_id, connection, user_id, name, typing }
                if instance != self.instance && self.lock().by_conversation.contains_key(&conversation_id) =>
            {
                let participant = Participant { user_id, name };
                let _ = self.updates.send(PresenceUpdate::Typing { conversation_id, connection, participant, typing });
            }
            _ => {}
        }
    }

    /// The periodic work: sends this instance's lists, forgets what other instances stopped confirming.
    fn tick(&self) {
        let mut rooms = self.lock();
        let now = Instant::now();
        let conversations: Vec<String> = rooms.by_conversation.keys().cloned().collect();
        for id in conversations {
            let before = rooms.participants(&id);
            if let Some(room) = rooms.by_conversation.get_mut(&id) {
                room.retain(|_, e| e.remote.as_ref().is_none_or(|(_, seen)| now.duration_since(*seen) < FORGET_AFTER));
            }
            if !rooms.local_members(&id).is_empty() {
                self.sync(&rooms, &id);
            }
            if rooms.by_conversation.get(&id).is_some_and(HashMap::is_empty) {
                rooms.by_conversation.remove(&id);
                rooms.synced.remove(&id);
            }
            if rooms.participants(&id) != before {
                self.announce(&rooms, &id);
            }
        }
    }
}

/// Follows the bus for the other instances' presence; ends when the tracker is dropped.
async fn listen(inner: Weak<Inner>, mut events: broadcast::Receiver<Event>) {
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev @ (Event::Presence { .. } | Event::PresenceSync { .. } | Event::Typing { .. })) => {
                    let Some(inner) = inner.upgrade() else { return };
                    inner.apply(ev);
                }
                Ok(_) => {}
                // What was missed is repaired by the next syncs.
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(missed = n, "presence fell behind the bus"),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                inner.tick();
            }
        }
    }
}

/// One live connection's presence: the conversations it shows and its typing state. Dropping it
/// leaves them all.
pub struct Connection {
    presence: Presence,
    id: String,
    who: Participant,
    joined: HashSet<String>,
    /// When `typing: true` was last forwarded, per conversation (absent: not typing).
    typing: HashMap<String, Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("id", &self.id).field("joined", &self.joined.len()).finish_non_exhaustive()
    }
}

impl Connection {
    /// This connection's id (in [`PresenceUpdate::Typing`], to skip one's own echo).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Who this connection is.
    pub fn who(&self) -> &Participant {
        &self.who
    }

    /// Shows `conversation_id`: its participants are announced with this one among them. The caller
    /// has checked that the user may read it.
    pub fn join(&mut self, conversation_id: &str) {
        if !self.joined.insert(conversation_id.to_string()) {
            return;
        }
        let inner = &self.presence.inner;
        let mut rooms = inner.lock();
        rooms
            .by_conversation
            .entry(conversation_id.to_string())
            .or_default()
            .insert(self.id.clone(), Entry { who: self.who.clone(), remote: None });
        inner.announce(&rooms, conversation_id);
        drop(rooms);
        inner.bus.publish(Event::Presence {
            instance: inner.instance.clone(),
            conversation_id: conversation_id.to_string(),
            connection: self.id.clone(),
            member: Some(PresenceMember {
                connection: self.id.clone(),
                user_id: self.who.user_id.clone(),
                name: self.who.name.clone(),
            }),
        });
    }

    /// Stops showing `conversation_id` (and typing in it).
    pub fn leave(&mut self, conversation_id: &str) {
        if !self.joined.remove(conversation_id) {
            return;
        }
        if self.typing.contains_key(conversation_id) {
            self.send_typing(conversation_id, false);
        }
        let inner = &self.presence.inner;
        let mut rooms = inner.lock();
        rooms.remove(conversation_id, &self.id, false);
        inner.announce(&rooms, conversation_id);
        drop(rooms);
        inner.bus.publish(Event::Presence {
            instance: inner.instance.clone(),
            conversation_id: conversation_id.to_string(),
            connection: self.id.clone(),
            member: None,
        });
    }

    /// Whether this connection shows `conversation_id`.
    pub fn shows(&self, conversation_id: &str) -> bool {
        self.joined.contains(conversation_id)
    }

    /// The user started (`true`) or stopped typing in `conversation_id`, which this connection must
    /// have joined (the caller has checked that the user may post in it). Returns whether it was
    /// passed on: a repeated `true` within [`TYPING_EVERY`], or a `false` when not typing, is not.
    pub fn typing(&mut self, conversation_id: &str, typing: bool) -> bool {
        if !self.joined.contains(conversation_id) {
            return false;
        }
        let now = Instant::now();
        let forward = match (typing, self.typing.get(conversation_id)) {
            (true, Some(last)) => now.duration_since(*last) >= TYPING_EVERY,
            (true, None) => true,
            (false, last) => last.is_some(),
        };
        if !forward {
            return false;
        }
        if typing {
            self.typing.insert(conversation_id.to_string(), now);
        } else {
            self.typing.remove(conversation_id);
        }
        self.send_typing(conversation_id, typing);
        true
    }

    fn send_typing(&mut self, conversation_id: &str, typing: bool) {
        if !typing {
            self.typing.remove(conversation_id);
        }
        let inner = &self.presence.inner;
        let _ = inner.updates.send(PresenceUpdate::Typing {
            conversation_id: conversation_id.to_string(),
            connection: self.id.clone(),
            participant: self.who.clone(),
            typing,
        });
        inner.bus.publish(Event::Typing {
            instance: inner.instance.clone(),
            conversation_id: conversation_id.to_string(),
            connection: self.id.clone(),
            user_id: self.who.user_id.clone(),
            name: self.who.name.clone(),
            typing,
        });
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let joined: Vec<String> = self.joined.iter().cloned().collect();
        for id in joined {
            self.leave(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: &str, name: &str) -> Participant {
        Participant { user_id: id.into(), name: name.into() }
    }

    async fn next(rx: &mut broadcast::Receiver<PresenceUpdate>) -> PresenceUpdate {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an update in time").expect("an update")
    }

    /// The next participants list of `conversation` (skipping other updates).
    async fn names(rx: &mut broadcast::Receiver<PresenceUpdate>, conversation: &str) -> Vec<String> {
        loop {
            if let PresenceUpdate::Participants { conversation_id, participants, total } = next(rx).await {
                if conversation_id == conversation {
                    assert_eq!(total, participants.len());
                    return participants.into_iter().map(|p| p.name).collect();
                }
            }
        }
    }

    #[test]
    fn names_never_show_a_whole_email() {
        assert_eq!(Participant::named("u", Some(" Mara "), Some("m@x.org")).name, "Mara");
        assert_eq!(Participant::named("u", Some(""), Some("mara@x.org")).name, "mara");
        assert_eq!(Participant::named("u", None, Some("@x.org")).name, "someone");
        assert_eq!(Participant::named("u", None, None).name, "someone");
    }

    #[tokio::test]
    async fn joins_and_leaves_are_announced_with_each_user_once() {
        let presence = Presence::new(EventBus::default());
        let mut rx = presence.subscribe();
        let mut tab1 = presence.connect(who("u1", "Mara"));
        let mut tab2 = presence.connect(who("u1", "Mara"));
        let mut other = presence.connect(who("u2", "Ines"));
        tab1.join("c");
        assert_eq!(names(&mut rx, "c").await, ["Mara"]);
        tab2.join("c");
        assert_eq!(names(&mut rx, "c").await, ["Mara"], "two tabs of one user are one participant");
        other.join("c");
        assert_eq!(names(&mut rx, "c").await, ["Ines", "Mara"]);
        tab1.leave("c");
        assert_eq!(names(&mut rx, "c").await, ["Ines", "Mara"], "Mara still has a tab open");
        drop(tab2);
        assert_eq!(names(&mut rx, "c").await, ["Ines"]);
        drop(other);
        assert!(names(&mut rx, "c").await.is_empty());
        assert_eq!(presence.participants("c"), (Vec::new(), 0));
        assert!(presence.inner.lock().by_conversation.is_empty(), "nothing kept for an empty conversation");
    }

    #[tokio::test]
    async fn typing_is_throttled_and_cleared_on_leave() {
        let presence = Presence::new(EventBus::default());
        let mut rx = presence.subscribe();
        let mut tab = presence.connect(who("u1", "Mara"));
        assert!(!tab.typing("c", true), "typing where one is not is ignored");
        tab.join("c");
        let _ = names(&mut rx, "c").await;
        assert!(tab.typing("c", true));
        assert!(!tab.typing("c", true), "a repeat within TYPING_EVERY is not forwarded");
        assert!(tab.typing("c", false));
        assert!(!tab.typing("c", false), "stopping twice says nothing the second time");
        assert!(tab.typing("c", true));
        tab.leave("c");
        let mut seen = Vec::new();
        while let Ok(u) = rx.try_recv() {
            if let PresenceUpdate::Typing { typing, connection, .. } = u {
                assert_eq!(connection, tab.id());
                seen.push(typing);
            }
        }
        assert_eq!(seen, [true, false, true, false], "leaving while typing stops the indicator");
    }

    #[tokio::test]
    async fn two_instances_see_each_other_through_the_bus() {
        // Two trackers on one bus stand for two instances bridged by Redis or NATS.
        let bus = EventBus::default();
        let (a, b) = (Presence::new(bus.clone()), Presence::new(bus.clone()));
        let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
        let mut mara = a.connect(who("u1", "Mara"));
        let mut ines = b.connect(who("u2", "Ines"));
        mara.join("c");
        assert_eq!(names(&mut ra, "c").await, ["Mara"]);
        assert_eq!(names(&mut rb, "c").await, ["Mara"], "the join reached the other instance");
        ines.join("c");
        assert_eq!(names(&mut rb, "c").await, ["Ines", "Mara"]);
        assert_eq!(names(&mut ra, "c").await, ["Ines", "Mara"]);
        ines.typing("c", true);
        loop {
            if let PresenceUpdate::Typing { participant, typing, .. } = next(&mut ra).await {
                assert_eq!((participant.name.as_str(), typing), ("Ines", true));
                break;
            }
        }
        drop(ines);
        assert_eq!(names(&mut ra, "c").await, ["Mara"], "the other instance's goodbye arrived");
    }

    #[tokio::test]
    async fn a_newcomer_instance_learns_who_is_already_there() {
        let bus = EventBus::default();
        let a = Presence::new(bus.clone());
        let mut mara = a.connect(who("u1", "Mara"));
        mara.join("c");
        // b starts after Mara joined: it learns of her from a's sync, sent when b's first
        // connection joins.
        let b = Presence::new(bus.clone());
        let mut rb = b.subscribe();
        let mut ines = b.connect(who("u2", "Ines"));
        ines.join("c");
        assert_eq!(names(&mut rb, "c").await, ["Ines"]);
        assert_eq!(names(&mut rb, "c").await, ["Ines", "Mara"]);
    }

    #[tokio::test]
    async fn a_silent_instance_is_forgotten() {
        let presence = Presence::new(EventBus::default());
        let mut rx = presence.subscribe();
        // Another instance's connection, announced once and never confirmed again.
        presence.inner.apply(Event::Presence {
            instance: "gone".into(),
            conversation_id: "c".into(),
            connection: "x".into(),
            member: Some(PresenceMember { connection: "x".into(), user_id: "u9".into(), name: "Ghost".into() }),
        });
        assert_eq!(names(&mut rx, "c").await, ["Ghost"]);
        // A remote message never removes or replaces a connection of this instance.
        let mut mine = presence.connect(who("u1", "Mara"));
        mine.join("c");
        let id = mine.id().to_string();
        presence.inner.apply(Event::Presence {
            instance: "gone".into(),
            conversation_id: "c".into(),
            connection: id,
            member: None,
        });
        assert_eq!(presence.participants("c").1, 2);
        {
            let mut rooms = presence.inner.lock();
            for e in rooms.by_conversation.get_mut("c").unwrap().values_mut() {
                if let Some((_, seen)) = &mut e.remote {
                    *seen = Instant::now().checked_sub(FORGET_AFTER + Duration::from_secs(1)).unwrap();
                }
            }
        }
        presence.inner.tick();
        let (left, total) = presence.participants("c");
        assert_eq!((left[0].name.as_str(), total), ("Mara", 1));
    }
}
