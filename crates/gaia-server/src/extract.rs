//! Request extractors: the authenticated caller ([`Auth`]) and JSON bodies with JSON errors ([`ApiJson`]).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use gaia_core::auth::Principal;

/// The authenticated caller. Credentials: `X-API-Key: <key>` or `Authorization: Bearer <key or JWT>`,
/// or the web UI's session cookie (then changes need the session's `x-csrf-token` header, else 403).
/// Missing or invalid credentials are a 401 with a JSON body.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The credential a request carries, if any.
pub(crate) enum Credential {
    ApiKey(String),
    Bearer(String),
}

pub(crate) fn credential(headers: &axum::http::HeaderMap) -> Result<Option<Credential>, ApiError> {
    if let Some(v) = headers.get("x-api-key") {
        let v = v.to_str().map_err(|_| ApiError::unauthorized("X-API-Key header is not valid text"))?;
        return Ok(Some(Credential::ApiKey(v.trim().to_string())));
    }
    if let Some(v) = headers.get(AUTHORIZATION) {
        let v = v.to_str().map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?;
        let (scheme, token) = v.trim().split_once(' ').unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::unauthorized("Authorization header must be `Bearer <token>`"));
        }
        return Ok(Some(Credential::Bearer(token.trim().to_string())));
    }
    Ok(None)
}

/// The admission of a request to call models, made by its route's admission middleware
/// ([`crate::Routes::quota`]): what every model call of the conversation engine takes.
#[derive(Debug, Clone)]
pub struct Admission(pub gaia_chat::Admitted);

impl<S: Send + Sync> FromRequestParts<S> for Admission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<gaia_chat::Admitted>().cloned().map(Admission).ok_or_else(|| {
            ApiError::internal("a route that calls models was declared without admission (Routes::quota)")
        })
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Already authenticated by the access middleware.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Auth(p.clone()));
        }
        authenticate(state, &parts.headers, &parts.method).await.map(Auth)
    }
}

/// The caller of a request with these headers: an API key (`X-API-Key`), a bearer token or key, or the
/// web UI's session cookie (with its CSRF token on unsafe methods). Long-lived connections (WebSockets)
/// call it again with the headers they were opened with, to notice revoked credentials.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    method: &axum::http::Method,
) -> Result<Principal, ApiError> {
    let auth = state.auth();
    let principal = match credential(headers)? {
        Some(Credential::ApiKey(k)) => auth.authenticate_api_key(&k).await,
        Some(Credential::Bearer(t)) => auth.authenticate_bearer(&t).await,
        None => match crate::session::cookie(headers, crate::session::SESSION_COOKIE) {
            Some(token) => {
                let (principal, session) = auth.authenticate_session(&token).await.map_err(ApiError::from)?;
                if crate::session::is_unsafe(method) {
                    let sent = headers.get(crate::session::CSRF_HEADER).and_then(|v| v.to_str().ok());
                    if !sent.is_some_and(|t| crate::session::tokens_match(t, &session.csrf_token)) {
                        return Err(ApiError::new(
                            axum::http::StatusCode::FORBIDDEN,
                            "missing or wrong CSRF token (send the page's token as `x-csrf-token`)",
                        ));
                    }
                }
                Ok(principal)
            }
            None => {
                return Err(ApiError::unauthorized(
                    "missing credentials: send `X-API-Key: <key>` or `Authorization: Bearer <key or token>`",
                ))
            }
        },
    };
    principal.map_err(ApiError::from)
}

/// `axum::Json` whose rejections are JSON [`ApiError`]s (400 for malformed or mis-shaped bodies, 413 for
/// bodies over the limit, 415 without a JSON content type).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for ApiJson<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// An optional JSON body: an empty body gives `T::default()`; anything else must be valid JSON of `T`
/// (else 400; over the body limit, 413).
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            axum::body::Bytes::from_request(req, state).await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}
