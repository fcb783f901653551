//! `[embeddings]`: the embedding model the knowledge base's semantic search and persona memory use,
//! and how long `/v1/embeddings` answers are cached.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Embedding settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// The model (`text-embedding-3-small`, `provider/model`, or a fallback chain `a,b`) the
    /// knowledge base embeds its notes with and persona memory its facts with. Without one, semantic
    /// and hybrid search say how to configure it, and persona memory keeps its newest facts.
    pub model: Option<String>,
    /// The size of the vectors, for models that can shorten theirs (`text-embedding-3-*`); the
    /// model's own size when unset. Smaller vectors search faster and take less room.
    pub dimensions: Option<u32>,
    /// Texts sent per embedding call when indexing.
    pub batch_size: usize,
    /// **Tests and demos only**: with no `model`, embed with word hashing (not semantic: texts that
    /// share words are close, synonyms are not). Labelled as such wherever it is reported.
    pub test_fallback: bool,
    /// Seconds an embedding made through `/v1/embeddings` stays in the cache (by content hash);
    /// 0 turns the cache off.
    pub cache_ttl_secs: u64,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        EmbeddingsConfig { model: None, dimensions: None, batch_size: 64, test_fallback: false, cache_ttl_secs: 86_400 }
    }
}

impl EmbeddingsConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |k: &str, why: &str| Err(CoreError::Config(format!("key `embeddings.{k}`: {why}")));
        if self.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return bad("model", "empty (leave it out to have no embedding model)");
        }
        if self.model.as_deref().is_some_and(|m| m.contains(',') || m.trim().starts_with("auto")) {
            // Vectors of two models are not comparable: an index must hold one model's.
            return bad("model", "must name one model (`model` or `provider/model`), not a fallback chain or `auto`");
        }
        if self.dimensions.is_some_and(|d| d == 0 || d > 8192) {
            return bad("dimensions", "must be 1 to 8192");
        }
        if self.batch_size == 0 || self.batch_size > 2048 {
            return bad("batch_size", "must be 1 to 2048");
        }
        Ok(())
    }
}
