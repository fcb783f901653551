//! Embeddings through providers: OpenAI's Embeddings API (`POST /v1/embeddings`), which OpenAI and
//! every OpenAI-compatible embedding server speak (Ollama, vLLM, text-embeddings-inference, LiteLLM).
//! The request and result are provider-neutral; [`crate::Provider::embed`] carries them, and providers
//! that cannot embed refuse with [`crate::ProviderError::InvalidRequest`].
//!
//! Every size is bounded here: a request holds at most [`MAX_EMBEDDING_INPUTS`] texts of at most
//! [`MAX_EMBEDDING_INPUT_CHARS`] characters, and an answer's vectors at most
//! [`MAX_EMBEDDING_DIMENSIONS`] numbers each, one per input, or it is refused.

use crate::error::ProviderError;
use gaia_core::types::Usage;
use serde::{Deserialize, Serialize};

/// The most texts one embedding request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// The longest text one embedding input may be, in characters (OpenAI's models take 8,192 tokens:
/// about four characters a token).
pub const MAX_EMBEDDING_INPUT_CHARS: usize = 32_768;

/// The most dimensions an embedding may have (`text-embedding-3-large` has 3,072).
pub const MAX_EMBEDDING_DIMENSIONS: usize = 8192;

/// Texts to embed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// Model id at the provider.
    pub model: String,
    /// The texts, in order (1 to [`MAX_EMBEDDING_INPUTS`]).
    pub input: Vec<String>,
    /// The size of the vectors, for models that can shorten theirs (`text-embedding-3-*`); the
    /// model's own size when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// The end user the call is for, passed to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The vectors of an [`EmbeddingRequest`]: one per input, in the inputs' order, all of one size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read (`input_tokens`).
    pub usage: Usage,
}

/// The most bytes an embedding answer may have, whatever the request (OpenAI's pretty-printed float
/// arrays take about 22 bytes a number: a batch of 2,048 vectors of 3,072 numbers is 140 MB).
pub const MAX_EMBEDDING_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// Bytes allowed for each number of an answer in JSON (`-0.0061968835` pretty-printed with its
/// indentation, comma and line break is about 22).
const BYTES_PER_NUMBER: usize = 32;

impl EmbeddingRequest {
    /// Checks the request against the bounds of this module: 1 to [`MAX_EMBEDDING_INPUTS`] inputs of
    /// at most [`MAX_EMBEDDING_INPUT_CHARS`] characters, `dimensions` 1 to
    /// [`MAX_EMBEDDING_DIMENSIONS`]; [`ProviderError::InvalidRequest`] says what is wrong.
    pub fn validate(&self) -> Result<(), ProviderError> {
        let invalid = |m: String| Err(ProviderError::InvalidRequest(m));
        if self.input.is_empty() {
            return invalid("embeddings need at least one input text".into());
        }
        if self.input.len() > MAX_EMBEDDING_INPUTS {
            return invalid(format!(
                "an embedding request takes at most {MAX_EMBEDDING_INPUTS} inputs, not {}",
                self.input.len()
            ));
        }
        for (i, text) in self.input.iter().enumerate() {
            // A text of at most that many bytes has at most that many characters: only longer ones are counted.
            if text.len() > MAX_EMBEDDING_INPUT_CHARS {
                let chars = text.chars().count();
                if chars > MAX_EMBEDDING_INPUT_CHARS {
                    return invalid(format!(
                        "input {i} has {chars} characters; an embedding input takes at most {MAX_EMBEDDING_INPUT_CHARS}"
                    ));
                }
            }
        }
        if let Some(d) = self.dimensions {
            if d == 0 || d as usize > MAX_EMBEDDING_DIMENSIONS {
                return invalid(format!("dimensions must be between 1 and {MAX_EMBEDDING_DIMENSIONS}, not {d}"));
            }
        }
        Ok(())
    }

    /// The most bytes the answer to this request may have: enough for its vectors at its
    /// `dimensions` (or at [`MAX_EMBEDDING_DIMENSIONS`] when unset) as JSON numbers, at most
    /// [`MAX_EMBEDDING_ANSWER_BYTES`].
    pub fn answer_limit(&self) -> usize {
        let dims = self.dimensions.map_or(MAX_EMBEDDING_DIMENSIONS, |d| (d as usize).min(MAX_EMBEDDING_DIMENSIONS));
        self.input
            .len()
            .max(1)
            .saturating_mul(dims.saturating_mul(BYTES_PER_NUMBER).saturating_add(256))
            .saturating_add(64 * 1024)
            .min(MAX_EMBEDDING_ANSWER_BYTES)
    }
}

/// Checks vectors a provider answered for `req`: one per input, all of one size between 1 and
/// [`MAX_EMBEDDING_DIMENSIONS`] (the requested `dimensions` when set), every number finite. A
/// failure is the provider's ([`ProviderError::Stream`]: a malformed answer).
pub(crate) fn check_vectors(provider: &str, req: &EmbeddingRequest, vectors: &[Vec<f32>]) -> Result<(), ProviderError> {
    let bad = |m: String| Err(ProviderError::Stream { provider: provider.to_string(), message: m });
    if vectors.len() != req.input.len() {
        return bad(format!("the provider answered {} embeddings for {} inputs", vectors.len(), req.input.len()));
    }
    let Some(size) = vectors.first().map(Vec::len) else { return Ok(()) };
    if size == 0 || size > MAX_EMBEDDING_DIMENSIONS {
        return bad(format!(
            "the provider answered embeddings of {size} numbers (1 to {MAX_EMBEDDING_DIMENSIONS} expected)"
        ));
    }
    if let Some(want) = req.dimensions.filter(|d| *d as usize != size) {
        return bad(format!("the provider answered embeddings of {size} numbers, not the {want} asked for"));
    }
    if let Some(i) = vectors.iter().position(|v| v.len() != size) {
        return bad(format!("embedding {i} has {} numbers where embedding 0 has {size}", vectors[i].len()));
    }
    if let Some(i) = vectors.iter().position(|v| v.iter().any(|x| !x.is_finite())) {
        return bad(format!("embedding {i} holds a number that is not finite"));
    }
    Ok(())
}

/// OpenAI's answer to an embedding request, `{"object": "list", "data": [{"object": "embedding",
/// "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`, written straight
/// from the vectors (floats as floats, never through a JSON tree: a large batch is tens of millions
/// of numbers), or with each vector as base64 of its little-endian f32s when `base64`. The one
/// renderer of Gaia's `/v1/embeddings` and the mock upstream's.
pub fn openai_embedding_list<V: AsRef<[f32]>>(
    vectors: &[V],
    base64: bool,
    model: &str,
    prompt_tokens: u64,
) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Vector<'a> {
        Floats(&'a [f32]),
        Base64(String),
    }
    #[derive(Serialize)]
    struct Item<'a> {
        object: &'static str,
        index: usize,
        embedding: Vector<'a>,
    }
    #[derive(Serialize)]
    struct ListUsage {
        prompt_tokens: u64,
        total_tokens: u64,
    }
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Item<'a>>,
        model: &'a str,
        usage: ListUsage,
    }
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let v = v.as_ref();
            let embedding =
                if base64 { Vector::Base64(gaia_core::vectors::encode_vector(v)) } else { Vector::Floats(v) };
            Item { object: "embedding", index, embedding }
        })
        .collect();
    let usage = ListUsage { prompt_tokens, total_tokens: prompt_tokens };
    serde_json::to_vec(&List { object: "list", data, model, usage })
}
