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
/// component of the path, existing or not yet: a dangling link cannot lead a write out) are refused.
/// Every file and folder is then opened through the folder as a capability (`cap-std`: `openat2`
/// with `RESOLVE_BENEATH` on Linux, an equivalent walk elsewhere), so even a link put on the way
/// while a call runs cannot lead out of it, and the file itself is never a link followed.
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

    /// `rel` checked, relative to the root (`.` for the root itself): no component may be hidden or
    /// a symbolic link (folders that do not exist yet are made beneath the root, never followed).
    fn resolve(&self, tool: &str, rel: &str) -> Result<String> {
        let err = |m: String| McpError::Tool { tool: tool.to_string(), message: m };
        let rel = rel.trim();
        if rel.is_empty() || rel == "." || rel == "/" {
            return Ok(".".to_string());
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
        Ok(vp.as_str().to_string())
    }

    /// Runs `f` on a blocking thread with the root opened as a capability: paths given to it resolve
    /// beneath the root or fail.
    async fn in_sandbox<T: Send + 'static>(
        &self,
        f: impl FnOnce(&cap_std::fs::Dir) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let dir = cap_std::fs::Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
            f(&dir)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Options opening a file for reading or for replacing, never through a symbolic link in its place.
fn no_follow(write: bool) -> cap_std::fs::OpenOptions {
    use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
    let mut o = cap_std::fs::OpenOptions::new();
    if write {
        o.write(true).create(true).truncate(true);
    } else {
        o.read(true);
    }
    o.follow(FollowSymlinks::No);
    o
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
            parameters: p.into(),
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
                let rel = self.resolve(tool, &path)?;
                let bytes = self
                    .in_sandbox(move |dir| {
                        use std::io::Read;
                        let file = dir.open_with(&rel, &no_follow(false))?;
                        let meta = file.metadata()?;
                        if !meta.is_file() {
                            return Ok(None);
                        }
                        let mut bytes = Vec::new();
                        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
                        Ok(Some(bytes))
                    })
                    .await
                    .map_err(|e| err(format!("{path}: {e}")))?
                    .ok_or_else(|| err(format!("{path} is not a file")))?;
                if bytes.len() as u64 > MAX_FILE_BYTES {
                    return Err(err(format!("{path} is larger than {MAX_FILE_BYTES} bytes")));
                }
                String::from_utf8(bytes).map_err(|_| err(format!("{path} is not UTF-8 text")))
            }
            "list_directory" => {
                let rel = self.resolve(tool, &path)?;
                let mut out = self
                    .in_sandbox(move |dir| {
                        let mut out = Vec::new();
                        for e in dir.read_dir(&rel)? {
                            let e = e?;
                            let name = e.file_name().to_string_lossy().into_owned();
                            if name.starts_with('.') {
                                continue;
                            }
                            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                            out.push(if is_dir { format!("{name}/") } else { name });
                        }
                        Ok(out)
                    })
                    .await
                    .map_err(|e| err(format!("{path}: {e}")))?;
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
                let rel = self.resolve(tool, &path)?;
                let bytes = content.as_bytes().to_vec();
                let len = bytes.len();
                self.in_sandbox(move |dir| {
                    use std::io::Write;
                    if let Some((parent, _)) = rel.rsplit_once('/') {
                        dir.create_dir_all(parent)?;
                    }
                    let mut file = dir.open_with(&rel, &no_follow(true))?;
                    file.write_all(&bytes)?;
                    file.flush()
                })
                .await
                .map_err(|e| err(format!("{path}: {e}")))?;
                Ok(format!("wrote {len} bytes to {path}"))
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

    /// The race: a link put on the way after the path was checked (simulated by opening a path that
    /// goes through one, as a call would if the link appeared between its check and its open). The
    /// folder, opened as a capability, lets nothing resolve outside it, for reads, writes and parents.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_put_on_the_way_after_the_check_still_cannot_lead_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "outside").unwrap();
        let fs = FsToolSource::for_user(dir.path().join("share"), "u1").unwrap();
        std::os::unix::fs::symlink(&outside, fs.root().join("late")).unwrap();
        let read = fs.in_sandbox(|d| d.read_to_string("late/secret.txt")).await;
        assert!(read.is_err(), "read through a late link: {read:?}");
        let write = fs
            .in_sandbox(|d| {
                d.create_dir_all("late/made")?;
                d.open_with("late/pwned.txt", &no_follow(true)).map(|_| ())
            })
            .await;
        assert!(write.is_err(), "write through a late link");
        assert!(!outside.join("pwned.txt").exists() && !outside.join("made").exists(), "nothing outside");
        std::os::unix::fs::symlink(outside.join("secret.txt"), fs.root().join("file-link")).unwrap();
        assert!(fs.in_sandbox(|d| d.open_with("file-link", &no_follow(false)).map(|_| ())).await.is_err());
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
