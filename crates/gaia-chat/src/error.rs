//! The engine's errors: refused before the call, a provider's failure, or a core error (bad input, not
//! found, storage).

use gaia_core::CoreError;
use gaia_providers::ProviderError;

/// A request refused by admission: no model was called and nothing was stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The HTTP status that stands for it: 403 (no permission to use models), 429 (a rate limit),
    /// 402 (a hard budget).
    pub status: u16,
    /// What happened, for the caller.
    pub message: String,
    /// Headers to answer with (`x-ratelimit-*`, `retry-after`).
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into(), headers: Vec::new() }
    }
}

/// Why a turn or a model call did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// Admission refused it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The providers failed (after retries and fallbacks), or the model is unknown.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Bad input (`InvalidInput`), something missing (`NotFound`), or storage.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A tool source of a tool loop failed as a whole (an MCP server that broke the protocol).
    #[error(transparent)]
    Tools(gaia_mcp::McpError),
}

impl ChatError {
    /// Bad input.
    pub(crate) fn invalid(message: impl Into<String>) -> ChatError {
        ChatError::Core(CoreError::InvalidInput(message.into()))
    }

    /// Something asked for is missing.
    pub(crate) fn not_found(message: impl Into<String>) -> ChatError {
        ChatError::Core(CoreError::NotFound(message.into()))
    }

    /// The HTTP status that stands for the error.
    pub fn http_status(&self) -> u16 {
        match self {
            ChatError::Refused(r) => r.status,
            ChatError::Provider(e) => e.http_status(),
            ChatError::Core(CoreError::InvalidInput(_)) => 400,
            ChatError::Core(CoreError::Unauthorized(_)) => 401,
            ChatError::Core(CoreError::Forbidden(_)) => 403,
            ChatError::Core(CoreError::NotFound(_)) => 404,
            ChatError::Core(CoreError::Conflict(_)) => 409,
            ChatError::Core(CoreError::Database(_)) => 503,
            ChatError::Core(_) => 500,
            ChatError::Tools(_) => 502,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = ChatError> = std::result::Result<T, E>;
