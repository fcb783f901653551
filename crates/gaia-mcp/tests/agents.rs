//! The agent runtime against real MCP servers and the mock upstream: an rmcp server written here
//! (served over Streamable HTTP), a Rust tool, the filesystem tool; the mock model scripted to call
//! tools ("call tool NAME ARGS"). Tool-call limits, tool errors, parallel calls, a server crash in the
//! middle of a call and its restart.

use gaia_core::config::{AgentLimits, McpServerConfig};
use gaia_core::types::ChatMessage;
use gaia_mcp::testing::McpTestServer;
use gaia_mcp::{Agent, AgentEvent, FnTool, FsToolSource, McpClientSource, Toolbox};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type RunLog = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

/// The game's MCP server: `roll` answers, `broken` fails, `slow` takes a while and logs when it ran.
fn game(log: RunLog) -> McpTestServer {
    McpTestServer::new()
        .with_tool("roll", "Roll dice", |q| async move { Ok(format!("rolled 4 on {q}")) })
        .with_tool("broken", "Always fails", |_| async { Err("the dice fell off the table".to_string()) })
        .with_tool("slow", "Takes 400 ms", move |q| {
            let log = log.clone();
            async move {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(400)).await;
                log.lock().unwrap().push((q.clone(), start, Instant::now()));
                Ok(format!("slow {q} done"))
            }
        })
}

/// A TCP proxy in front of a server: aborting its task closes every connection at once, as a crash of
/// the server's process would.
async fn proxy(addr: &str, target: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

async fn registry() -> (ProviderRegistry, gaia_providers::mock::MockHandle) {
    let m = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let reg = ProviderRegistry::new();
    reg.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(m.openai_base_url(), Some("sk-test".into())))));
    (reg, m)
}

fn game_config(addr: std::net::SocketAddr) -> McpServerConfig {
    serde_json::from_value(
        json!({"name": "game", "transport": "http", "url": format!("http://{addr}/mcp"), "call_timeout_secs": 5}),
    )
    .unwrap()
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::user(text)]
}

#[tokio::test]
async fn an_agent_uses_mcp_rust_and_filesystem_tools() {
    let (reg, _mock) = registry().await;
    let log = RunLog::default();
    let (addr, _server) = game(log.clone()).serve_on("127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    let mut tools = Toolbox::new();
    tools.add(Arc::new(McpClientSource::new(game_config(addr))));
    tools.add(Arc::new(FnTool::new("npc", "mood", "The NPC's mood", json!({"type": "object"}), |_| async {
        Ok("cheerful".to_string())
    })));
    tools.add(Arc::new(FsToolSource::new(dir.path()).unwrap()));
    assert!(tools.refresh().await.is_empty());
    let names: Vec<&str> = tools.specs().iter().map(|s| s.name.as_str()).collect();
    for n in ["game__roll", "game__broken", "game__slow", "npc__mood", "fs__read_file", "fs__write_file"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let agent = Agent::new("scout", reg, "mock-gpt", Arc::new(tools));

    // One call through MCP, with progress events.
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let run = agent.run(user("call tool game__roll d20"), Some(tx)).await.unwrap();
    assert_eq!(run.tool_calls.len(), 1);
    assert!(run.tool_calls[0].ok && run.tool_calls[0].result == "rolled 4 on d20", "{:?}", run.tool_calls);
    assert_eq!(run.content, "Tool result received: rolled 4 on d20");
    assert_eq!(run.iterations, 2);
    assert!(run.usage.input_tokens > 0 && run.stopped.is_none());
    let mut kinds = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        kinds.push(match ev {
            AgentEvent::Thinking { .. } => "thinking",
            AgentEvent::ToolStarted { .. } => "tool_started",
            AgentEvent::ToolFinished { .. } => "tool_finished",
            AgentEvent::Text { .. } => "text",
            _ => "other",
        });
    }
    assert_eq!(kinds, ["thinking", "tool_started", "tool_finished", "thinking", "text"]);

    // A failing tool is reported to the model, and the run goes on to an answer.
    let run = agent.run(user("call tool game__broken now"), None).await.unwrap();
    assert!(!run.tool_calls[0].ok && run.tool_calls[0].result.contains("fell off the table"), "{:?}", run.tool_calls);
    assert!(run.content.starts_with("Tool result received: error:"), "{}", run.content);

    // Rust and filesystem tools.
    let run = agent.run(user("call tool npc__mood x"), None).await.unwrap();
    assert_eq!(run.content, "Tool result received: cheerful");
    std::fs::write(dir.path().join("map.txt"), "the cave is north").unwrap();
    let run = agent.run(user("call tool fs__list_directory"), None).await.unwrap();
    assert!(run.content.contains("map.txt"), "{}", run.content);

    // Two calls at once run in parallel: their runs on the server overlap.
    let run = agent.run(user("call tool game__slow a call tool game__slow b"), None).await.unwrap();
    assert_eq!(run.tool_calls.len(), 2, "{:?}", run.tool_calls);
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    let (a, b) = (&log[0], &log[1]);
    assert!(a.1 < b.2 && b.1 < a.2, "the two calls overlapped in time");
}

#[tokio::test]
async fn limits_stop_the_loop_with_a_clear_answer() {
    let (reg, mock) = registry().await;
    let (addr, _server) = game(RunLog::default()).serve_on("127.0.0.1:0").await;
    let mut tools = Toolbox::new();
    tools.add(Arc::new(McpClientSource::new(game_config(addr))));
    tools.refresh().await;
    let limits = AgentLimits { max_tool_calls: 1, ..AgentLimits::default() };
    let agent = Agent::new("scout", reg.clone(), "mock-gpt", Arc::new(tools.clone())).with_limits(limits);
    let run = agent.run(user("call tool game__roll a call tool game__roll b"), None).await.unwrap();
    assert_eq!(run.tool_calls.len(), 1, "only the budget's worth of calls ran");
    assert!(run.stopped.as_deref().unwrap_or_default().contains("max_tool_calls"), "{:?}", run.stopped);
    assert!(!run.content.is_empty(), "a final answer");
    // The final call went out without tools.
    assert!(mock.last_request().unwrap().get("tools").is_none());
    // Iteration limit: one round trip with tools, then the final answer.
    let limits = AgentLimits { max_iterations: 1, ..AgentLimits::default() };
    let agent = Agent::new("scout", reg, "mock-gpt", Arc::new(tools)).with_limits(limits);
    let run = agent.run(user("call tool game__roll a"), None).await.unwrap();
    assert_eq!(run.iterations, 2);
    assert!(run.stopped.as_deref().unwrap_or_default().contains("max_iterations"));
}

#[tokio::test]
async fn a_server_crash_mid_call_fails_the_call_and_a_restart_is_picked_up() {
    let (reg, _mock) = registry().await;
    let (backend, _server) = game(RunLog::default()).serve_on("127.0.0.1:0").await;
    let (addr, front) = proxy("127.0.0.1:0", backend).await;
    let mut tools = Toolbox::new();
    tools.add(Arc::new(McpClientSource::new(game_config(addr))));
    tools.refresh().await;
    let agent = Agent::new("scout", reg, "mock-gpt", Arc::new(tools));
    // The server "crashes" (every connection closes) while `slow` runs: the call fails, no hang, and
    // the run still answers.
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        front.abort();
    });
    let run = tokio::time::timeout(Duration::from_secs(20), agent.run(user("call tool game__slow x"), None))
        .await
        .expect("no hang")
        .unwrap();
    killer.await.unwrap();
    assert!(!run.tool_calls[0].ok, "{:?}", run.tool_calls);
    assert!(run.content.starts_with("Tool result received: error:"), "{}", run.content);
    // The server comes back on the same address (a new process: a fresh one, without the old
    // session): the next call reconnects.
    let (backend2, _server2) = game(RunLog::default()).serve_on("127.0.0.1:0").await;
    let (_addr, _front) = proxy(&addr.to_string(), backend2).await;
    let run = agent.run(user("call tool game__roll again"), None).await.unwrap();
    assert!(run.tool_calls[0].ok, "{:?}", run.tool_calls);
    assert_eq!(run.content, "Tool result received: rolled 4 on again");
}

#[tokio::test]
async fn orchestrated_specialists_run_in_parallel_and_are_synthesised() {
    use gaia_mcp::{Orchestrator, Specialist};
    let (reg, _mock) = registry().await;
    let log = RunLog::default();
    let (addr, _server) = game(log.clone()).serve_on("127.0.0.1:0").await;
    let mut tools = Toolbox::new();
    tools.add(Arc::new(McpClientSource::new(game_config(addr))));
    tools.refresh().await;
    let tools = Arc::new(tools);
    let specialist = |name: &str, what: &str| Specialist {
        agent: Agent::new(name, reg.clone(), "mock-gpt", tools.clone()).with_system(format!("You are the {name}.")),
        description: what.to_string(),
    };
    let orch = Orchestrator::new(
        reg.clone(),
        "mock-gpt",
        vec![specialist("scout", "explores"), specialist("sage", "knows lore")],
        4,
        Duration::from_secs(30),
    );
    // The mock coordinator echoes the task, so a task that is a plan is taken as the plan.
    let task = r#"{"subtasks": [{"agent": "scout", "task": "call tool game__slow north"}, {"agent": "sage", "task": "call tool game__slow south"}, {"agent": "ghost", "task": "boo"}]}"#;
    let (tx, mut rx) = tokio::sync::mpsc::channel(128);
    let run = orch.run(task, Some(tx)).await.unwrap();
    assert!(run.planned_by_model);
    assert_eq!(run.plan.len(), 2, "the unknown agent was left out: {:?}", run.plan);
    assert_eq!(run.agents.len(), 2);
    for a in &run.agents {
        let r = a.run.as_ref().expect("each specialist answered");
        assert!(r.tool_calls[0].ok, "{:?}", r.tool_calls);
    }
    // The specialists' tool calls overlapped in time on the game server.
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    assert!(log[0].1 < log[1].2 && log[1].1 < log[0].2, "the specialists ran in parallel");
    assert!(run.usage.input_tokens > run.coordinator_usage.input_tokens);
    assert!(!run.content.is_empty());
    let mut saw = (false, 0, 0);
    while let Ok(ev) = rx.try_recv() {
        match ev {
            AgentEvent::Planned { subtasks } => saw.0 = subtasks.len() == 2,
            AgentEvent::AgentStarted { .. } => saw.1 += 1,
            AgentEvent::AgentFinished { ok: true, .. } => saw.2 += 1,
            _ => {}
        }
    }
    assert_eq!(saw, (true, 2, 2));

    // No usable plan: every specialist works on the whole task.
    let run = orch.run("How do we get to the cave?", None).await.unwrap();
    assert!(!run.planned_by_model);
    assert_eq!(run.agents.len(), 2);
    assert!(run.agents.iter().all(|a| a.run.is_some()));
}
