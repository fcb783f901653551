//! API keys and refresh tokens (only their hashes are stored).

use super::{clean_text, from_ms, new_id, now_ms, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A stored API key. The key itself is never stored: only its SHA-256 and a display prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Key id (used to revoke it).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Optional label.
    pub name: Option<String>,
    /// The first characters of the key, for display.
    pub prefix: String,
    /// Hex SHA-256 of the key.
    #[serde(skip)]
    pub key_hash: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use (updated at most about once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time; a revoked key never authenticates again.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRecord {
    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A stored refresh token (by hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// Owner.
    pub user_id: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLS: &str = "id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at";

fn row_to_key(r: &AnyRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        key_hash: r.try_get("key_hash")?,
        created_at: from_ms(r.try_get("created_at")?),
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(from_ms),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
    })
}

impl RefreshToken {
    /// Whether the token can still be used at `now` (not revoked, not expired).
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

impl Storage {
    /// Stores a new key for `user_id` (`NotFound` if there is no such user, `Conflict` if the hash exists).
    pub async fn insert_api_key(
        &self,
        user_id: &str,
        name: Option<&str>,
        prefix: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRecord> {
        let name = name.map(clean_text);
        let name = name.as_deref();
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(prefix)
        .bind(key_hash)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| match CoreError::from(e) {
            CoreError::NotFound(_) => CoreError::NotFound(format!("user {user_id}")),
            CoreError::Conflict(_) => CoreError::Conflict("an API key with this hash already exists".into()),
            other => other,
        })?;
        Ok(ApiKeyRecord {
            id,
            user_id: user_id.to_string(),
            name: name.map(str::to_string),
            prefix: prefix.to_string(),
            key_hash: key_hash.to_string(),
            created_at: from_ms(now),
            last_used_at: None,
            revoked_at: None,
        })
    }

    /// The key with this hash (revoked or not).
    pub async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM api_keys WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(row_to_key).transpose()
    }

    /// The key with this id.
    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(row_to_key).transpose()
    }

    /// Keys of one user, or of everyone; newest first.
    pub async fn list_api_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let rows = match user_id {
            Some(u) => {
                sqlx::query(&format!("SELECT {COLS} FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id"))
                    .bind(u)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLS} FROM api_keys ORDER BY created_at DESC, id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(row_to_key).collect()
    }

    /// Revokes a key (idempotent: the first revocation time is kept). `None` if there is no such key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        self.get_api_key(id).await
    }

    /// Records a use of the key now.
    pub async fn touch_api_key(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores a refresh token hash (`NotFound` if there is no such user).
    pub async fn insert_refresh_token(&self, user_id: &str, token_hash: &str, expires_at: DateTime<Utc>) -> Result<()> {
        sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now_ms())
            .bind(expires_at.timestamp_millis())
            .execute(self.pool())
            .await
            .map_err(|e| match CoreError::from(e) {
                CoreError::NotFound(_) => CoreError::NotFound(format!("user {user_id}")),
                CoreError::Conflict(_) => CoreError::Conflict("this refresh token is already stored".into()),
                other => other,
            })?;
        Ok(())
    }

    /// The refresh token with this hash.
    pub async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
        let row = sqlx::query("SELECT user_id, expires_at, revoked_at FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(RefreshToken {
                user_id: r.try_get("user_id")?,
                expires_at: from_ms(r.try_get("expires_at")?),
                revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
            })
        })
        .transpose()
    }

    /// Revokes one refresh token; `true` if it was live.
    pub async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Revokes every live refresh token of a user; returns how many.
    pub async fn revoke_user_refresh_tokens(&self, user_id: &str) -> Result<u64> {
        let r = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}
