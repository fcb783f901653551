//! Rate limits and budgets: `GET /api/v1/limits`, `PUT/DELETE /api/v1/limits/{scope}/{id}`,
//! `GET/POST /api/v1/budgets`, `PATCH/DELETE /api/v1/budgets/{id}` (administrators), and
//! `GET /api/v1/budgets/mine` (the budgets that apply to the caller, with what was spent).

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use gaia_core::quota::BudgetStatus;
use gaia_core::storage::{Budget, LimitScope, NewBudget, RateLimitOverride};
use serde::Deserialize;
use serde_json::{json, Value};

/// `GET /api/v1/limits`: the configured defaults and every limit set per user or key.
pub async fn list_limits(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let set = state.storage().list_rate_limits().await?;
    Ok(Json(json!({
        "defaults": state.config().limits,
        "limiter": state.quotas().limiter().kind(),
        "limits": set,
    })))
}

/// Body of `PUT /api/v1/limits/{scope}/{id}`: `null` or absent keeps the default, 0 is unlimited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLimit {
    /// Model requests per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

/// `PUT /api/v1/limits/{scope}/{id}` (`scope`: `user` or `key`).
pub async fn set_limit(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((scope, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<SetLimit>,
) -> ApiResult<impl IntoResponse> {
    let scope: LimitScope = scope.parse()?;
    Ok(Json(apply_limit(&state, &p.user_id, scope, &id, &b).await?))
}

/// Sets a rate limit for `actor` (the API and the admin console): stored, applied on every
/// instance, audited.
pub(crate) async fn apply_limit(
    state: &AppState,
    actor: &str,
    scope: LimitScope,
    id: &str,
    b: &SetLimit,
) -> ApiResult<RateLimitOverride> {
    let set =
        state.storage().set_rate_limit(scope, id, b.requests_per_minute, b.tokens_per_minute, Some(actor)).await?;
    state.quotas().settings_changed();
    let details = json!({"requests_per_minute": set.requests_per_minute, "tokens_per_minute": set.tokens_per_minute});
    crate::audit::record(state, Some(actor), "limit.set", &format!("{scope}:{id}"), details).await;
    Ok(set)
}

/// `DELETE /api/v1/limits/{scope}/{id}`: the defaults apply again.
pub async fn delete_limit(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((scope, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let scope: LimitScope = scope.parse()?;
    remove_limit(&state, &p.user_id, scope, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a rate limit (404 when none is set), audited.
pub(crate) async fn remove_limit(state: &AppState, actor: &str, scope: LimitScope, id: &str) -> ApiResult<()> {
    if !state.storage().delete_rate_limit(scope, id).await? {
        return Err(ApiError::not_found(format!("no rate limit is set for {scope} {id}")));
    }
    state.quotas().settings_changed();
    crate::audit::record(state, Some(actor), "limit.delete", &format!("{scope}:{id}"), json!({})).await;
    Ok(())
}

pub(crate) async fn status_of(state: &AppState, b: &Budget) -> ApiResult<BudgetStatus> {
    let policy = state.rbac().await.policy();
    let members = if b.scope == LimitScope::Team { policy.members_of(&b.subject_id) } else { Vec::new() };
    Ok(state.quotas().status(b, &members).await?)
}

/// `GET /api/v1/budgets`: every budget with its spend in the current period.
pub async fn list_budgets(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"budgets": all_budgets(&state).await?})))
}

/// Every budget with its spend in the current period (usage not yet written is written first).
pub(crate) async fn all_budgets(state: &AppState) -> ApiResult<Vec<BudgetStatus>> {
    state.usage().flush().await;
    state.quotas().spend_changed();
    let mut out = Vec::new();
    for b in state.storage().list_budgets(None).await? {
        out.push(status_of(state, &b).await?);
    }
    Ok(out)
}

/// `GET /api/v1/budgets/mine`: the budgets that apply to the caller (theirs, their key's, their
/// teams'), with their spend.
pub async fn my_budgets(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    state.usage().flush().await;
    state.quotas().spend_changed();
    let who = state.engine().subject(&p).await;
    let mut out = Vec::new();
    for b in state.quotas().budgets_for(&who).await {
        out.push(status_of(&state, &b).await?);
    }
    Ok(Json(json!({"budgets": out})))
}

/// `POST /api/v1/budgets` with `{scope, subject_id, period, limit_usd, hard}`.
pub async fn create_budget(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<NewBudget>,
) -> ApiResult<impl IntoResponse> {
    let created = add_budget(&state, &p.user_id, &b).await?;
    let status = status_of(&state, &created).await?;
    Ok((StatusCode::CREATED, Json(status)))
}

/// Creates a budget, applied on every instance, audited.
pub(crate) async fn add_budget(state: &AppState, actor: &str, b: &NewBudget) -> ApiResult<Budget> {
    let created = state.storage().create_budget(b, Some(actor)).await?;
    state.quotas().settings_changed();
    let details = json!({"scope": created.scope, "subject_id": created.subject_id, "period": created.period,
        "limit_usd": created.limit_usd, "hard": created.hard});
    crate::audit::record(state, Some(actor), "budget.create", &created.id, details).await;
    Ok(created)
}

/// Body of `PATCH /api/v1/budgets/{id}`: what changes (absent: kept).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetChange {
    /// The new limit in US dollars (positive).
    #[serde(default)]
    pub limit_usd: Option<f64>,
    /// Whether requests are refused once it is reached.
    #[serde(default)]
    pub hard: Option<bool>,
}

/// `PATCH /api/v1/budgets/{id}`: a new limit or hardness, applied at once; answers the budget with
/// its spend.
pub async fn update_budget(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<BudgetChange>,
) -> ApiResult<Json<BudgetStatus>> {
    let changed = change_budget(&state, &p.user_id, &id, &b).await?;
    Ok(Json(status_of(&state, &changed).await?))
}

/// Changes a budget (404 when there is none `id`), applied on every instance, audited.
pub(crate) async fn change_budget(state: &AppState, actor: &str, id: &str, b: &BudgetChange) -> ApiResult<Budget> {
    let missing = || ApiError::not_found(format!("budget {id} not found"));
    let old = state.storage().budget(id).await?.ok_or_else(missing)?;
    let limit = b.limit_usd.unwrap_or(old.limit_usd);
    let hard = b.hard.unwrap_or(old.hard);
    let changed = state.storage().update_budget(id, limit, hard).await?.ok_or_else(missing)?;
    state.quotas().settings_changed();
    let details = json!({"limit_usd": changed.limit_usd, "hard": changed.hard,
        "previous": {"limit_usd": old.limit_usd, "hard": old.hard}});
    crate::audit::record(state, Some(actor), "budget.update", id, details).await;
    Ok(changed)
}

/// `DELETE /api/v1/budgets/{id}`.
pub async fn delete_budget(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    remove_budget(&state, &p.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a budget (404 when there is none `id`), audited.
pub(crate) async fn remove_budget(state: &AppState, actor: &str, id: &str) -> ApiResult<()> {
    if !state.storage().delete_budget(id).await? {
        return Err(ApiError::not_found(format!("budget {id} not found")));
    }
    state.quotas().settings_changed();
    crate::audit::record(state, Some(actor), "budget.delete", id, json!({})).await;
    Ok(())
}
