//! Knowledge-base configuration.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the documents of a vault are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageMode {
    /// A working copy synced from a git remote; edits are commits.
    #[default]
    Git,
    /// Documents live in the SQL database.
    Database,
    /// The database serves reads and edits; changes are committed and pushed to git when possible.
    Hybrid,
}

/// Configuration of one knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KbConfig {
    /// Storage mode.
    pub mode: StorageMode,
    /// Local folder of the vault (the git working copy in `git` and `hybrid` modes).
    pub root: PathBuf,
    /// Git remote to clone and fetch from (`https://…` or `file://…`).
    pub remote: Option<String>,
    /// Branch to follow.
    pub branch: String,
    /// Seconds between background fetches (0 disables periodic sync).
    pub sync_interval_secs: u64,
}

impl Default for KbConfig {
    fn default() -> Self {
        KbConfig {
            mode: StorageMode::Git,
            root: PathBuf::from("kb"),
            remote: None,
            branch: "main".to_string(),
            sync_interval_secs: 300,
        }
    }
}
