//! # gaia-rbac
//!
//! Role-based access control for Gaia. A [`Permission`] is a resource type, an action and a resource
//! pattern; patterns are `/`-separated paths where `*` matches one segment (or part of one) and `**`
//! matches any number of segments, so a KB grant can cover a whole team area.
//!
//! This first cut holds the permission model and its matcher; roles, grants, teams and the cached
//! engine build on it.
//!
//! ```
//! use gaia_rbac::{Action, Permission, ResourceType};
//!
//! let p = Permission::new(ResourceType::Kb, Action::Read, "/kb/teams/red/**");
//! assert!(p.allows(ResourceType::Kb, Action::Read, "/kb/teams/red/quests/first.md"));
//! assert!(!p.allows(ResourceType::Kb, Action::Read, "/kb/teams/blue/quests/first.md"));
//! assert!(!p.allows(ResourceType::Kb, Action::Write, "/kb/teams/red/quests/first.md"));
//! ```

pub mod model;
pub mod pattern;

pub use model::{Action, Permission, ResourceType};
pub use pattern::Pattern;
