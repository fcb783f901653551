//! # gaia-kb
//!
//! The knowledge-base engine of Gaia: Markdown/Obsidian vaults synced from git, indexed for search and
//! exposed to people (HTTP, CLI) and to LLMs (tools).
//!
//! - Storage ([`KbConfig::mode`]): `git` (a working copy cloned and fetched with gix; edits are commits
//!   by the editing user; pushes and rebases use the `git` tool), `database` (documents in the sqlx
//!   database), `hybrid` (database first, mirrored to git).
//! - Parsing ([`parse`]): YAML frontmatter (title, tags, aliases in list, scalar or comma form),
//!   nested `#tags`, `[[wikilinks]]` with `#heading`, `#^block` and `|alias`, embeds, backlinks.
//! - Search ([`index`]): tantivy BM25 over title, aliases, tags, headings and body; phrases, prefixes,
//!   folder and tag filters, highlighted snippets; incremental re-indexing by document version. Exact
//!   and regex search over the raw text with [`Kb::grep`]. Semantic and hybrid search ([`semantic`]:
//!   notes cut along headings, embedded in the background, an HNSW index) with
//!   [`Kb::search_by_meaning`] once [`Kb::enable_semantic`] is given an embedder.
//! - LLM tools ([`tools`]): `search_knowledge_base`, `read_kb_file`, `list_kb_directory`,
//!   `load_kos_context`, `search_within_context`, `synthesize_kb_information`.
//! - Paths ([`VaultPath`]): nothing outside the vault is ever read or written (`..`, absolute paths,
//!   hidden folders such as `.git`, symbolic links leading out are refused).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use gaia_kb::{Kb, KbConfig, SearchOptions, WriteRequest};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = KbConfig { root: dir.path().join("vault"), ..KbConfig::default() };
//! let kb = Kb::open(config).await.unwrap();
//! kb.write(WriteRequest {
//!     path: "Places/Safe House.md".into(),
//!     content: "---\ntags: [shelter]\n---\n# Safe House\nFog shrinks the protection radius.".into(),
//!     ..Default::default()
//! })
//! .await
//! .unwrap();
//! let found = kb.search(&SearchOptions { query: "fog radius".into(), ..Default::default() }).unwrap();
//! assert_eq!(found.hits[0].path, "Places/Safe House.md");
//! assert!(gaia_kb::VaultPath::parse("../etc/passwd").is_err());
//! # });
//! ```

#![warn(missing_docs)]

pub mod access;
mod chunk;
mod db;
pub mod document;
pub mod error;
mod fs;
pub mod git;
pub mod index;
pub mod kb;
pub mod parse;
pub mod path;
pub mod query;
pub mod semantic;
mod snippet;
pub mod tools;
mod vectors;

pub use access::{ReadAccess, ReadFilter};
pub use document::Document;
pub use error::{KbError, Result};
pub use gaia_core::config::{KbConfig, KbStorageMode};
pub use git::{Author, SyncState};
pub use index::{SearchHit, SearchOptions, SearchResults};
pub use kb::{
    Context, ContextDocument, ContextReason, EditOutcome, GrepMatch, GrepOptions, Kb, KbStatus, LinkInfo, ListEntry,
    SyncReport, WriteRequest,
};
pub use path::{PathError, VaultPath};
pub use tools::KbTools;
