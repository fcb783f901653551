//! The mock's embeddings: OpenAI's `POST /v1/embeddings`, in its exact wire format.
//!
//! - Request: `{"model", "input": string | [string] | [int] | [[int]], "dimensions"?,
//!   "encoding_format"?: "float" | "base64", "user"?}`; at most [`MAX_INPUTS`] inputs of at most
//!   [`MAX_INPUT_TOKENS`] words (or token ids) each, `dimensions` 1 to [`MAX_DIMENSIONS`]; anything
//!   else gets a 400 in OpenAI's error shape.
//! - Answer: `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
//!   "usage": {"prompt_tokens", "total_tokens"}}`, an embedding being an array of numbers or, with
//!   `encoding_format: "base64"`, the base64 of its little-endian `f32`s.
//! - Vectors are [`mock_embedding`]'s: deterministic, their cosine similarity following the words
//!   two texts share. A list of token ids is embedded as the text of words `t<id>`. Their size is
//!   `dimensions`, else [`mock_embedding_dimensions`] of the model (1536, or 3072 for a model whose
//!   name contains `large`).
//! - Usage: one token per word (per token id), at least one per input.
//! - The key check, model-name faults (`mock-error-NNN`, `mock-flaky-N`, `mock-slow`,
//!   `mock-malformed`, `mock-disconnect`, `mock-stall`), [`super::MockConfig::fault`] and the first-byte
//!   delay apply as on the chat routes.

use super::{authorised, broken_body, error_response, play_fault, MockState, Vendor};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// The most words (or token ids) one input may have (OpenAI's models take 8,192 tokens).
pub const MAX_INPUT_TOKENS: usize = 8192;

/// The largest `dimensions` the mock accepts.
pub const MAX_DIMENSIONS: usize = 8192;

/// The largest request body the mock reads.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The embedding side of the mock's state.
#[derive(Default)]
pub(super) struct EmbeddingState {
    /// `POST /v1/embeddings` requests received (with a valid key).
    pub(super) requests: AtomicU64,
    /// Inputs of the well-formed ones.
    pub(super) inputs: AtomicU64,
}

pub(super) fn routes() -> Router<Arc<MockState>> {
    Router::new().route("/v1/embeddings", post(embeddings).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
}

/// The size of the mock's vectors for `model` when the request sets no `dimensions`: 3072 when its
/// name contains `large` (as `text-embedding-3-large`), else 1536 (as `text-embedding-3-small`).
pub fn mock_embedding_dimensions(model: &str) -> usize {
    if model.contains("large") {
        3072
    } else {
        1536
    }
}

/// The mock upstream's embedding of `text` in `dims` numbers, for tests (to compute what the mock
/// answers, and so the rankings a search over its vectors gives).
///
/// The text is lower-cased and split on every character that is not alphanumeric; each word adds
/// ±1 to two of the vector's numbers (picked, with their signs, by its 64-bit FNV-1a hash, the same
/// on every run and platform); the sum is scaled to length 1. So texts sharing more words have a
/// higher cosine similarity, texts with no word in common about 0, and the same text always the
/// same vector. A text without words is the unit vector on the first number. `dims` of 0 gives an
/// empty vector.
pub fn mock_embedding(text: &str, dims: usize) -> Vec<f32> {
    let lower = text.to_lowercase();
    embed_words(lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()), dims)
}

/// The vector of a sequence of words (see [`mock_embedding`]).
fn embed_words<'a>(words: impl Iterator<Item = &'a str>, dims: usize) -> Vec<f32> {
    if dims == 0 {
        return Vec::new();
    }
    let mut sum = vec![0f64; dims];
    let n = dims as u64;
    for w in words {
        let h = fnv1a64(w.as_bytes());
        let g = mix(h);
        for (bucket, negative) in [(h % n, h >> 63 == 1), (g % n, g >> 63 == 1)] {
            // `bucket` < `dims`, which is a usize.
            sum[bucket as usize] += if negative { -1.0 } else { 1.0 };
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        let mut unit = vec![0f32; dims];
        unit[0] = 1.0;
        return unit;
    }
    sum.into_iter().map(|x| (x / norm) as f32).collect()
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// SplitMix64's finaliser: a second hash, independent of the first's low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One input of a request: a text, or token ids.
enum Input {
    Text(String),
    Tokens(Vec<u64>),
}

impl Input {
    /// Its words (token ids as `t<id>`), lower-cased.
    fn words(&self) -> Vec<String> {
        match self {
            Input::Text(t) => t
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect(),
            Input::Tokens(ids) => ids.iter().map(|id| format!("t{id}")).collect(),
        }
    }
}

fn bad(message: &str) -> Response {
    error_response(Vendor::OpenAi, 400, message)
}

const INVALID_INPUT: &str =
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.";

/// The inputs of a request body: a string, strings, token ids, or lists of token ids.
fn inputs(v: &Value) -> Result<Vec<Input>, Response> {
    let token = |t: &Value| t.as_u64().ok_or_else(|| bad(INVALID_INPUT));
    let out = match v.get("input") {
        Some(Value::String(s)) => vec![Input::Text(s.clone())],
        Some(Value::Array(a)) if a.is_empty() => return Err(bad(INVALID_INPUT)),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().map(|s| Input::Text(s.as_str().unwrap_or_default().to_string())).collect()
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => {
            vec![Input::Tokens(a.iter().map(token).collect::<Result<_, _>>()?)]
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_array) => a
            .iter()
            .map(|ids| match ids {
                Value::Array(ids) if !ids.is_empty() => {
                    Ok(Input::Tokens(ids.iter().map(token).collect::<Result<_, _>>()?))
                }
                _ => Err(bad(INVALID_INPUT)),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(INVALID_INPUT)),
        None => return Err(bad("'input' is a required property")),
    };
    if out.len() > MAX_INPUTS {
        return Err(bad(&format!("'$.input' is too long: at most {MAX_INPUTS} inputs are allowed")));
    }
    Ok(out)
}

async fn embeddings(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&state, Vendor::OpenAi, &headers) {
        return error_response(Vendor::OpenAi, 401, "invalid API key");
    }
    state.embeddings.requests.fetch_add(1, Ordering::Relaxed);
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(&format!("request body is not valid JSON: {e}")),
    };
    let Some(model) = v.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) else {
        return bad("you must provide a model parameter");
    };
    let inputs = match inputs(&v) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let dims = match v.get("dimensions") {
        None | Some(Value::Null) => mock_embedding_dimensions(model),
        Some(d) => match d.as_u64() {
            Some(d) if (1..=MAX_DIMENSIONS as u64).contains(&d) => d as usize,
            _ => {
                return bad(&format!(
                    "Invalid value for 'dimensions' = {d}: it must be an integer from 1 to {MAX_DIMENSIONS}."
                ))
            }
        },
    };
    let base64 = match v.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(f) => return bad(&format!("Invalid value for 'encoding_format' = {f}: use 'float' or 'base64'.")),
    };
    if v.get("user").is_some_and(|u| !u.is_string() && !u.is_null()) {
        return bad("Invalid type for 'user': expected a string.");
    }
    let words: Vec<Vec<String>> = inputs.iter().map(Input::words).collect();
    if let Some(i) = words.iter().position(|w| w.len() > MAX_INPUT_TOKENS) {
        return bad(&format!(
            "This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested {} tokens \
             in input {i}. Please reduce your prompt.",
            words[i].len()
        ));
    }
    state.embeddings.inputs.fetch_add(inputs.len() as u64, Ordering::Relaxed);

    let fault = match play_fault(&state, Vendor::OpenAi, model).await {
        Ok(f) => f,
        Err(r) => return r,
    };

    let tokens: u64 = words.iter().map(|w| w.len().max(1) as u64).sum();
    let vectors: Vec<Vec<f32>> = words.iter().map(|w| embed_words(w.iter().map(String::as_str), dims)).collect();
    let json = match crate::embeddings::openai_embedding_list(&vectors, base64, model, tokens) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return error_response(Vendor::OpenAi, 500, "the mock could not write its answer"),
    };
    if let Some(r) = broken_body(fault, json.clone()) {
        return r;
    }
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_deterministic_and_follow_shared_words() {
        let a = mock_embedding("The fog rolls over the harbour", 256);
        assert_eq!(a.len(), 256);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5, "unit length");
        assert_eq!(a, mock_embedding("the FOG, rolls over the harbour!", 256), "case and punctuation do not matter");
        let near = mock_embedding("fog over the harbour tonight", 256);
        let far = mock_embedding("quarterly tax invoices", 256);
        assert!(cos(&a, &near) > cos(&a, &far) + 0.3, "{} vs {}", cos(&a, &near), cos(&a, &far));
        let empty = mock_embedding(" ,;", 8);
        assert_eq!(empty, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(mock_embedding("x", 0).is_empty());
        // Pinned: the vectors must not change between runs, platforms or versions.
        assert_eq!(fnv1a64(b"fog"), 0xdcb2_6d18_fed9_c7df);
        let fog = mock_embedding("fog", 16);
        let nonzero: Vec<(usize, f32)> = fog.iter().copied().enumerate().filter(|(_, x)| *x != 0.0).collect();
        assert_eq!(nonzero, [(4, std::f32::consts::FRAC_1_SQRT_2), (15, -std::f32::consts::FRAC_1_SQRT_2)]);
    }

    #[test]
    fn token_ids_are_words() {
        let v = serde_json::json!({"input": [[1, 2], [3]]});
        let ins = inputs(&v).ok().unwrap();
        assert_eq!(ins[0].words(), ["t1", "t2"]);
        assert_eq!(embed_words(ins[1].words().iter().map(String::as_str), 32), mock_embedding("t3", 32));
        assert!(inputs(&serde_json::json!({"input": []})).is_err());
        assert!(inputs(&serde_json::json!({"input": [1, "a"]})).is_err());
        assert!(inputs(&serde_json::json!({"input": [-1]})).is_err());
        assert!(inputs(&serde_json::json!({"input": 3})).is_err());
    }
}
