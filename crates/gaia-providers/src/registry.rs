//! The provider registry: which provider serves which model.

use crate::anthropic::{AnthropicConfig, AnthropicProvider};
use crate::balanced::BalancedProvider;
use crate::error::ProviderError;
use crate::health::{BreakerConfig, HealthSnapshot, ProviderStats};
use crate::openai::{OpenAiConfig, OpenAiProvider};
use crate::provider::Provider;
use crate::routing::RetryPolicy;
use crate::types::ProviderHealth;
use gaia_core::config::{Config, ModelEntry, ProviderEntry, ProviderKind};
use gaia_core::types::{ModelInfo, ModelPrice, Usage};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a provider's discovered model list is reused.
const MODELS_TTL: Duration = Duration::from_secs(60);

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
                        Arc::new(AnthropicProvider::new(c))
                    }
                    _ => {
                        let mut c = OpenAiConfig::new(url, d.api_key);
                        c.name = entry.name.clone();
                        c.models = models.clone();
                        c.timeout = timeout;
                        c.connect_timeout = connect;
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
        g.providers.push(provider);
    }

    /// Removes a provider by name; `true` if it was there.
    pub fn remove(&self, name: &str) -> bool {
        let mut g = self.write();
        let before = g.providers.len();
        g.providers.retain(|p| p.name() != name);
        g.models.remove(name);
        g.stats.remove(name);
        g.catalog.remove(name);
        g.prices.remove(name);
        g.providers.len() != before
    }

    /// The registered providers, in registration order.
    pub fn providers(&self) -> Vec<Arc<dyn Provider>> {
        self.read().providers.clone()
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

    /// The price of `model` at `provider`, when configured.
    pub fn price(&self, provider: &str, model: &str) -> Option<ModelPrice> {
        self.read().prices.get(provider).and_then(|m| m.get(model)).copied()
    }

    /// The cost in dollars of `usage` on `model` at `provider` (0 when no price is configured).
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

    async fn models_of(&self, p: &Arc<dyn Provider>) -> Result<Vec<ModelInfo>, ProviderError> {
        if let Some((at, models)) = self.read().models.get(p.name()) {
            if at.elapsed() < MODELS_TTL {
                return Ok(models.clone());
            }
        }
        let mut models = p.list_models().await?;
        for m in &mut models {
            if let Some(e) = self.model_entry(&m.provider, &m.id) {
                m.context_window = m.context_window.or(e.context_window);
                if m.capabilities.is_empty() {
                    m.capabilities = e.capabilities;
                }
            }
        }
        self.write().models.insert(p.name().to_string(), (Instant::now(), models.clone()));
        Ok(models)
    }

    /// Every model of every provider; providers that fail are logged and skipped.
    pub async fn list_models(&self) -> Vec<ModelInfo> {
        let mut all = Vec::new();
        for p in self.providers() {
            match self.models_of(&p).await {
                Ok(m) => all.extend(m),
                Err(e) => tracing::warn!(provider = p.name(), error = %e, "cannot list models"),
            }
        }
        all
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
                None => Err(ProviderError::InvalidRequest("no model given and no provider lists any model".into())),
            };
        }
        if let Some((prov, id)) = model.split_once('/') {
            if let Some(p) = self.get(prov) {
                return Ok((p, id.to_string()));
            }
        }
        for p in self.providers() {
            match self.models_of(&p).await {
                Ok(models) if models.iter().any(|m| m.id == model) => return Ok((p, model.to_string())),
                Ok(_) => {}
                Err(e) => tracing::warn!(provider = p.name(), error = %e, "cannot list models"),
            }
        }
        Err(ProviderError::UnknownModel(model.to_string()))
    }

    /// Probes every provider.
    pub async fn health(&self) -> Vec<ProviderHealth> {
        let probes = self.providers().into_iter().map(|p| async move { p.health().await });
        futures::future::join_all(probes).await
    }
}
