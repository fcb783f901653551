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

/// Adds or replaces a provider at runtime (admins): the body is a `[[providers]]` entry as JSON.
pub async fn add(
    State(state): State<AppState>,
    Auth(p): Auth,
    crate::extract::ApiJson(entry): crate::extract::ApiJson<gaia_core::config::ProviderEntry>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    entry.validate(0).map_err(|e| ApiError::bad_request(e.to_string().replace("providers[0].", "")))?;
    if entry.api_key.is_none() && entry.api_key_env.is_some() {
        return Err(ApiError::bad_request("api_key_env is read at start-up only; send api_key"));
    }
    state.providers().add_entry(&entry)?;
    crate::audit::record(
        &state,
        Some(&p.user_id),
        "provider.add",
        &entry.name,
        serde_json::json!({"kind": entry.kind}),
    )
    .await;
    tracing::info!(provider = %entry.name, by = %p.user_id, "provider added");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({"name": entry.name, "kind": entry.kind, "base_url": entry.base_url()})),
    ))
}

/// Removes a provider at runtime (admins).
pub async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    if state.providers().remove(&name) {
        crate::audit::record(&state, Some(&p.user_id), "provider.remove", &name, serde_json::json!({})).await;
        tracing::info!(provider = %name, by = %p.user_id, "provider removed");
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("provider {name} not found")))
    }
}
