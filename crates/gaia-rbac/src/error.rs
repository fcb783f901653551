//! Errors of the RBAC engine.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RbacError {
    /// Bad input (unknown action, role of the wrong scope, …).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// No such role, grant, team, workspace, member or share.
    #[error("not found: {0}")]
    NotFound(String),
    /// Already exists, or a built-in role that cannot change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] gaia_core::CoreError),
}

impl From<sqlx::Error> for RbacError {
    fn from(e: sqlx::Error) -> Self {
        RbacError::Storage(gaia_core::CoreError::from(e))
    }
}

/// Results of this crate.
pub type Result<T, E = RbacError> = std::result::Result<T, E>;
