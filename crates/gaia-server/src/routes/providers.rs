//! Providers and their health: `GET /api/v1/providers`, `GET /api/v1/providers/{name}/health`.

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

/// Every provider with its live health (passive statistics from real traffic and the last probe).
pub async fn list(State(state): State<AppState>, Auth(_): Auth) -> Json<Value> {
    let reg = state.providers();
    let providers: Vec<Value> =
        reg.providers().iter().map(|p| json!({"name": p.name(), "health": reg.stats(p.name()).snapshot()})).collect();
    Json(json!({"providers": providers}))
}

/// One provider's health, with a fresh probe.
pub async fn health(State(state): State<AppState>, Auth(_): Auth, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let reg = state.providers();
    let p = reg.get(&name).ok_or_else(|| ApiError::not_found(format!("provider {name} not found")))?;
    let probe = p.health().await;
    let stats = reg.stats(&name);
    stats.probe(probe.ok, std::time::Duration::from_millis(probe.latency_ms));
    Ok(Json(json!({"name": name, "probe": probe, "health": stats.snapshot()})))
}
