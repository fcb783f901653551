//! Personas: `GET/POST /api/v1/personas`, `GET/PATCH/PUT/DELETE /api/v1/personas/{id}`, and the
//! caller's chat settings, `GET/PATCH /api/v1/settings` (display name, default model and persona, theme).
//!
//! Built-in personas are visible to everyone and read-only (403 on change); another user's persona is
//! a 404.
//!
//! `GET/DELETE /api/v1/personas/{id}/memory`: what the persona remembers about the caller (facts and a
//! running summary, `chat.memory`), and forgetting it.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use gaia_core::storage::{Persona, PersonaInput, UserSettings, DEFAULT_PERSONA_ID};
use serde_json::{json, Value};

/// The built-in personas and the caller's own, with the caller's default marked.
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let storage = state.storage();
    let personas = storage.list_personas(&p.user_id).await?;
    let default = storage.user_settings(&p.user_id).await?.default_persona_id.unwrap_or(DEFAULT_PERSONA_ID.into());
    Ok(Json(json!({"personas": personas, "default_persona_id": default})))
}

/// One persona.
pub async fn get(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Persona>> {
    state
        .storage()
        .get_persona(&p.user_id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Persona {id} not found")))
}

/// Creates a persona (201); `name` and `system_prompt` are required.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<PersonaInput>,
) -> ApiResult<impl IntoResponse> {
    let persona = state.storage().create_persona(&p.user_id, &body).await?;
    Ok((StatusCode::CREATED, Json(persona)))
}

/// Changes the given fields of one of the caller's personas.
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PersonaInput>,
) -> ApiResult<Json<Persona>> {
    Ok(Json(state.storage().update_persona(&p.user_id, &id, &body).await?))
}

/// The persona `id` as the caller may use it (404 otherwise).
async fn visible(state: &AppState, user_id: &str, id: &str) -> ApiResult<Persona> {
    state
        .storage()
        .get_persona(user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Persona {id} not found")))
}

/// What the persona remembers about the caller: `{persona_id, facts, summary, turns, updated_at}`.
pub async fn memory(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let persona = visible(&state, &p.user_id, &id).await?;
    let m = state.storage().persona_memory(&p.user_id, &persona.id).await?;
    Ok(Json(json!({"persona_id": persona.id, "facts": m.facts, "summary": m.summary, "turns": m.turns,
                   "updated_at": m.updated_at})))
}

/// Makes the persona forget what it remembers about the caller (204).
pub async fn forget(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let persona = visible(&state, &p.user_id, &id).await?;
    state.storage().delete_persona_memory(&p.user_id, &persona.id).await?;
    state.engine().prune_memory_vectors(&p.user_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one of the caller's personas (204).
pub async fn delete(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.storage().delete_persona(&p.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's chat settings.
pub async fn settings(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<UserSettings>> {
    Ok(Json(state.storage().user_settings(&p.user_id).await?))
}

/// Changes the given settings (an empty string clears one).
pub async fn update_settings(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<UserSettings>,
) -> ApiResult<Json<UserSettings>> {
    Ok(Json(state.storage().update_user_settings(&p.user_id, &body).await?))
}
