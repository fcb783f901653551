//! # gaia-server
//!
//! Gaia's HTTP server on axum. [`router`] returns a plain `axum::Router` you can serve as is or nest
//! inside your own app; [`serve`] runs it with graceful shutdown, [`serve_tls`] the same over TLS
//! (optionally mutual TLS, see [`tls`]). [`Gaia::builder`] sets everything up from code instead of a
//! configuration file.
//!
//! ```no_run
//! use gaia_core::Config;
//! use gaia_server::{router, serve, AppState};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?; // defaults <- gaia.toml <- GAIA_* env
//! let state = AppState::from_config(config).await?;
//! // Either serve Gaia alone…
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8666").await?;
//! serve(listener, state.clone(), gaia_server::shutdown_signal()).await?;
//! // …or mount it in an existing app.
//! let app: axum::Router = axum::Router::new().nest("/ai", router(state));
//! # let _ = app; Ok(()) }
//! ```
//!
//! Routes: `GET /health` (up or down only), `GET /api/v1/health` (the detail, admins); `POST /api/v1/auth/{register,login,refresh,logout,validate}`;
//! `POST /api/v1/chat`, `POST /api/v0.3/chat`; `GET/POST /api/v1/conversations`,
//! `GET/DELETE /api/v1/conversations/{id}`, `GET /api/v1/conversations/{id}/messages`;
//! `POST /api/v1/attachments` (image upload), `GET /api/v1/attachments/{id}`; `GET /ws/chat` (live
//! updates over a WebSocket, see [`live`]);
//! `GET /api/v1/models`; `GET/POST /api/v1/keys`, `DELETE /api/v1/keys/{id}`,
//! `POST /api/v1/keys/{id}/rotate`;
//! `GET /api/v1/usage`, `GET /api/v1/usage/export` (CSV); `GET/POST /api/v1/providers`,
//! `DELETE /api/v1/providers/{name}` (admins),
//! `GET /api/v1/providers/{name}/health`; the knowledge base under `/api/v1/kb/` (`search`, `read`,
//! `list`, `context`, `backlinks`, `links`, `status`, `tools` with GET; `write`, `move`, `delete`,
//! `sync`, `webhook`, `tools/{name}` with POST; answers in the `{status, response, metadata}` envelope);
//! and the wire-compatible
//! `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{id}` (OpenAI) and `POST /v1/messages`
//! (Anthropic), and `POST /v1/images/generations`, `/v1/audio/speech`, `/v1/audio/transcriptions`
//! (OpenAI media), whose errors come in those APIs' own shapes. Generated assets under
//! `/api/v1/assets` (generate, estimate, list, get, delete, cancel, content, signed URLs, events,
//! report, prices) and `GET /media/{id}` (a signed URL's target).
//! Operations: `GET /metrics` (Prometheus text format; admins, or anyone with
//! `server.metrics_public`), `GET /api/v1/performance/{summary,providers,errors}` (admins); see
//! [`observe`].
//! Errors are JSON `{"detail": "..."}`.

#![warn(missing_docs)]

pub mod access;
mod admission;
pub mod audit;
pub mod builder;
pub mod error;
pub mod extract;
pub mod live;
pub mod mcp_http;
pub mod observe;
mod per_user;
pub mod play;
pub mod provider_store;
mod readiness;
pub mod routes;
pub mod security;
pub mod session;
pub mod sse;
pub mod state;
pub mod tls;
pub mod tools;
pub mod ui;

pub use access::{Access, RouteDecl, Routes};
pub use builder::{Gaia, GaiaBuilder};
pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, Auth};
pub use state::AppState;
pub use tls::serve_tls;

use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// All of Gaia's routes with their middleware (tracing, request ids, body limit, JSON 404s). Every
/// route declares what it needs ([`access::Access`]); see [`route_table`].
pub fn router(state: AppState) -> Router {
    let (routes, _) = routes(&state).finish();
    let limit = state.config().server.body_limit_bytes;
    let routes = routes
        .fallback(|method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
            no_route(&method, &uri, &headers, ApiError::not_found(format!("no such route: {}", uri.path())))
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
                let e = ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route");
                no_route(&method, &uri, &headers, e)
            },
        )
        .layer(DefaultBodyLimit::max(limit))
        // Per route (after routing), so requests are counted by their route template.
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::track));
    // The layers every request goes through are composed once around the whole router (axum clones a
    // route's stack of `Router::layer`s for every request).
    let cors = state.config().server.cors_origins.clone();
    let tls = state.config().server.tls.is_some();
    let service = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(security::wrap(routes.with_state(state), &cors, tls));
    Router::new().fallback_service(service)
}

/// A 404 or 405 in the shape its client reads: the vendor's under `/v1/` (Anthropic's when the
/// request carries `anthropic-version` or `x-api-key`, else OpenAI's `Invalid URL`), Gaia's elsewhere.
fn no_route(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    e: ApiError,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use gaia_providers::compat::{anthropic, openai};
    if !uri.path().starts_with("/v1/") {
        return e.into_response();
    }
    let body = if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
        anthropic::error_body(e.status.as_u16(), &e.message)
    } else {
        let message = format!("Invalid URL ({method} {})", uri.path());
        openai::error_body(&message, "invalid_request_error", None)
    };
    (e.status, axum::Json(body)).into_response()
}

/// Every route with the access it declares (method, path, `public` or the permission).
pub fn route_table(state: &AppState) -> Vec<RouteDecl> {
    routes(state).finish().1
}

fn routes(state: &AppState) -> Routes {
    use gaia_rbac::{Action::*, ResourceType as T};
    use routes::{
        agents, assets, attachments, auth, chat, compat, compat_media, conversations, experiences, guardrails, health,
        kb, keys, me, models, personas, pricing, providers, quotas, rbac, usage,
    };
    const EXPERIENCE: &str = "/experiences/{exp}";
    const OWN_CONVERSATIONS: &str = "/users/{user}/conversations";
    const CONVERSATION: &str = "/users/{user}/conversations/{id}";
    const OWN_PERSONAS: &str = "/users/{user}/personas";
    const PERSONA: &str = "/users/{user}/personas/{id}";
    const ME: &str = "/users/{user}";
    const RBAC: &str = "/admin/rbac";
    const QUOTAS: &str = "/admin/quotas";
    let perm = Access::Permission;
    let image_limit = state.config().chat.max_image_bytes.saturating_add(64 * 1024);
    const OWN_ASSETS: &str = "/users/{user}/assets";
    let uploads = Routes::new(state, "")
        .post("/attachments", perm(T::Conversation, Write, OWN_CONVERSATIONS), attachments::upload)
        // Room for the image plus the multipart framing around it.
        .layer_all(|r| r.layer(DefaultBodyLimit::max(image_limit)));
    // The knowledge base answers in its envelope `{status, response, metadata}`, access errors too.
    let kb_routes = Routes::new(state, "")
        .errors(kb::access_errors)
        .get("/kb/search", Access::AnyOf(T::Kb, Read), kb::search)
        .get("/kb/read", Access::AnyOf(T::Kb, Read), kb::read)
        .get("/kb/list", Access::AnyOf(T::Kb, Read), kb::list)
        .get("/kb/context", Access::AnyOf(T::Kb, Read), kb::context)
        .get("/kb/backlinks", Access::AnyOf(T::Kb, Read), kb::backlinks)
        .get("/kb/links", Access::AnyOf(T::Kb, Read), kb::links)
        .post("/kb/write", Access::AnyOf(T::Kb, Write), kb::write)
        .post("/kb/move", Access::AnyOf(T::Kb, Write), kb::move_document)
        .post("/kb/delete", Access::AnyOf(T::Kb, Delete), kb::delete)
        .post("/kb/sync", perm(T::Kb, Admin, "/kb"), kb::sync)
        .get("/kb/status", Access::AnyOf(T::Kb, Read), kb::status)
        // Authenticated by the webhook signature (`kb.webhook_secret`).
        .post("/kb/webhook", Access::Public, kb::webhook)
        .get("/kb/tools", Access::AnyOf(T::Kb, Read), kb::tools)
        .post("/kb/tools/{name}", Access::AnyOf(T::Kb, Read), kb::call_tool);
    let api = Routes::new(state, "/api/v1")
        .post("/auth/register", Access::Public, auth::register)
        .post("/auth/login", Access::Public, auth::login)
        .post("/auth/refresh", Access::Public, auth::refresh)
        .post("/auth/logout", Access::Public, auth::logout)
        // Checks the credentials it is given (a header or `{"token"}`): 401 is its answer for bad ones.
        .post("/auth/validate", Access::Public, auth::validate)
        .post("/auth/invites", perm(T::Admin, Write, "/admin/invites"), auth::create_invite)
        .get("/auth/invites", perm(T::Admin, Read, "/admin/invites"), auth::list_invites)
        .delete("/auth/invites/{id}", perm(T::Admin, Delete, "/admin/invites"), auth::delete_invite)
        .quota(true)
        .post("/chat", perm(T::Conversation, Write, OWN_CONVERSATIONS), chat::chat_v1)
        .post("/chat/mcp-agent", perm(T::Conversation, Write, OWN_CONVERSATIONS), agents::mcp_agent)
        .post("/chat/mcp-agent-hot", perm(T::Conversation, Write, OWN_CONVERSATIONS), agents::mcp_agent_hot)
        .post("/chat/orchestrated", perm(T::Conversation, Write, OWN_CONVERSATIONS), agents::orchestrated)
        .quota(false)
        .merge(uploads)
        .get("/attachments/{id}", perm(T::Conversation, Read, OWN_CONVERSATIONS), attachments::download)
        .get("/conversations", perm(T::Conversation, Read, OWN_CONVERSATIONS), conversations::list)
        .post("/conversations", perm(T::Conversation, Write, OWN_CONVERSATIONS), conversations::create)
        .get("/conversations/{id}", perm(T::Conversation, Read, CONVERSATION), conversations::get)
        .patch("/conversations/{id}", perm(T::Conversation, Write, CONVERSATION), conversations::update)
        .delete("/conversations/{id}", perm(T::Conversation, Delete, CONVERSATION), conversations::delete)
        .get("/conversations/{id}/export", perm(T::Conversation, Read, CONVERSATION), conversations::export)
        .get("/conversations/{id}/messages", perm(T::Conversation, Read, CONVERSATION), conversations::messages)
        .get("/personas", perm(T::Persona, Read, OWN_PERSONAS), personas::list)
        .post("/personas", perm(T::Persona, Write, OWN_PERSONAS), personas::create)
        .get("/personas/{id}", perm(T::Persona, Read, PERSONA), personas::get)
        .patch("/personas/{id}", perm(T::Persona, Write, PERSONA), personas::update)
        .put("/personas/{id}", perm(T::Persona, Write, PERSONA), personas::update)
        .delete("/personas/{id}", perm(T::Persona, Delete, PERSONA), personas::delete)
        .get("/personas/{id}/memory", perm(T::Persona, Read, PERSONA), personas::memory)
        .delete("/personas/{id}/memory", perm(T::Persona, Delete, PERSONA), personas::forget)
        .get("/settings", perm(T::User, Read, ME), personas::settings)
        .get("/me/export", perm(T::User, Read, ME), me::export)
        .delete("/me", perm(T::User, Write, ME), me::erase)
        .patch("/settings", perm(T::User, Write, ME), personas::update_settings)
        .get("/models", perm(T::Provider, Read, "/providers"), models::list)
        .get("/providers", perm(T::Provider, Read, "/providers"), providers::list)
        .post("/providers", perm(T::Provider, Write, "/providers"), providers::add)
        .put("/providers/{name}", perm(T::Provider, Write, "/providers/{name}"), providers::replace)
        .delete("/providers/{name}", perm(T::Provider, Delete, "/providers/{name}"), providers::remove)
        .get("/providers/{name}/health", perm(T::Provider, Read, "/providers/{name}"), providers::health)
        .get("/health", perm(T::Admin, Read, health::DETAIL_RESOURCE), health::detail)
        .get("/keys", perm(T::ApiKey, Read, "/users/{user}/keys"), keys::list)
        .post("/keys", perm(T::ApiKey, Write, "/users/{user}/keys"), keys::create)
        .delete("/keys/{id}", perm(T::ApiKey, Delete, "/users/{user}/keys/{id}"), keys::revoke)
        .post("/keys/{id}/rotate", perm(T::ApiKey, Write, "/users/{user}/keys/{id}"), keys::rotate)
        .get("/usage", perm(T::Usage, Read, "/users/{user}/usage"), usage::summary)
        .get("/usage/export", perm(T::Usage, Read, "/users/{user}/usage"), usage::export)
        .get("/usage/report", perm(T::Usage, Read, "/users/{user}/usage"), usage::report)
        .get("/limits", perm(T::Admin, Read, QUOTAS), quotas::list_limits)
        .put("/limits/{scope}/{id}", perm(T::Admin, Write, QUOTAS), quotas::set_limit)
        .delete("/limits/{scope}/{id}", perm(T::Admin, Delete, QUOTAS), quotas::delete_limit)
        .get("/budgets", perm(T::Admin, Read, QUOTAS), quotas::list_budgets)
        .post("/budgets", perm(T::Admin, Write, QUOTAS), quotas::create_budget)
        .patch("/budgets/{id}", perm(T::Admin, Write, QUOTAS), quotas::update_budget)
        .delete("/budgets/{id}", perm(T::Admin, Delete, QUOTAS), quotas::delete_budget)
        .get("/budgets/mine", perm(T::Usage, Read, "/users/{user}/usage"), quotas::my_budgets)
        .get("/guardrails", perm(T::Admin, Read, "/admin/guardrails"), guardrails::list)
        .put("/guardrails/{scope}/{id}", perm(T::Admin, Write, "/admin/guardrails"), guardrails::bind)
        .delete("/guardrails/{scope}/{id}", perm(T::Admin, Delete, "/admin/guardrails"), guardrails::unbind)
        .get("/pricing", perm(T::Provider, Read, "/providers"), pricing::list)
        .post("/pricing/estimate", perm(T::Provider, Read, "/providers"), pricing::estimate)
        .get("/pricing/history", perm(T::Provider, Read, "/providers"), pricing::history)
        .post("/pricing", perm(T::Admin, Write, QUOTAS), pricing::add)
        .delete("/pricing/{id}", perm(T::Admin, Delete, QUOTAS), pricing::remove)
        // Assets admit themselves (rate limits, and budgets against their priced estimate): their
        // cost is per image, character, second or credit, not per token.
        .post("/assets/generate", perm(T::Asset, Write, OWN_ASSETS), assets::generate)
        .post("/assets/estimate", perm(T::Asset, Read, OWN_ASSETS), assets::estimate)
        .get("/assets", perm(T::Asset, Read, OWN_ASSETS), assets::list)
        .get("/assets/report", perm(T::Usage, Read, "/users/{user}/usage"), assets::report)
        .get("/assets/prices", perm(T::Provider, Read, "/providers"), assets::prices)
        .post("/assets/prices", perm(T::Admin, Write, QUOTAS), assets::add_price)
        .delete("/assets/prices/{id}", perm(T::Admin, Delete, QUOTAS), assets::remove_price)
        // Shared assets are readable by others: the handler checks `asset:<action>` on
        // `/users/<owner>/assets/<id>` (another user's unshared asset is a 404).
        .get("/assets/{id}", Access::AnyOf(T::Asset, Read), assets::get)
        .delete("/assets/{id}", Access::AnyOf(T::Asset, Delete), assets::delete)
        .post("/assets/{id}/cancel", Access::AnyOf(T::Asset, Delete), assets::cancel)
        .get("/assets/{id}/content", Access::AnyOf(T::Asset, Read), assets::content)
        .post("/assets/{id}/url", Access::AnyOf(T::Asset, Read), assets::signed_url)
        .get("/assets/{id}/events", Access::AnyOf(T::Asset, Read), assets::events)
        .get("/experiences", Access::AnyOf(T::Experience, Read), experiences::list)
        .get("/experiences/{exp}", perm(T::Experience, Read, EXPERIENCE), experiences::get)
        .get("/experiences/{exp}/state", perm(T::Experience, Read, EXPERIENCE), experiences::state)
        .post("/experiences/{exp}/command", perm(T::Experience, Write, EXPERIENCE), experiences::command)
        .get("/experiences/{exp}/npcs/{npc}/memories", perm(T::Experience, Read, EXPERIENCE), experiences::memories)
        .delete(
            "/experiences/{exp}/npcs/{npc}/memories",
            perm(T::Experience, Write, EXPERIENCE),
            experiences::forget_all,
        )
        .delete(
            "/experiences/{exp}/npcs/{npc}/memories/{memory}",
            perm(T::Experience, Write, EXPERIENCE),
            experiences::forget_one,
        )
        .merge(kb_routes)
        .get("/rbac/me", perm(T::User, Read, ME), rbac::me)
        .post("/rbac/check", perm(T::Admin, Read, RBAC), rbac::check)
        .get("/rbac/who-can", perm(T::Admin, Read, RBAC), rbac::who_can)
        .get("/rbac/roles", perm(T::Admin, Read, RBAC), rbac::list_roles)
        .post("/rbac/roles", perm(T::Admin, Write, RBAC), rbac::create_role)
        .put("/rbac/roles/{name}", perm(T::Admin, Write, RBAC), rbac::update_role)
        .delete("/rbac/roles/{name}", perm(T::Admin, Delete, RBAC), rbac::delete_role)
        .get("/rbac/grants", perm(T::Admin, Read, RBAC), rbac::list_grants)
        .post("/rbac/grants", perm(T::Admin, Write, RBAC), rbac::create_grant)
        .delete("/rbac/grants/{id}", perm(T::Admin, Delete, RBAC), rbac::delete_grant)
        .get("/rbac/teams", perm(T::Admin, Read, RBAC), rbac::list_teams)
        .post("/rbac/teams", perm(T::Admin, Write, RBAC), rbac::create_team)
        .get("/rbac/workspaces", perm(T::Admin, Read, RBAC), rbac::list_workspaces)
        .post("/rbac/workspaces", perm(T::Admin, Write, RBAC), rbac::create_workspace)
        .delete("/rbac/groups/{id}", perm(T::Admin, Delete, RBAC), rbac::delete_group)
        .get("/rbac/groups/{id}/members", perm(T::Admin, Read, RBAC), rbac::list_members)
        .post("/rbac/groups/{id}/members", perm(T::Admin, Write, RBAC), rbac::add_member)
        .delete("/rbac/groups/{id}/members/{user_id}", perm(T::Admin, Delete, RBAC), rbac::remove_member)
        .get("/rbac/shares", perm(T::Admin, Read, RBAC), rbac::list_shares)
        // Owners share their own things: the handler checks `share` on the resource itself.
        .post("/rbac/shares", Access::SignedIn("share on the shared resource"), rbac::create_share)
        .delete("/rbac/shares/{id}", Access::SignedIn("share on the shared resource"), rbac::delete_share)
        .get("/rbac/audit", perm(T::Admin, Read, RBAC), rbac::audit)
        .get("/audit", perm(T::Admin, Read, "/admin/audit"), crate::audit::list)
        .get("/performance/summary", perm(T::Admin, Read, "/admin/performance"), observe::summary)
        .get("/performance/providers", perm(T::Admin, Read, "/admin/performance"), observe::providers)
        .get("/performance/errors", perm(T::Admin, Read, "/admin/performance"), observe::errors);
    let mut all = Routes::new(state, "");
    if state.config().server.ui {
        all = all.merge(ui::routes(state));
    }
    let models = perm(T::Provider, Read, "/providers");
    let audio_limit = state.config().assets.max_audio_bytes.saturating_add(64 * 1024);
    let audio_uploads = Routes::new(state, "")
        .errors(compat::openai_errors)
        .post("/v1/audio/transcriptions", models, compat_media::transcriptions)
        // Room for the audio plus the multipart framing around it.
        .layer_all(|r| r.layer(DefaultBodyLimit::max(audio_limit)));
    let compatible = Routes::new(state, "")
        .quota(true)
        .errors(compat::openai_errors)
        .post("/v1/chat/completions", models, compat::chat_completions)
        .post("/v1/embeddings", models, compat::embeddings)
        .errors(compat::anthropic_errors)
        .post("/v1/messages", models, compat::messages)
        .quota(false)
        // Media admit themselves like `/api/v1/assets/generate` (priced per unit, not per token).
        .errors(compat::openai_errors)
        .post("/v1/images/generations", models, compat_media::images)
        .post("/v1/audio/speech", models, compat_media::speech)
        .merge(audio_uploads)
        .errors(compat::models_errors)
        .get("/v1/models", models, compat::list_models)
        .get("/v1/models/{*id}", models, compat::get_model);
    let metrics =
        if state.config().server.metrics_public { Access::Public } else { perm(T::Admin, Read, "/admin/metrics") };
    all.get("/health", Access::Public, health::health)
        // For orchestrators: cheap, anonymous, no detail (see `readiness`).
        .get("/health/live", Access::Public, health::live)
        .get("/health/ready", Access::Public, health::ready)
        .get("/metrics", metrics, observe::metrics)
        .get("/ws/chat", perm(T::Conversation, Read, OWN_CONVERSATIONS), live::chat_socket)
        // The game client's socket authenticates with the `token` in its query (clients cannot set
        // headers on WebSockets) and checks `experience:read`/`write`/`admin` itself.
        .get("/ws/experience", Access::Public, play::experience_socket)
        // A signed URL's target: the signature (HMAC of asset, variant and expiry) is the access.
        .get("/media/{id}", Access::Public, assets::signed_content)
        .quota(true)
        .post("/api/v0.3/chat", perm(T::Conversation, Write, OWN_CONVERSATIONS), chat::chat_v03)
        .quota(false)
        .get("/api/v0.3/locations/nearby", Access::AnyOf(T::Experience, Read), experiences::nearby)
        .merge(compatible)
        // Gaia as an MCP server (Streamable HTTP); each tool checks the caller's rights itself.
        .service(
            "/mcp",
            &[axum::http::Method::GET, axum::http::Method::POST, axum::http::Method::DELETE],
            Access::SignedIn("kb:read per document (tools), provider use (chat)"),
            mcp_http::service(state),
        )
        .nest(api)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then stops as orchestrators expect:
/// `GET /health/ready` answers 503 at once; requests are still served for `server.drain_secs` (load
/// balancers take the instance out of rotation meanwhile); then the listener closes, live sockets are
/// told to reconnect elsewhere, and in-flight requests and streams get `server.shutdown_grace_secs`
/// to finish before what remains is cut.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gaia listening");
    // Streamed answers are many small writes: without TCP_NODELAY, Nagle's algorithm holds them back
    // waiting for ACKs (tens of milliseconds per chunk).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    serve_with_grace(listener, state, shutdown).await
}

/// Serves [`router`] on any axum listener (plain TCP or TLS) with the graceful shutdown of [`serve`].
pub(crate) async fn serve_with_grace<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    // The peer address reaches handlers as `ConnectInfo<SocketAddr>` (sign-in rate limits per client).
    for<'a> std::net::SocketAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let draining = state.clone();
    let drain = Duration::from_secs(state.config().server.drain_secs);
    let grace = Duration::from_secs(state.config().server.shutdown_grace_secs);
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        draining.stop_taking_traffic();
        if !drain.is_zero() {
            tracing::info!(?drain, "shutting down: not ready any more, still serving while load balancers notice");
            tokio::time::sleep(drain).await;
        }
        tracing::info!(?grace, "shutting down: closing the listener, finishing in-flight requests");
        // Upgraded sockets are not in-flight requests: they are told to go.
        draining.start_draining();
        let _ = tx.send(());
    });
    let mut task = tokio::spawn(async move { server.await });
    tokio::select! {
        r = &mut task => return r.map_err(std::io::Error::other)?,
        _ = rx => {}
    }
    match tokio::time::timeout(grace, &mut task).await {
        Ok(r) => r.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {grace:?}; closing them");
            task.abort();
            Ok(())
        }
    }
}
