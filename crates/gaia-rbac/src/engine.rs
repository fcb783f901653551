//! [`Rbac`]: checks against an in-memory snapshot of the policy with a decision cache, and changes that
//! are written to the database (with an audit row) and reach every instance.
//!
//! Every change bumps `rbac_state.version` in its own transaction. The instance that made it reloads
//! at once; the others notice the new version on their next poll ([`Rbac::spawn_refresh`], every
//! second by default) and reload. A reload swaps the snapshot and empties the decision cache, so no
//! decision outlives the policy it came from.

use crate::error::{RbacError, Result};
use crate::model::{Action, Resource, ResourceType};
use crate::policy::{
    Decision, Effective, Grant, Group, GroupKind, Member, Policy, Share, ShareAccess, Subject, WhoCan,
};
use crate::role::{check_role_name, Role, MAX_ROLE_PERMISSIONS};
use crate::store::{self, now_ms, AuditEntry, Change};
use chrono::{DateTime, Utc};
use gaia_core::storage::Storage;
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Cache key: the subject, the action and the resource.
type Key = (String, bool, ResourceType, Action, String);

/// Most decisions kept in the in-process cache.
pub const DECISION_CACHE_CAPACITY: u64 = 100_000;

/// The RBAC engine; cheap to clone (clones share the snapshot and the cache).
#[derive(Clone)]
pub struct Rbac {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    storage: Storage,
    policy: RwLock<Arc<Policy>>,
    cache: moka::sync::Cache<Key, Decision>,
    publisher: std::sync::OnceLock<crate::notify::Publisher>,
}

/// A handle that does not keep the engine alive (for background tasks).
pub(crate) type WeakRbac = std::sync::Weak<Inner>;

impl std::fmt::Debug for Rbac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rbac").field("version", &self.policy().version()).finish()
    }
}

impl Rbac {
    /// Loads the policy from `storage` (migrated).
    pub async fn load(storage: Storage) -> Result<Rbac> {
        let policy = store::load(&storage).await?;
        Ok(Self::with_policy(storage, policy))
    }

    fn with_policy(storage: Storage, policy: Policy) -> Rbac {
        Rbac {
            inner: Arc::new(Inner {
                storage,
                policy: RwLock::new(Arc::new(policy)),
                cache: moka::sync::Cache::builder().max_capacity(DECISION_CACHE_CAPACITY).build(),
                publisher: std::sync::OnceLock::new(),
            }),
        }
    }

    /// An engine whose policy is loaded on first use ([`Rbac::ensure_loaded`]); until then it knows
    /// only the built-in roles. For constructors that cannot wait.
    pub fn unloaded(storage: Storage) -> Rbac {
        Self::with_policy(storage, Policy::build(Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), -1))
    }

    /// This engine with its policy loaded if it was never loaded; when the policy cannot be read,
    /// that is logged and only the built-in roles apply (checks keep working, never wider).
    pub async fn loaded(&self) -> &Rbac {
        if let Err(e) = self.ensure_loaded().await {
            tracing::error!(error = %e, "cannot load the access-control policy; only built-in roles apply");
        }
        self
    }

    /// Loads the policy if it was never loaded.
    pub async fn ensure_loaded(&self) -> Result<()> {
        if self.policy().version() < 0 {
            self.reload().await?;
        }
        Ok(())
    }

    /// The current snapshot.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `subject` may do `action` on `resource`, and why. Cached until the policy changes (or
    /// the expiring grant behind an allowed decision runs out).
    pub fn check(&self, subject: &Subject, action: Action, resource: &Resource) -> Decision {
        let key: Key =
            (subject.user_id.clone(), subject.is_admin, resource.resource_type, action, resource.path.clone());
        if let Some(d) = self.inner.cache.get(&key) {
            if d.valid_until.is_none_or(|t| now_ms() < t) {
                return d;
            }
        }
        let d = self.check_uncached(subject, action, resource);
        self.inner.cache.insert(key, d.clone());
        d
    }

    /// [`Rbac::check`] without the cache.
    pub fn check_uncached(&self, subject: &Subject, action: Action, resource: &Resource) -> Decision {
        self.policy().check(subject, action, resource, now_ms())
    }

    /// Whether `subject` holds `action` on some resource of `resource_type` (for routes whose
    /// resources are checked one by one later, such as knowledge-base searches).
    pub fn can_any(&self, subject: &Subject, action: Action, resource_type: ResourceType) -> bool {
        self.policy().can_any(subject, action, resource_type, now_ms())
    }

    /// Where `subject` may do `action` on resources of `resource_type` now ([`Policy::reach`]), for
    /// filtering an index instead of checking its entries one by one.
    pub fn reach(&self, subject: &Subject, action: Action, resource_type: ResourceType) -> crate::Reach {
        self.policy().reach(subject, action, resource_type, now_ms())
    }

    /// Everything `subject` may do, with where each permission comes from.
    pub fn what_can(&self, subject: &Subject) -> Vec<Effective> {
        self.policy().effective(subject, now_ms())
    }

    /// Who may do `action` on `resource`.
    pub fn who_can(&self, action: Action, resource: &Resource) -> WhoCan {
        self.policy().who_can(action, resource, now_ms())
    }

    /// Reloads the policy if the database has a newer version; returns whether it did.
    pub async fn refresh(&self) -> Result<bool> {
        let v = store::version(&self.inner.storage).await?;
        if v == self.policy().version() {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Reloads the policy from the database and empties the decision cache.
    pub async fn reload(&self) -> Result<()> {
        let p = store::load(&self.inner.storage).await?;
        *self.inner.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
        self.inner.cache.invalidate_all();
        Ok(())
    }

    /// Polls the database every `every` for changes made by other instances (and for grants that
    /// expired), reloading when needed. The task ends when every clone of this engine is dropped.
    pub fn spawn_refresh(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = self.downgrade();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rbac) = Rbac::upgrade(&weak) else { return };
                if let Err(e) = rbac.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the RBAC policy");
                }
            }
        })
    }

    async fn changed(&self) -> Result<()> {
        self.reload().await?;
        if let Some(p) = self.inner.publisher.get() {
            p.announce(self.policy().version()).await;
        }
        Ok(())
    }

    pub(crate) fn set_publisher(&self, p: crate::notify::Publisher) {
        let _ = self.inner.publisher.set(p);
    }

    pub(crate) fn downgrade(&self) -> WeakRbac {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(w: &WeakRbac) -> Option<Rbac> {
        w.upgrade().map(|inner| Rbac { inner })
    }

    // ---- changes ----

    /// Creates a custom role.
    pub async fn create_role(&self, actor: Option<&str>, role: Role) -> Result<Role> {
        let role = self.validate_role(role)?;
        if self.policy().role(&role.name).is_some() {
            return Err(RbacError::Conflict(format!("role {} already exists", role.name)));
        }
        let mut c = Change::begin(&self.inner.storage).await?;
        store::insert_role(&mut c, &role).await?;
        c.commit(actor, "role.create", &role.name, json!(role)).await?;
        self.changed().await?;
        Ok(role)
    }

    /// Replaces a custom role's scope, description and permissions.
    pub async fn update_role(&self, actor: Option<&str>, role: Role) -> Result<Role> {
        let role = self.validate_role(role)?;
        if self.policy().role(&role.name).is_some_and(|r| r.builtin) {
            return Err(RbacError::Conflict(format!("role {} is built in and cannot change", role.name)));
        }
        let mut c = Change::begin(&self.inner.storage).await?;
        store::update_role(&mut c, &role).await?;
        c.commit(actor, "role.update", &role.name, json!(role)).await?;
        self.changed().await?;
        Ok(role)
    }

    /// Deletes a custom role that nobody holds.
    pub async fn delete_role(&self, actor: Option<&str>, name: &str) -> Result<()> {
        if self.policy().role(name).is_some_and(|r| r.builtin) {
            return Err(RbacError::Conflict(format!("role {name} is built in and cannot be deleted")));
        }
        let mut c = Change::begin(&self.inner.storage).await?;
        store::delete_role(&mut c, name).await?;
        c.commit(actor, "role.delete", name, json!({})).await?;
        self.changed().await
    }

    fn validate_role(&self, mut role: Role) -> Result<Role> {
        check_role_name(&role.name)?;
        if role.permissions.is_empty() || role.permissions.len() > MAX_ROLE_PERMISSIONS {
            return Err(RbacError::Invalid(format!(
                "a role needs 1 to {MAX_ROLE_PERMISSIONS} permissions, not {}",
                role.permissions.len()
            )));
        }
        if role.description.chars().count() > 1_000 {
            return Err(RbacError::Invalid("description must be at most 1000 characters".into()));
        }
        role.builtin = false;
        Ok(role)
    }

    /// Creates a team or workspace.
    pub async fn create_group(&self, actor: Option<&str>, kind: GroupKind, name: &str) -> Result<Group> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(RbacError::Invalid(format!("a {} name must be 1 to 200 characters", kind.as_str())));
        }
        let g = store::group_new(kind, name);
        let mut c = Change::begin(&self.inner.storage).await?;
        store::insert_group(&mut c, &g, actor).await?;
        c.commit(actor, &format!("{}.create", kind.as_str()), &g.id, json!({"name": name})).await?;
        self.changed().await?;
        Ok(g)
    }

    /// Deletes a team or workspace with its memberships, grants and shares.
    pub async fn delete_group(&self, actor: Option<&str>, id: &str) -> Result<()> {
        let kind = self.group_kind(id)?;
        let mut c = Change::begin(&self.inner.storage).await?;
        store::delete_group(&mut c, id).await?;
        c.commit(actor, &format!("{}.delete", kind.as_str()), id, json!({})).await?;
        self.changed().await
    }

    fn group_kind(&self, id: &str) -> Result<GroupKind> {
        self.policy().group(id).map(|g| g.kind).ok_or_else(|| RbacError::NotFound(format!("team or workspace {id}")))
    }

    /// Adds a member to a team or workspace with a role of team or workspace scope (or changes it).
    pub async fn add_member(&self, actor: Option<&str>, group_id: &str, user_id: &str, role: &str) -> Result<Member> {
        let kind = self.group_kind(group_id)?;
        self.policy().check_grantable(role, Some(kind))?;
        let m = Member { group_id: group_id.into(), user_id: user_id.into(), role: role.into() };
        let mut c = Change::begin(&self.inner.storage).await?;
        store::upsert_member(&mut c, &m).await?;
        c.commit(actor, "member.add", group_id, json!({"user_id": user_id, "role": role})).await?;
        self.changed().await?;
        Ok(m)
    }

    /// Removes a member.
    pub async fn remove_member(&self, actor: Option<&str>, group_id: &str, user_id: &str) -> Result<()> {
        let mut c = Change::begin(&self.inner.storage).await?;
        store::delete_member(&mut c, group_id, user_id).await?;
        c.commit(actor, "member.remove", group_id, json!({"user_id": user_id})).await?;
        self.changed().await
    }

    /// Grants `role` to a user, system-wide or within a team or workspace, optionally until a time.
    pub async fn grant(
        &self,
        actor: Option<&str>,
        user_id: &str,
        role: &str,
        group_id: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Grant> {
        let kind = group_id.map(|g| self.group_kind(g)).transpose()?;
        self.policy().check_grantable(role, kind)?;
        if expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(RbacError::Invalid("expires_at must be in the future".into()));
        }
        let g = store::grant_new(user_id, role, group_id, expires_at, actor);
        let mut c = Change::begin(&self.inner.storage).await?;
        store::insert_grant(&mut c, &g).await?;
        c.commit(actor, "grant.create", &g.id, json!(g)).await?;
        self.changed().await?;
        Ok(g)
    }

    /// Revokes a grant.
    pub async fn revoke(&self, actor: Option<&str>, grant_id: &str) -> Result<Grant> {
        let mut c = Change::begin(&self.inner.storage).await?;
        let g = store::delete_grant(&mut c, grant_id).await?;
        c.commit(actor, "grant.delete", grant_id, json!(g)).await?;
        self.changed().await?;
        Ok(g)
    }

    /// Shares a resource with a user or with a team or workspace (exactly one of them).
    pub async fn share(
        &self,
        actor: Option<&str>,
        resource: Resource,
        user_id: Option<&str>,
        group_id: Option<&str>,
        access: ShareAccess,
    ) -> Result<Share> {
        if user_id.is_some() == group_id.is_some() {
            return Err(RbacError::Invalid("share with exactly one of a user or a team/workspace".into()));
        }
        if !matches!(
            resource.resource_type,
            ResourceType::Kb | ResourceType::Conversation | ResourceType::Persona | ResourceType::Asset
        ) {
            return Err(RbacError::Invalid("only kb, conversation, persona and asset resources can be shared".into()));
        }
        if !resource.path.starts_with('/') || resource.path.contains("..") || resource.path.contains('*') {
            return Err(RbacError::Invalid("a shared path must be absolute, without `..` or wildcards".into()));
        }
        if let Some(g) = group_id {
            self.group_kind(g)?;
        }
        let s = store::share_new(resource, user_id, group_id, access, actor);
        let mut c = Change::begin(&self.inner.storage).await?;
        store::insert_share(&mut c, &s).await?;
        c.commit(actor, "share.create", &s.id, json!(s)).await?;
        self.changed().await?;
        Ok(s)
    }

    /// Removes a share.
    pub async fn unshare(&self, actor: Option<&str>, share_id: &str) -> Result<Share> {
        let mut c = Change::begin(&self.inner.storage).await?;
        let s = store::delete_share(&mut c, share_id).await?;
        c.commit(actor, "share.delete", share_id, json!(s)).await?;
        self.changed().await?;
        Ok(s)
    }

    // ---- reads ----

    /// Every role.
    pub fn roles(&self) -> Vec<Role> {
        self.policy().roles().into_iter().cloned().collect()
    }

    /// Grants, optionally of one user (expired ones included).
    pub async fn grants(&self, user_id: Option<&str>) -> Result<Vec<Grant>> {
        store::list_grants(&self.inner.storage, user_id).await
    }

    /// Teams or workspaces.
    pub async fn groups(&self, kind: GroupKind) -> Result<Vec<Group>> {
        store::list_groups(&self.inner.storage, kind).await
    }

    /// Members of a team or workspace.
    pub async fn members(&self, group_id: &str) -> Result<Vec<Member>> {
        self.group_kind(group_id)?;
        store::list_members(&self.inner.storage, group_id).await
    }

    /// Every share.
    pub async fn shares(&self) -> Result<Vec<Share>> {
        store::list_shares(&self.inner.storage).await
    }

    /// The newest audit entries.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        store::audit_log(&self.inner.storage, limit).await
    }
}
