//! Gaia's tools offered as an MCP server (`gaia mcp serve` over stdio), so that other agents (Claude
//! Desktop, IDEs, game servers) can use a Gaia knowledge base.

use crate::toolbox::Toolbox;
use gaia_core::types::ToolSpec;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use std::sync::Arc;

/// A tool as MCP lists it.
pub fn mcp_tool(spec: &ToolSpec) -> Tool {
    let schema = match &*spec.parameters {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    Tool::new_with_raw(spec.name.clone(), spec.description.clone().map(Into::into), Arc::new(schema))
}

/// A tool's outcome as an MCP result: failures are results the calling model reads (`isError`), not
/// protocol errors.
pub fn mcp_result(outcome: std::result::Result<String, String>) -> CallToolResult {
    match outcome {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
    }
}

/// An MCP server handler over a [`Toolbox`] (tools keep their offered names, `source__tool`).
#[derive(Clone, Debug)]
pub struct ToolServer {
    toolbox: Arc<Toolbox>,
}

impl ToolServer {
    /// A server offering `toolbox`'s tools.
    pub fn new(toolbox: Arc<Toolbox>) -> Self {
        ToolServer { toolbox }
    }

    /// Serves on this process's stdin and stdout until the client closes them.
    pub async fn serve_stdio(self) -> std::io::Result<()> {
        let running = self.serve(rmcp::transport::stdio()).await.map_err(std::io::Error::other)?;
        running.waiting().await.map_err(std::io::Error::other)?;
        Ok(())
    }
}

impl ServerHandler for ToolServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("gaia", env!("CARGO_PKG_VERSION")))
            .with_instructions("Gaia's tools: search and read the game's knowledge base.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.toolbox.specs().iter().map(mcp_tool).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.map(serde_json::Value::Object).unwrap_or_else(|| serde_json::json!({}));
        Ok(mcp_result(self.toolbox.call(&request.name, &args.to_string()).await.map_err(|e| e.to_string())).into())
    }
}
