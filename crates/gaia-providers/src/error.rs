//! Provider errors, typed so callers can retry, fail over or report them precisely.

use std::time::Duration;

/// What went wrong talking to an LLM provider.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider refused our credentials (HTTP 401/403).
    #[error("{provider}: authentication failed: {message}")]
    Unauthorized {
        /// Provider name.
        provider: String,
        /// The provider's message.
        message: String,
    },
    /// The provider rate-limited us (HTTP 429).
    #[error("{provider}: rate limited: {message}")]
    RateLimited {
        /// Provider name.
        provider: String,
        /// The provider's message.
        message: String,
        /// The provider's `retry-after`, when given.
        retry_after: Option<Duration>,
    },
    /// Any other HTTP error from the provider.
    #[error("{provider}: upstream error {status}: {message}")]
    Upstream {
        /// Provider name.
        provider: String,
        /// HTTP status the provider answered.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider did not answer in time.
    #[error("{provider}: timed out")]
    Timeout {
        /// Provider name.
        provider: String,
    },
    /// The provider could not be reached.
    #[error("{provider}: cannot connect: {message}")]
    Connect {
        /// Provider name.
        provider: String,
        /// Details.
        message: String,
    },
    /// The answer stream broke or carried malformed data.
    #[error("{provider}: stream error: {message}")]
    Stream {
        /// Provider name.
        provider: String,
        /// Details.
        message: String,
    },
    /// The provider's circuit breaker is open after repeated failures.
    #[error("{provider}: temporarily unavailable after repeated failures (circuit open)")]
    CircuitOpen {
        /// Provider name.
        provider: String,
    },
    /// No configured provider offers this model.
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    /// No provider is configured; the message says how to configure one.
    #[error("{0}")]
    NotConfigured(String),
    /// The request itself is invalid.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request or the answer was refused by a guardrail (the message says which).
    #[error("{0}")]
    ContentRefused(String),
}

impl ProviderError {
    /// Whether retrying the same request (before any output reached the client) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Connect { .. }
            | ProviderError::Stream { .. } => true,
            ProviderError::Upstream { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// The HTTP status Gaia should answer its own client with.
    pub fn http_status(&self) -> u16 {
        match self {
            ProviderError::Unauthorized { .. } => 502,
            ProviderError::RateLimited { .. } => 429,
            ProviderError::Upstream { status, .. } if (400..500).contains(status) => 400,
            ProviderError::Upstream { .. } => 502,
            ProviderError::Timeout { .. } => 504,
            ProviderError::Connect { .. } => 502,
            ProviderError::Stream { .. } => 502,
            ProviderError::CircuitOpen { .. } => 503,
            ProviderError::UnknownModel(_) => 404,
            ProviderError::NotConfigured(_) => 503,
            ProviderError::InvalidRequest(_) | ProviderError::ContentRefused(_) => 400,
        }
    }

    /// Maps a reqwest failure for `provider`.
    pub(crate) fn from_reqwest(provider: &str, e: reqwest::Error) -> Self {
        let provider = provider.to_string();
        if e.is_timeout() {
            ProviderError::Timeout { provider }
        } else if e.is_connect() {
            ProviderError::Connect { provider, message: root_cause(&e) }
        } else {
            ProviderError::Stream { provider, message: root_cause(&e) }
        }
    }

    /// Maps an HTTP error status and body for `provider`.
    pub(crate) fn from_status(provider: &str, status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let message = error_message(body).unwrap_or_else(|| format!("HTTP {status}"));
        let provider = provider.to_string();
        match status {
            401 | 403 => ProviderError::Unauthorized { provider, message },
            429 => ProviderError::RateLimited { provider, message, retry_after },
            408 | 504 => ProviderError::Timeout { provider },
            _ => ProviderError::Upstream { provider, status, message },
        }
    }
}

/// The message of an OpenAI (`{"error":{"message"}}`) or Anthropic (`{"type":"error","error":{"message"}}`)
/// error body, or a short plain-text body.
pub(crate) fn error_message(body: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let e = v.get("error").unwrap_or(&v);
        if let Some(m) = e.get("message").and_then(|m| m.as_str()) {
            return Some(m.to_string());
        }
        if let Some(m) = e.as_str() {
            return Some(m.to_string());
        }
    }
    let t = body.trim();
    (!t.is_empty()).then(|| t.chars().take(300).collect())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses() {
        let e = ProviderError::from_status("openai", 401, None, r#"{"error":{"message":"Incorrect API key"}}"#);
        assert!(matches!(e, ProviderError::Unauthorized { ref message, .. } if message == "Incorrect API key"));
        let e = ProviderError::from_status(
            "anthropic",
            429,
            Some(Duration::from_secs(2)),
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert!(e.is_retryable());
        assert_eq!(e.http_status(), 429);
        let e = ProviderError::from_status("x", 503, None, "overloaded");
        assert!(matches!(e, ProviderError::Upstream { status: 503, ref message, .. } if message == "overloaded"));
        assert_eq!(e.http_status(), 502);
        assert!(!ProviderError::UnknownModel("m".into()).is_retryable());
        assert_eq!(ProviderError::NotConfigured("x".into()).http_status(), 503);
    }
}
