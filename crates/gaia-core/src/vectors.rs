//! Embeddings as the rest of Gaia uses them: an [`Embedder`] turns texts into vectors (in production
//! the conversation engine's, which calls an embedding model through the provider registry; in tests
//! [`HashEmbedder`]), and a [`VectorStore`] keeps them by content hash, so that nothing is embedded
//! twice. [`crate::storage::Storage`] is the SQL store (SQLite or PostgreSQL); [`MemoryVectors`] keeps
//! them in memory. Another store (pgvector, a vector database) implements the same trait.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Why texts could not be embedded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// No embedding model is configured.
    #[error("{0}")]
    NotConfigured(String),
    /// The model refused or failed (the message says why).
    #[error("embedding failed: {0}")]
    Failed(String),
    /// The store failed.
    #[error("vector store: {0}")]
    Store(String),
}

/// Turns texts into vectors.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The vector space: two embedders with the same space make comparable vectors of the same size
    /// (`provider/model@dims`).
    fn space(&self) -> String;
    /// The vector of each text, in order, all of one size.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// How many texts to send per call.
    fn batch_size(&self) -> usize {
        64
    }
    /// Whether this is [`HashEmbedder`], the test fallback (shown in status answers).
    fn is_test_fallback(&self) -> bool {
        false
    }
}

/// **A test fallback, not semantic search.** Lower-cased words hashed into `dims` buckets (FNV-1a):
/// texts sharing words are close, texts meaning the same in other words are not. It makes tests and
/// demos run without a model; configure an embedding model (`[embeddings] model`) for real use.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
}

impl HashEmbedder {
    /// An embedder of `dims` dimensions (at least 1).
    pub fn new(dims: usize) -> HashEmbedder {
        HashEmbedder { dims: dims.max(1) }
    }

    /// The vector of one text (not normalised).
    pub fn vector(&self, text: &str) -> Vec<f32> {
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

impl Default for HashEmbedder {
    fn default() -> Self {
        HashEmbedder::new(256)
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn space(&self) -> String {
        format!("gaia-test-hash@{}", self.dims)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }

    fn batch_size(&self) -> usize {
        512
    }

    fn is_test_fallback(&self) -> bool {
        true
    }
}

/// `v` scaled to length 1 (a zero vector stays zero).
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// The dot product of two vectors (their cosine when both are unit vectors); 0 when their sizes
/// differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    // Eight running sums, so that the compiler can use vector instructions (a single sum of floats
    // must be added in order).
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The content hash a text's vector is stored under (SHA-256, hex).
pub fn content_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A vector's bytes: its f32s, little-endian (the form OpenAI's `base64` answers and Gaia's stores
/// use).
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A vector read back from [`vector_bytes`]; `None` when the length is not a multiple of 4 or a
/// number is not finite.
pub fn vector_of_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return None;
    }
    let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

/// A vector as stored and as OpenAI's `base64` encoding sends it: base64 of [`vector_bytes`].
pub fn encode_vector(v: &[f32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(vector_bytes(v))
}

/// A stored vector read back; `None` when it is not one (bad base64, a length not a multiple of 4,
/// a number that is not finite).
pub fn decode_vector(s: &str) -> Option<Vec<f32>> {
    use base64::Engine as _;
    vector_of_bytes(&base64::engine::general_purpose::STANDARD.decode(s).ok()?)
}

/// Where vectors are kept, by scope (`kb:<name>`, `memory`), space ([`Embedder::space`]) and content
/// hash ([`content_hash`]).
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// The stored vectors of `hashes` (those missing are left out).
    async fn get(&self, scope: &str, space: &str, hashes: &[String]) -> Result<HashMap<String, Vec<f32>>, EmbedError>;
    /// Stores vectors (a hash already stored keeps its vector).
    async fn put(&self, scope: &str, space: &str, items: &[(String, Vec<f32>)]) -> Result<(), EmbedError>;
    /// Every vector of a scope and space.
    async fn all(&self, scope: &str, space: &str) -> Result<Vec<(String, Vec<f32>)>, EmbedError>;
    /// Removes the vectors of a scope and space whose hash is not in `keep`; how many went.
    async fn retain(&self, scope: &str, space: &str, keep: &HashSet<String>) -> Result<u64, EmbedError>;
}

/// Vectors by content hash, per (scope, space).
type Spaces = HashMap<(String, String), HashMap<String, Vec<f32>>>;

/// A [`VectorStore`] in memory (tests, a knowledge base without a database).
#[derive(Debug, Clone, Default)]
pub struct MemoryVectors {
    map: Arc<Mutex<Spaces>>,
}

impl MemoryVectors {
    /// How many vectors it holds in all.
    pub fn len(&self) -> usize {
        self.map.lock().expect("vectors lock").values().map(HashMap::len).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl VectorStore for MemoryVectors {
    async fn get(&self, scope: &str, space: &str, hashes: &[String]) -> Result<HashMap<String, Vec<f32>>, EmbedError> {
        let m = self.map.lock().expect("vectors lock");
        let Some(s) = m.get(&(scope.to_string(), space.to_string())) else {
            return Ok(HashMap::new());
        };
        Ok(hashes.iter().filter_map(|h| s.get(h).map(|v| (h.clone(), v.clone()))).collect())
    }

    async fn put(&self, scope: &str, space: &str, items: &[(String, Vec<f32>)]) -> Result<(), EmbedError> {
        let mut m = self.map.lock().expect("vectors lock");
        let s = m.entry((scope.to_string(), space.to_string())).or_default();
        for (h, v) in items {
            s.entry(h.clone()).or_insert_with(|| v.clone());
        }
        Ok(())
    }

    async fn all(&self, scope: &str, space: &str) -> Result<Vec<(String, Vec<f32>)>, EmbedError> {
        let m = self.map.lock().expect("vectors lock");
        Ok(m.get(&(scope.to_string(), space.to_string()))
            .map(|s| s.iter().map(|(h, v)| (h.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn retain(&self, scope: &str, space: &str, keep: &HashSet<String>) -> Result<u64, EmbedError> {
        let mut m = self.map.lock().expect("vectors lock");
        let Some(s) = m.get_mut(&(scope.to_string(), space.to_string())) else {
            return Ok(0);
        };
        let before = s.len();
        s.retain(|h, _| keep.contains(h));
        Ok((before - s.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_bad_ones_are_refused() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        assert_eq!(decode_vector("not base64!"), None);
        assert_eq!(decode_vector("AAA="), None); // 2 bytes
        assert_eq!(decode_vector(&encode_vector(&[f32::NAN])), None);
        assert_eq!(dot(&[1.0, 0.0], &[1.0]), 0.0);
        let (a, b): (Vec<f32>, Vec<f32>) = (0..19).map(|i| (i as f32, 1.0 - i as f32 / 4.0)).unzip();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3, "{} {plain}", dot(&a, &b));
        let u = unit(vec![3.0, 4.0]);
        assert!((dot(&u, &u) - 1.0).abs() < 1e-6);
        assert_eq!(unit(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_first_vector_and_retains_what_it_is_told() {
        let s = MemoryVectors::default();
        s.put("kb:a", "m@2", &[("h1".into(), vec![1.0, 0.0]), ("h2".into(), vec![0.0, 1.0])]).await.unwrap();
        s.put("kb:a", "m@2", &[("h1".into(), vec![9.0, 9.0])]).await.unwrap();
        let got = s.get("kb:a", "m@2", &["h1".into(), "h3".into()]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["h1"], vec![1.0, 0.0]);
        assert!(s.get("kb:b", "m@2", &["h1".into()]).await.unwrap().is_empty());
        let gone = s.retain("kb:a", "m@2", &HashSet::from(["h2".to_string()])).await.unwrap();
        assert_eq!((gone, s.len()), (1, 1));
    }
}
