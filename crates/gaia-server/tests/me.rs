//! A user's own data: `GET /api/v1/me/export` gives everything stored about them, and `DELETE
//! /api/v1/me` (confirmed with the account's email) erases it: afterwards no table holds their id or
//! email, their keys stop working at once, their private notes are gone, and other users are intact.

use crate::common::{start, TestServer};
use gaia_core::testing::{database_urls, every_value, mentions};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

async fn setup(s: &TestServer, email: &str, secret: &str) -> (String, String) {
    let (token, _, id) = s.register(email).await;
    let (key, _) = s.api_key(&token).await;
    let body = json!({"message": format!("My secret is {secret}"), "model": "openai/mock-gpt"});
    let r = s.post("/api/v1/chat", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let persona = json!({"name": format!("Guide of {email}"), "system_prompt": "You guide."});
    assert_eq!(s.post("/api/v1/personas", &key).json(&persona).send().await.unwrap().status(), 201);
    let note = json!({"path": format!("users/{id}/diary.md"), "content": format!("# Diary\n{secret} in my diary")});
    let r = s.post("/api/v1/kb/write", &key).json(&note).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    (key, id)
}

#[tokio::test]
async fn a_user_exports_their_data_and_erases_it_leaving_nothing() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let dir = tempfile::tempdir().unwrap();
        let kb = gaia_kb::Kb::open(gaia_kb::KbConfig {
            root: dir.path().join("vault"),
            sync_interval_secs: 0,
            ..Default::default()
        })
        .await
        .unwrap();
        s.state.set_kb(kb);
        let (a_key, a_id) = setup(&s, "ash@example.com", "moonstone").await;
        let (b_key, b_id) = setup(&s, "bea@example.com", "sunstone").await;

        // Export: everything of Ash, nothing of Bea, no secret hash.
        let r = s.get("/api/v1/me/export", &a_key).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let disposition = r.headers()["content-disposition"].to_str().unwrap().to_string();
        assert!(disposition.contains("attachment") && disposition.contains(&a_id), "{b}: {disposition}");
        let export: Value = r.json().await.unwrap();
        let text = export.to_string();
        assert_eq!(export["account"]["user"]["email"], "ash@example.com", "{b}");
        assert!(text.contains("My secret is moonstone"), "{b}: the conversation is in the export");
        assert!(text.contains("Guide of ash@example.com"), "{b}: the persona is in the export");
        assert_eq!(export["kb_private_notes"][0]["path"], format!("users/{a_id}/diary.md"), "{b}");
        assert!(!text.contains("sunstone") && !text.contains(&b_id), "{b}: nothing of another user");
        assert!(!text.contains(&a_key), "{b}: no key");

        // Erasure needs the account's email as confirmation; nothing happens without it.
        let erase = |key: &str, confirm: Value| {
            s.http.delete(format!("{}/api/v1/me", s.url)).header("x-api-key", key).json(&confirm).send()
        };
        assert_eq!(erase(&a_key, json!({"confirm": "bea@example.com"})).await.unwrap().status(), 400, "{b}");
        assert_eq!(erase(&a_key, json!({})).await.unwrap().status(), 400, "{b}");
        assert_eq!(s.get("/api/v1/conversations", &a_key).send().await.unwrap().status(), 200, "{b}");

        let r = erase(&a_key, json!({"confirm": "ASH@example.com"})).await.unwrap();
        assert_eq!(r.status(), 204, "{b}: {}", r.text().await.unwrap());
        // The key stops working at once.
        assert_eq!(s.get("/api/v1/conversations", &a_key).send().await.unwrap().status(), 401, "{b}");
        // The private note is gone from the knowledge base.
        let kb = s.state.kb().unwrap();
        assert!(kb.read(&format!("users/{a_id}/diary.md")).await.is_err(), "{b}");
        // No table holds Ash's id or email anymore.
        s.state.usage().flush().await;
        let values = every_value(s.state.storage()).await;
        assert_eq!(mentions(&values, &a_id, "ash@example.com"), Vec::<String>::new(), "{b}");
        // Bea is untouched.
        assert_eq!(s.get("/api/v1/conversations", &b_key).send().await.unwrap().status(), 200, "{b}");
        assert!(kb.read(&format!("users/{b_id}/diary.md")).await.is_ok(), "{b}");
        assert!(!mentions(&values, &b_id, "bea@example.com").is_empty(), "{b}");
    }
}
