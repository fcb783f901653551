//! Resource types, actions and permissions.

use crate::pattern::Pattern;
use serde::{Deserialize, Serialize};

/// The kinds of resource that permissions talk about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResourceType {
    /// Knowledge-base documents and folders.
    Kb,
    /// Chat conversations.
    Conversation,
    /// Personas.
    Persona,
    /// LLM providers.
    Provider,
    /// Usage and cost records.
    Usage,
    /// User accounts.
    User,
    /// API keys.
    ApiKey,
    /// Administration.
    Admin,
    /// Game worlds (`/experiences/<exp>`): `read` to see one, `write` to play it (commands),
    /// `admin` for its `@` admin commands.
    Experience,
    /// Generated assets (`/users/<owner>/assets/<id>`): images, voices, 3D models.
    Asset,
}

/// What a subject wants to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Read or list.
    Read,
    /// Create or change.
    Write,
    /// Delete.
    Delete,
    /// Share with others.
    Share,
    /// Everything, including managing permissions on the resource.
    Admin,
}

impl ResourceType {
    /// Every resource type.
    pub const ALL: [ResourceType; 10] = [
        ResourceType::Kb,
        ResourceType::Conversation,
        ResourceType::Persona,
        ResourceType::Provider,
        ResourceType::Usage,
        ResourceType::User,
        ResourceType::ApiKey,
        ResourceType::Admin,
        ResourceType::Experience,
        ResourceType::Asset,
    ];

    /// The name used in APIs and the database (`kb`, `conversation`, …, `api_key`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Kb => "kb",
            ResourceType::Conversation => "conversation",
            ResourceType::Persona => "persona",
            ResourceType::Provider => "provider",
            ResourceType::Usage => "usage",
            ResourceType::User => "user",
            ResourceType::ApiKey => "api_key",
            ResourceType::Admin => "admin",
            ResourceType::Experience => "experience",
            ResourceType::Asset => "asset",
        }
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ResourceType {
    type Err = crate::RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            crate::RbacError::Invalid(format!(
                "resource type `{s}` is not one of kb, conversation, persona, provider, usage, user, api_key, admin, experience, asset"
            ))
        })
    }
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [Action::Read, Action::Write, Action::Delete, Action::Share, Action::Admin];

    /// `read`, `write`, `delete`, `share` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Share => "share",
            Action::Admin => "admin",
        }
    }

    /// Whether holding `self` grants `wanted` (`admin` implies every action).
    pub fn implies(self, wanted: Action) -> bool {
        self == wanted || self == Action::Admin
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = crate::RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            crate::RbacError::Invalid(format!("action `{s}` is not one of read, write, delete, share, admin"))
        })
    }
}

/// A resource to check access to: its type and its path (see [`crate::role`] for Gaia's paths).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// The type.
    pub resource_type: ResourceType,
    /// The path, such as `/users/<owner>/conversations/<id>` or `/kb/teams/<id>/lore.md`.
    pub path: String,
}

impl Resource {
    /// A resource of `resource_type` at `path`.
    pub fn new(resource_type: ResourceType, path: impl Into<String>) -> Self {
        Resource { resource_type, path: path.into() }
    }
    /// The asset `id` of `owner`.
    pub fn asset(owner: &str, id: &str) -> Self {
        Self::new(ResourceType::Asset, format!("/users/{owner}/assets/{id}"))
    }

    /// The conversation `id` of `owner`.
    pub fn conversation(owner: &str, id: &str) -> Self {
        Self::new(ResourceType::Conversation, format!("/users/{owner}/conversations/{id}"))
    }
    /// The persona `id` of `owner`.
    pub fn persona(owner: &str, id: &str) -> Self {
        Self::new(ResourceType::Persona, format!("/users/{owner}/personas/{id}"))
    }
    /// A knowledge-base document or folder, by its path in the vault: `users/<id>/…`, `teams/<id>/…` and
    /// `workspaces/<id>/…` are those areas, anything else is in the common area (`/kb/common/…`).
    pub fn kb_document(vault_path: &str) -> Self {
        Self::new(ResourceType::Kb, gaia_core::kb_area::access_path(vault_path))
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.resource_type, self.path)
    }
}

/// A permission: an action on resources of one type whose path matches a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// The resource type.
    pub resource_type: ResourceType,
    /// The action granted.
    pub action: Action,
    /// Which resources (by path) it covers.
    pub pattern: Pattern,
}

impl Permission {
    /// A permission on `pattern` (see [`Pattern`]).
    pub fn new(resource_type: ResourceType, action: Action, pattern: &str) -> Self {
        Permission { resource_type, action, pattern: Pattern::new(pattern) }
    }

    /// This permission with the placeholders `{user}` and `{scope}` of its pattern filled in.
    pub fn resolve(&self, user: &str, scope: &str) -> Permission {
        let raw = self.pattern.as_str();
        if !raw.contains('{') {
            return self.clone();
        }
        Permission {
            resource_type: self.resource_type,
            action: self.action,
            pattern: Pattern::new(&raw.replace("{user}", user).replace("{scope}", scope)),
        }
    }

    /// Whether this permission allows `action` on the resource of type `resource_type` at `path`.
    pub fn allows(&self, resource_type: ResourceType, action: Action, path: &str) -> bool {
        self.resource_type == resource_type && self.action.implies(action) && self.pattern.matches(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_all() {
        let p = Permission::new(ResourceType::Conversation, Action::Admin, "**");
        for a in [Action::Read, Action::Write, Action::Delete, Action::Share, Action::Admin] {
            assert!(p.allows(ResourceType::Conversation, a, "/conversations/1"));
        }
        assert!(!p.allows(ResourceType::Kb, Action::Read, "/conversations/1"));
    }

    #[test]
    fn names_and_kb_areas() {
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>().unwrap(), t);
        }
        for a in Action::ALL {
            assert_eq!(a.to_string().parse::<Action>().unwrap(), a);
        }
        assert!("fly".parse::<Action>().is_err());
        assert_eq!(Resource::kb_document("world/mara.md").path, "/kb/common/world/mara.md");
        assert_eq!(Resource::kb_document("/teams/red/plan.md").path, "/kb/teams/red/plan.md");
        assert_eq!(Resource::conversation("u1", "c1").path, "/users/u1/conversations/c1");
        let p = Permission::new(ResourceType::Kb, Action::Read, "/kb/{scope}/users/{user}/**");
        assert_eq!(p.resolve("u1", "teams/t").pattern.as_str(), "/kb/teams/t/users/u1/**");
    }

    #[test]
    fn serde_names() {
        let p = Permission::new(ResourceType::ApiKey, Action::Delete, "/keys/*");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, serde_json::json!({"resource_type":"api_key","action":"delete","pattern":"/keys/*"}));
        let back: Permission = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}
