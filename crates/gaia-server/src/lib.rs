//! # gaia-server
//!
//! Gaia's HTTP server on axum. [`router`] returns a plain `axum::Router` you can serve as is or nest
//! inside your own app; [`serve`] runs it with graceful shutdown.
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
//! Routes: `GET /health`; `POST /api/v1/auth/{register,login,refresh,logout,validate}`;
//! `POST /api/v1/chat`, `POST /api/v0.3/chat`; `GET/POST /api/v1/conversations`,
//! `GET/DELETE /api/v1/conversations/{id}`, `GET /api/v1/conversations/{id}/messages`;
//! `POST /api/v1/attachments` (image upload), `GET /api/v1/attachments/{id}`; `GET /ws/chat` (live
//! updates over a WebSocket, see [`live`]);
//! `GET /api/v1/models`; `GET/POST /api/v1/keys`, `DELETE /api/v1/keys/{id}`;
//! `GET /api/v1/usage`, `GET /api/v1/usage/export` (CSV); `GET/POST /api/v1/providers`,
//! `DELETE /api/v1/providers/{name}` (admins),
//! `GET /api/v1/providers/{name}/health`; the knowledge base under `/api/v1/kb/` (`search`, `read`,
//! `list`, `context`, `backlinks`, `links`, `status`, `tools` with GET; `write`, `move`, `delete`,
//! `sync`, `webhook`, `tools/{name}` with POST; answers in the `{status, response, metadata}` envelope);
//! and the wire-compatible
//! `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}` (OpenAI) and `POST /v1/messages`
//! (Anthropic), whose errors come in those APIs' own shapes.
//! Errors are JSON `{"detail": "..."}`.

pub mod error;
pub mod extract;
pub mod live;
mod metering;
pub mod routes;
pub mod session;
pub mod sse;
pub mod state;
pub mod ui;

pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, Auth};
pub use state::AppState;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// How long in-flight requests (streams included) get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// All of Gaia's routes with their middleware (tracing, request ids, body limit, JSON 404s).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/register", post(routes::auth::register))
        .route("/auth/login", post(routes::auth::login))
        .route("/auth/refresh", post(routes::auth::refresh))
        .route("/auth/logout", post(routes::auth::logout))
        .route("/auth/validate", post(routes::auth::validate))
        .route("/chat", post(routes::chat::chat_v1))
        .route(
            "/attachments",
            post(routes::attachments::upload)
                // Room for the image plus the multipart framing around it.
                .layer(DefaultBodyLimit::max(state.config().chat.max_image_bytes.saturating_add(64 * 1024))),
        )
        .route("/attachments/{id}", get(routes::attachments::download))
        .route("/conversations", get(routes::conversations::list).post(routes::conversations::create))
        .route(
            "/conversations/{id}",
            get(routes::conversations::get).patch(routes::conversations::update).delete(routes::conversations::delete),
        )
        .route("/conversations/{id}/export", get(routes::conversations::export))
        .route("/personas", get(routes::personas::list).post(routes::personas::create))
        .route(
            "/personas/{id}",
            get(routes::personas::get)
                .patch(routes::personas::update)
                .put(routes::personas::update)
                .delete(routes::personas::delete),
        )
        .route("/settings", get(routes::personas::settings).patch(routes::personas::update_settings))
        .route("/conversations/{id}/messages", get(routes::conversations::messages))
        .route("/models", get(routes::models::list))
        .route("/providers", get(routes::providers::list).post(routes::providers::add))
        .route("/providers/{name}", delete(routes::providers::remove))
        .route("/providers/{name}/health", get(routes::providers::health))
        .route("/keys", get(routes::keys::list).post(routes::keys::create))
        .route("/keys/{id}", delete(routes::keys::revoke))
        .route("/usage", get(routes::usage::summary))
        .route("/usage/export", get(routes::usage::export))
        .route("/kb/search", get(routes::kb::search))
        .route("/kb/read", get(routes::kb::read))
        .route("/kb/list", get(routes::kb::list))
        .route("/kb/context", get(routes::kb::context))
        .route("/kb/backlinks", get(routes::kb::backlinks))
        .route("/kb/links", get(routes::kb::links))
        .route("/kb/write", post(routes::kb::write))
        .route("/kb/move", post(routes::kb::move_document))
        .route("/kb/delete", post(routes::kb::delete))
        .route("/kb/sync", post(routes::kb::sync))
        .route("/kb/status", get(routes::kb::status))
        .route("/kb/webhook", post(routes::kb::webhook))
        .route("/kb/tools", get(routes::kb::tools))
        .route("/kb/tools/{name}", post(routes::kb::call_tool));
    let limit = state.config().server.body_limit_bytes;
    let ui = if state.config().server.ui { ui::router() } else { Router::new() };
    Router::new()
        .merge(ui)
        .route("/health", get(routes::health::health))
        .route("/ws/chat", get(live::chat_socket))
        .route("/api/v0.3/chat", post(routes::chat::chat_v03))
        .route("/v1/chat/completions", post(routes::compat::chat_completions))
        .route("/v1/messages", post(routes::compat::messages))
        .route("/v1/models", get(routes::compat::list_models))
        .route("/v1/models/{*id}", get(routes::compat::get_model))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
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

/// Serves [`router`] on `listener` until `shutdown` resolves, then lets in-flight requests (and
/// streams) finish for up to [`SHUTDOWN_GRACE`] before returning.
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
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = tx.send(());
    });
    let mut task = tokio::spawn(async move { server.await });
    tokio::select! {
        r = &mut task => return r.map_err(std::io::Error::other)?,
        _ = rx => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
        Ok(r) => r.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; closing them");
            task.abort();
            Ok(())
        }
    }
}
