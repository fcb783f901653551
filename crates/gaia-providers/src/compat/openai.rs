//! OpenAI Chat Completions, server side.

use super::{check_schema, check_tool_name, invalid};
use crate::error::ProviderError;
use crate::types::{ChatEvent, ChatRequest, ChatResponse};
use gaia_core::types::{ChatMessage, FinishReason, ImagePart, Role, ToolCall, ToolSpec, Usage};
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

/// Parses a request body. Unknown top-level fields (`response_format`, `seed`, …) pass through.
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
    req.max_tokens = match obj.get("max_completion_tokens").or_else(|| obj.get("max_tokens")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("`max_tokens` must be a positive integer"))?,
        ),
    };
    req.stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| invalid("`stop` must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    };
    if let Some(n) = obj.get("n").and_then(Value::as_u64) {
        if n != 1 {
            return Err(invalid("only `n: 1` is supported"));
        }
    }
    if let Some(tools) = obj.get("tools") {
        let tools = tools.as_array().ok_or_else(|| invalid("`tools` must be an array"))?;
        for t in tools {
            let f = t.get("function").ok_or_else(|| invalid("each tool needs a `function`"))?;
            let name =
                f.get("name").and_then(Value::as_str).ok_or_else(|| invalid("each tool function needs a `name`"))?;
            check_tool_name(name)?;
            let parameters =
                f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            check_schema(name, &parameters)?;
            req.tools.push(ToolSpec {
                name: name.to_string(),
                description: f.get("description").and_then(Value::as_str).map(str::to_string),
                parameters,
            });
        }
    }
    req.tool_choice = obj.get("tool_choice").filter(|v| !v.is_null()).cloned();
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
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    Ok(ParsedRequest { request: req, stream, include_usage })
}

fn opt_f32(obj: &Map<String, Value>, key: &str) -> Result<Option<f32>, ProviderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as f32)).ok_or_else(|| invalid(format!("`{key}` must be a number"))),
    }
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total()})
}

/// A `chat.completion` object for `resp`, naming `model` as the client asked for it.
pub fn render_response(resp: &ChatResponse, id: &str, created: i64, model: &str) -> Value {
    let mut message = json!({"role": "assistant", "content": resp.content, "refusal": null});
    if !resp.tool_calls.is_empty() {
        if resp.content.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(
            resp.tool_calls
                .iter()
                .map(
                    |t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}),
                )
                .collect(),
        );
    }
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": resp.finish_reason.as_openai()}],
        "usage": usage_json(resp.usage),
    })
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

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    /// The first chunk (role).
    pub fn start(&self) -> Value {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    /// Chunks for one event (none for events with no OpenAI equivalent).
    pub fn event(&mut self, ev: &ChatEvent) -> Vec<Value> {
        match ev {
            ChatEvent::TextDelta(t) if !t.is_empty() => vec![self.chunk(json!({"content": t}), None)],
            ChatEvent::ToolCallDelta { index, id, name, arguments } => {
                let mut tc = json!({"index": index, "function": {"arguments": arguments}});
                if let Some(id) = id {
                    tc["id"] = json!(id);
                    tc["type"] = json!("function");
                }
                if let Some(n) = name {
                    tc["function"]["name"] = json!(n);
                }
                vec![self.chunk(json!({"tool_calls": [tc]}), None)]
            }
            ChatEvent::Usage(u) => {
                crate::types::merge_usage(&mut self.usage, *u);
                Vec::new()
            }
            ChatEvent::Finish(f) if !self.finished => {
                self.finished = true;
                vec![self.chunk(json!({}), Some(f.as_openai()))]
            }
            _ => Vec::new(),
        }
    }

    /// Closing chunks: a finish chunk if none was sent, and the usage chunk when asked for.
    pub fn finish(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.finished {
            self.finished = true;
            out.push(self.chunk(json!({}), Some(FinishReason::Stop.as_openai())));
        }
        if self.include_usage {
            out.push(json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_json(self.usage)
            }));
        }
        out
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }
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
            (json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}), "n: 1"),
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
    fn renders_stream() {
        let mut r = ChunkRenderer::new("x", 1, "m", true);
        assert_eq!(r.start()["choices"][0]["delta"]["role"], "assistant");
        let c = r.event(&ChatEvent::ToolCallDelta {
            index: 0,
            id: Some("c".into()),
            name: Some("wx".into()),
            arguments: String::new(),
        });
        assert_eq!(c[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "wx");
        r.event(&ChatEvent::Usage(Usage { input_tokens: 3, output_tokens: 4 }));
        let end = r.finish();
        assert_eq!(end[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(end[1]["usage"]["total_tokens"], 7);
    }
}
