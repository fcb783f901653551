//! Quotas: rate limits and budgets, checked before a model call and charged after it, plus the price
//! book used to cost calls.
//!
//! - **Rate limits** per API key and per user, in requests and tokens per minute, over a sliding
//!   window ([`RateLimiter`]); the configured defaults (`[limits]`) apply unless a limit was set for
//!   that user or key ([`Storage::set_rate_limit`]). Requests are counted when admitted; tokens once a
//!   call has finished (a call is admitted while the token window is not yet full).
//! - **Budgets** per user, team or key, daily or monthly, in US dollars, from the usage records. A
//!   request is refused when the spend of the period plus the request's estimated cost would exceed a
//!   hard budget; reaching a soft budget (or a hard one) raises [`Event::BudgetReached`] once per period.
//! - **Prices** with the dates they take effect ([`PriceBook`]), over the configured prices.
//!
//! Settings and spends are cached for a second or two, so a change made on one instance applies on
//! every instance within about two seconds; spends lag behind by the usage writer's batching as well.
//!
//! ```
//! use gaia_core::config::LimitsConfig;
//! use gaia_core::quota::{Quotas, Subject};
//! use gaia_core::storage::Storage;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let storage = Storage::connect("sqlite::memory:").await?;
//! storage.migrate().await?;
//! let limits = LimitsConfig { user_requests_per_minute: 2, ..Default::default() };
//! let quotas = Quotas::new(storage, limits);
//! let who = Subject { user_id: "u1".into(), ..Default::default() };
//! assert!(quotas.check_rate(&who).await.allowed());
//! assert!(quotas.check_rate(&who).await.allowed());
//! let third = quotas.check_rate(&who).await;
//! assert!(!third.allowed());
//! // Retry-After: the seconds until the window has room again (at most the window, a minute).
//! let retry = third.headers().into_iter().find(|(k, _)| *k == "retry-after").map(|(_, v)| v);
//! assert!(retry.and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| (1..=60).contains(&s)));
//! # Ok::<(), gaia_core::CoreError>(())
//! # }).unwrap();
//! ```

use crate::config::LimitsConfig;
use crate::error::Result;
use crate::events::{Event, EventBus};
use crate::pricing::{EffectivePrice, PriceBook, UnitPrice};
use crate::ratelimit::{Decision, Limit, RateLimiter};
use crate::storage::{Budget, LimitScope, RateLimitOverride, Storage};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long settings (limits set per user or key, budgets) are cached.
const SETTINGS_TTL: Duration = Duration::from_secs(2);
/// How long a budget's spend is cached (calls finished on this instance are added to it meanwhile).
const SPEND_TTL: Duration = Duration::from_secs(2);

/// Who is calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The user.
    pub user_id: String,
    /// The API key used, if any.
    pub key_id: Option<String>,
    /// The teams the user belongs to (for team budgets).
    pub teams: Vec<String>,
    /// The end user (a game's player) the call is for, if the request named one: their own limits
    /// and budgets apply as well, inside the user's namespace.
    pub end_user: Option<String>,
}

impl Subject {
    /// The end user's subject id (`<user id>:<end user id>`), when there is an end user.
    pub fn end_user_subject(&self) -> Option<String> {
        self.end_user.as_deref().map(|e| crate::attribution::end_user_subject(&self.user_id, e))
    }
}

/// Which limit a rate decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Requests,
    Tokens,
}

/// The answer of [`Quotas::check_rate`].
#[derive(Debug, Clone)]
pub struct RateCheck {
    decision: Option<Decision>,
    units: Vec<(Unit, LimitScope)>,
}

impl RateCheck {
    /// No limit applies.
    fn unlimited() -> Self {
        RateCheck { decision: None, units: Vec::new() }
    }

    /// Whether the request may go ahead.
    pub fn allowed(&self) -> bool {
        self.decision.as_ref().is_none_or(|d| d.allowed)
    }

    /// When refused: how long to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        self.decision.as_ref().filter(|d| !d.allowed).map(|d| d.retry_after)
    }

    /// Which scope refused it (`user`, `key` or `end_user`).
    pub fn refused_scope(&self) -> Option<LimitScope> {
        let d = self.decision.as_ref()?;
        self.units.get(d.refused_by?).map(|(_, scope)| *scope)
    }

    /// What refused it (`"requests per minute of the API key"`, …).
    pub fn refused_by(&self) -> Option<String> {
        let d = self.decision.as_ref()?;
        let (unit, scope) = self.units.get(d.refused_by?)?;
        let what = match unit {
            Unit::Requests => "requests",
            Unit::Tokens => "tokens",
        };
        let whose = match scope {
            LimitScope::Key => "API key",
            LimitScope::EndUser => "end user",
            _ => "user",
        };
        Some(format!("{what} per minute of the {whose}"))
    }

    /// The headers to answer with: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the
    /// tightest limit of each kind, and `retry-after` (seconds) when refused.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let Some(d) = &self.decision else { return Vec::new() };
        let mut out = Vec::new();
        for (unit, names) in [
            (
                Unit::Requests,
                ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
            ),
            (Unit::Tokens, ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]),
        ] {
            let tightest = self
                .units
                .iter()
                .zip(&d.states)
                .filter(|((u, _), _)| *u == unit)
                .map(|(_, s)| s)
                .min_by_key(|s| s.remaining);
            if let Some(s) = tightest {
                out.push((names[0], s.limit.to_string()));
                out.push((names[1], s.remaining.to_string()));
                out.push((names[2], format!("{}s", s.reset.as_secs().max(1))));
            }
        }
        if !d.allowed {
            out.push(("retry-after", d.retry_after.as_secs().max(1).to_string()));
        }
        out
    }
}

/// A budget that refused a request.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRefusal {
    /// The budget.
    pub budget: Budget,
    /// Spent in the current period.
    pub spent_usd: f64,
    /// The request's estimated cost.
    pub estimate_usd: f64,
    /// When the period ends.
    pub resets_at: DateTime<Utc>,
}

impl std::fmt::Display for BudgetRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} budget of this {} is used up: ${:.4} spent of ${:.4} (this request: about ${:.4}); it resets at {}",
            self.budget.period.as_str(),
            match self.budget.scope {
                LimitScope::Key => "API key",
                LimitScope::Team => "team",
                LimitScope::User => "user",
                LimitScope::EndUser | LimitScope::KeyEndUsers => "end user",
            },
            self.spent_usd,
            self.budget.limit_usd,
            self.estimate_usd,
            self.resets_at.to_rfc3339()
        )
    }
}

/// A budget with what was spent against it in the current period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BudgetStatus {
    /// The budget.
    #[serde(flatten)]
    pub budget: Budget,
    /// Spent in the current period, in US dollars.
    pub spent_usd: f64,
    /// Left in the current period.
    pub remaining_usd: f64,
    /// When the current period started.
    pub period_start: DateTime<Utc>,
    /// When it ends.
    pub resets_at: DateTime<Utc>,
}

/// Rate limits, budgets and prices. Cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

/// Every rate-limit override, by (scope, subject).
type Overrides = HashMap<(LimitScope, String), RateLimitOverride>;

struct Inner {
    storage: Storage,
    defaults: LimitsConfig,
    local: RateLimiter,
    shared: OnceLock<RateLimiter>,
    events: OnceLock<EventBus>,
    /// Every rate-limit override, by (scope, subject): one snapshot, so that a caller without one
    /// costs no lookup of their own.
    overrides: moka::future::Cache<(), Arc<Overrides>>,
    budgets: moka::future::Cache<(), Arc<BudgetIndex>>,
    spent: moka::future::Cache<(String, i64), f64>,
    /// Budgets whose limit was announced this period (budget id, period start).
    announced: moka::sync::Cache<(String, i64), ()>,
    prices: RwLock<Arc<PriceBook>>,
}

/// Budgets by subject.
#[derive(Default)]
struct BudgetIndex {
    by_subject: std::collections::HashMap<(LimitScope, String), Vec<Budget>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").field("defaults", &self.inner.defaults).field("limiter", &self.limiter()).finish()
    }
}

fn limit_of(over: Option<u64>, default: u64) -> u64 {
    over.unwrap_or(default)
}

impl Quotas {
    /// Quotas over `storage` with the default rate limits `defaults`, counted in this process until
    /// [`Quotas::share_through`] is called.
    pub fn new(storage: Storage, defaults: LimitsConfig) -> Self {
        Quotas {
            inner: Arc::new(Inner {
                storage,
                defaults,
                local: RateLimiter::memory(),
                shared: OnceLock::new(),
                events: OnceLock::new(),
                overrides: moka::future::Cache::builder().max_capacity(1).time_to_live(SETTINGS_TTL).build(),
                budgets: moka::future::Cache::builder().max_capacity(1).time_to_live(SETTINGS_TTL).build(),
                spent: moka::future::Cache::builder().max_capacity(100_000).time_to_live(SPEND_TTL).build(),
                announced: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(32 * 24 * 3600))
                    .build(),
                prices: RwLock::new(Arc::new(PriceBook::default())),
            }),
        }
    }

    /// Counts rate limits in `limiter` (Redis, shared by every instance) from now on. Only the first
    /// call has an effect.
    pub fn share_through(&self, limiter: RateLimiter) {
        let _ = self.inner.shared.set(limiter);
    }

    /// Raises [`Event::BudgetReached`] on `events`. Only the first call has an effect.
    pub fn announce_on(&self, events: EventBus) {
        let _ = self.inner.events.set(events);
    }

    /// The limiter in use.
    pub fn limiter(&self) -> &RateLimiter {
        self.inner.shared.get().unwrap_or(&self.inner.local)
    }

    /// Every rate-limit override (read again once [`SETTINGS_TTL`] has passed or after a change).
    async fn overrides(&self) -> Arc<Overrides> {
        let storage = self.inner.storage.clone();
        self.inner
            .overrides
            .get_with((), async move {
                let all = storage.list_rate_limits().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read rate limits; using the defaults");
                    Vec::new()
                });
                Arc::new(all.into_iter().map(|o| ((o.scope, o.subject_id.clone()), o)).collect())
            })
            .await
    }

    /// The limits in force for `who`: (scope, requests per minute, tokens per minute), 0 = none.
    async fn limits_for(&self, who: &Subject) -> Vec<(LimitScope, String, u64, u64)> {
        let d = &self.inner.defaults;
        let overrides = self.overrides().await;
        let no_defaults = d.key_requests_per_minute == 0
            && d.key_tokens_per_minute == 0
            && d.user_requests_per_minute == 0
            && d.user_tokens_per_minute == 0
            && (who.end_user.is_none() || (d.end_user_requests_per_minute == 0 && d.end_user_tokens_per_minute == 0));
        if overrides.is_empty() && no_defaults {
            return Vec::new();
        }
        let override_of = |scope: LimitScope, id: &str| overrides.get(&(scope, id.to_string())).cloned();
        let mut out = Vec::with_capacity(2);
        if let Some(k) = &who.key_id {
            let o = override_of(LimitScope::Key, k);
            let rpm = limit_of(o.as_ref().and_then(|o| o.requests_per_minute), d.key_requests_per_minute);
            let tpm = limit_of(o.as_ref().and_then(|o| o.tokens_per_minute), d.key_tokens_per_minute);
            out.push((LimitScope::Key, k.clone(), rpm, tpm));
        }
        let o = override_of(LimitScope::User, &who.user_id);
        let rpm = limit_of(o.as_ref().and_then(|o| o.requests_per_minute), d.user_requests_per_minute);
        let tpm = limit_of(o.as_ref().and_then(|o| o.tokens_per_minute), d.user_tokens_per_minute);
        out.push((LimitScope::User, who.user_id.clone(), rpm, tpm));
        if let Some(subject) = who.end_user_subject() {
            // The end user's own limit, else their key's default for its players, else the configured one.
            let own = override_of(LimitScope::EndUser, &subject);
            let of_key = who.key_id.as_deref().and_then(|k| override_of(LimitScope::KeyEndUsers, k));
            let pick = |f: fn(&RateLimitOverride) -> Option<u64>, default: u64| {
                own.as_ref().and_then(f).or_else(|| of_key.as_ref().and_then(f)).unwrap_or(default)
            };
            let rpm = pick(|o| o.requests_per_minute, d.end_user_requests_per_minute);
            let tpm = pick(|o| o.tokens_per_minute, d.end_user_tokens_per_minute);
            out.push((LimitScope::EndUser, subject, rpm, tpm));
        }
        out.retain(|(_, _, rpm, tpm)| *rpm > 0 || *tpm > 0);
        out
    }

    /// Admits a model request for `who` against its rate limits, counting it when admitted. When the
    /// limiter cannot be reached, the request is let through (and the failure logged): an outage of
    /// Redis must not stop the game.
    pub async fn check_rate(&self, who: &Subject) -> RateCheck {
        let limits = self.limits_for(who).await;
        if limits.is_empty() {
            return RateCheck::unlimited();
        }
        let mut checks = Vec::new();
        let mut units = Vec::new();
        for (scope, id, rpm, tpm) in limits {
            if rpm > 0 {
                checks.push(Limit::new(format!("{scope}:{id}:requests"), rpm, 1));
                units.push((Unit::Requests, scope));
            }
            if tpm > 0 {
                checks.push(Limit::new(format!("{scope}:{id}:tokens"), tpm, 0));
                units.push((Unit::Tokens, scope));
            }
        }
        match self.limiter().acquire(&checks, WINDOW).await {
            Ok(d) => RateCheck { decision: Some(d), units },
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; letting the request through");
                RateCheck::unlimited()
            }
        }
    }

    /// Charges the tokens of a finished call to the token limits of `who` (those in force).
    pub async fn charge_tokens(&self, who: &Subject, tokens: u64) {
        if tokens == 0 {
            return;
        }
        for (scope, id, _, tpm) in self.limits_for(who).await {
            if tpm > 0 {
                if let Err(e) = self.limiter().charge(&format!("{scope}:{id}:tokens"), tokens, WINDOW).await {
                    tracing::warn!(error = %e, "rate limiter unavailable; tokens not counted");
                }
            }
        }
    }

    /// Forgets cached settings (after a change on this instance).
    pub fn settings_changed(&self) {
        self.inner.overrides.invalidate_all();
        self.inner.budgets.invalidate_all();
        self.inner.spent.invalidate_all();
    }

    async fn all_budgets(&self) -> Arc<BudgetIndex> {
        let storage = self.inner.storage.clone();
        self.inner
            .budgets
            .get_with((), async move {
                let mut index = BudgetIndex::default();
                match storage.list_budgets(None).await {
                    Ok(all) => {
                        for b in all {
                            index.by_subject.entry((b.scope, b.subject_id.clone())).or_default().push(b);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read budgets"),
                }
                Arc::new(index)
            })
            .await
    }

    /// The budgets that apply to `who` (theirs, their key's, their teams', and for a call made for an
    /// end user, that end user's own and their key's budget for each of its players). A key's budget
    /// for its players comes back as the end user's (scope `end_user`, subject `<user>:<end user>`,
    /// the key budget's id), so that it is spent and checked per player.
    pub async fn budgets_for(&self, who: &Subject) -> Vec<Budget> {
        let index = self.all_budgets().await;
        if index.by_subject.is_empty() {
            return Vec::new();
        }
        let mut subjects = vec![(LimitScope::User, who.user_id.clone())];
        if let Some(k) = &who.key_id {
            subjects.push((LimitScope::Key, k.clone()));
        }
        subjects.extend(who.teams.iter().map(|t| (LimitScope::Team, t.clone())));
        let end_user = who.end_user_subject();
        if let Some(e) = &end_user {
            subjects.push((LimitScope::EndUser, e.clone()));
        }
        let mut out: Vec<Budget> = subjects.iter().filter_map(|s| index.by_subject.get(s)).flatten().cloned().collect();
        if let (Some(e), Some(k)) = (end_user, &who.key_id) {
            if let Some(each) = index.by_subject.get(&(LimitScope::KeyEndUsers, k.clone())) {
                out.extend(each.iter().map(|b| Budget {
                    scope: LimitScope::EndUser,
                    subject_id: e.clone(),
                    ..b.clone()
                }));
            }
        }
        out
    }

    /// The cache key of `budget`'s spend in the period starting at `start` (a key's budget for its
    /// players is spent per player, under the same id).
    fn spend_key(budget: &Budget, start: DateTime<Utc>) -> (String, i64) {
        (format!("{}|{}", budget.id, budget.subject_id), start.timestamp_millis())
    }

    /// What was spent against `budget` in its current period (`team_members` for team budgets).
    pub async fn spent(&self, budget: &Budget, team_members: &[&str]) -> Result<f64> {
        let now = Utc::now();
        let start = budget.period.start(now);
        let key = Self::spend_key(budget, start);
        if let Some(v) = self.inner.spent.get(&key).await {
            return Ok(v);
        }
        let spent = match budget.scope {
            LimitScope::User => self.inner.storage.spent_since(&[budget.subject_id.as_str()], None, start).await?,
            LimitScope::Key => self.inner.storage.spent_since(&[], Some(&budget.subject_id), start).await?,
            LimitScope::Team => self.inner.storage.spent_since(team_members, None, start).await?,
            LimitScope::EndUser => self.inner.storage.spent_by_end_user_since(&budget.subject_id, start).await?,
            // Spent per player: `budgets_for` hands it out as each player's; unapplied, nothing is spent.
            LimitScope::KeyEndUsers => 0.0,
        };
        self.inner.spent.insert(key, spent).await;
        Ok(spent)
    }

    /// The status of `budget` now.
    pub async fn status(&self, budget: &Budget, team_members: &[&str]) -> Result<BudgetStatus> {
        let now = Utc::now();
        let spent_usd = self.spent(budget, team_members).await?;
        Ok(BudgetStatus {
            budget: budget.clone(),
            spent_usd,
            remaining_usd: (budget.limit_usd - spent_usd).max(0.0),
            period_start: budget.period.start(now),
            resets_at: budget.period.end(now),
        })
    }

    /// Checks `who`'s budgets for a request estimated at `estimate_usd`: `Err` with the first hard
    /// budget it would exceed. Budgets already reached raise [`Event::BudgetReached`] (once per period).
    /// `members_of(team)` lists a team's members. When spends cannot be read, the request goes ahead.
    pub async fn check_budgets(
        &self,
        who: &Subject,
        estimate_usd: f64,
        members_of: impl Fn(&str) -> Vec<String>,
    ) -> std::result::Result<(), BudgetRefusal> {
        self.check_these_budgets(self.budgets_for(who).await, estimate_usd, members_of).await
    }

    /// [`Quotas::check_budgets`] on budgets already looked up with [`Quotas::budgets_for`] (for a
    /// caller that needed them earlier, e.g. to decide whether to estimate the request at all).
    pub async fn check_these_budgets(
        &self,
        budgets: Vec<Budget>,
        estimate_usd: f64,
        members_of: impl Fn(&str) -> Vec<String>,
    ) -> std::result::Result<(), BudgetRefusal> {
        let estimate_usd = if estimate_usd.is_finite() { estimate_usd.max(0.0) } else { 0.0 };
        // Every budget is looked at (each one reached is announced); the first hard one exceeded refuses.
        let mut refusal = None;
        for b in budgets {
            let members = if b.scope == LimitScope::Team { members_of(&b.subject_id) } else { Vec::new() };
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            let spent = match self.spent(&b, &members).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, budget = %b.id, "cannot read spend; budget not enforced");
                    continue;
                }
            };
            if spent >= b.limit_usd {
                self.announce(&b, spent);
            }
            if b.hard && spent + estimate_usd > b.limit_usd && refusal.is_none() {
                let resets_at = b.period.end(Utc::now());
                refusal = Some(BudgetRefusal { budget: b, spent_usd: spent, estimate_usd, resets_at });
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// Raises [`Event::BudgetReached`] for `b` unless already raised this period by this instance.
    fn announce(&self, b: &Budget, spent: f64) {
        let key = Self::spend_key(b, b.period.start(Utc::now()));
        if self.inner.announced.contains_key(&key) {
            return;
        }
        self.inner.announced.insert(key, ());
        tracing::info!(budget = %b.id, scope = %b.scope, subject = %b.subject_id, spent, limit = b.limit_usd, "budget reached");
        if let Some(events) = self.inner.events.get() {
            events.publish(Event::BudgetReached {
                budget_id: b.id.clone(),
                scope: b.scope.as_str().to_string(),
                subject_id: b.subject_id.clone(),
                spent_usd: spent,
                limit_usd: b.limit_usd,
                hard: b.hard,
            });
        }
    }

    /// Forgets every cached spend.
    pub fn spend_changed(&self) {
        self.inner.spent.invalidate_all();
    }

    /// Adds the cost of a call of `who` that finished on this instance to the cached spends of the
    /// budgets it counts against, until they are next read from the database (the call's usage record
    /// is written in the background meanwhile).
    pub async fn add_spend(&self, who: &Subject, cost_usd: f64) {
        if !(cost_usd.is_finite() && cost_usd > 0.0) {
            return;
        }
        for b in self.budgets_for(who).await {
            let key = Self::spend_key(&b, b.period.start(Utc::now()));
            if let Some(v) = self.inner.spent.get(&key).await {
                self.inner.spent.insert(key, v + cost_usd).await;
            }
        }
    }

    /// Reloads the recorded prices from the database.
    pub async fn reload_prices(&self) -> Result<()> {
        let book = PriceBook::new(self.inner.storage.list_prices().await?)
            .with_unit_prices(self.inner.storage.list_unit_prices().await?);
        if let Ok(mut w) = self.inner.prices.write() {
            *w = Arc::new(book);
        }
        Ok(())
    }

    /// Reloads the prices every `every`, until every clone of these quotas is dropped.
    pub fn spawn_price_refresh(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (Quotas { inner }).reload_prices().await {
                    tracing::debug!(error = %e, "cannot reload prices");
                }
            }
        })
    }

    /// The price book.
    pub fn prices(&self) -> Arc<PriceBook> {
        self.inner.prices.read().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The recorded prices of the price book (as last reloaded).
impl crate::pricing::PriceSource for Quotas {
    fn recorded_price(&self, provider: &str, model: &str, at: DateTime<Utc>) -> Option<EffectivePrice> {
        self.prices().price_at(provider, model, at)
    }

    fn recorded_unit_price(&self, provider: &str, model: &str, unit: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        self.prices().unit_price_at(provider, model, unit, at)
    }

    fn recorded_sell_price(&self, kind: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        self.prices().sell_price_at(kind, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BudgetPeriod, NewBudget, NewUsage};
    use crate::types::{ModelPrice, Usage};

    async fn quotas(defaults: LimitsConfig) -> (Quotas, Storage) {
        let storage = Storage::connect("sqlite::memory:").await.unwrap();
        storage.migrate().await.unwrap();
        (Quotas::new(storage.clone(), defaults), storage)
    }

    fn who(user: &str, key: Option<&str>) -> Subject {
        Subject { user_id: user.into(), key_id: key.map(Into::into), teams: vec!["t1".into()], end_user: None }
    }

    #[tokio::test]
    async fn per_key_overrides_replace_defaults() {
        let (q, storage) = quotas(LimitsConfig { key_requests_per_minute: 1, ..Default::default() }).await;
        let a = who("u1", Some("k1"));
        let first = q.check_rate(&a).await;
        assert!(first.allowed());
        let h = first.headers();
        assert!(h.contains(&("x-ratelimit-limit-requests", "1".into())), "{h:?}");
        assert!(h.contains(&("x-ratelimit-remaining-requests", "0".into())));
        let refused = q.check_rate(&a).await;
        assert!(!refused.allowed());
        assert_eq!(refused.refused_by().as_deref(), Some("requests per minute of the API key"));
        assert!(refused.retry_after().is_some());
        // Another key has its own window; a user without a key is not limited.
        assert!(q.check_rate(&who("u1", Some("k2"))).await.allowed());
        assert!(q.check_rate(&who("u1", None)).await.headers().is_empty());
        storage.set_rate_limit(LimitScope::Key, "k1", Some(5), Some(100), None).await.unwrap();
        q.settings_changed();
        let again = q.check_rate(&a).await;
        assert!(again.allowed());
        assert!(again.headers().contains(&("x-ratelimit-limit-tokens", "100".into())));
        q.charge_tokens(&a, 150).await;
        let over = q.check_rate(&a).await;
        assert_eq!(over.refused_by().as_deref(), Some("tokens per minute of the API key"));
        assert!(format!("{q:?}").contains("memory"));
    }

    #[tokio::test]
    async fn hard_budgets_refuse_and_soft_ones_announce() {
        let (q, storage) = quotas(LimitsConfig::default()).await;
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        q.announce_on(bus);
        let hard = NewBudget {
            scope: LimitScope::User,
            subject_id: "u1".into(),
            period: BudgetPeriod::Daily,
            limit_usd: 1.0,
            hard: true,
        };
        storage.create_budget(&hard, Some("admin")).await.unwrap();
        let soft =
            NewBudget { scope: LimitScope::Team, subject_id: "t1".into(), limit_usd: 0.5, hard: false, ..hard.clone() };
        let soft = storage.create_budget(&soft, None).await.unwrap();
        let members = |_: &str| vec!["u1".to_string(), "u2".to_string()];
        assert!(q.check_budgets(&who("u1", None), 0.9, members).await.is_ok());
        let spend = |user: &str, cost: f64| NewUsage {
            user_id: user.into(),
            cost_usd: cost,
            status: 200,
            ..Default::default()
        };
        storage.insert_usage(&[spend("u1", 0.4), spend("u2", 0.3), spend("u3", 5.0)]).await.unwrap();
        q.spend_changed();
        // 0.4 spent + 0.7 estimated > 1.0.
        let r = q.check_budgets(&who("u1", None), 0.7, members).await.unwrap_err();
        assert!((r.spent_usd - 0.4).abs() < 1e-9);
        assert!(r.to_string().contains("daily budget of this user is used up"), "{r}");
        // The team's soft budget (0.7 of 0.5) was reached: announced once.
        match rx.try_recv().unwrap() {
            Event::BudgetReached { budget_id, hard, .. } => {
                assert_eq!(budget_id, soft.id);
                assert!(!hard);
            }
            other => panic!("{other:?}"),
        }
        assert!(q.check_budgets(&who("u1", None), 0.1, members).await.is_ok());
        assert!(rx.try_recv().is_err(), "announced once per period");
        let st = q.status(&soft, &["u1", "u2"]).await.unwrap();
        assert!((st.spent_usd - 0.7).abs() < 1e-9 && st.remaining_usd == 0.0);
        // Someone else is not concerned.
        assert!(q.check_budgets(&Subject { user_id: "u9".into(), ..Default::default() }, 100.0, members).await.is_ok());
    }

    #[tokio::test]
    async fn end_users_have_limits_and_budgets_of_their_own() {
        let limits = LimitsConfig { end_user_requests_per_minute: 1, ..Default::default() };
        let (q, storage) = quotas(limits).await;
        let player = |user: &str, key: &str, p: &str| Subject { end_user: Some(p.into()), ..who(user, Some(key)) };
        assert!(q.check_rate(&player("u1", "k1", "p1")).await.allowed());
        let refused = q.check_rate(&player("u1", "k1", "p1")).await;
        assert_eq!(refused.refused_by().as_deref(), Some("requests per minute of the end user"));
        assert_eq!(refused.refused_scope(), Some(LimitScope::EndUser));
        // Another player, the same player id of another user, and no player at all are not concerned.
        assert!(q.check_rate(&player("u1", "k1", "p2")).await.allowed());
        assert!(q.check_rate(&player("u2", "k9", "p1")).await.allowed());
        assert!(q.check_rate(&who("u1", Some("k1"))).await.headers().is_empty());
        // The key's default for its players, then the player's own limit.
        storage.set_rate_limit(LimitScope::KeyEndUsers, "k1", Some(3), None, None).await.unwrap();
        q.settings_changed();
        assert!(q.check_rate(&player("u1", "k1", "p1")).await.allowed());
        storage.set_rate_limit(LimitScope::EndUser, "u1:p2", Some(1), None, None).await.unwrap();
        q.settings_changed();
        assert!(!q.check_rate(&player("u1", "k1", "p2")).await.allowed(), "p2's own limit: 1, used");
        assert!(storage.set_rate_limit(LimitScope::EndUser, "p2", Some(1), None, None).await.is_err());

        // Each player of k1: $0.5 a day, spent per player.
        let each = NewBudget {
            scope: LimitScope::KeyEndUsers,
            subject_id: "k1".into(),
            period: BudgetPeriod::Daily,
            limit_usd: 0.5,
            hard: true,
        };
        let each = storage.create_budget(&each, None).await.unwrap();
        let spend = |p: &str, cost: f64| NewUsage {
            user_id: "u1".into(),
            api_key_id: Some("k1".into()),
            end_user: Some(p.into()),
            cost_usd: cost,
            status: 200,
            ..Default::default()
        };
        storage.insert_usage(&[spend("p1", 0.3), spend("p1", 0.3), spend("p2", 0.1)]).await.unwrap();
        q.settings_changed();
        let members = |_: &str| Vec::new();
        let r = q.check_budgets(&player("u1", "k1", "p1"), 0.01, members).await.unwrap_err();
        assert_eq!((r.budget.id.as_str(), r.budget.scope), (each.id.as_str(), LimitScope::EndUser));
        assert!(r.to_string().contains("daily budget of this end user"), "{r}");
        assert!((r.spent_usd - 0.6).abs() < 1e-9);
        assert!(q.check_budgets(&player("u1", "k1", "p2"), 0.01, members).await.is_ok());
        assert!(q.check_budgets(&who("u1", Some("k1")), 0.01, members).await.is_ok(), "no player: not concerned");
        // A call of p2 finished here counts at once.
        q.add_spend(&player("u1", "k1", "p2"), 0.45).await;
        assert!(q.check_budgets(&player("u1", "k1", "p2"), 0.01, members).await.is_err());
        assert!(q.check_budgets(&player("u1", "k1", "p3"), 0.01, members).await.is_ok());
    }

    #[tokio::test]
    async fn recorded_prices_take_over_from_their_date() {
        let (q, storage) = quotas(LimitsConfig::default()).await;
        let configured = Some(ModelPrice::new(1.0, 2.0));
        let usage = Usage::new(1_000_000, 0);
        // Recorded, else configured: as the provider registry prices (see its price source).
        let cost = |model: &str, configured: Option<ModelPrice>| {
            q.prices().price_at("p", model, Utc::now()).map(|p| p.price).or(configured).map(|p| p.cost(usage))
        };
        assert_eq!(cost("m", configured), Some(1.0));
        storage
            .add_price("p", "m", ModelPrice::new(3.0, 3.0), Utc::now() - chrono::Duration::hours(1), None)
            .await
            .unwrap();
        storage
            .add_price("p", "m", ModelPrice::new(9.0, 9.0), Utc::now() + chrono::Duration::days(1), None)
            .await
            .unwrap();
        q.reload_prices().await.unwrap();
        assert_eq!(cost("m", configured), Some(3.0));
        use crate::pricing::PriceSource;
        assert_eq!(q.recorded_price("p", "m", Utc::now()).unwrap().price.input, 3.0);
        assert!(q.recorded_price("p", "other", Utc::now()).is_none());
        let tomorrow = q.prices().price_at("p", "m", Utc::now() + chrono::Duration::days(2)).unwrap();
        assert_eq!(tomorrow.price.input, 9.0);
        assert_eq!(cost("unknown", None), None);
    }
}
