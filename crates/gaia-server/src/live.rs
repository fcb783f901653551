//! `GET /ws/chat`: live updates over a WebSocket, so a conversation open in several tabs (or apps)
//! shows new messages everywhere.
//!
//! Authentication is the same as the API's (API key, bearer token, or the web UI's session cookie).
//! With a cookie, the `Origin` header must match the `Host` (no cross-site WebSocket hijacking).
//!
//! Frames are JSON text. The client sends `{"type": "subscribe", "conversation_id": "…"}`,
//! `{"type": "unsubscribe", "conversation_id": "…"}` or `{"type": "ping"}`. The server sends
//! `{"type": "ready"}` once, then `subscribed`, `pong`, `error` (`message`), and for the caller's
//! conversations:
//! - `message_created` (`conversation_id`, `message`: the stored message) for subscribed conversations;
//! - `conversation_updated` (`conversation_id`, `conversation`: the conversation, or `null` once
//!   deleted) for any conversation of the caller;
//! - `resync` when events were missed (a slow connection): reload what is shown.

use crate::error::ApiError;
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gaia_core::auth::Principal;
use gaia_core::events::Event;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Most conversations one connection may follow.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// How often the server pings an idle connection (keeps proxies from closing it).
const PING_EVERY: Duration = Duration::from_secs(30);

/// Largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 16 * 1024;

/// How often an open connection checks its credentials again even when no revocation was announced
/// (a web session that ended, a token that expired).
const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// WebSocket close code for a connection whose credentials are no longer valid (policy violation).
const CLOSE_POLICY: u16 = 1008;

/// The credentials a connection was opened with (API key, bearer, session cookie), to check again.
fn credentials_of(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in ["x-api-key", "authorization", "cookie"] {
        for v in headers.get_all(name) {
            kept.append(name, v.clone());
        }
    }
    kept
}

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Subscribe { conversation_id: String },
    Unsubscribe { conversation_id: String },
    Ping,
}

/// `GET /ws/chat`.
pub async fn chat_socket(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if cookie_only(&headers) && !same_origin(&headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-origin WebSocket connections are not allowed")
            .into_response();
    }
    let max = state.config().server.max_sockets_per_user;
    let Some(slot) = state.live_connections().take(&p.user_id, max) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {max} live connections per user; close one first"),
        )
        .into_response();
    };
    let credentials = credentials_of(&headers);
    ws.max_message_size(MAX_CLIENT_FRAME).on_upgrade(move |socket| async move {
        run(state, p, credentials, socket).await;
        drop(slot);
    })
}

/// The request authenticates with the session cookie only (no API key or bearer header).
fn cookie_only(headers: &HeaderMap) -> bool {
    !headers.contains_key("x-api-key") && !headers.contains_key(header::AUTHORIZATION)
}

/// `Origin` (when sent) names the host the request went to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin).trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket.send(Message::Text(v.to_string().into())).await.is_ok()
}

/// Whether the credentials the connection was opened with still name the same user.
async fn still_valid(state: &AppState, p: &Principal, credentials: &HeaderMap) -> bool {
    match crate::extract::authenticate(state, credentials, &axum::http::Method::GET).await {
        Ok(now) => now.user_id == p.user_id,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => false,
        // The database or cache cannot say now: keep the connection, the next check decides.
        Err(_) => true,
    }
}

async fn run(state: AppState, p: Principal, credentials: HeaderMap, mut socket: WebSocket) {
    let mut events = state.events().subscribe();
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    let mut revocations = state.auth().watch_revocations();
    let mut announced = true;
    if !send(&mut socket, json!({"type": "ready"})).await {
        return;
    }
    loop {
        tokio::select! {
            changed = revocations.changed(), if announced => {
                announced = changed.is_ok();
                if !still_valid(&state, &p, &credentials).await {
                    close_revoked(&mut socket).await;
                    break;
                }
            }
            _ = recheck.tick() => {
                if !still_valid(&state, &p, &credentials).await {
                    close_revoked(&mut socket).await;
                    break;
                }
            }
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue, // pings are answered by axum; binary frames are ignored
                };
                let reply = handle_frame(&state, &p, &mut subscribed, text.as_str()).await;
                if !send(&mut socket, reply).await {
                    break;
                }
            }
            ev = events.recv() => {
                let out = match ev {
                    Ok(ev) => event_frame(&state, &p, &mut subscribed, ev).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "live socket fell behind");
                        Some(json!({"type": "resync"}))
                    }
                    Err(RecvError::Closed) => break,
                };
                if let Some(v) = out {
                    if !send(&mut socket, v).await {
                        break;
                    }
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Closes the connection with 1008: its key was revoked, its session ended or its token expired.
async fn close_revoked(socket: &mut WebSocket) {
    let frame = axum::extract::ws::CloseFrame {
        code: CLOSE_POLICY,
        reason: "credentials revoked or expired; sign in again".into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn handle_frame(state: &AppState, p: &Principal, subscribed: &mut HashSet<String>, text: &str) -> Value {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return json!({"type": "error", "message": format!("bad frame: {e}")}),
    };
    match frame {
        ClientFrame::Ping => json!({"type": "pong"}),
        ClientFrame::Unsubscribe { conversation_id } => {
            subscribed.remove(&conversation_id);
            json!({"type": "unsubscribed", "conversation_id": conversation_id})
        }
        ClientFrame::Subscribe { conversation_id } => {
            if subscribed.len() >= MAX_SUBSCRIPTIONS && !subscribed.contains(&conversation_id) {
                return json!({"type": "error", "message": format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection")});
            }
            match state.storage().get_conversation(&p.user_id, &conversation_id).await {
                Ok(Some(_)) => {
                    subscribed.insert(conversation_id.clone());
                    json!({"type": "subscribed", "conversation_id": conversation_id})
                }
                // Someone else's conversation looks exactly like a missing one.
                Ok(None) => json!({"type": "error", "message": format!("Conversation {conversation_id} not found")}),
                Err(e) => {
                    tracing::warn!(error = %e, "live socket: cannot check a conversation");
                    json!({"type": "error", "message": "cannot subscribe now; try again"})
                }
            }
        }
    }
}

/// The frame an event becomes for this connection, if it concerns it.
async fn event_frame(state: &AppState, p: &Principal, subscribed: &mut HashSet<String>, ev: Event) -> Option<Value> {
    let storage = state.storage();
    match ev {
        Event::MessageCreated { conversation_id, message_id } if subscribed.contains(&conversation_id) => match storage
            .get_message(&conversation_id, &message_id)
            .await
        {
            Ok(Some(m)) => Some(json!({"type": "message_created", "conversation_id": conversation_id, "message": m})),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "live socket: cannot load a message");
                Some(json!({"type": "resync"}))
            }
        },
        Event::ConversationUpdated { conversation_id } => {
            match storage.get_conversation(&p.user_id, &conversation_id).await {
                Ok(Some(c)) => {
                    Some(json!({"type": "conversation_updated", "conversation_id": conversation_id, "conversation": c}))
                }
                // Gone: tell the connections that followed it; others cannot tell it was the caller's.
                Ok(None) if subscribed.remove(&conversation_id) => Some(
                    json!({"type": "conversation_updated", "conversation_id": conversation_id, "conversation": null}),
                ),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "live socket: cannot load a conversation");
                    Some(json!({"type": "resync"}))
                }
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8666"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8666"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        assert!(cookie_only(&h));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        assert!(!cookie_only(&h));
    }
}
