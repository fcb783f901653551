//! The registry as a gateway runs it in production: model discovery (and its failures), per-provider
//! timeouts (connect, first token, total), deployments that fail, and `auto` selection following the
//! providers' live latency. Everything runs against the mock upstream on loopback.

use futures::StreamExt;
use gaia_core::config::{Config, Deployment, ProviderEntry, ProviderKind};
use gaia_core::types::ChatMessage;
use gaia_providers::mock::{Fault, MockConfig, MockHandle, MockUpstream};
use gaia_providers::{collect_stream, ChatRequest, Hint, ProviderError, ProviderRegistry, RetryPolicy};
use std::time::Duration;

async fn mock(cfg: MockConfig) -> MockHandle {
    MockUpstream::start("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap()
}

fn req() -> ChatRequest {
    ChatRequest::new("", vec![ChatMessage::user("Is it foggy?")])
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("no answer within 20 s")
}

fn entry(name: &str, kind: ProviderKind, base_url: String) -> ProviderEntry {
    let mut e = ProviderEntry::new(name, kind);
    e.base_url = Some(base_url);
    e
}

fn fast_retries(reg: &ProviderRegistry) {
    reg.set_retry_policy(RetryPolicy {
        max_retries: 0,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        first_token_timeout: Duration::from_secs(10),
    });
}

#[tokio::test]
async fn models_are_discovered_from_the_provider() {
    let m = mock(MockConfig::default()).await;
    let reg = ProviderRegistry::new();
    // No `models`: both kinds ask the upstream (`GET {base_url}/models`, `GET {base_url}/v1/models`).
    reg.add_entry(&entry("oa", ProviderKind::Openai, m.openai_base_url())).unwrap();
    reg.add_entry(&entry("an", ProviderKind::Anthropic, m.base_url())).unwrap();
    let ids: Vec<String> = reg.list_models().await.iter().map(|m| format!("{}/{}", m.provider, m.id)).collect();
    assert_eq!(ids, ["oa/mock-gpt", "oa/mock-claude", "an/mock-gpt", "an/mock-claude"]);
    assert_eq!(m.model_list_requests(), 2);
    // The lists are reused, not fetched again for every request.
    let (p, model) = reg.resolve("mock-claude").await.unwrap();
    assert_eq!((p.name(), model.as_str()), ("oa", "mock-claude"));
    assert_eq!(m.model_list_requests(), 2);
    let r = within(reg.chat_routed(&reg.candidates("mock-claude").await.unwrap(), &req())).await;
    assert_eq!(r.map_err(|f| f.error).unwrap().value.content, "Mock reply to: Is it foggy?");
}

#[tokio::test]
async fn failed_discovery_is_reported_marks_the_provider_down_and_is_retried_later() {
    let m = mock(MockConfig { require_key: Some("sk-right".into()), ..Default::default() }).await;
    let reg = ProviderRegistry::new();
    reg.set_discovery_retry(Duration::from_millis(300));
    let mut e = entry("locked", ProviderKind::Openai, m.openai_base_url());
    e.api_key = Some("sk-wrong".into());
    reg.add_entry(&e).unwrap();

    // A clear error, not "unknown model": the provider refused to list its models.
    let err = reg.resolve("mock-gpt").await.err().unwrap();
    assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err:?}");
    assert!(reg.list_models().await.is_empty());
    let snap = reg.stats("locked").snapshot();
    assert!(!snap.up, "{snap:?}");
    assert!(snap.last_error.as_deref().unwrap().contains("model discovery failed"), "{snap:?}");
    assert!(reg.discovery_error("locked").is_some());
    // Not retried at every request…
    let asked = m.model_list_requests();
    assert_eq!(asked, 1);
    assert!(reg.candidates("mock-gpt").await.is_err());
    assert_eq!(m.model_list_requests(), asked);
    // …but after a while.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(reg.resolve("mock-gpt").await.is_err());
    assert_eq!(m.model_list_requests(), asked + 1);

    // Fixed (a new key through the admin API replaces the entry): discovered at once, up again.
    e.api_key = Some("sk-right".into());
    reg.add_entry(&e).unwrap();
    assert_eq!(reg.resolve("mock-gpt").await.unwrap().0.name(), "locked");
    assert!(reg.discovery_error("locked").is_none());
    reg.probe_all().await;
    assert!(reg.stats("locked").snapshot().up);

    // An unreachable provider: the connection error, at once.
    let gone = mock(MockConfig::default()).await;
    let url = gone.openai_base_url();
    gone.shutdown().await;
    let reg = ProviderRegistry::new();
    reg.add_entry(&entry("gone", ProviderKind::Openai, url)).unwrap();
    let err = reg.resolve("mock-gpt").await.err().unwrap();
    assert!(matches!(err, ProviderError::Connect { .. }), "{err:?}");
    assert_eq!(err.http_status(), 502);
}

#[tokio::test]
async fn total_timeout_ends_calls_and_streams() {
    let m = mock(MockConfig { chunks: 8, ..Default::default() }).await;
    let mut e = entry("p", ProviderKind::Openai, m.openai_base_url());
    e.timeout_secs = 1;
    e.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    let reg = ProviderRegistry::new();
    fast_retries(&reg);
    reg.add_entry(&e).unwrap();

    // `mock-slow` answers after 30 s: a non-streamed call gives up after the total timeout.
    let c = reg.candidates("p/mock-slow").await.unwrap();
    let f = within(reg.chat_routed(&c, &req())).await.err().unwrap();
    assert!(matches!(f.error, ProviderError::Timeout { .. }), "{:?}", f.error);
    assert_eq!(f.error.http_status(), 504);

    // A stream that keeps producing but takes longer than the total ends with a timeout error after
    // its first events (never retried: output was already on its way).
    m.set_chunk_delay(Duration::from_millis(300));
    let c = reg.candidates("p/mock-gpt").await.unwrap();
    let r = within(reg.stream_routed(&c, &ChatRequest::new("", vec![ChatMessage::user("tell a long story")])))
        .await
        .map_err(|f| f.error)
        .unwrap();
    let mut s = r.value;
    let (mut events, mut error) = (0, None);
    while let Some(ev) = within(s.next()).await {
        match ev {
            Ok(_) => events += 1,
            Err(e) => error = Some(e),
        }
    }
    assert!(events >= 1);
    assert!(matches!(error, Some(ProviderError::Timeout { .. })), "{error:?}");
    assert_eq!(m.requests(), 2, "the broken stream was not retried");
}

#[tokio::test]
async fn first_token_timeout_is_per_provider() {
    let m = mock(MockConfig::default()).await;
    let reg = ProviderRegistry::new();
    fast_retries(&reg);
    let mut slow = entry("slow", ProviderKind::Openai, m.openai_base_url());
    slow.first_token_timeout_secs = Some(1);
    slow.models = vec![gaia_core::config::ModelSpec::Id("mock-slow".into())];
    reg.add_entry(&slow).unwrap();
    reg.add_entry(&entry("backup", ProviderKind::Anthropic, m.base_url())).unwrap();
    assert_eq!(reg.first_token_timeout("slow"), Duration::from_secs(1));
    assert_eq!(reg.first_token_timeout("backup"), Duration::from_secs(10), "the policy's");
    // The global policy would wait 10 s; this provider's own 1 s moves on to the fallback.
    let c = reg.candidates("slow/mock-slow,backup/mock-claude").await.unwrap();
    let r = within(reg.stream_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
    assert_eq!(r.provider.name(), "backup");
    assert_eq!(within(collect_stream(r.value)).await.unwrap().content, "Mock reply to: Is it foggy?");
    assert_eq!(reg.stats("slow").snapshot().last_error.as_deref(), Some("slow: timed out"));
}

#[tokio::test]
async fn connect_timeout_is_enforced() {
    // A listener whose accept queue is full: the kernel drops further connection attempts, so they
    // hang until the client's connect timeout.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(full, "the accept queue never filled");
    let mut e = entry("blackhole", ProviderKind::Openai, format!("http://{addr}/v1"));
    e.connect_timeout_secs = 1;
    e.timeout_secs = 60;
    e.models = vec![gaia_core::config::ModelSpec::Id("m".into())];
    let reg = ProviderRegistry::new();
    fast_retries(&reg);
    reg.add_entry(&e).unwrap();
    let c = reg.candidates("blackhole/m").await.unwrap();
    // Well before the 60 s total: the 1 s connect timeout gave up.
    let f = tokio::time::timeout(Duration::from_secs(20), reg.chat_routed(&c, &req()))
        .await
        .expect("the connect timeout did not fire")
        .err()
        .unwrap();
    assert!(matches!(f.error, ProviderError::Timeout { .. }), "{:?}", f.error);
    drop(listener);
}

#[tokio::test]
async fn failing_deployment_is_skipped_while_the_others_serve() {
    let good = mock(MockConfig::default()).await;
    let bad = mock(MockConfig { fault: Some(Fault::Status(503)), ..Default::default() }).await;
    let other = mock(MockConfig::default()).await;
    let mut e = entry("pool", ProviderKind::Openai, bad.openai_base_url());
    e.deployments = vec![
        Deployment { base_url: Some(good.openai_base_url()), ..Default::default() },
        Deployment { base_url: Some(other.openai_base_url()), ..Default::default() },
    ];
    e.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    let mut cfg = Config::default();
    cfg.providers.push(e);
    let reg = ProviderRegistry::from_config(&cfg);
    fast_retries(&reg);
    let c = reg.candidates("pool/mock-gpt").await.unwrap();
    for i in 0..12 {
        let r = within(reg.chat_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
        assert_eq!(r.attempts, 1, "call {i}: failover happens inside the provider");
        let s = within(reg.stream_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
        within(collect_stream(s.value)).await.unwrap();
    }
    assert_eq!(bad.requests(), 1, "tried once, then skipped while it cools down");
    assert_eq!(good.requests() + other.requests(), 24);
    assert!(good.requests() >= 10 && other.requests() >= 10, "spread: {} / {}", good.requests(), other.requests());
    assert_eq!(reg.stats("pool").snapshot().total_errors, 0, "the provider as a whole never failed");
}

/// Streams `n` answers from `provider`, as real traffic would.
async fn traffic(reg: &ProviderRegistry, provider: &str, n: usize) {
    let c = reg.candidates(&format!("{provider}/mock-gpt")).await.unwrap();
    for _ in 0..n {
        let r = within(reg.stream_routed(&c, &req())).await.map_err(|f| f.error).unwrap();
        within(collect_stream(r.value)).await.unwrap();
    }
}

#[tokio::test]
async fn auto_follows_the_providers_live_latency() {
    let a = mock(MockConfig { chunks: 4, ..Default::default() }).await;
    let b = mock(MockConfig { chunks: 4, ..Default::default() }).await;
    let reg = ProviderRegistry::new();
    fast_retries(&reg);
    for (name, m) in [("a", &a), ("b", &b)] {
        let mut e = entry(name, ProviderKind::Openai, m.openai_base_url());
        e.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
        reg.add_entry(&e).unwrap();
    }
    // `a` answers at once but slowly (4 chunks of 150 ms); `b` thinks for 350 ms, then streams fast.
    a.set_chunk_delay(Duration::from_millis(150));
    b.set_first_byte_delay(Duration::from_millis(350));
    traffic(&reg, "a", 3).await;
    traffic(&reg, "b", 3).await;
    let first = |v: Vec<(String, String)>| v.into_iter().next().unwrap().0;
    assert_eq!(first(reg.auto_select(Hint::Vr, 2).await), "a", "first token after ~150 ms rather than ~350 ms");
    assert_eq!(first(reg.auto_select(Hint::Fast, 2).await), "b", "whole answer in ~350 ms rather than ~600 ms");
    let c = reg.candidates("auto:vr").await.unwrap();
    assert_eq!(c[0].0.name(), "a");

    // The providers change speed: the choice follows the latest traffic.
    a.set_chunk_delay(Duration::ZERO);
    a.set_first_byte_delay(Duration::from_millis(500));
    b.set_first_byte_delay(Duration::ZERO);
    traffic(&reg, "a", 5).await;
    traffic(&reg, "b", 5).await;
    assert_eq!(first(reg.auto_select(Hint::Vr, 2).await), "b");
    assert_eq!(first(reg.auto_select(Hint::Fast, 2).await), "b");
    assert_eq!(first(reg.auto_select(Hint::Cheap, 2).await), "b", "same (no) price: the faster one");
    let r = within(reg.chat_routed(&reg.candidates("auto:fast").await.unwrap(), &req())).await;
    assert_eq!(r.map_err(|f| f.error).unwrap().provider.name(), "b");

    // A provider whose probe fails is not chosen, however fast it was.
    b.shutdown().await;
    reg.probe_all().await;
    assert_eq!(first(reg.auto_select(Hint::Fast, 2).await), "a");
}

#[tokio::test]
async fn an_old_model_list_is_served_at_once_and_refreshed_in_the_background() {
    let m = mock(MockConfig::default()).await;
    let reg = ProviderRegistry::new();
    reg.set_models_ttl(Duration::ZERO);
    reg.add_entry(&entry("oa", ProviderKind::Openai, m.openai_base_url())).unwrap();
    assert_eq!(reg.list_models().await.len(), 2);
    assert_eq!(m.model_list_requests(), 1);
    // The list is stale at once (TTL 0): requests keep using it while it is refreshed.
    let refreshed = m.model_list_requests();
    for _ in 0..3 {
        assert_eq!(reg.resolve("mock-gpt").await.unwrap().0.name(), "oa");
    }
    let mut asked = false;
    for _ in 0..250 {
        if m.model_list_requests() > refreshed {
            asked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(asked, "the list was refreshed in the background");
    // The upstream goes away: the last list is kept, and the failure shows in the health.
    m.shutdown().await;
    let mut down = false;
    for _ in 0..250 {
        assert_eq!(reg.list_models().await.len(), 2, "the last discovered list stays");
        if reg.discovery_error("oa").is_some() {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(down);
    assert!(!reg.stats("oa").snapshot().up);
}
