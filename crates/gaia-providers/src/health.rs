//! Live provider health: passive (every real call) and active (periodic probes). Latency percentiles,
//! error rate, and a circuit breaker that stops sending traffic to a failing provider for a while.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many recent calls the statistics cover.
const WINDOW: usize = 200;

/// How many of the latest successful calls model selection (`auto`) looks at, so that it follows
/// changes in a provider's speed quickly.
const RECENT: usize = 20;

/// Circuit-breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before letting one trial call through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, cooldown: Duration::from_secs(30) }
    }
}

/// State of a provider's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// One trial call is allowed; its outcome closes or re-opens the circuit.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    ok: bool,
    /// The whole call (for a stream: until its end).
    latency: Duration,
    /// Until the first content (text or tool call); the whole call for non-streamed answers.
    ttft: Duration,
}

/// Which latency of recent calls to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LatencyKind {
    /// The whole call.
    Total,
    /// Time to the first token.
    FirstToken,
}

#[derive(Debug)]
struct Inner {
    samples: VecDeque<Sample>,
    consecutive_failures: u32,
    state: CircuitState,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
    total: u64,
    errors: u64,
    last_error: Option<String>,
    last_probe: Option<(Instant, bool, Duration)>,
}

/// Health statistics and circuit breaker of one provider.
#[derive(Debug)]
pub struct ProviderStats {
    breaker: BreakerConfig,
    inner: Mutex<Inner>,
}

/// A snapshot for APIs and dashboards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// Whether traffic should go there (circuit not open and the last probe, if any, succeeded).
    pub up: bool,
    /// Circuit-breaker state.
    pub circuit: CircuitState,
    /// Calls in the window.
    pub window_requests: usize,
    /// Share of failed calls in the window (0 to 1).
    pub error_rate: f64,
    /// Median duration of successful calls in the window (streams: until their end).
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile of the same.
    pub latency_p95_ms: Option<u64>,
    /// Median time to the first token of successful calls in the window.
    pub ttft_p50_ms: Option<u64>,
    /// 95th percentile of the same.
    pub ttft_p95_ms: Option<u64>,
    /// Calls since start.
    pub total_requests: u64,
    /// Failed calls since start.
    pub total_errors: u64,
    /// Last failure message.
    pub last_error: Option<String>,
    /// Seconds since the last probe, and its outcome.
    pub last_probe_age_secs: Option<u64>,
    /// Whether the last probe succeeded.
    pub last_probe_ok: Option<bool>,
}

impl Default for ProviderStats {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl ProviderStats {
    /// Empty statistics with the given breaker settings.
    pub fn new(breaker: BreakerConfig) -> Self {
        ProviderStats {
            breaker,
            inner: Mutex::new(Inner {
                samples: VecDeque::with_capacity(WINDOW),
                consecutive_failures: 0,
                state: CircuitState::Closed,
                opened_at: None,
                trial_in_flight: false,
                total: 0,
                errors: 0,
                last_error: None,
                last_probe: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now. An open circuit whose cooldown has passed lets exactly one trial
    /// call through (half-open).
    pub fn allow(&self) -> bool {
        let mut g = self.lock();
        match g.state {
            CircuitState::Closed => true,
            CircuitState::Open => {
                if g.opened_at.is_some_and(|t| t.elapsed() >= self.breaker.cooldown) {
                    g.state = CircuitState::HalfOpen;
                    g.trial_in_flight = true;
                    true
                } else {
                    false
                }
            }
            CircuitState::HalfOpen => {
                if g.trial_in_flight {
                    false
                } else {
                    g.trial_in_flight = true;
                    true
                }
            }
        }
    }

    fn push(g: &mut Inner, s: Sample) {
        if g.samples.len() == WINDOW {
            g.samples.pop_front();
        }
        g.samples.push_back(s);
        g.total += 1;
    }

    /// Records a successful call and its latency (a non-streamed call: its first token is its end).
    pub fn success(&self, latency: Duration) {
        self.success_stream(latency, latency);
    }

    /// Records a successful stream: the time to its first token and its whole duration.
    pub fn success_stream(&self, ttft: Duration, latency: Duration) {
        let mut g = self.lock();
        Self::push(&mut g, Sample { ok: true, latency, ttft: ttft.min(latency) });
        g.consecutive_failures = 0;
        g.state = CircuitState::Closed;
        g.opened_at = None;
        g.trial_in_flight = false;
    }

    /// Records a failed call.
    pub fn failure(&self, latency: Duration, error: &str) {
        let mut g = self.lock();
        Self::push(&mut g, Sample { ok: false, latency, ttft: latency });
        g.errors += 1;
        g.consecutive_failures += 1;
        g.last_error = Some(error.chars().take(300).collect());
        g.trial_in_flight = false;
        if g.state == CircuitState::HalfOpen || g.consecutive_failures >= self.breaker.failure_threshold {
            g.state = CircuitState::Open;
            g.opened_at = Some(Instant::now());
        }
    }

    /// Ends a call that says nothing about the provider's health (a client error): frees a half-open
    /// trial slot without changing the statistics.
    pub fn release(&self) {
        self.lock().trial_in_flight = false;
    }

    /// Records an active probe.
    pub fn probe(&self, ok: bool, latency: Duration) {
        self.lock().last_probe = Some((Instant::now(), ok, latency));
    }

    /// Records a failed probe (or model discovery) and why: the provider reads as down until a later
    /// probe succeeds. The circuit breaker is left to real calls.
    pub fn probe_failed(&self, latency: Duration, error: &str) {
        let mut g = self.lock();
        g.last_probe = Some((Instant::now(), false, latency));
        g.last_error = Some(error.chars().take(300).collect());
    }

    /// Current circuit state (an open circuit past its cooldown reads as half-open).
    pub fn circuit(&self) -> CircuitState {
        let g = self.lock();
        match g.state {
            CircuitState::Open if g.opened_at.is_some_and(|t| t.elapsed() >= self.breaker.cooldown) => {
                CircuitState::HalfOpen
            }
            s => s,
        }
    }

    /// Median latency of successful calls in the window.
    pub fn latency_p50(&self) -> Option<Duration> {
        let g = self.lock();
        percentile(&g.samples, 0.50, LatencyKind::Total)
    }

    /// Median `kind` latency of the latest successful calls (at most the last 20), for model
    /// selection; without traffic, the latency of the last successful probe; `None` without either.
    pub fn recent_latency(&self, kind: LatencyKind) -> Option<Duration> {
        let g = self.lock();
        let recent: VecDeque<Sample> = g.samples.iter().rev().filter(|s| s.ok).take(RECENT).copied().collect();
        percentile(&recent, 0.50, kind).or_else(|| g.last_probe.filter(|p| p.1).map(|p| p.2))
    }

    /// Whether the last probe failed (the provider is down even if no call has failed yet).
    pub fn probe_down(&self) -> bool {
        self.lock().last_probe.is_some_and(|p| !p.1)
    }

    /// A snapshot of everything.
    pub fn snapshot(&self) -> HealthSnapshot {
        let circuit = self.circuit();
        let g = self.lock();
        let n = g.samples.len();
        let failed = g.samples.iter().filter(|s| !s.ok).count();
        let probe_ok = g.last_probe.map(|(_, ok, _)| ok);
        HealthSnapshot {
            up: circuit != CircuitState::Open && probe_ok.unwrap_or(true),
            circuit,
            window_requests: n,
            error_rate: if n == 0 { 0.0 } else { failed as f64 / n as f64 },
            latency_p50_ms: percentile(&g.samples, 0.50, LatencyKind::Total).map(|d| d.as_millis() as u64),
            latency_p95_ms: percentile(&g.samples, 0.95, LatencyKind::Total).map(|d| d.as_millis() as u64),
            ttft_p50_ms: percentile(&g.samples, 0.50, LatencyKind::FirstToken).map(|d| d.as_millis() as u64),
            ttft_p95_ms: percentile(&g.samples, 0.95, LatencyKind::FirstToken).map(|d| d.as_millis() as u64),
            total_requests: g.total,
            total_errors: g.errors,
            last_error: g.last_error.clone(),
            last_probe_age_secs: g.last_probe.map(|(t, _, _)| t.elapsed().as_secs()),
            last_probe_ok: probe_ok,
        }
    }
}

/// Nearest-rank percentile of successful calls' latencies.
fn percentile(samples: &VecDeque<Sample>, q: f64, kind: LatencyKind) -> Option<Duration> {
    let mut v: Vec<Duration> = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| match kind {
            LatencyKind::Total => s.latency,
            LatencyKind::FirstToken => s.ttft,
        })
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_error_rate() {
        let s = ProviderStats::default();
        for ms in 1..=100 {
            s.success(Duration::from_millis(ms));
        }
        s.failure(Duration::from_millis(5), "boom");
        let snap = s.snapshot();
        assert_eq!(snap.latency_p50_ms, Some(50));
        assert_eq!(snap.latency_p95_ms, Some(95));
        assert_eq!(snap.window_requests, 101);
        assert!((snap.error_rate - 1.0 / 101.0).abs() < 1e-9);
        assert_eq!(snap.last_error.as_deref(), Some("boom"));
        assert!(snap.up);
        assert_eq!(snap.ttft_p50_ms, Some(50), "non-streamed calls: first token = end");
    }

    #[test]
    fn first_token_and_recent_latency() {
        let s = ProviderStats::default();
        assert_eq!(s.recent_latency(LatencyKind::Total), None);
        s.probe(true, Duration::from_millis(70));
        assert_eq!(s.recent_latency(LatencyKind::FirstToken), Some(Duration::from_millis(70)), "probe as fallback");
        s.success_stream(Duration::from_millis(10), Duration::from_millis(500));
        assert_eq!(s.recent_latency(LatencyKind::FirstToken), Some(Duration::from_millis(10)));
        assert_eq!(s.recent_latency(LatencyKind::Total), Some(Duration::from_millis(500)));
        // Only the latest calls count: a provider that got slow reads as slow at once.
        for _ in 0..100 {
            s.success(Duration::from_millis(1));
        }
        for _ in 0..11 {
            s.success(Duration::from_millis(900));
        }
        assert_eq!(s.recent_latency(LatencyKind::Total), Some(Duration::from_millis(900)));
        assert_eq!(s.latency_p50(), Some(Duration::from_millis(1)), "the window still remembers");
        let snap = s.snapshot();
        assert_eq!(snap.ttft_p95_ms, Some(900));
        s.probe_failed(Duration::from_millis(3), "cannot list models");
        assert!(s.probe_down() && !s.snapshot().up);
        assert_eq!(s.snapshot().last_error.as_deref(), Some("cannot list models"));
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let s = ProviderStats::new(BreakerConfig { failure_threshold: 3, cooldown: Duration::from_millis(30) });
        for _ in 0..2 {
            assert!(s.allow());
            s.failure(Duration::ZERO, "x");
        }
        assert_eq!(s.circuit(), CircuitState::Closed);
        assert!(s.allow());
        s.failure(Duration::ZERO, "x");
        assert_eq!(s.circuit(), CircuitState::Open);
        assert!(!s.allow());
        assert!(!s.snapshot().up);
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.allow(), "one trial after the cooldown");
        assert!(!s.allow(), "only one");
        s.failure(Duration::ZERO, "still down");
        assert_eq!(s.circuit(), CircuitState::Open, "a failed trial re-opens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.allow());
        s.success(Duration::from_millis(1));
        assert_eq!(s.circuit(), CircuitState::Closed);
        assert!(s.allow() && s.allow());
    }
}
