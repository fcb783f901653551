//! The error type of `gaia-core`.

/// Errors from configuration, storage, cache and authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(String),
    /// A record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique constraint was violated (for example an email already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller supplied something invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Credentials are missing, invalid, expired or revoked.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The configuration is invalid; the message names the key.
    #[error("configuration error: {0}")]
    Config(String),
    /// The cache backend failed.
    #[error("cache error: {0}")]
    Cache(String),
    /// Anything else that is not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;

impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return CoreError::Conflict(db.message().to_string());
            }
        }
        match e {
            sqlx::Error::RowNotFound => CoreError::NotFound("row not found".into()),
            other => CoreError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for CoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        CoreError::Database(format!("migration failed: {e}"))
    }
}

impl From<redis::RedisError> for CoreError {
    fn from(e: redis::RedisError) -> Self {
        CoreError::Cache(e.to_string())
    }
}
