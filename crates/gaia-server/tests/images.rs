//! Images in chat: upload (multipart and raw), ownership, limits, the image reaching the vision model
//! in OpenAI's and Anthropic's formats (and in later turns), refusal by models without vision, and
//! regenerating an answer. SQLite and PostgreSQL.

use crate::common;

use common::{start, Fetch};
use gaia_core::testing::{database_urls, sqlite_db};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

/// A real 64×64 PNG (a treasure map).
const PNG: &[u8] = include_bytes!("data/map.png");

async fn upload(s: &common::TestServer, token: &str, name: &str, bytes: &[u8]) -> reqwest::Response {
    let part =
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()).mime_str("image/png").unwrap();
    let form = reqwest::multipart::Form::new().text("note", "ignored").part("file", part);
    s.http.post(format!("{}/api/v1/attachments", s.url)).bearer_auth(token).multipart(form).send().await.unwrap()
}

#[tokio::test]
async fn images_are_stored_private_and_reach_vision_models() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (a, _, _) = s.register("a@example.com").await;
        let (o, _, _) = s.register("o@example.com").await;
        let url = |p: &str| format!("{}/api/v1{p}", s.url);

        // Multipart upload: 201 with the type read from the bytes.
        let r = upload(&s, &a, "dir/map.png", PNG).await;
        assert_eq!(r.status(), 201, "{b}");
        let up: Value = r.json().await.unwrap();
        assert_eq!((up["media_type"].as_str(), up["file_name"].as_str()), (Some("image/png"), Some("map.png")));
        assert_eq!(up["size"], PNG.len());
        let id = up["id"].as_str().unwrap().to_string();
        // Raw upload works too.
        let r = s
            .http
            .post(url("/attachments"))
            .bearer_auth(&a)
            .header("content-type", "image/png")
            .body(PNG.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        // The owner gets the bytes back with safe headers; anyone else a 404.
        let r = s.http.get(url(&format!("/attachments/{id}"))).bearer_auth(&a).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
        let r = s.http.get(url(&format!("/attachments/{id}"))).bearer_auth(&o).send().await.unwrap();
        assert_eq!(r.status(), 404, "{b}");
        let r = s.http.get(url(&format!("/attachments/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), 401);

        // Someone else's upload cannot be sent.
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&o)
            .json(&json!({"message": "what is this?", "attachments": [id]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{b}");

        // OpenAI wire format: the image goes as an `image_url` data URL part.
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"message": "What is on this map?", "attachments": [id], "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let v: Value = r.json().await.unwrap();
        assert!(v["choices"][0]["message"]["content"].as_str().unwrap().ends_with("[saw 1 image]"), "{v}");
        let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        let sent = s.mock.as_ref().unwrap().last_request().unwrap();
        let parts = sent["messages"].as_array().unwrap().last().unwrap()["content"].clone();
        assert_eq!(parts[0], json!({"type": "text", "text": "What is on this map?"}));
        assert_eq!(parts[1]["type"], "image_url");
        assert!(parts[1]["image_url"]["url"].as_str().unwrap().starts_with("data:image/png;base64,iVBORw0KGgo"));
        // An upload is sent once.
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"message": "again", "attachments": [id], "conversation_id": conv}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{b}");
        // The stored message lists its image.
        let msgs: Value =
            s.http.get(url(&format!("/conversations/{conv}/messages"))).bearer_auth(&a).fetch_json().await;
        let first = &msgs.as_array().map(|m| m[0].clone()).unwrap_or_else(|| msgs["messages"][0].clone());
        assert_eq!(first["attachments"][0]["id"], id.as_str(), "{msgs}");

        // Next turn, on an Anthropic model: the earlier image stays in the history, as an image block.
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"message": "And the north?", "conversation_id": conv, "model": "anthropic/mock-claude"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let sent = s.mock.as_ref().unwrap().last_request().unwrap();
        let first_user = &sent["messages"][0]["content"];
        assert_eq!(first_user[0]["type"], "image", "{sent}");
        assert_eq!(first_user[0]["source"]["type"], "base64");
        assert_eq!(first_user[0]["source"]["media_type"], "image/png");
        assert_eq!(first_user[1], json!({"type": "text", "text": "What is on this map?"}));

        // An image alone (no text) is a valid message.
        let up2: Value = upload(&s, &a, "b.png", PNG).await.json().await.unwrap();
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&a)
            .json(&json!({"attachments": [up2["id"]], "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let v: Value = r.json().await.unwrap();
        let c2 = v["_metadata"]["conversation_id"].as_str().unwrap();
        let c: Value = s.http.get(url(&format!("/conversations/{c2}"))).bearer_auth(&a).fetch_json().await;
        assert_eq!(c["title"], "Image", "{c}");
    }
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_reason() {
    let mut config =
        gaia_core::Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Default::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.chat.max_image_bytes = 1024;
    let s = common::start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let (a, _, _) = s.register("a@example.com").await;
    let url = format!("{}/api/v1/attachments", s.url);
    // Not an image (whatever the client says).
    let r = upload(&s, &a, "x.png", b"<svg onload=alert(1)></svg>").await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("not a PNG"));
    // Too large, as multipart and as a raw body.
    let mut big = PNG.to_vec();
    big.resize(4096, 0);
    let r = upload(&s, &a, "big.png", &big).await;
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("1024"));
    let mut huge = PNG.to_vec();
    huge.resize(200 * 1024, 0);
    let r = s.http.post(&url).bearer_auth(&a).header("content-type", "image/png").body(huge).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // Empty, a form without `file`, another content type.
    let r =
        s.http.post(&url).bearer_auth(&a).header("content-type", "image/png").body(Vec::new()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let form = reqwest::multipart::Form::new().text("other", "x");
    let r = s.http.post(&url).bearer_auth(&a).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("`file`"));
    let r = s.http.post(&url).bearer_auth(&a).json(&json!({"file": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 415);
    // Too many images in one message; unknown ids.
    let ids: Vec<String> = (0..9).map(|i| format!("id-{i}")).collect();
    let chat = format!("{}/api/v1/chat", s.url);
    let r = s.http.post(&chat).bearer_auth(&a).json(&json!({"message": "x", "attachments": ids})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(&chat)
        .bearer_auth(&a)
        .json(&json!({"message": "x", "attachments": ["nope"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn models_without_vision_refuse_images() {
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (a, _, _) = s.register("a@example.com").await;
    let entry: gaia_core::config::ProviderEntry = serde_json::from_value(json!({
        "name": "textonly", "kind": "openai", "base_url": s.mock.as_ref().unwrap().openai_base_url(), "api_key": "sk-test",
        "models": [{"id": "mock-gpt", "capabilities": ["tools", "streaming"]}]
    }))
    .unwrap();
    s.state.providers().add_entry(&entry).unwrap();
    let up: Value = upload(&s, &a, "a.png", PNG).await.json().await.unwrap();
    let r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&a)
        .json(&json!({"message": "look", "attachments": [up["id"]], "model": "textonly/mock-gpt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("vision"));
    // Nothing was stored or sent: the upload is still usable with a vision model.
    let r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&a)
        .json(&json!({"message": "look", "attachments": [up["id"]], "model": "openai/mock-gpt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn regenerate_replaces_the_last_answer() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let (a, _, _) = s.register("a@example.com").await;
        let (o, _, _) = s.register("o@example.com").await;
        let chat = format!("{}/api/v1/chat", s.url);
        let v: Value = s.http.post(&chat).bearer_auth(&a).json(&json!({"message": "first"})).fetch_json().await;
        let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        s.http
            .post(&chat)
            .bearer_auth(&a)
            .json(&json!({"message": "second", "conversation_id": conv}))
            .send()
            .await
            .unwrap();
        let before = s.mock.as_ref().unwrap().requests();
        // Streamed regenerate: one new answer to "second"; the old one is gone.
        let r = s
            .http
            .post(&chat)
            .bearer_auth(&a)
            .json(&json!({"regenerate": true, "conversation_id": conv, "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let body = r.text().await.unwrap();
        assert!(body.contains("[DONE]"));
        assert_eq!(s.mock.as_ref().unwrap().requests(), before + 1);
        let sent = s.mock.as_ref().unwrap().last_request().unwrap();
        let roles: Vec<&str> =
            sent["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles.iter().filter(|r| **r == "user").count(), 2, "{sent}");
        assert_eq!(sent["messages"].as_array().unwrap().last().unwrap()["content"], "second");
        let msgs: Value =
            s.http.get(format!("{}/api/v1/conversations/{conv}/messages", s.url)).bearer_auth(&a).fetch_json().await;
        let list = msgs.as_array().cloned().unwrap_or_else(|| msgs["messages"].as_array().unwrap().clone());
        let contents: Vec<&str> = list.iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["first", "Mock reply to: first", "second", "Mock reply to: second"], "{b}");
        // Bad uses: without a conversation, someone else's conversation, an empty one.
        let r = s.http.post(&chat).bearer_auth(&a).json(&json!({"regenerate": true})).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r = s
            .http
            .post(&chat)
            .bearer_auth(&o)
            .json(&json!({"regenerate": true, "conversation_id": conv}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{b}");
        let empty: Value =
            s.http.post(format!("{}/api/v1/conversations", s.url)).bearer_auth(&a).json(&json!({})).fetch_json().await;
        let r = s
            .http
            .post(&chat)
            .bearer_auth(&a)
            .json(&json!({"regenerate": true, "conversation_id": empty["id"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{b}");
    }
}

#[tokio::test]
async fn compatible_endpoints_translate_images_both_ways() {
    use base64::Engine as _;
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (a, _, _) = s.register("a@example.com").await;
    let (key, _) = s.api_key(&a).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(PNG);
    // OpenAI format in, to a Claude model: an Anthropic image block goes out.
    let r = s
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "anthropic/mock-claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}"), "detail": "low"}}
        ]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: Describe [saw 1 image]");
    let sent = s.mock.as_ref().unwrap().last_request().unwrap();
    assert_eq!(
        sent["messages"][0]["content"][0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}})
    );
    // Anthropic format in, to a GPT model: an OpenAI image_url part goes out (URLs stay URLs).
    let r = s
        .post("/v1/messages", &key)
        .json(&json!({"model": "openai/mock-gpt", "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
            {"type": "text", "text": "Where?"}
        ]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = s.mock.as_ref().unwrap().last_request().unwrap();
    let parts = &sent["messages"][0]["content"];
    assert_eq!(parts[0], json!({"type": "text", "text": "Where?"}));
    assert_eq!(parts[1], json!({"type": "image_url", "image_url": {"url": "https://example.com/map.png"}}));
    // Malformed image input: 400 in each API's own error shape.
    let r = s
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("image_url.url"));
    let r = s
        .post("/v1/messages", &key)
        .json(&json!({"model": "mock-claude", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zz4="}}
        ]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert!(e["error"]["message"].as_str().unwrap().contains("media_type"), "{e}");
}
