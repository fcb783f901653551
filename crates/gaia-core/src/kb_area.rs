//! The areas of a knowledge base, as access control sees them.
//!
//! A vault path `users/<id>/…`, `teams/<id>/…` or `workspaces/<id>/…` lies in that area; anything else
//! lies in the common area. Permissions name documents by their *access path*: `/kb/<area>/<rest>`
//! (`/kb/common/world/mara.md`, `/kb/teams/red/plan.md`). Both the permission checks (`gaia-rbac`) and
//! the search index (`gaia-kb`, which filters searches on these paths) use this one mapping.

/// The access path of the knowledge-base document or folder at `vault_path`.
///
/// ```
/// use gaia_core::kb_area::access_path;
/// assert_eq!(access_path("world/mara.md"), "/kb/common/world/mara.md");
/// assert_eq!(access_path("/teams/red/plan.md"), "/kb/teams/red/plan.md");
/// ```
pub fn access_path(vault_path: &str) -> String {
    let p = vault_path.trim_matches('/');
    match p.split('/').next().unwrap_or_default() {
        "users" | "teams" | "workspaces" => format!("/kb/{p}"),
        _ => format!("/kb/common/{p}"),
    }
}
