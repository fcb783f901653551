//! Multi-agent orchestration: a coordinator model splits a task into subtasks for named specialist
//! agents (each with its own tools and persona), the specialists run in parallel, and the coordinator
//! writes the answer from their results. A specialist that fails or runs out of time leaves a clear
//! gap in the results instead of stopping the others.

use crate::agent::{Agent, AgentEvent, AgentRun};
use crate::error::{McpError, Result};
use crate::meter::{call_model, Answer, CallRecorder};
use gaia_core::types::{ChatMessage, Usage};
use gaia_providers::{ChatRequest, ProviderRegistry};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A specialist the coordinator can hand work to.
#[derive(Debug, Clone)]
pub struct Specialist {
    /// The agent (its name is how the coordinator refers to it).
    pub agent: Agent,
    /// What it is good at, for the coordinator.
    pub description: String,
}

/// One piece of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subtask {
    /// The specialist's name.
    pub agent: String,
    /// What it should do.
    pub task: String,
}

/// A specialist's part of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubRun {
    /// The subtask.
    pub subtask: Subtask,
    /// Its run, when it finished.
    pub run: Option<AgentRun>,
    /// Why it did not, otherwise.
    pub error: Option<String>,
    /// Milliseconds after the start of the orchestration when it started and ended.
    pub started_ms: u64,
    /// See `started_ms`.
    pub ended_ms: u64,
}

/// The outcome of an orchestrated run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrchestratedRun {
    /// The final answer.
    pub content: String,
    /// The plan, as the coordinator made it (or the fallback: every specialist on the whole task).
    pub plan: Vec<Subtask>,
    /// Whether the coordinator's plan could be used (else the fallback ran).
    pub planned_by_model: bool,
    /// Every specialist's part.
    pub agents: Vec<SubRun>,
    /// The coordinator's own tokens (planning and synthesis).
    pub coordinator_usage: Usage,
    /// Everything: coordinator and specialists.
    pub usage: Usage,
    /// Cost of everything.
    pub cost: f64,
    /// Wall time.
    pub duration_ms: u64,
}

/// The coordinator and its specialists.
#[derive(Clone)]
pub struct Orchestrator {
    registry: ProviderRegistry,
    model: String,
    specialists: Vec<Specialist>,
    max_agents: usize,
    deadline: Duration,
    budget: Option<f64>,
    recorder: Option<Arc<dyn CallRecorder>>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("model", &self.model)
            .field("specialists", &self.specialists)
            .field("max_agents", &self.max_agents)
            .field("deadline", &self.deadline)
            .field("budget", &self.budget)
            .finish()
    }
}

/// Finds the first JSON object in a model's text (models wrap JSON in prose or code fences).
pub fn json_object(text: &str) -> Option<serde_json::Value> {
    let start = text.find('{')?;
    let mut depth = 0usize;
    let (mut in_str, mut esc) = (false, false);
    for (i, c) in text[start..].char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_str(&text[start..=start + i]).ok();
                }
            }
            _ => {}
        }
    }
    None
}

async fn emit(events: &Option<mpsc::Sender<AgentEvent>>, ev: AgentEvent) {
    if let Some(tx) = events {
        let _ = tx.send(ev).await;
    }
}

impl Orchestrator {
    /// A coordinator on `model` over `specialists`, running at most `max_agents` of them, within
    /// `deadline` overall.
    pub fn new(
        registry: ProviderRegistry,
        model: &str,
        specialists: Vec<Specialist>,
        max_agents: usize,
        deadline: Duration,
    ) -> Self {
        Orchestrator {
            registry,
            model: model.to_string(),
            specialists,
            max_agents: max_agents.max(1),
            deadline,
            budget: None,
            recorder: None,
        }
    }

    /// Reports every model call of the run (the coordinator's and every specialist's, failed and
    /// abandoned ones included) to `recorder`; specialists that have a recorder of their own keep it.
    pub fn with_recorder(mut self, recorder: Arc<dyn CallRecorder>) -> Self {
        for s in &mut self.specialists {
            if s.agent.recorder().is_none() {
                s.agent = s.agent.clone().with_recorder(recorder.clone());
            }
        }
        self.recorder = Some(recorder);
        self
    }

    /// Stops the run once it has cost this much: the specialists share what the plan left (each
    /// gets an equal part as its budget), and the synthesis is skipped once it is spent.
    pub fn with_budget(mut self, budget: Option<f64>) -> Self {
        self.budget = budget;
        self
    }

    fn spent_up(&self, cost: f64) -> bool {
        self.budget.is_some_and(|b| cost >= b)
    }

    async fn ask(
        &self,
        messages: Vec<ChatMessage>,
        usage: &mut Usage,
        cost: &mut f64,
        left: Duration,
    ) -> Result<String> {
        let candidates = self.registry.candidates(&self.model).await?;
        let req = ChatRequest::new(self.model.clone(), messages);
        let (r, c) = match call_model(
            &self.registry,
            self.recorder.as_ref(),
            "coordinator",
            &candidates,
            &req,
            left,
            None,
        )
        .await
        {
            Answer::Ok(r, c) => (r, c),
            Answer::Failed(f) => return Err(McpError::Provider(f.error)),
            Answer::TimedOut => {
                return Err(McpError::Limit("the deadline passed while the coordinator was answering".into()))
            }
        };
        *usage += r.value.usage;
        *cost += c;
        Ok(r.value.content)
    }

    /// Plans, runs the specialists in parallel, and synthesises.
    pub async fn run(&self, task: &str, events: Option<mpsc::Sender<AgentEvent>>) -> Result<OrchestratedRun> {
        if self.specialists.is_empty() {
            return Err(McpError::Invalid("an orchestrated run needs at least one specialist".into()));
        }
        let started = Instant::now();
        let deadline = started + self.deadline;
        let left = || deadline.saturating_duration_since(Instant::now());
        let (mut coord, mut cost) = (Usage::default(), 0.0);

        // 1. Plan.
        let roster: Vec<String> =
            self.specialists.iter().map(|s| format!("- {}: {}", s.agent.name(), s.description)).collect();
        let plan_prompt = format!(
            "You coordinate specialist agents. Split the user's task into at most {} subtasks, each for one of \
             these agents:\n{}\nReply with JSON only: {{\"subtasks\": [{{\"agent\": \"<name>\", \"task\": \"<what to do>\"}}]}}",
            self.max_agents,
            roster.join("\n")
        );
        let reply = self
            .ask(vec![ChatMessage::system(plan_prompt), ChatMessage::user(task)], &mut coord, &mut cost, left())
            .await?;
        let known = |name: &str| self.specialists.iter().any(|s| s.agent.name() == name);
        let parsed: Vec<Subtask> = json_object(&reply)
            .and_then(|v| serde_json::from_value::<Vec<Subtask>>(v.get("subtasks")?.clone()).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| known(&s.agent) && !s.task.trim().is_empty())
            .take(self.max_agents)
            .collect();
        let planned_by_model = !parsed.is_empty();
        let plan = if planned_by_model {
            parsed
        } else {
            // The coordinator gave no usable plan: every specialist works on the whole task.
            self.specialists
                .iter()
                .take(self.max_agents)
                .map(|s| Subtask { agent: s.agent.name().to_string(), task: task.to_string() })
                .collect()
        };
        emit(
            &events,
            AgentEvent::Planned { subtasks: plan.iter().map(|s| (s.agent.clone(), s.task.clone())).collect() },
        )
        .await;

        // 2. Run the specialists in parallel, sharing what is left of the budget.
        let share = self.budget.map(|b| (b - cost) / plan.len().max(1) as f64);
        let runs = futures::future::join_all(plan.iter().map(|st| {
            let events = events.clone();
            async move {
                let spec = self.specialists.iter().find(|s| s.agent.name() == st.agent).map(|s| match share {
                    Some(share) => {
                        let own = s.agent.budget_limit().map_or(share, |b| b.min(share));
                        s.agent.clone().with_budget(Some(own))
                    }
                    None => s.agent.clone(),
                });
                let begin = started.elapsed().as_millis() as u64;
                emit(&events, AgentEvent::AgentStarted { agent: st.agent.clone(), task: st.task.clone() }).await;
                let outcome = match spec {
                    Some(_) if share.is_some_and(|s| s <= 0.0) => {
                        (None, Some("the cost ceiling is reached".to_string()))
                    }
                    Some(agent) => match tokio::time::timeout(
                        left(),
                        agent.run(vec![ChatMessage::user(st.task.clone())], events.clone()),
                    )
                    .await
                    {
                        Ok(Ok(run)) => (Some(run), None),
                        Ok(Err(e)) => (None, Some(e.to_string())),
                        Err(_) => (None, Some("the deadline passed".to_string())),
                    },
                    None => (None, Some(format!("no agent named {}", st.agent))),
                };
                emit(&events, AgentEvent::AgentFinished { agent: st.agent.clone(), ok: outcome.0.is_some() }).await;
                SubRun {
                    subtask: st.clone(),
                    run: outcome.0,
                    error: outcome.1,
                    started_ms: begin,
                    ended_ms: started.elapsed().as_millis() as u64,
                }
            }
        }))
        .await;

        // 3. Synthesise (or, with no time left, put the results together plainly).
        let mut usage = coord;
        for r in runs.iter().filter_map(|r| r.run.as_ref()) {
            usage += r.usage;
            cost += r.cost;
        }
        let findings: Vec<String> = runs
            .iter()
            .map(|r| match (&r.run, &r.error) {
                (Some(run), _) => format!("## {} ({})\n{}", r.subtask.agent, r.subtask.task, run.content),
                (None, Some(e)) => format!("## {} ({})\n(failed: {e})", r.subtask.agent, r.subtask.task),
                (None, None) => format!("## {}\n(no result)", r.subtask.agent),
            })
            .collect();
        let synthesis = format!(
            "Answer the user's task from the specialists' findings below. Say plainly what is missing when a \
             specialist failed.\n\n{}",
            findings.join("\n\n")
        );
        let content = if left().is_zero() {
            format!("(stopped: deadline reached before the synthesis)\n\n{}", findings.join("\n\n"))
        } else if self.spent_up(cost) {
            format!("(stopped: cost ceiling reached before the synthesis)\n\n{}", findings.join("\n\n"))
        } else {
            let mut c2 = Usage::default();
            let text = self
                .ask(vec![ChatMessage::system(synthesis), ChatMessage::user(task)], &mut c2, &mut cost, left())
                .await?;
            coord += c2;
            usage += c2;
            text
        };
        emit(&events, AgentEvent::Text { agent: "coordinator".into(), text: content.clone() }).await;
        Ok(OrchestratedRun {
            content,
            plan,
            planned_by_model,
            agents: runs,
            coordinator_usage: coord,
            usage,
            cost,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::json_object;

    #[test]
    fn finds_json_in_prose() {
        let v =
            json_object("Sure! ```json\n{\"subtasks\": [{\"agent\": \"a\", \"task\": \"b } {\"}]}\n``` done").unwrap();
        assert_eq!(v["subtasks"][0]["task"], "b } {");
        assert!(json_object("no json here").is_none());
        assert!(json_object("{ unterminated").is_none());
    }
}
