//! The caller's own API keys: `GET/POST /api/v1/keys`, `DELETE /api/v1/keys/{id}`,
//! `POST /api/v1/keys/{id}/rotate`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, OptionalJson};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use gaia_core::auth::{RotatedKey, DEFAULT_ROTATION_OVERLAP};
use gaia_core::events::Event;
use gaia_core::storage::ApiKeyRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Default, Deserialize)]
pub struct CreateKey {
    /// Optional label.
    #[serde(default)]
    pub name: Option<String>,
    /// The key expires this many days from now (at least 1). Not with `expires_at`.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// The key expires at this time (RFC 3339, in the future). Not with `expires_in_days`.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of `POST /api/v1/keys/{id}/rotate` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working (default 86400, 0 = it stops at once, at most 30 days).
    #[serde(default)]
    pub overlap_secs: Option<u64>,
}

/// The expiry asked for in a creation body.
pub(crate) fn requested_expiry(body: &CreateKey, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match (body.expires_in_days, body.expires_at) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give either `expires_in_days` or `expires_at`, not both")),
        (Some(0), None) => Err(ApiError::bad_request("`expires_in_days` must be at least 1")),
        (Some(d), None) => {
            // Past ~100 years the authenticator refuses it with a clear message.
            Ok(Some(now + chrono::Duration::days(i64::from(d.min(100 * 366)))))
        }
        (None, e) => Ok(e),
    }
}

/// What the answer shows of a new key: the key itself (once) and its record.
fn created(rec: &ApiKeyRecord, key: &str) -> Value {
    json!({"key": key, "id": rec.id, "prefix": rec.prefix, "name": rec.name, "created_at": rec.created_at,
           "expires_at": rec.expires_at})
}

/// Creates a key for the caller; the key is in the answer once and never again.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<impl IntoResponse> {
    let expires_at = requested_expiry(&body, Utc::now())?;
    let (rec, key) = issue_key(&state, &p.user_id, &p.user_id, body.name.as_deref(), expires_at).await?;
    Ok((StatusCode::CREATED, Json(created(&rec, &key))))
}

/// Creates a key for `owner` on `actor`'s behalf (the caller themselves, or an administrator in the
/// console), audited; the key itself is returned once.
pub(crate) async fn issue_key(
    state: &AppState,
    actor: &str,
    owner: &str,
    name: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> ApiResult<(ApiKeyRecord, String)> {
    let (rec, key) = state.auth().create_api_key_with_expiry(owner, name, expires_at).await?;
    let mut details = json!({"prefix": rec.prefix, "name": rec.name, "expires_at": rec.expires_at});
    if owner != actor {
        details["owner"] = json!(owner);
    }
    crate::audit::record(state, Some(actor), "key.create", &rec.id, details).await;
    Ok((rec, key))
}

/// Rotates one of the caller's keys: a new key (same name, same lifetime) is in the answer once, and
/// the old key keeps working for `overlap_secs` (its `expires_at` in `rotated`). Another user's key is
/// a 404; a revoked, expired or already rotated key a 409.
pub async fn rotate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateKey>,
) -> ApiResult<impl IntoResponse> {
    owned(&state, &p.user_id, &id).await?;
    let overlap = body.overlap_secs.map_or(DEFAULT_ROTATION_OVERLAP, Duration::from_secs);
    let r = rotate_key(&state, &p.user_id, &id, overlap).await?;
    let mut answer = created(&r.new, &r.key);
    answer["rotated"] = json!({"id": r.old.id, "prefix": r.old.prefix, "expires_at": r.old.expires_at});
    Ok((StatusCode::CREATED, Json(answer)))
}

/// 404 unless key `id` is `user`'s.
async fn owned(state: &AppState, user: &str, id: &str) -> ApiResult<()> {
    match state.storage().get_api_key(id).await? {
        Some(k) if k.user_id == user => Ok(()),
        _ => Err(ApiError::not_found(format!("API key {id} not found"))),
    }
}

/// Rotates key `id` on `actor`'s behalf (whoever may), audited.
pub(crate) async fn rotate_key(state: &AppState, actor: &str, id: &str, overlap: Duration) -> ApiResult<RotatedKey> {
    let r = state.auth().rotate_api_key(id, overlap).await?;
    let details = json!({"new_key_id": r.new.id, "prefix": r.new.prefix, "overlap_secs": overlap.as_secs(),
                         "old_expires_at": r.old.expires_at});
    crate::audit::record(state, Some(actor), "key.rotate", id, details).await;
    Ok(r)
}

/// The caller's keys (prefixes only).
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let keys = state.storage().list_api_keys(Some(&p.user_id)).await?;
    Ok(Json(json!({"keys": keys})))
}

/// Revokes one of the caller's keys; it stops working at once. Another user's key is a 404.
pub async fn revoke(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    owned(&state, &p.user_id, &id).await?;
    revoke_key(&state, &p.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes key `id` on `actor`'s behalf: it stops working at once on every instance; audited.
pub(crate) async fn revoke_key(state: &AppState, actor: &str, id: &str) -> ApiResult<()> {
    state.auth().revoke_api_key(id).await?;
    crate::audit::record(state, Some(actor), "key.revoke", id, json!({})).await;
    state.events().publish(Event::ApiKeyRevoked { key_id: id.to_string() });
    Ok(())
}
