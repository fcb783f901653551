//! Providers added, replaced or removed at runtime through the admin API, kept in the database
//! (`runtime_providers`) so that they survive a restart and reach every instance.
//!
//! At start-up the stored changes are applied over the configuration's `[[providers]]`: an added or
//! replaced provider is built from its stored entry, a removed one is taken out of the registry (even
//! when `gaia.toml` lists it, until an administrator adds it again). A background task re-reads the
//! table every [`SYNC_INTERVAL`] and applies what other instances changed. Keys named by
//! `api_key_env` are read from each instance's environment and never stored; a key given directly
//! (`api_key`) is stored encrypted ([`gaia_core::secrets`], under `secrets_key` or a key derived from
//! `jwt_secret`: see [`gaia_core::Config::secrets`]) and decrypted here. Keys stored in clear by
//! earlier versions still load, and are encrypted in place as soon as a key is configured.
//!
//! Every runtime entry, sent to the admin API or re-read from the database, must pass the
//! configuration's `[provider_policy]` ([`check_policy`], [`KeyPolicy`]): `api_key_env` may only
//! name variables it allows (never `GAIA_*`); with `allowed_hosts` set its endpoints must be on
//! those hosts; a key read from a variable may only be sent to a host `allowed_hosts` lists, to where
//! the configuration's own providers send that variable, or to the variable's vendor's API host
//! (`api.openai.com` for `OPENAI_API_KEY`), whatever the provider's name (a key given in the entry,
//! `api_key`, is the administrator's own and goes wherever `allowed_hosts` permits); and a provider
//! that carries a key may not be re-pointed at another origin with a key read from the environment
//! (the key must be restated, or the host allowed); any key goes over plain http only to a loopback
//! host, to an `allowed_hosts` entry written `http://host[:port]`, or where the configuration already
//! sends that variable. A stored entry that fails is not applied (one warning per change says why,
//! and [`AppliedChanges::refused`] lists it, with why, for administrators); the configuration's own
//! `[[providers]]` are exempt.
//!
//! A provider whose stored key cannot be decrypted (the secrets key changed) does not stop start-up:
//! it is registered as a stand-in that is down, whose health and errors say why, until the right key
//! is configured again or an administrator adds the provider again with its key.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gaia_core::config::{Config, ProviderEntry, ProviderPolicy};
use gaia_core::secrets::{Secrets, SecretsError};
use gaia_core::storage::{OpenedEntry, RuntimeProvider, Storage};
use gaia_core::types::ModelInfo;
use gaia_providers::{
    ChatRequest, ChatResponse, ChatStream, Origin, Provider, ProviderError, ProviderHealth, ProviderRegistry,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often each instance re-reads the runtime provider changes.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// One endpoint of an entry and where its key comes from.
struct Endpoint<'a> {
    base_url: &'a str,
    /// A key given in the entry itself (restated).
    literal: bool,
    /// The variable the key is read from, when there is no literal key.
    env: Option<&'a str>,
}

/// The entry's endpoints, the main one first, as sent or stored (keys not read from the environment).
fn endpoints(entry: &ProviderEntry) -> Vec<Endpoint<'_>> {
    let main =
        Endpoint { base_url: entry.base_url(), literal: entry.api_key.is_some(), env: entry.api_key_env.as_deref() };
    std::iter::once(main)
        .chain(entry.deployments.iter().map(|d| Endpoint {
            base_url: d.base_url.as_deref().unwrap_or(entry.base_url()),
            literal: d.api_key.is_some(),
            env: d.api_key_env.as_deref(),
        }))
        .collect()
}

/// The origins the provider being replaced sends a key to: `None` when it carries no key; an empty
/// set when it carries one we cannot see (set up in code, or a stand-in for an undecryptable key).
fn keyed_origins(current: Option<&ProviderEntry>) -> Option<Vec<Origin>> {
    let Some(entry) = current else { return Some(Vec::new()) };
    let keyed: Vec<Origin> = endpoints(entry)
        .iter()
        .filter(|e| e.literal || e.env.is_some())
        .filter_map(|e| Origin::of(e.base_url))
        .collect();
    let carries_key = endpoints(entry).iter().any(|e| e.literal || e.env.is_some());
    carries_key.then_some(keyed)
}

/// What providers added or replaced at runtime may do with the server's secrets: the configuration's
/// `[provider_policy]`, and where the configuration's own `[[providers]]` send each key variable.
#[derive(Debug, Clone, Default)]
pub struct KeyPolicy {
    /// `[provider_policy]`.
    policy: ProviderPolicy,
    /// For each variable the configuration's providers read a key from (`api_key_env`, or the
    /// vendors' own `OPENAI_API_KEY`, …), the origins they send it to.
    configured: HashMap<String, Vec<Origin>>,
}

impl KeyPolicy {
    /// The policy `config` sets: its `[provider_policy]`, and where its `[[providers]]` (those of
    /// `gaia.toml` and those made from the vendors' variables) send each key variable.
    pub fn of(config: &Config) -> KeyPolicy {
        let mut configured: HashMap<String, Vec<Origin>> = HashMap::new();
        for entry in &config.providers {
            for e in endpoints(entry) {
                if let (Some(var), Some(origin)) = (e.env, Origin::of(e.base_url)) {
                    configured.entry(var.to_string()).or_default().push(origin);
                }
            }
        }
        KeyPolicy { policy: config.provider_policy.clone(), configured }
    }

    /// Whether a key read from the variable `var` may be sent to `origin` (on a host `allowed_hosts`
    /// allows when it lists any): when `allowed_hosts` lists its host, when the configuration sends
    /// `var` there, or when it is the vendor's own API host for `var` over https.
    fn may_send(&self, var: &str, origin: &Origin) -> bool {
        let vendor = gaia_core::config::vendor_key_host(var)
            .is_some_and(|host| origin.scheme == "https" && origin.port == 443 && origin.host == host);
        (self.policy.restricts_hosts() && self.policy.allows_host(&origin.host, origin.port))
            || vendor
            || self.configured_sends(var, origin)
    }

    /// Whether the configuration's own providers send the key of `var` to `origin`.
    fn configured_sends(&self, var: &str, origin: &Origin) -> bool {
        self.configured.get(var).is_some_and(|origins| origins.contains(origin))
    }

    /// Whether a key may travel to `origin`: over https; over plain http only to a loopback host, to
    /// a host `allowed_hosts` lists with an explicit `http://`, or (a key read from `var`) where the
    /// configuration itself already sends that variable.
    fn may_carry_key(&self, origin: &Origin, var: Option<&str>) -> bool {
        origin.scheme == "https"
            || origin.is_loopback()
            || self.policy.allows_plain_http(&origin.host, origin.port)
            || var.is_some_and(|var| self.configured_sends(var, origin))
    }
}

/// Checks an entry added or replaced at runtime (as sent, or as stored: keys not yet read from the
/// environment) against `policy`. `current` is the provider it replaces: `None` when there is none,
/// `Some(None)` when there is one that was not built from an entry. The error says why, naming
/// variables and hosts, never a key.
pub fn check_policy(
    key_policy: &KeyPolicy,
    entry: &ProviderEntry,
    current: Option<Option<&ProviderEntry>>,
) -> Result<(), String> {
    let policy = &key_policy.policy;
    let replaced = current.and_then(keyed_origins);
    for e in endpoints(entry) {
        let origin = Origin::of(e.base_url)
            .ok_or_else(|| format!("base_url `{}` is not an http(s) URL with a host", e.base_url))?;
        if let Some(var) = e.env {
            if !policy.allows_key_env(var) {
                return Err(format!(
                    "api_key_env `{var}` is not allowed: a provider added at runtime may only read its key from a \
                     variable listed in `provider_policy.allowed_key_envs` (never a GAIA_* variable)"
                ));
            }
        }
        let host_allowed = policy.allows_host(&origin.host, origin.port);
        if policy.restricts_hosts() && !host_allowed {
            return Err(format!(
                "base_url host `{}` is not allowed: list it in `provider_policy.allowed_hosts`",
                origin.host
            ));
        }
        let from_env = !e.literal && e.env.is_some();
        if (e.literal || from_env) && !key_policy.may_carry_key(&origin, e.env.filter(|_| from_env)) {
            return Err(format!(
                "base_url {origin} is plain http: a key is only sent over https, to a loopback host, or to a host \
                 `provider_policy.allowed_hosts` lists with an explicit scheme (`http://{}:{}`)",
                origin.host, origin.port
            ));
        }
        if let Some(keyed) = &replaced {
            if from_env && !host_allowed && !keyed.contains(&origin) {
                return Err(format!(
                    "provider `{}` carries a key: re-pointing it at {origin} with a key read from the environment \
                     needs the key restated (`api_key`) or the host listed in `provider_policy.allowed_hosts`",
                    entry.name
                ));
            }
        }
        if let (true, Some(var)) = (from_env, e.env) {
            if !key_policy.may_send(var, &origin) {
                let vendor = gaia_core::config::vendor_key_host(var)
                    .map(|host| format!(", or to its vendor's https://{host}"))
                    .unwrap_or_default();
                return Err(format!(
                    "api_key_env `{var}`: a key read from the environment may only be sent to the hosts listed in \
                     `provider_policy.allowed_hosts`, to the hosts the configuration's own providers send {var} \
                     to{vendor}; not to {origin}. Give the key itself (`api_key`) or list the host in \
                     `provider_policy.allowed_hosts`"
                ));
            }
        }
    }
    Ok(())
}

/// Stands in for a provider whose stored API key cannot be decrypted: always down, and every call
/// fails with a message saying why (never the key).
struct Undecryptable {
    name: String,
    message: String,
}

impl Undecryptable {
    fn error(&self) -> ProviderError {
        ProviderError::NotConfigured(self.message.clone())
    }
}

#[async_trait]
impl Provider for Undecryptable {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Err(self.error())
    }

    async fn chat(&self, _req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(self.error())
    }

    async fn chat_stream(&self, _req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        Err(self.error())
    }

    async fn health(&self) -> ProviderHealth {
        ProviderHealth { provider: self.name.clone(), ok: false, latency_ms: 0, message: Some(self.message.clone()) }
    }
}

/// Why a stored key does not open under the configured secrets key.
const ANOTHER_KEY: &str = "it was encrypted under another secrets key (was GAIA_SECRETS_KEY changed, or the \
GAIA_JWT_SECRET it is derived from when GAIA_SECRETS_KEY is unset?) or altered";

/// Skips the provider `name`, whose stored key cannot be opened: logs why (never a key) and puts a
/// stand-in in its place that shows it down with that reason.
fn skip_undecryptable(registry: &ProviderRegistry, name: &str, error: &SecretsError) {
    let reason = match error {
        SecretsError::NoKey => "no secrets key is configured".to_string(),
        SecretsError::Undecryptable => ANOTHER_KEY.to_string(),
        other => other.to_string(),
    };
    let message = format!(
        "provider {name} is skipped: its stored API key cannot be decrypted: {reason}. Set GAIA_SECRETS_KEY to \
         the key it was stored with, or add the provider again with its key (PUT /api/v1/providers/{name})"
    );
    tracing::error!(provider = %name, "{message}");
    registry.remove(name);
    registry.register(Arc::new(Undecryptable { name: name.to_string(), message: message.clone() }));
    registry.stats(name).probe_failed(Duration::ZERO, &message);
}

/// Applies the stored change of provider `name` to `registry`, given its entry as opened by
/// [`RuntimeProvider::open_entry`] (`None`: removed). `Err` with the reason (variables and hosts,
/// never a key) when the entry cannot be set up here or `policy` refuses it; the caller logs it and
/// shows it to administrators ([`AppliedChanges::refused`]). An undecryptable key is not an `Err`: a
/// stand-in that says why takes the provider's place.
fn apply(
    registry: &ProviderRegistry,
    policy: &KeyPolicy,
    name: &str,
    opened: &Result<Option<OpenedEntry>, SecretsError>,
) -> Result<bool, String> {
    let opened = match opened {
        Ok(opened) => opened,
        Err(e) => {
            skip_undecryptable(registry, name, e);
            return Ok(false);
        }
    };
    let Some(opened) = opened else {
        if registry.remove(name) {
            tracing::info!(provider = %name, "provider removed at runtime (stored change applied)");
        }
        return Ok(true);
    };
    let current = registry.get(name).map(|_| registry.entry(name));
    check_policy(policy, &opened.entry, current.as_ref().map(Option::as_ref))
        .map_err(|why| format!("[provider_policy] refuses it: {why}"))?;
    let mut entry = opened.entry.clone();
    entry.resolve_process_env_keys().map_err(|e| format!("it cannot be set up: {e}"))?;
    registry.add_entry(&entry).map_err(|e| format!("it cannot be set up: {e}"))?;
    Ok(true)
}

/// A stored provider change this instance did not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The provider's name.
    pub name: String,
    /// Why (variables and hosts, never a key).
    pub reason: String,
}

/// What [`AppliedChanges`] keeps.
#[derive(Debug, Default)]
struct Changes {
    /// The change time of each provider name last applied (or refused).
    applied: HashMap<String, DateTime<Utc>>,
    /// The stored changes refused, by provider name: the reason.
    refused: std::collections::BTreeMap<String, String>,
}

/// The runtime changes an instance's registry is in step with: the change time of each provider
/// name last applied, and the stored changes it refused (with why, for administrators to see and
/// fix). Shared by the instance's [`ProviderSync`] and its admin routes, which record the changes
/// they make themselves, so that the sync does not set those providers up a second time when it
/// reads the changes back.
#[derive(Debug, Clone, Default)]
pub struct AppliedChanges(Arc<Mutex<Changes>>);

impl AppliedChanges {
    /// Records that the change of provider `name` made at `at` is applied (a refusal of an earlier
    /// change of that name is forgotten).
    pub fn record(&self, name: &str, at: DateTime<Utc>) {
        let mut changes = self.lock();
        changes.applied.insert(name.to_string(), at);
        changes.refused.remove(name);
    }

    /// Records that the stored change of provider `name` made at `at` was refused, and why.
    fn refuse(&self, name: &str, at: DateTime<Utc>, reason: String) {
        let mut changes = self.lock();
        changes.applied.insert(name.to_string(), at);
        changes.refused.insert(name.to_string(), reason);
    }

    /// The stored changes refused (not set up), by name.
    pub fn refused(&self) -> Vec<Refused> {
        let changes = self.lock();
        changes.refused.iter().map(|(name, reason)| Refused { name: name.clone(), reason: reason.clone() }).collect()
    }

    /// Whether the last stored change of provider `name` was refused.
    pub fn is_refused(&self, name: &str) -> bool {
        self.lock().refused.contains_key(name)
    }

    /// Whether the change of provider `name` made at `at` is applied.
    fn is_applied(&self, name: &str, at: DateTime<Utc>) -> bool {
        self.lock().applied.get(name) == Some(&at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Changes> {
        // The maps stay consistent whatever a panicking holder did: each operation is a few inserts,
        // removals or reads.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps a registry in step with the stored runtime changes.
#[derive(Debug, Default)]
pub struct ProviderSync {
    /// What the registry is in step with.
    applied: AppliedChanges,
    /// The keys opening (and sealing again) the stored API keys.
    secrets: Option<Secrets>,
    /// What stored entries may do ([`check_policy`]).
    policy: KeyPolicy,
}

impl ProviderSync {
    /// A sync that has applied nothing yet, opening stored keys with `secrets` (from
    /// [`gaia_core::Config::secrets`]; `None` when no key is configured: only entries without a
    /// stored key, or stored in clear by earlier versions, can be set up then).
    pub fn new(secrets: Option<Secrets>) -> Self {
        Self::with_applied(secrets, AppliedChanges::default())
    }

    /// A sync sharing `applied` with the routes that change the same registry
    /// ([`crate::AppState::applied_provider_changes`]).
    pub fn with_applied(secrets: Option<Secrets>, applied: AppliedChanges) -> Self {
        ProviderSync { applied, secrets, policy: KeyPolicy::default() }
    }

    /// The same sync checking stored entries against `policy` (the configuration's, from
    /// [`KeyPolicy::of`]) instead of the default `[provider_policy]` with no configured providers.
    pub fn with_policy(mut self, policy: KeyPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Encrypts in place the keys of a change stored in clear (or under a previous key), given its
    /// opened entry, so that the database no longer holds them readable. Best effort: the change
    /// still applies if this fails.
    async fn reseal(storage: &Storage, change: &RuntimeProvider, opened: &OpenedEntry, secrets: &Secrets) {
        if !opened.reseal {
            return;
        }
        match storage.reseal_runtime_provider(change, &opened.entry, secrets).await {
            Ok(true) => {
                tracing::info!(provider = %change.name, "stored API key encrypted with the current secrets key")
            }
            Ok(false) => {} // Changed meanwhile: the new change is stored encrypted.
            Err(e) => tracing::warn!(provider = %change.name, error = %e, "cannot encrypt the stored API key"),
        }
    }

    /// Applies every stored change newer than what this sync applied before; returns how many were
    /// applied. The first call applies them all (start-up).
    pub async fn apply_changes(
        &mut self,
        storage: &Storage,
        registry: &ProviderRegistry,
    ) -> Result<usize, gaia_core::CoreError> {
        let changes = storage.list_runtime_providers().await?;
        let mut applied = 0;
        for c in &changes {
            if self.applied.is_applied(&c.name, c.updated_at) {
                continue;
            }
            // Opened once: to set the provider up, then to seal its keys again if they need it.
            let opened = c.open_entry(self.secrets.as_ref());
            let refused = match apply(registry, &self.policy, &c.name, &opened) {
                Ok(done) => {
                    applied += usize::from(done);
                    None
                }
                Err(reason) => {
                    // One warning per refused change (it is not retried until it changes again).
                    tracing::warn!(
                        provider = %c.name,
                        reason = %reason,
                        "stored runtime provider {} is not set up: {reason}. An administrator sees it in GET \
                         /api/v1/providers; allow it (provider_policy.allowed_key_envs / allowed_hosts), replace it \
                         (PUT /api/v1/providers/{}) or remove it (DELETE)",
                        c.name,
                        c.name
                    );
                    Some(reason)
                }
            };
            if let Some(secrets) = &self.secrets {
                if let Ok(Some(opened)) = &opened {
                    Self::reseal(storage, c, opened, secrets).await;
                }
            } else if c.has_clear_keys() {
                tracing::warn!(
                    provider = %c.name,
                    "the stored API key of this provider is not encrypted: set GAIA_SECRETS_KEY to encrypt it"
                );
            }
            match refused {
                Some(reason) => self.applied.refuse(&c.name, c.updated_at, reason),
                None => self.applied.record(&c.name, c.updated_at),
            }
        }
        Ok(applied)
    }

    /// Re-reads the changes every `interval` in a background task, for as long as the process runs.
    pub fn spawn(mut self, storage: Storage, registry: ProviderRegistry, interval: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.apply_changes(&storage, &registry).await {
                    tracing::warn!(error = %e, "cannot read the runtime provider changes");
                }
            }
        });
    }
}
