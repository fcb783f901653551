//! Conversations: `GET/POST /api/v1/conversations` (paged, newest first; `?q=` searches titles and
//! message text), `GET/PATCH/DELETE /api/v1/conversations/{id}` (PATCH renames or changes the persona),
//! `GET /api/v1/conversations/{id}/messages`, `GET /api/v1/conversations/{id}/export?format=json|markdown`.
//! Another user's conversation is a 404.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, OptionalJson};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use gaia_core::events::Event;
use gaia_core::storage::Conversation;
use serde::Deserialize;
use serde_json::{json, Value};

/// Paging of the list.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Most items (1 to 200, default 50).
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// Items to skip.
    #[serde(default)]
    pub offset: i64,
    /// Search text: only conversations whose title or messages contain it.
    #[serde(default)]
    pub q: Option<String>,
}

fn default_limit() -> i64 {
    50
}

/// Body of `POST /api/v1/conversations`.
#[derive(Debug, Default, Deserialize)]
pub struct NewConversation {
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Persona (built-in or the caller's own).
    #[serde(default)]
    pub persona_id: Option<String>,
}

/// Body of `PATCH /api/v1/conversations/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize)]
pub struct ConversationPatch {
    /// New title (empty clears it).
    #[serde(default)]
    pub title: Option<String>,
    /// New persona (empty: the caller's default).
    #[serde(default)]
    pub persona_id: Option<String>,
}

/// Query of the export.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// `json` (default) or `markdown` (`md`).
    #[serde(default)]
    pub format: Option<String>,
}

async fn check_persona(state: &AppState, user_id: &str, persona_id: Option<&str>) -> ApiResult<()> {
    if let Some(id) = persona_id {
        if state.storage().get_persona(user_id, id).await?.is_none() {
            return Err(ApiError::not_found(format!("Persona {id} not found")));
        }
    }
    Ok(())
}

async fn owned(state: &AppState, user_id: &str, id: &str) -> ApiResult<Conversation> {
    state
        .storage()
        .get_conversation(user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Conversation {id} not found")))
}

/// A conversation the caller may read: their own, or one shared with them (or their team). Anything
/// else is a 404, whether it exists or not.
pub(crate) async fn readable(state: &AppState, p: &gaia_core::auth::Principal, id: &str) -> ApiResult<Conversation> {
    if let Some(c) = state.storage().get_conversation(&p.user_id, id).await? {
        return Ok(c);
    }
    let not_found = || ApiError::not_found(format!("Conversation {id} not found"));
    let c = state.storage().find_conversation(id).await?.ok_or_else(not_found)?;
    if shared_with(state, p, &c.user_id, &c.id).await {
        Ok(c)
    } else {
        Err(not_found())
    }
}

/// Whether `owner`'s conversation `id` is shared with the caller (or their team) for reading, now.
pub(crate) async fn shared_with(state: &AppState, p: &gaia_core::auth::Principal, owner: &str, id: &str) -> bool {
    let who = gaia_rbac::Subject::from(p);
    let resource = gaia_rbac::Resource::conversation(owner, id);
    state.rbac().await.check(&who, gaia_rbac::Action::Read, &resource).allowed
}

/// The caller's conversations, most recently updated first.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !(1..=200).contains(&page.limit) || page.offset < 0 {
        return Err(ApiError::bad_request("limit must be 1 to 200 and offset at least 0"));
    }
    if let Some(q) = page.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 200 {
            return Err(ApiError::bad_request("the search text must be at most 200 characters"));
        }
        let hits = state.storage().search_conversations(&p.user_id, q, page.limit).await?;
        return Ok(Json(json!({"conversations": hits, "limit": page.limit, "offset": 0, "q": q})));
    }
    let items = state.storage().list_conversations(&p.user_id, page.limit, page.offset).await?;
    Ok(Json(json!({"conversations": items, "limit": page.limit, "offset": page.offset})))
}

/// Creates an empty conversation (201).
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    OptionalJson(body): OptionalJson<NewConversation>,
) -> ApiResult<impl IntoResponse> {
    if body.title.as_deref().is_some_and(|t| t.chars().count() > 500) {
        return Err(ApiError::bad_request("title must be at most 500 characters"));
    }
    let persona = body.persona_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    check_persona(&state, &p.user_id, persona).await?;
    let c = state
        .storage()
        .create_conversation_with_persona(&p.user_id, body.title.as_deref(), body.model.as_deref(), persona)
        .await?;
    state.events().publish(Event::ConversationUpdated { conversation_id: c.id.clone() });
    Ok((StatusCode::CREATED, Json(c)))
}

/// One conversation.
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(readable(&state, &p, &id).await?))
}

/// Deletes (soft) a conversation (204).
pub async fn delete(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    if state.storage().delete_conversation(&p.user_id, &id).await? {
        state.events().publish(Event::ConversationUpdated { conversation_id: id });
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("Conversation {id} not found")))
    }
}

/// Messages of a conversation, oldest first.
pub async fn messages(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let c = readable(&state, &p, &id).await?;
    let msgs = state.storage().list_messages(&c.id).await?;
    Ok(Json(json!({"conversation_id": c.id, "messages": msgs})))
}

/// Renames a conversation or changes its persona.
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConversationPatch>,
) -> ApiResult<Json<Conversation>> {
    owned(&state, &p.user_id, &id).await?;
    if let Some(t) = &body.title {
        if t.chars().count() > 500 {
            return Err(ApiError::bad_request("title must be at most 500 characters"));
        }
        let t = t.trim();
        state.storage().rename_conversation(&p.user_id, &id, (!t.is_empty()).then_some(t)).await?;
    }
    if let Some(persona) = &body.persona_id {
        let persona = Some(persona.trim()).filter(|s| !s.is_empty());
        check_persona(&state, &p.user_id, persona).await?;
        state.storage().set_conversation_persona(&p.user_id, &id, persona).await?;
    }
    let c = owned(&state, &p.user_id, &id).await?;
    state.events().publish(Event::ConversationUpdated { conversation_id: c.id.clone() });
    Ok(Json(c))
}

/// The conversation with its messages, as JSON or Markdown, as a download.
pub async fn export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let c = readable(&state, &p, &id).await?;
    let msgs = state.storage().list_messages(&c.id).await?;
    let stem = format!("conversation-{}", c.id);
    let (body, content_type, ext) = match q.format.as_deref().unwrap_or("json") {
        "json" => {
            let v = json!({"conversation": c, "messages": msgs, "exported_at": chrono::Utc::now()});
            (serde_json::to_string_pretty(&v).map_err(ApiError::internal)?, "application/json", "json")
        }
        "markdown" | "md" => (to_markdown(&c, &msgs), "text/markdown; charset=utf-8", "md"),
        other => return Err(ApiError::bad_request(format!("unknown export format `{other}` (json or markdown)"))),
    };
    let disposition = format!("attachment; filename=\"{stem}.{ext}\"");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_string()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// A conversation as Markdown: a title, then each message under its author and time.
pub fn to_markdown(c: &Conversation, msgs: &[gaia_core::storage::StoredMessage]) -> String {
    let mut out = format!("# {}\n\n", c.title.as_deref().unwrap_or("Untitled conversation"));
    out.push_str(&format!("_Created {}_\n\n", c.created_at.format("%Y-%m-%d %H:%M UTC")));
    for m in msgs {
        let who = match m.role {
            gaia_core::types::Role::User => "You".to_string(),
            gaia_core::types::Role::Assistant => match &m.model {
                Some(model) => format!("Assistant ({model})"),
                None => "Assistant".to_string(),
            },
            other => other.as_str().to_string(),
        };
        out.push_str(&format!("## {who} · {}\n\n{}\n\n", m.created_at.format("%Y-%m-%d %H:%M"), m.content.trim_end()));
    }
    out
}
