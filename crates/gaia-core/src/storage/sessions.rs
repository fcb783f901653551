//! Browser sessions of the web UI (the token itself is never stored, only its hash).

use super::{from_ms, now_ms, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSession {
    /// The user.
    pub user_id: String,
    /// The token forms and scripts must send back with every change (`x-csrf-token` or `csrf_token`).
    pub csrf_token: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
}

impl Storage {
    /// Stores a new session under the hash of its token.
    pub async fn insert_web_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<WebSession> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at.timestamp_millis())
        .execute(self.pool())
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::NotFound(_) => CoreError::NotFound(format!("user {user_id}")),
            other => other,
        })?;
        Ok(WebSession {
            user_id: user_id.to_string(),
            csrf_token: csrf_token.to_string(),
            created_at: from_ms(now),
            expires_at,
        })
    }

    /// The live (unexpired) session with this token hash.
    pub async fn get_web_session(&self, token_hash: &str) -> Result<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT user_id, csrf_token, created_at, expires_at FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(WebSession {
                user_id: r.try_get("user_id")?,
                csrf_token: r.try_get("csrf_token")?,
                created_at: from_ms(r.try_get("created_at")?),
                expires_at: from_ms(r.try_get("expires_at")?),
            })
        })
        .transpose()
    }

    /// Ends a session; `false` if there was none.
    pub async fn delete_web_session(&self, token_hash: &str) -> Result<bool> {
        let r =
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1").bind(token_hash).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes expired sessions; returns how many.
    pub async fn delete_expired_web_sessions(&self) -> Result<u64> {
        let r =
            sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1").bind(now_ms()).execute(self.pool()).await?;
        Ok(r.rows_affected())
    }
}
