//! `/ws/chat`: a conversation open in two places sees new messages, renames and deletion in both;
//! nobody sees another user's conversations; cross-site connections with a cookie are refused;
//! participants of a shared conversation see who is there and who is typing, on one instance and
//! across two (through Redis), and lose it when the share is withdrawn. SQLite and PostgreSQL.

use crate::common;

use common::{start, Fetch};
use futures::{SinkExt, StreamExt};
use gaia_core::testing::database_urls;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &common::TestServer, token: &str) -> Ws {
    let mut req = format!("{}/ws/chat", s.url.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "ready");
    ws
}

/// The next JSON frame (skipping pings), failing after 5 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time").unwrap().unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Frames up to the `pong` answering a ping sent now (everything the server had queued before).
async fn drain(ws: &mut Ws) -> Vec<Value> {
    send(ws, json!({"type": "ping"})).await;
    let mut out = Vec::new();
    loop {
        let v = next(ws).await;
        if v["type"] == "pong" {
            return out;
        }
        out.push(v);
    }
}

#[tokio::test]
async fn two_tabs_see_the_same_conversation() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (a, _, _) = s.register("a@example.com").await;
        let (o, _, _) = s.register("o@example.com").await;
        let v: Value = s
            .http
            .post(format!("{}/api/v1/chat", s.url))
            .bearer_auth(&a)
            .json(&json!({"message": "hello"}))
            .fetch_json()
            .await;
        let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();

        let mut tab1 = connect(&s, &a).await;
        let mut tab2 = connect(&s, &a).await;
        let mut other = connect(&s, &o).await;
        for ws in [&mut tab1, &mut tab2] {
            send(ws, json!({"type": "subscribe", "conversation_id": conv})).await;
            assert_eq!(next(ws).await, json!({"type": "subscribed", "conversation_id": conv}), "{b}");
        }
        // Another user cannot follow it (and cannot tell it exists).
        send(&mut other, json!({"type": "subscribe", "conversation_id": conv})).await;
        let e = next(&mut other).await;
        assert_eq!(e["type"], "error");
        assert!(e["message"].as_str().unwrap().contains("not found"), "{e}");
        // Bad frames get an error, and the connection stays.
        send(&mut tab2, json!({"type": "dance"})).await;
        assert_eq!(next_of(&mut tab2, "error").await["type"], "error");

        // A streamed turn (as if from tab 1): both tabs get the user message and the answer.
        let r = s
            .http
            .post(format!("{}/api/v1/chat", s.url))
            .bearer_auth(&a)
            .json(&json!({"message": "second", "conversation_id": conv, "stream": true}))
            .send()
            .await
            .unwrap();
        assert!(r.text().await.unwrap().contains("[DONE]"));
        for ws in [&mut tab1, &mut tab2] {
            let mut created = Vec::new();
            while created.len() < 2 {
                let v = next(ws).await;
                if v["type"] == "message_created" {
                    assert_eq!(v["conversation_id"], conv.as_str());
                    created.push(v["message"].clone());
                }
            }
            assert_eq!((created[0]["role"].as_str(), created[0]["content"].as_str()), (Some("user"), Some("second")));
            assert_eq!(created[1]["role"], "assistant", "{b}");
            assert_eq!(created[1]["content"], "Mock reply to: second");
        }
        // A rename reaches both tabs.
        let r = s
            .http
            .patch(format!("{}/api/v1/conversations/{conv}", s.url))
            .bearer_auth(&a)
            .json(&json!({"title": "Renamed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        for ws in [&mut tab1, &mut tab2] {
            let frames = drain(ws).await;
            assert!(
                frames.iter().any(|f| f["type"] == "conversation_updated" && f["conversation"]["title"] == "Renamed"),
                "{b}: {frames:?}"
            );
        }
        // The other user saw nothing of all this.
        let frames = drain(&mut other).await;
        assert!(frames.is_empty(), "{b}: {frames:?}");
        // Deleting: the followers learn the conversation is gone.
        let r = s.http.delete(format!("{}/api/v1/conversations/{conv}", s.url)).bearer_auth(&a).send().await.unwrap();
        assert!(r.status().is_success());
        let frames = drain(&mut tab1).await;
        assert!(
            frames.iter().any(|f| f["type"] == "conversation_updated" && f["conversation"].is_null()),
            "{b}: {frames:?}"
        );
    }
}

#[tokio::test]
async fn sockets_need_credentials_and_the_same_origin() {
    let s = start(gaia_core::testing::sqlite_db(), Some(MockConfig::default())).await;
    let url = format!("{}/ws/chat", s.url.replace("http://", "ws://"));
    // No credentials: 401 at the handshake.
    let err = tokio_tungstenite::connect_async(url.as_str()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // A session cookie from another site's page: 403.
    let token = s.state.auth().create_session(&s.register("a@example.com").await.2, Duration::from_secs(60)).await;
    let (session, _) = token.unwrap();
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("cookie", format!("gaia_session={session}").parse().unwrap());
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // The same cookie from Gaia's own page is fine.
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("cookie", format!("gaia_session={session}").parse().unwrap());
    req.headers_mut().insert("origin", s.url.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "ready");
}

/// The next frame of `kind` (skipping others), failing after 5 s.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

/// The names in the next `presence` frame.
async fn present(ws: &mut Ws) -> Vec<String> {
    let v = next_of(ws, "presence").await;
    assert_eq!(v["count"].as_u64().unwrap() as usize, v["participants"].as_array().unwrap().len());
    v["participants"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
}

/// Ann's conversation, shared with Bob for reading; returns (conversation, share id).
async fn shared_conversation(s: &common::TestServer, ann: &str, bob_id: &str) -> (String, String) {
    let v: Value = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(ann)
        .json(&json!({"message": "the plan"}))
        .fetch_json()
        .await;
    let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();
    let share: Value = s
        .http
        .post(format!("{}/api/v1/rbac/shares", s.url))
        .bearer_auth(ann)
        .json(&json!({"conversation_id": conv, "user_id": bob_id}))
        .fetch_json()
        .await;
    (conv, share["id"].as_str().unwrap().to_string())
}

async fn subscribe(ws: &mut Ws, conv: &str) -> Value {
    send(ws, json!({"type": "subscribe", "conversation_id": conv})).await;
    next(ws).await
}

#[tokio::test]
async fn participants_see_who_is_here_and_who_is_typing() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (ann, _, _) = s.register("ann@example.com").await;
        let (bob, _, bob_id) = s.register("bob@example.com").await;
        let (eve, _, _) = s.register("eve@example.com").await;
        let (conv, share) = shared_conversation(&s, &ann, &bob_id).await;

        let mut ann1 = connect(&s, &ann).await;
        let mut ann2 = connect(&s, &ann).await;
        let mut bob1 = connect(&s, &bob).await;
        let mut eve1 = connect(&s, &eve).await;
        assert_eq!(subscribe(&mut ann1, &conv).await["type"], "subscribed", "{b}");
        assert_eq!(present(&mut ann1).await, ["ann"], "{b}: the email's local part stands for the name");
        // Bob follows the conversation shared with him; everyone there sees him arrive.
        assert_eq!(subscribe(&mut bob1, &conv).await["type"], "subscribed", "{b}");
        assert_eq!(present(&mut bob1).await, ["ann", "bob"]);
        assert_eq!(present(&mut ann1).await, ["ann", "bob"]);
        // Ann's second tab: still two participants.
        assert_eq!(subscribe(&mut ann2, &conv).await["type"], "subscribed");
        assert_eq!(present(&mut ann2).await, ["ann", "bob"]);
        // Eve, with no share, cannot follow it, see who is there, or type in it.
        let e = subscribe(&mut eve1, &conv).await;
        assert!(e["message"].as_str().unwrap().contains("not found"), "{b}: {e}");
        send(&mut eve1, json!({"type": "typing", "conversation_id": conv, "typing": true})).await;
        assert_eq!(next(&mut eve1).await["type"], "error");

        // Ann types in tab 1: Bob and her other tab see it; tab 1 gets no echo.
        send(&mut ann1, json!({"type": "typing", "conversation_id": conv, "typing": true})).await;
        for ws in [&mut bob1, &mut ann2] {
            let t = next_of(ws, "typing").await;
            assert_eq!(
                t,
                json!({"type": "typing", "conversation_id": conv, "user_id": t["user_id"], "name": "ann", "typing": true}),
                "{b}"
            );
        }
        // Repeats within the throttle are not passed on; stopping is.
        send(&mut ann1, json!({"type": "typing", "conversation_id": conv, "typing": true})).await;
        send(&mut ann1, json!({"type": "typing", "conversation_id": conv, "typing": false})).await;
        let t = next_of(&mut bob1, "typing").await;
        assert_eq!(t["typing"], false, "{b}: {t}");
        let frames = drain(&mut ann1).await;
        assert!(!frames.iter().any(|f| f["type"] == "typing"), "{b}: no echo to the typing tab: {frames:?}");
        // Bob may read, not post: he cannot say he is typing.
        send(&mut bob1, json!({"type": "typing", "conversation_id": conv, "typing": true})).await;
        let e = next_of(&mut bob1, "error").await;
        assert!(e["message"].as_str().unwrap().contains("cannot post"), "{b}: {e}");
        // A message Ann posts reaches Bob.
        let r = s
            .http
            .post(format!("{}/api/v1/chat", s.url))
            .bearer_auth(&ann)
            .json(&json!({"message": "meet at the well", "conversation_id": conv}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let m = next_of(&mut bob1, "message_created").await;
        assert_eq!(m["message"]["content"], "meet at the well", "{b}");

        // Ann withdraws the share: Bob's connection stops following at once on the next message, or
        // within the periodic check; Ann sees him leave.
        let r = s.http.delete(format!("{}/api/v1/rbac/shares/{share}", s.url)).bearer_auth(&ann).send().await.unwrap();
        assert!(r.status().is_success(), "{b}");
        let u = next_of(&mut bob1, "unsubscribed").await;
        assert_eq!(u["reason"], "no longer shared with you", "{b}");
        assert_eq!(present(&mut ann1).await, ["ann"], "{b}");
        // Closing a tab: Ann is still there through her other tab, then gone.
        drop(ann2);
        drop(ann1);
        drop(bob1);
        let mut again = connect(&s, &ann).await;
        assert_eq!(subscribe(&mut again, &conv).await["type"], "subscribed");
        let mut seen = present(&mut again).await;
        for _ in 0..20 {
            if seen == ["ann"] {
                break;
            }
            seen = present(&mut again).await;
        }
        assert_eq!(seen, ["ann"], "{b}: closed connections left");
        // Oversized or unknown frames get an error, not a crash.
        send(&mut again, json!({"type": "typing", "conversation_id": conv, "typing": "yes"})).await;
        assert_eq!(next_of(&mut again, "error").await["type"], "error");
    }
}

#[tokio::test]
async fn presence_and_typing_cross_instances_through_redis() {
    use gaia_core::testing::{redis_url, services_required, sqlite_db, unique_redis_prefix};
    let Some(url) = redis_url() else {
        assert!(!services_required(), "GAIA_TEST_REDIS_URL is required");
        return;
    };
    let prefix = unique_redis_prefix();
    let config = common::test_config();
    let db = sqlite_db();
    let db2 = db.alias();
    let one = common::start_shared(db, Some(MockConfig::default()), config.clone(), Some((&url, &prefix))).await;
    let two = common::start_shared(db2, Some(MockConfig::default()), config, Some((&url, &prefix))).await;
    let (ann, _, _) = one.register("ann@example.com").await;
    let (bob, _, bob_id) = one.register("bob@example.com").await;
    let (conv, _) = shared_conversation(&one, &ann, &bob_id).await;

    let mut a = connect(&one, &ann).await;
    assert_eq!(subscribe(&mut a, &conv).await["type"], "subscribed");
    assert_eq!(present(&mut a).await, ["ann"]);
    // Bob on the other instance: he learns Ann is there (her instance answers his arrival with its
    // list), and she sees him arrive.
    let mut bws = connect(&two, &bob).await;
    assert_eq!(subscribe(&mut bws, &conv).await["type"], "subscribed");
    let mut seen = present(&mut bws).await;
    if seen == ["bob"] {
        seen = present(&mut bws).await;
    }
    assert_eq!(seen, ["ann", "bob"]);
    assert_eq!(present(&mut a).await, ["ann", "bob"]);
    send(&mut a, json!({"type": "typing", "conversation_id": conv, "typing": true})).await;
    let t = next_of(&mut bws, "typing").await;
    assert_eq!((t["name"].as_str(), t["typing"].as_bool()), (Some("ann"), Some(true)));
    drop(bws);
    assert_eq!(present(&mut a).await, ["ann"], "Bob's goodbye crossed over");
}
