//! The provider registry: which provider serves which model.

use crate::anthropic::{AnthropicConfig, AnthropicProvider};
use crate::balanced::BalancedProvider;
use crate::error::ProviderError;
use crate::health::{BreakerConfig, HealthSnapshot, ProviderStats};
use crate::meshy::{MeshyConfig, MeshyProvider};
use crate::openai::{OpenAiConfig, OpenAiProvider};
use crate::provider::Provider;
use crate::routing::RetryPolicy;
use crate::types::ProviderHealth;
use gaia_core::config::{Config, ModelEntry, ProviderEntry, ProviderKind};
use gaia_core::pricing::{unit_fallbacks, EffectivePrice, PriceSource, UnitPrice};
use gaia_core::types::{ModelInfo, ModelPrice, Usage};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a provider's discovered model list is reused.
const MODELS_TTL: Duration = Duration::from_secs(60);

/// How long a failed model discovery is remembered (its error returned at once) before it is tried
/// again.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(10);

/// The message given when chat is asked of an empty registry.
pub const NOT_CONFIGURED: &str = "No LLM provider is configured. Set OPENAI_API_KEY (and OPENAI_BASE_URL for an \
OpenAI-compatible server such as Ollama or vLLM) or ANTHROPIC_API_KEY, or add [providers.openai] / \
[providers.anthropic] to gaia.toml, then restart the server.";

#[derive(Default)]
struct Inner {
    providers: Vec<Arc<dyn Provider>>,
    default_model: Option<String>,
    models: HashMap<String, (Instant, Vec<ModelInfo>)>,
    prices: HashMap<String, HashMap<String, ModelPrice>>,
    groups: HashMap<String, Vec<String>>,
    catalog: HashMap<String, HashMap<String, ModelEntry>>,
    stats: HashMap<String, Arc<ProviderStats>>,
    policy: RetryPolicy,
    breaker: BreakerConfig,
    price_source: Option<Arc<dyn PriceSource>>,
    /// The `[[providers]]` entries providers were built from, by name.
    entries: HashMap<String, ProviderEntry>,
    /// Per-provider first-token timeouts (the retry policy's otherwise).
    first_token: HashMap<String, Duration>,
    /// The last failed model discovery of a provider, and when.
    discovery_errors: HashMap<String, (Instant, ProviderError)>,
    /// How long a failed discovery is remembered ([`DISCOVERY_RETRY`] when unset).
    discovery_retry: Option<Duration>,
    /// How long a discovered list is fresh (`MODELS_TTL` when unset).
    models_ttl: Option<Duration>,
    /// Providers whose model list is being refreshed in the background.
    refreshing: std::collections::HashSet<String>,
}

/// Registered providers; cheap to clone (shared inside).
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    inner: Arc<RwLock<Inner>>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.providers().iter().map(|p| p.name().to_string()).collect();
        f.debug_struct("ProviderRegistry").field("providers", &names).finish()
    }
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the registry from configuration: every `[[providers]]` entry (balanced over its
    /// deployments), the model catalog and prices, and the `[routing]` settings.
    pub fn from_config(cfg: &Config) -> Self {
        let reg = ProviderRegistry::new();
        let r = &cfg.routing;
        reg.set_retry_policy(RetryPolicy {
            max_retries: r.max_retries,
            first_token_timeout: Duration::from_secs(r.first_token_timeout_secs.max(1)),
            ..RetryPolicy::default()
        });
        reg.set_breaker(BreakerConfig {
            failure_threshold: r.breaker_failures.max(1),
            cooldown: Duration::from_secs(r.breaker_cooldown_secs),
        });
        for entry in &cfg.providers {
            if let Err(e) = reg.add_entry(entry) {
                tracing::error!(provider = %entry.name, error = %e, "cannot set up provider");
            }
        }
        reg.set_default_model(r.default_model.clone());
        for (name, members) in &r.groups {
            reg.set_group(name, members.clone());
        }
        reg
    }

    /// Adds (or replaces) the provider described by a `[[providers]]` entry, with its catalog.
    pub fn add_entry(&self, entry: &ProviderEntry) -> Result<(), ProviderError> {
        let catalog = entry.catalog();
        let models: Vec<String> = catalog.iter().map(|m| m.id.clone()).collect();
        let timeout = Duration::from_secs(entry.timeout_secs.max(1));
        let connect = Duration::from_secs(entry.connect_timeout_secs.max(1));
        let members: Vec<Arc<dyn Provider>> = entry
            .all_deployments()
            .into_iter()
            .map(|d| -> Arc<dyn Provider> {
                let url = d.base_url.unwrap_or_else(|| entry.base_url().to_string());
                match entry.kind {
                    ProviderKind::Anthropic => {
                        let mut c = AnthropicConfig::new(url, d.api_key);
                        c.name = entry.name.clone();
                        c.models = models.clone();
                        c.timeout = timeout;
                        c.connect_timeout = connect;
                        c.http2_prior_knowledge = entry.http2_prior_knowledge;
                        Arc::new(AnthropicProvider::new(c))
                    }
                    ProviderKind::Meshy => {
                        let mut c = MeshyConfig::new(url, d.api_key);
                        c.name = entry.name.clone();
                        c.models = models.clone();
                        c.timeout = timeout;
                        c.connect_timeout = connect;
                        Arc::new(MeshyProvider::new(c))
                    }
                    _ => {
                        let mut c = OpenAiConfig::new(url, d.api_key);
                        c.name = entry.name.clone();
                        c.models = models.clone();
                        c.timeout = timeout;
                        c.connect_timeout = connect;
                        c.http2_prior_knowledge = entry.http2_prior_knowledge;
                        Arc::new(OpenAiProvider::new(c))
                    }
                }
            })
            .collect();
        let provider: Arc<dyn Provider> = if members.len() == 1 {
            members.into_iter().next().ok_or_else(|| ProviderError::InvalidRequest("no deployment".into()))?
        } else {
            Arc::new(BalancedProvider::new(entry.name.clone(), members)?)
        };
        self.register(provider);
        let mut g = self.write();
        g.entries.insert(entry.name.clone(), entry.clone());
        if let Some(secs) = entry.first_token_timeout_secs {
            g.first_token.insert(entry.name.clone(), Duration::from_secs(secs.max(1)));
        }
        let cat = g.catalog.entry(entry.name.clone()).or_default();
        cat.clear();
        let mut prices = HashMap::new();
        for m in catalog {
            if let Some(p) = m.price() {
                prices.insert(m.id.clone(), p);
            }
            cat.insert(m.id.clone(), m);
        }
        g.prices.insert(entry.name.clone(), prices);
        Ok(())
    }

    /// The `[[providers]]` entry the provider `name` was built from (with its keys: never show it
    /// as is), when it was built from one.
    pub fn entry(&self, name: &str) -> Option<ProviderEntry> {
        self.read().entries.get(name).cloned()
    }

    /// How long a stream of `provider` may take to produce its first event: the provider's own
    /// `first_token_timeout_secs`, else the retry policy's.
    pub fn first_token_timeout(&self, provider: &str) -> Duration {
        let g = self.read();
        g.first_token.get(provider).copied().unwrap_or(g.policy.first_token_timeout)
    }

    /// What the catalog knows of `model` at `provider`.
    pub fn model_entry(&self, provider: &str, model: &str) -> Option<ModelEntry> {
        self.read().catalog.get(provider).and_then(|m| m.get(model)).cloned()
    }

    /// Adds a provider; one with the same name is replaced.
    pub fn register(&self, provider: Arc<dyn Provider>) {
        let mut g = self.write();
        let name = provider.name().to_string();
        g.providers.retain(|p| p.name() != name);
        g.models.remove(&name);
        g.entries.remove(&name);
        g.first_token.remove(&name);
        g.discovery_errors.remove(&name);
        g.providers.push(provider);
    }

    /// Removes a provider by name; `true` if it was there.
    pub fn remove(&self, name: &str) -> bool {
        let mut g = self.write();
        let before = g.providers.len();
        g.providers.retain(|p| p.name() != name);
        g.models.remove(name);
        g.stats.remove(name);
        g.entries.remove(name);
        g.first_token.remove(name);
        g.discovery_errors.remove(name);
        g.catalog.remove(name);
        g.prices.remove(name);
        g.providers.len() != before
    }

    /// The registered providers, in registration order.
    pub fn providers(&self) -> Vec<Arc<dyn Provider>> {
        self.read().providers.clone()
    }

    /// Moderation of `input` by `model`, named `provider/model`: only that provider is asked.
    pub async fn moderate(&self, model: &str, input: &str) -> Result<crate::types::Moderation, ProviderError> {
        let (prov, id) = model.split_once('/').ok_or_else(|| {
            ProviderError::InvalidRequest(format!("name the moderation model `provider/model`: {model}"))
        })?;
        match self.get(prov) {
            Some(p) => p.moderate(id, input).await,
            None => Err(ProviderError::NotConfigured(format!("no provider is named `{prov}`"))),
        }
    }

    /// The provider with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.read().providers.iter().find(|p| p.name() == name).cloned()
    }

    /// Whether no provider is registered.
    pub fn is_empty(&self) -> bool {
        self.read().providers.is_empty()
    }

    /// Defines a model group: a name that stands for a fallback chain of model specs.
    pub fn set_group(&self, name: &str, members: Vec<String>) {
        self.write().groups.insert(name.to_string(), members);
    }

    /// The members of a group.
    pub fn group(&self, name: &str) -> Option<Vec<String>> {
        self.read().groups.get(name).cloned()
    }

    /// The retry policy of routed calls.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.read().policy
    }

    /// Sets the retry policy of routed calls.
    pub fn set_retry_policy(&self, policy: RetryPolicy) {
        self.write().policy = policy;
    }

    /// Sets the circuit-breaker settings for providers whose statistics do not exist yet.
    pub fn set_breaker(&self, breaker: BreakerConfig) {
        let mut g = self.write();
        g.breaker = breaker;
        g.stats.clear();
    }

    /// Live statistics and circuit breaker of a provider (created on first use).
    pub fn stats(&self, provider: &str) -> Arc<ProviderStats> {
        if let Some(s) = self.read().stats.get(provider) {
            return s.clone();
        }
        let mut g = self.write();
        let breaker = g.breaker;
        g.stats.entry(provider.to_string()).or_insert_with(|| Arc::new(ProviderStats::new(breaker))).clone()
    }

    /// A health snapshot of every provider, by name.
    pub fn health_snapshots(&self) -> Vec<(String, HealthSnapshot)> {
        self.providers().iter().map(|p| (p.name().to_string(), self.stats(p.name()).snapshot())).collect()
    }

    /// Probes every provider once and records the results in their statistics.
    pub async fn probe_all(&self) -> Vec<ProviderHealth> {
        let results = self.health().await;
        for h in &results {
            self.stats(&h.provider).probe(h.ok, Duration::from_millis(h.latency_ms));
            if h.ok {
                // Reachable again: the next request discovers its models at once.
                self.write().discovery_errors.remove(&h.provider);
            }
        }
        results
    }

    /// Probes every provider every `interval` in a background task, for as long as the registry lives.
    pub fn spawn_health_monitor(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let reg = ProviderRegistry { inner };
                reg.probe_all().await;
            }
        })
    }

    /// Sets the price of `model` at `provider`.
    pub fn set_price(&self, provider: &str, model: &str, price: ModelPrice) {
        self.write().prices.entry(provider.to_string()).or_default().insert(model.to_string(), price);
    }

    /// Where recorded prices come from (the price book of `gaia_core::quota::Quotas` in the server):
    /// a recorded price in effect wins over the configured or catalog one, for every caller that
    /// prices or costs through the registry (metering, agent budgets, estimates, `cheap` selection).
    pub fn set_price_source(&self, source: Arc<dyn PriceSource>) {
        self.write().price_source = Some(source);
    }

    /// The configured or catalog price of `model` at `provider` (recorded prices aside).
    pub fn configured_price(&self, provider: &str, model: &str) -> Option<ModelPrice> {
        self.read().prices.get(provider).and_then(|m| m.get(model)).copied()
    }

    /// The price of `model` at `provider` in effect at `at` and where it comes from: the recorded one
    /// from the price source, else the configured one.
    pub fn price_at(&self, provider: &str, model: &str, at: chrono::DateTime<chrono::Utc>) -> Option<EffectivePrice> {
        let (source, configured) = {
            let g = self.read();
            (g.price_source.clone(), g.prices.get(provider).and_then(|m| m.get(model)).copied())
        };
        source
            .and_then(|s| s.recorded_price(provider, model, at))
            .or_else(|| configured.map(EffectivePrice::configured))
    }

    /// The price of one `unit` of the media model `model` at `provider` in effect at `at` (the most
    /// specific unit first, see [`gaia_core::pricing::unit_fallbacks`]): the recorded one, else the
    /// catalog's `unit_prices`.
    pub fn unit_price_at(
        &self,
        provider: &str,
        model: &str,
        unit: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<UnitPrice> {
        let (source, configured) = {
            let g = self.read();
            let entry = g.catalog.get(provider).and_then(|m| m.get(model));
            let configured = entry.and_then(|e| {
                unit_fallbacks(unit)
                    .into_iter()
                    .find_map(|u| e.unit_prices.get(u).map(|p| UnitPrice::configured(u, *p)))
            });
            (g.price_source.clone(), configured)
        };
        source.and_then(|s| s.recorded_unit_price(provider, model, unit, at)).or(configured)
    }

    /// The price of `model` at `provider` now (recorded over configured), when there is one.
    pub fn price(&self, provider: &str, model: &str) -> Option<ModelPrice> {
        self.price_at(provider, model, chrono::Utc::now()).map(|p| p.price)
    }

    /// The cost in dollars of `usage` on `model` at `provider` at the price in effect now (0 when
    /// the model has no price).
    pub fn cost(&self, provider: &str, model: &str, usage: Usage) -> f64 {
        self.price(provider, model).map(|p| p.cost(usage)).unwrap_or(0.0)
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> Option<String> {
        self.read().default_model.clone()
    }

    /// Sets the default model.
    pub fn set_default_model(&self, model: Option<String>) {
        self.write().default_model = model;
    }

    /// The models of `p`: configured, or discovered from the provider (`GET {base_url}/models`) and
    /// reused for a minute; a list older than that is still answered at once while a background task
    /// refreshes it, so requests never wait on discovery once it has succeeded. A failed discovery
    /// marks the provider down (its health shows the error) and is not retried for
    /// [`DISCOVERY_RETRY`]: meanwhile its error is returned at once, or the last list discovered, if
    /// any, is kept.
    async fn models_of(&self, p: &Arc<dyn Provider>) -> Result<Vec<ModelInfo>, ProviderError> {
        // The common case, on every request: a fresh list, under the shared lock only (a write lock
        // here serialises every request, and a worker preempted while holding it stalls the others).
        {
            let g = self.read();
            if let Some((at, models)) = g.models.get(p.name()) {
                if at.elapsed() < g.models_ttl.unwrap_or(MODELS_TTL) {
                    return Ok(models.clone());
                }
            }
        }
        {
            let mut g = self.write();
            let cached = g.models.get(p.name()).cloned();
            let recent_error = g
                .discovery_errors
                .get(p.name())
                .filter(|(at, _)| at.elapsed() < g.discovery_retry.unwrap_or(DISCOVERY_RETRY))
                .map(|(_, e)| e.clone());
            match (cached, recent_error) {
                (Some((at, models)), _) if at.elapsed() < g.models_ttl.unwrap_or(MODELS_TTL) => return Ok(models),
                (Some((_, models)), Some(_)) => return Ok(models),
                (None, Some(e)) => return Err(e),
                (Some((_, models)), None) => {
                    if g.refreshing.insert(p.name().to_string()) {
                        let (reg, p) = (self.clone(), p.clone());
                        tokio::spawn(async move {
                            let _ = reg.discover(&p).await;
                            reg.write().refreshing.remove(p.name());
                        });
                    }
                    return Ok(models);
                }
                (None, None) => {}
            }
        }
        self.discover(p).await
    }

    /// Asks `p` for its models now and records the outcome (the list, or the failure).
    async fn discover(&self, p: &Arc<dyn Provider>) -> Result<Vec<ModelInfo>, ProviderError> {
        let t0 = Instant::now();
        let current = |g: &Inner| g.providers.iter().any(|q| Arc::ptr_eq(q, p));
        let mut models = match p.list_models().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(provider = p.name(), error = %e, "cannot list the provider's models");
                self.stats(p.name()).probe_failed(t0.elapsed(), &format!("model discovery failed: {e}"));
                let mut g = self.write();
                if current(&g) {
                    g.discovery_errors.insert(p.name().to_string(), (Instant::now(), e.clone()));
                }
                return Err(e);
            }
        };
        for m in &mut models {
            if let Some(e) = self.model_entry(&m.provider, &m.id) {
                m.context_window = m.context_window.or(e.context_window);
                if m.capabilities.is_empty() {
                    m.capabilities = e.capabilities;
                }
            }
        }
        let mut g = self.write();
        // A provider replaced meanwhile keeps its own (fresh) state.
        if current(&g) {
            g.discovery_errors.remove(p.name());
            g.models.insert(p.name().to_string(), (Instant::now(), models.clone()));
        }
        Ok(models)
    }

    /// Sets how long a discovered model list is used before it is refreshed (default one minute).
    pub fn set_models_ttl(&self, ttl: Duration) {
        self.write().models_ttl = Some(ttl);
    }

    /// Every model of every provider (asked concurrently), in registration order; providers whose
    /// models cannot be listed are skipped (see [`ProviderRegistry::discovery_error`]).
    pub async fn list_models(&self) -> Vec<ModelInfo> {
        let providers = self.providers();
        let lists = futures::future::join_all(providers.iter().map(|p| self.models_of(p))).await;
        lists.into_iter().filter_map(Result::ok).flatten().collect()
    }

    /// Sets how long a failed model discovery is remembered before it is tried again (default
    /// [`DISCOVERY_RETRY`]).
    pub fn set_discovery_retry(&self, wait: Duration) {
        self.write().discovery_retry = Some(wait);
    }

    /// Why the models of `provider` could not be discovered, when its last attempt failed.
    pub fn discovery_error(&self, provider: &str) -> Option<ProviderError> {
        self.read().discovery_errors.get(provider).map(|(_, e)| e.clone())
    }

    /// The provider for `model` and the model id to send it: `provider/model` names the provider
    /// explicitly; otherwise the first provider that lists the model. An empty `model` means the
    /// default model (or the first model offered).
    pub async fn resolve(&self, model: &str) -> Result<(Arc<dyn Provider>, String), ProviderError> {
        if self.is_empty() {
            return Err(ProviderError::NotConfigured(NOT_CONFIGURED.to_string()));
        }
        let model = model.trim();
        if model.is_empty() {
            if let Some(d) = self.default_model() {
                return Box::pin(self.resolve(&d)).await;
            }
            let first = self.list_models().await.into_iter().next();
            return match first {
                Some(m) => match self.get(&m.provider) {
                    Some(p) => Ok((p, m.id)),
                    None => Err(ProviderError::UnknownModel(m.id)),
                },
                None => Err(self.first_discovery_error().unwrap_or_else(|| {
                    ProviderError::InvalidRequest("no model given and no provider lists any model".into())
                })),
            };
        }
        if let Some((prov, id)) = model.split_once('/') {
            if let Some(p) = self.get(prov) {
                return Ok((p, id.to_string()));
            }
        }
        let mut failed = None;
        for p in self.providers() {
            match self.models_of(&p).await {
                Ok(models) if models.iter().any(|m| m.id == model) => return Ok((p, model.to_string())),
                Ok(_) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // The model may be at a provider whose models cannot be listed: say so rather than "unknown".
        Err(failed.unwrap_or_else(|| ProviderError::UnknownModel(model.to_string())))
    }

    /// The discovery error of the first provider (in registration order) whose models cannot be listed.
    fn first_discovery_error(&self) -> Option<ProviderError> {
        let g = self.read();
        g.providers.iter().find_map(|p| g.discovery_errors.get(p.name()).map(|(_, e)| e.clone()))
    }

    /// Probes every provider.
    pub async fn health(&self) -> Vec<ProviderHealth> {
        let probes = self.providers().into_iter().map(|p| async move { p.health().await });
        futures::future::join_all(probes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use gaia_core::pricing::PriceBook;
    use gaia_core::storage::PriceEntry;

    fn recorded(input: f64, from: chrono::DateTime<Utc>) -> PriceEntry {
        PriceEntry {
            id: format!("price-{input}"),
            provider: "p".into(),
            model: "m".into(),
            price: ModelPrice::new(input, input * 2.0),
            effective_from: from,
            created_by: None,
            created_at: from,
        }
    }

    #[test]
    fn recorded_prices_win_over_configured_ones_for_every_caller() {
        let reg = ProviderRegistry::new();
        let usage = Usage::new(1_000_000, 1_000_000);
        assert_eq!(reg.cost("p", "m", usage), 0.0, "no price: free");
        reg.set_price("p", "m", ModelPrice::new(1.0, 2.0));
        assert_eq!(reg.cost("p", "m", usage), 3.0);
        let now = Utc::now();
        let book =
            PriceBook::new(vec![recorded(5.0, now - Duration::hours(1)), recorded(7.0, now + Duration::days(1))]);
        reg.set_price_source(Arc::new(book));
        // The recorded price in effect now, for pricing and costing alike.
        assert_eq!(reg.price("p", "m"), Some(ModelPrice::new(5.0, 10.0)));
        assert_eq!(reg.cost("p", "m", usage), 15.0);
        let effective = reg.price_at("p", "m", now).unwrap();
        assert_eq!(effective.id.as_deref(), Some("price-5"));
        // Before any recorded price took effect: the configured one; later: the next recorded one.
        let before = reg.price_at("p", "m", now - Duration::days(1)).unwrap();
        assert_eq!((before.price.input, before.id), (1.0, None));
        assert_eq!(reg.price_at("p", "m", now + Duration::days(2)).unwrap().price.input, 7.0);
        assert_eq!(reg.configured_price("p", "m"), Some(ModelPrice::new(1.0, 2.0)));
        // Models without any price stay free.
        assert_eq!(reg.cost("p", "other", usage), 0.0);
    }
}
