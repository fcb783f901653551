//! `/mcp`: Gaia as an MCP server over Streamable HTTP, for other agents (Claude Desktop, IDEs, game
//! servers) holding a Gaia API key. Tools: the knowledge base's (each caller sees only what they may
//! read) and `gaia__chat` (ask a model through Gaia; admitted like `/v1/chat/completions`: the
//! permission to use models, rate limits and budgets, through the conversation engine; metered
//! as `mcp_chat`: `gaia_chat::chat_tool`, the same tool as `gaia mcp serve`'s). The access middleware authenticates every request; the caller reaches the handler
//! in the request's parts.

use crate::state::AppState;
use gaia_core::auth::Principal;
use gaia_mcp::server::{mcp_result, mcp_tool};
use gaia_mcp::{KbToolSource, Toolbox};
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

fn caller(ctx: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>().cloned())
        .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))
}

impl GaiaMcp {
    /// The caller's tools: the knowledge base as they may see it, and `gaia__chat` through the engine.
    async fn toolbox(&self, p: &Principal) -> Toolbox {
        let mut tb = Toolbox::new();
        if let Some(view) = self.state.kb_for(p).await {
            if let Err(e) = tb.add_listed(Arc::new(KbToolSource::new(view))).await {
                tracing::warn!(error = %e, "knowledge-base tools unavailable over MCP");
            }
        }
        if let Err(e) = tb.add_listed(Arc::new(gaia_chat::chat_tool(self.state.engine(), p.clone()))).await {
            tracing::warn!(error = %e, "the chat tool is unavailable over MCP");
        }
        tb
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
        let tools = tb.specs().iter().map(mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let p = caller(&context)?;
        let args = request.arguments.map(serde_json::Value::Object).unwrap_or_else(|| json!({}));
        let outcome = self.toolbox(&p).await.call(&request.name, &args.to_string()).await.map_err(|e| e.to_string());
        Ok(mcp_result(outcome).into())
    }
}
