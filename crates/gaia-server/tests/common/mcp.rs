//! The test MCP server is `gaia_mcp::testing::McpTestServer` (one copy for every crate's tests and the
//! benchmarks).

pub use gaia_mcp::testing::McpTestServer;
