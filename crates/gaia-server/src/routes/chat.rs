//! `POST /api/v1/chat` (OpenAI-style answers) and `POST /api/v0.3/chat` (compact answers): parse the
//! body, run a turn of the conversation engine ([`gaia_chat::Engine::turn`]), render its answer.
//! Streams are Server-Sent Events; when the client disconnects the upstream call is dropped with the
//! stream and whatever text had arrived is stored (by the engine).
//!
//! The model is offered the tools of the turn's persona (by default the knowledge base's) and uses
//! them when it decides to; `_metadata.tools_used` lists them. A stream shows each tool call between
//! the text pieces as `{"type": "tool_call", "id", "name", "arguments"}` and `{"type": "tool_result",
//! "id", "name", "ok", "duration_ms"}` events, which clients that only read text skip (they have no
//! `choices`, like the first `metadata` event).

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admission, ApiJson};
use crate::sse::{self, SseEvent as Event};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use gaia_chat::{TurnEvent, TurnInput};
use gaia_core::types::Usage;
use serde::Deserialize;
use serde_json::{json, Value};

pub use gaia_chat::MAX_IMAGES_PER_MESSAGE;

/// Body of both chat endpoints: a turn's input ([`TurnInput`]) and whether to stream the answer.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    /// The turn.
    #[serde(flatten)]
    pub input: TurnInput,
    /// Stream the answer as Server-Sent Events.
    #[serde(default)]
    pub stream: bool,
    /// The player (end user) this turn is for: their limits and budgets apply, and the turn's usage
    /// is recorded under them (read by admission, like the `x-gaia-end-user` header).
    #[serde(default)]
    pub player_id: Option<String>,
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total()})
}

fn data(v: Value) -> Event {
    Event::data(&v.to_string())
}

/// A stream's events, counted among the server's live streams while it lasts.
fn sse<S: Stream<Item = Event> + Send + 'static>(state: &AppState, s: S) -> Response {
    let ticket = state.stream_ticket();
    sse::response(s.map(move |e| {
        let _live = &ticket;
        e
    }))
}

/// `POST /api/v1/chat`.
pub async fn chat_v1(
    State(state): State<AppState>,
    Admission(admitted): Admission,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<Response> {
    let turn = state.engine().turn(&admitted, "chat", body.input).await.map_err(ApiError::from)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if !body.stream {
        let a = turn.complete().await?;
        return Ok(axum::Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": a.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a.content}, "finish_reason": a.finish_reason.as_openai()}],
            "usage": usage_json(a.usage),
            "_metadata": {"conversation_id": a.conversation_id, "message_id": a.message_id, "provider": a.provider,
                          "attempts": a.attempts, "tools_used": a.tools_used}
        }))
        .into_response());
    }
    let s = turn.stream().await?;
    let model = s.model.clone();
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let head = futures::stream::iter(vec![
        data(json!({"type": "metadata", "conversation_id": s.conversation_id, "provider": s.provider})),
        data(chunk(json!({"role": "assistant", "content": ""}), None)),
    ]);
    let body = s.events.flat_map(move |ev| {
        let out: Vec<Event> = match ev {
            TurnEvent::Delta(t) => vec![data(chunk(json!({"content": t}), None))],
            TurnEvent::Finish(f) => vec![data(chunk(json!({}), Some(f.as_openai())))],
            TurnEvent::ToolCall { id, name, arguments } => {
                vec![data(json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments}))]
            }
            TurnEvent::ToolResult { id, name, ok, duration_ms } => {
                vec![data(json!({"type": "tool_result", "id": id, "name": name, "ok": ok, "duration_ms": duration_ms}))]
            }
            TurnEvent::Error(m) => vec![data(json!({"error": {"message": m, "type": "upstream_error"}}))],
            TurnEvent::Done { usage, tools_used } => {
                let mut u = chunk(json!({}), None);
                u["choices"] = json!([]);
                u["usage"] = usage_json(usage);
                u["_metadata"] = json!({"tools_used": tools_used});
                vec![data(u), Event::data("[DONE]")]
            }
            _ => Vec::new(),
        };
        futures::stream::iter(out)
    });
    Ok(sse(&state, head.chain(body)))
}

/// `POST /api/v0.3/chat`: `{response, conversation_id}`; streamed as `metadata`, `content` and one
/// `done` event (an `error` event before `done` if the provider fails mid-stream).
pub async fn chat_v03(
    State(state): State<AppState>,
    Admission(admitted): Admission,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<Response> {
    let turn = state.engine().turn(&admitted, "chat_v0.3", body.input).await.map_err(ApiError::from)?;
    if !body.stream {
        let a = turn.complete().await?;
        return Ok(axum::Json(json!({"response": a.content, "conversation_id": a.conversation_id,
                                    "_metadata": {"tools_used": a.tools_used}}))
        .into_response());
    }
    let s = turn.stream().await?;
    let head = futures::stream::iter(vec![data(
        json!({"type": "metadata", "conversation_id": s.conversation_id, "model": s.model}),
    )]);
    let body = s.events.filter_map(move |ev| {
        let out = match ev {
            TurnEvent::Delta(t) => Some(data(json!({"type": "content", "content": t}))),
            TurnEvent::ToolCall { id, name, arguments } => {
                Some(data(json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments})))
            }
            TurnEvent::ToolResult { id, name, ok, duration_ms } => {
                Some(data(json!({"type": "tool_result", "id": id, "name": name, "ok": ok, "duration_ms": duration_ms})))
            }
            TurnEvent::Error(m) => Some(data(json!({"type": "error", "message": m}))),
            TurnEvent::Done { usage, tools_used } => {
                Some(data(json!({"type": "done", "usage": usage_json(usage), "tools_used": tools_used})))
            }
            _ => None,
        };
        futures::future::ready(out)
    });
    Ok(sse(&state, head.chain(body)))
}
