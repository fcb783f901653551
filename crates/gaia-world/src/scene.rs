//! Scenes at play ([`Scene`]): one per scene and world, shared by the players of its area.
//!
//! - A scene starts with a player's `start_scene` (again once it ended) or, once, with the game event
//!   its `start` names; its first section begins.
//! - A section's narration and lines are said when it begins; its transitions (a game event of a
//!   player there, or a number of NPC turns in it) begin the next, all with no model call.
//! - A player's line (`scene_say`, or a `talk` to one of the cast while the scene runs) is a turn:
//!   the NPC the scene's `speaker` rule chooses answers through the model as in a talk (the player's
//!   own relationship and memories, never another player's), given the premise, the section's
//!   direction and what was said aloud lately. The lines, the turn and its tokens and cost are
//!   written in the talk's change; past `max_turns`, `max_tokens` or `max_cost_usd` the scene ends.
//! - Everything said is a `world_update` change of the scene's area (`path: "scene"`,
//!   `instance_id`: the scene), so every player there sees it; the lines are kept (the last
//!   [`KEPT_LINES`] of a scene), each player's with them (exported, erased with the user).

use crate::command::{Action, CommandResult, StateChange};
use crate::content::{Scene, SpeakerRule};
use crate::engine::{npc_name, Ctx};
use crate::error::{Result, WorldError};
use crate::npc::{matches, WorldEvent};
use crate::state::{Change, Relationship};
use gaia_chat::CallSpec;
use gaia_core::types::ChatMessage;
use gaia_providers::ChatRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::BTreeMap;

/// The endpoint a scene's choice of speaker is metered under.
pub const SCENE_ENDPOINT: &str = "world_scene";
/// Lines of a scene given to the model, and shown by `scene`.
const PROMPT_LINES: i64 = 20;
/// Lines kept per scene and world (older ones are removed).
pub(crate) const KEPT_LINES: i64 = 200;

/// The scene commands, for `commands_schema`: name, description, fields, optional fields.
pub(crate) const SCENE_COMMANDS: [(&str, &str, &[&str], &[&str]); 3] = [
    ("start_scene", "Start the scene of this area (again, once it ended).", &[], &["scene_id"]),
    ("scene", "Show the scene of this area: its section, its cast and what was said lately.", &[], &["scene_id"]),
    (
        "scene_say",
        "Say something in the scene under way here; the NPC whose turn it is answers (the one named, \
         with target_npc_id, when the scene lets players choose).",
        &["message"],
        &["target_npc_id"],
    ),
];

/// Whether a scene runs or is over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    #[default]
    Running,
    Ended,
}

/// A scene's state in a world (`world_scenes.data`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SceneState {
    pub(crate) status: Status,
    pub(crate) section: String,
    /// NPC turns taken, in all and in the section.
    pub(crate) turns: u32,
    pub(crate) section_turns: u32,
    /// Tokens and dollars of its model calls.
    pub(crate) tokens: u64,
    pub(crate) cost_usd: f64,
    /// The turn each NPC last spoke at, and who spoke last.
    pub(crate) spoken: BTreeMap<String, u32>,
    pub(crate) last_npc: Option<String>,
    /// The last line's number.
    pub(crate) seq: i64,
    pub(crate) started_at: i64,
    /// Why it ended: `end` (a closing section), `max_turns`, `max_tokens`, `max_cost_usd`.
    pub(crate) ended: Option<String>,
}

/// A line said in a scene.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    seq: i64,
    user_id: Option<String>,
    speaker: String,
    text: String,
}

impl Line {
    fn view(&self, exp: &crate::content::Experience) -> Value {
        let mut v = json!({"seq": self.seq, "speaker": self.speaker, "text": self.text});
        match self.speaker.as_str() {
            "player" => v["user_id"] = json!(self.user_id),
            "narrator" => {}
            npc => v["npc_name"] = json!(npc_name(exp, npc)),
        }
        v
    }
}

/// A scene under way, as a turn of it sees it.
pub(crate) struct Playing<'a> {
    pub(crate) scene: &'a Scene,
    state: SceneState,
    lines: Vec<Line>,
    /// Tokens and dollars spent choosing the speaker of this turn.
    spent: (u64, f64),
}

/// Tokens and dollars of a model call.
pub(crate) fn spend(
    engine: &gaia_chat::Engine,
    called: &gaia_chat::Called,
    usage: gaia_core::types::Usage,
) -> (u64, f64) {
    (usage.input_tokens + usage.output_tokens, engine.providers().cost(&called.provider, &called.model, usage))
}

fn scene_command(action: &Action) -> Option<(&'static str, Option<String>)> {
    let text = action.action.trim().to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let named = |rest: &[&str]| action.scene_id.clone().or_else(|| (!rest.is_empty()).then(|| rest.join("_")));
    match words.as_slice() {
        ["start_scene", rest @ ..] | ["start", "scene", rest @ ..] | ["start", "the", "scene", rest @ ..] => {
            Some(("start", named(rest)))
        }
        ["scene", rest @ ..] => Some(("show", named(rest))),
        ["scene_say"] => Some(("say", None)),
        _ => None,
    }
}

/// Whether `action` is one of the scene commands, and whether it is a turn (which calls a model).
pub(crate) fn scene_kind(action: &Action) -> Option<bool> {
    scene_command(action).map(|(k, _)| k == "say")
}

/// A scene's state in a world, read by `db` (a change's transaction, or the pool).
async fn scene_state<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    world: &str,
    scene: &str,
) -> Result<Option<SceneState>> {
    let row = sqlx::query("SELECT data FROM world_scenes WHERE world_id = $1 AND scene_id = $2")
        .bind(world)
        .bind(scene)
        .fetch_optional(db)
        .await
        .map_err(WorldError::db)?;
    Ok(row.map(|r| serde_json::from_str(&r.try_get::<String, _>("data").unwrap_or_default()).unwrap_or_default()))
}

/// A scene's state as change `c` sees it.
async fn read_state(c: &mut Change, scene: &str) -> Result<Option<SceneState>> {
    scene_state(&mut *c.tx, &c.world_id, scene).await
}

async fn write_state(c: &mut Change, scene: &str, st: &SceneState) -> Result<()> {
    sqlx::query(
        "INSERT INTO world_scenes (world_id, scene_id, data, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (world_id, scene_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
    )
    .bind(&c.world_id)
    .bind(scene)
    .bind(serde_json::to_string(st).unwrap_or_default())
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(&mut *c.tx)
    .await
    .map_err(WorldError::db)?;
    // Only the last lines are kept.
    sqlx::query("DELETE FROM world_scene_lines WHERE world_id = $1 AND scene_id = $2 AND seq <= $3")
        .bind(&c.world_id)
        .bind(scene)
        .bind(st.seq - KEPT_LINES)
        .execute(&mut *c.tx)
        .await
        .map_err(WorldError::db)?;
    Ok(())
}

/// Adds a line to the scene (numbered after `st.seq`): the line.
async fn add_line(
    c: &mut Change,
    scene: &str,
    st: &mut SceneState,
    user_id: Option<&str>,
    speaker: &str,
    text: &str,
) -> Result<Line> {
    st.seq += 1;
    sqlx::query(
        "INSERT INTO world_scene_lines (world_id, scene_id, seq, user_id, speaker, text, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.world_id)
    .bind(scene)
    .bind(st.seq)
    .bind(user_id)
    .bind(speaker)
    .bind(text)
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(&mut *c.tx)
    .await
    .map_err(WorldError::db)?;
    Ok(Line { seq: st.seq, user_id: user_id.map(str::to_string), speaker: speaker.into(), text: text.into() })
}

impl Ctx<'_> {
    /// The scenes that play where the player is (or at `place`).
    fn scenes_at(&self, place: Option<(&str, &str)>) -> Vec<&Scene> {
        let p = &self.seen.player;
        let (location, area) = place.unwrap_or((&p.current_location, &p.current_area));
        self.exp.scenes.values().filter(|s| s.location == location && s.area == area).collect()
    }

    /// The scenes that play where the player is.
    pub(crate) fn scenes_here(&self) -> Vec<&Scene> {
        self.scenes_at(None)
    }

    async fn state_of(&self, scene: &str) -> Result<Option<SceneState>> {
        scene_state(self.store().storage().pool(), self.world, scene).await
    }

    async fn lines_of(&self, scene: &str) -> Result<Vec<Line>> {
        let rows = sqlx::query(
            "SELECT seq, user_id, speaker, text FROM world_scene_lines WHERE world_id = $1 AND scene_id = $2 \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(self.world)
        .bind(scene)
        .bind(PROMPT_LINES)
        .fetch_all(self.store().storage().pool())
        .await
        .map_err(WorldError::db)?;
        let mut lines: Vec<Line> = rows
            .iter()
            .map(|r| Line {
                seq: r.try_get("seq").unwrap_or_default(),
                user_id: r.try_get("user_id").ok().flatten(),
                speaker: r.try_get("speaker").unwrap_or_default(),
                text: r.try_get("text").unwrap_or_default(),
            })
            .collect();
        lines.reverse();
        Ok(lines)
    }

    /// The scene under way where the player is, if one is.
    pub(crate) async fn playing_here(&self) -> Result<Option<Playing<'_>>> {
        for scene in self.scenes_at(None) {
            if let Some(state) = self.state_of(&scene.id).await?.filter(|s| s.status == Status::Running) {
                let lines = self.lines_of(&scene.id).await?;
                return Ok(Some(Playing { scene, state, lines, spent: (0, 0.0) }));
            }
        }
        Ok(None)
    }

    /// Answers the command when it is a scene command; `None` when it is not one.
    pub(crate) async fn scene_if_asked(&self, action: &Action) -> Result<Option<CommandResult>> {
        let Some((kind, id)) = scene_command(action).filter(|_| !self.exp.scenes.is_empty()) else { return Ok(None) };
        let version = self.seen.version;
        let here = self.scenes_at(None);
        let scene = match id {
            Some(id) => here.iter().find(|s| s.id == id).copied(),
            None if kind == "say" => None,
            None => here.first().copied(),
        };
        let r = match kind {
            "start" => match scene {
                Some(s) => self.start_scene(s).await?,
                None => CommandResult::fail(Self::no_scene(&here), version),
            },
            "show" => match scene {
                Some(s) => self.show_scene(s).await?,
                None => CommandResult::fail(Self::no_scene(&here), version),
            },
            _ => {
                let message = action.message.as_deref().unwrap_or_default().trim();
                if message.is_empty() {
                    return Ok(Some(CommandResult::fail("Say what? Give a message.", version)));
                }
                match self.playing_here().await? {
                    None => CommandResult::fail("No scene is under way here.", version),
                    Some(mut p) => {
                        let npc = self.choose_speaker(&mut p, action.target_npc_id.as_deref(), message).await;
                        self.answer(&npc, message, Some(p)).await?
                    }
                }
            }
        };
        Ok(Some(r))
    }

    fn no_scene(here: &[&Scene]) -> String {
        if here.is_empty() {
            "No scene plays here.".into()
        } else {
            let ids: Vec<&str> = here.iter().map(|s| s.id.as_str()).collect();
            format!("No such scene here (scenes here: {}).", ids.join(", "))
        }
    }

    async fn start_scene(&self, scene: &Scene) -> Result<CommandResult> {
        if self.state_of(&scene.id).await?.is_some_and(|s| s.status == Status::Running) {
            return Ok(CommandResult::fail(format!("{} is already under way.", title(scene)), self.seen.version));
        }
        let mut c = self.store().begin(self.world).await?;
        // Again in the change: two players may start it at once.
        if read_state(&mut c, &scene.id).await?.is_some_and(|s| s.status == Status::Running) {
            drop(c);
            return Ok(CommandResult::fail(format!("{} is already under way.", title(scene)), self.version().await?));
        }
        let (changes, speech) = self.begin_scene(&mut c, scene).await?;
        let mut r = self.finish(c, format!("{} begins.", title(scene)), changes, None).await?;
        r.metadata = Some(json!({"scene": scene.id, "npc_reactions": speech}));
        Ok(r)
    }

    async fn show_scene(&self, scene: &Scene) -> Result<CommandResult> {
        let st = self.state_of(&scene.id).await?;
        let lines: Vec<Value> = self.lines_of(&scene.id).await?.iter().map(|l| l.view(self.exp)).collect();
        let cast: Vec<Value> =
            scene.npcs.iter().map(|n| json!({"npc_id": n, "npc_name": npc_name(self.exp, n)})).collect();
        let status = match &st {
            None => "not_started",
            Some(s) if s.status == Status::Running => "running",
            Some(_) => "ended",
        };
        let message = match &st {
            Some(s) if s.status == Status::Running => format!("{}: under way ({} turns).", title(scene), s.turns),
            Some(_) => format!("{}: over.", title(scene)),
            None => format!("{}: not started (start_scene).", title(scene)),
        };
        let mut r = CommandResult::ok(message, self.seen.version);
        r.metadata = Some(json!({"scene": {
            "scene_id": scene.id, "name": title(scene), "status": status, "cast": cast, "lines": lines,
            "section": st.as_ref().map(|s| s.section.clone()), "turns": st.as_ref().map_or(0, |s| s.turns),
            "max_turns": scene.max_turns, "ended": st.and_then(|s| s.ended),
        }}));
        Ok(r)
    }

    /// Starts `scene` inside `c` (its first section begins): the scene's change and what was said.
    async fn begin_scene(&self, c: &mut Change, scene: &Scene) -> Result<(Vec<StateChange>, Vec<Value>)> {
        let mut st = SceneState { started_at: chrono::Utc::now().timestamp_millis(), ..SceneState::default() };
        // Lines are numbered on from an earlier run's.
        st.seq = read_state(c, &scene.id).await?.map_or(0, |s| s.seq);
        let mut said = Vec::new();
        let first = scene.sections.first().map(|s| s.id.clone()).unwrap_or_default();
        let speech = self.begin_section(c, scene, &mut st, &first, &mut said).await?;
        write_state(c, &scene.id, &st).await?;
        Ok((vec![scene_change(scene, &st, said)], speech))
    }

    /// Begins section `id` of `scene` inside `c`: its narration and lines are said (into `said`); a
    /// closing section ends the scene. Returns the NPCs' lines as speech.
    async fn begin_section(
        &self,
        c: &mut Change,
        scene: &Scene,
        st: &mut SceneState,
        id: &str,
        said: &mut Vec<Value>,
    ) -> Result<Vec<Value>> {
        let Some(sec) = scene.section(id) else { return Ok(Vec::new()) };
        st.section = sec.id.clone();
        st.section_turns = 0;
        if let Some(n) = &sec.narration {
            said.push(add_line(c, &scene.id, st, None, "narrator", n).await?.view(self.exp));
        }
        let mut speech = Vec::new();
        for l in &sec.lines {
            said.push(add_line(c, &scene.id, st, None, &l.npc, &l.say).await?.view(self.exp));
            let t = self.exp.npc_templates.get(&l.npc);
            speech.push(json!({"npc_id": l.npc, "npc_name": npc_name(self.exp, &l.npc), "text": l.say,
                               "voice": t.and_then(|t| t.voice.clone()), "scene": scene.id}));
        }
        if sec.end {
            st.status = Status::Ended;
            st.ended = Some("end".into());
        }
        Ok(speech)
    }

    /// The scenes `ev` starts (their `start`) or moves on (a transition of their section), inside
    /// `c`, where the event happens: their changes and what NPCs said. No model call.
    pub(crate) async fn scene_events(
        &self,
        c: &mut Change,
        ev: &WorldEvent<'_>,
    ) -> Result<(Vec<StateChange>, Vec<Value>)> {
        // Where it happens; an arrival concerns the scenes of the area left too.
        let mut scenes = self.scenes_at(None);
        if let WorldEvent::EntersArea { location, area } = ev {
            for s in self.scenes_at(Some((location, area))) {
                if !scenes.iter().any(|x| x.id == s.id) {
                    scenes.push(s);
                }
            }
        }
        let (mut changes, mut speech) = (Vec::new(), Vec::new());
        let none = Relationship::default();
        for scene in scenes {
            match read_state(c, &scene.id).await? {
                None => {
                    if scene.start.as_ref().is_some_and(|t| matches(t, ev, &none)) {
                        let (ch, sp) = self.begin_scene(c, scene).await?;
                        changes.extend(ch);
                        speech.extend(sp);
                    }
                }
                Some(mut st) if st.status == Status::Running => {
                    let next = scene.section(&st.section).and_then(|sec| {
                        sec.next.iter().find(|t| t.when.as_ref().is_some_and(|w| matches(w, ev, &none)))
                    });
                    if let Some(t) = next {
                        let mut said = Vec::new();
                        speech.extend(self.begin_section(c, scene, &mut st, &t.to, &mut said).await?);
                        write_state(c, &scene.id, &st).await?;
                        changes.push(scene_change(scene, &st, said));
                    }
                }
                Some(_) => {}
            }
        }
        Ok((changes, speech))
    }

    /// The scene's part of a turn's change: the player's line and the NPC's answer, the turn and
    /// what it cost. Then come the transitions the player's words set off ([`Ctx::react`]), then
    /// [`Ctx::scene_settled`].
    pub(crate) async fn scene_turn(
        &self,
        c: &mut Change,
        p: &Playing<'_>,
        npc: &str,
        message: &str,
        answer: &str,
        spent: (u64, f64),
    ) -> Result<Option<StateChange>> {
        let scene = p.scene;
        // Read again in the change: other players' turns may have come meanwhile, a cap or a reset
        // may have ended it (then the answer stands, outside the scene).
        let Some(mut st) = read_state(c, &scene.id).await?.filter(|s| s.status == Status::Running) else {
            return Ok(None);
        };
        let mut said = Vec::new();
        said.push(add_line(c, &scene.id, &mut st, Some(self.user_id), "player", message).await?.view(self.exp));
        said.push(add_line(c, &scene.id, &mut st, Some(self.user_id), npc, answer).await?.view(self.exp));
        st.turns += 1;
        st.section_turns += 1;
        st.tokens += spent.0 + p.spent.0;
        st.cost_usd += spent.1 + p.spent.1;
        st.spoken.insert(npc.to_string(), st.turns);
        st.last_npc = Some(npc.to_string());
        write_state(c, &scene.id, &st).await?;
        Ok(Some(scene_change(scene, &st, said)))
    }

    /// The end of a turn in `scene`, inside `c`: a transition after the section's turns, then the
    /// end past a cap. The scene's change and what NPCs said, when something happened.
    pub(crate) async fn scene_settled(
        &self,
        c: &mut Change,
        scene: &Scene,
    ) -> Result<Option<(StateChange, Vec<Value>)>> {
        let Some(mut st) = read_state(c, &scene.id).await?.filter(|s| s.status == Status::Running) else {
            return Ok(None);
        };
        let mut said = Vec::new();
        let mut speech = Vec::new();
        let after = scene.section(&st.section).and_then(|sec| {
            sec.next.iter().find(|t| t.after_turns.is_some_and(|n| st.section_turns >= n)).map(|t| t.to.clone())
        });
        if let Some(to) = after {
            speech = self.begin_section(c, scene, &mut st, &to, &mut said).await?;
        }
        let over = if st.turns >= scene.max_turns {
            Some("max_turns")
        } else if scene.max_tokens.is_some_and(|m| st.tokens >= m) {
            Some("max_tokens")
        } else if scene.max_cost_usd.is_some_and(|m| st.cost_usd >= m) {
            Some("max_cost_usd")
        } else {
            None
        };
        if let Some(why) = over.filter(|_| st.status == Status::Running) {
            st.status = Status::Ended;
            st.ended = Some(why.into());
            let line = format!("{} draws to a close.", title(scene));
            said.push(add_line(c, &scene.id, &mut st, None, "narrator", &line).await?.view(self.exp));
        }
        if said.is_empty() {
            return Ok(None);
        }
        write_state(c, &scene.id, &st).await?;
        Ok(Some((scene_change(scene, &st, said), speech)))
    }

    /// What the model is told of the scene when `npc` answers in it.
    pub(crate) fn scene_prompt(&self, p: &Playing<'_>, npc: &str) -> String {
        let scene = p.scene;
        let others: Vec<String> = scene.npcs.iter().filter(|n| *n != npc).map(|n| npc_name(self.exp, n)).collect();
        let mut s = format!("\n\nYou are in a scene, \"{}\", with the players here", title(scene));
        if !others.is_empty() {
            s.push_str(&format!(" and {}", others.join(", ")));
        }
        s.push_str(". Answer only as yourself.");
        if !scene.body.trim().is_empty() {
            s.push_str(&format!("\nThe scene: {}", scene.body.trim()));
        }
        if let Some(d) = scene.section(&p.state.section).and_then(|sec| sec.direction.as_deref()) {
            s.push_str(&format!("\nNow: {d}"));
        }
        if !p.lines.is_empty() {
            s.push_str("\nWhat was said aloud lately:");
            for l in &p.lines {
                let who = match l.speaker.as_str() {
                    "player" if l.user_id.as_deref() == Some(self.user_id) => "The player you answer".to_string(),
                    "player" => "Another player".to_string(),
                    "narrator" => "(narration)".to_string(),
                    n => npc_name(self.exp, n),
                };
                s.push_str(&format!("\n- {who}: {}", l.text));
            }
        }
        s
    }

    /// The NPC who answers a player's line in the scene (by its `speaker` rule; the model's choice
    /// is counted in the turn's tokens and cost).
    async fn choose_speaker(&self, p: &mut Playing<'_>, named: Option<&str>, message: &str) -> String {
        let scene = p.scene;
        let by_name = |n: &str| {
            let n = n.trim().to_lowercase();
            scene.npcs.iter().find(|id| id.to_lowercase() == n || npc_name(self.exp, id).to_lowercase() == n).cloned()
        };
        // In turn: the one after the last to speak.
        let next_in_turn = || {
            let last = p.state.last_npc.as_ref().and_then(|l| scene.npcs.iter().position(|n| n == l));
            scene.npcs[last.map_or(0, |i| (i + 1) % scene.npcs.len())].clone()
        };
        match scene.speaker {
            SpeakerRule::RoundRobin => next_in_turn(),
            SpeakerRule::Addressed => named
                .and_then(by_name)
                .or_else(|| {
                    let said = message.to_lowercase();
                    scene.npcs.iter().find(|id| mentions(&said, &npc_name(self.exp, id).to_lowercase())).cloned()
                })
                .unwrap_or_else(|| {
                    // The one who spoke least recently (never, first).
                    scene
                        .npcs
                        .iter()
                        .min_by_key(|n| p.state.spoken.get(*n).copied().unwrap_or(0))
                        .cloned()
                        .unwrap_or_default()
                }),
            SpeakerRule::Model => {
                let fallback = next_in_turn();
                let Some((engine, admitted)) = self.model() else { return fallback };
                let cast: Vec<String> = scene.npcs.iter().map(|n| format!("{n} ({})", npc_name(self.exp, n))).collect();
                let system = format!(
                    "You direct the scene \"{}\" of a game. Its characters: {}.{}\n\nWho answers the player's \
                     next line? Reply with that character's id only.",
                    title(scene),
                    cast.join(", "),
                    self.scene_prompt(p, "")
                );
                let mut req = ChatRequest::new("", vec![ChatMessage::system(system), ChatMessage::user(message)]);
                req.user = Some(self.user_id.to_string());
                req.max_tokens = Some(16);
                let rules = self.guard_rules(engine, &[]);
                let spec = CallSpec { rules: Some(&rules), ..CallSpec::new(SCENE_ENDPOINT, "") };
                match engine.complete(admitted, spec, &req).await {
                    Ok((r, called)) => {
                        p.spent = spend(engine, &called, r.usage);
                        let said = r.content.to_lowercase();
                        scene
                            .npcs
                            .iter()
                            .find(|id| {
                                mentions(&said, &id.to_lowercase())
                                    || mentions(&said, &npc_name(self.exp, id).to_lowercase())
                            })
                            .cloned()
                            .unwrap_or(fallback)
                    }
                    Err(e) => {
                        tracing::info!(error = %e, scene = %scene.id, "the model could not choose a speaker; the next in turn answers");
                        fallback
                    }
                }
            }
        }
    }
}

/// Whether `text` names `name` as a word (both lowercase).
fn mentions(text: &str, name: &str) -> bool {
    !name.is_empty()
        && text.match_indices(name).any(|(i, _)| {
            let before = text[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
            let after = text[i + name.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
            before && after
        })
}

fn title(scene: &Scene) -> String {
    if scene.name.is_empty() {
        scene.id.replace('_', " ")
    } else {
        scene.name.clone()
    }
}

/// The scene's change as every player in its area gets it.
fn scene_change(scene: &Scene, st: &SceneState, said: Vec<Value>) -> StateChange {
    StateChange {
        operation: "update".into(),
        area_id: Some(scene.area.clone()),
        path: Some("scene".into()),
        instance_id: scene.id.clone(),
        template_id: None,
        item: Some(json!({
            "scene_id": scene.id, "name": title(scene), "status": st.status, "section": st.section,
            "turns": st.turns, "max_turns": scene.max_turns, "ended": st.ended, "lines": said,
            "location_id": scene.location,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_commands_are_read_from_names_and_text() {
        let kind = |a: &Action| scene_command(a);
        assert_eq!(kind(&Action::new("start_scene")), Some(("start", None)));
        assert_eq!(kind(&Action::new("start scene night watch")), Some(("start", Some("night_watch".into()))));
        let a = Action { scene_id: Some("night_watch".into()), ..Action::new("scene") };
        assert_eq!(kind(&a), Some(("show", Some("night_watch".into()))));
        assert_eq!(kind(&Action::new("scene_say")), Some(("say", None)));
        assert_eq!(kind(&Action::new("look")), None);
        assert_eq!(scene_kind(&Action::new("scene_say")), Some(true));
        assert_eq!(scene_kind(&Action::new("start_scene")), Some(false));
    }

    #[test]
    fn a_name_is_mentioned_as_a_word() {
        assert!(mentions("dana, what do you see?", "dana"));
        assert!(mentions("ask sam.", "sam"));
        assert!(!mentions("samples everywhere", "sam"));
        assert!(!mentions("anything", ""));
    }
}
