//! # gaia-mcp
//!
//! The MCP agent runtime of Gaia: connections to MCP servers (stdio or Streamable HTTP), the
//! tool-calling loop, warm agents and multi-agent orchestration, built on the official `rmcp` SDK.
//!
//! This first cut holds the configuration model: which MCP servers an agent connects to, and the limits
//! every agent run is held to.
//!
//! ```
//! use gaia_mcp::{AgentLimits, McpServerConfig};
//!
//! let cfg: McpServerConfig = serde_json::from_value(serde_json::json!({
//!     "name": "game", "transport": "stdio", "command": "game-mcp", "args": ["--world", "zombies"]
//! })).unwrap();
//! assert_eq!(cfg.name, "game");
//! assert!(AgentLimits::default().max_tool_calls > 0);
//! ```

pub mod config;

pub use config::{AgentLimits, McpServerConfig, Transport};
