//! `talk`: a player speaks to an NPC in the same area. The model answers as the NPC (its template's
//! personality and knowledge, the player's relationship: trust and the last exchanges), through the
//! conversation engine (admitted, routed, metered as `world_talk`); the exchange is remembered and
//! trust rises by one with each friendly exchange (at most 100), in one versioned change.

use crate::command::{strip_articles, Action, CommandResult, StateChange};
use crate::engine::{npc_name, Ctx};
use crate::error::Result;
use crate::state::MAX_EXCHANGES;
use gaia_chat::CallSpec;
use gaia_core::types::ChatMessage;
use gaia_providers::ChatRequest;
use serde_json::json;

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
        let Some(npc_id) = Self::npcs_here(area)
            .into_iter()
            .find(|n| n.to_lowercase() == want || npc_name(self.exp, n).to_lowercase() == want)
        else {
            return Ok(CommandResult::fail(format!("There is no {npc} here to talk to."), version));
        };
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
        system.push_str(&format!(
            "Your trust in this player is {} out of 100 (50: a stranger). Facts you know about them: {}.",
            relationship.trust,
            if relationship.facts.is_empty() { "none yet".to_string() } else { relationship.facts.join("; ") }
        ));
        let mut messages = vec![ChatMessage::system(system)];
        for e in relationship.exchanges.iter().rev().take(MAX_EXCHANGES).rev() {
            if let (Some(said), Some(answer)) = (e["player"].as_str(), e["npc"].as_str()) {
                messages.push(ChatMessage::user(said));
                messages.push(ChatMessage::assistant(answer));
            }
        }
        messages.push(ChatMessage::user(message));
        let mut req = ChatRequest::new("", messages);
        req.user = Some(self.user_id.to_string());
        req.max_tokens = Some(300);
        let answer = match engine.complete(admitted, CallSpec::new(TALK_ENDPOINT, ""), &req).await {
            Ok((r, _)) => r.content.trim().chars().take(MAX_ANSWER_CHARS).collect::<String>(),
            Err(e) => {
                return Ok(CommandResult::fail(format!("{name} does not answer ({e})."), version));
            }
        };
        // Remember the exchange and grow trust, as one change.
        let mut c = self.store().begin(self.world).await?;
        let mut rel = c.relationship(self.user_id, &npc_id).await?;
        rel.exchanges.push(json!({"player": message, "npc": answer, "at": chrono::Utc::now().timestamp_millis()}));
        rel.trust = (rel.trust + 1).min(100);
        c.set_relationship(self.user_id, &npc_id, &rel).await?;
        let change = StateChange::of_player(
            "update",
            format!("player.relationships.{npc_id}"),
            self.user_id,
            json!({"trust": rel.trust}),
        );
        let mut r = self.finish(c, answer.clone(), vec![change], None).await?;
        let voice = template.and_then(|t| t.voice.clone());
        r.metadata =
            Some(json!({"npc_id": npc_id, "npc_name": name, "text": answer, "voice": voice, "trust": rel.trust}));
        Ok(r)
    }
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
}
