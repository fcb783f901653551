//! Issue 17: a provider's host that answers with a redirect to another host does not get the key
//! carried there. The clients follow no redirect (Anthropic's `x-api-key` is a custom header an HTTP
//! client would not strip on a cross-host redirect); a 3xx is a clear provider error.

use gaia_core::types::ChatMessage;
use gaia_providers::{
    AnthropicConfig, AnthropicProvider, ChatRequest, OpenAiConfig, OpenAiProvider, Provider, ProviderError,
};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "sk-redirect-secret-7731";

use gaia_core::testing::RecordingListener as Listener;

fn clients(base: &str) -> Vec<Arc<dyn Provider>> {
    let mut o = OpenAiConfig::new(format!("{base}/v1"), Some(KEY.into()));
    o.timeout = Duration::from_secs(5);
    let mut a = AnthropicConfig::new(base.to_string(), Some(KEY.into()));
    a.timeout = Duration::from_secs(5);
    vec![Arc::new(OpenAiProvider::new(o)), Arc::new(AnthropicProvider::new(a))]
}

#[tokio::test]
async fn a_redirect_to_another_host_never_carries_the_key() {
    let body = r#"{"object":"list","data":[]}"#;
    let other = Listener::start(move |_| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await;
    for status in ["307 Temporary Redirect", "308 Permanent Redirect", "302 Found"] {
        let target = other.url.clone();
        let allowed = Listener::start(move |path| {
            format!("HTTP/1.1 {status}\r\nlocation: {target}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        })
        .await;
        for p in clients(&allowed.url) {
            let req = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
            for result in [
                p.list_models().await.map(|_| ()),
                p.chat(&req).await.map(|_| ()),
                p.chat_stream(&req).await.map(|_| ()),
            ] {
                match result {
                    Err(ProviderError::Upstream { status: code, ref message, .. }) => {
                        assert!((300..400).contains(&code), "{}: {status}", p.name());
                        assert!(message.contains("redirect"), "{}: {message}", p.name());
                    }
                    other => panic!("{}: {status}: a redirect must be an error, got {other:?}", p.name()),
                }
            }
            assert!(!p.health().await.ok, "{}: a redirect is not healthy", p.name());
        }
        // The allowed host did get the key (it is the configured one); the other host got nothing.
        assert!(allowed.requests().iter().any(|r| r.contains(KEY)));
    }
    assert!(other.requests().is_empty(), "the other host received: {:?}", other.requests());
}
