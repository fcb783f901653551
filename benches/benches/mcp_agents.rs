//! Warm against cold agents: `POST /api/v1/chat/mcp-agent-hot` (MCP servers already connected, tool
//! lists cached) against `POST /api/v1/chat/mcp-agent` (connect, initialize and list per request),
//! both running one tool call on an MCP server over Streamable HTTP and two model calls on the mock
//! upstream. Baseline, in the same run: a plain `POST /api/v1/chat` (one model call, a persona without
//! tools). And chat turns with the knowledge-base tools offered (the default persona): one where the
//! model uses none (what a turn with no useful tool costs), one where it searches once.
//!
//! `cargo bench -p gaia-benches --bench mcp_agents`

use criterion::{criterion_group, criterion_main, Criterion};
use gaia_core::cache::MemoryCache;
use gaia_core::storage::Storage;
use gaia_core::Config;
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use gaia_server::AppState;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    url: String,
    key: String,
    /// A persona without tools.
    silent: String,
    http: reqwest::Client,
    _dir: std::path::PathBuf,
}

async fn setup() -> Setup {
    // The game's MCP server.
    let game = gaia_mcp::testing::McpTestServer::one("roll", "Roll dice", |_| async { "rolled 4".to_string() });
    let mcp_url = game.serve().await;
    // Gaia, on SQLite, with the mock upstream.
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let registry = ProviderRegistry::new();
    registry.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), Some("k".into())))));
    std::mem::forget(mock);
    let dir = std::env::temp_dir().join(format!("gaia-bench-mcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let storage = Storage::connect(&format!("sqlite://{}/bench.db", dir.display())).await.unwrap();
    storage.migrate().await.unwrap();
    let mut config = Config { jwt_secret: Some("bench-secret-0123456789-0123456789".into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.mcp_servers =
        vec![serde_json::from_value(json!({"name": "game", "transport": "http", "url": mcp_url})).unwrap()];
    let state = AppState::new(config, storage.clone(), Arc::new(MemoryCache::new(10_000)), registry);
    // A small knowledge base, so that chat turns are offered its tools.
    let vault = dir.join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    for (name, text) in [
        ("Fog", "The fog rolls in at dusk."),
        ("Mill", "The old mill hides the bunker."),
        ("Bridge", "Ravens guard the bridge."),
    ] {
        std::fs::write(vault.join(format!("{name}.md")), format!("# {name}\n{text}\n")).unwrap();
    }
    let kb = gaia_kb::Kb::open(gaia_kb::KbConfig { root: vault, sync_interval_secs: 0, ..Default::default() })
        .await
        .unwrap();
    state.set_kb(kb);
    let user = storage.create_user("bench@example.com", None, None).await.unwrap();
    let silent = gaia_core::storage::PersonaInput {
        name: Some("Silent".into()),
        system_prompt: Some("You answer.".into()),
        tools: Some(Vec::new()),
        ..Default::default()
    };
    let silent = storage.create_persona(&user.id, &silent).await.unwrap().id;
    let (_, key) = state.auth().create_api_key(&user.id, None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        gaia_server::serve(listener, state, std::future::pending()).await.unwrap();
    });
    Setup { url, key, silent, http: reqwest::Client::new(), _dir: dir }
}

async fn post(s: &Setup, path: &str, body: serde_json::Value) {
    let r = s.http.post(format!("{}{path}", s.url)).header("x-api-key", &s.key).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.bytes().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup());
    let agent_body = json!({"message": "call tool game__roll d20", "model": "openai/mock-gpt"});
    // Check the runs call the tool once before timing them.
    rt.block_on(post(&s, "/api/v1/chat/mcp-agent", agent_body.clone()));
    rt.block_on(post(&s, "/api/v1/chat/mcp-agent-hot", agent_body.clone()));
    let mut g = c.benchmark_group("mcp_agents");
    let plain = json!({"message": "hello", "model": "openai/mock-gpt", "persona_id": s.silent});
    let offered = json!({"message": "hello", "model": "openai/mock-gpt"});
    let searched = json!({"message": "call tool kb__search_knowledge_base fog", "model": "openai/mock-gpt"});
    g.bench_function("baseline_plain_chat", |b| b.to_async(&rt).iter(|| post(&s, "/api/v1/chat", plain.clone())));
    g.bench_function("chat_kb_tools_offered_none_used", |b| {
        b.to_async(&rt).iter(|| post(&s, "/api/v1/chat", offered.clone()))
    });
    g.bench_function("chat_kb_tools_one_search", |b| {
        b.to_async(&rt).iter(|| post(&s, "/api/v1/chat", searched.clone()))
    });
    g.bench_function("cold_agent_one_tool_call", |b| {
        b.to_async(&rt).iter(|| post(&s, "/api/v1/chat/mcp-agent", agent_body.clone()))
    });
    g.bench_function("warm_agent_one_tool_call", |b| {
        b.to_async(&rt).iter(|| post(&s, "/api/v1/chat/mcp-agent-hot", agent_body.clone()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
