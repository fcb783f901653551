//! Errors of the knowledge base.

use crate::path::PathError;

/// What went wrong in a knowledge-base operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KbError {
    /// A path was refused (escapes the vault, absolute, empty…).
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    /// Bad input other than a path (an empty query, an invalid regex, a too-large document…).
    #[error("{0}")]
    InvalidInput(String),
    /// No such document or folder.
    #[error("not found: {0}")]
    NotFound(String),
    /// A document already exists, or changed since the version the caller read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The operation needs something that is not configured (a remote, a database…).
    #[error("not available: {0}")]
    Unavailable(String),
    /// An operation ran out of time and was stopped (an exact or regex search over too much text).
    #[error("timeout: {0}")]
    Timeout(String),
    /// Too many operations of this kind are running (exact and regex searches: see
    /// `kb.max_concurrent_scans`); try again in a moment ([`KbError::retry_after`]).
    #[error("busy: {0}")]
    Busy(String),
    /// A git operation failed.
    #[error("git: {0}")]
    Git(String),
    /// The search index failed.
    #[error("index: {0}")]
    Index(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// A file-system operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl KbError {
    /// Whether the caller is at fault (bad path or input, missing document, version conflict).
    pub fn is_client_error(&self) -> bool {
        matches!(self, KbError::Path(_) | KbError::InvalidInput(_) | KbError::NotFound(_) | KbError::Conflict(_))
    }

    /// The HTTP status that reports this error.
    pub fn http_status(&self) -> u16 {
        match self {
            KbError::Path(_) | KbError::InvalidInput(_) => 400,
            KbError::NotFound(_) => 404,
            KbError::Conflict(_) => 409,
            KbError::Unavailable(_) | KbError::Timeout(_) | KbError::Busy(_) => 503,
            KbError::Git(_) => 502,
            KbError::Index(_) | KbError::Database(_) | KbError::Io(_) => 500,
        }
    }

    /// How long to wait before trying again, for errors that pass by themselves (`Busy`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        matches!(self, KbError::Busy(_)).then_some(std::time::Duration::from_secs(1))
    }

    /// A short machine-readable kind (`invalid_path`, `not_found`, `conflict`…).
    pub fn kind(&self) -> &'static str {
        match self {
            KbError::Path(_) => "invalid_path",
            KbError::InvalidInput(_) => "invalid_input",
            KbError::NotFound(_) => "not_found",
            KbError::Conflict(_) => "conflict",
            KbError::Unavailable(_) => "unavailable",
            KbError::Timeout(_) => "timeout",
            KbError::Busy(_) => "busy",
            KbError::Git(_) => "git_error",
            KbError::Index(_) => "index_error",
            KbError::Database(_) => "database_error",
            KbError::Io(_) => "io_error",
        }
    }
}

impl From<tantivy::TantivyError> for KbError {
    fn from(e: tantivy::TantivyError) -> Self {
        KbError::Index(e.to_string())
    }
}

impl From<sqlx::Error> for KbError {
    fn from(e: sqlx::Error) -> Self {
        KbError::Database(e.to_string())
    }
}

impl From<gix::Error> for KbError {
    fn from(e: gix::Error) -> Self {
        KbError::Git(e.to_string())
    }
}

/// Result of knowledge-base operations.
pub type Result<T, E = KbError> = std::result::Result<T, E>;
