//! Rate limits set for one user or API key (`rate_limits`), replacing the configured defaults.

use super::{from_ms, now_ms, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Who a limit or budget is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitScope {
    /// One user (all their keys and sessions).
    User,
    /// One API key.
    Key,
    /// The members of a team, together (budgets only).
    Team,
    /// One end user (a game's player) of one Gaia user: subject `<user id>:<end user id>`.
    EndUser,
    /// Every end user of one API key, each on their own (the key's default for its players):
    /// subject the key id.
    KeyEndUsers,
}

impl LimitScope {
    /// `user`, `key` or `team`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::User => "user",
            LimitScope::Key => "key",
            LimitScope::Team => "team",
            LimitScope::EndUser => "end_user",
            LimitScope::KeyEndUsers => "key_end_users",
        }
    }

    /// Checks `subject_id` as a subject of this scope: not empty; an end user's is
    /// `<user id>:<end user id>` with a valid end user id.
    pub fn check_subject(self, subject_id: &str) -> Result<()> {
        if subject_id.trim().is_empty() {
            return Err(CoreError::InvalidInput("the subject id is empty".into()));
        }
        if subject_id.len() > 512 {
            return Err(CoreError::InvalidInput("the subject id is over 512 bytes".into()));
        }
        if self == LimitScope::EndUser {
            crate::attribution::parse_end_user_subject(subject_id)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LimitScope {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "user" => Ok(LimitScope::User),
            "key" => Ok(LimitScope::Key),
            "team" => Ok(LimitScope::Team),
            "end_user" => Ok(LimitScope::EndUser),
            "key_end_users" => Ok(LimitScope::KeyEndUsers),
            other => Err(CoreError::InvalidInput(format!(
                "unknown scope `{other}` (user, key, team, end_user or key_end_users)"
            ))),
        }
    }
}

impl std::fmt::Display for LimitScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rate limits of one user or key; `None` keeps the configured default, 0 means unlimited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitOverride {
    /// `user` or `key`.
    pub scope: LimitScope,
    /// The user or key id.
    pub subject_id: String,
    /// Model requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Who set it.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "scope, subject_id, requests_per_minute, tokens_per_minute, updated_by, updated_at";

fn row_to_limit(r: &AnyRow) -> Result<RateLimitOverride> {
    let scope: String = r.try_get("scope")?;
    let opt = |c: &str| -> Result<Option<u64>> { Ok(r.try_get::<Option<i64>, _>(c)?.map(|v| v.max(0) as u64)) };
    Ok(RateLimitOverride {
        scope: scope.parse()?,
        subject_id: r.try_get("subject_id")?,
        requests_per_minute: opt("requests_per_minute")?,
        tokens_per_minute: opt("tokens_per_minute")?,
        updated_by: r.try_get("updated_by")?,
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

fn to_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Storage {
    /// Sets (or replaces) the rate limits of a user or key.
    pub async fn set_rate_limit(
        &self,
        scope: LimitScope,
        subject_id: &str,
        requests_per_minute: Option<u64>,
        tokens_per_minute: Option<u64>,
        updated_by: Option<&str>,
    ) -> Result<RateLimitOverride> {
        if scope == LimitScope::Team {
            return Err(CoreError::InvalidInput("rate limits apply to users, keys and end users, not teams".into()));
        }
        scope.check_subject(subject_id)?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM rate_limits WHERE scope = $1 AND subject_id = $2")
            .bind(scope.as_str())
            .bind(subject_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO rate_limits (scope, subject_id, requests_per_minute, tokens_per_minute, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope.as_str())
        .bind(subject_id)
        .bind(to_i64(requests_per_minute))
        .bind(to_i64(tokens_per_minute))
        .bind(updated_by)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.rate_limit(scope, subject_id)
            .await?
            .ok_or_else(|| CoreError::Database("the rate limit just written is missing".into()))
    }

    /// The rate limits set for a user or key, if any.
    pub async fn rate_limit(&self, scope: LimitScope, subject_id: &str) -> Result<Option<RateLimitOverride>> {
        let sql = format!("SELECT {COLS} FROM rate_limits WHERE scope = $1 AND subject_id = $2");
        let row = sqlx::query(&sql).bind(scope.as_str()).bind(subject_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(row_to_limit).transpose()
    }

    /// Every rate limit set, by scope then subject.
    pub async fn list_rate_limits(&self) -> Result<Vec<RateLimitOverride>> {
        let sql = format!("SELECT {COLS} FROM rate_limits ORDER BY scope, subject_id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(row_to_limit).collect()
    }

    /// Removes the limits of a user or key (the defaults apply again); whether there were any.
    pub async fn delete_rate_limit(&self, scope: LimitScope, subject_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM rate_limits WHERE scope = $1 AND subject_id = $2")
            .bind(scope.as_str())
            .bind(subject_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
