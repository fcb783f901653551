//! MCP servers as tool sources: a connection made on first use (a child process over stdio, or a
//! Streamable HTTP endpoint), tools listed with `tools/list`, calls with `tools/call` under the
//! server's `call_timeout_secs`. A broken connection (the server crashed or restarted) is dropped and
//! made again on the next use; a call that fails because of it is retried once on the new connection.

use crate::error::{McpError, Result};
use crate::toolbox::{parse_arguments, ToolSource};
use async_trait::async_trait;
use gaia_core::config::{McpServerConfig, McpTransport};
use gaia_core::types::ToolSpec;
use rmcp::model::{CallToolRequestParams, ContentBlock};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

type Connection = Arc<RunningService<RoleClient, ()>>;

/// One configured MCP server.
pub struct McpClientSource {
    config: McpServerConfig,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for McpClientSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClientSource").field("name", &self.config.name).finish()
    }
}

/// How long connecting (start-up and the initialize handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

impl McpClientSource {
    /// A source for `config` (connects on first use).
    pub fn new(config: McpServerConfig) -> Self {
        McpClientSource { config, conn: Mutex::new(None) }
    }

    fn fail(&self, message: impl Into<String>) -> McpError {
        McpError::Server { server: self.config.name.clone(), message: message.into() }
    }

    async fn connect(&self) -> Result<Connection> {
        let service = match &self.config.transport {
            McpTransport::Stdio { command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).kill_on_drop(true);
                let transport =
                    TokioChildProcess::new(cmd).map_err(|e| self.fail(format!("cannot start `{command}`: {e}")))?;
                tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport))
                    .await
                    .map_err(|_| self.fail("no answer to initialize"))?
                    .map_err(|e| self.fail(format!("initialize failed: {e}")))?
            }
            McpTransport::Http { url, headers } => {
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                use rmcp::transport::StreamableHttpClientTransport;
                let mut custom = std::collections::HashMap::new();
                for (k, v) in headers {
                    let name = k.parse().map_err(|_| self.fail(format!("bad header name {k}")))?;
                    let value = v.parse().map_err(|_| self.fail(format!("bad value for header {k}")))?;
                    custom.insert(name, value);
                }
                let cfg = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
                let transport = StreamableHttpClientTransport::from_config(cfg);
                tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport))
                    .await
                    .map_err(|_| self.fail("no answer to initialize"))?
                    .map_err(|e| self.fail(format!("initialize failed: {e}")))?
            }
            other => return Err(self.fail(format!("unsupported transport {other:?}"))),
        };
        Ok(Arc::new(service))
    }

    /// The live connection, made if needed.
    async fn connection(&self) -> Result<Connection> {
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref().filter(|c| !c.is_transport_closed()) {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        *g = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self, broken: &Connection) {
        let mut g = self.conn.lock().await;
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            *g = None;
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.call_timeout_secs.max(1))
    }
}

fn text_of(content: &[ContentBlock]) -> String {
    content
        .iter()
        .map(|c| match c.as_text() {
            Some(t) => t.text.clone(),
            None => serde_json::to_string(c).unwrap_or_default(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[async_trait]
impl ToolSource for McpClientSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn specs(&self) -> Result<Vec<ToolSpec>> {
        for attempt in 0..2 {
            let c = self.connection().await?;
            match tokio::time::timeout(self.timeout(), c.list_all_tools()).await {
                Ok(Ok(tools)) => {
                    return Ok(tools
                        .into_iter()
                        .map(|t| ToolSpec {
                            name: t.name.to_string(),
                            description: t.description.map(|d| d.to_string()),
                            parameters: serde_json::Value::Object((*t.input_schema).clone()).into(),
                        })
                        .collect())
                }
                Ok(Err(e)) if attempt == 0 => {
                    tracing::info!(server = %self.config.name, error = %e, "MCP server connection lost; reconnecting");
                    self.forget(&c).await;
                }
                Ok(Err(e)) => return Err(self.fail(format!("tools/list failed: {e}"))),
                Err(_) => {
                    self.forget(&c).await;
                    return Err(self.fail("tools/list timed out"));
                }
            }
        }
        Err(self.fail("unreachable"))
    }

    async fn call(&self, tool: &str, arguments: &str) -> Result<String> {
        let args = match parse_arguments(tool, arguments)? {
            serde_json::Value::Object(m) => m,
            _ => return Err(McpError::Tool { tool: tool.into(), message: "arguments must be a JSON object".into() }),
        };
        for attempt in 0..2 {
            let c = self.connection().await?;
            let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args.clone());
            match tokio::time::timeout(self.timeout(), c.call_tool(params)).await {
                Ok(Ok(r)) => {
                    let text = text_of(&r.content);
                    if r.is_error == Some(true) {
                        return Err(McpError::Tool { tool: tool.into(), message: text });
                    }
                    return Ok(match (&r.structured_content, text.is_empty()) {
                        (Some(v), true) => v.to_string(),
                        _ => text,
                    });
                }
                // The transport broke (the server crashed or restarted): reconnect and try once more.
                Ok(Err(e)) if attempt == 0 && c.is_transport_closed() => {
                    tracing::info!(server = %self.config.name, error = %e, "MCP server connection lost during a call; retrying");
                    self.forget(&c).await;
                }
                Ok(Err(e)) => return Err(McpError::Tool { tool: tool.into(), message: e.to_string() }),
                Err(_) => {
                    return Err(McpError::Tool {
                        tool: tool.into(),
                        message: format!("no answer within {} s", self.config.call_timeout_secs),
                    })
                }
            }
        }
        Err(McpError::Tool { tool: tool.into(), message: format!("server {} keeps failing", self.config.name) })
    }
}
