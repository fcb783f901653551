//! Tool-using agents over HTTP: `POST /api/v1/chat/mcp-agent` (an agent assembled for the request:
//! its MCP servers are connected and their tools listed for it) and `POST /api/v1/chat/mcp-agent-hot`
//! (the MCP servers stay connected and their tool lists cached between requests, so a request pays
//! no start-up). Both offer the configured MCP servers' tools, the knowledge-base tools (only what
//! the caller may read) and the filesystem tool of `[agents] fs_root`.
//!
//! The body is `{message, model?, conversation_id?, persona_id?, system?, stream?, max_tool_calls?}`.
//! The answer is `{response, conversation_id, _metadata: {agent, model, iterations, tool_calls,
//! usage, cost, stopped, duration_ms}}`; with `stream: true`, Server-Sent Events: `metadata`, then the
//! run's progress (`thinking`, `tool_started`, `tool_finished`, `text`), then `done` with the same
//! `_metadata` (or `error`).
//!
//! `POST /api/v1/chat/orchestrated` runs a coordinator and specialists (see
//! `gaia_mcp::orchestrate`): `{message, model?, agents?: [{name, description?, persona_id?, system?,
//! model?, tools?: [source names]}], stream?}`; without `agents`, a `librarian` (knowledge-base tools)
//! and an `operator` (MCP servers and files). Every step is streamed; `_metadata` lists each agent with
//! its subtask, tool calls, tokens, cost and timing.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::metering::Meter;
use crate::sse::{self, SseEvent};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gaia_core::auth::Principal;
use gaia_core::events::Event as BusEvent;
use gaia_core::storage::{UsageFilter, DEFAULT_PERSONA_ID};
use gaia_core::types::{ChatMessage, Role};
use gaia_mcp::{
    Agent, AgentRun, FsToolSource, KbToolSource, McpClientSource, OrchestratedRun, Orchestrator, Specialist, Toolbox,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Body of the agent endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    /// The request.
    pub message: String,
    /// Model (default: the persona's, the user's, the server's).
    #[serde(default)]
    pub model: Option<String>,
    /// Conversation to continue (its history is the agent's context); a new one when absent.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Persona (its system prompt leads the run).
    #[serde(default)]
    pub persona_id: Option<String>,
    /// Extra system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Stream progress as Server-Sent Events.
    #[serde(default)]
    pub stream: bool,
    /// Fewer tool calls than the configured limit.
    #[serde(default)]
    pub max_tool_calls: Option<u32>,
}

/// The MCP servers of `[[mcp_servers]]`, each a fresh source.
fn mcp_sources(state: &AppState) -> Vec<Arc<McpClientSource>> {
    state.config().mcp_servers.iter().cloned().map(|c| Arc::new(McpClientSource::new(c))).collect()
}

/// The tools of the MCP servers, connected and listed once and kept (the warm agents' toolbox).
async fn warm_toolbox(state: &AppState) -> Toolbox {
    state
        .warm_tools()
        .get_or_init(|| async {
            let mut tb = Toolbox::new();
            for s in mcp_sources(state) {
                tb.add(s);
            }
            for (source, err) in tb.refresh().await {
                tracing::warn!(%source, %err, "MCP server left out of the warm agents");
            }
            tb
        })
        .await
        .clone()
}

/// Adds the per-caller tools: the knowledge base as the caller may see it, and the filesystem tool.
async fn add_local_tools(state: &AppState, p: &Principal, tb: &mut Toolbox) -> ApiResult<()> {
    let cfg = &state.config().agents;
    if cfg.kb_tools {
        if let Some(view) = state.kb_for(p).await {
            tb.add_listed(Arc::new(KbToolSource::new(view))).await.map_err(ApiError::internal)?;
        }
    }
    if let Some(root) = &cfg.fs_root {
        let fs = FsToolSource::new(root).map_err(ApiError::internal)?;
        tb.add_listed(Arc::new(fs)).await.map_err(ApiError::internal)?;
    }
    Ok(())
}

/// What a run needs: the agent, the conversation, the messages.
struct Prepared {
    agent: Agent,
    conversation_id: String,
    messages: Vec<ChatMessage>,
}

async fn prepare(state: &AppState, p: &Principal, body: AgentBody, tools: Toolbox) -> ApiResult<Prepared> {
    let message = body.message.trim().to_string();
    if message.is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    let storage = state.storage();
    let settings = storage.user_settings(&p.user_id).await?;
    let persona_id =
        body.persona_id.clone().or(settings.default_persona_id.clone()).unwrap_or(DEFAULT_PERSONA_ID.into());
    let persona = storage
        .get_persona(&p.user_id, &persona_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Persona {persona_id} not found")))?;
    let model = body
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .or(persona.model.clone())
        .or(settings.default_model.clone())
        .unwrap_or_default();
    // Fail early on an unknown model.
    state.providers().candidates(&model).await?;
    // Refuse before anything is stored.
    let cfg = &state.config().agents;
    let mut limits = cfg.limits.clone();
    if let Some(n) = body.max_tool_calls {
        limits.max_tool_calls = limits.max_tool_calls.min(n);
    }
    let budget = match limits.daily_cost_ceiling {
        Some(ceiling) => {
            let since = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            let filter = UsageFilter { user_id: Some(p.user_id.clone()), since: Some(since), until: None };
            let spent = storage.usage_summary(&filter).await?.totals.cost_usd;
            if spent >= ceiling {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("today's agent cost ceiling ({ceiling}) is reached"),
                ));
            }
            Some(ceiling - spent)
        }
        None => None,
    };
    let conversation = match &body.conversation_id {
        Some(id) => storage
            .get_conversation(&p.user_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("Conversation {id} not found")))?,
        None => {
            let title: String = message.lines().next().unwrap_or_default().chars().take(80).collect();
            let c = storage.create_conversation_with_persona(&p.user_id, Some(&title), None, Some(&persona.id)).await?;
            state.events().publish(BusEvent::ConversationUpdated { conversation_id: c.id.clone() });
            c
        }
    };
    let mut messages: Vec<ChatMessage> = storage
        .list_messages(&conversation.id)
        .await?
        .into_iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant) && !m.content.is_empty())
        .map(|m| ChatMessage::new(m.role, m.content))
        .collect();
    if let Some(s) = body.system.as_deref().filter(|s| !s.trim().is_empty()) {
        messages.insert(0, ChatMessage::system(s));
    }
    messages.push(ChatMessage::user(message.clone()));
    let stored = storage.add_message(&conversation.id, Role::User, &message, None, None).await?;
    state
        .events()
        .publish(BusEvent::MessageCreated { conversation_id: conversation.id.clone(), message_id: stored.id });

    let agent = Agent::new(&persona.name, state.providers().clone(), &model, Arc::new(tools))
        .with_system(persona.system_prompt.clone())
        .with_limits(limits)
        .with_budget(budget)
        .for_user(&p.user_id);
    Ok(Prepared { agent, conversation_id: conversation.id, messages })
}

fn metadata(run: &AgentRun) -> Value {
    json!({
        "agent": run.agent, "model": run.model, "iterations": run.iterations, "tool_calls": run.tool_calls,
        "usage": {"prompt_tokens": run.usage.input_tokens, "completion_tokens": run.usage.output_tokens,
                  "total_tokens": run.usage.total()},
        "cost": run.cost, "stopped": run.stopped, "duration_ms": run.duration_ms,
    })
}

/// Stores the answer and meters the run.
async fn finish(state: &AppState, p: &Principal, endpoint: &str, conversation_id: &str, run: &AgentRun) {
    let mut meter = Meter::start(state, p, endpoint);
    let (provider, model) = run.model.split_once('/').unwrap_or(("", run.model.as_str()));
    meter.target(provider, model);
    meter.usage(run.usage);
    meter.finish(200, None);
    crate::routes::chat::store_answer(state, conversation_id, &run.content, &run.model, run.usage).await;
}

async fn run_agent(
    state: AppState,
    p: Principal,
    body: AgentBody,
    tools: Toolbox,
    endpoint: &'static str,
) -> ApiResult<Response> {
    let stream = body.stream;
    let prep = prepare(&state, &p, body, tools).await?;
    let Prepared { agent, conversation_id, messages } = prep;
    if !stream {
        let run = agent.run(messages, None).await.map_err(agent_error)?;
        finish(&state, &p, endpoint, &conversation_id, &run).await;
        return Ok(axum::Json(json!({
            "response": run.content, "conversation_id": conversation_id, "_metadata": metadata(&run),
        }))
        .into_response());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let conv = conversation_id.clone();
    let st = state.clone();
    let handle = tokio::spawn(async move {
        let r = agent.run(messages, Some(tx)).await;
        if let Ok(run) = &r {
            finish(&st, &p, endpoint, &conv, run).await;
        }
        r
    });
    let events = async_stream::stream! {
        yield SseEvent::data(&json!({"type": "metadata", "conversation_id": conversation_id}).to_string());
        while let Some(ev) = rx.recv().await {
            yield SseEvent::data(&serde_json::to_string(&ev).unwrap_or_default());
        }
        match handle.await {
            Ok(Ok(run)) => yield SseEvent::data(&json!({"type": "done", "response": run.content, "_metadata": metadata(&run)}).to_string()),
            Ok(Err(e)) => yield SseEvent::data(&json!({"type": "error", "message": agent_error(e).message}).to_string()),
            Err(e) => yield SseEvent::data(&json!({"type": "error", "message": format!("the agent stopped: {e}")}).to_string()),
        }
    };
    Ok(sse::response(events))
}

fn agent_error(e: gaia_mcp::McpError) -> ApiError {
    match e {
        gaia_mcp::McpError::Provider(p) => p.into(),
        gaia_mcp::McpError::Invalid(m) => ApiError::bad_request(m),
        other => ApiError::new(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

/// `POST /api/v1/chat/mcp-agent`: an agent assembled for this request.
pub async fn mcp_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<AgentBody>,
) -> ApiResult<Response> {
    let mut tools = Toolbox::new();
    for s in mcp_sources(&state) {
        tools.add(s);
    }
    for (source, err) in tools.refresh().await {
        tracing::warn!(%source, %err, "MCP server left out of this agent");
    }
    add_local_tools(&state, &p, &mut tools).await?;
    run_agent(state, p, body, tools, "mcp_agent").await
}

/// `POST /api/v1/chat/mcp-agent-hot`: an agent whose MCP servers are already connected.
pub async fn mcp_agent_hot(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<AgentBody>,
) -> ApiResult<Response> {
    let mut tools = warm_toolbox(&state).await;
    add_local_tools(&state, &p, &mut tools).await?;
    run_agent(state, p, body, tools, "mcp_agent_hot").await
}

/// One specialist of an orchestrated request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistBody {
    /// Name (how the coordinator refers to it).
    pub name: String,
    /// What it is good at.
    #[serde(default)]
    pub description: Option<String>,
    /// Its persona.
    #[serde(default)]
    pub persona_id: Option<String>,
    /// Or a system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Its model (default: the request's).
    #[serde(default)]
    pub model: Option<String>,
    /// Its tool sources (`kb`, `fs`, MCP server names); all when absent.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

/// Body of `POST /api/v1/chat/orchestrated`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratedBody {
    /// The task.
    pub message: String,
    /// The coordinator's model.
    #[serde(default)]
    pub model: Option<String>,
    /// The specialists.
    #[serde(default)]
    pub agents: Option<Vec<SpecialistBody>>,
    /// Stream every step.
    #[serde(default)]
    pub stream: bool,
}

fn orchestrated_metadata(run: &OrchestratedRun) -> Value {
    let agents: Vec<Value> = run
        .agents
        .iter()
        .map(|a| {
            json!({
                "agent": a.subtask.agent, "task": a.subtask.task, "ok": a.run.is_some(), "error": a.error,
                "tool_calls": a.run.as_ref().map(|r| r.tool_calls.clone()).unwrap_or_default(),
                "usage": a.run.as_ref().map(|r| json!({"prompt_tokens": r.usage.input_tokens, "completion_tokens": r.usage.output_tokens})),
                "cost": a.run.as_ref().map(|r| r.cost).unwrap_or(0.0),
                "model": a.run.as_ref().map(|r| r.model.clone()),
                "started_ms": a.started_ms, "ended_ms": a.ended_ms,
            })
        })
        .collect();
    json!({
        "planned_by_model": run.planned_by_model, "agents": agents,
        "coordinator_usage": {"prompt_tokens": run.coordinator_usage.input_tokens, "completion_tokens": run.coordinator_usage.output_tokens},
        "usage": {"prompt_tokens": run.usage.input_tokens, "completion_tokens": run.usage.output_tokens, "total_tokens": run.usage.total()},
        "cost": run.cost, "duration_ms": run.duration_ms,
    })
}

/// `POST /api/v1/chat/orchestrated`.
pub async fn orchestrated(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<OrchestratedBody>,
) -> ApiResult<Response> {
    let task = body.message.trim().to_string();
    if task.is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    let storage = state.storage();
    let settings = storage.user_settings(&p.user_id).await?;
    let model =
        body.model.clone().filter(|m| !m.trim().is_empty()).or(settings.default_model.clone()).unwrap_or_default();
    state.providers().candidates(&model).await?;
    let limits = state.config().agents.limits.clone();
    let mut all = warm_toolbox(&state).await;
    add_local_tools(&state, &p, &mut all).await?;
    let sources = all.source_names();
    let wanted = body.agents.unwrap_or_else(|| {
        let mcp: Vec<String> = sources.iter().filter(|s| *s != "kb").cloned().collect();
        let specialist = |name: &str, what: &str, tools: Vec<String>| SpecialistBody {
            name: name.into(),
            description: Some(what.into()),
            persona_id: None,
            system: None,
            model: None,
            tools: Some(tools),
        };
        let mut v = Vec::new();
        if sources.iter().any(|s| s == "kb") {
            v.push(specialist("librarian", "searches and reads the game's knowledge base", vec!["kb".into()]));
        }
        v.push(specialist("operator", "uses the game's own tools and files", mcp));
        v
    });
    if wanted.is_empty() || wanted.len() > limits.max_agents as usize {
        return Err(ApiError::bad_request(format!("give 1 to {} agents", limits.max_agents)));
    }
    let mut specialists = Vec::with_capacity(wanted.len());
    for a in wanted {
        let name = a.name.trim().to_string();
        if name.is_empty() || name.len() > 64 || specialists.iter().any(|s: &Specialist| s.agent.name() == name) {
            return Err(ApiError::bad_request("agent names must be unique and 1 to 64 characters"));
        }
        if let Some(unknown) = a.tools.iter().flatten().find(|t| !sources.contains(t)) {
            return Err(ApiError::bad_request(format!(
                "agent {name}: no tool source named {unknown} (have: {})",
                sources.join(", ")
            )));
        }
        let tools = match &a.tools {
            Some(t) => all.only(t),
            None => all.clone(),
        };
        let system = match (&a.persona_id, &a.system) {
            (Some(pid), _) => {
                storage
                    .get_persona(&p.user_id, pid)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("Persona {pid} not found")))?
                    .system_prompt
            }
            (None, Some(s)) => s.clone(),
            (None, None) => format!("You are {name}, a specialist: {}.", a.description.clone().unwrap_or_default()),
        };
        let agent_model = a.model.clone().unwrap_or_else(|| model.clone());
        let agent = Agent::new(&name, state.providers().clone(), &agent_model, Arc::new(tools))
            .with_system(system)
            .with_limits(limits.clone())
            .for_user(&p.user_id);
        specialists.push(Specialist { agent, description: a.description.unwrap_or_else(|| name.clone()) });
    }
    let orch = Orchestrator::new(
        state.providers().clone(),
        &model,
        specialists,
        limits.max_agents as usize,
        std::time::Duration::from_secs(limits.deadline_secs.max(1)),
    );
    let meter_usage = move |st: &AppState, run: &OrchestratedRun| {
        let mut meter = Meter::start(st, &p, "orchestrated");
        meter.target("", &model);
        meter.usage(run.usage);
        meter.finish(200, None);
    };
    if !body.stream {
        let run = orch.run(&task, None).await.map_err(agent_error)?;
        meter_usage(&state, &run);
        return Ok(axum::Json(
            json!({"response": run.content, "plan": run.plan, "_metadata": orchestrated_metadata(&run)}),
        )
        .into_response());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(128);
    let handle = tokio::spawn(async move { orch.run(&task, Some(tx)).await });
    let st = state.clone();
    let events = async_stream::stream! {
        while let Some(ev) = rx.recv().await {
            yield SseEvent::data(&serde_json::to_string(&ev).unwrap_or_default());
        }
        match handle.await {
            Ok(Ok(run)) => {
                meter_usage(&st, &run);
                yield SseEvent::data(&json!({"type": "done", "response": run.content, "plan": run.plan, "_metadata": orchestrated_metadata(&run)}).to_string());
            }
            Ok(Err(e)) => yield SseEvent::data(&json!({"type": "error", "message": agent_error(e).message}).to_string()),
            Err(e) => yield SseEvent::data(&json!({"type": "error", "message": format!("the orchestration stopped: {e}")}).to_string()),
        }
    };
    Ok(sse::response(events))
}
