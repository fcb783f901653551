//! An MCP server for the tests: one tool, served over Streamable HTTP on a loopback port, whose
//! answer is a given function of the call's `query` argument.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type Answer = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// An MCP server with one tool taking `{"query": string}`; counts how often its tools were listed.
/// Clones share the count.
#[derive(Clone)]
pub struct OneTool {
    name: &'static str,
    description: &'static str,
    answer: Answer,
    /// How often the server's tools were listed.
    pub listings: Arc<AtomicUsize>,
}

impl OneTool {
    /// The tool `name`, answering a call with `answer(query)` (the empty string when there is none).
    pub fn new<F, Fut>(name: &'static str, description: &'static str, answer: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        Self { name, description, answer: Arc::new(move |q| Box::pin(answer(q))), listings: Arc::default() }
    }

    /// Serves it over Streamable HTTP on a loopback port; returns its URL (`http://…/mcp`).
    pub async fn serve(&self) -> String {
        let server = self.clone();
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default(),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/mcp")
    }
}

impl ServerHandler for OneTool {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}});
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            self.name,
            self.description,
            Arc::new(schema.as_object().cloned().unwrap_or_default()),
        )]))
    }
    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let q = r.arguments.as_ref().and_then(|a| a.get("query")).and_then(|v| v.as_str()).unwrap_or("").to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text((self.answer)(q).await)]).into())
    }
}
