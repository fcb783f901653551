//! Errors of the agent runtime.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// An MCP server could not be started or reached, or broke the protocol.
    #[error("MCP server {server}: {message}")]
    Server {
        /// The server's configured name.
        server: String,
        /// What happened.
        message: String,
    },
    /// A tool failed (the message is what the model is told).
    #[error("tool {tool}: {message}")]
    Tool {
        /// The tool's name.
        tool: String,
        /// What happened.
        message: String,
    },
    /// No tool of that name.
    #[error("no tool named {0}")]
    UnknownTool(String),
    /// Bad arguments or configuration.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A limit stopped the run (tool calls, iterations, deadline, cost).
    #[error("limit reached: {0}")]
    Limit(String),
    /// The model call failed.
    #[error(transparent)]
    Provider(#[from] gaia_providers::ProviderError),
}

/// Results of this crate.
pub type Result<T, E = McpError> = std::result::Result<T, E>;
