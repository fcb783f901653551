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

/// Longest user id accepted as a folder name by [`FsToolSource::for_user`].
pub const MAX_USER_ID_CHARS: usize = 128;

/// Files under one folder (`read_file`, `list_directory`, `write_file`), as a source named `fs`.
/// Paths are relative to the folder; `..`, absolute paths, hidden entries and symbolic links (any
/// component of the path, existing or not yet: a dangling link cannot lead a write out) are refused,
/// and files are opened without following a link put in their place meanwhile (`O_NOFOLLOW`).
pub struct FsToolSource {
    root: PathBuf,
}

fn invalid(m: String) -> McpError {
    McpError::Invalid(m)
}

/// Makes the folder `dir` if it is missing and checks that it is a real folder, not a symbolic link.
fn real_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a folder (a symbolic link?)", dir.display())));
    }
    Ok(())
}

impl FsToolSource {
    /// The tool rooted at `root` (created if missing), shared by whoever is given it.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| invalid(format!("fs tool root {}: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| invalid(format!("fs tool root: {e}")))?;
        Ok(FsToolSource { root })
    }

    /// The tool of one user: rooted at `<root>/users/<user_id>/`, created on demand, so that users
    /// never see each other's files. `user_id` must be 1 to [`MAX_USER_ID_CHARS`] ASCII letters,
    /// digits, `-` or `_`.
    pub fn for_user(root: impl Into<PathBuf>, user_id: &str) -> Result<Self> {
        let ok = !user_id.is_empty()
            && user_id.len() <= MAX_USER_ID_CHARS
            && user_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(invalid("fs tool: the user id cannot name a folder".into()));
        }
        let base = Self::new(root)?.root;
        let mut dir = base;
        for part in ["users", user_id] {
            dir.push(part);
            real_dir(&dir).map_err(|e| invalid(format!("fs tool folder: {e}")))?;
        }
        Ok(FsToolSource { root: dir })
    }

    /// The folder the tool works in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `rel` under the root, checked: no component may be hidden or a symbolic link
    /// (those that do not exist yet are made by [`FsToolSource::make_parents`], never followed).
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
        let mut full = self.root.clone();
        let mut exists = true;
        for part in vp.as_str().split('/') {
            full.push(part);
            if !exists {
                continue;
            }
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(err(format!("{rel}: symbolic links are not followed")));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => exists = false,
                Err(e) => return Err(err(format!("{rel}: {e}"))),
            }
        }
        Ok(full)
    }

    /// Makes the missing folders between the root and `path` one at a time, refusing a symbolic link
    /// found (or put) on the way.
    fn make_parents(&self, path: &Path) -> std::io::Result<()> {
        let Some(parent) = path.parent() else { return Ok(()) };
        let Ok(rest) = parent.strip_prefix(&self.root) else {
            return Err(std::io::Error::other("outside the allowed folder"));
        };
        let mut dir = self.root.clone();
        for c in rest.components() {
            dir.push(c);
            real_dir(&dir)?;
        }
        Ok(())
    }
}

/// Opens `path` for reading or for replacing, never through a symbolic link in its place.
async fn open_no_follow(path: &Path, write: bool) -> std::io::Result<tokio::fs::File> {
    let mut o = tokio::fs::OpenOptions::new();
    if write {
        o.write(true).create(true).truncate(true);
    } else {
        o.read(true);
    }
    #[cfg(unix)]
    o.custom_flags(libc::O_NOFOLLOW);
    o.open(path).await
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
                "Read a text file (path relative to your folder).",
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
                use tokio::io::AsyncReadExt;
                let p = self.resolve(tool, &path)?;
                let file = open_no_follow(&p, false).await.map_err(|e| err(format!("{path}: {e}")))?;
                let meta = file.metadata().await.map_err(|e| err(format!("{path}: {e}")))?;
                if !meta.is_file() {
                    return Err(err(format!("{path} is not a file")));
                }
                if meta.len() > MAX_FILE_BYTES {
                    return Err(err(format!("{path} is larger than {MAX_FILE_BYTES} bytes")));
                }
                let mut bytes = Vec::new();
                file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).await.map_err(|e| err(format!("{path}: {e}")))?;
                if bytes.len() as u64 > MAX_FILE_BYTES {
                    return Err(err(format!("{path} is larger than {MAX_FILE_BYTES} bytes")));
                }
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
                use tokio::io::AsyncWriteExt;
                let p = self.resolve(tool, &path)?;
                self.make_parents(&p).map_err(|e| err(format!("{path}: {e}")))?;
                let mut file = open_no_follow(&p, true).await.map_err(|e| err(format!("{path}: {e}")))?;
                file.write_all(content.as_bytes()).await.map_err(|e| err(format!("{path}: {e}")))?;
                file.flush().await.map_err(|e| err(format!("{path}: {e}")))?;
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

    /// The attack: a dangling symbolic link (its target does not exist yet) inside the folder, then a
    /// write through it, directly or as a parent folder. Nothing may appear outside.
    #[cfg(unix)]
    #[tokio::test]
    async fn dangling_links_cannot_lead_a_write_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let fs = FsToolSource::for_user(dir.path().join("share"), "u1").unwrap();
        let mine = fs.root().to_path_buf();
        std::os::unix::fs::symlink(outside.join("pwned.txt"), mine.join("note.txt")).unwrap();
        std::os::unix::fs::symlink(outside.join("newdir"), mine.join("sub")).unwrap();
        for path in ["note.txt", "sub/x.txt", "sub/deeper/x.txt"] {
            let args = json!({"path": path, "content": "owned"}).to_string();
            let e = fs.call("write_file", &args).await.unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{path}: {e}");
            let args = json!({"path": path}).to_string();
            assert!(fs.call("read_file", &args).await.is_err(), "{path}");
        }
        assert!(!outside.join("pwned.txt").exists(), "nothing written through the dangling link");
        assert!(!outside.join("newdir").exists(), "no folder made through the dangling link");
        // A user area that is itself a link is refused too.
        std::fs::create_dir_all(dir.path().join("share/users")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("share/users/u2")).unwrap();
        assert!(FsToolSource::for_user(dir.path().join("share"), "u2").is_err());
    }

    #[tokio::test]
    async fn each_user_has_an_own_area() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        let alice = FsToolSource::for_user(&root, "alice").unwrap();
        let bob = FsToolSource::for_user(&root, "bob").unwrap();
        alice.call("write_file", r#"{"path": "diary.txt", "content": "secret"}"#).await.unwrap();
        assert!(root.join("users/alice/diary.txt").is_file());
        assert!(bob.call("read_file", r#"{"path": "diary.txt"}"#).await.is_err());
        assert!(bob.call("read_file", r#"{"path": "../alice/diary.txt"}"#).await.is_err());
        assert_eq!(bob.call("list_directory", "{}").await.unwrap(), "");
        for bad in ["", "..", "a/b", ".x", "a b", &"x".repeat(MAX_USER_ID_CHARS + 1)] {
            assert!(FsToolSource::for_user(&root, bad).is_err(), "{bad}");
        }
    }
}
