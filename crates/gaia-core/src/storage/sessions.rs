//! Browser sessions of the web UI (the token itself is never stored, only its hash).

use super::{from_ms, now_ms, Storage};
use crate::error::Result;
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
        .map_err(super::user_row_error(user_id))?;
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

/// What became of a refresh token presented for rotation ([`Storage::rotate_refresh_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// The token was live: it is now used up and its successor is stored in the same sign-in.
    Rotated {
        /// The user.
        user_id: String,
        /// The sign-in session (the access token's `sid`).
        sid: String,
    },
    /// The token had already been used (or was being used at the same moment): whoever holds the
    /// family may have stolen it, so the whole sign-in session was revoked.
    Reused {
        /// The user.
        user_id: String,
        /// The sign-in session now revoked.
        sid: String,
    },
    /// Unknown, expired, revoked, or of a revoked sign-in session.
    Invalid,
}

/// Revokes sign-in session `sid` and every refresh token of its family, inside `tx`; `true` if it was
/// live.
async fn revoke_family_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, sid: &str, reason: &str) -> Result<bool> {
    let now = now_ms();
    let r = sqlx::query(
        "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(sid)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(sid)
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() > 0 {
        // Instances that cached the session as live look again.
        super::credentials::bump_sessions_in(tx).await?;
    }
    Ok(r.rows_affected() > 0)
}

/// Inserts a refresh token of family `sid` inside `tx`.
async fn insert_family_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    sid: &str,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, created_at, expires_at, family_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now_ms())
    .bind(expires_at.timestamp_millis())
    .bind(sid)
    .execute(&mut **tx)
    .await
    .map_err(super::user_row_error(user_id))?;
    Ok(())
}

/// Inserts a new sign-in session for `user_id` inside `tx`; returns its id.
async fn insert_sign_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user_id: &str) -> Result<String> {
    let sid = super::new_id();
    sqlx::query("INSERT INTO auth_sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(&sid)
        .bind(user_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map_err(super::user_row_error(user_id))?;
    Ok(sid)
}

impl Storage {
    /// Starts a sign-in session for `user_id` with its first refresh token (stored by hash); returns
    /// the session id (the `sid` of the access tokens issued for it).
    pub async fn create_sign_in(
        &self,
        user_id: &str,
        refresh_hash: &str,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<String> {
        let mut tx = self.pool().begin().await?;
        let sid = insert_sign_in(&mut tx, user_id).await?;
        insert_family_token(&mut tx, user_id, &sid, refresh_hash, refresh_expires_at).await?;
        tx.commit().await?;
        Ok(sid)
    }

    /// Trades the refresh token `old_hash` for `new_hash` in the same sign-in session. A token used a
    /// second time (or by two requests at once) revokes its whole session: [`RefreshOutcome::Reused`].
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: DateTime<Utc>,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        // Writing first takes the write lock at once (SQLite), so two requests with the same token
        // are serialised here: exactly one of them uses it up.
        let used = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL \
             AND expires_at > $1 AND (family_id IS NULL OR family_id IN \
             (SELECT id FROM auth_sessions WHERE revoked_at IS NULL))",
        )
        .bind(now)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT t.user_id, t.family_id, s.revoked_at AS family_revoked_at \
             FROM refresh_tokens t LEFT JOIN auth_sessions s ON s.id = t.family_id WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(RefreshOutcome::Invalid) };
        let user_id: String = row.try_get("user_id")?;
        let family: Option<String> = row.try_get("family_id")?;
        if used.rows_affected() == 0 {
            let theft = sqlx::query(
                "SELECT 1 AS used FROM refresh_tokens WHERE token_hash = $1 AND revoked_at IS NOT NULL \
                 AND expires_at > $2",
            )
            .bind(old_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            let family_live = row.try_get::<Option<i64>, _>("family_revoked_at")?.is_none();
            // Used up before (or by another request at the same moment), in a sign-in still live:
            // whoever presents it may have stolen it, so the whole sign-in ends.
            return Ok(match family {
                Some(sid) if theft && family_live => {
                    revoke_family_in(&mut tx, &sid, "refresh token reused").await?;
                    tx.commit().await?;
                    RefreshOutcome::Reused { user_id, sid }
                }
                _ => RefreshOutcome::Invalid,
            });
        }
        // Tokens from before sign-in sessions existed join a new one.
        let sid = match family {
            Some(sid) => sid,
            None => insert_sign_in(&mut tx, &user_id).await?,
        };
        insert_family_token(&mut tx, &user_id, &sid, new_hash, new_expires_at).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated { user_id, sid })
    }

    /// Whether sign-in session `sid` exists and is not revoked.
    pub async fn sign_in_is_live(&self, sid: &str) -> Result<bool> {
        let row = sqlx::query("SELECT revoked_at FROM auth_sessions WHERE id = $1")
            .bind(sid)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>("revoked_at")?.is_none(),
            None => false,
        })
    }

    /// Revokes sign-in session `sid` (logout): its refresh tokens stop working and the access tokens
    /// carrying it are refused. `true` if it was live.
    pub async fn revoke_sign_in(&self, sid: &str, reason: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let revoked = revoke_family_in(&mut tx, sid, reason).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// The sign-in session of a refresh token (by hash), if it has one.
    pub async fn sign_in_of_refresh_token(&self, token_hash: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<String>, _>("family_id")?,
            None => None,
        })
    }

    /// Revokes every live sign-in session of `user_id` and every refresh token of the user, and ends
    /// every web UI session of the user ("sign out everywhere"); returns the ids of the sign-in
    /// sessions revoked.
    pub async fn revoke_user_sign_ins(&self, user_id: &str, reason: &str) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query("SELECT id FROM auth_sessions WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
        let sids = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<std::result::Result<Vec<_>, _>>()?;
        let now = now_ms();
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        super::credentials::bump_sessions_in(&mut tx).await?;
        tx.commit().await?;
        Ok(sids)
    }
}

/// Data retention of ended sign-ins (`crate::retention`).
impl Storage {
    /// Deletes up to `limit` refresh tokens that expired before `before`, belong to a sign-in session
    /// revoked before it, or were used up before it without a sign-in session. Returns how many. Used-up
    /// tokens of a live session are kept: presenting one again still reveals a theft.
    pub async fn purge_refresh_tokens_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE \
             expires_at < $1 OR (family_id IS NULL AND revoked_at < $1) OR family_id IN \
             (SELECT id FROM auth_sessions WHERE revoked_at < $1) LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` sign-in sessions revoked before `before`, or started before it and left
    /// without a refresh token expiring after it. Returns how many.
    pub async fn purge_sign_ins_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM auth_sessions WHERE id IN (SELECT s.id FROM auth_sessions s WHERE s.revoked_at < $1 \
             OR (s.created_at < $1 AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = s.id \
             AND t.expires_at >= $1)) LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` invitations used or expired before `before`. Returns how many.
    pub async fn purge_invites_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM auth_invites WHERE id IN (SELECT id FROM auth_invites WHERE expires_at < $1 \
             OR used_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
