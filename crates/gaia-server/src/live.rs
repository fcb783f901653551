//! `GET /ws/chat`: live updates over a WebSocket, so a conversation open in several tabs (or apps)
//! shows new messages everywhere.
//!
//! Authentication is the same as the API's (API key, bearer token, or the web UI's session cookie).
//! With a cookie, the `Origin` header must match the `Host` (no cross-site WebSocket hijacking).
//!
//! Frames are JSON text. The client sends `{"type": "subscribe", "conversation_id": "…"}` (its own
//! conversations, and those shared with it for reading), `{"type": "unsubscribe", "conversation_id":
//! "…"}`, `{"type": "typing", "conversation_id": "…", "typing": true|false}` (in a subscribed
//! conversation the user may post in: their own; repeat `true` every few seconds while typing, send
//! `false` on stop or send) or `{"type": "ping"}`. The server sends `{"type": "ready"}` once, then
//! `subscribed`, `unsubscribed` (also unasked, with a `reason`, when a share is withdrawn), `pong`,
//! `error` (`message`), and:
//! - `message_created` (`conversation_id`, `message`: the stored message) for subscribed conversations;
//! - `conversation_updated` (`conversation_id`, `conversation`: the conversation, or `null` once
//!   deleted) for any conversation of the caller, and for subscribed shared ones;
//! - `presence` (`conversation_id`, `participants`: `[{user_id, name}]`, at most 50, and `count`):
//!   who has a subscribed conversation open now, on any instance (each user once, the caller included);
//! - `typing` (`conversation_id`, `user_id`, `name`, `typing`): someone else (or the caller in another
//!   tab) started or stopped typing there; show it for at most 6 s unless repeated;
//! - `resync` when events were missed (a slow connection): reload what is shown.
//!
//! Presence and typing cross instances through the event bus ([`gaia_chat::presence`]).

use crate::error::ApiError;
use crate::extract::Auth;
use crate::routes::conversations::{readable, shared_with};
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gaia_chat::presence::{Connection, Participant, PresenceUpdate};
use gaia_core::auth::Principal;
use gaia_core::events::Event;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
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
    Typing { conversation_id: String, typing: bool },
    Ping,
}

/// A conversation the connection follows: whose it is (the caller's own, or shared with them).
struct Followed {
    owner: String,
}

/// What one connection follows, and its presence in those conversations.
struct Session {
    p: Principal,
    followed: HashMap<String, Followed>,
    presence: Connection,
}

impl Session {
    fn owns(&self, conversation_id: &str) -> bool {
        self.followed.get(conversation_id).is_some_and(|f| f.owner == self.p.user_id)
    }

    fn unfollow(&mut self, conversation_id: &str) -> bool {
        self.presence.leave(conversation_id);
        self.followed.remove(conversation_id).is_some()
    }
}

/// The caller as the other participants see them ([`Participant::named`]).
pub(crate) async fn participant(state: &AppState, p: &Principal) -> Participant {
    let user = state.storage().get_user(&p.user_id).await.ok().flatten();
    Participant::named(&p.user_id, user.as_ref().and_then(|u| u.display_name.as_deref()), p.email.as_deref())
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

/// Whether the credentials a connection was opened with still name the same user (`/ws/chat` and
/// `/ws/experience`).
pub(crate) async fn still_valid(state: &AppState, p: &Principal, credentials: &HeaderMap) -> bool {
    match crate::extract::authenticate(state, credentials, &axum::http::Method::GET).await {
        Ok(now) => now.user_id == p.user_id,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => false,
        // The database or cache cannot say now: keep the connection, the next check decides.
        Err(_) => true,
    }
}

async fn run(state: AppState, p: Principal, credentials: HeaderMap, mut socket: WebSocket) {
    let mut events = state.events().subscribe();
    let mut updates = state.presence().subscribe();
    let presence = state.presence().connect(participant(&state, &p).await);
    let mut s = Session { p, followed: HashMap::new(), presence };
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
        let out: Vec<Value> = tokio::select! {
            changed = revocations.changed(), if announced => {
                announced = changed.is_ok();
                if !still_valid(&state, &s.p, &credentials).await {
                    close_revoked(&mut socket).await;
                    break;
                }
                Vec::new()
            }
            _ = recheck.tick() => {
                if !still_valid(&state, &s.p, &credentials).await {
                    close_revoked(&mut socket).await;
                    break;
                }
                withdrawn_shares(&state, &mut s).await
            }
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue, // pings are answered by axum; binary frames are ignored
                };
                handle_frame(&state, &mut s, text.as_str()).await.into_iter().collect()
            }
            ev = events.recv() => match ev {
                Ok(ev) => event_frame(&state, &mut s, ev).await.into_iter().collect(),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "live socket fell behind");
                    vec![json!({"type": "resync"})]
                }
                Err(RecvError::Closed) => break,
            },
            update = updates.recv() => match update {
                Ok(u) => presence_frame(&s, u).into_iter().collect(),
                // Missed presence changes: the current lists of what the connection follows.
                Err(RecvError::Lagged(_)) => s
                    .followed
                    .keys()
                    .map(|id| participants_frame(id, state.presence().participants(id)))
                    .collect(),
                Err(RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
                Vec::new()
            }
        };
        for v in out {
            if !send(&mut socket, v).await {
                return;
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

/// Stops following the shared conversations the caller may no longer read.
async fn withdrawn_shares(state: &AppState, s: &mut Session) -> Vec<Value> {
    let shared: Vec<(String, String)> = s
        .followed
        .iter()
        .filter(|(_, f)| f.owner != s.p.user_id)
        .map(|(id, f)| (id.clone(), f.owner.clone()))
        .collect();
    let mut out = Vec::new();
    for (id, owner) in shared {
        if !shared_with(state, &s.p, &owner, &id).await {
            s.unfollow(&id);
            out.push(json!({"type": "unsubscribed", "conversation_id": id, "reason": "no longer shared with you"}));
        }
    }
    out
}

async fn handle_frame(state: &AppState, s: &mut Session, text: &str) -> Option<Value> {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return Some(json!({"type": "error", "message": format!("bad frame: {e}")})),
    };
    Some(match frame {
        ClientFrame::Ping => json!({"type": "pong"}),
        ClientFrame::Unsubscribe { conversation_id } => {
            s.unfollow(&conversation_id);
            json!({"type": "unsubscribed", "conversation_id": conversation_id})
        }
        ClientFrame::Typing { conversation_id, typing } => {
            if !s.followed.contains_key(&conversation_id) {
                return Some(
                    json!({"type": "error", "message": format!("subscribe to {conversation_id} before typing in it")}),
                );
            }
            if !s.owns(&conversation_id) {
                return Some(
                    json!({"type": "error", "message": "this conversation is shared with you to read; you cannot post in it"}),
                );
            }
            s.presence.typing(&conversation_id, typing);
            return None; // no answer: typing frames come often
        }
        ClientFrame::Subscribe { conversation_id } => {
            if s.followed.len() >= MAX_SUBSCRIPTIONS && !s.followed.contains_key(&conversation_id) {
                return Some(
                    json!({"type": "error", "message": format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection")}),
                );
            }
            match readable(state, &s.p, &conversation_id).await {
                Ok(c) => {
                    s.followed.insert(conversation_id.clone(), Followed { owner: c.user_id });
                    s.presence.join(&conversation_id);
                    json!({"type": "subscribed", "conversation_id": conversation_id})
                }
                // Someone else's conversation looks exactly like a missing one.
                Err(e) if e.status == StatusCode::NOT_FOUND => {
                    json!({"type": "error", "message": format!("Conversation {conversation_id} not found")})
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "live socket: cannot check a conversation");
                    json!({"type": "error", "message": "cannot subscribe now; try again"})
                }
            }
        }
    })
}

/// The frame an event becomes for this connection, if it concerns it.
async fn event_frame(state: &AppState, s: &mut Session, ev: Event) -> Option<Value> {
    let storage = state.storage();
    match ev {
        Event::MessageCreated { conversation_id, message_id } if s.followed.contains_key(&conversation_id) => {
            // A share can be withdrawn at any time: check it again before showing anything.
            if !s.owns(&conversation_id) {
                let owner = s.followed.get(&conversation_id).map(|f| f.owner.clone()).unwrap_or_default();
                if !shared_with(state, &s.p, &owner, &conversation_id).await {
                    s.unfollow(&conversation_id);
                    return Some(
                        json!({"type": "unsubscribed", "conversation_id": conversation_id, "reason": "no longer shared with you"}),
                    );
                }
            }
            match storage.get_message(&conversation_id, &message_id).await {
                Ok(Some(m)) => {
                    Some(json!({"type": "message_created", "conversation_id": conversation_id, "message": m}))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "live socket: cannot load a message");
                    Some(json!({"type": "resync"}))
                }
            }
        }
        Event::ConversationUpdated { conversation_id } => {
            let found = if s.followed.contains_key(&conversation_id) && !s.owns(&conversation_id) {
                readable(state, &s.p, &conversation_id).await.map(Some).or_else(|e| {
                    if e.status == StatusCode::NOT_FOUND {
                        Ok(None)
                    } else {
                        Err(e.message)
                    }
                })
            } else {
                storage.get_conversation(&s.p.user_id, &conversation_id).await.map_err(|e| e.to_string())
            };
            match found {
                Ok(Some(c)) => {
                    Some(json!({"type": "conversation_updated", "conversation_id": conversation_id, "conversation": c}))
                }
                // Gone: tell the connections that followed it; others cannot tell it was the caller's.
                Ok(None) if s.unfollow(&conversation_id) => Some(
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

/// The frame a presence update becomes for this connection, if it follows the conversation.
fn presence_frame(s: &Session, update: PresenceUpdate) -> Option<Value> {
    if !s.followed.contains_key(update.conversation_id()) {
        return None;
    }
    match update {
        PresenceUpdate::Participants { conversation_id, participants, total } => {
            Some(participants_frame(&conversation_id, (participants, total)))
        }
        PresenceUpdate::Typing { conversation_id, connection, participant, typing } => (connection != s.presence.id())
            .then(|| {
                json!({"type": "typing", "conversation_id": conversation_id, "user_id": participant.user_id,
                       "name": participant.name, "typing": typing})
            }),
    }
}

fn participants_frame(conversation_id: &str, (participants, total): (Vec<Participant>, usize)) -> Value {
    json!({"type": "presence", "conversation_id": conversation_id, "participants": participants, "count": total})
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
