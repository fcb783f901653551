//! Anthropic Messages API client.

use crate::error::ProviderError;
use crate::http;
use crate::provider::Provider;
use crate::types::{ChatEvent, ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use futures::StreamExt;
use gaia_core::types::{FinishReason, ImagePart, ModelInfo, Role, ToolCall, Usage};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Settings of an Anthropic provider.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// Registry name.
    pub name: String,
    /// Base URL without `/v1` (e.g. `https://api.anthropic.com`).
    pub base_url: String,
    /// API key sent as `x-api-key`.
    pub api_key: Option<String>,
    /// Models offered; empty means discover them from `GET /v1/models`.
    pub models: Vec<String>,
    /// `anthropic-version` header.
    pub version: String,
    /// `max_tokens` when the request sets none (the API requires it).
    pub default_max_tokens: u32,
    /// Read timeout (and total timeout of non-streamed calls).
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("models", &self.models)
            .field("version", &self.version)
            .finish()
    }
}

impl AnthropicConfig {
    /// A config named `anthropic` for `base_url` with the given key.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        AnthropicConfig {
            name: "anthropic".into(),
            base_url: base_url.into(),
            api_key,
            models: Vec::new(),
            version: "2023-06-01".into(),
            default_max_tokens: 4096,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Client for Anthropic's `/v1/messages`.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    cfg: AnthropicConfig,
    client: reqwest::Client,
}

impl AnthropicProvider {
    /// A client for `cfg`.
    pub fn new(cfg: AnthropicConfig) -> Self {
        let client = http::client(cfg.connect_timeout, cfg.timeout);
        AnthropicProvider { cfg, client }
    }

    fn headers(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let b = b.header("anthropic-version", &self.cfg.version);
        match &self.cfg.api_key {
            Some(k) => b.header("x-api-key", k),
            None => b,
        }
    }
}

/// Appends `block` to the last message if it has `role`, else starts a new message (the API wants
/// alternating roles).
fn push_block(messages: &mut Vec<Value>, role: &str, block: Value) {
    if let Some(last) = messages.last_mut() {
        if last["role"] == role {
            if let Some(a) = last["content"].as_array_mut() {
                a.push(block);
                return;
            }
        }
    }
    messages.push(json!({"role": role, "content": [block]}));
}

/// Translates OpenAI-style `tool_choice` to Anthropic's.
fn tool_choice(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" | "any" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            _ => None,
        },
        Value::Object(o) => {
            if let Some(name) = o.get("function").and_then(|f| f.get("name")) {
                Some(json!({"type": "tool", "name": name}))
            } else if o.get("type").and_then(Value::as_str).is_some() {
                Some(v.clone()) // already Anthropic's form
            } else {
                None
            }
        }
        _ => None,
    }
}

/// An Anthropic `image` content block.
fn image_block(i: &ImagePart) -> Value {
    match i {
        ImagePart::Base64 { media_type, data } => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        ImagePart::Url { url } => json!({"type": "image", "source": {"type": "url", "url": url}}),
        other => json!({"type": "image", "source": {"type": "url", "url": other.to_url()}}),
    }
}

/// The Anthropic request body for `req`.
pub fn request_body(req: &ChatRequest, stream: bool, default_max_tokens: u32) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System => system.push(m.content.clone()),
            Role::User => {
                // Images first, then the text (Anthropic's advice for vision prompts).
                for i in &m.images {
                    push_block(&mut messages, "user", image_block(i));
                }
                if !m.content.is_empty() || m.images.is_empty() {
                    push_block(&mut messages, "user", json!({"type": "text", "text": m.content}));
                }
            }
            // Roles Anthropic has no place for are sent as user text.
            _ if m.role != Role::Assistant && m.role != Role::Tool => {
                push_block(&mut messages, "user", json!({"type": "text", "text": m.content}))
            }
            Role::Assistant => {
                if !m.content.is_empty() {
                    push_block(&mut messages, "assistant", json!({"type": "text", "text": m.content}));
                }
                for t in &m.tool_calls {
                    let input: Value = serde_json::from_str(&t.arguments).unwrap_or_else(|_| json!({}));
                    push_block(
                        &mut messages,
                        "assistant",
                        json!({"type": "tool_use", "id": t.id, "name": t.name, "input": input}),
                    );
                }
            }
            _ => push_block(
                &mut messages,
                "user",
                json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content}),
            ),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(default_max_tokens)));
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), crate::openai::f32_json(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if !req.tools.is_empty() {
        body.insert(
            "tools".into(),
            Value::Array(
                req.tools
                    .iter()
                    .map(|t| {
                        let mut o = Map::new();
                        o.insert("name".into(), json!(t.name));
                        if let Some(d) = &t.description {
                            o.insert("description".into(), json!(d));
                        }
                        o.insert("input_schema".into(), t.parameters.clone());
                        Value::Object(o)
                    })
                    .collect(),
            ),
        );
    }
    if let Some(tc) = req.tool_choice.as_ref().and_then(tool_choice) {
        body.insert("tool_choice".into(), tc);
    }
    if let Some(u) = &req.user {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

/// Maps Anthropic's `stop_reason`.
pub fn finish_reason(s: &str) -> FinishReason {
    match s {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

fn stream_error(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Stream { provider: provider.to_string(), message: message.into() }
}

fn usage_of(v: Option<&Value>) -> Usage {
    Usage {
        input_tokens: v.and_then(|u| u.get("input_tokens")).and_then(Value::as_u64).unwrap_or(0),
        output_tokens: v.and_then(|u| u.get("output_tokens")).and_then(Value::as_u64).unwrap_or(0),
    }
}

/// Parses a non-streamed `message` object.
pub fn parse_response(provider: &str, v: &Value) -> Result<ChatResponse, ProviderError> {
    if v.get("type").and_then(Value::as_str) == Some("error") {
        let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
        return Err(stream_error(provider, msg));
    }
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| stream_error(provider, "no content"))?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                name: b.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                arguments: b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
            }),
            _ => {}
        }
    }
    Ok(ChatResponse {
        id: v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        model: v.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
        content,
        tool_calls,
        finish_reason: finish_reason(v.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn")),
        usage: usage_of(v.get("usage")),
    })
}

/// Incremental parser of Anthropic's streaming events.
#[derive(Debug, Default)]
pub struct EventParser {
    /// Content-block index → tool-call index.
    tool_blocks: HashMap<u64, u32>,
    usage: Usage,
    done: bool,
}

impl EventParser {
    /// Parses one event (`event:` name and `data:` JSON).
    pub fn push(&mut self, provider: &str, event: &str, data: &str) -> Result<Vec<ChatEvent>, ProviderError> {
        let v: Value =
            serde_json::from_str(data).map_err(|e| stream_error(provider, format!("malformed stream event: {e}")))?;
        let kind = if event.is_empty() { v.get("type").and_then(Value::as_str).unwrap_or_default() } else { event };
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let m = v.get("message");
                self.usage = usage_of(m.and_then(|m| m.get("usage")));
                out.push(ChatEvent::Start {
                    id: m.and_then(|m| m.get("id")).and_then(Value::as_str).unwrap_or_default().to_string(),
                    model: m.and_then(|m| m.get("model")).and_then(Value::as_str).unwrap_or_default().to_string(),
                });
            }
            "content_block_start" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block");
                match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tool_blocks.len() as u32;
                        self.tool_blocks.insert(idx, n);
                        out.push(ChatEvent::ToolCallDelta {
                            index: n,
                            id: block.and_then(|b| b.get("id")).and_then(Value::as_str).map(str::to_string),
                            name: block.and_then(|b| b.get("name")).and_then(Value::as_str).map(str::to_string),
                            arguments: String::new(),
                        });
                    }
                    Some("text") => {
                        let t = block.and_then(|b| b.get("text")).and_then(Value::as_str).unwrap_or_default();
                        if !t.is_empty() {
                            out.push(ChatEvent::TextDelta(t.to_string()));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta");
                match d.and_then(|d| d.get("type")).and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = d.and_then(|d| d.get("text")).and_then(Value::as_str).unwrap_or_default();
                        out.push(ChatEvent::TextDelta(t.to_string()));
                    }
                    Some("input_json_delta") => {
                        let index = *self
                            .tool_blocks
                            .get(&idx)
                            .ok_or_else(|| stream_error(provider, "input_json_delta for an unknown block"))?;
                        let part = d.and_then(|d| d.get("partial_json")).and_then(Value::as_str).unwrap_or_default();
                        out.push(ChatEvent::ToolCallDelta { index, id: None, name: None, arguments: part.to_string() });
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                let u = usage_of(v.get("usage"));
                if u.output_tokens > 0 {
                    self.usage.output_tokens = u.output_tokens;
                }
                if u.input_tokens > 0 {
                    self.usage.input_tokens = u.input_tokens;
                }
                out.push(ChatEvent::Usage(self.usage));
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(ChatEvent::Finish(finish_reason(r)));
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(stream_error(provider, msg));
            }
            _ => {} // ping, content_block_stop, and future event types
        }
        Ok(out)
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        if !self.cfg.models.is_empty() {
            return Ok(self.cfg.models.iter().map(|m| ModelInfo::new(m.clone(), self.cfg.name.clone())).collect());
        }
        let b = self.headers(self.client.get(http::join(&self.cfg.base_url, "v1/models"))).timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(data
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(|id| ModelInfo::new(id, self.cfg.name.clone()))
            .collect())
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let b = self
            .headers(self.client.post(http::join(&self.cfg.base_url, "v1/messages")))
            .json(&request_body(req, false, self.cfg.default_max_tokens))
            .timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        parse_response(&self.cfg.name, &v)
    }

    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let b = self.headers(self.client.post(http::join(&self.cfg.base_url, "v1/messages"))).json(&request_body(
            req,
            true,
            self.cfg.default_max_tokens,
        ));
        let resp = http::send(&self.cfg.name, b).await?;
        let name = self.cfg.name.clone();
        let mut events = Box::pin(http::sse(&name, resp));
        let s = async_stream::try_stream! {
            let mut parser = EventParser::default();
            while let Some(ev) = events.next().await {
                let ev = ev?;
                for out in parser.push(&name, &ev.event, &ev.data)? {
                    yield out;
                }
                if parser.is_done() {
                    break;
                }
            }
            if !parser.is_done() {
                Err(stream_error(&name, "stream ended before message_stop"))?;
            }
        };
        Ok(Box::pin(s))
    }

    async fn health(&self) -> ProviderHealth {
        let start = Instant::now();
        let b =
            self.headers(self.client.get(http::join(&self.cfg.base_url, "v1/models"))).timeout(Duration::from_secs(10));
        let r = http::send(&self.cfg.name, b).await;
        ProviderHealth {
            provider: self.cfg.name.clone(),
            ok: r.is_ok(),
            latency_ms: start.elapsed().as_millis() as u64,
            message: r.err().map(|e| e.to_string()),
        }
    }
}
