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
    /// The caller may not do this (for example change a built-in record).
    #[error("forbidden: {0}")]
    Forbidden(String),
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

impl CoreError {
    /// A short, stable name of the variant (`"not_found"`, `"conflict"`, …), for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CoreError::Database(_) => "database",
            CoreError::NotFound(_) => "not_found",
            CoreError::Conflict(_) => "conflict",
            CoreError::InvalidInput(_) => "invalid_input",
            CoreError::Unauthorized(_) => "unauthorized",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::Config(_) => "config",
            CoreError::Cache(_) => "cache",
            CoreError::Internal(_) => "internal",
        }
    }

    /// Whether the error is the caller's fault (bad input, missing record, conflict, bad credentials)
    /// rather than a failure of Gaia or its backends.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            CoreError::NotFound(_)
                | CoreError::Conflict(_)
                | CoreError::InvalidInput(_)
                | CoreError::Unauthorized(_)
                | CoreError::Forbidden(_)
        )
    }
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;

impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return CoreError::Conflict(db.message().to_string());
            }
            if db.is_foreign_key_violation() {
                return CoreError::NotFound(format!("a referenced record does not exist ({})", db.message()));
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
