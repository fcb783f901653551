//! Checks of an experience as a whole once its files are read: references between files (templates,
//! NPCs, areas, locations), unique ids and names, ranges. Every problem names its file and field.

use super::load::{Draft, CONFIG_FILE, WORLD_FILE};
use super::model::{Area, CommandDef, ExperienceConfig, Gps, ItemInstance, Quest, WorldDoc};
use serde::Serialize;
use serde_json::Value;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Longest id (experience folder, template file stem, item instance id), in characters.
pub(crate) const MAX_ID_CHARS: usize = 128;
/// Most item instances in an experience's world.
pub(crate) const MAX_ITEM_INSTANCES: usize = 100_000;
/// Most quests an experience declares.
pub(crate) const MAX_QUESTS: usize = 10_000;
/// Most items a quest requires or gives.
const MAX_QUEST_ITEMS: usize = 100;
/// Most problems listed for one experience (the rest are counted in one last problem).
const MAX_PROBLEMS: usize = 1_000;

/// A problem with the content: which experience, which file (relative to the vault root, e.g.
/// `experiences/safe-house/state/world.json`), which field (a path like
/// `locations.pharmacy.areas.front.spots.shelf.items[0].template_id`, or "" for the whole file), and what
/// is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ContentError {
    /// The experience's id (its folder's name; "" for a problem with the `experiences` folder itself).
    pub experience: String,
    /// The file, relative to the vault root, with `/` separators.
    pub file: String,
    /// The field, as a path (`bootstrap.player_starting_location`, `items[0].template_id`), or "" for
    /// the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The problems of one experience, listed up to [`MAX_PROBLEMS`].
#[derive(Debug)]
pub(crate) struct Problems {
    experience: String,
    /// `experiences/<id>`: files are named relative to it.
    folder: String,
    list: Vec<ContentError>,
    /// Problems beyond [`MAX_PROBLEMS`], counted only.
    more: usize,
}

impl Problems {
    /// No problems yet with the experience `experience`.
    pub(crate) fn new(experience: &str) -> Self {
        Problems {
            experience: experience.to_owned(),
            folder: format!("{}/{experience}", super::load::EXPERIENCES_DIR),
            list: Vec::new(),
            more: 0,
        }
    }

    /// Adds a problem with `file` (relative to the experience's folder; "" for the folder itself).
    pub(crate) fn push(&mut self, file: &str, field: impl Into<String>, message: impl Into<String>) {
        if self.list.len() >= MAX_PROBLEMS {
            self.more += 1;
            return;
        }
        let file = if file.is_empty() { self.folder.clone() } else { format!("{}/{file}", self.folder) };
        self.list.push(ContentError {
            experience: self.experience.clone(),
            file,
            field: field.into(),
            message: message.into(),
        });
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems, with one more saying how many were left out, if any were.
    pub(crate) fn into_vec(mut self) -> Vec<ContentError> {
        if self.more > 0 {
            self.list.push(ContentError {
                experience: self.experience.clone(),
                file: self.folder.clone(),
                field: String::new(),
                message: format!("{} more problems (only the first {MAX_PROBLEMS} are listed)", self.more),
            });
        }
        self.list
    }
}

/// Checks an id that names a file or folder: 1 to [`MAX_ID_CHARS`] letters, digits, `_`, `-` or `.`,
/// not starting with `.`. The error says why not.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    check_length(id)?;
    if id.starts_with('.') {
        return Err(format!("`{id}` starts with `.`"));
    }
    match id.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(c) => Err(format!("`{id}` contains {c:?}: an id is made of letters, digits, `_`, `-` and `.`")),
        None => Ok(()),
    }
}

/// Checks that an id is not empty and at most [`MAX_ID_CHARS`] characters.
fn check_length(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("empty: an id is required".to_owned())
    } else if id.chars().nth(MAX_ID_CHARS).is_some() {
        Err(format!("longer than {MAX_ID_CHARS} characters"))
    } else {
        Ok(())
    }
}

/// `x.y.z`, each part digits.
fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.splitn(4, '.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks everything that was read of an experience, adding each problem to `problems`. Parts that
/// did not load (`config.json`, `world.json`, a template) were reported when read; what refers to them
/// is not reported again.
pub(crate) fn validate(draft: &Draft, problems: &mut Problems) {
    let world = draft.world.as_ref();
    if let Some(config) = &draft.config {
        check_config(draft, config, world, problems);
    }
    if let Some(world) = world {
        WorldCheck::new(draft, world, problems).run();
    }
    check_waypoints(draft, world, problems);
    if let Some(world) = world {
        let quests = quests(world);
        // An area by id, or as `<location>/<area>`.
        let area_exists = |a: &str| match a.split_once('/') {
            Some((l, a)) => world.locations.get(l).is_some_and(|l| l.areas.contains_key(a)),
            None => world.locations.values().any(|l| l.areas.contains_key(a)),
        };
        let location_of = |a: &str| match a.split_once('/') {
            Some((l, _)) => Some(l.to_string()),
            None => world.locations.iter().find(|(_, l)| l.areas.contains_key(a)).map(|(id, _)| id.clone()),
        };
        let found =
            super::mind::check_minds(&draft.npc_templates, &draft.item_templates, &quests, &area_exists, &location_of);
        for (file, message) in found {
            problems.push(&file, "goals/actions", message);
        }
        let area_in = |l: &str, a: &str| world.locations.get(l).is_some_and(|l| l.areas.contains_key(a));
        let known = |t: &super::Trigger| -> Option<String> {
            if let Some(a) = t.area.as_deref().filter(|a| !area_exists(a)) {
                return Some(format!("the unknown area {a}"));
            }
            if let Some(i) = t.item.as_deref().filter(|i| !draft.item_templates.contains_key(*i)) {
                return Some(format!("the unknown item {i}"));
            }
            t.quest.as_deref().filter(|q| !quests.contains_key(*q)).map(|q| format!("the unknown quest {q}"))
        };
        for (file, message) in super::scene::check_scenes(&draft.scenes, &draft.npc_templates, &area_in, &known) {
            problems.push(&file, "scene", message);
        }
    }
    check_commands(&draft.commands, problems);
    check_commands(&draft.admin_commands, problems);
}

/// The quests `world` declares (`metadata.quests`), those that read as quests.
pub(crate) fn quests(world: &WorldDoc) -> BTreeMap<String, Quest> {
    let declared = world.metadata.get("quests").and_then(Value::as_object);
    declared
        .into_iter()
        .flatten()
        .filter_map(|(id, q)| Some((id.clone(), serde_json::from_value(q.clone()).ok()?)))
        .collect()
}

/// Whether `id` names an item template (one that did not load counts: it was reported already).
fn is_item_template(draft: &Draft, id: &str) -> bool {
    draft.item_templates.contains_key(id) || draft.broken_item_templates.contains(id)
}

/// `config.json`: its id, version and where players start.
fn check_config(draft: &Draft, config: &ExperienceConfig, world: Option<&WorldDoc>, p: &mut Problems) {
    if config.id != draft.id {
        p.push(
            CONFIG_FILE,
            "id",
            format!("is `{}`; it must be the experience's folder name, `{}`", config.id, draft.id),
        );
    }
    if !is_version(&config.version) {
        p.push(CONFIG_FILE, "version", format!("is `{}`; expected `x.y.z` in digits, such as `1.0.0`", config.version));
    }
    let bootstrap = &config.bootstrap;
    if let Some(world) = world {
        let start = &bootstrap.player_starting_location;
        if start.is_empty() {
            p.push(CONFIG_FILE, "bootstrap.player_starting_location", "is required: a location id of the world");
        } else if let Some(location) = world.locations.get(start) {
            match bootstrap.player_starting_area.as_deref() {
                Some(area) if !area.is_empty() && !location.areas.contains_key(area) => p.push(
                    CONFIG_FILE,
                    "bootstrap.player_starting_area",
                    format!("no area `{area}` in location `{start}`"),
                ),
                _ => {}
            }
        } else {
            p.push(CONFIG_FILE, "bootstrap.player_starting_location", format!("no location `{start}` in {WORLD_FILE}"));
        }
    }
    for (i, template) in bootstrap.player_starting_inventory.iter().enumerate() {
        if !is_item_template(draft, template) {
            p.push(
                CONFIG_FILE,
                format!("bootstrap.player_starting_inventory[{i}]"),
                format!("no item template `{template}` (templates/items/{template}.md)"),
            );
        }
    }
}

/// Checks a point: finite, latitude within ±90, longitude within ±180.
fn check_gps(gps: &Gps, file: &str, path: &str, p: &mut Problems) {
    if !(gps.lat.is_finite() && (-90.0..=90.0).contains(&gps.lat)) {
        p.push(file, format!("{path}.lat"), format!("{} is not a latitude (-90 to 90)", gps.lat));
    }
    if !(gps.lng.is_finite() && (-180.0..=180.0).contains(&gps.lng)) {
        p.push(file, format!("{path}.lng"), format!("{} is not a longitude (-180 to 180)", gps.lng));
    }
}

/// The checks of `world.json`.
struct WorldCheck<'a, 'p> {
    draft: &'a Draft,
    world: &'a WorldDoc,
    /// Every area id, in any location (exits may lead to another location's area).
    areas: HashSet<&'a str>,
    /// Instance ids seen, with the field where first seen.
    instances: HashMap<&'a str, String>,
    p: &'p mut Problems,
}

impl<'a, 'p> WorldCheck<'a, 'p> {
    fn new(draft: &'a Draft, world: &'a WorldDoc, p: &'p mut Problems) -> Self {
        let areas = world.locations.values().flat_map(|l| l.areas.keys()).map(String::as_str).collect();
        WorldCheck { draft, world, areas, instances: HashMap::new(), p }
    }

    fn run(&mut self) {
        let count: usize = self
            .world
            .locations
            .values()
            .flat_map(|l| l.areas.values())
            .map(|a| a.items.len() + a.spots.values().map(|s| s.items.len()).sum::<usize>())
            .sum();
        if count > MAX_ITEM_INSTANCES {
            self.p.push(
                WORLD_FILE,
                "",
                format!("{count} item instances; an experience may have at most {MAX_ITEM_INSTANCES}"),
            );
            return;
        }
        let world = self.world;
        for (location_id, location) in &world.locations {
            let path = format!("locations.{location_id}");
            if let Some(gps) = &location.gps {
                check_gps(gps, WORLD_FILE, &format!("{path}.gps"), self.p);
            }
            self.exits(&location.exits, &path);
            for (area_id, area) in &location.areas {
                self.area(area, &format!("{path}.areas.{area_id}"));
            }
        }
        self.quests();
    }

    /// `metadata.quests`: an object of quests, each naming known templates, NPCs and places.
    fn quests(&mut self) {
        let Some(declared) = self.world.metadata.get("quests") else { return };
        let Some(declared) = declared.as_object() else {
            self.p.push(WORLD_FILE, "metadata.quests", "must be an object of quests by id");
            return;
        };
        if declared.len() > MAX_QUESTS {
            self.p.push(WORLD_FILE, "metadata.quests", format!("{} quests; at most {MAX_QUESTS}", declared.len()));
            return;
        }
        for (id, q) in declared {
            let path = format!("metadata.quests.{id}");
            if let Err(why) = check_id(id) {
                self.p.push(WORLD_FILE, &path, why);
            }
            let quest: Quest = match serde_json::from_value(q.clone()) {
                Ok(q) => q,
                Err(e) => {
                    self.p.push(WORLD_FILE, &path, format!("not a quest: {e}"));
                    continue;
                }
            };
            for (list, field) in [(&quest.requires.items, "requires.items"), (&quest.rewards.items, "rewards.items")] {
                if list.len() > MAX_QUEST_ITEMS {
                    self.p.push(WORLD_FILE, format!("{path}.{field}"), format!("at most {MAX_QUEST_ITEMS} items"));
                }
                for (i, t) in list.iter().enumerate().take(MAX_QUEST_ITEMS) {
                    if !is_item_template(self.draft, t) {
                        self.p.push(
                            WORLD_FILE,
                            format!("{path}.{field}[{i}]"),
                            format!("no item template `{t}` (templates/items/{t}.md)"),
                        );
                    }
                }
            }
            if quest.giver.is_none() && !quest.requires.relationship.is_empty() {
                self.p.push(
                    WORLD_FILE,
                    format!("{path}.requires.relationship"),
                    "a relationship is with the quest's giver: name one (`giver`)",
                );
            }
            if let Some(giver) = &quest.giver {
                if !self.is_npc(giver) {
                    self.p.push(
                        WORLD_FILE,
                        format!("{path}.giver"),
                        format!("no NPC `{giver}` in the world's `npcs` or in templates/npcs/"),
                    );
                }
            }
            if let Some(l) = &quest.requires.location {
                if !self.world.locations.contains_key(l) {
                    self.p.push(WORLD_FILE, format!("{path}.requires.location"), format!("no location `{l}`"));
                }
            }
            if let Some(a) = &quest.requires.area {
                if !self.areas.contains(a.as_str()) {
                    self.p.push(WORLD_FILE, format!("{path}.requires.area"), format!("no area `{a}` in any location"));
                }
            }
            for (stat, v) in &quest.rewards.stats {
                if !v.is_finite() || v.abs() > 1e9 {
                    self.p.push(WORLD_FILE, format!("{path}.rewards.stats.{stat}"), "must be a number within ±1e9");
                }
            }
            if !(-100..=100).contains(&quest.rewards.trust) {
                self.p.push(WORLD_FILE, format!("{path}.rewards.trust"), "must be within -100 to 100");
            }
        }
    }

    fn area(&mut self, area: &'a Area, path: &str) {
        self.exits(&area.exits, path);
        self.items(&area.items, path);
        self.npcs(&area.npcs, path);
        for (spot_id, spot) in &area.spots {
            let path = format!("{path}.spots.{spot_id}");
            self.items(&spot.items, &path);
            self.npcs(&spot.npcs, &path);
        }
    }

    fn exits(&mut self, exits: &[String], path: &str) {
        for (i, exit) in exits.iter().enumerate() {
            if !self.areas.contains(exit.as_str()) {
                self.p.push(WORLD_FILE, format!("{path}.exits[{i}]"), format!("no area `{exit}` in any location"));
            }
        }
    }

    fn items(&mut self, items: &'a [ItemInstance], path: &str) {
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}.items[{i}]");
            match check_length(&item.instance_id) {
                Err(why) => self.p.push(WORLD_FILE, format!("{path}.instance_id"), why),
                Ok(()) => match self.instances.entry(&item.instance_id) {
                    Entry::Occupied(first) => self.p.push(
                        WORLD_FILE,
                        format!("{path}.instance_id"),
                        format!("`{}` is already the instance id of {}", item.instance_id, first.get()),
                    ),
                    Entry::Vacant(slot) => {
                        slot.insert(path.clone());
                    }
                },
            }
            let template = &item.template_id;
            if !is_item_template(self.draft, template) {
                self.p.push(
                    WORLD_FILE,
                    format!("{path}.template_id"),
                    format!("no item template `{template}` (templates/items/{template}.md)"),
                );
            }
        }
    }

    fn is_npc(&self, npc: &str) -> bool {
        self.world.npcs.contains_key(npc)
            || self.draft.npc_templates.contains_key(npc)
            || self.draft.broken_npc_templates.contains(npc)
    }

    fn npcs(&mut self, npcs: &[String], path: &str) {
        for (i, npc) in npcs.iter().enumerate() {
            if !self.is_npc(npc) {
                self.p.push(
                    WORLD_FILE,
                    format!("{path}.npcs[{i}]"),
                    format!("no NPC `{npc}` in the world's `npcs` or in templates/npcs/"),
                );
            }
        }
    }
}

/// Waypoints: unique ids, valid points, anchored locations that exist.
fn check_waypoints(draft: &Draft, world: Option<&WorldDoc>, p: &mut Problems) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (file, waypoint) in &draft.waypoints {
        match check_length(&waypoint.id) {
            Err(why) => p.push(file, "id", why),
            Ok(()) => match seen.entry(&waypoint.id) {
                Entry::Occupied(first) => {
                    p.push(
                        file,
                        "id",
                        format!("`{}` is already the id of the waypoint in {}", waypoint.id, first.get()),
                    );
                }
                Entry::Vacant(slot) => {
                    slot.insert(file);
                }
            },
        }
        check_gps(&waypoint.location, file, "location", p);
        if let (Some(location), Some(world)) = (&waypoint.location_id, world) {
            if !world.locations.contains_key(location) {
                p.push(file, "location_id", format!("no location `{location}` in {WORLD_FILE}"));
            }
        }
    }
}

/// The commands of one folder (`game-logic/` or `admin-logic/`): names are one word; names and aliases
/// are unique within the folder, ignoring case.
fn check_commands(commands: &[CommandDef], p: &mut Problems) {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for command in commands {
        let file = command.file.as_str();
        let name = command.command.as_str();
        if name.is_empty() {
            p.push(file, "command", "empty: a command needs a name");
        } else if name.chars().any(char::is_whitespace) {
            p.push(file, "command", format!("`{name}` contains whitespace: a command's name is one word"));
        } else if name.chars().nth(MAX_ID_CHARS).is_some() {
            p.push(file, "command", format!("longer than {MAX_ID_CHARS} characters"));
        }
        for (i, alias) in command.aliases.iter().enumerate() {
            if alias.trim().is_empty() {
                p.push(file, format!("aliases[{i}]"), "empty alias");
            }
        }
        let names = std::iter::once(("command".to_owned(), name))
            .chain(command.aliases.iter().enumerate().map(|(i, a)| (format!("aliases[{i}]"), a.as_str())))
            .filter(|(_, n)| !n.trim().is_empty());
        for (field, name) in names {
            match seen.entry(name.to_lowercase()) {
                Entry::Occupied(first) if *first.get() != file => {
                    p.push(file, field, format!("`{name}` is already the name or an alias of {}", first.get()));
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(file);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::model::{Location, Spot, Waypoint};

    fn fields(p: Problems) -> Vec<(String, String)> {
        p.into_vec().into_iter().map(|e| (e.file, e.field)).collect()
    }

    fn item(instance: &str, template: &str) -> ItemInstance {
        serde_json::from_value(serde_json::json!({"instance_id": instance, "template_id": template}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn command(file: &str, name: &str, aliases: &[&str]) -> CommandDef {
        CommandDef {
            command: name.into(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            file: file.into(),
            ..CommandDef::default()
        }
    }

    #[test]
    fn ids() {
        assert!(check_id("safe-house").is_ok());
        assert!(check_id("canned_food.v2").is_ok());
        assert!(check_id("café").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id(".hidden").is_err());
        assert!(check_id("two words").is_err());
        assert!(check_id("../up").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id(&"x".repeat(MAX_ID_CHARS)).is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_CHARS + 1)).is_err());
        // Characters, not bytes.
        assert!(check_id(&"é".repeat(MAX_ID_CHARS)).is_ok());
    }

    #[test]
    fn versions() {
        for good in ["1.0.0", "0.10.3", "12.0.100"] {
            assert!(is_version(good), "{good}");
        }
        for bad in ["1.0", "1.0.0.0", "v1.0.0", "1..0", "1.0.x", "", "1.0.0-beta", "１.0.0"] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn problems_are_bounded() {
        let mut p = Problems::new("x");
        for i in 0..MAX_PROBLEMS + 5 {
            p.push("config.json", format!("f{i}"), "bad");
        }
        let list = p.into_vec();
        assert_eq!(list.len(), MAX_PROBLEMS + 1);
        assert_eq!(list[0].file, "experiences/x/config.json");
        assert!(list[MAX_PROBLEMS].message.starts_with("5 more problems"), "{}", list[MAX_PROBLEMS].message);
    }

    #[test]
    fn commands_and_aliases_are_unique_ignoring_case() {
        let mut p = Problems::new("x");
        check_commands(
            &[
                command("game-logic/pray.md", "pray", &["kneel", "pray"]),
                command("game-logic/rest.md", "Rest", &["KNEEL", ""]),
                command("game-logic/run.md", "PRAY", &[]),
                command("game-logic/two.md", "two words", &[]),
                command("game-logic/none.md", "", &[]),
            ],
            &mut p,
        );
        let got = fields(p);
        let want = [
            ("game-logic/rest.md", "aliases[1]"),
            ("game-logic/rest.md", "aliases[0]"),
            ("game-logic/run.md", "command"),
            ("game-logic/two.md", "command"),
            ("game-logic/none.md", "command"),
        ];
        let want: Vec<(String, String)> =
            want.iter().map(|(f, k)| (format!("experiences/x/{f}"), (*k).to_owned())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn world_references() {
        let mut world = WorldDoc::default();
        let mut spot = Spot { items: vec![item("a", "known"), item("b", "missing")], ..Spot::default() };
        spot.npcs = vec!["sam".into(), "ghost".into()];
        let mut area = Area { exits: vec!["hall".into(), "nowhere".into()], ..Area::default() };
        area.spots.insert("shelf".into(), spot);
        // Older content: items directly in the area; the second `a` is reported.
        area.items = vec![item("a", "known"), item("", "known")];
        let mut location =
            Location { gps: Some(Gps { lat: 91.0, lng: f64::NAN }), exits: vec!["hall".into()], ..Location::default() };
        location.areas.insert("hall".into(), area);
        world.locations.insert("house".into(), location);
        world.npcs.insert("sam".into(), serde_json::json!({}));
        let mut draft = Draft { id: "x".into(), ..Draft::default() };
        draft.item_templates.insert("known".into(), Default::default());
        draft.broken_item_templates.insert("broken".into());
        draft.waypoints.push((
            "waypoints/w.md".into(),
            Waypoint {
                id: "w".into(),
                name: "W".into(),
                waypoint_type: "zone".into(),
                location: Gps { lat: 0.0, lng: 181.0 },
                media: Default::default(),
                vps_anchor_id: None,
                location_id: Some("garden".into()),
                extra: Default::default(),
            },
        ));
        draft.world = Some(world);
        let mut p = Problems::new("x");
        validate(&draft, &mut p);
        let got: Vec<String> = fields(p).into_iter().map(|(f, k)| format!("{f} {k}")).collect();
        let w = "experiences/x/state/world.json";
        let want = [
            format!("{w} locations.house.gps.lat"),
            format!("{w} locations.house.gps.lng"),
            format!("{w} locations.house.areas.hall.exits[1]"),
            format!("{w} locations.house.areas.hall.items[1].instance_id"),
            format!("{w} locations.house.areas.hall.spots.shelf.items[0].instance_id"),
            format!("{w} locations.house.areas.hall.spots.shelf.items[1].template_id"),
            format!("{w} locations.house.areas.hall.spots.shelf.npcs[1]"),
            "experiences/x/waypoints/w.md location.lng".to_owned(),
            "experiences/x/waypoints/w.md location_id".to_owned(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn config_references() {
        let mut world = WorldDoc::default();
        let mut location = Location::default();
        location.areas.insert("hall".into(), Area::default());
        world.locations.insert("house".into(), location);
        let mut config = ExperienceConfig { id: "other".into(), version: "1.0".into(), ..Default::default() };
        config.bootstrap.player_starting_location = "house".into();
        config.bootstrap.player_starting_area = Some("attic".into());
        config.bootstrap.player_starting_inventory = vec!["broken".into(), "nothing".into()];
        let mut draft = Draft { id: "x".into(), config: Some(config), world: Some(world), ..Draft::default() };
        draft.broken_item_templates.insert("broken".into());
        let mut p = Problems::new("x");
        validate(&draft, &mut p);
        let got: Vec<String> = fields(p).into_iter().map(|(_, k)| k).collect();
        assert_eq!(got, ["id", "version", "bootstrap.player_starting_area", "bootstrap.player_starting_inventory[1]"]);

        // An unknown starting location; no world: nothing said about it.
        let config = draft.config.as_mut().map(|c| &mut c.bootstrap);
        if let Some(b) = config {
            b.player_starting_location = "garden".into();
        }
        let mut p = Problems::new("x");
        validate(&draft, &mut p);
        assert!(fields(p).iter().any(|(_, k)| k == "bootstrap.player_starting_location"));
        draft.world = None;
        let mut p = Problems::new("x");
        validate(&draft, &mut p);
        assert!(!fields(p).iter().any(|(_, k)| k.starts_with("bootstrap.player_starting_l")));
    }
}
