//! The policy: roles, grants, teams and workspaces with their members, and shares, as one immutable
//! snapshot, and the evaluation of a check against it (no I/O, no locks).

use crate::model::{Action, Permission, Resource, ResourceType};
use crate::pattern::{Pattern, Shape};
use crate::role::{builtin_roles, Role, Scope, DEFAULT_ROLE};
use crate::RbacError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;

/// A team or a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupKind {
    /// A team.
    Team,
    /// A workspace.
    Workspace,
}

impl GroupKind {
    /// `team` or `workspace`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Team => "team",
            GroupKind::Workspace => "workspace",
        }
    }
    /// The area of a group in resource paths: `teams/<id>` or `workspaces/<id>`.
    pub fn area(self, id: &str) -> String {
        match self {
            GroupKind::Team => format!("teams/{id}"),
            GroupKind::Workspace => format!("workspaces/{id}"),
        }
    }
}

impl FromStr for GroupKind {
    type Err = RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "team" => Ok(GroupKind::Team),
            "workspace" => Ok(GroupKind::Workspace),
            other => Err(RbacError::Invalid(format!("`{other}` is not team or workspace"))),
        }
    }
}

/// A team or workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Id.
    pub id: String,
    /// Team or workspace.
    pub kind: GroupKind,
    /// Name (unique per kind).
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A member of a team or workspace, with the role they hold in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The team or workspace.
    pub group_id: String,
    /// The user.
    pub user_id: String,
    /// A team- or workspace-scope role (`kb_reader`, `kb_editor`, `kb_admin`, or a custom one).
    pub role: String,
}

/// A role granted to a user, system-wide or within a team or workspace, possibly until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Id.
    pub id: String,
    /// Who holds it.
    pub user_id: String,
    /// The role.
    pub role: String,
    /// The team or workspace it applies in (`None`: system-wide).
    pub group_id: Option<String>,
    /// When it stops applying.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who granted it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Read or read-and-write access given by a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShareAccess {
    /// Read.
    Read,
    /// Read and write.
    Write,
}

impl ShareAccess {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareAccess::Read => "read",
            ShareAccess::Write => "write",
        }
    }
    fn actions(self) -> &'static [Action] {
        match self {
            ShareAccess::Read => &[Action::Read],
            ShareAccess::Write => &[Action::Read, Action::Write],
        }
    }
}

impl FromStr for ShareAccess {
    type Err = RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(ShareAccess::Read),
            "write" => Ok(ShareAccess::Write),
            other => Err(RbacError::Invalid(format!("share access `{other}` is not read or write"))),
        }
    }
}

/// A resource (a KB document or folder, a conversation) shared with a user or a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Id.
    pub id: String,
    /// What is shared (a folder path also shares everything below it).
    pub resource: Resource,
    /// With this user…
    pub user_id: Option<String>,
    /// …or with the members of this team or workspace.
    pub group_id: Option<String>,
    /// Read, or read and write.
    pub access: ShareAccess,
    /// Who shared it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subject {
    /// The user.
    pub user_id: String,
    /// The account is flagged administrator (`users.is_admin`): holds the `admin` role.
    pub is_admin: bool,
}

impl From<&gaia_core::auth::Principal> for Subject {
    /// The authenticated caller (an administrator when their account is flagged so).
    fn from(p: &gaia_core::auth::Principal) -> Self {
        Subject { user_id: p.user_id.clone(), is_admin: p.is_admin }
    }
}

impl Subject {
    /// A user.
    pub fn user(user_id: impl Into<String>) -> Self {
        Subject { user_id: user_id.into(), is_admin: false }
    }
    /// An administrator.
    pub fn admin(user_id: impl Into<String>) -> Self {
        Subject { user_id: user_id.into(), is_admin: true }
    }
}

/// The outcome of a check, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Allowed.
    pub allowed: bool,
    /// Which grant allowed it (`role admin via users.is_admin`, `role kb_editor in team 7f…`,
    /// `share 9a… (read)`), or why nothing did.
    pub reason: String,
    /// The permission that matched, when allowed.
    pub permission: Option<Permission>,
    /// Until when this decision holds (an expiring grant), in unix milliseconds.
    #[serde(skip)]
    pub valid_until: Option<i64>,
}

/// A permission a subject holds, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effective {
    /// The permission, placeholders filled in.
    pub permission: Permission,
    /// Where it comes from.
    pub via: String,
    /// When it stops applying (unix milliseconds).
    pub expires_at: Option<i64>,
}

/// Where a subject may do an action on resources of one type ([`Policy::reach`]): a resource is
/// allowed exactly when `everything` is set, its path is one of `exact`, lies in (or is) one of
/// `subtrees`, or matches one of `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Every resource of the type.
    pub everything: bool,
    /// Single resources, by path.
    pub exact: Vec<String>,
    /// Resources at or under these paths.
    pub subtrees: Vec<String>,
    /// Patterns with wildcards before their end, to match path by path.
    pub other: Vec<Pattern>,
}

/// Who holds a permission on a resource, as answered by [`Policy::who_can`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoCan {
    /// Every signed-in user without an explicit system role (through the default role), if it allows.
    pub everyone_via_default_role: bool,
    /// Administrators (always).
    pub administrators: bool,
    /// Users, with how.
    pub users: Vec<(String, String)>,
}

/// An immutable snapshot of the whole policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: HashMap<String, Role>,
    groups: HashMap<String, Group>,
    grants: HashMap<String, Vec<Grant>>,
    members: HashMap<String, Vec<Member>>,
    user_shares: HashMap<String, Vec<Share>>,
    group_shares: HashMap<String, Vec<Share>>,
    version: i64,
}

impl Policy {
    /// A policy with the built-in roles and nothing else.
    pub fn new() -> Self {
        Self::build(Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0)
    }

    /// A policy from its parts (custom roles are added to the built-in ones).
    pub fn build(
        custom_roles: Vec<Role>,
        groups: Vec<Group>,
        grants: Vec<Grant>,
        members: Vec<Member>,
        shares: Vec<Share>,
        version: i64,
    ) -> Self {
        let mut p = Policy { version, ..Default::default() };
        for r in builtin_roles().into_iter().chain(custom_roles) {
            p.roles.insert(r.name.clone(), r);
        }
        for g in groups {
            p.groups.insert(g.id.clone(), g);
        }
        for g in grants {
            p.grants.entry(g.user_id.clone()).or_default().push(g);
        }
        for m in members {
            p.members.entry(m.user_id.clone()).or_default().push(m);
        }
        for s in shares {
            if let Some(u) = &s.user_id {
                p.user_shares.entry(u.clone()).or_default().push(s.clone());
            }
            if let Some(g) = &s.group_id {
                p.group_shares.entry(g.clone()).or_default().push(s);
            }
        }
        p
    }

    /// The database version this snapshot was read at.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// A role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Every role, built-in first then by name.
    pub fn roles(&self) -> Vec<&Role> {
        let mut v: Vec<&Role> = self.roles.values().collect();
        v.sort_by(|a, b| b.builtin.cmp(&a.builtin).then_with(|| a.name.cmp(&b.name)));
        v
    }

    /// A team or workspace.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// The ids of the teams and workspaces `user_id` is a member of.
    pub fn groups_of(&self, user_id: &str) -> Vec<&str> {
        self.members.get(user_id).map(|ms| ms.iter().map(|m| m.group_id.as_str()).collect()).unwrap_or_default()
    }

    /// The ids of the members of the team or workspace `group_id`, sorted.
    pub fn members_of(&self, group_id: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .members
            .iter()
            .filter(|(_, ms)| ms.iter().any(|m| m.group_id == group_id))
            .map(|(u, _)| u.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// The permissions `subject` holds at `now_ms`, with where each comes from.
    pub fn effective(&self, subject: &Subject, now_ms: i64) -> Vec<Effective> {
        let mut out = Vec::new();
        let user = subject.user_id.as_str();
        let push_role = |out: &mut Vec<Effective>, role: &Role, scope: &str, via: String, exp: Option<i64>| {
            for p in &role.permissions {
                out.push(Effective { permission: p.resolve(user, scope), via: via.clone(), expires_at: exp });
            }
        };
        if subject.is_admin {
            if let Some(r) = self.roles.get("admin") {
                push_role(&mut out, r, "**", "role admin (account is an administrator)".into(), None);
            }
        }
        let mut has_system_role = false;
        for g in self.grants.get(user).into_iter().flatten() {
            let exp = g.expires_at.map(|t| t.timestamp_millis());
            if exp.is_some_and(|e| e <= now_ms) {
                continue;
            }
            let Some(role) = self.roles.get(&g.role) else { continue };
            match &g.group_id {
                None => {
                    has_system_role = true;
                    push_role(&mut out, role, "**", format!("role {} (grant {})", role.name, g.id), exp);
                }
                Some(gid) => {
                    let Some(group) = self.groups.get(gid) else { continue };
                    let via = format!("role {} in {} {} (grant {})", role.name, group.kind.as_str(), group.name, g.id);
                    push_role(&mut out, role, &group.kind.area(gid), via, exp);
                }
            }
        }
        if !has_system_role {
            if let Some(r) = self.roles.get(DEFAULT_ROLE) {
                push_role(&mut out, r, "**", format!("role {DEFAULT_ROLE} (default role)"), None);
            }
        }
        let memberships = self.members.get(user).map(Vec::as_slice).unwrap_or_default();
        for m in memberships {
            let (Some(group), Some(role)) = (self.groups.get(&m.group_id), self.roles.get(&m.role)) else { continue };
            let via = format!("role {} as member of {} {}", role.name, group.kind.as_str(), group.name);
            push_role(&mut out, role, &group.kind.area(&m.group_id), via, None);
        }
        let group_shares = memberships.iter().flat_map(|m| self.group_shares.get(&m.group_id).into_iter().flatten());
        for s in self.user_shares.get(user).into_iter().flatten().chain(group_shares) {
            let via = format!("share {} ({})", s.id, s.access.as_str());
            let base = s.resource.path.trim_end_matches('/');
            for a in s.access.actions() {
                for pat in [base.to_string(), format!("{base}/**")] {
                    out.push(Effective {
                        permission: Permission::new(s.resource.resource_type, *a, &pat),
                        via: via.clone(),
                        expires_at: None,
                    });
                }
            }
        }
        out
    }

    /// Whether `subject` may do `action` on `resource` at `now_ms`, and why.
    pub fn check(&self, subject: &Subject, action: Action, resource: &Resource, now_ms: i64) -> Decision {
        let mut best: Option<Effective> = None;
        for e in self.effective(subject, now_ms) {
            if e.permission.allows(resource.resource_type, action, &resource.path) {
                // Prefer a permanent grant, else the one that lasts longest.
                let better = match (&best, e.expires_at) {
                    (None, _) => true,
                    (Some(b), None) => b.expires_at.is_some(),
                    (Some(b), Some(x)) => b.expires_at.is_some_and(|y| x > y),
                };
                if better {
                    let permanent = e.expires_at.is_none();
                    best = Some(e);
                    if permanent {
                        break;
                    }
                }
            }
        }
        match best {
            Some(e) => Decision {
                allowed: true,
                reason: format!(
                    "allowed by {}: {} {} on {}",
                    e.via,
                    e.permission.resource_type,
                    e.permission.action,
                    e.permission.pattern.as_str()
                ),
                permission: Some(e.permission),
                valid_until: e.expires_at,
            },
            None => Decision {
                allowed: false,
                reason: format!("no role, membership or share allows {action} on {resource}"),
                permission: None,
                valid_until: None,
            },
        }
    }

    /// Where `subject` may do `action` on resources of `resource_type` at `now_ms`: the union of what
    /// [`Policy::check`] allows, as a few paths and subtrees where the permissions' patterns say so
    /// (to filter an index on), and the patterns to match one by one where they do not.
    pub fn reach(&self, subject: &Subject, action: Action, resource_type: ResourceType, now_ms: i64) -> Reach {
        let mut out = Reach::default();
        for e in self.effective(subject, now_ms) {
            let p = &e.permission;
            if p.resource_type != resource_type || !p.action.implies(action) {
                continue;
            }
            match p.pattern.shape() {
                Shape::Everything => out.everything = true,
                Shape::Exact(path) => out.exact.push(path),
                Shape::Subtree(path) => out.subtrees.push(path),
                Shape::Other => out.other.push(p.pattern.clone()),
            }
        }
        for v in [&mut out.exact, &mut out.subtrees] {
            v.sort_unstable();
            v.dedup();
        }
        out
    }

    /// Whether `subject` holds `action` on resources of `resource_type` anywhere.
    pub fn can_any(&self, subject: &Subject, action: Action, resource_type: ResourceType, now_ms: i64) -> bool {
        self.effective(subject, now_ms)
            .iter()
            .any(|e| e.permission.resource_type == resource_type && e.permission.action.implies(action))
    }

    /// Who may do `action` on `resource`: every user with a grant, membership or share that allows
    /// it, whether the default role does (then every user without an explicit system role may), and
    /// administrators (always).
    pub fn who_can(&self, action: Action, resource: &Resource, now_ms: i64) -> WhoCan {
        let mut users: Vec<String> =
            self.grants.keys().chain(self.members.keys()).chain(self.user_shares.keys()).cloned().collect();
        for shares in self.group_shares.values() {
            for s in shares {
                if let Some(g) = &s.group_id {
                    users.extend(
                        self.members
                            .iter()
                            .filter(|(_, ms)| ms.iter().any(|m| &m.group_id == g))
                            .map(|(u, _)| u.clone()),
                    );
                }
            }
        }
        users.sort();
        users.dedup();
        let mut out = WhoCan { administrators: true, ..Default::default() };
        let default = self.roles.get(DEFAULT_ROLE);
        // The default role's patterns mention `{user}`: it allows "everyone" only when it allows the
        // resource for a user who is not its owner.
        if let Some(r) = default {
            let nobody = "\u{0}nobody";
            out.everyone_via_default_role = r
                .permissions
                .iter()
                .any(|p| p.resolve(nobody, "**").allows(resource.resource_type, action, &resource.path));
        }
        for u in users {
            let d = self.check(&Subject::user(u.clone()), action, resource, now_ms);
            if d.allowed {
                out.users.push((u, d.reason));
            }
        }
        // The owner of a `/users/<id>/…` resource holds it through the default role.
        if let Some(owner) = resource.path.strip_prefix("/users/").or_else(|| resource.path.strip_prefix("/kb/users/"))
        {
            let owner = owner.split('/').next().unwrap_or_default().to_string();
            if !owner.is_empty() && !out.users.iter().any(|(u, _)| *u == owner) {
                let d = self.check(&Subject::user(owner.clone()), action, resource, now_ms);
                if d.allowed {
                    out.users.push((owner, d.reason));
                }
            }
        }
        out
    }

    /// Checks that `role` exists and can be granted in a group of `kind` (`None`: system-wide).
    pub fn check_grantable(&self, role: &str, kind: Option<GroupKind>) -> Result<(), RbacError> {
        let r = self.roles.get(role).ok_or_else(|| RbacError::NotFound(format!("role {role}")))?;
        if !r.grantable_in(kind) {
            return Err(RbacError::Invalid(format!(
                "role {role} has scope {} and cannot be granted within a {}",
                r.scope,
                kind.map(GroupKind::as_str).unwrap_or("system")
            )));
        }
        if kind.is_some() && r.scope == Scope::System {
            return Err(RbacError::Invalid(format!("role {role} is system-wide only")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn group(id: &str, kind: GroupKind) -> Group {
        Group { id: id.into(), kind, name: format!("{id}-name"), created_at: ts(0) }
    }

    fn grant(user: &str, role: &str, group: Option<&str>, expires: Option<i64>) -> Grant {
        Grant {
            id: format!("g-{user}-{role}"),
            user_id: user.into(),
            role: role.into(),
            group_id: group.map(str::to_string),
            expires_at: expires.map(ts),
            created_by: None,
            created_at: ts(0),
        }
    }

    #[test]
    fn default_role_covers_own_things_only() {
        let p = Policy::new();
        let u = Subject::user("u1");
        let own = Resource::conversation("u1", "c1");
        let d = p.check(&u, Action::Delete, &own, 0);
        assert!(d.allowed && d.reason.contains("role user (default role)"), "{}", d.reason);
        assert!(!p.check(&u, Action::Read, &Resource::conversation("u2", "c1"), 0).allowed);
        assert!(p.check(&u, Action::Read, &Resource::kb_document("world/mara.md"), 0).allowed);
        assert!(!p.check(&u, Action::Write, &Resource::kb_document("world/mara.md"), 0).allowed);
        assert!(p.check(&u, Action::Write, &Resource::kb_document("users/u1/notes.md"), 0).allowed);
        assert!(!p.check(&u, Action::Read, &Resource::kb_document("users/u2/notes.md"), 0).allowed);
        assert!(!p.check(&u, Action::Read, &Resource::kb_document("teams/red/plan.md"), 0).allowed);
        assert!(!p.check(&u, Action::Write, &Resource::new(ResourceType::Provider, "/providers/openai"), 0).allowed);
        let a = p.check(&Subject::admin("root"), Action::Delete, &Resource::conversation("u2", "c1"), 0);
        assert!(a.allowed && a.reason.contains("administrator"));
    }

    #[test]
    fn explicit_system_roles_replace_the_default_and_expire() {
        let p = Policy::build(vec![], vec![], vec![grant("v", "viewer", None, Some(1_000))], vec![], vec![], 1);
        let v = Subject::user("v");
        let mine = Resource::conversation("v", "c");
        assert!(p.check(&v, Action::Read, &mine, 10).allowed);
        assert!(!p.check(&v, Action::Write, &mine, 10).allowed, "a viewer cannot write");
        assert_eq!(p.check(&v, Action::Read, &mine, 10).valid_until, Some(1_000), "as long as the grant");
        // Once the grant expires, the default role applies again.
        assert!(p.check(&v, Action::Write, &mine, 1_000).allowed);
    }

    #[test]
    fn teams_workspaces_and_shares() {
        let groups = vec![group("red", GroupKind::Team), group("ws", GroupKind::Workspace)];
        let members = vec![Member { group_id: "red".into(), user_id: "a".into(), role: "kb_editor".into() }];
        let grants = vec![grant("b", "kb_reader", Some("ws"), None)];
        let shares = vec![Share {
            id: "s1".into(),
            resource: Resource::kb_document("teams/red/public"),
            user_id: Some("c".into()),
            group_id: None,
            access: ShareAccess::Read,
            created_by: Some("a".into()),
            created_at: ts(0),
        }];
        let p = Policy::build(vec![], groups, grants, members, shares, 1);
        let doc = Resource::kb_document("teams/red/plan.md");
        let d = p.check(&Subject::user("a"), Action::Write, &doc, 0);
        assert!(d.allowed && d.reason.contains("member of team red-name"), "{}", d.reason);
        assert!(!p.check(&Subject::user("b"), Action::Read, &doc, 0).allowed);
        assert!(p.check(&Subject::user("b"), Action::Read, &Resource::kb_document("workspaces/ws/x.md"), 0).allowed);
        assert!(!p.check(&Subject::user("b"), Action::Write, &Resource::kb_document("workspaces/ws/x.md"), 0).allowed);
        // The share covers the folder and what is below it, read only.
        let shared = Resource::kb_document("teams/red/public/map.md");
        let d = p.check(&Subject::user("c"), Action::Read, &shared, 0);
        assert!(d.allowed && d.reason.contains("share s1"), "{}", d.reason);
        assert!(!p.check(&Subject::user("c"), Action::Write, &shared, 0).allowed);
        assert!(!p.check(&Subject::user("c"), Action::Read, &doc, 0).allowed);
        let who = p.who_can(Action::Read, &shared, 0);
        let names: Vec<_> = who.users.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert!(!who.everyone_via_default_role && who.administrators);
        assert!(p.who_can(Action::Read, &Resource::kb_document("world/x.md"), 0).everyone_via_default_role);
        assert!(p.can_any(&Subject::user("c"), Action::Read, ResourceType::Kb, 0));
        assert!(!p.can_any(&Subject::user("c"), Action::Write, ResourceType::Provider, 0));
        // Roles of the wrong scope cannot be granted within a group.
        assert!(p.check_grantable("admin", Some(GroupKind::Team)).is_err());
        assert!(p.check_grantable("kb_reader", Some(GroupKind::Workspace)).is_ok());
        assert!(matches!(p.check_grantable("nope", None), Err(RbacError::NotFound(_))));
    }

    #[test]
    fn reach_is_what_check_allows() {
        let custom = Role {
            name: "public_reader".into(),
            scope: Scope::System,
            description: "reads every team's public folder".into(),
            permissions: vec![
                Permission::new(ResourceType::Kb, Action::Read, "/kb/teams/*/public/**"),
                Permission::new(ResourceType::Kb, Action::Write, "/kb/common/drafts/**"),
            ],
            builtin: false,
        };
        let groups = vec![group("red", GroupKind::Team), group("ws", GroupKind::Workspace)];
        let members = vec![Member { group_id: "red".into(), user_id: "a".into(), role: "kb_editor".into() }];
        let grants = vec![
            grant("b", "kb_reader", Some("ws"), None),
            grant("p", "public_reader", None, None),
            grant("x", "kb_reader", Some("ws"), Some(1_000)),
        ];
        let share = |id: &str, path: &str, user: &str| Share {
            id: id.into(),
            resource: Resource::kb_document(path),
            user_id: Some(user.into()),
            group_id: None,
            access: ShareAccess::Read,
            created_by: Some("a".into()),
            created_at: ts(0),
        };
        let shares = vec![share("s1", "teams/red/public", "c"), share("s2", "teams/red/plan.md", "c")];
        let p = Policy::build(vec![custom], groups, grants, members, shares, 1);
        let docs = [
            "world/mara.md",
            "teams/red/plan.md",
            "teams/red/plan.md/x.md",
            "teams/red/public/map.md",
            "teams/blue/public/map.md",
            "teams/blue/secret.md",
            "workspaces/ws/x.md",
            "users/a/n.md",
            "users/c/n.md",
            "drafts/d.md",
            "teams.md",
        ];
        let covered = |r: &Reach, path: &str| {
            r.everything
                || r.exact.iter().any(|e| e == path)
                || r.subtrees.iter().any(|s| path == s || path.starts_with(&format!("{s}/")))
                || r.other.iter().any(|o| o.matches(path))
        };
        for who in [Subject::user("a"), Subject::user("b"), Subject::user("c"), Subject::user("p"), Subject::user("x")]
            .into_iter()
            .chain([Subject::admin("root")])
        {
            for (now, action) in [(0, Action::Read), (2_000, Action::Read), (0, Action::Write)] {
                let r = p.reach(&who, action, ResourceType::Kb, now);
                for d in docs {
                    let res = Resource::kb_document(d);
                    assert_eq!(
                        covered(&r, &res.path),
                        p.check(&who, action, &res, now).allowed,
                        "{who:?} {action} {d} at {now}: {r:?}"
                    );
                }
            }
        }
        let plain = p.reach(&Subject::user("c"), Action::Read, ResourceType::Kb, 0);
        assert!(!plain.everything && plain.other.is_empty(), "{plain:?}");
        assert!(plain.exact.contains(&"/kb/teams/red/plan.md".to_string()));
        assert!(p.reach(&Subject::admin("root"), Action::Read, ResourceType::Kb, 0).everything);
        assert!(!p.reach(&Subject::user("p"), Action::Read, ResourceType::Kb, 0).other.is_empty());
    }
}
