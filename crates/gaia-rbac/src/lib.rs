//! # gaia-rbac
//!
//! Role-based access control for Gaia. A [`Permission`] is a resource type, an action and a resource
//! pattern; patterns are `/`-separated paths where `*` matches one segment (or part of one) and `**`
//! matches any number of segments, so a KB grant can cover a whole team area.
//!
//! [`Role`]s bundle permissions ([built-in ones](role::builtin_roles): `admin`, `developer`, `user`,
//! `viewer`, `kb_reader`, `kb_editor`, `kb_admin`, plus custom roles). Users get roles through
//! [`Grant`]s (system-wide or within a team or workspace, optionally expiring) and through
//! [`Member`]ships of teams and workspaces; [`Share`]s give one user or team read or write access to
//! one resource. [`Rbac`] checks requests against an in-memory snapshot with a decision cache, answers
//! [`Rbac::what_can`] and [`Rbac::who_can`], and writes every change to the database with an audit row.
//!
//! ```
//! use gaia_rbac::{Action, Permission, Policy, Resource, ResourceType, Subject};
//!
//! let p = Permission::new(ResourceType::Kb, Action::Read, "/kb/teams/red/**");
//! assert!(p.allows(ResourceType::Kb, Action::Read, "/kb/teams/red/quests/first.md"));
//! assert!(!p.allows(ResourceType::Kb, Action::Read, "/kb/teams/blue/quests/first.md"));
//! assert!(!p.allows(ResourceType::Kb, Action::Write, "/kb/teams/red/quests/first.md"));
//!
//! // Every user holds the `user` role: their own things, the common knowledge base.
//! let policy = Policy::new();
//! let mara = Subject::user("mara");
//! let d = policy.check(&mara, Action::Write, &Resource::conversation("mara", "c1"), 0);
//! assert!(d.allowed, "{}", d.reason);
//! assert!(!policy.check(&mara, Action::Read, &Resource::conversation("someone-else", "c2"), 0).allowed);
//! assert!(policy.check(&mara, Action::Read, &Resource::kb_document("world/npcs/jo.md"), 0).allowed);
//! ```

#![warn(missing_docs)]

pub mod engine;
pub mod error;
pub mod model;
pub mod notify;
pub mod pattern;
pub mod policy;
pub mod role;
pub mod store;

pub use engine::Rbac;
pub use error::{RbacError, Result};
pub use model::{Action, Permission, Resource, ResourceType};
pub use pattern::{Pattern, Shape};
pub use policy::{
    Decision, Effective, Grant, Group, GroupKind, Member, Policy, Reach, Share, ShareAccess, Subject, WhoCan,
};
pub use role::{builtin_roles, Role, Scope, DEFAULT_ROLE};
pub use store::AuditEntry;
