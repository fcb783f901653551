//! The errors of the world engine. A command's own failure (not here, not collectible) is not an
//! error: it is a [`crate::CommandResult`] with `success: false`.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// No such experience, world or player.
    #[error("not found: {0}")]
    NotFound(String),
    /// Bad input.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The caller may not do this (an admin command without the experience-admin permission).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
}

impl WorldError {
    pub(crate) fn db(e: impl std::fmt::Display) -> WorldError {
        WorldError::Database(e.to_string())
    }

    /// The HTTP status that stands for it.
    pub fn http_status(&self) -> u16 {
        match self {
            WorldError::NotFound(_) => 404,
            WorldError::Invalid(_) => 400,
            WorldError::Forbidden(_) => 403,
            WorldError::Database(_) => 503,
        }
    }
}

/// The world engine's result type.
pub type Result<T, E = WorldError> = std::result::Result<T, E>;
