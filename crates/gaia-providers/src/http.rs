//! HTTP plumbing shared by the clients: sending, status mapping, and SSE decoding.

use crate::error::ProviderError;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use std::time::Duration;

/// Builds the shared HTTP client.
pub(crate) fn client(connect_timeout: Duration, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout.min(timeout))
        .read_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap_or_default()
}

/// Sends a request; a non-2xx answer becomes the matching [`ProviderError`].
pub(crate) async fn send(provider: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    let resp = req.send().await.map_err(|e| ProviderError::from_reqwest(provider, e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let body = resp.text().await.unwrap_or_default();
    Err(ProviderError::from_status(provider, status.as_u16(), retry_after, &body))
}

/// Reads a JSON body.
pub(crate) async fn json(provider: &str, resp: reqwest::Response) -> Result<serde_json::Value, ProviderError> {
    let bytes = resp.bytes().await.map_err(|e| ProviderError::from_reqwest(provider, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::Stream {
        provider: provider.to_string(),
        message: format!("invalid JSON from provider: {e}"),
    })
}

/// One server-sent event: its `event:` name (empty when absent) and `data:`.
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Decodes a response body as server-sent events.
pub(crate) fn sse(
    provider: &str,
    resp: reqwest::Response,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static {
    let provider = provider.to_string();
    resp.bytes_stream().eventsource().map(move |r| match r {
        Ok(ev) => Ok(SseEvent { event: ev.event, data: ev.data }),
        Err(eventsource_stream::EventStreamError::Transport(e)) => Err(ProviderError::from_reqwest(&provider, e)),
        Err(e) => Err(ProviderError::Stream { provider: provider.clone(), message: e.to_string() }),
    })
}

/// `base` joined with `path`, without doubled slashes.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}
