//! Observability: Prometheus metrics (`GET /metrics`), performance summaries
//! (`GET /api/v1/performance/{summary,providers,errors}`) and the recent provider errors.
//!
//! Every [`AppState`] owns one [`Metrics`], with its own Prometheus registry (never the process-global
//! one), so two states in one process keep their numbers apart. It is fed from two places:
//!
//! - [`track`], a middleware around every route, counts HTTP requests and their latency by the
//!   route's *template* (`/api/v1/conversations/{id}`, never the raw path), method and status class.
//!   The latency of a streamed answer is the time to its response headers.
//! - [`Metrics::model_call`], called by the engine's metering of every model call (`gaia_chat::Meter`), counts
//!   calls, latency, time to first token, tokens, cost and errors by provider and model.
//!
//! Rate limiting and budgets report their refusals through [`Metrics::rate_limited`] and
//! [`Metrics::budget_refused`]; the response cache its hits and misses through [`Metrics::cache`].
//!
//! **Quantiles** (p50, p95, p99) are estimated from histogram buckets, the way Prometheus's
//! `histogram_quantile` does it: the bucket holding the rank is found and the value interpolated
//! linearly inside it ([`bucket_quantile`]). They are as precise as the buckets are fine (see
//! [`HTTP_BUCKETS`], [`MODEL_BUCKETS`], [`TTFT_BUCKETS`]); a rank beyond the last finite bucket reads
//! as that bucket's bound. Lifetime figures come from the Prometheus histograms themselves; the last
//! five minutes from a ring of thirty 10-second slots, each holding counts and the same buckets, so
//! memory stays fixed whatever the traffic (the window is 290 to 300 seconds long).
//!
//! **Cardinality** stays bounded: routes are templates (`unmatched` for unknown paths), unusual HTTP
//! methods read `other`, and past [`MAX_MODEL_SERIES`] distinct provider/model pairs (model names can
//! come from callers) new models are counted as `other`.
//!
//! **Secrets**: error messages kept for `/api/v1/performance/errors` are shortened and anything that
//! looks like a key or a bearer token is replaced by `[redacted]` ([`redact`]).

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily};
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Upper bounds, in seconds, of the HTTP request latency buckets.
pub const HTTP_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds, in seconds, of the game sockets' fan-out delay buckets.
pub const WORLD_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Upper bounds, in seconds, of the model-call latency buckets.
pub const MODEL_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0];
/// Upper bounds, in seconds, of the time-to-first-token buckets.
pub const TTFT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];
/// Most distinct provider/model label pairs; later new pairs are counted under model `other`.
pub const MAX_MODEL_SERIES: usize = 500;
/// Most distinct `scope` labels of the rate-limit and budget counters; later ones read `other`.
pub const MAX_SCOPES: usize = 64;
/// How many recent provider errors are kept for `/api/v1/performance/errors`.
pub const ERROR_CAPACITY: usize = 200;
/// Length of the recent window of the performance summary.
pub const WINDOW: Duration = Duration::from_secs(SLOT_SECS * WINDOW_SLOTS);
/// Longest error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 300;
/// Longest label value, in characters.
const MAX_LABEL_CHARS: usize = 120;
const SLOT_SECS: u64 = 10;
const WINDOW_SLOTS: u64 = 30;

/// The status answered when the client went away.
const CLIENT_CLOSED: u16 = gaia_chat::CLIENT_CLOSED;

/// One finished model call, as the engine's metering reports it.
pub type ModelCall<'a> = gaia_chat::CallReport<'a>;

impl gaia_chat::CallObserver for Metrics {
    fn model_call(&self, c: &ModelCall<'_>) {
        Metrics::model_call(self, c)
    }
    fn rate_limited(&self, scope: &str) {
        Metrics::rate_limited(self, scope)
    }
    fn budget_refused(&self, scope: &str) {
        Metrics::budget_refused(self, scope)
    }
    fn response_cache(&self, hit: bool) {
        self.cache(hit)
    }
    fn guardrail_trip(&self, rule: &str, stage: &str, action: &str) {
        // Rule names come from the configuration (at most 64): a bounded label.
        self.guardrail_trips.with_label_values(&[rule, stage, action]).inc();
    }
}

/// A recent provider or model error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorEntry {
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Endpoint that made the call.
    pub endpoint: String,
    /// HTTP status answered.
    pub status: u16,
    /// The error message, shortened, with anything that looks like a secret redacted.
    pub message: String,
}

/// p50, p95 and p99 of a latency, in milliseconds (`null` without samples).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tokens {
    /// Prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
}

/// Response-cache use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheStats {
    /// Answers served from the cache.
    pub hits: u64,
    /// Cacheable requests the cache did not hold.
    pub misses: u64,
    /// `hits / (hits + misses)`, `null` before any cacheable request.
    pub hit_rate: Option<f64>,
}

/// Figures over one period (the process lifetime or the recent window).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodSummary {
    /// HTTP requests answered.
    pub requests: u64,
    /// Those answered with a 5xx status.
    pub server_errors: u64,
    /// `server_errors / requests` (0 without requests).
    pub error_rate: f64,
    /// HTTP latency (to the response headers).
    pub latency_ms: Quantiles,
    /// Model calls (response-cache hits included, as provider `cache`).
    pub model_calls: u64,
    /// Model calls that failed (status 400 or more, clients that went away excepted).
    pub model_errors: u64,
    /// `model_errors / model_calls` (0 without calls).
    pub model_error_rate: f64,
    /// Model-call latency (to the end of the answer).
    pub model_latency_ms: Quantiles,
    /// Time to the first token of streamed answers.
    pub ttft_ms: Quantiles,
    /// Tokens in and out.
    pub tokens: Tokens,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Response-cache use.
    pub cache: CacheStats,
    /// Requests refused by rate limits.
    pub rate_limited: u64,
    /// Requests refused by budgets.
    pub budget_refused: u64,
}

/// `GET /api/v1/performance/summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceSummary {
    /// Seconds since this instance started measuring.
    pub uptime_secs: u64,
    /// Chat streams being served now.
    pub active_streams: usize,
    /// Since the process started.
    pub lifetime: PeriodSummary,
    /// Length of the recent window, in seconds.
    pub window_secs: u64,
    /// Over the last five minutes.
    pub last_5m: PeriodSummary,
}

/// One provider/model pair's lifetime figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPerformance {
    /// Model.
    pub model: String,
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Calls the client abandoned.
    pub client_closed: u64,
    /// Median latency, in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, in milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// Median time to first token, in milliseconds.
    pub ttft_p50_ms: Option<f64>,
    /// Tokens in and out.
    pub tokens: Tokens,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// Quantile estimates from cumulative histogram buckets, as Prometheus's `histogram_quantile`.
///
/// `buckets` are `(upper bound, cumulative count)` pairs of the finite buckets in increasing order,
/// `total` the count of every sample (the `+Inf` bucket). The rank `q * total` is located in the first
/// bucket whose cumulative count reaches it and the value is interpolated linearly between that
/// bucket's lower bound (the previous bound, or 0) and its upper bound. A rank past the last finite
/// bucket gives that bucket's bound. `None` without samples or for a `q` outside `0..=1`.
pub fn bucket_quantile(q: f64, buckets: &[(f64, u64)], total: u64) -> Option<f64> {
    if total == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = 0.0;
    let mut below = 0u64;
    for &(upper, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let inside = cumulative.saturating_sub(below);
            if inside == 0 {
                return Some(lower);
            }
            return Some(lower + (upper - lower) * (rank - below as f64) / inside as f64);
        }
        lower = upper;
        below = cumulative;
    }
    buckets.last().map(|(upper, _)| *upper)
}

/// Replaces what looks like a secret (`sk-…`, `gaia_…`, a bearer token, a long random-looking string,
/// the value after `key=`/`token=`/`secret=`/`password=`) with `[redacted]` and shortens the message.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 16));
    let mut redact_next = false;
    let mut rest = message;
    while !rest.is_empty() {
        // Alternate between runs of token characters and everything else.
        let is_tok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/');
        let first = rest.chars().next().unwrap_or(' ');
        let end = rest.find(|c: char| is_tok(c) != is_tok(first)).unwrap_or(rest.len());
        let (part, tail) = rest.split_at(end);
        rest = tail;
        if !is_tok(first) {
            out.push_str(part);
            continue;
        }
        if redact_next || looks_secret(part) {
            out.push_str("[redacted]");
        } else {
            out.push_str(part);
        }
        const KEYISH: [&str; 7] = ["key", "api_key", "apikey", "token", "secret", "password", "authorization"];
        let lower = part.to_ascii_lowercase();
        let keyish = KEYISH
            .iter()
            .any(|k| lower == *k || lower.ends_with(&format!("_{k}")) || lower.ends_with(&format!("-{k}")));
        redact_next = lower == "bearer" || (keyish && tail.starts_with(['=', ':']));
    }
    if out.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = out.chars().take(MAX_MESSAGE_CHARS).collect();
        return format!("{cut}…");
    }
    out
}

fn looks_secret(word: &str) -> bool {
    const PREFIXES: [&str; 7] = ["sk-", "sk_", "gaia_", "xai-", "AIza", "ghp_", "eyJ"];
    if PREFIXES.iter().any(|p| word.starts_with(p)) && word.len() >= 12 {
        return true;
    }
    // Long strings mixing letters and digits (keys, tokens); UUIDs (36) and words stay readable.
    word.len() >= 40
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
        && !word.contains('.')
}

/// Bucket counts of one histogram (non-cumulative, the last one `+Inf`), for the recent window.
#[derive(Debug, Clone, PartialEq)]
struct Buckets {
    bounds: &'static [f64],
    counts: Vec<u64>,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets { bounds, counts: vec![0; bounds.len() + 1] }
    }

    fn observe(&mut self, seconds: f64) {
        let i = self.bounds.iter().position(|b| seconds <= *b).unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
    }

    fn add(&mut self, other: &Buckets) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// `(upper bound, cumulative count)` of the finite buckets and the total.
    fn cumulative(&self) -> (Vec<(f64, u64)>, u64) {
        let mut sum = 0;
        let finite = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                sum += c;
                (*b, sum)
            })
            .collect();
        (finite, self.counts.iter().sum())
    }

    fn quantiles_ms(&self) -> Quantiles {
        let (b, total) = self.cumulative();
        quantiles_ms(&b, total)
    }
}

fn quantiles_ms(buckets: &[(f64, u64)], total: u64) -> Quantiles {
    let ms = |q| bucket_quantile(q, buckets, total).map(|s| (s * 1000.0 * 10.0).round() / 10.0);
    Quantiles { p50: ms(0.5), p95: ms(0.95), p99: ms(0.99) }
}

/// Counts of one period.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    requests: u64,
    server_errors: u64,
    model_calls: u64,
    model_errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    cache_hits: u64,
    cache_misses: u64,
    rate_limited: u64,
    budget_refused: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.server_errors += o.server_errors;
        self.model_calls += o.model_calls;
        self.model_errors += o.model_errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd += o.cost_usd;
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
        self.rate_limited += o.rate_limited;
        self.budget_refused += o.budget_refused;
    }
}

/// Ten seconds of traffic.
#[derive(Debug, Clone)]
struct Slot {
    index: u64,
    totals: Totals,
    http: Buckets,
    model: Buckets,
    ttft: Buckets,
}

impl Slot {
    fn new(index: u64) -> Self {
        Slot {
            index,
            totals: Totals::default(),
            http: Buckets::new(HTTP_BUCKETS),
            model: Buckets::new(MODEL_BUCKETS),
            ttft: Buckets::new(TTFT_BUCKETS),
        }
    }
}

/// The recent window (a ring of slots) and the recent errors.
#[derive(Debug, Default)]
struct Recent {
    slots: VecDeque<Slot>,
    errors: VecDeque<ErrorEntry>,
}

impl Recent {
    /// The slot for `index` (slots older than the window are dropped).
    fn slot(&mut self, index: u64) -> &mut Slot {
        if self.slots.back().is_none_or(|s| s.index < index) {
            self.slots.push_back(Slot::new(index));
        }
        while self.slots.front().is_some_and(|s| s.index + WINDOW_SLOTS <= index) {
            self.slots.pop_front();
        }
        // Clocks only move forward, so the newest slot is the one for `index`.
        let last = self.slots.len().saturating_sub(1);
        &mut self.slots[last]
    }

    /// The sum of the slots in the window ending at `index`.
    fn window(&self, index: u64) -> Slot {
        let mut sum = Slot::new(index);
        for s in self.slots.iter().filter(|s| s.index + WINDOW_SLOTS > index) {
            sum.totals.add(&s.totals);
            sum.http.add(&s.http);
            sum.model.add(&s.model);
            sum.ttft.add(&s.ttft);
        }
        sum
    }
}

/// Label sets seen so far, to bound the number of series.
#[derive(Debug, Default)]
struct Seen {
    models: HashSet<(String, String)>,
    scopes: HashSet<String>,
}

/// An instance's metrics: a Prometheus registry of its own plus the recent window and errors.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    model_calls: IntCounterVec,
    model_duration: HistogramVec,
    model_ttft: HistogramVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    provider_errors: IntCounterVec,
    cache: IntCounterVec,
    active_streams: IntGauge,
    rate_limited: IntCounterVec,
    budget_refused: IntCounterVec,
    guardrail_trips: IntCounterVec,
    world_sockets: IntGauge,
    world_resyncs: IntCounterVec,
    world_gps: IntCounterVec,
    world_delay: HistogramVec,
    seen: Mutex<Seen>,
    recent: Mutex<Recent>,
    started: Instant,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("uptime", &self.started.elapsed()).finish_non_exhaustive()
    }
}

/// Errors building the metrics (only a broken metric definition can cause one).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn clip(v: &str) -> String {
    let v = if v.is_empty() { "-" } else { v };
    v.chars().take(MAX_LABEL_CHARS).collect()
}

fn label<'a>(m: &'a Metric, name: &str) -> &'a str {
    m.get_label().iter().find(|l| l.name() == name).map(|l| l.value()).unwrap_or("")
}

fn metrics_of(c: &impl Collector) -> Vec<Metric> {
    c.collect().into_iter().flat_map(|mut f: MetricFamily| std::mem::take(f.mut_metric())).collect()
}

/// Cumulative buckets and total of the histogram metrics `ms`, merged (they share their bounds).
fn merged(ms: &[&Metric]) -> (Vec<(f64, u64)>, u64) {
    let mut out: Vec<(f64, u64)> = Vec::new();
    let mut total = 0;
    for m in ms {
        let h = m.get_histogram();
        total += h.get_sample_count();
        for (i, b) in h.get_bucket().iter().enumerate() {
            match out.get_mut(i) {
                Some(o) => o.1 += b.cumulative_count(),
                None => out.push((b.upper_bound(), b.cumulative_count())),
            }
        }
    }
    (out, total)
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Metrics {
    /// Empty metrics in a registry of their own.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, labels: &[&str], buckets: &[f64]| -> Result<HistogramVec, MetricsError> {
                let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let http_requests = counter(
            "gaia_http_requests_total",
            "HTTP requests answered, by route template, method and status class.",
            &["route", "method", "status"],
        )?;
        let http_duration = histogram(
            "gaia_http_request_duration_seconds",
            "Time to the response headers, by route template and method.",
            &["route", "method"],
            HTTP_BUCKETS,
        )?;
        let model_calls = counter(
            "gaia_model_calls_total",
            "Model calls by provider, model, endpoint and outcome (ok, error, client_closed).",
            &["provider", "model", "endpoint", "outcome"],
        )?;
        let model_duration = histogram(
            "gaia_model_call_duration_seconds",
            "Model-call latency to the end of the answer, by provider and model.",
            &["provider", "model"],
            MODEL_BUCKETS,
        )?;
        let model_ttft = histogram(
            "gaia_model_time_to_first_token_seconds",
            "Time to the first token of streamed answers, by provider and model.",
            &["provider", "model"],
            TTFT_BUCKETS,
        )?;
        let tokens = counter(
            "gaia_model_tokens_total",
            "Tokens by provider, model and direction (input, output).",
            &["provider", "model", "direction"],
        )?;
        let cost = CounterVec::new(
            Opts::new("gaia_model_cost_usd_total", "Cost of model calls in US dollars, by provider and model."),
            &["provider", "model"],
        )?;
        registry.register(Box::new(cost.clone()))?;
        let provider_errors = counter(
            "gaia_provider_errors_total",
            "Failed model calls by provider and the HTTP status answered.",
            &["provider", "status"],
        )?;
        let cache =
            counter("gaia_response_cache_requests_total", "Cacheable requests by result (hit, miss).", &["result"])?;
        let active_streams = IntGauge::new("gaia_active_streams", "Chat streams being served.")?;
        registry.register(Box::new(active_streams.clone()))?;
        let rate_limited =
            counter("gaia_rate_limited_total", "Requests refused by a rate limit, by scope.", &["scope"])?;
        let budget_refused =
            counter("gaia_budget_refused_total", "Requests refused by a spending budget, by scope.", &["scope"])?;
        let guardrail_trips = counter(
            "gaia_guardrail_trips_total",
            "Guardrail rules that tripped, by rule, stage (input, output) and action (refuse, redact, flag).",
            &["rule", "stage", "action"],
        )?;
        let world_sockets = IntGauge::new("gaia_world_sockets", "Game clients connected to /ws/experience.")?;
        registry.register(Box::new(world_sockets.clone()))?;
        let world_resyncs = counter(
            "gaia_world_resyncs_total",
            "Fresh areas of interest sent instead of deltas, by reason (lost, behind, resume_miss).",
            &["reason"],
        )?;
        let world_gps = counter(
            "gaia_world_gps_suspicious_total",
            "Positions not trusted (impossible speed or jump, poor accuracy), by response (flag, refuse).",
            &["response"],
        )?;
        let world_delay = histogram(
            "gaia_world_update_delay_seconds",
            "Time from a world change leaving this instance's hub (in version order) to its world_update \
             being handed to a game socket: the server side of the fan-out.",
            &[],
            WORLD_BUCKETS,
        )?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            model_calls,
            model_duration,
            model_ttft,
            tokens,
            cost,
            provider_errors,
            cache,
            active_streams,
            rate_limited,
            budget_refused,
            guardrail_trips,
            world_sockets,
            world_resyncs,
            world_gps,
            world_delay,
            seen: Mutex::new(Seen::default()),
            recent: Mutex::new(Recent::default()),
            started: Instant::now(),
        })
    }

    /// The registry (to add metrics of your own, or gather them).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn slot_index(&self) -> u64 {
        self.started.elapsed().as_secs() / SLOT_SECS
    }

    fn with_slot(&self, f: impl FnOnce(&mut Slot)) {
        let index = self.slot_index();
        f(lock(&self.recent).slot(index));
    }

    /// Counts an HTTP request answered on the route template `route` (`unmatched` for unknown paths).
    pub fn http_request(&self, route: &str, method: &Method, status: u16, latency: Duration) {
        let method = method_label(method);
        let secs = latency.as_secs_f64();
        self.http_requests.with_label_values(&[route, method, status_class(status)]).inc();
        self.http_duration.with_label_values(&[route, method]).observe(secs);
        self.with_slot(|s| {
            s.totals.requests += 1;
            s.totals.server_errors += u64::from(status >= 500);
            s.http.observe(secs);
        });
    }

    /// The provider and model labels for a call (`other` once [`MAX_MODEL_SERIES`] pairs exist).
    fn model_labels(&self, provider: &str, model: &str) -> (String, String) {
        let key = (clip(provider), clip(model));
        let mut seen = lock(&self.seen);
        if seen.models.contains(&key) {
            return key;
        }
        if seen.models.len() < MAX_MODEL_SERIES {
            seen.models.insert(key.clone());
            return key;
        }
        (key.0, "other".into())
    }

    fn scope_label(&self, scope: &str) -> String {
        let scope = clip(scope);
        let mut seen = lock(&self.seen);
        if seen.scopes.contains(&scope) || seen.scopes.len() < MAX_SCOPES {
            seen.scopes.insert(scope.clone());
            scope
        } else {
            "other".into()
        }
    }

    /// Records a finished model call (the metering calls this for every call).
    pub fn model_call(&self, c: &ModelCall<'_>) {
        let (provider, model) = self.model_labels(c.provider, c.model);
        let failed = c.status >= 400 && c.status != CLIENT_CLOSED;
        let outcome = if c.status == CLIENT_CLOSED {
            "client_closed"
        } else if failed {
            "error"
        } else {
            "ok"
        };
        let endpoint = clip(c.endpoint);
        self.model_calls.with_label_values(&[&provider, &model, &endpoint, outcome]).inc();
        self.model_duration.with_label_values(&[&provider, &model]).observe(c.latency.as_secs_f64());
        if let Some(t) = c.ttft {
            self.model_ttft.with_label_values(&[&provider, &model]).observe(t.as_secs_f64());
        }
        self.tokens.with_label_values(&[&provider, &model, "input"]).inc_by(c.input_tokens);
        self.tokens.with_label_values(&[&provider, &model, "output"]).inc_by(c.output_tokens);
        if c.cost_usd.is_finite() && c.cost_usd > 0.0 {
            self.cost.with_label_values(&[&provider, &model]).inc_by(c.cost_usd);
        } else {
            // Keep the series visible at 0 for free calls.
            self.cost.with_label_values(&[&provider, &model]);
        }
        if failed {
            self.provider_errors.with_label_values(&[&provider, &c.status.to_string()]).inc();
        }
        let index = self.slot_index();
        let mut recent = lock(&self.recent);
        let s = recent.slot(index);
        s.totals.model_calls += 1;
        s.totals.model_errors += u64::from(failed);
        s.totals.input_tokens += c.input_tokens;
        s.totals.output_tokens += c.output_tokens;
        if c.cost_usd.is_finite() && c.cost_usd > 0.0 {
            s.totals.cost_usd += c.cost_usd;
        }
        s.model.observe(c.latency.as_secs_f64());
        if let Some(t) = c.ttft {
            s.ttft.observe(t.as_secs_f64());
        }
        if failed {
            if recent.errors.len() >= ERROR_CAPACITY {
                recent.errors.pop_front();
            }
            recent.errors.push_back(ErrorEntry {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                provider,
                model,
                endpoint,
                status: c.status,
                message: redact(c.error.unwrap_or("")),
            });
        }
    }

    /// Counts a cacheable request: answered from the response cache (`hit`) or not.
    pub fn cache(&self, hit: bool) {
        self.cache.with_label_values(&[if hit { "hit" } else { "miss" }]).inc();
        self.with_slot(|s| {
            if hit {
                s.totals.cache_hits += 1;
            } else {
                s.totals.cache_misses += 1;
            }
        });
    }

    /// Counts a request refused by a rate limit of `scope` (a small fixed set such as `user`, `key`,
    /// `ip`, `global`; never an id: past [`MAX_SCOPES`] values new ones read `other`).
    pub fn rate_limited(&self, scope: &str) {
        let scope = self.scope_label(scope);
        self.rate_limited.with_label_values(&[&scope]).inc();
        self.with_slot(|s| s.totals.rate_limited += 1);
    }

    /// Counts a request refused by a spending budget of `scope` (same rules as [`Metrics::rate_limited`]).
    pub fn budget_refused(&self, scope: &str) {
        let scope = self.scope_label(scope);
        self.budget_refused.with_label_values(&[&scope]).inc();
        self.with_slot(|s| s.totals.budget_refused += 1);
    }

    /// Counts a game socket opening (`1`) or closing (`-1`).
    pub fn world_socket(&self, delta: i64) {
        self.world_sockets.add(delta);
    }

    /// Counts a fresh area of interest sent instead of deltas.
    pub fn world_resync(&self, reason: &'static str) {
        self.world_resyncs.with_label_values(&[reason]).inc();
    }

    /// Records how long a `world_update` waited between the hub and its socket.
    pub fn world_update_delay(&self, waited: Duration) {
        self.world_delay.with_label_values(&[] as &[&str]).observe(waited.as_secs_f64());
    }

    /// Counts a position not trusted, and what was done (`flag`, `refuse`).
    pub fn world_gps_suspicious(&self, response: &'static str) {
        self.world_gps.with_label_values(&[response]).inc();
    }

    /// Every metric in Prometheus's text exposition format, with the active-stream gauge set to
    /// `active_streams`.
    pub fn render(&self, active_streams: usize) -> String {
        self.active_streams.set(i64::try_from(active_streams).unwrap_or(i64::MAX));
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    fn counter_sum(vec: &IntCounterVec, keep: impl Fn(&Metric) -> bool) -> u64 {
        metrics_of(vec).iter().filter(|m| keep(m)).map(|m| m.get_counter().get_value() as u64).sum()
    }

    fn lifetime(&self) -> PeriodSummary {
        let http = metrics_of(&self.http_duration);
        let (hb, ht) = merged(&http.iter().collect::<Vec<_>>());
        let model = metrics_of(&self.model_duration);
        let (mb, mt) = merged(&model.iter().collect::<Vec<_>>());
        let ttft = metrics_of(&self.model_ttft);
        let (tb, tt) = merged(&ttft.iter().collect::<Vec<_>>());
        let all = |_: &Metric| true;
        let cost: f64 = metrics_of(&self.cost).iter().map(|m| m.get_counter().get_value()).sum();
        let totals = Totals {
            requests: Self::counter_sum(&self.http_requests, all),
            server_errors: Self::counter_sum(&self.http_requests, |m| label(m, "status") == "5xx"),
            model_calls: Self::counter_sum(&self.model_calls, all),
            model_errors: Self::counter_sum(&self.model_calls, |m| label(m, "outcome") == "error"),
            input_tokens: Self::counter_sum(&self.tokens, |m| label(m, "direction") == "input"),
            output_tokens: Self::counter_sum(&self.tokens, |m| label(m, "direction") == "output"),
            cost_usd: cost,
            cache_hits: Self::counter_sum(&self.cache, |m| label(m, "result") == "hit"),
            cache_misses: Self::counter_sum(&self.cache, |m| label(m, "result") == "miss"),
            rate_limited: Self::counter_sum(&self.rate_limited, all),
            budget_refused: Self::counter_sum(&self.budget_refused, all),
        };
        period(&totals, quantiles_ms(&hb, ht), quantiles_ms(&mb, mt), quantiles_ms(&tb, tt))
    }

    /// The performance summary: lifetime and last five minutes.
    pub fn summary(&self, active_streams: usize) -> PerformanceSummary {
        let lifetime = self.lifetime();
        let w = lock(&self.recent).window(self.slot_index());
        let last_5m = period(&w.totals, w.http.quantiles_ms(), w.model.quantiles_ms(), w.ttft.quantiles_ms());
        PerformanceSummary {
            uptime_secs: self.started.elapsed().as_secs(),
            active_streams,
            lifetime,
            window_secs: WINDOW.as_secs(),
            last_5m,
        }
    }

    /// Lifetime figures per provider and model (providers sorted by name, models by name).
    pub fn by_model(&self) -> BTreeMap<String, Vec<ModelPerformance>> {
        let mut out: BTreeMap<(String, String), ModelPerformance> = BTreeMap::new();
        let key = |m: &Metric| (label(m, "provider").to_string(), label(m, "model").to_string());
        let blank = |model: &str| ModelPerformance {
            model: model.to_string(),
            calls: 0,
            errors: 0,
            client_closed: 0,
            latency_p50_ms: None,
            latency_p95_ms: None,
            ttft_p50_ms: None,
            tokens: Tokens::default(),
            cost_usd: 0.0,
        };
        for m in metrics_of(&self.model_calls) {
            let k = key(&m);
            let e = out.entry(k.clone()).or_insert_with(|| blank(&k.1));
            let n = m.get_counter().get_value() as u64;
            e.calls += n;
            match label(&m, "outcome") {
                "error" => e.errors += n,
                "client_closed" => e.client_closed += n,
                _ => {}
            }
        }
        for m in metrics_of(&self.model_duration) {
            let k = key(&m);
            let e = out.entry(k.clone()).or_insert_with(|| blank(&k.1));
            let (b, t) = merged(&[&m]);
            let q = quantiles_ms(&b, t);
            e.latency_p50_ms = q.p50;
            e.latency_p95_ms = q.p95;
        }
        for m in metrics_of(&self.model_ttft) {
            let k = key(&m);
            let e = out.entry(k.clone()).or_insert_with(|| blank(&k.1));
            let (b, t) = merged(&[&m]);
            e.ttft_p50_ms = quantiles_ms(&b, t).p50;
        }
        for m in metrics_of(&self.tokens) {
            let k = key(&m);
            let e = out.entry(k.clone()).or_insert_with(|| blank(&k.1));
            let n = m.get_counter().get_value() as u64;
            if label(&m, "direction") == "input" {
                e.tokens.input += n;
            } else {
                e.tokens.output += n;
            }
        }
        for m in metrics_of(&self.cost) {
            let k = key(&m);
            out.entry(k.clone()).or_insert_with(|| blank(&k.1)).cost_usd += m.get_counter().get_value();
        }
        let mut grouped: BTreeMap<String, Vec<ModelPerformance>> = BTreeMap::new();
        for ((provider, _), perf) in out {
            grouped.entry(provider).or_default().push(perf);
        }
        grouped
    }

    /// Failed calls by provider and status since start: `(provider, status, count)`, sorted.
    pub fn error_counts(&self) -> Vec<(String, u16, u64)> {
        let mut out: Vec<(String, u16, u64)> = metrics_of(&self.provider_errors)
            .iter()
            .map(|m| {
                let status = label(m, "status").parse().unwrap_or(0);
                (label(m, "provider").to_string(), status, m.get_counter().get_value() as u64)
            })
            .collect();
        out.sort();
        out
    }

    /// The most recent provider errors, newest first (at most `limit`, at most [`ERROR_CAPACITY`]).
    pub fn recent_errors(&self, limit: usize) -> Vec<ErrorEntry> {
        lock(&self.recent).errors.iter().rev().take(limit).cloned().collect()
    }
}

fn period(t: &Totals, latency: Quantiles, model: Quantiles, ttft: Quantiles) -> PeriodSummary {
    let cacheable = t.cache_hits + t.cache_misses;
    PeriodSummary {
        requests: t.requests,
        server_errors: t.server_errors,
        error_rate: rate(t.server_errors, t.requests),
        latency_ms: latency,
        model_calls: t.model_calls,
        model_errors: t.model_errors,
        model_error_rate: rate(t.model_errors, t.model_calls),
        model_latency_ms: model,
        ttft_ms: ttft,
        tokens: Tokens { input: t.input_tokens, output: t.output_tokens },
        cost_usd: t.cost_usd,
        cache: CacheStats {
            hits: t.cache_hits,
            misses: t.cache_misses,
            hit_rate: (cacheable > 0).then(|| rate(t.cache_hits, cacheable)),
        },
        rate_limited: t.rate_limited,
        budget_refused: t.budget_refused,
    }
}

/// Middleware counting every HTTP request by route template, method and status class.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = req.method().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    let route = route.as_deref().unwrap_or("unmatched");
    state.metrics().http_request(route, &method, resp.status().as_u16(), start.elapsed());
    resp
}

/// `GET /metrics`: every metric in Prometheus's text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics().render(state.active_streams());
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// `GET /api/v1/performance/summary`.
pub async fn summary(State(state): State<AppState>) -> Json<PerformanceSummary> {
    Json(state.metrics().summary(state.active_streams()))
}

/// `GET /api/v1/performance/providers`: per provider, the lifetime figures of each model and the
/// registry's live health (`null` for pseudo-providers such as `cache`).
pub async fn providers(State(state): State<AppState>) -> Json<Value> {
    let mut by_model = state.metrics().by_model();
    let health: BTreeMap<String, _> = state.providers().health_snapshots().into_iter().collect();
    for name in health.keys() {
        by_model.entry(name.clone()).or_default();
    }
    let providers: Vec<Value> = by_model
        .into_iter()
        .map(|(name, models)| {
            let calls: u64 = models.iter().map(|m| m.calls).sum();
            let errors: u64 = models.iter().map(|m| m.errors).sum();
            json!({
                "name": name,
                "configured": health.contains_key(&name),
                "calls": calls,
                "errors": errors,
                "health": health.get(&name),
                "models": models,
            })
        })
        .collect();
    Json(json!({"providers": providers}))
}

/// Query of `GET /api/v1/performance/errors`.
#[derive(Debug, Deserialize)]
pub struct ErrorsQuery {
    /// Most recent errors to return (default 50, at most [`ERROR_CAPACITY`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /api/v1/performance/errors`: failed model calls counted by provider and status since start,
/// and the most recent ones, newest first.
pub async fn errors(
    State(state): State<AppState>,
    q: Result<Query<ErrorsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(50).min(ERROR_CAPACITY);
    let m = state.metrics();
    let counts = m.error_counts();
    let total: u64 = counts.iter().map(|c| c.2).sum();
    let by_provider: Vec<Value> =
        counts.into_iter().map(|(p, s, n)| json!({"provider": p, "status": s, "count": n})).collect();
    Ok(Json(json!({
        "total": total,
        "by_provider": by_provider,
        "capacity": ERROR_CAPACITY,
        "recent": m.recent_errors(limit),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        // 10 samples in (0, 1], 10 in (1, 2].
        let b = [(1.0, 10), (2.0, 20)];
        assert!(close(bucket_quantile(0.5, &b, 20), 1.0));
        assert!(close(bucket_quantile(0.25, &b, 20), 0.5));
        assert!(close(bucket_quantile(0.75, &b, 20), 1.5));
        assert!(close(bucket_quantile(1.0, &b, 20), 2.0));
        assert!(close(bucket_quantile(0.0, &b, 20), 0.0));
    }

    #[test]
    fn quantiles_edge_cases() {
        assert_eq!(bucket_quantile(0.5, &[(1.0, 0)], 0), None, "no samples");
        assert_eq!(bucket_quantile(1.5, &[(1.0, 1)], 1), None, "q out of range");
        assert_eq!(bucket_quantile(f64::NAN, &[(1.0, 1)], 1), None);
        // Everything beyond the last finite bucket reads as its bound.
        assert!(close(bucket_quantile(0.99, &[(1.0, 0), (2.0, 0)], 5), 2.0));
        // Empty buckets are skipped: all samples in (2, 4].
        let b = [(1.0, 0), (2.0, 0), (4.0, 4)];
        assert!(close(bucket_quantile(0.5, &b, 4), 3.0));
        // p99 of 100 samples where one is slow.
        let b = [(0.1, 99), (10.0, 100)];
        assert!(close(bucket_quantile(0.99, &b, 100), 0.1));
        assert!(bucket_quantile(0.995, &b, 100).unwrap() > 0.1);
    }

    #[test]
    fn window_buckets_match_prometheus_placement() {
        let mut b = Buckets::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 5.0] {
            b.observe(v);
        }
        // Upper bounds are inclusive, as in Prometheus; 5.0 lands in +Inf.
        assert_eq!(b.counts, vec![2, 1, 1]);
        let (c, total) = b.cumulative();
        assert_eq!(c, vec![(0.1, 2), (1.0, 3)]);
        assert_eq!(total, 4);
        let q = b.quantiles_ms();
        assert_eq!(q.p50, Some(100.0));
        assert_eq!(q.p99, Some(1000.0));
    }

    #[test]
    fn the_window_forgets_old_slots() {
        let mut r = Recent::default();
        r.slot(0).totals.requests += 1;
        r.slot(5).totals.requests += 2;
        r.slot(5).totals.requests += 3;
        assert_eq!(r.window(5).totals.requests, 6);
        assert_eq!(r.window(WINDOW_SLOTS).totals.requests, 5, "slot 0 left the window");
        r.slot(WINDOW_SLOTS + 5).totals.requests += 7;
        assert_eq!(r.window(WINDOW_SLOTS + 5).totals.requests, 7);
        assert_eq!(r.slots.len(), 1, "old slots are dropped");
    }

    #[test]
    fn records_and_summarises() {
        let m = Metrics::new().unwrap();
        m.http_request("/api/v1/chat", &Method::POST, 200, Duration::from_millis(20));
        m.http_request("/api/v1/chat", &Method::POST, 502, Duration::from_millis(40));
        m.http_request("unmatched", &Method::from_bytes(b"BREW").unwrap(), 404, Duration::from_millis(1));
        let call = ModelCall {
            provider: "openai",
            model: "gpt",
            endpoint: "chat",
            status: 200,
            latency: Duration::from_millis(300),
            ttft: Some(Duration::from_millis(30)),
            input_tokens: 5,
            output_tokens: 7,
            cost_usd: 0.25,
            error: None,
        };
        m.model_call(&call);
        m.model_call(&ModelCall {
            status: 502,
            ttft: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            error: Some("upstream 500: bad key sk-abcdefghijklmnopqrstuvwxyz"),
            ..call
        });
        m.model_call(&ModelCall { status: 499, error: Some("client closed the connection"), ..call });
        m.cache(true);
        m.cache(false);
        m.rate_limited("user");
        m.budget_refused("user");
        let s = m.summary(2);
        assert_eq!(s.active_streams, 2);
        for p in [&s.lifetime, &s.last_5m] {
            assert_eq!(p.requests, 3);
            assert_eq!(p.server_errors, 1);
            assert_eq!(p.model_calls, 3);
            assert_eq!(p.model_errors, 1);
            assert_eq!(p.tokens, Tokens { input: 10, output: 14 });
            assert!((p.cost_usd - 0.5).abs() < 1e-9);
            assert_eq!(p.cache.hit_rate, Some(0.5));
            assert_eq!((p.rate_limited, p.budget_refused), (1, 1));
            assert!(p.latency_ms.p50.is_some() && p.ttft_ms.p50.is_some());
        }
        assert_eq!(s.lifetime.latency_ms, s.last_5m.latency_ms, "same buckets, same estimates");
        let text = m.render(2);
        assert!(text.contains("gaia_active_streams 2"), "{text}");
        assert!(text.contains(r#"gaia_http_requests_total{method="other",route="unmatched",status="4xx"} 1"#));
        assert!(text.contains(r#"gaia_provider_errors_total{provider="openai",status="502"} 1"#));
        assert!(text.contains(
            r#"gaia_model_calls_total{endpoint="chat",model="gpt",outcome="client_closed",provider="openai"} 1"#
        ));
        let per = m.by_model();
        let gpt = &per["openai"][0];
        assert_eq!((gpt.calls, gpt.errors, gpt.client_closed), (3, 1, 1));
        assert_eq!(m.error_counts(), vec![("openai".to_string(), 502, 1)]);
        let errs = m.recent_errors(10);
        assert_eq!(errs.len(), 1);
        assert!(!errs[0].message.contains("sk-abc"), "{}", errs[0].message);
    }

    #[test]
    fn two_instances_do_not_share_numbers() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.cache(true);
        assert_eq!(a.summary(0).lifetime.cache.hits, 1);
        assert_eq!(b.summary(0).lifetime.cache.hits, 0);
    }

    #[test]
    fn model_series_are_bounded() {
        let m = Metrics::new().unwrap();
        fn call(model: &str) -> ModelCall<'_> {
            ModelCall {
                provider: "p",
                model,
                endpoint: "chat",
                status: 200,
                latency: Duration::ZERO,
                ttft: None,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: 0.0,
                error: None,
            }
        }
        for i in 0..MAX_MODEL_SERIES + 10 {
            m.model_call(&call(&format!("m{i}")));
        }
        let models = m.by_model().remove("p").unwrap();
        assert_eq!(models.len(), MAX_MODEL_SERIES + 1);
        assert_eq!(models.iter().find(|x| x.model == "other").unwrap().calls, 10);
        for i in 0..MAX_SCOPES + 3 {
            m.rate_limited(&format!("s{i}"));
        }
        assert!(m.render(0).contains(r#"gaia_rate_limited_total{scope="other"} 3"#));
    }

    #[test]
    fn secrets_are_redacted() {
        let r = redact("401 from upstream: Incorrect API key provided: sk-proj-abcdef1234567890. Bearer abc.def.ghi");
        assert!(!r.contains("sk-proj"), "{r}");
        assert!(!r.contains("abc.def.ghi"), "{r}");
        assert!(r.starts_with("401 from upstream: Incorrect API key provided: [redacted]"), "{r}");
        let r = redact("bad gaia_0123456789abcdefABCDEF and api_key=hunter2 ok");
        assert!(!r.contains("gaia_0123") && !r.contains("hunter2"), "{r}");
        assert!(r.ends_with(" ok"));
        let id = "5f0c2a44-5a7e-4a55-9d3a-0b1c2d3e4f50";
        assert!(redact(&format!("request {id} failed")).contains(id), "UUIDs stay");
        let long = "x".repeat(1000);
        assert!(redact(&long).chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert_eq!(redact("model mock-error-500 answered 500"), "model mock-error-500 answered 500");
    }
}
