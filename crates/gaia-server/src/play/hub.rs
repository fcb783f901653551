//! This instance's fan-out of world changes to its game sockets.
//!
//! Every change of a world goes on the event bus once (`Event::WorldUpdate`, from any instance). The
//! hub takes them in version order per world (one arriving early waits up to [`REORDER_WAIT`] for
//! the one before it; a version that never comes was lost, and the sockets of that world get a fresh
//! view) and hands each to the sockets whose view it touches, keyed by place: the sockets whose zone
//! has an area it changed get the area part, the acting player's sockets all of it. Each frame's body
//! is serialised once and shared. The last changes of each world are kept for sockets that resume.

use super::presence::Presences;
use gaia_core::events::{Event, EventBus};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Frames and bytes queued for one socket before it is resynchronised instead.
const QUEUE_FRAMES: usize = 256;
const QUEUE_BYTES: usize = 1024 * 1024;
/// How long the hub waits for a missing version before calling it lost.
pub(crate) const REORDER_WAIT: Duration = Duration::from_millis(300);
/// Changes kept per world for sockets that resume.
const RECENT_PER_WORLD: usize = 1024;
/// How often presence is batched to the sockets.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `world_update` for versions `(base, snapshot]`, shared by every socket that gets it.
pub(crate) struct Delta {
    pub(crate) base: i64,
    pub(crate) snapshot: i64,
    /// The frame's body without `type` and `base_version` (`{"version":"0.4",…}`).
    pub(crate) body: Arc<str>,
    pub(crate) queued: Instant,
    /// It moved the player (who may then be in another zone).
    pub(crate) moved: bool,
}

/// What the hub hands a socket (small: a socket's queue holds many).
pub(crate) enum Out {
    Delta(Arc<Delta>),
    /// A whole frame, as is (presence).
    Frame(Arc<str>),
    /// The socket's view may have missed changes: send a fresh area of interest.
    Resync,
}

impl Out {
    fn size(&self) -> usize {
        match self {
            Out::Delta(d) => d.body.len(),
            Out::Frame(body) => body.len(),
            Out::Resync => 0,
        }
    }
}

/// One socket as the hub sees it.
pub(crate) struct Outbox {
    pub(crate) id: u64,
    pub(crate) user_id: String,
    tx: mpsc::Sender<Out>,
    /// Bytes queued and not yet taken.
    bytes: AtomicUsize,
    /// Something could not be queued: resync.
    pub(crate) overflowed: AtomicBool,
}

impl Outbox {
    /// Whether the queue is over half full (a producer of many frames waits while it is).
    pub(crate) fn busy(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > QUEUE_BYTES / 2
    }

    pub(crate) fn push(&self, out: Out) {
        let size = out.size();
        if self.bytes.load(Ordering::Relaxed) + size > QUEUE_BYTES {
            self.overflowed.store(true, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(out) {
            Ok(()) => {
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(_) => self.overflowed.store(true, Ordering::Relaxed),
        }
    }

    /// Marks `out` as taken from the queue.
    pub(crate) fn taken(&self, out: &Out) {
        self.bytes.fetch_sub(out.size(), Ordering::Relaxed);
    }
}

/// Sockets by id.
pub(crate) type Sockets = HashMap<u64, Arc<Outbox>>;

/// Removes socket `id` from the sockets at `key`, and the key once none is left.
pub(crate) fn remove<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Sockets>, key: &K, id: u64) {
    if let Some(sockets) = map.get_mut(key) {
        sockets.remove(&id);
        if sockets.is_empty() {
            map.remove(key);
        }
    }
}

/// A world's events in version order.
#[derive(Default)]
struct Sequence {
    /// The last version handed on (`None`: not known yet: no socket has read this world and no
    /// change was seen).
    last: Option<i64>,
    /// Events that arrived before the one they follow, by base version, and since when.
    waiting: BTreeMap<i64, (Arc<WorldChange>, Instant)>,
    /// The last changes handed on, oldest first (emptied when versions were lost).
    recent: VecDeque<Arc<WorldChange>>,
}

/// One `Event::WorldUpdate`.
pub(crate) struct WorldChange {
    pub(crate) world_id: String,
    experience: String,
    pub(crate) user_id: Option<String>,
    pub(crate) base: i64,
    pub(crate) snapshot: i64,
    changes: Vec<Value>,
}

impl WorldChange {
    /// Whether it touches the view of a socket of `user` following `areas`.
    pub(crate) fn touches(&self, user: &str, areas: &[String]) -> bool {
        self.user_id.as_deref() == Some(user)
            || self.changes.iter().any(|c| c["area_id"].as_str().is_some_and(|a| areas.iter().any(|x| x == a)))
    }

    /// Whether it moved `user` (another zone, maybe).
    pub(crate) fn moves(&self, user: &str) -> bool {
        self.user_id.as_deref() == Some(user) && self.changes.iter().any(|c| c["path"] == "player.location")
    }

    /// The frame body for `user` (all of it when they made it, else the area part).
    pub(crate) fn body_for(&self, user: &str) -> Arc<str> {
        self.body(self.user_id.as_deref() == Some(user))
    }

    fn body(&self, whole: bool) -> Arc<str> {
        let changes: Vec<&Value> = self.changes.iter().filter(|x| whole || !x["area_id"].is_null()).collect();
        json!({"version": "0.4", "experience": self.experience, "user_id": self.user_id,
               "snapshot_version": self.snapshot, "changes": changes, "timestamp": now_ms()})
        .to_string()
        .into()
    }
}

/// This instance's fan-out of world changes to its game sockets, keyed by place.
pub(crate) struct PlayHub {
    /// `(world, area)` → the sockets whose zone has that area.
    places: Mutex<HashMap<(String, String), Sockets>>,
    /// `(world, user)` → that player's sockets (for changes of their own state).
    players: Mutex<HashMap<(String, String), Sockets>>,
    /// Every socket by world (for resyncs after lost events).
    worlds: Mutex<HashMap<String, Sockets>>,
    sequences: Mutex<HashMap<String, Sequence>>,
    next_id: AtomicU64,
    /// Who is in each zone, on every instance.
    pub(crate) presence: Presences,
    /// The areas of each zone serialised, with the map they were serialised from.
    areas: Mutex<HashMap<(String, String), SerialisedAreas>>,
}

/// A zone's areas and their JSON.
type SerialisedAreas = (Arc<serde_json::Map<String, Value>>, Arc<str>);

/// Most zones whose serialised areas are kept (emptied when full).
const MAX_SERIALISED_ZONES: usize = 4096;

impl PlayHub {
    /// The hub, taking `events`' world events from now on; a player who drops stays present for
    /// `grace`.
    pub(crate) fn start(events: &EventBus, grace: Duration) -> Arc<PlayHub> {
        let hub = Arc::new(PlayHub {
            places: Default::default(),
            players: Default::default(),
            worlds: Default::default(),
            sequences: Default::default(),
            next_id: AtomicU64::new(1),
            presence: Presences::new(events.clone(), grace),
            areas: Default::default(),
        });
        let mut rx = events.subscribe();
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut reorder = tokio::time::interval(REORDER_WAIT / 2);
            let mut presence = tokio::time::interval(PRESENCE_EVERY);
            loop {
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = reorder.tick() => {
                        let Some(hub) = weak.upgrade() else { return };
                        hub.expire_waiting();
                        continue;
                    }
                    _ = presence.tick() => {
                        let Some(hub) = weak.upgrade() else { return };
                        hub.presence.tick();
                        continue;
                    }
                };
                let Some(hub) = weak.upgrade() else { return };
                match ev {
                    Ok(Event::WorldUpdate {
                        experience,
                        world_id,
                        user_id,
                        base_version,
                        snapshot_version,
                        changes,
                    }) => {
                        hub.arrived(Arc::new(WorldChange {
                            world_id,
                            experience,
                            user_id,
                            base: base_version,
                            snapshot: snapshot_version,
                            changes,
                        }));
                    }
                    Ok(Event::WorldPresence { instance, world_id, location_id, members }) => {
                        hub.presence.remote(&instance, &world_id, &location_id, members);
                    }
                    Ok(_) => {}
                    // This instance missed events: every view may be behind.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => hub.lost_everything(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        hub
    }

    /// The JSON of `a`'s areas: serialised once for every socket shown the same areas (the engine
    /// shares them per zone and version).
    pub(crate) fn areas_json(&self, world: &str, a: &gaia_world::AreaOfInterest) -> Arc<str> {
        let zone = a.player["current_location"].as_str().unwrap_or_default().to_string();
        let key = (world.to_string(), zone);
        let mut kept = lock(&self.areas);
        if let Some((map, json)) = kept.get(&key) {
            if Arc::ptr_eq(map, &a.areas) {
                return json.clone();
            }
        }
        let json: Arc<str> = serde_json::to_string(&*a.areas).unwrap_or_else(|_| "{}".into()).into();
        if kept.len() >= MAX_SERIALISED_ZONES {
            kept.clear();
        }
        kept.insert(key, (a.areas.clone(), json.clone()));
        json
    }

    /// The last version of `world` handed to sockets (0: none known yet).
    pub(crate) fn last(&self, world: &str) -> i64 {
        lock(&self.sequences).get(world).and_then(|s| s.last).unwrap_or(0)
    }

    /// A socket read `world` at `version`: when the hub knew nothing of it yet, changes are expected
    /// from there (a change after a hole then waits, and is called lost, instead of passing as the
    /// next one).
    pub(crate) fn known(&self, world: &str, version: i64) {
        let mut seqs = lock(&self.sequences);
        let seq = seqs.entry(world.to_string()).or_default();
        if seq.last.is_none() {
            seq.last = Some(version);
        }
    }

    /// The changes of `world` after version `version`, when all of them are known here (`None`: some
    /// may be missing, the client needs a fresh view).
    pub(crate) fn since(&self, world: &str, version: i64) -> Option<Vec<Arc<WorldChange>>> {
        let seqs = lock(&self.sequences);
        let seq = seqs.get(world)?;
        let last = seq.last?;
        if version > last {
            return None;
        }
        if version == last {
            return Some(Vec::new());
        }
        let first = seq.recent.front()?;
        if first.base > version {
            return None;
        }
        Some(seq.recent.iter().filter(|c| c.snapshot > version).cloned().collect())
    }

    fn arrived(&self, c: Arc<WorldChange>) {
        let mut ready = Vec::new();
        {
            let mut seqs = lock(&self.sequences);
            let seq = seqs.entry(c.world_id.clone()).or_default();
            if seq.last.is_none_or(|l| c.base == l) {
                seq.last = Some(c.snapshot);
                ready.push(c);
                while let Some((next, _)) = seq.last.and_then(|l| seq.waiting.remove(&l)) {
                    seq.last = Some(next.snapshot);
                    ready.push(next);
                }
                for c in &ready {
                    if seq.recent.len() >= RECENT_PER_WORLD {
                        seq.recent.pop_front();
                    }
                    seq.recent.push_back(c.clone());
                }
            } else if seq.last.is_some_and(|l| c.base > l) {
                seq.waiting.insert(c.base, (c, Instant::now()));
            }
            // Older than what was handed on: already delivered (or covered by a resync).
        }
        for c in ready {
            self.deliver(&c);
        }
    }

    /// Versions awaited too long are lost: the views of their worlds are resynchronised, and what
    /// waited is handed on as the new starting point.
    fn expire_waiting(&self) {
        let mut lost = Vec::new();
        {
            let mut seqs = lock(&self.sequences);
            for (world, seq) in seqs.iter_mut() {
                let expired = seq.waiting.values().next().is_some_and(|(_, since)| since.elapsed() >= REORDER_WAIT);
                if expired {
                    let waiting = std::mem::take(&mut seq.waiting);
                    if let Some((_, (c, _))) = waiting.iter().next_back() {
                        seq.last = Some(c.snapshot);
                    }
                    seq.recent.clear();
                    lost.push(world.clone());
                }
            }
        }
        for world in lost {
            tracing::debug!(%world, "world updates were lost; resynchronising its game sockets");
            if let Some(sockets) = lock(&self.worlds).get(&world) {
                sockets.values().for_each(|o| o.push(Out::Resync));
            }
        }
    }

    fn lost_everything(&self) {
        for seq in lock(&self.sequences).values_mut() {
            seq.recent.clear();
        }
        for sockets in lock(&self.worlds).values() {
            sockets.values().for_each(|o| o.push(Out::Resync));
        }
    }

    /// Hands a change to the sockets it touches: those whose zone has an area it changed get the
    /// area part; the acting player's sockets get all of it (their own state too).
    fn deliver(&self, c: &WorldChange) {
        let areas: HashSet<&str> = c.changes.iter().filter_map(|x| x["area_id"].as_str()).collect();
        let mut public: Sockets = HashMap::new();
        {
            let places = lock(&self.places);
            for a in &areas {
                if let Some(sockets) = places.get(&(c.world_id.clone(), a.to_string())) {
                    public.extend(sockets.iter().map(|(id, o)| (*id, o.clone())));
                }
            }
        }
        let mut own: Sockets = HashMap::new();
        if let Some(u) = &c.user_id {
            if let Some(sockets) = lock(&self.players).get(&(c.world_id.clone(), u.clone())) {
                own.extend(sockets.iter().map(|(id, o)| (*id, o.clone())));
            }
        }
        let queued = Instant::now();
        let (base, snapshot) = (c.base, c.snapshot);
        public.retain(|id, _| !own.contains_key(id));
        if !public.is_empty() {
            let d = Arc::new(Delta { base, snapshot, body: c.body(false), queued, moved: false });
            for o in public.values() {
                o.push(Out::Delta(d.clone()));
            }
        }
        if !own.is_empty() {
            let moved = c.changes.iter().any(|x| x["path"] == "player.location");
            let d = Arc::new(Delta { base, snapshot, body: c.body(true), queued, moved });
            for o in own.values() {
                o.push(Out::Delta(d.clone()));
            }
        }
    }

    pub(crate) fn register(&self, user_id: &str, world: &str) -> (Arc<Outbox>, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let o = Arc::new(Outbox {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user_id: user_id.to_string(),
            tx,
            bytes: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        });
        lock(&self.players).entry((world.to_string(), user_id.to_string())).or_default().insert(o.id, o.clone());
        lock(&self.worlds).entry(world.to_string()).or_default().insert(o.id, o.clone());
        (o, rx)
    }

    /// Follows the areas `areas` of `world` (instead of `old`) for socket `o`.
    pub(crate) fn follow(&self, o: &Arc<Outbox>, world: &str, old: &[String], areas: &[String]) {
        let mut places = lock(&self.places);
        for a in old {
            remove(&mut places, &(world.to_string(), a.clone()), o.id);
        }
        for a in areas {
            places.entry((world.to_string(), a.clone())).or_default().insert(o.id, o.clone());
        }
    }

    pub(crate) fn unregister(&self, o: &Arc<Outbox>, world: &str, areas: &[String]) {
        self.follow(o, world, areas, &[]);
        remove(&mut lock(&self.players), &(world.to_string(), o.user_id.clone()), o.id);
        remove(&mut lock(&self.worlds), &world.to_string(), o.id);
    }
}
