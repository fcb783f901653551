//! Prices: `GET /api/v1/pricing` (every model's price in effect now), `POST /api/v1/pricing/estimate`
//! (the cost of a request before sending it), and for administrators `POST /api/v1/pricing` (a price
//! taking effect at a date), `GET /api/v1/pricing/history`, `DELETE /api/v1/pricing/{id}`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use gaia_core::storage::PriceEntry;
use gaia_core::types::ModelPrice;
use serde::Deserialize;
use serde_json::{json, Value};

/// `GET /api/v1/pricing`: each model with the price in effect now (recorded, else configured).
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let now = Utc::now();
    let models = state.providers().list_models().await;
    let out: Vec<Value> = models
        .iter()
        .map(|m| {
            let price = state.providers().price_at(&m.provider, &m.id, now);
            let upcoming: Vec<_> = state
                .quotas()
                .prices()
                .history(&m.provider, &m.id)
                .iter()
                .filter(|e| e.effective_from > now)
                .cloned()
                .collect();
            json!({"provider": m.provider, "model": m.id, "price": price, "upcoming": upcoming})
        })
        .collect();
    Ok(Json(json!({"currency": "USD", "unit": "per million tokens", "models": out})))
}

/// Body of `POST /api/v1/pricing`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrice {
    /// Provider name.
    pub provider: String,
    /// Model id at the provider.
    pub model: String,
    /// US dollars per million input tokens.
    pub input_per_million: f64,
    /// US dollars per million output tokens.
    pub output_per_million: f64,
    /// US dollars per million input tokens read from the provider's prompt cache (default: the
    /// input price).
    #[serde(default)]
    pub cached_input_per_million: Option<f64>,
    /// US dollars per million input tokens written to the provider's prompt cache (default: the
    /// input price; Anthropic charges 1.25 times it).
    #[serde(default)]
    pub cache_write_input_per_million: Option<f64>,
    /// When it takes effect (RFC 3339; default: now).
    #[serde(default)]
    pub effective_from: Option<DateTime<Utc>>,
}

/// `POST /api/v1/pricing`: records a price taking effect at `effective_from`.
pub async fn add(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<NewPrice>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(record_price(&state, &p.user_id, &b).await?)))
}

/// Records a price for `actor`, reloads the price book, audits it.
pub(crate) async fn record_price(state: &AppState, actor: &str, b: &NewPrice) -> ApiResult<PriceEntry> {
    let price = ModelPrice {
        input: b.input_per_million,
        output: b.output_per_million,
        cached_input: b.cached_input_per_million,
        cache_write_input: b.cache_write_input_per_million,
    };
    let from = b.effective_from.unwrap_or_else(Utc::now);
    let e = state.storage().add_price(&b.provider, &b.model, price, from, Some(actor)).await?;
    state.quotas().reload_prices().await?;
    let details = json!({"provider": e.provider, "model": e.model, "input_per_million": price.input,
        "output_per_million": price.output, "cached_input_per_million": price.cached_input,
        "cache_write_input_per_million": price.cache_write_input,
        "effective_from": e.effective_from});
    crate::audit::record(state, Some(actor), "price.add", &e.id, details).await;
    Ok(e)
}

/// `GET /api/v1/pricing/history` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// Only this provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// Only this model.
    #[serde(default)]
    pub model: Option<String>,
}

/// `GET /api/v1/pricing/history`: every recorded price, oldest first.
pub async fn history(State(state): State<AppState>, Query(q): Query<HistoryQuery>) -> ApiResult<Json<Value>> {
    let all = state.storage().list_prices().await?;
    let prices: Vec<_> = all
        .into_iter()
        .filter(|e| q.provider.as_deref().is_none_or(|p| p == e.provider))
        .filter(|e| q.model.as_deref().is_none_or(|m| m == e.model))
        .collect();
    Ok(Json(json!({"prices": prices})))
}

/// `DELETE /api/v1/pricing/{id}`.
pub async fn remove(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    remove_price(&state, &p.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a recorded price (404 when there is none `id`), reloads the price book, audits it.
pub(crate) async fn remove_price(state: &AppState, actor: &str, id: &str) -> ApiResult<()> {
    if !state.storage().delete_price(id).await? {
        return Err(ApiError::not_found(format!("price {id} not found")));
    }
    state.quotas().reload_prices().await?;
    crate::audit::record(state, Some(actor), "price.delete", id, json!({})).await;
    Ok(())
}

/// `POST /api/v1/pricing/estimate`: a chat request body (Gaia's, OpenAI's or Anthropic's shape; the
/// `model`, the messages, `max_tokens`), optionally with `input_tokens` / `output_tokens` instead
/// of text. Answers the provider, model, token counts, price and cost.
pub async fn estimate(State(state): State<AppState>, ApiJson(body): ApiJson<Value>) -> ApiResult<Json<Value>> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let input = body.get("input_tokens").and_then(Value::as_u64);
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    let e = state
        .engine()
        .estimate(&body, input)
        .await
        .ok_or_else(|| ApiError::bad_request(format!("unknown model `{model}`")))?;
    Ok(Json(serde_json::to_value(e).map_err(ApiError::internal)?))
}
