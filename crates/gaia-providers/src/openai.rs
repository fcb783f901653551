//! OpenAI Chat Completions client (with OpenAI's moderation, media and embedding endpoints); also
//! serves any OpenAI-compatible server (Ollama, vLLM, LM Studio…) through its base URL.

use crate::embeddings::{self, EmbeddingRequest, Embeddings};
use crate::error::ProviderError;
use crate::http;
use crate::lanes::{ClientSettings, Lanes, Ticket};
use crate::media::{self, GeneratedImage, ImageRequest, SpeechRequest, Transcription, TranscriptionRequest};
use crate::provider::Provider;
use crate::types::{ChatEvent, ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use futures::StreamExt;
use gaia_core::types::{FinishReason, ModelInfo, Role, ToolCall, Usage};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

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
    /// Speak HTTP/2 from the first byte over plain HTTP (h2c with prior knowledge), for upstreams on
    /// a private network that do; `https` upstreams negotiate HTTP/2 on their own.
    pub http2_prior_knowledge: bool,
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
            http2_prior_knowledge: false,
        }
    }
}

/// Client for OpenAI's `/chat/completions`.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    cfg: OpenAiConfig,
    lanes: Arc<Lanes>,
    /// `{base_url}/chat/completions`, parsed once (`None` when the base URL is not a URL: each call
    /// then fails with the client's error).
    chat_url: Option<reqwest::Url>,
}

impl OpenAiProvider {
    /// A client for `cfg`.
    pub fn new(cfg: OpenAiConfig) -> Self {
        let lanes = Arc::new(Lanes::new(ClientSettings {
            connect_timeout: cfg.connect_timeout,
            timeout: cfg.timeout,
            http2_prior_knowledge: cfg.http2_prior_knowledge,
        }));
        let chat_url = reqwest::Url::parse(&http::join(&cfg.base_url, "chat/completions")).ok();
        OpenAiProvider { cfg, lanes, chat_url }
    }

    /// The provider's connection lanes.
    #[cfg(test)]
    pub(crate) fn lanes(&self) -> &Lanes {
        &self.lanes
    }

    /// A `POST` to the chat endpoint, on a lane whose place the ticket holds.
    fn post_chat(&self) -> (reqwest::RequestBuilder, Ticket) {
        let (client, ticket) = self.lanes.client();
        let b = match &self.chat_url {
            Some(url) => client.post(url.clone()),
            None => client.post(http::join(&self.cfg.base_url, "chat/completions")),
        };
        (self.auth(b), ticket)
    }

    fn auth(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.api_key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }
}

/// The body of `req` in OpenAI's chat format, as JSON (exactly what the client sends, which it
/// serializes straight from the request).
pub fn request_body(req: &ChatRequest, stream: bool) -> Value {
    serde_json::to_value(Body { req, stream }).unwrap_or(Value::Null)
}

/// The body of a chat request in OpenAI's format, serialized straight from the request: nothing is
/// copied (tool schemas and message texts are written from where they are). Pass-through fields
/// (`extra`) come first; the request's own settings replace theirs.
pub(crate) struct Body<'a> {
    pub(crate) req: &'a ChatRequest,
    pub(crate) stream: bool,
}

impl Body<'_> {
    /// The key `max_tokens` is sent under: `max_completion_tokens` when the client named it so
    /// (OpenAI's reasoning models require it), else `max_tokens`.
    fn max_tokens_key(&self) -> &'static str {
        if self.req.extra.contains_key("max_completion_tokens") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        }
    }

    /// Whether the request's own settings write `key` (so a pass-through field of that name is left out).
    fn owns(&self, key: &str) -> bool {
        let r = self.req;
        match key {
            "model" | "messages" | "stream" | "stream_options" => true,
            "temperature" => r.temperature.is_some(),
            "max_tokens" | "max_completion_tokens" => r.max_tokens.is_some() && key == self.max_tokens_key(),
            "top_p" => r.top_p.is_some(),
            "stop" => !r.stop.is_empty(),
            "tools" => !r.tools.is_empty(),
            "tool_choice" => r.tool_choice.is_some(),
            "user" => r.user.is_some(),
            _ => false,
        }
    }
}

impl serde::Serialize for Body<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.req;
        let mut m = s.serialize_map(None)?;
        for (k, v) in &r.extra {
            if !self.owns(k) {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("model", &r.model)?;
        m.serialize_entry("messages", &Messages(&r.messages))?;
        if let Some(t) = r.temperature {
            m.serialize_entry("temperature", &f32_json(t))?;
        }
        if let Some(t) = r.max_tokens {
            m.serialize_entry(self.max_tokens_key(), &t)?;
        }
        if let Some(p) = r.top_p {
            m.serialize_entry("top_p", &f32_json(p))?;
        }
        if !r.stop.is_empty() {
            m.serialize_entry("stop", &r.stop)?;
        }
        if !r.tools.is_empty() {
            m.serialize_entry("tools", &Tools(&r.tools))?;
        }
        if let Some(tc) = &r.tool_choice {
            m.serialize_entry("tool_choice", tc)?;
        }
        if let Some(u) = &r.user {
            m.serialize_entry("user", u)?;
        }
        m.serialize_entry("stream", &self.stream)?;
        if self.stream {
            m.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        m.end()
    }
}

/// Messages in OpenAI's format, written from the request's.
struct Messages<'a>(&'a [gaia_core::types::ChatMessage]);

impl serde::Serialize for Messages<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for msg in self.0 {
            seq.serialize_element(&Message(msg))?;
        }
        return seq.end();

        struct Message<'a>(&'a gaia_core::types::ChatMessage);
        impl serde::Serialize for Message<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let msg = self.0;
                let mut o = s.serialize_map(None)?;
                o.serialize_entry("role", msg.role.as_str())?;
                if msg.role == Role::Assistant && !msg.tool_calls.is_empty() {
                    if msg.content.is_empty() {
                        o.serialize_entry("content", &Value::Null)?;
                    } else {
                        o.serialize_entry("content", &msg.content)?;
                    }
                    let calls: Vec<Value> = msg
                        .tool_calls
                        .iter()
                        .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}))
                        .collect();
                    o.serialize_entry("tool_calls", &calls)?;
                } else if !msg.images.is_empty() {
                    // Vision input: an array of parts, text first.
                    let mut parts = Vec::with_capacity(msg.images.len() + 1);
                    if !msg.content.is_empty() {
                        parts.push(json!({"type": "text", "text": msg.content}));
                    }
                    parts.extend(
                        msg.images.iter().map(|i| json!({"type": "image_url", "image_url": {"url": i.to_url()}})),
                    );
                    o.serialize_entry("content", &parts)?;
                } else {
                    o.serialize_entry("content", &msg.content)?;
                }
                if let Some(id) = &msg.tool_call_id {
                    o.serialize_entry("tool_call_id", id)?;
                }
                o.end()
            }
        }
    }
}

/// Tool definitions in OpenAI's format (`{type: "function", function: {name, description?,
/// parameters}}`), the schemas written where they are.
struct Tools<'a>(&'a [gaia_core::types::ToolSpec]);

impl serde::Serialize for Tools<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        #[derive(serde::Serialize)]
        struct Function<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
            parameters: &'a Value,
        }
        #[derive(serde::Serialize)]
        struct Tool<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for t in self.0 {
            let function = Function { name: &t.name, description: t.description.as_deref(), parameters: &t.parameters };
            seq.serialize_element(&Tool { kind: "function", function })?;
        }
        seq.end()
    }
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
        // Prompt caching is automatic at OpenAI; what was read from the cache is reported here.
        cached_input_tokens: u.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0),
        // OpenAI does not bill writing its cache.
        cache_write_input_tokens: 0,
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
        let b = self.auth(self.lanes.any().get(http::join(&self.cfg.base_url, "models"))).timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(data
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(|id| ModelInfo::new(id, self.cfg.name.clone()))
            .collect())
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let (b, _ticket) = self.post_chat();
        let b = b.json(&Body { req, stream: false }).timeout(self.cfg.timeout);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        parse_response(&self.cfg.name, &v)
    }

    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        // The timeout covers the whole stream: one still running then ends with a timeout error.
        let (b, ticket) = self.post_chat();
        let b = b.json(&Body { req, stream: true }).timeout(self.cfg.timeout);
        let resp = http::send(&self.cfg.name, b).await?;
        let name = self.cfg.name.clone();
        let mut events = Box::pin(http::sse(&name, resp));
        let s = async_stream::try_stream! {
            let _lane = ticket;
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

    async fn moderate(&self, model: &str, input: &str) -> Result<crate::types::Moderation, ProviderError> {
        let url = http::join(&self.cfg.base_url, "moderations");
        let b = self.auth(self.lanes.any().post(url)).json(&json!({"model": model, "input": input}));
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b.timeout(self.cfg.timeout)).await?).await?;
        let result =
            v.pointer("/results/0").ok_or_else(|| stream_error(&self.cfg.name, "moderation without results"))?;
        let categories = result
            .get("categories")
            .and_then(Value::as_object)
            .map(|c| c.iter().filter(|(_, on)| on.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        Ok(crate::types::Moderation {
            flagged: result.get("flagged").and_then(Value::as_bool).unwrap_or(false),
            categories,
        })
    }

    async fn generate_images(&self, req: &ImageRequest) -> Result<Vec<GeneratedImage>, ProviderError> {
        let name = &self.cfg.name;
        let mut body = json!({"model": req.model, "prompt": req.prompt, "n": req.n.max(1)});
        // GPT Image models always answer in base64 and refuse the parameter; DALL·E and compatible
        // servers answer with a URL unless asked.
        if !req.model.starts_with("gpt-image") {
            body["response_format"] = json!("b64_json");
        }
        for (k, v) in [("size", &req.size), ("quality", &req.quality), ("style", &req.style), ("user", &req.user)] {
            if let Some(v) = v {
                body[k] = json!(v);
            }
        }
        let b = self.auth(self.lanes.any().post(http::join(&self.cfg.base_url, "images/generations"))).json(&body);
        let resp = http::send(name, b.timeout(self.cfg.timeout)).await?;
        let raw = media::read_bounded(name, resp, media::MAX_MEDIA_BYTES * 2).await?;
        let v: Value = serde_json::from_slice(&raw).map_err(|e| stream_error(name, format!("invalid JSON: {e}")))?;
        let data =
            v.get("data").and_then(Value::as_array).ok_or_else(|| stream_error(name, "no `data` in the answer"))?;
        let mut images = Vec::with_capacity(data.len());
        for d in data.iter().take(media::MAX_IMAGES as usize) {
            let revised_prompt = d.get("revised_prompt").and_then(Value::as_str).map(str::to_string);
            let bytes = if let Some(b64) = d.get("b64_json").and_then(Value::as_str) {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| stream_error(name, format!("invalid base64 image: {e}")))?;
                if decoded.len() > media::MAX_MEDIA_BYTES {
                    return Err(stream_error(name, "an image is too large"));
                }
                bytes::Bytes::from(decoded)
            } else if let Some(url) = d.get("url").and_then(Value::as_str) {
                self.download(url, media::MAX_MEDIA_BYTES).await?
            } else {
                return Err(stream_error(name, "an image has neither `b64_json` nor `url`"));
            };
            images.push(GeneratedImage { bytes, revised_prompt });
        }
        if images.is_empty() {
            return Err(stream_error(name, "the provider returned no image"));
        }
        Ok(images)
    }

    async fn speech(&self, req: &SpeechRequest) -> Result<bytes::Bytes, ProviderError> {
        let mut body = json!({"model": req.model, "input": req.input, "voice": req.voice,
                              "response_format": req.format.as_str()});
        if let Some(s) = req.speed {
            body["speed"] = json!(f32_json(s));
        }
        if let Some(i) = &req.instructions {
            body["instructions"] = json!(i);
        }
        let b = self.auth(self.lanes.any().post(http::join(&self.cfg.base_url, "audio/speech"))).json(&body);
        let resp = http::send(&self.cfg.name, b.timeout(self.cfg.timeout)).await?;
        let audio = media::read_bounded(&self.cfg.name, resp, media::MAX_MEDIA_BYTES).await?;
        if audio.is_empty() {
            return Err(stream_error(&self.cfg.name, "the provider returned no audio"));
        }
        Ok(audio)
    }

    async fn embed(&self, req: &EmbeddingRequest) -> Result<Embeddings, ProviderError> {
        req.validate()?;
        let name = &self.cfg.name;
        let b = self.auth(self.lanes.any().post(http::join(&self.cfg.base_url, "embeddings")));
        let b = b.json(&EmbeddingBody::of(req)).timeout(self.cfg.timeout);
        let resp = http::send(name, b).await?;
        let raw = media::read_bounded(name, resp, req.answer_limit()).await?;
        parse_embeddings(name, req, &raw)
    }

    async fn transcribe(&self, req: &TranscriptionRequest) -> Result<Transcription, ProviderError> {
        let name = &self.cfg.name;
        let part = reqwest::multipart::Part::bytes(req.audio.to_vec()).file_name(req.file_name.clone());
        // `verbose_json` reports the audio's length (what transcription is priced by); models that only
        // answer `json` report it in `usage.seconds`, when at all.
        let verbose = req.model.starts_with("whisper");
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", req.model.clone())
            .text("response_format", if verbose { "verbose_json" } else { "json" });
        if let Some(l) = &req.language {
            form = form.text("language", l.clone());
        }
        if let Some(p) = &req.prompt {
            form = form.text("prompt", p.clone());
        }
        if let Some(t) = req.temperature {
            form = form.text("temperature", f32_json(t).to_string());
        }
        let b =
            self.auth(self.lanes.any().post(http::join(&self.cfg.base_url, "audio/transcriptions"))).multipart(form);
        let resp = http::send(name, b.timeout(self.cfg.timeout)).await?;
        let raw = media::read_bounded(name, resp, media::MAX_MEDIA_BYTES).await?;
        let v: Value = serde_json::from_slice(&raw).map_err(|e| stream_error(name, format!("invalid JSON: {e}")))?;
        let text =
            v.get("text").and_then(Value::as_str).ok_or_else(|| stream_error(name, "no `text` in the answer"))?;
        let seconds = v
            .get("duration")
            .and_then(Value::as_f64)
            .or_else(|| v.pointer("/usage/seconds").and_then(Value::as_f64))
            .or_else(|| media::wav_seconds(&req.audio));
        Ok(Transcription {
            text: text.to_string(),
            seconds,
            language: v.get("language").and_then(Value::as_str).map(str::to_string),
        })
    }

    async fn download(&self, url: &str, max: usize) -> Result<bytes::Bytes, ProviderError> {
        // No key goes with a download: the file may be on another host than the API.
        let url = media::download_url(&self.cfg.name, &self.cfg.base_url, url)?;
        media::download(&self.cfg.name, self.lanes.any().get(url).timeout(self.cfg.timeout), max).await
    }

    async fn health(&self) -> ProviderHealth {
        let b = self.auth(self.lanes.any().get(http::join(&self.cfg.base_url, "models")));
        http::probe(&self.cfg.name, b).await
    }
}

/// The body of an embedding request in OpenAI's format: `{"model", "input": [..], "encoding_format":
/// "float", "dimensions"?, "user"?}`.
#[derive(serde::Serialize)]
struct EmbeddingBody<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

impl<'a> EmbeddingBody<'a> {
    fn of(r: &'a EmbeddingRequest) -> Self {
        EmbeddingBody {
            model: &r.model,
            input: &r.input,
            encoding_format: "float",
            dimensions: r.dimensions,
            user: r.user.as_deref(),
        }
    }
}

/// OpenAI's embedding answer, as far as Gaia reads it.
#[derive(serde::Deserialize)]
struct EmbeddingAnswer {
    #[serde(default)]
    data: Option<Vec<EmbeddingItem>>,
    #[serde(default)]
    usage: Option<EmbeddingUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<u64>,
    embedding: Vector,
}

#[derive(serde::Deserialize)]
struct EmbeddingUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

/// One embedding as the answer carries it: an array of numbers, or (`encoding_format: "base64"`) the
/// base64 of its little-endian `f32`s. Read straight into `f32`s, never through a JSON tree.
struct Vector(Result<Vec<f32>, String>);

impl<'de> serde::Deserialize<'de> for Vector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vector;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of numbers or a base64 string")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vector, A::Error> {
                let max = embeddings::MAX_EMBEDDING_DIMENSIONS;
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max));
                let mut len = 0usize;
                // Numbers past the bound are read (the answer's size is bounded) but not kept.
                while let Some(x) = seq.next_element::<f64>()? {
                    len += 1;
                    if len <= max {
                        out.push(x as f32);
                    }
                }
                if len > max {
                    return Ok(Vector(Err(format!("an embedding has {len} numbers; at most {max} are taken"))));
                }
                Ok(Vector(Ok(out)))
            }
            fn visit_str<E: serde::de::Error>(self, b64: &str) -> Result<Vector, E> {
                use base64::Engine as _;
                // Four bytes a number: a longer string is refused before it is decoded.
                if b64.len() > (embeddings::MAX_EMBEDDING_DIMENSIONS * 4).div_ceil(3) * 4 {
                    return Ok(Vector(Err(format!(
                        "an embedding has more than {} numbers",
                        embeddings::MAX_EMBEDDING_DIMENSIONS
                    ))));
                }
                let bytes = match base64::engine::general_purpose::STANDARD.decode(b64) {
                    Ok(b) => b,
                    Err(e) => return Ok(Vector(Err(format!("an embedding is invalid base64: {e}")))),
                };
                match gaia_core::vectors::vector_of_bytes(&bytes) {
                    Some(v) => Ok(Vector(Ok(v))),
                    None => Ok(Vector(Err(format!(
                        "a base64 embedding of {} bytes is not whole 4-byte floats, or holds a number that is not finite",
                        bytes.len()
                    )))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses OpenAI's answer to an embedding request (`{"data": [{"index", "embedding"}], "usage":
/// {"prompt_tokens"}}`; embeddings as numbers or base64): the vectors in the inputs' order. Refused
/// ([`ProviderError::Stream`]) unless every input has exactly one vector, under its own `index`, all
/// of one size (1 to [`embeddings::MAX_EMBEDDING_DIMENSIONS`], the requested `dimensions` when set),
/// every number finite.
pub(crate) fn parse_embeddings(
    provider: &str,
    req: &EmbeddingRequest,
    body: &[u8],
) -> Result<Embeddings, ProviderError> {
    let a: EmbeddingAnswer =
        serde_json::from_slice(body).map_err(|e| stream_error(provider, format!("invalid embedding answer: {e}")))?;
    let Some(data) = a.data else {
        let msg = a.error.as_ref().and_then(|e| e.get("message")).and_then(Value::as_str);
        return Err(stream_error(provider, msg.unwrap_or("no `data` in the embedding answer")));
    };
    let n = req.input.len();
    if data.len() != n {
        return Err(stream_error(provider, format!("the provider answered {} embeddings for {n} inputs", data.len())));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
    for (pos, item) in data.into_iter().enumerate() {
        // A compatible server that leaves `index` out answers in order.
        let i = item.index.unwrap_or(pos as _);
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| slots.get_mut(i))
            .ok_or_else(|| stream_error(provider, format!("embedding index {i} is out of range for {n} inputs")))?;
        if slot.is_some() {
            return Err(stream_error(provider, format!("embedding index {i} appears twice")));
        }
        *slot = Some(item.embedding.0.map_err(|m| stream_error(provider, m))?);
    }
    // Every slot is filled: as many items as slots, none twice.
    let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
    embeddings::check_vectors(provider, req, &vectors)?;
    let input_tokens = a.usage.and_then(|u| u.prompt_tokens).unwrap_or(0);
    Ok(Embeddings { vectors, usage: Usage { input_tokens, ..Usage::default() } })
}

/// An `f32` as the JSON number that prints like it (`0.3`, not `0.30000001192092896`, which a plain
/// widening to `f64` would give).
pub(crate) fn f32_json(v: f32) -> Value {
    v.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gaia_core::types::{ChatMessage, ToolSpec};

    #[test]
    fn the_body_keeps_pass_through_fields_and_lets_the_requests_own_settings_win() {
        let mut req = ChatRequest::new("gpt", vec![ChatMessage::system("be brief"), ChatMessage::user("hi")]);
        for (k, v) in [
            ("seed", json!(7)),
            ("model", json!("other")),
            ("temperature", json!(1.5)),
            ("max_completion_tokens", json!(1)),
            ("stream_options", json!({"include_usage": false})),
            ("top_p", json!(0.5)),
        ] {
            req.extra.insert(k.into(), v);
        }
        req.temperature = Some(0.25);
        req.max_tokens = Some(64);
        req.tools.push(ToolSpec { name: "wx".into(), description: None, parameters: json!({"type": "object"}).into() });
        let b = request_body(&req, false);
        assert_eq!(b["seed"], 7, "a pass-through field stays");
        assert_eq!(b["model"], "gpt");
        assert_eq!(b["temperature"], 0.25);
        assert_eq!(b["max_completion_tokens"], 64, "the client's name for the limit, with the request's value");
        assert!(b.get("max_tokens").is_none());
        assert_eq!(b["top_p"], 0.5, "a setting the request leaves unset passes through");
        assert!(b.get("stream_options").is_none(), "no stream options without a stream");
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            b["messages"],
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
        );
        let s = request_body(&req, true);
        assert_eq!((s["stream"].clone(), s["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
        // What is sent is exactly that JSON.
        let sent: Value =
            serde_json::from_slice(&serde_json::to_vec(&Body { req: &req, stream: true }).unwrap()).unwrap();
        assert_eq!(sent, s);
    }

    fn embed_req(n: usize, dimensions: Option<u32>) -> EmbeddingRequest {
        EmbeddingRequest { model: "e".into(), input: vec!["x".into(); n], dimensions, user: None }
    }

    fn b64(v: &[f32]) -> String {
        gaia_core::vectors::encode_vector(v)
    }

    #[test]
    fn embedding_answers_are_read_in_index_order_from_numbers_or_base64() {
        let body = json!({"object": "list", "model": "e", "usage": {"prompt_tokens": 7, "total_tokens": 7},
            "data": [{"object": "embedding", "index": 1, "embedding": b64(&[0.5, -0.25])},
                     {"object": "embedding", "index": 0, "embedding": [1, -0.125]}]});
        let e = parse_embeddings("p", &embed_req(2, None), body.to_string().as_bytes()).unwrap();
        assert_eq!(e.vectors, vec![vec![1.0, -0.125], vec![0.5, -0.25]]);
        assert_eq!(e.usage, Usage { input_tokens: 7, ..Usage::default() });
        let sent = serde_json::to_value(EmbeddingBody::of(&EmbeddingRequest {
            user: Some("u1".into()),
            ..embed_req(2, Some(2))
        }))
        .unwrap();
        assert_eq!(
            sent,
            json!({"model": "e", "input": ["x", "x"], "encoding_format": "float", "dimensions": 2, "user": "u1"})
        );
        let bare = serde_json::to_value(EmbeddingBody::of(&embed_req(1, None))).unwrap();
        assert_eq!(bare, json!({"model": "e", "input": ["x"], "encoding_format": "float"}));
    }

    #[test]
    fn malformed_embedding_answers_are_refused() {
        let item = |i: Value, e: Value| json!({"object": "embedding", "index": i, "embedding": e});
        let two = |a: Value, b: Value| json!({"data": [a, b]}).to_string();
        let cases = [
            (json!({"data": [item(json!(0), json!([1.0]))]}).to_string(), "1 embeddings for 2 inputs"),
            (two(item(json!(0), json!([1.0])), item(json!(0), json!([1.0]))), "appears twice"),
            (two(item(json!(0), json!([1.0])), item(json!(2), json!([1.0]))), "out of range"),
            (two(json!({"embedding": [1.0]}), item(json!(0), json!([1.0]))), "appears twice"),
            (two(item(json!(0), json!([1.0])), item(json!(1), json!([1.0, 2.0]))), "embedding 1 has 2 numbers"),
            (two(item(json!(0), json!([])), item(json!(1), json!([]))), "embeddings of 0 numbers"),
            (two(item(json!(0), json!([1.0])), item(json!(1), json!([1e300]))), "not finite"),
            (two(item(json!(0), json!([1.0])), item(json!(1), json!(b64(&[f32::NAN])))), "not finite"),
            (two(item(json!(0), json!([1.0])), item(json!(1), json!("AAAA"))), " 4-byte floats"),
            (two(item(json!(0), json!([1.0])), item(json!(1), json!("!!"))), " invalid base64"),
            (two(item(json!(0), json!([1.0])), item(json!(1), json!([1.0, null]))), "invalid embedding answer"),
            (two(item(json!(0), json!(vec![0.5; 8193])), item(json!(1), json!(vec![0.5; 8193]))), "at most 8192"),
            (json!({"error": {"message": "quota exceeded"}}).to_string(), "quota exceeded"),
            ("{\"data\": [".to_string(), "invalid embedding answer"),
        ];
        for (body, want) in cases {
            match parse_embeddings("p", &embed_req(2, None), body.as_bytes()) {
                Err(ProviderError::Stream { message, .. }) => assert!(message.contains(want), "{want}: {message}"),
                other => panic!("{want}: {other:?}"),
            }
        }
        // The size asked for is the size answered.
        let body = two(item(json!(0), json!([1.0])), item(json!(1), json!([1.0])));
        let e = parse_embeddings("p", &embed_req(2, Some(3)), body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("not the 3 asked for"), "{e}");
    }

    #[test]
    fn embedding_requests_are_checked() {
        let msg = |r: EmbeddingRequest| match r.validate() {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(embed_req(0, None)).contains("at least one input"));
        assert!(msg(embed_req(2049, None)).contains("at most 2048 inputs, not 2049"));
        assert!(msg(embed_req(1, Some(0))).contains("between 1 and 8192, not 0"));
        assert!(msg(embed_req(1, Some(8193))).contains("not 8193"));
        let mut long = embed_req(2, None);
        long.input[1] = "é".repeat(32_769);
        assert!(msg(long.clone()).contains("input 1 has 32769 characters"));
        long.input[1] = "é".repeat(32_768);
        assert!(long.validate().is_ok(), "characters are counted, not bytes");
        assert!(embed_req(2048, Some(8192)).validate().is_ok());
        // The answer's bound follows the request's size, within the hard limit.
        assert!(embed_req(1, Some(16)).answer_limit() < 128 * 1024);
        assert!(embed_req(2048, Some(3072)).answer_limit() > 2048 * 3072 * 22);
        assert_eq!(embed_req(2048, None).answer_limit(), crate::embeddings::MAX_EMBEDDING_ANSWER_BYTES);
    }
}
