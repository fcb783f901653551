//! `gaia__chat`: asking a model through Gaia, as a tool for MCP clients (the server's `/mcp` and
//! `gaia mcp serve`). One implementation for both: admitted like `/v1/chat/completions` (permission to
//! use models, rate limits, budgets against the estimate) and metered as `mcp_chat`.

use crate::call::CallSpec;
use crate::engine::Engine;
use gaia_core::auth::Principal;
use gaia_core::types::ChatMessage;
use gaia_mcp::{FnTool, McpError};
use gaia_providers::ChatRequest;
use serde_json::{json, Value};

/// The chat tool's source name (offered as `gaia__chat`).
pub const CHAT_TOOL_SOURCE: &str = "gaia";

/// The endpoint the chat tool's calls are metered under.
pub const CHAT_TOOL_ENDPOINT: &str = "mcp_chat";

/// Longest `message` or `system` the chat tool takes, in characters.
pub const MAX_CHAT_TOOL_TEXT: usize = 100_000;

/// The chat tool (`gaia__chat`: `{message, model?, system?}`) for `principal`, answering through
/// `engine` with the caller's default model unless `model` is given.
pub fn chat_tool(engine: &Engine, principal: Principal) -> FnTool {
    let schema = json!({"type": "object", "properties": {
        "message": {"type": "string", "maxLength": MAX_CHAT_TOOL_TEXT},
        "model": {"type": "string"},
        "system": {"type": "string", "maxLength": MAX_CHAT_TOOL_TEXT}
    }, "required": ["message"], "additionalProperties": false});
    let engine = engine.clone();
    let description = "Ask a model through Gaia (the caller's default model unless `model` is given).";
    FnTool::new(CHAT_TOOL_SOURCE, "chat", description, schema, move |args| {
        let engine = engine.clone();
        let principal = principal.clone();
        async move {
            ask(&engine, &principal, &args).await.map_err(|message| McpError::Tool { tool: "chat".into(), message })
        }
    })
}

async fn ask(engine: &Engine, p: &Principal, args: &Value) -> Result<String, String> {
    let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let message = text("message").ok_or("`message` is required")?;
    let system = text("system");
    if message.chars().count() > MAX_CHAT_TOOL_TEXT || system.is_some_and(|s| s.chars().count() > MAX_CHAT_TOOL_TEXT) {
        return Err(format!("`message` and `system` are at most {MAX_CHAT_TOOL_TEXT} characters"));
    }
    let model = match text("model") {
        Some(m) => m.to_string(),
        None => engine
            .inner
            .storage
            .user_settings(&p.user_id)
            .await
            .map_err(|e| e.to_string())?
            .default_model
            .unwrap_or_default(),
    };
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(ChatMessage::system(s));
    }
    messages.push(ChatMessage::user(message));
    let mut req = ChatRequest::new(model.clone(), messages);
    req.user = Some(p.user_id.clone());
    let admitted = engine.admit_request(p, &req).await.map_err(|e| e.message)?;
    let (r, _) =
        engine.complete(&admitted, CallSpec::new(CHAT_TOOL_ENDPOINT, &model), &req).await.map_err(|e| e.to_string())?;
    Ok(r.content)
}
