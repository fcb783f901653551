//! A tool-using agent (`gaia_mcp::Agent`) with two kinds of tools:
//!
//! - a tool written in Rust in the game server itself (`FnTool`): `roll_dice`;
//! - a tool from an MCP server reached over stdio (`McpClientSource`): `quest_log`. To stay
//!   self-contained the example is its own MCP server: run with `--serve-mcp` it serves the tool on
//!   stdin/stdout with `gaia_mcp::ToolServer` (as `gaia mcp serve` does), and the agent starts it as a
//!   child process.
//!
//! The model is Gaia's built-in mock upstream, scripted by the user message (`call tool NAME ARGS`) to
//! call both tools in one turn; a real model picks tools from their descriptions. No configuration, no
//! network:
//!
//! ```sh
//! cargo run -p gaia-examples --example agent_tools
//! ```

use anyhow::{ensure, Context as _};
use gaia_core::types::ChatMessage;
use gaia_mcp::{
    Agent, AgentEvent, FnTool, McpClientSource, McpError, McpServerConfig, McpTransport, ToolServer, Toolbox,
};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use rand::Rng;
use serde_json::json;
use std::sync::Arc;

/// The argument that turns this program into the MCP server.
const SERVE_MCP: &str = "--serve-mcp";

// The mock model passes a tool's arguments as `{"query": "<the rest of the message>"}`, so both tools
// take one string named `query`. Real tools can have any JSON schema.

/// `roll_dice`: rolls dice written like `2d6`.
fn roll_dice() -> FnTool {
    let schema = json!({
        "type": "object",
        "properties": {"query": {"type": "string", "description": "the dice, like 2d6 or 1d20"}},
        "required": ["query"]
    });
    FnTool::new("game", "roll_dice", "Roll dice for a skill check.", schema, |args| async move {
        let dice = args["query"].as_str().unwrap_or_default().trim().to_string();
        let parsed = dice.split_once('d').and_then(|(n, s)| Some((n.parse::<u32>().ok()?, s.parse::<u32>().ok()?)));
        let Some((count @ 1..=20, sides @ 2..=100)) = parsed else {
            // A failed tool call: the model reads the message and may try again.
            return Err(McpError::Tool { tool: "roll_dice".into(), message: format!("cannot roll `{dice}`") });
        };
        let rolls: Vec<u32> = (0..count).map(|_| rand::rng().random_range(1..=sides)).collect();
        Ok(format!("{dice}: {rolls:?} = {}", rolls.iter().sum::<u32>()))
    })
}

/// `quest_log`: the state of one of the player's quests (served over MCP).
fn quest_log() -> FnTool {
    let schema = json!({
        "type": "object",
        "properties": {"query": {"type": "string", "description": "the quest's name"}},
        "required": ["query"]
    });
    FnTool::new("journal", "quest_log", "The player's progress in a quest.", schema, |args| async move {
        let quest = args["query"].as_str().unwrap_or_default().trim().to_lowercase();
        let status = match quest.as_str() {
            "first light" => "First Light: in progress, 320 of 500 m walked; reach the Safe House before sunrise",
            "night run" => "Night Run: not started",
            _ => return Err(McpError::Tool { tool: "quest_log".into(), message: format!("no quest named {quest:?}") }),
        };
        Ok(status.to_string())
    })
}

/// The MCP server mode: serves `quest_log` on stdin/stdout until the client closes them.
/// Nothing else may be printed to stdout here: it carries the protocol.
async fn serve_mcp() -> anyhow::Result<()> {
    let mut tools = Toolbox::new();
    tools.add(Arc::new(quest_log()));
    tools.refresh().await; // lists the tools; served with their toolbox names (`journal__quest_log`)
    ToolServer::new(Arc::new(tools)).serve_stdio().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some(SERVE_MCP) {
        return serve_mcp().await;
    }

    // The model: Gaia's mock upstream, registered like any OpenAI-compatible server.
    let mock = MockUpstream::start("127.0.0.1:0".parse()?, MockConfig::default()).await?;
    let models = ProviderRegistry::new();
    models.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None))));

    // The tools. The MCP server is this same program with `--serve-mcp`, started on first use (and
    // restarted if it dies); in a game it would be any MCP server, configured as `[[mcp_servers]]`.
    let quest_server = McpServerConfig {
        name: "quests".into(),
        transport: McpTransport::Stdio {
            command: std::env::current_exe()?.display().to_string(),
            args: vec![SERVE_MCP.into()],
            env: Default::default(),
        },
        call_timeout_secs: 10,
    };
    let mut tools = Toolbox::new();
    tools.add(Arc::new(roll_dice()));
    tools.add(Arc::new(McpClientSource::new(quest_server)));
    // Lists every source's tools (this starts the MCP server); a source that fails is left out.
    let failed = tools.refresh().await;
    ensure!(failed.is_empty(), "tool sources failed: {failed:?}");
    // Tools are offered to the model as `<source>__<tool>`; the MCP tool keeps its server-side name.
    let names: Vec<String> = tools.specs().iter().map(|s| s.name.clone()).collect();
    println!("tools offered to the model: {names:?}\n");
    let (dice, quest) = ("game__roll_dice", "quests__journal__quest_log");
    ensure!(names.iter().any(|n| n == dice) && names.iter().any(|n| n == quest), "both tools are listed");

    let agent = Agent::new("companion", models, "mock-gpt", Arc::new(tools))
        .with_system("You are Dr. Mara Quill, a companion NPC. Use your tools before answering.");

    // Progress events as they happen (a game would forward them to the client).
    let (events, mut progress) = tokio::sync::mpsc::channel(32);
    let printer = tokio::spawn(async move {
        while let Some(event) = progress.recv().await {
            match event {
                AgentEvent::Thinking { iteration, .. } => println!("[model call {iteration}]"),
                AgentEvent::ToolStarted { name, arguments, .. } => println!("[calling {name} {arguments}]"),
                AgentEvent::ToolFinished { name, ok, duration_ms, .. } => {
                    println!("[{name} {} in {duration_ms} ms]", if ok { "done" } else { "failed" })
                }
                _ => {}
            }
        }
    });

    // The mock model calls both tools in one turn (they run concurrently), then answers.
    let message = format!("call tool {dice} 2d6 call tool {quest} First Light");
    let run = agent.run(vec![ChatMessage::user(message)], Some(events)).await?;
    printer.await?;

    println!();
    for call in &run.tool_calls {
        println!("{} {} -> {}", call.name, call.arguments, call.result);
    }
    println!("\nanswer: {}", run.content);
    println!("{} model calls, {} tokens in, {} out", run.iterations, run.usage.input_tokens, run.usage.output_tokens);

    let result_of = |name: &str| run.tool_calls.iter().find(|c| c.name == name && c.ok).map(|c| c.result.as_str());
    let rolled = result_of(dice).context("roll_dice was not called, or failed")?;
    let progress = result_of(quest).context("quest_log was not called over MCP, or failed")?;
    ensure!(rolled.starts_with("2d6: ") && progress.starts_with("First Light: in progress"), "tool results");
    ensure!(run.content.starts_with("Tool result received:") && run.stopped.is_none(), "a final answer");

    // Dropping the agent closes the MCP connection, which ends the child process.
    drop(agent);
    mock.shutdown().await;
    println!("\nagent_tools: all checks passed");
    Ok(())
}
