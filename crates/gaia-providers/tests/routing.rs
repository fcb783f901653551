//! Fallbacks, retries, first-token timeouts, the circuit breaker and health statistics, against the
//! mock upstream.

use futures::StreamExt;
use gaia_core::types::ChatMessage;
use gaia_providers::health::{BreakerConfig, CircuitState};
use gaia_providers::mock::{MockConfig, MockHandle, MockUpstream};
use gaia_providers::{
    collect_stream, AnthropicConfig, AnthropicProvider, ChatRequest, OpenAiConfig, OpenAiProvider, ProviderError,
    ProviderRegistry, RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (MockHandle, ProviderRegistry) {
    let m = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let reg = ProviderRegistry::new();
    reg.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(m.openai_base_url(), None))));
    reg.register(Arc::new(AnthropicProvider::new(AnthropicConfig::new(m.base_url(), None))));
    reg.set_retry_policy(RetryPolicy {
        max_retries: 2,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        first_token_timeout: Duration::from_millis(500),
    });
    (m, reg)
}

fn req() -> ChatRequest {
    ChatRequest::new("", vec![ChatMessage::user("Is it foggy?")])
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f).await.expect("no answer within 15 s")
}

#[tokio::test]
async fn fallback_chain_after_retries() {
    let (m, reg) = setup().await;
    let c = reg.candidates("openai/mock-error-503, anthropic/mock-claude").await.unwrap();
    assert_eq!(c.len(), 2);
    let r = within(reg.chat_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    assert_eq!(r.provider.name(), "anthropic");
    assert_eq!(r.value.content, "Mock reply to: Is it foggy?");
    assert_eq!(r.attempts, 4, "three tries on the failing provider, then the fallback");
    assert_eq!(m.requests(), 4);
    let s = reg.stats("openai").snapshot();
    assert_eq!((s.total_requests, s.total_errors), (3, 3));
}

#[tokio::test]
async fn retries_until_success() {
    let (_m, reg) = setup().await;
    let c = reg.candidates("openai/mock-flaky-2").await.unwrap();
    let r = within(reg.chat_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    assert_eq!(r.attempts, 3);
    assert_eq!(r.provider.name(), "openai");
    // Streams retry the same way before their first event.
    let c = reg.candidates("anthropic/mock-flaky-1").await.unwrap();
    let r = within(reg.stream_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    assert_eq!(r.attempts, 2);
    let full = within(collect_stream(r.value)).await.unwrap();
    assert_eq!(full.content, "Mock reply to: Is it foggy?");
}

#[tokio::test]
async fn client_errors_are_not_retried_or_failed_over() {
    let (m, reg) = setup().await;
    let c = reg.candidates("openai/mock-error-400,anthropic/mock-claude").await.unwrap();
    let f = within(reg.chat_routed(&c, &req())).await.err().unwrap();
    assert!(matches!(f.error, ProviderError::Upstream { status: 400, .. }), "{:?}", f.error);
    assert_eq!(f.attempts, 1);
    assert_eq!(m.requests(), 1);
    assert_eq!(reg.stats("openai").snapshot().total_errors, 0, "a client error says nothing about the provider");
}

#[tokio::test]
async fn streams_fall_back_before_the_first_token_and_time_out() {
    let (_m, reg) = setup().await;
    let c = reg.candidates("openai/mock-error-500,anthropic/mock-claude").await.unwrap();
    let r = within(reg.stream_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    assert_eq!(r.provider.name(), "anthropic");
    assert_eq!(within(collect_stream(r.value)).await.unwrap().content, "Mock reply to: Is it foggy?");
    // A provider that does not produce a first event in time is abandoned for the next.
    let c = reg.candidates("openai/mock-slow,anthropic/mock-claude").await.unwrap();
    let mut one_try = reg.retry_policy();
    one_try.max_retries = 0;
    reg.set_retry_policy(one_try);
    let r = within(reg.stream_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    assert_eq!(r.provider.name(), "anthropic");
    assert_eq!(reg.stats("openai").snapshot().last_error.as_deref(), Some("openai: timed out"));
    // A break after the first event is not retried: the error reaches the caller.
    let c = reg.candidates("openai/mock-disconnect,anthropic/mock-claude").await.unwrap();
    let r = within(reg.stream_routed(&c, &ChatRequest::new("", vec![ChatMessage::user("a long story please")])))
        .await
        .map_err(|f| f.error)
        .unwrap();
    assert_eq!(r.provider.name(), "openai");
    let mut s = r.value;
    let mut saw_error = false;
    while let Some(ev) = within(s.next()).await {
        if ev.is_err() {
            saw_error = true;
        }
    }
    assert!(saw_error);
}

#[tokio::test]
async fn circuit_breaker_opens_and_recovers() {
    let (m, reg) = setup().await;
    reg.set_breaker(BreakerConfig { failure_threshold: 2, cooldown: Duration::from_millis(300) });
    let mut p = reg.retry_policy();
    p.max_retries = 0;
    reg.set_retry_policy(p);
    let bad = reg.candidates("openai/mock-error-500").await.unwrap();
    for _ in 0..2 {
        within(reg.chat_routed(&bad, &req())).await.err().unwrap();
    }
    assert_eq!(reg.stats("openai").circuit(), CircuitState::Open);
    let before = m.requests();
    let good = reg.candidates("openai/mock-gpt").await.unwrap();
    let f = within(reg.chat_routed(&good, &req())).await.err().unwrap();
    assert!(matches!(f.error, ProviderError::CircuitOpen { .. }), "{:?}", f.error);
    assert_eq!(f.error.http_status(), 503);
    assert_eq!(m.requests(), before, "an open circuit sends nothing");
    // With a fallback, traffic goes elsewhere.
    let chain = reg.candidates("openai/mock-gpt,anthropic/mock-claude").await.unwrap();
    assert_eq!(
        within(reg.chat_routed(&chain, &req())).await.map_err(|f| f.error).unwrap().provider.name(),
        "anthropic"
    );
    // After the cooldown one trial goes through; its success closes the circuit.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(within(reg.chat_routed(&good, &req())).await.map_err(|f| f.error).unwrap().provider.name(), "openai");
    assert_eq!(reg.stats("openai").circuit(), CircuitState::Closed);
}

#[tokio::test]
async fn groups_and_health_monitoring() {
    let (_m, reg) = setup().await;
    reg.set_group("companion", vec!["openai/mock-error-503".into(), "anthropic/mock-claude".into()]);
    let c = reg.candidates("companion").await.unwrap();
    assert_eq!(c.len(), 2);
    assert!(matches!(reg.candidates("nope,also-nope").await, Err(ProviderError::UnknownModel(_))));
    for _ in 0..5 {
        within(reg.chat_routed(&reg.candidates("openai/mock-gpt").await.unwrap(), &req()))
            .await
            .map_err(|f| f.error)
            .unwrap();
    }
    let s = reg.stats("openai").snapshot();
    assert_eq!(s.window_requests, 5);
    assert!(s.latency_p50_ms.is_some() && s.latency_p95_ms.is_some());
    assert_eq!(s.error_rate, 0.0);
    let handle = reg.spawn_health_monitor(Duration::from_millis(50));
    let mut probed = false;
    for _ in 0..100 {
        if reg.health_snapshots().iter().all(|(_, s)| s.last_probe_ok == Some(true)) {
            probed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.abort();
    assert!(probed, "{:?}", reg.health_snapshots());
}

#[tokio::test]
async fn config_entries_balance_across_deployments() {
    use gaia_core::config::{Config, Deployment, ModelEntry, ModelSpec, ProviderEntry, ProviderKind};
    let good = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let keyed = MockUpstream::start(
        "127.0.0.1:0".parse().unwrap(),
        MockConfig { require_key: Some("k2".into()), ..Default::default() },
    )
    .await
    .unwrap();
    let mut entry = ProviderEntry::new("pool", ProviderKind::Openai);
    entry.base_url = Some(good.openai_base_url());
    entry.deployments =
        vec![Deployment { base_url: Some(keyed.openai_base_url()), api_key: Some("k2".into()), api_key_env: None }];
    entry.models = vec![
        ModelSpec::Id("mock-gpt".into()),
        ModelSpec::Entry(ModelEntry {
            id: "mock-claude".into(),
            context_window: Some(200_000),
            capabilities: vec!["tools".into()],
            input_price: Some(1.0),
            output_price: Some(2.0),
            ..Default::default()
        }),
    ];
    let mut cfg = Config::default();
    cfg.providers.push(entry);
    cfg.routing.groups.insert("g".into(), vec!["pool/mock-gpt".into()]);
    let reg = ProviderRegistry::from_config(&cfg);
    let c = reg.candidates("g").await.unwrap();
    for _ in 0..6 {
        within(reg.chat_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    }
    assert_eq!((good.requests(), keyed.requests()), (3, 3), "round-robin over both deployments");
    // Catalog details and prices come from the entry.
    let models = reg.list_models().await;
    let claude = models.iter().find(|m| m.id == "mock-claude").unwrap();
    assert_eq!(claude.context_window, Some(200_000));
    assert_eq!(claude.capabilities, vec!["tools".to_string()]);
    assert_eq!(reg.price("pool", "mock-claude").unwrap().output, 2.0);
    // A deployment that fails hands the call to the next one.
    keyed.shutdown().await;
    for _ in 0..4 {
        within(reg.chat_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    }
    assert_eq!(good.requests(), 7);
    assert!(reg.get("pool").unwrap().health().await.message.unwrap().contains("1 of 2"));
}

#[tokio::test]
async fn auto_selection_uses_live_latency_and_prices() {
    let (m, reg) = setup().await;
    let mut sc = OpenAiConfig::new(m.openai_base_url(), None);
    sc.name = "slowpoke".into();
    reg.register(Arc::new(OpenAiProvider::new(sc)));
    reg.set_price("anthropic", "mock-claude", gaia_core::types::ModelPrice::new(0.1, 0.2));
    reg.set_price("slowpoke", "mock-gpt", gaia_core::types::ModelPrice::new(5.0, 20.0));
    // Live statistics as real traffic would leave them (deterministic here).
    for (p, ms) in [("openai", 20), ("anthropic", 30), ("slowpoke", 400)] {
        for _ in 0..5 {
            reg.stats(p).success(Duration::from_millis(ms));
        }
    }
    let fast = reg.auto_select(gaia_providers::Hint::Fast, 6).await;
    assert_eq!(fast[0].0, "openai", "{fast:?}");
    assert_eq!(fast.last().unwrap().0, "slowpoke", "{fast:?}");
    // An open circuit takes a provider out of the running.
    reg.set_breaker(BreakerConfig { failure_threshold: 1, cooldown: Duration::from_secs(60) });
    for (p, ms) in [("openai", 20), ("anthropic", 30), ("slowpoke", 400)] {
        reg.stats(p).success(Duration::from_millis(ms));
    }
    reg.stats("openai").failure(Duration::ZERO, "down");
    assert_eq!(reg.auto_select(gaia_providers::Hint::Fast, 1).await[0].0, "anthropic");
    let cheap = reg.auto_select(gaia_providers::Hint::Cheap, 1).await;
    assert_eq!(cheap, vec![("anthropic".to_string(), "mock-claude".to_string())]);
    let best = reg.auto_select(gaia_providers::Hint::Best, 1).await;
    assert_eq!(best, vec![("slowpoke".to_string(), "mock-gpt".to_string())]);
    let c = reg.candidates("auto:cheap").await.unwrap();
    assert_eq!((c[0].0.name(), c[0].1.as_str()), ("anthropic", "mock-claude"));
    assert_eq!(c.len(), 3);
    assert!(matches!(reg.candidates("auto:psychic").await, Err(ProviderError::InvalidRequest(_))));
}
