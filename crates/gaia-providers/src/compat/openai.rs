//! OpenAI Chat Completions, server side.

use super::{check_schema, check_tool_name, invalid};
use crate::error::ProviderError;
use crate::types::{ChatEvent, ChatRequest, ChatResponse};
use gaia_core::types::{ChatMessage, FinishReason, ImagePart, Role, ToolCall, ToolSpec, Usage};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A parsed `/v1/chat/completions` request.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// The provider-neutral request (model as the client named it).
    pub request: ChatRequest,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
}

/// Text and images of an OpenAI `content`: a string, or an array of `text` and `image_url` parts
/// (text parts are joined).
fn content_parts(v: &Value) -> Result<(String, Vec<ImagePart>), ProviderError> {
    match v {
        Value::Null => Ok((String::new(), Vec::new())),
        Value::String(s) => Ok((s.clone(), Vec::new())),
        Value::Array(parts) => {
            let mut out = String::new();
            let mut images = Vec::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push_str(p.get("text").and_then(Value::as_str).unwrap_or_default()),
                    Some("image_url") => {
                        let url = p
                            .pointer("/image_url/url")
                            .or_else(|| p.get("image_url").filter(|u| u.is_string()))
                            .and_then(Value::as_str)
                            .filter(|u| !u.is_empty())
                            .ok_or_else(|| invalid("an `image_url` part needs `image_url.url`"))?;
                        images.push(ImagePart::from_url(url));
                    }
                    Some(other) => return Err(invalid(format!("content part type `{other}` is not supported yet"))),
                    None => return Err(invalid("content parts need a `type`")),
                }
            }
            Ok((out, images))
        }
        _ => Err(invalid("`content` must be a string or an array of parts")),
    }
}

/// Parses a request body. Unknown top-level fields (`response_format`, `seed`, …) pass through;
/// `response_format` is checked first ([`ResponseFormat::parse`]).
pub fn parse_request(body: &Value) -> Result<ParsedRequest, ProviderError> {
    let obj = body.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("`model` is required"))?;
    let raw = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` is required and must be an array"))?;
    if raw.is_empty() {
        return Err(invalid("`messages` must not be empty"));
    }
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let role =
            m.get("role").and_then(Value::as_str).ok_or_else(|| invalid(format!("messages[{i}].role is required")))?;
        let role = match role {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role `{other}` is not one of system, developer, user, assistant, tool"
                )))
            }
        };
        let (content, images) = content_parts(m.get("content").unwrap_or(&Value::Null))
            .map_err(|e| invalid(format!("messages[{i}]: {e}")))?;
        if !images.is_empty() && role != Role::User {
            return Err(invalid(format!("messages[{i}]: only user messages may contain images")));
        }
        let mut msg = ChatMessage::new(role, content);
        msg.images = images;
        // Anthropic-style `cache_control` on a content part (as LiteLLM accepts): a Claude model
        // behind this endpoint caches the prompt up to here; OpenAI caches on its own.
        msg.cache = m
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|parts| parts.iter().any(|p| p.get("cache_control").is_some_and(|c| !c.is_null())));
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                msg.tool_calls.push(ToolCall {
                    id: c.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    name: c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("messages[{i}].tool_calls needs function.name")))?
                        .to_string(),
                    arguments: c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}").to_string(),
                });
            }
        }
        if role == Role::Tool {
            msg.tool_call_id = Some(
                m.get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("messages[{i}].tool_call_id is required for tool messages")))?
                    .to_string(),
            );
        }
        messages.push(msg);
    }
    let mut req = ChatRequest::new(model, messages);
    req.temperature = opt_f32(obj, "temperature")?;
    req.top_p = opt_f32(obj, "top_p")?;
    let positive = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| invalid(format!("`{key}` must be a positive integer"))),
    };
    let max_completion_tokens = positive("max_completion_tokens")?;
    req.max_tokens = max_completion_tokens.or(positive("max_tokens")?);
    if let Some(n) = max_completion_tokens {
        // Tells OpenAI-format providers to send the limit under this name too.
        req.extra.insert("max_completion_tokens".into(), json!(n));
    }
    req.stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| invalid("`stop` must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    };
    match obj.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(n) => return Err(invalid(format!("`n` must be 1 (one choice per request); got {n}"))),
    }
    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.as_array().ok_or_else(|| invalid("`tools` must be an array"))?;
        for t in tools {
            match t.get("type").and_then(Value::as_str) {
                None | Some("function") => {}
                Some(other) => return Err(invalid(format!("tool type `{other}` is not supported; use `function`"))),
            }
            let f =
                t.get("function").filter(|f| f.is_object()).ok_or_else(|| invalid("each tool needs a `function`"))?;
            let name =
                f.get("name").and_then(Value::as_str).ok_or_else(|| invalid("each tool function needs a `name`"))?;
            check_tool_name(name)?;
            let parameters =
                f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            check_schema(name, &parameters)?;
            req.tools.push(ToolSpec {
                name: name.to_string(),
                description: f.get("description").and_then(Value::as_str).map(str::to_string),
                parameters: parameters.into(),
            });
        }
    }
    req.tool_choice = match obj.get("tool_choice").filter(|v| !v.is_null()) {
        Some(tc) => Some(tool_choice(tc, &req.tools)?),
        None => None,
    };
    if req.tools.is_empty() {
        // `"none"` or `"auto"` without tools: nothing to choose (providers refuse a choice without tools).
        req.tool_choice = None;
    }
    if let Some(p) = obj.get("parallel_tool_calls").filter(|v| !v.is_null()) {
        if !p.is_boolean() {
            return Err(invalid("`parallel_tool_calls` must be a boolean"));
        }
    }
    req.user = obj.get("user").and_then(Value::as_str).map(str::to_string);
    const KNOWN: &[&str] = &[
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "tools",
        "tool_choice",
        "user",
        "stream",
        "stream_options",
    ];
    for (k, v) in obj {
        if !KNOWN.contains(&k.as_str()) {
            req.extra.insert(k.clone(), v.clone());
        }
    }
    if req.tools.is_empty() {
        // Providers refuse it without tools, and it means nothing then.
        req.extra.remove("parallel_tool_calls");
    }
    if let Some(rf) = obj.get("response_format").filter(|v| !v.is_null()) {
        // Checked here so a bad one is refused whichever provider the model is on.
        ResponseFormat::parse(rf)?;
    }
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    Ok(ParsedRequest { request: req, stream, include_usage })
}

/// OpenAI's `response_format`, checked: what shape the answer's text must have.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// `{"type": "text"}`: free text (the default).
    Text,
    /// `{"type": "json_object"}`: one JSON object, no schema.
    JsonObject,
    /// `{"type": "json_schema", "json_schema": {...}}`: JSON matching a schema.
    JsonSchema {
        /// `json_schema.name`, when given (1-64 characters of a-z, A-Z, 0-9, `_` or `-`).
        name: Option<String>,
        /// `json_schema.description`, when given.
        description: Option<String>,
        /// `json_schema.schema`: a JSON schema object.
        schema: Value,
        /// `json_schema.strict`, when given.
        strict: Option<bool>,
    },
}

impl ResponseFormat {
    /// Parses and checks a `response_format` value; [`ProviderError::InvalidRequest`] when it is not
    /// one of the three forms OpenAI accepts.
    pub fn parse(v: &Value) -> Result<ResponseFormat, ProviderError> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("`response_format` must be an object such as {\"type\": \"json_object\"}"))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("text") => Ok(ResponseFormat::Text),
            Some("json_object") => Ok(ResponseFormat::JsonObject),
            Some("json_schema") => {
                let js = obj.get("json_schema").and_then(Value::as_object).ok_or_else(|| {
                    invalid("`response_format.json_schema` is required for type `json_schema` and must be an object")
                })?;
                let schema = js.get("schema").filter(|s| s.is_object()).cloned().ok_or_else(|| {
                    invalid("`response_format.json_schema.schema` is required and must be a JSON schema object")
                })?;
                let name = match js.get("name") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(n)) => {
                        check_tool_name(n).map_err(|_| {
                            invalid(format!(
                                "`response_format.json_schema.name` `{n}` must be 1-64 characters of a-z, A-Z, 0-9, _ or -"
                            ))
                        })?;
                        Some(n.clone())
                    }
                    Some(_) => return Err(invalid("`response_format.json_schema.name` must be a string")),
                };
                let description = match js.get("description") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(d)) => Some(d.clone()),
                    Some(_) => return Err(invalid("`response_format.json_schema.description` must be a string")),
                };
                let strict = match js.get("strict") {
                    None | Some(Value::Null) => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => return Err(invalid("`response_format.json_schema.strict` must be a boolean")),
                };
                Ok(ResponseFormat::JsonSchema { name, description, schema, strict })
            }
            Some(other) => Err(invalid(format!(
                "`response_format.type` `{other}` is not supported; use `text`, `json_object` or `json_schema`"
            ))),
            None => Err(invalid("`response_format.type` is required: `text`, `json_object` or `json_schema`")),
        }
    }
}

/// Checks OpenAI's `tool_choice`: `"none"`, `"auto"`, `"required"`, or
/// `{"type": "function", "function": {"name": N}}` naming one of `tools`.
fn tool_choice(tc: &Value, tools: &[ToolSpec]) -> Result<Value, ProviderError> {
    match tc {
        Value::String(s) if matches!(s.as_str(), "none" | "auto") => Ok(tc.clone()),
        Value::String(s) if s == "required" => {
            if tools.is_empty() {
                return Err(invalid("`tool_choice: \"required\"` needs `tools`"));
            }
            Ok(tc.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = tc
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice.function.name` is required"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(format!("`tool_choice` names the function `{name}`, which is not in `tools`")));
            }
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid(
            "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )),
    }
}

fn opt_f32(obj: &Map<String, Value>, key: &str) -> Result<Option<f32>, ProviderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as f32)).ok_or_else(|| invalid(format!("`{key}` must be a number"))),
    }
}

/// OpenAI's `finish_reason` for `f`: one of `stop`, `length`, `tool_calls`, `content_filter` (reasons
/// OpenAI has no word for, such as Anthropic's `pause_turn`, read as `stop`).
pub fn finish_reason(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(s) if s == "function_call" => "tool_calls",
        _ => "stop",
    }
}

/// A `chat.completion` object for `resp`, naming `model` as the client asked for it.
pub fn render_response(resp: &ChatResponse, id: &str, created: i64, model: &str) -> Value {
    serde_json::to_value(Completion::of(resp, id, created, model)).unwrap_or(Value::Null)
}

/// [`render_response`] written straight to JSON bytes (no intermediate [`Value`]: what the
/// gateway sends).
pub fn render_response_bytes(resp: &ChatResponse, id: &str, created: i64, model: &str) -> Vec<u8> {
    serde_json::to_vec(&Completion::of(resp, id, created, model)).unwrap_or_default()
}

/// A `chat.completion` object, serialized from the answer where it is.
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallOut<'a>>>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    /// Only when some prompt tokens came from a cache, as OpenAI reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

impl UsageOut {
    fn of(u: Usage) -> Self {
        UsageOut {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total(),
            prompt_tokens_details: (u.cached_input_tokens > 0)
                .then_some(PromptTokensDetails { cached_tokens: u.cached_input_tokens }),
        }
    }
}

impl<'a> Completion<'a> {
    fn of(resp: &'a ChatResponse, id: &'a str, created: i64, model: &'a str) -> Self {
        let tools = !resp.tool_calls.is_empty();
        let tool_calls = tools.then(|| {
            resp.tool_calls
                .iter()
                .map(|t| ToolCallOut {
                    id: &t.id,
                    kind: "function",
                    function: FunctionOut { name: &t.name, arguments: &t.arguments },
                })
                .collect()
        });
        let content = (!(tools && resp.content.is_empty())).then_some(resp.content.as_str());
        Completion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [CompletionChoice {
                index: 0,
                message: MessageOut { role: "assistant", content, refusal: None, tool_calls },
                logprobs: None,
                finish_reason: finish_reason(&resp.finish_reason),
            }],
            usage: UsageOut::of(resp.usage),
        }
    }
}

/// Renders a stream of [`ChatEvent`]s as `chat.completion.chunk` objects.
#[derive(Debug)]
pub struct ChunkRenderer {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    usage: Usage,
    finished: bool,
}

impl ChunkRenderer {
    /// A renderer for one answer.
    pub fn new(id: impl Into<String>, created: i64, model: impl Into<String>, include_usage: bool) -> Self {
        ChunkRenderer {
            id: id.into(),
            created,
            model: model.into(),
            include_usage,
            usage: Usage::default(),
            finished: false,
        }
    }

    /// One chunk as JSON text, written from where its parts are (no intermediate [`Value`]).
    fn chunk(&self, delta: Delta<'_>, finish: Option<&'static str>) -> String {
        let c = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice { index: 0, delta, logprobs: None, finish_reason: finish }],
            usage: self.include_usage.then_some(None),
        };
        serde_json::to_string(&c).unwrap_or_default()
    }

    /// The first chunk (role), as JSON text.
    pub fn start(&self) -> String {
        self.chunk(Delta::Role { role: "assistant", content: "" }, None)
    }

    /// Chunks for one event (none for events with no OpenAI equivalent), as JSON texts.
    pub fn event(&mut self, ev: &ChatEvent) -> Vec<String> {
        match ev {
            ChatEvent::TextDelta(t) if !t.is_empty() => vec![self.chunk(Delta::Text { content: t }, None)],
            ChatEvent::ToolCallDelta { index, id, name, arguments } => {
                let call = ToolCallDeltaOut {
                    index: *index,
                    id: id.as_deref(),
                    kind: id.as_ref().map(|_| "function"),
                    function: FunctionDeltaOut { name: name.as_deref(), arguments },
                };
                vec![self.chunk(Delta::Tools { tool_calls: [call] }, None)]
            }
            ChatEvent::Usage(u) => {
                crate::types::merge_usage(&mut self.usage, *u);
                Vec::new()
            }
            ChatEvent::Finish(f) if !self.finished => {
                self.finished = true;
                vec![self.chunk(Delta::Empty {}, Some(finish_reason(f)))]
            }
            _ => Vec::new(),
        }
    }

    /// Closing chunks: a finish chunk if none was sent, and the usage chunk when asked for, as JSON
    /// texts.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.finished {
            self.finished = true;
            out.push(self.chunk(Delta::Empty {}, Some(finish_reason(&FinishReason::Stop))));
        }
        if self.include_usage {
            let u = self.usage;
            let c = ChunkOut {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(UsageOut::of(u))),
            };
            out.push(serde_json::to_string(&c).unwrap_or_default());
        }
        out
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }
}

/// A `chat.completion.chunk`.
#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    /// Absent unless the client asked for usage; then `null` until the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Delta<'a> {
    Role { role: &'static str, content: &'static str },
    Text { content: &'a str },
    Tools { tool_calls: [ToolCallDeltaOut<'a>; 1] },
    Empty {},
}

#[derive(Serialize)]
struct ToolCallDeltaOut<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// An error body in OpenAI's shape.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// OpenAI's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 | 400 | 422 => "invalid_request_error",
        402 => "insufficient_quota",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_completion_as_openai_does() {
        let mut r = ChatResponse {
            id: "up".into(),
            model: "m".into(),
            content: "Hi.".into(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(3, 2),
        };
        let want = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "asked",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi.", "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        });
        assert_eq!(render_response(&r, "chatcmpl-1", 7, "asked"), want);
        let bytes: Value = serde_json::from_slice(&render_response_bytes(&r, "chatcmpl-1", 7, "asked")).unwrap();
        assert_eq!(bytes, want);
        // A tool call without text: `content` is null and the calls are listed.
        r.content.clear();
        r.finish_reason = FinishReason::ToolCalls;
        r.tool_calls = vec![ToolCall { id: "c1".into(), name: "wx".into(), arguments: "{}".into() }];
        let v = render_response(&r, "chatcmpl-1", 7, "asked");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"],
            json!([{"id": "c1", "type": "function", "function": {"name": "wx", "arguments": "{}"}}])
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn parses_a_full_request() {
        let p = parse_request(&json!({
            "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Tokyo?"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "wx", "arguments": "{\"city\":\"Tokyo\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "fog"}
            ],
            "tools": [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "auto", "max_completion_tokens": 50, "stop": "END", "temperature": 0, "response_format": {"type": "json_object"}
        }))
        .unwrap();
        assert!(p.stream && p.include_usage);
        let r = p.request;
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.messages[1].content, "Weather in Tokyo?");
        assert_eq!(r.messages[2].tool_calls[0].name, "wx");
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(r.max_tokens, Some(50));
        assert_eq!(r.stop, vec!["END"]);
        assert_eq!(r.temperature, Some(0.0));
        assert_eq!(r.tools[0].name, "wx");
        assert_eq!(r.extra["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn refuses_bad_requests() {
        for (body, needle) in [
            (json!([]), "object"),
            (json!({"messages": []}), "model"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "empty"),
            (json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}), "role"),
            (json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}), "tool_call_id"),
            (json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}), "`n` must be 1"),
            (json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}), "max_tokens"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
                "tool name",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "string"}}}]}),
                "object",
            ),
        ] {
            let e = parse_request(&body).unwrap_err().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn checks_response_format() {
        let with = |rf: Value| {
            parse_request(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": rf}))
        };
        for ok in [
            json!({"type": "text"}),
            json!({"type": "json_object"}),
            json!({"type": "json_schema", "json_schema": {"name": "w-1", "schema": {"type": "object"}, "strict": true}}),
            json!({"type": "json_schema", "json_schema": {"schema": {}}}),
        ] {
            let r = with(ok.clone()).unwrap().request;
            assert_eq!(r.extra["response_format"], ok, "passed on as given");
        }
        assert_eq!(
            ResponseFormat::parse(&json!({"type": "json_schema", "json_schema": {"name": "w", "description": "d", "schema": {"type": "object"}, "strict": false}}))
                .unwrap(),
            ResponseFormat::JsonSchema {
                name: Some("w".into()),
                description: Some("d".into()),
                schema: json!({"type": "object"}),
                strict: Some(false)
            }
        );
        for (bad, needle) in [
            (json!("json"), "must be an object"),
            (json!({}), "type` is required"),
            (json!({"type": "xml"}), "`xml` is not supported"),
            (json!({"type": "json_schema"}), "json_schema` is required"),
            (json!({"type": "json_schema", "json_schema": {"name": "w"}}), "schema` is required"),
            (json!({"type": "json_schema", "json_schema": {"name": "w", "schema": "{}"}}), "schema` is required"),
            (json!({"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}}), "name"),
            (json!({"type": "json_schema", "json_schema": {"schema": {}, "strict": "yes"}}), "strict"),
        ] {
            let e = with(bad.clone()).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn checks_tool_choice_and_keeps_the_limits_name() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "wx"}}]});
        for tc in
            [json!("none"), json!("auto"), json!("required"), json!({"type": "function", "function": {"name": "wx"}})]
        {
            let mut b = base.clone();
            b["tool_choice"] = tc.clone();
            assert_eq!(parse_request(&b).unwrap().request.tool_choice, Some(tc));
        }
        for tc in [json!("any"), json!({"type": "function", "function": {"name": "nope"}}), json!({"type": "tool"})] {
            let mut b = base.clone();
            b["tool_choice"] = tc.clone();
            assert!(parse_request(&b).is_err(), "{tc}");
        }
        // Without tools, `auto` and `parallel_tool_calls` mean nothing and are dropped.
        let r = parse_request(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tool_choice": "auto", "parallel_tool_calls": false, "max_tokens": 9}))
        .unwrap()
        .request;
        assert_eq!(r.tool_choice, None);
        assert!(r.extra.is_empty(), "{:?}", r.extra);
        assert_eq!(r.max_tokens, Some(9));
        let r = parse_request(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 9, "max_completion_tokens": 7}))
        .unwrap()
        .request;
        assert_eq!(r.max_tokens, Some(7));
        assert_eq!(r.extra["max_completion_tokens"], 7);
        assert_eq!(finish_reason(&FinishReason::StopSequence("END".into())), "stop");
        assert_eq!(finish_reason(&FinishReason::Other("pause_turn".into())), "stop");
    }

    #[test]
    fn renders_stream() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let mut r = ChunkRenderer::new("x", 1, "m", true);
        assert_eq!(
            v(&r.start()),
            json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "usage": null,
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]})
        );
        let c = r.event(&ChatEvent::ToolCallDelta {
            index: 0,
            id: Some("c".into()),
            name: Some("wx".into()),
            arguments: String::new(),
        });
        assert_eq!(
            v(&c[0])["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "wx", "arguments": ""}}]})
        );
        let more = r.event(&ChatEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "{}".into() });
        assert_eq!(
            v(&more[0])["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
        );
        assert_eq!(v(&r.event(&ChatEvent::TextDelta("Hi".into()))[0])["choices"][0]["delta"], json!({"content": "Hi"}));
        r.event(&ChatEvent::Usage(Usage::new(3, 4)));
        let end = r.finish();
        assert_eq!(v(&end[0])["choices"][0]["finish_reason"], "stop");
        assert_eq!(v(&end[0])["choices"][0]["delta"], json!({}));
        assert_eq!(v(&end[1])["usage"]["total_tokens"], 7);
        assert_eq!(v(&end[1])["choices"], json!([]));
        // Without `include_usage`, no `usage` key at all.
        assert!(v(&ChunkRenderer::new("x", 1, "m", false).start()).get("usage").is_none());
    }
}
