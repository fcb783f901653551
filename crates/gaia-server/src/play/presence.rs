//! Who is in each game zone (a location of a world), on every instance: the `presence` message
//! `{type: "presence", location_id, players: [{user_id, name}], count, timestamp}` (everyone in the
//! zone, each once, and how many there are; in a zone of more than 50, the 50 nearest the player
//! who gets it), sent to the zone's sockets at most once a second when it changed.
//!
//! Where players are is known coarsely: the cell of about 0.1 km² they are in
//! (`gaia_world::geo::area_cell`) and their distance to the zone's centre. In a crowded zone, the
//! players of one cell share one list (nearest the cell's centre), built and serialised once.
//!
//! Each instance knows its own players and tells the others through the event bus
//! (`Event::WorldPresence`: when its list for a zone changes, and every few seconds; a list not
//! repeated for 15 s is forgotten). Cells and distances, never coordinates, cross the bus, and
//! nothing is stored. A player whose last socket drops stays listed for the resume grace period, so
//! a reconnect does not make them leave and come back.

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

/// Where a player is, coarsely: their distance to the zone's centre (metres) and their cell
/// (`gaia_world::geo::area_cell`, 0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Whereabouts {
    pub(crate) distance_m: u32,
    pub(crate) cell: u64,
}

struct Here {
    name: String,
    at: Whereabouts,
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
    /// Everyone present, each once (where they are nearest the zone's centre).
    fn everyone(&self) -> HashMap<&str, (&str, Whereabouts)> {
        let mut all: HashMap<&str, (&str, Whereabouts)> = HashMap::new();
        let locals = self.local.iter().map(|(u, h)| (u.as_str(), h.name.as_str(), h.at));
        let remotes = self.remote.values().flat_map(|(_, m)| {
            m.iter()
                .map(|x| (x.user_id.as_str(), x.name.as_str(), Whereabouts { distance_m: x.distance_m, cell: x.cell }))
        });
        for (u, name, at) in locals.chain(remotes) {
            let e = all.entry(u).or_insert((name, at));
            if at.distance_m < e.1.distance_m {
                *e = (name, at);
            }
        }
        all
    }

    /// How many players are present, about (a player on two instances counts twice).
    fn about(&self) -> usize {
        self.local.len() + self.remote.values().map(|(_, m)| m.len()).sum::<usize>()
    }

    /// The `presence` frames of the zone `zone`: one for every socket when at most [`MAX_LISTED`]
    /// players are present; else one per cell the zone's sockets are in, listing the players
    /// nearest that cell (those whose cell is unknown: nearest the zone's centre).
    fn frames(&self, zone: &str) -> Vec<(Arc<str>, Vec<Arc<Outbox>>)> {
        let all = self.everyone();
        let count = all.len();
        let frame = |list: Vec<(&str, &str)>| -> Arc<str> {
            let players: Vec<_> = list.iter().map(|(user, name)| json!({"user_id": user, "name": name})).collect();
            json!({"type": "presence", "location_id": zone, "players": players, "count": count, "timestamp": now_ms()})
                .to_string()
                .into()
        };
        let nearest = |from: u64| -> Vec<(&str, &str)> {
            let mut list: Vec<(u64, u32, &str, &str)> = all
                .iter()
                .map(|(u, (name, at))| {
                    let d = match (from, at.cell) {
                        (0, _) | (_, 0) => None,
                        (a, b) => gaia_world::geo::cell_distance_m(a, b),
                    };
                    (d.map_or(u64::MAX, |d| d as u64), at.distance_m, *name, *u)
                })
                .collect();
            list.sort_unstable();
            list.truncate(MAX_LISTED);
            list.into_iter().map(|(_, _, name, user)| (user, name)).collect()
        };
        if count <= MAX_LISTED {
            return vec![(frame(nearest(0)), self.sockets.values().cloned().collect())];
        }
        let mut by_cell: HashMap<u64, Vec<Arc<Outbox>>> = HashMap::new();
        for o in self.sockets.values() {
            let cell = self.local.get(&o.user_id).map_or(0, |h| h.at.cell);
            by_cell.entry(cell).or_default().push(o.clone());
        }
        by_cell.into_iter().map(|(cell, sockets)| (frame(nearest(cell)), sockets)).collect()
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

    /// Socket `o` of a player named `name` is in `zone` of `world`, `at` there.
    pub(crate) fn enter(&self, o: &Arc<Outbox>, world: &str, zone: &str, name: &str, at: Whereabouts) {
        let mut zones = lock(&self.zones);
        let z = zones.entry((world.to_string(), zone.to_string())).or_default();
        z.sockets.insert(o.id, o.clone());
        let here = z.local.entry(o.user_id.clone()).or_insert_with(|| Here {
            name: name.to_string(),
            at,
            sockets: 0,
            left: None,
        });
        let new = here.sockets == 0 && here.left.is_none();
        here.sockets += 1;
        here.left = None;
        here.at = at;
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

    /// A player of this instance moved within `zone`. In a crowded zone, another cell changes who is
    /// nearest them (and whom they are nearest to).
    pub(crate) fn moved(&self, world: &str, zone: &str, user_id: &str, at: Whereabouts) {
        let mut zones = lock(&self.zones);
        let Some(z) = zones.get_mut(&(world.to_string(), zone.to_string())) else { return };
        let crowded = z.about() > MAX_LISTED;
        if let Some(here) = z.local.get_mut(user_id) {
            let other_cell = here.at.cell != at.cell;
            here.at = at;
            if crowded && other_cell {
                z.changed = true;
                z.local_changed = true;
            }
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
                        distance_m: h.at.distance_m,
                        cell: h.at.cell,
                    })
                    .collect();
                members.sort_by_key(|m| m.distance_m);
                members.truncate(MAX_SHARED);
                publish.push((world.clone(), zone.clone(), members));
                z.local_changed = false;
            }
            if z.changed && !z.sockets.is_empty() {
                for (frame, sockets) in z.frames(zone) {
                    for o in sockets {
                        o.push(Out::Frame(frame.clone()));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::play::PlayHub;
    use gaia_world::content::Gps;

    fn at(lat: f64, lng: f64) -> Whereabouts {
        Whereabouts { distance_m: 0, cell: gaia_world::geo::area_cell(Gps { lat, lng }).unwrap() }
    }

    /// The next presence frame a socket gets.
    async fn presence(rx: &mut tokio::sync::mpsc::Receiver<Out>) -> (Arc<str>, serde_json::Value) {
        loop {
            let out = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await.expect("a frame").unwrap();
            if let Out::Frame(f) = out {
                let v = serde_json::from_str(&f).unwrap();
                return (f, v);
            }
        }
    }

    fn users(v: &serde_json::Value) -> Vec<String> {
        v["players"].as_array().unwrap().iter().map(|p| p["user_id"].as_str().unwrap().to_string()).collect()
    }

    #[tokio::test]
    async fn a_crowded_zone_lists_each_player_those_nearest_them_one_list_per_cell() {
        let hub = PlayHub::start(&EventBus::new(64), Duration::from_secs(30));
        // 55 players at the zone's centre, 5 two kilometres north.
        let mut sockets = Vec::new();
        for i in 0..60 {
            let user = format!("u{i:02}");
            let (o, rx) = hub.register(&user, "w");
            let spot = if i < 55 { at(48.8567, 2.3523) } else { at(48.8747, 2.3523) };
            hub.presence.enter(&o, "w", "zone", &user, spot);
            sockets.push((o, rx));
        }
        hub.presence.tick();
        let far: Vec<String> = (55..60).map(|i| format!("u{i:02}")).collect();
        let (shared, v) = presence(&mut sockets[59].1).await;
        assert_eq!((v["count"].as_u64(), users(&v).len()), (Some(60), MAX_LISTED), "{v}");
        assert_eq!(users(&v)[..5], far[..], "the nearest first: the four others two km north, and themself");
        let (other, _) = presence(&mut sockets[56].1).await;
        assert!(Arc::ptr_eq(&shared, &other), "one frame per cell, serialised once");
        let (_, centre) = presence(&mut sockets[0].1).await;
        assert!(users(&centre).iter().all(|u| !far.contains(u)), "{centre}");
        // A zone of at most 50 lists everyone, the same frame for all.
        let small = PlayHub::start(&EventBus::new(64), Duration::from_secs(30));
        let (a, mut ra) = small.register("ann", "w");
        let (b, mut rb) = small.register("bob", "w");
        small.presence.enter(&a, "w", "zone", "Ann", at(48.8567, 2.3523));
        small.presence.enter(&b, "w", "zone", "Bob", at(48.8747, 2.3523));
        small.presence.tick();
        let ((fa, va), (fb, _)) = (presence(&mut ra).await, presence(&mut rb).await);
        assert!(Arc::ptr_eq(&fa, &fb));
        assert_eq!((va["count"].as_u64(), users(&va).len()), (Some(2), 2));
    }
}
