//! Users.

use super::{clean_text, from_ms, new_id, now_ms, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id (UUID text, or the `sub` of an external JWT).
    pub id: String,
    /// Email, lowercased.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: Option<String>,
    /// argon2 hash; `None` for users without a local password.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Administrator flag.
    pub is_admin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Longest accepted display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;

const COLS: &str = "id, email, display_name, password_hash, is_admin, created_at";

/// An `auth_invites` row.
pub(super) fn row_to_invite(r: &AnyRow) -> Result<Invite> {
    Ok(Invite {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        created_at: from_ms(r.try_get("created_at")?),
        expires_at: from_ms(r.try_get("expires_at")?),
        created_by: r.try_get("created_by")?,
        used_at: r.try_get::<Option<i64>, _>("used_at")?.map(from_ms),
    })
}

fn row_to_user(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        is_admin: r.try_get::<i64, _>("is_admin")? != 0,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

/// Trims and lowercases an email, checking it has the shape `local@domain`.
fn normalise_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    if e.len() > 320 {
        return Err(CoreError::InvalidInput("email address is longer than 320 characters".into()));
    }
    let well_formed = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !well_formed {
        return Err(CoreError::InvalidInput(format!("`{e}` is not a valid email address")));
    }
    Ok(e)
}

/// An invitation to register (`auth.registration = "invite"`); its token is shown once, only its
/// hash is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    /// Id.
    pub id: String,
    /// The only email address that may use it, when set.
    pub email: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// The administrator who made it, when known.
    #[serde(default)]
    pub created_by: Option<String>,
    /// When it was used (it works once), if it was.
    #[serde(default)]
    pub used_at: Option<DateTime<Utc>>,
}

/// Inserts a user (the email already normalised) with a new UUID, on `exec` (the pool or a
/// transaction).
async fn insert_user<'e, E>(
    exec: E,
    email: &str,
    password_hash: Option<&str>,
    display_name: Option<&str>,
) -> Result<User>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if display_name.is_some_and(|n| n.chars().count() > MAX_DISPLAY_NAME) {
        return Err(CoreError::InvalidInput(format!("display name must be at most {MAX_DISPLAY_NAME} characters")));
    }
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, is_admin, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(&id)
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(now)
    .execute(exec)
    .await
    .map_err(|e| match CoreError::from(e) {
        CoreError::Conflict(_) => CoreError::Conflict(format!("a user with email {email} already exists")),
        other => other,
    })?;
    Ok(User {
        id,
        email: email.to_string(),
        display_name: display_name.map(str::to_string),
        password_hash: password_hash.map(str::to_string),
        is_admin: false,
        created_at: from_ms(now),
    })
}

impl Storage {
    /// Creates a user with a new UUID; the email is trimmed and lowercased. `Conflict` when the email is
    /// taken, `InvalidInput` when it is not an email address or the display name is too long.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<User> {
        self.add_user(None, email, password_hash, display_name).await
    }

    /// Creates a user (as [`Storage::create_user`]) with a registration invitation: the invitation
    /// with this token hash is used up in the same transaction, so it admits exactly one account.
    /// `Forbidden` when it is unknown, expired, already used, or for another email address.
    pub async fn create_user_with_invite(
        &self,
        invite_hash: &str,
        email: &str,
        password_hash: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<User> {
        self.add_user(Some(invite_hash), email, password_hash, display_name).await
    }

    /// [`Storage::create_user`], with the invitation of `invite_hash` used up in the same transaction
    /// when given ([`Storage::create_user_with_invite`]).
    async fn add_user(
        &self,
        invite_hash: Option<&str>,
        email: &str,
        password_hash: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<User> {
        let email = normalise_email(email)?;
        let display_name = display_name.map(clean_text);
        let Some(invite_hash) = invite_hash else {
            return insert_user(self.pool(), &email, password_hash, display_name.as_deref()).await;
        };
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let used = sqlx::query(
            "UPDATE auth_invites SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             AND (email IS NULL OR email = $3)",
        )
        .bind(now)
        .bind(invite_hash)
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() == 0 {
            return Err(CoreError::Forbidden(
                "the invitation is unknown, expired, already used, or for another email address".into(),
            ));
        }
        let user = insert_user(&mut *tx, &email, password_hash, display_name.as_deref()).await?;
        sqlx::query("UPDATE auth_invites SET used_by = $1 WHERE token_hash = $2")
            .bind(&user.id)
            .bind(invite_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Whether the invitation with this token hash can still admit `email` (exists, unused, unexpired,
    /// for this address or any). A cheap check before hashing a password; the use itself is
    /// [`Storage::create_user_with_invite`].
    pub async fn invite_is_usable(&self, invite_hash: &str, email: &str) -> Result<bool> {
        let email = email.trim().to_lowercase();
        let row = sqlx::query(
            "SELECT 1 AS ok FROM auth_invites WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND (email IS NULL OR email = $3)",
        )
        .bind(invite_hash)
        .bind(now_ms())
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Whether the invitation with this token hash was made for `email` itself (an administrator named
    /// the address, so an account registered with it has proven it), used or not.
    pub async fn invite_names_email(&self, invite_hash: &str, email: &str) -> Result<bool> {
        let email = email.trim().to_lowercase();
        let row = sqlx::query("SELECT 1 AS ok FROM auth_invites WHERE token_hash = $1 AND email = $2")
            .bind(invite_hash)
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Stores an invitation to register under the hash of its token, valid until `expires_at`, for
    /// `email` only when given. Returns the invitation.
    pub async fn create_invite(
        &self,
        token_hash: &str,
        email: Option<&str>,
        created_by: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> Result<Invite> {
        let email = email.map(normalise_email).transpose()?;
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO auth_invites (id, token_hash, email, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(token_hash)
        .bind(email.as_deref())
        .bind(created_by)
        .bind(now)
        .bind(expires_at.timestamp_millis())
        .execute(self.pool())
        .await?;
        Ok(Invite {
            id,
            email,
            created_at: from_ms(now),
            expires_at: from_ms(expires_at.timestamp_millis()),
            created_by: created_by.map(str::to_string),
            used_at: None,
        })
    }

    /// The newest invitations, at most `limit` (never their tokens: only hashes are stored).
    pub async fn list_invites(&self, limit: u32) -> Result<Vec<Invite>> {
        let rows = sqlx::query(
            "SELECT id, email, created_by, created_at, expires_at, used_at FROM auth_invites \
             ORDER BY created_at DESC, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_invite).collect()
    }

    /// Deletes invitation `id`, so its token no longer registers anyone; `false` if there was none.
    pub async fn delete_invite(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM auth_invites WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Makes `user_id` an administrator if it is the oldest account and there is no administrator
    /// yet (the "first registered user is admin" rule); returns whether it did.
    pub async fn promote_first_admin(&self, user_id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET is_admin = 1 WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE is_admin <> 0) \
             AND id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1)",
        )
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The user with this id, if any.
    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(row_to_user).transpose()
    }

    /// The user with this email (case-insensitive), if any.
    pub async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM users WHERE email = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(row_to_user).transpose()
    }

    /// The user with this id, created if missing. Used for external (Supabase-style) JWTs whose
    /// subject is not a local user yet.
    ///
    /// The new user gets `email` when it is valid and free; otherwise (no email, or it belongs to another
    /// account) a placeholder `<id>@external.invalid`, so that a valid token always maps to its own user.
    pub async fn ensure_user(&self, id: &str, email: Option<&str>) -> Result<User> {
        if let Some(u) = self.get_user(id).await? {
            return Ok(u);
        }
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(CoreError::InvalidInput("user id must be 1 to 255 printable characters".into()));
        }
        let placeholder = format!("{id}@external.invalid").to_lowercase();
        let mut candidates = Vec::with_capacity(2);
        if let Some(Ok(e)) = email.map(normalise_email) {
            candidates.push(e);
        }
        candidates.push(placeholder);
        for candidate in &candidates {
            let inserted = sqlx::query(
                "INSERT INTO users (id, email, display_name, password_hash, is_admin, created_at) \
                 VALUES ($1, $2, NULL, NULL, 0, $3)",
            )
            .bind(id)
            .bind(candidate)
            .bind(now_ms())
            .execute(self.pool())
            .await;
            match inserted.map_err(CoreError::from) {
                Ok(_) => break,
                // Either another request created this user meanwhile, or the email is taken.
                Err(CoreError::Conflict(_)) => {
                    if let Some(u) = self.get_user(id).await? {
                        return Ok(u);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.get_user(id)
            .await?
            .ok_or_else(|| CoreError::Conflict(format!("cannot create user {id}: its email addresses are taken")))
    }

    /// Users by creation time, oldest first: `limit` of them (at most 1,000) from `offset`, only those
    /// whose email contains `email_like` when it is given (case-insensitive, at most 200 characters).
    pub async fn list_users(&self, email_like: Option<&str>, limit: i64, offset: i64) -> Result<Vec<User>> {
        let limit = limit.clamp(1, 1_000);
        let offset = offset.max(0);
        let rows = match email_like.map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) => {
                // The user's text is matched literally (LIKE's wildcards escaped).
                let q: String = q.chars().take(200).collect();
                let pattern = super::conversations::like_pattern(&q);
                let sql = format!(
                    "SELECT {COLS} FROM users WHERE email LIKE $1 ESCAPE '\\' ORDER BY created_at, id LIMIT $2 OFFSET $3"
                );
                sqlx::query(&sql).bind(pattern).bind(limit).bind(offset).fetch_all(self.pool()).await?
            }
            None => {
                let sql = format!("SELECT {COLS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2");
                sqlx::query(&sql).bind(limit).bind(offset).fetch_all(self.pool()).await?
            }
        };
        rows.iter().map(row_to_user).collect()
    }

    /// Number of users.
    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(self.pool()).await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// Sets or clears the administrator flag.
    pub async fn set_admin(&self, id: &str, admin: bool) -> Result<()> {
        let r = sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(i64::from(admin))
            .bind(id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("user {id}")));
        }
        Ok(())
    }
}
