//! OpenAI Chat Completions client; also serves any OpenAI-compatible server (Ollama, vLLM, LM Studio…)
//! through its base URL.

use crate::error::ProviderError;
use crate::http;
use crate::provider::Provider;
use crate::types::{ChatEvent, ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use futures::StreamExt;
use gaia_core::types::{FinishReason, ModelInfo, Role, ToolCall, Usage};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Settings of an OpenAI-format provider.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Registry name (`openai`, `ollama`, …).
    pub name: String,
    /// Base URL including `/v1` (e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`).
    pub base_url: String,
    /// API key sent as `Authorization: Bearer`; `None` for servers that need none.
    pub api_key: Option<String>,
    /// Models offered; empty means discover them from `GET /models`.
    pub models: Vec<String>,
    /// Total time a call may take, streamed or not (also the longest silence between two reads).
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("models", &self.models)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAiConfig {
    /// A config named `openai` for `base_url` with the given key and a 120 s timeout.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        OpenAiConfig {
            name: "openai".into(),
            base_url: base_url.into(),
            api_key,
            models: Vec::new(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Client for OpenAI's `/chat/completions`.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    cfg: OpenAiConfig,
    client: reqwest::Client,
}

impl OpenAiProvider {
    /// A client for `cfg`.
    pub fn new(cfg: OpenAiConfig) -> Self {
        let client = http::client(cfg.connect_timeout, cfg.timeout);
        OpenAiProvider { cfg, client }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.auth(self.client.post(http::join(&self.cfg.base_url, path)))
    }

    fn auth(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.api_key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }
}

/// The OpenAI request body for `req`.
pub fn request_body(req: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let mut o = Map::new();
            o.insert("role".into(), json!(m.role.as_str()));
            if m.role == Role::Assistant && !m.tool_calls.is_empty() {
                o.insert("content".into(), if m.content.is_empty() { Value::Null } else { json!(m.content) });
                o.insert(
                    "tool_calls".into(),
                    Value::Array(
                        m.tool_calls
                            .iter()
                            .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}))
                            .collect(),
                    ),
                );
            } else if !m.images.is_empty() {
                // Vision input: an array of parts, text first.
                let mut parts = Vec::with_capacity(m.images.len() + 1);
                if !m.content.is_empty() {
                    parts.push(json!({"type": "text", "text": m.content}));
                }
                parts.extend(m.images.iter().map(|i| json!({"type": "image_url", "image_url": {"url": i.to_url()}})));
                o.insert("content".into(), Value::Array(parts));
            } else {
                o.insert("content".into(), json!(m.content));
            }
            if let Some(id) = &m.tool_call_id {
                o.insert("tool_call_id".into(), json!(id));
            }
            Value::Object(o)
        })
        .collect();
    let mut body = Map::new();
    // Pass-through fields first, so explicit settings below win.
    for (k, v) in &req.extra {
        body.insert(k.clone(), v.clone());
    }
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), f32_json(t));
    }
    if let Some(t) = req.max_tokens {
        // A client that named the limit `max_completion_tokens` (which OpenAI's reasoning models
        // require) has it passed through in `extra`: keep that name, with the request's value.
        let key = if body.contains_key("max_completion_tokens") { "max_completion_tokens" } else { "max_tokens" };
        body.insert(key.into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), f32_json(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if !req.tools.is_empty() {
        body.insert(
            "tools".into(),
            Value::Array(
                req.tools
                    .iter()
                    .map(|t| {
                        let mut f = Map::new();
                        f.insert("name".into(), json!(t.name));
                        if let Some(d) = &t.description {
                            f.insert("description".into(), json!(d));
                        }
                        f.insert("parameters".into(), t.parameters.clone());
                        json!({"type": "function", "function": f})
                    })
                    .collect(),
            ),
        );
    }
    if let Some(tc) = &req.tool_choice {
        body.insert("tool_choice".into(), tc.clone());
    }
    if let Some(u) = &req.user {
        body.insert("user".into(), json!(u));
    }
    body.insert("stream".into(), json!(stream));
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    } else {
        body.remove("stream_options");
    }
    Value::Object(body)
}

/// Maps OpenAI's `finish_reason`.
pub fn finish_reason(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

fn stream_error(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Stream { provider: provider.to_string(), message: message.into() }
}

/// Parses a non-streamed `chat.completion` object.
pub fn parse_response(provider: &str, v: &Value) -> Result<ChatResponse, ProviderError> {
    if let Some(e) = v.get("error") {
        let msg = e.get("message").and_then(Value::as_str).unwrap_or("unknown error");
        return Err(stream_error(provider, msg));
    }
    let choice =
        v.get("choices").and_then(|c| c.get(0)).ok_or_else(|| stream_error(provider, "response has no choices"))?;
    let msg = choice.get("message").ok_or_else(|| stream_error(provider, "choice has no message"))?;
    let tool_calls = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| ToolCall {
                    id: t.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    name: t.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                    arguments: t.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        id: v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        model: v.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
        content: msg.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
        tool_calls,
        finish_reason: finish_reason(choice.get("finish_reason").and_then(Value::as_str).unwrap_or("stop")),
        usage: usage(v).unwrap_or_default(),
    })
}

/// Incremental parser of an OpenAI `chat.completion.chunk` stream (one `data:` payload at a time).
#[derive(Debug, Default)]
pub struct ChunkParser {
    started: bool,
    done: bool,
}

impl ChunkParser {
    /// Parses one `data:` payload into events. `[DONE]` marks the end.
    pub fn push(&mut self, provider: &str, data: &str) -> Result<Vec<ChatEvent>, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| stream_error(provider, format!("malformed stream event: {e}")))?;
        if let Some(e) = v.get("error") {
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(stream_error(provider, msg));
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(ChatEvent::Start {
                id: v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                model: v.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
            });
        }
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                let delta = c.get("delta");
                if let Some(t) = delta.and_then(|d| d.get("content")).and_then(Value::as_str) {
                    if !t.is_empty() {
                        out.push(ChatEvent::TextDelta(t.to_string()));
                    }
                }
                if let Some(tcs) = delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array) {
                    for (pos, tc) in tcs.iter().enumerate() {
                        out.push(ChatEvent::ToolCallDelta {
                            index: tc.get("index").and_then(Value::as_u64).unwrap_or(pos as u64) as u32,
                            id: tc.get("id").and_then(Value::as_str).map(str::to_string),
                            name: tc.pointer("/function/name").and_then(Value::as_str).map(str::to_string),
                            arguments: tc
                                .pointer("/function/arguments")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        });
                    }
                }
                if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                    out.push(ChatEvent::Finish(finish_reason(f)));
                }
            }
        }
        if let Some(u) = usage(&v) {
            out.push(ChatEvent::Usage(u));
        }
        Ok(out)
    }

    /// Whether `[DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        if !self.cfg.models.is_empty() {
            return Ok(self.cfg.models.iter().map(|m| ModelInfo::new(m.clone(), self.cfg.name.clone())).collect());
        }
        let b = self.auth(self.client.get(http::join(&self.cfg.base_url, "models"))).timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(data
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(|id| ModelInfo::new(id, self.cfg.name.clone()))
            .collect())
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let b = self.post("chat/completions").json(&request_body(req, false)).timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        parse_response(&self.cfg.name, &v)
    }

    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        // The timeout covers the whole stream: one still running then ends with a timeout error.
        let b = self.post("chat/completions").json(&request_body(req, true)).timeout(self.cfg.timeout);
        let resp = http::send(&self.cfg.name, b).await?;
        let name = self.cfg.name.clone();
        let mut events = Box::pin(http::sse(&name, resp));
        let s = async_stream::try_stream! {
            let mut parser = ChunkParser::default();
            while let Some(ev) = events.next().await {
                let ev = ev?;
                for out in parser.push(&name, &ev.data)? {
                    yield out;
                }
                if parser.is_done() {
                    break;
                }
            }
            if !parser.is_done() {
                Err(stream_error(&name, "stream ended before [DONE]"))?;
            }
        };
        Ok(Box::pin(s))
    }

    async fn health(&self) -> ProviderHealth {
        let start = Instant::now();
        let b = self.auth(self.client.get(http::join(&self.cfg.base_url, "models"))).timeout(Duration::from_secs(10));
        let r = http::send(&self.cfg.name, b).await;
        ProviderHealth {
            provider: self.cfg.name.clone(),
            ok: r.is_ok(),
            latency_ms: start.elapsed().as_millis() as u64,
            message: r.err().map(|e| e.to_string()),
        }
    }
}

/// An `f32` as the JSON number that prints like it (`0.3`, not `0.30000001192092896`, which a plain
/// widening to `f64` would give).
pub(crate) fn f32_json(v: f32) -> Value {
    v.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
}
