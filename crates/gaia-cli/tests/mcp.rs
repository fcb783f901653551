//! `gaia mcp serve`: the project's own binary as a stdio MCP server, driven by Gaia's MCP client
//! (rmcp), over the sample vault in `../shared/kb-fixtures/world`; its `gaia__chat` asks as the user
//! named by `--user`, through the conversation engine (metered to them); then an agent using it.

use gaia_core::config::McpServerConfig;
use gaia_mcp::{Agent, McpClientSource, ToolSource, Toolbox};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use serde_json::json;
use std::sync::Arc;

fn world() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kb-fixtures/world");
    p.canonicalize().unwrap().display().to_string()
}

fn db_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("mcp.db").display())
}

fn server(dir: &std::path::Path, openai_url: &str, user: Option<&str>) -> McpServerConfig {
    let db = db_url(dir);
    let mut args = vec!["mcp".to_string(), "serve".into(), "--root".into(), world()];
    if let Some(u) = user {
        args.extend(["--user".to_string(), u.to_string()]);
    }
    serde_json::from_value(json!({
        "name": "gaia", "transport": "stdio", "command": env!("CARGO_BIN_EXE_gaia"),
        "args": args,
        "env": {"GAIA_DATABASE_URL": db, "RUST_LOG": "warn", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_url},
        "call_timeout_secs": 20
    }))
    .unwrap()
}

#[tokio::test]
async fn gaia_serves_its_knowledge_base_over_stdio_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let m = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    // Without --user, no chat tool: nothing may call a model unmetered.
    let anonymous = McpClientSource::new(server(dir.path(), &m.openai_base_url(), None));
    let names: Vec<String> = anonymous.specs().await.unwrap().into_iter().map(|s| s.name).collect();
    assert!(!names.iter().any(|n| n == "gaia__chat"), "{names:?}");
    assert!(names.iter().any(|n| n == "kb__search_knowledge_base"), "{names:?}");
    drop(anonymous);
    let storage = gaia_core::storage::Storage::connect(&db_url(dir.path())).await.unwrap();
    storage.migrate().await.unwrap();
    let user = storage.create_user("operator@example.com", None, None).await.unwrap();
    let src = McpClientSource::new(server(dir.path(), &m.openai_base_url(), Some("operator@example.com")));
    let specs = src.specs().await.unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for t in
        ["kb__search_knowledge_base", "kb__read_kb_file", "kb__list_kb_directory", "kb__load_kos_context", "gaia__chat"]
    {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    let hits = src.call("kb__search_knowledge_base", r#"{"query": "safe house"}"#).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&hits).unwrap();
    assert!(v["total"].as_u64().unwrap() >= 1, "{v}");
    // Tool failures come back as tool errors with the reason, not protocol errors.
    let e = src.call("kb__read_kb_file", r#"{"path": "../etc/passwd"}"#).await.unwrap_err();
    assert!(e.to_string().contains("kb__read_kb_file"), "{e}");

    // Chat through the served Gaia (its providers come from OPENAI_* here).
    let answer = src.call("gaia__chat", r#"{"message": "Hello there"}"#).await.unwrap();
    assert_eq!(answer, "Mock reply to: Hello there");
    // Metered to the named user, like `/mcp`'s chat tool.
    let filter =
        gaia_core::storage::UsageFilter { user_id: Some(user.id.clone()), since: None, until: None, end_user: None };
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = storage.list_usage(&filter, 10).await.unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].usage.endpoint.as_str(), rows[0].usage.status), ("mcp_chat", 200));
    // Bad input is a tool error, not a crash.
    let e = src.call("gaia__chat", r#"{"message": "   "}"#).await.unwrap_err();
    assert!(e.to_string().contains("message"), "{e}");

    // An agent whose model asks for the served tool.
    let reg = ProviderRegistry::new();
    reg.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(m.openai_base_url(), Some("k".into())))));
    let mut tools = Toolbox::new();
    tools.add(Arc::new(src));
    assert!(tools.refresh().await.is_empty());
    let agent = Agent::new("librarian", reg, "mock-gpt", Arc::new(tools));
    let msg = gaia_core::types::ChatMessage::user("call tool gaia__kb__search_knowledge_base safe house");
    let run = agent.run(vec![msg], None).await.unwrap();
    assert!(run.tool_calls[0].ok, "{:?}", run.tool_calls);
    assert!(run.content.starts_with("Tool result received: {"), "{}", run.content);
}
