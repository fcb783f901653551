//! Roles: named permission lists with a scope, the built-in ones and custom ones.
//!
//! Permission patterns in roles may hold two placeholders, filled in for each grant:
//! - `{user}`: the id of the user holding the grant;
//! - `{scope}`: where the grant applies: `teams/<id>` or `workspaces/<id>` for a grant within a team
//!   or workspace, `**` (everywhere) for a system-wide grant.
//!
//! Resource paths used by Gaia: conversations `/users/<owner>/conversations/<id>`, personas
//! `/users/<owner>/personas/<id>` (built-in personas `/personas/builtin/<id>`), API keys
//! `/users/<owner>/keys/<id>`, usage `/users/<owner>/usage`, users `/users/<id>`, providers
//! `/providers/<name>`, administration `/admin/<area>`, and knowledge-base documents
//! `/kb/<area>/<path>` where the area is `users/<id>` (a private area), `teams/<id>`,
//! `workspaces/<id>` (shared areas) or `common` (everything else in the vault).

use crate::error::RbacError;
use crate::model::{Action, Permission, ResourceType};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a role can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// System-wide only.
    System,
    /// Within a team (or system-wide).
    Team,
    /// Within a workspace (or system-wide).
    Workspace,
}

impl Scope {
    /// `system`, `team` or `workspace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Team => "team",
            Scope::Workspace => "workspace",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Scope::System),
            "team" => Ok(Scope::Team),
            "workspace" => Ok(Scope::Workspace),
            other => Err(RbacError::Invalid(format!("scope `{other}` is not one of system, team, workspace"))),
        }
    }
}

/// A role: a named list of permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Unique name (`[a-z0-9_-]`, at most 64 characters).
    pub name: String,
    /// Where it can be granted.
    pub scope: Scope,
    /// What it is for.
    pub description: String,
    /// What it allows (patterns may use `{user}` and `{scope}`).
    pub permissions: Vec<Permission>,
    /// Defined by Gaia (cannot be changed or deleted).
    #[serde(default)]
    pub builtin: bool,
}

/// The role every user holds unless given a system role explicitly.
pub const DEFAULT_ROLE: &str = "user";

/// The largest number of permissions one role may list.
pub const MAX_ROLE_PERMISSIONS: usize = 256;

fn perms(list: &[(ResourceType, &[Action], &str)]) -> Vec<Permission> {
    list.iter().flat_map(|(t, acts, pat)| acts.iter().map(move |a| Permission::new(*t, *a, pat))).collect()
}

/// The built-in roles, documented in the README's RBAC section.
pub fn builtin_roles() -> Vec<Role> {
    use Action::*;
    use ResourceType as T;
    let all = [Read, Write, Delete, Share, Admin];
    let mine_full: Vec<(ResourceType, &[Action], &str)> = vec![
        (T::Conversation, &all[..], "/users/{user}/**"),
        (T::Asset, &all[..], "/users/{user}/**"),
        (T::Persona, &all[..], "/users/{user}/**"),
        (T::ApiKey, &all[..], "/users/{user}/**"),
        (T::Usage, &[Read][..], "/users/{user}/**"),
        (T::User, &[Read, Write][..], "/users/{user}"),
        (T::Persona, &[Read][..], "/personas/builtin/**"),
        (T::Provider, &[Read][..], "/providers/**"),
        (T::Kb, &[Read][..], "/kb/common/**"),
        (T::Kb, &all[..], "/kb/users/{user}/**"),
        (T::Experience, &[Read, Write][..], "/experiences/**"),
    ];
    // Providers stay the administrators' to change (a provider's key and endpoint are the server's
    // secrets): developers read them, as users do.
    let mut developer = mine_full.clone();
    developer.push((T::Usage, &[Read][..], "/users/**"));
    let viewer: Vec<(ResourceType, &[Action], &str)> = vec![
        (T::Conversation, &[Read][..], "/users/{user}/**"),
        (T::Asset, &[Read][..], "/users/{user}/**"),
        (T::Persona, &[Read][..], "/users/{user}/**"),
        (T::Persona, &[Read][..], "/personas/builtin/**"),
        (T::Usage, &[Read][..], "/users/{user}/**"),
        (T::ApiKey, &[Read][..], "/users/{user}/**"),
        (T::User, &[Read][..], "/users/{user}"),
        (T::Provider, &[Read][..], "/providers/**"),
        (T::Kb, &[Read][..], "/kb/common/**"),
        (T::Kb, &[Read][..], "/kb/users/{user}/**"),
        (T::Experience, &[Read][..], "/experiences/**"),
    ];
    let every_type = [
        T::Kb,
        T::Conversation,
        T::Persona,
        T::Provider,
        T::Usage,
        T::User,
        T::ApiKey,
        T::Admin,
        T::Experience,
        T::Asset,
    ];
    let admin: Vec<Permission> = every_type.iter().map(|t| Permission::new(*t, Admin, "**")).collect();
    vec![
        Role {
            name: "admin".into(),
            scope: Scope::System,
            description: "Everything, on every resource.".into(),
            permissions: admin,
            builtin: true,
        },
        Role {
            name: "developer".into(),
            scope: Scope::System,
            description: "A user who also reads everyone's usage.".into(),
            permissions: perms(&developer),
            builtin: true,
        },
        Role {
            name: "user".into(),
            scope: Scope::System,
            description: "Chat, own conversations, personas, API keys and usage; read the common knowledge base; \
                          a private knowledge-base area."
                .into(),
            permissions: perms(&mine_full),
            builtin: true,
        },
        Role {
            name: "viewer".into(),
            scope: Scope::System,
            description: "Read-only: own conversations, personas and usage, the common knowledge base.".into(),
            permissions: perms(&viewer),
            builtin: true,
        },
        Role {
            name: "kb_reader".into(),
            scope: Scope::Team,
            description: "Read the knowledge base of the team or workspace it is granted in (all of it when \
                          granted system-wide)."
                .into(),
            permissions: perms(&[(T::Kb, &[Read][..], "/kb/{scope}/**")]),
            builtin: true,
        },
        Role {
            name: "kb_editor".into(),
            scope: Scope::Team,
            description: "Read, write and delete in the knowledge base of the team or workspace.".into(),
            permissions: perms(&[(T::Kb, &[Read, Write, Delete][..], "/kb/{scope}/**")]),
            builtin: true,
        },
        Role {
            name: "kb_admin".into(),
            scope: Scope::Team,
            description: "Everything in the knowledge base of the team or workspace, sharing included.".into(),
            permissions: perms(&[(T::Kb, &[Admin][..], "/kb/{scope}/**")]),
            builtin: true,
        },
    ]
}

/// Checks a role name: 1 to 64 of `a-z`, `0-9`, `_` and `-`.
pub fn check_role_name(name: &str) -> Result<(), RbacError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RbacError::Invalid(format!("role name `{name}` must be 1 to 64 of a-z, 0-9, `_` and `-`")))
    }
}

impl Role {
    /// Whether a role of this scope may be granted within a group of `kind` (`None`: system-wide).
    pub fn grantable_in(&self, kind: Option<crate::GroupKind>) -> bool {
        match (self.scope, kind) {
            (_, None) => true,
            (Scope::System, Some(_)) => false,
            (Scope::Team | Scope::Workspace, Some(_)) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_named_and_valid() {
        let roles = builtin_roles();
        let names: Vec<_> = roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["admin", "developer", "user", "viewer", "kb_reader", "kb_editor", "kb_admin"]);
        for r in &roles {
            check_role_name(&r.name).unwrap();
            assert!(!r.permissions.is_empty() && r.builtin);
        }
        assert!(check_role_name("Bad Name").is_err());
        assert_eq!("team".parse::<Scope>().unwrap(), Scope::Team);
        assert!("galaxy".parse::<Scope>().is_err());
    }

    #[test]
    fn only_administrators_change_providers() {
        for r in builtin_roles() {
            let changes = r
                .permissions
                .iter()
                .any(|p| p.resource_type == ResourceType::Provider && !matches!(p.action, Action::Read));
            assert_eq!(changes, r.name == "admin", "{}", r.name);
        }
    }
}
