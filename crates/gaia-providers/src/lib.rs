//! # gaia-providers
//!
//! LLM providers behind one [`Provider`] trait: OpenAI Chat Completions (and any OpenAI-compatible
//! server: Ollama, vLLM…) and Anthropic Messages, with streaming parsed into typed [`ChatEvent`]s,
//! vendor errors mapped to [`ProviderError`], a [`ProviderRegistry`] that routes model names to
//! providers, and a [`mock`] upstream that speaks both wire formats for tests and benchmarks.
//!
//! ```
//! use futures::StreamExt;
//! use gaia_core::types::ChatMessage;
//! use gaia_providers::mock::{MockConfig, MockUpstream};
//! use gaia_providers::{ChatEvent, ChatRequest, OpenAiConfig, OpenAiProvider, Provider, ProviderRegistry};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
//! let registry = ProviderRegistry::new();
//! registry.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None))));
//!
//! let (provider, model) = registry.resolve("openai/mock-gpt").await.unwrap();
//! let req = ChatRequest::new(model, vec![ChatMessage::user("Is the fog coming?")]);
//! let mut stream = provider.chat_stream(&req).await.unwrap();
//! let mut text = String::new();
//! while let Some(event) = stream.next().await {
//!     if let ChatEvent::TextDelta(t) = event.unwrap() {
//!         text.push_str(&t);
//!     }
//! }
//! assert_eq!(text, "Mock reply to: Is the fog coming?");
//! # });
//! ```

#![warn(missing_docs)]

pub mod anthropic;
pub mod balanced;
pub mod compat;
pub mod embeddings;
pub mod error;
pub mod health;
mod http;
mod lanes;
pub mod media;
pub mod meshy;
pub mod mock;
pub mod openai;
pub mod provider;
pub mod registry;
pub mod response_cache;
pub mod routing;
pub mod types;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use embeddings::{EmbeddingRequest, Embeddings};
pub use error::ProviderError;
pub use http::Origin;
pub use meshy::{MeshyConfig, MeshyProvider};
pub use openai::{OpenAiConfig, OpenAiProvider};
pub use provider::Provider;
pub use registry::ProviderRegistry;
pub use routing::{Candidate, Hint, RetryPolicy, RouteFailure, Routed};
pub use types::{
    collect_stream, merge_usage, ChatEvent, ChatRequest, ChatResponse, ChatStream, Moderation, ProviderHealth,
    StreamAccumulator,
};
