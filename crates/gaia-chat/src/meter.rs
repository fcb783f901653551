//! Metering of model calls: latency, time to first token, tokens, cost and outcome, recorded for every
//! call whether it succeeds, fails, or is abandoned by the client (recorded as status 499). Agent and
//! orchestrated runs report each of their model calls through [`RunMeter`] as it ends, so a run that
//! fails part-way is metered for the calls it made.

use crate::admission::Admitted;
use crate::engine::{CallReport, Engine};
use gaia_core::storage::NewUsage;
use gaia_core::types::Usage;
use gaia_providers::response_cache::ResponseCache;
use gaia_providers::{merge_usage, ChatEvent, ChatStream, RouteFailure, StreamAccumulator};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Status recorded when the client went away before the answer was complete (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// Measures one model call and records it once: on [`Meter::finish`], or when dropped unfinished
/// (as abandoned by the client).
pub struct Meter {
    engine: Engine,
    admitted: Admitted,
    record: NewUsage,
    start: Instant,
    first_token: Option<Duration>,
    usage: Usage,
    /// A cost set by the caller (media priced per unit), instead of the tokens' cost.
    cost: Option<f64>,
    done: bool,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").field("endpoint", &self.record.endpoint).field("done", &self.done).finish()
    }
}

impl Meter {
    /// Starts measuring a call of `admitted` through `endpoint`; [`Meter::target`] says which provider
    /// and model served it once routing has chosen.
    pub fn start(engine: &Engine, admitted: &Admitted, endpoint: &str) -> Meter {
        let p = admitted.principal();
        Meter {
            engine: engine.clone(),
            admitted: admitted.clone(),
            record: NewUsage {
                user_id: p.user_id.clone(),
                api_key_id: p.api_key_id().map(str::to_string),
                endpoint: endpoint.to_string(),
                end_user: admitted.subject().end_user.clone(),
                tags: admitted.tags().clone(),
                ..Default::default()
            },
            start: Instant::now(),
            first_token: None,
            usage: Usage::default(),
            cost: None,
            done: false,
        }
    }

    /// Sets the provider and model the call went to.
    pub fn target(&mut self, provider: &str, model: &str) {
        self.record.provider = provider.to_string();
        self.record.model = model.to_string();
    }

    /// Sets what the call cost, in US dollars, for calls priced by something other than tokens (an
    /// image, characters of speech, seconds of audio, credits of a 3D task).
    pub fn cost(&mut self, usd: f64) {
        self.cost = Some(usd);
    }

    /// Sets the target from a routing failure (the last provider tried), and records the failure.
    pub fn failed(&mut self, f: &RouteFailure) {
        self.target(f.provider.as_deref().unwrap_or("-"), f.model.as_deref().unwrap_or("-"));
        self.finish(f.error.http_status(), Some(f.error.to_string()));
    }

    /// Counts the call as having taken `elapsed` so far (for a call measured elsewhere).
    pub fn took(&mut self, elapsed: Duration) {
        if let Some(start) = Instant::now().checked_sub(elapsed) {
            self.start = start;
        }
    }

    /// Marks the first streamed token (only the first one counts).
    pub fn token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.start.elapsed());
        }
    }

    /// Adds a usage report.
    pub fn usage(&mut self, u: Usage) {
        merge_usage(&mut self.usage, u);
    }

    /// Feeds a streamed event: first token time and usage.
    pub fn event(&mut self, ev: &ChatEvent) {
        match ev {
            ChatEvent::TextDelta(_) | ChatEvent::ToolCallDelta { .. } => self.token(),
            ChatEvent::Usage(u) => self.usage(*u),
            _ => {}
        }
    }

    /// Records the call with the HTTP status answered and an error message if it failed. Only the
    /// first call records.
    pub fn finish(&mut self, status: u16, error: Option<String>) {
        if self.done {
            return;
        }
        self.done = true;
        let parts = &self.engine.inner;
        let mut r = std::mem::take(&mut self.record);
        r.input_tokens = self.usage.input_tokens;
        r.output_tokens = self.usage.output_tokens;
        r.cached_input_tokens = self.usage.cached_input_tokens;
        r.cache_write_input_tokens = self.usage.cache_write_input_tokens;
        r.cost_usd = match self.cost {
            Some(usd) => usd,
            None => parts.providers.cost(&r.provider, &r.model, self.usage),
        };
        let elapsed = self.start.elapsed();
        r.latency_ms = elapsed.as_millis() as u64;
        r.ttft_ms = self.first_token.map(|d| d.as_millis() as u64);
        r.status = status;
        r.error = error;
        self.engine.observe(|o| {
            o.model_call(&CallReport {
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
            })
        });
        let tokens = r.input_tokens.saturating_add(r.output_tokens);
        if let (true, Ok(rt)) = (tokens > 0 || r.cost_usd > 0.0, tokio::runtime::Handle::try_current()) {
            let (quotas, who, cost) = (parts.quotas.clone(), self.admitted.subject().clone(), r.cost_usd);
            rt.spawn(async move {
                quotas.charge_tokens(&who, tokens).await;
                quotas.add_spend(&who, cost).await;
            });
        }
        parts.usage.record(r);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if !self.done {
            self.finish(CLIENT_CLOSED, Some("client closed the connection".into()));
        }
    }
}

/// Passes a stream through, metering it as it goes: the call is recorded when the stream ends (200),
/// fails (the error's status), or is dropped early (499, the client went away). A stream that ended
/// well is stored in the response cache under `fill`'s key, when given.
pub(crate) fn metered(mut upstream: ChatStream, mut meter: Meter, fill: Option<(ResponseCache, String)>) -> ChatStream {
    use futures::StreamExt;
    Box::pin(async_stream::stream! {
        let mut acc = fill.as_ref().map(|_| StreamAccumulator::default());
        while let Some(item) = upstream.next().await {
            match &item {
                Ok(ev) => {
                    meter.event(ev);
                    if let Some(acc) = acc.as_mut() {
                        acc.push(ev);
                    }
                }
                Err(e) => {
                    meter.finish(e.http_status(), Some(e.to_string()));
                    yield item;
                    return;
                }
            }
            yield item;
        }
        meter.finish(200, None);
        if let (Some((rc, key)), Some(acc)) = (fill, acc) {
            rc.put(&key, &acc.finish()).await;
        }
    })
}

/// Meters the model calls of agent and orchestrated runs: one usage record per call, with the
/// provider and model that served it, as each call ends (failed and abandoned calls included).
pub struct RunMeter {
    engine: Engine,
    admitted: Admitted,
    endpoint: &'static str,
}

impl RunMeter {
    /// The recorder of the calls `admitted`'s run makes through `endpoint`.
    pub fn new(engine: &Engine, admitted: &Admitted, endpoint: &'static str) -> Arc<RunMeter> {
        Arc::new(RunMeter { engine: engine.clone(), admitted: admitted.clone(), endpoint })
    }
}

impl gaia_mcp::CallRecorder for RunMeter {
    fn record(&self, call: gaia_mcp::ModelCall) {
        let mut meter = Meter::start(&self.engine, &self.admitted, self.endpoint);
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
