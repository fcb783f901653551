//! Personas, chat settings, conversation rename/search/export, automatic titles and the context
//! window bound, over HTTP against the mock upstream. SQLite and PostgreSQL.

use crate::common;

use common::{start, start_with_title, Fetch};
use gaia_core::testing::{database_urls, sqlite_db};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

fn system_of(sent: &Value) -> String {
    sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn persona_crud_isolation_and_use_in_chat() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (a, _, _) = s.register("a@example.com").await;
        let (o, _, _) = s.register("o@example.com").await;
        let url = |p: &str| format!("{}/api/v1{p}", s.url);

        let list: Value = s.http.get(url("/personas")).bearer_auth(&a).fetch_json().await;
        assert_eq!(list["default_persona_id"], "default", "{b}");
        assert_eq!(list["personas"].as_array().unwrap().len(), 1);
        // Bad input: 400 with a message; built-in: 403; malformed JSON: 400.
        let r = s.http.post(url("/personas")).bearer_auth(&a).json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("system_prompt"));
        let r =
            s.http.patch(url("/personas/default")).bearer_auth(&a).json(&json!({"name": "Mine"})).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let r = s
            .http
            .post(url("/personas"))
            .bearer_auth(&a)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        let r = s
            .http
            .post(url("/personas"))
            .bearer_auth(&a)
            .json(&json!({"name": "Pirate", "system_prompt": "Talk like a pirate.", "temperature": 0.3}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let pirate: Value = r.json().await.unwrap();
        let pid = pirate["id"].as_str().unwrap().to_string();
        // Another user: 404 on get, update, delete and use.
        for req in [
            s.http.get(url(&format!("/personas/{pid}"))),
            s.http.patch(url(&format!("/personas/{pid}"))).json(&json!({"name": "x"})),
            s.http.delete(url(&format!("/personas/{pid}"))),
            s.http.post(url("/chat")).json(&json!({"message": "hi", "persona_id": pid})),
        ] {
            assert_eq!(req.bearer_auth(&o).send().await.unwrap().status(), 404, "{b}");
        }
        let r = s
            .http
            .patch(url(&format!("/personas/{pid}")))
            .bearer_auth(&a)
            .json(&json!({"description": "Arr"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["description"], "Arr");

        // Chat with the default persona, then make the pirate the default: new chats use it, with its temperature.
        let r: Value = s.http.post(url("/chat")).bearer_auth(&a).json(&json!({"message": "hello"})).fetch_json().await;
        let first_conv = r["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        let sent = s.mock.as_ref().unwrap().last_request().unwrap();
        assert!(system_of(&sent).contains("You are Gaia"), "{b}: {sent}");
        let r = s
            .http
            .patch(url("/settings"))
            .bearer_auth(&a)
            .json(&json!({"default_persona_id": pid, "theme": "light"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["theme"], "light");
        let r = s.http.patch(url("/settings")).bearer_auth(&a).json(&json!({"theme": "neon"})).send().await.unwrap();
        assert_eq!(r.status(), 400);
        s.http.post(url("/chat")).bearer_auth(&a).json(&json!({"message": "ahoy"})).send().await.unwrap();
        let sent = s.mock.as_ref().unwrap().last_request().unwrap();
        assert_eq!(system_of(&sent), "Talk like a pirate.", "{b}");
        assert_eq!(sent["temperature"], 0.3);
        // The first conversation keeps the persona it had (none stored: the default at the time, now the pirate).
        // Choosing a persona for a conversation sticks to it.
        let r = s
            .http
            .patch(url(&format!("/conversations/{first_conv}")))
            .bearer_auth(&a)
            .json(&json!({"persona_id": "default"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["persona_id"], "default");
        s.http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"message": "again", "conversation_id": first_conv}))
            .send()
            .await
            .unwrap();
        assert!(system_of(&s.mock.as_ref().unwrap().last_request().unwrap()).contains("You are Gaia"));

        // Deleting the persona: 204, then it is gone and the default falls back to the built-in one.
        let r = s.http.delete(url(&format!("/personas/{pid}"))).bearer_auth(&a).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let st: Value = s.http.get(url("/settings")).bearer_auth(&a).fetch_json().await;
        assert_eq!(st["default_persona_id"], Value::Null, "{b}");
        assert_eq!(s.http.get(url(&format!("/personas/{pid}"))).bearer_auth(&a).send().await.unwrap().status(), 404);
    }
}

#[tokio::test]
async fn rename_search_and_export() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (a, _, _) = s.register("a@example.com").await;
        let (o, _, _) = s.register("o@example.com").await;
        let url = |p: &str| format!("{}/api/v1{p}", s.url);
        let r: Value = s
            .http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"message": "Where is the <b>dragon</b> cave?"}))
            .fetch_json()
            .await;
        let id = r["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        s.http.post(url("/chat")).bearer_auth(&a).json(&json!({"message": "Shopping list"})).send().await.unwrap();

        let r = s
            .http
            .patch(url(&format!("/conversations/{id}")))
            .bearer_auth(&a)
            .json(&json!({"title": "Dragons"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["title"], "Dragons", "{b}");
        let r = s
            .http
            .patch(url(&format!("/conversations/{id}")))
            .bearer_auth(&o)
            .json(&json!({"title": "mine"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = s
            .http
            .patch(url(&format!("/conversations/{id}")))
            .bearer_auth(&a)
            .json(&json!({"title": "x".repeat(501)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        // Newest first; search over message text (the mock echoes it) and titles.
        let list: Value = s.http.get(url("/conversations")).bearer_auth(&a).fetch_json().await;
        assert_eq!(list["conversations"][0]["id"], id, "the rename made it the most recent");
        let hits: Value = s.http.get(url("/conversations?q=CAVE")).bearer_auth(&a).fetch_json().await;
        let hits = hits["conversations"].as_array().unwrap();
        assert_eq!(hits.len(), 1, "{b}");
        assert!(hits[0]["snippet"].as_str().unwrap().contains("cave"));
        let none: Value = s.http.get(url("/conversations?q=cave")).bearer_auth(&o).fetch_json().await;
        assert!(none["conversations"].as_array().unwrap().is_empty());

        let r = s
            .http
            .get(url(&format!("/conversations/{id}/export?format=markdown")))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-disposition"].to_str().unwrap().contains(".md"));
        let md = r.text().await.unwrap();
        assert!(md.starts_with("# Dragons\n"), "{md}");
        assert!(
            md.contains("## You ·")
                && md.contains("Where is the <b>dragon</b> cave?")
                && md.contains("## Assistant (mock-gpt"),
            "{md}"
        );
        let j: Value = s.http.get(url(&format!("/conversations/{id}/export"))).bearer_auth(&a).fetch_json().await;
        assert_eq!(j["messages"].as_array().unwrap().len(), 2);
        assert_eq!(j["conversation"]["title"], "Dragons");
        let r =
            s.http.get(url(&format!("/conversations/{id}/export?format=pdf"))).bearer_auth(&a).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r = s.http.get(url(&format!("/conversations/{id}/export"))).bearer_auth(&o).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
}

#[tokio::test]
async fn first_exchange_gets_a_title_from_the_model_unless_renamed() {
    let s = start_with_title(sqlite_db(), Some(MockConfig::default())).await;
    let (a, _, _) = s.register("a@example.com").await;
    let url = |p: &str| format!("{}/api/v1{p}", s.url);
    for stream in [false, true] {
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"message": "Tell me about the safe house", "stream": stream}))
            .send()
            .await
            .unwrap();
        let id = if stream {
            let body = r.text().await.unwrap();
            let meta: Value = serde_json::from_str(&common::sse_data(&body)[0]).unwrap();
            meta["conversation_id"].as_str().unwrap().to_string()
        } else {
            r.json::<Value>().await.unwrap()["_metadata"]["conversation_id"].as_str().unwrap().to_string()
        };
        // The mock answers "Mock reply to: <prompt>", so the model's title starts with "Mock reply to".
        let mut title = String::new();
        let mut changed = false;
        for _ in 0..100 {
            let c: Value = s.http.get(url(&format!("/conversations/{id}"))).bearer_auth(&a).fetch_json().await;
            title = c["title"].as_str().unwrap_or_default().to_string();
            if title != "Tell me about the safe house" {
                changed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(changed, "stream={stream}: title stayed {title:?}");
        assert!(title.starts_with("Mock reply to"), "{title}");
        assert!(title.chars().count() <= 81);
    }
    // A second turn does not retitle.
    let r: Value = s.http.post(url("/chat")).bearer_auth(&a).json(&json!({"message": "one"})).fetch_json().await;
    let id = r["_metadata"]["conversation_id"].as_str().unwrap().to_string();
    s.http
        .patch(url(&format!("/conversations/{id}")))
        .bearer_auth(&a)
        .json(&json!({"title": "Mine"}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let c: Value = s.http.get(url(&format!("/conversations/{id}"))).bearer_auth(&a).fetch_json().await;
    assert_eq!(c["title"], "Mine", "a rename wins over the automatic title");
}

#[tokio::test]
async fn history_is_bounded_by_the_context_window() {
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (a, _, _) = s.register("a@example.com").await;
    let url = format!("{}/api/v1/chat", s.url);
    let mut conv: Option<String> = None;
    // Each turn is ~2,000 words asked and echoed back: 8 turns are far over the default 8,192 tokens.
    for i in 0..8 {
        let message = format!("turn{i} {}", "lorem ".repeat(2000));
        let mut body = json!({"message": message, "model": "openai/mock-gpt"});
        if let Some(c) = &conv {
            body["conversation_id"] = json!(c);
        }
        let r: Value = s.http.post(&url).bearer_auth(&a).json(&body).fetch_json().await;
        conv = Some(r["_metadata"]["conversation_id"].as_str().unwrap().to_string());
    }
    let sent = s.mock.as_ref().unwrap().last_request().unwrap();
    let msgs = sent["messages"].as_array().unwrap();
    let words: usize = msgs.iter().map(|m| m["content"].as_str().unwrap_or_default().split_whitespace().count()).sum();
    assert!(words < 8_192, "{words} words sent");
    assert_eq!(msgs[0]["role"], "system");
    assert!(msgs.last().unwrap()["content"].as_str().unwrap().starts_with("turn7 "));
    assert!(
        !msgs.iter().any(|m| m["content"].as_str().unwrap_or_default().starts_with("turn0 ")),
        "the oldest turn was dropped"
    );
    assert_eq!(msgs[1]["role"], "user", "the kept history starts with a question");
}
