//! What can go wrong with an asset, with the HTTP status each maps to.

use gaia_chat::Refusal;
use gaia_core::error::CoreError;
use gaia_providers::ProviderError;

/// An asset operation's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssetError {
    /// The request is invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// No such asset, or not the caller's (404).
    #[error("{0}")]
    NotFound(String),
    /// The upload or answer is too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// The file is not of a type accepted (415).
    #[error("{0}")]
    Unsupported(String),
    /// The asset is not in a state that allows this (409): a job already final, a file not ready.
    #[error("{0}")]
    Conflict(String),
    /// Refused by admission: permission (403), rate limit (429) or budget (402).
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The asset store failed (503).
    #[error("asset store: {0}")]
    Store(String),
    /// The database failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<Refusal> for AssetError {
    fn from(r: Refusal) -> Self {
        AssetError::Refused(r)
    }
}

impl AssetError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AssetError::Invalid(_) => 400,
            AssetError::NotFound(_) => 404,
            AssetError::TooLarge(_) => 413,
            AssetError::Unsupported(_) => 415,
            AssetError::Conflict(_) => 409,
            AssetError::Refused(r) => r.status,
            AssetError::Provider(e) => e.http_status(),
            AssetError::Store(_) => 503,
            AssetError::Core(CoreError::InvalidInput(_)) => 400,
            AssetError::Core(CoreError::NotFound(_)) => 404,
            AssetError::Core(_) => 500,
        }
    }
}

/// Results of asset operations.
pub type Result<T, E = AssetError> = std::result::Result<T, E>;
