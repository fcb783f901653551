//! The content of an experience as written in the vault (`../shared/specs/game-worlds.md` §1): field
//! names are exact; unknown fields are kept (`extra`) and ignored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A point on Earth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    /// Latitude, degrees (-90..=90).
    pub lat: f64,
    /// Longitude, degrees (-180..=180).
    pub lng: f64,
}

/// One world for all players, or a copy per player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateModel {
    /// One world; each player has a view (position, inventory, stats).
    #[default]
    Shared,
    /// Each player gets a copy of the world.
    Isolated,
}

/// `config.json`'s `state`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSettings {
    /// Shared or isolated.
    #[serde(default)]
    pub model: StateModel,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `config.json`'s `bootstrap`: where a new player starts, with what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Location id.
    #[serde(default)]
    pub player_starting_location: String,
    /// Area id in that location (else its first area).
    #[serde(default)]
    pub player_starting_area: Option<String>,
    /// Item template ids a new player holds.
    #[serde(default)]
    pub player_starting_inventory: Vec<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `config.json`'s `multiplayer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Multiplayer {
    /// Most players at once (none: no limit).
    #[serde(default)]
    pub max_concurrent_players: Option<u32>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `config.json`'s `capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Played by GPS position.
    #[serde(default)]
    pub gps_based: bool,
    /// Uses AR anchors.
    #[serde(default)]
    pub ar_enabled: bool,
    /// Players carry items.
    #[serde(default)]
    pub inventory_system: bool,
    /// Players take quests.
    #[serde(default)]
    pub quest_system: bool,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `experiences/<exp>/config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperienceConfig {
    /// The experience's id (its folder's name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// `x.y.z`.
    pub version: String,
    /// What it is about.
    #[serde(default)]
    pub description: String,
    /// Shared or isolated world.
    #[serde(default)]
    pub state: StateSettings,
    /// Where players start.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// Player limits.
    #[serde(default)]
    pub multiplayer: Option<Multiplayer>,
    /// What the game uses.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Names of the server's guardrail rules (`[guardrails] rules`) applied to every model call of
    /// the experience (NPC talk, rules commands) besides the caller's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An item in the world (`world.json`); its fields override its template's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInstance {
    /// Unique within the experience.
    pub instance_id: String,
    /// `templates/items/<template_id>.md`.
    pub template_id: String,
    /// The name text commands match first ("dream bottle").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic_name: Option<String>,
    /// Overrides the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collectible: Option<bool>,
    /// Hidden items are not shown or matched (default: visible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    /// Free state of this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Map<String, Value>>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A spot in an area: where items and NPCs are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spot {
    /// Id (unique in its area).
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// What a player sees.
    #[serde(default)]
    pub description: String,
    /// Items here.
    #[serde(default)]
    pub items: Vec<ItemInstance>,
    /// NPC ids here.
    #[serde(default)]
    pub npcs: Vec<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An area of a location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Area {
    /// Id (unique in its location).
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// What a player sees.
    #[serde(default)]
    pub description: String,
    /// Spots.
    #[serde(default)]
    pub spots: BTreeMap<String, Spot>,
    /// Items directly in the area (older content).
    #[serde(default)]
    pub items: Vec<ItemInstance>,
    /// NPC ids directly in the area (older content).
    #[serde(default)]
    pub npcs: Vec<String>,
    /// Area ids reachable from here (in any location of the experience).
    #[serde(default)]
    pub exits: Vec<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A location: a real place (with GPS) holding areas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// What a player sees.
    #[serde(default)]
    pub description: String,
    /// Where it is.
    #[serde(default)]
    pub gps: Option<Gps>,
    /// Its areas.
    #[serde(default)]
    pub areas: BTreeMap<String, Area>,
    /// Area ids reachable from anywhere in the location.
    #[serde(default)]
    pub exits: Vec<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `state/world.json`: the world as a new instance starts it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldDoc {
    /// Free metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Locations by id.
    #[serde(default)]
    pub locations: BTreeMap<String, Location>,
    /// NPCs by id (free fields).
    #[serde(default)]
    pub npcs: BTreeMap<String, Value>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `templates/items/<id>.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemTemplate {
    /// The file's stem.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One line.
    #[serde(default)]
    pub description: String,
    /// Players may pick it up.
    #[serde(default)]
    pub collectible: bool,
    /// Used up when used.
    #[serde(default)]
    pub consumable: bool,
    /// Stat changes when used (`{health: 20}`).
    #[serde(default)]
    pub effects: BTreeMap<String, f64>,
    /// The Markdown after the frontmatter (shown by `examine`).
    #[serde(default)]
    pub body: String,
    /// Unknown frontmatter fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `templates/npcs/<id>.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NpcTemplate {
    /// The file's stem.
    pub id: String,
    /// Display name.
    pub name: String,
    /// A voice id for speech.
    #[serde(default)]
    pub voice: Option<String>,
    /// Where the NPC usually is.
    #[serde(default)]
    pub location: Option<String>,
    /// Personality and knowledge (given to the model when a player talks to the NPC).
    #[serde(default)]
    pub body: String,
    /// What game events make the NPC do (see [`crate::content::Mind`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<super::NpcGoal>,
    /// What the NPC may do to the world, by name (see [`crate::content::Mind`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, super::NpcAction>,
    /// Names of the server's guardrail rules applied to this NPC's answers besides the
    /// experience's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<String>,
    /// What the NPC says, in character, when a guardrail refuses a talk (else a line made from
    /// its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Added to the relationship by each talk (default: trust and familiarity +1).
    #[serde(default = "talk_effects")]
    pub talk_effects: super::Axes,
    /// Added to the relationship by each gift (default: trust +5).
    #[serde(default = "gift_effects")]
    pub gift_effects: super::Axes,
    /// Unknown frontmatter fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for NpcTemplate {
    fn default() -> NpcTemplate {
        NpcTemplate {
            id: String::new(),
            name: String::new(),
            voice: None,
            location: None,
            body: String::new(),
            goals: Vec::new(),
            actions: BTreeMap::new(),
            guardrails: Vec::new(),
            refusal: None,
            talk_effects: talk_effects(),
            gift_effects: gift_effects(),
            extra: Map::new(),
        }
    }
}

/// What a talk adds to the relationship when the template says nothing (trust and familiarity +1).
pub(crate) fn talk_effects() -> super::Axes {
    super::Axes { trust: Some(1), familiarity: Some(1), ..super::Axes::default() }
}

/// What a gift adds to the relationship when the template says nothing (trust +5).
pub(crate) fn gift_effects() -> super::Axes {
    super::Axes { trust: Some(5), ..super::Axes::default() }
}

/// A command written as rules in prose (`game-logic/` or `admin-logic/`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandDef {
    /// Its name (frontmatter `command`).
    pub command: String,
    /// Other names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Needs the experience-admin permission (default false in `game-logic/`, true in `admin-logic/`).
    #[serde(default)]
    pub requires_admin: bool,
    /// One line.
    #[serde(default)]
    pub description: String,
    /// The rules, in prose (the body).
    #[serde(default)]
    pub rules: String,
    /// The file, relative to the experience's folder.
    #[serde(default)]
    pub file: String,
    /// Unknown frontmatter fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `waypoints/<id>.md`'s media.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// Audio to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    /// Visual effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual_fx: Option<String>,
    /// Interaction kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<String>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// Text shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_text: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A real-world anchor (`waypoints/<id>.md`, one fenced YAML block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waypoint {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `zone`, `landmark`, `pathway`, …
    pub waypoint_type: String,
    /// Where it is.
    pub location: Gps,
    /// What the client plays or shows there.
    #[serde(default)]
    pub media: Media,
    /// An AR anchor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vps_anchor_id: Option<String>,
    /// The world location it anchors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One experience, loaded and validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Experience {
    /// `config.json`.
    pub config: ExperienceConfig,
    /// `state/world.json`.
    pub world: WorldDoc,
    /// Item templates by id.
    pub item_templates: BTreeMap<String, ItemTemplate>,
    /// NPC templates by id.
    pub npc_templates: BTreeMap<String, NpcTemplate>,
    /// Player commands (`game-logic/`) by name.
    pub commands: BTreeMap<String, CommandDef>,
    /// Admin commands (`admin-logic/`) by name.
    pub admin_commands: BTreeMap<String, CommandDef>,
    /// Waypoints by id.
    pub waypoints: BTreeMap<String, Waypoint>,
    /// Quests by id, as `world.json` declares them in `metadata.quests`.
    pub quests: BTreeMap<String, Quest>,
    /// Scenes by id (`scenes/<id>.md`).
    pub scenes: BTreeMap<String, super::Scene>,
}

/// A quest, declared in `world.json` under `metadata.quests.<id>`. A player takes it
/// (`accept_quest`) and completes it (`complete_quest`, or the `grant_quest_reward` tool) once what
/// it requires holds; the rewards are then given once.
///
/// ```json
/// "first_aid": {"name": "First Aid", "description": "Bring Sam a medkit.", "giver": "radio_operator",
///               "requires": {"items": ["medkit"], "location": "safe_house"}, "consume_items": true,
///               "rewards": {"items": ["bandage"], "stats": {"max_health": 10}, "trust": 10}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quest {
    /// Its title.
    #[serde(default)]
    pub name: String,
    /// What the player is asked to do.
    #[serde(default)]
    pub description: String,
    /// The NPC who gives it: consumed items go to them and `rewards.trust` raises their trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub giver: Option<String>,
    /// What must hold to complete it.
    #[serde(default)]
    pub requires: QuestRequires,
    /// Whether the required items are handed over on completion (else the player keeps them).
    #[serde(default)]
    pub consume_items: bool,
    /// What completing it gives.
    #[serde(default)]
    pub rewards: QuestRewards,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a quest requires to be completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuestRequires {
    /// Item templates the player must carry (one instance of each listed; list one twice for two).
    #[serde(default)]
    pub items: Vec<String>,
    /// The location the player must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The area the player must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// The relationship with the giver it needs, each axis at least (checked when the quest is
    /// taken, by the player or through the giver's action).
    #[serde(default, skip_serializing_if = "super::Axes::is_empty")]
    pub relationship: super::Axes,
}

/// What completing a quest gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuestRewards {
    /// New item instances of these templates, in the player's inventory.
    #[serde(default)]
    pub items: Vec<String>,
    /// Added to the player's stats (`health` is kept at most `max_health`).
    #[serde(default)]
    pub stats: BTreeMap<String, f64>,
    /// Added to the giver's trust in the player (0–100).
    #[serde(default)]
    pub trust: i64,
}
