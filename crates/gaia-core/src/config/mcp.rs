//! MCP servers and agents (`[[mcp_servers]]` and `[agents]` in `gaia.toml`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How Gaia reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
#[non_exhaustive]
pub enum McpTransport {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        /// Program to run.
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Extra environment variables.
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        /// The endpoint URL.
        url: String,
        /// Extra request headers (for example an authorization header).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

/// One configured MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServerConfig {
    /// Name used to prefix its tools and in logs.
    pub name: String,
    /// How to reach it.
    #[serde(flatten)]
    pub transport: McpTransport,
    /// Seconds a single tool call may take.
    #[serde(default = "default_call_timeout")]
    pub call_timeout_secs: u64,
}

fn default_call_timeout() -> u64 {
    30
}

/// Limits every agent run is held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentLimits {
    /// Most tool calls in one run.
    pub max_tool_calls: u32,
    /// Most model round trips in one run.
    pub max_iterations: u32,
    /// Most sub-agents an orchestrated run may start.
    pub max_agents: u32,
    /// Overall deadline of a run, in seconds.
    pub deadline_secs: u64,
    /// Most a user may spend on agent runs per day, in the currency of the model prices (`None`: no
    /// ceiling). Checked from the usage records before each model call of a run.
    pub daily_cost_ceiling: Option<f64>,
}

/// The agent runtime (`[agents]`; the limits are keys of the same table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// Limits of every run.
    #[serde(flatten)]
    pub limits: AgentLimits,
    /// A folder the built-in filesystem tool may read and write in (no tool when unset).
    pub fs_root: Option<std::path::PathBuf>,
    /// Offer the knowledge-base tools to agents when a knowledge base is configured.
    pub kb_tools: bool,
    /// Agent and orchestrated runs one user may have going at once on one instance; one more is a
    /// 429 with `Retry-After`. Each run is given what is left of the user's budgets when it starts,
    /// so this bounds how far parallel runs can together spend past them. At least 1.
    pub max_concurrent_runs_per_user: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { limits: AgentLimits::default(), fs_root: None, kb_tools: true, max_concurrent_runs_per_user: 2 }
    }
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_tool_calls: 32,
            max_iterations: 8,
            max_agents: 4,
            deadline_secs: 120,
            daily_cost_ceiling: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_server_from_toml_shape() {
        let cfg: McpServerConfig = serde_json::from_value(serde_json::json!({
            "name": "weather", "transport": "http", "url": "http://127.0.0.1:9000/mcp",
            "headers": {"authorization": "Bearer x"}, "call_timeout_secs": 5
        }))
        .unwrap();
        match &cfg.transport {
            McpTransport::Http { url, headers } => {
                assert_eq!(url, "http://127.0.0.1:9000/mcp");
                assert_eq!(headers.len(), 1);
            }
            other => panic!("unexpected transport {other:?}"),
        }
        assert_eq!(cfg.call_timeout_secs, 5);
    }

    #[test]
    fn unknown_transport_is_an_error() {
        let r: Result<McpServerConfig, _> =
            serde_json::from_value(serde_json::json!({"name": "x", "transport": "pigeon"}));
        assert!(r.is_err());
    }
}
