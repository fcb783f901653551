//! The web chat UI, served by the same binary at `/`: server-rendered HTML (maud) with htmx and a
//! small script for streaming, both vendored in the binary (no CDN, no build step).
//!
//! Pages: `/login`, `/register`, `POST /logout`, `/chat` and `/chat/{id}`, `/settings` (profile:
//! display name, default model and persona, theme); fragments for htmx:
//! `/ui/conversations?q=` (the sidebar list) and `/ui/conversations/{id}/messages`. The page's script
//! talks to the JSON API (`/api/v1/chat` with `stream: true`, `/api/v1/conversations/...`) with the
//! session cookie and the session's CSRF token.

pub(crate) mod admin;
pub(crate) mod chart;
pub mod markdown;
pub mod pages;

use crate::access::{Access, Routes};
use crate::error::ApiError;
use crate::session::{self, CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use gaia_core::auth::Principal;
use gaia_core::storage::{WebSession, DEFAULT_PERSONA_ID};
use maud::Markup;
use pages::PageCtx;
use serde::Deserialize;

const HTMX: &str = include_str!("../../assets/htmx.min.js");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// The UI's routes (merged into the server's router when `server.ui` is on).
pub fn routes(state: &AppState) -> Routes {
    use gaia_rbac::{Action::*, ResourceType as T};
    let own = Access::Permission(T::Conversation, Read, "/users/{user}/conversations");
    Routes::new(state, "")
        .get("/", Access::Public, || async { Redirect::to("/chat") })
        .get("/login", Access::Public, login_page)
        .post("/login", Access::Public, login)
        .get("/register", Access::Public, register_page)
        .post("/register", Access::Public, register)
        // Ends whatever session the cookie names; checks the form's CSRF token itself.
        .post("/logout", Access::Public, logout)
        .page("/chat", own, chat_new)
        .page("/chat/{id}", Access::Permission(T::Conversation, Read, "/users/{user}/conversations/{id}"), chat_open)
        .page("/settings", Access::Permission(T::User, Read, "/users/{user}"), settings_page)
        .page_post("/settings", Access::Permission(T::User, Write, "/users/{user}"), save_settings)
        .get("/ui/conversations", own, conversation_list)
        .get(
            "/ui/conversations/{id}/messages",
            Access::Permission(T::Conversation, Read, "/users/{user}/conversations/{id}"),
            conversation_messages,
        )
        .get("/assets/{file}", Access::Public, asset)
        .merge(admin::routes(state))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, ty) = match file.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return ApiError::not_found("no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, ty), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// The signed-in user of a page request, if any.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<(Principal, WebSession)> {
    let token = session::cookie(headers, SESSION_COOKIE)?;
    state.auth().authenticate_session(&token).await.ok()
}

fn html(status: StatusCode, m: Markup) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], m).into_response()
}

/// The login or register form, with a fresh double-submit CSRF cookie.
///
/// `invite` is the invitation field of the register form: shown (with this value) only when
/// registration is by invitation.
fn auth_page(
    headers: &HeaderMap,
    register: bool,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    invite: Option<&str>,
) -> Response {
    let token = session::random_token();
    let mut resp = html(status, pages::auth_form(register, &token, email, error, invite));
    session::add_cookie(resp.headers_mut(), session::set_cookie(CSRF_COOKIE, &token, 3600, session::is_https(headers)));
    resp
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if signed_in(&state, &headers).await.is_some() {
        return Redirect::to("/chat").into_response();
    }
    auth_page(&headers, false, StatusCode::OK, "", None, None)
}

/// The invitation field's value when registration is by invitation (`None`: no field).
fn invite_field<'a>(state: &AppState, sent: Option<&'a str>) -> Option<&'a str> {
    (state.config().auth.registration == gaia_core::config::Registration::Invite).then(|| sent.unwrap_or(""))
}

/// The register page. An invitation link (`/register#invite=TOKEN`) carries its token in the URL's
/// fragment, which `app.js` puts in the form: it never reaches the server's or a proxy's logs.
async fn register_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if signed_in(&state, &headers).await.is_some() {
        return Redirect::to("/chat").into_response();
    }
    auth_page(&headers, true, StatusCode::OK, "", None, invite_field(&state, None))
}

/// Fields of the login and register forms.
#[derive(Debug, Deserialize)]
pub struct AuthForm {
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    csrf_token: String,
    /// An invitation's token (`auth.registration = "invite"`), e.g. from the link's query string.
    #[serde(default)]
    invite_token: Option<String>,
}

fn form_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    session::cookie(headers, CSRF_COOKIE).is_some_and(|c| session::tokens_match(sent, &c))
}

/// Starts a session for `user_id` and sends the browser to the chat.
async fn start_session(state: &AppState, headers: &HeaderMap, user_id: &str) -> Response {
    match state.auth().create_session(user_id, SESSION_TTL).await {
        Ok((token, _)) => {
            let mut resp = Redirect::to("/chat").into_response();
            let secure = session::is_https(headers);
            session::add_cookie(
                resp.headers_mut(),
                session::set_cookie(SESSION_COOKIE, &token, SESSION_TTL.as_secs(), secure),
            );
            session::add_cookie(resp.headers_mut(), session::set_cookie(CSRF_COOKIE, "", 0, secure));
            resp
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The login or register form again, with the refusal of `routes::auth` (and `Retry-After` when
/// throttled).
fn refused(
    headers: &HeaderMap,
    register: bool,
    email: &str,
    e: &crate::routes::auth::AuthError,
    invite: Option<&str>,
) -> Response {
    let (status, message, retry_after) = e.parts();
    if status.is_server_error() && retry_after.is_none() {
        return ApiError::new(status, message).into_response();
    }
    let mut resp = auth_page(headers, register, status, email, Some(message), invite);
    if let Some(d) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, crate::routes::auth::retry_after_value(d));
    }
    resp
}

async fn login(
    State(state): State<AppState>,
    client: crate::routes::auth::ClientAddr,
    headers: HeaderMap,
    Form(f): Form<AuthForm>,
) -> Response {
    if !form_csrf_ok(&headers, &f.csrf_token) {
        return auth_page(
            &headers,
            false,
            StatusCode::FORBIDDEN,
            &f.email,
            Some("The form expired; please try again."),
            None,
        );
    }
    // The same limits, hashing bound and audit as the API's sign-in.
    match crate::routes::auth::check_password(&state, client, &f.email, &f.password, "web").await {
        Ok(u) => {
            crate::audit::record(&state, Some(&u.id), "auth.login", &u.id, serde_json::json!({"via": "web"})).await;
            start_session(&state, &headers, &u.id).await
        }
        Err(e) if e.parts().0 == StatusCode::UNAUTHORIZED => {
            auth_page(&headers, false, StatusCode::UNAUTHORIZED, &f.email, Some("Invalid email or password."), None)
        }
        Err(e) => refused(&headers, false, &f.email, &e, None),
    }
}

async fn register(
    State(state): State<AppState>,
    client: crate::routes::auth::ClientAddr,
    headers: HeaderMap,
    Form(f): Form<AuthForm>,
) -> Response {
    if !form_csrf_ok(&headers, &f.csrf_token) {
        let invite = invite_field(&state, f.invite_token.as_deref());
        return auth_page(
            &headers,
            true,
            StatusCode::FORBIDDEN,
            &f.email,
            Some("The form expired; please try again."),
            invite,
        );
    }
    // The same registration mode, limits and hashing bound as the API's registration.
    let account = crate::routes::auth::Register {
        email: f.email.clone(),
        password: f.password.clone(),
        display_name: f.display_name.clone(),
        invite_token: f.invite_token.clone(),
    };
    match crate::routes::auth::create_account(&state, client, &account, "web").await {
        Ok(u) => start_session(&state, &headers, &u.id).await,
        Err(e) if e.parts().0 == StatusCode::CONFLICT => auth_page(
            &headers,
            true,
            StatusCode::CONFLICT,
            &f.email,
            Some("An account with this email already exists."),
            invite_field(&state, f.invite_token.as_deref()),
        ),
        Err(e) => refused(&headers, true, &f.email, &e, invite_field(&state, f.invite_token.as_deref())),
    }
}

/// A client error's message without the variant's prefix.
fn client_message(e: &gaia_core::CoreError) -> String {
    let s = e.to_string();
    s.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(s)
}

/// Field of the logout form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some(token) = session::cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    if let Ok((_, s)) = state.auth().authenticate_session(&token).await {
        if !session::tokens_match(&f.csrf_token, &s.csrf_token) {
            return ApiError::new(StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
        }
        if let Err(e) = state.auth().end_session(&token).await {
            return ApiError::from(e).into_response();
        }
    }
    let mut resp = Redirect::to("/login").into_response();
    session::add_cookie(resp.headers_mut(), session::set_cookie(SESSION_COOKIE, "", 0, session::is_https(&headers)));
    resp
}

async fn chat_new(State(state): State<AppState>, headers: HeaderMap) -> Response {
    chat_page(state, headers, None).await
}

async fn chat_open(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    chat_page(state, headers, Some(id)).await
}

async fn chat_page(state: AppState, headers: HeaderMap, id: Option<String>) -> Response {
    let Some((p, s)) = signed_in(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    match render_chat(&state, &p, &s, id.as_deref()).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn render_chat(state: &AppState, p: &Principal, s: &WebSession, id: Option<&str>) -> Result<Response, ApiError> {
    let storage = state.storage();
    // The caller's own conversation, or one shared with them (shown read-only).
    let current = match id {
        Some(id) => match crate::routes::conversations::readable(state, p, id).await {
            Ok(c) => Some(c),
            Err(e) if e.status == StatusCode::NOT_FOUND => return Ok(Redirect::to("/chat").into_response()),
            Err(e) => return Err(e),
        },
        None => None,
    };
    let read_only = current.as_ref().is_some_and(|c| c.user_id != p.user_id);
    let author = match &current {
        Some(c) if read_only => author_of(state, &c.user_id).await,
        _ => "You".to_string(),
    };
    let messages = match &current {
        Some(c) => storage.list_messages(&c.id).await?,
        None => Vec::new(),
    };
    let conversations = storage.list_conversations(&p.user_id, 100, 0).await?;
    let settings = storage.user_settings(&p.user_id).await?;
    let personas = storage.list_personas(&p.user_id).await?;
    let persona = current
        .as_ref()
        .and_then(|c| c.persona_id.clone())
        .or(settings.default_persona_id.clone())
        .unwrap_or(DEFAULT_PERSONA_ID.to_string());
    let models = model_names(state).await;
    let user = settings.display_name.clone().or(p.email.clone()).unwrap_or_default();
    let theme = settings.theme.as_deref().unwrap_or("dark");
    let title = current.as_ref().and_then(|c| c.title.clone()).unwrap_or("Chat".into());
    let ctx = PageCtx { title: &title, theme, csrf: Some(&s.csrf_token) };
    let page = pages::ChatPage {
        user: &user,
        conversations: &conversations,
        current: current.as_ref(),
        messages: &messages,
        models: &models,
        model: settings.default_model.as_deref(),
        personas: &personas,
        persona: &persona,
        user_id: &p.user_id,
        read_only,
        author: &author,
        admin: admin::may_open(state, p).await,
    };
    Ok(html(StatusCode::OK, pages::chat(&ctx, &page)))
}

/// Query of the sidebar list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    current: Option<String>,
}

async fn conversation_list(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let Some((p, _)) = signed_in(&state, &headers).await else {
        return ApiError::unauthorized("sign in first").into_response();
    };
    let storage = state.storage();
    let items = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => storage
            .search_conversations(&p.user_id, &text.chars().take(200).collect::<String>(), 100)
            .await
            .map(|hits| hits.into_iter().map(|h| h.conversation).collect::<Vec<_>>()),
        None => storage.list_conversations(&p.user_id, 100, 0).await,
    };
    match items {
        Ok(items) => html(StatusCode::OK, pages::conversation_list(&items, q.current.as_deref())),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn conversation_messages(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some((p, _)) = signed_in(&state, &headers).await else {
        return ApiError::unauthorized("sign in first").into_response();
    };
    let storage = state.storage();
    let result = async {
        let c = crate::routes::conversations::readable(&state, &p, &id).await?;
        let msgs = storage.list_messages(&c.id).await?;
        let author = if c.user_id == p.user_id { "You".to_string() } else { author_of(&state, &c.user_id).await };
        Ok::<_, ApiError>(html(StatusCode::OK, pages::messages(&msgs, &author)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// How the owner of a conversation shared with the reader is named on its messages.
async fn author_of(state: &AppState, owner: &str) -> String {
    let user = state.storage().get_user(owner).await.ok().flatten();
    let u = user.as_ref();
    gaia_chat::presence::Participant::named(
        owner,
        u.and_then(|u| u.display_name.as_deref()),
        u.map(|u| u.email.as_str()),
    )
    .name
}

/// The models of every provider as `provider/model`, sorted.
async fn model_names(state: &AppState) -> Vec<String> {
    let mut models: Vec<String> =
        state.providers().list_models().await.into_iter().map(|m| format!("{}/{}", m.provider, m.id)).collect();
    models.sort();
    models.dedup();
    models
}

/// Query of the settings page.
#[derive(Debug, Deserialize)]
pub struct SettingsQuery {
    #[serde(default)]
    saved: Option<String>,
}

async fn settings_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<SettingsQuery>) -> Response {
    let Some((p, s)) = signed_in(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    let notice = q.saved.is_some().then_some(Ok("Settings saved."));
    render_settings(&state, &p, &s, StatusCode::OK, notice).await.unwrap_or_else(IntoResponse::into_response)
}

async fn render_settings(
    state: &AppState,
    p: &Principal,
    s: &WebSession,
    status: StatusCode,
    notice: Option<Result<&str, &str>>,
) -> Result<Response, ApiError> {
    let storage = state.storage();
    let settings = storage.user_settings(&p.user_id).await?;
    let personas = storage.list_personas(&p.user_id).await?;
    let models = model_names(state).await;
    let theme = settings.theme.as_deref().unwrap_or("dark");
    let ctx = PageCtx { title: "Settings", theme, csrf: Some(&s.csrf_token) };
    let page = pages::SettingsPage {
        email: p.email.as_deref().unwrap_or_default(),
        settings: &settings,
        models: &models,
        personas: &personas,
        notice,
    };
    Ok(html(status, pages::settings(&ctx, &page)))
}

/// Fields of the settings form.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    default_model: String,
    #[serde(default)]
    default_persona_id: String,
    #[serde(default)]
    theme: String,
}

async fn save_settings(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<SettingsForm>) -> Response {
    let Some((p, s)) = signed_in(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    if !session::tokens_match(&f.csrf_token, &s.csrf_token) {
        return ApiError::new(StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
    }
    let update = gaia_core::storage::UserSettings {
        display_name: Some(f.display_name.trim().to_string()),
        default_model: Some(f.default_model.trim().to_string()),
        default_persona_id: Some(f.default_persona_id.trim().to_string()),
        theme: Some(f.theme.trim().to_string()),
    };
    match state.storage().update_user_settings(&p.user_id, &update).await {
        Ok(_) => Redirect::to("/settings?saved=1").into_response(),
        Err(e @ (gaia_core::CoreError::InvalidInput(_) | gaia_core::CoreError::NotFound(_))) => {
            let msg = client_message(&e);
            render_settings(&state, &p, &s, StatusCode::BAD_REQUEST, Some(Err(&msg)))
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
