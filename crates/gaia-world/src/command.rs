//! Commands (spec §3): the input (`Action`, as a game client sends it), the result every command
//! returns, and the reading of simple text ("pick up the medkit", "give medkit to sam").

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest `action` text, in characters.
pub const MAX_ACTION_CHARS: usize = 1_000;
/// Longest `message` (what a player says), in characters.
pub const MAX_MESSAGE_CHARS: usize = 4_000;
/// Longest id field (`instance_id`, `destination`, `target_npc_id`, `quest_id`), in characters.
pub const MAX_ID_CHARS: usize = 256;

/// A command as a game client sends it (a WebSocket `action`, or `POST …/command`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// The command's name (`look`, `collect_item`, …) or simple text (`pick up the medkit`).
    pub action: String,
    /// The item concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Where to go (an area or a location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The NPC concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_npc_id: Option<String>,
    /// The quest concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quest_id: Option<String>,
    /// What the player says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The scene concerned (`start_scene`, `scene`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_id: Option<String>,
}

impl Action {
    /// A command with only its name (or text).
    pub fn new(action: impl Into<String>) -> Action {
        Action { action: action.into(), ..Default::default() }
    }

    /// Checks the sizes of the fields.
    pub fn check(&self) -> Result<(), String> {
        let action = self.action.trim();
        if action.is_empty() {
            return Err("`action` must not be empty".into());
        }
        if action.chars().count() > MAX_ACTION_CHARS {
            return Err(format!("`action` is at most {MAX_ACTION_CHARS} characters"));
        }
        if self.message.as_deref().is_some_and(|m| m.chars().count() > MAX_MESSAGE_CHARS) {
            return Err(format!("`message` is at most {MAX_MESSAGE_CHARS} characters"));
        }
        for (name, v) in [
            ("instance_id", &self.instance_id),
            ("destination", &self.destination),
            ("target_npc_id", &self.target_npc_id),
            ("scene_id", &self.scene_id),
            ("quest_id", &self.quest_id),
        ] {
            if v.as_deref().is_some_and(|v| v.chars().count() > MAX_ID_CHARS) {
                return Err(format!("`{name}` is at most {MAX_ID_CHARS} characters"));
            }
        }
        Ok(())
    }
}

/// One change of the world or of a player's view, as `world_update` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// `add`, `remove` or `update`.
    pub operation: String,
    /// The area concerned (`None`: the player's own state).
    pub area_id: Option<String>,
    /// What of the player changed (`player.inventory`, `player.stats`, `player.location`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The item (or, for the player's own state, the player).
    pub instance_id: String,
    /// The item's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// The item as shown (template merged with the instance), or the new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
}

impl StateChange {
    /// An item added to, removed from or changed in an area.
    pub(crate) fn in_area(
        operation: &str,
        area_id: &str,
        item: &crate::content::ItemInstance,
        shown: Option<Value>,
    ) -> Self {
        StateChange {
            operation: operation.into(),
            area_id: Some(area_id.to_string()),
            path: None,
            instance_id: item.instance_id.clone(),
            template_id: Some(item.template_id.clone()),
            item: shown,
        }
    }

    /// An item added to, removed from or changed in the player's inventory.
    pub(crate) fn in_inventory(operation: &str, item: &crate::content::ItemInstance, shown: Option<Value>) -> Self {
        StateChange {
            operation: operation.into(),
            area_id: None,
            path: Some("player.inventory".into()),
            instance_id: item.instance_id.clone(),
            template_id: Some(item.template_id.clone()),
            item: shown,
        }
    }

    /// A change of the player's own state at `path` (`player.location`, `player.stats`, …).
    pub(crate) fn of_player(operation: &str, path: impl Into<String>, user_id: &str, value: Value) -> Self {
        StateChange {
            operation: operation.into(),
            area_id: None,
            path: Some(path.into()),
            instance_id: user_id.to_string(),
            template_id: None,
            item: Some(value),
        }
    }
}

/// What every command returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Whether it did what was asked.
    pub success: bool,
    /// What to tell the player (why not, when it failed).
    pub message: String,
    /// What changed (nothing when it failed).
    pub state_changes: Vec<StateChange>,
    /// What the player can do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_actions: Option<Vec<String>>,
    /// More about it (the area seen, the item examined, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The item the command touched (for the client's visual feedback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// The world's version after the command (unchanged when nothing changed).
    pub snapshot_version: i64,
}

impl CommandResult {
    pub(crate) fn fail(message: impl Into<String>, version: i64) -> CommandResult {
        CommandResult {
            success: false,
            message: message.into(),
            state_changes: Vec::new(),
            available_actions: None,
            metadata: None,
            item_id: None,
            snapshot_version: version,
        }
    }

    pub(crate) fn ok(message: impl Into<String>, version: i64) -> CommandResult {
        CommandResult { success: true, ..CommandResult::fail(message, version) }
    }
}

/// The fast commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Look,
    Go,
    Collect,
    Drop,
    Examine,
    Use,
    Inventory,
    Give,
    AcceptQuest,
    CompleteQuest,
}

/// A fast command: its name (the `action`), what it does, and the fields it needs. The one
/// definition of the fast commands: `available_actions`, the `commands_schema` a game client asks for
/// ([`commands_schema`]) and the tests that hold the engine to it are made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The `action`.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The fields it needs (`instance_id`, `destination`, `target_npc_id`, `quest_id`); simple text
    /// may name them instead (`collect the medkit`).
    pub fields: &'static [&'static str],
}

const fn spec(name: &'static str, description: &'static str, fields: &'static [&'static str]) -> CommandSpec {
    CommandSpec { name, description, fields }
}

/// The fast commands (deterministic, no model call).
pub const FAST_COMMANDS: &[CommandSpec] = &[
    spec("look", "Describe where the player is: the area, its spots, items, NPCs and exits.", &[]),
    spec("go", "Go to an area reachable from here, or a location an exit leads into.", &["destination"]),
    spec("collect_item", "Pick up a collectible item here.", &["instance_id"]),
    spec("drop_item", "Put down an item the player carries, here.", &["instance_id"]),
    spec(
        "examine",
        "Describe an item carried or here (inventory first, then the area, then the location).",
        &["instance_id"],
    ),
    spec("use_item", "Use an item carried: its effects apply, a consumable is used up.", &["instance_id"]),
    spec("inventory", "List what the player carries.", &[]),
    spec("give_item", "Give an item carried to an NPC here.", &["instance_id", "target_npc_id"]),
    spec("accept_quest", "Take a quest the world offers.", &["quest_id"]),
    spec(
        "complete_quest",
        "Complete a quest taken, once what it requires holds; its rewards are given once.",
        &["quest_id"],
    ),
];

/// The JSON Schema of the command fields a client may send.
fn field_schema(field: &str) -> Value {
    let (max, description) = match field {
        "action" => (MAX_ACTION_CHARS, "The command's name, or simple text naming one"),
        "message" => (MAX_MESSAGE_CHARS, "What the player says"),
        "instance_id" => (MAX_ID_CHARS, "An item instance's id (or its name)"),
        "destination" => (MAX_ID_CHARS, "An area's or location's id (or its name)"),
        "target_npc_id" => (MAX_ID_CHARS, "An NPC's id (or their name)"),
        "quest_id" => (MAX_ID_CHARS, "A quest's id"),
        "scene_id" => (MAX_ID_CHARS, "A scene's id"),
        _ => (MAX_ID_CHARS, ""),
    };
    serde_json::json!({"type": "string", "minLength": 1, "maxLength": max, "description": description})
}

/// The JSON Schema of one command: an object whose `action` is `name`, with `fields` required and
/// `optional` allowed.
fn command_schema(name: &str, description: &str, fields: &[&str], optional: &[&str]) -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert("action".into(), serde_json::json!({"const": name}));
    for f in fields.iter().chain(optional) {
        properties.insert(f.to_string(), field_schema(f));
    }
    let mut required = vec!["action"];
    required.extend(fields);
    serde_json::json!({"type": "object", "description": description, "properties": properties, "required": required})
}

/// `commands_schema.commands` for a player of `exp`: the fast commands, `talk`, the experience's
/// rules commands (`game-logic/`), and for its administrators the `@` commands (`admin-logic/` too).
pub fn commands_schema(exp: &crate::content::Experience, admin: bool) -> Value {
    let mut out = serde_json::Map::new();
    for c in FAST_COMMANDS {
        out.insert(c.name.into(), command_schema(c.name, c.description, c.fields, &[]));
    }
    out.insert(
        "talk".into(),
        command_schema("talk", "Say something to an NPC here; they answer.", &["target_npc_id", "message"], &[]),
    );
    if !exp.scenes.is_empty() {
        for (name, description, fields, optional) in crate::scene::SCENE_COMMANDS {
            out.insert(name.to_string(), command_schema(name, description, fields, optional));
        }
    }
    for c in exp.commands.values().filter(|c| !c.requires_admin || admin) {
        out.insert(c.command.clone(), command_schema(&c.command, &c.description, &[], &["message"]));
    }
    if admin {
        let mut at = command_schema(
            "@",
            "An administrator's command: @list, @inspect, @where, @find, @stats, \
             @spawn, @create, @edit, @delete, @connect, @disconnect, @reset.",
            &[],
            &[],
        );
        at["properties"]["action"] =
            serde_json::json!({"type": "string", "pattern": "^@", "maxLength": MAX_ACTION_CHARS});
        out.insert("@".into(), at);
        for c in exp.admin_commands.values() {
            out.insert(c.command.clone(), command_schema(&c.command, &c.description, &[], &["message"]));
        }
    }
    Value::Object(out)
}

/// A command read: its verb, the object named in text (when the fields did not name it), and for
/// `give`, the NPC named in text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) verb: Verb,
    pub(crate) object: Option<String>,
    pub(crate) npc: Option<String>,
}

/// Reads an action's name or text; `None` when it is none of the fast commands.
pub(crate) fn parse(action: &str) -> Option<Parsed> {
    let text = action.trim().to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let (first, rest) = words.split_first()?;
    let rest_text = |skip: &[&str]| -> Option<String> {
        let r: Vec<&str> = rest.iter().copied().skip_while(|w| skip.contains(w)).collect();
        let r = strip_articles(&r.join(" "));
        (!r.is_empty()).then_some(r)
    };
    let p = |verb, object| Some(Parsed { verb, object, npc: None });
    match *first {
        "look" | "l" if rest.is_empty() || rest == ["around"] => p(Verb::Look, None),
        "look" if rest.first() == Some(&"at") => p(Verb::Examine, rest_text(&["at"])),
        "go" | "move" | "walk" | "travel" | "run" | "enter" => p(Verb::Go, rest_text(&["to", "into", "towards"])),
        "collect_item" | "collect" | "take" | "grab" | "get" => p(Verb::Collect, rest_text(&[])),
        "pick" if rest.first() == Some(&"up") => p(Verb::Collect, rest_text(&["up"])),
        "drop_item" | "drop" => p(Verb::Drop, rest_text(&[])),
        "examine" | "inspect" | "read" | "x" => p(Verb::Examine, rest_text(&[])),
        "use_item" | "use" | "eat" | "drink" | "consume" | "apply" => p(Verb::Use, rest_text(&[])),
        "inventory" | "inv" | "i" if rest.is_empty() => p(Verb::Inventory, None),
        "accept_quest" | "accept" => p(Verb::AcceptQuest, rest_text(&["quest", "the"])),
        "complete_quest" | "complete" | "finish" => p(Verb::CompleteQuest, rest_text(&["quest", "the"])),
        "turn" if rest.first() == Some(&"in") => p(Verb::CompleteQuest, rest_text(&["in", "quest", "the"])),
        "give_item" | "give" => {
            let joined = rest.join(" ");
            let (object, npc) = match joined.rsplit_once(" to ") {
                Some((o, n)) => (strip_articles(o), strip_articles(n)),
                None => (strip_articles(&joined), String::new()),
            };
            Some(Parsed {
                verb: Verb::Give,
                object: (!object.is_empty()).then_some(object),
                npc: (!npc.is_empty()).then_some(npc),
            })
        }
        _ => None,
    }
}

/// Text without a leading article ("the medkit" → "medkit").
pub(crate) fn strip_articles(text: &str) -> String {
    let t = text.trim();
    for a in ["the ", "a ", "an ", "some ", "my "] {
        if let Some(rest) = t.strip_prefix(a) {
            return rest.trim().to_string();
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(t: &str) -> Option<(Verb, Option<String>, Option<String>)> {
        parse(t).map(|p| (p.verb, p.object, p.npc))
    }

    #[test]
    fn simple_text_is_read_as_the_spec_says() {
        assert_eq!(verb("look"), Some((Verb::Look, None, None)));
        assert_eq!(verb("go to spawn_zone_1"), Some((Verb::Go, Some("spawn_zone_1".into()), None)));
        assert_eq!(verb("collect dream bottle"), Some((Verb::Collect, Some("dream bottle".into()), None)));
        assert_eq!(verb("pick up the dream bottle"), Some((Verb::Collect, Some("dream bottle".into()), None)));
        assert_eq!(verb("Give the medkit to Sam"), Some((Verb::Give, Some("medkit".into()), Some("sam".into()))));
        assert_eq!(verb("look at the radio"), Some((Verb::Examine, Some("radio".into()), None)));
        assert_eq!(verb("collect_item"), Some((Verb::Collect, None, None)));
        assert_eq!(verb("inventory"), Some((Verb::Inventory, None, None)));
        assert_eq!(verb("accept quest first_aid"), Some((Verb::AcceptQuest, Some("first_aid".into()), None)));
        assert_eq!(verb("turn in first_aid"), Some((Verb::CompleteQuest, Some("first_aid".into()), None)));
        assert_eq!(verb("complete_quest"), Some((Verb::CompleteQuest, None, None)));
        assert_eq!(verb("scavenge the shelves"), None);
        assert_eq!(verb("   "), None);
    }

    #[test]
    fn oversized_fields_are_refused() {
        assert!(Action::new("look").check().is_ok());
        assert!(Action::new(" ").check().is_err());
        assert!(Action::new("x".repeat(MAX_ACTION_CHARS + 1)).check().is_err());
        let a = Action { instance_id: Some("i".repeat(MAX_ID_CHARS + 1)), ..Action::new("examine") };
        assert!(a.check().unwrap_err().contains("instance_id"));
    }
}
