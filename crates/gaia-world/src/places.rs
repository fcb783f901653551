//! Live edits of a world's places by its administrators: `@create location|area|spot`, `@edit
//! location|area|spot <id> <field> <value>`, `@delete location|area|spot <id>`, `@connect <area>
//! <area>` and `@disconnect <area> <area>`.
//!
//! The vault's content is never written: each edit is a row of `world_places` (the fields set, `fresh`
//! for a place made anew, or `deleted`), and a world's places are its content with its edits on top
//! ([`apply`]). Edits are versioned world changes like any other, published as `world_update`s,
//! kept by `@reset experience`'s backup and removed by it. A place is deleted only when nothing is lost:
//! no item lies in it and no player stands in it, and never the players' starting place.

use crate::command::{CommandResult, StateChange};
use crate::content::{Area, Experience, Gps, Location, Spot};
use crate::engine::Ctx;
use crate::error::Result;
use serde_json::{json, Map, Value};

/// Longest place name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest place description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// Longest place id made by `@create`, in characters.
const MAX_PLACE_ID_CHARS: usize = 64;
/// Most exits of an area, and NPCs of a place.
const MAX_LINKS: usize = 100;

/// The kinds of places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Location,
    Area,
    Spot,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        match word.to_lowercase().as_str() {
            "location" | "locations" => Some(Kind::Location),
            "area" | "areas" => Some(Kind::Area),
            "spot" | "spots" => Some(Kind::Spot),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Location => "location",
            Kind::Area => "area",
            Kind::Spot => "spot",
        }
    }
}

/// A place found in the world: its location, area and spot ids (as deep as its kind).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    kind: Kind,
    location: String,
    area: String,
    spot: String,
}

impl Place {
    /// Its key in `world_places`: `location:<l>`, `area:<l>/<a>`, `spot:<l>/<a>/<s>`.
    fn key(&self) -> String {
        match self.kind {
            Kind::Location => format!("location:{}", self.location),
            Kind::Area => format!("area:{}/{}", self.location, self.area),
            Kind::Spot => format!("spot:{}/{}/{}", self.location, self.area, self.spot),
        }
    }

    fn id(&self) -> &str {
        match self.kind {
            Kind::Location => &self.location,
            Kind::Area => &self.area,
            Kind::Spot => &self.spot,
        }
    }

    /// The key prefixes of the places inside it, whose edits go with it.
    fn inner_prefixes(&self) -> Vec<String> {
        match self.kind {
            Kind::Location => vec![format!("area:{}/", self.location), format!("spot:{}/", self.location)],
            Kind::Area => vec![format!("spot:{}/{}/", self.location, self.area)],
            Kind::Spot => Vec::new(),
        }
    }
}

/// The world's places with its edits applied: `edits` are `(place key, edit)` as stored.
pub(crate) fn apply(base: &Experience, edits: &[(String, Value)]) -> Experience {
    let mut exp = base.clone();
    let rank = |k: &str| match k.split_once(':').map(|(kind, _)| kind) {
        Some("location") => 0,
        Some("area") => 1,
        _ => 2,
    };
    let mut sorted: Vec<&(String, Value)> = edits.iter().collect();
    sorted.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    for (key, edit) in sorted {
        let Some(e) = edit.as_object() else { continue };
        let deleted = e.get("deleted").and_then(Value::as_bool).unwrap_or(false);
        let fresh = e.get("fresh").and_then(Value::as_bool).unwrap_or(false);
        let (kind, path) = key.split_once(':').unwrap_or_default();
        let ids: Vec<&str> = path.split('/').collect();
        let locations = &mut exp.world.locations;
        match (kind, ids.as_slice()) {
            ("location", [l]) => {
                if deleted {
                    locations.remove(*l);
                    continue;
                }
                let loc = locations.entry(l.to_string()).or_default();
                if fresh {
                    *loc = Location::default();
                }
                loc.id = l.to_string();
                set_common(e, &mut loc.name, &mut loc.description);
                if let Some(g) = e.get("gps").and_then(|g| serde_json::from_value::<Gps>(g.clone()).ok()) {
                    loc.gps = Some(g);
                }
                if let Some(x) = strings(e, "exits") {
                    loc.exits = x;
                }
            }
            ("area", [l, a]) => {
                let Some(loc) = locations.get_mut(*l) else { continue };
                if deleted {
                    loc.areas.remove(*a);
                    continue;
                }
                let area = loc.areas.entry(a.to_string()).or_default();
                if fresh {
                    *area = Area::default();
                }
                area.id = a.to_string();
                set_common(e, &mut area.name, &mut area.description);
                if let Some(x) = strings(e, "exits") {
                    area.exits = x;
                }
                if let Some(x) = strings(e, "npcs") {
                    area.npcs = x;
                }
            }
            ("spot", [l, a, s]) => {
                let Some(area) = locations.get_mut(*l).and_then(|x| x.areas.get_mut(*a)) else { continue };
                if deleted {
                    area.spots.remove(*s);
                    continue;
                }
                let spot = area.spots.entry(s.to_string()).or_default();
                if fresh {
                    *spot = Spot::default();
                }
                spot.id = s.to_string();
                set_common(e, &mut spot.name, &mut spot.description);
                if let Some(x) = strings(e, "npcs") {
                    spot.npcs = x;
                }
            }
            _ => {}
        }
    }
    exp
}

fn set_common(e: &Map<String, Value>, name: &mut String, description: &mut String) {
    if let Some(n) = e.get("name").and_then(Value::as_str) {
        *name = n.to_string();
    }
    if let Some(d) = e.get("description").and_then(Value::as_str) {
        *description = d.to_string();
    }
}

fn strings(e: &Map<String, Value>, field: &str) -> Option<Vec<String>> {
    e.get(field)?.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

/// Checks an id made by `@create`: letters, digits, `_` and `-`, at most [`MAX_PLACE_ID_CHARS`].
fn check_new_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.chars().count() > MAX_PLACE_ID_CHARS {
        return Err(format!("An id is 1 to {MAX_PLACE_ID_CHARS} characters."));
    }
    if !id.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{id}`: an id is made of letters, digits, `_` and `-`."));
    }
    Ok(())
}

impl Ctx<'_> {
    /// Finds a place by id: `<location>`, `<area>` or `<location>/<area>`, `<spot>`,
    /// `<area>/<spot>` or `<location>/<area>/<spot>` (a bare id: the first in id order).
    fn find_place(&self, kind: Kind, id: &str) -> Option<Place> {
        find_in(&self.exp.world, kind, id)
    }
}

/// Finds a place of `w` by id (see [`Ctx::find_place`]).
fn find_in(w: &crate::content::WorldDoc, kind: Kind, id: &str) -> Option<Place> {
    let parts: Vec<&str> = id.split('/').collect();
    let place = |l: &str, a: &str, s: &str| Place { kind, location: l.into(), area: a.into(), spot: s.into() };
    match (kind, parts.as_slice()) {
        (Kind::Location, [l]) => w.locations.contains_key(*l).then(|| place(l, "", "")),
        (Kind::Area, [l, a]) => w.locations.get(*l)?.areas.contains_key(*a).then(|| place(l, a, "")),
        (Kind::Area, [a]) => w.locations.iter().find(|(_, x)| x.areas.contains_key(*a)).map(|(l, _)| place(l, a, "")),
        (Kind::Spot, [l, a, s]) => w.locations.get(*l)?.areas.get(*a)?.spots.contains_key(*s).then(|| place(l, a, s)),
        (Kind::Spot, [a, s]) => w
            .locations
            .iter()
            .find(|(_, x)| x.areas.get(*a).is_some_and(|y| y.spots.contains_key(*s)))
            .map(|(l, _)| place(l, a, s)),
        (Kind::Spot, [s]) => w
            .locations
            .iter()
            .find_map(|(l, x)| x.areas.iter().find(|(_, y)| y.spots.contains_key(*s)).map(|(a, _)| place(l, a, s))),
        _ => None,
    }
}

impl Ctx<'_> {
    /// The place as shown in a change (`item`): its own fields, without what it contains.
    fn shown(&self, p: &Place) -> Value {
        shown_in(&self.exp.world, p)
    }

    /// The world's places as change `c` sees them (the content with every edit so far, this
    /// change's own included): what NPC actions on places start from.
    async fn places_now(&self, c: &mut crate::state::Change) -> Result<crate::content::WorldDoc> {
        let base = self.worlds.experience(&self.exp.config.id)?;
        let edits = c.place_edits().await?;
        Ok(apply(&base, &edits).world)
    }
}

/// Place `p` of `w` as shown in a change (see [`Ctx::shown`]).
fn shown_in(w: &crate::content::WorldDoc, p: &Place) -> Value {
    let Some(l) = w.locations.get(&p.location) else { return Value::Null };
    match p.kind {
        Kind::Location => {
            json!({"id": l.id, "name": l.name, "description": l.description, "gps": l.gps, "exits": l.exits})
        }
        Kind::Area => l.areas.get(&p.area).map_or(Value::Null, |a| {
            json!({"id": a.id, "name": a.name, "description": a.description, "exits": a.exits, "npcs": a.npcs,
                   "location_id": p.location})
        }),
        Kind::Spot => l.areas.get(&p.area).and_then(|a| a.spots.get(&p.spot)).map_or(Value::Null, |s| {
            json!({"id": s.id, "name": s.name, "description": s.description, "npcs": s.npcs,
                   "location_id": p.location, "area_id": p.area})
        }),
    }
}

impl Ctx<'_> {
    fn place_change(&self, operation: &str, p: &Place, shown: Option<Value>) -> StateChange {
        StateChange {
            operation: operation.into(),
            area_id: (p.kind != Kind::Location).then(|| p.area.clone()),
            path: Some(format!("world.{}s", p.kind.name())),
            instance_id: p.id().to_string(),
            template_id: None,
            item: shown,
        }
    }

    /// `@create location <id> [name…]`, `@create area <id> in <location> [name…]`, `@create spot <id> in
    /// <area> [name…]`; `@create item <template> [at <area>]` spawns.
    pub(crate) async fn create_place(&self, words: &[&str], version: i64) -> Result<CommandResult> {
        let usage = "@create location <id> [name], @create area <id> in <location> [name], \
                     @create spot <id> in <area> [name], or @create item <template> [at <area>].";
        let arg = |i: usize| words.get(i).copied().unwrap_or_default();
        if arg(1).eq_ignore_ascii_case("item") {
            let at = words.iter().position(|w| w.eq_ignore_ascii_case("at")).and_then(|i| words.get(i + 1)).copied();
            return self.spawn(arg(2), at, version).await;
        }
        let (Some(kind), id) = (Kind::parse(arg(1)), arg(2)) else {
            return Ok(CommandResult::fail(usage, version));
        };
        if let Err(why) = check_new_id(id) {
            return Ok(CommandResult::fail(why, version));
        }
        let (parent, name_from) = match kind {
            Kind::Location => (None, 3),
            _ if arg(3).eq_ignore_ascii_case("in") && !arg(4).is_empty() => (Some(arg(4)), 5),
            _ => return Ok(CommandResult::fail(usage, version)),
        };
        let name: String = match words.get(name_from..) {
            Some(rest) if !rest.is_empty() => rest.join(" ").chars().take(MAX_NAME_CHARS).collect(),
            _ => id.to_string(),
        };
        let w = &self.exp.world;
        let place = match (kind, parent) {
            (Kind::Location, _) => {
                if w.locations.contains_key(id) {
                    return Ok(CommandResult::fail(format!("There is already a location {id}."), version));
                }
                Place { kind, location: id.into(), area: String::new(), spot: String::new() }
            }
            (Kind::Area, Some(l)) => {
                if !w.locations.contains_key(l) {
                    return Ok(CommandResult::fail(format!("There is no location {l}."), version));
                }
                // Areas are named by id alone (`go`, exits): unique in the whole world.
                if self.find_place(Kind::Area, id).is_some() {
                    return Ok(CommandResult::fail(format!("There is already an area {id}."), version));
                }
                Place { kind, location: l.into(), area: id.into(), spot: String::new() }
            }
            (Kind::Spot, Some(a)) => {
                let Some(area) = self.find_place(Kind::Area, a) else {
                    return Ok(CommandResult::fail(format!("There is no area {a}."), version));
                };
                if self.find_place(Kind::Spot, &format!("{}/{}/{id}", area.location, area.area)).is_some() {
                    return Ok(CommandResult::fail(format!("There is already a spot {id} in {a}."), version));
                }
                Place { kind, location: area.location, area: area.area, spot: id.into() }
            }
            _ => return Ok(CommandResult::fail(usage, version)),
        };
        let edit = json!({"fresh": true, "name": name, "description": ""});
        let mut c = self.store().begin(self.world).await?;
        c.set_place_edit(&place.key(), Some(&edit)).await?;
        let mut shown = edit.clone();
        shown["id"] = id.into();
        shown.as_object_mut().map(|o| o.remove("fresh"));
        let changes = vec![self.place_change("add", &place, Some(shown))];
        self.finish(c, format!("Created {} {id} ({name}).", kind.name()), changes, None).await
    }

    /// `@edit location|area|spot <id> <field> <value>`: `name`, `description`; a location's `gps
    /// <lat>,<lng>`; an area's or spot's `npcs <id,id…|none>`.
    pub(crate) async fn edit_place(&self, words: &[&str], version: i64) -> Result<CommandResult> {
        let arg = |i: usize| words.get(i).copied().unwrap_or_default();
        let Some(kind) = Kind::parse(arg(1)) else {
            return Ok(CommandResult::fail("@edit location|area|spot|item <id> <field> <value>.", version));
        };
        let (id, field) = (arg(2), arg(3).to_lowercase());
        let value = words.get(4..).map(|w| w.join(" ")).unwrap_or_default();
        let Some(place) = self.find_place(kind, id) else {
            return Ok(CommandResult::fail(format!("There is no {} {id}.", kind.name()), version));
        };
        if value.is_empty() {
            return Ok(CommandResult::fail(format!("@edit {} {id} <field> <value>.", kind.name()), version));
        }
        let set: Value = match (field.as_str(), kind) {
            ("name", _) => value.chars().take(MAX_NAME_CHARS).collect::<String>().into(),
            ("description", _) => value.chars().take(MAX_DESCRIPTION_CHARS).collect::<String>().into(),
            ("gps", Kind::Location) => {
                let parsed = value.split_once(',').and_then(|(a, b)| {
                    let (lat, lng) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
                    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng)).then_some(Gps { lat, lng })
                });
                match parsed {
                    Some(g) => json!(g),
                    None => return Ok(CommandResult::fail("gps is <lat>,<lng> (within ±90, ±180).", version)),
                }
            }
            ("npcs", Kind::Area | Kind::Spot) => {
                let ids: Vec<&str> = if value.eq_ignore_ascii_case("none") {
                    Vec::new()
                } else {
                    value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
                };
                if ids.len() > MAX_LINKS {
                    return Ok(CommandResult::fail(format!("At most {MAX_LINKS} NPCs."), version));
                }
                let known = |n: &str| self.exp.npc_templates.contains_key(n) || self.exp.world.npcs.contains_key(n);
                if let Some(unknown) = ids.iter().find(|n| !known(n)) {
                    return Ok(CommandResult::fail(format!("There is no NPC {unknown}."), version));
                }
                json!(ids)
            }
            _ => {
                let fields = match kind {
                    Kind::Location => "name, description, gps",
                    _ => "name, description, npcs",
                };
                return Ok(CommandResult::fail(format!("Editable fields of a {}: {fields}.", kind.name()), version));
            }
        };
        let mut c = self.store().begin(self.world).await?;
        let mut edit = c.place_edit(&place.key()).await?.filter(Value::is_object).unwrap_or_else(|| json!({}));
        edit[field.as_str()] = set.clone();
        c.set_place_edit(&place.key(), Some(&edit)).await?;
        let mut shown = self.shown(&place);
        if shown.is_object() {
            shown[field.as_str()] = set;
        }
        let changes = vec![self.place_change("update", &place, Some(shown))];
        self.finish(c, format!("{} {id}: {field} = {value}.", kind.name()), changes, None).await
    }

    /// `@delete location|area|spot <id>`: only an empty place that is not where players start; the
    /// exits that led into a deleted area go with it.
    pub(crate) async fn delete_place(&self, kind_word: &str, id: &str, version: i64) -> Result<CommandResult> {
        let Some(kind) = Kind::parse(kind_word) else {
            return Ok(CommandResult::fail("@delete location|area|spot|item <id>.", version));
        };
        let Some(place) = self.find_place(kind, id) else {
            return Ok(CommandResult::fail(format!("There is no {} {id}.", kind.name()), version));
        };
        let (start_location, start_area) = crate::state::starting_place(self.exp);
        let starts_here = match kind {
            Kind::Location => place.location == start_location,
            Kind::Area => place.location == start_location && place.area == start_area,
            Kind::Spot => false,
        };
        if starts_here {
            return Ok(CommandResult::fail(
                format!("Players start in {id}: change the experience's bootstrap in the vault first."),
                version,
            ));
        }
        let mut c = self.store().begin(self.world).await?;
        let items = match kind {
            Kind::Location => c.count_items_in(&place.location, None, None).await?,
            Kind::Area => c.count_items_in(&place.location, Some(&place.area), None).await?,
            Kind::Spot => c.count_items_in(&place.location, Some(&place.area), Some(&place.spot)).await?,
        };
        let players = match kind {
            Kind::Location => c.count_players_in(&place.location, None).await?,
            Kind::Area => c.count_players_in(&place.location, Some(&place.area)).await?,
            Kind::Spot => 0,
        };
        if items > 0 || players > 0 {
            drop(c);
            return Ok(CommandResult::fail(
                format!(
                    "{} {id} holds {items} items and {players} players: move or delete them first (@where, @delete item).",
                    kind.name()
                ),
                version,
            ));
        }
        c.remove_place_edits(&place.inner_prefixes()).await?;
        c.set_place_edit(&place.key(), Some(&json!({"deleted": true}))).await?;
        let mut changes = vec![self.place_change("remove", &place, None)];
        // Exits into the areas that go.
        let gone: Vec<&str> = match kind {
            Kind::Location => {
                self.exp.world.locations.get(&place.location).map(|l| l.areas.keys().map(String::as_str).collect())
            }
            Kind::Area => Some(vec![place.area.as_str()]),
            Kind::Spot => None,
        }
        .unwrap_or_default();
        if !gone.is_empty() {
            for (lid, l) in &self.exp.world.locations {
                if *lid == place.location && kind == Kind::Location {
                    continue;
                }
                for (aid, a) in &l.areas {
                    if a.exits.iter().any(|x| gone.contains(&x.as_str())) {
                        let exits: Vec<&String> = a.exits.iter().filter(|x| !gone.contains(&x.as_str())).collect();
                        let other =
                            Place { kind: Kind::Area, location: lid.clone(), area: aid.clone(), spot: String::new() };
                        self.set_exits(&mut c, &other, json!(exits)).await?;
                        let mut shown = self.shown(&other);
                        shown["exits"] = json!(exits);
                        changes.push(self.place_change("update", &other, Some(shown)));
                    }
                }
            }
        }
        self.finish(c, format!("Deleted {} {id}.", kind.name()), changes, None).await
    }

    async fn set_exits(&self, c: &mut crate::state::Change, area: &Place, exits: Value) -> Result<()> {
        let mut edit = c.place_edit(&area.key()).await?.filter(Value::is_object).unwrap_or_else(|| json!({}));
        edit["exits"] = exits;
        c.set_place_edit(&area.key(), Some(&edit)).await
    }

    /// `@connect <area> <area>` (`connect`) or `@disconnect <area> <area>`: the exits both ways.
    pub(crate) async fn connect(&self, a: &str, b: &str, connect: bool, version: i64) -> Result<CommandResult> {
        let verb = if connect { "connect" } else { "disconnect" };
        let mut c = self.store().begin(self.world).await?;
        match self.link(&mut c, a, b, connect).await? {
            Ok(changes) => self.finish(c, format!("{a} and {b} are {verb}ed."), changes, None).await,
            Err(why) => {
                drop(c);
                Ok(CommandResult::fail(format!("@{verb}: {why}"), version))
            }
        }
    }

    /// Joins areas `a` and `b` (`connect`: each an exit of the other) or parts them, inside `c` (from
    /// the places as `c` sees them): the changes, or why it cannot be done (nothing changed).
    pub(crate) async fn link(
        &self,
        c: &mut crate::state::Change,
        a: &str,
        b: &str,
        connect: bool,
    ) -> Result<std::result::Result<Vec<StateChange>, String>> {
        let w = self.places_now(c).await?;
        let (Some(pa), Some(pb)) = (find_in(&w, Kind::Area, a), find_in(&w, Kind::Area, b)) else {
            return Ok(Err(format!("{a} and {b} must both be areas of the world.")));
        };
        if pa == pb {
            return Ok(Err("it needs two different areas.".into()));
        }
        if !connect && pa.location == pb.location {
            return Ok(Err("areas of one location are always reachable from each other; exits join locations.".into()));
        }
        let area_of = |p: &Place| -> Option<&Area> { w.locations.get(&p.location)?.areas.get(&p.area) };
        // Both ways checked before either is written.
        let mut writes = Vec::new();
        for (from, to) in [(&pa, &pb), (&pb, &pa)] {
            let mut exits = area_of(from).map(|x| x.exits.clone()).unwrap_or_default();
            let had = exits.contains(&to.area);
            if connect == had {
                continue;
            }
            if connect {
                if exits.len() >= MAX_LINKS {
                    return Ok(Err(format!("{} has {MAX_LINKS} exits already.", from.area)));
                }
                exits.push(to.area.clone());
            } else {
                exits.retain(|x| *x != to.area);
            }
            writes.push((from, exits));
        }
        if writes.is_empty() {
            let state = if connect { "already connected" } else { "not connected" };
            return Ok(Err(format!("{a} and {b} are {state}.")));
        }
        let mut changes = Vec::new();
        for (from, exits) in writes {
            self.set_exits(c, from, json!(exits)).await?;
            let mut shown = shown_in(&w, from);
            shown["exits"] = json!(exits);
            changes.push(self.place_change("update", from, Some(shown)));
        }
        Ok(Ok(changes))
    }

    /// Moves NPC `npc` into area `to` (`<area>` or `<location>/<area>`: the area's own NPCs), out of
    /// every area and spot that held it, inside `c` (from the places as `c` sees them): the changes,
    /// or why not (nothing changed).
    pub(crate) async fn move_npc(
        &self,
        c: &mut crate::state::Change,
        npc: &str,
        to: &str,
    ) -> Result<std::result::Result<Vec<StateChange>, String>> {
        let w = self.places_now(c).await?;
        let Some(target) = find_in(&w, Kind::Area, to) else {
            return Ok(Err(format!("there is no area {to}.")));
        };
        let mut holders = Vec::new();
        for (l, loc) in &w.locations {
            for (a, area) in &loc.areas {
                let place = |kind, spot: &str| Place { kind, location: l.clone(), area: a.clone(), spot: spot.into() };
                if area.npcs.iter().any(|n| n == npc) {
                    holders.push((place(Kind::Area, ""), area.npcs.clone()));
                }
                for (sid, spot) in &area.spots {
                    if spot.npcs.iter().any(|n| n == npc) {
                        holders.push((place(Kind::Spot, sid), spot.npcs.clone()));
                    }
                }
            }
        }
        if holders.iter().any(|(p, _)| p == &target) {
            return Ok(Err("already there.".into()));
        }
        let mut here = w
            .locations
            .get(&target.location)
            .and_then(|l| l.areas.get(&target.area))
            .map(|a| a.npcs.clone())
            .unwrap_or_default();
        if here.len() >= MAX_LINKS {
            return Ok(Err(format!("{to} holds {MAX_LINKS} NPCs already.")));
        }
        here.push(npc.to_string());
        let mut writes: Vec<(Place, Vec<String>)> =
            holders.into_iter().map(|(p, npcs)| (p, npcs.into_iter().filter(|n| n != npc).collect())).collect();
        writes.push((target, here));
        let mut changes = Vec::new();
        for (p, npcs) in writes {
            let key = p.key();
            let mut edit = c.place_edit(&key).await?.filter(Value::is_object).unwrap_or_else(|| json!({}));
            edit["npcs"] = json!(npcs);
            c.set_place_edit(&key, Some(&edit)).await?;
            let mut shown = shown_in(&w, &p);
            if shown.is_object() {
                shown["npcs"] = json!(npcs);
            }
            changes.push(self.place_change("update", &p, Some(shown)));
        }
        Ok(Ok(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_over_the_content_in_order() {
        let vault = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
        let base = crate::content::load_catalog(&vault).experiences["safe-house"].clone();
        let edits = vec![
            ("spot:cellar_house/cellar/crate".to_string(), json!({"fresh": true, "name": "Crate"})),
            ("area:cellar_house/cellar".to_string(), json!({"fresh": true, "name": "Cellar", "exits": ["main_room"]})),
            ("location:cellar_house".to_string(), json!({"fresh": true, "name": "Cellar House"})),
            ("location:pharmacy".to_string(), json!({"deleted": true})),
            ("area:safe_house/roof".to_string(), json!({"name": "Rooftop"})),
            ("area:nowhere/x".to_string(), json!({"name": "lost"})),
            ("bogus".to_string(), json!({"name": "x"})),
        ];
        let exp = apply(&base, &edits);
        let w = &exp.world.locations;
        assert!(!w.contains_key("pharmacy"));
        assert!(!w.contains_key("nowhere"));
        assert_eq!(w["safe_house"].areas["roof"].name, "Rooftop");
        assert_eq!(
            w["safe_house"].areas["roof"].description,
            base.world.locations["safe_house"].areas["roof"].description
        );
        let cellar = &w["cellar_house"].areas["cellar"];
        assert_eq!((cellar.id.as_str(), cellar.exits.as_slice()), ("cellar", &["main_room".to_string()][..]));
        assert_eq!(cellar.spots["crate"].name, "Crate");
        assert_eq!(apply(&base, &[]), *base);
    }
}
