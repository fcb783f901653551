//! A document of the vault: its text, its version and what was parsed from it.

use crate::parse::{parse_note_checked, version_of, ParsedNote};
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
    /// Parses `content` as the document at `path`. Never fails: a frontmatter over the bounds of
    /// [`crate::parse::check_frontmatter`] is logged and the note read as plain text.
    pub fn new(path: VaultPath, content: String, modified: Option<DateTime<Utc>>) -> Document {
        let stem = path.file_name().strip_suffix(".md").unwrap_or(path.file_name()).to_string();
        let (note, refused) = parse_note_checked(&content, &stem);
        if let Some(e) = refused {
            tracing::warn!(path = %path, error = %e, "frontmatter refused; the note is indexed as plain text");
        }
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

/// Whether a path or link target names a Markdown document (ends with `.md`, in any case). Safe on
/// any text: names such as `Lumière` or `東京` end inside a multi-byte character.
pub(crate) fn is_markdown(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() > 3 && b[b.len() - 3..].eq_ignore_ascii_case(b".md")
}

/// An estimate of the number of model tokens in `text`: about four ASCII characters per token, and a
/// token for each other character (CJK characters and emoji take one or more tokens each); at least
/// one per word.
pub fn estimate_tokens(text: &str) -> usize {
    let non_ascii = text.chars().filter(|c| !c.is_ascii()).count();
    let ascii = text.len() - text.chars().filter(|c| !c.is_ascii()).map(char::len_utf8).sum::<usize>();
    (ascii / 4 + non_ascii).max(text.split_whitespace().count())
}

/// The longest beginning of `text` whose [`estimate_tokens`] is at most `max_tokens`, ended at a line
/// break when one is near the end.
pub fn cut_to_tokens(text: &str, max_tokens: usize) -> &str {
    if estimate_tokens(text) <= max_tokens {
        return text;
    }
    // The estimate of a prefix grows with its length: binary search on the byte length.
    let (mut lo, mut hi) = (0usize, text.len());
    while lo < hi {
        let mut mid = lo + (hi - lo).div_ceil(2);
        while !text.is_char_boundary(mid) {
            mid -= 1;
        }
        if mid <= lo {
            break;
        }
        if estimate_tokens(&text[..mid]) <= max_tokens {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let cut = &text[..lo];
    match cut.rfind('\n') {
        Some(nl) if nl >= lo * 4 / 5 => &cut[..nl + 1],
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_names_any_text() {
        assert!(is_markdown("a/Note.MD") && is_markdown("東京.md"));
        for name in ["Lumière", "東京", "é", "md", ".md", "notes.mdx", "🐉"] {
            assert!(!is_markdown(name), "{name}");
        }
    }

    #[test]
    fn token_estimates_count_cjk_and_emoji() {
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("霧の日は危険"), 6);
        assert_eq!(estimate_tokens("a b c d"), 4);
        assert_eq!(estimate_tokens("🐉🐉"), 2);
    }

    #[test]
    fn cuts_fit_the_budget_on_char_boundaries() {
        let text = "霧の日は危険です。\nThe fog rolls in over the harbour every evening.\n🐉 dragons";
        for max in 0..40 {
            let cut = cut_to_tokens(text, max);
            assert!(estimate_tokens(cut) <= max, "{max}: {cut:?}");
            assert!(text.starts_with(cut));
        }
        assert_eq!(cut_to_tokens(text, 1000), text);
    }
}
