//! The policy in the database (tables `rbac_*`, created by gaia-core's migrations): loading a
//! snapshot, and changes, each in one transaction with its audit row and a bump of `rbac_state.version`.

use crate::error::{RbacError, Result};
use crate::model::{Permission, Resource};
use crate::policy::{Grant, Group, GroupKind, Member, Policy, Share, ShareAccess};
use crate::role::Role;
use chrono::{DateTime, Utc};
use gaia_core::storage::Storage;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Id.
    pub id: String,
    /// Who made the change (`None`: the system, e.g. the CLI without a user).
    pub actor_id: Option<String>,
    /// What was done (`role.create`, `grant.create`, `share.delete`, …).
    pub action: String,
    /// What it was done to (a role name, a grant id, …).
    pub target: String,
    /// The change, as JSON.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parse<T: std::str::FromStr<Err = RbacError>>(s: &str) -> Result<T> {
    s.parse()
}

fn row_group(r: &AnyRow) -> Result<Group> {
    Ok(Group {
        id: r.try_get("id")?,
        kind: parse(&r.try_get::<String, _>("kind")?)?,
        name: r.try_get("name")?,
        created_at: ts(r.try_get("created_at")?),
    })
}

fn row_grant(r: &AnyRow) -> Result<Grant> {
    Ok(Grant {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        role: r.try_get("role")?,
        group_id: r.try_get("group_id")?,
        expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(ts),
        created_by: r.try_get("created_by")?,
        created_at: ts(r.try_get("created_at")?),
    })
}

fn row_share(r: &AnyRow) -> Result<Share> {
    Ok(Share {
        id: r.try_get("id")?,
        resource: Resource::new(parse(&r.try_get::<String, _>("resource_type")?)?, r.try_get::<String, _>("path")?),
        user_id: r.try_get("user_id")?,
        group_id: r.try_get("group_id")?,
        access: parse(&r.try_get::<String, _>("access")?)?,
        created_by: r.try_get("created_by")?,
        created_at: ts(r.try_get("created_at")?),
    })
}

fn row_role(r: &AnyRow) -> Result<Role> {
    let perms: String = r.try_get("permissions")?;
    Ok(Role {
        name: r.try_get("name")?,
        scope: parse(&r.try_get::<String, _>("scope")?)?,
        description: r.try_get("description")?,
        permissions: serde_json::from_str::<Vec<Permission>>(&perms)
            .map_err(|e| RbacError::Invalid(format!("stored role permissions: {e}")))?,
        builtin: false,
    })
}

/// The current policy version in the database.
pub async fn version(storage: &Storage) -> Result<i64> {
    let row = sqlx::query("SELECT version FROM rbac_state WHERE id = 1").fetch_optional(storage.pool()).await?;
    Ok(match row {
        Some(r) => r.try_get("version")?,
        None => 0,
    })
}

/// Reads the whole policy. Expired grants are left out.
pub async fn load(storage: &Storage) -> Result<Policy> {
    let pool = storage.pool();
    let version = version(storage).await?;
    let roles = sqlx::query("SELECT name, scope, description, permissions FROM rbac_roles")
        .fetch_all(pool)
        .await?
        .iter()
        .map(row_role)
        .collect::<Result<Vec<_>>>()?;
    let groups = sqlx::query("SELECT id, kind, name, created_at FROM rbac_teams")
        .fetch_all(pool)
        .await?
        .iter()
        .map(row_group)
        .collect::<Result<Vec<_>>>()?;
    let grants = sqlx::query(
        "SELECT id, user_id, role, group_id, expires_at, created_by, created_at FROM rbac_grants \
         WHERE expires_at IS NULL OR expires_at > $1",
    )
    .bind(now_ms())
    .fetch_all(pool)
    .await?
    .iter()
    .map(row_grant)
    .collect::<Result<Vec<_>>>()?;
    let members = sqlx::query("SELECT group_id, user_id, role FROM rbac_members")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Member { group_id: r.try_get("group_id")?, user_id: r.try_get("user_id")?, role: r.try_get("role")? })
        })
        .collect::<Result<Vec<_>>>()?;
    let shares = sqlx::query(
        "SELECT id, resource_type, path, user_id, group_id, access, created_by, created_at FROM rbac_shares",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(row_share)
    .collect::<Result<Vec<_>>>()?;
    Ok(Policy::build(roles, groups, grants, members, shares, version))
}

/// A change in progress: its transaction, closed by [`Change::commit`] with the audit row.
pub(crate) struct Change<'a> {
    pub tx: Transaction<'a, Any>,
}

impl<'a> Change<'a> {
    pub async fn begin(storage: &'a Storage) -> Result<Change<'a>> {
        Ok(Change { tx: storage.pool().begin().await? })
    }

    /// Writes the audit entry, bumps the version and commits.
    pub async fn commit(
        mut self,
        actor: Option<&str>,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_audit (id, actor_id, action, target, details, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(details.to_string())
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE rbac_state SET version = version + 1 WHERE id = 1").execute(&mut *self.tx).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Maps a foreign-key failure (an unknown user or group) to a readable `NotFound`.
pub(crate) fn missing(what: String) -> impl FnOnce(sqlx::Error) -> RbacError {
    move |e| match gaia_core::CoreError::from(e) {
        gaia_core::CoreError::NotFound(_) => RbacError::NotFound(what),
        gaia_core::CoreError::Conflict(_) => RbacError::Conflict(format!("{what} already exists")),
        other => RbacError::Storage(other),
    }
}

pub(crate) async fn insert_role(c: &mut Change<'_>, r: &Role) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO rbac_roles (name, scope, description, permissions, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&r.name)
    .bind(r.scope.as_str())
    .bind(&r.description)
    .bind(serde_json::to_string(&r.permissions).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .execute(&mut *c.tx)
    .await
    .map_err(missing(format!("role {}", r.name)))?;
    Ok(())
}

pub(crate) async fn update_role(c: &mut Change<'_>, r: &Role) -> Result<()> {
    let n = sqlx::query(
        "UPDATE rbac_roles SET scope = $1, description = $2, permissions = $3, updated_at = $4 WHERE name = $5",
    )
    .bind(r.scope.as_str())
    .bind(&r.description)
    .bind(serde_json::to_string(&r.permissions).unwrap_or_else(|_| "[]".into()))
    .bind(now_ms())
    .bind(&r.name)
    .execute(&mut *c.tx)
    .await?;
    if n.rows_affected() == 0 {
        return Err(RbacError::NotFound(format!("role {}", r.name)));
    }
    Ok(())
}

pub(crate) async fn delete_role(c: &mut Change<'_>, name: &str) -> Result<()> {
    let used: i64 = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM rbac_grants WHERE role = $1) + (SELECT COUNT(*) FROM rbac_members WHERE role = $1) AS n",
    )
    .bind(name)
    .fetch_one(&mut *c.tx)
    .await?
    .try_get("n")?;
    if used > 0 {
        return Err(RbacError::Conflict(format!("role {name} is still granted {used} time(s); revoke those first")));
    }
    let n = sqlx::query("DELETE FROM rbac_roles WHERE name = $1").bind(name).execute(&mut *c.tx).await?;
    if n.rows_affected() == 0 {
        return Err(RbacError::NotFound(format!("role {name}")));
    }
    Ok(())
}

pub(crate) async fn insert_group(c: &mut Change<'_>, g: &Group, actor: Option<&str>) -> Result<()> {
    sqlx::query("INSERT INTO rbac_teams (id, kind, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&g.id)
        .bind(g.kind.as_str())
        .bind(&g.name)
        .bind(actor)
        .bind(g.created_at.timestamp_millis())
        .execute(&mut *c.tx)
        .await
        .map_err(missing(format!("{} named {}", g.kind.as_str(), g.name)))?;
    Ok(())
}

pub(crate) async fn delete_group(c: &mut Change<'_>, id: &str) -> Result<()> {
    // Children first: SQLite enforces the cascades, but only with foreign keys on.
    for table in ["rbac_members", "rbac_grants", "rbac_shares"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE group_id = $1")).bind(id).execute(&mut *c.tx).await?;
    }
    let n = sqlx::query("DELETE FROM rbac_teams WHERE id = $1").bind(id).execute(&mut *c.tx).await?;
    if n.rows_affected() == 0 {
        return Err(RbacError::NotFound(format!("team or workspace {id}")));
    }
    Ok(())
}

pub(crate) async fn upsert_member(c: &mut Change<'_>, m: &Member) -> Result<()> {
    sqlx::query("DELETE FROM rbac_members WHERE group_id = $1 AND user_id = $2")
        .bind(&m.group_id)
        .bind(&m.user_id)
        .execute(&mut *c.tx)
        .await?;
    sqlx::query("INSERT INTO rbac_members (group_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&m.group_id)
        .bind(&m.user_id)
        .bind(&m.role)
        .bind(now_ms())
        .execute(&mut *c.tx)
        .await
        .map_err(missing(format!("user {}", m.user_id)))?;
    Ok(())
}

pub(crate) async fn delete_member(c: &mut Change<'_>, group_id: &str, user_id: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM rbac_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .execute(&mut *c.tx)
        .await?;
    if n.rows_affected() == 0 {
        return Err(RbacError::NotFound(format!("member {user_id} of {group_id}")));
    }
    Ok(())
}

pub(crate) async fn insert_grant(c: &mut Change<'_>, g: &Grant) -> Result<()> {
    sqlx::query(
        "INSERT INTO rbac_grants (id, user_id, role, group_id, expires_at, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&g.id)
    .bind(&g.user_id)
    .bind(&g.role)
    .bind(g.group_id.as_deref())
    .bind(g.expires_at.map(|t| t.timestamp_millis()))
    .bind(g.created_by.as_deref())
    .bind(g.created_at.timestamp_millis())
    .execute(&mut *c.tx)
    .await
    .map_err(missing(format!("user {}", g.user_id)))?;
    Ok(())
}

pub(crate) async fn delete_grant(c: &mut Change<'_>, id: &str) -> Result<Grant> {
    let row = sqlx::query(
        "SELECT id, user_id, role, group_id, expires_at, created_by, created_at FROM rbac_grants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c.tx)
    .await?
    .ok_or_else(|| RbacError::NotFound(format!("grant {id}")))?;
    let g = row_grant(&row)?;
    sqlx::query("DELETE FROM rbac_grants WHERE id = $1").bind(id).execute(&mut *c.tx).await?;
    Ok(g)
}

pub(crate) async fn insert_share(c: &mut Change<'_>, s: &Share) -> Result<()> {
    sqlx::query(
        "INSERT INTO rbac_shares (id, resource_type, path, user_id, group_id, access, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(s.resource.resource_type.as_str())
    .bind(&s.resource.path)
    .bind(s.user_id.as_deref())
    .bind(s.group_id.as_deref())
    .bind(s.access.as_str())
    .bind(s.created_by.as_deref())
    .bind(s.created_at.timestamp_millis())
    .execute(&mut *c.tx)
    .await
    .map_err(missing("the user or team shared with".to_string()))?;
    Ok(())
}

pub(crate) async fn delete_share(c: &mut Change<'_>, id: &str) -> Result<Share> {
    let row = sqlx::query(
        "SELECT id, resource_type, path, user_id, group_id, access, created_by, created_at FROM rbac_shares WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c.tx)
    .await?
    .ok_or_else(|| RbacError::NotFound(format!("share {id}")))?;
    let s = row_share(&row)?;
    sqlx::query("DELETE FROM rbac_shares WHERE id = $1").bind(id).execute(&mut *c.tx).await?;
    Ok(s)
}

/// Grants (expired ones included), optionally of one user, newest first.
pub async fn list_grants(storage: &Storage, user_id: Option<&str>) -> Result<Vec<Grant>> {
    let q = "SELECT id, user_id, role, group_id, expires_at, created_by, created_at FROM rbac_grants";
    let rows = match user_id {
        Some(u) => {
            sqlx::query(&format!("{q} WHERE user_id = $1 ORDER BY created_at DESC"))
                .bind(u)
                .fetch_all(storage.pool())
                .await?
        }
        None => sqlx::query(&format!("{q} ORDER BY created_at DESC")).fetch_all(storage.pool()).await?,
    };
    rows.iter().map(row_grant).collect()
}

/// Teams or workspaces, by name.
pub async fn list_groups(storage: &Storage, kind: GroupKind) -> Result<Vec<Group>> {
    sqlx::query("SELECT id, kind, name, created_at FROM rbac_teams WHERE kind = $1 ORDER BY name")
        .bind(kind.as_str())
        .fetch_all(storage.pool())
        .await?
        .iter()
        .map(row_group)
        .collect()
}

/// Members of a team or workspace.
pub async fn list_members(storage: &Storage, group_id: &str) -> Result<Vec<Member>> {
    sqlx::query("SELECT group_id, user_id, role FROM rbac_members WHERE group_id = $1 ORDER BY created_at")
        .bind(group_id)
        .fetch_all(storage.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(Member { group_id: r.try_get("group_id")?, user_id: r.try_get("user_id")?, role: r.try_get("role")? })
        })
        .collect()
}

/// Shares, newest first.
pub async fn list_shares(storage: &Storage) -> Result<Vec<Share>> {
    sqlx::query(
        "SELECT id, resource_type, path, user_id, group_id, access, created_by, created_at FROM rbac_shares ORDER BY created_at DESC",
    )
    .fetch_all(storage.pool())
    .await?
    .iter()
    .map(row_share)
    .collect()
}

/// The newest `limit` audit entries, newest first.
pub async fn audit_log(storage: &Storage, limit: i64) -> Result<Vec<AuditEntry>> {
    sqlx::query("SELECT id, actor_id, action, target, details, created_at FROM rbac_audit ORDER BY created_at DESC, id LIMIT $1")
        .bind(limit.clamp(1, 10_000))
        .fetch_all(storage.pool())
        .await?
        .iter()
        .map(|r| {
            let details: String = r.try_get("details")?;
            Ok(AuditEntry {
                id: r.try_get("id")?,
                actor_id: r.try_get("actor_id")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
                created_at: ts(r.try_get("created_at")?),
            })
        })
        .collect()
}

pub(crate) fn group_new(kind: GroupKind, name: &str) -> Group {
    Group { id: new_id(), kind, name: name.to_string(), created_at: ts(now_ms()) }
}

pub(crate) fn grant_new(
    user_id: &str,
    role: &str,
    group_id: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    actor: Option<&str>,
) -> Grant {
    Grant {
        id: new_id(),
        user_id: user_id.to_string(),
        role: role.to_string(),
        group_id: group_id.map(str::to_string),
        expires_at,
        created_by: actor.map(str::to_string),
        created_at: ts(now_ms()),
    }
}

pub(crate) fn share_new(
    resource: Resource,
    user_id: Option<&str>,
    group_id: Option<&str>,
    access: ShareAccess,
    actor: Option<&str>,
) -> Share {
    Share {
        id: new_id(),
        resource,
        user_id: user_id.map(str::to_string),
        group_id: group_id.map(str::to_string),
        access,
        created_by: actor.map(str::to_string),
        created_at: ts(now_ms()),
    }
}
