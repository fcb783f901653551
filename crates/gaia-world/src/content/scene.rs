//! Scenes (`scenes/<id>.md`): conversations of several NPCs with the players in one area, written as
//! narrative sections. A section's narration and lines are said when it begins, and its transitions
//! (a game event, or a number of turns) lead to the next, with no model call; between them players
//! speak and the NPCs answer through the model, one speaker a turn (chosen by `speaker`), within caps
//! on turns, tokens and cost. The body is the scene's premise, given to the model.
//!
//! ```yaml
//! name: Night Watch
//! location: safe_house
//! area: roof
//! npcs: [medic, radio_operator]
//! speaker: addressed          # addressed (default) | round_robin | model
//! start: {event: enters_area, area: roof}
//! max_turns: 24
//! sections:
//!   - id: dusk
//!     narration: The sun drops behind the pharmacy.
//!     lines: [{npc: medic, say: "Eyes on the street. Tell me what moves."}]
//!     direction: Dana wants the player to keep watch; Sam checks in over the radio.
//!     next:
//!       - {to: horde, when: {event: player_says, says: horde}}
//!       - {to: horde, after_turns: 6}
//!   - id: horde
//!     narration: Shapes fill the street.
//!     lines: [{npc: radio_operator, say: "Everyone inside. Now."}]
//!     end: true
//! ```

use super::{NpcTemplate, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Sections a scene may have.
pub const MAX_SECTIONS: usize = 64;
/// NPCs a scene may cast.
pub const MAX_SCENE_NPCS: usize = 8;
/// Lines one section may say, and transitions it may have.
pub const MAX_SECTION_LINES: usize = 16;
/// Longest narration, line or direction, in characters.
pub const MAX_SCENE_TEXT: usize = 2_000;
/// Most NPC turns a scene may allow.
pub const MAX_SCENE_TURNS: u32 = 500;

/// How the NPC who answers a player's line in a scene is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerRule {
    /// The NPC the player names (by id, or by name in the message); else the one who spoke least
    /// recently.
    #[default]
    Addressed,
    /// The cast in turn, in the order listed.
    RoundRobin,
    /// The model chooses from the cast, given what was said (a short call, counted in the caps);
    /// when its choice is not one of the cast, the next in turn.
    Model,
}

/// A line an NPC says when a section begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneLine {
    /// Who says it (one of the scene's `npcs`).
    pub npc: String,
    /// What they say.
    pub say: String,
}

/// A way out of a section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The section it leads to.
    pub to: String,
    /// A game event of a player in the scene's area (its `requires` unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Trigger>,
    /// After this many NPC turns in the section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_turns: Option<u32>,
}

/// A narrative section of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Its id (unique in the scene).
    pub id: String,
    /// What the players are told when it begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<String>,
    /// What NPCs say when it begins, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<SceneLine>,
    /// Stage direction for the model while the section lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Its transitions, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<Transition>,
    /// The scene ends once this section's lines are said.
    #[serde(default)]
    pub end: bool,
}

/// `scenes/<id>.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// The file's stem.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The location it plays in.
    pub location: String,
    /// The area of that location it plays in (players there take part).
    pub area: String,
    /// The NPCs who take part (wherever they are: one may be on the radio).
    pub npcs: Vec<String>,
    /// How the NPC who answers is chosen.
    #[serde(default)]
    pub speaker: SpeakerRule,
    /// A game event that starts it, the first time only (a player's `start_scene` starts it, and
    /// starts it again once it ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Trigger>,
    /// NPC turns after which it ends (default 40).
    #[serde(default = "default_turns")]
    pub max_turns: u32,
    /// Tokens of its model calls after which it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Dollars of its model calls after which it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Its sections; the first begins it.
    pub sections: Vec<Section>,
    /// The premise (the body), for the model.
    #[serde(default)]
    pub body: String,
    /// Unknown frontmatter fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_turns() -> u32 {
    40
}

impl Scene {
    /// Its section `id`.
    pub fn section(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }
}

/// Checks scenes: what they name exists (`npcs`, `area_in`: whether an area is in a location,
/// `known`: what is wrong with the areas, items and quests a trigger names),
/// their texts and counts are bounded, every section is reachable by its id. One `(file, message)`
/// per problem.
pub(crate) fn check_scenes(
    scenes: &BTreeMap<String, Scene>,
    npcs: &BTreeMap<String, NpcTemplate>,
    area_in: &dyn Fn(&str, &str) -> bool,
    known: &dyn Fn(&Trigger) -> Option<String>,
) -> Vec<(String, String)> {
    let names_problem = known;
    let mut out = Vec::new();
    for (id, s) in scenes {
        let at = format!("scenes/{id}.md");
        let mut bad = |m: String| out.push((at.clone(), m));
        if !area_in(&s.location, &s.area) {
            bad(format!("no area {} in location {}", s.area, s.location));
        }
        if s.npcs.is_empty() || s.npcs.len() > MAX_SCENE_NPCS {
            bad(format!("a scene casts 1 to {MAX_SCENE_NPCS} npcs"));
        }
        for n in s.npcs.iter().filter(|n| !npcs.contains_key(*n)) {
            bad(format!("npcs names {n}, which has no template"));
        }
        if s.sections.is_empty() || s.sections.len() > MAX_SECTIONS {
            bad(format!("a scene has 1 to {MAX_SECTIONS} sections"));
        }
        if s.max_turns == 0 || s.max_turns > MAX_SCENE_TURNS {
            bad(format!("max_turns is 1 to {MAX_SCENE_TURNS}"));
        }
        if s.max_tokens == Some(0) {
            bad("max_tokens is at least 1".into());
        }
        if s.max_cost_usd.is_some_and(|c| !c.is_finite() || c <= 0.0) {
            bad("max_cost_usd is a positive number".into());
        }
        if let Some(t) = &s.start {
            if !t.requires.is_empty() {
                bad("start: scenes do not read relationships (`requires`)".into());
            }
            if let Some(why) = t.says_problem().or_else(|| names_problem(t)) {
                bad(format!("start: {why}"));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for sec in &s.sections {
            if sec.id.trim().is_empty() || !ids.insert(sec.id.as_str()) {
                bad(format!("every section needs an id of its own ({:?})", sec.id));
            }
            let texts = sec.narration.iter().chain(&sec.direction).chain(sec.lines.iter().map(|l| &l.say));
            if texts.into_iter().any(|t| t.chars().count() > MAX_SCENE_TEXT) {
                bad(format!("section {}: a text longer than {MAX_SCENE_TEXT} characters", sec.id));
            }
            if sec.lines.len() > MAX_SECTION_LINES || sec.next.len() > MAX_SECTION_LINES {
                bad(format!("section {}: at most {MAX_SECTION_LINES} lines and transitions", sec.id));
            }
            for l in sec.lines.iter().filter(|l| !s.npcs.contains(&l.npc)) {
                bad(format!("section {}: {} is not in the scene's npcs", sec.id, l.npc));
            }
            for t in &sec.next {
                if t.when.is_some() == t.after_turns.is_some() {
                    bad(format!("section {}: a transition has either `when` or `after_turns`", sec.id));
                }
                if t.when.as_ref().is_some_and(|w| !w.requires.is_empty()) {
                    bad(format!("section {}: scenes do not read relationships (`requires`)", sec.id));
                }
                if let Some(why) = t.when.as_ref().and_then(|w| w.says_problem().or_else(|| names_problem(w))) {
                    bad(format!("section {}: {why}", sec.id));
                }
                if t.after_turns == Some(0) {
                    bad(format!("section {}: after_turns is at least 1", sec.id));
                }
            }
        }
        for sec in &s.sections {
            for t in sec.next.iter().filter(|t| !ids.contains(t.to.as_str())) {
                bad(format!("section {} leads to the unknown section {}", sec.id, t.to));
            }
        }
    }
    out
}
