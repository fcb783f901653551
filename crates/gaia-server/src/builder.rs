//! [`Gaia::builder`]: everything Gaia needs, set up from code (or from a [`Config`], or both).
//!
//! ```no_run
//! use gaia_server::Gaia;
//! use gaia_providers::{OpenAiConfig, OpenAiProvider};
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let gaia = Gaia::builder()
//!     .database("sqlite://game.db")                       // or postgres://…; created and migrated
//!     .jwt_secret("a-long-random-secret-for-hs256-tokens")
//!     .provider(Arc::new(OpenAiProvider::new(OpenAiConfig::new("http://127.0.0.1:11434/v1", None))))
//!     .ui(false)                                         // API only: it is mounted under /ai below
//!     .build()
//!     .await?;
//! let app: axum::Router = axum::Router::new().nest("/ai", gaia.router());
//! # let _ = app; Ok(()) }
//! ```

use crate::state::AppState;
use gaia_core::cache::{self, SharedCache};
use gaia_core::config::{KbConfig, LimitsConfig};
use gaia_core::storage::Storage;
use gaia_core::{Config, CoreError};
use gaia_providers::{Provider, ProviderRegistry};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A running Gaia: its state (storage, cache, providers, knowledge base, access control, quotas)
/// and its router. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Gaia {
    state: AppState,
}

/// Builds a [`Gaia`]; see [`Gaia::builder`]. Anything not set comes from the [`Config`] given with
/// [`GaiaBuilder::config`] (defaults when none): an SQLite file, the in-process cache, the providers
/// of `[[providers]]`.
#[must_use]
pub struct GaiaBuilder {
    config: Config,
    storage: Option<Storage>,
    cache: Option<SharedCache>,
    registry: Option<ProviderRegistry>,
    providers: Vec<Arc<dyn Provider>>,
    kb: Option<gaia_kb::Kb>,
    background: bool,
}

impl Gaia {
    /// A builder with the default configuration.
    pub fn builder() -> GaiaBuilder {
        GaiaBuilder {
            config: Config::default(),
            storage: None,
            cache: None,
            registry: None,
            providers: Vec::new(),
            kb: None,
            background: true,
        }
    }

    /// The state shared by every handler; the library APIs are reachable from it
    /// (`state().providers()`, `state().kb()`, `state().rbac()`, `state().storage()`…).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Gaia's routes as a plain `axum::Router` to serve or nest (see [`crate::router`]).
    pub fn router(&self) -> axum::Router {
        crate::router(self.state.clone())
    }

    /// Serves the routes on `listener` until `shutdown` resolves (see [`crate::serve`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::serve(listener, self.state, shutdown).await
    }
}

impl From<Gaia> for AppState {
    fn from(g: Gaia) -> AppState {
        g.state
    }
}

impl GaiaBuilder {
    /// Starts from `config` (for example [`Config::load`]); the other setters override parts of it.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The database URL (`sqlite://file.db`, `sqlite::memory:`, `postgres://…`).
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.config.database_url = url.into();
        self
    }

    /// An already connected database (it is migrated by [`GaiaBuilder::build`]).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Redis for several instances: shared cache, rate limits, events and access-control changes.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.config.redis_url = Some(url.into());
        self
    }

    /// A cache of your own (in place of the in-process one or Redis).
    pub fn cache(mut self, cache: SharedCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The secret signing Gaia's tokens (random when unset: tokens then die with the process).
    pub fn jwt_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.jwt_secret = Some(secret.into());
        self
    }

    /// Adds a provider (besides those of the configuration).
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// Uses this registry instead of building one from the configuration's `[[providers]]`.
    pub fn registry(mut self, registry: ProviderRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Opens this knowledge base at build time (synced in the background when it has a remote).
    pub fn kb_config(mut self, kb: KbConfig) -> Self {
        self.config.kb = Some(kb);
        self
    }

    /// An already opened knowledge base.
    pub fn kb(mut self, kb: gaia_kb::Kb) -> Self {
        self.kb = Some(kb);
        self
    }

    /// Default rate limits.
    pub fn limits(mut self, limits: LimitsConfig) -> Self {
        self.config.limits = limits;
        self
    }

    /// Users with these emails become administrators when they register.
    pub fn admin_emails(mut self, emails: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config.rbac.admin_emails = emails.into_iter().map(Into::into).collect();
        self
    }

    /// Serve the web chat UI at `/` (on by default; turn it off when nesting the router under a path).
    pub fn ui(mut self, on: bool) -> Self {
        self.config.server.ui = on;
        self
    }

    /// Whether to start the background jobs of a server (provider health probes, knowledge-base sync,
    /// data retention): on by default.
    pub fn background_jobs(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// Connects and migrates the database (or, with `server.migrate_on_start = false`, waits until
    /// another process has), sets up the cache, the providers, the knowledge base, and
    /// with Redis (or NATS) everything several instances share. Must run inside a tokio runtime.
    pub async fn build(self) -> Result<Gaia, CoreError> {
        let config = self.config;
        config.validate()?;
        let storage = match self.storage {
            Some(s) => s,
            None => Storage::connect(&config.database_url).await?,
        };
        if config.server.migrate_on_start {
            storage.migrate().await?;
        } else {
            // Another step runs `gaia migrate` (a Kubernetes Job, a compose one-shot service).
            storage.wait_for_migrations(Duration::from_secs(2)).await;
        }
        let cache = match self.cache {
            Some(c) => c,
            None => cache::from_config(&config).await?,
        };
        let registry = self.registry.unwrap_or_else(|| ProviderRegistry::from_config(&config));
        for p in self.providers {
            registry.register(p);
        }
        let secrets = config.secrets()?;
        // Probes run even with no provider yet: administrators may add some at runtime.
        if self.background && config.routing.health_interval_secs > 0 {
            registry.spawn_health_monitor(Duration::from_secs(config.routing.health_interval_secs));
        }
        let kb = match (self.kb, &config.kb) {
            (Some(kb), _) => Some(kb),
            (None, Some(kc)) => {
                let kb = gaia_kb::Kb::open_with_storage(kc.clone(), Some(storage.clone()))
                    .await
                    .map_err(|e| CoreError::Config(format!("knowledge base `{}`: {e}", kc.name)))?;
                if self.background {
                    kb.spawn_sync_loop();
                }
                Some(kb)
            }
            (None, None) => None,
        };
        let redis_url = config.redis_url.clone();
        let nats_url = config.nats_url.clone();
        let state = AppState::new(config, storage, cache, registry);
        // Providers added, replaced or removed at runtime through the admin API, over the configuration.
        let mut provider_sync =
            crate::provider_store::ProviderSync::with_applied(secrets, state.applied_provider_changes().clone())
                .with_policy(crate::provider_store::KeyPolicy::of(state.config()));
        if let Err(e) = provider_sync.apply_changes(state.storage(), state.providers()).await {
            tracing::warn!(error = %e, "cannot read the providers changed at runtime; the configured ones apply");
        }
        if let Some(url) = &nats_url {
            state.connect_nats(url).await?;
        }
        if let Some(url) = redis_url {
            state.connect_redis(&url, gaia_core::cache::DEFAULT_PREFIX).await?;
        }
        if let Some(kb) = kb {
            state.set_kb(kb);
        }
        if let Err(e) = state.quotas().reload_prices().await {
            tracing::warn!(error = %e, "cannot load the recorded prices; configured prices apply");
        }
        if self.background {
            state.watch_provider_health();
            provider_sync.spawn(
                state.storage().clone(),
                state.providers().clone(),
                crate::provider_store::SYNC_INTERVAL,
            );
            // Deletes old messages, usage and audit rows when `[retention]` asks for it (safe on every
            // instance at once: see `gaia_core::retention`).
            gaia_core::retention::spawn(state.storage().clone(), state.config().retention.clone());
        }
        Ok(Gaia { state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_from_code_alone() {
        let mock = gaia_providers::mock::MockUpstream::start("127.0.0.1:0".parse().unwrap(), Default::default())
            .await
            .unwrap();
        let openai = gaia_providers::OpenAiConfig::new(mock.openai_base_url(), None);
        let gaia = Gaia::builder()
            .database("sqlite::memory:")
            .jwt_secret("builder-test-secret-0123456789abcdef")
            .provider(Arc::new(gaia_providers::OpenAiProvider::new(openai)))
            .limits(LimitsConfig { user_requests_per_minute: 7, ..Default::default() })
            .admin_emails(["boss@example.com"])
            .ui(false)
            .background_jobs(false)
            .build()
            .await
            .unwrap();
        let st = gaia.state();
        assert!(st.providers().resolve("mock-gpt").await.is_ok());
        assert_eq!(st.config().limits.user_requests_per_minute, 7);
        assert!(!st.config().server.ui);
        assert_eq!(st.config().rbac.admin_emails, vec!["boss@example.com".to_string()]);
        assert!(st.kb().is_none());
        let _router = gaia.router();
        let state: AppState = gaia.into();
        assert_eq!(state.cache().kind(), "memory");
        let bad = Gaia::builder().database("mysql://nope").build().await;
        assert!(bad.is_err());
    }
}
