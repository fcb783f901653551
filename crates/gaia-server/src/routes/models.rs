//! `GET /api/v1/models`.

use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// Models of every configured provider (an empty list when none is configured).
pub async fn list(State(state): State<AppState>, Auth(_): Auth) -> Json<Value> {
    let models = state.providers().list_models().await;
    let data: Vec<Value> = models
        .into_iter()
        .map(|m| json!({"id": m.id, "object": "model", "provider": m.provider, "owned_by": m.provider, "context_window": m.context_window}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}
