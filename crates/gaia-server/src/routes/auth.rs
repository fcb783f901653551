//! Local users and tokens: `POST /api/v1/auth/register|login|refresh|logout|validate`, and
//! `POST|GET /api/v1/auth/invites`, `DELETE /api/v1/auth/invites/{id}` (administrators) for
//! invitation-only registration.
//!
//! Access tokens are HS256 JWTs (audience `authenticated`, `sub` = user id, `gaia_sid` = the sign-in
//! session). Refresh tokens are random, stored as SHA-256 hashes, and rotate: each refresh uses up the
//! token it was given. All the refresh tokens of one sign-in form a family; presenting a used-up token
//! again (a stolen copy, or its owner after the thief) revokes the whole family and the access tokens
//! of that sign-in. Logout revokes the sign-in the same way.
//!
//! Sign-in and registration are public and each costs an argon2 hash (about 19 MiB): hashes go
//! through the server's [`PasswordGate`](gaia_core::auth::PasswordGate) (503 with `Retry-After` when it
//! is full), and attempts are rate-limited with the shared rate limiter, charged before hashing
//! (failed sign-ins per account and client address, attempts per client address; 429 with
//! `Retry-After`; `[auth]` sets the limits). Unknown accounts are checked against a dummy hash, so they
//! cost the same as known ones.

use crate::error::{ApiError, ApiResult};
use crate::extract::{credential, ApiJson, Auth, Credential, OptionalJson};
use crate::state::AppState;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gaia_core::auth::sign_in::{self, MAX_INVITE_TOKEN_LEN};
use gaia_core::auth::{hash_api_key, looks_like_jwt, GateError, Principal, MAX_PASSWORD_LEN};
use gaia_core::config::{Registration, MAX_INVITE_TTL_SECS};
use gaia_core::ratelimit::Limit;
use gaia_core::storage::{RefreshOutcome, User};
use gaia_core::{Config, CoreError};
use rand::distr::Alphanumeric;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Longest accepted email address, in bytes (checked before any lookup).
const MAX_EMAIL_LEN: usize = 320;
/// Longest accepted refresh token; anything longer is refused without hashing or a lookup.
const MAX_REFRESH_TOKEN_LEN: usize = 128;

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
    /// The invitation's token (needed when `auth.registration = "invite"`).
    #[serde(default)]
    pub invite_token: Option<String>,
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
    /// Logout only: revoke every sign-in of the caller (needs credentials).
    #[serde(default)]
    pub all: bool,
}

/// A refusal of sign-in or registration: an API error, or too many attempts (429 or 503, with
/// `Retry-After`).
#[derive(Debug)]
pub enum AuthError {
    /// The usual `{"detail"}` error.
    Api(ApiError),
    /// Rate-limited (429) or the hashing queue is full (503).
    Throttled {
        /// 429 or 503.
        status: StatusCode,
        /// When to try again.
        retry_after: Duration,
        /// Why.
        message: String,
    },
}

impl AuthError {
    /// The status and message, for callers that render their own page (the web UI).
    pub(crate) fn parts(&self) -> (StatusCode, &str, Option<Duration>) {
        match self {
            AuthError::Api(e) => (e.status, &e.message, None),
            AuthError::Throttled { status, retry_after, message } => (*status, message, Some(*retry_after)),
        }
    }
}

/// A `Retry-After` header value (whole seconds, at least 1).
pub(crate) fn retry_after_value(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs().max(1) + u64::from(d.subsec_nanos() > 0))
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            AuthError::Api(e) => e.into_response(),
            AuthError::Throttled { status, retry_after, message } => {
                let mut resp = ApiError::new(status, message).into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, retry_after_value(retry_after));
                resp
            }
        }
    }
}

impl From<ApiError> for AuthError {
    fn from(e: ApiError) -> Self {
        AuthError::Api(e)
    }
}

impl From<CoreError> for AuthError {
    fn from(e: CoreError) -> Self {
        AuthError::Api(e.into())
    }
}

impl From<GateError> for AuthError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Busy(retry_after) => {
                AuthError::Throttled { status: StatusCode::SERVICE_UNAVAILABLE, retry_after, message: e.to_string() }
            }
            GateError::Core(e) => e.into(),
            other => AuthError::Api(ApiError::internal(other)),
        }
    }
}

/// Who sent a request: the address of its client ([`crate::security::client_address`]: the peer, or
/// the client a trusted proxy names; `None` when the server runs without peer addresses), and whether
/// it came straight from a loopback peer with no forwarding header (no reverse proxy in between: the
/// sender is on this machine).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr {
    /// The client's address.
    pub addr: Option<IpAddr>,
    /// A loopback peer, and no `X-Forwarded-For`, `Forwarded` or `X-Real-IP` header.
    pub direct_loopback: bool,
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let trusted = &state.config().auth.trusted_proxies;
        if crate::security::untrusted_proxy(&parts.headers, peer, trusted) {
            crate::security::warn_untrusted_proxy_once();
        }
        Ok(ClientAddr {
            addr: crate::security::client_address(&parts.headers, peer, trusted),
            direct_loopback: peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
                && !crate::security::is_forwarded(&parts.headers),
        })
    }
}

impl ClientAddr {
    /// The rate-limit key of the address: IPv6 clients by /64 (one subscriber's network).
    fn key(&self) -> Option<String> {
        self.addr.map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        })
    }
}

/// Charges the limits (all or none), or says when to come back. An unreachable limiter lets the
/// attempt through (the hashing gate still bounds the cost).
async fn throttle(state: &AppState, limits: Vec<Limit>, what: &str) -> Result<(), AuthError> {
    let limits: Vec<Limit> = limits.into_iter().filter(|l| l.limit > 0).collect();
    if limits.is_empty() {
        return Ok(());
    }
    let window = Duration::from_secs(state.config().auth.window_secs);
    match state.quotas().limiter().acquire(&limits, window).await {
        Ok(d) if d.allowed => Ok(()),
        Ok(d) => {
            tracing::warn!(limit = %d.refused_by.and_then(|i| limits.get(i)).map(|l| l.key.as_str()).unwrap_or(""),
                "too many {what} attempts");
            Err(AuthError::Throttled {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: d.retry_after,
                message: format!("too many {what} attempts; try again later"),
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; letting a {what} attempt through");
            Ok(())
        }
    }
}

/// Rate-limit key of the failed sign-ins of an account from one client address (the normalised
/// email and the address, hashed: no addresses in Redis keys). Another address of the account's owner
/// has its own count, so guessing from one address never locks the owner out.
fn account_key(email: &str, client: &ClientAddr) -> String {
    let who = format!("{}\n{}", email.trim().to_lowercase(), client.key().unwrap_or_default());
    format!("auth:login:acct:{}", hash_api_key(&who))
}

/// Refuses over-long email addresses and passwords before any lookup or hash.
fn check_lengths(email: &str, password: &str) -> Result<(), AuthError> {
    if email.len() > MAX_EMAIL_LEN {
        return Err(ApiError::bad_request(format!("email address is longer than {MAX_EMAIL_LEN} characters")).into());
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::bad_request(format!("password must be at most {MAX_PASSWORD_LEN} characters")).into());
    }
    Ok(())
}

/// Checks a password sign-in: the limits (failed sign-ins per account and client address, attempts
/// per client address), then the password through the hashing gate (an unknown account against a dummy
/// hash, at the same cost). Every attempt is charged to both limits BEFORE hashing, atomically, so a
/// burst of parallel guesses gets at most the limit through to the hash; a successful sign-in is
/// refunded to the per-account count (it is not a failure). A failure is audited (`via`: `api` or `web`).
pub(crate) async fn check_password(
    state: &AppState,
    client: ClientAddr,
    email: &str,
    password: &str,
    via: &str,
) -> Result<User, AuthError> {
    check_lengths(email, password)?;
    let cfg = &state.config().auth;
    let account = account_key(email, &client);
    let mut limits = vec![Limit::new(account.clone(), cfg.login_failures_per_account, 1)];
    if let Some(addr) = client.key() {
        limits.push(Limit::new(format!("auth:login:ip:{addr}"), cfg.login_attempts_per_address, 1));
    }
    throttle(state, limits, "sign-in").await?;
    let user = state.storage().get_user_by_email(email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let refund = || async {
        if cfg.login_failures_per_account > 0 {
            let window = Duration::from_secs(cfg.window_secs);
            if let Err(e) = state.quotas().limiter().refund(&account, 1, window).await {
                tracing::warn!(error = %e, "rate limiter unavailable; a sign-in that did not fail stays counted");
            }
        }
    };
    let ok = match state.password_gate().verify(password, hash).await {
        Ok(ok) => ok,
        // Not hashed (the gate was full): no guess was checked.
        Err(e) => {
            refund().await;
            return Err(e.into());
        }
    };
    match user {
        Some(u) if ok => {
            refund().await;
            Ok(u)
        }
        _ => {
            crate::audit::record(state, None, "auth.login_failed", email.trim(), json!({"via": via})).await;
            Err(ApiError::unauthorized("invalid email or password").into())
        }
    }
}

/// Creates an account as `auth.registration` allows (an invitation's token in invite mode), within
/// the per-address limit, hashing through the gate, then applies the administrator rules of `[rbac]`.
pub(crate) async fn create_account(
    state: &AppState,
    client: ClientAddr,
    b: &Register,
    via: &str,
) -> Result<User, AuthError> {
    check_lengths(&b.email, &b.password)?;
    let sent_token = b.invite_token.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let token = match state.config().auth.registration {
        // Open registration needs no invitation, but one sent is used (it proves an address of
        // `rbac.admin_emails`) and must be valid.
        Registration::Open => sent_token,
        Registration::Closed => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "registration is closed on this server: an administrator creates accounts (`gaia users create`)",
            )
            .into())
        }
        Registration::Invite => Some(sent_token.ok_or_else(|| {
            ApiError::new(StatusCode::FORBIDDEN, "registration needs an invitation: send its `invite_token`")
        })?),
    };
    if token.is_some_and(|t| t.len() > MAX_INVITE_TOKEN_LEN) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the invitation is not valid").into());
    }
    let invite = token.map(hash_api_key);
    if let Some(addr) = client.key() {
        let limit = state.config().auth.registrations_per_address;
        throttle(state, vec![Limit::new(format!("auth:register:ip:{addr}"), limit, 1)], "registration").await?;
    }
    // Checked before hashing, so a made-up invitation costs no hash (its use is atomic, below).
    if let Some(h) = &invite {
        if !state.storage().invite_is_usable(h, &b.email).await? {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the invitation is unknown, expired, already used, or for another email address",
            )
            .into());
        }
    }
    let hash = state.password_gate().hash(&b.password).await?;
    let name = b.display_name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut user = match &invite {
        Some(h) => state.storage().create_user_with_invite(h, &b.email, Some(&hash), name).await?,
        None => state.storage().create_user(&b.email, Some(&hash), name).await?,
    };
    tracing::info!(user_id = %user.id, via, invited = invite.is_some(), "user registered");
    // An address of `rbac.admin_emails` counts only once proven by an invitation an administrator made
    // for it; otherwise anyone could register it first (a loopback listener proves nothing: a reverse
    // proxy on the same host forwards the whole Internet to it).
    let email_proven = match &invite {
        Some(h) => state.storage().invite_names_email(h, &user.email).await?,
        None => false,
    };
    user.is_admin = promote_if_admin(state, &user, email_proven, client).await?;
    crate::audit::record(state, Some(&user.id), "auth.register", &user.id, json!({"via": via})).await;
    Ok(user)
}

/// A new random refresh token.
fn new_refresh_token() -> String {
    format!("gaia_rt_{}", rand::rng().sample_iter(&Alphanumeric).take(48).map(char::from).collect::<String>())
}

/// The token pair answered for `user` in sign-in session `sid`.
fn token_pair(state: &AppState, user: &User, sid: &str, refresh: &str) -> ApiResult<Value> {
    let ttl = Duration::from_secs(state.config().jwt_ttl_secs);
    let access = state.auth().jwt().issue_for_session(&user.id, Some(&user.email), Some(sid), ttl)?;
    Ok(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl.as_secs(),
        "refresh_token": refresh,
        "user": user,
    }))
}

fn refresh_expiry(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
        + chrono::Duration::seconds(i64::try_from(state.config().refresh_ttl_secs).unwrap_or(i64::MAX / 2_000))
}

/// Starts a sign-in session for `user`: an access token and the first refresh token of its family.
async fn tokens(state: &AppState, user: &User) -> ApiResult<Value> {
    let refresh = new_refresh_token();
    let sid = state.storage().create_sign_in(&user.id, &hash_api_key(&refresh), refresh_expiry(state)).await?;
    token_pair(state, user, &sid, &refresh)
}

/// Creates a local user (201) and signs them in. 409 if the email is taken; 403 when registration is
/// closed, or by invitation and the invitation is missing or not valid.
pub async fn register(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(b): ApiJson<Register>,
) -> Result<Response, AuthError> {
    let user = create_account(&state, client, &b, "api").await?;
    Ok((StatusCode::CREATED, Json(tokens(&state, &user).await?)).into_response())
}

/// Whether `rbac.first_user_admin` applies: it is on, and the server listens on a loopback address
/// (nobody else can register first) or `rbac.first_user_admin_anywhere` says so.
pub fn first_user_admin_applies(config: &Config) -> bool {
    config.rbac.first_user_admin && (listens_on_loopback(config) || config.rbac.first_user_admin_anywhere)
}

/// Whether the server listens on a loopback address only (nobody else can reach it to register).
fn listens_on_loopback(config: &Config) -> bool {
    config.server.bind.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
}

/// A sentence for the start-up log on how the first administrator comes to be.
pub fn first_user_admin_notice(config: &Config) -> String {
    if first_user_admin_applies(config) {
        if config.rbac.first_user_admin_anywhere {
            "the first account to register becomes an administrator, from wherever it registers \
             (rbac.first_user_admin_anywhere)"
                .into()
        } else {
            format!(
                "the first account to register becomes an administrator if it registers from this machine \
                 (server.bind {} is a loopback address; a registration through a reverse proxy, or with any \
                 X-Forwarded-For, Forwarded or X-Real-IP header, does not count)",
                config.server.bind
            )
        }
    } else if config.rbac.first_user_admin {
        format!(
            "the first account to register does NOT become an administrator: server.bind {} is not a loopback \
             address (create one with `gaia users create --email E --admin`, or set \
             rbac.first_user_admin_anywhere)",
            config.server.bind
        )
    } else {
        "no account becomes an administrator by registering first (rbac.first_user_admin = false)".into()
    }
}

/// Applies the admin rules of `[rbac]` to a new account: an email listed in `rbac.admin_emails` (when
/// `email_proven` by an invitation made for it), or the first account when [`first_user_admin_applies`]
/// and the request came straight from this machine (`client`: a loopback peer and no forwarding
/// header), unless `rbac.first_user_admin_anywhere`. Returns whether the account is one.
pub(crate) async fn promote_if_admin(
    state: &AppState,
    user: &gaia_core::storage::User,
    email_proven: bool,
    client: ClientAddr,
) -> ApiResult<bool> {
    let cfg = &state.config().rbac;
    let listed = cfg.admin_emails.iter().any(|e| e.trim().eq_ignore_ascii_case(&user.email));
    if listed && !email_proven {
        tracing::warn!(
            user_id = %user.id,
            "an address of rbac.admin_emails registered without an invitation made for it: not made an \
             administrator; use `gaia rbac admin` if it is really them"
        );
    }
    if listed && email_proven {
        state.storage().set_admin(&user.id, true).await?;
        tracing::info!(user_id = %user.id, "administrator by configuration (rbac.admin_emails)");
        return Ok(true);
    }
    let from_here = cfg.first_user_admin_anywhere || client.direct_loopback;
    if first_user_admin_applies(state.config()) && from_here && state.storage().promote_first_admin(&user.id).await? {
        tracing::info!(user_id = %user.id, "first account: administrator (rbac.first_user_admin)");
        return Ok(true);
    }
    Ok(user.is_admin)
}

/// Signs in with email and password. 401 for a wrong password or an unknown account (the same
/// answer, at the same cost); 429 / 503 with `Retry-After` when throttled.
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(b): ApiJson<Login>,
) -> Result<Json<Value>, AuthError> {
    let u = check_password(&state, client, &b.email, &b.password, "api").await?;
    crate::audit::record(&state, Some(&u.id), "auth.login", &u.id, json!({"via": "api"})).await;
    Ok(Json(tokens(&state, &u).await?))
}

/// Trades a refresh token for a new token pair in the same sign-in session; the old refresh token
/// stops working. A refresh token presented a second time revokes the whole session (401).
pub async fn refresh(State(state): State<AppState>, ApiJson(b): ApiJson<RefreshBody>) -> ApiResult<Json<Value>> {
    let token = b.refresh_token.ok_or_else(|| ApiError::bad_request("`refresh_token` is required"))?;
    let invalid = || ApiError::unauthorized("refresh token is invalid, expired or revoked");
    if token.is_empty() || token.len() > MAX_REFRESH_TOKEN_LEN {
        return Err(invalid());
    }
    let next = new_refresh_token();
    let outcome = state
        .storage()
        .rotate_refresh_token(&hash_api_key(&token), &hash_api_key(&next), refresh_expiry(&state))
        .await?;
    match outcome {
        RefreshOutcome::Rotated { user_id, sid } => {
            let user = state.storage().get_user(&user_id).await?.ok_or_else(invalid)?;
            Ok(Json(token_pair(&state, &user, &sid, &next)?))
        }
        RefreshOutcome::Reused { user_id, sid } => {
            sign_in::forget_sessions(state.cache(), std::slice::from_ref(&sid)).await;
            tracing::warn!(user_id = %user_id, sid = %sid, "a used refresh token was presented again: sign-in revoked");
            crate::audit::record(&state, None, "auth.refresh_reused", &user_id, json!({"sid": sid})).await;
            Err(ApiError::unauthorized(
                "this refresh token was already used: the sign-in session is revoked (its tokens may have been \
                 stolen); sign in again",
            ))
        }
        _ => Err(invalid()),
    }
}

/// Optional credentials: `None` when the request carries none.
pub struct MaybeAuth(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match credential(&parts.headers)? {
            None => Ok(MaybeAuth(None)),
            Some(_) => Ok(MaybeAuth(Some(Auth::from_request_parts(parts, state).await?.0))),
        }
    }
}

/// The sign-in session of the request's bearer token, when it is one of Gaia's access tokens.
fn bearer_session(state: &AppState, parts_headers: &axum::http::HeaderMap) -> Option<String> {
    match credential(parts_headers).ok()?? {
        Credential::Bearer(t) if looks_like_jwt(&t) => state.auth().jwt().verify(&t).ok()?.sid,
        _ => None,
    }
}

/// Ends sign-in sessions (204): the one of the given refresh token and the one of the bearer access
/// token, or with `{"all": true}` every one of the caller. Their refresh tokens stop working and
/// their access tokens are refused from now on. Credentials that are no longer valid (an expired or
/// revoked access token) count as none: the given refresh token is revoked all the same; only `all`
/// needs valid ones.
pub async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    auth: Result<MaybeAuth, ApiError>,
    OptionalJson(b): OptionalJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    let (p, auth_error) = match auth {
        Ok(MaybeAuth(p)) => (p, None),
        Err(e) => (None, Some(e)),
    };
    if b.all {
        let p = match (p, auth_error) {
            (Some(p), _) => p,
            (None, Some(e)) => return Err(e),
            (None, None) => return Err(ApiError::unauthorized("`all` needs credentials")),
        };
        let sids = state.storage().revoke_user_sign_ins(&p.user_id, "signed out everywhere").await?;
        sign_in::forget_sessions(state.cache(), &sids).await;
        crate::audit::record(&state, Some(&p.user_id), "auth.logout", &p.user_id, json!({"all": true})).await;
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut sids = Vec::new();
    if p.is_some() {
        sids.extend(bearer_session(&state, &headers));
    }
    if let Some(t) = b.refresh_token.as_deref().filter(|t| t.len() <= MAX_REFRESH_TOKEN_LEN) {
        let hash = hash_api_key(t);
        match state.storage().sign_in_of_refresh_token(&hash).await? {
            Some(sid) => sids.push(sid),
            // A token from before sign-in sessions: revoke it alone.
            None => {
                state.storage().revoke_refresh_token(&hash).await?;
            }
        }
    } else if sids.is_empty() && b.refresh_token.is_none() {
        if let Some(e) = auth_error {
            return Err(e);
        }
        return Err(ApiError::bad_request(
            "`refresh_token` (or an access token, or `all: true` with credentials) is required",
        ));
    }
    sids.dedup();
    for sid in &sids {
        state.storage().revoke_sign_in(sid, "signed out").await?;
    }
    sign_in::forget_sessions(state.cache(), &sids).await;
    Ok(StatusCode::NO_CONTENT)
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

/// Body of `POST /api/v1/auth/invites`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Only this email address may use the invitation (any when unset).
    #[serde(default)]
    pub email: Option<String>,
    /// Lifetime in seconds (default `auth.invite_ttl_secs`, at most 30 days).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Creates a single-use, expiring invitation to register (administrators; 201). The token is shown
/// once: only its hash is stored.
pub async fn create_invite(
    State(state): State<AppState>,
    Auth(p): Auth,
    OptionalJson(b): OptionalJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ttl = b.ttl_secs.unwrap_or(state.config().auth.invite_ttl_secs);
    if ttl == 0 || ttl > MAX_INVITE_TTL_SECS {
        return Err(ApiError::bad_request(format!("`ttl_secs` must be between 1 and {MAX_INVITE_TTL_SECS}")));
    }
    let (invite, token) =
        sign_in::create_invite(state.storage(), b.email.as_deref(), Some(&p.user_id), Duration::from_secs(ttl)).await?;
    crate::audit::record(&state, Some(&p.user_id), "auth.invite", &invite.id, json!({"email": invite.email})).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": invite.id,
            "token": token,
            "email": invite.email,
            "expires_at": invite.expires_at,
            "registration": state.config().auth.registration,
        })),
    ))
}

/// Most invitations `GET /api/v1/auth/invites` lists (the newest).
const MAX_LISTED_INVITES: u32 = 1000;

/// Lists the newest invitations (administrators; at most 1,000): id, email, creator, times, and
/// whether each is used, expired or still pending. Never their tokens (only hashes are stored).
pub async fn list_invites(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let now = chrono::Utc::now();
    let invites: Vec<Value> = state
        .storage()
        .list_invites(MAX_LISTED_INVITES)
        .await?
        .into_iter()
        .map(|i| {
            let status = match i.used_at {
                Some(_) => "used",
                None if i.expires_at <= now => "expired",
                None => "pending",
            };
            json!({
                "id": i.id,
                "email": i.email,
                "created_by": i.created_by,
                "created_at": i.created_at,
                "expires_at": i.expires_at,
                "used_at": i.used_at,
                "status": status,
            })
        })
        .collect();
    Ok(Json(json!({ "invites": invites })))
}

/// Revokes an invitation (administrators; 204, 404 if unknown): its token no longer registers anyone.
pub async fn delete_invite(
    State(state): State<AppState>,
    Auth(p): Auth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    if id.len() > 64 || !state.storage().delete_invite(&id).await? {
        return Err(ApiError::not_found("no such invitation"));
    }
    crate::audit::record(&state, Some(&p.user_id), "auth.invite_revoke", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
