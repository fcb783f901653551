//! What a persona remembers about a user (`persona_memories`): the facts the user told it and a
//! running summary of older turns, per (user, persona). Bounded: [`MAX_MEMORY_FACTS`] facts of at most
//! [`MAX_MEMORY_FACT_CHARS`] characters, a summary of at most [`MAX_MEMORY_SUMMARY_CHARS`] (its oldest
//! part is cut first). Users see and delete what their personas remember; it goes with their data.

use super::{clean_text, from_ms, now_ms, Storage};
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Most facts a persona keeps about a user. A prompt shows at most a few dozen of them: the ones
/// nearest the user's message by meaning (the conversation engine's persona memory).
pub const MAX_MEMORY_FACTS: usize = 256;
/// Longest fact, in characters.
pub const MAX_MEMORY_FACT_CHARS: usize = 200;
/// Longest running summary, in characters.
pub const MAX_MEMORY_SUMMARY_CHARS: usize = 2_000;

/// What a persona remembers about one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonaMemory {
    /// Facts the user told it, newest last.
    pub facts: Vec<String>,
    /// A running summary of the older turns.
    pub summary: String,
    /// Exchanges it was updated from.
    pub turns: i64,
    /// Last update (`None` before the first).
    pub updated_at: Option<DateTime<Utc>>,
}

impl PersonaMemory {
    /// The memory cut to its bounds: facts trimmed, empty and repeated ones dropped, each cut to
    /// [`MAX_MEMORY_FACT_CHARS`], the newest [`MAX_MEMORY_FACTS`] kept; the summary's newest
    /// [`MAX_MEMORY_SUMMARY_CHARS`] characters kept.
    pub fn bounded(mut self) -> PersonaMemory {
        let mut facts: Vec<String> = Vec::with_capacity(self.facts.len());
        for f in self.facts {
            let f: String = clean_text(f.trim()).chars().take(MAX_MEMORY_FACT_CHARS).collect();
            if !f.is_empty() && !facts.contains(&f) {
                facts.push(f);
            }
        }
        let extra = facts.len().saturating_sub(MAX_MEMORY_FACTS);
        facts.drain(..extra);
        self.facts = facts;
        let summary = clean_text(self.summary.trim()).into_owned();
        let n = summary.chars().count();
        self.summary = if n > MAX_MEMORY_SUMMARY_CHARS {
            summary.chars().skip(n - MAX_MEMORY_SUMMARY_CHARS).collect()
        } else {
            summary
        };
        self
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty() && self.summary.is_empty()
    }
}

/// A stored memory with the persona it belongs to (for exports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMemory {
    /// The persona.
    pub persona_id: String,
    /// What it remembers.
    #[serde(flatten)]
    pub memory: PersonaMemory,
}

fn row_to_memory(r: &AnyRow) -> Result<PersonaMemory> {
    let facts: String = r.try_get("facts")?;
    Ok(PersonaMemory {
        facts: serde_json::from_str(&facts).unwrap_or_default(),
        summary: r.try_get("summary")?,
        turns: r.try_get("turns")?,
        updated_at: Some(from_ms(r.try_get("updated_at")?)),
    })
}

impl Storage {
    /// What `persona_id` remembers about `user_id` (empty when nothing yet).
    pub async fn persona_memory(&self, user_id: &str, persona_id: &str) -> Result<PersonaMemory> {
        let row = sqlx::query(
            "SELECT facts, summary, turns, updated_at FROM persona_memories WHERE user_id = $1 AND persona_id = $2",
        )
        .bind(user_id)
        .bind(persona_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => row_to_memory(&r)?,
            None => PersonaMemory::default(),
        })
    }

    /// Stores what `persona_id` remembers about `user_id` (cut to its bounds), counting one more
    /// exchange; returns what was stored.
    pub async fn put_persona_memory(
        &self,
        user_id: &str,
        persona_id: &str,
        memory: PersonaMemory,
    ) -> Result<PersonaMemory> {
        let m = memory.bounded();
        let facts = serde_json::to_string(&m.facts).unwrap_or_else(|_| "[]".into());
        let now = now_ms();
        sqlx::query(
            "INSERT INTO persona_memories (user_id, persona_id, facts, summary, turns, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (user_id, persona_id) DO UPDATE SET facts = $3, summary = $4, \
             turns = persona_memories.turns + 1, updated_at = $5",
        )
        .bind(user_id)
        .bind(persona_id)
        .bind(&facts)
        .bind(&m.summary)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(super::user_row_error(user_id))?;
        self.persona_memory(user_id, persona_id).await
    }

    /// Forgets what `persona_id` remembers about `user_id`; whether there was anything.
    pub async fn delete_persona_memory(&self, user_id: &str, persona_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM persona_memories WHERE user_id = $1 AND persona_id = $2")
            .bind(user_id)
            .bind(persona_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Everything every persona remembers about `user_id`.
    pub async fn persona_memories_of(&self, user_id: &str) -> Result<Vec<StoredMemory>> {
        let rows = sqlx::query(
            "SELECT persona_id, facts, summary, turns, updated_at FROM persona_memories WHERE user_id = $1 \
             ORDER BY persona_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(StoredMemory { persona_id: r.try_get("persona_id")?, memory: row_to_memory(r)? }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_are_bounded() {
        let m = PersonaMemory {
            facts: (0..MAX_MEMORY_FACTS + 8)
                .map(|i| format!("fact {i}"))
                .chain([format!("fact {}", MAX_MEMORY_FACTS + 7), " ".into(), "x".repeat(500)])
                .collect(),
            summary: "a".repeat(100) + &"b".repeat(MAX_MEMORY_SUMMARY_CHARS),
            ..Default::default()
        }
        .bounded();
        assert_eq!(m.facts.len(), MAX_MEMORY_FACTS);
        assert_eq!(m.facts.last().map(|f| f.chars().count()), Some(MAX_MEMORY_FACT_CHARS));
        assert!(!m.facts.contains(&"fact 0".to_string()), "the oldest go first");
        assert_eq!(m.summary, "b".repeat(MAX_MEMORY_SUMMARY_CHARS), "the oldest part of the summary goes first");
    }
}
