//! One provider name over several deployments (endpoints or API keys) of the same models: calls are
//! spread round-robin, and a deployment that fails with a retryable error (or refuses its key) hands
//! the call to the next. A deployment that failed is skipped for a cool-down
//! ([`BalancedProvider::with_cooldown`], 10 s by default, doubling while it keeps failing), tried only
//! when every other deployment fails too, so a dead endpoint does not slow every other call down.

use crate::embeddings::{EmbeddingRequest, Embeddings};
use crate::error::ProviderError;
use crate::media::{
    GeneratedImage, ImageRequest, Model3dRequest, Model3dTask, SpeechRequest, Transcription, TranscriptionRequest,
};
use crate::provider::Provider;
use crate::types::{ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use gaia_core::types::ModelInfo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default time a failed deployment is skipped.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);

/// The longest time a failing deployment is skipped.
const MAX_COOLDOWN: Duration = Duration::from_secs(300);

/// Whether a deployment has been failing, and until when it is skipped.
#[derive(Debug, Clone, Copy, Default)]
struct MemberState {
    failures: u32,
    skip_until: Option<Instant>,
}

/// Round-robin over deployments, with failover between them.
pub struct BalancedProvider {
    name: String,
    members: Vec<Arc<dyn Provider>>,
    next: AtomicUsize,
    cooldown: Duration,
    states: Mutex<Vec<MemberState>>,
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
        let states = Mutex::new(vec![MemberState::default(); members.len()]);
        Ok(BalancedProvider {
            name: name.into(),
            members,
            next: AtomicUsize::new(0),
            cooldown: DEFAULT_COOLDOWN,
            states,
        })
    }

    /// Sets how long a deployment that failed is skipped (doubling, up to 5 minutes, while it keeps
    /// failing).
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    fn states(&self) -> std::sync::MutexGuard<'_, Vec<MemberState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Indices of the members in the order this call should try them: round-robin over the healthy
    /// ones, then those cooling down after a failure (soonest back first).
    fn order(&self) -> Vec<usize> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let states = self.states();
        let (mut ready, mut cooling): (Vec<usize>, Vec<usize>) =
            (0..self.members.len()).partition(|&i| states[i].skip_until.is_none_or(|t| t <= now));
        if !ready.is_empty() {
            let start = turn % ready.len();
            ready.rotate_left(start);
        }
        cooling.sort_by_key(|&i| states[i].skip_until);
        ready.append(&mut cooling);
        ready
    }

    fn succeeded(&self, i: usize) {
        self.states()[i] = MemberState::default();
    }

    fn failed(&self, i: usize) {
        let mut states = self.states();
        let s = &mut states[i];
        s.failures = s.failures.saturating_add(1);
        let wait = self.cooldown.saturating_mul(1u32 << (s.failures - 1).min(10)).min(MAX_COOLDOWN.max(self.cooldown));
        s.skip_until = Some(Instant::now() + wait);
    }

    /// How many deployments are currently skipped after failures.
    pub fn cooling_down(&self) -> usize {
        let now = Instant::now();
        self.states().iter().filter(|s| s.skip_until.is_some_and(|t| t > now)).count()
    }
}

impl BalancedProvider {
    /// Calls the deployments in [`BalancedProvider::order`] until one answers, moving on after a
    /// failure another deployment may not have.
    async fn balanced<'a, T, F, Fut>(&'a self, call: F) -> Result<T, ProviderError>
    where
        F: Fn(&'a Arc<dyn Provider>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>> + 'a,
    {
        let mut last = None;
        for i in self.order() {
            match call(&self.members[i]).await {
                Ok(r) => {
                    self.succeeded(i);
                    return Ok(r);
                }
                Err(e) if try_next(&e) => {
                    self.failed(i);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::NotConfigured(self.name.clone())))
    }

    /// Asks each deployment in turn about a task one of them started (each knows only its own): the
    /// first that knows it answers. "Not found" is the answer only when every deployment gives it;
    /// any other failure (the owner unreachable, say) wins over the others' "not found".
    async fn owner_of_task<'a, T, F, Fut>(&'a self, call: F) -> Result<T, ProviderError>
    where
        F: Fn(&'a Arc<dyn Provider>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>> + 'a,
    {
        let (mut failure, mut not_found) = (None, None);
        for m in &self.members {
            match call(m).await {
                Ok(r) => return Ok(r),
                Err(e @ ProviderError::Upstream { status: 404, .. }) => not_found = Some(e),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.or(not_found).unwrap_or_else(|| ProviderError::NotConfigured(self.name.clone())))
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
        for i in self.order() {
            match self.members[i].list_models().await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::NotConfigured(self.name.clone())))
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.balanced(|p| async move { p.chat(req).await }).await
    }

    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.balanced(|p| async move { p.chat_stream(req).await }).await
    }

    async fn moderate(&self, model: &str, input: &str) -> Result<crate::types::Moderation, ProviderError> {
        self.balanced(|p| async move { p.moderate(model, input).await }).await
    }

    async fn generate_images(&self, req: &ImageRequest) -> Result<Vec<GeneratedImage>, ProviderError> {
        self.balanced(|p| async move { p.generate_images(req).await }).await
    }

    async fn speech(&self, req: &SpeechRequest) -> Result<bytes::Bytes, ProviderError> {
        self.balanced(|p| async move { p.speech(req).await }).await
    }

    async fn transcribe(&self, req: &TranscriptionRequest) -> Result<Transcription, ProviderError> {
        self.balanced(|p| async move { p.transcribe(req).await }).await
    }

    async fn embed(&self, req: &EmbeddingRequest) -> Result<Embeddings, ProviderError> {
        self.balanced(|p| async move { p.embed(req).await }).await
    }

    async fn start_model_3d(&self, req: &Model3dRequest) -> Result<String, ProviderError> {
        self.balanced(|p| async move { p.start_model_3d(req).await }).await
    }

    async fn poll_model_3d(&self, task: &str) -> Result<Model3dTask, ProviderError> {
        self.owner_of_task(|p| async move { p.poll_model_3d(task).await }).await
    }

    async fn cancel_model_3d(&self, task: &str) -> Result<(), ProviderError> {
        self.owner_of_task(|p| async move { p.cancel_model_3d(task).await }).await
    }

    async fn download(&self, url: &str, max: usize) -> Result<bytes::Bytes, ProviderError> {
        self.balanced(|p| async move { p.download(url, max).await }).await
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
