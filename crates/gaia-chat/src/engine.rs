//! The engine: what every chat turn and model call needs, built once from the application's parts.

use gaia_core::auth::Principal;
use gaia_core::config::{AgentLimits, ChatConfig};
use gaia_core::events::EventBus;
use gaia_core::quota::Quotas;
use gaia_core::storage::Storage;
use gaia_core::usage::UsageRecorder;
use gaia_providers::response_cache::ResponseCache;
use gaia_providers::ProviderRegistry;
use std::sync::Arc;
use std::time::Duration;

/// One finished model call, as told to a [`CallObserver`].
#[derive(Debug, Clone, Copy)]
pub struct CallReport<'a> {
    /// Provider that served it (`cache` for response-cache hits, `-` when routing failed first).
    pub provider: &'a str,
    /// Model id at the provider.
    pub model: &'a str,
    /// Which entry point (`chat`, `openai`, `anthropic`, `mcp_agent`, …).
    pub endpoint: &'a str,
    /// HTTP status answered (499: the client went away).
    pub status: u16,
    /// Total time of the call.
    pub latency: Duration,
    /// Time to the first streamed token.
    pub ttft: Option<Duration>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// The error, when it failed.
    pub error: Option<&'a str>,
}

/// Where the engine tells what it did, for metrics (the server's Prometheus registry). Every method
/// has an empty default; keep them quick (they run on the request path).
pub trait CallObserver: Send + Sync {
    /// A model call ended (answered, failed or abandoned).
    fn model_call(&self, _call: &CallReport<'_>) {}
    /// A request was refused by a rate limit of `scope` (`key` or `user`).
    fn rate_limited(&self, _scope: &str) {}
    /// A request was refused by a hard budget of `scope` (`user`, `team` or `key`).
    fn budget_refused(&self, _scope: &str) {}
    /// The response cache was looked up.
    fn response_cache(&self, _hit: bool) {}
    /// A guardrail rule tripped (`stage`: `input` or `output`; `action`: `refuse`, `redact` or `flag`).
    fn guardrail_trip(&self, _rule: &str, _stage: &str, _action: &str) {}
}

/// Where the tools of chat turns come from: the application's tool sources, each with a name (`kb`
/// for the knowledge base, an MCP server's name, `world` for the game world). A persona names the
/// sources it may use ([`gaia_core::storage::Persona::tool_sources`]); each turn gets those of them
/// its caller may use.
#[async_trait::async_trait]
pub trait ToolCatalog: Send + Sync {
    /// The tools of the sources named in `sources` as `principal` may use them (the knowledge base
    /// restricted to what they may read); unknown names are left out.
    async fn toolbox(&self, principal: &Principal, sources: &[String]) -> gaia_mcp::Toolbox;
}

/// What the engine is built from: the application's shared parts (each cheap to clone).
pub struct EngineParts {
    /// Conversations, messages, personas, attachments, settings.
    pub storage: Storage,
    /// The providers, with routing, fallbacks and prices.
    pub providers: ProviderRegistry,
    /// Where messages and conversations are announced.
    pub events: EventBus,
    /// Rate limits and budgets.
    pub quotas: Quotas,
    /// Access control (the permission to use models; teams for budgets).
    pub rbac: gaia_rbac::Rbac,
    /// Where each model call's usage record goes.
    pub usage: UsageRecorder,
    /// The response cache of the compatible endpoints, if on.
    pub responses: Option<ResponseCache>,
    /// Metrics.
    pub observer: Option<Arc<dyn CallObserver>>,
    /// `[chat]`.
    pub chat: ChatConfig,
    /// The tools chat turns may offer the model (none without a catalog).
    pub tools: Option<Arc<dyn ToolCatalog>>,
    /// The limits of a turn's tool loop (tool calls, model round trips, deadline): `[agents]`'s.
    pub tool_limits: AgentLimits,
    /// The checks on what goes to models and comes back (`[guardrails]`; none by default).
    pub guardrails: crate::guardrails::Guardrails,
    /// The embedding model and its cache (`[embeddings]`).
    pub embeddings: gaia_core::config::EmbeddingsConfig,
    /// The cache embeddings are kept in by content hash (none: not cached).
    pub cache: Option<gaia_core::cache::SharedCache>,
}

/// The conversation engine. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineParts>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("providers", &self.inner.providers).finish()
    }
}

impl Engine {
    /// The engine over `parts`.
    pub fn new(parts: EngineParts) -> Engine {
        Engine { inner: Arc::new(parts) }
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The providers.
    pub fn providers(&self) -> &ProviderRegistry {
        &self.inner.providers
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Rate limits and budgets.
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// The access-control engine, loaded (only built-in roles apply when the policy cannot be read).
    pub async fn rbac(&self) -> &gaia_rbac::Rbac {
        self.inner.rbac.loaded().await
    }

    pub(crate) fn observe(&self, f: impl FnOnce(&dyn CallObserver)) {
        if let Some(o) = &self.inner.observer {
            f(o.as_ref());
        }
    }
}
