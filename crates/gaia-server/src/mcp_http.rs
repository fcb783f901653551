//! `/mcp`: Gaia as an MCP server over Streamable HTTP, for other agents (Claude Desktop, IDEs, game
//! servers) holding a Gaia API key. Tools: the knowledge base's (each caller sees only what they may
//! read) and `gaia__chat` (ask a model through Gaia; admitted like `/v1/chat/completions`: the
//! permission to use models, rate limits and budgets, through the conversation engine; metered
//! like any chat). The access middleware authenticates every request; the caller reaches the handler
//! in the request's parts.

use crate::state::AppState;
use gaia_chat::CallSpec;
use gaia_core::auth::Principal;
use gaia_core::types::{ChatMessage, ToolSpec};
use gaia_mcp::server::{mcp_result, mcp_tool};
use gaia_mcp::{KbToolSource, Toolbox};
use gaia_providers::ChatRequest;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde_json::json;
use std::sync::Arc;

/// The `/mcp` service.
pub fn service(state: &AppState) -> StreamableHttpService<GaiaMcp, LocalSessionManager> {
    let st = state.clone();
    // Callers authenticate with API keys or tokens (never cookies), so DNS rebinding cannot borrow a
    // browser's credentials: any Host is accepted.
    StreamableHttpService::new(
        move || Ok(GaiaMcp { state: st.clone() }),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default().disable_allowed_hosts(),
    )
}

/// The MCP handler of one session.
#[derive(Clone)]
pub struct GaiaMcp {
    state: AppState,
}

const CHAT_TOOL: &str = "gaia__chat";

fn chat_spec() -> ToolSpec {
    ToolSpec {
        name: CHAT_TOOL.into(),
        description: Some("Ask a model through Gaia (the caller's default model unless `model` is given).".into()),
        parameters: json!({"type": "object", "properties": {
            "message": {"type": "string"}, "model": {"type": "string"}, "system": {"type": "string"}
        }, "required": ["message"], "additionalProperties": false}),
    }
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>().cloned())
        .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))
}

impl GaiaMcp {
    /// The caller's tools: the knowledge base as they may see it.
    async fn toolbox(&self, p: &Principal) -> Toolbox {
        let mut tb = Toolbox::new();
        if let Some(view) = self.state.kb_for(p).await {
            if let Err(e) = tb.add_listed(Arc::new(KbToolSource::new(view))).await {
                tracing::warn!(error = %e, "knowledge-base tools unavailable over MCP");
            }
        }
        tb
    }

    async fn chat(&self, p: &Principal, args: &serde_json::Value) -> Result<String, String> {
        let message = args.get("message").and_then(|v| v.as_str()).unwrap_or_default().trim().to_string();
        if message.is_empty() {
            return Err("`message` is required".into());
        }
        let settings = self.state.storage().user_settings(&p.user_id).await.map_err(|e| e.to_string())?;
        let model = args
            .get("model")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or(settings.default_model)
            .unwrap_or_default();
        let mut messages = Vec::new();
        if let Some(s) = args.get("system").and_then(|v| v.as_str()) {
            messages.push(ChatMessage::system(s));
        }
        messages.push(ChatMessage::user(message));
        let mut req = ChatRequest::new(model.clone(), messages);
        req.user = Some(p.user_id.clone());
        // Through the engine: the same permission, rate limits and budgets as `/v1/chat/completions`,
        // metered like any call.
        let engine = self.state.engine();
        let admitted = engine.admit_request(p, &req).await.map_err(|e| e.message)?;
        let (r, _) =
            engine.complete(&admitted, CallSpec::new("mcp_chat", &model), &req).await.map_err(|e| e.to_string())?;
        Ok(r.content)
    }
}

impl ServerHandler for GaiaMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("gaia", env!("CARGO_PKG_VERSION")))
            .with_instructions("Gaia: search and read the game's knowledge base, and ask models through Gaia.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let p = caller(&context)?;
        let tb = self.toolbox(&p).await;
        let tools = tb.specs().iter().chain(std::iter::once(&chat_spec())).map(mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let p = caller(&context)?;
        let args = request.arguments.map(serde_json::Value::Object).unwrap_or_else(|| json!({}));
        let outcome = if request.name == CHAT_TOOL {
            self.chat(&p, &args).await
        } else {
            self.toolbox(&p).await.call(&request.name, &args.to_string()).await.map_err(|e| e.to_string())
        };
        Ok(mcp_result(outcome).into())
    }
}
