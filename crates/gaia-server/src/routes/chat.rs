//! `POST /api/v1/chat` (OpenAI-style answers) and `POST /api/v0.3/chat` (compact answers).
//!
//! One turn: check the message, resolve the model's provider, load or create the conversation, send
//! the stored history plus the new message, store the answer with its model and token usage. Streams
//! are Server-Sent Events; when the client disconnects the upstream call is dropped with the stream and
//! whatever text had arrived is stored.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::metering::Meter;
use crate::sse::{self, SseEvent as Event};
use crate::state::{AppState, StreamTicket};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use gaia_core::auth::Principal;
use gaia_core::events::Event as BusEvent;
use gaia_core::storage::Conversation;
use gaia_core::types::{ChatMessage, FinishReason, Role, Usage};
use gaia_providers::{merge_usage, Candidate, ChatEvent, ChatRequest, ChatResponse, ChatStream, Routed};
use serde::Deserialize;
use serde_json::{json, Value};

/// Body of both chat endpoints.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    /// The user's message.
    pub message: String,
    /// Model (`id` or `provider/id`); the default model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Conversation to continue; a new one when absent.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Stream the answer as Server-Sent Events.
    #[serde(default)]
    pub stream: bool,
    /// Extra system prompt for this turn.
    #[serde(default)]
    pub system: Option<String>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// A prepared turn: the conversation, the provider and the request to send it.
struct Turn {
    conversation: Conversation,
    candidates: Vec<Candidate>,
    request: ChatRequest,
}

fn title_from(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let mut t: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        t.push('…');
    }
    t
}

async fn prepare(state: &AppState, user_id: &str, body: ChatBody) -> ApiResult<Turn> {
    let message = body.message.trim();
    if message.is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    let storage = state.storage();
    let existing = match &body.conversation_id {
        Some(id) => Some(
            storage
                .get_conversation(user_id, id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("Conversation {id} not found")))?,
        ),
        None => None,
    };
    let candidates = state.providers().candidates(body.model.as_deref().unwrap_or_default()).await?;
    let model = candidates[0].1.clone();
    let conversation = match existing {
        Some(c) => c,
        None => {
            let c = storage.create_conversation(user_id, Some(&title_from(message)), Some(&model)).await?;
            state.events().publish(BusEvent::ConversationUpdated { conversation_id: c.id.clone() });
            c
        }
    };
    let mut messages = Vec::new();
    if let Some(s) = body.system.as_deref().filter(|s| !s.trim().is_empty()) {
        messages.push(ChatMessage::system(s));
    }
    for m in storage.list_messages(&conversation.id).await? {
        if matches!(m.role, Role::User | Role::Assistant | Role::System) && !m.content.is_empty() {
            messages.push(ChatMessage::new(m.role, m.content));
        }
    }
    messages.push(ChatMessage::user(message));
    let stored = storage.add_message(&conversation.id, Role::User, message, None, None).await?;
    state
        .events()
        .publish(BusEvent::MessageCreated { conversation_id: conversation.id.clone(), message_id: stored.id });
    let mut request = ChatRequest::new(model, messages);
    request.temperature = body.temperature;
    request.max_tokens = body.max_tokens;
    request.user = Some(user_id.to_string());
    Ok(Turn { conversation, candidates, request })
}

async fn store_answer(
    state: &AppState,
    conversation_id: &str,
    content: &str,
    model: &str,
    usage: Usage,
) -> Option<String> {
    match state.storage().add_message(conversation_id, Role::Assistant, content, Some(model), Some(usage)).await {
        Ok(m) => {
            state.events().publish(BusEvent::MessageCreated {
                conversation_id: conversation_id.to_string(),
                message_id: m.id.clone(),
            });
            Some(m.id)
        }
        Err(e) => {
            tracing::error!(error = %e, conversation_id, "cannot store the assistant message");
            None
        }
    }
}

/// Events of a streamed turn, independent of the wire format.
enum TurnEvent {
    Delta(String),
    Finish(FinishReason),
    Error(String),
    Done { usage: Usage },
}

/// Counts a live stream and, if the stream is dropped early (client gone), stores the partial answer.
struct StreamGuard {
    _ticket: StreamTicket,
    meter: Meter,
    state: AppState,
    conversation_id: String,
    model: String,
    content: String,
    usage: Usage,
    saved: bool,
}

impl StreamGuard {
    fn new(state: &AppState, conversation_id: String, model: String, meter: Meter) -> Self {
        StreamGuard {
            _ticket: state.stream_ticket(),
            meter,
            state: state.clone(),
            conversation_id,
            model,
            content: String::new(),
            usage: Usage::default(),
            saved: false,
        }
    }

    async fn save(&mut self) {
        self.saved = true;
        if !self.content.is_empty() {
            store_answer(&self.state, &self.conversation_id, &self.content, &self.model, self.usage).await;
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.saved && !self.content.is_empty() {
            let (state, conv, model, content, usage) = (
                self.state.clone(),
                std::mem::take(&mut self.conversation_id),
                std::mem::take(&mut self.model),
                std::mem::take(&mut self.content),
                self.usage,
            );
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    tracing::info!(conversation_id = %conv, "client left mid-stream; storing the partial answer");
                    store_answer(&state, &conv, &content, &model, usage).await;
                });
            }
        }
    }
}

fn turn_events(
    state: AppState,
    conversation_id: String,
    model: String,
    mut upstream: ChatStream,
    meter: Meter,
) -> impl Stream<Item = TurnEvent> {
    async_stream::stream! {
        let mut guard = StreamGuard::new(&state, conversation_id, model, meter);
        let mut failed = None;
        while let Some(ev) = upstream.next().await {
            match ev {
                Ok(ChatEvent::TextDelta(t)) => {
                    if t.is_empty() { continue; }
                    guard.meter.token();
                    guard.content.push_str(&t);
                    yield TurnEvent::Delta(t);
                }
                Ok(ChatEvent::Usage(u)) => {
                    merge_usage(&mut guard.usage, u);
                    guard.meter.usage(u);
                }
                Ok(ChatEvent::Finish(f)) => yield TurnEvent::Finish(f),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "upstream stream failed");
                    failed = Some((e.http_status(), e.to_string()));
                    yield TurnEvent::Error(e.to_string());
                    break;
                }
            }
        }
        drop(upstream);
        guard.save().await;
        match failed {
            Some((status, message)) => guard.meter.finish(status, Some(message)),
            None => guard.meter.finish(200, None),
        }
        yield TurnEvent::Done { usage: guard.usage };
    }
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total()})
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sse<S: Stream<Item = Event> + Send + 'static>(s: S) -> Response {
    sse::response(s)
}

fn data(v: Value) -> Event {
    Event::data(&v.to_string())
}

/// Calls the first candidate that answers (with retries and fallbacks), metering the call.
async fn complete(state: &AppState, p: &Principal, turn: &Turn, endpoint: &str) -> ApiResult<Routed<ChatResponse>> {
    let mut meter = Meter::start(state, p, endpoint);
    match state.providers().chat_routed(&turn.candidates, &turn.request).await {
        Ok(r) => {
            meter.target(r.provider.name(), &r.model);
            meter.usage(r.value.usage);
            meter.finish(200, None);
            Ok(r)
        }
        Err(f) => {
            meter.failed(&f);
            Err(f.error.into())
        }
    }
}

/// Opens a stream from the first candidate that starts one, metering a failure to open it.
async fn open_stream(
    state: &AppState,
    p: &Principal,
    turn: &Turn,
    endpoint: &str,
) -> ApiResult<(Routed<ChatStream>, Meter)> {
    let mut meter = Meter::start(state, p, endpoint);
    match state.providers().stream_routed(&turn.candidates, &turn.request).await {
        Ok(r) => {
            meter.target(r.provider.name(), &r.model);
            Ok((r, meter))
        }
        Err(f) => {
            meter.failed(&f);
            Err(f.error.into())
        }
    }
}

/// `POST /api/v1/chat`.
pub async fn chat_v1(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<Response> {
    let stream = body.stream;
    let turn = prepare(&state, &p.user_id, body).await?;
    let conv_id = turn.conversation.id.clone();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    if !stream {
        let routed = complete(&state, &p, &turn, "chat").await?;
        let (r, model) = (routed.value, routed.model);
        let message_id = store_answer(&state, &conv_id, &r.content, &model, r.usage).await;
        return Ok(axum::Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": r.content}, "finish_reason": r.finish_reason.as_openai()}],
            "usage": usage_json(r.usage),
            "_metadata": {"conversation_id": conv_id, "message_id": message_id, "provider": routed.provider.name(), "attempts": routed.attempts}
        }))
        .into_response());
    }
    let (routed, meter) = open_stream(&state, &p, &turn, "chat").await?;
    let (provider, model) = (routed.provider.name().to_string(), routed.model);
    let events = turn_events(state, conv_id.clone(), model.clone(), routed.value, meter);
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let head = futures::stream::iter(vec![
        data(json!({"type": "metadata", "conversation_id": conv_id, "provider": provider})),
        data(chunk(json!({"role": "assistant", "content": ""}), None)),
    ]);
    let body = events.flat_map(move |ev| {
        let out: Vec<Event> = match ev {
            TurnEvent::Delta(t) => vec![data(chunk(json!({"content": t}), None))],
            TurnEvent::Finish(f) => vec![data(chunk(json!({}), Some(f.as_openai())))],
            TurnEvent::Error(m) => vec![data(json!({"error": {"message": m, "type": "upstream_error"}}))],
            TurnEvent::Done { usage } => {
                let mut u = chunk(json!({}), None);
                u["choices"] = json!([]);
                u["usage"] = usage_json(usage);
                vec![data(u), Event::data("[DONE]")]
            }
        };
        futures::stream::iter(out)
    });
    Ok(sse(head.chain(body)))
}

/// `POST /api/v0.3/chat`: `{response, conversation_id}`; streamed as `metadata`, `content` and one
/// `done` event (an `error` event before `done` if the provider fails mid-stream).
pub async fn chat_v03(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<Response> {
    let stream = body.stream;
    let turn = prepare(&state, &p.user_id, body).await?;
    let conv_id = turn.conversation.id.clone();
    if !stream {
        let routed = complete(&state, &p, &turn, "chat_v0.3").await?;
        let r = routed.value;
        store_answer(&state, &conv_id, &r.content, &routed.model, r.usage).await;
        return Ok(axum::Json(json!({"response": r.content, "conversation_id": conv_id})).into_response());
    }
    let (routed, meter) = open_stream(&state, &p, &turn, "chat_v0.3").await?;
    let model = routed.model;
    let events = turn_events(state, conv_id.clone(), model.clone(), routed.value, meter);
    let head =
        futures::stream::iter(vec![data(json!({"type": "metadata", "conversation_id": conv_id, "model": model}))]);
    let body = events.filter_map(move |ev| {
        let out = match ev {
            TurnEvent::Delta(t) => Some(data(json!({"type": "content", "content": t}))),
            TurnEvent::Finish(_) => None,
            TurnEvent::Error(m) => Some(data(json!({"type": "error", "message": m}))),
            TurnEvent::Done { usage } => Some(data(json!({"type": "done", "usage": usage_json(usage)}))),
        };
        futures::future::ready(out)
    });
    Ok(sse(head.chain(body)))
}

#[cfg(test)]
mod tests {
    use super::title_from;

    #[test]
    fn titles() {
        assert_eq!(title_from("Where is the safe house?\nmore"), "Where is the safe house?");
        let long = "x".repeat(100);
        assert_eq!(title_from(&long).chars().count(), 81);
    }
}
