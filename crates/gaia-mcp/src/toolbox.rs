//! Tools from several sources (the knowledge base, the sandboxed filesystem, MCP servers, Rust code)
//! behind one [`Toolbox`] that lists them for a model and routes its calls.
//!
//! A tool is offered to the model as `<source>__<tool>` (names limited to the characters every vendor
//! accepts), so two sources may each have a `search` tool.

use crate::error::{McpError, Result};
use async_trait::async_trait;
use gaia_core::types::ToolSpec;
use std::collections::HashMap;
use std::sync::Arc;

/// Separator between a source's name and its tool's name in the names offered to models.
pub const SEPARATOR: &str = "__";

/// Longest tool name vendors accept.
pub const MAX_TOOL_NAME: usize = 64;

/// A set of tools.
#[async_trait]
pub trait ToolSource: Send + Sync {
    /// The source's name (prefix of its tools' names).
    fn name(&self) -> &str;
    /// Its tools.
    async fn specs(&self) -> Result<Vec<ToolSpec>>;
    /// Calls `tool` with `arguments` (a JSON object as text); the result is the text the model reads.
    /// An `Err` is a tool failure, reported to the model as such.
    async fn call(&self, tool: &str, arguments: &str) -> Result<String>;
}

/// A tool written in Rust: a name, a JSON schema and an async function.
pub struct FnTool {
    source: String,
    spec: ToolSpec,
    #[allow(clippy::type_complexity)]
    run: Arc<dyn Fn(serde_json::Value) -> futures::future::BoxFuture<'static, Result<String>> + Send + Sync>,
}

impl FnTool {
    /// A tool named `name` in source `source`, with a JSON-schema `parameters` object.
    pub fn new<F, Fut>(source: &str, name: &str, description: &str, parameters: serde_json::Value, run: F) -> Self
    where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String>> + Send + 'static,
    {
        FnTool {
            source: source.to_string(),
            spec: ToolSpec {
                name: name.to_string(),
                description: Some(description.to_string()),
                parameters: parameters.into(),
            },
            run: Arc::new(move |v| Box::pin(run(v))),
        }
    }
}

#[async_trait]
impl ToolSource for FnTool {
    fn name(&self) -> &str {
        &self.source
    }
    async fn specs(&self) -> Result<Vec<ToolSpec>> {
        Ok(vec![self.spec.clone()])
    }
    async fn call(&self, tool: &str, arguments: &str) -> Result<String> {
        if tool != self.spec.name {
            return Err(McpError::UnknownTool(tool.to_string()));
        }
        let args: serde_json::Value = parse_arguments(tool, arguments)?;
        (self.run)(args).await
    }
}

/// Parses a model's tool arguments (empty means `{}`).
pub fn parse_arguments(tool: &str, arguments: &str) -> Result<serde_json::Value> {
    let raw = if arguments.trim().is_empty() { "{}" } else { arguments };
    serde_json::from_str(raw)
        .map_err(|e| McpError::Tool { tool: tool.to_string(), message: format!("arguments are not JSON: {e}") })
}

/// Tools of several sources, with their specs listed once ([`Toolbox::refresh`]) and kept.
#[derive(Clone, Default)]
pub struct Toolbox {
    sources: Vec<Arc<dyn ToolSource>>,
    /// Offered name → (source index, the tool's own name).
    routes: HashMap<String, (usize, String)>,
    specs: Vec<ToolSpec>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox").field("tools", &self.specs.iter().map(|s| &s.name).collect::<Vec<_>>()).finish()
    }
}

/// The name offered to models for `tool` of `source`.
pub fn offered_name(source: &str, tool: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
    };
    let mut n = format!("{}{SEPARATOR}{}", clean(source), clean(tool));
    n.truncate(MAX_TOOL_NAME);
    n
}

impl Toolbox {
    /// An empty toolbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source (call [`Toolbox::refresh`] afterwards to list its tools).
    pub fn add(&mut self, source: Arc<dyn ToolSource>) {
        self.sources.push(source);
    }

    /// Lists every source's tools. A source that fails is left out (and logged), so one broken MCP
    /// server does not take the others down; returns the names of the sources that failed.
    pub async fn refresh(&mut self) -> Vec<(String, String)> {
        let listed = futures::future::join_all(self.sources.iter().map(|s| s.specs())).await;
        self.routes.clear();
        self.specs.clear();
        let mut failed = Vec::new();
        for (i, r) in listed.into_iter().enumerate() {
            let source = self.sources[i].name().to_string();
            match r {
                Ok(specs) => self.index(i, specs),
                Err(e) => {
                    tracing::warn!(source = %source, error = %e, "cannot list the tools of a source");
                    failed.push((source, e.to_string()));
                }
            }
        }
        failed
    }

    /// Adds a source and lists its tools now, keeping the tools already listed (for adding per-request
    /// tools to a warm toolbox without listing the others again).
    pub async fn add_listed(&mut self, source: Arc<dyn ToolSource>) -> Result<()> {
        let specs = source.specs().await?;
        self.sources.push(source);
        self.index(self.sources.len() - 1, specs);
        Ok(())
    }

    /// Offers the tools `specs` of source `i` under their offered names (a name already taken keeps
    /// its first tool).
    fn index(&mut self, i: usize, specs: Vec<ToolSpec>) {
        let source = self.sources[i].name().to_string();
        for s in specs {
            let name = offered_name(&source, &s.name);
            if self.routes.contains_key(&name) {
                tracing::warn!(tool = %name, "two tools share a name; keeping the first");
                continue;
            }
            self.routes.insert(name.clone(), (i, s.name.clone()));
            self.specs.push(ToolSpec { name, ..s });
        }
    }

    /// The same toolbox with only the tools of the sources named in `sources`.
    pub fn only(&self, sources: &[String]) -> Toolbox {
        let keep: Vec<bool> = self.sources.iter().map(|s| sources.iter().any(|n| n == s.name())).collect();
        let routes: HashMap<String, (usize, String)> =
            self.routes.iter().filter(|(_, (i, _))| keep[*i]).map(|(k, v)| (k.clone(), v.clone())).collect();
        let specs = self.specs.iter().filter(|s| routes.contains_key(&s.name)).cloned().collect();
        Toolbox { sources: self.sources.clone(), routes, specs }
    }

    /// The names of the sources.
    pub fn source_names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name().to_string()).collect()
    }

    /// The tools as offered to a model.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Calls the tool offered as `name`.
    pub async fn call(&self, name: &str, arguments: &str) -> Result<String> {
        let (i, tool) = self.routes.get(name).ok_or_else(|| McpError::UnknownTool(name.to_string()))?;
        self.sources[*i].call(tool, arguments).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn routes_calls_by_offered_name() {
        let mut tb = Toolbox::new();
        tb.add(Arc::new(FnTool::new("game", "roll", "Roll a die", json!({"type": "object"}), |v| async move {
            Ok(format!("rolled {}", v["sides"].as_u64().unwrap_or(6)))
        })));
        tb.add(Arc::new(FnTool::new("my server", "roll", "Another", json!({"type": "object"}), |_| async move {
            Err(McpError::Tool { tool: "roll".into(), message: "jammed".into() })
        })));
        assert!(tb.refresh().await.is_empty());
        let names: Vec<_> = tb.specs().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["game__roll", "my_server__roll"]);
        assert_eq!(tb.call("game__roll", r#"{"sides": 20}"#).await.unwrap(), "rolled 20");
        assert_eq!(tb.call("game__roll", "").await.unwrap(), "rolled 6");
        assert!(matches!(tb.call("my_server__roll", "{}").await, Err(McpError::Tool { .. })));
        assert!(matches!(tb.call("game__roll", "{not json").await, Err(McpError::Tool { .. })));
        assert!(matches!(tb.call("nope", "{}").await, Err(McpError::UnknownTool(_))));
        assert_eq!(offered_name(&"x".repeat(80), "t").len(), MAX_TOOL_NAME);
    }
}
