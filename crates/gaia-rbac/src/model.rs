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

impl Action {
    /// Whether holding `self` grants `wanted` (`admin` implies every action).
    pub fn implies(self, wanted: Action) -> bool {
        self == wanted || self == Action::Admin
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
    fn serde_names() {
        let p = Permission::new(ResourceType::ApiKey, Action::Delete, "/keys/*");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, serde_json::json!({"resource_type":"api_key","action":"delete","pattern":"/keys/*"}));
        let back: Permission = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}
