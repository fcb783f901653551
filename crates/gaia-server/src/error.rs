//! API errors: a status and a message, rendered as `{"detail": "..."}`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gaia_core::CoreError;
use gaia_providers::ProviderError;

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message (never contains secrets).
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 500 with a generic message; the cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(serde_json::json!({ "detail": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Unauthorized(m) => ApiError::unauthorized(m),
            CoreError::NotFound(m) => ApiError::not_found(m),
            CoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            CoreError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            CoreError::InvalidInput(m) => ApiError::bad_request(m),
            CoreError::Database(m) => {
                tracing::error!(error = %m, "database error");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; try again")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        if status.is_server_error() {
            tracing::warn!(error = %e, "provider error");
        }
        ApiError::new(status, e.to_string())
    }
}

impl From<gaia_chat::ChatError> for ApiError {
    fn from(e: gaia_chat::ChatError) -> Self {
        match e {
            gaia_chat::ChatError::Provider(p) => p.into(),
            gaia_chat::ChatError::Core(c) => c.into(),
            other => ApiError::new(
                StatusCode::from_u16(other.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                other.to_string(),
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // Axum answers 422 for well-formed JSON of the wrong shape; to clients both are bad requests.
        let status = match r.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        ApiError::new(status, r.body_text())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
