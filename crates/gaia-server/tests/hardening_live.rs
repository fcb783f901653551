//! Issue 17, items 9 and 13, performed as an attacker would: a key revoked from the command line (its
//! own process and in-process cache) keeps working on a running single-instance server while its
//! validation is cached; a user opens WebSockets without limit; a socket keeps receiving after its key
//! was revoked. SQLite and PostgreSQL.

use crate::common;

use common::{eventually, eventually_async, start_with};
use futures::StreamExt;
use gaia_core::auth::{Authenticator, JwtKeys};
use gaia_core::cache::MemoryCache;
use gaia_core::testing::database_urls;
use gaia_core::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn config() -> Config {
    let mut c = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    c.chat.auto_title = false;
    c.chat.memory = false;
    c.rbac.first_user_admin = false;
    // Validations are cached for a minute: only the revocation poll can end them sooner.
    c.cache.api_key_ttl_secs = 60;
    c.cache.revocation_poll_ms = 50;
    c
}

/// What `gaia keys revoke` does: its own process, its own in-process cache, the same database.
fn cli_authenticator(s: &common::TestServer) -> Authenticator {
    Authenticator::new(
        s.state.storage().clone(),
        Arc::new(MemoryCache::new(10)),
        JwtKeys::random(),
        Duration::from_secs(60),
    )
}

/// Polls `GET path` with `key` until it answers `status`, for up to ~5 s.
async fn answers(s: &common::TestServer, path: &str, key: &str, status: u16) -> bool {
    eventually_async(|| async { s.get(path, key).send().await.unwrap().status() == status }).await
}

#[tokio::test]
async fn a_key_revoked_from_the_cli_stops_working_on_a_running_server() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (token, _, _) = s.register("victim@example.com").await;
        let (key, id) = s.api_key(&token).await;
        // Used once: its validation is now cached by the server for a minute.
        assert_eq!(s.get("/api/v1/conversations", &key).send().await.unwrap().status(), 200, "{b}");

        let revoked = cli_authenticator(&s).revoke_api_key(&id).await.unwrap();
        assert!(revoked.is_some_and(|k| k.revoked_at.is_some()), "{b}");
        assert!(answers(&s, "/api/v1/conversations", &key, 401).await, "{b}: the revoked key still works");
        // And stays refused.
        assert_eq!(s.get("/api/v1/conversations", &key).send().await.unwrap().status(), 401, "{b}");
    }
}

#[tokio::test]
async fn an_administrator_demoted_from_the_cli_loses_the_rights_on_a_running_server() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (token, _, user_id) = s.register("boss@example.com").await;
        s.state.storage().set_admin(&user_id, true).await.unwrap();
        let (key, _) = s.api_key(&token).await;
        assert_eq!(s.get("/api/v1/audit", &key).send().await.unwrap().status(), 200, "{b}");
        // `gaia rbac admin --email boss@example.com --revoke`
        s.state.storage().set_admin(&user_id, false).await.unwrap();
        s.state.storage().bump_credentials_version().await.unwrap();
        assert!(answers(&s, "/api/v1/audit", &key, 403).await, "{b}: still an administrator");
    }
}

/// Signs out with a refresh token only (`POST /api/v1/auth/logout`); the status.
async fn sign_out(s: &common::TestServer, refresh: &str) -> u16 {
    let r = s.http.post(format!("{}/api/v1/auth/logout", s.url)).json(&serde_json::json!({"refresh_token": refresh}));
    r.send().await.unwrap().status().as_u16()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The code the server closes `ws` with (`None`: closed without one), or `Err` after 10 s.
async fn close_code(ws: &mut Ws) -> Result<Option<u16>, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
        None
    })
    .await
}

async fn open(s: &common::TestServer, key: &str) -> Result<Ws, u16> {
    let mut req = format!("{}/ws/chat", s.url.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("unexpected WebSocket error: {e}"),
    }
}

#[tokio::test]
async fn one_user_cannot_open_sockets_without_limit() {
    for db in database_urls().await {
        let mut c = config();
        c.server.max_sockets_per_user = 3;
        let s = start_with(db, None, c).await;
        let b = s.backend;
        let (t1, _, u1) = s.register("greedy@example.com").await;
        let (t2, _, _) = s.register("other@example.com").await;
        let (k1, _) = s.api_key(&t1).await;
        let (k2, _) = s.api_key(&t2).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(open(&s, &k1).await.expect("within the cap"));
        }
        assert_eq!(open(&s, &k1).await.err(), Some(429), "{b}: a fourth socket of the same user");
        // Someone else is not affected.
        let other = open(&s, &k2).await.expect("another user's socket");
        // Closing one frees its place.
        let mut first = held.remove(0);
        first.close(None).await.unwrap();
        while first.next().await.is_some() {}
        let freed = eventually(|| s.state.live_connections_of(&u1) < 3).await;
        assert!(freed && open(&s, &k1).await.is_ok(), "{b}: a closed socket's place is given back");
        drop(other);
    }
}

#[tokio::test]
async fn a_socket_is_closed_when_its_key_is_revoked() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (token, _, _) = s.register("player@example.com").await;
        let (key, id) = s.api_key(&token).await;
        let mut ws = open(&s, &key).await.expect("socket");
        // `ready`
        let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(first, Message::Text(_)), "{b}");

        cli_authenticator(&s).revoke_api_key(&id).await.unwrap();
        let closed = close_code(&mut ws).await.expect("the socket is closed after the revocation");
        assert_eq!(closed, Some(1008), "{b}: closed as a policy violation");
    }
}

#[tokio::test]
async fn signing_out_does_not_outdate_every_cached_key_validation() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (_, refresh, _) = s.register("someone@example.com").await;
        let before = s.state.storage().credentials_versions().await.unwrap();
        assert_eq!(sign_out(&s, &refresh).await, 204, "{b}");
        let after = s.state.storage().credentials_versions().await.unwrap();
        assert!(after.sessions > before.sessions, "{b}: the session's end is announced");
        assert_eq!(after.keys, before.keys, "{b}: cached API-key validations stay valid");
    }
}

#[tokio::test]
async fn a_socket_is_closed_when_its_sign_in_session_ends() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (access, refresh, _) = s.register("player@example.com").await;
        let mut req = format!("{}/ws/chat", s.url.replace("http://", "ws://")).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {access}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("socket");
        let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(first, Message::Text(_)), "{b}");

        // Signing out (with the refresh token only) ends the session its access token belongs to.
        assert_eq!(sign_out(&s, &refresh).await, 204, "{b}");
        let closed = close_code(&mut ws).await.expect("the socket is closed after the sign-out");
        assert_eq!(closed, Some(1008), "{b}");
    }
}
