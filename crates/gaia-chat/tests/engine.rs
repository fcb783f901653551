//! The conversation engine against the mock upstream, on SQLite and PostgreSQL: turns (whole and
//! streamed) stored with their usage, every call metered (answered, failed, abandoned), admission
//! (rate limits, budgets) refusing before any call, and the one call path's response cache.

use futures::StreamExt;
use gaia_chat::{CacheStatus, CacheUse, CallSpec, ChatError, Engine, EngineParts, TurnEvent, TurnInput};
use gaia_core::auth::{AuthMethod, Principal};
use gaia_core::config::{ChatConfig, LimitsConfig};
use gaia_core::events::EventBus;
use gaia_core::quota::Quotas;
use gaia_core::storage::{NewUsage, Storage, UsageFilter};
use gaia_core::types::{ChatMessage, Role};
use gaia_core::usage::UsageRecorder;
use gaia_providers::mock::{MockConfig, MockHandle, MockUpstream};
use gaia_providers::{ChatRequest, OpenAiConfig, OpenAiProvider, ProviderRegistry};
use std::sync::Arc;
use std::time::Duration;

struct World {
    engine: Engine,
    storage: Storage,
    usage: UsageRecorder,
    user: Principal,
    mock: MockHandle,
    _db: gaia_core::testing::TestDb,
}

async fn world(db: gaia_core::testing::TestDb, limits: LimitsConfig, responses: bool) -> World {
    let storage = db.storage().await;
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let providers = ProviderRegistry::new();
    let mut oc = OpenAiConfig::new(mock.openai_base_url(), Some("sk-test".into()));
    oc.models = vec!["mock-gpt".into()];
    providers.register(Arc::new(OpenAiProvider::new(oc)));
    let quotas = Quotas::new(storage.clone(), limits);
    let usage = UsageRecorder::spawn(storage.clone());
    let cache: gaia_core::cache::SharedCache = Arc::new(gaia_core::cache::MemoryCache::new(1_000));
    let responses =
        responses.then(|| gaia_providers::response_cache::ResponseCache::new(cache.clone(), Duration::from_secs(60)));
    let engine = Engine::new(EngineParts {
        storage: storage.clone(),
        providers,
        events: EventBus::default(),
        quotas,
        rbac: gaia_rbac::Rbac::unloaded(storage.clone()),
        usage: usage.clone(),
        responses,
        observer: None,
        chat: ChatConfig { auto_title: false, memory: false, ..ChatConfig::default() },
        tools: None,
        tool_limits: Default::default(),
        guardrails: Default::default(),
        embeddings: Default::default(),
        cache: Some(cache),
    });
    let u = storage.create_user(&format!("player-{}@example.com", uuid()), None, None).await.unwrap();
    let user = Principal { user_id: u.id, email: Some(u.email), is_admin: false, method: AuthMethod::Jwt };
    World { engine, storage, usage, user, mock, _db: db }
}

fn uuid() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

async fn records(w: &World) -> Vec<NewUsage> {
    w.usage.flush().await;
    let filter = UsageFilter { user_id: Some(w.user.user_id.clone()), since: None, until: None, end_user: None };
    let r = w.storage.list_usage(&filter, 100).await.unwrap();
    r.into_iter().map(|r| r.usage).collect()
}

fn input(message: &str) -> TurnInput {
    TurnInput { message: message.into(), model: Some("mock-gpt".into()), ..Default::default() }
}

#[tokio::test]
async fn a_turn_is_answered_stored_and_metered() {
    for db in gaia_core::testing::database_urls().await {
        let backend = db.backend;
        let w = world(db, LimitsConfig::default(), false).await;
        let admitted = w.engine.admit(&w.user, false).await.unwrap().budgets(None).await.unwrap();
        let turn = w.engine.turn(&admitted, "chat", input("Where is the safe house?")).await.unwrap();
        let a = turn.complete().await.unwrap();
        assert_eq!(a.content, "Mock reply to: Where is the safe house?", "{backend}");
        assert!(a.message_id.is_some());
        let msgs = w.storage.list_messages(&a.conversation_id).await.unwrap();
        let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant], "{backend}");
        assert_eq!(msgs[1].content, a.content);

        // The next turn of the same conversation sends the history.
        let mut next = input("And the password?");
        next.conversation_id = Some(a.conversation_id.clone());
        let turn = w.engine.turn(&admitted, "chat", next).await.unwrap();
        assert_eq!(turn.request().messages.len(), 4, "{backend}: system, user, assistant, user");
        turn.complete().await.unwrap();
        let sent = w.mock.last_request().unwrap();
        assert_eq!(sent["messages"].as_array().unwrap().len(), 4, "{backend}");

        let r = records(&w).await;
        assert_eq!(r.len(), 2, "{backend}: one usage record per call");
        assert!(r.iter().all(|u| u.endpoint == "chat" && u.status == 200 && u.provider == "openai"));
        assert!(r.iter().all(|u| u.input_tokens > 0 && u.output_tokens > 0), "{backend}");
    }
}

#[tokio::test]
async fn a_streamed_turn_stores_its_answer_and_a_dropped_one_what_had_arrived() {
    for db in gaia_core::testing::database_urls().await {
        let backend = db.backend;
        let w = world(db, LimitsConfig::default(), false).await;
        let admitted = w.engine.admit(&w.user, false).await.unwrap().budgets(None).await.unwrap();
        let s = w.engine.turn(&admitted, "chat", input("Tell me a story")).await.unwrap().stream().await.unwrap();
        let conv = s.conversation_id.clone();
        let events: Vec<TurnEvent> = s.events.collect().await;
        let text: String =
            events.iter().filter_map(|e| if let TurnEvent::Delta(t) = e { Some(t.as_str()) } else { None }).collect();
        assert_eq!(text, "Mock reply to: Tell me a story", "{backend}");
        assert!(matches!(events.last(), Some(TurnEvent::Done { usage, .. }) if usage.output_tokens > 0), "{backend}");
        let msgs = w.storage.list_messages(&conv).await.unwrap();
        assert_eq!(msgs.last().unwrap().content, text, "{backend}");

        // A client that leaves after the first piece: the call is metered as abandoned, the partial
        // answer is stored.
        w.mock.set_chunk_delay(Duration::from_millis(200));
        let mut s = w.engine.turn(&admitted, "chat", input("Tell me another")).await.unwrap().stream().await.unwrap();
        let conv = s.conversation_id.clone();
        let first = s.events.next().await;
        assert!(matches!(first, Some(TurnEvent::Delta(_))), "{backend}: {first:?}");
        drop(s);
        w.mock.set_chunk_delay(Duration::ZERO);
        let mut stored = None;
        for _ in 0..100 {
            let msgs = w.storage.list_messages(&conv).await.unwrap();
            if let Some(m) = msgs.iter().find(|m| m.role == Role::Assistant) {
                stored = Some(m.content.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stored = stored.unwrap_or_else(|| panic!("{backend}: the partial answer was not stored"));
        assert!(!stored.is_empty() && "Mock reply to: Tell me another".starts_with(&stored), "{backend}: {stored}");
        let r = records(&w).await;
        let mut statuses: Vec<u16> = r.iter().map(|u| u.status).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 499], "{backend}");
    }
}

#[tokio::test]
async fn a_failed_call_is_metered_and_nothing_is_answered() {
    let w = world(gaia_core::testing::sqlite_db(), LimitsConfig::default(), false).await;
    let admitted = w.engine.admit(&w.user, false).await.unwrap().budgets(None).await.unwrap();
    let req = ChatRequest::new("openai/mock-error-500", vec![ChatMessage::user("hi")]);
    let e = w.engine.complete(&admitted, CallSpec::new("openai", "openai/mock-error-500"), &req).await.unwrap_err();
    assert_eq!(e.http_status(), 502, "{e}");
    let req = ChatRequest::new("no-such-model", vec![ChatMessage::user("hi")]);
    let e = w.engine.complete(&admitted, CallSpec::new("openai", "no-such-model"), &req).await.unwrap_err();
    assert_eq!(e.http_status(), 404, "{e}");
    let r = records(&w).await;
    assert_eq!(r.len(), 2, "both failures are recorded");
    assert!(r.iter().any(|u| u.status >= 500 && u.error.is_some()), "{r:?}");
    assert!(r.iter().any(|u| u.status == 404 && u.model == "no-such-model"), "{r:?}");
}

#[tokio::test]
async fn admission_refuses_over_a_rate_limit_before_any_call() {
    let limits = LimitsConfig { user_requests_per_minute: 1, ..LimitsConfig::default() };
    let w = world(gaia_core::testing::sqlite_db(), limits, false).await;
    w.engine.admit(&w.user, false).await.unwrap();
    let refused = w.engine.admit(&w.user, false).await.unwrap_err();
    assert_eq!(refused.status, 429);
    assert!(refused.headers.iter().any(|(k, _)| *k == "retry-after"), "{:?}", refused.headers);
    let e: ChatError = refused.into();
    assert_eq!(e.http_status(), 429);
    assert_eq!(w.mock.requests(), 0, "no model was called");
}

#[tokio::test]
async fn a_hard_budget_refuses_a_request_it_cannot_pay_for() {
    let w = world(gaia_core::testing::sqlite_db(), LimitsConfig::default(), false).await;
    let price = gaia_core::types::ModelPrice::new(1_000_000.0, 1_000_000.0);
    w.storage.add_price("openai", "mock-gpt", price, chrono::Utc::now(), None).await.unwrap();
    w.engine.quotas().reload_prices().await.unwrap();
    w.engine.providers().set_price_source(Arc::new(w.engine.quotas().clone()));
    let budget = gaia_core::storage::NewBudget {
        scope: gaia_core::storage::LimitScope::User,
        subject_id: w.user.user_id.clone(),
        period: gaia_core::storage::BudgetPeriod::Monthly,
        limit_usd: 0.01,
        hard: true,
    };
    w.storage.create_budget(&budget, None).await.unwrap();
    let req = ChatRequest::new("mock-gpt", vec![ChatMessage::user("a question that costs far more than a cent")]);
    let gate = w.engine.admit(&w.user, false).await.unwrap();
    assert!(gate.needs_estimate());
    let refused = gate.for_request(&req).await.unwrap_err();
    assert_eq!(refused.status, 402, "{}", refused.message);
    assert_eq!(w.mock.requests(), 0);
}

#[tokio::test]
async fn the_response_cache_answers_the_second_identical_call() {
    let w = world(gaia_core::testing::sqlite_db(), LimitsConfig::default(), true).await;
    let admitted = w.engine.admit(&w.user, false).await.unwrap().budgets(None).await.unwrap();
    let mut req = ChatRequest::new("mock-gpt", vec![ChatMessage::user("cache me")]);
    req.temperature = Some(0.0);
    let spec = CallSpec { cache: CacheUse::Allowed(Some(true)), ..CallSpec::new("openai", "mock-gpt") };
    let (first, c1) = w.engine.complete(&admitted, spec, &req).await.unwrap();
    let (second, c2) = w.engine.complete(&admitted, spec, &req).await.unwrap();
    assert_eq!((c1.cache, c2.cache), (CacheStatus::Miss, CacheStatus::Hit));
    assert_eq!(first.content, second.content);
    assert_eq!(w.mock.requests(), 1, "the second answer came from the cache");
    let r = records(&w).await;
    let mut providers: Vec<&str> = r.iter().map(|u| u.provider.as_str()).collect();
    providers.sort();
    assert_eq!(providers, ["cache", "openai"]);
}

#[tokio::test]
async fn a_bad_turn_is_refused_and_stores_nothing() {
    let w = world(gaia_core::testing::sqlite_db(), LimitsConfig::default(), false).await;
    let admitted = w.engine.admit(&w.user, false).await.unwrap().budgets(None).await.unwrap();
    let e = w.engine.turn(&admitted, "chat", input("   ")).await.unwrap_err();
    assert_eq!(e.http_status(), 400);
    let mut other = input("hi");
    other.conversation_id = Some("not-mine".into());
    assert_eq!(w.engine.turn(&admitted, "chat", other).await.unwrap_err().http_status(), 404);
    let mut regen = input("");
    regen.regenerate = true;
    assert_eq!(w.engine.turn(&admitted, "chat", regen).await.unwrap_err().http_status(), 400);
    let mut many = input("look");
    many.attachments = (0..9).map(|i| format!("a{i}")).collect();
    assert_eq!(w.engine.turn(&admitted, "chat", many).await.unwrap_err().http_status(), 400);
    let convs = w.storage.list_conversations(&w.user.user_id, 10, 0).await.unwrap();
    assert!(convs.is_empty(), "nothing stored");
    assert_eq!(w.mock.requests(), 0);
}

#[tokio::test]
async fn an_agent_turn_runs_the_callers_tools_stores_its_answer_and_respects_the_ceiling() {
    use gaia_mcp::{AgentEvent, FnTool, Toolbox};
    for db in gaia_core::testing::database_urls().await {
        let backend = db.backend;
        let w = world(db, LimitsConfig::default(), false).await;
        let admitted = w.engine.admit(&w.user, false).await.unwrap().budgets(None).await.unwrap();
        let mut tools = Toolbox::new();
        let schema = serde_json::json!({"type": "object", "properties": {"place": {"type": "string"}}});
        tools.add(Arc::new(FnTool::new("game", "locate", "Where a place is", schema, |_| async move {
            Ok("The safe house is behind the bakery.".to_string())
        })));
        assert!(tools.refresh().await.is_empty());
        let turn = w.engine.turn(&admitted, "mcp_agent", input("call tool game__locate safe house")).await.unwrap();
        let conversation = turn.conversation().id.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let run = turn.run(tools.clone(), Default::default(), Some(tx)).await.unwrap();
        assert_eq!(run.tool_calls.len(), 1, "{backend}: {run:?}");
        assert_eq!(run.tool_calls[0].name, "game__locate");
        let mut seen = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let AgentEvent::ToolStarted { name, .. } = ev {
                seen.push(name);
            }
        }
        assert_eq!(seen, ["game__locate"], "{backend}: progress reported as it happened");
        // Stored like any turn: the request, then the answer.
        let msgs = w.storage.list_messages(&conversation).await.unwrap();
        let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant], "{backend}");
        assert_eq!(msgs[1].content, run.content);
        // Both model calls of the loop are metered under the caller's endpoint.
        let r = records(&w).await;
        assert_eq!(r.len(), 2, "{backend}: {r:?}");
        assert!(r.iter().all(|u| u.endpoint == "mcp_agent" && u.status == 200 && u.input_tokens > 0));

        // A daily agent ceiling already reached (0 here: the mock's model has no price): refused with
        // 429 before any call.
        let limits = gaia_core::config::AgentLimits { daily_cost_ceiling: Some(0.0), ..Default::default() };
        let e = w.engine.run_budget(&admitted, &limits).await.unwrap_err();
        assert_eq!(e.http_status(), 429, "{backend}: {e}");
        let turn = w.engine.turn(&admitted, "mcp_agent", input("again")).await.unwrap();
        let e = turn.run(tools, limits, None).await.unwrap_err();
        assert_eq!(e.http_status(), 429, "{backend}");
        assert_eq!(records(&w).await.len(), 2, "{backend}: no call was made");
    }
}
