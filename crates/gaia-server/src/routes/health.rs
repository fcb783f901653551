//! `GET /health`: database, cache and provider status.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// Status of the database, the cache and each provider. 200 when the database answers, else 503.
pub async fn health(State(state): State<AppState>) -> Response {
    let db = state.storage().ping().await;
    let cache = state.cache().ping().await;
    let providers = tokio::time::timeout(Duration::from_secs(3), state.providers().health()).await;
    let providers = match providers {
        Ok(list) => json!(list),
        Err(_) => json!({"status": "timeout"}),
    };
    let ok = db.is_ok();
    let body = json!({
        "status": if ok && cache.is_ok() { "ok" } else if ok { "degraded" } else { "error" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": {"status": if db.is_ok() { "ok" } else { "error" }, "backend": state.storage().backend().as_str()},
        "cache": {"status": if cache.is_ok() { "ok" } else { "error" }, "kind": state.cache().kind()},
        "providers": providers,
        "active_streams": state.active_streams(),
    });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}
