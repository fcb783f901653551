//! Persona memory: what a persona remembers about each user ([`PersonaMemory`]: facts the user told
//! it and a running summary of older turns), put in the system prompt of every turn, and updated after
//! each exchange in the background (`chat.memory`).
//!
//! The update starts from a draft made without a model (the old memory, with the exchange appended to
//! the summary, cut to its bounds: the oldest part goes first), and asks the model to rewrite it as
//! JSON: the facts the user told about themselves and a short summary. Whatever the model answers is
//! checked and bounded; when it fails or answers something else, the draft is kept. So history that
//! no longer fits the context window is not simply dropped: its gist stays in the summary.

use crate::admission::Admitted;
use crate::call::CallSpec;
use crate::engine::Engine;
use gaia_core::storage::{PersonaMemory, MAX_MEMORY_FACTS};
use gaia_core::types::ChatMessage;
use gaia_providers::{Candidate, ChatRequest};

/// Longest part of each side of an exchange put in the summary draft, in characters.
const EXCERPT_CHARS: usize = 300;

/// The system message telling the model what it remembers; `None` when it remembers nothing.
pub(crate) fn prompt(m: &PersonaMemory) -> Option<ChatMessage> {
    if m.is_empty() {
        return None;
    }
    let mut text = String::from("What you remember about this user from earlier conversations:");
    if !m.facts.is_empty() {
        text.push_str("\nFacts:");
        for f in &m.facts {
            text.push_str("\n- ");
            text.push_str(f);
        }
    }
    if !m.summary.is_empty() {
        text.push_str("\nEarlier turns, in short: ");
        text.push_str(&m.summary);
    }
    Some(ChatMessage::system(text))
}

fn excerpt(t: &str) -> String {
    let t = t.trim();
    let mut s: String = t.chars().take(EXCERPT_CHARS).collect();
    if t.chars().count() > EXCERPT_CHARS {
        s.push('…');
    }
    s
}

/// The memory after an exchange, without a model: the exchange appended to the summary, bounded.
fn draft(old: &PersonaMemory, user: &str, answer: &str) -> PersonaMemory {
    let mut summary = old.summary.clone();
    if !summary.is_empty() {
        summary.push('\n');
    }
    summary.push_str(&format!("User: {}\nYou: {}", excerpt(user), excerpt(answer)));
    PersonaMemory { facts: old.facts.clone(), summary, ..PersonaMemory::default() }.bounded()
}

/// A memory the model wrote: the first JSON object of its answer with `facts` (strings) and `summary`.
fn parse(answer: &str) -> Option<PersonaMemory> {
    let v = gaia_mcp::json_object(answer)?;
    let facts = v.get("facts")?.as_array()?.iter().filter_map(|f| f.as_str().map(str::to_string)).collect();
    let summary = v.get("summary")?.as_str()?.to_string();
    Some(PersonaMemory { facts, summary, ..PersonaMemory::default() }.bounded())
}

/// One update of what a persona remembers, run after an exchange.
pub(crate) struct Remember {
    pub(crate) engine: Engine,
    pub(crate) admitted: Admitted,
    pub(crate) persona_id: String,
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) model: String,
    pub(crate) user: String,
    pub(crate) answer: String,
}

impl Remember {
    /// Runs the update in the background (metered as `persona_memory`).
    pub(crate) fn spawn(self) {
        if self.answer.trim().is_empty() {
            return;
        }
        tokio::spawn(async move { self.run().await });
    }

    async fn run(self) {
        let storage = self.engine.storage();
        let user_id = self.admitted.principal().user_id.clone();
        let old = match storage.persona_memory(&user_id, &self.persona_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a persona's memory");
                return;
            }
        };
        let draft = draft(&old, &self.user, &self.answer);
        let draft_json = serde_json::json!({"facts": draft.facts, "summary": draft.summary});
        let instructions = format!(
            "You keep what a character remembers about the user it talks to. Rewrite the JSON memory below \
             after the latest exchange (at its end): `facts` lists what the user told about themselves (name, \
             goals, preferences, promises; short, one per item, at most {MAX_MEMORY_FACTS}), `summary` is a \
             short summary of the conversation so far (at most 1,500 characters). Reply with the JSON only."
        );
        let mut req = ChatRequest::new(
            self.model.clone(),
            vec![ChatMessage::system(instructions), ChatMessage::user(draft_json.to_string())],
        );
        req.temperature = Some(0.0);
        req.max_tokens = Some(800);
        req.user = Some(user_id.clone());
        let spec = CallSpec {
            candidates: Some(&self.candidates),
            guarded: false,
            ..CallSpec::new("persona_memory", &self.model)
        };
        let memory = match self.engine.complete(&self.admitted, spec, &req).await {
            Ok((r, _)) => parse(&r.content).unwrap_or(draft),
            Err(e) => {
                tracing::debug!(error = %e, "the memory update call failed; keeping the draft");
                draft
            }
        };
        if let Err(e) = storage.put_persona_memory(&user_id, &self.persona_id, memory).await {
            tracing::warn!(error = %e, "cannot store a persona's memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_keep_the_exchange_and_stay_bounded() {
        let old = PersonaMemory { facts: vec!["Name: Ash".into()], summary: "x".repeat(1990), ..Default::default() };
        let d = draft(&old, "Where is the bunker?", "Under the mill.");
        assert_eq!(d.facts, ["Name: Ash"]);
        assert!(d.summary.ends_with("User: Where is the bunker?\nYou: Under the mill."));
        assert_eq!(d.summary.chars().count(), gaia_core::storage::MAX_MEMORY_SUMMARY_CHARS);
    }

    #[test]
    fn model_answers_are_read_when_they_are_memories() {
        let m =
            parse("Sure!\n```json\n{\"facts\": [\"Likes fog\", 3], \"summary\": \"Talked about fog.\"}\n```").unwrap();
        assert_eq!((m.facts, m.summary.as_str()), (vec!["Likes fog".to_string()], "Talked about fog."));
        assert!(parse("no json here").is_none());
        assert!(parse("{\"facts\": \"not a list\", \"summary\": \"\"}").is_none());
        let p = prompt(&PersonaMemory {
            facts: vec!["Name: Ash".into()],
            summary: "Met at the mill.".into(),
            ..Default::default()
        });
        let text = p.unwrap().content;
        assert!(text.contains("- Name: Ash") && text.contains("Met at the mill."), "{text}");
        assert!(prompt(&PersonaMemory::default()).is_none());
    }
}
