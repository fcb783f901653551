//! HTTP plumbing shared by the clients: sending, status mapping, and SSE decoding.

use crate::error::ProviderError;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use std::time::Duration;

/// Builds the shared HTTP client. It follows no redirect: the provider's key travels in headers
/// (`Authorization`, and Anthropic's `x-api-key`, which an HTTP client does not strip on a redirect to
/// another host), so a redirect could carry it away from the origin the provider policy allowed; a
/// 3xx answer is a provider error instead ([`send`]).
pub(crate) fn client(settings: crate::lanes::ClientSettings) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout.min(settings.timeout))
        .read_timeout(settings.timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true);
    if settings.http2_prior_knowledge {
        b = b.http2_prior_knowledge();
    }
    b.build()
        .or_else(|_| reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build())
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
    if status.is_redirection() {
        return Err(ProviderError::Upstream {
            provider: provider.to_string(),
            status: status.as_u16(),
            message: format!(
                "the provider answered a redirect (HTTP {}); redirects are not followed, so that its key never \
                 leaves the configured origin: set the provider's base_url to where it redirects",
                status.as_u16()
            ),
        });
    }
    let body = resp.text().await.unwrap_or_default();
    Err(ProviderError::from_status(provider, status.as_u16(), retry_after, &body))
}

/// A health probe: `req` sent with a 10 s timeout, timed; any 2xx answer is healthy.
pub(crate) async fn probe(provider: &str, req: reqwest::RequestBuilder) -> crate::types::ProviderHealth {
    let start = std::time::Instant::now();
    let r = send(provider, req.timeout(Duration::from_secs(10))).await;
    crate::types::ProviderHealth {
        provider: provider.to_string(),
        ok: r.is_ok(),
        latency_ms: start.elapsed().as_millis() as u64,
        message: r.err().map(|e| e.to_string()),
    }
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

/// Where the requests of a provider configured with some `base_url` go, as the HTTP client itself
/// parses the URLs it builds from it (so that a check on the origin sees what the client will do).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host: a lowercase domain name (punycode), an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl Origin {
    /// The origin requests built on `base_url` go to; `None` when it is not an `http(s)` URL with a
    /// host.
    /// `None` too when the URL alone and the URLs built on it would not go to the same place.
    pub fn of(base_url: &str) -> Option<Origin> {
        let parse = |u: &str| -> Option<Origin> {
            let url = reqwest::Url::parse(u).ok()?;
            if !matches!(url.scheme(), "http" | "https") {
                return None;
            }
            Some(Origin {
                scheme: url.scheme().to_string(),
                host: url.host_str().filter(|h| !h.is_empty())?.to_string(),
                port: url.port_or_known_default()?,
            })
        };
        let origin = parse(base_url)?;
        (parse(&join(base_url, "models"))? == origin).then_some(origin)
    }
}

impl Origin {
    /// Whether the host is this machine's loopback (`localhost`, `127.0.0.0/8`, `[::1]`): requests
    /// there do not cross a network.
    pub fn is_loopback(&self) -> bool {
        gaia_core::net::is_loopback_host(&self.host)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `base` joined with `path`, without doubled slashes.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_where_the_client_sends_requests() {
        let o = |u: &str| Origin::of(u).map(|o| o.to_string());
        assert_eq!(o("https://api.openai.com/v1").as_deref(), Some("https://api.openai.com:443"));
        assert_eq!(o("http://127.0.0.1:9/v1").as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(o("http://API.Example.COM").as_deref(), Some("http://api.example.com:80"));
        assert_eq!(o("http://[::1]:8080/v1").as_deref(), Some("http://[::1]:8080"));
        let local = |u: &str| Origin::of(u).is_some_and(|o| o.is_loopback());
        assert!(
            local("http://127.0.0.1:9")
                && local("http://127.8.9.1")
                && local("http://[::1]:1")
                && local("http://localhost")
        );
        assert!(!local("http://10.0.0.7") && !local("http://localhost.evil.example") && !local("http://[::2]"));
        // Tricks that put another host behind an allowed-looking one go where the client goes.
        assert_eq!(o("http://good.example@evil.example/v1").as_deref(), Some("http://evil.example:80"));
        assert_eq!(o("http://evil.example\\@good.example/v1").as_deref(), Some("http://evil.example:80"));
        assert_eq!(o("http://evil.example?@good.example").as_deref(), Some("http://evil.example:80"));
        assert_eq!(o("http://evil.example#@good.example").as_deref(), Some("http://evil.example:80"));
        for bad in ["ftp://host/x", "not a url", "http://", "file:///etc/passwd"] {
            assert_eq!(o(bad), None, "{bad}");
        }
    }
}
