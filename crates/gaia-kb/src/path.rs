//! Vault-relative paths that cannot escape the vault.

use std::fmt;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path was empty (or only separators).
    #[error("the path is empty")]
    Empty,
    /// The path was absolute (`/x`, `C:\x`, `\\server`).
    #[error("absolute paths are not allowed: {0}")]
    Absolute(String),
    /// The path had a `..` component.
    #[error("'..' is not allowed in a vault path: {0}")]
    ParentDir(String),
    /// The path had a NUL or other control character.
    #[error("the path contains a control character")]
    ControlChar,
    /// A component starts with `.` (`.git`, `.obsidian`): not part of the vault's documents.
    #[error("hidden files and folders are not accessible: {0}")]
    Hidden(String),
    /// The path leads outside the vault through a symbolic link.
    #[error("the path leads outside the vault: {0}")]
    OutsideVault(String),
    /// Only Markdown documents (`.md`) can be read or written.
    #[error("not a Markdown document: {0}")]
    NotMarkdown(String),
}

/// A normalised, vault-relative path with `/` separators and no `.`/`..` components.
///
/// Construct it with [`VaultPath::parse`]; it is the only form in which a path supplied by a user or a
/// model reaches the file system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultPath(String);

impl VaultPath {
    /// Validates and normalises `raw`: backslashes become `/`, empty and `.` components are dropped.
    pub fn parse(raw: &str) -> Result<VaultPath, PathError> {
        if raw.chars().any(|c| c.is_control()) {
            return Err(PathError::ControlChar);
        }
        let unified = raw.replace('\\', "/");
        let bytes = unified.as_bytes();
        let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
        if unified.starts_with('/') || drive {
            return Err(PathError::Absolute(raw.to_string()));
        }
        let mut parts = Vec::new();
        for part in unified.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::ParentDir(raw.to_string())),
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(VaultPath(parts.join("/")))
    }

    /// The normalised path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component (file or folder name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent folder, or `None` at the vault root.
    pub fn parent(&self) -> Option<VaultPath> {
        self.0.rsplit_once('/').map(|(p, _)| VaultPath(p.to_string()))
    }
}

impl serde::Serialize for VaultPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for VaultPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases = [
            ("a/b.md", "a/b.md"),
            ("./a//b.md", "a/b.md"),
            ("a\\b.md", "a/b.md"),
            ("Characters/Dr. Mara Quill.md", "Characters/Dr. Mara Quill.md"),
            ("霧/カフェ.md", "霧/カフェ.md"),
        ];
        for (raw, want) in cases {
            assert_eq!(VaultPath::parse(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(VaultPath::parse("").unwrap_err(), PathError::Empty);
        assert_eq!(VaultPath::parse("./").unwrap_err(), PathError::Empty);
        assert!(matches!(VaultPath::parse("/etc/passwd"), Err(PathError::Absolute(_))));
        assert!(matches!(VaultPath::parse("C:\\x"), Err(PathError::Absolute(_))));
        assert!(matches!(VaultPath::parse("\\\\server\\x"), Err(PathError::Absolute(_))));
        assert!(matches!(VaultPath::parse("a/../../x"), Err(PathError::ParentDir(_))));
        assert!(matches!(VaultPath::parse("a/\0b"), Err(PathError::ControlChar)));
    }

    #[test]
    fn parent_and_name() {
        let p = VaultPath::parse("Places/Downtown/Cafe.md").unwrap();
        assert_eq!(p.file_name(), "Cafe.md");
        assert_eq!(p.parent().unwrap().as_str(), "Places/Downtown");
        assert_eq!(VaultPath::parse("x.md").unwrap().parent(), None);
    }
}
