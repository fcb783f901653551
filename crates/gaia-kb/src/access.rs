//! Who may read what: a caller's readable documents, both as a test on one path (reads, listings,
//! links, contexts) and, where the caller's permissions allow it, as a few terms the search index
//! filters on, so that a restricted search costs what an unrestricted one does whatever the size of
//! the vault.
//!
//! Documents are named for access control by their access path (`gaia_core::kb_area::access_path`:
//! `/kb/common/world/mara.md`, `/kb/teams/red/plan.md`). The index keeps, for each document, its access
//! path and every folder above it; a caller's access is a union of whole documents, subtrees and
//! "everything", plus, for permissions with wildcards inside (rare custom roles), documents tested one
//! by one.

use std::sync::Arc;

/// Decides which documents (by vault path) a caller may read; see [`crate::Kb::restricted`].
pub type ReadFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a restricted [`crate::Kb`] handle may read.
///
/// The filter is the reference: every read goes through it, and every search hit is checked with
/// it too. The shapes ([`ReadAccess::everything`], [`ReadAccess::exact`], [`ReadAccess::subtree`])
/// let searches filter inside the index; they must describe no more than the filter allows.
/// Without [`ReadAccess::exhaustive`], the filter is also run on every document of the vault for
/// each search (what the shapes may not cover), which costs time in proportion to the vault.
///
/// ```
/// use gaia_kb::ReadAccess;
/// use std::sync::Arc;
/// // A user who reads the common area and their own.
/// let access = ReadAccess::new(Arc::new(|p: &str| !p.starts_with("users/") || p.starts_with("users/u1/")))
///     .subtree("/kb/common")
///     .subtree("/kb/users/u1")
///     .exhaustive();
/// assert!(access.allows("world/mara.md") && !access.allows("users/u2/notes.md"));
/// ```
#[derive(Clone)]
pub struct ReadAccess {
    filter: ReadFilter,
    everything: bool,
    /// Index terms: access paths (`/kb/…/x.md`) and subtrees (`/kb/teams/red/**`).
    terms: Vec<String>,
    /// Whether documents must also be tested one by one.
    partial: bool,
}

impl std::fmt::Debug for ReadAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAccess")
            .field("everything", &self.everything)
            .field("terms", &self.terms)
            .field("partial", &self.partial)
            .finish()
    }
}

impl From<ReadFilter> for ReadAccess {
    fn from(filter: ReadFilter) -> Self {
        ReadAccess::new(filter)
    }
}

/// The suffix of a subtree term in the index.
const SUBTREE: &str = "/**";

impl ReadAccess {
    /// Access decided by `filter` alone (searches test every document with it).
    pub fn new(filter: ReadFilter) -> Self {
        ReadAccess { filter, everything: false, terms: Vec::new(), partial: true }
    }

    /// The filter allows every document.
    pub fn everything(mut self) -> Self {
        self.everything = true;
        self
    }

    /// The filter allows the document at this access path.
    pub fn exact(mut self, access_path: &str) -> Self {
        self.terms.push(format!("/{}", access_path.trim_matches('/')));
        self
    }

    /// The filter allows every document at or under this access path.
    pub fn subtree(mut self, access_path: &str) -> Self {
        match access_path.trim_matches('/') {
            "" => self.everything = true,
            p => self.terms.push(format!("/{p}{SUBTREE}")),
        }
        self
    }

    /// The shapes given cover everything the filter allows: searches need not test documents one by one.
    pub fn exhaustive(mut self) -> Self {
        self.partial = false;
        self
    }

    /// Whether the document at `vault_path` may be read.
    pub fn allows(&self, vault_path: &str) -> bool {
        (self.filter)(vault_path)
    }

    /// Whether every document may be read without testing it.
    pub(crate) fn is_everything(&self) -> bool {
        self.everything
    }

    /// The index terms of the shapes.
    pub(crate) fn terms(&self) -> &[String] {
        &self.terms
    }

    /// Whether documents must also be tested one by one.
    pub(crate) fn is_partial(&self) -> bool {
        self.partial
    }
}

/// The access terms the index keeps for the document at `vault_path`: its access path, and the
/// subtree term of it and of every folder above it.
pub(crate) fn index_terms(vault_path: &str) -> Vec<String> {
    let path = gaia_core::kb_area::access_path(vault_path);
    let mut out = vec![path.clone()];
    let mut at = 0;
    while let Some(i) = path[at + 1..].find('/').map(|i| i + at + 1) {
        out.push(format!("{}{SUBTREE}", &path[..i]));
        at = i;
    }
    out.push(format!("{path}{SUBTREE}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_carries_its_path_and_every_subtree_above_it() {
        assert_eq!(
            index_terms("world/npcs/jo.md"),
            [
                "/kb/common/world/npcs/jo.md",
                "/kb/**",
                "/kb/common/**",
                "/kb/common/world/**",
                "/kb/common/world/npcs/**",
                "/kb/common/world/npcs/jo.md/**"
            ]
        );
        assert_eq!(index_terms("teams/red/plan.md")[0], "/kb/teams/red/plan.md");
        assert!(index_terms("teams/red/plan.md").contains(&"/kb/teams/red/**".to_string()));
        // The terms a grant gives are the ones its documents carry.
        let a = ReadAccess::new(Arc::new(|_: &str| true)).subtree("/kb/teams/red/").exact("kb/common/x.md");
        assert_eq!(a.terms(), ["/kb/teams/red/**", "/kb/common/x.md"]);
        assert!(index_terms("x.md").contains(&a.terms()[1]));
    }
}
