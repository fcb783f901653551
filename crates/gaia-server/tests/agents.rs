//! `/api/v1/chat/mcp-agent` and `/mcp-agent-hot` over HTTP: a configured MCP server (an rmcp server,
//! `common::mcp`, over Streamable HTTP), the mock upstream scripted to call its tools, streaming
//! progress, the stored conversation, warm agents reusing their connection, the cost ceiling.

use crate::common;

use common::mcp::McpTestServer;
use common::{start_with, Fetch};
use gaia_core::testing::sqlite_db;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// A game server with one tool.
fn game() -> McpTestServer {
    McpTestServer::one("quest_status", "Status of a quest", |q| async move { format!("{q}: 2 of 3 steps done") })
}

fn config(url: &str) -> gaia_core::Config {
    let mut c =
        gaia_core::Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Default::default() };
    c.chat.auto_title = false;
    c.chat.memory = false;
    c.rbac.first_user_admin = false;
    c.mcp_servers = vec![serde_json::from_value(json!({"name": "game", "transport": "http", "url": url})).unwrap()];
    c
}

#[tokio::test]
async fn agents_call_mcp_tools_and_warm_agents_stay_connected() {
    let game = game();
    let url = game.serve().await;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config(&url)).await;
    let (token, _, _) = s.register("hero@example.com").await;
    let post =
        |path: &str, body: Value| s.http.post(format!("{}/api/v1{path}", s.url)).bearer_auth(&token).json(&body).send();

    // One agent for the request.
    let r = post(
        "/chat/mcp-agent",
        json!({"message": "call tool game__quest_status dragon hunt", "model": "openai/mock-gpt"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["response"], "Tool result received: dragon hunt: 2 of 3 steps done", "{v}");
    assert_eq!(v["_metadata"]["tool_calls"][0]["name"], "game__quest_status");
    assert_eq!(v["_metadata"]["tool_calls"][0]["ok"], true);
    assert_eq!(v["_metadata"]["iterations"], 2);
    assert!(v["_metadata"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let conv = v["conversation_id"].as_str().unwrap().to_string();
    let msgs: Value =
        s.http.get(format!("{}/api/v1/conversations/{conv}/messages", s.url)).bearer_auth(&token).fetch_json().await;
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 2, "the request and the answer are stored");

    // Streamed: progress events, then done.
    let r = post(
        "/chat/mcp-agent",
        json!({"message": "call tool game__quest_status lost cat", "stream": true, "conversation_id": conv}),
    )
    .await
    .unwrap();
    let body = r.text().await.unwrap();
    let events: Vec<Value> = common::sse_data(&body).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["metadata", "thinking", "tool_started", "tool_finished", "thinking", "text", "done"], "{body}");
    assert_eq!(events.last().unwrap()["response"], "Tool result received: lost cat: 2 of 3 steps done");

    // Cold agents list the server's tools on every request; warm ones once.
    let before = game.listings.load(Ordering::SeqCst);
    assert_eq!(before, 2);
    for i in 0..3 {
        let r = post("/chat/mcp-agent-hot", json!({"message": format!("call tool game__quest_status q{i}")}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["_metadata"]["tool_calls"][0]["ok"], true, "{v}");
    }
    assert_eq!(game.listings.load(Ordering::SeqCst), before + 1, "the warm agents listed the tools once");

    // Bad input: empty message, unknown model, someone else's conversation.
    assert_eq!(post("/chat/mcp-agent", json!({"message": " "})).await.unwrap().status(), 400);
    assert_eq!(post("/chat/mcp-agent", json!({"message": "x", "model": "nope/none"})).await.unwrap().status(), 404);
    let (other, _, _) = s.register("other@example.com").await;
    let r = s
        .http
        .post(format!("{}/api/v1/chat/mcp-agent", s.url))
        .bearer_auth(&other)
        .json(&json!({"message": "x", "conversation_id": conv}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_daily_cost_ceiling_refuses_new_runs() {
    let url = game().serve().await;
    let mut c = config(&url);
    c.agents.limits.daily_cost_ceiling = Some(0.0);
    let s = start_with(sqlite_db(), Some(MockConfig::default()), c).await;
    let (token, _, _) = s.register("hero@example.com").await;
    let r = s
        .http
        .post(format!("{}/api/v1/chat/mcp-agent", s.url))
        .bearer_auth(&token)
        .json(&json!({"message": "call tool game__quest_status x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("cost ceiling"), "{v}");
}

#[tokio::test]
async fn orchestrated_runs_report_every_agent() {
    let url = game().serve().await;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config(&url)).await;
    let (token, _, _) = s.register("hero@example.com").await;
    let post =
        |body: Value| s.http.post(format!("{}/api/v1/chat/orchestrated", s.url)).bearer_auth(&token).json(&body).send();
    // The mock coordinator echoes the task: a task that is a plan is taken as the plan.
    let plan = r#"{"subtasks": [{"agent": "operator", "task": "call tool game__quest_status bridge"}, {"agent": "scribe", "task": "summarise"}]}"#;
    let agents = json!([
        {"name": "operator", "description": "uses the game's tools", "tools": ["game"]},
        {"name": "scribe", "description": "writes", "system": "You write summaries.", "tools": []}
    ]);
    let r = post(json!({"message": plan, "agents": agents})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["_metadata"]["planned_by_model"], true, "{v}");
    let a = v["_metadata"]["agents"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["agent"], "operator");
    assert_eq!(a[0]["tool_calls"][0]["name"], "game__quest_status", "{v}");
    assert_eq!(a[0]["tool_calls"][0]["ok"], true);
    assert_eq!(a[1]["ok"], true);
    assert!(a[1]["tool_calls"].as_array().unwrap().is_empty(), "the scribe has no tools");
    assert!(v["_metadata"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(!v["response"].as_str().unwrap().is_empty());

    // Streamed: the plan, each agent's start and end, their tool calls, then done.
    let r = post(json!({"message": plan, "agents": agents, "stream": true})).await.unwrap();
    let body = r.text().await.unwrap();
    let kinds: Vec<String> = common::sse_data(&body)
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    for k in ["planned", "agent_started", "tool_started", "tool_finished", "agent_finished", "done"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    assert_eq!(kinds.first().map(String::as_str), Some("planned"));
    assert_eq!(kinds.last().map(String::as_str), Some("done"));

    // Default specialists; bad input.
    let r = post(json!({"message": "Where is the bridge?"})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let names: Vec<&str> =
        v["_metadata"]["agents"].as_array().unwrap().iter().map(|a| a["agent"].as_str().unwrap()).collect();
    assert_eq!(names, ["operator"], "no knowledge base here, so no librarian");
    let r = post(json!({"message": "x", "agents": [{"name": "a", "tools": ["nope"]}]})).await.unwrap();
    assert_eq!(r.status(), 400);
    let too_many: Vec<Value> = (0..9).map(|i| json!({"name": format!("a{i}")})).collect();
    assert_eq!(post(json!({"message": "x", "agents": too_many})).await.unwrap().status(), 400);
}

#[tokio::test]
async fn gaia_is_an_mcp_server_over_http_for_key_holders() {
    use gaia_mcp::{McpClientSource, ToolSource};
    let s = common::start(sqlite_db(), Some(MockConfig::default())).await;
    let (token, _, uid) = s.register("agent@example.com").await;
    let (key, _) = s.api_key(&token).await;
    // A knowledge base with a common note and someone's private note.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    std::fs::create_dir_all(root.join("users/someone")).unwrap();
    std::fs::write(root.join("lore.md"), "# Lore\nThe moonstone sleeps.").unwrap();
    std::fs::write(root.join("users/someone/secret.md"), "# Secret\nThe moonstone is mine.").unwrap();
    let kb = gaia_kb::Kb::open(gaia_kb::KbConfig { root, sync_interval_secs: 0, ..Default::default() }).await.unwrap();
    s.state.set_kb(kb);
    let cfg = |headers: Value| -> gaia_core::config::McpServerConfig {
        serde_json::from_value(
            json!({"name": "gaia", "transport": "http", "url": format!("{}/mcp", s.url), "headers": headers}),
        )
        .unwrap()
    };
    // Without a key: refused.
    let anon = McpClientSource::new(cfg(json!({})));
    assert!(anon.specs().await.is_err());
    let client = McpClientSource::new(cfg(json!({"authorization": format!("Bearer {key}")})));
    let specs = client.specs().await.unwrap();
    let names: Vec<&str> = specs.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"gaia__chat") && names.contains(&"kb__search_knowledge_base"), "{names:?}");
    // Chat through Gaia, metered for the key's owner.
    let answer = client
        .call("gaia__chat", r#"{"message": "Who guards the bridge?", "model": "openai/mock-gpt"}"#)
        .await
        .unwrap();
    assert_eq!(answer, "Mock reply to: Who guards the bridge?");
    // Knowledge-base search sees only what the caller may read.
    let hits: Value =
        serde_json::from_str(&client.call("kb__search_knowledge_base", r#"{"query": "moonstone"}"#).await.unwrap())
            .unwrap();
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(hits["hits"][0]["path"], "lore.md");
    let e = client.call("kb__read_kb_file", r#"{"path": "users/someone/secret.md"}"#).await.unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    // The chat was recorded as usage of this user.
    let mut recorded = false;
    for _ in 0..100 {
        let u: Value = s.http.get(format!("{}/api/v1/usage", s.url)).bearer_auth(&token).fetch_json().await;
        if u["totals"]["requests"].as_i64().unwrap_or(0) >= 1 {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recorded, "usage of {uid} recorded");
    // The chat tool obeys the caller's rate limits like the chat endpoints.
    s.state.storage().set_rate_limit(gaia_core::storage::LimitScope::User, &uid, Some(1), None, None).await.unwrap();
    s.state.quotas().settings_changed();
    let chat = r#"{"message": "Again?", "model": "openai/mock-gpt"}"#;
    assert!(client.call("gaia__chat", chat).await.is_ok());
    let e = client.call("gaia__chat", chat).await.unwrap_err();
    assert!(e.to_string().contains("rate limit reached"), "{e}");
}
