//! Persona memory: what a persona remembers about each user ([`PersonaMemory`]: facts the user told
//! it and a running summary of older turns), put in the system prompt of every turn, and updated after
//! each exchange in the background (`chat.memory`).
//!
//! The update starts from a draft made without a model (the old memory, with the exchange appended to
//! the summary, cut to its bounds: the oldest part goes first), and asks the model to rewrite it as
//! JSON: the facts the user told about themselves and a short summary. Whatever the model answers is
//! checked and bounded; when it fails or answers something else, the draft is kept. So history that
//! no longer fits the context window is not simply dropped: its gist stays in the summary.
//!
//! A persona keeps up to [`gaia_core::storage::MAX_MEMORY_FACTS`] facts; a prompt shows at most [`PROMPT_FACTS`]. Beyond
//! that, [`recall`] picks the facts nearest the user's message by meaning (with `[embeddings]`' model:
//! the facts' vectors are stored under the scope `memory:<user id>`, so each fact is embedded once),
//! or the newest ones without a model. The update shows the model the same facts and keeps the others.

use crate::admission::Admitted;
use crate::call::CallSpec;
use crate::engine::Engine;
use gaia_core::storage::PersonaMemory;
use gaia_core::types::ChatMessage;
use gaia_core::vectors::{content_hash, dot, unit, Embedder, VectorStore};
use gaia_providers::{Candidate, ChatRequest};

/// Most facts shown in one prompt.
pub(crate) const PROMPT_FACTS: usize = 24;

/// Longest wait for the embedding model when recalling facts.
const RECALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Engine {
    /// Removes the stored vectors of `user_id`'s persona-memory facts that none of their personas
    /// remembers any more (after a memory is rewritten or forgotten).
    pub async fn prune_memory_vectors(&self, user_id: &str) {
        let Some(space) = self.embedder(Admitted::internal("memory"), "persona_memory").map(|e| e.space()) else {
            return;
        };
        let keep: std::collections::HashSet<String> = match self.storage().persona_memories_of(user_id).await {
            Ok(all) => all.iter().flat_map(|m| m.memory.facts.iter().map(|f| content_hash(f))).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read persona memories to prune their vectors");
                return;
            }
        };
        if let Err(e) = self.storage().retain(&format!("memory:{user_id}"), &space, &keep).await {
            tracing::debug!(error = %e, "cannot prune the vectors of persona memory");
        }
    }
}

/// The facts to show for `message`: all of them when they fit in [`PROMPT_FACTS`]; else those nearest
/// the message by meaning, in their stored order (the newest ones when no embedding model is
/// configured or it fails).
pub(crate) async fn recall(engine: &Engine, admitted: &Admitted, facts: &[String], message: &str) -> Vec<String> {
    if facts.len() <= PROMPT_FACTS {
        return facts.to_vec();
    }
    let newest = || facts[facts.len() - PROMPT_FACTS..].to_vec();
    let Some(embedder) = engine.embedder(admitted.clone(), "persona_memory") else { return newest() };
    let scope = format!("memory:{}", admitted.principal().user_id);
    let space = embedder.space();
    let store = engine.storage();
    let hashes: Vec<String> = facts.iter().map(|f| content_hash(f)).collect();
    let mut known = store.get(&scope, &space, &hashes).await.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot read the vectors of a persona's memory");
        Default::default()
    });
    let missing: Vec<usize> = (0..facts.len()).filter(|i| !known.contains_key(&hashes[*i])).collect();
    let mut texts: Vec<String> = missing.iter().map(|i| facts[*i].clone()).collect();
    texts.push(message.chars().take(gaia_providers::embeddings::MAX_EMBEDDING_INPUT_CHARS).collect());
    // On the turn's path: a slow model costs the turn at most this, then the newest facts are shown.
    let mut vectors = match tokio::time::timeout(RECALL_TIMEOUT, embedder.embed(&texts)).await {
        Ok(Ok(v)) if v.len() == texts.len() => v,
        Ok(Ok(_)) => return newest(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cannot embed for persona memory; showing the newest facts");
            return newest();
        }
        Err(_) => {
            tracing::debug!("the embedding model is slow; showing the newest facts");
            return newest();
        }
    };
    let Some(query) = vectors.pop().map(unit) else { return newest() };
    let new: Vec<(String, Vec<f32>)> =
        missing.iter().zip(vectors).map(|(i, v)| (hashes[*i].clone(), unit(v))).collect();
    if let Err(e) = store.put(&scope, &space, &new).await {
        tracing::debug!(error = %e, "cannot store the vectors of a persona's memory");
    }
    known.extend(new);
    let mut scored: Vec<(f32, usize)> =
        (0..facts.len()).map(|i| (known.get(&hashes[i]).map(|v| dot(v, &query)).unwrap_or(f32::MIN), i)).collect();
    // Best first; among equals, the newer.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut chosen: Vec<usize> = scored.into_iter().take(PROMPT_FACTS).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| facts[i].clone()).collect()
}

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
        // The model sees the facts the turn showed (all of them while they fit) and rewrites those;
        // the others are kept as they are.
        let shown = recall(&self.engine, &self.admitted, &old.facts, &self.user).await;
        let kept: Vec<String> = old.facts.iter().filter(|f| !shown.contains(f)).cloned().collect();
        let seen = PersonaMemory { facts: shown, ..old.clone() };
        let draft = draft(&seen, &self.user, &self.answer);
        let draft_json = serde_json::json!({"facts": draft.facts, "summary": draft.summary});
        let instructions = format!(
            "You keep what a character remembers about the user it talks to. Rewrite the JSON memory below \
             after the latest exchange (at its end): `facts` lists what the user told about themselves (name, \
             goals, preferences, promises; short, one per item, at most {PROMPT_FACTS}), `summary` is a \
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
        let mut memory = match self.engine.complete(&self.admitted, spec, &req).await {
            Ok((r, _)) => parse(&r.content).unwrap_or(draft),
            Err(e) => {
                tracing::debug!(error = %e, "the memory update call failed; keeping the draft");
                draft
            }
        };
        // The facts not shown come first (older), then those the model wrote.
        memory.facts = kept.into_iter().chain(memory.facts).collect();
        if let Err(e) = storage.put_persona_memory(&user_id, &self.persona_id, memory).await {
            tracing::warn!(error = %e, "cannot store a persona's memory");
        }
        self.engine.prune_memory_vectors(&user_id).await;
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
