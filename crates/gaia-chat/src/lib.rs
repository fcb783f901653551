//! # gaia-chat
//!
//! Gaia's conversation engine: every chat turn and every model call goes through it, whoever makes
//! it (an HTTP route, the CLI, a game server embedding Gaia as a library).
//!
//! - [`Engine::admit`]: the permission to use models, rate limits and budgets, checked before any
//!   call; what comes out, an [`Admitted`], is what every model call takes.
//! - [`Engine::call`]: the one model-call path: model resolution, the response cache when allowed,
//!   routing with retries and fallbacks, and metering of the call however it ends ([`Meter`]).
//! - [`Engine::turn`]: a conversation turn: persona, model and parameters, history fitted to the
//!   context window, images, the stored user message; [`Turn::complete`] and [`Turn::stream`] answer
//!   and store the answer with its usage.
//! - [`RunMeter`]: the metering of agent and orchestrated runs (`gaia-mcp`).
//! - [`presence`]: who has a conversation open and who is typing, across instances.
//! - [`chat_tool`]: `gaia__chat`, asking a model through the engine as a tool for MCP clients.
//!
//! ```no_run
//! use gaia_chat::{Engine, TurnInput};
//! # async fn demo(engine: Engine, principal: gaia_core::auth::Principal) -> Result<(), gaia_chat::ChatError> {
//! let admitted = engine.admit(&principal, false).await?.budgets(None).await?;
//! let input = TurnInput { message: "Where is the safe house?".into(), ..Default::default() };
//! let answer = engine.turn(&admitted, "chat", input).await?.complete().await?;
//! println!("{} (conversation {})", answer.content, answer.conversation_id);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod admission;
mod call;
mod embed;
mod engine;
mod error;
pub mod guardrails;
mod memory;
mod meter;
pub mod presence;
mod tool;
mod turn;

pub use admission::{Admitted, Estimate, Gate, MODELS_RESOURCE};
pub use call::{Answer, CacheStatus, CacheUse, CallSpec, Called};
pub use embed::{EmbedSpec, Embedded, EngineEmbedder};
pub use engine::{CallObserver, CallReport, Engine, EngineParts, ToolCatalog};
pub use error::{ChatError, Refusal, Result};
pub use meter::{Meter, RunMeter, CLIENT_CLOSED};
pub use tool::{chat_tool, CHAT_TOOL_ENDPOINT, CHAT_TOOL_SOURCE, MAX_CHAT_TOOL_TEXT};
pub use turn::{title_from, Turn, TurnAnswer, TurnEvent, TurnInput, TurnStream, MAX_IMAGES_PER_MESSAGE};
