//! Metering of model calls: latency, time to first token, tokens, cost and outcome, recorded for every
//! call whether it succeeds, fails, or is abandoned by the client (recorded as status 499). Agent and
//! orchestrated runs report each of their model calls through [`RunMeter`] as it ends, so a run that
//! fails part-way is metered for the calls it made.

use crate::state::AppState;
use gaia_core::auth::{AuthMethod, Principal};
use gaia_core::storage::NewUsage;
use gaia_core::types::Usage;
use gaia_providers::merge_usage;
use std::time::{Duration, Instant};

/// Status recorded when the client went away before the answer was complete (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// Measures one model call and records it once: on [`Meter::finish`], or when dropped unfinished.
pub(crate) struct Meter {
    state: AppState,
    record: NewUsage,
    start: Instant,
    first_token: Option<Duration>,
    usage: Usage,
    done: bool,
}

impl Meter {
    /// Starts measuring a call for `principal` through `endpoint`; [`Meter::target`] says which
    /// provider and model served it once routing has chosen.
    pub(crate) fn start(state: &AppState, principal: &Principal, endpoint: &str) -> Meter {
        let api_key_id = match &principal.method {
            AuthMethod::ApiKey { key_id } => Some(key_id.clone()),
            _ => None,
        };
        Meter {
            state: state.clone(),
            record: NewUsage {
                user_id: principal.user_id.clone(),
                api_key_id,
                endpoint: endpoint.to_string(),
                ..Default::default()
            },
            start: Instant::now(),
            first_token: None,
            usage: Usage::default(),
            done: false,
        }
    }

    /// Sets the provider and model the call went to.
    pub(crate) fn target(&mut self, provider: &str, model: &str) {
        self.record.provider = provider.to_string();
        self.record.model = model.to_string();
    }

    /// Sets the target from a routing failure (the last provider tried), and records the failure.
    pub(crate) fn failed(&mut self, f: &gaia_providers::RouteFailure) {
        self.target(f.provider.as_deref().unwrap_or("-"), f.model.as_deref().unwrap_or("-"));
        self.finish(f.error.http_status(), Some(f.error.to_string()));
    }

    /// Counts the call as having taken `elapsed` so far (for a call measured elsewhere).
    pub(crate) fn took(&mut self, elapsed: Duration) {
        if let Some(start) = Instant::now().checked_sub(elapsed) {
            self.start = start;
        }
    }

    /// Marks the first streamed token (only the first call counts).
    pub(crate) fn token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.start.elapsed());
        }
    }

    /// Adds a usage report.
    pub(crate) fn usage(&mut self, u: Usage) {
        merge_usage(&mut self.usage, u);
    }

    /// Records the call with the HTTP status answered and an error message if it failed.
    pub(crate) fn finish(&mut self, status: u16, error: Option<String>) {
        if self.done {
            return;
        }
        self.done = true;
        let mut r = std::mem::take(&mut self.record);
        r.input_tokens = self.usage.input_tokens;
        r.output_tokens = self.usage.output_tokens;
        r.cost_usd = self.state.providers().cost(&r.provider, &r.model, self.usage);
        let elapsed = self.start.elapsed();
        r.latency_ms = elapsed.as_millis() as u64;
        r.ttft_ms = self.first_token.map(|d| d.as_millis() as u64);
        r.status = status;
        r.error = error;
        self.state.metrics().model_call(&crate::observe::ModelCall {
            provider: &r.provider,
            model: &r.model,
            endpoint: &r.endpoint,
            status,
            latency: elapsed,
            ttft: self.first_token,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
            error: r.error.as_deref(),
        });
        let tokens = r.input_tokens.saturating_add(r.output_tokens);
        if let (true, Ok(rt)) = (tokens > 0 || r.cost_usd > 0.0, tokio::runtime::Handle::try_current()) {
            let (state, user_id, key_id, cost) =
                (self.state.clone(), r.user_id.clone(), r.api_key_id.clone(), r.cost_usd);
            rt.spawn(async move {
                let who = crate::admission::subject_of(&state, user_id, key_id).await;
                state.quotas().charge_tokens(&who, tokens).await;
                state.quotas().add_spend(&who, cost).await;
            });
        }
        self.state.usage().record(r);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if !self.done {
            self.finish(CLIENT_CLOSED, Some("client closed the connection".into()));
        }
    }
}

/// Meters the model calls of agent and orchestrated runs: one usage record per call, with the
/// provider and model that served it, as each call ends (failed and abandoned calls included).
pub(crate) struct RunMeter {
    state: AppState,
    principal: Principal,
    endpoint: &'static str,
}

impl RunMeter {
    /// The recorder of the calls `principal`'s run makes through `endpoint`.
    pub(crate) fn new(state: &AppState, principal: &Principal, endpoint: &'static str) -> std::sync::Arc<RunMeter> {
        std::sync::Arc::new(RunMeter { state: state.clone(), principal: principal.clone(), endpoint })
    }
}

impl gaia_mcp::CallRecorder for RunMeter {
    fn record(&self, call: gaia_mcp::ModelCall) {
        let mut meter = Meter::start(&self.state, &self.principal, self.endpoint);
        meter.took(call.duration);
        meter.target(&call.provider, &call.model);
        meter.usage(call.usage);
        match call.outcome {
            gaia_mcp::CallOutcome::Answered => meter.finish(200, None),
            gaia_mcp::CallOutcome::Failed { status, error } => meter.finish(status, Some(error)),
            other => meter.finish(500, Some(format!("{other:?}"))),
        }
    }
}
