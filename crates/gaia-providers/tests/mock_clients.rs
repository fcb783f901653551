//! Both real clients against the mock upstream over loopback HTTP.

use futures::StreamExt;
use gaia_core::types::{ChatMessage, FinishReason, ToolSpec, Usage};
use gaia_providers::mock::{Fault, MockConfig, MockHandle, MockUpstream};
use gaia_providers::{
    collect_stream, AnthropicConfig, AnthropicProvider, ChatEvent, ChatRequest, OpenAiConfig, OpenAiProvider, Provider,
    ProviderError, ProviderRegistry,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn mock(cfg: MockConfig) -> MockHandle {
    MockUpstream::start("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap()
}

fn clients(m: &MockHandle, key: Option<&str>) -> Vec<Arc<dyn Provider>> {
    let mut o = OpenAiConfig::new(m.openai_base_url(), key.map(str::to_string));
    o.timeout = Duration::from_secs(5);
    let mut a = AnthropicConfig::new(m.base_url(), key.map(str::to_string));
    a.timeout = Duration::from_secs(5);
    vec![Arc::new(OpenAiProvider::new(o)), Arc::new(AnthropicProvider::new(a))]
}

fn req(model: &str, text: &str) -> ChatRequest {
    ChatRequest::new(model, vec![ChatMessage::system("You are Mara."), ChatMessage::user(text)])
}

/// Bounded wait so a broken stream can never hang the test.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("no answer within 10 s")
}

#[tokio::test]
async fn text_non_streaming_and_streaming() {
    let m = mock(MockConfig { chunks: 3, ..Default::default() }).await;
    for p in clients(&m, None) {
        let r = within(p.chat(&req("mock-gpt", "Where is the safe house?"))).await.unwrap();
        assert_eq!(r.content, "Mock reply to: Where is the safe house?", "{}", p.name());
        assert_eq!(r.finish_reason, FinishReason::Stop);
        // system (3 words) + user (5 words); reply 8 words
        assert_eq!(r.usage, Usage::new(8, 8), "{}", p.name());

        let mut s = within(p.chat_stream(&req("mock-gpt", "Where is the safe house?"))).await.unwrap();
        let mut deltas = Vec::new();
        let mut usage = None;
        let mut finish = None;
        let mut started = false;
        while let Some(ev) = within(s.next()).await {
            match ev.unwrap() {
                ChatEvent::Start { model, .. } => {
                    assert_eq!(model, "mock-gpt");
                    started = true;
                }
                ChatEvent::TextDelta(t) => deltas.push(t),
                ChatEvent::Usage(u) => usage = Some(u),
                ChatEvent::Finish(f) => finish = Some(f),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(started);
        assert_eq!(deltas.len(), 3, "{}: {deltas:?}", p.name());
        assert_eq!(deltas.concat(), "Mock reply to: Where is the safe house?");
        assert_eq!(usage, Some(Usage::new(8, 8)), "{}", p.name());
        assert_eq!(finish, Some(FinishReason::Stop));
    }
    assert_eq!(m.requests(), 4);
}

#[tokio::test]
async fn tool_calls_both_formats() {
    let m = mock(MockConfig::default()).await;
    let tool = ToolSpec {
        name: "search_kb".into(),
        description: Some("Search the world".into()),
        parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}}).into(),
    };
    for p in clients(&m, None) {
        let mut r = req("mock-claude", "call tool search_kb fog rules");
        r.tools = vec![tool.clone()];
        let full = within(p.chat(&r)).await.unwrap();
        assert_eq!(full.finish_reason, FinishReason::ToolCalls, "{}", p.name());
        assert_eq!(full.tool_calls.len(), 1);
        assert_eq!(full.tool_calls[0].name, "search_kb");
        let args: serde_json::Value = serde_json::from_str(&full.tool_calls[0].arguments).unwrap();
        assert_eq!(args, json!({"query": "fog rules"}));

        let streamed = within(collect_stream(within(p.chat_stream(&r)).await.unwrap())).await.unwrap();
        assert_eq!(streamed.tool_calls.len(), 1, "{}", p.name());
        assert_eq!(streamed.tool_calls[0].name, "search_kb");
        assert!(!streamed.tool_calls[0].id.is_empty());
        assert_eq!(serde_json::from_str::<serde_json::Value>(&streamed.tool_calls[0].arguments).unwrap(), args);
        assert_eq!(streamed.finish_reason, FinishReason::ToolCalls);

        // Feed the result back: the mock answers from it.
        let mut follow = r.clone();
        follow.messages.push(ChatMessage { tool_calls: full.tool_calls.clone(), ..ChatMessage::assistant("") });
        follow.messages.push(ChatMessage::tool(full.tool_calls[0].id.clone(), "Fog: zombies 1.2x"));
        let answer = within(p.chat(&follow)).await.unwrap();
        assert_eq!(answer.content, "Tool result received: Fog: zombies 1.2x", "{}", p.name());
    }
}

#[tokio::test]
async fn vendor_errors_are_typed() {
    let m = mock(MockConfig::default()).await;
    for p in clients(&m, None) {
        for (model, check) in [
            (
                "mock-error-401",
                (|e: &ProviderError| matches!(e, ProviderError::Unauthorized { .. })) as fn(&ProviderError) -> bool,
            ),
            (
                "mock-error-429",
                |e| matches!(e, ProviderError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(1)),
            ),
            ("mock-error-500", |e| matches!(e, ProviderError::Upstream { status: 500, .. })),
            ("mock-error-503", |e| matches!(e, ProviderError::Upstream { status: 503, .. })),
        ] {
            let e = within(p.chat(&req(model, "hi"))).await.unwrap_err();
            assert!(check(&e), "{} {model}: {e:?}", p.name());
            let e = within(p.chat_stream(&req(model, "hi"))).await.err().expect("stream must fail");
            assert!(check(&e), "{} {model} stream: {e:?}", p.name());
        }
        assert!(within(p.chat(&req("mock-error-429", "hi"))).await.unwrap_err().is_retryable());
    }
}

#[tokio::test]
async fn broken_streams_end_with_an_error_not_a_hang() {
    let m = mock(MockConfig { chunks: 6, chunk_delay: Duration::from_millis(5), ..Default::default() }).await;
    for p in clients(&m, None) {
        for model in ["mock-disconnect", "mock-malformed"] {
            let mut s = within(p.chat_stream(&req(model, "tell me a long story please"))).await.unwrap();
            let mut text = String::new();
            let mut err = None;
            while let Some(ev) = within(s.next()).await {
                match ev {
                    Ok(ChatEvent::TextDelta(t)) => text.push_str(&t),
                    Ok(_) => {}
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let e = err.unwrap_or_else(|| panic!("{} {model}: stream ended without error", p.name()));
            assert!(matches!(e, ProviderError::Stream { .. }), "{} {model}: {e:?}", p.name());
            assert!(!text.is_empty(), "{} {model}: some content arrived before the fault", p.name());
            // Non-streaming with the same faults fails cleanly too.
            let e = within(p.chat(&req(model, "x"))).await.unwrap_err();
            assert!(matches!(e, ProviderError::Stream { .. }), "{} {model} non-stream: {e:?}", p.name());
        }
    }
}

#[tokio::test]
async fn slow_upstream_times_out() {
    let m = mock(MockConfig::default()).await;
    let mut o = OpenAiConfig::new(m.openai_base_url(), None);
    o.timeout = Duration::from_millis(300);
    let p = OpenAiProvider::new(o);
    let e = within(p.chat(&req("mock-slow", "hi"))).await.unwrap_err();
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e:?}");
    assert_eq!(e.http_status(), 504);
}

#[tokio::test]
async fn keys_are_checked() {
    let m = mock(MockConfig { require_key: Some("sk-right".into()), ..Default::default() }).await;
    for p in clients(&m, Some("sk-wrong")) {
        let e = within(p.chat(&req("mock-gpt", "hi"))).await.unwrap_err();
        assert!(matches!(e, ProviderError::Unauthorized { .. }), "{}: {e:?}", p.name());
        assert!(!within(p.health()).await.ok);
    }
    for p in clients(&m, Some("sk-right")) {
        assert!(within(p.chat(&req("mock-gpt", "hi"))).await.is_ok(), "{}", p.name());
        let h = within(p.health()).await;
        assert!(h.ok, "{}: {:?}", p.name(), h.message);
        let models = within(p.list_models()).await.unwrap();
        assert_eq!(models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["mock-gpt", "mock-claude"]);
    }
}

#[tokio::test]
async fn global_fault_applies_to_every_model() {
    let m = mock(MockConfig { fault: Some(Fault::Status(503)), ..Default::default() }).await;
    for p in clients(&m, None) {
        let e = within(p.chat(&req("mock-gpt", "hi"))).await.unwrap_err();
        assert!(matches!(e, ProviderError::Upstream { status: 503, .. }), "{e:?}");
    }
}

#[tokio::test]
async fn unreachable_provider_is_a_connect_error() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = OpenAiProvider::new(OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"), None));
    let e = within(p.chat(&req("m", "hi"))).await.unwrap_err();
    assert!(matches!(e, ProviderError::Connect { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn registry_resolves_models() {
    let empty = ProviderRegistry::new();
    let e = empty.resolve("gpt-4o").await.err().unwrap();
    assert!(matches!(e, ProviderError::NotConfigured(ref m) if m.contains("OPENAI_API_KEY")));
    assert_eq!(e.http_status(), 503);

    let m = mock(MockConfig::default()).await;
    let reg = ProviderRegistry::new();
    let mut o = OpenAiConfig::new(m.openai_base_url(), None);
    o.models = vec!["gpt-mock".into()];
    reg.register(Arc::new(OpenAiProvider::new(o)));
    reg.register(Arc::new(AnthropicProvider::new(AnthropicConfig::new(m.base_url(), None))));

    let (p, id) = reg.resolve("gpt-mock").await.unwrap();
    assert_eq!((p.name(), id.as_str()), ("openai", "gpt-mock"));
    let (p, id) = reg.resolve("mock-claude").await.unwrap();
    assert_eq!((p.name(), id.as_str()), ("anthropic", "mock-claude"), "discovered from /v1/models");
    let (p, id) = reg.resolve("anthropic/anything-at-all").await.unwrap();
    assert_eq!((p.name(), id.as_str()), ("anthropic", "anything-at-all"));
    assert!(matches!(reg.resolve("nope").await, Err(ProviderError::UnknownModel(_))));
    let (p, id) = reg.resolve("").await.unwrap();
    assert_eq!((p.name(), id.as_str()), ("openai", "gpt-mock"), "first listed model by default");
    reg.set_default_model(Some("mock-claude".into()));
    assert_eq!(reg.resolve("").await.unwrap().1, "mock-claude");

    let models = reg.list_models().await;
    assert_eq!(models.len(), 3);
    let health = reg.health().await;
    assert!(health.iter().all(|h| h.ok), "{health:?}");
    assert!(reg.remove("anthropic"));
    assert!(reg.get("anthropic").is_none());
}
