//! The audit log of security-relevant actions (who, what, when), and its reading together with the
//! access-control changes of `rbac_audit`.

use super::{from_ms, new_id, now_ms, Storage};
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Id.
    pub id: String,
    /// Who did it (`None`: unknown, e.g. a failed sign-in, or the command line).
    pub actor_id: Option<String>,
    /// What (`auth.login`, `auth.login_failed`, `key.create`, `kb.write`, `grant.create`, …).
    pub action: String,
    /// To what (a user, key, path, grant id…).
    pub target: String,
    /// More, as JSON (never secrets).
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl Storage {
    /// Appends an audit record.
    pub async fn record_audit(
        &self,
        actor_id: Option<&str>,
        action: &str,
        target: &str,
        details: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, actor_id, action, target, details, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(actor_id)
        .bind(action)
        .bind(target)
        .bind(details.to_string())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest `limit` audit records (security actions and access-control changes), newest first,
    /// optionally only those whose action starts with `action_prefix`.
    pub async fn audit_records(&self, action_prefix: Option<&str>, limit: i64) -> Result<Vec<AuditRecord>> {
        let prefix = format!("{}%", action_prefix.unwrap_or("").replace('%', "").replace('_', "\\_"));
        let rows = sqlx::query(
            "SELECT id, actor_id, action, target, details, created_at FROM ( \
               SELECT id, actor_id, action, target, details, created_at FROM audit_log \
               UNION ALL SELECT id, actor_id, action, target, details, created_at FROM rbac_audit) a \
             WHERE action LIKE $1 ESCAPE '\\' ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(prefix)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_audit).collect()
    }
}

/// Data retention (`crate::retention`).
impl Storage {
    /// Deletes up to `limit` rows of `audit_log` created before `before`. Returns how many.
    pub async fn purge_audit_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` access-control audit rows (`rbac_audit`) created before `before`. Returns
    /// how many.
    pub async fn purge_rbac_audit_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM rbac_audit WHERE id IN (SELECT id FROM rbac_audit WHERE created_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}

/// An `audit_log` row.
pub(super) fn row_to_audit(r: &sqlx::any::AnyRow) -> Result<AuditRecord> {
    let details: String = r.try_get("details")?;
    Ok(AuditRecord {
        id: r.try_get("id")?,
        actor_id: r.try_get("actor_id")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        created_at: from_ms(r.try_get("created_at")?),
    })
}
