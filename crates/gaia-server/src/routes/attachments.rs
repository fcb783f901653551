//! `POST /api/v1/attachments` (upload an image for chat) and `GET /api/v1/attachments/{id}` (its
//! bytes, to its owner only).
//!
//! An upload is either `multipart/form-data` with a `file` field (what browsers send) or the raw image
//! as the body with an `image/*` content type. The type is taken from the bytes' signature, never from
//! what the client claims; only PNG, JPEG, GIF and WebP are kept. Send the returned `id` in the chat
//! body's `attachments` to show the image to a vision model.

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gaia_core::storage::Attachment;
use serde_json::{json, Value};

/// The JSON description of an attachment, with the URL of its bytes.
pub fn attachment_json(a: &Attachment) -> Value {
    json!({
        "id": a.id, "media_type": a.media_type, "file_name": a.file_name, "size": a.size,
        "created_at": a.created_at, "url": format!("/api/v1/attachments/{}", a.id),
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("images may be at most {limit} bytes"))
}

/// `POST /api/v1/attachments`: 201 with `{id, media_type, file_name, size, url}`.
pub async fn upload(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Response> {
    let limit = state.config().chat.max_image_bytes;
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let (name, bytes) = if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, &state).await.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let mut found = None;
        while let Some(field) =
            form.next_field().await.map_err(|e| multipart_error(e.status(), e.body_text(), limit))?
        {
            if field.name() == Some("file") {
                let name = field.file_name().map(str::to_string);
                let data = field.bytes().await.map_err(|e| multipart_error(e.status(), e.body_text(), limit))?;
                found = Some((name, data));
                break;
            }
        }
        found.ok_or_else(|| ApiError::bad_request("the form needs a `file` field with the image"))?
    } else if content_type.starts_with("image/") {
        let name = req.headers().get("x-file-name").and_then(|v| v.to_str().ok()).map(str::to_string);
        let data =
            Bytes::from_request(req, &state).await.map_err(|e| multipart_error(e.status(), e.body_text(), limit))?;
        (name, data)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the image as multipart/form-data (field `file`) or as the body with an image/* content type",
        ));
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the image is empty"));
    }
    if bytes.len() > limit {
        return Err(too_large(limit));
    }
    let a = state.storage().create_attachment(&p.user_id, name.as_deref(), &bytes).await?;
    tracing::info!(user_id = %p.user_id, attachment_id = %a.id, size = a.size, media_type = %a.media_type, "image uploaded");
    Ok((StatusCode::CREATED, axum::Json(attachment_json(&a))).into_response())
}

fn multipart_error(status: StatusCode, text: String, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::new(if status.is_client_error() { status } else { StatusCode::BAD_REQUEST }, text)
    }
}

/// `GET /api/v1/attachments/{id}`: the image, to its owner (404 for anyone else).
pub async fn download(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let (a, bytes) = state
        .storage()
        .attachment_bytes(&p.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Attachment {id} not found")))?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.media_type).unwrap_or(HeaderValue::from_static("image/png")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400, immutable"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(resp)
}
