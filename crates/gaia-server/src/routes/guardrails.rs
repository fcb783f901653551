//! Guardrails (administrators): `GET /api/v1/guardrails` (the configured rules, the rules every call
//! gets, and the rules bound to keys and personas), `PUT /api/v1/guardrails/{scope}/{id}` (`key`: the
//! rules of that key's calls instead of the default ones; `persona`: rules added to its turns) and
//! `DELETE /api/v1/guardrails/{scope}/{id}`. The rules themselves are in the configuration.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use gaia_core::storage::GuardrailBinding;
use serde::Deserialize;
use serde_json::{json, Value};

/// `GET /api/v1/guardrails`.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let g = &state.config().guardrails;
    let bindings = state.storage().list_guardrail_bindings().await?;
    Ok(Json(json!({
        "rules": g.rules, "apply": g.apply, "stream_window_chars": g.stream_window_chars, "bindings": bindings,
    })))
}

/// Body of `PUT /api/v1/guardrails/{scope}/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bind {
    /// Names of configured rules.
    pub rules: Vec<String>,
}

/// `PUT /api/v1/guardrails/{scope}/{id}`.
pub async fn bind(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((scope, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<Bind>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(bind_rules(&state, &p.user_id, &scope, &id, &b.rules).await?)))
}

/// Binds configured rules to a key or persona for `actor`: checked against `[guardrails]`, applied
/// on every instance, audited.
pub(crate) async fn bind_rules(
    state: &AppState,
    actor: &str,
    scope: &str,
    id: &str,
    rules: &[String],
) -> ApiResult<GuardrailBinding> {
    if rules.len() > gaia_core::storage::MAX_BOUND_RULES {
        return Err(ApiError::bad_request(format!("at most {} rules", gaia_core::storage::MAX_BOUND_RULES)));
    }
    let configured = &state.config().guardrails.rules;
    if let Some(unknown) = rules.iter().find(|n| !configured.iter().any(|r| &r.name == *n)) {
        let unknown: String = unknown.chars().take(64).collect();
        return Err(ApiError::bad_request(format!("no guardrail rule is named `{unknown}` in [guardrails]")));
    }
    let set = state.storage().set_guardrail_binding(scope, id, rules, Some(actor)).await?;
    state.engine().guardrails_changed();
    crate::audit::record(state, Some(actor), "guardrails.bind", &format!("{scope}:{id}"), json!({"rules": rules}))
        .await;
    Ok(set)
}

/// `DELETE /api/v1/guardrails/{scope}/{id}`.
pub async fn unbind(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((scope, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    unbind_rules(&state, &p.user_id, &scope, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a binding (404 when there is none), applied on every instance, audited.
pub(crate) async fn unbind_rules(state: &AppState, actor: &str, scope: &str, id: &str) -> ApiResult<()> {
    if !state.storage().delete_guardrail_binding(scope, id).await? {
        return Err(ApiError::not_found(format!("no guardrails are bound to {scope} {id}")));
    }
    state.engine().guardrails_changed();
    crate::audit::record(state, Some(actor), "guardrails.unbind", &format!("{scope}:{id}"), json!({})).await;
    Ok(())
}
