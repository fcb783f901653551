//! Application state shared by every handler.

use gaia_core::auth::{Authenticator, JwtKeys};
use gaia_core::cache::SharedCache;
use gaia_core::events::EventBus;
use gaia_core::storage::Storage;
use gaia_core::usage::UsageRecorder;
use gaia_core::{Config, CoreError};
use gaia_providers::response_cache::ResponseCache;
use gaia_providers::ProviderRegistry;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    storage: Storage,
    cache: SharedCache,
    auth: Authenticator,
    providers: ProviderRegistry,
    events: EventBus,
    usage: UsageRecorder,
    responses: Option<ResponseCache>,
    active_streams: Arc<AtomicUsize>,
    rbac: gaia_rbac::Rbac,
    /// The tool sources of chat turns and agents (the knowledge base, the warm MCP servers).
    tools: Arc<crate::tools::ServerTools>,
    quotas: gaia_core::quota::Quotas,
    metrics: Arc<crate::observe::Metrics>,
    engine: gaia_chat::Engine,
    /// Who has each conversation open and who is typing, across instances (`/ws/chat`).
    presence: gaia_chat::presence::Presence,
    /// Game worlds: the experiences of the vault and their live state.
    worlds: gaia_world::Worlds,
    /// Generated images, voices and 3D models.
    assets: gaia_assets::Assets,
    provider_changes: crate::provider_store::AppliedChanges,
    password_gate: gaia_core::auth::PasswordGate,
    live_connections: Arc<crate::per_user::PerUser>,
    /// The game sockets' fan-out of world changes (started with the first game socket).
    play_hub: std::sync::OnceLock<Arc<crate::play::PlayHub>>,
    /// Agent and orchestrated runs going on, per user (`agents.max_concurrent_runs_per_user`).
    agent_runs: Arc<crate::per_user::PerUser>,
    /// Slots for the stdio MCP server processes of cold agent requests (`mcp_processes.max_concurrent`).
    mcp_processes: Arc<tokio::sync::Semaphore>,
    /// `true` once the server is stopping: live sockets close with a hint to reconnect.
    draining: tokio::sync::watch::Sender<bool>,
    /// Whether the instance takes traffic (`GET /health/ready`).
    readiness: crate::readiness::Readiness,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.inner.storage.backend())
            .field("cache", &self.inner.cache.kind())
            .field("providers", &self.inner.providers)
            .finish()
    }
}

impl AppState {
    /// Builds the state from configuration: connects and migrates the database, sets up the cache
    /// (Redis when configured), the JWT keys and the providers, and starts the data retention job when
    /// `[retention]` enables it.
    pub async fn from_config(config: Config) -> Result<AppState, CoreError> {
        Ok(crate::Gaia::builder().config(config).build().await?.into())
    }

    /// Builds the state from parts (for embedding and tests). The JWT secret comes from
    /// `config.jwt_secret`, or is random when unset. Call it inside a tokio runtime: it starts the
    /// background usage writer.
    pub fn new(config: Config, storage: Storage, cache: SharedCache, providers: ProviderRegistry) -> AppState {
        let jwt = match &config.jwt_secret {
            Some(s) => JwtKeys::new(s.as_bytes()),
            None => {
                tracing::warn!("GAIA_JWT_SECRET is not set: using a random secret; tokens will not survive a restart");
                JwtKeys::random()
            }
        };
        let auth =
            Authenticator::new(storage.clone(), cache.clone(), jwt, Duration::from_secs(config.cache.api_key_ttl_secs));
        if !config.auth.jwks.is_empty() {
            // The configuration was validated; a failure here leaves those providers' tokens refused.
            match gaia_core::auth::Jwks::new(&config.auth.jwks).and_then(|j| auth.set_jwks(j)) {
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "the identity providers of [[auth.jwks]] cannot be used"),
            }
        }
        if config.cache.revocation_poll_ms > 0 {
            auth.spawn_revocation_watch(Duration::from_millis(config.cache.revocation_poll_ms));
        }
        let responses = (config.cache.response_ttl_secs > 0)
            .then(|| ResponseCache::new(cache.clone(), Duration::from_secs(config.cache.response_ttl_secs)));
        let rbac = gaia_rbac::Rbac::unloaded(storage.clone());
        if config.rbac.refresh_interval_ms > 0 {
            rbac.spawn_refresh(Duration::from_millis(config.rbac.refresh_interval_ms));
        }
        // The definitions are constant: building them only fails if one of them is broken.
        #[allow(clippy::expect_used)]
        let metrics = Arc::new(crate::observe::Metrics::new().expect("valid metric definitions"));
        let quotas = gaia_core::quota::Quotas::new(storage.clone(), config.limits.clone());
        let events = EventBus::default();
        quotas.announce_on(events.clone());
        quotas.spawn_price_refresh(PRICE_REFRESH);
        // Every caller costing through the registry (metering, agent budgets, estimates) sees the
        // recorded prices.
        providers.set_price_source(Arc::new(quotas.clone()));
        let mcp_processes = Arc::new(tokio::sync::Semaphore::new(config.mcp_processes.max_concurrent.max(1)));
        let usage = UsageRecorder::spawn(storage.clone());
        let tools =
            Arc::new(crate::tools::ServerTools::new(rbac.clone(), config.mcp_servers.clone(), config.agents.kb_tools));
        let engine = gaia_chat::Engine::new(gaia_chat::EngineParts {
            storage: storage.clone(),
            providers: providers.clone(),
            events: events.clone(),
            quotas: quotas.clone(),
            rbac: rbac.clone(),
            usage: usage.clone(),
            responses: responses.clone(),
            observer: Some(metrics.clone()),
            chat: config.chat.clone(),
            tools: Some(tools.clone()),
            tool_limits: config.agents.limits.clone(),
            // The configuration was validated when read: the rules compile.
            guardrails: gaia_chat::guardrails::Guardrails::new(&config.guardrails).unwrap_or_else(|e| {
                tracing::error!(error = %e, "guardrails not compiled; none apply");
                Default::default()
            }),
            embeddings: config.embeddings.clone(),
            cache: Some(cache.clone()),
        });
        let presence = gaia_chat::presence::Presence::new(events.clone());
        let worlds = gaia_world::Worlds::with_engine(storage.clone(), events.clone(), engine.clone());
        worlds.set_npc_memory(config.worlds.npc_memory);
        tools.set_worlds(&worlds);
        let assets = gaia_assets::Assets::new(
            engine.clone(),
            gaia_assets::AssetStore::from_config(&config.assets).unwrap_or_else(|e| {
                // The configuration was validated; a store that cannot be set up keeps files in
                // memory, said loudly, rather than stop the server.
                tracing::error!(error = %e, "the asset store cannot be used; assets are kept in memory only");
                gaia_assets::AssetStore::memory()
            }),
            config.assets.clone(),
            config.asset_signing_key().unwrap_or_else(|| {
                tracing::warn!("no secrets_key or jwt_secret: signed asset URLs end with this process");
                uuid::Uuid::new_v4().as_bytes().repeat(2)
            }),
        );
        tools.set_assets(&assets);
        {
            // Jobs left pending by a previous run (or another instance) are polled again.
            let assets = assets.clone();
            tokio::spawn(async move {
                if let Err(e) = assets.resume_jobs().await {
                    tracing::warn!(error = %e, "cannot resume pending 3D jobs");
                }
            });
        }
        AppState {
            inner: Arc::new(Inner {
                quotas,
                metrics,
                engine,
                presence,
                worlds,
                assets,
                provider_changes: Default::default(),
                password_gate: gaia_core::auth::PasswordGate::new(config.auth.hash_concurrency, config.auth.hash_queue),
                live_connections: Default::default(),
                play_hub: Default::default(),
                agent_runs: Default::default(),
                mcp_processes,
                draining: tokio::sync::watch::Sender::new(false),
                readiness: Default::default(),
                rbac,
                tools,
                config,
                cache,
                auth,
                providers,
                events,
                usage,
                responses,
                storage,
                active_streams: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Shares what must be shared between instances through Redis at `url` (keys prefixed with
    /// `prefix`): rate-limit counters, access-control change announcements, and the event bus (unless
    /// it already goes over NATS). [`AppState::from_config`] calls it when `redis_url` is set; the
    /// cache is chosen when the state is built.
    pub async fn connect_redis(&self, url: &str, prefix: &str) -> Result<(), CoreError> {
        let limiter = gaia_core::ratelimit::RateLimiter::redis(url, prefix).await?;
        self.inner.quotas.share_through(limiter);
        // Access-control changes are announced to the other instances at once.
        self.inner.rbac.connect_redis(url).await.map_err(|e| CoreError::Config(e.to_string()))?;
        if self.inner.events.kind() == "memory" {
            let channel = format!("{prefix}{}", self.inner.config.events.channel);
            self.inner.events.connect_redis(url, &channel).await?;
        }
        Ok(())
    }

    /// Carries the event bus over NATS at `url` (feature `nats`).
    pub async fn connect_nats(&self, url: &str) -> Result<(), CoreError> {
        #[cfg(feature = "nats")]
        {
            self.inner.events.connect_nats(url, &self.inner.config.events.channel).await?;
            Ok(())
        }
        #[cfg(not(feature = "nats"))]
        {
            let _ = url;
            Err(CoreError::Config(
                "nats_url is set, but this build has no NATS support (build with the `nats` feature)".into(),
            ))
        }
    }

    /// Publishes [`gaia_core::events::Event::ProviderHealthChanged`] when a provider goes up or down
    /// (checked every second, from the health the registry keeps).
    pub fn watch_provider_health(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                for (name, snap) in inner.providers.health_snapshots() {
                    let up = snap.up;
                    if last.insert(name.clone(), up).is_some_and(|was| was != up) {
                        inner.events.publish(gaia_core::events::Event::ProviderHealthChanged { provider: name, up });
                    }
                }
            }
        });
    }

    /// Rate limits, budgets and prices.
    pub fn quotas(&self) -> &gaia_core::quota::Quotas {
        &self.inner.quotas
    }

    /// The bound on password hashing (sign-in and registration); its gauges tell how many hashes run.
    pub fn password_gate(&self) -> &gaia_core::auth::PasswordGate {
        &self.inner.password_gate
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// The database.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }
    /// The cache.
    pub fn cache(&self) -> &SharedCache {
        &self.inner.cache
    }
    /// The authenticator.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }
    /// The provider registry.
    pub fn providers(&self) -> &ProviderRegistry {
        &self.inner.providers
    }
    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }
    /// The usage recorder (writes usage records in the background).
    pub fn usage(&self) -> &UsageRecorder {
        &self.inner.usage
    }
    /// Game worlds (experiences read from the knowledge base's vault, their live state, commands).
    pub fn worlds(&self) -> &gaia_world::Worlds {
        &self.inner.worlds
    }

    /// Live presence in conversations (who has one open, who is typing), across instances.
    pub fn presence(&self) -> &gaia_chat::presence::Presence {
        &self.inner.presence
    }

    /// Generated assets: images, speech, transcriptions, 3D models.
    pub fn assets(&self) -> &gaia_assets::Assets {
        &self.inner.assets
    }

    /// The conversation engine: every chat turn and model call goes through it.
    pub fn engine(&self) -> &gaia_chat::Engine {
        &self.inner.engine
    }

    /// This instance's metrics (Prometheus registry, performance figures, recent errors).
    pub fn metrics(&self) -> &crate::observe::Metrics {
        &self.inner.metrics
    }
    /// The runtime provider changes this instance's registry is in step with (shared by the admin
    /// routes and the background [`crate::provider_store::ProviderSync`]).
    pub fn applied_provider_changes(&self) -> &crate::provider_store::AppliedChanges {
        &self.inner.provider_changes
    }
    /// The live (WebSocket) connections open on this instance, per user.
    pub(crate) fn play_hub(&self) -> Arc<crate::play::PlayHub> {
        self.inner
            .play_hub
            .get_or_init(|| {
                let grace = std::time::Duration::from_secs(self.config().worlds.resume_grace_secs);
                crate::play::PlayHub::start(self.events(), grace)
            })
            .clone()
    }

    /// Takes this instance out of rotation: `GET /health/ready` answers 503 from now on, while
    /// requests are still served. [`crate::serve`] calls it as soon as its shutdown signal comes,
    /// `server.drain_secs` before it closes the listener.
    pub fn stop_taking_traffic(&self) {
        self.inner.readiness.stop();
    }

    /// Whether this instance takes traffic: not stopping, database, cache and event broker up,
    /// migrations applied (`GET /health/ready`; one check a second at most).
    pub async fn ready(&self) -> bool {
        self.inner.readiness.ready(self).await
    }

    /// Tells this instance's live sockets that it is stopping: they close with a hint to reconnect
    /// (to another instance, or to this one once it is back). [`crate::serve`] calls it when its
    /// shutdown signal comes.
    pub fn start_draining(&self) {
        self.inner.draining.send_replace(true);
    }

    /// Becomes `true` when the instance starts stopping ([`AppState::start_draining`]).
    pub(crate) fn draining(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.draining.subscribe()
    }

    pub(crate) fn live_connections(&self) -> &Arc<crate::per_user::PerUser> {
        &self.inner.live_connections
    }
    /// The agent and orchestrated runs going on on this instance, per user.
    pub(crate) fn agent_runs(&self) -> &Arc<crate::per_user::PerUser> {
        &self.inner.agent_runs
    }
    /// Slots for the stdio MCP server processes that cold agent requests start.
    pub(crate) fn mcp_processes(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.mcp_processes
    }
    /// How many live (WebSocket) connections `user_id` has open on this instance.
    pub fn live_connections_of(&self, user_id: &str) -> usize {
        self.inner.live_connections.count(user_id)
    }
    /// The response cache, unless disabled (`cache.response_ttl_secs = 0`).
    pub fn responses(&self) -> Option<&ResponseCache> {
        self.inner.responses.as_ref()
    }
    /// The access-control engine, its policy loaded.
    pub async fn rbac(&self) -> &gaia_rbac::Rbac {
        self.inner.rbac.loaded().await
    }

    /// The knowledge base as `p` may see it: documents they may not read are left out everywhere.
    pub async fn kb_for(&self, p: &gaia_core::auth::Principal) -> Option<gaia_kb::Kb> {
        self.inner.tools.kb_for(p).await
    }

    /// The tool sources of chat turns and agents.
    pub fn tools(&self) -> &crate::tools::ServerTools {
        &self.inner.tools
    }

    /// The knowledge base, when one is configured.
    pub fn kb(&self) -> Option<&gaia_kb::Kb> {
        self.inner.tools.kb()
    }
    /// Attaches a knowledge base (once; later calls are ignored and return `false`). Its syncs are
    /// announced on the event bus ([`gaia_core::events::Event::KbSynced`]).
    pub fn set_kb(&self, kb: gaia_kb::Kb) -> bool {
        let mut syncs = kb.subscribe_syncs();
        let name = kb.config().name.clone();
        if !self.inner.tools.set_kb(kb.clone()) {
            return false;
        }
        self.enable_semantic(&kb);
        let events = self.inner.events.clone();
        // Weak: the worlds hold the engine, which holds the knowledge base whose syncs this task waits
        // for; a strong reference would keep them all (and the database pool) alive for ever.
        let worlds = self.inner.worlds.downgrade();
        let root = self.kb().map(|kb| kb.config().root.clone());
        tokio::spawn(async move {
            // The experiences are read from the vault now, and again after each sync.
            let reload = |root: Option<std::path::PathBuf>, worlds: &gaia_world::WeakWorlds| {
                let worlds = worlds.upgrade();
                async move {
                    if let Some(w) = worlds {
                        load_worlds(w, root).await;
                    }
                }
            };
            reload(root.clone(), &worlds).await;
            loop {
                match syncs.recv().await {
                    Ok(r) => {
                        if !r.changed.is_empty() || !r.deleted.is_empty() {
                            reload(root.clone(), &worlds).await;
                        }
                        events.publish(gaia_core::events::Event::KbSynced {
                            kb: name.clone(),
                            commit: r.commit,
                            changed: r.changed.len(),
                            deleted: r.deleted.len(),
                        });
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        true
    }
    /// Turns on the knowledge base's semantic search when `[embeddings]` names a model (or allows the
    /// test fallback): its notes are embedded through the engine (metered as `kb_embeddings`), their
    /// vectors kept in the database.
    fn enable_semantic(&self, kb: &gaia_kb::Kb) {
        let cfg = &self.config().embeddings;
        let store: Arc<dyn gaia_kb::semantic::VectorStore> = Arc::new(self.storage().clone());
        match self.engine().embedder(gaia_chat::Admitted::internal("kb"), "kb_embeddings") {
            Some(e) => kb.enable_semantic(Arc::new(e), Some(store)),
            None if cfg.test_fallback => {
                let dims = cfg.dimensions.unwrap_or(256) as usize;
                kb.enable_semantic(Arc::new(gaia_kb::semantic::HashEmbedder::new(dims)), Some(store))
            }
            None => {}
        }
    }

    /// Reads the experiences from the knowledge base's vault again (done at start and after each sync).
    pub async fn reload_worlds(&self) {
        load_worlds(self.inner.worlds.clone(), self.kb().map(|kb| kb.config().root.clone())).await;
    }

    /// Number of chat streams currently being served.
    pub fn active_streams(&self) -> usize {
        self.inner.active_streams.load(Ordering::SeqCst)
    }
    /// Counts one live stream until the ticket is dropped.
    pub(crate) fn stream_ticket(&self) -> StreamTicket {
        self.inner.active_streams.fetch_add(1, Ordering::SeqCst);
        StreamTicket(self.inner.active_streams.clone())
    }
}

/// Loads the experiences of the vault at `root` into `worlds` (off the async workers).
async fn load_worlds(worlds: gaia_world::Worlds, root: Option<std::path::PathBuf>) {
    let Some(root) = root else { return };
    let load = worlds.begin_load();
    match tokio::task::spawn_blocking(move || gaia_world::content::load_catalog(&root)).await {
        Ok(catalog) => worlds.set_catalog_from(load, catalog),
        Err(e) => tracing::warn!(error = %e, "cannot read the experiences"),
    }
}

/// How often recorded prices are re-read (changes made on this instance apply at once).
const PRICE_REFRESH: Duration = Duration::from_secs(10);

/// A live stream, counted in [`AppState::active_streams`] until dropped.
pub(crate) struct StreamTicket(Arc<AtomicUsize>);

impl Drop for StreamTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
