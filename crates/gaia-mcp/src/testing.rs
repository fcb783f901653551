//! Test support (feature `testing`): an MCP server written in a few lines (tools answering a
//! `{"query": string}` argument), served with rmcp over Streamable HTTP on a loopback port. One copy
//! for the tests of every crate and the benchmarks.
//!
//! ```no_run
//! # async fn demo() {
//! use gaia_mcp::testing::McpTestServer;
//! let game = McpTestServer::one("roll", "Roll dice", |q| async move { format!("rolled 4 on {q}") });
//! let url = game.serve().await; // http://127.0.0.1:PORT/mcp
//! # }
//! ```

use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type Answer = Arc<dyn Fn(String) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

#[derive(Clone)]
struct TestTool {
    name: String,
    description: String,
    answer: Answer,
}

/// An MCP server whose tools each take `{"query": string}` and answer with a given function of it
/// (`Err`: a tool error). Clones share the tools and the count of listings.
#[derive(Clone, Default)]
pub struct McpTestServer {
    tools: Arc<Vec<TestTool>>,
    /// How often the server's tools were listed.
    pub listings: Arc<AtomicUsize>,
}

impl McpTestServer {
    /// A server without tools (add them with [`McpTestServer::with_tool`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A server with one tool that always answers `answer(query)`.
    pub fn one<F, Fut>(name: &str, description: &str, answer: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        let answer = Arc::new(answer);
        Self::new().with_tool(name, description, move |q| {
            let answer = answer.clone();
            async move { Ok(answer(q).await) }
        })
    }

    /// Adds the tool `name`, answering a call with `answer(query)` (the empty string when the call
    /// has none); an `Err` is returned as a tool error.
    pub fn with_tool<F, Fut>(mut self, name: &str, description: &str, answer: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let tool = TestTool {
            name: name.to_string(),
            description: description.to_string(),
            answer: Arc::new(move |q| Box::pin(answer(q))),
        };
        Arc::make_mut(&mut self.tools).push(tool);
        self
    }

    /// How often the tools were listed so far.
    pub fn listed(&self) -> usize {
        self.listings.load(Ordering::SeqCst)
    }

    /// Serves it on `addr` (port 0: any free one); returns the address and the serving task (abort
    /// it to stop the server).
    ///
    /// # Panics
    /// When `addr` cannot be bound (test support only).
    pub async fn serve_on(&self, addr: &str) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let server = self.clone();
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default(),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        #[allow(clippy::expect_used)]
        let listener = tokio::net::TcpListener::bind(addr).await.expect("a loopback port for the test MCP server");
        #[allow(clippy::expect_used)]
        let addr = listener.local_addr().expect("the bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, task)
    }

    /// Serves it on a free loopback port for as long as the runtime lives; returns its URL
    /// (`http://127.0.0.1:PORT/mcp`).
    pub async fn serve(&self) -> String {
        let (addr, _task) = self.serve_on("127.0.0.1:0").await;
        format!("http://{addr}/mcp")
    }
}

impl ServerHandler for McpTestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        let schema = serde_json::json!({"type": "object", "properties": {"query": {"type": "string"}}});
        let schema = Arc::new(schema.as_object().cloned().unwrap_or_default());
        let tools =
            self.tools.iter().map(|t| Tool::new(t.name.clone(), t.description.clone(), schema.clone())).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = self.tools.iter().find(|t| t.name == r.name.as_ref()) else {
            return Err(ErrorData::invalid_params(format!("no tool {}", r.name), None));
        };
        let q = r.arguments.as_ref().and_then(|a| a.get("query")).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let out = match (tool.answer)(q).await {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        };
        Ok(out.into())
    }
}
