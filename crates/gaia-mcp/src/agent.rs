//! The tool-calling loop: send the tools to the model, run the calls it asks for (in parallel when it
//! asks for several), feed the results back, repeat, within limits (tool calls, model round trips,
//! an overall deadline, a cost budget). When a limit stops the loop the model is asked once more,
//! without tools, to answer from what it has, so a run always ends with an answer or a clear error;
//! not when the budget is spent (that call would spend past it) or the deadline passed: the run then
//! ends with a message saying so (`stopped`: `budget exhausted`, or the deadline).

use crate::error::{McpError, Result};
use crate::meter::{call_model, Answer, CallRecorder};
use crate::toolbox::Toolbox;
use gaia_core::config::AgentLimits;
use gaia_core::types::{ChatMessage, ToolCall, Usage};
use gaia_providers::{ChatRequest, ProviderRegistry};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest tool result kept in the run's record (the model gets all of it).
const RECORD_CHARS: usize = 2_000;

/// Progress of a run, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// A model round trip starts.
    Thinking {
        /// The agent.
        agent: String,
        /// Round trip number, from 1.
        iteration: u32,
    },
    /// A tool call starts.
    ToolStarted {
        /// The agent.
        agent: String,
        /// The call id.
        id: String,
        /// The tool (as offered: `source__tool`).
        name: String,
        /// Its arguments (JSON text).
        arguments: String,
    },
    /// A tool call ended.
    ToolFinished {
        /// The agent.
        agent: String,
        /// The call id.
        id: String,
        /// The tool.
        name: String,
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        duration_ms: u64,
    },
    /// An orchestrator's plan: (agent, subtask) pairs.
    Planned {
        /// The subtasks.
        subtasks: Vec<(String, String)>,
    },
    /// A specialist starts its subtask.
    AgentStarted {
        /// The specialist.
        agent: String,
        /// Its subtask.
        task: String,
    },
    /// A specialist is done.
    AgentFinished {
        /// The specialist.
        agent: String,
        /// Whether it finished with an answer.
        ok: bool,
    },
    /// A piece of a model's answer as it streams (only with [`Agent::streaming`]): the text of the
    /// final answer, or what a model says before it calls tools.
    TextDelta {
        /// The agent.
        agent: String,
        /// The text.
        text: String,
    },
    /// Text of the final answer.
    Text {
        /// The agent.
        agent: String,
        /// The text.
        text: String,
    },
}

/// One tool call of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallRecord {
    /// The call id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments.
    pub arguments: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Its result or error (cut to 2,000 characters).
    pub result: String,
    /// Milliseconds since the run started.
    pub started_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRun {
    /// The agent's name.
    pub agent: String,
    /// The final answer.
    pub content: String,
    /// Every tool call, in the order they started.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Tokens of every model call.
    pub usage: Usage,
    /// Cost of every model call (model prices from the catalog; 0 when unknown).
    pub cost: f64,
    /// Model round trips.
    pub iterations: u32,
    /// The model that answered last (`provider/model`).
    pub model: String,
    /// Why the loop stopped early (a limit), if it did.
    pub stopped: Option<String>,
    /// Wall time of the run.
    pub duration_ms: u64,
}

/// One agent: a model, its tools, an optional persona prompt and limits.
#[derive(Clone)]
pub struct Agent {
    name: String,
    registry: ProviderRegistry,
    model: String,
    toolbox: Arc<Toolbox>,
    system: Option<String>,
    limits: AgentLimits,
    budget: Option<f64>,
    user: Option<String>,
    recorder: Option<Arc<dyn CallRecorder>>,
    stream: bool,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("tools", &self.toolbox)
            .finish()
    }
}

async fn emit(events: &Option<mpsc::Sender<AgentEvent>>, ev: AgentEvent) {
    if let Some(tx) = events {
        let _ = tx.send(ev).await;
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= RECORD_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(RECORD_CHARS).collect();
        t.push('…');
        t
    }
}

impl Agent {
    /// An agent named `name` using `model` (any model spec the registry resolves) and `toolbox`.
    pub fn new(name: &str, registry: ProviderRegistry, model: &str, toolbox: Arc<Toolbox>) -> Self {
        Agent {
            name: name.to_string(),
            registry,
            model: model.to_string(),
            toolbox,
            system: None,
            limits: AgentLimits::default(),
            budget: None,
            user: None,
            recorder: None,
            stream: false,
            temperature: None,
            max_tokens: None,
        }
    }

    /// Streams each model call, sending its text to the run's events as it arrives
    /// ([`AgentEvent::TextDelta`]), so a reader sees the answer being written.
    pub fn streaming(mut self, on: bool) -> Self {
        self.stream = on;
        self
    }

    /// The sampling temperature and the most tokens of each answer.
    pub fn with_sampling(mut self, temperature: Option<f32>, max_tokens: Option<u32>) -> Self {
        self.temperature = temperature;
        self.max_tokens = max_tokens;
        self
    }

    /// A system prompt (a persona) put before the conversation.
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// The limits of its runs.
    pub fn with_limits(mut self, limits: AgentLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Stop once the run has cost this much.
    pub fn with_budget(mut self, budget: Option<f64>) -> Self {
        self.budget = budget;
        self
    }

    /// The end user the calls are made for (sent to providers as `user`).
    pub fn for_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Reports every model call of its runs to `recorder` as the call ends (failed and abandoned
    /// calls included), for metering.
    pub fn with_recorder(mut self, recorder: Arc<dyn CallRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Its cost budget, if any.
    pub(crate) fn budget_limit(&self) -> Option<f64> {
        self.budget
    }

    /// Its recorder, if any.
    pub(crate) fn recorder(&self) -> Option<&Arc<dyn CallRecorder>> {
        self.recorder.as_ref()
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its tools.
    pub fn toolbox(&self) -> &Toolbox {
        &self.toolbox
    }

    /// Runs the loop on `messages` (the conversation so far, ending with the user's request), sending
    /// progress to `events` when given.
    pub async fn run(&self, messages: Vec<ChatMessage>, events: Option<mpsc::Sender<AgentEvent>>) -> Result<AgentRun> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.limits.deadline_secs.max(1));
        let candidates = self.registry.candidates(&self.model).await?;
        let mut convo = Vec::with_capacity(messages.len() + 1);
        if let Some(s) = &self.system {
            convo.push(ChatMessage::system(s.clone()));
        }
        convo.extend(messages);
        let mut run = AgentRun {
            agent: self.name.clone(),
            content: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            cost: 0.0,
            iterations: 0,
            model: String::new(),
            stopped: None,
            duration_ms: 0,
        };
        loop {
            let limit = if run.iterations >= self.limits.max_iterations {
                Some(format!("max_iterations ({})", self.limits.max_iterations))
            } else if run.tool_calls.len() as u32 >= self.limits.max_tool_calls {
                Some(format!("max_tool_calls ({})", self.limits.max_tool_calls))
            } else if self.budget.is_some_and(|b| run.cost >= b) {
                Some("budget exhausted".to_string())
            } else if Instant::now() >= deadline {
                Some(format!("deadline ({} s)", self.limits.deadline_secs))
            } else {
                None
            };
            let with_tools = limit.is_none() && !self.toolbox.is_empty();
            if let Some(l) = &limit {
                run.stopped = Some(l.clone());
                if Instant::now() >= deadline {
                    // No time left for a final answer: say so plainly.
                    run.content = format!("(stopped: {l}; no final answer)");
                    break;
                }
                if let Some(budget) = self.budget.filter(|b| run.cost >= *b) {
                    // No money left: a final answer would be one more call with the whole context,
                    // spending past the budget. Say so plainly instead.
                    run.stopped = Some("budget exhausted".to_string());
                    run.content = format!(
                        "(stopped: budget exhausted: this run's cost budget ({budget:.4}) is spent, {:.4} used; no final \
                         answer)",
                        run.cost
                    );
                    break;
                }
                convo.push(ChatMessage::system(format!(
                    "The tool budget is used up ({l}). Answer now from what you have; say what is missing."
                )));
            }
            run.iterations += 1;
            emit(&events, AgentEvent::Thinking { agent: self.name.clone(), iteration: run.iterations }).await;
            let mut req = ChatRequest::new(self.model.clone(), convo.clone());
            if with_tools {
                req.tools = self.toolbox.specs().to_vec();
            }
            req.user = self.user.clone();
            req.temperature = self.temperature;
            req.max_tokens = self.max_tokens;
            let left = deadline.saturating_duration_since(Instant::now());
            let text = events.as_ref().filter(|_| self.stream);
            let answer =
                call_model(&self.registry, self.recorder.as_ref(), &self.name, &candidates, &req, left, text).await;
            let (routed, cost) = match answer {
                Answer::Ok(r, cost) => (r, cost),
                Answer::Failed(f) => return Err(McpError::Provider(f.error)),
                Answer::TimedOut => {
                    run.stopped = Some(format!("deadline ({} s)", self.limits.deadline_secs));
                    run.content = "(stopped: deadline reached while the model was answering)".to_string();
                    break;
                }
            };
            let provider = routed.provider.name().to_string();
            let resp = routed.value;
            run.usage += resp.usage;
            run.cost += cost;
            run.model = format!("{provider}/{}", routed.model);
            if resp.tool_calls.is_empty() || !with_tools {
                run.content = resp.content;
                emit(&events, AgentEvent::Text { agent: self.name.clone(), text: run.content.clone() }).await;
                break;
            }
            // Run the calls the budget allows, in parallel; the rest are answered with the limit.
            let room = (self.limits.max_tool_calls as usize).saturating_sub(run.tool_calls.len());
            let calls: Vec<ToolCall> = resp.tool_calls.clone();
            convo.push(ChatMessage { tool_calls: calls.clone(), ..ChatMessage::assistant(resp.content.clone()) });
            let (now, later) = calls.split_at(room.min(calls.len()));
            for c in now {
                emit(
                    &events,
                    AgentEvent::ToolStarted {
                        agent: self.name.clone(),
                        id: c.id.clone(),
                        name: c.name.clone(),
                        arguments: c.arguments.clone(),
                    },
                )
                .await;
            }
            let base = started.elapsed().as_millis() as u64;
            let results = futures::future::join_all(now.iter().map(|c| async move {
                let t = Instant::now();
                let left = deadline.saturating_duration_since(Instant::now());
                let r = match tokio::time::timeout(left, self.toolbox.call(&c.name, &c.arguments)).await {
                    Ok(r) => r,
                    Err(_) => Err(McpError::Limit("the run's deadline passed during the call".into())),
                };
                (c, r, t.elapsed().as_millis() as u64)
            }))
            .await;
            for (c, r, ms) in results {
                let (ok, text) = match r {
                    Ok(t) => (true, t),
                    Err(e) => (false, format!("error: {e}")),
                };
                emit(
                    &events,
                    AgentEvent::ToolFinished {
                        agent: self.name.clone(),
                        id: c.id.clone(),
                        name: c.name.clone(),
                        ok,
                        duration_ms: ms,
                    },
                )
                .await;
                run.tool_calls.push(ToolCallRecord {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                    ok,
                    result: cut(&text),
                    started_ms: base,
                    duration_ms: ms,
                });
                convo.push(ChatMessage::tool(c.id.clone(), text));
            }
            for c in later {
                convo.push(ChatMessage::tool(c.id.clone(), "error: not run: the run's tool-call limit was reached"));
            }
        }
        run.duration_ms = started.elapsed().as_millis() as u64;
        Ok(run)
    }
}
