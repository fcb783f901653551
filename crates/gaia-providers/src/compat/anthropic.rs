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

/// Anthropic's `tool_choice` in OpenAI's form (what [`ChatRequest::tool_choice`] holds).
fn tool_choice(v: &Value) -> Result<Value, ProviderError> {
    match v.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(json!("auto")),
        Some("any") => Ok(json!("required")),
        Some("none") => Ok(json!("none")),
        Some("tool") => {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice of type tool needs a `name`"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid("tool_choice.type must be auto, any, tool or none")),
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
            messages.push(ChatMessage::system(s));
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
        for b in &blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
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
                    messages.push(ChatMessage::tool(id, result));
                }
                Some(t) => {
                    return Err(invalid(format!(
                        "messages.{i}: content block `{t}` is not supported for role {}",
                        role.as_str()
                    )))
                }
                None => return Err(invalid(format!("messages.{i}: content blocks need a `type`"))),
            }
        }
        if !text.is_empty() || !calls.is_empty() || !images.is_empty() {
            let mut msg = ChatMessage::new(role, text);
            msg.tool_calls = calls;
            msg.images = images;
            messages.push(msg);
        }
    }
    let mut req = ChatRequest::new(model, messages);
    req.max_tokens = Some(max_tokens);
    req.temperature = obj.get("temperature").and_then(Value::as_f64).map(|f| f as f32);
    req.top_p = obj.get("top_p").and_then(Value::as_f64).map(|f| f as f32);
    if let Some(stops) = obj.get("stop_sequences") {
        req.stop = stops
            .as_array()
            .ok_or_else(|| invalid("stop_sequences must be an array"))?
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| invalid("stop_sequences must be strings")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(tools) = obj.get("tools") {
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
                parameters: schema,
            });
        }
    }
    if let Some(tc) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        req.tool_choice = Some(tool_choice(tc)?);
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
        _ => "end_turn",
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
        "stop_reason": stop_reason(&resp.finish_reason), "stop_sequence": null,
        "usage": {"input_tokens": resp.usage.input_tokens, "output_tokens": resp.usage.output_tokens}
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
    stop: &'static str,
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
            stop: "end_turn",
        }
    }

    /// `message_start` and a `ping`.
    pub fn start(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                    "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}
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
            ChatEvent::Finish(f) => self.stop = stop_reason(f),
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
            json!({"type": "message_delta", "delta": {"stop_reason": self.stop, "stop_sequence": null},
                   "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens}}),
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
