//! One provider name over several deployments (endpoints or API keys) of the same models: calls are
//! spread round-robin, and a deployment that fails with a retryable error hands the call to the next.

use crate::error::ProviderError;
use crate::provider::Provider;
use crate::types::{ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use gaia_core::types::ModelInfo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Round-robin over deployments, with failover between them.
pub struct BalancedProvider {
    name: String,
    members: Vec<Arc<dyn Provider>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for BalancedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancedProvider").field("name", &self.name).field("deployments", &self.members.len()).finish()
    }
}

impl BalancedProvider {
    /// A provider named `name` over `members` (at least one).
    pub fn new(name: impl Into<String>, members: Vec<Arc<dyn Provider>>) -> Result<Self, ProviderError> {
        if members.is_empty() {
            return Err(ProviderError::InvalidRequest("a balanced provider needs at least one deployment".into()));
        }
        Ok(BalancedProvider { name: name.into(), members, next: AtomicUsize::new(0) })
    }

    /// Members in the order this call should try them.
    fn order(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(move |i| &self.members[(start + i) % n])
    }
}

/// Whether another deployment may succeed where this one failed.
fn try_next(e: &ProviderError) -> bool {
    e.is_retryable() || matches!(e, ProviderError::Unauthorized { .. })
}

#[async_trait]
impl Provider for BalancedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let mut last = None;
        for m in self.order() {
            match m.list_models().await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::NotConfigured(self.name.clone())))
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut last = None;
        for m in self.order() {
            match m.chat(req).await {
                Ok(r) => return Ok(r),
                Err(e) if try_next(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::NotConfigured(self.name.clone())))
    }

    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let mut last = None;
        for m in self.order() {
            match m.chat_stream(req).await {
                Ok(s) => return Ok(s),
                Err(e) if try_next(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::NotConfigured(self.name.clone())))
    }

    async fn health(&self) -> ProviderHealth {
        let probes = futures::future::join_all(self.members.iter().map(|m| m.health())).await;
        let up = probes.iter().filter(|h| h.ok).count();
        ProviderHealth {
            provider: self.name.clone(),
            ok: up > 0,
            latency_ms: probes.iter().filter(|h| h.ok).map(|h| h.latency_ms).min().unwrap_or(0),
            message: (up < probes.len()).then(|| format!("{up} of {} deployments up", probes.len())),
        }
    }
}
