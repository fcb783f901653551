//! Built-in tools that need no MCP server: the knowledge base's tools and a filesystem tool confined
//! to one folder.

use crate::error::{McpError, Result};
use crate::toolbox::{parse_arguments, ToolSource};
use async_trait::async_trait;
use gaia_core::types::ToolSpec;
use gaia_kb::{Kb, KbTools, VaultPath};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The knowledge base's LLM tools (`search_knowledge_base`, `read_kb_file`, …) as a source named `kb`.
/// Give it a [`Kb::restricted`] view so that an agent only sees what its user may read.
pub struct KbToolSource {
    tools: KbTools,
}

impl KbToolSource {
    /// The tools over `kb`.
    pub fn new(kb: Kb) -> Self {
        KbToolSource { tools: KbTools::new(kb) }
    }
}

#[async_trait]
impl ToolSource for KbToolSource {
    fn name(&self) -> &str {
        "kb"
    }
    async fn specs(&self) -> Result<Vec<ToolSpec>> {
        Ok(KbTools::specs())
    }
    async fn call(&self, tool: &str, arguments: &str) -> Result<String> {
        let v = self
            .tools
            .call(tool, arguments)
            .await
            .map_err(|e| McpError::Tool { tool: tool.to_string(), message: e.to_string() })?;
        Ok(v.to_string())
    }
}

/// Largest file the filesystem tool reads or writes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Files under one folder (`read_file`, `list_directory`, `write_file`), as a source named `fs`.
/// Paths are relative to the folder; `..`, absolute paths, hidden entries and symbolic links leading
/// out of it are refused.
pub struct FsToolSource {
    root: PathBuf,
}

impl FsToolSource {
    /// The tool rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| McpError::Invalid(format!("fs tool root {}: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| McpError::Invalid(format!("fs tool root: {e}")))?;
        Ok(FsToolSource { root })
    }

    /// The real path of `rel`, checked to stay inside the root.
    fn resolve(&self, tool: &str, rel: &str) -> Result<PathBuf> {
        let err = |m: String| McpError::Tool { tool: tool.to_string(), message: m };
        let rel = rel.trim();
        if rel.is_empty() || rel == "." || rel == "/" {
            return Ok(self.root.clone());
        }
        let vp = VaultPath::parse(rel).map_err(|e| err(e.to_string()))?;
        if vp.as_str().split('/').any(|s| s.starts_with('.')) {
            return Err(err(format!("{rel}: hidden files are not accessible")));
        }
        let full = self.root.join(vp.as_str());
        // The deepest existing ancestor, resolved, must still be inside the root (no symlink escape).
        let mut probe: &Path = &full;
        while !probe.exists() {
            probe = probe.parent().unwrap_or(&self.root);
        }
        let real = probe.canonicalize().map_err(|e| err(format!("{rel}: {e}")))?;
        if !real.starts_with(&self.root) {
            return Err(err(format!("{rel}: outside the allowed folder")));
        }
        Ok(full)
    }
}

#[async_trait]
impl ToolSource for FsToolSource {
    fn name(&self) -> &str {
        "fs"
    }

    async fn specs(&self) -> Result<Vec<ToolSpec>> {
        let spec = |name: &str, d: &str, p: serde_json::Value| ToolSpec {
            name: name.into(),
            description: Some(d.into()),
            parameters: p,
        };
        Ok(vec![
            spec(
                "read_file",
                "Read a text file (path relative to the shared folder).",
                json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"], "additionalProperties": false}),
            ),
            spec(
                "list_directory",
                "List a folder (relative path; the root when empty).",
                json!({"type": "object", "properties": {"path": {"type": "string"}}, "additionalProperties": false}),
            ),
            spec(
                "write_file",
                "Create or replace a text file (relative path).",
                json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                       "required": ["path", "content"], "additionalProperties": false}),
            ),
        ])
    }

    async fn call(&self, tool: &str, arguments: &str) -> Result<String> {
        let args = parse_arguments(tool, arguments)?;
        let err = |m: String| McpError::Tool { tool: tool.to_string(), message: m };
        let path = args.get("path").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        match tool {
            "read_file" => {
                let p = self.resolve(tool, &path)?;
                let meta = tokio::fs::metadata(&p).await.map_err(|e| err(format!("{path}: {e}")))?;
                if !meta.is_file() {
                    return Err(err(format!("{path} is not a file")));
                }
                if meta.len() > MAX_FILE_BYTES {
                    return Err(err(format!("{path} is larger than {MAX_FILE_BYTES} bytes")));
                }
                let bytes = tokio::fs::read(&p).await.map_err(|e| err(format!("{path}: {e}")))?;
                String::from_utf8(bytes).map_err(|_| err(format!("{path} is not UTF-8 text")))
            }
            "list_directory" => {
                let p = self.resolve(tool, &path)?;
                let mut rd = tokio::fs::read_dir(&p).await.map_err(|e| err(format!("{path}: {e}")))?;
                let mut out = Vec::new();
                while let Some(e) = rd.next_entry().await.map_err(|e| err(e.to_string()))? {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    let dir = e.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
                    out.push(if dir { format!("{name}/") } else { name });
                }
                out.sort();
                Ok(out.join("\n"))
            }
            "write_file" => {
                let content =
                    args.get("content").and_then(|v| v.as_str()).ok_or_else(|| err("`content` is required".into()))?;
                if content.len() as u64 > MAX_FILE_BYTES {
                    return Err(err(format!("content is larger than {MAX_FILE_BYTES} bytes")));
                }
                if path.trim().is_empty() {
                    return Err(err("`path` is required".into()));
                }
                let p = self.resolve(tool, &path)?;
                if let Some(parent) = p.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| err(e.to_string()))?;
                }
                tokio::fs::write(&p, content).await.map_err(|e| err(format!("{path}: {e}")))?;
                Ok(format!("wrote {} bytes to {path}", content.len()))
            }
            other => Err(McpError::UnknownTool(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fs_tool_stays_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FsToolSource::new(dir.path().join("share")).unwrap();
        assert_eq!(
            fs.call("write_file", r#"{"path": "notes/a.txt", "content": "hello"}"#).await.unwrap(),
            "wrote 5 bytes to notes/a.txt"
        );
        assert_eq!(fs.call("read_file", r#"{"path": "notes/a.txt"}"#).await.unwrap(), "hello");
        assert_eq!(fs.call("list_directory", "{}").await.unwrap(), "notes/");
        for bad in ["../x", "/etc/passwd", "notes/../../x", ".secret"] {
            let args = json!({"path": bad}).to_string();
            assert!(matches!(fs.call("read_file", &args).await, Err(McpError::Tool { .. })), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", dir.path().join("share/etc")).unwrap();
            assert!(fs.call("read_file", r#"{"path": "etc/hostname"}"#).await.is_err(), "symlink out");
        }
        assert!(fs.call("read_file", r#"{"path": "missing.txt"}"#).await.is_err());
        assert!(matches!(fs.call("delete_everything", "{}").await, Err(McpError::UnknownTool(_))));
    }
}
