//! Stream a chat answer through the provider registry.
//!
//! With no arguments it starts Gaia's built-in mock upstream and talks to it, so it runs anywhere:
//!
//! ```sh
//! cargo run -p gaia-examples --example streaming_chat
//! ```
//!
//! To use a real vendor, set `OPENAI_API_KEY` (and optionally `OPENAI_BASE_URL` for Ollama or vLLM)
//! or `ANTHROPIC_API_KEY`, and pass a model: `... --example streaming_chat -- gpt-4o-mini`.

use futures::StreamExt;
use gaia_core::types::ChatMessage;
use gaia_core::Config;
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{ChatEvent, ChatRequest, OpenAiConfig, OpenAiProvider, ProviderRegistry};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let model = std::env::args().nth(1);
    let config = Config::load(None)?;
    let registry = ProviderRegistry::from_config(&config);
    // Keep the mock alive for the whole run when we use it.
    let _mock = if registry.is_empty() {
        let mock = MockUpstream::start(
            "127.0.0.1:0".parse()?,
            MockConfig { chunks: 8, chunk_delay: Duration::from_millis(30), ..Default::default() },
        )
        .await?;
        eprintln!("no provider configured: using the mock upstream at {}", mock.base_url());
        registry.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None))));
        Some(mock)
    } else {
        None
    };

    let (provider, model) = registry.resolve(model.as_deref().unwrap_or("mock-gpt")).await?;
    let request = ChatRequest::new(
        model,
        vec![
            ChatMessage::system("You are Dr. Mara Quill, a calm epidemiologist in a zombie-survival game."),
            ChatMessage::user("The fog is rolling in. Where should I go?"),
        ],
    );
    let mut stream = provider.chat_stream(&request).await?;
    let mut out = std::io::stdout();
    while let Some(event) = stream.next().await {
        match event? {
            ChatEvent::TextDelta(text) => {
                write!(out, "{text}")?;
                out.flush()?;
            }
            ChatEvent::Usage(u) => eprintln!("\n[usage: {} in, {} out]", u.input_tokens, u.output_tokens),
            _ => {}
        }
    }
    writeln!(out)?;
    Ok(())
}
