//! Local users and tokens: `POST /api/v1/auth/register|login|refresh|logout|validate`.
//!
//! Access tokens are HS256 JWTs (audience `authenticated`, `sub` = user id). Refresh tokens are random,
//! stored as SHA-256 hashes, and rotate: each refresh revokes the token it used.

use crate::error::{ApiError, ApiResult};
use crate::extract::{credential, ApiJson, Auth, OptionalJson};
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use gaia_core::auth::{hash_api_key, hash_password, verify_password, Principal};
use gaia_core::storage::User;
use rand::distr::Alphanumeric;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Body of register.
#[derive(Debug, Deserialize)]
pub struct Register {
    /// Email.
    pub email: String,
    /// Password (8 characters or more).
    pub password: String,
    /// Optional display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Body of login.
#[derive(Debug, Deserialize)]
pub struct Login {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Body of refresh and logout.
#[derive(Debug, Default, Deserialize)]
pub struct RefreshBody {
    /// The refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Logout only: revoke every refresh token of the caller (needs credentials).
    #[serde(default)]
    pub all: bool,
}

/// Issues an access token and a fresh refresh token for `user`.
async fn tokens(state: &AppState, user: &User) -> ApiResult<Value> {
    let ttl = Duration::from_secs(state.config().jwt_ttl_secs);
    let access = state.auth().jwt().issue(&user.id, Some(&user.email), ttl)?;
    let refresh: String =
        format!("gaia_rt_{}", rand::rng().sample_iter(&Alphanumeric).take(48).map(char::from).collect::<String>());
    let expires = chrono::Utc::now() + chrono::Duration::seconds(state.config().refresh_ttl_secs as i64);
    state.storage().insert_refresh_token(&user.id, &hash_api_key(&refresh), expires).await?;
    Ok(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl.as_secs(),
        "refresh_token": refresh,
        "user": user,
    }))
}

/// Creates a local user (201) and signs them in. 409 if the email is taken.
pub async fn register(State(state): State<AppState>, ApiJson(b): ApiJson<Register>) -> ApiResult<impl IntoResponse> {
    let hash = hash_password(&b.password)?;
    let mut user = state.storage().create_user(&b.email, Some(&hash), b.display_name.as_deref()).await?;
    tracing::info!(user_id = %user.id, "user registered");
    user.is_admin = promote_if_admin(&state, &user).await?;
    crate::audit::record(&state, Some(&user.id), "auth.register", &user.id, json!({"via": "api"})).await;
    Ok((StatusCode::CREATED, Json(tokens(&state, &user).await?)))
}

/// Applies the admin rules of `[rbac]` to a new account: an email listed in `rbac.admin_emails`, or
/// the first account when `rbac.first_user_admin` is on, becomes an administrator. Returns whether
/// the account is one.
pub(crate) async fn promote_if_admin(state: &AppState, user: &gaia_core::storage::User) -> ApiResult<bool> {
    let cfg = &state.config().rbac;
    if cfg.admin_emails.iter().any(|e| e.trim().eq_ignore_ascii_case(&user.email)) {
        state.storage().set_admin(&user.id, true).await?;
        tracing::info!(user_id = %user.id, "administrator by configuration (rbac.admin_emails)");
        return Ok(true);
    }
    if cfg.first_user_admin && state.storage().promote_first_admin(&user.id).await? {
        tracing::info!(user_id = %user.id, "first account: administrator (rbac.first_user_admin)");
        return Ok(true);
    }
    Ok(user.is_admin)
}

/// Signs in with email and password.
pub async fn login(State(state): State<AppState>, ApiJson(b): ApiJson<Login>) -> ApiResult<Json<Value>> {
    let invalid = || ApiError::unauthorized("invalid email or password");
    let user = state.storage().get_user_by_email(&b.email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match hash {
        // argon2 verification is CPU-heavy; keep it off the async workers.
        Some(h) => {
            let pw = b.password.clone();
            tokio::task::spawn_blocking(move || verify_password(&pw, &h)).await.map_err(ApiError::internal)?
        }
        None => false,
    };
    match user {
        Some(u) if ok => {
            crate::audit::record(&state, Some(&u.id), "auth.login", &u.id, json!({"via": "api"})).await;
            Ok(Json(tokens(&state, &u).await?))
        }
        _ => {
            crate::audit::record(&state, None, "auth.login_failed", b.email.trim(), json!({"via": "api"})).await;
            Err(invalid())
        }
    }
}

/// Trades a refresh token for a new token pair; the old refresh token stops working.
pub async fn refresh(State(state): State<AppState>, ApiJson(b): ApiJson<RefreshBody>) -> ApiResult<Json<Value>> {
    let token = b.refresh_token.ok_or_else(|| ApiError::bad_request("`refresh_token` is required"))?;
    let hash = hash_api_key(&token);
    let invalid = || ApiError::unauthorized("refresh token is invalid, expired or revoked");
    let stored = state.storage().find_refresh_token(&hash).await?.ok_or_else(invalid)?;
    if stored.revoked_at.is_some() || stored.expires_at <= chrono::Utc::now() {
        return Err(invalid());
    }
    if !state.storage().revoke_refresh_token(&hash).await? {
        return Err(invalid()); // used concurrently by someone else
    }
    let user = state.storage().get_user(&stored.user_id).await?.ok_or_else(invalid)?;
    Ok(Json(tokens(&state, &user).await?))
}

/// Optional credentials: `None` when the request carries none.
pub struct MaybeAuth(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match credential(parts)? {
            None => Ok(MaybeAuth(None)),
            Some(_) => Ok(MaybeAuth(Some(Auth::from_request_parts(parts, state).await?.0))),
        }
    }
}

/// Revokes the given refresh token, or with `{"all": true}` every refresh token of the caller (204).
pub async fn logout(
    State(state): State<AppState>,
    MaybeAuth(p): MaybeAuth,
    OptionalJson(b): OptionalJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    if b.all {
        let p = p.ok_or_else(|| ApiError::unauthorized("`all` needs credentials"))?;
        state.storage().revoke_user_refresh_tokens(&p.user_id).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    match b.refresh_token {
        Some(t) => {
            state.storage().revoke_refresh_token(&hash_api_key(&t)).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::bad_request("`refresh_token` (or `all: true` with credentials) is required")),
    }
}

/// Body of validate: a token to check when no header is sent.
#[derive(Debug, Default, Deserialize)]
pub struct ValidateBody {
    /// An API key or a JWT.
    #[serde(default)]
    pub token: Option<String>,
}

/// Checks the request's credentials (or `{"token": ...}`) and describes the principal; 401 if invalid.
pub async fn validate(
    State(state): State<AppState>,
    MaybeAuth(p): MaybeAuth,
    OptionalJson(body): OptionalJson<ValidateBody>,
) -> ApiResult<Json<Value>> {
    let principal = match p {
        Some(p) => p,
        None => {
            let token = body
                .token
                .ok_or_else(|| ApiError::unauthorized("no credentials: send a header or {\"token\": ...}"))?;
            state.auth().authenticate_bearer(&token).await?
        }
    };
    Ok(Json(json!({
        "valid": true,
        "user_id": principal.user_id,
        "email": principal.email,
        "is_admin": principal.is_admin,
        "method": principal.method,
    })))
}
