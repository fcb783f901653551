//! What an NPC template declares beyond its prose (frontmatter `goals` and `actions`): the goals game
//! events activate (no model call), the actions the NPC may take on the world (each mapped to a world
//! command and checked), and the emotions and relationship axes both are expressed in.
//!
//! ```yaml
//! goals:
//!   - id: thank_for_medkit
//!     when: {event: quest_completed, quest: first_aid}
//!     say: "Copy that. Here, the codes. Keep them safe."
//!     emotion: {name: happy, intensity: 0.8}
//!     effects: {respect: 10, familiarity: 5}
//!     actions: [{action: hand_over, args: {item: frequency_codes}}]
//! actions:
//!   hand_over:
//!     description: Give the player something you keep for trusted survivors.
//!     command: give_item
//!     items: [frequency_codes]
//!     requires: {trust: 55}
//!   bar_the_door:
//!     command: close_door
//!     doors: {street_door: [main_room, front]}
//! ```

use super::{ItemTemplate, NpcTemplate, Quest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Goals an NPC template may declare.
pub const MAX_GOALS: usize = 32;
/// Actions an NPC template may declare.
pub const MAX_ACTIONS: usize = 16;
/// Items or quests one action may name.
pub const MAX_ACTION_TARGETS: usize = 64;
/// Longest line a goal makes the NPC say, and longest aim, in characters.
pub const MAX_GOAL_TEXT: usize = 1_000;

/// The similarity a `means` trigger needs when it sets none.
pub const DEFAULT_SIMILARITY: f64 = 0.5;

/// The emotions an NPC can show (a reply carries one, with an intensity).
pub const EMOTIONS: &[&str] = &["neutral", "happy", "sad", "angry", "afraid", "surprised", "disgusted", "curious"];

/// An emotion and how strongly it is felt (0 to 1). Written as a name (`happy`, intensity 0.5) or
/// `{name, intensity}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Emotion {
    /// One of [`EMOTIONS`].
    pub name: String,
    /// 0 to 1.
    pub intensity: f64,
}

impl Default for Emotion {
    fn default() -> Emotion {
        Emotion { name: "neutral".into(), intensity: 0.0 }
    }
}

impl Emotion {
    /// `name` at `intensity` (clamped to 0–1), when `name` is one of [`EMOTIONS`] (case ignored).
    pub fn new(name: &str, intensity: f64) -> Option<Emotion> {
        let name = name.trim().to_lowercase();
        let intensity = if intensity.is_finite() { intensity.clamp(0.0, 1.0) } else { 0.5 };
        EMOTIONS.contains(&name.as_str()).then_some(Emotion { name, intensity })
    }
}

impl<'de> Deserialize<'de> for Emotion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Emotion, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Name(String),
            Full {
                name: String,
                #[serde(default = "half")]
                intensity: f64,
            },
        }
        fn half() -> f64 {
            0.5
        }
        let (name, intensity) = match Form::deserialize(d)? {
            Form::Name(n) => (n, 0.5),
            Form::Full { name, intensity } => (name, intensity),
        };
        Emotion::new(&name, intensity).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown emotion {name:?} (one of: {})", EMOTIONS.join(", ")))
        })
    }
}

/// Relationship axes: changes (`effects`, added) or thresholds (`requires`, each at least).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    /// How much the NPC trusts the player (0–100, 50 to start with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<i64>,
    /// How much the NPC respects the player (0–100, 50 to start with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect: Option<i64>,
    /// How well the NPC knows the player (0–100, 0 to start with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub familiarity: Option<i64>,
}

impl Axes {
    /// Whether no axis is set.
    pub fn is_empty(&self) -> bool {
        self.trust.is_none() && self.respect.is_none() && self.familiarity.is_none()
    }

    /// The axes set, by name.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, i64)> {
        [("trust", self.trust), ("respect", self.respect), ("familiarity", self.familiarity)]
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v)))
    }
}

/// The game events goals react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The player arrives in an area (`area`: which; any when unset) where the NPC is.
    EntersArea,
    /// The player gives the NPC an item (`item`: of which template; any when unset).
    ItemGiven,
    /// The player takes a quest (`quest`) from the NPC or where the NPC is.
    QuestAccepted,
    /// The player completes a quest (`quest`) of the NPC or where the NPC is.
    QuestCompleted,
    /// The player says something to the NPC containing `says` (case ignored).
    PlayerSays,
}

/// When a goal fires (or, as `until`, is achieved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event.
    pub event: EventKind,
    /// `enters_area`: the area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// `item_given`: the item template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// `quest_accepted`, `quest_completed`: the quest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quest: Option<String>,
    /// `player_says`: words the player's message must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub says: Option<String>,
    /// `player_says`: what the player's message must mean, judged by the embedding model (the cosine
    /// similarity of the two at least `similarity`); with `says`, either is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub means: Option<String>,
    /// The least similarity `means` needs (default [`DEFAULT_SIMILARITY`]; it depends on the
    /// embedding model: test it with yours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// The relationship it needs (each axis at least).
    #[serde(default, skip_serializing_if = "Axes::is_empty")]
    pub requires: Axes,
}

impl Trigger {
    /// What is wrong with its `says`, `means` and `similarity`, if anything.
    pub(crate) fn says_problem(&self) -> Option<String> {
        let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
        if self.event == EventKind::PlayerSays && blank(&self.says) && blank(&self.means) {
            return Some("player_says needs `says` or `means`".into());
        }
        if self.means.as_ref().is_some_and(|m| m.chars().count() > MAX_GOAL_TEXT) {
            return Some(format!("`means` is at most {MAX_GOAL_TEXT} characters"));
        }
        if self.similarity.is_some_and(|x| !(x > 0.0 && x <= 1.0)) {
            return Some("`similarity` is above 0 and at most 1".into());
        }
        None
    }
}

/// An action a goal takes when it fires: one of the template's `actions`, with its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionCall {
    /// The action's name (a key of the template's `actions`).
    pub action: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Map<String, Value>,
}

/// Something an NPC wants, activated by a game event with no model call: when it fires, the NPC may
/// say a line, feel an emotion, change the relationship and take actions (checked like the model's),
/// and while it is active (until `until`), its `aim` is given to the model when the player talks to
/// the NPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpcGoal {
    /// Its id (unique in the template).
    pub id: String,
    /// What activates it.
    pub when: Trigger,
    /// What the NPC now pursues, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aim: Option<String>,
    /// What ends it (achieved); without it, the goal stays active once fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Trigger>,
    /// A line the NPC says when it fires (sent as `npc_speech`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<String>,
    /// The emotion the NPC feels when it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emotion: Option<Emotion>,
    /// Added to the relationship when it fires, in the same change as the event.
    #[serde(default, skip_serializing_if = "Axes::is_empty")]
    pub effects: Axes,
    /// Actions taken when it fires, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionCall>,
    /// Whether it fires again for the same player after the first time (default: once per player).
    #[serde(default)]
    pub repeat: bool,
}

/// The world commands an action maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionCommand {
    /// Gives the player an item of one of `items` (argument `item`): one the NPC holds, else a new
    /// one when `create` (at most `per_player` per player).
    GiveItem,
    /// Starts one of `quests` (argument `quest`) for the player, when the relationship with the
    /// quest's giver meets its `requires.relationship` (goals that react to a quest being taken are
    /// not set off by an action: only by the player's `accept_quest`).
    StartQuest,
    /// Moves the NPC itself to one of `areas` (argument `area`), for every player of the world.
    MoveNpc,
    /// Opens one of `doors` (argument `door`): its two areas lead into each other.
    OpenDoor,
    /// Closes one of `doors` (argument `door`): its two areas no longer lead into each other.
    CloseDoor,
}

/// An action an NPC may take on the world (offered to the model as a tool; also taken by goals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpcAction {
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// The world command it is.
    pub command: ActionCommand,
    /// `give_item`: the item templates it may give.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    /// `give_item`: a new item is made when the NPC holds none (a quest item).
    #[serde(default)]
    pub create: bool,
    /// `give_item` with `create`: most items of one template made for one player (default 1).
    #[serde(default = "one")]
    pub per_player: u32,
    /// `start_quest`: the quests it may start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quests: Vec<String>,
    /// `move_npc`: the areas the NPC may go to (`<area>` or `<location>/<area>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<String>,
    /// `open_door`, `close_door`: the doors it works, by name, each the two areas it joins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub doors: BTreeMap<String, (String, String)>,
    /// The relationship it needs (each axis at least).
    #[serde(default, skip_serializing_if = "Axes::is_empty")]
    pub requires: Axes,
    /// Added to the relationship when it is taken.
    #[serde(default, skip_serializing_if = "Axes::is_empty")]
    pub effects: Axes,
}

fn one() -> u32 {
    1
}

impl NpcAction {
    /// The JSON Schema of its arguments (offered to the model).
    pub fn parameters(&self) -> Value {
        let (name, values) = self.argument();
        let what = match self.command {
            ActionCommand::GiveItem => "The item template to give",
            ActionCommand::StartQuest => "The quest to start",
            ActionCommand::MoveNpc => "Where to go",
            ActionCommand::OpenDoor => "The door to open",
            ActionCommand::CloseDoor => "The door to close",
        };
        serde_json::json!({
            "type": "object",
            "properties": {name: {"type": "string", "enum": values, "description": what}},
            "required": [name],
            "additionalProperties": false,
        })
    }

    /// The argument it takes (`item`, `quest`, `area` or `door`) and the values it allows.
    pub fn argument(&self) -> (&'static str, Vec<&str>) {
        fn list(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        match self.command {
            ActionCommand::GiveItem => ("item", list(&self.items)),
            ActionCommand::StartQuest => ("quest", list(&self.quests)),
            ActionCommand::MoveNpc => ("area", list(&self.areas)),
            ActionCommand::OpenDoor | ActionCommand::CloseDoor => {
                ("door", self.doors.keys().map(String::as_str).collect())
            }
        }
    }
}

/// The goals and actions of an NPC template (its frontmatter's `goals` and `actions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mind {
    /// Goals, in the order they are tried.
    #[serde(default)]
    pub goals: Vec<NpcGoal>,
    /// Actions by name.
    #[serde(default)]
    pub actions: BTreeMap<String, NpcAction>,
}

/// Checks the goals and actions of NPC templates: what they name exists (`items`, `quests`,
/// `area_exists`; a door's areas in two locations, `location_of`), their values are in range, their
/// counts bounded. One `(file, message)` per problem.
pub(crate) fn check_minds(
    npcs: &BTreeMap<String, NpcTemplate>,
    items: &BTreeMap<String, ItemTemplate>,
    quests: &BTreeMap<String, Quest>,
    area_exists: &dyn Fn(&str) -> bool,
    location_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (id, t) in npcs {
        let at = format!("templates/npcs/{id}.md");
        if t.goals.len() > MAX_GOALS {
            out.push((at.clone(), format!("at most {} goals", MAX_GOALS)));
        }
        if t.actions.len() > MAX_ACTIONS {
            out.push((at.clone(), format!("at most {} actions", MAX_ACTIONS)));
        }
        let mut check_axes = |what: &str, axes: &Axes, delta: bool| {
            for (n, v) in axes.named() {
                let ok = if delta { (-100..=100).contains(&v) } else { (0..=100).contains(&v) };
                if !ok {
                    out.push((at.clone(), format!("{what}.{n} is {v}, out of range")));
                }
            }
        };
        check_axes("talk_effects", &t.talk_effects, true);
        check_axes("gift_effects", &t.gift_effects, true);
        for (name, a) in &t.actions {
            check_axes(&format!("actions.{name}.requires"), &a.requires, false);
            check_axes(&format!("actions.{name}.effects"), &a.effects, true);
        }
        let mut ids = std::collections::BTreeSet::new();
        for g in &t.goals {
            check_axes(&format!("goals.{}.effects", g.id), &g.effects, true);
            for tr in std::iter::once(&g.when).chain(g.until.as_ref()) {
                check_axes(&format!("goals.{}.requires", g.id), &tr.requires, false);
            }
        }
        for (name, a) in &t.actions {
            let (arg, values) = a.argument();
            if values.is_empty() {
                out.push((at.clone(), format!("action {name} lists no {arg}s")));
            }
            if values.len() > MAX_ACTION_TARGETS {
                out.push((at.clone(), format!("action {name} lists more than {} {arg}s", MAX_ACTION_TARGETS)));
            }
            for v in &values {
                let known = match a.command {
                    ActionCommand::GiveItem => items.contains_key(*v),
                    ActionCommand::StartQuest => quests.contains_key(*v),
                    ActionCommand::MoveNpc => area_exists(v),
                    // A door joins areas of two locations (those of one location always lead
                    // into each other).
                    ActionCommand::OpenDoor | ActionCommand::CloseDoor => a
                        .doors
                        .get(*v)
                        .is_some_and(|(x, y)| area_exists(x) && area_exists(y) && location_of(x) != location_of(y)),
                };
                if !known {
                    let what = match a.command {
                        ActionCommand::OpenDoor | ActionCommand::CloseDoor => {
                            format!("action {name}: door {v} must join known areas of two locations")
                        }
                        _ => format!("action {name} names the unknown {arg} {v}"),
                    };
                    out.push((at.clone(), what));
                }
            }
        }
        for g in &t.goals {
            if g.id.trim().is_empty() || !ids.insert(g.id.clone()) {
                out.push((at.clone(), format!("every goal needs an id of its own ({:?})", g.id)));
            }
            for text in [&g.say, &g.aim].into_iter().flatten() {
                if text.chars().count() > MAX_GOAL_TEXT {
                    out.push((at.clone(), format!("goal {}: a text longer than {} characters", g.id, MAX_GOAL_TEXT)));
                }
            }
            for tr in std::iter::once(&g.when).chain(g.until.as_ref()) {
                if let Some(a) = tr.area.as_deref().filter(|a| !area_exists(a)) {
                    out.push((at.clone(), format!("goal {} names the unknown area {a}", g.id)));
                }
                if let Some(i) = tr.item.as_deref().filter(|i| !items.contains_key(*i)) {
                    out.push((at.clone(), format!("goal {} names the unknown item {i}", g.id)));
                }
                if let Some(q) = tr.quest.as_deref().filter(|q| !quests.contains_key(*q)) {
                    out.push((at.clone(), format!("goal {} names the unknown quest {q}", g.id)));
                }
                if let Some(why) = tr.says_problem() {
                    out.push((at.clone(), format!("goal {}: {why}", g.id)));
                }
            }
            for call in &g.actions {
                match t.actions.get(&call.action) {
                    None => {
                        out.push((at.clone(), format!("goal {} takes the undeclared action {}", g.id, call.action)))
                    }
                    Some(a) => {
                        let (arg, values) = a.argument();
                        let v = call.args.get(arg).and_then(Value::as_str);
                        if call.args.len() != 1 || !v.is_some_and(|v| values.contains(&v)) {
                            out.push((
                                at.clone(),
                                format!(
                                    "goal {} calls {} with arguments it does not allow (one {arg} of its list)",
                                    g.id, call.action
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}
