//! Personas that remember (`chat.memory`): after each exchange the persona's memory of the user is
//! updated in the background (metered as `persona_memory`), goes into the next turns' system prompt,
//! survives restarts, stays bounded, and the user can read and delete it.

use crate::common::{eventually_async, start_with, TestServer};
use gaia_core::testing::database_urls;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

fn config() -> Config {
    let mut c = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    c.chat.auto_title = false;
    c.chat.memory = true;
    c.rbac.first_user_admin = false;
    c
}

async fn memory(s: &TestServer, key: &str, persona: &str) -> Value {
    s.get(&format!("/api/v1/personas/{persona}/memory"), key).send().await.unwrap().json().await.unwrap()
}

async fn chat(s: &TestServer, key: &str, message: &str) -> Value {
    let body = json!({"message": message, "model": "openai/mock-gpt"});
    s.post("/api/v1/chat", key).json(&body).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_persona_remembers_each_user_across_conversations_and_restarts() {
    for db in database_urls().await {
        let again = db.alias();
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        let (token, _, _) = s.register("ash@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let (other_token, _, _) = s.register("bea@example.com").await;
        let (other, _) = s.api_key(&other_token).await;

        let m = memory(&s, &key, "default").await;
        assert_eq!(
            (m["facts"].clone(), m["summary"].clone(), m["turns"].clone()),
            (json!([]), json!(""), json!(0)),
            "{b}"
        );

        chat(&s, &key, "My name is Ash and I fear the fog").await;
        assert!(
            eventually_async(|| async { memory(&s, &key, "default").await["turns"] == 1 }).await,
            "{b}: the memory was not updated"
        );
        let m = memory(&s, &key, "default").await;
        assert!(m["summary"].as_str().unwrap().contains("My name is Ash"), "{b}: {m}");

        // A new conversation with the same persona: the model is told what it remembers.
        chat(&s, &key, "Do you remember me?").await;
        let sent = s.mock.as_ref().unwrap().requests();
        assert!(sent >= 3, "{b}");
        assert!(
            eventually_async(|| async { memory(&s, &key, "default").await["turns"] == 2 }).await,
            "{b}: the second update"
        );
        // The chat request before the last memory update carried the memory; ask once more and look
        // at the request the chat made (memory updates run after the answer).
        let r = chat(&s, &key, "Still there?").await;
        assert_eq!(r["choices"][0]["message"]["content"], "Mock reply to: Still there?", "{b}");
        // Every chat turn and memory update was metered under its own endpoint.
        let user_id = s.state.auth().authenticate_api_key(&key).await.unwrap().user_id;
        assert!(
            eventually_async(|| async {
                s.state.usage().flush().await;
                let filter = gaia_core::storage::UsageFilter {
                    user_id: Some(user_id.clone()),
                    since: None,
                    until: None,
                    end_user: None,
                };
                let rows = s.state.storage().list_usage(&filter, 100).await.unwrap();
                rows.iter().filter(|r| r.usage.endpoint == "persona_memory" && r.usage.status == 200).count() >= 2
            })
            .await,
            "{b}: memory updates are metered"
        );

        // Another user: nothing remembered about them, and nothing of Ash shows.
        let theirs = memory(&s, &other, "default").await;
        assert_eq!(theirs["turns"], 0, "{b}: {theirs}");
        assert!(!theirs.to_string().contains("Ash"), "{b}");
        // An unknown (or someone else's) persona: 404.
        let r = s.get("/api/v1/personas/nope/memory", &key).send().await.unwrap();
        assert_eq!(r.status(), 404, "{b}");

        // A restart (another instance on the same database): still remembered.
        let s2 = start_with(again, Some(MockConfig::default()), config()).await;
        let m2 = memory(&s2, &key, "default").await;
        assert!(m2["summary"].as_str().unwrap().contains("My name is Ash"), "{b}: {m2}");

        // Bounded, however long the conversation.
        let long = "fog ".repeat(400);
        for _ in 0..4 {
            chat(&s, &key, &long).await;
        }
        assert!(eventually_async(|| async { memory(&s, &key, "default").await["turns"].as_i64() >= Some(6) }).await);
        let m = memory(&s, &key, "default").await;
        assert!(m["summary"].as_str().unwrap().chars().count() <= 2_000, "{b}: {m}");

        // Forgotten on request.
        let r = s
            .http
            .delete(format!("{}/api/v1/personas/default/memory", s.url))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{b}");
        // A memory update still in flight may land after the delete; wait for quiet, then delete again.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        s.http
            .delete(format!("{}/api/v1/personas/default/memory", s.url))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        let m = memory(&s, &key, "default").await;
        assert_eq!((m["summary"].clone(), m["turns"].clone()), (json!(""), json!(0)), "{b}: {m}");
    }
}

#[tokio::test]
async fn the_next_turn_is_told_what_the_persona_remembers() {
    let s = start_with(gaia_core::testing::sqlite_db(), Some(MockConfig::default()), config()).await;
    let (token, _, _) = s.register("ash@example.com").await;
    let (key, _) = s.api_key(&token).await;
    chat(&s, &key, "I hid the moonstone in the mill").await;
    assert!(eventually_async(|| async { memory(&s, &key, "default").await["turns"] == 1 }).await);
    let before = s.mock.as_ref().unwrap().requests();
    // Streamed slowly, so that the request of the turn is the last one until its answer ends (the
    // memory update follows the answer).
    s.mock.as_ref().unwrap().set_chunk_delay(std::time::Duration::from_millis(300));
    let body = json!({"message": "Where is it?", "model": "openai/mock-gpt", "stream": true});
    let mut r = s.post("/api/v1/chat", &key).json(&body).send().await.unwrap();
    let _first = r.chunk().await.unwrap();
    let sent = s.mock.as_ref().unwrap().last_request().unwrap();
    assert_eq!(s.mock.as_ref().unwrap().requests(), before + 1);
    let system: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        system.iter().any(|t| t.contains("What you remember about this user") && t.contains("moonstone in the mill")),
        "{system:?}"
    );
    while r.chunk().await.unwrap().is_some() {}
    s.mock.as_ref().unwrap().set_chunk_delay(std::time::Duration::ZERO);
}
