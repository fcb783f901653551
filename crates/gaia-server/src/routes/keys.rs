//! The caller's own API keys: `GET/POST /api/v1/keys`, `DELETE /api/v1/keys/{id}`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use gaia_core::events::Event;
use serde::Deserialize;
use serde_json::{json, Value};

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Default, Deserialize)]
pub struct CreateKey {
    /// Optional label.
    #[serde(default)]
    pub name: Option<String>,
}

/// Creates a key for the caller; the key is in the answer once and never again.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<impl IntoResponse> {
    let (rec, key) = state.auth().create_api_key(&p.user_id, body.name.as_deref()).await?;
    let details = json!({"prefix": rec.prefix, "name": rec.name});
    crate::audit::record(&state, Some(&p.user_id), "key.create", &rec.id, details).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": key, "id": rec.id, "prefix": rec.prefix, "name": rec.name, "created_at": rec.created_at})),
    ))
}

/// The caller's keys (prefixes only).
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let keys = state.storage().list_api_keys(Some(&p.user_id)).await?;
    Ok(Json(json!({"keys": keys})))
}

/// Revokes one of the caller's keys; it stops working at once. Another user's key is a 404.
pub async fn revoke(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    match state.storage().get_api_key(&id).await? {
        Some(k) if k.user_id == p.user_id => {
            state.auth().revoke_api_key(&id).await?;
            crate::audit::record(&state, Some(&p.user_id), "key.revoke", &id, json!({})).await;
            state.events().publish(Event::ApiKeyRevoked { key_id: id });
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::not_found(format!("API key {id} not found"))),
    }
}
