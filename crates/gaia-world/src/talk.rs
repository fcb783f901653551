//! `talk`: a player speaks to an NPC in the same area. The model answers as the NPC (its template's
//! personality and knowledge, the player's relationship: its axes, the NPC's emotion, the last
//! exchanges, the goals the NPC pursues), through the conversation engine (admitted, routed, metered
//! as `world_talk`), with the template's actions as tools. Its reply starts with an emotion tag
//! (`[happy 0.7]`); each action it proposes is checked ([`Ctx::take_action`]) and applied or refused.
//! The exchange is remembered, the relationship moves by the template's `talk_effects` (trust and
//! familiarity +1 unless it says otherwise; each axis 0 to 100), and the goals the
//! message sets off fire, all in one versioned change.

use crate::command::{strip_articles, Action, CommandResult};
use crate::content::{Emotion, EMOTIONS};
use crate::engine::{npc_name, Ctx};
use crate::error::Result;
use crate::npc::{action_tools, matches, relationship_change, WorldEvent, MAX_ACTION_ARGS, MAX_ACTION_CALLS};
use crate::state::MAX_EXCHANGES;
use gaia_chat::CallSpec;
use gaia_core::types::ChatMessage;
use gaia_providers::{ChatRequest, ProviderError};
use serde_json::{json, Value};

/// Longest NPC answer kept, in characters.
const MAX_ANSWER_CHARS: usize = 2_000;

/// The endpoint NPC answers are metered under.
pub const TALK_ENDPOINT: &str = "world_talk";

/// `(npc, message)` of a talk command: `{action: "talk", target_npc_id, message}`, or text such as
/// `talk to sam: is anyone out there?` or `say hello to sam`.
fn talk_of(action: &Action) -> Option<(String, String)> {
    let text = action.action.trim();
    let lower = text.to_lowercase();
    if lower == "talk" || lower == "talk_to_npc" {
        let npc = action.target_npc_id.clone().unwrap_or_default();
        return Some((npc, action.message.clone().unwrap_or_default()));
    }
    if let Some(rest) = lower.strip_prefix("talk to ").or_else(|| lower.strip_prefix("speak to ")) {
        // The original casing of the message, after the NPC's name.
        let offset = text.len() - rest.len();
        let (npc, message) = match rest.split_once(':') {
            Some((n, _)) => (n.trim().to_string(), text[offset + n.len() + 1..].trim().to_string()),
            None => (rest.trim().to_string(), action.message.clone().unwrap_or_default()),
        };
        return Some((strip_articles(&npc), message));
    }
    if let Some(rest) = lower.strip_prefix("say ") {
        if let Some((said, npc)) = rest.rsplit_once(" to ") {
            let said_original = text[4..4 + said.len()].trim().to_string();
            return Some((strip_articles(npc), said_original));
        }
    }
    None
}

/// Whether `action` is a `talk`.
pub(crate) fn is_talk(action: &Action) -> bool {
    talk_of(action).is_some()
}

impl Ctx<'_> {
    /// Answers the command when it is a `talk`; `None` when it is not one.
    pub(crate) async fn talk_if_asked(&self, action: &Action) -> Result<Option<CommandResult>> {
        match talk_of(action) {
            Some((npc, message)) => Ok(Some(self.talk(&npc, &message).await?)),
            None => Ok(None),
        }
    }

    async fn talk(&self, npc: &str, message: &str) -> Result<CommandResult> {
        let version = self.seen.version;
        let message = message.trim();
        if npc.trim().is_empty() {
            return Ok(CommandResult::fail("Talk to whom? Name someone here.", version));
        }
        if message.is_empty() {
            return Ok(CommandResult::fail("Say what? Give a message.", version));
        }
        let p = &self.seen.player;
        let Some((_, area)) = self.place(p) else {
            return Ok(CommandResult::fail("You are nowhere this world knows.", version));
        };
        let want = npc.trim().to_lowercase();
        let named = |n: &String| n.to_lowercase() == want || npc_name(self.exp, n).to_lowercase() == want;
        // A scene under way here makes a talk to one of its cast (wherever they are) a turn of it.
        let scene = self.playing_here().await?.filter(|p| p.scene.npcs.iter().any(named));
        let in_scene = scene.as_ref().and_then(|p| p.scene.npcs.iter().find(|n| named(n)).cloned());
        let Some(npc_id) = in_scene.or_else(|| Self::npcs_here(area).into_iter().find(named)) else {
            return Ok(CommandResult::fail(format!("There is no {npc} here to talk to."), version));
        };
        self.answer(&npc_id, message, scene).await
    }

    /// `npc_id` answers the player's `message` (in scene `scene` when one is under way): the model
    /// call, the actions it proposes, the exchange, the goals (and scene transitions) it sets off.
    pub(crate) async fn answer(
        &self,
        npc_id: &str,
        message: &str,
        scene: Option<crate::scene::Playing<'_>>,
    ) -> Result<CommandResult> {
        let version = self.seen.version;
        let npc_id = npc_id.to_string();
        let Some((engine, admitted)) = self.model() else {
            return Ok(CommandResult::fail("Talking to characters needs a model; none is available here.", version));
        };
        let name = npc_name(self.exp, &npc_id);
        let template = self.exp.npc_templates.get(&npc_id);
        let relationship = self.store().relationship(self.world, self.user_id, &npc_id).await?;
        let mut system = format!(
            "You are {name}, a character of the game \"{}\". Stay in character and answer in at most three \
             short sentences. Never mention being an AI.\n\n",
            self.exp.config.name
        );
        if let Some(t) = template {
            system.push_str(t.body.trim());
            system.push_str("\n\n");
        }
        let r = &relationship;
        // In a scene, what is private to the player (facts, memories, their talks alone with the
        // NPC) stays out: the answer is said aloud, in front of other players.
        let private = scene.is_none();
        system.push_str(&format!(
            "Your relationship with this player: trust {}/100 (50: a stranger), respect {}/100, familiarity {}/100; \
             you feel {} ({:.1}).{}",
            r.trust,
            r.respect,
            r.familiarity,
            r.emotion.name,
            r.emotion.intensity,
            match (private, r.facts.is_empty()) {
                (false, _) => String::new(),
                (true, true) => " Facts you know about them: none yet.".to_string(),
                (true, false) => format!(" Facts you know about them: {}.", r.facts.join("; ")),
            }
        ));
        // What the NPC pursues: its active goals, and those this message sets off.
        let mut aims = template.map(|t| Self::aims(t, r)).unwrap_or_default();
        let meant = self.meanings(template, message).await;
        let says = WorldEvent::PlayerSays { npc: &npc_id, text: message, meant: &meant };
        aims.extend(
            template
                .into_iter()
                .flat_map(|t| &t.goals)
                .filter(|g| matches(&g.when, &says, r))
                .filter_map(|g| g.aim.clone()),
        );
        aims.dedup();
        if !aims.is_empty() {
            system.push_str(&format!("\n\nWhat you are after now: {}.", aims.join("; ")));
        }
        if let Some(p) = &scene {
            system.push_str(&self.scene_prompt(p, &npc_id));
        }
        let tools = template.map(action_tools).unwrap_or_default();
        if !tools.is_empty() {
            system.push_str(
                "\n\nYou can act on the world with your tools, when it fits the conversation; the game checks \
                 each action and may refuse it.",
            );
        }
        system.push_str(&format!(
            "\n\nStart every reply with how you feel in brackets: one of {}, and an intensity from 0 to 1 \
             (for example [happy 0.7]).",
            EMOTIONS.join(", ")
        ));
        let memories = if private { self.recall(&npc_id, message).await } else { Vec::new() };
        if !memories.is_empty() {
            system.push_str("\n\nWhat you remember about this player:");
            for m in &memories {
                system.push_str("\n- ");
                system.push_str(&m.text);
            }
        }
        let mut messages = vec![ChatMessage::system(system)];
        for e in relationship.exchanges.iter().rev().take(if private { MAX_EXCHANGES } else { 0 }).rev() {
            if let (Some(said), Some(answer)) = (e["player"].as_str(), e["npc"].as_str()) {
                messages.push(ChatMessage::user(said));
                messages.push(ChatMessage::assistant(answer));
            }
        }
        messages.push(ChatMessage::user(message));
        let mut req = ChatRequest::new("", messages);
        req.user = Some(self.user_id.to_string());
        req.max_tokens = Some(300);
        req.tools = tools;
        let rules = self.guard_rules(engine, template.map(|t| t.guardrails.as_slice()).unwrap_or_default());
        let spec = CallSpec { rules: Some(&rules), ..CallSpec::new(TALK_ENDPOINT, "") };
        let (reply, spent) = match self.ask(engine, admitted, spec, &req, &npc_id).await {
            Ok((r, called)) => {
                let spent = crate::scene::spend(engine, &called, r.usage);
                (r, spent)
            }
            Err(gaia_chat::ChatError::Provider(ProviderError::ContentRefused(_))) => {
                // A guardrail refused the message or the answer: the NPC declines, in character, and
                // nothing is remembered or changed.
                let line = template
                    .and_then(|t| t.refusal.clone())
                    .unwrap_or_else(|| format!("{name} shakes their head and says nothing about that."));
                let mut r = CommandResult::ok(line.clone(), version);
                let voice = template.and_then(|t| t.voice.clone());
                r.metadata = Some(json!({"npc_id": npc_id, "npc_name": name, "text": line, "voice": voice,
                                         "emotion": Emotion::new("neutral", 0.3), "refused": true}));
                return Ok(r);
            }
            Err(e) => {
                return Ok(CommandResult::fail(format!("{name} does not answer ({e})."), version));
            }
        };
        let (felt, said) = emotion_of(&reply.content);
        let mut answer: String = said.chars().take(MAX_ANSWER_CHARS).collect();
        // The exchange, the actions the model proposed (each checked), the relationship and the goals
        // the message sets off: one change.
        let mut c = self.store().begin(self.world).await?;
        let mut rel = c.relationship(self.user_id, &npc_id).await?;
        let mut changes = Vec::new();
        let mut actions = Vec::new();
        for (i, call) in reply.tool_calls.iter().enumerate() {
            let outcome = if i >= MAX_ACTION_CALLS {
                Err(format!("at most {MAX_ACTION_CALLS} actions at once"))
            } else if call.arguments.len() > MAX_ACTION_ARGS {
                Err(format!("arguments longer than {MAX_ACTION_ARGS} bytes"))
            } else {
                match (serde_json::from_str::<Value>(&call.arguments), template) {
                    (Ok(Value::Object(args)), Some(t)) => {
                        self.take_action(&mut c, &npc_id, t, &call.name, &args, &mut rel).await?
                    }
                    (Ok(Value::Object(_)), None) => Err(format!("{name} cannot act on the world")),
                    _ => Err("its arguments are not a JSON object".to_string()),
                }
            };
            match outcome {
                Ok((done, said)) => {
                    changes.extend(done);
                    actions.push(json!({"action": call.name, "ok": true, "message": said}));
                }
                Err(why) => {
                    tracing::info!(npc = %npc_id, action = %call.name, why, "an NPC action was refused");
                    actions.push(json!({"action": call.name, "ok": false, "reason": why}));
                }
            }
        }
        if answer.is_empty() {
            // A reply made only of actions: say what was done.
            let done: Vec<&str> = actions.iter().filter_map(|a| a["message"].as_str()).collect();
            answer = if done.is_empty() { format!("{name} says nothing.") } else { done.join(" ") };
        }
        rel.exchanges.push(json!({"player": message, "npc": answer, "at": chrono::Utc::now().timestamp_millis()}));
        rel.add(&template.map_or_else(crate::content::talk_effects, |t| t.talk_effects));
        if let Some(e) = felt {
            rel.emotion = e;
        }
        c.set_relationship(self.user_id, &npc_id, &rel).await?;
        // The scene's lines first, then what the message sets off (a goal, a section), then the
        // scene's transition after turns and its caps.
        if let Some(p) = &scene {
            changes.extend(self.scene_turn(&mut c, p, &npc_id, message, &answer, spent).await?);
        }
        let mut reactions = self.react(&mut c, says).await?;
        if let Some(p) = &scene {
            if let Some((change, speech)) = self.scene_settled(&mut c, p.scene).await? {
                reactions.changes.push(change);
                reactions.speech.extend(speech);
            }
        }
        let rel = reactions.relationship(&npc_id, rel);
        let mine = relationship_change(self.user_id, &npc_id, &rel);
        changes.extend(reactions.changes.into_iter().filter(|ch| ch.path != mine.path));
        changes.push(mine);
        let mut r = self.finish(c, answer.clone(), changes, None).await?;
        let voice = template.and_then(|t| t.voice.clone());
        let mut meta = json!({"npc_id": npc_id, "npc_name": name, "text": answer, "voice": voice,
                              "emotion": rel.emotion, "trust": rel.trust, "relationship": rel.view()});
        if !actions.is_empty() {
            meta["actions"] = Value::Array(actions);
        }
        if !reactions.speech.is_empty() {
            meta["npc_reactions"] = Value::Array(reactions.speech);
        }
        if let Some(p) = &scene {
            meta["scene"] = Value::from(p.scene.id.clone());
        }
        if !memories.is_empty() {
            meta["recalled"] = memories.iter().map(|m| Value::from(m.text.clone())).collect();
        }
        r.metadata = Some(meta);
        if self.learns() {
            let who = (self.world.to_string(), self.user_id.to_string(), npc_id.clone(), name.clone());
            let storage = self.store().storage().clone();
            crate::memory::learn(engine.clone(), admitted.clone(), storage, who, rules, message.to_string(), answer);
        }
        Ok(r)
    }
}

impl Ctx<'_> {
    /// The model's answer to `req`: streamed to the caller's speech sink as it is written when there
    /// is one (the emotion tag held back) and no moderation model judges answers, else read whole.
    async fn ask(
        &self,
        engine: &gaia_chat::Engine,
        admitted: &gaia_chat::Admitted,
        spec: CallSpec<'_>,
        req: &ChatRequest,
        npc_id: &str,
    ) -> gaia_chat::Result<(gaia_providers::ChatResponse, gaia_chat::Called)> {
        let Some(sink) = self.caller.speech.clone() else {
            return engine.complete(admitted, spec, req).await;
        };
        // A moderation model judges a whole answer, at its end: with one for the answers, nothing is
        // shown (or spoken) before it has (pattern rules check a stream as it goes).
        let g = engine.guardrails();
        let all = g.union(&engine.guard_rules(admitted, None).await, spec.rules.unwrap_or(&Default::default()));
        if !g.moderation(&all, gaia_chat::guardrails::Stage::Output).is_empty() {
            return engine.complete(admitted, spec, req).await;
        }
        let (answer, called) = engine.call(admitted, CallSpec { stream: true, ..spec }, req).await?;
        let stream = match answer {
            gaia_chat::Answer::Full(r) => return Ok((r, called)),
            gaia_chat::Answer::Stream(s) => s,
        };
        let npc = npc_id.to_string();
        let mut tag = TagFilter::default();
        let forwarded = futures::StreamExt::inspect(stream, move |ev| {
            if let Ok(gaia_providers::ChatEvent::TextDelta(t)) = ev {
                if let Some(shown) = tag.push(t.as_str()) {
                    sink(&npc, &shown);
                }
            }
        });
        let r = gaia_providers::collect_stream(Box::pin(forwarded)).await?;
        Ok((r, called))
    }
}

/// Holds back the emotion tag a streamed reply starts with (`[happy 0.7] `), passing the rest.
#[derive(Default)]
struct TagFilter {
    held: String,
    open: bool,
}

impl TagFilter {
    /// The text of `delta` to show now, if any.
    fn push(&mut self, delta: &str) -> Option<String> {
        if self.open {
            return (!delta.is_empty()).then(|| delta.to_string());
        }
        self.held.push_str(delta);
        let t = self.held.trim_start();
        if t.is_empty() {
            return None;
        }
        let shown = if !t.starts_with('[') {
            t.to_string()
        } else if let Some(end) = t.find(']') {
            if emotion_of(&t[..=end]).0.is_some() {
                t[end + 1..].trim_start().to_string()
            } else {
                t.to_string()
            }
        } else if t.len() <= 40 {
            // Perhaps a tag: wait for its end.
            return None;
        } else {
            t.to_string()
        };
        self.open = !shown.is_empty() || !t.starts_with('[');
        self.held.clear();
        (!shown.is_empty()).then_some(shown)
    }
}

/// The emotion a reply starts with (`[happy 0.7] …`; an intensity of 0.5 when it gives none) and the
/// reply without it. No tag, or an emotion not in [`EMOTIONS`]: no emotion, the reply as it is.
fn emotion_of(reply: &str) -> (Option<Emotion>, String) {
    let t = reply.trim_start();
    if let Some((tag, rest)) = t.strip_prefix('[').and_then(|r| r.split_once(']')) {
        let parts: Vec<&str> = tag.split_whitespace().collect();
        let intensity = parts.get(1).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.5);
        if parts.len() <= 2 && tag.len() <= 40 {
            if let Some(e) = parts.first().and_then(|n| Emotion::new(n, intensity)) {
                return (Some(e), rest.trim().to_string());
            }
        }
    }
    (None, reply.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talk_is_read_from_fields_and_text() {
        let a = Action {
            target_npc_id: Some("radio_operator".into()),
            message: Some("Hello?".into()),
            ..Action::new("talk")
        };
        assert_eq!(talk_of(&a), Some(("radio_operator".into(), "Hello?".into())));
        assert_eq!(
            talk_of(&Action::new("talk to Sam: Is anyone Out there?")),
            Some(("sam".into(), "Is anyone Out there?".into()))
        );
        assert_eq!(
            talk_of(&Action::new("say Hello there to the radio operator")),
            Some(("radio operator".into(), "Hello there".into()))
        );
        assert_eq!(talk_of(&Action::new("look")), None);
    }

    #[test]
    fn a_streamed_reply_s_tag_is_held_back() {
        let shown = |deltas: &[&str]| {
            let mut f = TagFilter::default();
            deltas.iter().filter_map(|d| f.push(d)).collect::<Vec<_>>()
        };
        assert_eq!(shown(&["[hap", "py 0.7] Copy", " that."]), ["Copy", " that."]);
        assert_eq!(shown(&["[happy 0.7]", " ", "Copy"]), ["Copy"]);
        assert_eq!(shown(&["Copy", " that."]), ["Copy", " that."]);
        assert_eq!(shown(&["[static] crackle"]), ["[static] crackle"], "not an emotion: shown");
        assert_eq!(shown(&["  ", "Hi"]), ["Hi"]);
    }

    #[test]
    fn a_reply_s_emotion_is_read_from_its_tag() {
        let (e, text) = emotion_of("[happy 0.8] Copy that.");
        assert_eq!((e.map(|e| (e.name, e.intensity)), text.as_str()), (Some(("happy".into(), 0.8)), "Copy that."));
        let (e, _) = emotion_of("  [Afraid] Shut the door!");
        assert_eq!(e.map(|e| (e.name, e.intensity)), Some(("afraid".into(), 0.5)));
        assert_eq!(emotion_of("[happy 7] Hi").0.map(|e| e.intensity), Some(1.0), "clamped");
        for untagged in ["Copy that.", "[elated 0.9] Hi", "[a b c] Hi", "[happy"] {
            assert_eq!(emotion_of(untagged), (None, untagged.trim().to_string()));
        }
    }
}
