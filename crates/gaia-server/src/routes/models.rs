//! `GET /api/v1/models`, with filters.

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Filters; all optional.
#[derive(Debug, Default, Deserialize)]
pub struct ModelFilter {
    /// Only this provider's models.
    #[serde(default)]
    pub provider: Option<String>,
    /// Only models whose output price (dollars per million tokens) is at most this.
    #[serde(default)]
    pub max_price: Option<f64>,
    /// Only models with at least this context window.
    #[serde(default)]
    pub min_context: Option<u32>,
    /// Only models whose provider is currently up.
    #[serde(default)]
    pub healthy: Option<bool>,
}

/// Models of every configured provider (an empty list when none is configured), with price and
/// provider health.
pub async fn list(
    State(state): State<AppState>,
    Auth(_): Auth,
    q: Result<Query<ModelFilter>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(f) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let reg = state.providers();
    let mut data = Vec::new();
    for m in reg.list_models().await {
        let price = reg.price(&m.provider, &m.id);
        let up = reg.stats(&m.provider).snapshot().up;
        if f.provider.as_deref().is_some_and(|p| p != m.provider)
            || f.max_price.is_some_and(|max| price.is_none_or(|p| p.output > max))
            || f.min_context.is_some_and(|min| m.context_window.is_none_or(|c| c < min))
            || f.healthy.is_some_and(|h| h != up)
        {
            continue;
        }
        data.push(json!({
            "id": m.id, "object": "model", "provider": m.provider, "owned_by": m.provider,
            "context_window": m.context_window, "price": price, "provider_up": up,
        }));
    }
    Ok(Json(json!({"object": "list", "data": data})))
}
