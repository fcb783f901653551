//! Issue 17 (security hardening), model calls: every route that calls a model checks the permission
//! to use models, hard budgets and rate limits, and meters each call with its provider, model, tokens
//! and cost (agent and orchestrated runs included, failed and partial runs too); `/mcp`'s chat tool is
//! admitted like `/v1/chat/completions`; the agents' file tool gives each user an own folder; the
//! agent endpoint checks a request before starting any MCP server process and caps those processes.
//! Each test performs the attack it guards against.

use crate::common::mcp::McpTestServer;
use crate::common::{self, start_with, TestServer};
use gaia_core::storage::{LimitScope, NewBudget, NewUsage, UsageFilter, UsageRecord};
use gaia_core::testing::{database_urls, sqlite_db, TestDb};
use gaia_core::types::ModelPrice;
use gaia_core::Config;
use gaia_mcp::{McpClientSource, ToolSource};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider};
use gaia_rbac::{Action, Permission, ResourceType, Role, Scope};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One dollar per thousand tokens: every call of the mock costs something.
const PRICE: ModelPrice = ModelPrice::new(1000.0, 1000.0);

fn config() -> Config {
    let mut c = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    c.chat.auto_title = true;
    c.rbac.first_user_admin = false;
    c
}

fn set_prices(s: &TestServer) {
    // The mock serves every model through either vendor's API, so either provider may be chosen.
    for p in ["openai", "anthropic"] {
        for m in ["mock-gpt", "mock-claude", "mock-embed"] {
            s.state.providers().set_price(p, m, PRICE);
        }
    }
}

/// [`config`] without automatic titles: an agent run's model calls are all the calls made.
fn agent_config() -> Config {
    let mut c = config();
    c.chat.auto_title = false;
    c.chat.memory = false;
    c
}

/// A server on `db` with `cfg`, the mock upstream and priced models, and a user with an API key on it;
/// returns (server, key, user id).
async fn priced_user(db: TestDb, cfg: Config, email: &str) -> (TestServer, String, String) {
    let s = start_with(db, Some(MockConfig::default()), cfg).await;
    set_prices(&s);
    let (token, _, uid) = s.register(email).await;
    let (key, _) = s.api_key(&token).await;
    (s, key, uid)
}

/// The usage rows of `user_id`, once everything queued is written.
async fn rows(s: &TestServer, user_id: &str) -> Vec<UsageRecord> {
    s.state.usage().flush().await;
    let filter = UsageFilter { user_id: Some(user_id.to_string()), ..Default::default() };
    s.state.storage().list_usage(&filter, 10_000).await.unwrap()
}

/// Rows per endpoint.
fn by_endpoint(rows: &[UsageRecord]) -> BTreeMap<String, Vec<NewUsage>> {
    let mut m: BTreeMap<String, Vec<NewUsage>> = BTreeMap::new();
    for r in rows {
        m.entry(r.usage.endpoint.clone()).or_default().push(r.usage.clone());
    }
    m
}

/// Every model-calling route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    ChatV1,
    ChatV03,
    OpenAi,
    Anthropic,
    McpAgent,
    McpAgentHot,
    Orchestrated,
    Embeddings,
    McpChat,
    AutoTitle,
    WorldTalk,
}

/// What a call answered: the HTTP status (200 for a successful MCP tool call) and the text.
#[derive(Debug)]
struct Outcome {
    status: u16,
    text: String,
    retry_after: Option<String>,
}

impl Outcome {
    /// Whether it is the refusal `status` (HTTP), or an MCP tool error saying `phrase`.
    fn refused(&self, route: Route, status: u16, phrase: &str) -> bool {
        if route == Route::McpChat {
            self.status != 200 && self.text.contains(phrase)
        } else {
            self.status == status
        }
    }
}

/// Calls `route` once as the holder of `key`; the chat routes continue `conversation` (so that only
/// the auto-title case makes a title).
async fn call(s: &TestServer, route: Route, key: &str, conversation: &str) -> Outcome {
    let model = "openai/mock-gpt";
    let req = match route {
        Route::ChatV1 => {
            s.post("/api/v1/chat", key).json(&json!({"message": "hi", "model": model, "conversation_id": conversation}))
        }
        Route::ChatV03 => s
            .post("/api/v0.3/chat", key)
            .json(&json!({"message": "hi", "model": model, "conversation_id": conversation})),
        Route::AutoTitle => s.post("/api/v1/chat", key).json(&json!({"message": "hi", "model": model})),
        Route::OpenAi => s
            .post("/v1/chat/completions", key)
            .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})),
        Route::Anthropic => s
            .post("/v1/messages", key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "mock-claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})),
        Route::McpAgent => s.post("/api/v1/chat/mcp-agent", key).json(&json!({"message": "hi", "model": model})),
        Route::McpAgentHot => s.post("/api/v1/chat/mcp-agent-hot", key).json(&json!({"message": "hi", "model": model})),
        Route::Orchestrated => s.post("/api/v1/chat/orchestrated", key).json(&json!({"message": "hi", "model": model})),
        Route::Embeddings => s.post("/v1/embeddings", key).json(&json!({"model": "openai/mock-embed", "input": "hi"})),
        Route::WorldTalk => s
            .post("/api/v1/experiences/safe-house/command", key)
            .json(&json!({"action": "talk", "target_npc_id": "radio_operator", "message": "hi"})),
        Route::McpChat => {
            let cfg = serde_json::from_value(json!({"name": "gaia", "transport": "http",
                "url": format!("{}/mcp", s.url), "headers": {"authorization": format!("Bearer {key}")}}))
            .unwrap();
            let client = McpClientSource::new(cfg);
            return match client.call("gaia__chat", &json!({"message": "hi", "model": model}).to_string()).await {
                Ok(text) => Outcome { status: 200, text, retry_after: None },
                Err(e) => Outcome { status: 0, text: e.to_string(), retry_after: None },
            };
        }
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap_or_default().to_string());
    Outcome { status, text: r.text().await.unwrap(), retry_after }
}

/// The table: each route, and the usage rows one successful call of it adds (endpoint, rows).
const CASES: &[(Route, &[(&str, usize)])] = &[
    // Each turn, then the persona's memory of the user (in the background).
    (Route::ChatV1, &[("chat", 1), ("persona_memory", 1)]),
    (Route::ChatV03, &[("chat_v0.3", 1), ("persona_memory", 1)]),
    (Route::OpenAi, &[("openai", 1)]),
    (Route::Anthropic, &[("anthropic", 1)]),
    // Agent requests are turns too: a new conversation gets its title, the persona its memory.
    (Route::McpAgent, &[("chat_title", 1), ("mcp_agent", 1), ("persona_memory", 1)]),
    (Route::McpAgentHot, &[("chat_title", 1), ("mcp_agent_hot", 1), ("persona_memory", 1)]),
    // Plan, the two default specialists (the librarian, as there is a knowledge base, and the
    // operator; no tool calls: one call each), synthesis.
    (Route::Orchestrated, &[("orchestrated", 4)]),
    (Route::Embeddings, &[("embeddings", 1)]),
    (Route::McpChat, &[("mcp_chat", 1)]),
    (Route::AutoTitle, &[("chat", 1), ("chat_title", 1), ("persona_memory", 1)]),
    // An NPC's answer in a game world.
    (Route::WorldTalk, &[("world_talk", 1)]),
];

/// A system role that may chat in its own conversations and hold API keys, but not use providers.
async fn no_models_role(s: &TestServer, user_id: &str) {
    let mine = "/users/{user}/**";
    let all = [Action::Read, Action::Write, Action::Delete];
    let mut permissions: Vec<Permission> = Vec::new();
    for t in [ResourceType::Conversation, ResourceType::ApiKey, ResourceType::Persona] {
        permissions.extend(all.iter().map(|a| Permission::new(t, *a, mine)));
    }
    permissions.push(Permission::new(ResourceType::Persona, Action::Read, "/personas/builtin/**"));
    permissions.push(Permission::new(ResourceType::User, Action::Read, "/users/{user}"));
    let role = Role {
        name: "chatter_no_models".into(),
        scope: Scope::System,
        description: "Conversations without model use".into(),
        permissions,
        builtin: false,
    };
    let rbac = s.state.rbac().await;
    rbac.create_role(None, role).await.unwrap();
    rbac.grant(None, user_id, "chatter_no_models", None, None).await.unwrap();
}

/// The HTTP routes of the table above.
fn route_path(route: Route) -> Option<&'static str> {
    match route {
        Route::ChatV1 | Route::AutoTitle => Some("/api/v1/chat"),
        Route::ChatV03 => Some("/api/v0.3/chat"),
        Route::OpenAi => Some("/v1/chat/completions"),
        Route::Anthropic => Some("/v1/messages"),
        Route::McpAgent => Some("/api/v1/chat/mcp-agent"),
        Route::McpAgentHot => Some("/api/v1/chat/mcp-agent-hot"),
        Route::Orchestrated => Some("/api/v1/chat/orchestrated"),
        Route::Embeddings => Some("/v1/embeddings"),
        // `/mcp` admits its chat tool's calls itself (its other tools call no model); so does a game
        // world's command route, for the commands that call a model.
        Route::McpChat | Route::WorldTalk => None,
    }
}

#[tokio::test]
async fn the_table_covers_every_route_that_calls_models() {
    let s = start_with(gaia_core::testing::sqlite_db(), Some(MockConfig::default()), config()).await;
    let admitted: std::collections::BTreeSet<String> =
        gaia_server::route_table(&s.state).into_iter().filter(|r| r.admitted).map(|r| r.path).collect();
    let tested: std::collections::BTreeSet<String> =
        CASES.iter().filter_map(|(r, _)| route_path(*r)).map(str::to_string).collect();
    assert_eq!(admitted, tested, "every admitted route is in the table, and only those");
}

#[tokio::test]
async fn every_model_route_is_admitted_and_metered() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let _world = common::with_sample_world(&s).await;
        let b = s.backend;
        set_prices(&s);
        let storage = s.state.storage();

        // The users: one allowed, one whose role lacks provider:read, one over a hard budget, and
        // one whose keys are held to one request per minute.
        let (ok_token, _, ok_id) = s.register("ok@example.com").await;
        let (ok_key, _) = s.api_key(&ok_token).await;
        let ok_conv = storage.create_conversation_with_persona(&ok_id, Some("t"), None, None).await.unwrap().id;

        let (denied_token, _, denied_id) = s.register("denied@example.com").await;
        let (denied_key, _) = s.api_key(&denied_token).await;
        no_models_role(&s, &denied_id).await;
        let denied_conv = storage.create_conversation_with_persona(&denied_id, Some("t"), None, None).await.unwrap().id;

        let (broke_token, _, broke_id) = s.register("broke@example.com").await;
        let (broke_key, _) = s.api_key(&broke_token).await;
        let broke_conv = storage.create_conversation_with_persona(&broke_id, Some("t"), None, None).await.unwrap().id;
        let budget = NewBudget {
            scope: LimitScope::User,
            subject_id: broke_id.clone(),
            period: gaia_core::storage::BudgetPeriod::Daily,
            limit_usd: 0.5,
            hard: true,
        };
        storage.create_budget(&budget, None).await.unwrap();
        let spent = NewUsage {
            user_id: broke_id.clone(),
            endpoint: "chat".into(),
            provider: "openai".into(),
            model: "mock-gpt".into(),
            input_tokens: 1,
            cost_usd: 1.0,
            status: 200,
            ..Default::default()
        };
        storage.insert_usage(&[spent]).await.unwrap();

        let (limited_token, _, limited_id) = s.register("limited@example.com").await;
        let limited_conv =
            storage.create_conversation_with_persona(&limited_id, Some("t"), None, None).await.unwrap().id;
        s.state.quotas().settings_changed();

        for (route, expected) in CASES {
            let route = *route;
            let calls_before = s.mock.as_ref().unwrap().requests();

            // Without the permission to use models: refused, no provider call, nothing metered.
            let o = call(&s, route, &denied_key, &denied_conv).await;
            assert!(o.refused(route, 403, "may not use models"), "{b} {route:?}: {o:?}");
            // Over a hard budget: refused.
            let o = call(&s, route, &broke_key, &broke_conv).await;
            assert!(o.refused(route, 402, "budget"), "{b} {route:?}: {o:?}");
            assert_eq!(s.mock.as_ref().unwrap().requests(), calls_before, "{b} {route:?}: a provider was called");

            // Rate-limited: a fresh key held to one request per minute; the second is a 429.
            let (key, key_id) = s.api_key(&limited_token).await;
            storage.set_rate_limit(LimitScope::Key, &key_id, Some(1), None, None).await.unwrap();
            s.state.quotas().settings_changed();
            let first = call(&s, route, &key, &limited_conv).await;
            assert_eq!(first.status, 200, "{b} {route:?}: {first:?}");
            let o = call(&s, route, &key, &limited_conv).await;
            assert!(o.refused(route, 429, "rate limit reached"), "{b} {route:?}: {o:?}");
            if route != Route::McpChat {
                assert!(o.retry_after.is_some(), "{b} {route:?}: Retry-After");
            }

            // Allowed: exactly the expected rows, each with its provider, model, tokens and cost.
            let before = by_endpoint(&rows(&s, &ok_id).await);
            let o = call(&s, route, &ok_key, &ok_conv).await;
            assert_eq!(o.status, 200, "{b} {route:?}: {o:?}");
            let mut added = BTreeMap::new();
            for _ in 0..250 {
                let after = by_endpoint(&rows(&s, &ok_id).await);
                added = after
                    .into_iter()
                    .map(|(e, v)| {
                        let n = before.get(&e).map_or(0, Vec::len);
                        (e, v[..v.len() - n].to_vec())
                    })
                    .filter(|(_, v)| !v.is_empty())
                    .collect::<BTreeMap<_, _>>();
                let counts: Vec<(&str, usize)> = added.iter().map(|(e, v)| (e.as_str(), v.len())).collect();
                if counts == *expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let counts: Vec<(&str, usize)> = added.iter().map(|(e, v)| (e.as_str(), v.len())).collect();
            assert_eq!(counts, *expected, "{b} {route:?}: {added:?}");
            for r in added.values().flatten() {
                assert!(["openai", "anthropic"].contains(&r.provider.as_str()), "{b} {route:?}: provider of {r:?}");
                assert!(r.model.starts_with("mock-"), "{b} {route:?}: model of {r:?}");
                assert!(r.input_tokens > 0 && r.cost_usd > 0.0, "{b} {route:?}: tokens and cost of {r:?}");
                assert_eq!(r.status, 200, "{b} {route:?}: {r:?}");
            }
        }
        // The refused callers were never metered (the broke user has only the row put there).
        assert!(rows(&s, &denied_id).await.is_empty(), "{b}");
        assert_eq!(rows(&s, &broke_id).await.len(), 1, "{b}");
    }
}

#[tokio::test]
async fn failed_and_partial_runs_are_metered_call_by_call() {
    for db in database_urls().await {
        // The upstream is ours, so that the saboteur tool can stop it halfway through a run.
        let upstream = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
        let base = upstream.openai_base_url();
        // An MCP server with one tool, `stop_upstream`, that shuts the model upstream down: the
        // agent's next model call fails.
        let upstream = Arc::new(tokio::sync::Mutex::new(Some(upstream)));
        let saboteur = McpTestServer::one("stop_upstream", "Stops the model upstream", move |_| {
            let upstream = upstream.clone();
            async move {
                if let Some(m) = upstream.lock().await.take() {
                    m.shutdown().await;
                }
                "stopped".to_string()
            }
        });
        let url = saboteur.serve().await;
        let mut cfg = agent_config();
        cfg.mcp_servers =
            vec![serde_json::from_value(json!({"name": "ops", "transport": "http", "url": url})).unwrap()];
        let s = start_with(db, None, cfg).await;
        let b = s.backend;
        let mut o = OpenAiConfig::new(base, Some("sk-test".into()));
        o.timeout = Duration::from_secs(5);
        s.state.providers().register(Arc::new(OpenAiProvider::new(o)));
        set_prices(&s);
        let (token, _, uid) = s.register("partial@example.com").await;
        let (key, _) = s.api_key(&token).await;

        // The first model call asks for the tool, the tool stops the upstream, the second call fails.
        let r = s
            .post("/api/v1/chat/mcp-agent", &key)
            .json(&json!({"message": "call tool ops__stop_upstream now", "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_server_error(), "{b}: {} {}", r.status(), r.text().await.unwrap());
        let calls = by_endpoint(&rows(&s, &uid).await).remove("mcp_agent").unwrap_or_default();
        assert_eq!(calls.len(), 2, "{b}: {calls:?}");
        let (answered, failed): (Vec<_>, Vec<_>) = calls.iter().partition(|c| c.status == 200);
        assert_eq!(answered.len(), 1, "{b}: {calls:?}");
        let first = answered[0];
        assert_eq!((first.provider.as_str(), first.model.as_str()), ("openai", "mock-gpt"), "{b}");
        assert!(first.input_tokens > 0 && first.cost_usd > 0.0, "{b}: the partial run's call is charged: {first:?}");
        assert!(failed[0].status >= 500 && failed[0].error.is_some(), "{b}: {failed:?}");
        assert_eq!(failed[0].provider, "openai", "{b}: {failed:?}");
    }
}

#[tokio::test]
async fn orchestrated_runs_meter_failed_specialists_and_spend_counts() {
    for db in database_urls().await {
        let (s, key, uid) = priced_user(db, agent_config(), "orch@example.com").await;
        let b = s.backend;
        // One specialist whose model always fails.
        let agents = json!([{"name": "broken", "model": "openai/mock-error-500", "tools": []}]);
        let r = s
            .post("/api/v1/chat/orchestrated", &key)
            .json(&json!({"message": "hi", "model": "openai/mock-gpt", "agents": agents}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["_metadata"]["agents"][0]["ok"], false, "{b}: {v}");
        let calls = by_endpoint(&rows(&s, &uid).await).remove("orchestrated").unwrap_or_default();
        let ok: Vec<_> = calls.iter().filter(|c| c.status == 200).collect();
        let failed: Vec<_> = calls.iter().filter(|c| c.status >= 500).collect();
        assert_eq!(ok.len(), 2, "{b}: plan and synthesis: {calls:?}");
        assert!(ok.iter().all(|c| c.provider == "openai" && c.model == "mock-gpt" && c.cost_usd > 0.0), "{b}");
        assert_eq!(failed.len(), 1, "{b}: the specialist's failed call: {calls:?}");
        assert_eq!((failed[0].provider.as_str(), failed[0].model.as_str()), ("openai", "mock-error-500"), "{b}");
        // What the runs cost is what the usage report says was spent.
        let spent: f64 = calls.iter().map(|c| c.cost_usd).sum();
        let reported = v["_metadata"]["cost"].as_f64().unwrap();
        assert!((spent - reported).abs() < 1e-9, "{b}: metered {spent}, reported {reported}");
    }
}

#[tokio::test]
async fn agent_runs_count_against_the_daily_agent_ceiling() {
    for db in database_urls().await {
        let mut cfg = agent_config();
        cfg.agents.limits.daily_cost_ceiling = Some(0.001);
        let (s, key, _) = priced_user(db, cfg, "ceiling@example.com").await;
        let b = s.backend;
        let body = json!({"message": "hi", "model": "openai/mock-gpt"});
        // The first run spends over the ceiling; the next runs are refused, orchestrated ones too.
        let r = s.post("/api/v1/chat/mcp-agent", &key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        s.state.usage().flush().await;
        for path in ["/api/v1/chat/mcp-agent", "/api/v1/chat/orchestrated"] {
            let r = s.post(path, &key).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 429, "{b} {path}: runs count against the ceiling");
            let v: Value = r.json().await.unwrap();
            assert!(v["detail"].as_str().unwrap().contains("cost ceiling"), "{b}: {v}");
        }
    }
}

#[tokio::test]
async fn agent_runs_spend_against_hard_budgets() {
    for db in database_urls().await {
        let (s, key, uid) = priced_user(db, agent_config(), "budget@example.com").await;
        let b = s.backend;
        let budget = NewBudget {
            scope: LimitScope::User,
            subject_id: uid.clone(),
            period: gaia_core::storage::BudgetPeriod::Daily,
            limit_usd: 0.05,
            hard: true,
        };
        s.state.storage().create_budget(&budget, None).await.unwrap();
        s.state.quotas().settings_changed();
        let body = json!({"message": "hi", "model": "openai/mock-gpt"});
        // Runs go through until what they spent reaches the budget; then they are refused (402).
        let mut refused = false;
        for i in 0..40 {
            let path = if i % 2 == 0 { "/api/v1/chat/orchestrated" } else { "/api/v1/chat/mcp-agent" };
            let r = s.post(path, &key).json(&body).send().await.unwrap();
            if r.status() == 402 {
                refused = true;
                break;
            }
            assert_eq!(r.status(), 200, "{b} {path}");
            s.state.usage().flush().await;
        }
        assert!(refused, "{b}: agent runs never reached the budget (were they free?)");
        let spent: f64 = rows(&s, &uid).await.iter().map(|r| r.usage.cost_usd).sum();
        assert!(spent >= 0.05, "{b}: the runs were charged {spent}");
        for path in ["/api/v1/chat/mcp-agent", "/api/v1/chat/orchestrated", "/api/v1/chat"] {
            let r = s.post(path, &key).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 402, "{b} {path}: the runs' spend counts everywhere");
        }
    }
}

#[tokio::test]
async fn the_file_tool_gives_each_user_an_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    let mut cfg = agent_config();
    cfg.agents.fs_root = Some(root.clone());
    let s = start_with(sqlite_db(), Some(MockConfig::default()), cfg).await;
    let (alice, _, alice_id) = s.register("alice@example.com").await;
    let (bob, _, bob_id) = s.register("bob@example.com").await;
    std::fs::create_dir_all(root.join("users").join(&alice_id)).unwrap();
    std::fs::write(root.join("users").join(&alice_id).join("diary.txt"), "secret").unwrap();
    std::fs::write(root.join("shared-before.txt"), "left by someone").unwrap();
    let list = |token: String| {
        s.http
            .post(format!("{}/api/v1/chat/mcp-agent", s.url))
            .bearer_auth(token)
            .json(&json!({"message": "call tool fs__list_directory ", "model": "openai/mock-gpt"}))
            .send()
    };
    // Bob lists "the" folder: he sees his own (new, empty) folder, not the others' files.
    let r = list(bob.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["_metadata"]["tool_calls"][0]["ok"], true, "{v}");
    assert_eq!(v["_metadata"]["tool_calls"][0]["result"], "", "{v}");
    assert!(root.join("users").join(&bob_id).is_dir(), "made on demand");
    let v: Value = list(alice).await.unwrap().json().await.unwrap();
    assert_eq!(v["_metadata"]["tool_calls"][0]["result"], "diary.txt", "{v}");

    // A user folder that is a symbolic link out of the root is refused, not followed.
    #[cfg(unix)]
    {
        let (eve, _, eve_id) = s.register("eve@example.com").await;
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("users").join(&eve_id)).unwrap();
        let r = list(eve).await.unwrap();
        assert_eq!(r.status(), 500);
    }
}

/// A stdio "MCP server" that notes each start in `log` and then waits for `release` to appear (so a
/// request holds its process as long as the test wants), then exits.
fn waiting_server(log: &std::path::Path, release: &std::path::Path) -> gaia_core::config::McpServerConfig {
    let script =
        format!("echo started >> '{}'; while [ ! -e '{}' ]; do sleep 0.05; done", log.display(), release.display());
    serde_json::from_value(json!({"name": "slow", "transport": "stdio", "command": "sh", "args": ["-c", script]}))
        .unwrap()
}

fn starts(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).map(|t| t.lines().count()).unwrap_or(0)
}

#[cfg(unix)]
#[tokio::test]
async fn agent_requests_are_checked_before_mcp_servers_start_and_processes_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let (log, release) = (dir.path().join("starts.log"), dir.path().join("release"));
    let mut cfg = agent_config();
    cfg.mcp_servers = vec![waiting_server(&log, &release)];
    cfg.mcp_processes.max_concurrent = 1;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), cfg).await;
    let (token, _, _) = s.register("runner@example.com").await;
    let (_, _, other_id) = s.register("other@example.com").await;
    let theirs = s.state.storage().create_conversation_with_persona(&other_id, Some("t"), None, None).await.unwrap().id;
    let post = |body: Value| {
        s.http.post(format!("{}/api/v1/chat/mcp-agent", s.url)).bearer_auth(token.clone()).json(&body).send()
    };

    // Bad requests start nothing.
    for (body, status) in [
        (json!({"message": "  "}), 400),
        (json!({"message": "x", "nope": 1}), 400),
        (json!({"message": "x", "model": "nope/none"}), 404),
        (json!({"message": "x", "persona_id": "nope"}), 404),
        (json!({"message": "x", "conversation_id": theirs}), 404),
    ] {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    assert_eq!(starts(&log), 0, "no MCP server process was started for a bad request");

    // One request holds the only process slot; a second one meanwhile is refused with Retry-After.
    let first = tokio::spawn(post(json!({"message": "first", "model": "openai/mock-gpt"})));
    assert!(
        {
            let mut started = false;
            for _ in 0..500 {
                if starts(&log) == 1 {
                    started = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            started
        },
        "the first request started its server"
    );
    let r = post(json!({"message": "second", "model": "openai/mock-gpt"})).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(starts(&log), 1, "the refused request started nothing");
    // Released: the first finishes (without the broken server's tools), and the slot is free again.
    std::fs::write(&release, "").unwrap();
    let r = first.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = post(json!({"message": "third", "model": "openai/mock-gpt"})).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// An agent configuration whose runs can call the tool `ops__wait` of the MCP server at `url`.
fn ops_config(url: &str) -> Config {
    let mut cfg = agent_config();
    cfg.mcp_servers = vec![serde_json::from_value(json!({"name": "ops", "transport": "http", "url": url})).unwrap()];
    cfg
}

/// Each run is given what is left of the caller's budgets when it starts, and its spending is
/// recorded as its calls end: many runs started at once would each get the whole of what is left.
/// The attack: a user starts runs in parallel. Beyond `agents.max_concurrent_runs_per_user` (2),
/// further agent and orchestrated runs are refused (429 + `Retry-After`) until one ends; other users
/// are not held up.
async fn parallel_runs_are_capped_per_user(db: TestDb) {
    // A tool that holds its run until released.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, n) = (gate.clone(), started.clone());
    let wait = McpTestServer::one("wait", "Waits", move |_| {
        let (g, n) = (g.clone(), n.clone());
        async move {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = g.acquire().await;
            "done".to_string()
        }
    });
    let url = wait.serve().await;
    let (s, key, _) = priced_user(db, ops_config(&url), "parallel@example.com").await;
    let b = s.backend;
    assert_eq!(s.state.config().agents.max_concurrent_runs_per_user, 2, "the default");
    let held = json!({"message": "call tool ops__wait now", "model": "openai/mock-gpt"});
    let first = tokio::spawn(s.post("/api/v1/chat/mcp-agent", &key).json(&held).send());
    let mut streamed = held.clone();
    streamed["stream"] = json!(true);
    let second = tokio::spawn(s.post("/api/v1/chat/mcp-agent-hot", &key).json(&streamed).send());
    let running = || started.load(std::sync::atomic::Ordering::SeqCst) >= 2;
    assert!(crate::common::eventually(running).await, "{b}: both runs reached the tool");

    let quick = json!({"message": "hi", "model": "openai/mock-gpt"});
    for path in ["/api/v1/chat/mcp-agent", "/api/v1/chat/mcp-agent-hot", "/api/v1/chat/orchestrated"] {
        let r = s.post(path, &key).json(&quick).send().await.unwrap();
        assert_eq!(r.status(), 429, "{b} {path}");
        assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"), "{b} {path}");
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("max_concurrent_runs_per_user"), "{b}: {v}");
    }
    // Another user is not held up.
    let (other, _, _) = s.register("other@example.com").await;
    let (other_key, _) = s.api_key(&other).await;
    let r = s.post("/api/v1/chat/mcp-agent", &other_key).json(&quick).send().await.unwrap();
    assert_eq!(r.status(), 200, "{b}");

    // The held runs end; their places are given back (the streamed one's too, once its run ended).
    gate.add_permits(1_000);
    let r = first.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "{b}");
    let r = second.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "{b}");
    assert!(r.text().await.unwrap().contains("\"done\""), "{b}");
    for path in ["/api/v1/chat/mcp-agent", "/api/v1/chat/orchestrated"] {
        let r = s.post(path, &key).json(&quick).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b} {path}");
    }
}

#[tokio::test]
async fn parallel_agent_runs_of_one_user_are_capped() {
    for db in database_urls().await {
        parallel_runs_are_capped_per_user(db).await;
    }
}

/// A run whose budget is spent after its first model call (which asked for a tool) ends there with a
/// clear result: no last "answer now" call with the whole context, which would spend past the budget.
async fn a_spent_budget_makes_no_final_call(db: TestDb) {
    let tool = McpTestServer::one("wait", "Answers at once", |_| async { "done".to_string() });
    let url = tool.serve().await;
    let mut cfg = ops_config(&url);
    cfg.agents.limits.daily_cost_ceiling = Some(0.001);
    let (s, key, uid) = priced_user(db, cfg, "spent@example.com").await;
    let b = s.backend;
    let body = json!({"message": "call tool ops__wait now", "model": "openai/mock-gpt"});
    let r = s.post("/api/v1/chat/mcp-agent", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{b}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["_metadata"]["stopped"], "budget exhausted", "{b}: {v}");
    assert!(v["response"].as_str().unwrap().contains("budget exhausted"), "{b}: {v}");
    assert_eq!(v["_metadata"]["tool_calls"].as_array().map(Vec::len), Some(1), "{b}: {v}");
    let calls = by_endpoint(&rows(&s, &uid).await).remove("mcp_agent").unwrap_or_default();
    assert_eq!(calls.len(), 1, "{b}: one model call, no final answer call: {calls:?}");
}

#[tokio::test]
async fn an_agent_whose_budget_is_spent_ends_without_a_final_call() {
    for db in database_urls().await {
        a_spent_budget_makes_no_final_call(db).await;
    }
}
