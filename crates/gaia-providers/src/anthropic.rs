//! Anthropic Messages API client.

use crate::compat::openai::ResponseFormat;
use crate::error::ProviderError;
use crate::http;
use crate::lanes::{ClientSettings, Lanes};
use crate::provider::Provider;
use crate::types::{ChatEvent, ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use futures::StreamExt;
use gaia_core::types::{FinishReason, ImagePart, ModelInfo, Role, ToolCall, ToolSpec, Usage};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    /// Total time a call may take, streamed or not (also the longest silence between two reads).
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Speak HTTP/2 from the first byte over plain HTTP (h2c with prior knowledge), for upstreams on
    /// a private network that do; `https` upstreams negotiate HTTP/2 on their own.
    pub http2_prior_knowledge: bool,
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
            http2_prior_knowledge: false,
        }
    }
}

/// Client for Anthropic's `/v1/messages`.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    cfg: AnthropicConfig,
    lanes: Arc<Lanes>,
}

impl AnthropicProvider {
    /// A client for `cfg`.
    pub fn new(cfg: AnthropicConfig) -> Self {
        let lanes = Arc::new(Lanes::new(ClientSettings {
            connect_timeout: cfg.connect_timeout,
            timeout: cfg.timeout,
            http2_prior_knowledge: cfg.http2_prior_knowledge,
        }));
        AnthropicProvider { cfg, lanes }
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

/// Most `cache_control` breakpoints Anthropic accepts in one request.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

/// Marks the last block of the last message as the end of a cacheable prefix.
fn mark_cache(messages: &mut [Value]) {
    if let Some(block) = messages.last_mut().and_then(|m| m["content"].as_array_mut()).and_then(|a| a.last_mut()) {
        block["cache_control"] = json!({"type": "ephemeral"});
    }
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

/// Name of the tool that carries a `json_schema` answer when the schema has no `name`.
pub const RESPONSE_TOOL: &str = "json_response";

/// What the system prompt gains for `response_format: {"type": "json_object"}` (Claude models have no
/// JSON mode: they are asked for it).
pub const JSON_OBJECT_INSTRUCTION: &str =
    "Reply with a single valid JSON object and nothing else: no text before or after it, no Markdown code fences.";

/// Description of the response tool when the schema has none.
const RESPONSE_TOOL_DESCRIPTION: &str =
    "Give your final answer by calling this tool: its input is the answer, a JSON object matching the schema.";

/// How an OpenAI `response_format` (in [`ChatRequest::extra`]) is met on a Claude model.
#[derive(Debug, Default)]
struct Structured {
    /// `json_schema`: one more tool whose input schema is the schema, and the `tool_choice` that makes
    /// Claude answer through it (that tool, or `any` when the request has tools of its own).
    tool: Option<(ToolSpec, Value)>,
    /// `json_object`: text for the system prompt.
    instruction: Option<&'static str>,
}

/// Plans the translation of `req`'s `response_format`, if any. A `json_schema` turns into a tool
/// unless the request's own `tool_choice` already demands a call of its tools (`required` or a named
/// function): that turn is a tool call, and the answer comes on a later turn.
fn structured_output(req: &ChatRequest) -> Result<Structured, ProviderError> {
    let Some(rf) = req.extra.get("response_format").filter(|v| !v.is_null()) else {
        return Ok(Structured::default());
    };
    let (name, description, mut schema) = match ResponseFormat::parse(rf)? {
        ResponseFormat::JsonObject => return Ok(Structured { tool: None, instruction: Some(JSON_OBJECT_INSTRUCTION) }),
        ResponseFormat::JsonSchema { name, description, schema, .. } => (name, description, schema),
        _ => return Ok(Structured::default()),
    };
    let name = name.unwrap_or_else(|| RESPONSE_TOOL.to_string());
    if req.tools.iter().any(|t| t.name == name) {
        return Err(ProviderError::InvalidRequest(format!(
            "`response_format.json_schema.name` `{name}` is also the name of one of `tools`; rename one of them \
             (for Claude models the schema becomes a tool)"
        )));
    }
    match schema.get("type") {
        None => schema["type"] = json!("object"),
        Some(t) if t == "object" => {}
        Some(t) => {
            return Err(ProviderError::InvalidRequest(format!(
                "Claude models need a `response_format.json_schema.schema` whose root is an object \
                 (\"type\": \"object\"), not {t}: wrap the value in a property of an object"
            )))
        }
    }
    let forced = json!({"type": "tool", "name": name});
    let choice = if req.tools.is_empty() {
        forced
    } else {
        match req
            .tool_choice
            .as_ref()
            .and_then(tool_choice)
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str)
        {
            // Claude may call the request's tools, or answer through the response tool.
            None | Some("auto") => json!({"type": "any"}),
            // No calls of the request's tools: only the answer.
            Some("none") => forced,
            _ => return Ok(Structured::default()),
        }
    };
    let spec = ToolSpec {
        name,
        description: Some(description.unwrap_or_else(|| RESPONSE_TOOL_DESCRIPTION.to_string())),
        parameters: schema.into(),
    };
    Ok(Structured { tool: Some((spec, choice)), instruction: None })
}

/// An Anthropic `tools` entry.
fn tool_json(t: &ToolSpec) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(t.name));
    if let Some(d) = &t.description {
        o.insert("description".into(), json!(d));
    }
    o.insert("input_schema".into(), (*t.parameters).clone());
    Value::Object(o)
}

/// The Anthropic request body for `req`.
///
/// An OpenAI `response_format` in [`ChatRequest::extra`] is translated: `json_schema` becomes one more
/// tool (named after the schema, or [`RESPONSE_TOOL`]) whose input schema is the schema, forced with
/// `tool_choice` (or `any` when the request has tools of its own and lets the model choose);
/// `json_object` adds [`JSON_OBJECT_INSTRUCTION`] to the system prompt; `text` changes nothing. Fails
/// with [`ProviderError::InvalidRequest`] on a `response_format` that cannot be met.
pub fn request_body(req: &ChatRequest, stream: bool, default_max_tokens: u32) -> Result<Value, ProviderError> {
    build_body(req, stream, default_max_tokens).map(|(body, _)| body)
}

/// [`request_body`], and the name of the response tool when one was added (whose call is the answer).
fn build_body(
    req: &ChatRequest,
    stream: bool,
    default_max_tokens: u32,
) -> Result<(Value, Option<String>), ProviderError> {
    let structured = structured_output(req)?;
    // System prompts, and whether each ends a cacheable prefix.
    let mut system: Vec<(String, bool)> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    // Prompt caching: at most MAX_CACHE_BREAKPOINTS marks, the system prompt's first, then the last
    // messages marked (the longest prefixes).
    let system_cached = req.messages.iter().any(|m| m.role == Role::System && m.cache);
    let marked = req.messages.iter().filter(|m| m.role != Role::System && m.cache).count();
    let mut skip_marks = marked.saturating_sub(MAX_CACHE_BREAKPOINTS - usize::from(system_cached));
    for m in &req.messages {
        let cache_this = m.cache && m.role != Role::System && {
            let keep = skip_marks == 0;
            skip_marks = skip_marks.saturating_sub(1);
            keep
        };
        match m.role {
            Role::System => system.push((m.content.clone(), m.cache)),
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
        if cache_this {
            mark_cache(&mut messages);
        }
    }
    if let Some(i) = structured.instruction {
        system.push((i.to_string(), false));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(default_max_tokens)));
    body.insert("messages".into(), Value::Array(messages));
    if system.iter().any(|(_, cached)| *cached) {
        // As blocks, the cached prefix ending with the last system prompt marked for caching.
        let last_cached = system.iter().rposition(|(_, cached)| *cached).unwrap_or(0);
        let blocks: Vec<Value> = system
            .iter()
            .enumerate()
            .map(|(i, (text, _))| {
                let mut b = json!({"type": "text", "text": text});
                if i == last_cached {
                    b["cache_control"] = json!({"type": "ephemeral"});
                }
                b
            })
            .collect();
        body.insert("system".into(), Value::Array(blocks));
    } else if !system.is_empty() {
        let texts: Vec<&str> = system.iter().map(|(t, _)| t.as_str()).collect();
        body.insert("system".into(), json!(texts.join("\n\n")));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), crate::openai::f32_json(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), crate::openai::f32_json(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    let mut tools: Vec<Value> = req.tools.iter().map(tool_json).collect();
    let mut choice = req.tool_choice.as_ref().and_then(tool_choice);
    let response_tool = structured.tool.map(|(spec, forced)| {
        // The response tool goes last, after the request's own.
        tools.push(tool_json(&spec));
        choice = Some(forced);
        spec.name
    });
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    // OpenAI's `parallel_tool_calls: false` is Anthropic's `disable_parallel_tool_use` (on a tool choice).
    if !req.tools.is_empty() && req.extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c.get("type").and_then(Value::as_str) != Some("none") {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(tc) = choice {
        body.insert("tool_choice".into(), tc);
    }
    if let Some(u) = &req.user {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Ok((Value::Object(body), response_tool))
}

/// Maps Anthropic's `stop_reason`.
pub fn finish_reason(s: &str) -> FinishReason {
    finish_reason_with(s, None)
}

/// Maps Anthropic's `stop_reason` with its `stop_sequence` (which sequence was hit, when one was).
pub fn finish_reason_with(s: &str, stop_sequence: Option<&str>) -> FinishReason {
    match s {
        "stop_sequence" => match stop_sequence {
            Some(seq) => FinishReason::StopSequence(seq.to_string()),
            None => FinishReason::Stop,
        },
        "end_turn" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

fn stream_error(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Stream { provider: provider.to_string(), message: message.into() }
}

/// Anthropic's usage object. Its `input_tokens` leaves out the prompt tokens read from the cache
/// (`cache_read_input_tokens`) and written to it (`cache_creation_input_tokens`); Gaia's counts them
/// all, the read ones again as cached and the written ones as cache writes.
fn usage_of(v: Option<&Value>) -> Usage {
    let n = |k: &str| v.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let written = n("cache_creation_input_tokens");
    Usage {
        input_tokens: n("input_tokens").saturating_add(cached).saturating_add(written),
        output_tokens: n("output_tokens"),
        cached_input_tokens: cached,
        cache_write_input_tokens: written,
    }
}

/// Parses a non-streamed `message` object.
pub fn parse_response(provider: &str, v: &Value) -> Result<ChatResponse, ProviderError> {
    parse_response_with(provider, v, None)
}

/// Parses a non-streamed `message` object answering a request that was given the response tool
/// `response_tool` (see [`request_body`]): a call of that tool is the answer, so its input becomes the
/// content (a JSON text, replacing any text) and, when no other tool was called, the finish reason is
/// [`FinishReason::Stop`]. Calls of other tools stay tool calls.
pub fn parse_response_with(
    provider: &str,
    v: &Value,
    response_tool: Option<&str>,
) -> Result<ChatResponse, ProviderError> {
    if v.get("type").and_then(Value::as_str) == Some("error") {
        let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
        return Err(stream_error(provider, msg));
    }
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| stream_error(provider, "no content"))?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    let mut answer = None;
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                let arguments = b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into());
                if answer.is_none() && response_tool == Some(name) {
                    answer = Some(arguments);
                } else {
                    tool_calls.push(ToolCall {
                        id: b.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                        name: name.to_string(),
                        arguments,
                    });
                }
            }
            _ => {}
        }
    }
    let mut finish_reason = finish_reason_with(
        v.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn"),
        v.get("stop_sequence").and_then(Value::as_str),
    );
    if let Some(a) = answer {
        content = a;
        if finish_reason == FinishReason::ToolCalls && tool_calls.is_empty() {
            finish_reason = FinishReason::Stop;
        }
    }
    Ok(ChatResponse {
        id: v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        model: v.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
        content,
        tool_calls,
        finish_reason,
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
    /// The response tool, whose call is the answer ([`EventParser::with_response_tool`]).
    response_tool: Option<String>,
    /// The content block of the response tool's call, once started.
    response_block: Option<u64>,
    /// Text held back while a response tool is expected (dropped when its call comes, else flushed).
    held: String,
}

impl EventParser {
    /// A parser for the answer to a request given the response tool `name` (see [`request_body`]):
    /// that tool's call is the answer, so its `input_json_delta` fragments come out as
    /// [`ChatEvent::TextDelta`]s, and `tool_use` as the stop reason reads [`FinishReason::Stop`] when
    /// no other tool was called. Calls of other tools stay tool calls. Text before the response tool's
    /// call is dropped (so the text is the JSON alone); text in an answer without that call is passed
    /// on at the end.
    pub fn with_response_tool(name: impl Into<String>) -> Self {
        EventParser { response_tool: Some(name.into()), ..Default::default() }
    }

    /// Passes text on, or holds it back while a response tool is expected.
    fn text(&mut self, t: &str, out: &mut Vec<ChatEvent>) {
        if self.response_tool.is_none() {
            out.push(ChatEvent::TextDelta(t.to_string()));
        } else if self.response_block.is_none() {
            self.held.push_str(t);
        }
    }

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
                // The input is counted up front (the output count here is only a placeholder).
                if self.usage.input_tokens > 0 {
                    out.push(ChatEvent::Usage(Usage { output_tokens: 0, ..self.usage }));
                }
            }
            "content_block_start" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block");
                let name = block.and_then(|b| b.get("name")).and_then(Value::as_str);
                match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("tool_use")
                        if self.response_block.is_none() && name.is_some() && name == self.response_tool.as_deref() =>
                    {
                        self.response_block = Some(idx);
                        self.held.clear();
                    }
                    Some("tool_use") => {
                        let n = self.tool_blocks.len() as u32;
                        self.tool_blocks.insert(idx, n);
                        out.push(ChatEvent::ToolCallDelta {
                            index: n,
                            id: block.and_then(|b| b.get("id")).and_then(Value::as_str).map(str::to_string),
                            name: name.map(str::to_string),
                            arguments: String::new(),
                        });
                    }
                    Some("text") => {
                        let t = block.and_then(|b| b.get("text")).and_then(Value::as_str).unwrap_or_default();
                        if !t.is_empty() {
                            self.text(t, &mut out);
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
                        self.text(t, &mut out);
                    }
                    Some("input_json_delta") if Some(idx) == self.response_block => {
                        let part = d.and_then(|d| d.get("partial_json")).and_then(Value::as_str).unwrap_or_default();
                        if !part.is_empty() {
                            out.push(ChatEvent::TextDelta(part.to_string()));
                        }
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
                if self.response_block.is_none() && !self.held.is_empty() {
                    // The model answered in text after all: pass it on.
                    out.push(ChatEvent::TextDelta(std::mem::take(&mut self.held)));
                }
                let u = usage_of(v.get("usage"));
                if u.output_tokens > 0 {
                    self.usage.output_tokens = u.output_tokens;
                }
                if u.input_tokens > 0 {
                    self.usage.input_tokens = u.input_tokens;
                    self.usage.cached_input_tokens = u.cached_input_tokens;
                    self.usage.cache_write_input_tokens = u.cache_write_input_tokens;
                }
                out.push(ChatEvent::Usage(self.usage));
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    let seq = v.pointer("/delta/stop_sequence").and_then(Value::as_str);
                    let mut f = finish_reason_with(r, seq);
                    if f == FinishReason::ToolCalls && self.response_block.is_some() && self.tool_blocks.is_empty() {
                        // The only call was the answer.
                        f = FinishReason::Stop;
                    }
                    out.push(ChatEvent::Finish(f));
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
        let b =
            self.headers(self.lanes.any().get(http::join(&self.cfg.base_url, "v1/models"))).timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(data
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(|id| ModelInfo::new(id, self.cfg.name.clone()))
            .collect())
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let (body, response_tool) = build_body(req, false, self.cfg.default_max_tokens)?;
        let (client, _ticket) = self.lanes.client();
        let b = self
            .headers(client.post(http::join(&self.cfg.base_url, "v1/messages")))
            .json(&body)
            .timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        parse_response_with(&self.cfg.name, &v, response_tool.as_deref())
    }

    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let (body, response_tool) = build_body(req, true, self.cfg.default_max_tokens)?;
        // The timeout covers the whole stream: one still running then ends with a timeout error.
        let (client, ticket) = self.lanes.client();
        let b = self
            .headers(client.post(http::join(&self.cfg.base_url, "v1/messages")))
            .json(&body)
            .timeout(self.cfg.timeout);
        let resp = http::send(&self.cfg.name, b).await?;
        let name = self.cfg.name.clone();
        let mut events = Box::pin(http::sse(&name, resp));
        let s = async_stream::try_stream! {
            let _lane = ticket;
            let mut parser = response_tool.map(EventParser::with_response_tool).unwrap_or_default();
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
        let b = self.headers(self.lanes.any().get(http::join(&self.cfg.base_url, "v1/models")));
        http::probe(&self.cfg.name, b).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gaia_core::types::{ChatMessage, ToolSpec};

    #[test]
    fn prompt_cache_marks_are_sent_within_anthropics_limit_and_cached_usage_is_read() {
        let mut messages = vec![ChatMessage { cache: true, ..ChatMessage::system("lore") }];
        for i in 0..6 {
            let m =
                if i % 2 == 0 { ChatMessage::user(format!("u{i}")) } else { ChatMessage::assistant(format!("a{i}")) };
            messages.push(ChatMessage { cache: i > 0, ..m });
        }
        let body = request_body(&ChatRequest::new("c", messages), false, 100).unwrap();
        assert_eq!(body["system"], json!([{"type": "text", "text": "lore", "cache_control": {"type": "ephemeral"}}]));
        let marked: Vec<String> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["content"].as_array().unwrap().iter().any(|b| b.get("cache_control").is_some()))
            .map(|m| m["content"][0]["text"].as_str().unwrap().to_string())
            .collect();
        // Four marks at most: the system prompt's and the last three messages'.
        assert_eq!(marked, ["a3", "u4", "a5"]);
        // Without marks, the system prompt stays a string.
        let plain =
            request_body(&ChatRequest::new("c", vec![ChatMessage::system("s"), ChatMessage::user("u")]), false, 9);
        assert_eq!(plain.unwrap()["system"], "s");
        let u = usage_of(Some(&json!({"input_tokens": 10, "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 5, "output_tokens": 3})));
        assert_eq!(
            u,
            Usage { input_tokens: 1015, output_tokens: 3, cached_input_tokens: 1000, cache_write_input_tokens: 5 }
        );
    }

    #[test]
    fn parallel_tool_calls_off_is_disable_parallel_tool_use() {
        let mut req = ChatRequest::new("m", vec![ChatMessage::user("x")]);
        req.extra.insert("parallel_tool_calls".into(), json!(false));
        assert!(request_body(&req, false, 10).unwrap().get("tool_choice").is_none(), "no tools, no choice");
        req.tools.push(ToolSpec { name: "wx".into(), description: None, parameters: json!({"type": "object"}).into() });
        assert_eq!(
            request_body(&req, false, 10).unwrap()["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        req.tool_choice = Some(json!("required"));
        assert_eq!(
            request_body(&req, false, 10).unwrap()["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        req.tool_choice = Some(json!("none"));
        assert_eq!(request_body(&req, false, 10).unwrap()["tool_choice"], json!({"type": "none"}));
    }

    fn schema() -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    }

    fn wx() -> ToolSpec {
        ToolSpec { name: "wx".into(), description: None, parameters: json!({"type": "object"}).into() }
    }

    #[test]
    fn json_schema_becomes_a_forced_tool() {
        let mut req = ChatRequest::new("m", vec![ChatMessage::user("x")]);
        req.extra.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "weather", "schema": schema(), "strict": true}}),
        );
        let (body, tool) = build_body(&req, false, 10).unwrap();
        assert_eq!(tool.as_deref(), Some("weather"));
        assert_eq!(body["tools"][0]["name"], "weather");
        assert_eq!(body["tools"][0]["input_schema"], schema());
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "weather"}));
        assert!(body.get("response_format").is_none() && body.get("system").is_none(), "{body}");

        // Unnamed: the reserved name; an untyped root is an object.
        req.extra.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"schema": {"properties": {}}}}),
        );
        let (body, tool) = build_body(&req, false, 10).unwrap();
        assert_eq!(tool.as_deref(), Some(RESPONSE_TOOL));
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");

        // With the request's own tools: kept, and the model must call one of them or answer.
        req.tools.push(wx());
        let (body, tool) = build_body(&req, false, 10).unwrap();
        assert_eq!(tool.as_deref(), Some(RESPONSE_TOOL));
        assert_eq!(
            (body["tools"][0]["name"].as_str(), body["tools"][1]["name"].as_str()),
            (Some("wx"), Some(RESPONSE_TOOL))
        );
        assert_eq!(body["tool_choice"], json!({"type": "any"}));
        req.tool_choice = Some(json!("none"));
        assert_eq!(
            build_body(&req, false, 10).unwrap().0["tool_choice"],
            json!({"type": "tool", "name": RESPONSE_TOOL})
        );
        // A turn that must call the request's tools is left alone.
        for tc in [json!("required"), json!({"type": "function", "function": {"name": "wx"}})] {
            req.tool_choice = Some(tc);
            let (body, tool) = build_body(&req, false, 10).unwrap();
            assert_eq!(tool, None);
            assert_eq!(body["tools"].as_array().map(Vec::len), Some(1));
        }

        // Impossible ones are refused.
        req.extra.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "wx", "schema": schema()}}),
        );
        assert!(matches!(request_body(&req, false, 10), Err(ProviderError::InvalidRequest(m)) if m.contains("wx")));
        req.extra.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"schema": {"type": "array"}}}),
        );
        assert!(matches!(request_body(&req, false, 10), Err(ProviderError::InvalidRequest(m)) if m.contains("root")));
        req.extra.insert("response_format".into(), json!({"type": "yaml"}));
        assert!(matches!(request_body(&req, false, 10), Err(ProviderError::InvalidRequest(_))));
    }

    #[test]
    fn json_object_asks_in_the_system_prompt() {
        let mut req = ChatRequest::new("m", vec![ChatMessage::system("Be Mara."), ChatMessage::user("x")]);
        req.extra.insert("response_format".into(), json!({"type": "json_object"}));
        let body = request_body(&req, false, 10).unwrap();
        assert_eq!(body["system"], format!("Be Mara.\n\n{JSON_OBJECT_INSTRUCTION}"));
        assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
        req.extra.insert("response_format".into(), json!({"type": "text"}));
        assert_eq!(request_body(&req, false, 10).unwrap()["system"], "Be Mara.");
    }

    #[test]
    fn the_response_tool_call_is_the_answer() {
        let v = json!({"content": [{"type": "text", "text": "Here:"}, {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}],
            "stop_reason": "tool_use"});
        let r = parse_response_with("a", &v, Some("weather")).unwrap();
        assert_eq!((r.content.as_str(), r.finish_reason.clone()), (r#"{"city":"Oslo"}"#, FinishReason::Stop));
        assert!(r.tool_calls.is_empty());
        // Without it, the call is a tool call as usual.
        assert_eq!(parse_response("a", &v).unwrap().tool_calls[0].name, "weather");
        // With another tool called too, that one stays a call.
        let v = json!({"content": [{"type": "tool_use", "id": "t0", "name": "wx", "input": {}}, {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}],
            "stop_reason": "tool_use"});
        let r = parse_response_with("a", &v, Some("weather")).unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!((r.tool_calls.len(), r.content.as_str()), (1, r#"{"city":"Oslo"}"#));
    }

    #[test]
    fn the_response_tool_streams_as_text() {
        let run = |p: &mut EventParser, events: &[(&str, Value)]| -> Vec<ChatEvent> {
            events.iter().flat_map(|(n, d)| p.push("a", n, &d.to_string()).unwrap()).collect()
        };
        let start = |i: u64, name: &str| {
            (
                "content_block_start",
                json!({"index": i, "content_block": {"type": "tool_use", "id": format!("t{i}"), "name": name, "input": {}}}),
            )
        };
        let json_delta = |i: u64, part: &str| {
            ("content_block_delta", json!({"index": i, "delta": {"type": "input_json_delta", "partial_json": part}}))
        };
        let end = ("message_delta", json!({"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}));
        let mut p = EventParser::with_response_tool("weather");
        let evs = run(
            &mut p,
            &[
                ("content_block_start", json!({"index": 0, "content_block": {"type": "text", "text": ""}})),
                ("content_block_delta", json!({"index": 0, "delta": {"type": "text_delta", "text": "Sure."}})),
                start(1, "weather"),
                json_delta(1, "{\"city\""),
                json_delta(1, ": \"Oslo\"}"),
                end.clone(),
            ],
        );
        let text: String =
            evs.iter().filter_map(|e| if let ChatEvent::TextDelta(t) = e { Some(t.as_str()) } else { None }).collect();
        assert_eq!(text, r#"{"city": "Oslo"}"#, "{evs:?}");
        assert!(!evs.iter().any(|e| matches!(e, ChatEvent::ToolCallDelta { .. })));
        assert_eq!(evs.last(), Some(&ChatEvent::Finish(FinishReason::Stop)));

        // Another tool first: it keeps index 0 and the finish stays `tool_use`.
        let mut p = EventParser::with_response_tool("weather");
        let evs =
            run(&mut p, &[start(0, "wx"), json_delta(0, "{}"), start(1, "weather"), json_delta(1, "{}"), end.clone()]);
        assert!(matches!(&evs[0], ChatEvent::ToolCallDelta { index: 0, name: Some(n), .. } if n == "wx"));
        assert_eq!(evs.last(), Some(&ChatEvent::Finish(FinishReason::ToolCalls)));

        // A text answer without the call is passed on at the end.
        let mut p = EventParser::with_response_tool("weather");
        let evs = run(
            &mut p,
            &[
                ("content_block_delta", json!({"index": 0, "delta": {"type": "text_delta", "text": "no"}})),
                ("message_delta", json!({"delta": {"stop_reason": "end_turn"}})),
            ],
        );
        assert_eq!(evs[0], ChatEvent::TextDelta("no".into()));
        assert_eq!(evs.last(), Some(&ChatEvent::Finish(FinishReason::Stop)));
    }

    #[test]
    fn stop_sequences_are_named() {
        let v =
            json!({"content": [{"type": "text", "text": "a"}], "stop_reason": "stop_sequence", "stop_sequence": "END"});
        assert_eq!(parse_response("a", &v).unwrap().finish_reason, FinishReason::StopSequence("END".into()));
        let mut p = EventParser::default();
        let evs = p
            .push("a", "message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":3}}"#)
            .unwrap();
        assert_eq!(evs.last(), Some(&ChatEvent::Finish(FinishReason::StopSequence("END".into()))));
        assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop, "which one unknown");
        let evs = p
            .push("a", "message_start", r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":12,"output_tokens":1}}}"#)
            .unwrap();
        assert_eq!(evs[1], ChatEvent::Usage(Usage::new(12, 0)));
    }
}
