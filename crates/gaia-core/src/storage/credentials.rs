//! The credentials version: a counter bumped with every revocation, which every instance polls to
//! know when the validations it cached (in process or in Redis) may no longer hold.

use super::Storage;
use crate::error::Result;
use sqlx::Row;

/// Bumps the version inside `tx` (the transaction that revokes).
pub(crate) async fn bump_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE credentials_state SET version = version + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}

impl Storage {
    /// The credentials version: it grows with every revocation of an API key, of a user's tokens, and
    /// with every change of a user's administrator flag made through [`Storage::bump_credentials_version`].
    pub async fn credentials_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT version FROM credentials_state WHERE id = 1").fetch_optional(self.pool()).await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("version")?,
            None => 0,
        })
    }

    /// Bumps the credentials version on its own (after a change that makes cached validations stale,
    /// such as a user's administrator flag): every instance drops what it cached within a poll.
    pub async fn bump_credentials_version(&self) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
