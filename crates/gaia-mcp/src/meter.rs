//! Metering hooks: every model call an [`crate::Agent`] or an [`crate::Orchestrator`] makes is
//! reported to a [`CallRecorder`] when it ends — answered, failed, cut off by the run's deadline, or
//! abandoned because the run itself was dropped — with the provider and model that served it, its
//! tokens and its cost. A run that fails part-way has therefore already reported every call it made.

use crate::agent::AgentEvent;
use gaia_core::types::Usage;
use gaia_providers::{
    Candidate, ChatEvent, ChatRequest, ChatResponse, ProviderRegistry, RouteFailure, Routed, StreamAccumulator,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Status reported for a call abandoned because its run was dropped (the client went away).
pub const ABANDONED: u16 = 499;
/// Status reported for a call cut off by the run's deadline.
pub const DEADLINE: u16 = 504;

/// How a model call ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The model answered.
    Answered,
    /// The call failed: the HTTP status that stands for the failure, and what happened.
    Failed {
        /// HTTP status (the provider's, [`DEADLINE`] or [`ABANDONED`]).
        status: u16,
        /// What happened.
        error: String,
    },
}

/// One model call, as reported to a [`CallRecorder`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCall {
    /// The agent that made it (`coordinator` for an orchestrator's own calls).
    pub agent: String,
    /// The provider that served it (for a failure: the last one tried, or the first candidate).
    pub provider: String,
    /// The model id at that provider.
    pub model: String,
    /// Its tokens.
    pub usage: Usage,
    /// Its cost in US dollars (the registry's prices; 0 when the model has none).
    pub cost: f64,
    /// How long it took.
    pub duration: Duration,
    /// How it ended.
    pub outcome: CallOutcome,
}

/// Where the model calls of runs are reported (metering, budgets). Called once per call, from the
/// task making it; keep it quick (queue the record, do not await storage).
pub trait CallRecorder: Send + Sync {
    /// Records one finished (or failed, or abandoned) call.
    fn record(&self, call: ModelCall);
}

/// A call in flight: reported as abandoned if dropped before [`Pending::done`].
struct Pending<'a> {
    recorder: Option<&'a Arc<dyn CallRecorder>>,
    call: ModelCall,
    started: Instant,
}

impl Pending<'_> {
    fn done(mut self, provider: &str, model: &str, usage: Usage, cost: f64, outcome: CallOutcome) {
        self.call.provider = provider.to_string();
        self.call.model = model.to_string();
        self.call.usage = usage;
        self.call.cost = cost;
        self.call.outcome = outcome;
        self.report();
    }

    fn report(&mut self) {
        if let Some(r) = self.recorder.take() {
            self.call.duration = self.started.elapsed();
            r.record(self.call.clone());
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.report();
    }
}

/// How a metered call ended, for the loop that made it.
pub(crate) enum Answer {
    /// The model answered: its answer and its cost.
    Ok(Routed<ChatResponse>, f64),
    /// Every candidate failed.
    Failed(RouteFailure),
    /// The deadline passed first.
    TimedOut,
}

/// Makes one model call through `registry` within `left`, reporting it to `recorder` however it ends.
/// With `text`, the answer is streamed and its text goes to `text` as it arrives
/// ([`AgentEvent::TextDelta`]); the whole answer is returned either way.
pub(crate) async fn call_model(
    registry: &ProviderRegistry,
    recorder: Option<&Arc<dyn CallRecorder>>,
    agent: &str,
    candidates: &[Candidate],
    req: &ChatRequest,
    left: Duration,
    text: Option<&mpsc::Sender<AgentEvent>>,
) -> Answer {
    let (provider, model) =
        candidates.first().map(|(p, m)| (p.name().to_string(), m.clone())).unwrap_or_else(|| ("-".into(), "-".into()));
    let pending = Pending {
        recorder,
        call: ModelCall {
            agent: agent.to_string(),
            provider,
            model,
            usage: Usage::default(),
            cost: 0.0,
            duration: Duration::ZERO,
            outcome: CallOutcome::Failed { status: ABANDONED, error: "the run was abandoned".into() },
        },
        started: Instant::now(),
    };
    let call = async {
        match text {
            None => registry.chat_routed(candidates, req).await,
            Some(tx) => streamed(registry, candidates, req, agent, tx).await,
        }
    };
    match tokio::time::timeout(left, call).await {
        Ok(Ok(r)) => {
            let cost = registry.cost(r.provider.name(), &r.model, r.value.usage);
            pending.done(r.provider.name(), &r.model, r.value.usage, cost, CallOutcome::Answered);
            Answer::Ok(r, cost)
        }
        Ok(Err(f)) => {
            let provider = f.provider.clone().unwrap_or_else(|| pending.call.provider.clone());
            let model = f.model.clone().unwrap_or_else(|| pending.call.model.clone());
            let outcome = CallOutcome::Failed { status: f.error.http_status(), error: f.error.to_string() };
            pending.done(&provider, &model, Usage::default(), 0.0, outcome);
            Answer::Failed(f)
        }
        Err(_) => {
            let (provider, model) = (pending.call.provider.clone(), pending.call.model.clone());
            let outcome = CallOutcome::Failed { status: DEADLINE, error: "the run's deadline passed".into() };
            pending.done(&provider, &model, Usage::default(), 0.0, outcome);
            Answer::TimedOut
        }
    }
}

/// A streamed call: text deltas go to `tx` as they arrive; the events are gathered into the whole
/// answer. A stream that fails after it started is a failure of the provider that was streaming.
async fn streamed(
    registry: &ProviderRegistry,
    candidates: &[Candidate],
    req: &ChatRequest,
    agent: &str,
    tx: &mpsc::Sender<AgentEvent>,
) -> std::result::Result<Routed<ChatResponse>, RouteFailure> {
    use futures::StreamExt;
    let r = registry.stream_routed(candidates, req).await?;
    let mut acc = StreamAccumulator::default();
    let mut stream = r.value;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                if let ChatEvent::TextDelta(t) = &ev {
                    if !t.is_empty() {
                        let _ = tx.send(AgentEvent::TextDelta { agent: agent.to_string(), text: t.clone() }).await;
                    }
                }
                acc.push(&ev);
            }
            Err(error) => {
                let provider = Some(r.provider.name().to_string());
                return Err(RouteFailure { error, provider, model: Some(r.model), attempts: r.attempts });
            }
        }
    }
    Ok(Routed { provider: r.provider, model: r.model, value: acc.finish(), attempts: r.attempts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gaia_core::types::ChatMessage;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Calls(Mutex<Vec<ModelCall>>);
    impl CallRecorder for Calls {
        fn record(&self, call: ModelCall) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(call);
        }
    }

    #[tokio::test]
    async fn failed_and_abandoned_calls_are_reported() {
        let calls = Arc::new(Calls::default());
        let recorder: Arc<dyn CallRecorder> = calls.clone();
        let registry = ProviderRegistry::new();
        let req = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
        // No candidates: the registry fails at once, and the failure is reported.
        let a = call_model(&registry, Some(&recorder), "a", &[], &req, Duration::from_secs(1), None).await;
        assert!(matches!(a, Answer::Failed(_)));
        // A call dropped before it ended (its run was dropped) is reported as abandoned.
        drop(Pending {
            recorder: Some(&recorder),
            call: ModelCall {
                agent: "b".into(),
                provider: "p".into(),
                model: "m".into(),
                usage: Usage::default(),
                cost: 0.0,
                duration: Duration::ZERO,
                outcome: CallOutcome::Failed { status: ABANDONED, error: "the run was abandoned".into() },
            },
            started: Instant::now(),
        });
        let calls = calls.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].agent, "a");
        assert!(matches!(calls[0].outcome, CallOutcome::Failed { .. }));
        assert_eq!((calls[1].provider.as_str(), calls[1].model.as_str()), ("p", "m"));
        assert_eq!(calls[1].outcome, CallOutcome::Failed { status: ABANDONED, error: "the run was abandoned".into() });
    }
}
