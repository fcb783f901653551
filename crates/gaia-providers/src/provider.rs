//! The [`Provider`] trait every LLM client implements.

use crate::error::ProviderError;
use crate::types::{ChatRequest, ChatResponse, ChatStream, Moderation, ProviderHealth};
use async_trait::async_trait;
use gaia_core::types::ModelInfo;

/// An LLM provider: a vendor API or any server speaking one of their formats.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name it is registered under (`openai`, `anthropic`, `ollama`, …).
    fn name(&self) -> &str;
    /// Models it offers (configured, or discovered from the provider).
    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError>;
    /// A complete answer.
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError>;
    /// A streamed answer. Errors before the first event are returned here; later ones end the stream.
    async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, ProviderError>;
    /// A quick probe of reachability and credentials.
    async fn health(&self) -> ProviderHealth;
    /// Moderation of `input` by `model` (OpenAI's `/v1/moderations`); providers without one refuse.
    async fn moderate(&self, model: &str, input: &str) -> Result<Moderation, ProviderError> {
        let _ = (model, input);
        Err(ProviderError::InvalidRequest(format!("provider `{}` offers no moderation", self.name())))
    }
}
