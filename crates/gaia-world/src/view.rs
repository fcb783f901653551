//! What a game client is shown (spec §4): the area of interest around a player (their zone: the
//! nearest location within 1 km, its areas, spots, items and NPCs, and the player's own state) and
//! the player's zone as they move ([`crate::geo`]).

use crate::content::{Experience, Gps};
use crate::engine::{area_json, player_json, visible, Worlds};
use crate::error::Result;
use crate::state::Holder;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The world around a player, as the `area_of_interest` message carries it.
#[derive(Debug, Clone, Serialize)]
pub struct AreaOfInterest {
    /// The version the view is at.
    pub snapshot_version: i64,
    /// The player's zone (`{id, name, description, gps: {lat, lng}}`), or `null` when no location
    /// is near.
    pub zone: Option<Value>,
    /// The zone's areas by id: `{id, name, description, spots: {<id>: {id, name, description, items,
    /// npcs}}, items, npcs}` (items merged with their templates; `items` of the area itself: those in
    /// no spot). Shared by every player who asks at the same version: the same `Arc`.
    pub areas: Arc<Map<String, Value>>,
    /// `{current_location, current_area, inventory, stats, status_effects, quests}`.
    pub player: Value,
    /// The world the player plays in (a shared experience's id, or an isolated player's own world);
    /// `world_update` events name it.
    #[serde(skip)]
    pub world_id: String,
}

/// Where a position put a player ([`Worlds::update_location`]).
#[derive(Debug, Clone)]
pub struct Located {
    /// Their zone now (`None`: no location near).
    pub zone: Option<String>,
    /// Whether they changed location (a versioned change, published).
    pub moved: bool,
}

impl Worlds {
    /// The area of interest of `user_id` in `exp`: the areas of the location they are in. The areas
    /// of a location at a version are built once and shared ([`AreaOfInterest::areas`]) by every
    /// player who asks at that version.
    pub async fn area_of_interest(&self, exp: &str, user_id: &str) -> Result<AreaOfInterest> {
        let (exp, world, seen) = self.enter(exp, user_id).await?;
        let p = &seen.player;
        let location = exp.world.locations.get(&p.current_location);
        let areas = match self.zone_cached(&exp, &world, &p.current_location, seen.version) {
            Some(areas) => areas,
            None => {
                let built = Arc::new(zone_areas(&exp, location, &seen.items));
                self.cache_zone(&exp, &world, &p.current_location, seen.version, built.clone());
                built
            }
        };
        let zone = location.map(|l| {
            let gps = l.gps.or_else(|| self.geo(&exp).location(&l.id));
            json!({"id": l.id, "name": l.name, "description": l.description,
                   "gps": gps.map(|g| json!({"lat": g.lat, "lng": g.lng}))})
        });
        Ok(AreaOfInterest {
            snapshot_version: seen.version,
            zone,
            areas,
            player: player_json(&exp, p, &seen.inventory),
            world_id: world,
        })
    }

    /// The zone (location id) of a player of `exp` at `at` who was in `current`: the nearest
    /// location within 1 km, with hysteresis ([`crate::geo::GeoIndex::zone`]). No database read.
    pub fn zone_for(&self, exp: &str, at: Gps, current: Option<&str>) -> Result<Option<String>> {
        Ok(self.geo(&self.experience(exp)?).zone(at, current))
    }

    /// Sets where `user_id` is from a GPS position: their zone is the nearest location within 1 km
    /// (with hysteresis, [`crate::geo::HYSTERESIS_M`]); entering another location moves them there
    /// (to its first area) as a versioned change. Far from every location, they stay where they were.
    pub async fn update_location(&self, exp: &str, user_id: &str, at: Gps) -> Result<Located> {
        let (experience, world, seen) = self.enter(exp, user_id).await?;
        let p = &seen.player;
        let zone = self.geo(&experience).zone(at, Some(&p.current_location));
        let Some(z) = zone.clone().filter(|z| *z != p.current_location) else {
            return Ok(Located { zone, moved: false });
        };
        let Some(area) = crate::state::first_area(&experience, &z) else {
            return Ok(Located { zone, moved: false });
        };
        let caller = crate::engine::Caller::player(user_id);
        let ctx =
            crate::engine::Ctx { worlds: self, exp: &experience, world: &world, user_id, caller: &caller, seen: &seen };
        let moved = ctx.move_to(&z, &area).await?.success;
        Ok(Located { zone, moved })
    }
}

/// The areas of `location` with `items` (those of the location, any holder inside it) in place.
fn zone_areas(
    exp: &Experience,
    location: Option<&crate::content::Location>,
    items: &[crate::state::LiveItem],
) -> Map<String, Value> {
    let Some(l) = location else { return Map::new() };
    l.areas
        .iter()
        .map(|(aid, a)| {
            let here: Vec<&crate::state::LiveItem> = items
                .iter()
                .filter(|i| visible(i) && matches!(&i.holder, Holder::Area { area, .. } if area == aid))
                .collect();
            (aid.clone(), area_json(exp, aid, a, &here))
        })
        .collect()
}
