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
    /// Expiry; from this time on the key no longer authenticates (`None`: never expires).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Id of the key that replaced this one in a rotation (this key then expires after the overlap).
    #[serde(default)]
    pub rotated_to: Option<String>,
}

impl ApiKeyRecord {
    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the key has expired at `now` (an expiry equal to `now` counts as expired).
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A key to store: what [`Storage::insert_api_key_with`] and [`Storage::rotate_api_key`] take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewApiKey<'a> {
    /// Owner.
    pub user_id: &'a str,
    /// Optional label.
    pub name: Option<&'a str>,
    /// Display prefix.
    pub prefix: &'a str,
    /// Hex SHA-256 of the key.
    pub key_hash: &'a str,
    /// Expiry (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
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

const COLS: &str = "id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at, expires_at, rotated_to";

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
        expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(from_ms),
        rotated_to: r.try_get("rotated_to")?,
    })
}

/// Why `key` cannot be rotated at `now`, as a `Conflict`.
fn check_rotatable(key: &ApiKeyRecord, now: DateTime<Utc>) -> Result<()> {
    let id = &key.id;
    if key.is_revoked() {
        return Err(CoreError::Conflict(format!("API key {id} has been revoked; create a new key instead")));
    }
    if let Some(next) = &key.rotated_to {
        return Err(CoreError::Conflict(format!(
            "API key {id} was already rotated to {next}; rotate that key instead"
        )));
    }
    if key.is_expired_at(now) {
        return Err(CoreError::Conflict(format!("API key {id} has expired; create a new key instead")));
    }
    Ok(())
}

/// Inserts `key` with this id and creation time on `conn` (a pooled connection or a transaction).
async fn insert_key(conn: &mut sqlx::AnyConnection, key: &NewApiKey<'_>, id: &str, now: i64) -> Result<ApiKeyRecord> {
    let name = key.name.map(clean_text);
    let name = name.as_deref();
    let user_id = key.user_id;
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(key.prefix)
    .bind(key.key_hash)
    .bind(now)
    .bind(key.expires_at.map(|e| e.timestamp_millis()))
    .execute(&mut *conn)
    .await
    .map_err(|e| match super::user_row_error(user_id)(e) {
        CoreError::Conflict(_) => CoreError::Conflict("an API key with this hash already exists".into()),
        other => other,
    })?;
    Ok(ApiKeyRecord {
        id: id.to_string(),
        user_id: user_id.to_string(),
        name: name.map(str::to_string),
        prefix: key.prefix.to_string(),
        key_hash: key.key_hash.to_string(),
        created_at: from_ms(now),
        last_used_at: None,
        revoked_at: None,
        expires_at: key.expires_at.map(|e| from_ms(e.timestamp_millis())),
        rotated_to: None,
    })
}

impl RefreshToken {
    /// Whether the token can still be used at `now` (not revoked, not expired).
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

impl Storage {
    /// Stores a new key for `user_id` that never expires (`NotFound` if there is no such user,
    /// `Conflict` if the hash exists).
    pub async fn insert_api_key(
        &self,
        user_id: &str,
        name: Option<&str>,
        prefix: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRecord> {
        self.insert_api_key_with(&NewApiKey { user_id, name, prefix, key_hash, expires_at: None }).await
    }

    /// Stores a new key, with its expiry (`NotFound` if there is no such user, `Conflict` if the hash
    /// exists). The expiry is not checked here: [`Authenticator`](crate::auth::Authenticator) refuses
    /// one in the past.
    pub async fn insert_api_key_with(&self, key: &NewApiKey<'_>) -> Result<ApiKeyRecord> {
        let mut conn = self.pool().acquire().await?;
        insert_key(&mut conn, key, &new_id(), now_ms()).await
    }

    /// Rotates key `old_id`: stores `new` and, in the same transaction, sets the old key's expiry to
    /// `old_expires_at` (never later than the expiry it already has) and its `rotated_to` to the new
    /// key's id. Returns the new key and the old one as updated.
    ///
    /// `NotFound` if there is no such key; `Conflict` (nothing stored) if it is revoked, expired at
    /// `now`, or was already rotated.
    pub async fn rotate_api_key(
        &self,
        old_id: &str,
        new: &NewApiKey<'_>,
        old_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(ApiKeyRecord, ApiKeyRecord)> {
        let new_key_id = new_id();
        let now_ms = now.timestamp_millis();
        let mut tx = self.pool().begin().await?;
        // The guarded update comes first: it takes the write lock at once (SQLite), and a concurrent
        // rotation or revocation of the same key makes it match nothing.
        let updated = sqlx::query(
            "UPDATE api_keys SET rotated_to = $1, \
               expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $2 THEN expires_at ELSE $2 END \
             WHERE id = $3 AND revoked_at IS NULL AND rotated_to IS NULL AND (expires_at IS NULL OR expires_at > $4)",
        )
        .bind(&new_key_id)
        .bind(old_expires_at.timestamp_millis())
        .bind(old_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            drop(tx);
            // Say why: no such key, revoked, rotated or expired.
            let old =
                self.get_api_key(old_id).await?.ok_or_else(|| CoreError::NotFound(format!("API key {old_id}")))?;
            check_rotatable(&old, now)?;
            return Err(CoreError::Conflict(format!("API key {old_id} was changed while rotating it; try again")));
        }
        let created = insert_key(&mut tx, new, &new_key_id, now_ms).await?;
        // The old key's cached validations (on every instance) no longer tell its expiry.
        super::credentials::bump_in(&mut tx).await?;
        tx.commit().await?;
        let old = self.get_api_key(old_id).await?.ok_or_else(|| CoreError::NotFound(format!("API key {old_id}")))?;
        Ok((created, old))
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

    /// Revokes a key (idempotent: the first revocation time is kept) and bumps the credentials
    /// version in the same transaction, so every running instance stops accepting the key within a
    /// poll ([`Storage::credentials_versions`]). `None` if there is no such key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() > 0 {
            super::credentials::bump_in(&mut tx).await?;
        }
        tx.commit().await?;
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
            .map_err(|e| match super::user_row_error(user_id)(e) {
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
