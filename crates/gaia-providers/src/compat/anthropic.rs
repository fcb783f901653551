//! Anthropic Messages API, server side.

use super::{check_schema, check_tool_name, invalid};
use crate::error::ProviderError;
use crate::types::{merge_usage, ChatEvent, ChatRequest, ChatResponse};
use gaia_core::types::{ChatMessage, FinishReason, ImagePart, Role, ToolCall, ToolSpec, Usage};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A parsed `/v1/messages` request.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// The provider-neutral request (model as the client named it).
    pub request: ChatRequest,
    /// `stream: true`.
    pub stream: bool,
}

fn text_of_blocks(v: &Value, what: &str) -> Result<String, ProviderError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => out.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
                    Some(t) => return Err(invalid(format!("{what}: block type `{t}` is not supported here"))),
                    None => return Err(invalid(format!("{what}: blocks need a `type`"))),
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err(invalid(format!("{what} must be a string or an array of blocks"))),
    }
}

/// Anthropic's usage object for `u`: its `input_tokens` leave out those read from the cache
/// (`cache_read_input_tokens`) and written to it (`cache_creation_input_tokens`), both given when
/// either is.
fn usage_json(u: gaia_core::types::Usage) -> Value {
    let cached = u.cached_input_tokens.min(u.input_tokens);
    let written = u.cache_write_input_tokens.min(u.input_tokens - cached);
    let mut v = json!({"input_tokens": u.input_tokens - cached - written, "output_tokens": u.output_tokens});
    if cached > 0 || written > 0 {
        v["cache_read_input_tokens"] = json!(cached);
        v["cache_creation_input_tokens"] = json!(written);
    }
    v
}

/// Whether a block carries a prompt-caching mark (`cache_control`, e.g. `{"type": "ephemeral"}`).
fn cache_control(block: &Value) -> bool {
    block.get("cache_control").is_some_and(|c| !c.is_null())
}

/// Prefix of a failed tool's result text: a `tool_result` with `is_error: true` has no flag to go in
/// a provider-neutral tool message (nor in OpenAI's `tool` message), so the failure is said in the text.
pub const TOOL_ERROR_PREFIX: &str = "Error: ";

/// The text of a failed tool's result: [`TOOL_ERROR_PREFIX`] before it (`Error` alone when empty).
fn tool_error_text(result: &str) -> String {
    if result.is_empty() {
        "Error".to_string()
    } else {
        format!("{TOOL_ERROR_PREFIX}{result}")
    }
}

/// Anthropic's `tool_choice` in OpenAI's form (what [`ChatRequest::tool_choice`] holds), checked
/// against the request's `tools`.
fn tool_choice(v: &Value, tools: &[ToolSpec]) -> Result<Value, ProviderError> {
    if let Some(d) = v.get("disable_parallel_tool_use").filter(|d| !d.is_null()) {
        if !d.is_boolean() {
            return Err(invalid("tool_choice.disable_parallel_tool_use: must be a boolean"));
        }
    }
    let needs_tools = |what: &str| {
        if tools.is_empty() {
            Err(invalid(format!("tool_choice.type: `{what}` needs `tools`")))
        } else {
            Ok(())
        }
    };
    match v.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(json!("auto")),
        Some("any") => {
            needs_tools("any")?;
            Ok(json!("required"))
        }
        Some("none") => Ok(json!("none")),
        Some("tool") => {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name: Field required for type tool"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(format!("tool_choice.name: `{name}` is not one of the request's tools")));
            }
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid("tool_choice.type: must be auto, any, tool or none")),
    }
}

fn opt_number(obj: &serde_json::Map<String, Value>, key: &str) -> Result<Option<f32>, ProviderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as f32)).ok_or_else(|| invalid(format!("{key}: must be a number"))),
    }
}

/// An `image` block's `source`: `{type: "base64", media_type, data}` or `{type: "url", url}`.
fn image_source(source: Option<&Value>, i: usize) -> Result<ImagePart, ProviderError> {
    let field = |s: &Value, k: &str| {
        s.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("messages.{i}: image.source.{k}: Field required")))
    };
    let s = source.ok_or_else(|| invalid(format!("messages.{i}: image.source: Field required")))?;
    match s.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = field(s, "media_type")?;
            if !matches!(media_type.as_str(), "image/jpeg" | "image/png" | "image/gif" | "image/webp") {
                return Err(invalid(format!(
                    "messages.{i}: image.source.media_type: must be image/jpeg, image/png, image/gif or image/webp"
                )));
            }
            Ok(ImagePart::Base64 { media_type, data: field(s, "data")? })
        }
        Some("url") => Ok(ImagePart::Url { url: field(s, "url")? }),
        _ => Err(invalid(format!("messages.{i}: image.source.type: must be base64 or url"))),
    }
}

/// Parses a request body.
pub fn parse_request(body: &Value) -> Result<ParsedRequest, ProviderError> {
    let obj = body.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("model: Field required"))?;
    let max_tokens = obj
        .get("max_tokens")
        .ok_or_else(|| invalid("max_tokens: Field required"))?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid("max_tokens: must be a positive integer"))?;
    let raw = obj.get("messages").and_then(Value::as_array).ok_or_else(|| invalid("messages: Field required"))?;
    if raw.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    let mut messages = Vec::new();
    if let Some(system) = obj.get("system") {
        let s = text_of_blocks(system, "system")?;
        if !s.is_empty() {
            let cache = system.as_array().is_some_and(|blocks| blocks.iter().any(cache_control));
            messages.push(ChatMessage { cache, ..ChatMessage::system(s) });
        }
    }
    for (i, m) in raw.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => return Err(invalid(format!("messages.{i}.role: must be user or assistant"))),
        };
        let content = m.get("content").ok_or_else(|| invalid(format!("messages.{i}.content: Field required")))?;
        let blocks = match content {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => return Err(invalid(format!("messages.{i}.content must be a string or an array of blocks"))),
        };
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut images = Vec::new();
        // A `cache_control` mark ends a cacheable prefix: the message holding the block is marked.
        let mut cache = false;
        for b in &blocks {
            let tool_results_before = messages.len();
            let marked = cache_control(b);
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
                // Extended-thinking blocks a client replays from earlier answers: history only, and no
                // provider but the one that wrote them can check them.
                Some("thinking" | "redacted_thinking") if role == Role::Assistant => {}
                Some("image") if role == Role::User => images.push(image_source(b.get("source"), i)?),
                Some("tool_use") if role == Role::Assistant => calls.push(ToolCall {
                    id: b.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("messages.{i}: tool_use needs a name")))?
                        .to_string(),
                    arguments: b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                }),
                Some("tool_result") if role == Role::User => {
                    let id = b
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("messages.{i}: tool_result needs tool_use_id")))?;
                    let result = text_of_blocks(b.get("content").unwrap_or(&Value::Null), "tool_result.content")?;
                    let is_error = match b.get("is_error") {
                        None | Some(Value::Null) => false,
                        Some(Value::Bool(e)) => *e,
                        Some(_) => {
                            return Err(invalid(format!("messages.{i}: tool_result.is_error: must be a boolean")))
                        }
                    };
                    messages.push(ChatMessage::tool(id, if is_error { tool_error_text(&result) } else { result }));
                }
                Some(t) => {
                    return Err(invalid(format!(
                        "messages.{i}: content block `{t}` is not supported for role {}",
                        role.as_str()
                    )))
                }
                None => return Err(invalid(format!("messages.{i}: content blocks need a `type`"))),
            }
            if marked {
                match messages.get_mut(tool_results_before) {
                    // A marked tool result is a message of its own.
                    Some(tool) => tool.cache = true,
                    None => cache = true,
                }
            }
        }
        if !text.is_empty() || !calls.is_empty() || !images.is_empty() {
            let mut msg = ChatMessage::new(role, text);
            msg.tool_calls = calls;
            msg.images = images;
            msg.cache = cache;
            messages.push(msg);
        } else if cache {
            if let Some(last) = messages.last_mut() {
                last.cache = true;
            }
        }
    }
    let mut req = ChatRequest::new(model, messages);
    req.max_tokens = Some(max_tokens);
    req.temperature = opt_number(obj, "temperature")?;
    req.top_p = opt_number(obj, "top_p")?;
    if let Some(stops) = obj.get("stop_sequences") {
        req.stop = stops
            .as_array()
            .ok_or_else(|| invalid("stop_sequences must be an array"))?
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| invalid("stop_sequences must be strings")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        for t in tools.as_array().ok_or_else(|| invalid("tools must be an array"))? {
            let name = t.get("name").and_then(Value::as_str).ok_or_else(|| invalid("tools: each tool needs a name"))?;
            check_tool_name(name)?;
            let schema = t
                .get("input_schema")
                .cloned()
                .ok_or_else(|| invalid(format!("tool `{name}`: input_schema: Field required")))?;
            check_schema(name, &schema)?;
            req.tools.push(ToolSpec {
                name: name.to_string(),
                description: t.get("description").and_then(Value::as_str).map(str::to_string),
                parameters: schema.into(),
            });
        }
    }
    if let Some(tc) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        if !tc.is_object() {
            return Err(invalid("tool_choice: must be an object such as {\"type\": \"auto\"}"));
        }
        let choice = tool_choice(tc, &req.tools)?;
        if !req.tools.is_empty() {
            req.tool_choice = Some(choice);
            if tc.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                // OpenAI's spelling; the Anthropic client turns it back into `disable_parallel_tool_use`.
                req.extra.insert("parallel_tool_calls".into(), json!(false));
            }
        }
    }
    req.user = body.pointer("/metadata/user_id").and_then(Value::as_str).map(str::to_string);
    Ok(ParsedRequest { request: req, stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false) })
}

/// Anthropic's `stop_reason` for a finish reason.
pub fn stop_reason(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::StopSequence(_) => "stop_sequence",
        FinishReason::Other(s) if s == "pause_turn" => "pause_turn",
        FinishReason::Other(s) if s == "model_context_window_exceeded" => "model_context_window_exceeded",
        _ => "end_turn",
    }
}

/// Anthropic's `stop_sequence` for a finish reason: the sequence that was hit, or `null`.
pub fn stop_sequence(f: &FinishReason) -> Value {
    match f {
        FinishReason::StopSequence(s) => json!(s),
        _ => Value::Null,
    }
}

fn tool_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

/// A `message` object for `resp`, naming `model` as the client asked for it.
pub fn render_response(resp: &ChatResponse, id: &str, model: &str) -> Value {
    let mut content = Vec::new();
    if !resp.content.is_empty() || resp.tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": resp.content}));
    }
    for t in &resp.tool_calls {
        content.push(json!({"type": "tool_use", "id": t.id, "name": t.name, "input": tool_input(&t.arguments)}));
    }
    json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(&resp.finish_reason), "stop_sequence": stop_sequence(&resp.finish_reason),
        "usage": usage_json(resp.usage)
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    None,
    Text(usize),
    Tool(usize),
}

/// Renders [`ChatEvent`]s as Anthropic stream events: `(event name, data)` pairs.
#[derive(Debug)]
pub struct EventRenderer {
    id: String,
    model: String,
    next_block: usize,
    open: Open,
    tool_blocks: HashMap<u32, usize>,
    usage: Usage,
    stop: FinishReason,
}

impl EventRenderer {
    /// A renderer for one answer.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        EventRenderer {
            id: id.into(),
            model: model.into(),
            next_block: 0,
            open: Open::None,
            tool_blocks: HashMap::new(),
            usage: Usage::default(),
            stop: FinishReason::Stop,
        }
    }

    /// `message_start` (with the usage seen so far: feed the upstream's leading [`ChatEvent::Usage`]
    /// to [`EventRenderer::event`] first, so it carries the input tokens when known) and a `ping`.
    pub fn start(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": usage_json(self.usage)
                }}),
            ),
            ("ping", json!({"type": "ping"})),
        ]
    }

    fn close(&mut self, out: &mut Vec<(&'static str, Value)>) {
        match self.open {
            Open::Text(i) | Open::Tool(i) => {
                out.push(("content_block_stop", json!({"type": "content_block_stop", "index": i})))
            }
            Open::None => {}
        }
        self.open = Open::None;
    }

    /// Events for one [`ChatEvent`].
    pub fn event(&mut self, ev: &ChatEvent) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        match ev {
            ChatEvent::TextDelta(t) if !t.is_empty() => {
                let idx = match self.open {
                    Open::Text(i) => i,
                    _ => {
                        self.close(&mut out);
                        let i = self.next_block;
                        self.next_block += 1;
                        self.open = Open::Text(i);
                        out.push(("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
                        i
                    }
                };
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": t}}),
                ));
            }
            ChatEvent::ToolCallDelta { index, id, name, arguments } => {
                let block = match self.tool_blocks.get(index) {
                    Some(b) => *b,
                    None => {
                        self.close(&mut out);
                        let b = self.next_block;
                        self.next_block += 1;
                        self.tool_blocks.insert(*index, b);
                        self.open = Open::Tool(b);
                        out.push((
                            "content_block_start",
                            json!({"type": "content_block_start", "index": b, "content_block": {
                                "type": "tool_use", "id": id.clone().unwrap_or_else(|| format!("toolu_{b}")),
                                "name": name.clone().unwrap_or_default(), "input": {}
                            }}),
                        ));
                        b
                    }
                };
                if !arguments.is_empty() {
                    out.push(("content_block_delta", json!({"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": arguments}})));
                }
            }
            ChatEvent::Usage(u) => merge_usage(&mut self.usage, *u),
            ChatEvent::Finish(f) => self.stop = f.clone(),
            _ => {}
        }
        out
    }

    /// Closing events: the open block's stop, `message_delta` with usage, `message_stop`.
    pub fn finish(&mut self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        self.close(&mut out);
        out.push((
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop_reason(&self.stop), "stop_sequence": stop_sequence(&self.stop)},
                   "usage": usage_json(self.usage)}),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }
}

/// An error body in Anthropic's shape.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        402 => "billing_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_marks_the_messages_that_hold_it_and_cached_usage_is_rendered() {
        let body = json!({"model": "m", "max_tokens": 5,
        "system": [{"type": "text", "text": "lore", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r",
                                           "cache_control": {"type": "ephemeral"}},
                                          {"type": "text", "text": "and?"}]},
        ]});
        let req = parse_request(&body).unwrap().request;
        let marks: Vec<(Role, bool)> = req.messages.iter().map(|m| (m.role, m.cache)).collect();
        assert_eq!(
            marks,
            [
                (Role::System, true),
                (Role::User, true),
                (Role::Assistant, false),
                (Role::Tool, true),
                (Role::User, false)
            ]
        );
        let u = gaia_core::types::Usage {
            input_tokens: 1010,
            output_tokens: 2,
            cached_input_tokens: 1000,
            cache_write_input_tokens: 0,
        };
        assert_eq!(
            usage_json(u),
            json!({"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 0})
        );
        assert_eq!(usage_json(gaia_core::types::Usage::new(3, 4)), json!({"input_tokens": 3, "output_tokens": 4}));
    }

    #[test]
    fn parses_tools_and_results() {
        let p = parse_request(&json!({
            "model": "claude", "max_tokens": 100, "system": [{"type": "text", "text": "Be Mara."}], "stream": true,
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "text", "text": "checking"}, {"type": "tool_use", "id": "t1", "name": "wx", "input": {"city": "Tokyo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "fog"}]}]}
            ],
            "tools": [{"name": "wx", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}
        }))
        .unwrap();
        assert!(p.stream);
        let m = &p.request.messages;
        assert_eq!(m[0].role, Role::System);
        assert_eq!(m[2].tool_calls[0].arguments, r#"{"city":"Tokyo"}"#);
        assert_eq!(m[3].role, Role::Tool);
        assert_eq!(m[3].content, "fog");
        assert_eq!(p.request.tool_choice, Some(json!("required")));
    }

    #[test]
    fn failed_tool_results_say_so_in_the_text() {
        let body = |is_error: Value, content: Value| {
            json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "wx", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": content, "is_error": is_error}]}
            ]})
        };
        let result = |is_error: Value, content: Value| {
            parse_request(&body(is_error, content)).map(|p| p.request.messages[1].content.clone())
        };
        assert_eq!(result(json!(true), json!("no such city")).unwrap(), "Error: no such city");
        assert_eq!(result(json!(true), json!([])).unwrap(), "Error");
        assert_eq!(result(json!(false), json!("fog")).unwrap(), "fog");
        assert_eq!(result(json!(null), json!("fog")).unwrap(), "fog");
        assert!(result(json!("yes"), json!("fog")).unwrap_err().to_string().contains("is_error"));
    }

    #[test]
    fn refuses_bad_requests() {
        for (body, needle) in [
            (json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}), "max_tokens"),
            (json!({"model": "m", "max_tokens": 5, "messages": []}), "at least one"),
            (json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}), "role"),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "t"}]}),
                "input_schema",
            ),
        ] {
            let e = parse_request(&body).unwrap_err().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn tool_choice_and_stop_sequences() {
        let p = parse_request(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "wx", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "wx", "disable_parallel_tool_use": true}}))
        .unwrap();
        assert_eq!(p.request.tool_choice, Some(json!({"type": "function", "function": {"name": "wx"}})));
        assert_eq!(p.request.extra["parallel_tool_calls"], false);
        let resp = ChatResponse {
            id: "x".into(),
            model: "m".into(),
            content: "Hi".into(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::StopSequence("END".into()),
            usage: Usage::default(),
        };
        let v = render_response(&resp, "msg_1", "m");
        assert_eq!((v["stop_reason"].as_str(), v["stop_sequence"].as_str()), (Some("stop_sequence"), Some("END")));
        let mut r = EventRenderer::new("msg_1", "m");
        r.event(&ChatEvent::Usage(Usage::new(7, 0)));
        assert_eq!(r.start()[0].1["message"]["usage"]["input_tokens"], 7);
        r.event(&ChatEvent::Finish(FinishReason::Other("pause_turn".into())));
        assert_eq!(r.finish().last().map(|e| e.0), Some("message_stop"));
        assert_eq!(stop_reason(&FinishReason::Other("pause_turn".into())), "pause_turn");
    }

    #[test]
    fn renders_text_then_tool() {
        let mut r = EventRenderer::new("msg_1", "m");
        let mut all = r.start();
        all.extend(r.event(&ChatEvent::TextDelta("hi".into())));
        all.extend(r.event(&ChatEvent::ToolCallDelta {
            index: 0,
            id: Some("c".into()),
            name: Some("wx".into()),
            arguments: "{\"a\"".into(),
        }));
        all.extend(r.event(&ChatEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: ":1}".into() }));
        all.extend(r.event(&ChatEvent::Finish(FinishReason::ToolCalls)));
        all.extend(r.finish());
        let names: Vec<_> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(all[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(all[5].1["index"], 1);
    }
}
