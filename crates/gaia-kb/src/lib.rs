//! # gaia-kb
//!
//! The knowledge-base engine of Gaia: Markdown/Obsidian vaults synced from git, indexed for search and
//! exposed to people (HTTP, CLI) and to LLMs (tools).
//!
//! This first cut holds the vault's foundations: configuration of where a vault lives and how it is
//! stored, and [`VaultPath`], the only way a caller-supplied path reaches the file system, which refuses
//! anything that could escape the vault.
//!
//! ```
//! use gaia_kb::VaultPath;
//!
//! let p = VaultPath::parse("Places/Safe House.md").unwrap();
//! assert_eq!(p.as_str(), "Places/Safe House.md");
//! assert!(VaultPath::parse("../etc/passwd").is_err());
//! ```

pub mod config;
pub mod path;

pub use config::{KbConfig, StorageMode};
pub use path::{PathError, VaultPath};
