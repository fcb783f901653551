//! Reading experiences from the vault (`experiences/<exp>/…`), with every input bounded: file sizes,
//! files per folder, experiences, item instances, problems listed. Symbolic links are never followed;
//! hidden files (`.`-prefixed) are ignored.

use super::model::{
    Area, Bootstrap, Capabilities, CommandDef, Experience, ExperienceConfig, Gps, ItemInstance, ItemTemplate, Location,
    Media, Multiplayer, NpcTemplate, Spot, StateSettings, Waypoint, WorldDoc,
};
use super::validate::{self, check_id, ContentError, Problems};
use gaia_kb::parse::{parse_frontmatter, FrontmatterError};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The vault's folder of experiences.
pub(crate) const EXPERIENCES_DIR: &str = "experiences";
/// An experience's settings, relative to its folder.
pub(crate) const CONFIG_FILE: &str = "config.json";
/// The world as a new instance starts it, relative to the experience's folder.
pub(crate) const WORLD_FILE: &str = "state/world.json";
/// Largest file read, in bytes (4 MiB).
pub(crate) const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most bytes read for one experience, all files together (64 MiB).
pub(crate) const MAX_EXPERIENCE_BYTES: u64 = 64 * 1024 * 1024;
/// Most experiences in a vault.
pub(crate) const MAX_EXPERIENCES: usize = 1_000;
/// Most entries of one folder of an experience (`templates/items`, `game-logic`, …), hidden ones counted.
pub(crate) const MAX_FILES_PER_FOLDER: usize = 10_000;
/// Most fields tried one by one to find the one at fault in an object that does not deserialize.
const MAX_PROBED_FIELDS: usize = 64;

/// Every experience under `<vault>/experiences/`, and the problems of those that did not load.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The experiences that loaded, by id (their folder's name).
    pub experiences: BTreeMap<String, Arc<Experience>>,
    /// The problems of the experiences that did not load (each of those is left out entirely), and of
    /// the `experiences` folder itself.
    pub errors: Vec<ContentError>,
}

/// Loads every experience under `<vault_root>/experiences/`. An experience with any problem is left
/// out and its problems listed in [`Catalog::errors`]; the others load. A vault without an
/// `experiences` folder gives an empty catalog and no error. Folders whose names are not valid ids and
/// symbolic links are reported and skipped; plain files are ignored. At most 1,000 experiences are read.
///
/// Reads files synchronously: call it off the async workers (`spawn_blocking`).
pub fn load_catalog(vault_root: &Path) -> Catalog {
    let mut catalog = Catalog::default();
    let folder_error = |experience: &str, message: String| ContentError {
        experience: experience.to_owned(),
        file: if experience.is_empty() {
            EXPERIENCES_DIR.to_owned()
        } else {
            format!("{EXPERIENCES_DIR}/{experience}")
        },
        field: String::new(),
        message,
    };
    match lstat(vault_root, EXPERIENCES_DIR) {
        Ok(None) => return catalog,
        Ok(Some(meta)) if !meta.is_dir() => {
            catalog.errors.push(folder_error("", "not a folder".to_owned()));
            return catalog;
        }
        Ok(Some(_)) => {}
        Err(message) => {
            catalog.errors.push(folder_error("", message));
            return catalog;
        }
    }
    let dir = vault_root.join(EXPERIENCES_DIR);
    let listing = list_dir(&dir, MAX_EXPERIENCES);
    catalog.errors.extend(listing.problems.into_iter().map(|(name, message)| folder_error(&name, message)));
    for entry in listing.entries {
        match entry.kind {
            Kind::Dir => {}
            Kind::Symlink => {
                catalog.errors.push(folder_error(&entry.name, "a symbolic link: not followed".to_owned()));
                continue;
            }
            Kind::File | Kind::Other => continue,
        }
        if let Err(why) = check_id(&entry.name) {
            catalog.errors.push(folder_error(&entry.name, format!("not a valid experience id: {why}")));
            continue;
        }
        match load_folder(&dir.join(&entry.name), &entry.name) {
            Ok(experience) => {
                tracing::debug!(experience = %entry.name, "experience loaded");
                catalog.experiences.insert(entry.name, Arc::new(experience));
            }
            Err(problems) => {
                tracing::warn!(experience = %entry.name, problems = problems.len(), "experience not loaded");
                catalog.errors.extend(problems);
            }
        }
    }
    catalog
}

/// Loads and checks the experience `<vault_root>/experiences/<id>/`: every problem found (each naming
/// its file and field), or the experience.
///
/// Reads files synchronously: call it off the async workers (`spawn_blocking`).
pub fn load_experience(vault_root: &Path, id: &str) -> Result<Experience, Vec<ContentError>> {
    let mut problems = Problems::new(id);
    if let Err(why) = check_id(id) {
        problems.push("", "", format!("not a valid experience id: {why}"));
        return Err(problems.into_vec());
    }
    let rel = format!("{EXPERIENCES_DIR}/{id}");
    match lstat(vault_root, &rel) {
        Ok(Some(meta)) if meta.is_dir() => return load_folder(&vault_root.join(&rel), id),
        Ok(Some(_)) => problems.push("", "", "not a folder"),
        Ok(None) => problems.push("", "", "no such experience"),
        Err(message) => problems.push("", "", message),
    }
    Err(problems.into_vec())
}

/// An experience as read, before it is checked as a whole.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    /// The folder's name.
    pub(crate) id: String,
    /// `config.json`, if it loaded.
    pub(crate) config: Option<ExperienceConfig>,
    /// `state/world.json`, if it loaded.
    pub(crate) world: Option<WorldDoc>,
    /// Item templates that loaded.
    pub(crate) item_templates: BTreeMap<String, ItemTemplate>,
    /// NPC templates that loaded.
    pub(crate) npc_templates: BTreeMap<String, NpcTemplate>,
    /// Ids of item template files that did not load (reported already).
    pub(crate) broken_item_templates: BTreeSet<String>,
    /// Ids of NPC template files that did not load (reported already).
    pub(crate) broken_npc_templates: BTreeSet<String>,
    /// `game-logic/` commands, by file name.
    pub(crate) commands: Vec<CommandDef>,
    /// `admin-logic/` commands, by file name.
    pub(crate) admin_commands: Vec<CommandDef>,
    /// Waypoints with their files (relative to the experience's folder), by file name.
    pub(crate) waypoints: Vec<(String, Waypoint)>,
    /// Scenes that loaded.
    pub(crate) scenes: BTreeMap<String, super::Scene>,
}

/// Reads, checks and assembles the experience in `dir` (an existing folder, not a link).
fn load_folder(dir: &Path, id: &str) -> Result<Experience, Vec<ContentError>> {
    let mut p = Problems::new(id);
    let mut reader = Reader { dir, read: 0, over_budget: false };
    let mut draft = Draft { id: id.to_owned(), ..Draft::default() };

    if let Some(text) = reader.read(CONFIG_FILE, true, &mut p) {
        draft.config = report(parse_json(&text, locate_config), CONFIG_FILE, &mut p);
    }
    if let Some(text) = reader.read(WORLD_FILE, true, &mut p) {
        draft.world = report(parse_json(&text, locate_world), WORLD_FILE, &mut p).map(|mut world| {
            fill_ids(&mut world, &mut p);
            world
        });
    }
    reader.markdown("templates/items", &mut p, |p, stem, file, text| {
        match report(parse_template::<ItemTemplate>(stem, &text), file, p) {
            Some(template) => {
                draft.item_templates.insert(stem.to_owned(), template);
            }
            None => {
                draft.broken_item_templates.insert(stem.to_owned());
            }
        }
    });
    reader.markdown("templates/npcs", &mut p, |p, stem, file, text| {
        match report(parse_template::<NpcTemplate>(stem, &text), file, p) {
            Some(template) => {
                draft.npc_templates.insert(stem.to_owned(), template);
            }
            None => {
                draft.broken_npc_templates.insert(stem.to_owned());
            }
        }
    });
    reader.markdown("scenes", &mut p, |p, stem, file, text| {
        draft.scenes.extend(report(parse_template::<super::Scene>(stem, &text), file, p).map(|s| (stem.to_owned(), s)));
    });
    reader.markdown("game-logic", &mut p, |p, stem, file, text| {
        draft.commands.extend(report(parse_command(stem, file, &text, false), file, p));
    });
    reader.markdown("admin-logic", &mut p, |p, stem, file, text| {
        draft.admin_commands.extend(report(parse_command(stem, file, &text, true), file, p));
    });
    reader.markdown("waypoints", &mut p, |p, stem, file, text| {
        if let Some(waypoint) = report(parse_waypoint(stem, &text), file, p) {
            draft.waypoints.push((file.to_owned(), waypoint));
        }
    });

    validate::validate(&draft, &mut p);
    match (p.is_empty(), draft.config, draft.world) {
        (true, Some(config), Some(world)) => Ok(Experience {
            config,
            quests: validate::quests(&world),
            world,
            item_templates: draft.item_templates,
            npc_templates: draft.npc_templates,
            commands: draft.commands.into_iter().map(|c| (c.command.clone(), c)).collect(),
            admin_commands: draft.admin_commands.into_iter().map(|c| (c.command.clone(), c)).collect(),
            waypoints: draft.waypoints.into_iter().map(|(_, w)| (w.id.clone(), w)).collect(),
            scenes: draft.scenes,
        }),
        (empty, ..) => {
            if empty {
                // Not reached: a missing config or world is reported when read.
                p.push("", "", "the experience could not be loaded");
            }
            Err(p.into_vec())
        }
    }
}

/// Problems found in one file: `(field, message)` pairs.
type Found = Vec<(String, String)>;

/// The value, or its problems added to `p` for `file`.
fn report<T>(result: Result<T, Found>, file: &str, p: &mut Problems) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(found) => {
            for (field, message) in found {
                p.push(file, field, message);
            }
            None
        }
    }
}

/// Reads the files of one experience's folder, within the byte budget.
struct Reader<'a> {
    dir: &'a Path,
    /// Bytes read so far.
    read: u64,
    /// Whether the budget was exceeded (reported once).
    over_budget: bool,
}

impl Reader<'_> {
    /// The text of `rel` (relative to the experience's folder), or `None` with the problem reported (a
    /// missing file is a problem only when `required`).
    fn read(&mut self, rel: &str, required: bool, p: &mut Problems) -> Option<String> {
        let meta = match lstat(self.dir, rel) {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                if required {
                    p.push(rel, "", "missing: this file is required");
                }
                return None;
            }
            Err(message) => {
                p.push(rel, "", message);
                return None;
            }
        };
        if !meta.is_file() {
            p.push(rel, "", "not a file");
            return None;
        }
        let bytes = match self.read_bounded(rel) {
            Ok(bytes) => bytes,
            Err(Some(message)) => {
                p.push(rel, "", message);
                return None;
            }
            Err(None) => return None,
        };
        match String::from_utf8(bytes) {
            Ok(mut text) => {
                if text.starts_with('\u{feff}') {
                    text.drain(..'\u{feff}'.len_utf8());
                }
                Some(text)
            }
            Err(e) => {
                p.push(rel, "", format!("not UTF-8 text: {}", e.utf8_error()));
                None
            }
        }
    }

    /// The bytes of `rel`, the size checked before reading (and again while reading, should the file
    /// grow). `Err(None)`: the experience's byte budget was exceeded before, and reported then.
    fn read_bounded(&mut self, rel: &str) -> Result<Vec<u8>, Option<String>> {
        let cannot = |e: std::io::Error| Some(format!("cannot read: {e}"));
        let file = fs::File::open(self.dir.join(rel)).map_err(cannot)?;
        let len = file.metadata().map_err(cannot)?.len();
        if len > MAX_FILE_BYTES {
            return Err(Some(format!("{len} bytes: larger than the limit of {MAX_FILE_BYTES} bytes (4 MiB)")));
        }
        if self.over_budget {
            return Err(None);
        }
        if self.read + len > MAX_EXPERIENCE_BYTES {
            self.over_budget = true;
            return Err(Some(format!(
                "the experience's files add up to more than {MAX_EXPERIENCE_BYTES} bytes (64 MiB): the rest are \
                 not read"
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
        let read = bytes.len() as u64;
        if read > MAX_FILE_BYTES {
            return Err(Some(format!("larger than the limit of {MAX_FILE_BYTES} bytes (4 MiB)")));
        }
        self.read += read;
        Ok(bytes)
    }

    /// Calls `each(problems, stem, file, text)` for every `*.md` file of the folder `rel`, by name; a
    /// missing folder has none. Stems that are not valid ids, links and unreadable files are reported.
    fn markdown(&mut self, rel: &str, p: &mut Problems, mut each: impl FnMut(&mut Problems, &str, &str, String)) {
        match lstat(self.dir, rel) {
            Ok(None) => return,
            Ok(Some(meta)) if !meta.is_dir() => {
                p.push(rel, "", "not a folder");
                return;
            }
            Ok(Some(_)) => {}
            Err(message) => {
                p.push(rel, "", message);
                return;
            }
        }
        let listing = list_dir(&self.dir.join(rel), MAX_FILES_PER_FOLDER);
        for (name, message) in listing.problems {
            p.push(&join_file(rel, &name), "", message);
        }
        for entry in listing.entries {
            let Some(stem) = entry.name.strip_suffix(".md") else { continue };
            let file = join_file(rel, &entry.name);
            match entry.kind {
                Kind::File => {}
                Kind::Symlink => {
                    p.push(&file, "", "a symbolic link: not followed");
                    continue;
                }
                Kind::Dir | Kind::Other => continue,
            }
            if let Err(why) = check_id(stem) {
                p.push(&file, "", format!("the file name is not a valid id: {why}"));
                continue;
            }
            if let Some(text) = self.read(&file, true, p) {
                each(p, stem, &file, text);
            }
        }
    }
}

/// `dir/name`, or `dir` for an empty name.
fn join_file(dir: &str, name: &str) -> String {
    if name.is_empty() {
        dir.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The metadata of `base/rel` (`rel` with `/` separators) without following links: `None` when it does
/// not exist; an error when it or a folder on the way is a symbolic link, or a folder on the way is
/// not a folder.
fn lstat(base: &Path, rel: &str) -> Result<Option<fs::Metadata>, String> {
    let mut path = base.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let shown = parts[..=i].join("/");
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read `{shown}`: {e}")),
        };
        if meta.file_type().is_symlink() {
            return Err(format!("`{shown}` is a symbolic link: not followed"));
        }
        if i + 1 == parts.len() {
            return Ok(Some(meta));
        }
        if !meta.is_dir() {
            return Err(format!("`{shown}` is not a folder"));
        }
    }
    Ok(None)
}

/// What a folder entry is (links not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A folder entry.
#[derive(Debug)]
struct DirEntry {
    name: String,
    kind: Kind,
}

/// A folder's entries, by name (hidden ones left out), and problems as `(entry name or "", message)`.
#[derive(Debug, Default)]
struct Listing {
    entries: Vec<DirEntry>,
    problems: Vec<(String, String)>,
}

/// Lists `dir`, reading at most `limit` entries (hidden ones counted): beyond, a problem and the rest
/// left out.
fn list_dir(dir: &Path, limit: usize) -> Listing {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            listing.problems.push((String::new(), format!("cannot list the folder: {e}")));
            return listing;
        }
    };
    for (n, entry) in entries.enumerate() {
        if n >= limit {
            listing.problems.push((String::new(), format!("more than {limit} entries: the others are not read")));
            break;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                listing.problems.push((String::new(), format!("cannot list the folder: {e}")));
                break;
            }
        };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            listing.problems.push((os_name.to_string_lossy().into_owned(), "the name is not UTF-8".to_owned()));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => Kind::Symlink,
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(t) if t.is_file() => Kind::File,
            Ok(_) => Kind::Other,
            Err(e) => {
                listing.problems.push((name.to_owned(), format!("cannot read: {e}")));
                continue;
            }
        };
        listing.entries.push(DirEntry { name: name.to_owned(), kind });
    }
    listing.entries.sort_by(|a, b| a.name.cmp(&b.name));
    listing
}

/// Parses a JSON file as a `T`. Invalid JSON: one problem for the whole file, with its line and column.
/// Valid JSON of the wrong shape: `locate` names each field at fault.
fn parse_json<T: DeserializeOwned>(text: &str, locate: fn(&Value, &mut Found)) -> Result<T, Found> {
    match serde_json::from_str::<T>(text) {
        Ok(value) => Ok(value),
        Err(e) if e.is_data() => {
            let mut found = Found::new();
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                locate(&value, &mut found);
            }
            if found.is_empty() {
                found.push((String::new(), e.to_string()));
            }
            Err(found)
        }
        Err(e) => Err(vec![(String::new(), format!("not valid JSON: {e}"))]),
    }
}

/// Deserializes `value` as a `T`, or `locate`s what is wrong.
fn decode<T: DeserializeOwned>(value: &Value, locate: impl FnOnce(&Value, &mut Found)) -> Result<T, Found> {
    T::deserialize(value).map_err(|e| {
        let mut found = Found::new();
        locate(value, &mut found);
        if found.is_empty() {
            found.push((String::new(), e.to_string()));
        }
        found
    })
}

/// Why `value` (at `path`) is not a `T`, if it is not: the field at fault and serde's message.
fn diagnose<T: DeserializeOwned>(value: &Value, path: &str, found: &mut Found) {
    let Err(e) = T::deserialize(value) else { return };
    let message = e.to_string();
    let field = match value.as_object().and_then(|object| culprit::<T>(object, &message)) {
        Some(key) => join_field(path, &key),
        None => path.to_owned(),
    };
    found.push((field, message));
}

/// The key of `object` that keeps it from being a `T`: the missing one, or the first whose value alone
/// fails (a valid value alone deserializes, or fails only for the other required fields).
fn culprit<T: DeserializeOwned>(object: &Map<String, Value>, message: &str) -> Option<String> {
    if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        if !object.contains_key(name) {
            return Some(name.to_owned());
        }
    }
    object
        .iter()
        .take(MAX_PROBED_FIELDS)
        .find(|(key, value)| {
            let alone = Value::Object(Map::from_iter([((*key).clone(), (*value).clone())]));
            T::deserialize(&alone).is_err_and(|e| !e.to_string().starts_with("missing field"))
        })
        .map(|(key, _)| key.clone())
}

/// `path.key`, or `key` at the top.
fn join_field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `value`'s `key`, when it is an object.
fn object_child<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.get(key).filter(|v| v.is_object())
}

/// `value` with its children `keys` replaced by valid placeholders of the same shape (object or list)
/// when they have that shape: those children are checked on their own. A child of another shape is
/// kept, to be reported at this level.
fn shallow(value: &Value, keys: &[(&str, Value)]) -> Value {
    let same_shape = |a: &Value, b: &Value| (a.is_object() && b.is_object()) || (a.is_array() && b.is_array());
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| match keys.iter().find(|(key, placeholder)| k == key && same_shape(v, placeholder)) {
                    Some((_, placeholder)) => (k.clone(), placeholder.clone()),
                    None => (k.clone(), v.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A valid `Gps`, standing in for one checked on its own.
fn gps_placeholder() -> Value {
    json!({"lat": 0.0, "lng": 0.0})
}

/// What is wrong in a `config.json` that is valid JSON.
fn locate_config(root: &Value, found: &mut Found) {
    if let Some(v) = object_child(root, "state") {
        diagnose::<StateSettings>(v, "state", found);
    }
    if let Some(v) = object_child(root, "bootstrap") {
        diagnose::<Bootstrap>(v, "bootstrap", found);
    }
    if let Some(v) = object_child(root, "multiplayer") {
        diagnose::<Multiplayer>(v, "multiplayer", found);
    }
    if let Some(v) = object_child(root, "capabilities") {
        diagnose::<Capabilities>(v, "capabilities", found);
    }
    let keys = ["state", "bootstrap", "multiplayer", "capabilities"].map(|k| (k, json!({})));
    diagnose::<ExperienceConfig>(&shallow(root, &keys), "", found);
}

/// What is wrong in a `world.json` that is valid JSON, down to each item instance.
fn locate_world(root: &Value, found: &mut Found) {
    if let Some(Value::Object(locations)) = object_child(root, "locations") {
        for (id, location) in locations {
            locate_location(location, &format!("locations.{id}"), found);
        }
    }
    diagnose::<WorldDoc>(&shallow(root, &[("locations", json!({}))]), "", found);
}

fn locate_location(value: &Value, path: &str, found: &mut Found) {
    if let Some(gps) = object_child(value, "gps") {
        diagnose::<Gps>(gps, &format!("{path}.gps"), found);
    }
    if let Some(Value::Object(areas)) = object_child(value, "areas") {
        for (id, area) in areas {
            locate_area(area, &format!("{path}.areas.{id}"), found);
        }
    }
    diagnose::<Location>(&shallow(value, &[("gps", gps_placeholder()), ("areas", json!({}))]), path, found);
}

fn locate_area(value: &Value, path: &str, found: &mut Found) {
    if let Some(Value::Object(spots)) = object_child(value, "spots") {
        for (id, spot) in spots {
            let path = format!("{path}.spots.{id}");
            locate_items(spot, &path, found);
            diagnose::<Spot>(&shallow(spot, &[("items", json!([]))]), &path, found);
        }
    }
    locate_items(value, path, found);
    diagnose::<Area>(&shallow(value, &[("spots", json!({})), ("items", json!([]))]), path, found);
}

fn locate_items(value: &Value, path: &str, found: &mut Found) {
    if let Some(Value::Array(items)) = value.get("items") {
        for (i, item) in items.iter().enumerate() {
            diagnose::<ItemInstance>(item, &format!("{path}.items[{i}]"), found);
        }
    }
}

/// What is wrong in a waypoint's YAML.
fn locate_waypoint(root: &Value, found: &mut Found) {
    if let Some(v) = object_child(root, "location") {
        diagnose::<Gps>(v, "location", found);
    }
    if let Some(v) = object_child(root, "media") {
        diagnose::<Media>(v, "media", found);
    }
    diagnose::<Waypoint>(&shallow(root, &[("location", gps_placeholder()), ("media", json!({}))]), "", found);
}

/// Sets the ids of locations, areas and spots left out in the JSON to their map keys; an id that
/// differs from its key is a problem.
fn fill_ids(world: &mut WorldDoc, p: &mut Problems) {
    fn fill(id: &mut String, key: &str, path: &str, p: &mut Problems) {
        if id.is_empty() {
            key.clone_into(id);
        } else if id != key {
            p.push(
                WORLD_FILE,
                format!("{path}.id"),
                format!("is `{id}` but its key is `{key}`: leave `id` out or make them the same"),
            );
        }
    }
    for (location_id, location) in &mut world.locations {
        let path = format!("locations.{location_id}");
        fill(&mut location.id, location_id, &path, p);
        for (area_id, area) in &mut location.areas {
            let path = format!("{path}.areas.{area_id}");
            fill(&mut area.id, area_id, &path, p);
            for (spot_id, spot) in &mut area.spots {
                fill(&mut spot.id, spot_id, &format!("{path}.spots.{spot_id}"), p);
            }
        }
    }
}

/// Splits a Markdown file into its YAML frontmatter and its body, as `gaia_kb` reads notes
/// ([`gaia_kb::parse::split_frontmatter`]). An opened frontmatter that is never closed is an error.
fn split_frontmatter(text: &str) -> Result<(Option<&str>, &str), String> {
    match gaia_kb::parse::split_frontmatter(text) {
        (Some(yaml), offset) => Ok((Some(yaml), &text[offset..])),
        (None, _) if text.starts_with("---\n") || text.starts_with("---\r\n") => {
            Err("the frontmatter is not closed (no `---` line after it)".to_owned())
        }
        (None, _) => Ok((None, text)),
    }
}

/// The frontmatter of a Markdown file (empty when it has none) and its body, trimmed.
fn frontmatter_and_body(text: &str) -> Result<(Map<String, Value>, &str), Found> {
    let whole = |message: String| vec![(String::new(), message)];
    let (yaml, body) = split_frontmatter(text).map_err(whole)?;
    let frontmatter = match yaml {
        Some(yaml) => parse_frontmatter(yaml).map_err(|e| whole(e.to_string()))?,
        None => Map::new(),
    };
    Ok((frontmatter, body.trim()))
}

/// An item or NPC template: the frontmatter, `id` the file's stem, `body` the Markdown after it.
fn parse_template<T: DeserializeOwned>(stem: &str, text: &str) -> Result<T, Found> {
    let (mut frontmatter, body) = frontmatter_and_body(text)?;
    if let Some(Value::String(id)) = frontmatter.get("id") {
        if id != stem {
            return Err(vec![(
                "id".to_owned(),
                format!("is `{id}`; a template's id is its file's name, `{stem}` (leave `id` out)"),
            )]);
        }
    }
    frontmatter.insert("id".to_owned(), Value::from(stem));
    frontmatter.insert("body".to_owned(), Value::from(body));
    decode(&Value::Object(frontmatter), |v, found| diagnose::<T>(v, "", found))
}

/// A command (`game-logic/` or, `admin`, `admin-logic/`): the frontmatter (`command` defaults to the
/// file's stem, `requires_admin` to `admin`; `aliases` may be a comma-separated string), the body as
/// its rules.
fn parse_command(stem: &str, file: &str, text: &str, admin: bool) -> Result<CommandDef, Found> {
    let (mut frontmatter, body) = frontmatter_and_body(text)?;
    frontmatter.entry("command").or_insert_with(|| Value::from(stem));
    frontmatter.entry("requires_admin").or_insert(Value::Bool(admin));
    if let Some(Value::String(aliases)) = frontmatter.get("aliases") {
        let list = aliases.split(',').map(str::trim).filter(|a| !a.is_empty()).map(Value::from).collect();
        frontmatter.insert("aliases".to_owned(), Value::Array(list));
    }
    frontmatter.insert("rules".to_owned(), Value::from(body));
    frontmatter.insert("file".to_owned(), Value::from(file));
    decode(&Value::Object(frontmatter), |v, found| diagnose::<CommandDef>(v, "", found))
}

/// A waypoint: the file's first fenced ```` ```yaml ```` block (`id` defaults to the file's stem).
fn parse_waypoint(stem: &str, text: &str) -> Result<Waypoint, Found> {
    let whole = |message: String| vec![(String::new(), message)];
    let yaml = yaml_block(text).map_err(whole)?;
    let mut map = parse_frontmatter(yaml).map_err(|e| {
        whole(match e {
            FrontmatterError::Syntax(why) => format!("the yaml block is not valid YAML: {why}"),
            other => format!("the yaml block is refused: {other}"),
        })
    })?;
    map.entry("id").or_insert_with(|| Value::from(stem));
    decode(&Value::Object(map), locate_waypoint)
}

/// The content of the first fenced code block whose language is `yaml` (or `yml`).
fn yaml_block(text: &str) -> Result<&str, String> {
    let mut pos = 0;
    let mut lines = text.split_inclusive('\n');
    while let Some(line) = lines.next() {
        pos += line.len();
        let trimmed = line.trim();
        let Some(fence) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) else { continue };
        let marker = fence.chars().next().unwrap_or('`');
        let width = trimmed.chars().take_while(|&c| c == marker).count();
        let language = trimmed[width..].split_whitespace().next().unwrap_or("");
        if !(language.eq_ignore_ascii_case("yaml") || language.eq_ignore_ascii_case("yml")) {
            continue;
        }
        let start = pos;
        for line in lines.by_ref() {
            let t = line.trim();
            let closing = t.chars().take_while(|&c| c == marker).count();
            if closing >= width && t.chars().all(|c| c == marker) {
                return Ok(&text[start..pos]);
            }
            pos += line.len();
        }
        return Err("the ```yaml block is not closed".to_owned());
    }
    Err("no ```yaml block: a waypoint file holds one fenced yaml block".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(found: Found) -> Vec<String> {
        found.into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn frontmatter_is_split_as_gaia_kb_splits_notes() {
        let texts = [
            "---\nname: A\n---\nbody",
            "---\r\nname: A\r\n...\r\nbody\r\n",
            "no frontmatter\n---\nx: 1\n---\n",
            "---\n---\n",
            "--- \nname: A\n---\nbody",
            "---\nname: [unclosed\n---\nbody",
        ];
        for text in texts {
            let offset = gaia_kb::parse::parse_note(text, "n").body_offset;
            let (_, body) = split_frontmatter(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(text.len() - body.len(), offset, "{text:?}");
        }
        assert!(split_frontmatter("---\nname: A\nbody").is_err());
    }

    #[test]
    fn yaml_blocks() {
        let text = "# Title\n\n```json\n{}\n```\n\n````yaml\nid: a\n```\nname: b\n````\n```yaml\nid: c\n```\n";
        assert_eq!(yaml_block(text), Ok("id: a\n```\nname: b\n"));
        assert_eq!(yaml_block("~~~ yml\nid: x\n~~~"), Ok("id: x\n"));
        assert!(yaml_block("```yaml\nid: a\n").is_err());
        assert!(yaml_block("id: a\n").is_err());
    }

    #[test]
    fn fields_at_fault_are_named() {
        let world = serde_json::json!({
            "locations": {
                "pharmacy": {
                    "gps": {"lat": "north", "lng": 2.0},
                    "areas": {
                        "front": {
                            "items": [{"instance_id": "a", "template_id": "t"}, {"instance_id": "b", "template_id": 7}],
                            "spots": {"shelf": {"items": [{"instance_id": "c"}], "npcs": "sam"}}
                        },
                        "back": "not an area"
                    },
                    "exits": "front"
                }
            },
            "npcs": []
        });
        let mut found = Found::new();
        locate_world(&world, &mut found);
        assert_eq!(
            fields(found),
            [
                "locations.pharmacy.gps.lat",
                "locations.pharmacy.areas.back",
                "locations.pharmacy.areas.front.spots.shelf.items[0].template_id",
                "locations.pharmacy.areas.front.spots.shelf.npcs",
                "locations.pharmacy.areas.front.items[1].template_id",
                "locations.pharmacy.exits",
                "npcs",
            ]
        );

        let config = serde_json::json!({"id": "x", "version": "1.0.0", "state": {"model": "sharded"},
            "bootstrap": {"player_starting_inventory": "medkit"}});
        let mut found = Found::new();
        locate_config(&config, &mut found);
        assert_eq!(fields(found), ["state.model", "bootstrap.player_starting_inventory", "name"]);
    }

    #[test]
    fn commands_default_their_name_and_admin_flag() {
        let text = "---\naliases: search, loot\n---\n\nRules.\n";
        let c = parse_command("scavenge", "game-logic/scavenge.md", text, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((c.command.as_str(), c.requires_admin, c.rules.as_str()), ("scavenge", false, "Rules."));
        assert_eq!(c.aliases, ["search", "loot"]);
        let c = parse_command("horde", "admin-logic/horde.md", "Rules only.", true).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.requires_admin);
        assert_eq!(c.rules, "Rules only.");
        let c = parse_command("x", "admin-logic/x.md", "---\nrequires_admin: false\n---\n", true)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!c.requires_admin);
        let bad = parse_command("x", "game-logic/x.md", "---\ncommand: [a]\n---\n", false);
        assert_eq!(bad.map_err(fields), Err(vec!["command".to_owned()]));
    }

    #[test]
    fn templates_take_their_id_from_the_file() {
        let t: ItemTemplate =
            parse_template("medkit", "---\nname: Medkit\neffects: {health: 25}\nrarity: rare\n---\nA kit.\n")
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((t.id.as_str(), t.body.as_str(), t.effects["health"]), ("medkit", "A kit.", 25.0));
        assert_eq!(t.extra["rarity"], "rare");
        let wrong = parse_template::<ItemTemplate>("medkit", "---\nid: bandage\nname: B\n---\n");
        assert_eq!(wrong.map_err(fields), Err(vec!["id".to_owned()]));
        let missing = parse_template::<NpcTemplate>("sam", "Just a body.");
        assert_eq!(missing.map_err(fields), Err(vec!["name".to_owned()]));
        let bad_yaml = parse_template::<NpcTemplate>("sam", "---\nname: [Sam\n---\n");
        assert_eq!(bad_yaml.map_err(fields), Err(vec![String::new()]));
        // Billion laughs: refused by gaia-kb's bounded parser.
        let mut yaml = String::from("---\nname: x\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = i - 1;
            yaml.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        yaml.push_str("---\n");
        let laughs = parse_template::<ItemTemplate>("x", &yaml);
        assert!(laughs.is_err_and(|f| f[0].1.contains("expands")));
    }

    #[test]
    fn waypoints_read_their_yaml_block() {
        let text =
            "# Gate\n\n```yaml\nname: Gate\nwaypoint_type: landmark\nlocation: {lat: 48, lng: 2.5}\nglow: 3\n```\n";
        let w = parse_waypoint("gate", text).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((w.id.as_str(), w.location), ("gate", Gps { lat: 48.0, lng: 2.5 }));
        assert_eq!(w.extra["glow"], 3);
        let bad = parse_waypoint("gate", "```yaml\nname: Gate\nwaypoint_type: zone\nlocation: {lat: 1}\n```\n");
        assert_eq!(bad.map_err(fields), Err(vec!["location.lng".to_owned()]));
    }

    #[test]
    fn folder_limits() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for i in 0..5 {
            fs::write(dir.path().join(format!("f{i}.md")), "x").unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(dir.path().join(".hidden"), "x").unwrap_or_else(|e| panic!("{e}"));
        let listing = list_dir(dir.path(), 10);
        let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["f0.md", "f1.md", "f2.md", "f3.md", "f4.md"]);
        assert!(listing.problems.is_empty());
        // Hidden entries count against the limit (they are read), so 2 or 3 are listed.
        let listing = list_dir(dir.path(), 3);
        assert!((2..=3).contains(&listing.entries.len()));
        assert_eq!(listing.problems, [(String::new(), "more than 3 entries: the others are not read".to_owned())]);
    }
}
