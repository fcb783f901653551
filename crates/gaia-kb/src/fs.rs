//! The vault folder on disk: scanning, safe paths (no escape through `..` or symlinks), atomic writes.

use crate::error::{KbError, Result};
use crate::path::{PathError, VaultPath};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub(crate) use crate::document::is_markdown;

/// Refuses hidden components (`.git`, `.obsidian`…): they are not part of the vault's documents.
pub(crate) fn check_visible(p: &VaultPath) -> Result<()> {
    if p.as_str().split('/').any(|c| c.starts_with('.')) {
        return Err(KbError::Path(PathError::Hidden(p.to_string())));
    }
    Ok(())
}

/// The file-system path of `p` under `root`, refusing any that would leave the vault through a
/// symbolic link (of the file or of a folder on the way).
pub(crate) fn resolve(root: &Path, p: &VaultPath) -> Result<PathBuf> {
    check_visible(p)?;
    resolve_inside(root, p)
}

/// Like [`resolve`], hidden components (`.obsidian/…`) allowed: for files the git working copy
/// tracks, which are not documents.
pub(crate) fn resolve_inside(root: &Path, p: &VaultPath) -> Result<PathBuf> {
    let root_real = root.canonicalize()?;
    let full = root.join(p.as_str());
    // The deepest existing ancestor must resolve inside the vault.
    let mut probe = full.as_path();
    loop {
        match std::fs::symlink_metadata(probe) {
            Ok(_) => {
                let real = probe.canonicalize()?;
                if !real.starts_with(&root_real) {
                    return Err(KbError::Path(PathError::OutsideVault(p.to_string())));
                }
                break;
            }
            Err(_) => match probe.parent() {
                Some(parent) => probe = parent,
                None => break,
            },
        }
    }
    Ok(full)
}

/// A Markdown file found by [`scan`].
pub(crate) struct ScannedFile {
    pub path: VaultPath,
    pub content: String,
    pub modified: Option<DateTime<Utc>>,
}

/// What [`walk`] learns about a file without reading it: enough to tell whether it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    /// Modification time.
    pub mtime: Option<SystemTime>,
    /// Size in bytes.
    pub len: u64,
}

impl FileStat {
    fn of(meta: &std::fs::Metadata) -> FileStat {
        FileStat { mtime: meta.modified().ok(), len: meta.len() }
    }

    /// Whether a file read at `read_at` with this stat can be trusted unchanged while its stat stays
    /// the same. A file modified within the file system's timestamp granularity of the read could
    /// change again without its modification time moving ("racy" in git's terms), so it is not.
    pub fn settled_at(&self, read_at: SystemTime) -> bool {
        let Some(mtime) = self.mtime else { return false };
        let coarse = mtime.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos() == 0).unwrap_or(true);
        let granularity = if coarse { Duration::from_secs(2) } else { Duration::from_millis(100) };
        mtime + granularity <= read_at
    }
}

/// A Markdown file found by [`walk`], not yet read.
pub(crate) struct WalkEntry {
    pub path: VaultPath,
    full: PathBuf,
    pub stat: FileStat,
}

impl WalkEntry {
    /// Reads the file (UTF-8; invalid bytes are replaced); `None` when it vanished meanwhile.
    pub fn read(&self) -> Result<Option<ScannedFile>> {
        read_full(&self.full, &self.path)
    }
}

fn read_full(full: &Path, p: &VaultPath) -> Result<Option<ScannedFile>> {
    match std::fs::read(full) {
        Ok(bytes) => {
            let modified = std::fs::metadata(full).and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from);
            let content =
                String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            Ok(Some(ScannedFile { path: p.clone(), content, modified }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads one file of the vault (UTF-8; invalid bytes are replaced).
pub(crate) fn read_file(root: &Path, p: &VaultPath) -> Result<Option<ScannedFile>> {
    let full = resolve(root, p)?;
    read_full(&full, p)
}

/// All Markdown files of the vault with their stats, skipping hidden folders and symbolic links that
/// lead outside it. Folders reached through symbolic links are not entered.
pub(crate) fn walk(root: &Path) -> Result<Vec<WalkEntry>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    let root_real = root.canonicalize()?;
    let walker = walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter();
    for entry in walker.filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')) {
        let entry = entry.map_err(|e| KbError::Io(std::io::Error::other(e.to_string())))?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else { continue };
        let rel = rel.to_string_lossy();
        if !is_markdown(&rel) {
            continue;
        }
        let Ok(vp) = VaultPath::parse(&rel) else { continue };
        let meta = if ft.is_symlink() {
            match entry.path().canonicalize() {
                Ok(real) if real.starts_with(&root_real) && real.is_file() => std::fs::metadata(&real).ok(),
                _ => continue,
            }
        } else {
            entry.metadata().ok()
        };
        let Some(meta) = meta else { continue };
        out.push(WalkEntry { path: vp, full: entry.path().to_path_buf(), stat: FileStat::of(&meta) });
    }
    Ok(out)
}

/// All Markdown files of the vault, read (see [`walk`]).
pub(crate) fn scan(root: &Path) -> Result<Vec<ScannedFile>> {
    let mut out = Vec::new();
    for e in walk(root)? {
        if let Some(f) = e.read()? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Writes a file atomically (temporary file, then rename), creating its folders.
pub(crate) fn write_atomic(full: &Path, content: &str) -> Result<()> {
    let parent = full.parent().ok_or_else(|| KbError::InvalidInput("no parent folder".into()))?;
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".gaia-tmp-{}", std::process::id()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, full)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::FileStat;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_stat_is_trusted_only_after_the_timestamp_granularity() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let fine = FileStat { mtime: Some(t), len: 10 };
        assert!(!fine.settled_at(t));
        assert!(!fine.settled_at(t + Duration::from_millis(50)));
        assert!(fine.settled_at(t + Duration::from_millis(100)));
        // Whole-second timestamps suggest a coarse file system: wait two seconds.
        let coarse = FileStat { mtime: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)), len: 10 };
        assert!(!coarse.settled_at(coarse.mtime.unwrap() + Duration::from_secs(1)));
        assert!(coarse.settled_at(coarse.mtime.unwrap() + Duration::from_secs(2)));
        assert!(!FileStat { mtime: None, len: 1 }.settled_at(t));
    }
}
