//! Tools in every chat turn: `/api/v1/chat` and `/api/v0.3/chat` offer the model the tools of the
//! turn's persona (by default the knowledge base's, as the caller may read it), and the model decides.
//! The mock upstream is scripted to call a tool when the message says `call tool NAME ...`.

use crate::common::mcp::McpTestServer;
use crate::common::{sse_data, start, start_with, TestServer};
use gaia_core::testing::{database_urls, sqlite_db};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

const SEARCH: &str = "kb__search_knowledge_base";

/// A knowledge base with a common note and another user's private note.
fn vault() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    std::fs::create_dir_all(root.join("users/someone")).unwrap();
    std::fs::write(root.join("lore.md"), "# Lore\nThe moonstone sleeps under the old bridge.").unwrap();
    std::fs::write(root.join("users/someone/secret.md"), "# Secret\nThe moonstone is mine.").unwrap();
    (dir, root)
}

async fn with_kb(s: &TestServer, root: std::path::PathBuf) {
    let kb = gaia_kb::Kb::open(gaia_kb::KbConfig { root, sync_interval_secs: 0, ..Default::default() }).await.unwrap();
    s.state.set_kb(kb);
}

/// The names of the tools the model was last offered.
fn offered(s: &TestServer) -> Vec<String> {
    let last = s.mock.as_ref().unwrap().last_request().unwrap();
    last["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().or_else(|| t["name"].as_str()).map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_chat_turn_searches_the_knowledge_base_when_the_model_asks() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (_dir, root) = vault();
        with_kb(&s, root).await;
        let (token, _, _) = s.register("player@example.com").await;
        let (token, _) = s.api_key(&token).await;
        let message = format!("call tool {SEARCH} moonstone");
        // Both vendors' wire formats upstream, whole and streamed, both chat APIs.
        for model in ["openai/mock-gpt", "anthropic/mock-claude"] {
            let body = json!({"message": message, "model": model});
            let r: Value = s.post("/api/v1/chat", &token).json(&body).send().await.unwrap().json().await.unwrap();
            let answer = r["choices"][0]["message"]["content"].as_str().unwrap_or_default();
            assert!(answer.starts_with("Tool result received:") && answer.contains("lore.md"), "{b} {model}: {r}");
            assert!(!answer.contains("secret.md"), "{b} {model}: another user's note leaked: {answer}");
            assert_eq!(r["_metadata"]["tools_used"], json!([SEARCH]), "{b} {model}");
            assert!(offered(&s).contains(&SEARCH.to_string()), "{b} {model}");

            let r: Value = s.post("/api/v0.3/chat", &token).json(&body).send().await.unwrap().json().await.unwrap();
            assert!(r["response"].as_str().unwrap_or_default().contains("lore.md"), "{b} {model}: {r}");
            assert_eq!(r["_metadata"]["tools_used"], json!([SEARCH]), "{b} {model}");

            let mut streamed = body.clone();
            streamed["stream"] = json!(true);
            let text = s.post("/api/v1/chat", &token).json(&streamed).send().await.unwrap().text().await.unwrap();
            let events: Vec<Value> =
                sse_data(&text).iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
            let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
            assert_eq!(kinds, ["metadata", "tool_call", "tool_result"], "{b} {model}: {text}");
            let call = events.iter().find(|e| e["type"] == "tool_call").unwrap();
            assert_eq!(call["name"], SEARCH);
            assert!(call["arguments"].as_str().unwrap_or_default().contains("moonstone"), "{call}");
            assert_eq!(events.iter().find(|e| e["type"] == "tool_result").unwrap()["ok"], true);
            let content: String = events.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
            assert!(content.contains("lore.md") && !content.contains("secret.md"), "{b} {model}: {content}");
            let last = events.last().unwrap();
            assert_eq!(last["_metadata"]["tools_used"], json!([SEARCH]), "{b} {model}: {last}");
            assert!(last["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0, "{b} {model}: {last}");
            // The tool events sit between the first chunk and the answer's text.
            let first_text =
                events.iter().position(|e| e["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()));
            let tool = events.iter().position(|e| e["type"] == "tool_result");
            assert!(tool < first_text, "{b} {model}: {text}");

            let text = s.post("/api/v0.3/chat", &token).json(&streamed).send().await.unwrap().text().await.unwrap();
            let events: Vec<Value> = sse_data(&text).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            let kinds: Vec<&str> =
                events.iter().filter_map(|e| e["type"].as_str()).filter(|k| *k != "content").collect();
            assert_eq!(kinds, ["metadata", "tool_call", "tool_result", "done"], "{b} {model}: {text}");
            assert_eq!(events.last().unwrap()["tools_used"], json!([SEARCH]));
        }

        // A plain question: tools are offered, none is used, and the answer is the model's.
        let r: Value = s
            .post("/api/v1/chat", &token)
            .json(&json!({"message": "Hello there", "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["choices"][0]["message"]["content"], "Mock reply to: Hello there", "{b}");
        assert_eq!(r["_metadata"]["tools_used"], json!([]), "{b}");
    }
}

#[tokio::test]
async fn a_persona_sees_only_the_tools_it_names() {
    let game = McpTestServer::one("inventory", "The player's inventory", |q| async move { format!("a lantern ({q})") });
    let url = game.serve().await;
    let mut config = gaia_core::Config {
        jwt_secret: Some("integration-test-secret-0123456789".into()),
        ..gaia_core::Config::default()
    };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    config.mcp_servers =
        vec![serde_json::from_value(json!({"name": "game", "transport": "http", "url": url})).unwrap()];
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let (_dir, root) = vault();
    with_kb(&s, root).await;
    let (token, _, _) = s.register("designer@example.com").await;
    let (token, _) = s.api_key(&token).await;
    let persona = |tools: Value| {
        let s = &s;
        let token = token.clone();
        async move {
            let body = json!({"name": "NPC", "system_prompt": "You are an NPC.", "tools": tools});
            let r: Value = s.post("/api/v1/personas", &token).json(&body).send().await.unwrap().json().await.unwrap();
            assert_eq!(r["tools"], tools, "{r}");
            r["id"].as_str().unwrap().to_string()
        }
    };
    let chat = |persona: String, message: String| {
        let s = &s;
        let token = token.clone();
        async move {
            let body = json!({"message": message, "model": "openai/mock-gpt", "persona_id": persona});
            let r: Value = s.post("/api/v1/chat", &token).json(&body).send().await.unwrap().json().await.unwrap();
            r
        }
    };

    // No tools: none offered, so a "call tool" request is just text to the model.
    let silent = persona(json!([])).await;
    let r = chat(silent, format!("call tool {SEARCH} moonstone")).await;
    assert_eq!(r["choices"][0]["message"]["content"], format!("Mock reply to: call tool {SEARCH} moonstone"), "{r}");
    assert!(offered(&s).is_empty(), "{:?}", offered(&s));
    assert_eq!(game.listings.load(std::sync::atomic::Ordering::SeqCst), 0, "the MCP server was not even reached");

    // An NPC with its own game tool only: the knowledge base is not offered.
    let npc = persona(json!(["game"])).await;
    let r = chat(npc.clone(), "call tool game__inventory backpack".into()).await;
    assert_eq!(offered(&s), ["game__inventory"]);
    assert!(r["choices"][0]["message"]["content"].as_str().unwrap().contains("a lantern (backpack)"), "{r}");
    assert_eq!(r["_metadata"]["tools_used"], json!(["game__inventory"]));
    // Asking it for a tool it does not have: not offered, not run.
    let r = chat(npc, format!("call tool {SEARCH} moonstone")).await;
    assert_eq!(r["_metadata"]["tools_used"], json!([]), "{r}");

    // A game master with both.
    let gm = persona(json!(["kb", "game"])).await;
    chat(gm, "Hello".into()).await;
    let mut both = offered(&s);
    both.sort();
    assert_eq!(both.first().map(String::as_str), Some("game__inventory"));
    assert!(both.iter().any(|t| t == SEARCH), "{both:?}");

    // Bad tool lists are refused.
    for bad in
        [json!(["no spaces"]), json!(["x".repeat(65)]), json!((0..33).map(|i| format!("t{i}")).collect::<Vec<_>>())]
    {
        let body = json!({"name": "Bad", "system_prompt": "x", "tools": bad});
        let r = s.post("/api/v1/personas", &token).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}
