//! Semantic (vector) search, behind the `semantic` feature: a pluggable [`Embedder`] and cosine
//! similarity over one vector per document. [`HashEmbedder`] is deterministic and dependency-free
//! (feature hashing of words); production deployments plug in a model-backed embedder.

use crate::document::Document;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Turns text into a vector. Implementations must be deterministic for a given text.
pub trait Embedder: Send + Sync {
    /// Dimension of the vectors.
    fn dimensions(&self) -> usize;
    /// The vector of `text` (any length; it is normalised by the caller).
    fn embed(&self, text: &str) -> Vec<f32>;
}

/// A deterministic embedder: lower-cased words hashed into `dims` buckets (FNV-1a).
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
}

impl HashEmbedder {
    /// An embedder of `dims` dimensions (at least 1).
    pub fn new(dims: usize) -> HashEmbedder {
        HashEmbedder { dims: dims.max(1) }
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        HashEmbedder::new(256)
    }
}

impl Embedder for HashEmbedder {
    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dims];
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in word.to_lowercase().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % self.dims as u64) as usize] += sign;
        }
        v
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// A semantic search result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SemanticHit {
    /// Vault path.
    pub path: String,
    /// Title.
    pub title: String,
    /// Cosine similarity in [-1, 1].
    pub score: f32,
}

/// Vectors of the documents.
pub(crate) struct SemanticIndex {
    embedder: RwLock<Arc<dyn Embedder>>,
    vectors: RwLock<HashMap<String, Vec<f32>>>,
}

impl Default for SemanticIndex {
    fn default() -> Self {
        SemanticIndex { embedder: RwLock::new(Arc::new(HashEmbedder::default())), vectors: RwLock::new(HashMap::new()) }
    }
}

fn doc_text(d: &Document) -> String {
    format!("{} {} {} {}", d.note.title, d.note.aliases.join(" "), d.note.tags.join(" "), d.body())
}

impl SemanticIndex {
    pub(crate) fn update<'a>(
        &self,
        upserts: impl IntoIterator<Item = &'a Document>,
        deletes: &[String],
        _total: usize,
    ) {
        let e = self.embedder.read().expect("embedder lock").clone();
        let mut v = self.vectors.write().expect("vectors lock");
        for p in deletes {
            v.remove(p);
        }
        for d in upserts {
            v.insert(d.path.as_str().to_string(), normalise(e.embed(&doc_text(d))));
        }
    }

    pub(crate) fn set_embedder<'a>(&self, e: Arc<dyn Embedder>, docs: impl IntoIterator<Item = &'a Document>) {
        *self.embedder.write().expect("embedder lock") = e;
        self.vectors.write().expect("vectors lock").clear();
        self.update(docs, &[], 0);
    }

    pub(crate) fn search(&self, query: &str, limit: usize, title: impl Fn(&str) -> Option<String>) -> Vec<SemanticHit> {
        let e = self.embedder.read().expect("embedder lock").clone();
        let q = normalise(e.embed(query));
        let vectors = self.vectors.read().expect("vectors lock");
        let mut hits: Vec<SemanticHit> = vectors
            .iter()
            .filter(|(_, v)| v.len() == q.len())
            .map(|(p, v)| SemanticHit {
                path: p.clone(),
                title: title(p).unwrap_or_default(),
                score: v.iter().zip(&q).map(|(a, b)| a * b).sum(),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
        hits.truncate(if limit == 0 { 10 } else { limit.min(100) });
        hits
    }
}
