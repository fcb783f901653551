//! Rate limiting over a sliding window, in-process or shared by every instance through Redis.
//!
//! The window is approximated the usual way (a "sliding window counter"): counts are kept per fixed
//! window, and the amount used at any instant is the current window's count plus the previous
//! window's count weighted by how much of it still overlaps the sliding window. This needs two
//! counters per key instead of a log of every request, is exact when traffic is even, and never lets
//! through more than the limit over any aligned window.
//!
//! Several limits are checked and charged together, atomically (one Lua script on Redis): a request
//! refused by one limit is charged to none.
//!
//! ```
//! use gaia_core::ratelimit::{Limit, RateLimiter};
//! use std::time::Duration;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let limiter = RateLimiter::memory();
//! let minute = Duration::from_secs(60);
//! for _ in 0..3 {
//!     assert!(limiter.acquire(&[Limit::new("key:k1:req", 3, 1)], minute).await?.allowed);
//! }
//! let refused = limiter.acquire(&[Limit::new("key:k1:req", 3, 1)], minute).await?;
//! assert!(!refused.allowed);
//! assert!(refused.retry_after > Duration::ZERO);
//! # Ok::<(), gaia_core::CoreError>(())
//! # }).unwrap();
//! ```

use crate::config::redact_url;
use crate::error::{CoreError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One limit to check: at most `limit` units per window under `key`, and the `cost` of this request
/// (0 only checks that the limit is not already reached: tokens are charged after the call, with
/// [`RateLimiter::charge`], once they are known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What is limited (`key:<id>:requests`, `user:<id>:tokens`, …).
    pub key: String,
    /// Units allowed per window.
    pub limit: u64,
    /// Units this request uses.
    pub cost: u64,
}

impl Limit {
    /// A limit of `limit` units per window under `key`, charging `cost`.
    pub fn new(key: impl Into<String>, limit: u64, cost: u64) -> Self {
        Limit { key: key.into(), limit, cost }
    }
}

/// Where one limit stands after a request.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitState {
    /// The limit.
    pub limit: u64,
    /// Units left in the sliding window.
    pub remaining: u64,
    /// Time until the current fixed window ends (when the counts roll over).
    pub reset: Duration,
}

/// The answer for a set of limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Whether the request may go ahead (and was charged).
    pub allowed: bool,
    /// When refused: how long until the refusing limit has room again (at least a second).
    pub retry_after: Duration,
    /// The index in the limits given of the limit that refused.
    pub refused_by: Option<usize>,
    /// Each limit's state, in the order given.
    pub states: Vec<LimitState>,
}

/// Counts of one key: the current fixed window and the previous one.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    window: u64,
    current: u64,
    previous: u64,
}

impl Counter {
    fn roll(&mut self, window: u64) {
        if window == self.window {
            return;
        }
        self.previous = if window == self.window + 1 { self.current } else { 0 };
        self.current = 0;
        self.window = window;
    }
}

/// A rate limiter: in-process ([`RateLimiter::memory`]) or in Redis ([`RateLimiter::redis`]). Cheap to
/// clone.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<HashMap<String, Counter>>>),
    Redis { conn: redis::aio::ConnectionManager, prefix: String, script: Arc<redis::Script> },
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("kind", &self.kind()).finish()
    }
}

/// Keys kept in memory before stale ones are swept.
const SWEEP_AT: usize = 100_000;

/// Checks every limit with the counts `(current, previous)` read for it, and says which refuses.
fn evaluate(limits: &[Limit], counts: &[(u64, u64)], window_ms: u64, elapsed_ms: u64) -> Decision {
    let weight = (window_ms.saturating_sub(elapsed_ms)) as f64 / window_ms as f64;
    let reset = Duration::from_millis(window_ms.saturating_sub(elapsed_ms));
    let mut refused_by = None;
    let mut retry_after = Duration::ZERO;
    let mut used_all = Vec::with_capacity(limits.len());
    for (i, (l, &(cur, prev))) in limits.iter().zip(counts).enumerate() {
        let used = prev as f64 * weight + cur as f64;
        used_all.push(used);
        let fits = if l.cost == 0 { used < l.limit as f64 } else { used + l.cost as f64 <= l.limit as f64 };
        if !fits && refused_by.is_none() {
            refused_by = Some(i);
            // The previous window's share shrinks linearly; if that frees enough room, wait for it,
            // otherwise wait for the window to roll over.
            let excess = (used + l.cost.max(1) as f64 - l.limit as f64).max(0.0);
            let decaying = prev as f64 * weight;
            let wait_ms = if prev > 0 && decaying >= excess {
                (excess * window_ms as f64 / prev as f64).ceil() as u64
            } else {
                window_ms.saturating_sub(elapsed_ms)
            };
            retry_after = Duration::from_millis(wait_ms.max(1000));
        }
    }
    let allowed = refused_by.is_none();
    let states = limits
        .iter()
        .zip(used_all)
        .map(|(l, used)| {
            let after = if allowed { used + l.cost as f64 } else { used };
            LimitState { limit: l.limit, remaining: (l.limit as f64 - after).max(0.0).floor() as u64, reset }
        })
        .collect();
    Decision { allowed, retry_after, refused_by, states }
}

/// Checks all the limits and, when every one has room, charges them all (atomically).
/// KEYS: current and previous counter of each limit; ARGV: window ms, then limit and cost of each.
/// Returns 1 or 0, then each limit's current and previous count before charging.
const ACQUIRE: &str = r#"
local window = tonumber(ARGV[1])
local elapsed = tonumber(ARGV[2])
local weight = (window - elapsed) / window
local n = #KEYS / 2
local out = {1}
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[2*i]) or '0')
  local limit = tonumber(ARGV[1 + 2*i])
  local cost = tonumber(ARGV[2 + 2*i])
  local used = prev * weight + cur
  if (cost == 0 and used >= limit) or (cost > 0 and used + cost > limit) then out[1] = 0 end
  out[2*i] = cur
  out[2*i+1] = prev
end
if out[1] == 1 then
  for i = 1, n do
    local cost = tonumber(ARGV[2 + 2*i])
    if cost > 0 then
      redis.call('INCRBY', KEYS[2*i-1], cost)
      redis.call('PEXPIRE', KEYS[2*i-1], 2 * window)
    end
  end
end
return out
"#;

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RateLimiter {
    /// A limiter for this process only.
    pub fn memory() -> Self {
        RateLimiter { backend: Backend::Memory(Arc::new(Mutex::new(HashMap::new()))) }
    }

    /// A limiter shared through Redis at `url`, its keys starting with `prefix` (`gaia:` by default
    /// elsewhere; tests use their own). Commands time out after a second: callers decide whether an
    /// unreachable Redis lets requests through.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| CoreError::Config(format!("redis_url `{}`: {e}", redact_url(url))))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client, cfg)
            .await
            .map_err(|e| CoreError::Cache(format!("cannot connect to redis at {}: {e}", redact_url(url))))?;
        Ok(RateLimiter {
            backend: Backend::Redis { conn, prefix: prefix.to_string(), script: Arc::new(redis::Script::new(ACQUIRE)) },
        })
    }

    /// `"memory"` or `"redis"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    /// Checks `limits` over a sliding `window` and charges them all when every one has room.
    pub async fn acquire(&self, limits: &[Limit], window: Duration) -> Result<Decision> {
        self.acquire_at(limits, window, now_ms()).await
    }

    /// [`RateLimiter::acquire`] at a given time (unix milliseconds), for tests.
    pub async fn acquire_at(&self, limits: &[Limit], window: Duration, now_ms: u64) -> Result<Decision> {
        let w = window_ms(window);
        let (idx, elapsed) = (now_ms / w, now_ms % w);
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().map_err(|_| CoreError::Cache("rate limiter lock poisoned".into()))?;
                let counts: Vec<(u64, u64)> = limits
                    .iter()
                    .map(|l| {
                        let mut c = map.get(&l.key).copied().unwrap_or(Counter { window: idx, ..Default::default() });
                        c.roll(idx);
                        (c.current, c.previous)
                    })
                    .collect();
                let d = evaluate(limits, &counts, w, elapsed);
                if d.allowed {
                    for l in limits.iter().filter(|l| l.cost > 0) {
                        let c = map.entry(l.key.clone()).or_insert(Counter { window: idx, ..Default::default() });
                        c.roll(idx);
                        c.current = c.current.saturating_add(l.cost);
                    }
                    if map.len() > SWEEP_AT {
                        map.retain(|_, c| c.window + 1 >= idx);
                    }
                }
                Ok(d)
            }
            Backend::Redis { conn, prefix, script } => {
                let mut inv = script.prepare_invoke();
                for l in limits {
                    inv.key(format!("{prefix}rl:{}:{idx}", l.key));
                    inv.key(format!("{prefix}rl:{}:{}", l.key, idx.saturating_sub(1)));
                }
                inv.arg(w).arg(elapsed);
                for l in limits {
                    inv.arg(l.limit).arg(l.cost);
                }
                let mut c = conn.clone();
                let out: Vec<i64> = inv.invoke_async(&mut c).await?;
                let counts: Vec<(u64, u64)> = (0..limits.len())
                    .map(|i| {
                        let get = |j: usize| out.get(j).copied().unwrap_or(0).max(0) as u64;
                        (get(1 + 2 * i), get(2 + 2 * i))
                    })
                    .collect();
                let mut d = evaluate(limits, &counts, w, elapsed);
                // The script decided atomically; trust it over our reading of its counts.
                let allowed = out.first().copied() == Some(1);
                if allowed != d.allowed {
                    d.allowed = allowed;
                    if allowed {
                        d.refused_by = None;
                        d.retry_after = Duration::ZERO;
                    } else if d.refused_by.is_none() {
                        d.refused_by = Some(0);
                        d.retry_after = Duration::from_millis(w.saturating_sub(elapsed).max(1000));
                    }
                }
                Ok(d)
            }
        }
    }

    /// Adds `amount` units under `key` in the current window (tokens, once a call has finished).
    pub async fn charge(&self, key: &str, amount: u64, window: Duration) -> Result<()> {
        self.charge_at(key, amount, window, now_ms()).await
    }

    /// Gives back up to `amount` units charged under `key` in the current window (an attempt that
    /// turned out not to count, such as a successful sign-in); never below zero.
    pub async fn refund(&self, key: &str, amount: u64, window: Duration) -> Result<()> {
        if amount == 0 {
            return Ok(());
        }
        let idx = now_ms() / window_ms(window);
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().map_err(|_| CoreError::Cache("rate limiter lock poisoned".into()))?;
                if let Some(c) = map.get_mut(key) {
                    c.roll(idx);
                    c.current = c.current.saturating_sub(amount);
                }
                Ok(())
            }
            Backend::Redis { conn, prefix, .. } => {
                let script = redis::Script::new(
                    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
                     if v > 0 then redis.call('DECRBY', KEYS[1], math.min(v, tonumber(ARGV[1]))) end return 0",
                );
                let mut c = conn.clone();
                let _: i64 = script.key(format!("{prefix}rl:{key}:{idx}")).arg(amount).invoke_async(&mut c).await?;
                Ok(())
            }
        }
    }

    /// [`RateLimiter::charge`] at a given time (unix milliseconds), for tests.
    pub async fn charge_at(&self, key: &str, amount: u64, window: Duration, now_ms: u64) -> Result<()> {
        if amount == 0 {
            return Ok(());
        }
        let w = window_ms(window);
        let idx = now_ms / w;
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().map_err(|_| CoreError::Cache("rate limiter lock poisoned".into()))?;
                let c = map.entry(key.to_string()).or_insert(Counter { window: idx, ..Default::default() });
                c.roll(idx);
                c.current = c.current.saturating_add(amount);
                Ok(())
            }
            Backend::Redis { conn, prefix, .. } => {
                let k = format!("{prefix}rl:{key}:{idx}");
                let mut c = conn.clone();
                let _: () = redis::pipe()
                    .cmd("INCRBY")
                    .arg(&k)
                    .arg(amount)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&k)
                    .arg(2 * w)
                    .ignore()
                    .query_async(&mut c)
                    .await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    async fn limiters() -> Vec<RateLimiter> {
        let mut v = vec![RateLimiter::memory()];
        if let Some(url) = crate::testing::redis_url() {
            v.push(RateLimiter::redis(&url, &crate::testing::unique_redis_prefix()).await.unwrap());
        } else {
            assert!(!crate::testing::services_required(), "GAIA_TEST_REDIS_URL is required");
        }
        v
    }

    #[tokio::test]
    async fn a_refund_gives_back_what_was_charged_and_never_goes_below_zero() {
        for l in limiters().await {
            let key = format!("refund:{}", l.kind());
            let one = [Limit::new(key.clone(), 2, 1)];
            assert!(l.acquire(&one, MIN).await.unwrap().allowed);
            assert!(l.acquire(&one, MIN).await.unwrap().allowed);
            assert!(!l.acquire(&one, MIN).await.unwrap().allowed, "{}", l.kind());
            l.refund(&key, 1, MIN).await.unwrap();
            assert!(l.acquire(&one, MIN).await.unwrap().allowed, "{}: room again after a refund", l.kind());
            l.refund(&key, 10, MIN).await.unwrap();
            l.refund("refund:never-charged", 1, MIN).await.unwrap();
            for _ in 0..2 {
                assert!(l.acquire(&one, MIN).await.unwrap().allowed, "{}: at zero, not below", l.kind());
            }
            assert!(!l.acquire(&one, MIN).await.unwrap().allowed, "{}", l.kind());
        }
    }

    #[tokio::test]
    async fn refuses_over_the_limit_and_charges_nothing_when_refused() {
        for rl in limiters().await {
            let t = 60_000 * 1000; // the start of a window
            let both = [Limit::new("a", 2, 1), Limit::new("b", 10, 1)];
            assert!(rl.acquire_at(&both, MIN, t).await.unwrap().allowed, "{}", rl.kind());
            let d = rl.acquire_at(&both, MIN, t + 1).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.states[0].remaining, 0);
            assert_eq!(d.states[1].remaining, 8);
            let d = rl.acquire_at(&both, MIN, t + 2).await.unwrap();
            assert!(!d.allowed, "{}", rl.kind());
            assert_eq!(d.refused_by, Some(0));
            // Nothing was charged to `b` by the refused request.
            assert_eq!(d.states[1].remaining, 8);
            // The window has just started: wait for it to roll over.
            assert!(d.retry_after > Duration::from_secs(59), "{:?}", d.retry_after);
        }
    }

    #[tokio::test]
    async fn the_previous_window_fades_out() {
        for rl in limiters().await {
            let t = 60_000 * 2000;
            for i in 0..10 {
                assert!(rl.acquire_at(&[Limit::new("k", 10, 1)], MIN, t + i).await.unwrap().allowed);
            }
            // A quarter into the next window, 75 % of the previous ten still count.
            let d = rl.acquire_at(&[Limit::new("k", 10, 1)], MIN, t + 60_000 + 15_000).await.unwrap();
            assert!(d.allowed, "{}", rl.kind());
            assert_eq!(d.states[0].remaining, 1);
            let d = rl.acquire_at(&[Limit::new("k", 10, 1)], MIN, t + 60_000 + 15_001).await.unwrap();
            assert!(d.allowed);
            let d = rl.acquire_at(&[Limit::new("k", 10, 1)], MIN, t + 60_000 + 15_002).await.unwrap();
            assert!(!d.allowed, "{}", rl.kind());
            // The previous window's share shrinks by one request every 6 s.
            assert!(d.retry_after <= Duration::from_secs(7) && d.retry_after >= Duration::from_secs(1), "{d:?}");
            // Two windows later, everything is forgotten.
            let d = rl.acquire_at(&[Limit::new("k", 10, 1)], MIN, t + 180_000).await.unwrap();
            assert_eq!(d.states[0].remaining, 9);
        }
    }

    #[tokio::test]
    async fn tokens_are_charged_after_the_fact_and_checked_before() {
        for rl in limiters().await {
            let t = 60_000 * 3000;
            let check = [Limit::new("tok", 100, 0)];
            assert!(rl.acquire_at(&check, MIN, t).await.unwrap().allowed);
            rl.charge_at("tok", 60, MIN, t + 1).await.unwrap();
            let d = rl.acquire_at(&check, MIN, t + 2).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.states[0].remaining, 40);
            // A call may overshoot (its tokens are known only afterwards); the next one waits.
            rl.charge_at("tok", 60, MIN, t + 3).await.unwrap();
            let d = rl.acquire_at(&check, MIN, t + 4).await.unwrap();
            assert!(!d.allowed, "{}", rl.kind());
            assert_eq!(d.states[0].remaining, 0);
            rl.charge_at("tok", 0, MIN, t + 5).await.unwrap();
        }
    }

    #[tokio::test]
    async fn redis_limits_are_shared_between_limiters() {
        let Some(url) = crate::testing::redis_url() else {
            assert!(!crate::testing::services_required(), "GAIA_TEST_REDIS_URL is required");
            return;
        };
        let prefix = crate::testing::unique_redis_prefix();
        let a = RateLimiter::redis(&url, &prefix).await.unwrap();
        let b = RateLimiter::redis(&url, &prefix).await.unwrap();
        let l = [Limit::new("shared", 3, 1)];
        let mut allowed = 0;
        for i in 0..6 {
            let rl = if i % 2 == 0 { &a } else { &b };
            allowed += rl.acquire(&l, MIN).await.unwrap().allowed as u32;
        }
        assert_eq!(allowed, 3);
        assert_eq!(format!("{a:?}"), "RateLimiter { kind: \"redis\" }");
    }

    #[test]
    fn memory_sweeps_stale_keys() {
        let rl = RateLimiter::memory();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for i in 0..(SWEEP_AT as u64 + 2) {
                rl.acquire_at(&[Limit::new(format!("k{i}"), 5, 1)], MIN, 0).await.unwrap();
            }
            rl.acquire_at(&[Limit::new("late", 5, 1)], MIN, 10 * 60_000).await.unwrap();
        });
        let Backend::Memory(map) = &rl.backend else { unreachable!() };
        assert!(map.lock().unwrap().len() < 10);
    }
}
