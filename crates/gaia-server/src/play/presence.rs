//! Who is in each game zone (a location of a world), on every instance: the `presence` message
//! `{type: "presence", location_id, players: [{user_id, name}], count, timestamp}` (the 50 players
//! nearest the zone's centre, each once, and how many there are), sent to the zone's sockets at most
//! once a second when it changed.
//!
//! Each instance knows its own players and tells the others through the event bus
//! (`Event::WorldPresence`: when its list for a zone changes, and every few seconds; a list not
//! repeated for 15 s is forgotten). Distances, never coordinates, cross the bus and nothing is
//! stored. A player whose last socket drops stays listed for the resume grace period, so a reconnect
//! does not make them leave and come back.

use super::hub::{lock, now_ms, Out, Outbox, Sockets};
use gaia_core::events::{Event, EventBus, WorldPresenceMember};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Players listed in a `presence` message.
pub(crate) const MAX_LISTED: usize = 50;
/// Players of one instance sent over the bus per zone.
const MAX_SHARED: usize = 200;
/// Another instance's list, when not repeated, is forgotten after this long.
const REMOTE_TTL: Duration = Duration::from_secs(15);
/// Ticks (of one second) between two full publications of this instance's lists.
const SYNC_EVERY_TICKS: u64 = 5;

struct Here {
    name: String,
    distance_m: u32,
    /// This player's sockets in the zone.
    sockets: usize,
    /// When their last socket left (they stay listed for the grace period).
    left: Option<Instant>,
}

#[derive(Default)]
struct Zone {
    local: HashMap<String, Here>,
    remote: HashMap<String, (Instant, Vec<WorldPresenceMember>)>,
    sockets: Sockets,
    /// The list shown changed since the last message.
    changed: bool,
    /// This instance's list changed since it was last published.
    local_changed: bool,
}

impl Zone {
    /// Everyone present, each once (nearest first), and how many.
    fn listed(&self) -> (Vec<(u32, &str, &str)>, usize) {
        let mut all: HashMap<&str, (u32, &str)> = HashMap::new();
        let locals = self.local.iter().map(|(u, h)| (u.as_str(), h.name.as_str(), h.distance_m));
        let remotes = self
            .remote
            .values()
            .flat_map(|(_, m)| m.iter().map(|x| (x.user_id.as_str(), x.name.as_str(), x.distance_m)));
        for (u, name, d) in locals.chain(remotes) {
            let e = all.entry(u).or_insert((d, name));
            if d < e.0 {
                *e = (d, name);
            }
        }
        let count = all.len();
        let mut list: Vec<(u32, &str, &str)> = all.into_iter().map(|(u, (d, n))| (d, n, u)).collect();
        list.sort();
        list.truncate(MAX_LISTED);
        (list, count)
    }
}

/// The presence of every zone this instance knows of.
pub(crate) struct Presences {
    events: EventBus,
    instance: String,
    grace: Duration,
    zones: Mutex<HashMap<(String, String), Zone>>,
    ticks: AtomicU64,
}

impl Presences {
    pub(crate) fn new(events: EventBus, grace: Duration) -> Presences {
        Presences {
            events,
            instance: uuid::Uuid::new_v4().to_string(),
            grace,
            zones: Default::default(),
            ticks: AtomicU64::new(0),
        }
    }

    /// Socket `o` of a player named `name` is in `zone` of `world`, `distance_m` from its centre.
    pub(crate) fn enter(&self, o: &Arc<Outbox>, world: &str, zone: &str, name: &str, distance_m: u32) {
        let mut zones = lock(&self.zones);
        let z = zones.entry((world.to_string(), zone.to_string())).or_default();
        z.sockets.insert(o.id, o.clone());
        let here = z.local.entry(o.user_id.clone()).or_insert_with(|| Here {
            name: name.to_string(),
            distance_m,
            sockets: 0,
            left: None,
        });
        let new = here.sockets == 0 && here.left.is_none();
        here.sockets += 1;
        here.left = None;
        here.distance_m = distance_m;
        z.local_changed |= new;
        // The newcomer gets the list at the next tick (and the others a new one if they are new).
        z.changed = true;
    }

    /// Socket `o` left `zone` (closed, or its player went elsewhere: `elsewhere`).
    pub(crate) fn leave(&self, o: &Arc<Outbox>, world: &str, zone: &str, elsewhere: bool) {
        let mut zones = lock(&self.zones);
        let key = (world.to_string(), zone.to_string());
        let Some(z) = zones.get_mut(&key) else { return };
        z.sockets.remove(&o.id);
        if let Some(here) = z.local.get_mut(&o.user_id) {
            here.sockets = here.sockets.saturating_sub(1);
            if here.sockets == 0 {
                if elsewhere {
                    z.local.remove(&o.user_id);
                    z.changed = true;
                    z.local_changed = true;
                } else {
                    here.left = Some(Instant::now());
                }
            }
        }
    }

    /// A player of this instance moved within `zone`.
    pub(crate) fn moved(&self, world: &str, zone: &str, user_id: &str, distance_m: u32) {
        let mut zones = lock(&self.zones);
        if let Some(here) = zones.get_mut(&(world.to_string(), zone.to_string())).and_then(|z| z.local.get_mut(user_id))
        {
            here.distance_m = distance_m;
        }
    }

    /// Another instance's list for a zone.
    pub(crate) fn remote(&self, instance: &str, world: &str, zone: &str, mut members: Vec<WorldPresenceMember>) {
        if instance == self.instance {
            return;
        }
        members.truncate(MAX_SHARED);
        let mut zones = lock(&self.zones);
        let z = zones.entry((world.to_string(), zone.to_string())).or_default();
        let same = z.remote.get(instance).is_some_and(|(_, m)| *m == members);
        if members.is_empty() {
            z.remote.remove(instance);
        } else {
            z.remote.insert(instance.to_string(), (Instant::now(), members));
        }
        z.changed |= !same;
    }

    /// Once a second: forgets who left, publishes this instance's lists that changed (all of them
    /// every few seconds), and sends each zone whose list changed its `presence` message.
    pub(crate) fn tick(&self) {
        let sync = self.ticks.fetch_add(1, Ordering::Relaxed) % SYNC_EVERY_TICKS == 0;
        let mut publish = Vec::new();
        let mut zones = lock(&self.zones);
        for ((world, zone), z) in zones.iter_mut() {
            let before = z.local.len();
            z.local.retain(|_, h| h.sockets > 0 || h.left.is_none_or(|t| t.elapsed() < self.grace));
            let before_remote = z.remote.len();
            z.remote.retain(|_, (at, _)| at.elapsed() < REMOTE_TTL);
            if z.local.len() != before {
                z.changed = true;
                z.local_changed = true;
            }
            z.changed |= z.remote.len() != before_remote;
            if z.local_changed || (sync && !z.local.is_empty()) {
                let mut members: Vec<WorldPresenceMember> = z
                    .local
                    .iter()
                    .map(|(u, h)| WorldPresenceMember {
                        user_id: u.clone(),
                        name: h.name.clone(),
                        distance_m: h.distance_m,
                    })
                    .collect();
                members.sort_by_key(|m| m.distance_m);
                members.truncate(MAX_SHARED);
                publish.push((world.clone(), zone.clone(), members));
                z.local_changed = false;
            }
            if z.changed && !z.sockets.is_empty() {
                let (list, count) = z.listed();
                let players: Vec<_> =
                    list.iter().map(|(_, name, user)| json!({"user_id": user, "name": name})).collect();
                let frame: Arc<str> = json!({"type": "presence", "location_id": zone, "players": players,
                                             "count": count, "timestamp": now_ms()})
                .to_string()
                .into();
                for o in z.sockets.values() {
                    o.push(Out::Frame(frame.clone()));
                }
            }
            z.changed = false;
        }
        zones.retain(|_, z| !(z.local.is_empty() && z.remote.is_empty() && z.sockets.is_empty()));
        drop(zones);
        for (world_id, location_id, members) in publish {
            self.events.publish(Event::WorldPresence {
                instance: self.instance.clone(),
                world_id,
                location_id,
                members,
            });
        }
    }

    /// Drops socket `o` from every zone's sockets (it closed).
    pub(crate) fn forget(&self, o: &Arc<Outbox>, world: &str, zone: Option<&str>) {
        if let Some(zone) = zone {
            self.leave(o, world, zone, false);
        }
        for z in lock(&self.zones).values_mut() {
            z.sockets.remove(&o.id);
        }
    }
}
