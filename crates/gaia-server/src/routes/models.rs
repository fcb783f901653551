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
    /// Only models whose catalog entry lists these capabilities (`tools`, `vision`, `streaming`;
    /// several separated by commas must all be there). Models without known capabilities never match.
    #[serde(default)]
    pub capability: Option<String>,
    /// Only models whose provider is currently up.
    #[serde(default)]
    pub healthy: Option<bool>,
}

/// Models of every configured provider (an empty list when none is configured), with context
/// window, capabilities, price and provider health.
pub async fn list(
    State(state): State<AppState>,
    Auth(_): Auth,
    q: Result<Query<ModelFilter>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(f) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if f.max_price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(ApiError::bad_request("max_price must be a non-negative number"));
    }
    let wanted: Vec<String> = f
        .capability
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    let reg = state.providers();
    let mut data = Vec::new();
    for m in reg.list_models().await {
        let price = reg.price(&m.provider, &m.id);
        let up = reg.stats(&m.provider).snapshot().up;
        if f.provider.as_deref().is_some_and(|p| p != m.provider)
            || f.max_price.is_some_and(|max| price.is_none_or(|p| p.output > max))
            || f.min_context.is_some_and(|min| m.context_window.is_none_or(|c| c < min))
            || f.healthy.is_some_and(|h| h != up)
            || !wanted.iter().all(|w| m.capabilities.iter().any(|c| c.eq_ignore_ascii_case(w)))
        {
            continue;
        }
        data.push(json!({
            "id": m.id, "object": "model", "provider": m.provider, "owned_by": m.provider,
            "context_window": m.context_window, "capabilities": m.capabilities, "price": price,
            "provider_up": up,
        }));
    }
    Ok(Json(json!({"object": "list", "data": data})))
}
