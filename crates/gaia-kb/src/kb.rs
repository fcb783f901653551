//! [`Kb`]: one knowledge base — its documents, link graph, search index and storage backend.

use crate::access::ReadAccess;
use crate::db::{DbStore, Mirror, Unmirrored};
use crate::document::Document;
use crate::error::{KbError, Result};
use crate::fs;
use crate::git::{Author, Change, GitRepo, SyncState, TreeChanges};
use crate::index::{Readable, SearchIndex, SearchOptions, SearchResults};
use crate::parse::Link;
use crate::path::{PathError, VaultPath};
use chrono::{DateTime, Utc};
use gaia_core::config::{redact_url, KbConfig, KbStorageMode};
use gaia_core::storage::Storage;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Where documents live.
#[derive(Debug)]
enum Backend {
    /// Files in a folder, optionally a git working copy.
    Files { root: PathBuf, git: Option<GitRepo> },
    /// The SQL database.
    Database { db: DbStore },
    /// The SQL database, mirrored to a git working copy.
    Hybrid { db: DbStore, root: PathBuf, git: GitRepo },
}

/// Documents and the link graph between them. Never changed in place: an edit builds the next set
/// and swaps it in, so readers work on a snapshot (an `Arc`) without holding a lock.
/// The name and link maps are shared between snapshots until a change touches them (an edit that
/// keeps every title, alias and path shares the name maps and copies only the link sets it changes).
#[derive(Default, Clone)]
struct Docs {
    by_path: BTreeMap<String, Arc<Document>>,
    /// Lower-cased name (file stem, title, alias) → paths.
    by_name: Arc<HashMap<String, Vec<String>>>,
    /// Lower-cased path → path (links may differ from the path in case).
    by_lower_path: Arc<HashMap<String, String>>,
    /// Path → paths of documents with a link that may resolve to it, for some reader: a link resolves
    /// to the first candidate the reader may see (see [`Docs::resolve_link`]), so every candidate is
    /// recorded and [`Docs::backlinks_of`] checks which link really does for the reader.
    linkers: HashMap<String, Arc<BTreeSet<String>>>,
}

/// The names a document can be linked by (file stem, title, aliases).
fn names_of(d: &Document) -> impl Iterator<Item = &str> + '_ {
    std::iter::once(d.stem())
        .chain(std::iter::once(d.note.title.as_str()))
        .chain(d.note.aliases.iter().map(String::as_str))
}

/// Which documents a reader may see (by vault path).
type See<'a> = &'a dyn Fn(&str) -> bool;

impl Docs {
    /// The documents `by_path` with their name and link maps derived from scratch.
    fn derive(by_path: BTreeMap<String, Arc<Document>>) -> Docs {
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for (p, d) in &by_path {
            for n in names_of(d) {
                let list = by_name.entry(n.to_lowercase()).or_default();
                if !list.contains(p) {
                    list.push(p.clone());
                }
            }
        }
        for list in by_name.values_mut() {
            list.sort_by_key(|p| (p.len(), p.clone()));
        }
        let by_lower_path = by_path.keys().map(|p| (p.to_lowercase(), p.clone())).collect();
        let mut docs = Docs {
            by_path,
            by_name: Arc::new(by_name),
            by_lower_path: Arc::new(by_lower_path),
            linkers: HashMap::new(),
        };
        let mut linkers: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (p, d) in &docs.by_path {
            for l in &d.note.links {
                for target in docs.link_candidates(&l.target) {
                    if target != p {
                        linkers.entry(target.to_string()).or_default().insert(p.clone());
                    }
                }
            }
        }
        docs.linkers = linkers.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        docs
    }

    /// The next snapshot, holding `by_path`. When the same paths remain and no changed document
    /// changed its names, the name maps are shared and only the changed documents' links are
    /// re-resolved (an ordinary edit costs what that one document does); otherwise everything is
    /// derived again ([`Docs::derive`]).
    fn next(&self, by_path: BTreeMap<String, Arc<Document>>) -> Docs {
        let same_paths = by_path.len() == self.by_path.len() && by_path.keys().eq(self.by_path.keys());
        if !same_paths {
            return Docs::derive(by_path);
        }
        let changed: Vec<(&str, &Arc<Document>, &Arc<Document>)> = by_path
            .iter()
            .zip(self.by_path.values())
            .filter(|((_, new), old)| !Arc::ptr_eq(new, old))
            .map(|((p, new), old)| (p.as_str(), new, old))
            .collect();
        if changed.iter().any(|(_, new, old)| !names_of(new).eq(names_of(old))) {
            return Docs::derive(by_path);
        }
        let mut linkers = self.linkers.clone();
        for (p, new, old) in changed {
            let targets = |d: &Document| -> BTreeSet<String> {
                let mut out = BTreeSet::new();
                for l in &d.note.links {
                    // The names and paths are the same in both snapshots: so are the candidates.
                    out.extend(self.link_candidates(&l.target).into_iter().filter(|t| *t != p).map(str::to_string));
                }
                out
            };
            let (before, after) = (targets(old), targets(new));
            for t in before.difference(&after) {
                if let Some(set) = linkers.get_mut(t) {
                    Arc::make_mut(set).remove(p);
                    if set.is_empty() {
                        linkers.remove(t);
                    }
                }
            }
            for t in after.difference(&before) {
                Arc::make_mut(linkers.entry(t.clone()).or_default()).insert(p.to_string());
            }
        }
        Docs { by_path, by_name: self.by_name.clone(), by_lower_path: self.by_lower_path.clone(), linkers }
    }

    /// Every document a (non-empty) link target may name, most preferred first: the vault path (with
    /// or without `.md`), the same path in another case, then the documents with that file name, title
    /// or alias, shortest path first.
    fn link_candidates<'a>(&'a self, target: &str) -> Vec<&'a str> {
        let target = target.trim();
        let mut out: Vec<&str> = Vec::new();
        if target.is_empty() {
            return out;
        }
        let with_md = if crate::document::is_markdown(target) { target.to_string() } else { format!("{target}.md") };
        if let Ok(vp) = VaultPath::parse(&with_md) {
            if let Some((p, _)) = self.by_path.get_key_value(vp.as_str()) {
                out.push(p);
            }
            if let Some(p) = self.by_lower_path.get(&vp.as_str().to_lowercase()) {
                out.push(p);
            }
        }
        let name = target.trim_end_matches(".md").rsplit('/').next().unwrap_or(target).to_lowercase();
        out.extend(self.by_name.get(&name).into_iter().flatten().map(String::as_str));
        out
    }

    /// Resolves a link target or a name the way Obsidian does, among the documents the reader may
    /// `see` (the others do not exist for them, so they cannot capture a link): a vault path (with or
    /// without `.md`), then a file name, then a title or alias; ties go to the shortest path.
    fn resolve_link(&self, target: &str, from: &str, see: See<'_>) -> Option<String> {
        if target.trim().is_empty() {
            return Some(from.to_string());
        }
        self.link_candidates(target).into_iter().find(|p| see(p)).map(str::to_string)
    }

    /// The documents the reader may see with a link that resolves, for them, to `target`.
    fn backlinks_of(&self, target: &str, see: See<'_>) -> Vec<&str> {
        self.linkers
            .get(target)
            .map(|set| set.iter())
            .into_iter()
            .flatten()
            .filter(|src| see(src))
            .filter(|src| {
                self.by_path.get(*src).is_some_and(|d| {
                    d.note.links.iter().any(|l| self.resolve_link(&l.target, src, see).as_deref() == Some(target))
                })
            })
            .map(String::as_str)
            .collect()
    }
}

/// A request to write a document.
#[derive(Debug, Clone, Default)]
pub struct WriteRequest {
    /// Vault path (`.md` is added when missing).
    pub path: String,
    /// The new text.
    pub content: String,
    /// The version the edit is based on; the write fails with a conflict if the document changed since.
    /// When `None` the document must not exist yet, unless `overwrite` is set.
    pub version: Option<String>,
    /// Replace the document whatever its version (last writer wins).
    pub overwrite: bool,
    /// Who makes the edit (the commit's author in git modes).
    pub author: Option<Author>,
    /// Commit message (a default one describes the edit).
    pub message: Option<String>,
}

/// The outcome of an edit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EditOutcome {
    /// The document's path after the edit.
    pub path: String,
    /// The new version (absent after a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether the document was created by this edit.
    pub created: bool,
    /// The commit made for the edit, in git modes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Whether the commit reached the remote (false when there is none or the push failed; it is
    /// retried at the next sync).
    pub pushed: bool,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListEntry {
    /// Vault path.
    pub path: String,
    /// `"folder"` or `"document"`.
    pub kind: &'static str,
    /// Document title (documents only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Tags (documents only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Size in bytes (documents) or number of documents below (folders).
    pub size: usize,
    /// Last modification (documents, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<DateTime<Utc>>,
}

/// A match of an exact or regex search.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GrepMatch {
    /// Vault path.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// The line (cut to 300 characters).
    pub text: String,
}

/// Exact or regex search over the raw text.
#[derive(Debug, Clone, Default)]
pub struct GrepOptions {
    /// The text or pattern.
    pub pattern: String,
    /// Treat `pattern` as a regular expression (Rust `regex` syntax) instead of literal text.
    pub regex: bool,
    /// Match case exactly.
    pub case_sensitive: bool,
    /// Only documents under this folder.
    pub folder: Option<String>,
    /// Most matches (default 100, at most 1,000).
    pub limit: usize,
}

/// A link from or to a document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkInfo {
    /// The other document (resolved), when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its title, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The link as written.
    pub link: Link,
}

/// Why a document is part of a context.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextReason {
    /// The topic's own document.
    Topic,
    /// Linked from a document of the context.
    Link,
    /// Links to a document of the context.
    Backlink,
    /// In the topic folder.
    Folder,
    /// Has the topic tag.
    Tag,
    /// Found by searching for the topic.
    Search,
}

/// A document loaded into a context.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContextDocument {
    /// Vault path.
    pub path: String,
    /// Title.
    pub title: String,
    /// Why it is included.
    pub reason: ContextReason,
    /// Estimated tokens of `content` and of its header in [`Context::to_prompt`].
    pub tokens: usize,
    /// The text (possibly cut to fit the budget).
    pub content: String,
    /// Whether `content` was cut.
    pub truncated: bool,
}

/// A topic's documents, loaded for a prompt within a token budget.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Context {
    /// The topic asked for.
    pub topic: String,
    /// Documents, most relevant first.
    pub documents: Vec<ContextDocument>,
    /// Estimated tokens of all documents: of [`Context::to_prompt`], at most `max_tokens`.
    pub total_tokens: usize,
    /// The budget.
    pub max_tokens: usize,
    /// Relevant documents left out for lack of budget.
    pub omitted: Vec<String>,
}

impl Context {
    /// The context as one Markdown text for a prompt, each document under a `## path` header.
    pub fn to_prompt(&self) -> String {
        let mut out = String::new();
        for d in &self.documents {
            out.push_str(&prompt_frame(&d.title, &d.path, d.content.trim_end()));
        }
        out
    }
}

/// One document of [`Context::to_prompt`]: its title and path as a heading, then `content`. With
/// an empty `content`, what the document adds to the prompt besides its text (counted in budgets).
fn prompt_frame(title: &str, path: &str, content: &str) -> String {
    format!("## {title} ({path})\n\n{content}\n\n")
}

/// What a sync did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncReport {
    /// How the local branch related to the remote (git modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<SyncState>,
    /// Documents re-indexed.
    pub changed: Vec<String>,
    /// Documents removed.
    pub deleted: Vec<String>,
    /// HEAD after the sync (git modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Milliseconds taken.
    pub took_ms: u64,
}

/// The state of the knowledge base, for `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KbStatus {
    /// Name.
    pub name: String,
    /// Storage mode.
    pub mode: KbStorageMode,
    /// Remote (credentials hidden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Branch followed.
    pub branch: String,
    /// HEAD commit of the working copy (git modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// End of the last successful sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<DateTime<Utc>>,
    /// Error of the last sync, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync_error: Option<String>,
    /// Number of documents.
    pub documents: usize,
    /// Number of indexed documents.
    pub indexed_documents: u64,
    /// Size of the search index in bytes.
    pub index_size_bytes: u64,
    /// Local commits the remote does not have yet, as of the last fetch or push (git modes with a
    /// remote): edits whose push failed, or made with `push` off. Failed pushes are retried by the
    /// next sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpushed_commits: Option<usize>,
    /// Hybrid mode: documents whose last edit is in the database but could not be committed to the
    /// working copy yet; the next sync (of any instance) commits them, with the editing user as author,
    /// before it takes in remote changes. Recorded in the database (table `kb_unmirrored`), so the list
    /// survives a restart and is the same on every instance sharing the database.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmirrored: Vec<String>,
    /// Semantic indexing: the embedding model, notes and chunks indexed, what waits (`None` when
    /// semantic search is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic: Option<crate::semantic::SemanticStatus>,
}

#[derive(Debug, Default)]
struct SyncInfo {
    last_sync: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

struct Inner {
    config: KbConfig,
    backend: Backend,
    index: SearchIndex,
    /// The current documents; see [`Kb::snapshot`].
    docs: RwLock<Arc<Docs>>,
    /// Serialises edits, syncs and re-indexing.
    edit: tokio::sync::Mutex<()>,
    sync: Mutex<SyncInfo>,
    /// Announces every successful sync.
    synced: tokio::sync::broadcast::Sender<SyncReport>,
    /// Folder backends: the stat of each file when it was last read, and when.
    stats: Mutex<HashMap<String, (fs::FileStat, std::time::SystemTime)>>,
    /// Stops the background sync started by [`Kb::spawn_sync_loop`] (sent or dropped).
    sync_loop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Exact and regex searches running ([`Kb::grep_async`]): at most `KbConfig::scan_limit`.
    scans: Arc<tokio::sync::Semaphore>,
    /// Chunks, vectors and the indexer of semantic search (idle until [`Kb::enable_semantic`]).
    semantic: Arc<crate::semantic::Semantic>,
    /// Stops the semantic indexer (sent, replaced, or dropped with the knowledge base).
    semantic_stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Most bytes of an exact or regex search pattern ([`Kb::grep`]).
pub const MAX_GREP_PATTERN_BYTES: usize = 1024;
/// Deepest nesting of groups and repetitions in a regex search pattern.
const GREP_NEST_LIMIT: u32 = 64;
/// How long an exact or regex search ([`Kb::grep`]) may scan before it is stopped.
pub const GREP_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A knowledge base. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Kb {
    inner: Arc<Inner>,
    /// Documents this handle may see (`None`: all).
    access: Option<ReadAccess>,
}

impl std::fmt::Debug for Kb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kb").field("name", &self.inner.config.name).field("backend", &self.inner.backend).finish()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| KbError::Io(std::io::Error::other(e.to_string())))?
}

/// Runs an edit to its end in a task of its own: once started, an edit (file or row, commit, index,
/// in-memory documents) completes even if its caller goes away (a client that disconnects drops the
/// request's future), so the documents in memory never lag behind what was saved.
async fn to_completion<T: Send + 'static>(
    edit: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(edit).await.map_err(|e| KbError::Io(std::io::Error::other(e.to_string())))?
}

/// Normalises a document path given by a caller: safe, visible, with `.md`.
pub(crate) fn doc_path(raw: &str) -> Result<VaultPath> {
    let p = VaultPath::parse(raw)?;
    fs::check_visible(&p)?;
    if crate::document::is_markdown(p.as_str()) {
        return Ok(p);
    }
    if p.file_name().contains('.') && !p.file_name().ends_with('.') {
        let ext = p.file_name().rsplit('.').next().unwrap_or_default();
        if ext.len() <= 4 && ext.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(PathError::NotMarkdown(raw.to_string()).into());
        }
    }
    Ok(VaultPath::parse(&format!("{}.md", p.as_str()))?)
}

/// Writes (or removes) the files of `changes` in the vault folder, through safe paths only.
fn write_changes(root: &std::path::Path, changes: &[Change]) -> Result<()> {
    for (p, content) in changes {
        let full = fs::resolve(root, &VaultPath::parse(p)?)?;
        match content {
            Some(text) => fs::write_atomic(&full, text)?,
            None => match std::fs::remove_file(&full) {
                Ok(()) => crate::git::remove_empty_parents(root, &full),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    Ok(())
}

fn author_or_default(a: &Option<Author>) -> Author {
    a.clone().unwrap_or(Author { name: "Gaia".into(), email: "gaia@localhost".into() })
}

impl Kb {
    /// Opens a knowledge base in `git` mode (a folder, synced from a remote when one is configured).
    /// For `database` and `hybrid` modes use [`Kb::open_with_storage`].
    pub async fn open(config: KbConfig) -> Result<Kb> {
        Kb::open_with_storage(config, None).await
    }

    /// Opens a knowledge base; `storage` is required in `database` and `hybrid` modes.
    ///
    /// In git modes a configured remote is cloned into `root` when `root` is missing or empty. The
    /// index is then brought up to date (only documents whose version changed are re-indexed when a
    /// persistent `index_dir` already holds an index).
    pub async fn open_with_storage(config: KbConfig, storage: Option<Storage>) -> Result<Kb> {
        Ok(Kb::open_reporting(config, storage).await?.0)
    }

    /// Like [`Kb::open_with_storage`], with the report of the indexing done on opening: the documents
    /// (re-)indexed because they changed since a persistent index was written (all of them with an
    /// index in memory), and those removed from it.
    pub async fn open_reporting(config: KbConfig, storage: Option<Storage>) -> Result<(Kb, SyncReport)> {
        if config.name.trim().is_empty() {
            return Err(KbError::InvalidInput("the knowledge base needs a name".into()));
        }
        let committer = Author { name: config.committer_name.clone(), email: config.committer_email.clone() };
        let git_for = |root: &PathBuf| {
            GitRepo::new(root, config.remote.clone(), config.branch.clone(), config.resolved_token(), committer.clone())
        };
        let need_db = || {
            storage
                .clone()
                .map(|s| DbStore::new(s, &config.name))
                .ok_or_else(|| KbError::Unavailable("the database and hybrid modes need a database (storage)".into()))
        };
        let backend = match config.mode {
            KbStorageMode::Database => Backend::Database { db: need_db()? },
            KbStorageMode::Hybrid => {
                Backend::Hybrid { db: need_db()?, root: config.root.clone(), git: git_for(&config.root) }
            }
            _ => {
                let root = config.root.clone();
                let git = if GitRepo::exists(&root) || config.remote.is_some() { Some(git_for(&root)) } else { None };
                Backend::Files { root, git }
            }
        };
        // Prepare the working copy.
        if let Backend::Files { root, git: Some(git) } | Backend::Hybrid { root, git, .. } = &backend {
            let (root, git) = (root.clone(), git.clone());
            let has_remote = config.remote.is_some();
            blocking(move || {
                if GitRepo::exists(&root) {
                    return Ok(());
                }
                let empty = std::fs::read_dir(&root).map(|mut d| d.next().is_none()).unwrap_or(true);
                if has_remote && empty {
                    git.clone_remote()
                } else if has_remote {
                    Err(KbError::Unavailable(format!(
                        "{} exists and is not a git working copy; cannot clone into it",
                        root.display()
                    )))
                } else {
                    std::fs::create_dir_all(&root)?;
                    git.init()
                }
            })
            .await?;
        }
        if let Backend::Files { root, git: None } = &backend {
            std::fs::create_dir_all(root)?;
        }
        let index_dir = config.index_dir.clone();
        let index = blocking(move || SearchIndex::open(index_dir.as_deref())).await?;
        let scans = Arc::new(tokio::sync::Semaphore::new(config.scan_limit()));
        let kb = Kb {
            access: None,
            inner: Arc::new(Inner {
                scans,
                config,
                backend,
                index,
                docs: RwLock::new(Arc::new(Docs::default())),
                edit: tokio::sync::Mutex::new(()),
                sync: Mutex::new(SyncInfo::default()),
                synced: tokio::sync::broadcast::channel(16).0,
                stats: Mutex::new(HashMap::new()),
                sync_loop: Mutex::new(None),
                semantic: Arc::default(),
                semantic_stop: Mutex::new(None),
            }),
        };
        // Hybrid: import the working copy into an empty database, unless edits wait for their commit
        // (deleting every document leaves the database empty; the working copy must not bring them back).
        if let Backend::Hybrid { db, root, .. } = &kb.inner.backend {
            let pending = db.unmirrored().await?;
            if !pending.is_empty() {
                tracing::warn!(
                    kb = %kb.inner.config.name,
                    documents = pending.len(),
                    "edits saved in the database are not committed to git yet; the next sync commits them"
                );
            } else if db.all().await?.is_empty() {
                let root = root.clone();
                for f in blocking(move || fs::scan(&root)).await? {
                    db.upsert(f.path.as_str(), &f.content, None, None).await?;
                }
            }
        }
        let report = kb.reindex().await?;
        Ok((kb, report))
    }

    /// The configuration.
    pub fn config(&self) -> &KbConfig {
        &self.inner.config
    }

    /// The current documents and link graph: the lock is held only to clone the `Arc`, so no read,
    /// however long, holds it (nor makes a waiting edit block the other readers).
    fn snapshot(&self) -> Arc<Docs> {
        self.inner.docs.read().expect("docs lock").clone()
    }

    /// Builds the next document set from the current one (off the async workers) and swaps it in.
    /// Callers hold the `edit` lock, so no concurrent change is lost.
    async fn update_docs(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Arc<Document>>) + Send + 'static,
    ) -> Result<()> {
        let current = self.snapshot();
        let next = blocking(move || {
            let mut by_path = current.by_path.clone();
            change(&mut by_path);
            Ok(current.next(by_path))
        })
        .await?;
        *self.inner.docs.write().expect("docs lock") = Arc::new(next);
        Ok(())
    }

    /// Reads every document from the backend. In a folder, files whose size and modification time
    /// are unchanged since they were last read are not read or parsed again.
    async fn load_all(&self) -> Result<Vec<Arc<Document>>> {
        match &self.inner.backend {
            Backend::Files { root, .. } => {
                let root = root.clone();
                let previous: HashMap<String, Arc<Document>> = {
                    let g = self.snapshot();
                    g.by_path.iter().map(|(p, d)| (p.clone(), d.clone())).collect()
                };
                let stats = std::mem::take(&mut *self.inner.stats.lock().expect("stats lock"));
                let (docs, stats) = blocking(move || {
                    let mut docs = Vec::new();
                    let mut fresh = HashMap::new();
                    for e in fs::walk(&root)? {
                        let key = e.path.as_str();
                        if let (Some(doc), Some((stat, read_at))) = (previous.get(key), stats.get(key)) {
                            if *stat == e.stat && stat.settled_at(*read_at) {
                                fresh.insert(key.to_string(), (*stat, *read_at));
                                docs.push(doc.clone());
                                continue;
                            }
                        }
                        let read_at = std::time::SystemTime::now();
                        if let Some(f) = e.read()? {
                            fresh.insert(key.to_string(), (e.stat, read_at));
                            docs.push(Arc::new(Document::new(f.path, f.content, f.modified)));
                        }
                    }
                    Ok((docs, fresh))
                })
                .await?;
                *self.inner.stats.lock().expect("stats lock") = stats;
                Ok(docs)
            }
            Backend::Database { db } | Backend::Hybrid { db, .. } => Ok(db
                .all()
                .await?
                .into_iter()
                .filter_map(|r| {
                    VaultPath::parse(&r.path).ok().map(|p| Arc::new(Document::new(p, r.content, Some(r.updated_at))))
                })
                .collect()),
        }
    }

    /// Replaces the in-memory documents with `docs` and updates the index incrementally; returns the
    /// paths (re-)indexed and removed.
    async fn install(&self, docs: Vec<Arc<Document>>) -> Result<(Vec<String>, Vec<String>)> {
        let indexed = self.inner.index.indexed_versions()?;
        let current = self.snapshot();
        let mut by_path = BTreeMap::new();
        for d in docs {
            // A document read again with the same content stays the one in memory, so that the next
            // snapshot shares what was derived from it.
            let d = match current.by_path.get(d.path.as_str()) {
                Some(old) if old.version == d.version && old.modified == d.modified => old.clone(),
                _ => d,
            };
            by_path.insert(d.path.as_str().to_string(), d);
        }
        drop(current);
        let changed: Vec<Arc<Document>> =
            by_path.values().filter(|d| indexed.get(d.path.as_str()) != Some(&d.version)).cloned().collect();
        let deleted: Vec<String> = indexed.keys().filter(|p| !by_path.contains_key(*p)).cloned().collect();
        if !changed.is_empty() || !deleted.is_empty() {
            let inner = self.inner.clone();
            let (c, d) = (changed.clone(), deleted.clone());
            blocking(move || inner.index.apply(c.iter().map(|d| d.as_ref()), &d)).await?;
        }
        let touched = !changed.is_empty() || !deleted.is_empty();
        self.update_docs(move |g| *g = by_path).await?;
        // After the documents are in place: the indexer reads them when woken.
        if touched {
            self.inner.semantic.touch();
        }
        Ok((changed.iter().map(|d| d.path.as_str().to_string()).collect(), deleted))
    }

    /// Re-reads the documents from storage and re-indexes those that changed (by version).
    pub async fn reindex(&self) -> Result<SyncReport> {
        let _guard = self.inner.edit.lock().await;
        self.reindex_locked().await
    }

    async fn reindex_locked(&self) -> Result<SyncReport> {
        let t = Instant::now();
        let docs = self.load_all().await?;
        let (changed, deleted) = self.install(docs).await?;
        Ok(SyncReport {
            state: None,
            changed,
            deleted,
            commit: self.head().await,
            took_ms: t.elapsed().as_millis() as u64,
        })
    }

    /// Drops the index and builds it again from all documents.
    pub async fn rebuild_index(&self) -> Result<SyncReport> {
        let _guard = self.inner.edit.lock().await;
        let t = Instant::now();
        let docs: Vec<Arc<Document>> = self.snapshot().by_path.values().cloned().collect();
        let inner = self.inner.clone();
        let d2 = docs.clone();
        blocking(move || inner.index.rebuild(d2.iter().map(|d| d.as_ref()))).await?;
        Ok(SyncReport {
            state: None,
            changed: docs.iter().map(|d| d.path.as_str().to_string()).collect(),
            deleted: Vec::new(),
            commit: self.head().await,
            took_ms: t.elapsed().as_millis() as u64,
        })
    }

    fn git(&self) -> Option<(&GitRepo, &PathBuf)> {
        match &self.inner.backend {
            Backend::Files { root, git: Some(g) } | Backend::Hybrid { root, git: g, .. } => Some((g, root)),
            _ => None,
        }
    }

    async fn head(&self) -> Option<String> {
        let (git, _) = self.git()?;
        let git = git.clone();
        blocking(move || git.head()).await.ok().flatten()
    }

    /// Syncs with the remote: fetch, then fast-forward (or push local commits, or rebase them), and
    /// re-index the documents that changed. In `database` mode, re-reads the database.
    pub async fn sync(&self) -> Result<SyncReport> {
        let _guard = self.inner.edit.lock().await;
        let res = self.sync_locked().await;
        {
            let mut info = self.inner.sync.lock().expect("sync lock");
            match &res {
                Ok(_) => {
                    info.last_sync = Some(Utc::now());
                    info.last_error = None;
                }
                Err(e) => info.last_error = Some(e.to_string()),
            }
        }
        if let Ok(report) = &res {
            let _ = self.inner.synced.send(report.clone());
        }
        res
    }

    /// Receives a report of every successful [`Kb::sync`] from now on (the periodic ones included).
    pub fn subscribe_syncs(&self) -> tokio::sync::broadcast::Receiver<SyncReport> {
        self.inner.synced.subscribe()
    }

    async fn sync_locked(&self) -> Result<SyncReport> {
        let t = Instant::now();
        self.mirror_pending().await?;
        let Some((git, _)) = self.git().filter(|_| self.inner.config.remote.is_some()) else {
            return self.reindex_locked().await;
        };
        let git = git.clone();
        let push = self.inner.config.push;
        let (state, changes): (SyncState, TreeChanges) = blocking(move || git.sync(push)).await?;
        if let Backend::Hybrid { db, root, .. } = &self.inner.backend {
            // Remote changes flow into the database, which is the source for reads, except over an edit
            // another instance saved since `mirror_pending` and could not commit: that one is committed
            // over the remote's change by the next sync (git keeps both).
            let pending: BTreeSet<String> = db.unmirrored().await?.into_iter().map(|e| e.path).collect();
            let take = |p: &&String| {
                if pending.contains(*p) {
                    tracing::warn!(path = %p, "a remote change meets an edit not committed yet; the edit is kept");
                    return false;
                }
                true
            };
            for p in changes.changed.iter().filter(take) {
                let Ok(vp) = VaultPath::parse(p) else { continue };
                if !crate::document::is_markdown(vp.as_str()) {
                    continue;
                }
                let root = root.clone();
                if let Some(f) = blocking(move || fs::read_file(&root, &vp)).await? {
                    db.upsert(f.path.as_str(), &f.content, None, None).await?;
                }
            }
            for p in changes.deleted.iter().filter(take) {
                match db.delete(p, None, None).await {
                    Ok(_) | Err(KbError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut report = self.reindex_locked().await?;
        report.state = Some(state);
        report.took_ms = t.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Starts a background task that syncs every `sync_interval_secs` (when non-zero and there is
    /// something to sync from). Failures are logged and shown by [`Kb::status`].
    ///
    /// The task ends on [`Kb::stop_sync_loop`], when the loop is started again (one loop per
    /// knowledge base), or once every handle of the knowledge base is dropped; a sync in progress
    /// is finished first. Await the returned handle to wait for the end.
    pub fn spawn_sync_loop(&self) -> Option<tokio::task::JoinHandle<()>> {
        let secs = self.inner.config.sync_interval_secs;
        let useful = self.inner.config.remote.is_some() || !matches!(self.inner.backend, Backend::Files { .. });
        if secs == 0 || !useful {
            return None;
        }
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        // Replacing the sender stops a previous loop.
        *self.inner.sync_loop.lock().expect("sync loop lock") = Some(stop_tx);
        let weak = Arc::downgrade(&self.inner);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tick.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { break };
                let kb = Kb { inner, access: None };
                if let Err(e) = kb.sync().await {
                    tracing::warn!(kb = %kb.inner.config.name, error = %e, "knowledge-base sync failed");
                }
            }
        }))
    }

    /// Stops the background sync of [`Kb::spawn_sync_loop`]; returns whether one was running.
    pub fn stop_sync_loop(&self) -> bool {
        match self.inner.sync_loop.lock().expect("sync loop lock").take() {
            Some(tx) => tx.send(()).is_ok(),
            None => false,
        }
    }

    /// The state of the knowledge base. Through a [`Kb::restricted`] handle, `unmirrored` lists only
    /// the documents it may see and the last sync's error is not detailed (it may name any document);
    /// counts are of the whole knowledge base.
    pub async fn status(&self) -> KbStatus {
        let (last_sync, last_sync_error) = {
            let s = self.inner.sync.lock().expect("sync lock");
            (s.last_sync, s.last_error.clone())
        };
        let c = &self.inner.config;
        let unpushed_commits = match self.git() {
            Some((git, _)) => {
                let git = git.clone();
                blocking(move || git.unpushed()).await.ok().flatten()
            }
            None => None,
        };
        let unmirrored = match &self.inner.backend {
            Backend::Hybrid { db, .. } => match db.unmirrored().await {
                Ok(pending) => {
                    let paths: BTreeSet<String> =
                        pending.into_iter().map(|e| e.path).filter(|p| self.can_see(p)).collect();
                    paths.into_iter().collect()
                }
                Err(e) => {
                    tracing::warn!(kb = %c.name, error = %e, "cannot read the edits waiting for their git commit");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        let last_sync_error = match (last_sync_error, &self.access) {
            (Some(_), Some(_)) => Some("the last sync failed (administrators see why)".to_string()),
            (e, _) => e,
        };
        KbStatus {
            name: c.name.clone(),
            mode: c.mode,
            remote: c.remote.as_deref().map(redact_url),
            branch: c.branch.clone(),
            commit: self.head().await,
            last_sync,
            last_sync_error,
            documents: self.snapshot().by_path.len(),
            indexed_documents: self.inner.index.num_docs(),
            index_size_bytes: self.inner.index.size_bytes(),
            unpushed_commits,
            unmirrored,
            semantic: self.semantic_status(),
        }
    }

    /// Ranked full-text search (BM25) with highlighted snippets.
    ///
    /// Through a [`Kb::restricted`] handle, the index itself leaves out what the caller may not read
    /// (see [`ReadAccess`]), and every hit is checked with the caller's filter as well.
    pub fn search(&self, opts: &SearchOptions) -> Result<SearchResults> {
        let docs = self.snapshot();
        let body = |p: &str| docs.by_path.get(p).map(|d| d.body());
        let Some(a) = self.access.as_ref().filter(|a| !a.is_everything()) else {
            return self.inner.index.search(opts, None, &body);
        };
        let paths: Vec<String> = if a.is_partial() {
            let only = opts.paths.as_ref();
            docs.by_path.keys().filter(|p| only.is_none_or(|only| only.contains(p)) && a.allows(p)).cloned().collect()
        } else {
            Vec::new()
        };
        let mut found = self.inner.index.search(opts, Some(&Readable { terms: a.terms(), paths }), &body)?;
        let before = found.hits.len();
        found.hits.retain(|h| a.allows(&h.path));
        if found.hits.len() < before {
            // The index's terms and the filter disagree: a bug in how the access was described.
            tracing::error!(left_out = before - found.hits.len(), "search hits the caller may not read were left out");
            found.total = found.total.saturating_sub(before - found.hits.len());
        }
        Ok(found)
    }

    /// This knowledge base as seen by a caller who may read only the documents `access` allows:
    /// searches, reads, listings, links, backlinks and contexts leave the others out (reading one is
    /// `NotFound`, as if it did not exist). Edits are not filtered: check write access before them.
    pub fn restricted(&self, access: impl Into<ReadAccess>) -> Kb {
        Kb { inner: self.inner.clone(), access: Some(access.into()) }
    }

    /// Whether this handle may see the document at `path`.
    pub fn can_see(&self, path: &str) -> bool {
        self.access.as_ref().is_none_or(|a| a.allows(path))
    }

    /// Exact or regex search over the raw text of the documents, line by line, within
    /// [`GREP_TIME_LIMIT`] (then [`KbError::Timeout`]). Patterns are at most [`MAX_GREP_PATTERN_BYTES`]
    /// long, and compile to a bounded automaton. It works on a snapshot of the documents, holding no
    /// lock; from async code use [`Kb::grep_async`], which runs it off the async workers.
    pub fn grep(&self, opts: &GrepOptions) -> Result<Vec<GrepMatch>> {
        self.grep_until(opts, Instant::now() + GREP_TIME_LIMIT)
    }

    /// [`Kb::grep`] on a blocking thread, so a long scan never holds up the async workers. At most
    /// `kb.max_concurrent_scans` run at once (twice the cores by default), so that scans cannot fill
    /// the cores and the blocking pool others need: beyond, [`KbError::Busy`] at once. A scan keeps
    /// its place until it ends, even when its caller has gone.
    pub async fn grep_async(&self, opts: GrepOptions) -> Result<Vec<GrepMatch>> {
        let permit = self.inner.scans.clone().try_acquire_owned().map_err(|_| {
            KbError::Busy(format!(
                "{} exact or regex searches are already running; try again in a moment",
                self.inner.config.scan_limit()
            ))
        })?;
        let kb = self.clone();
        blocking(move || {
            let _running = permit;
            kb.grep(&opts)
        })
        .await
    }

    /// [`Kb::grep`], stopping with [`KbError::Timeout`] once `deadline` has passed.
    pub(crate) fn grep_until(&self, opts: &GrepOptions, deadline: Instant) -> Result<Vec<GrepMatch>> {
        if opts.pattern.is_empty() {
            return Err(KbError::InvalidInput("the search pattern is empty".into()));
        }
        if opts.pattern.len() > MAX_GREP_PATTERN_BYTES {
            return Err(KbError::InvalidInput(format!(
                "the search pattern is {} bytes; the limit is {MAX_GREP_PATTERN_BYTES}",
                opts.pattern.len()
            )));
        }
        let pattern = if opts.regex { opts.pattern.clone() } else { regex::escape(&opts.pattern) };
        let re = regex::RegexBuilder::new(&pattern)
            .case_insensitive(!opts.case_sensitive)
            // Lines are matched one by one: `^` and `$` are their start and end (also when the
            // whole text is tried first to skip documents without a match).
            .multi_line(true)
            .crlf(true)
            .nest_limit(GREP_NEST_LIMIT)
            .size_limit(1 << 20)
            .dfa_size_limit(4 << 20)
            .build()
            .map_err(|e| KbError::InvalidInput(format!("invalid regular expression: {e}")))?;
        let folder = opts.folder.as_deref().map(VaultPath::parse).transpose()?;
        let prefix = folder.map(|f| format!("{}/", f.as_str())).unwrap_or_default();
        let limit = if opts.limit == 0 { 100 } else { opts.limit.min(1000) };
        let timeout = || {
            KbError::Timeout(format!(
                "the search was stopped after {} s; narrow it (a folder, a more specific pattern)",
                GREP_TIME_LIMIT.as_secs()
            ))
        };
        let docs = self.snapshot();
        let mut out = Vec::new();
        for (p, d) in docs.by_path.range(prefix.clone()..) {
            if !p.starts_with(&prefix) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(timeout());
            }
            if !self.can_see(p) || !re.is_match(&d.content) {
                continue;
            }
            for (i, line) in d.content.lines().enumerate() {
                if i % 256 == 255 && Instant::now() >= deadline {
                    return Err(timeout());
                }
                if re.is_match(line) {
                    out.push(GrepMatch { path: p.clone(), line: i + 1, text: line.chars().take(300).collect() });
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Finds a document by path (with or without `.md`) or by the name a wikilink would use (file
    /// name, title or alias).
    /// Only documents this handle may see are found.
    pub fn resolve(&self, name_or_path: &str) -> Option<String> {
        let docs = self.snapshot();
        let p = doc_path(name_or_path).ok()?;
        if docs.by_path.contains_key(p.as_str()) && self.can_see(p.as_str()) {
            return Some(p.as_str().to_string());
        }
        docs.resolve_link(name_or_path, "", &|p| self.can_see(p))
    }

    /// Reads a document (by path or name). In database modes the database is read, so that edits made
    /// by other instances are seen at once.
    pub async fn read(&self, path: &str) -> Result<Arc<Document>> {
        let d = self.read_any(path).await?;
        if !self.can_see(d.path.as_str()) {
            return Err(KbError::NotFound(doc_path(path)?.to_string()));
        }
        Ok(d)
    }

    async fn read_any(&self, path: &str) -> Result<Arc<Document>> {
        let vp = doc_path(path)?;
        // A document this handle may not see is not there: a name may then be another document's.
        let visible = self.can_see(vp.as_str());
        if let (Backend::Database { db } | Backend::Hybrid { db, .. }, true) = (&self.inner.backend, visible) {
            if let Some(r) = db.get(vp.as_str()).await? {
                let cached = self.snapshot().by_path.get(vp.as_str()).cloned();
                if let Some(c) = cached.filter(|c| c.content == r.content) {
                    return Ok(c);
                }
                return Ok(Arc::new(Document::new(vp, r.content, Some(r.updated_at))));
            }
        }
        let docs = self.snapshot();
        if let Some(d) = docs.by_path.get(vp.as_str()).filter(|_| visible) {
            return Ok(d.clone());
        }
        // A name (no `.md`) may also be a title or an alias; an explicit path is only that path.
        let by_name = if crate::document::is_markdown(path.trim()) {
            None
        } else {
            docs.resolve_link(path, "", &|p| self.can_see(p))
        };
        by_name.and_then(|p| docs.by_path.get(&p).cloned()).ok_or_else(|| KbError::NotFound(vp.to_string()))
    }

    /// Lists a folder (`None` or `""` for the root): sub-folders first, then documents; with
    /// `recursive`, every document below.
    pub fn list(&self, folder: Option<&str>, recursive: bool) -> Result<Vec<ListEntry>> {
        let folder = match folder.map(str::trim).filter(|f| !f.is_empty() && *f != "/" && *f != ".") {
            Some(f) => {
                let p = VaultPath::parse(f)?;
                fs::check_visible(&p)?;
                Some(p.as_str().to_string())
            }
            None => None,
        };
        let prefix = folder.as_ref().map(|f| format!("{f}/")).unwrap_or_default();
        let docs = self.snapshot();
        let mut folders: BTreeMap<String, usize> = BTreeMap::new();
        let mut files = Vec::new();
        for (p, d) in docs.by_path.range(prefix.clone()..) {
            let Some(rest) = p.strip_prefix(&prefix) else { break };
            if !self.can_see(p) {
                continue;
            }
            match rest.split_once('/') {
                Some((sub, _)) if !recursive => *folders.entry(format!("{prefix}{sub}")).or_default() += 1,
                _ => files.push(ListEntry {
                    path: p.clone(),
                    kind: "document",
                    title: Some(d.note.title.clone()),
                    tags: d.note.tags.clone(),
                    size: d.content.len(),
                    modified: d.modified,
                }),
            }
        }
        if folder.is_some() && folders.is_empty() && files.is_empty() {
            return Err(KbError::NotFound(format!("folder {}", folder.unwrap_or_default())));
        }
        let mut out: Vec<ListEntry> = folders
            .into_iter()
            .map(|(path, n)| ListEntry { path, kind: "folder", title: None, tags: Vec::new(), size: n, modified: None })
            .collect();
        out.extend(files);
        Ok(out)
    }

    /// Links from a document, each resolved when its target exists.
    pub fn links(&self, path: &str) -> Result<Vec<LinkInfo>> {
        let docs = self.snapshot();
        let see = |p: &str| self.can_see(p);
        let p = docs
            .resolve_link(path, "", &see)
            .filter(|p| self.can_see(p))
            .ok_or_else(|| KbError::NotFound(path.to_string()))?;
        let d = docs.by_path.get(&p).ok_or_else(|| KbError::NotFound(path.to_string()))?;
        Ok(d.note
            .links
            .iter()
            .map(|l| {
                let target = docs.resolve_link(&l.target, &p, &see);
                let title = target.as_ref().and_then(|t| docs.by_path.get(t)).map(|d| d.note.title.clone());
                LinkInfo { path: target, title, link: l.clone() }
            })
            .collect())
    }

    /// Documents linking to a document (by path or name), with the links as written.
    pub fn backlinks(&self, path: &str) -> Result<Vec<LinkInfo>> {
        let docs = self.snapshot();
        let see = |p: &str| self.can_see(p);
        let p = docs
            .resolve_link(path, "", &see)
            .filter(|p| self.can_see(p))
            .ok_or_else(|| KbError::NotFound(path.to_string()))?;
        let mut out = Vec::new();
        for src in docs.backlinks_of(&p, &see) {
            let Some(d) = docs.by_path.get(src) else { continue };
            for l in &d.note.links {
                if docs.resolve_link(&l.target, src, &see).as_deref() == Some(p.as_str()) {
                    let link = l.clone();
                    out.push(LinkInfo { path: Some(src.to_string()), title: Some(d.note.title.clone()), link });
                }
            }
        }
        Ok(out)
    }

    /// Loads a topic's documents for a prompt within `max_tokens` (estimated): the topic's document
    /// and the documents it links to and that link to it (then their links, breadth first); or every
    /// document of a folder or a tag; or the best search results for the topic.
    pub fn context(&self, topic: &str, max_tokens: usize) -> Result<Context> {
        let topic = topic.trim();
        if topic.is_empty() {
            return Err(KbError::InvalidInput("the context topic is empty".into()));
        }
        let max_tokens = if max_tokens == 0 { 4000 } else { max_tokens.min(200_000) };
        let candidates = self.context_candidates(topic)?;
        let docs = self.snapshot();
        let mut out = Context {
            topic: topic.to_string(),
            documents: Vec::new(),
            total_tokens: 0,
            max_tokens,
            omitted: Vec::new(),
        };
        for (p, reason) in candidates {
            if !self.can_see(&p) {
                continue;
            }
            let Some(d) = docs.by_path.get(&p) else { continue };
            // The document's header in the prompt counts too (see `Context::to_prompt`).
            let header = crate::document::estimate_tokens(&prompt_frame(&d.note.title, &p, "")) + 1;
            let tokens = d.estimated_tokens() + header;
            let left = max_tokens - out.total_tokens;
            if tokens <= left {
                out.total_tokens += tokens;
                out.documents.push(ContextDocument {
                    path: p,
                    title: d.note.title.clone(),
                    reason,
                    tokens,
                    content: d.content.clone(),
                    truncated: false,
                });
            } else if out.documents.is_empty() && left > header {
                // The topic itself does not fit: give its beginning.
                let content = crate::document::cut_to_tokens(&d.content, left - header).to_string();
                let t = crate::document::estimate_tokens(&content) + header;
                out.total_tokens += t;
                out.documents.push(ContextDocument {
                    path: p,
                    title: d.note.title.clone(),
                    reason,
                    tokens: t,
                    content,
                    truncated: true,
                });
            } else {
                out.omitted.push(p);
            }
        }
        Ok(out)
    }

    /// The documents of a topic, most relevant first, without a budget.
    fn context_candidates(&self, topic: &str) -> Result<Vec<(String, ContextReason)>> {
        let docs = self.snapshot();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        fn add(seen: &mut BTreeSet<String>, p: String, r: ContextReason, out: &mut Vec<(String, ContextReason)>) {
            if seen.insert(p.clone()) {
                out.push((p, r));
            }
        }
        // Only documents this handle may see are candidates, found through, or linked through: for
        // the others the answer is as if they did not exist.
        let see = |p: &str| self.can_see(p);
        // A document: itself, then links and backlinks, two levels deep.
        if let Some(p) = docs.resolve_link(topic, "", &see).filter(|_| !topic.starts_with('#')) {
            add(&mut seen, p.clone(), ContextReason::Topic, &mut out);
            let mut frontier = vec![p];
            for _ in 0..2 {
                let mut next = Vec::new();
                for cur in &frontier {
                    if let Some(d) = docs.by_path.get(cur) {
                        for l in &d.note.links {
                            if let Some(t) = docs.resolve_link(&l.target, cur, &see) {
                                if !seen.contains(&t) {
                                    next.push(t.clone());
                                }
                                add(&mut seen, t, ContextReason::Link, &mut out);
                            }
                        }
                    }
                    for b in docs.backlinks_of(cur, &see) {
                        if !seen.contains(b) {
                            next.push(b.to_string());
                        }
                        add(&mut seen, b.to_string(), ContextReason::Backlink, &mut out);
                    }
                }
                frontier = next;
            }
            return Ok(out);
        }
        // A folder.
        if let Ok(f) = VaultPath::parse(topic) {
            let prefix = format!("{}/", f.as_str());
            for p in docs.by_path.keys().filter(|p| p.starts_with(&prefix) && see(p)) {
                add(&mut seen, p.clone(), ContextReason::Folder, &mut out);
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        // A tag.
        let tag = topic.trim_start_matches('#').to_lowercase();
        for (p, d) in docs.by_path.iter().filter(|(p, _)| see(p)) {
            if d.note.tags.iter().any(|t| {
                let t = t.to_lowercase();
                t == tag || t.starts_with(&format!("{tag}/"))
            }) {
                add(&mut seen, p.clone(), ContextReason::Tag, &mut out);
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        drop(docs);
        let hits = self.search(&SearchOptions { query: topic.to_string(), limit: 20, ..Default::default() })?;
        Ok(hits.hits.into_iter().map(|h| (h.path, ContextReason::Search)).collect())
    }

    /// Ranked search restricted to the documents of a topic's context.
    pub fn search_within_context(&self, topic: &str, query: &str, limit: usize) -> Result<SearchResults> {
        let paths: Vec<String> = self.context_candidates(topic)?.into_iter().map(|(p, _)| p).collect();
        if paths.is_empty() {
            return Err(KbError::NotFound(format!("no documents for topic {topic}")));
        }
        self.search(&SearchOptions { query: query.to_string(), limit, paths: Some(paths), ..Default::default() })
    }

    /// The current version of a document on the backend, if it exists.
    async fn current_version(&self, p: &VaultPath) -> Result<Option<String>> {
        match &self.inner.backend {
            Backend::Files { root, .. } => {
                let (root, p) = (root.clone(), p.clone());
                Ok(blocking(move || fs::read_file(&root, &p)).await?.map(|f| crate::parse::version_of(&f.content)))
            }
            Backend::Database { db } | Backend::Hybrid { db, .. } => {
                Ok(db.get(p.as_str()).await?.map(|r| crate::parse::version_of(&r.content)))
            }
        }
    }

    /// Hybrid mode: the record saved with an edit in the database until its commit is made.
    fn mirror<'a>(&self, author: &'a Author, message: &'a str) -> Option<Mirror<'a>> {
        matches!(self.inner.backend, Backend::Hybrid { .. }).then_some(Mirror { author, message })
    }

    /// Applies `changes` to the files (git: as one commit by `author`), returning the commit. Hybrid
    /// mode: `recorded` are the edit's `kb_unmirrored` rows, saved with it in the database; they are
    /// removed once the commit is made and otherwise left for the next sync.
    async fn commit_files(
        &self,
        changes: Vec<Change>,
        message: String,
        author: Author,
        recorded: Vec<Unmirrored>,
    ) -> Result<(Option<String>, bool)> {
        let (root, git) = match &self.inner.backend {
            Backend::Files { root, git } => (root.clone(), git.clone()),
            Backend::Hybrid { root, git, .. } => (root.clone(), Some(git.clone())),
            Backend::Database { .. } => return Ok((None, false)),
        };
        let push = self.inner.config.push && self.inner.config.remote.is_some();
        let res = blocking(move || {
            write_changes(&root, &changes)?;
            let Some(git) = git else { return Ok((None, false)) };
            let commit = git.commit(&changes, &message, &author)?;
            let pushed =
                push && git.push().map_err(|e| tracing::warn!(error = %e, "push failed; retried at next sync")).is_ok();
            Ok((Some(commit), pushed))
        })
        .await;
        let Backend::Hybrid { db, .. } = &self.inner.backend else { return res };
        match res {
            Ok(done) => {
                if recorded.is_empty() {
                    return Ok(done);
                }
                if let Err(e) = db.clear_unmirrored(&recorded).await {
                    // Harmless: the next sync finds git already has the text and makes no commit.
                    tracing::warn!(error = %e, "hybrid knowledge base: could not clear a mirrored edit's record");
                }
                Ok(done)
            }
            Err(e) => {
                // The database has the edit and its record (`kb_unmirrored`, saved together), so a
                // restart or another instance does not forget it: the next sync commits it
                // (see `mirror_pending`).
                tracing::warn!(error = %e, "hybrid knowledge base: could not mirror the edit to git");
                self.inner.sync.lock().expect("sync lock").last_error = Some(format!("git mirror: {e}"));
                Ok((None, false))
            }
        }
    }

    /// Hybrid mode: commits to the working copy the database's current text of the documents whose
    /// mirroring failed (a deletion when the database no longer has them), as recorded in
    /// `kb_unmirrored` by this instance or another one. Each edit gets its own commit (entries with the
    /// same author and message go together, so a move stays one commit), oldest first, with the
    /// editing user as author; an edit whose text git already has makes no commit. Each entry is
    /// removed once its commit is made; on an error the rest stay for the next sync.
    async fn mirror_pending(&self) -> Result<()> {
        let Backend::Hybrid { db, root, git } = &self.inner.backend else { return Ok(()) };
        let mut groups: Vec<Vec<Unmirrored>> = Vec::new();
        for e in db.unmirrored().await? {
            match groups.iter_mut().find(|g| g[0].author == e.author && g[0].message == e.message) {
                Some(g) => g.push(e),
                None => groups.push(vec![e]),
            }
        }
        for group in groups {
            let mut changes: Vec<Change> = Vec::new();
            for e in &group {
                changes.push((e.path.clone(), db.get(&e.path).await?.map(|r| r.content)));
            }
            let (root, git) = (root.clone(), git.clone());
            let (author, message) = (group[0].author.clone(), group[0].message.clone());
            let commit = blocking(move || {
                write_changes(&root, &changes)?;
                git.commit_if_changed(&changes, &message, &author)
            })
            .await?;
            db.clear_unmirrored(&group).await?;
            let paths: Vec<&str> = group.iter().map(|e| e.path.as_str()).collect();
            tracing::info!(kb = %self.inner.config.name, ?commit, ?paths, "committed an edit made in the database");
        }
        Ok(())
    }

    /// Updates the in-memory documents and the index after an edit.
    async fn after_edit(&self, upserts: Vec<Document>, deletes: Vec<String>) -> Result<()> {
        let up: Vec<Arc<Document>> = upserts.into_iter().map(Arc::new).collect();
        let inner = self.inner.clone();
        let (u2, d2) = (up.clone(), deletes.clone());
        blocking(move || inner.index.apply(u2.iter().map(|d| d.as_ref()), &d2)).await?;
        self.update_docs(move |g| {
            for p in &deletes {
                g.remove(p);
            }
            for d in up {
                g.insert(d.path.as_str().to_string(), d);
            }
        })
        .await?;
        self.inner.semantic.touch();
        Ok(())
    }

    /// Writes a document: creates it, or replaces it if `version` still matches (or `overwrite`).
    /// Once started it runs to its end, whether or not the caller waits for it.
    pub async fn write(&self, req: WriteRequest) -> Result<EditOutcome> {
        let kb = self.clone();
        to_completion(async move { kb.write_now(req).await }).await
    }

    async fn write_now(&self, req: WriteRequest) -> Result<EditOutcome> {
        let p = doc_path(&req.path)?;
        if req.content.len() > self.inner.config.max_document_bytes {
            return Err(KbError::InvalidInput(format!(
                "the document is {} bytes; the limit is {}",
                req.content.len(),
                self.inner.config.max_document_bytes
            )));
        }
        if req.content.contains('\0') {
            return Err(KbError::InvalidInput("documents may not contain NUL characters".into()));
        }
        // Checked before anything is saved: a note whose frontmatter is over the bounds (a "billion
        // laughs" of nested aliases) is refused, in every storage mode.
        crate::parse::check_frontmatter(&req.content).map_err(|e| KbError::InvalidInput(e.to_string()))?;
        let _guard = self.inner.edit.lock().await;
        let current = self.current_version(&p).await?;
        match (&current, &req.version) {
            (Some(_), None) if !req.overwrite => {
                return Err(KbError::Conflict(format!("{p} already exists; pass its version to replace it")))
            }
            (Some(cur), Some(v)) if cur != v && !req.overwrite => {
                return Err(KbError::Conflict(format!("{p} changed since version {v} (now {cur})")))
            }
            (None, Some(_)) if !req.overwrite => return Err(KbError::NotFound(p.to_string())),
            _ => {}
        }
        let author = author_or_default(&req.author);
        let by = Some(author.email.as_str());
        let created = current.is_none();
        let verb = if created { "Create" } else { "Update" };
        let message = req.message.clone().unwrap_or_else(|| format!("{verb} {p}"));
        let mirror = self.mirror(&author, &message);
        let recorded = match &self.inner.backend {
            Backend::Database { db } | Backend::Hybrid { db, .. } => match (&current, &req.version) {
                (None, _) => db.create(p.as_str(), &req.content, by, mirror.as_ref()).await?,
                (Some(_), Some(v)) if !req.overwrite => {
                    db.update(p.as_str(), &req.content, v, by, mirror.as_ref()).await?
                }
                (Some(_), _) => db.upsert(p.as_str(), &req.content, by, mirror.as_ref()).await?,
            },
            Backend::Files { .. } => Vec::new(),
        };
        let changes = vec![(p.as_str().to_string(), Some(req.content.clone()))];
        let (commit, pushed) = self.commit_files(changes, message, author, recorded).await?;
        let doc = Document::new(p.clone(), req.content, Some(Utc::now()));
        let version = doc.version.clone();
        self.after_edit(vec![doc], Vec::new()).await?;
        Ok(EditOutcome { path: p.to_string(), version: Some(version), created, commit, pushed })
    }

    /// Moves (renames) a document; fails if the destination exists or `version` no longer matches.
    /// Once started it runs to its end, whether or not the caller waits for it.
    pub async fn move_document(
        &self,
        from: &str,
        to: &str,
        version: Option<&str>,
        author: Option<Author>,
    ) -> Result<EditOutcome> {
        let kb = self.clone();
        let (from, to, version) = (from.to_string(), to.to_string(), version.map(str::to_string));
        to_completion(async move { kb.move_now(&from, &to, version.as_deref(), author).await }).await
    }

    async fn move_now(
        &self,
        from: &str,
        to: &str,
        version: Option<&str>,
        author: Option<Author>,
    ) -> Result<EditOutcome> {
        let (src, dst) = (doc_path(from)?, doc_path(to)?);
        if src == dst {
            return Err(KbError::InvalidInput("source and destination are the same".into()));
        }
        let _guard = self.inner.edit.lock().await;
        let Some(cur) = self.current_version(&src).await? else { return Err(KbError::NotFound(src.to_string())) };
        if version.is_some_and(|v| v != cur) {
            return Err(KbError::Conflict(format!("{src} changed since the given version")));
        }
        if self.current_version(&dst).await?.is_some() {
            return Err(KbError::Conflict(format!("{dst} already exists")));
        }
        let author = author_or_default(&author);
        let message = format!("Move {src} to {dst}");
        let mirror = self.mirror(&author, &message);
        let (content, recorded) = match &self.inner.backend {
            Backend::Files { root, .. } => {
                let (root, s) = (root.clone(), src.clone());
                (blocking(move || fs::read_file(&root, &s)).await?.map(|f| f.content), Vec::new())
            }
            Backend::Database { db } | Backend::Hybrid { db, .. } => {
                let recorded =
                    db.rename(src.as_str(), dst.as_str(), Some(&cur), Some(&author.email), mirror.as_ref()).await?;
                (db.get(dst.as_str()).await?.map(|r| r.content), recorded)
            }
        };
        let content = content.ok_or_else(|| KbError::NotFound(src.to_string()))?;
        let changes = vec![(src.as_str().to_string(), None), (dst.as_str().to_string(), Some(content.clone()))];
        let (commit, pushed) = self.commit_files(changes, message, author, recorded).await?;
        let doc = Document::new(dst.clone(), content, Some(Utc::now()));
        let version = doc.version.clone();
        self.after_edit(vec![doc], vec![src.as_str().to_string()]).await?;
        Ok(EditOutcome { path: dst.to_string(), version: Some(version), created: false, commit, pushed })
    }

    /// Deletes a document (if `version` still matches, when given).
    /// Once started it runs to its end, whether or not the caller waits for it.
    pub async fn delete(&self, path: &str, version: Option<&str>, author: Option<Author>) -> Result<EditOutcome> {
        let kb = self.clone();
        let (path, version) = (path.to_string(), version.map(str::to_string));
        to_completion(async move { kb.delete_now(&path, version.as_deref(), author).await }).await
    }

    async fn delete_now(&self, path: &str, version: Option<&str>, author: Option<Author>) -> Result<EditOutcome> {
        let p = doc_path(path)?;
        let _guard = self.inner.edit.lock().await;
        let Some(cur) = self.current_version(&p).await? else { return Err(KbError::NotFound(p.to_string())) };
        if version.is_some_and(|v| v != cur) {
            return Err(KbError::Conflict(format!("{p} changed since the given version")));
        }
        let author = author_or_default(&author);
        let message = format!("Delete {p}");
        let mirror = self.mirror(&author, &message);
        let recorded = match &self.inner.backend {
            Backend::Database { db } | Backend::Hybrid { db, .. } => {
                db.delete(p.as_str(), Some(&cur), mirror.as_ref()).await?
            }
            Backend::Files { .. } => Vec::new(),
        };
        let (commit, pushed) =
            self.commit_files(vec![(p.as_str().to_string(), None)], message, author, recorded).await?;
        self.after_edit(Vec::new(), vec![p.as_str().to_string()]).await?;
        Ok(EditOutcome { path: p.to_string(), version: None, created: false, commit, pushed })
    }

    /// All documents (shared, cheap to clone).
    pub fn documents(&self) -> Vec<Arc<Document>> {
        let docs = self.snapshot();
        docs.by_path.values().filter(|d| self.can_see(d.path.as_str())).cloned().collect()
    }

    /// Turns semantic and hybrid search on: notes are embedded by `embedder` in the background (see
    /// [`crate::semantic`]), their vectors kept in `store` (the database, shared by every instance;
    /// in memory when `None`) under the scope `kb:<name>`. Called again, it replaces the embedder and
    /// starts over. Needs a Tokio runtime.
    pub fn enable_semantic(
        &self,
        embedder: Arc<dyn crate::semantic::Embedder>,
        store: Option<Arc<dyn crate::semantic::VectorStore>>,
    ) {
        let c = &self.inner.config;
        let dir = c.index_dir.as_ref().map(|d| {
            let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "index".into());
            d.with_file_name(format!("{name}.vectors"))
        });
        if embedder.is_test_fallback() {
            tracing::warn!(kb = %c.name, "semantic search uses the word-hashing test fallback, which is not semantic: configure `[embeddings] model`");
        }
        let setup = crate::semantic::Setup {
            embedder,
            store: store.unwrap_or_else(|| Arc::new(crate::semantic::MemoryVectors::default())),
            scope: format!("kb:{}", c.name),
            dir,
        };
        let (tx, stop) = tokio::sync::oneshot::channel();
        // The previous indexer, if any, stops as its sender is replaced.
        *self.inner.semantic_stop.lock().expect("semantic lock") = Some(tx);
        self.inner.semantic.configure(setup);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let state = move || {
                let inner = weak.upgrade()?;
                let docs: Vec<Arc<Document>> =
                    inner.docs.read().expect("docs lock").by_path.values().cloned().collect();
                Some((inner.semantic.clone(), docs))
            };
            crate::semantic::run(state, stop).await;
        });
        self.inner.semantic.touch();
    }

    /// Runs one semantic indexing pass now and waits for it (the background indexer does the same
    /// after every change): every note whose version changed is re-chunked, and its new chunks
    /// embedded; the index is then saved (when `index_dir` is set). For tests, benchmarks and
    /// commands that need the index up to date.
    pub async fn index_vectors(&self) -> Result<()> {
        let docs: Vec<Arc<Document>> = self.snapshot().by_path.values().cloned().collect();
        match self.inner.semantic.pass(&docs).await {
            Ok(_) => {
                self.inner.semantic.save().await;
                Ok(())
            }
            Err(e) => {
                self.inner.semantic.failed(&e);
                Err(KbError::Unavailable(e.to_string()))
            }
        }
    }

    /// The `k` chunks nearest `query` (each a hit of its note: path, title, section, similarity),
    /// through the approximate index, or comparing every vector when `exact`: what semantic search
    /// ranks before it keeps the best chunk of each note. For diagnostics, and to measure the index's
    /// recall against exact search (`benches/kb_semantic`). At most
    /// [`crate::semantic::MAX_SEMANTIC_LIMIT`] chunks.
    pub async fn nearest_chunks(
        &self,
        query: &str,
        k: usize,
        exact: bool,
    ) -> Result<Vec<crate::semantic::SemanticHit>> {
        let k = k.clamp(1, crate::semantic::MAX_SEMANTIC_LIMIT);
        let found = self.inner.semantic.nearest(query, k, self.reader(), exact, false).await?;
        let docs = self.snapshot();
        Ok(crate::semantic::hits(found, |p| docs.by_path.get(p).cloned(), true))
    }

    /// Where semantic indexing stands (`None` when semantic search is off). Through a
    /// [`Kb::restricted`] handle the last failure is not detailed (the provider's error text).
    pub fn semantic_status(&self) -> Option<crate::semantic::SemanticStatus> {
        let mut s = self.inner.semantic.status(self.snapshot().by_path.len())?;
        if self.access.is_some() && s.last_error.is_some() {
            s.last_error = Some("the embedding model failed (administrators see why)".into());
        }
        Some(s)
    }

    /// How many candidates a vector search explores through the graph, once the index has one (16
    /// to 4,096; 0: the default, 128; see [`Kb::set_vector_graph_above`]):
    /// more finds the exact nearest chunks more often, at a cost in time (see BENCHMARKS.md, "Semantic
    /// search"). Applies to every handle of this knowledge base.
    pub fn set_vector_search_width(&self, candidates: usize) {
        self.inner.semantic.set_width(candidates);
    }

    /// How many live chunks the vector index holds before searches go through its HNSW graph
    /// instead of comparing every vector (`None`: the default, 2²⁵ numbers' worth: 131,072 chunks of
    /// 256 numbers, 21,845 of 1,536; `Some(0)`: always the graph). Takes effect for the index built
    /// or loaded next: call it before [`Kb::enable_semantic`]. For benchmarks and tuning.
    pub fn set_vector_graph_above(&self, chunks: Option<usize>) {
        self.inner.semantic.set_graph_above(chunks);
    }

    /// What this handle may read, as a filter that outlives it (for work on a blocking thread).
    fn reader(&self) -> crate::semantic::Allow {
        let me = self.clone();
        Arc::new(move |p: &str| me.can_see(p))
    }

    /// Search by meaning: `Semantic` ranks notes by their best chunk's similarity to `query`;
    /// `Hybrid` fuses that ranking with BM25's (every word optional). At most
    /// [`crate::semantic::MAX_SEMANTIC_LIMIT`] results (`limit` 0: 10); only notes this handle may
    /// read. Fails with [`KbError::Unavailable`] when no embedding model is set up (saying how).
    pub async fn search_by_meaning(
        &self,
        mode: crate::semantic::MeaningMode,
        query: &str,
        limit: usize,
    ) -> Result<Vec<crate::semantic::SemanticHit>> {
        let limit = if limit == 0 { 10 } else { limit.min(crate::semantic::MAX_SEMANTIC_LIMIT) };
        let depth = match mode {
            crate::semantic::MeaningMode::Semantic => limit,
            crate::semantic::MeaningMode::Hybrid => crate::semantic::fusion_depth(limit),
        };
        let exhaustive = self.access.as_ref().is_some_and(|a| a.is_partial());
        // Hybrid: BM25 (every word optional, no snippets) runs on a blocking thread while the query
        // is embedded and the vectors searched.
        let bm25 = match mode {
            crate::semantic::MeaningMode::Hybrid if self.inner.semantic.setup().is_some() => {
                let kb = self.clone();
                let opts = SearchOptions {
                    query: query.to_string(),
                    limit: depth,
                    any_word: true,
                    no_snippets: true,
                    ..SearchOptions::default()
                };
                Some(tokio::task::spawn_blocking(move || kb.search(&opts)))
            }
            _ => None,
        };
        let found = self.inner.semantic.nearest(query, depth, self.reader(), exhaustive, true).await?;
        let docs = self.snapshot();
        let Some(bm25) = bm25 else {
            return Ok(crate::semantic::hits(found, |p| docs.by_path.get(p).cloned(), true));
        };
        // Snippets are cut for the fused results only: the best chunk of each note the vectors found.
        let best: HashMap<String, String> = found.iter().map(|f| (f.path.clone(), f.hash.clone())).collect();
        let vectors = crate::semantic::hits(found, |p| docs.by_path.get(p).cloned(), false);
        let bm25 = match bm25.await.map_err(|e| KbError::Index(e.to_string()))? {
            Ok(r) => r.hits.into_iter().map(|h| (h.path, h.title, h.snippet)).collect(),
            // A query with nothing BM25 can match (only punctuation, only exclusions).
            Err(KbError::InvalidInput(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut fused = crate::semantic::fuse(bm25, vectors, limit);
        for h in fused.iter_mut().filter(|h| h.snippet.is_empty()) {
            if let Some(d) = docs.by_path.get(&h.path) {
                h.snippet = crate::semantic::snippet(d, best.get(&h.path).map(String::as_str));
            }
        }
        Ok(fused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, content: &str) -> Arc<Document> {
        Arc::new(Document::new(VaultPath::parse(path).unwrap(), content.to_string(), None))
    }

    fn set(docs: &[Arc<Document>]) -> BTreeMap<String, Arc<Document>> {
        docs.iter().map(|d| (d.path.as_str().to_string(), d.clone())).collect()
    }

    /// What an incremental snapshot holds is what deriving it from scratch gives, whatever changed.
    #[test]
    fn incremental_links_match_a_full_derivation() {
        let base = vec![
            doc("a.md", "# A\nSee [[b]] and [[C note]]."),
            doc("b.md", "---\naliases: [Bee]\n---\n# B\nBack to [[a]]."),
            doc("c.md", "---\ntitle: C note\n---\nNothing."),
            doc("d/e.md", "# E\n[[Bee]] [[missing]]"),
        ];
        let start = Docs::derive(set(&base));
        let edits: Vec<Vec<Arc<Document>>> = vec![
            // Links changed, names kept: incremental.
            vec![doc("a.md", "# A\nOnly [[d/e]] now."), base[1].clone(), base[2].clone(), base[3].clone()],
            vec![
                base[0].clone(),
                base[1].clone(),
                doc("c.md", "---\ntitle: C note\n---\n[[a]] [[b]]"),
                base[3].clone(),
            ],
            // A title changed: derived again.
            vec![base[0].clone(), base[1].clone(), doc("c.md", "---\ntitle: Sea\n---\nNothing."), base[3].clone()],
            // A document gone, another added.
            vec![base[0].clone(), base[1].clone(), doc("f.md", "# F\n[[a]]"), base[3].clone()],
        ];
        for (i, docs) in edits.iter().enumerate() {
            let next = start.next(set(docs));
            let full = Docs::derive(set(docs));
            assert_eq!(next.linkers, full.linkers, "edit {i}");
            assert_eq!(next.by_name, full.by_name, "edit {i}");
            assert_eq!(next.by_lower_path, full.by_lower_path, "edit {i}");
        }
        let same = start.next(set(&base));
        assert!(Arc::ptr_eq(&same.by_name, &start.by_name), "nothing changed: the name maps are shared");
    }

    #[tokio::test]
    async fn grep_stops_at_its_deadline_with_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let config = KbConfig { root: dir.path().join("v"), sync_interval_secs: 0, ..Default::default() };
        let kb = Kb::open(config).await.unwrap();
        let content = "fog\n".repeat(1000);
        kb.write(WriteRequest { path: "a.md".into(), content, ..Default::default() }).await.unwrap();
        let opts = GrepOptions { pattern: "fog".into(), limit: 1000, ..Default::default() };
        let e = kb.grep_until(&opts, Instant::now()).unwrap_err();
        assert!(matches!(e, KbError::Timeout(_)), "{e}");
        assert_eq!((e.http_status(), e.kind()), (503, "timeout"));
        assert_eq!(kb.grep(&opts).unwrap().len(), 1000);
    }
}
