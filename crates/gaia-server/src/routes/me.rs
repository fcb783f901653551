//! The caller's own data, for the rights of players in the EU and California:
//! `GET /api/v1/me/export` (everything stored about them, as one JSON download) and `DELETE
//! /api/v1/me` (erase it all; the body must confirm with the account's email).
//!
//! What the export holds is `gaia_core::storage::UserExport` plus the notes of the caller's private
//! knowledge-base area (`users/<id>/`). Erasure deletes those notes (each as a commit by the server,
//! so the user's email is not written into the history; past versions stay in the git history, which
//! an operator rewrites if required), then erases the account in one transaction
//! (`Storage::erase_user`: personal rows deleted, accounting and audit rows anonymized). Cached
//! validations of the user's keys and sessions are outdated at once on every instance (the
//! credentials version), and their sockets close.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Most private notes one export or erasure handles (each is a file; erasure commits one by one).
pub const MAX_PRIVATE_NOTES: usize = 10_000;

/// A note of the caller's private knowledge-base area.
#[derive(Debug, Serialize)]
struct PrivateNote {
    path: String,
    content: String,
}

/// The caller's private notes (`users/<id>/`), at most [`MAX_PRIVATE_NOTES`].
fn private_notes(state: &AppState, user_id: &str) -> Vec<PrivateNote> {
    let Some(kb) = state.kb() else { return Vec::new() };
    let prefix = format!("users/{user_id}/");
    kb.documents()
        .into_iter()
        .filter(|d| d.path.as_str().starts_with(&prefix))
        .take(MAX_PRIVATE_NOTES)
        .map(|d| PrivateNote { path: d.path.as_str().to_string(), content: d.content.clone() })
        .collect()
}

/// `GET /api/v1/me/export`: everything stored about the caller, as an attachment
/// `gaia-export-<id>.json` (`{account: UserExport, kb_private_notes: [{path, content}]}`; attachment
/// bytes are not inlined: each is at `GET /api/v1/attachments/{id}`).
pub async fn export(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    state.usage().flush().await;
    let account = state.storage().export_user(&p.user_id).await?;
    let notes = private_notes(&state, &p.user_id);
    let body = serde_json::json!({"account": account, "kb_private_notes": notes});
    let mut resp = axum::Json(body).into_response();
    let disposition = format!("attachment; filename=\"gaia-export-{}.json\"", p.user_id);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Body of `DELETE /api/v1/me`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    /// The account's email, to confirm.
    pub confirm: String,
}

/// `DELETE /api/v1/me`: erases the caller and everything of theirs (204). The body must be
/// `{"confirm": "<the account's email>"}` (400 otherwise), so that no stray request erases an account.
pub async fn erase(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<EraseBody>,
) -> ApiResult<StatusCode> {
    let user = state
        .storage()
        .get_user(&p.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("this account no longer exists"))?;
    if !body.confirm.trim().eq_ignore_ascii_case(user.email.trim()) {
        return Err(ApiError::bad_request("to erase this account, send {\"confirm\": \"<its email>\"}"));
    }
    if let Some(kb) = state.kb() {
        for note in private_notes(&state, &p.user_id) {
            match kb.delete(&note.path, None, None).await {
                Ok(_) | Err(gaia_kb::KbError::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(error = %e, path = %note.path, "cannot delete a private note of an erased account");
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the knowledge base could not be changed; nothing else was erased, try again",
                    ));
                }
            }
        }
    }
    state.usage().flush().await;
    // The asset files first: their rows, which name them, go with the account.
    if let Err(e) = state.assets().erase_owner(&p.user_id).await {
        tracing::error!(error = %e, "cannot delete the asset files of an erased account");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the asset store could not be changed; nothing else was erased, try again",
        ));
    }
    state.storage().erase_user(&p.user_id).await?;
    // Outdate this instance's cached validations now (the others notice within a poll).
    if let Err(e) = state.auth().refresh_revocations().await {
        tracing::warn!(error = %e, "cannot read the credentials version after an erasure");
    }
    tracing::info!(user_id = %p.user_id, "account erased at its owner's request");
    Ok(StatusCode::NO_CONTENT)
}
