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
use gaia_core::context;
use gaia_core::events::Event as BusEvent;
use gaia_core::storage::{Conversation, DEFAULT_PERSONA_ID};
use gaia_core::types::{ChatMessage, FinishReason, Role, Usage};
use gaia_providers::{merge_usage, Candidate, ChatEvent, ChatRequest, ChatResponse, ChatStream, Routed};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most images one message may carry.
pub const MAX_IMAGES_PER_MESSAGE: usize = 8;

/// Body of both chat endpoints.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    /// The user's message (may be empty when `attachments` are given; ignored with `regenerate`).
    #[serde(default)]
    pub message: String,
    /// Images uploaded with `POST /api/v1/attachments`, sent with this message to a vision model.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Answer the conversation's last user message again: the answers after it are deleted and a
    /// new one is generated (needs `conversation_id`; no new user message is stored).
    #[serde(default)]
    pub regenerate: bool,
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
    /// Persona for this turn (and, from now on, for the conversation); else the conversation's, else
    /// the user's default, else the built-in one.
    #[serde(default)]
    pub persona_id: Option<String>,
}

/// A prepared turn: the conversation, the provider and the request to send it.
struct Turn {
    conversation: Conversation,
    candidates: Vec<Candidate>,
    request: ChatRequest,
    /// The conversation was created by this turn (its title is provisional).
    is_new: bool,
    /// The user's message.
    message: String,
    /// This turn answers the last user message again.
    regenerate: bool,
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
    if body.regenerate {
        if body.conversation_id.is_none() {
            return Err(ApiError::bad_request("`regenerate` needs a `conversation_id`"));
        }
        if !body.attachments.is_empty() {
            return Err(ApiError::bad_request("`regenerate` cannot take new `attachments`"));
        }
    } else if message.is_empty() && body.attachments.is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    if body.attachments.len() > MAX_IMAGES_PER_MESSAGE {
        return Err(ApiError::bad_request(format!("at most {MAX_IMAGES_PER_MESSAGE} images per message")));
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
    // Persona: the request's, the conversation's, the user's default, the built-in one.
    let settings = storage.user_settings(user_id).await?;
    let asked_persona = body.persona_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let persona = match asked_persona {
        Some(id) => Some(
            storage
                .get_persona(user_id, id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("Persona {id} not found")))?,
        ),
        None => {
            let mut found = None;
            let wanted = existing
                .as_ref()
                .and_then(|c| c.persona_id.clone())
                .into_iter()
                .chain(settings.default_persona_id.clone());
            for id in wanted.chain(std::iter::once(DEFAULT_PERSONA_ID.to_string())) {
                if let Some(p) = storage.get_persona(user_id, &id).await? {
                    found = Some(p);
                    break;
                }
            }
            found
        }
    };
    let model_asked = body
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| persona.as_ref().and_then(|p| p.model.clone()))
        .or(settings.default_model.clone())
        .unwrap_or_default();
    let candidates = state.providers().candidates(&model_asked).await?;
    let model = candidates[0].1.clone();
    let images = storage.unsent_images(user_id, &body.attachments).await.map_err(|e| match e {
        gaia_core::CoreError::NotFound(what) => ApiError::not_found(format!("{what} not found: upload it first")),
        other => other.into(),
    })?;
    if !images.is_empty() {
        let entry = state.providers().model_entry(candidates[0].0.name(), &model);
        // Refuse only when the catalog says what the model can do and vision is not among it.
        if entry.is_some_and(|m| !m.capabilities.is_empty() && !m.capabilities.iter().any(|c| c == "vision")) {
            return Err(ApiError::bad_request(format!(
                "model {model} does not accept images; pick a model with the `vision` capability"
            )));
        }
    }
    let persona_id = persona.as_ref().map(|p| p.id.clone());
    let mut stored_history = match &existing {
        Some(c) => storage.list_messages(&c.id).await?,
        None => Vec::new(),
    };
    // Regenerating: answer the last user message again. The answers after it stay in the prompt's
    // past no more, and are deleted once the provider has accepted the new request.
    let message = if body.regenerate {
        let last = stored_history
            .iter()
            .rposition(|m| m.role == Role::User)
            .ok_or_else(|| ApiError::bad_request("the conversation has no message to answer again"))?;
        stored_history.truncate(last + 1);
        stored_history[last].content.clone()
    } else {
        message.to_string()
    };
    let message = message.as_str();
    let (conversation, is_new) = match existing {
        Some(c) => {
            if asked_persona.is_some() && c.persona_id != persona_id {
                storage.set_conversation_persona(user_id, &c.id, persona_id.as_deref()).await?;
            }
            (c, false)
        }
        None => {
            let c = storage
                .create_conversation_with_persona(
                    user_id,
                    Some(&if message.is_empty() { "Image".to_string() } else { title_from(message) }),
                    Some(&model),
                    persona_id.as_deref(),
                )
                .await?;
            state.events().publish(BusEvent::ConversationUpdated { conversation_id: c.id.clone() });
            (c, true)
        }
    };
    let mut system = Vec::new();
    if let Some(p) = &persona {
        system.push(ChatMessage::system(p.system_prompt.clone()));
    }
    if let Some(s) = body.system.as_deref().filter(|s| !s.trim().is_empty()) {
        system.push(ChatMessage::system(s));
    }
    let mut history_images = if stored_history.iter().any(|m| !m.attachments.is_empty()) {
        storage.conversation_images(&conversation.id).await?
    } else {
        Vec::new()
    };
    // When regenerating, the last stored message is the one answered again: it is `latest` below.
    let latest_images = if body.regenerate {
        let last = stored_history.pop();
        let id = last.map(|m| m.id).unwrap_or_default();
        let (mine, rest): (Vec<_>, Vec<_>) = history_images.into_iter().partition(|(m, _)| *m == id);
        history_images = rest;
        mine.into_iter().map(|(_, i)| i).collect()
    } else {
        images.clone()
    };
    let history: Vec<ChatMessage> = stored_history
        .into_iter()
        .filter(|m| {
            matches!(m.role, Role::User | Role::Assistant | Role::System)
                && (!m.content.is_empty() || !m.attachments.is_empty())
        })
        .map(|m| {
            let mut msg = ChatMessage::new(m.role, m.content);
            msg.images = history_images.iter().filter(|(id, _)| *id == m.id).map(|(_, i)| i.clone()).collect();
            msg
        })
        .collect();
    // Bound the history by the model's context window (oldest turns dropped first).
    let (provider, _) = &candidates[0];
    let window = state
        .providers()
        .model_entry(provider.name(), &model)
        .and_then(|m| m.context_window)
        .unwrap_or(context::DEFAULT_CONTEXT_WINDOW);
    let reserve = body.max_tokens.unwrap_or(context::DEFAULT_ANSWER_RESERVE).min(window / 2);
    let latest = ChatMessage::user_with_images(message, latest_images);
    let (messages, dropped) = context::fit_history(system, history, latest, window, reserve);
    if dropped > 0 {
        tracing::debug!(conversation_id = %conversation.id, dropped, window, "older messages left out of the prompt");
    }
    if !body.regenerate {
        let stored = storage.add_message(&conversation.id, Role::User, message, None, None).await?;
        if !body.attachments.is_empty() {
            storage.attach_to_message(user_id, &body.attachments, &stored.id).await?;
        }
        state
            .events()
            .publish(BusEvent::MessageCreated { conversation_id: conversation.id.clone(), message_id: stored.id });
    }
    let mut request = ChatRequest::new(model, messages);
    request.temperature = body.temperature.or_else(|| persona.as_ref().and_then(|p| p.temperature).map(|t| t as f32));
    request.max_tokens = body.max_tokens;
    request.user = Some(user_id.to_string());
    Ok(Turn { conversation, candidates, request, is_new, message: message.to_string(), regenerate: body.regenerate })
}

impl Turn {
    /// For a regeneration, deletes the old answers once the provider has taken the new request.
    async fn provider_accepted(&self, state: &AppState) -> ApiResult<()> {
        if self.regenerate {
            state.storage().rewind_to_last_user_message(&self.conversation.id).await?;
            state.events().publish(BusEvent::ConversationUpdated { conversation_id: self.conversation.id.clone() });
        }
        Ok(())
    }
}

/// The background job that gives a new conversation a title from its first exchange.
struct AutoTitle {
    state: AppState,
    principal: Principal,
    conversation: Conversation,
    candidates: Vec<Candidate>,
    model: String,
    message: String,
}

impl AutoTitle {
    /// The job for `turn`, when the conversation is new and automatic titles are on.
    fn for_turn(state: &AppState, p: &Principal, turn: &Turn) -> Option<AutoTitle> {
        (turn.is_new && state.config().chat.auto_title).then(|| AutoTitle {
            state: state.clone(),
            principal: p.clone(),
            conversation: turn.conversation.clone(),
            candidates: turn.candidates.clone(),
            model: turn.request.model.clone(),
            message: turn.message.clone(),
        })
    }

    /// Asks the model for a short title in the background; the provisional title (the first line of
    /// the message) stays if that fails or if the user renamed the conversation meanwhile.
    fn spawn(self, answer: &str) {
        if answer.trim().is_empty() {
            return;
        }
        let excerpt = |t: &str| t.chars().take(1_000).collect::<String>();
        let prompt = format!(
            "Write a title of at most six words for a conversation that starts like this. Reply with the \
             title only, no quotes.\n\nUser: {}\n\nAssistant: {}",
            excerpt(&self.message),
            excerpt(answer)
        );
        tokio::spawn(async move {
            let AutoTitle { state, principal: p, conversation: conv, candidates, model, .. } = self;
            let mut req = ChatRequest::new(model, vec![ChatMessage::user(prompt)]);
            req.temperature = Some(0.2);
            req.max_tokens = Some(24);
            req.user = Some(p.user_id.clone());
            let mut meter = Meter::start(&state, &p, "chat_title");
            let title = match state.providers().chat_routed(&candidates, &req).await {
                Ok(r) => {
                    meter.target(r.provider.name(), &r.model);
                    meter.usage(r.value.usage);
                    meter.finish(200, None);
                    clean_title(&r.value.content)
                }
                Err(f) => {
                    meter.failed(&f);
                    None
                }
            };
            let Some(title) = title else { return };
            // Only replace the provisional title: a rename by the user wins.
            match state.storage().replace_conversation_title(&p.user_id, &conv.id, conv.title.as_deref(), &title).await
            {
                Ok(true) => {
                    state.events().publish(BusEvent::ConversationUpdated { conversation_id: conv.id.clone() });
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, conversation_id = %conv.id, "cannot store the automatic title"),
            }
        });
    }
}

/// A model's answer as a title: its first non-empty line, without quotes, Markdown marks or a final
/// period, at most 80 characters; `None` when nothing is left.
fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_start_matches(['#', '*', '-', ' ']).trim();
    let line = line.strip_prefix("Title:").or_else(|| line.strip_prefix("title:")).unwrap_or(line).trim();
    let line = line.trim_matches(['"', '\'', '*', '`', '“', '”']).trim().trim_end_matches('.').trim();
    if line.is_empty() {
        return None;
    }
    Some(title_from(line))
}

/// Stores an assistant message and announces it on the event bus; returns its id (`None`, logged, if
/// it could not be stored).
pub(crate) async fn store_answer(
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
    title: Option<AutoTitle>,
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
        if let (Some(job), None) = (title, &failed) {
            job.spawn(&guard.content);
        }
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
            turn.provider_accepted(state).await?;
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
            turn.provider_accepted(state).await?;
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
        if let Some(job) = AutoTitle::for_turn(&state, &p, &turn) {
            job.spawn(&r.content);
        }
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
    let title = AutoTitle::for_turn(&state, &p, &turn);
    let events = turn_events(state, conv_id.clone(), model.clone(), routed.value, meter, title);
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
        if let Some(job) = AutoTitle::for_turn(&state, &p, &turn) {
            job.spawn(&r.content);
        }
        return Ok(axum::Json(json!({"response": r.content, "conversation_id": conv_id})).into_response());
    }
    let (routed, meter) = open_stream(&state, &p, &turn, "chat_v0.3").await?;
    let model = routed.model;
    let title = AutoTitle::for_turn(&state, &p, &turn);
    let events = turn_events(state, conv_id.clone(), model.clone(), routed.value, meter, title);
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
    use super::{clean_title, title_from};

    #[test]
    fn model_titles_are_cleaned() {
        assert_eq!(clean_title("\"The Dragon's Cave.\"\nmore").as_deref(), Some("The Dragon's Cave"));
        assert_eq!(clean_title("## Title: Safe houses").as_deref(), Some("Safe houses"));
        assert_eq!(clean_title("  \n \"\" "), None);
    }

    #[test]
    fn titles() {
        assert_eq!(title_from("Where is the safe house?\nmore"), "Where is the safe house?");
        let long = "x".repeat(100);
        assert_eq!(title_from(&long).chars().count(), 81);
    }
}
