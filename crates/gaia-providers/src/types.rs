//! Provider-neutral request, response and stream event types.

use crate::error::ProviderError;
use futures::Stream;
use gaia_core::types::{ChatMessage, FinishReason, ToolCall, ToolSpec, Usage};
use serde::{Deserialize, Serialize};
use std::pin::Pin;

/// A chat request to one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model id at the provider.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Tool choice in OpenAI's form (`"auto"`, `"none"`, `"required"`, or `{"type":"function",...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// End-user id passed to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra top-level fields passed through to OpenAI-format providers (e.g. `response_format`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatRequest {
    /// A request for `model` with `messages` and default settings.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatRequest { model: model.into(), messages, ..Default::default() }
    }
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The text.
    pub content: String,
    /// Tool calls requested.
    pub tool_calls: Vec<ToolCall>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Token usage.
    pub usage: Usage,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChatEvent {
    /// The answer started.
    Start {
        /// The provider's response id.
        id: String,
        /// The model that answers.
        model: String,
    },
    /// More text.
    TextDelta(String),
    /// A fragment of a tool call; fragments with the same `index` belong together.
    ToolCallDelta {
        /// Which tool call (0-based, in order of appearance).
        index: u32,
        /// The call id (on the first fragment).
        id: Option<String>,
        /// The tool name (on the first fragment).
        name: Option<String>,
        /// A fragment of the JSON arguments.
        arguments: String,
    },
    /// Token usage (may arrive in parts; later values replace earlier non-zero ones).
    Usage(Usage),
    /// Generation finished.
    Finish(FinishReason),
}

/// A stream of answer events; ends after the provider's end-of-stream marker, or with an error.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ProviderError>> + Send>>;

/// Result of a health probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// Provider name.
    pub provider: String,
    /// Whether it answered correctly.
    pub ok: bool,
    /// How long the probe took.
    pub latency_ms: u64,
    /// Error message when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Builds a [`ChatResponse`] from stream events as they pass (tool-call fragments joined by index).
#[derive(Debug, Clone)]
pub struct StreamAccumulator {
    resp: ChatResponse,
}

impl Default for StreamAccumulator {
    fn default() -> Self {
        StreamAccumulator {
            resp: ChatResponse {
                id: String::new(),
                model: String::new(),
                content: String::new(),
                tool_calls: Vec::new(),
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
            },
        }
    }
}

impl StreamAccumulator {
    /// Takes one event into account.
    pub fn push(&mut self, ev: &ChatEvent) {
        let resp = &mut self.resp;
        match ev {
            ChatEvent::Start { id, model } => {
                resp.id = id.clone();
                resp.model = model.clone();
            }
            ChatEvent::TextDelta(t) => resp.content.push_str(t),
            ChatEvent::ToolCallDelta { index, id, name, arguments } => {
                let i = *index as usize;
                while resp.tool_calls.len() <= i {
                    resp.tool_calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let tc = &mut resp.tool_calls[i];
                if let Some(id) = id {
                    tc.id = id.clone();
                }
                if let Some(n) = name {
                    tc.name = n.clone();
                }
                tc.arguments.push_str(arguments);
            }
            ChatEvent::Usage(u) => merge_usage(&mut resp.usage, *u),
            ChatEvent::Finish(f) => resp.finish_reason = f.clone(),
        }
    }

    /// The answer so far.
    pub fn finish(self) -> ChatResponse {
        self.resp
    }
}

/// Collects a stream into a [`ChatResponse`] (tool-call fragments joined by index).
pub async fn collect_stream(mut stream: ChatStream) -> Result<ChatResponse, ProviderError> {
    use futures::StreamExt;
    let mut acc = StreamAccumulator::default();
    while let Some(ev) = stream.next().await {
        acc.push(&ev?);
    }
    Ok(acc.finish())
}

/// A moderation model's judgement of a text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderation {
    /// Whether the text was flagged.
    pub flagged: bool,
    /// The categories flagged (`violence`, `harassment`, …).
    pub categories: Vec<String>,
}

/// Merges a usage report into `acc` (non-zero fields replace).
pub fn merge_usage(acc: &mut Usage, u: Usage) {
    if u.input_tokens > 0 {
        acc.input_tokens = u.input_tokens;
        acc.cached_input_tokens = u.cached_input_tokens;
        acc.cache_write_input_tokens = u.cache_write_input_tokens;
    }
    if u.output_tokens > 0 {
        acc.output_tokens = u.output_tokens;
    }
}
