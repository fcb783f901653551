//! `/ws/chat`: a conversation open in two places sees new messages, renames and deletion in both;
//! nobody sees another user's conversations; cross-site connections with a cookie are refused.
//! SQLite and PostgreSQL.

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
        assert_eq!(next(&mut tab2).await["type"], "error");

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
