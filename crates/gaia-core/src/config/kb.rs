//! Knowledge-base settings (`[kb]`), used by `gaia-kb`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Where the documents of a vault are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KbStorageMode {
    /// Files in a folder: a git working copy synced from `remote` when one is set (edits are commits
    /// when the folder is a git repository), or a plain folder otherwise.
    #[default]
    Git,
    /// Documents live in the SQL database (`database_url`).
    Database,
    /// The database serves reads and edits; each change is also committed to the git working copy and
    /// pushed when possible, and remote changes are imported on sync.
    Hybrid,
}

/// Configuration of the knowledge base.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KbConfig {
    /// Storage mode.
    pub mode: KbStorageMode,
    /// Name of the knowledge base (its key in the database in `database`/`hybrid` modes).
    pub name: String,
    /// Local folder of the vault (the git working copy in `git` and `hybrid` modes).
    pub root: PathBuf,
    /// Git remote to clone, fetch and push (`https://…`, `file://…`, or a local path).
    pub remote: Option<String>,
    /// Branch to follow.
    pub branch: String,
    /// Token for private HTTPS remotes (sent as HTTP basic auth with user `x-access-token`).
    pub token: Option<String>,
    /// Name of an environment variable holding the token, used when `token` is unset.
    pub token_env: Option<String>,
    /// Seconds between background syncs (0 disables periodic sync).
    pub sync_interval_secs: u64,
    /// Folder for a persistent search index; when unset the index is kept in memory and built at start.
    pub index_dir: Option<PathBuf>,
    /// Push local commits to the remote after each edit and on sync.
    pub push: bool,
    /// Committer name of the commits Gaia makes (authors are the editing users).
    pub committer_name: String,
    /// Committer e-mail of the commits Gaia makes.
    pub committer_email: String,
    /// Largest document accepted by `write`, in bytes.
    pub max_document_bytes: usize,
    /// Exact and regex searches (each a scan of the vault on a blocking thread, up to 5 s) that may
    /// run at once; more are refused at once (503 `busy`, `Retry-After`). 0 (the default): twice the
    /// available cores.
    pub max_concurrent_scans: usize,
    /// Shared secret for `POST /api/v1/kb/webhook` (sent as `X-Gaia-Webhook-Secret` or as GitHub's
    /// `X-Hub-Signature-256`); the webhook is disabled when unset.
    pub webhook_secret: Option<String>,
}

impl Default for KbConfig {
    fn default() -> Self {
        KbConfig {
            mode: KbStorageMode::Git,
            name: "default".to_string(),
            root: PathBuf::from("kb"),
            remote: None,
            branch: "main".to_string(),
            token: None,
            token_env: None,
            sync_interval_secs: 300,
            index_dir: None,
            push: true,
            committer_name: "Gaia".to_string(),
            committer_email: "gaia@localhost".to_string(),
            max_document_bytes: 1024 * 1024,
            max_concurrent_scans: 0,
            webhook_secret: None,
        }
    }
}

impl KbConfig {
    /// How many exact or regex searches may run at once: `max_concurrent_scans`, or twice the
    /// available cores when it is 0.
    pub fn scan_limit(&self) -> usize {
        match self.max_concurrent_scans {
            0 => 2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }

    /// The token for the remote: `token`, else the variable named by `token_env`.
    pub fn resolved_token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| self.token_env.as_deref().and_then(|v| std::env::var(v).ok()))
            .filter(|t| !t.is_empty())
    }
}

impl fmt::Debug for KbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KbConfig")
            .field("mode", &self.mode)
            .field("name", &self.name)
            .field("root", &self.root)
            .field("remote", &self.remote.as_deref().map(super::redact_url))
            .field("branch", &self.branch)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("sync_interval_secs", &self.sync_interval_secs)
            .field("index_dir", &self.index_dir)
            .field("push", &self.push)
            .field("committer_name", &self.committer_name)
            .field("committer_email", &self.committer_email)
            .field("max_document_bytes", &self.max_document_bytes)
            .field("max_concurrent_scans", &self.max_concurrent_scans)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
