//! A mock LLM upstream speaking OpenAI's and Anthropic's exact wire formats, for tests, benchmarks and
//! local development (`gaia mock-llm`). It is only ever used when a provider's base URL points at it.
//!
//! Routes: `POST /v1/chat/completions` (OpenAI, streaming with `stream_options.include_usage`),
//! `POST /v1/messages` (Anthropic, streaming events), `GET /v1/models` (OpenAI's list shape, or
//! Anthropic's when the request carries `anthropic-version`), `POST /v1/embeddings` (OpenAI's, with
//! [`mock_embedding`]'s vectors: see [`embeddings`]); and media ([`media`]): OpenAI's
//! `POST /v1/images/generations`, `POST /v1/audio/speech`, `POST /v1/audio/transcriptions`, and
//! Meshy's text-to-3D tasks under `/openapi/v2/text-to-3d`.
//!
//! Behaviour, all deterministic:
//! - The reply text is `Mock reply to: <text of the last user message>` (or `Mock reply.` when there is
//!   none), streamed in [`MockConfig::chunks`] pieces with [`MockConfig::chunk_delay`] before each.
//! - When the last message is a tool result the reply is `Tool result received: <result text>`.
//! - When the request offers tools and the last user message contains `call tool NAME` (NAME one of the
//!   offered tools), the answer is a call of NAME with arguments `{"query": "<rest of the message>"}`
//!   (or the rest itself when it is a JSON object: `call tool give {"item": "key"}`), finish reason
//!   `tool_calls` / `tool_use`. Several `call tool` phrases give several parallel calls.
//! - With [`MockHandle::set_honour_tool_choice`] on (off by default), Anthropic requests whose
//!   `tool_choice` forces a tool (`{"type": "tool", "name": NAME}`) answer with a call of NAME (the
//!   `call tool NAME` arguments when the message has that phrase), else with input made from NAME's
//!   `input_schema` ([`placeholder`]: its required properties with placeholder values of the right
//!   type); `{"type": "any"}` without a `call tool` phrase calls the last offered tool that way. OpenAI
//!   requests are not affected.
//! - Stop sequences (`stop` / `stop_sequences`) cut the reply before the first one found in it
//!   (finish reason `stop` / `stop_sequence`, with `stop_sequence` naming it); a token limit
//!   (`max_completion_tokens` or `max_tokens`) below the reply's word count cuts it to that many words
//!   (finish reason `length` / `max_tokens`).
//! - Replies queued with [`MockHandle::push_reply`] answer the next requests that call no tool, in
//!   turn, exactly (a scripted JSON answer, say); those queued with [`MockHandle::push_reply_when`]
//!   answer the next such request whose body contains their marker.
//! - Usage: input tokens = words in all messages (at least 1); output tokens = words in the reply.
//! - Faults by model name (or for every request through [`MockConfig::fault`]): `mock-error-401`,
//!   `mock-error-429` (with `retry-after: 1`), `mock-error-500`, `mock-error-503` (any `mock-error-NNN`
//!   works) answer that status with the vendor's error body; `mock-disconnect` cuts the connection after
//!   half of the content; `mock-stall` sends half of the content, then nothing more while keeping the
//!   connection open; `mock-malformed` sends an event that is not JSON; `mock-slow` waits 30 s before
//!   answering.
//! - `mock-flaky-N` answers 503 to its first N requests (counted per model name), then normally: for
//!   testing retries.
//! - Latency can be changed while it runs: [`MockHandle::set_first_byte_delay`] (a wait before any
//!   answer, streamed or not) and [`MockHandle::set_chunk_delay`].
//! - With [`MockConfig::require_key`] a missing or wrong key (`Authorization: Bearer` for OpenAI,
//!   `x-api-key` for Anthropic) gets a 401 in the vendor's error shape.

// Handlers return early with a ready `Response` as the error value, the usual axum idiom.
#![allow(clippy::result_large_err)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use futures::Stream;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

pub mod embeddings;
pub mod media;

pub use embeddings::{mock_embedding, mock_embedding_dimensions};

/// How long `mock-slow` waits before answering.
pub const SLOW_DELAY: Duration = Duration::from_secs(30);

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this HTTP status and the vendor's error body.
    Status(u16),
    /// Cut the connection after half of the content.
    Disconnect,
    /// Send half of the content, then nothing more, keeping the connection open.
    Stall,
    /// Send an event that is not valid JSON.
    Malformed,
    /// Wait [`SLOW_DELAY`] before answering.
    Slow,
}

impl FromStr for Fault {
    type Err = String;
    /// Parses `disconnect`, `stall`, `malformed`, `slow`, `error-NNN` or `NNN` (also with a `mock-`
    /// prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().trim_start_matches("mock-");
        match s {
            "disconnect" => Ok(Fault::Disconnect),
            "stall" => Ok(Fault::Stall),
            "malformed" => Ok(Fault::Malformed),
            "slow" => Ok(Fault::Slow),
            other => {
                let code = other.trim_start_matches("error-");
                match code.parse::<u16>() {
                    Ok(c) if (400..600).contains(&c) => Ok(Fault::Status(c)),
                    _ => Err(format!(
                        "unknown fault `{s}`: use disconnect, stall, malformed, slow or error-NNN (an HTTP status 400-599)"
                    )),
                }
            }
        }
    }
}

/// Mock settings.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Delay before each content chunk of a streamed answer.
    pub chunk_delay: Duration,
    /// Number of content chunks a reply is split into.
    pub chunks: usize,
    /// A fault applied to every request (model-name faults still apply too).
    pub fault: Option<Fault>,
    /// Key clients must present.
    pub require_key: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig { chunk_delay: Duration::ZERO, chunks: 4, fault: None, require_key: None }
    }
}

struct MockState {
    cfg: MockConfig,
    /// `GET /v1/models` requests received.
    model_lists: AtomicU64,
    /// (delay before answering, delay before each content chunk), changeable at runtime.
    delays: Mutex<(Duration, Duration)>,
    counter: AtomicU64,
    /// Whether Anthropic requests get the call their `tool_choice` demands.
    honour_tool_choice: AtomicBool,
    last: Mutex<Option<Value>>,
    per_model: Mutex<std::collections::HashMap<String, u64>>,
    /// `POST /v1/moderations` requests received.
    moderations: AtomicU64,
    /// Media generated so far (images, speech, transcriptions, 3D tasks), and the 3D tasks.
    media: media::MediaState,
    /// Embedding requests and inputs received.
    embeddings: embeddings::EmbeddingState,
    /// Digests of the prompt prefixes cached so far (see [`prompt_cache`]).
    prompt_cache: Mutex<std::collections::HashSet<u64>>,
    /// Replies given in turn to the next requests that call no tool ([`MockHandle::push_reply`]).
    scripted: Mutex<std::collections::VecDeque<String>>,
    /// Replies for the next request whose body contains a marker: `(marker, reply)`, in order.
    scripted_when: Mutex<std::collections::VecDeque<(String, String)>>,
}

/// The mock server.
pub struct MockUpstream;

/// A running mock; stops when dropped or on [`MockHandle::shutdown`].
pub struct MockHandle {
    addr: SocketAddr,
    state: Arc<MockState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockUpstream {
    /// Binds `bind` (use port 0 for any free port) and serves in a background task.
    pub async fn start(bind: SocketAddr, cfg: MockConfig) -> std::io::Result<MockHandle> {
        let listener = gaia_core::net::listen(&bind.to_string()).await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let state = Arc::new(MockState {
            delays: Mutex::new((Duration::ZERO, cfg.chunk_delay)),
            model_lists: AtomicU64::new(0),
            cfg,
            counter: AtomicU64::new(0),
            honour_tool_choice: AtomicBool::new(false),
            scripted: Mutex::default(),
            scripted_when: Mutex::default(),
            last: Mutex::new(None),
            per_model: Mutex::new(std::collections::HashMap::new()),
            prompt_cache: Mutex::new(std::collections::HashSet::new()),
            moderations: AtomicU64::new(0),
            media: media::MediaState::default(),
            embeddings: embeddings::EmbeddingState::default(),
        });
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MockHandle { addr, state, stop: Some(tx), task: Some(task) })
    }
}

impl MockHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ADDR` (Anthropic base URL).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `http://ADDR/v1` (OpenAI base URL).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    /// Makes every later request wait `delay` before being answered (streamed or not): a slower or
    /// faster provider, as seen by latency-based routing.
    pub fn set_first_byte_delay(&self, delay: Duration) {
        self.state.delays.lock().unwrap_or_else(|e| e.into_inner()).0 = delay;
    }
    /// Changes the delay before each content chunk of later streamed answers.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.state.delays.lock().unwrap_or_else(|e| e.into_inner()).1 = delay;
    }
    /// Makes later Anthropic requests whose `tool_choice` demands a call (`tool` or `any`) get one, as
    /// Claude does: the named tool (or, for `any`, the `call tool` phrase's or else the last tool), with
    /// input made from its schema by [`placeholder`]. Off by default, when such requests are answered
    /// like any other.
    pub fn set_honour_tool_choice(&self, on: bool) {
        self.state.honour_tool_choice.store(on, Ordering::Relaxed);
    }
    /// Makes the next request that calls no tool answer exactly `text` (each call queues one reply;
    /// they are given in turn, then the usual `Mock reply to: …` again): for scripting a model's
    /// structured answers (a JSON object, a refusal) in tests.
    pub fn push_reply(&self, text: impl Into<String>) {
        self.state.scripted.lock().unwrap_or_else(|e| e.into_inner()).push_back(text.into());
    }

    /// Queues `text` as the reply to the next request that calls no tool and whose messages contain
    /// `marker` anywhere in its body (a background call a test scripts apart from the requests around
    /// it); such replies
    /// are used before those of [`MockHandle::push_reply`].
    pub fn push_reply_when(&self, marker: impl Into<String>, text: impl Into<String>) {
        self.state.scripted_when.lock().unwrap_or_else(|e| e.into_inner()).push_back((marker.into(), text.into()));
    }

    /// Number of model lists (`GET /v1/models`) requested.
    pub fn model_list_requests(&self) -> u64 {
        self.state.model_lists.load(Ordering::Relaxed)
    }
    /// Number of chat requests received.
    pub fn requests(&self) -> u64 {
        self.state.counter.load(Ordering::Relaxed)
    }
    /// `POST /v1/moderations` requests received (not counted in [`MockHandle::requests`]).
    pub fn moderation_requests(&self) -> u64 {
        self.state.moderations.load(Ordering::Relaxed)
    }

    /// `POST /v1/embeddings` requests received with a valid key (not counted in
    /// [`MockHandle::requests`]), well-formed or not.
    pub fn embedding_requests(&self) -> u64 {
        self.state.embeddings.requests.load(Ordering::Relaxed)
    }
    /// Inputs (texts or token lists) of the well-formed `POST /v1/embeddings` requests received, in
    /// all: how many embeddings were asked of the mock (answered, or failed by an injected fault).
    pub fn embedding_inputs(&self) -> usize {
        usize::try_from(self.state.embeddings.inputs.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Media requests received: images, speech and transcriptions asked for, and 3D tasks created.
    pub fn media_requests(&self) -> u64 {
        self.state.media.requests.load(Ordering::Relaxed)
    }
    /// How long the mock's 3D tasks take from creation to success (default 300 ms).
    pub fn set_model_3d_duration(&self, d: Duration) {
        *self.state.media.task_duration.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }
    /// The 3D tasks the mock still holds (created and not deleted).
    pub fn model_3d_tasks(&self) -> usize {
        self.state.media.tasks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The last chat request received (either format).
    pub fn last_request(&self) -> Option<Value> {
        self.state.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
    /// Waits until the server stops (for the `gaia mock-llm` command).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl MockState {
    fn delays(&self) -> (Duration, Duration) {
        *self.delays.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1/models", get(models))
        .route("/v1/moderations", post(moderations))
        .merge(media::routes())
        .merge(embeddings::routes())
        .with_state(state)
}

/// Words the mock's moderation flags, with their category: a deterministic stand-in for a
/// moderation model, so tests know what is flagged.
pub const MODERATION_FLAGS: &[(&str, &str)] =
    &[("kill", "violence"), ("bomb", "violence"), ("hate", "hate"), ("idiot", "harassment")];

/// OpenAI's `POST /v1/moderations`: `input` a string or strings; one result per input.
async fn moderations(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&state, Vendor::OpenAi, &headers) {
        return error_response(Vendor::OpenAi, 401, "invalid API key");
    }
    let n = state.moderations.fetch_add(1, Ordering::Relaxed) + 1;
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error_response(Vendor::OpenAi, 400, "the body is not JSON");
    };
    let inputs: Vec<String> = match v.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => return error_response(Vendor::OpenAi, 400, "`input` is required"),
    };
    let all = ["harassment", "hate", "self-harm", "sexual", "violence"];
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let lower = text.to_lowercase();
            let hit: Vec<&str> = MODERATION_FLAGS
                .iter()
                .filter(|(w, _)| lower.split(|c: char| !c.is_alphanumeric()).any(|t| t == *w))
                .map(|(_, c)| *c)
                .collect();
            let categories: Map<String, Value> = all.iter().map(|c| (c.to_string(), json!(hit.contains(c)))).collect();
            let scores: Map<String, Value> =
                all.iter().map(|c| (c.to_string(), json!(if hit.contains(c) { 0.97 } else { 0.001 }))).collect();
            json!({"flagged": !hit.is_empty(), "categories": categories, "category_scores": scores})
        })
        .collect();
    let model = v.get("model").and_then(Value::as_str).unwrap_or("omni-moderation-latest");
    axum::Json(json!({"id": format!("modr-mock-{n}"), "model": model,
                      "results": results}))
    .into_response()
}

#[derive(Clone, Copy, PartialEq)]
enum Vendor {
    OpenAi,
    Anthropic,
}

fn error_response(vendor: Vendor, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match vendor {
        Vendor::OpenAi => {
            let kind = match status {
                401 => "invalid_request_error",
                429 => "rate_limit_exceeded",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Vendor::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    let mut resp = (code, axum::Json(body)).into_response();
    if status == 429 {
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

fn authorised(state: &MockState, vendor: Vendor, headers: &HeaderMap) -> bool {
    let Some(want) = &state.cfg.require_key else { return true };
    let got = match vendor {
        Vendor::OpenAi => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string),
        Vendor::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string),
    };
    got.as_deref() == Some(want.as_str())
}

async fn models(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.model_lists.fetch_add(1, Ordering::Relaxed);
    let vendor = if headers.contains_key("anthropic-version") { Vendor::Anthropic } else { Vendor::OpenAi };
    let ok = authorised(&state, vendor, &headers)
        || (vendor == Vendor::OpenAi && authorised(&state, Vendor::Anthropic, &headers));
    if !ok {
        return error_response(vendor, 401, "invalid x-api-key / Authorization");
    }
    let ids = ["mock-gpt", "mock-claude"];
    let body = match vendor {
        Vendor::OpenAi => json!({
            "object": "list",
            "data": ids.iter().map(|id| json!({"id": id, "object": "model", "created": 1700000000, "owned_by": "gaia-mock"})).collect::<Vec<_>>()
        }),
        Vendor::Anthropic => json!({
            "data": ids.iter().map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2024-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false, "first_id": ids[0], "last_id": ids[ids.len() - 1]
        }),
    };
    axum::Json(body).into_response()
}

/// Why a planned text answer ends.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// The whole reply.
    Natural,
    /// Cut before this stop sequence.
    StopSequence(String),
    /// Cut at the token limit.
    Length,
}

/// What the mock will answer.
struct Plan {
    text: String,
    tool_calls: Vec<(String, String)>,
    end: End,
    input_tokens: u64,
    output_tokens: u64,
    /// Prompt tokens read from the mock's prompt cache, and written to it (of `input_tokens`).
    cache_read: u64,
    cache_written: u64,
}

/// The request's stop sequences (`stop`: a string or strings; `stop_sequences`: strings).
fn stop_sequences(vendor: Vendor, body: &Value) -> Vec<String> {
    let v = match vendor {
        Vendor::OpenAi => body.get("stop"),
        Vendor::Anthropic => body.get("stop_sequences"),
    };
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

/// Applies stop sequences, then the token limit (one token per word), to a text reply.
fn cut_reply(vendor: Vendor, body: &Value, text: String) -> (String, End) {
    let hit = stop_sequences(vendor, body)
        .into_iter()
        .filter_map(|s| text.find(&s).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    let (mut text, mut end) = match hit {
        Some((at, s)) => (text[..at].to_string(), End::StopSequence(s)),
        None => (text, End::Natural),
    };
    let limit =
        body.get("max_completion_tokens").filter(|_| vendor == Vendor::OpenAi).or_else(|| body.get("max_tokens"));
    if let Some(max) = limit.and_then(Value::as_u64) {
        if words(&text) > max {
            // Keep the first `max` words as written (their spacing included).
            let mut seen = 0;
            let mut cut = text.len();
            let mut in_word = false;
            for (i, c) in text.char_indices() {
                if c.is_whitespace() {
                    if in_word {
                        seen += 1;
                        if seen == max {
                            cut = i;
                            break;
                        }
                    }
                    in_word = false;
                } else {
                    in_word = true;
                }
            }
            text.truncate(cut);
            end = End::Length;
        }
    }
    (text, end)
}

/// Anthropic's usage object: `input_tokens` leaves out the cached ones.
fn anthropic_usage(p: &Plan, output_tokens: u64) -> Value {
    json!({
        "input_tokens": p.input_tokens.saturating_sub(p.cache_read + p.cache_written).max(1),
        "cache_read_input_tokens": p.cache_read,
        "cache_creation_input_tokens": p.cache_written,
        "output_tokens": output_tokens,
    })
}

/// The smallest prompt prefix the mock caches, in tokens (the vendors' minimum for most models).
pub const CACHE_MIN_TOKENS: u64 = 1024;
/// Prefixes the mock remembers before forgetting them all.
const CACHE_CAPACITY: usize = 10_000;

/// The prompt prefix of `body` a provider would cache, in tokens, with a digest of it: OpenAI
/// caches on its own every prompt's prefix before its last message; Anthropic the prefix up to the
/// last block marked with `cache_control` (system blocks first, then the messages' blocks).
fn cacheable_prefix(vendor: Vendor, body: &Value) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.get("model").and_then(Value::as_str).unwrap_or_default().hash(&mut h);
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let (mut tokens, mut cached, mut digest) = (0u64, 0u64, 0u64);
    let mut take = |text: &str, marked: bool, h: &mut std::collections::hash_map::DefaultHasher| {
        text.hash(h);
        tokens += words(text);
        if marked {
            (cached, digest) = (tokens, h.finish());
        }
    };
    match vendor {
        Vendor::OpenAi => {
            let head = messages.len().saturating_sub(1);
            for m in &messages[..head] {
                take(&m.get("content").map(content_text).unwrap_or_default(), false, &mut h);
            }
            if head > 0 {
                take("", true, &mut h);
            }
        }
        Vendor::Anthropic => {
            let blocks = |c: Option<&Value>| -> Vec<Value> {
                match c {
                    Some(Value::Array(a)) => a.clone(),
                    Some(other) => vec![json!({"type": "text", "text": content_text(other)})],
                    None => Vec::new(),
                }
            };
            let mut all = blocks(body.get("system"));
            for m in messages {
                all.extend(blocks(m.get("content")));
            }
            for b in &all {
                let text = content_text(&Value::Array(vec![b.clone()]));
                take(&text, b.get("cache_control").is_some_and(|c| !c.is_null()), &mut h);
            }
        }
    }
    (cached, digest)
}

/// (tokens read from the cache, tokens written to it) for `body`: a prefix of at least
/// [`CACHE_MIN_TOKENS`] is read when the same one (same model) was seen before, else written.
fn prompt_cache(state: &MockState, vendor: Vendor, body: &Value) -> (u64, u64) {
    let (tokens, digest) = cacheable_prefix(vendor, body);
    if tokens < CACHE_MIN_TOKENS {
        return (0, 0);
    }
    let mut seen = state.prompt_cache.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(&digest) {
        return (tokens, 0);
    }
    if seen.len() >= CACHE_CAPACITY {
        seen.clear();
    }
    seen.insert(digest);
    (0, tokens)
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Text of an OpenAI or Anthropic `content` (string, or array of text / tool_result parts).
fn content_text(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
                Some("tool_result") => p.get("content").map(content_text).unwrap_or_default(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// How many images (OpenAI `image_url` parts, Anthropic `image` blocks) a message carries.
fn image_count(m: &Value) -> usize {
    m.get("content").and_then(Value::as_array).map_or(0, |parts| {
        parts.iter().filter(|p| matches!(p.get("type").and_then(Value::as_str), Some("image_url" | "image"))).count()
    })
}

/// Input tokens the mock charges per image (OpenAI's figure for a low-detail image).
const IMAGE_TOKENS: u64 = 85;

fn is_tool_result(vendor: Vendor, m: &Value) -> bool {
    match vendor {
        Vendor::OpenAi => m.get("role").and_then(Value::as_str) == Some("tool"),
        Vendor::Anthropic => m
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|p| p.get("type").and_then(Value::as_str) == Some("tool_result"))),
    }
}

/// What to answer to `body`; `honour_tool_choice`: see [`MockHandle::set_honour_tool_choice`].
fn plan(vendor: Vendor, body: &Value, honour_tool_choice: bool) -> Plan {
    let messages = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut input = body.get("system").map(|s| words(&content_text(s))).unwrap_or(0);
    for m in &messages {
        input += words(&m.get("content").map(content_text).unwrap_or_default());
        input += IMAGE_TOKENS * image_count(m) as u64;
    }
    let tools: Vec<String> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.pointer("/function/name").or_else(|| t.get("name")).and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let last = messages.last();
    let mut tool_calls = Vec::new();
    let text = match last {
        Some(m) if is_tool_result(vendor, m) => {
            format!("Tool result received: {}", m.get("content").map(content_text).unwrap_or_default())
        }
        _ => {
            let last_user = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
            let images = last_user.map_or(0, image_count);
            let user = last_user.and_then(|m| m.get("content")).map(content_text);
            if let Some(u) = &user {
                for (i, part) in u.split("call tool ").enumerate().skip(1) {
                    let mut it = part.splitn(2, char::is_whitespace);
                    let name = it
                        .next()
                        .unwrap_or_default()
                        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_' && c != '-');
                    let rest = it.next().unwrap_or_default().trim();
                    let rest = rest.split("call tool ").next().unwrap_or_default().trim();
                    if tools.iter().any(|t| t == name) {
                        let _ = i;
                        // A JSON object after the name is the call's arguments, as written.
                        let args = match serde_json::from_str::<Value>(rest) {
                            Ok(Value::Object(o)) => Value::Object(o),
                            _ => json!({"query": rest}),
                        };
                        tool_calls.push((name.to_string(), args.to_string()));
                    }
                }
            }
            match user {
                // Vision requests say what they saw, so tests can tell the images arrived.
                Some(u) if images > 0 => {
                    format!("Mock reply to: {u} [saw {images} image{}]", if images == 1 { "" } else { "s" })
                }
                Some(u) => format!("Mock reply to: {u}"),
                None => "Mock reply.".to_string(),
            }
        }
    };
    if vendor == Vendor::Anthropic && honour_tool_choice {
        forced_tool_calls(body, &mut tool_calls);
    }
    let (text, end) = if tool_calls.is_empty() { cut_reply(vendor, body, text) } else { (text, End::Natural) };
    let output =
        if tool_calls.is_empty() { words(&text) } else { tool_calls.iter().map(|(_, a)| words(a)).sum::<u64>().max(1) };
    Plan {
        text,
        tool_calls,
        end,
        input_tokens: input.max(1),
        output_tokens: output.max(1),
        cache_read: 0,
        cache_written: 0,
    }
}

/// The plan with its text replaced by the next scripted reply, when one is queued and it calls no tool:
/// the first one whose marker the request's body contains, else the next unconditional one.
fn scripted(state: &MockState, body: &Value, mut p: Plan) -> Plan {
    if p.tool_calls.is_empty() {
        let when = {
            let mut q = state.scripted_when.lock().unwrap_or_else(|e| e.into_inner());
            let text = if q.is_empty() { String::new() } else { body.to_string() };
            q.iter().position(|(m, _)| text.contains(m.as_str())).and_then(|i| q.remove(i)).map(|(_, r)| r)
        };
        if let Some(text) = when.or_else(|| state.scripted.lock().unwrap_or_else(|e| e.into_inner()).pop_front()) {
            p.output_tokens = words(&text).max(1);
            p.text = text;
            p.end = End::Natural;
        }
    }
    p
}

/// Applies an Anthropic `tool_choice` that demands a call: `tool` keeps only the planned calls of that
/// tool, or makes one from its schema; `any` with no planned call makes one of the last tool.
fn forced_tool_calls(body: &Value, calls: &mut Vec<(String, String)>) {
    let tools = body.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let schema_of = |name: &str| {
        tools.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(name)).and_then(|t| t.get("input_schema"))
    };
    let call = |name: &str| {
        let input = schema_of(name).map(placeholder).filter(Value::is_object).unwrap_or_else(|| json!({}));
        (name.to_string(), input.to_string())
    };
    let choice = body.get("tool_choice");
    match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
        Some("tool") => {
            let Some(name) = choice.and_then(|c| c.get("name")).and_then(Value::as_str) else { return };
            if schema_of(name).is_none() {
                return;
            }
            calls.retain(|(n, _)| n == name);
            if calls.is_empty() {
                calls.push(call(name));
            }
        }
        Some("any") if calls.is_empty() => {
            if let Some(name) = tools.last().and_then(|t| t.get("name")).and_then(Value::as_str) {
                calls.push(call(name));
            }
        }
        _ => {}
    }
}

/// A value matching a JSON schema, deterministically: `const`, else the first `enum` value, else by
/// `type` (the first one that is not `null` when several): `"example"` for a string, 0 for a number or
/// integer, `false`, `null`, an array of `minItems` (at most 8) placeholder items, or an object with its
/// `required` properties (an untyped schema with `properties` is an object); `anyOf` / `oneOf` take
/// their first choice, `allOf` its first part.
pub fn placeholder(schema: &Value) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return placeholder(first);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => {
            ts.iter().filter_map(Value::as_str).find(|t| *t != "null").or_else(|| ts.first().and_then(Value::as_str))
        }
        _ if schema.get("properties").is_some() => Some("object"),
        _ => None,
    };
    match ty {
        Some("string") => json!("example"),
        Some("integer" | "number") => json!(0),
        Some("boolean") => json!(false),
        Some("array") => {
            let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0).min(8) as usize;
            let item = schema.get("items").map(placeholder).unwrap_or(Value::Null);
            Value::Array(vec![item; n])
        }
        Some("object") => {
            let props = schema.get("properties");
            let required = schema.get("required").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let mut out = serde_json::Map::new();
            for name in required.iter().filter_map(Value::as_str) {
                let value = props.and_then(|p| p.get(name)).map(placeholder).unwrap_or(Value::Null);
                out.insert(name.to_string(), value);
            }
            Value::Object(out)
        }
        _ => Value::Null,
    }
}

/// Splits `text` into at most `n` pieces on char boundaries.
fn split_chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.max(1).min(chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn parse_request(vendor: Vendor, body: &Bytes) -> Result<Value, Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error_response(vendor, 400, &format!("request body is not valid JSON: {e}")))?;
    if !v.get("messages").is_some_and(Value::is_array) {
        return Err(error_response(vendor, 400, "`messages` is required and must be an array"));
    }
    if !v.get("model").is_some_and(Value::is_string) {
        return Err(error_response(vendor, 400, "`model` is required"));
    }
    if vendor == Vendor::Anthropic && !v.get("max_tokens").is_some_and(Value::is_u64) {
        return Err(error_response(vendor, 400, "max_tokens: Field required"));
    }
    Ok(v)
}

/// One frame of a streamed answer, and whether it is content (delayed, counted for disconnects).
struct Frame {
    data: String,
    content: bool,
}

fn sse_response(frames: Vec<Frame>, delay: Duration, fault: Option<Fault>) -> Response {
    let body = frame_stream(frames, delay, fault);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn frame_stream(
    frames: Vec<Frame>,
    delay: Duration,
    fault: Option<Fault>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let content_total = frames.iter().filter(|f| f.content).count();
    let cut_after = (content_total / 2).max(1);
    async_stream::stream! {
        let mut sent_content = 0;
        for f in frames {
            if f.content {
                if fault == Some(Fault::Stall) && sent_content >= cut_after {
                    // Hold the connection open without a byte more, until the client gives up.
                    std::future::pending::<()>().await;
                }
                if fault == Some(Fault::Disconnect) && sent_content >= cut_after {
                    // Let the server flush what was sent, so the client sees a cut mid-stream.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "mock disconnect"));
                    return;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                sent_content += 1;
            }
            yield Ok(Bytes::from(f.data));
            if f.content && fault == Some(Fault::Malformed) && sent_content == 1 {
                yield Ok(Bytes::from_static(b"data: {\"this is\": not json\n\n"));
            }
        }
    }
}

fn fault_for(state: &MockState, model: &str) -> Option<Fault> {
    if let Some(n) = model.strip_prefix("mock-flaky-").and_then(|n| n.parse::<u64>().ok()) {
        let mut seen = state.per_model.lock().unwrap_or_else(|e| e.into_inner());
        let count = seen.entry(model.to_string()).or_insert(0);
        *count += 1;
        return (*count <= n).then_some(Fault::Status(503));
    }
    if model.starts_with("mock-") {
        if let Ok(f) = Fault::from_str(model) {
            return Some(f);
        }
    }
    state.cfg.fault
}

/// The fault injected for `model`, played out before an answer: a slow start, the configured
/// first-byte delay, then the error answer of an injected status (`Err`). `Ok` carries the fault (a
/// fault that shapes the answer itself, such as a broken stream, is the caller's to play).
async fn play_fault(state: &MockState, vendor: Vendor, model: &str) -> Result<Option<Fault>, Response> {
    let fault = fault_for(state, model);
    if fault == Some(Fault::Slow) {
        tokio::time::sleep(SLOW_DELAY).await;
    }
    let first_byte = state.delays().0;
    if !first_byte.is_zero() {
        tokio::time::sleep(first_byte).await;
    }
    if let Some(Fault::Status(code)) = fault {
        return Err(error_response(vendor, code, &format!("mock error {code}")));
    }
    Ok(fault)
}

/// Runs the checks shared by both chat routes; `Ok` carries the parsed body and fault.
async fn prepare(
    state: &MockState,
    vendor: Vendor,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Value, Option<Fault>, u64), Response> {
    let n = state.counter.fetch_add(1, Ordering::Relaxed) + 1;
    if !authorised(state, vendor, headers) {
        return Err(error_response(vendor, 401, "invalid API key"));
    }
    let v = parse_request(vendor, body)?;
    *state.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
    let fault = play_fault(state, vendor, v["model"].as_str().unwrap_or_default()).await?;
    Ok((v, fault, n))
}

fn broken_body(fault: Option<Fault>, full: String) -> Option<Response> {
    match fault {
        Some(Fault::Malformed) => Some(
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"id\": \"broken"))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        ),
        Some(f @ (Fault::Disconnect | Fault::Stall)) => {
            let half = full.len() / 2;
            let head = Bytes::from(full.into_bytes()).slice(..half);
            let s = async_stream::stream! {
                yield Ok::<Bytes, std::io::Error>(head);
                if f == Fault::Stall {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "mock disconnect"));
            };
            Some(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from_stream(s))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            )
        }
        _ => None,
    }
}

async fn openai_chat(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (v, fault, n) = match prepare(&state, Vendor::OpenAi, &headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let model = v["model"].as_str().unwrap_or_default().to_string();
    let mut p = scripted(&state, &v, plan(Vendor::OpenAi, &v, false));
    // OpenAI reports what it read from its cache, not what it wrote.
    p.cache_read = prompt_cache(&state, Vendor::OpenAi, &v).0;
    let id = format!("chatcmpl-mock-{n}");
    let created = 1_700_000_000u64 + n;
    let finish = match (&p.end, p.tool_calls.is_empty()) {
        (_, false) => "tool_calls",
        (End::Length, true) => "length",
        _ => "stop",
    };
    let usage = json!({"prompt_tokens": p.input_tokens, "completion_tokens": p.output_tokens,
        "total_tokens": p.input_tokens + p.output_tokens, "prompt_tokens_details": {"cached_tokens": p.cache_read}});
    let calls: Vec<Value> = p
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| json!({"id": format!("call_mock_{n}_{i}"), "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();

    if !v.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let message = if calls.is_empty() {
            json!({"role": "assistant", "content": p.text, "refusal": null})
        } else {
            json!({"role": "assistant", "content": null, "tool_calls": calls, "refusal": null})
        };
        let full = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage, "system_fingerprint": "fp_gaia_mock"
        });
        if let Some(r) = broken_body(fault, full.to_string()) {
            return r;
        }
        return axum::Json(full).into_response();
    }

    let include_usage = v.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_gaia_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut frames = Vec::new();
    if calls.is_empty() {
        frames.push(Frame {
            data: chunk(json!({"role": "assistant", "content": "", "refusal": null}), None),
            content: false,
        });
        for piece in split_chunks(&p.text, state.cfg.chunks) {
            frames.push(Frame { data: chunk(json!({"content": piece}), None), content: true });
        }
    } else {
        for (i, (name, args)) in p.tool_calls.iter().enumerate() {
            let head = json!({"tool_calls": [{"index": i, "id": format!("call_mock_{n}_{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]});
            let head = if i == 0 {
                let mut h = head;
                h["role"] = json!("assistant");
                h["content"] = Value::Null;
                h
            } else {
                head
            };
            frames.push(Frame { data: chunk(head, None), content: i == 0 });
            for frag in split_chunks(args, state.cfg.chunks) {
                frames.push(Frame {
                    data: chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}), None),
                    content: true,
                });
            }
        }
    }
    frames.push(Frame { data: chunk(json!({}), Some(finish)), content: false });
    if include_usage {
        let u = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_gaia_mock", "choices": [], "usage": usage
        });
        frames.push(Frame { data: format!("data: {u}\n\n"), content: false });
    }
    frames.push(Frame { data: "data: [DONE]\n\n".to_string(), content: false });
    sse_response(frames, state.delays().1, fault)
}

async fn anthropic_messages(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (v, fault, n) = match prepare(&state, Vendor::Anthropic, &headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let model = v["model"].as_str().unwrap_or_default().to_string();
    let mut p = scripted(&state, &v, plan(Vendor::Anthropic, &v, state.honour_tool_choice.load(Ordering::Relaxed)));
    (p.cache_read, p.cache_written) = prompt_cache(&state, Vendor::Anthropic, &v);
    let id = format!("msg_mock_{n}");
    let stop = match (&p.end, p.tool_calls.is_empty()) {
        (_, false) => "tool_use",
        (End::Length, true) => "max_tokens",
        (End::StopSequence(_), true) => "stop_sequence",
        (End::Natural, true) => "end_turn",
    };
    let stop_sequence = match &p.end {
        End::StopSequence(s) => json!(s),
        _ => Value::Null,
    };

    if !v.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let content: Vec<Value> = if p.tool_calls.is_empty() {
            vec![json!({"type": "text", "text": p.text})]
        } else {
            p.tool_calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
                    json!({"type": "tool_use", "id": format!("toolu_mock_{n}_{i}"), "name": name, "input": input})
                })
                .collect()
        };
        let full = json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": stop_sequence,
            "usage": anthropic_usage(&p, p.output_tokens)
        });
        if let Some(r) = broken_body(fault, full.to_string()) {
            return r;
        }
        return axum::Json(full).into_response();
    }

    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = vec![Frame {
        data: ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": anthropic_usage(&p, 1)
            }}),
        ),
        content: false,
    }];
    if p.tool_calls.is_empty() {
        frames.push(Frame {
            data: ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            content: false,
        });
        frames.push(Frame { data: ev("ping", json!({"type": "ping"})), content: false });
        for piece in split_chunks(&p.text, state.cfg.chunks) {
            frames.push(Frame {
                data: ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                ),
                content: true,
            });
        }
        frames.push(Frame {
            data: ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            content: false,
        });
    } else {
        frames.push(Frame { data: ev("ping", json!({"type": "ping"})), content: false });
        for (i, (name, args)) in p.tool_calls.iter().enumerate() {
            frames.push(Frame {
                data: ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": format!("toolu_mock_{n}_{i}"), "name": name, "input": {}}}),
                ),
                content: i == 0,
            });
            for frag in split_chunks(args, state.cfg.chunks) {
                frames.push(Frame {
                    data: ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": frag}})),
                    content: true,
                });
            }
            frames.push(Frame {
                data: ev("content_block_stop", json!({"type": "content_block_stop", "index": i})),
                content: false,
            });
        }
    }
    frames.push(Frame {
        data: ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": stop_sequence}, "usage": {"output_tokens": p.output_tokens}}),
        ),
        content: false,
    });
    frames.push(Frame { data: ev("message_stop", json!({"type": "message_stop"})), content: false });
    sse_response(frames, state.delays().1, fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!(Fault::from_str("mock-error-429").unwrap(), Fault::Status(429));
        assert_eq!(Fault::from_str("503").unwrap(), Fault::Status(503));
        assert_eq!(Fault::from_str("disconnect").unwrap(), Fault::Disconnect);
        assert_eq!(Fault::from_str("mock-slow").unwrap(), Fault::Slow);
        assert!(Fault::from_str("mock-gpt").is_err());
        assert!(Fault::from_str("error-200").is_err());
    }

    #[test]
    fn chunks_cover_text() {
        let parts = split_chunks("Mock reply to: héllo 霧", 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), "Mock reply to: héllo 霧");
        assert_eq!(split_chunks("ab", 5), vec!["a", "b"]);
        assert_eq!(split_chunks("", 3), Vec::<String>::new());
    }

    #[test]
    fn cuts_replies_at_stops_and_limits() {
        let text = || "Mock reply to: is it  foggy tonight".to_string();
        let oa = json!({"stop": ["tonight", "foggy"], "max_completion_tokens": 50, "max_tokens": 1});
        assert_eq!(
            cut_reply(Vendor::OpenAi, &oa, text()),
            ("Mock reply to: is it  ".to_string(), End::StopSequence("foggy".into()))
        );
        let an = json!({"stop_sequences": ["nowhere"], "max_tokens": 5});
        assert_eq!(cut_reply(Vendor::Anthropic, &an, text()), ("Mock reply to: is it".to_string(), End::Length));
        assert_eq!(cut_reply(Vendor::Anthropic, &json!({"max_tokens": 7}), text()), (text(), End::Natural));
        assert_eq!(Fault::from_str("mock-stall").unwrap(), Fault::Stall);
    }

    #[test]
    fn placeholders_match_their_schema() {
        let schema = json!({"type": "object", "required": ["city", "temp", "days", "tags", "kind", "when", "inner", "x"],
        "properties": {
            "city": {"type": "string"}, "temp": {"type": "number"}, "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"enum": ["fog", "rain"]}, "when": {"type": ["null", "boolean"]},
            "inner": {"properties": {"ok": {"const": true}}, "required": ["ok"]},
            "x": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "optional": {"type": "string"}
        }});
        assert_eq!(
            placeholder(&schema),
            json!({"city": "example", "temp": 0, "days": 0, "tags": ["example", "example"], "kind": "fog",
                "when": false, "inner": {"ok": true}, "x": 0})
        );
        assert_eq!(placeholder(&json!({})), Value::Null);
    }

    #[test]
    fn anthropic_forced_tools_are_called() {
        let tools = json!([{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
            {"name": "answer", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]);
        let body = |text: &str, choice: Value| json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": text}], "tools": tools, "tool_choice": choice});
        let p = plan(Vendor::Anthropic, &body("hello", json!({"type": "tool", "name": "answer"})), true);
        assert_eq!(p.tool_calls, vec![("answer".to_string(), r#"{"n":0}"#.to_string())]);
        let p = plan(Vendor::Anthropic, &body("call tool lookup fog", json!({"type": "tool", "name": "lookup"})), true);
        assert_eq!(p.tool_calls, vec![("lookup".to_string(), r#"{"query":"fog"}"#.to_string())]);
        let p = plan(Vendor::Anthropic, &body("call tool lookup fog", json!({"type": "any"})), true);
        assert_eq!(p.tool_calls[0].0, "lookup");
        let p = plan(Vendor::Anthropic, &body("hello", json!({"type": "any"})), true);
        assert_eq!(p.tool_calls, vec![("answer".to_string(), r#"{"n":0}"#.to_string())]);
        assert!(plan(Vendor::Anthropic, &body("hello", json!({"type": "auto"})), true).tool_calls.is_empty());
        // Off (the default), a forced choice is answered like any other request.
        assert!(plan(Vendor::Anthropic, &body("hello", json!({"type": "tool", "name": "answer"})), false)
            .tool_calls
            .is_empty());
        // OpenAI requests are unchanged.
        assert!(plan(
            Vendor::OpenAi,
            &body("hello", json!({"type": "function", "function": {"name": "answer"}})),
            true
        )
        .tool_calls
        .is_empty());
    }

    #[test]
    fn plans_tool_calls() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "please call tool lookup fog rules"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]});
        let p = plan(Vendor::OpenAi, &body, false);
        assert_eq!(p.tool_calls, vec![("lookup".to_string(), r#"{"query":"fog rules"}"#.to_string())]);
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "call tool unknown x"}]});
        assert!(plan(Vendor::OpenAi, &body, false).tool_calls.is_empty());
    }
}
