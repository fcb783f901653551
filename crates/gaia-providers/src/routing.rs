//! Reliable calls: fallback chains (`model = "a,b,c"`), retries with jittered exponential backoff on
//! retryable errors before any output, a circuit breaker per provider, a first-token timeout for
//! streams, and passive health statistics from every call.

use crate::embeddings::{EmbeddingRequest, Embeddings};
use crate::error::ProviderError;
use crate::health::ProviderStats;
use crate::provider::Provider;
use crate::registry::ProviderRegistry;
use crate::types::{ChatEvent, ChatRequest, ChatResponse, ChatStream};
use futures::StreamExt;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Retry and timeout policy of routed calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries per provider after the first attempt (on retryable errors only).
    pub max_retries: u32,
    /// First backoff; doubles on each retry, with full jitter.
    pub base_backoff: Duration,
    /// Largest backoff (and largest `retry-after` honoured before falling back instead).
    pub max_backoff: Duration,
    /// How long a stream may take to produce its first event.
    pub first_token_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            first_token_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based): full jitter over an exponential cap, or the
    /// provider's `retry-after` when it gave one (`None` when that is longer than `max_backoff`).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(ra) = retry_after {
            return (ra <= self.max_backoff).then_some(ra);
        }
        let cap = self.base_backoff.saturating_mul(1u32 << attempt.min(16)).min(self.max_backoff);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Some(Duration::from_nanos(if nanos == 0 { 0 } else { rand::rng().random_range(0..=nanos) }))
    }
}

/// A provider and the model id to send it.
pub type Candidate = (Arc<dyn Provider>, String);

/// A successful routed call: what served it and how many attempts it took.
pub struct Routed<T> {
    /// The provider that answered.
    pub provider: Arc<dyn Provider>,
    /// The model id at that provider.
    pub model: String,
    /// The answer.
    pub value: T,
    /// Attempts made, across providers.
    pub attempts: u32,
}

/// A routed call that failed everywhere.
#[derive(Debug)]
pub struct RouteFailure {
    /// The last error (what the client should see).
    pub error: ProviderError,
    /// The last provider tried, if any.
    pub provider: Option<String>,
    /// The model id at that provider.
    pub model: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

/// Whether an error should make us try the next candidate (provider trouble), rather than return at
/// once (the request itself is wrong).
fn worth_falling_back(e: &ProviderError) -> bool {
    match e {
        ProviderError::InvalidRequest(_) => false,
        ProviderError::Upstream { status, .. } => !(400..500).contains(status) || matches!(status, 408 | 409),
        _ => true,
    }
}

/// Whether an error says something about the provider's health (client errors do not).
fn counts_against_provider(e: &ProviderError) -> bool {
    worth_falling_back(e) && !matches!(e, ProviderError::UnknownModel(_) | ProviderError::CircuitOpen { .. })
}

fn retry_after(e: &ProviderError) -> Option<Duration> {
    match e {
        ProviderError::RateLimited { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// What `model: "auto:HINT"` optimises for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// Lowest observed duration of whole calls.
    Fast,
    /// Lowest output price.
    Cheap,
    /// The most capable: highest price, then largest context window.
    Best,
    /// Lowest time to first token (voice and VR conversations).
    Vr,
}

impl std::str::FromStr for Hint {
    type Err = ProviderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "fast" => Ok(Hint::Fast),
            "cheap" => Ok(Hint::Cheap),
            "best" => Ok(Hint::Best),
            "vr" => Ok(Hint::Vr),
            other => {
                Err(ProviderError::InvalidRequest(format!("unknown auto hint `{other}`: use fast, cheap, best or vr")))
            }
        }
    }
}

impl ProviderRegistry {
    /// The `n` best models for `hint` among providers that are up (circuit not open, last probe not
    /// failed), using live statistics of the latest calls (`fast`: duration of whole calls, `vr`: time
    /// to the first token; the last probe's latency when there is no traffic yet) and the catalog's
    /// prices and context windows. Models with no data rank last.
    pub async fn auto_select(&self, hint: Hint, n: usize) -> Vec<(String, String)> {
        use crate::health::LatencyKind;
        let kind = if hint == Hint::Vr { LatencyKind::FirstToken } else { LatencyKind::Total };
        let mut scored: Vec<(String, String, f64, f64)> = Vec::new();
        for m in self.list_models().await {
            let stats = self.stats(&m.provider);
            if stats.circuit() == crate::health::CircuitState::Open || stats.probe_down() {
                continue;
            }
            let latency = stats.recent_latency(kind).map(|d| d.as_secs_f64()).unwrap_or(f64::MAX);
            let price = self.price(&m.provider, &m.id).map(|p| p.output).unwrap_or(f64::MAX);
            let (primary, secondary) = match hint {
                Hint::Fast | Hint::Vr => (latency, price),
                Hint::Cheap => (price, latency),
                Hint::Best => {
                    let p = self.price(&m.provider, &m.id).map(|p| -p.output).unwrap_or(0.0);
                    (p, -(m.context_window.unwrap_or(0) as f64))
                }
            };
            scored.push((m.provider, m.id, primary, secondary));
        }
        scored.sort_by(|a, b| {
            a.2.total_cmp(&b.2).then(a.3.total_cmp(&b.3)).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1)))
        });
        scored.into_iter().take(n).map(|(p, m, _, _)| (p, m)).collect()
    }

    /// The candidates for a model spec: `a,b,c` is a fallback chain tried in order; each item is a
    /// model id or `provider/model`, a configured group name, or `auto[:fast|cheap|best|vr]` (the three
    /// best models for the hint, by live health, latency and price). Fails when none resolves.
    pub async fn candidates(&self, spec: &str) -> Result<Vec<Candidate>, ProviderError> {
        let mut items: Vec<String> = Vec::new();
        for part in spec.split(',').map(str::trim) {
            if let Some(hint) = part.strip_prefix("auto").filter(|rest| rest.is_empty() || rest.starts_with(':')) {
                let hint = hint.trim_start_matches(':').parse::<Hint>()?;
                items.extend(self.auto_select(hint, 3).await.into_iter().map(|(p, m)| format!("{p}/{m}")));
                continue;
            }
            match self.group(part) {
                Some(members) => items.extend(members),
                None => items.push(part.to_string()),
            }
        }
        if items.iter().all(|s| s.is_empty()) {
            items = vec![String::new()];
        }
        let mut out: Vec<Candidate> = Vec::new();
        let mut first_err = None;
        for item in items.iter().filter(|s| !s.is_empty() || items.len() == 1) {
            match self.resolve(item).await {
                Ok(c) => {
                    if !out.iter().any(|(p, m)| p.name() == c.0.name() && *m == c.1) {
                        out.push(c);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if out.is_empty() {
            return Err(first_err.unwrap_or_else(|| ProviderError::UnknownModel(spec.to_string())));
        }
        Ok(out)
    }

    /// Calls the candidates in order until one answers: each gets up to `1 + max_retries` attempts
    /// (`call(provider, model id)` makes one) with backoff between them, while its circuit allows;
    /// an error that is the request's fault ends it all at once. Every attempt is recorded in the
    /// provider's statistics; `done` turns a success into the answer and records it (it gets the
    /// provider's statistics and when the attempt started). `skip` picks errors that move on to the
    /// next candidate at once, neither retried nor counted against the provider (a provider that
    /// cannot serve this kind of call). `asked_model` names the model of the error when there is no
    /// candidate.
    async fn routed<T, U, F, Fut, D>(
        &self,
        candidates: &[Candidate],
        asked_model: &str,
        skip: fn(&ProviderError) -> bool,
        call: F,
        done: D,
    ) -> Result<Routed<U>, RouteFailure>
    where
        F: Fn(&Arc<dyn Provider>, &str) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
        D: Fn(T, &Arc<ProviderStats>, Instant) -> U,
    {
        let policy = self.retry_policy();
        let mut fail = RouteFailure {
            error: ProviderError::UnknownModel(asked_model.to_string()),
            provider: None,
            model: None,
            attempts: 0,
        };
        for (p, model) in candidates {
            let stats = self.stats(p.name());
            fail.provider = Some(p.name().to_string());
            fail.model = Some(model.clone());
            for attempt in 0..=policy.max_retries {
                if !stats.allow() {
                    fail.error = ProviderError::CircuitOpen { provider: p.name().to_string() };
                    break;
                }
                fail.attempts += 1;
                let t0 = Instant::now();
                match call(p, model).await {
                    Ok(value) => {
                        let value = done(value, &stats, t0);
                        return Ok(Routed {
                            provider: p.clone(),
                            model: model.clone(),
                            value,
                            attempts: fail.attempts,
                        });
                    }
                    Err(e) if skip(&e) => {
                        stats.release();
                        fail.error = e;
                        break;
                    }
                    Err(e) => {
                        if counts_against_provider(&e) {
                            stats.failure(t0.elapsed(), &e.to_string());
                        } else {
                            stats.release();
                        }
                        if !worth_falling_back(&e) {
                            fail.error = e;
                            return Err(fail);
                        }
                        let wait = (e.is_retryable() && attempt < policy.max_retries)
                            .then(|| policy.backoff(attempt, retry_after(&e)))
                            .flatten();
                        fail.error = e;
                        match wait {
                            Some(w) => tokio::time::sleep(w).await,
                            None => break,
                        }
                    }
                }
            }
        }
        Err(fail)
    }

    /// A complete answer from the first candidate that gives one.
    pub async fn chat_routed(
        &self,
        candidates: &[Candidate],
        req: &ChatRequest,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        let call = |p: &Arc<dyn Provider>, model: &str| {
            let mut r = req.clone();
            r.model = model.to_string();
            let p = p.clone();
            async move { p.chat(&r).await }
        };
        self.routed(candidates, &req.model, never, call, succeeded).await
    }

    /// A stream from the first candidate whose stream produces a first event. Retries and fallbacks
    /// happen only before that first event, so nothing is ever sent to the client twice.
    pub async fn stream_routed(
        &self,
        candidates: &[Candidate],
        req: &ChatRequest,
    ) -> Result<Routed<ChatStream>, RouteFailure> {
        let call = |p: &Arc<dyn Provider>, model: &str| {
            let mut r = req.clone();
            r.model = model.to_string();
            let p = p.clone();
            let limit = self.first_token_timeout(p.name());
            async move {
                tokio::time::timeout(limit, async {
                    let mut s = p.chat_stream(&r).await?;
                    match s.next().await {
                        Some(Ok(first)) => Ok((s, first)),
                        Some(Err(e)) => Err(e),
                        None => Err(ProviderError::Stream {
                            provider: p.name().to_string(),
                            message: "stream ended before any event".into(),
                        }),
                    }
                })
                .await
                .unwrap_or_else(|_| Err(ProviderError::Timeout { provider: p.name().to_string() }))
            }
        };
        // The stream's success (or failure) is recorded when it ends.
        let done = |(rest, first): (ChatStream, ChatEvent), stats: &Arc<ProviderStats>, t0: Instant| {
            watch(rest, first, stats.clone(), t0)
        };
        self.routed(candidates, &req.model, never, call, done).await
    }

    /// The vectors of `req.input` from the first candidate that gives them, with the same retries,
    /// fallbacks and circuit breakers as [`ProviderRegistry::chat_routed`] (`req.model` is replaced by
    /// each candidate's model id). The request is checked first ([`EmbeddingRequest::validate`]): an
    /// invalid one fails with no attempt. A candidate whose provider does not embed is skipped (not
    /// counted against it); one that answers vectors that do not fit the request (their number, size,
    /// or values) counts as a failed attempt.
    pub async fn embed_routed(
        &self,
        candidates: &[Candidate],
        req: &EmbeddingRequest,
    ) -> Result<Routed<Embeddings>, RouteFailure> {
        if let Err(error) = req.validate() {
            return Err(RouteFailure { error, provider: None, model: None, attempts: 0 });
        }
        let call = |p: &Arc<dyn Provider>, model: &str| {
            let mut r = req.clone();
            r.model = model.to_string();
            let p = p.clone();
            async move {
                let e = p.embed(&r).await?;
                crate::embeddings::check_vectors(p.name(), &r, &e.vectors)?;
                Ok(e)
            }
        };
        // The request is valid: a provider refusing it as invalid cannot embed (or not like this).
        let cannot = |e: &ProviderError| matches!(e, ProviderError::InvalidRequest(_));
        self.routed(candidates, &req.model, cannot, call, succeeded).await
    }
}

/// No error skips a candidate (see [`ProviderRegistry::routed`]).
fn never(_: &ProviderError) -> bool {
    false
}

/// A complete answer, recorded as a success.
fn succeeded<T>(value: T, stats: &Arc<ProviderStats>, started: Instant) -> T {
    stats.success(started.elapsed());
    value
}

/// Records the outcome of a stream in the provider's statistics: success at its end (with the time to
/// its first content and its whole duration), failure on an error, success if the client drops it
/// after the first event.
struct Outcome {
    stats: Arc<ProviderStats>,
    started: Instant,
    ttft: Option<Duration>,
    done: bool,
}

impl Outcome {
    fn saw(&mut self, ev: &ChatEvent) {
        if self.ttft.is_none() && matches!(ev, ChatEvent::TextDelta(_) | ChatEvent::ToolCallDelta { .. }) {
            self.ttft = Some(self.started.elapsed());
        }
    }
    fn ok(&mut self) {
        if !self.done {
            self.done = true;
            let total = self.started.elapsed();
            self.stats.success_stream(self.ttft.unwrap_or(total), total);
        }
    }
    fn failed(&mut self, e: &ProviderError) {
        if !self.done {
            self.done = true;
            self.stats.failure(self.started.elapsed(), &e.to_string());
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.ok();
    }
}

fn watch(mut rest: ChatStream, first: ChatEvent, stats: Arc<ProviderStats>, started: Instant) -> ChatStream {
    Box::pin(async_stream::stream! {
        let mut outcome = Outcome { stats, started, ttft: None, done: false };
        outcome.saw(&first);
        yield Ok(first);
        while let Some(ev) = rest.next().await {
            match &ev {
                Ok(e) => outcome.saw(e),
                Err(e) => outcome.failed(e),
            }
            yield ev;
        }
        outcome.ok();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = RetryPolicy {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..Default::default()
        };
        for attempt in 0..10 {
            let w = p.backoff(attempt, None).unwrap();
            let cap = Duration::from_millis(100 * (1 << attempt.min(10))).min(Duration::from_millis(300));
            assert!(w <= cap, "{attempt}: {w:?} > {cap:?}");
        }
        assert_eq!(p.backoff(0, Some(Duration::from_millis(200))), Some(Duration::from_millis(200)));
        assert_eq!(p.backoff(0, Some(Duration::from_secs(5))), None, "too long: fall back instead");
    }

    #[test]
    fn which_errors_fall_back() {
        assert!(!worth_falling_back(&ProviderError::InvalidRequest("x".into())));
        assert!(!worth_falling_back(&ProviderError::Upstream {
            provider: "p".into(),
            status: 400,
            message: String::new()
        }));
        assert!(worth_falling_back(&ProviderError::Upstream {
            provider: "p".into(),
            status: 503,
            message: String::new()
        }));
        assert!(worth_falling_back(&ProviderError::Unauthorized { provider: "p".into(), message: String::new() }));
        assert!(worth_falling_back(&ProviderError::UnknownModel("m".into())));
        assert!(!counts_against_provider(&ProviderError::UnknownModel("m".into())));
    }
}
