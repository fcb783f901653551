//! The credentials versions: counters bumped with every revocation, which every instance polls to know
//! when the validations it cached (in process or in Redis) may no longer hold.

use super::Storage;
use crate::error::Result;
use sqlx::Row;

/// The two credentials versions (see [`Storage::credentials_versions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CredentialsVersions {
    /// Grows with every API key revoked or rotated and every change of a user's administrator flag:
    /// cached API-key validations and JWT users made under an older one are stale.
    pub keys: i64,
    /// Grows with every sign-in session ended (logout, a refresh token reused): cached session checks
    /// made under an older one are stale.
    pub sessions: i64,
}

/// Bumps the keys version inside `tx` (the transaction that revokes a key).
pub(crate) async fn bump_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE credentials_state SET version = version + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}

/// Bumps the sessions version inside `tx` (the transaction that ends sign-in sessions).
pub(crate) async fn bump_sessions_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE credentials_state SET sessions_version = sessions_version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Storage {
    /// The credentials versions, read together.
    pub async fn credentials_versions(&self) -> Result<CredentialsVersions> {
        let row = sqlx::query("SELECT version, sessions_version FROM credentials_state WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => CredentialsVersions {
                keys: r.try_get::<i64, _>("version")?,
                sessions: r.try_get::<i64, _>("sessions_version")?,
            },
            None => CredentialsVersions::default(),
        })
    }

    /// Bumps the keys version on its own (after a change that makes cached validations stale, such as
    /// a user's administrator flag): every instance drops what it cached within a poll.
    pub async fn bump_credentials_version(&self) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
