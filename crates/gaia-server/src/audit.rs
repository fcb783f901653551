//! Writing and reading the audit log of security-relevant actions (`GET /api/v1/audit`, administrators).
//! Writing never fails a request: a record that cannot be stored is logged instead.

use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Records `action` on `target` by `actor`.
pub(crate) async fn record(state: &AppState, actor: Option<&str>, action: &str, target: &str, details: Value) {
    if let Err(e) = state.storage().record_audit(actor, action, target, &details).await {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}

/// `GET /api/v1/audit` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Only actions starting with this (`auth.`, `key.`, `kb.`, `grant.`…).
    #[serde(default)]
    pub action: Option<String>,
    /// Most records (default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/audit`: security actions and access-control changes, newest first.
pub async fn list(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> ApiResult<Json<Value>> {
    let records = state.storage().audit_records(q.action.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(json!({"records": records})))
}
