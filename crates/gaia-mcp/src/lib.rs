//! # gaia-mcp
//!
//! The MCP agent runtime of Gaia, built on the official Rust MCP SDK (`rmcp`): tools from several
//! sources behind one [`Toolbox`] (the knowledge base, a sandboxed filesystem, MCP servers over stdio
//! or Streamable HTTP via [`McpClientSource`], Rust functions via [`FnTool`]), the tool-calling loop
//! of an [`Agent`] with its limits, multi-agent runs with an [`Orchestrator`], and an MCP server that
//! offers a toolbox to other agents ([`ToolServer`], `gaia mcp serve`).
//!
//! ```
//! use gaia_mcp::{FnTool, Toolbox};
//! use std::sync::Arc;
//!
//! # tokio_test_block(async {
//! let mut tools = Toolbox::new();
//! tools.add(Arc::new(FnTool::new("game", "weather", "The weather in a zone",
//!     serde_json::json!({"type": "object", "properties": {"zone": {"type": "string"}}}),
//!     |args| async move { Ok(format!("fog over {}", args["zone"].as_str().unwrap_or("?"))) })));
//! tools.refresh().await;
//! assert_eq!(tools.specs()[0].name, "game__weather");
//! assert_eq!(tools.call("game__weather", r#"{"zone": "docks"}"#).await.unwrap(), "fog over docks");
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! Configuration lives in `gaia_core::config` (`[[mcp_servers]]`, `[agents]`).

#![warn(missing_docs)]

pub mod agent;
pub mod builtin;
pub mod client;
pub mod error;
pub mod meter;
pub mod orchestrate;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
pub mod toolbox;

pub use agent::{Agent, AgentEvent, AgentRun, ToolCallRecord};
pub use builtin::{FsToolSource, KbToolSource};
pub use client::McpClientSource;
pub use error::{McpError, Result};
pub use gaia_core::config::{AgentConfig, AgentLimits, McpServerConfig, McpTransport};
pub use meter::{CallOutcome, CallRecorder, ModelCall};
pub use orchestrate::{json_object, OrchestratedRun, Orchestrator, Specialist, SubRun, Subtask};
pub use server::ToolServer;
pub use toolbox::{FnTool, ToolSource, Toolbox};
