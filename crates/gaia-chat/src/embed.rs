//! The one embedding path: every embedding Gaia makes (`/v1/embeddings`, the knowledge base indexing
//! its notes, persona memory recalling facts) goes through [`Engine::embed`]: the inputs are checked
//! against their bounds, each is looked up in the cache by content hash (the caller, model, size and
//! text: one caller cannot learn from the cache what another embedded), the rest go to the model's
//! candidates once each (retries, fallbacks), and the call is metered and priced like a chat call
//! (input tokens at the model's input price), whether it succeeds or fails. A fallback chain (`a,b`)
//! or `auto` is not cached: its texts may be answered by models of different vector spaces.

use crate::admission::Admitted;
use crate::engine::Engine;
use crate::error::{ChatError, Result};
use crate::meter::Meter;
use async_trait::async_trait;
use gaia_core::types::Usage;
use gaia_core::vectors::{content_hash, EmbedError, Embedder};
use gaia_providers::embeddings::{MAX_EMBEDDING_DIMENSIONS, MAX_EMBEDDING_INPUTS, MAX_EMBEDDING_INPUT_CHARS};
use gaia_providers::EmbeddingRequest;
use std::time::Duration;

/// One embedding call to make.
#[derive(Debug, Clone, Copy)]
pub struct EmbedSpec<'a> {
    /// The entry point, recorded with the usage (`embeddings`, `kb_embeddings`, `persona_memory`).
    pub endpoint: &'a str,
    /// The model as asked for (`id`, `provider/id`, or a fallback chain `a,b`).
    pub model: &'a str,
    /// The size of the vectors, for models that can shorten theirs.
    pub dimensions: Option<u32>,
    /// Whether the cache may answer (and keep what the model answers).
    pub cache: bool,
    /// The end user, passed to the provider.
    pub user: Option<&'a str>,
}

impl<'a> EmbedSpec<'a> {
    /// A cached call of `model` through `endpoint`.
    pub fn new(endpoint: &'a str, model: &'a str) -> Self {
        EmbedSpec { endpoint, model, dimensions: None, cache: true, user: None }
    }
}

/// The vectors of a call and who made them.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    /// One vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// The provider that answered the inputs not in the cache (`cache` when all were).
    pub provider: String,
    /// The model id at that provider (the model asked for when all came from the cache).
    pub model: String,
    /// Tokens the provider read (cached inputs count none).
    pub usage: Usage,
    /// Inputs answered from the cache.
    pub cached: usize,
}

fn cache_key(user: &str, model: &str, dimensions: Option<u32>, text: &str) -> String {
    let dims = dimensions.map(|d| d.to_string()).unwrap_or_default();
    format!("gaia:emb:{}", content_hash(&format!("{user}\u{0}{model}\u{0}{dims}\u{0}{text}")))
}

/// Whether a model spec names one model (not a fallback chain, a group or `auto`), so that its
/// vectors are of one space.
fn one_model(spec: &str) -> bool {
    !spec.contains(',') && !spec.trim().starts_with("auto")
}

fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    gaia_core::vectors::vector_of_bytes(b).filter(|v| !v.is_empty())
}

/// Checks an embedding call's inputs against their bounds.
pub(crate) fn check(input: &[String], dimensions: Option<u32>) -> Result<()> {
    if input.is_empty() {
        return Err(ChatError::invalid("`input` must hold at least one text"));
    }
    if input.len() > MAX_EMBEDDING_INPUTS {
        return Err(ChatError::invalid(format!("`input` may hold at most {MAX_EMBEDDING_INPUTS} texts")));
    }
    if let Some(i) = input.iter().position(|t| t.is_empty()) {
        return Err(ChatError::invalid(format!("input {i} is empty")));
    }
    if let Some(i) = input.iter().position(|t| t.chars().count() > MAX_EMBEDDING_INPUT_CHARS) {
        return Err(ChatError::invalid(format!("input {i} is longer than {MAX_EMBEDDING_INPUT_CHARS} characters")));
    }
    if dimensions.is_some_and(|d| d == 0 || d as usize > MAX_EMBEDDING_DIMENSIONS) {
        return Err(ChatError::invalid(format!("`dimensions` must be 1 to {MAX_EMBEDDING_DIMENSIONS}")));
    }
    Ok(())
}

impl Engine {
    /// The vectors of `input` for `admitted`: from the cache by content hash when allowed, the rest
    /// from the model's candidates; metered however it ends.
    pub async fn embed(&self, admitted: &Admitted, spec: EmbedSpec<'_>, input: &[String]) -> Result<Embedded> {
        let mut meter = Meter::start(self, admitted, spec.endpoint);
        if let Err(e) = check(input, spec.dimensions) {
            meter.target("-", spec.model);
            meter.finish(e.http_status(), Some(e.to_string()));
            return Err(e);
        }
        let candidates = match self.inner.providers.candidates(spec.model).await {
            Ok(c) => c,
            Err(e) => {
                meter.target("-", spec.model);
                meter.finish(e.http_status(), Some(e.to_string()));
                return Err(e.into());
            }
        };
        let cfg = &self.inner.embeddings;
        let cache = self.inner.cache.as_ref().filter(|_| spec.cache && cfg.cache_ttl_secs > 0 && one_model(spec.model));
        let user = admitted.principal().user_id.as_str();
        let keys: Vec<String> = input.iter().map(|t| cache_key(user, spec.model, spec.dimensions, t)).collect();
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; input.len()];
        if let Some(c) = cache {
            let got = futures::future::join_all(keys.iter().map(|k| c.get(k))).await;
            for (slot, g) in vectors.iter_mut().zip(got) {
                *slot = g.ok().flatten().and_then(|b| from_bytes(&b));
            }
        }
        let missing: Vec<usize> = (0..input.len()).filter(|i| vectors[*i].is_none()).collect();
        let cached = input.len() - missing.len();
        if missing.is_empty() {
            meter.target("cache", spec.model);
            meter.finish(200, None);
            let vectors = vectors.into_iter().flatten().collect();
            return Ok(Embedded {
                vectors,
                provider: "cache".into(),
                model: spec.model.to_string(),
                usage: Usage::default(),
                cached,
            });
        }
        // Each distinct text goes upstream once.
        let mut distinct: Vec<String> = Vec::new();
        let mut slot_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let slots: Vec<usize> = missing
            .iter()
            .map(|i| {
                *slot_of.entry(input[*i].as_str()).or_insert_with(|| {
                    distinct.push(input[*i].clone());
                    distinct.len() - 1
                })
            })
            .collect();
        let req = EmbeddingRequest {
            model: String::new(),
            input: distinct,
            dimensions: spec.dimensions,
            user: spec.user.map(str::to_string),
        };
        let routed = match self.inner.providers.embed_routed(&candidates, &req).await {
            Ok(r) => r,
            Err(f) => {
                meter.failed(&f);
                return Err(f.error.into());
            }
        };
        let provider = routed.provider.name().to_string();
        meter.target(&provider, &routed.model);
        meter.usage(routed.value.usage);
        meter.finish(200, None);
        let ttl = Duration::from_secs(cfg.cache_ttl_secs);
        let fresh = routed.value.vectors;
        if let Some(c) = cache {
            for (i, slot) in missing.iter().zip(&slots) {
                if let Some(v) = fresh.get(*slot) {
                    if let Err(e) = c.set(&keys[*i], &gaia_core::vectors::vector_bytes(v), ttl).await {
                        tracing::debug!(error = %e, "an embedding could not be cached");
                    }
                }
            }
        }
        for (i, slot) in missing.iter().zip(&slots) {
            vectors[*i] = fresh.get(*slot).cloned();
        }
        let vectors: Vec<Vec<f32>> = vectors.into_iter().flatten().collect();
        if vectors.len() != input.len() {
            return Err(ChatError::Provider(gaia_providers::ProviderError::InvalidRequest(
                "the provider answered fewer vectors than texts".into(),
            )));
        }
        Ok(Embedded { vectors, provider, model: routed.model, usage: routed.value.usage, cached })
    }

    /// An [`Embedder`] making its calls through [`Engine::embed`] for `admitted`, with `[embeddings]`'s
    /// model and size (`None` when no model is configured).
    pub fn embedder(&self, admitted: Admitted, endpoint: &'static str) -> Option<EngineEmbedder> {
        let cfg = &self.inner.embeddings;
        let model = cfg.model.clone()?;
        let engine = std::sync::Arc::downgrade(&self.inner);
        Some(EngineEmbedder { engine, admitted, endpoint, model, dimensions: cfg.dimensions, batch: cfg.batch_size })
    }
}

/// The engine as an [`Embedder`] (the knowledge base's and persona memory's). It holds the engine
/// weakly: a knowledge base keeps its embedder, and the engine's tools keep the knowledge base.
#[derive(Debug, Clone)]
pub struct EngineEmbedder {
    engine: std::sync::Weak<crate::engine::EngineParts>,
    admitted: Admitted,
    endpoint: &'static str,
    model: String,
    dimensions: Option<u32>,
    batch: usize,
}

#[async_trait]
impl Embedder for EngineEmbedder {
    fn space(&self) -> String {
        match self.dimensions {
            Some(d) => format!("{}@{d}", self.model),
            None => self.model.clone(),
        }
    }

    async fn embed(&self, texts: &[String]) -> std::result::Result<Vec<Vec<f32>>, EmbedError> {
        // A query (one text) is cached; indexing's batches are kept by the vector store instead, and
        // would only crowd the cache.
        let spec = EmbedSpec {
            dimensions: self.dimensions,
            cache: texts.len() == 1,
            ..EmbedSpec::new(self.endpoint, &self.model)
        };
        // Texts over the bound are embedded by their start.
        let texts: Vec<String> = texts
            .iter()
            .map(|t| {
                if t.chars().count() > MAX_EMBEDDING_INPUT_CHARS {
                    t.chars().take(MAX_EMBEDDING_INPUT_CHARS).collect()
                } else {
                    t.clone()
                }
            })
            .map(|t| if t.is_empty() { " ".to_string() } else { t })
            .collect();
        let engine =
            Engine { inner: self.engine.upgrade().ok_or_else(|| EmbedError::Failed("the server is stopping".into()))? };
        match engine.embed(&self.admitted, spec, &texts).await {
            Ok(e) => Ok(e.vectors),
            Err(e) => Err(EmbedError::Failed(e.to_string())),
        }
    }

    fn batch_size(&self) -> usize {
        self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_bounded_and_cached_vectors_checked() {
        assert!(check(&[], None).is_err());
        assert!(check(&["".into()], None).is_err());
        assert!(check(&vec!["a".to_string(); MAX_EMBEDDING_INPUTS + 1], None).is_err());
        assert!(check(&["x".repeat(MAX_EMBEDDING_INPUT_CHARS + 1)], None).is_err());
        assert!(check(&["a".into()], Some(0)).is_err());
        assert!(check(&["a".into()], Some(9000)).is_err());
        assert!(check(&["a".into()], Some(256)).is_ok());
        assert_eq!(from_bytes(&gaia_core::vectors::vector_bytes(&[1.5, -2.0])), Some(vec![1.5, -2.0]));
        assert_eq!(from_bytes(&[0, 0, 0]), None);
        assert_eq!(from_bytes(&gaia_core::vectors::vector_bytes(&[f32::INFINITY])), None);
        assert_ne!(cache_key("u", "m", None, "t"), cache_key("u", "m", Some(8), "t"));
        assert_ne!(cache_key("u", "m", None, "t"), cache_key("u", "n", None, "t"));
        assert_ne!(cache_key("u", "m", None, "t"), cache_key("v", "m", None, "t"), "one caller's cache is theirs");
        assert!(one_model("openai/text-embedding-3-small") && !one_model("a,b") && !one_model("auto:cheap"));
    }
}
