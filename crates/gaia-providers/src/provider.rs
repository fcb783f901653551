//! The [`Provider`] trait every LLM client implements.

use crate::embeddings::{EmbeddingRequest, Embeddings};
use crate::error::ProviderError;
use crate::media::{
    unsupported, GeneratedImage, ImageRequest, Model3dRequest, Model3dTask, SpeechRequest, Transcription,
    TranscriptionRequest,
};
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

    /// Images for `req` (OpenAI's `/images/generations`); providers without image models refuse.
    async fn generate_images(&self, req: &ImageRequest) -> Result<Vec<GeneratedImage>, ProviderError> {
        let _ = req;
        Err(unsupported(self.name(), "images"))
    }
    /// `req.input` spoken (OpenAI's `/audio/speech`): the encoded audio.
    async fn speech(&self, req: &SpeechRequest) -> Result<bytes::Bytes, ProviderError> {
        let _ = req;
        Err(unsupported(self.name(), "speech"))
    }
    /// The text of `req.audio` (OpenAI's `/audio/transcriptions`).
    async fn transcribe(&self, req: &TranscriptionRequest) -> Result<Transcription, ProviderError> {
        let _ = req;
        Err(unsupported(self.name(), "transcriptions"))
    }
    /// Starts a text-to-3D task (Meshy's `POST /openapi/v2/text-to-3d`); its id at the provider.
    async fn start_model_3d(&self, req: &Model3dRequest) -> Result<String, ProviderError> {
        let _ = req;
        Err(unsupported(self.name(), "3D models"))
    }
    /// Where a 3D task stands.
    async fn poll_model_3d(&self, task: &str) -> Result<Model3dTask, ProviderError> {
        let _ = task;
        Err(unsupported(self.name(), "3D models"))
    }
    /// Cancels (deletes) a 3D task at the provider.
    async fn cancel_model_3d(&self, task: &str) -> Result<(), ProviderError> {
        let _ = task;
        Err(unsupported(self.name(), "3D models"))
    }
    /// The vectors of `req.input` (OpenAI's `/embeddings`), one per input in order, all of one size.
    async fn embed(&self, req: &EmbeddingRequest) -> Result<Embeddings, ProviderError> {
        let _ = req;
        Err(unsupported(self.name(), "embeddings"))
    }
    /// Downloads a file the provider produced (a 3D task's model or thumbnail), at most `max` bytes.
    async fn download(&self, url: &str, max: usize) -> Result<bytes::Bytes, ProviderError> {
        let _ = (url, max);
        Err(unsupported(self.name(), "downloads"))
    }
}
