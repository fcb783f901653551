//! Conversations: `GET/POST /api/v1/conversations`, `GET/DELETE /api/v1/conversations/{id}`,
//! `GET /api/v1/conversations/{id}/messages`. Another user's conversation is a 404.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, OptionalJson};
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
}

async fn owned(state: &AppState, user_id: &str, id: &str) -> ApiResult<Conversation> {
    state
        .storage()
        .get_conversation(user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Conversation {id} not found")))
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
    let c = state.storage().create_conversation(&p.user_id, body.title.as_deref(), body.model.as_deref()).await?;
    state.events().publish(Event::ConversationUpdated { conversation_id: c.id.clone() });
    Ok((StatusCode::CREATED, Json(c)))
}

/// One conversation.
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(owned(&state, &p.user_id, &id).await?))
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
    let c = owned(&state, &p.user_id, &id).await?;
    let msgs = state.storage().list_messages(&c.id).await?;
    Ok(Json(json!({"conversation_id": c.id, "messages": msgs})))
}
