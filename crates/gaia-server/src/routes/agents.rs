//! Tool-using agents over HTTP: `POST /api/v1/chat/mcp-agent` (an agent assembled for the request:
//! its MCP servers are connected and their tools listed for it) and `POST /api/v1/chat/mcp-agent-hot`
//! (the MCP servers stay connected and their tool lists cached between requests, so a request pays
//! no start-up). Both offer the configured MCP servers' tools, the knowledge-base tools (only what
//! the caller may read) and the filesystem tool of `[agents] fs_root`.
//!
//! An agent request is a conversation turn of the engine (`gaia_chat::Turn::run`): the same persona,
//! model, history fitted to the context window, persona memory, stored messages and automatic title
//! as `/api/v1/chat`, run over the request's toolbox instead of the persona's.
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
//!
//! A user has at most `agents.max_concurrent_runs_per_user` of these runs going at once on an
//! instance (one more: 429 with `Retry-After`): each run is given what is left of the caller's budgets
//! when it starts, so parallel runs would each get all of it.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admission, ApiJson};
use crate::per_user::Slot;
use crate::sse::{self, SseEvent};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gaia_chat::{Admitted, RunMeter, Turn, TurnInput};
use gaia_core::auth::Principal;
use gaia_core::config::{AgentLimits, McpTransport};
use gaia_mcp::{Agent, AgentRun, FsToolSource, KbToolSource, OrchestratedRun, Orchestrator, Specialist, Toolbox};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Most tool sources one specialist may name.
pub const MAX_SPECIALIST_TOOLS: usize = 64;
/// Longest agent name.
pub const MAX_AGENT_NAME: usize = 64;
/// `Retry-After` (seconds) of a request refused because too many MCP server processes are running.
const BUSY_RETRY_SECS: u64 = 1;

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
    /// The player (end user) this run is for (read by admission, like the `x-gaia-end-user` header).
    #[serde(default)]
    pub player_id: Option<String>,
}

/// A refusal that passes by itself (`status`: 503 for want of MCP server process slots, 429 for too
/// many runs of the caller), with `Retry-After`.
fn retry_later(status: StatusCode, message: String) -> Response {
    let mut resp = ApiError::new(status, message).into_response();
    resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(BUSY_RETRY_SECS));
    resp
}

/// The 503 of a request refused for want of MCP server process slots, with `Retry-After`.
fn busy(message: String) -> Response {
    retry_later(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// A place for one more agent or orchestrated run of `p` on this instance, taken before the budgets
/// are read and held until the run ends: each run is given what is left of the caller's budgets when
/// it starts (its spending is recorded as its calls end), so the runs going on at once are bounded
/// (`agents.max_concurrent_runs_per_user`). Beyond: 429 with `Retry-After`.
fn run_slot(state: &AppState, p: &Principal) -> Result<Slot, Box<Response>> {
    let max = state.config().agents.max_concurrent_runs_per_user.max(1);
    state.agent_runs().take(&p.user_id, max).ok_or_else(|| {
        let message = format!(
            "at most {max} agent or orchestrated runs per user at once (agents.max_concurrent_runs_per_user); \
             retry when one has ended"
        );
        Box::new(retry_later(StatusCode::TOO_MANY_REQUESTS, message))
    })
}

/// Slots for the stdio MCP server processes one cold agent request starts (one per stdio server),
/// taken before any starts: `Err` with the reason to answer [`busy`] with when they are not free.
fn process_slots(state: &AppState) -> Result<Option<OwnedSemaphorePermit>, String> {
    let wanted =
        state.config().mcp_servers.iter().filter(|c| matches!(c.transport, McpTransport::Stdio { .. })).count();
    if wanted == 0 {
        return Ok(None);
    }
    let max = state.config().mcp_processes.max_concurrent.max(1);
    if wanted > max {
        return Err(format!(
            "this agent needs {wanted} MCP server processes; at most {max} may run at once (mcp_processes.max_concurrent)"
        ));
    }
    let n = u32::try_from(wanted).unwrap_or(u32::MAX);
    state
        .mcp_processes()
        .clone()
        .try_acquire_many_owned(n)
        .map(Some)
        .map_err(|_| format!("too many MCP server processes are running (at most {max}); retry shortly"))
}

/// The tools of the MCP servers, connected and listed once and kept (the warm agents' toolbox).
async fn warm_toolbox(state: &AppState) -> Toolbox {
    state.tools().warm().await.clone()
}

/// Adds the per-caller tools: the knowledge base as the caller may see it, and the filesystem tool
/// in the caller's own folder (`<fs_root>/users/<user id>/`).
async fn add_local_tools(state: &AppState, p: &Principal, tb: &mut Toolbox) -> ApiResult<()> {
    let cfg = &state.config().agents;
    if cfg.kb_tools {
        if let Some(view) = state.kb_for(p).await {
            tb.add_listed(Arc::new(KbToolSource::new(view))).await.map_err(ApiError::internal)?;
        }
    }
    if let Some(root) = &cfg.fs_root {
        let fs = FsToolSource::for_user(root, &p.user_id).map_err(ApiError::internal)?;
        tb.add_listed(Arc::new(fs)).await.map_err(ApiError::internal)?;
    }
    Ok(())
}

/// The names of the tool sources a caller's agents get, known without starting anything: the MCP
/// servers, `kb` when the caller has a knowledge base, `fs` when the folder is configured.
async fn source_names(state: &AppState, p: &Principal) -> Vec<String> {
    let cfg = state.config();
    let mut names: Vec<String> = cfg.mcp_servers.iter().map(|c| c.name.clone()).collect();
    if cfg.agents.kb_tools && state.kb_for(p).await.is_some() {
        names.push("kb".into());
    }
    if cfg.agents.fs_root.is_some() {
        names.push("fs".into());
    }
    names
}

/// The turn of an agent request, prepared by the engine like any chat turn (persona, model, history
/// fitted to the context window, persona memory, the request stored), and the run's limits.
async fn agent_turn(
    state: &AppState,
    admitted: &Admitted,
    body: AgentBody,
    endpoint: &'static str,
) -> ApiResult<(Turn, AgentLimits)> {
    let mut limits = state.config().agents.limits.clone();
    if let Some(n) = body.max_tool_calls {
        limits.max_tool_calls = limits.max_tool_calls.min(n);
    }
    let input = TurnInput {
        message: body.message,
        model: body.model,
        conversation_id: body.conversation_id,
        persona_id: body.persona_id,
        system: body.system,
        ..Default::default()
    };
    Ok((state.engine().turn(admitted, endpoint, input).await?, limits))
}

fn metadata(run: &AgentRun) -> Value {
    json!({
        "agent": run.agent, "model": run.model, "iterations": run.iterations, "tool_calls": run.tool_calls,
        "usage": {"prompt_tokens": run.usage.input_tokens, "completion_tokens": run.usage.output_tokens,
                  "total_tokens": run.usage.total()},
        "cost": run.cost, "stopped": run.stopped, "duration_ms": run.duration_ms,
    })
}

/// Runs an agent turn over `tools`; `slots` (the request's MCP server processes) and `running` (its
/// place among the caller's runs) are held until it ends.
async fn run_agent(
    turn: Turn,
    tools: Toolbox,
    limits: AgentLimits,
    stream: bool,
    slots: Option<OwnedSemaphorePermit>,
    running: Slot,
) -> Response {
    let conversation_id = turn.conversation().id.clone();
    if !stream {
        // The processes end with the run's toolbox, inside `run`; only then are their slots free.
        let run = turn.run(tools, limits, None).await;
        drop(slots);
        drop(running);
        return match run {
            Ok(run) => axum::Json(json!({
                "response": run.content, "conversation_id": conversation_id, "_metadata": metadata(&run),
            }))
            .into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let handle = tokio::spawn(async move {
        let r = turn.run(tools, limits, Some(tx)).await;
        drop(slots);
        drop(running);
        r
    });
    let events = async_stream::stream! {
        yield SseEvent::data(&json!({"type": "metadata", "conversation_id": conversation_id}).to_string());
        while let Some(ev) = rx.recv().await {
            yield SseEvent::data(&serde_json::to_string(&ev).unwrap_or_default());
        }
        match handle.await {
            Ok(Ok(run)) => yield SseEvent::data(&json!({"type": "done", "response": run.content, "_metadata": metadata(&run)}).to_string()),
            Ok(Err(e)) => yield SseEvent::data(&json!({"type": "error", "message": ApiError::from(e).message}).to_string()),
            Err(e) => yield SseEvent::data(&json!({"type": "error", "message": format!("the agent stopped: {e}")}).to_string()),
        }
    };
    sse::response(events)
}

fn agent_error(e: gaia_mcp::McpError) -> ApiError {
    match e {
        gaia_mcp::McpError::Provider(p) => p.into(),
        gaia_mcp::McpError::Invalid(m) => ApiError::bad_request(m),
        other => ApiError::new(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

/// `POST /api/v1/chat/mcp-agent`: an agent assembled for this request. The request is checked
/// (ceiling and budgets, persona, model, conversation) before any MCP server process starts, and the
/// processes it would start must fit under `mcp_processes.max_concurrent` (else 503 with
/// `Retry-After`).
pub async fn mcp_agent(
    State(state): State<AppState>,
    Admission(admitted): Admission,
    ApiJson(body): ApiJson<AgentBody>,
) -> ApiResult<Response> {
    let p = admitted.principal().clone();
    let stream = body.stream;
    let running = match run_slot(&state, &p) {
        Ok(r) => r,
        Err(refused) => return Ok(*refused),
    };
    state.engine().run_budget(&admitted, &state.config().agents.limits).await?;
    let slots = match process_slots(&state) {
        Ok(s) => s,
        Err(why) => return Ok(busy(why)),
    };
    let (turn, limits) = agent_turn(&state, &admitted, body, "mcp_agent").await?;
    let mut tools = state.tools().connect("this agent").await;
    add_local_tools(&state, &p, &mut tools).await?;
    Ok(run_agent(turn, tools, limits, stream, slots, running).await)
}

/// `POST /api/v1/chat/mcp-agent-hot`: an agent whose MCP servers are already connected.
pub async fn mcp_agent_hot(
    State(state): State<AppState>,
    Admission(admitted): Admission,
    ApiJson(body): ApiJson<AgentBody>,
) -> ApiResult<Response> {
    let p = admitted.principal().clone();
    let stream = body.stream;
    let running = match run_slot(&state, &p) {
        Ok(r) => r,
        Err(refused) => return Ok(*refused),
    };
    state.engine().run_budget(&admitted, &state.config().agents.limits).await?;
    let (turn, limits) = agent_turn(&state, &admitted, body, "mcp_agent_hot").await?;
    let mut tools = warm_toolbox(&state).await;
    add_local_tools(&state, &p, &mut tools).await?;
    Ok(run_agent(turn, tools, limits, stream, None, running).await)
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
    /// The player (end user) this run is for (read by admission, like the `x-gaia-end-user` header).
    #[serde(default)]
    pub player_id: Option<String>,
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

/// `POST /api/v1/chat/orchestrated`. The request (specialists, their personas, models and tool
/// sources) is checked before the warm MCP servers are reached; every model call of the run is
/// metered as it ends, and the run stops at the caller's agent ceiling and hard budgets. It counts
/// among the caller's runs going on at once (`run_slot`).
pub async fn orchestrated(
    State(state): State<AppState>,
    Admission(admitted): Admission,
    ApiJson(body): ApiJson<OrchestratedBody>,
) -> ApiResult<Response> {
    let p = admitted.principal().clone();
    let mut task = body.message.trim().to_string();
    if task.is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    // Guardrails: the task is checked (and redacted) before anything starts; with output rules, the
    // run's text is not passed on as it comes, only its checked answer.
    let engine = state.engine().clone();
    let rules = engine.guard_rules(&admitted, None).await;
    if engine.guardrails().covers(&rules, gaia_chat::guardrails::Stage::Input) {
        engine.guard_input(&admitted, "orchestrated", &rules, &mut task).await.map_err(ApiError::from)?;
    }
    let guard_output = engine.guardrails().covers(&rules, gaia_chat::guardrails::Stage::Output);
    let running = match run_slot(&state, &p) {
        Ok(r) => r,
        Err(refused) => return Ok(*refused),
    };
    let storage = state.storage();
    let settings = storage.user_settings(&p.user_id).await?;
    let model =
        body.model.clone().filter(|m| !m.trim().is_empty()).or(settings.default_model.clone()).unwrap_or_default();
    state.providers().candidates(&model).await?;
    let limits = state.config().agents.limits.clone();
    let sources = source_names(&state, &p).await;
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
    // Check every specialist before anything is started.
    let mut checked: Vec<(String, SpecialistBody, String, String)> = Vec::with_capacity(wanted.len());
    for a in wanted {
        let name = a.name.trim().to_string();
        if name.is_empty() || name.len() > MAX_AGENT_NAME || checked.iter().any(|(n, ..)| *n == name) {
            return Err(ApiError::bad_request(format!(
                "agent names must be unique and 1 to {MAX_AGENT_NAME} characters"
            )));
        }
        if a.tools.as_ref().is_some_and(|t| t.len() > MAX_SPECIALIST_TOOLS) {
            return Err(ApiError::bad_request(format!("agent {name}: at most {MAX_SPECIALIST_TOOLS} tool sources")));
        }
        if let Some(unknown) = a.tools.iter().flatten().find(|t| !sources.contains(t)) {
            return Err(ApiError::bad_request(format!(
                "agent {name}: no tool source named {unknown} (have: {})",
                sources.join(", ")
            )));
        }
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
        let agent_model = a.model.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| model.clone());
        state.providers().candidates(&agent_model).await?;
        checked.push((name, a, system, agent_model));
    }
    let budget = state.engine().run_budget(&admitted, &limits).await?;

    let mut all = warm_toolbox(&state).await;
    add_local_tools(&state, &p, &mut all).await?;
    let recorder = RunMeter::new(state.engine(), &admitted, "orchestrated");
    let mut specialists = Vec::with_capacity(checked.len());
    for (name, a, system, agent_model) in checked {
        let tools = match &a.tools {
            Some(t) => all.only(t),
            None => all.clone(),
        };
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
    )
    .with_budget(budget)
    .with_recorder(recorder);
    if !body.stream {
        let run = orch.run(&task, None).await.map_err(agent_error);
        drop(running);
        let mut run = run?;
        if guard_output {
            engine.guard_answer(&admitted, "orchestrated", &rules, &mut run.content).await.map_err(ApiError::from)?;
        }
        return Ok(axum::Json(
            json!({"response": run.content, "plan": run.plan, "_metadata": orchestrated_metadata(&run)}),
        )
        .into_response());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(128);
    let handle = tokio::spawn(async move {
        let run = orch.run(&task, Some(tx)).await;
        drop(running);
        run
    });
    let events = async_stream::stream! {
        while let Some(ev) = rx.recv().await {
            if guard_output && matches!(ev, gaia_mcp::AgentEvent::TextDelta { .. } | gaia_mcp::AgentEvent::Text { .. }) {
                continue;
            }
            yield SseEvent::data(&serde_json::to_string(&ev).unwrap_or_default());
        }
        match handle.await {
            Ok(Ok(mut run)) => {
                let checked = if guard_output {
                    engine.guard_answer(&admitted, "orchestrated", &rules, &mut run.content).await
                } else {
                    Ok(())
                };
                match checked {
                    Ok(()) => yield SseEvent::data(&json!({"type": "done", "response": run.content, "plan": run.plan, "_metadata": orchestrated_metadata(&run)}).to_string()),
                    Err(e) => yield SseEvent::data(&json!({"type": "error", "message": e.to_string()}).to_string()),
                }
            }
            Ok(Err(e)) => yield SseEvent::data(&json!({"type": "error", "message": agent_error(e).message}).to_string()),
            Err(e) => yield SseEvent::data(&json!({"type": "error", "message": format!("the orchestration stopped: {e}")}).to_string()),
        }
    };
    Ok(sse::response(events))
}
