//! A document of the vault: its text, its version and what was parsed from it.

use crate::parse::{parse_note, version_of, ParsedNote};
use crate::path::VaultPath;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A Markdown document of the vault.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// Vault-relative path, with the `.md` extension.
    pub path: VaultPath,
    /// The full text, frontmatter included.
    pub content: String,
    /// Hex SHA-256 of `content`: pass it back when editing to detect concurrent changes.
    pub version: String,
    /// Last modification time, when known.
    pub modified: Option<DateTime<Utc>>,
    /// Title, tags, aliases, headings, links and frontmatter.
    #[serde(flatten)]
    pub note: ParsedNote,
}

impl Document {
    /// Parses `content` as the document at `path`.
    pub fn new(path: VaultPath, content: String, modified: Option<DateTime<Utc>>) -> Document {
        let stem = path.file_name().strip_suffix(".md").unwrap_or(path.file_name()).to_string();
        let note = parse_note(&content, &stem);
        let version = version_of(&content);
        Document { path, content, version, modified, note }
    }

    /// The text after the frontmatter.
    pub fn body(&self) -> &str {
        &self.content[self.note.body_offset..]
    }

    /// The folder holding the document (`""` at the root).
    pub fn folder(&self) -> String {
        self.path.parent().map(|p| p.as_str().to_string()).unwrap_or_default()
    }

    /// The name Obsidian links by: the file name without `.md`.
    pub fn stem(&self) -> &str {
        let name = self.path.file_name();
        name.strip_suffix(".md").unwrap_or(name)
    }

    /// An estimate of the number of model tokens of the text (about four bytes per token).
    pub fn estimated_tokens(&self) -> usize {
        estimate_tokens(&self.content)
    }
}

/// An estimate of the number of model tokens in `text` (about four bytes per token, at least one per word).
pub fn estimate_tokens(text: &str) -> usize {
    (text.len() / 4).max(text.split_whitespace().count())
}
