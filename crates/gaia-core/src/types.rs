//! Shared chat types: messages, roles, tool calls, usage and model descriptions.
//!
//! These are provider-neutral: `gaia-providers` translates them to and from each vendor's wire format,
//! and `gaia-server` translates them to and from its HTTP APIs.

use serde::{Deserialize, Serialize};

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The human player or application.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, fed back to the model.
    Tool,
}

impl Role {
    /// The lowercase wire name (`system`, `user`, `assistant`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id assigned by the provider (echoed back in the tool result).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as a JSON text, exactly as the model produced them.
    pub arguments: String,
}

/// A tool the model may call, described by a JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments object (shared: a toolbox offers the same schemas on every
    /// turn without copying them).
    pub parameters: std::sync::Arc<serde_json::Value>,
}

/// One message of a conversation, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author of the message.
    pub role: Role,
    /// Text content (may be empty for an assistant message that only calls tools).
    pub content: String,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the id of the call this is the result of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images given with a user message (sent to vision models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImagePart>,
    /// The prompt up to and including this message is a stable prefix the provider may cache
    /// (Anthropic's `cache_control` on the message's last block; OpenAI caches on its own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
}

/// An image in a message: inline bytes (base64) or a URL the provider fetches itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImagePart {
    /// The image's bytes, base64-encoded (standard alphabet, padded).
    Base64 {
        /// MIME type: `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
        media_type: String,
        /// Base64 data.
        data: String,
    },
    /// An `http(s)` URL.
    Url {
        /// The address.
        url: String,
    },
}

impl ImagePart {
    /// An inline image from its raw bytes.
    pub fn from_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        ImagePart::Base64 {
            media_type: media_type.into(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The image as a URL: a `data:` URL for inline bytes (OpenAI's `image_url` form).
    pub fn to_url(&self) -> String {
        match self {
            ImagePart::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            ImagePart::Url { url } => url.clone(),
        }
    }

    /// Parses OpenAI's `image_url.url`: a `data:<type>;base64,<data>` URL becomes inline bytes,
    /// anything else stays a URL.
    pub fn from_url(url: &str) -> Self {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if let Some(media_type) = meta.strip_suffix(";base64") {
                    return ImagePart::Base64 { media_type: media_type.to_string(), data: data.to_string() };
                }
            }
        }
        ImagePart::Url { url: url.to_string() }
    }
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
            cache: false,
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    /// A user message with images.
    pub fn user_with_images(content: impl Into<String>, images: Vec<ImagePart>) -> Self {
        ChatMessage { images, ..Self::user(content) }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
    /// A tool result for the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
            images: Vec::new(),
            cache: false,
        }
    }
}

/// Token usage of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt, all of them (OpenAI `prompt_tokens`; Anthropic `input_tokens` plus the
    /// tokens read from and written to its prompt cache).
    pub input_tokens: u64,
    /// Tokens generated (OpenAI `completion_tokens`, Anthropic `output_tokens`).
    pub output_tokens: u64,
    /// Of `input_tokens`, those the provider read from its prompt cache (OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`), priced at the
    /// cached input rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_input_tokens: u64,
    /// Of `input_tokens`, those the provider wrote to its prompt cache (Anthropic
    /// `cache_creation_input_tokens`), priced at the cache-write rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_input_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// `input` prompt tokens and `output` generated ones, none from a cache.
    pub fn new(input: u64, output: u64) -> Usage {
        Usage { input_tokens: input, output_tokens: output, cached_input_tokens: 0, cache_write_input_tokens: 0 }
    }

    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
        self.cached_input_tokens += rhs.cached_input_tokens;
        self.cache_write_input_tokens += rhs.cache_write_input_tokens;
    }
}

/// Why the model stopped generating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// Natural end of the answer, or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// The provider filtered the content.
    ContentFilter,
    /// One of the request's stop sequences was generated (this one). Providers that do not say which
    /// (OpenAI) report [`FinishReason::Stop`] instead.
    StopSequence(String),
    /// Anything else the provider reported, verbatim.
    Other(String),
}

impl FinishReason {
    /// The OpenAI `finish_reason` spelling.
    pub fn as_openai(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::StopSequence(_) => "stop",
            FinishReason::Other(s) => s,
        }
    }
}

/// A model offered by a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The provider's own model id (e.g. `gpt-4o-mini`).
    pub id: String,
    /// Name of the provider that serves it (e.g. `openai`).
    pub provider: String,
    /// Context window in tokens, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Known capabilities (`tools`, `vision`, `streaming`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl ModelInfo {
    /// A model with only an id and a provider.
    pub fn new(id: impl Into<String>, provider: impl Into<String>) -> Self {
        ModelInfo { id: id.into(), provider: provider.into(), context_window: None, capabilities: Vec::new() }
    }
}

/// Prices of a model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Dollars per million input (prompt) tokens.
    pub input: f64,
    /// Dollars per million output (generated) tokens.
    pub output: f64,
    /// Dollars per million input tokens read from the provider's prompt cache (`None`: the input
    /// price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Dollars per million input tokens written to the provider's prompt cache (`None`: the input
    /// price; Anthropic charges 1.25 times the input price for its five-minute cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input: Option<f64>,
}

impl ModelPrice {
    /// `input` and `output` dollars per million tokens, cached input at the input price.
    pub const fn new(input: f64, output: f64) -> ModelPrice {
        ModelPrice { input, output, cached_input: None, cache_write_input: None }
    }

    /// Cost of `usage` in dollars: input tokens read from the prompt cache at the cached rate, those
    /// written to it at the cache-write rate, the other input tokens at the input rate.
    pub fn cost(&self, usage: Usage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_input_tokens.min(usage.input_tokens - cached);
        let fresh = usage.input_tokens - cached - written;
        let cached_rate = self.cached_input.unwrap_or(self.input);
        let write_rate = self.cache_write_input.unwrap_or(self.input);
        (fresh as f64 * self.input
            + cached as f64 * cached_rate
            + written as f64 * write_rate
            + usage.output_tokens as f64 * self.output)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips() {
        for r in [Role::System, Role::User, Role::Assistant, Role::Tool] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
        }
        assert_eq!(Role::parse("wizard"), None);
    }

    #[test]
    fn prices_per_million() {
        let p = ModelPrice::new(0.15, 0.60);
        let c = p.cost(Usage::new(1_000_000, 500_000));
        assert!((c - 0.45).abs() < 1e-12);
        // Anthropic's rates: cache reads at a tenth of the input price, writes at 1.25 times it.
        let p = ModelPrice { cached_input: Some(0.3), cache_write_input: Some(3.75), ..ModelPrice::new(3.0, 15.0) };
        let u = Usage {
            input_tokens: 3_000_000,
            output_tokens: 0,
            cached_input_tokens: 1_000_000,
            cache_write_input_tokens: 1_000_000,
        };
        assert!((p.cost(u) - (3.0 + 0.3 + 3.75)).abs() < 1e-9, "{}", p.cost(u));
        // Without those rates, every input token is at the input price; counts above the input are capped.
        let plain = ModelPrice::new(3.0, 15.0);
        assert!((plain.cost(u) - 9.0).abs() < 1e-9);
        let over = Usage { cache_write_input_tokens: 9_000_000, ..u };
        assert!((p.cost(over) - (0.3 + 2.0 * 3.75)).abs() < 1e-9, "{}", p.cost(over));
    }

    #[test]
    fn usage_adds() {
        let mut u = Usage::new(3, 4);
        u += Usage::new(1, 1);
        assert_eq!(u.total(), 9);
    }

    #[test]
    fn message_serialises_compactly() {
        let m = ChatMessage::user("hi");
        assert_eq!(serde_json::to_value(&m).unwrap(), serde_json::json!({"role":"user","content":"hi"}));
        let t = ChatMessage::tool("call_1", "42");
        assert_eq!(t.tool_call_id.as_deref(), Some("call_1"));
    }
}
