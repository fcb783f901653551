//! Chat over HTTP through both providers (OpenAI and Anthropic formats) on the mock upstream.

use crate::common;

use common::{eventually, eventually_async, sse_data, start, Fetch};
use gaia_core::testing::{database_urls, sqlite_db};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};
use std::time::Duration;

const MODELS: [&str; 2] = ["openai/mock-gpt", "anthropic/mock-claude"];

#[tokio::test]
async fn non_streaming_chat_both_providers_and_history() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let (token, _, _) = s.register("chat@example.com").await;
        let (key, _) = s.api_key(&token).await;
        for model in MODELS {
            let r = s
                .post("/api/v1/chat", &key)
                .json(&json!({"message": "Where is the safe house?", "model": model}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{} {model}", s.backend);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["object"], "chat.completion");
            assert_eq!(v["choices"][0]["message"]["role"], "assistant");
            assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: Where is the safe house?");
            assert_eq!(v["choices"][0]["finish_reason"], "stop");
            assert_eq!(v["usage"]["completion_tokens"], 8);
            let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();

            // Second turn in the same conversation: the history goes to the model.
            let r = s
                .post("/api/v1/chat", &key)
                .json(&json!({"message": "And the doctor?", "model": model, "conversation_id": conv}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let sent = s.mock.as_ref().unwrap().last_request().unwrap();
            // The persona's system prompt goes first (in `system` for Anthropic, a message for OpenAI).
            let system = if model.starts_with("openai") {
                sent["messages"][0]["content"].as_str().unwrap_or_default().to_string()
            } else {
                sent["system"].as_str().map(str::to_string).unwrap_or_else(|| sent["system"].to_string())
            };
            assert!(system.contains("You are Gaia"), "{model}: {system}");
            let texts: Vec<String> = sent["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] != "system")
                .map(|m| {
                    let c = &m["content"];
                    c.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| c[0]["text"].as_str().unwrap_or_default().to_string())
                })
                .collect();
            assert_eq!(
                texts,
                ["Where is the safe house?", "Mock reply to: Where is the safe house?", "And the doctor?"],
                "{model}"
            );

            let msgs: Value = s.get(&format!("/api/v1/conversations/{conv}/messages"), &key).fetch_json().await;
            let msgs = msgs["messages"].as_array().unwrap();
            assert_eq!(msgs.len(), 4);
            assert_eq!(msgs[1]["role"], "assistant");
            assert_eq!(msgs[1]["output_tokens"], 8);
            assert!(msgs[1]["model"].as_str().unwrap().starts_with("mock-"));
        }
        // v0.3 shape.
        let r = s
            .post("/api/v0.3/chat", &key)
            .json(&json!({"message": "hello", "model": "anthropic/mock-claude"}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response"], "Mock reply to: hello");
        assert!(v["conversation_id"].is_string());
    }
}

#[tokio::test]
async fn streaming_chat_sse_sequences() {
    let s = start(sqlite_db(), Some(MockConfig { chunks: 3, ..Default::default() })).await;
    let (token, _, _) = s.register("stream@example.com").await;
    for model in MODELS {
        let r = s
            .http
            .post(format!("{}/api/v1/chat", s.url))
            .bearer_auth(&token)
            .json(&json!({"message": "Is the fog coming?", "model": model, "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let events = sse_data(&r.text().await.unwrap());
        let first: Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(first["type"], "metadata");
        let conv = first["conversation_id"].as_str().unwrap().to_string();
        assert_eq!(events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[1..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Mock reply to: Is the fog coming?", "{model}");
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
        let content_chunks = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()))
            .count();
        assert_eq!(content_chunks, 3, "streamed token by token, not buffered");
        let finish: Vec<&Value> = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).collect();
        assert_eq!(finish.len(), 1);
        assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"], 7, "{model}: final usage chunk");
        assert_eq!(chunks.last().unwrap()["choices"], json!([]));
        // Stored after the stream.
        let msgs: Value = s
            .http
            .get(format!("{}/api/v1/conversations/{conv}/messages", s.url))
            .bearer_auth(&token)
            .fetch_json()
            .await;
        assert_eq!(msgs["messages"][1]["content"], "Mock reply to: Is the fog coming?");
    }
    // v0.3 stream: metadata, content…, one done.
    let r = s
        .http
        .post(format!("{}/api/v0.3/chat", s.url))
        .bearer_auth(&token)
        .json(&json!({"message": "hi there", "model": "openai/mock-gpt", "stream": true}))
        .send()
        .await
        .unwrap();
    let events: Vec<Value> =
        sse_data(&r.text().await.unwrap()).iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(events[0]["type"], "metadata");
    assert_eq!(events.last().unwrap()["type"], "done");
    assert_eq!(events.iter().filter(|e| e["type"] == "done").count(), 1);
    let text: String =
        events.iter().filter(|e| e["type"] == "content").map(|e| e["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Mock reply to: hi there");
}

#[tokio::test]
async fn bad_input_and_unknown_resources() {
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (token, _, _) = s.register("bad@example.com").await;
    let chat = |body: Value| s.http.post(format!("{}/api/v1/chat", s.url)).bearer_auth(&token).json(&body).send();
    let r = chat(json!({"model": "mock-gpt"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("message"));
    assert_eq!(chat(json!({"message": "   "})).await.unwrap().status(), 400);
    let r = chat(json!({"message": "hi", "conversation_id": "no-such-conversation"})).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    let r = chat(json!({"message": "hi", "model": "no-such-model"})).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&token)
        .body("x".repeat(3 * 1024 * 1024))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = s.http.get(format!("{}/api/v1/nothing-here", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
}

#[tokio::test]
async fn vendor_errors_map_to_clear_statuses() {
    let s = start(sqlite_db(), Some(MockConfig { chunks: 6, ..Default::default() })).await;
    let (token, _, _) = s.register("errors@example.com").await;
    for (model, status) in [
        ("openai/mock-error-429", 429),
        ("anthropic/mock-error-429", 429),
        ("openai/mock-error-500", 502),
        ("anthropic/mock-error-503", 502),
        ("openai/mock-error-401", 502),
    ] {
        for stream in [false, true] {
            let r = s
                .http
                .post(format!("{}/api/v1/chat", s.url))
                .bearer_auth(&token)
                .json(&json!({"message": "hi", "model": model, "stream": stream}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{model} stream={stream}");
            let v: Value = r.json().await.unwrap();
            assert!(v["detail"].as_str().is_some_and(|d| !d.contains("sk-test")), "{v}");
        }
    }
    // Breaks after bytes were sent: an error event, then [DONE]; never a hang.
    for model in ["openai/mock-disconnect", "anthropic/mock-malformed"] {
        let r = s
            .http
            .post(format!("{}/api/v1/chat", s.url))
            .bearer_auth(&token)
            .json(&json!({"message": "tell me a story", "model": model, "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(10), r.text()).await.expect("no hang").unwrap();
        let events = sse_data(&body);
        assert_eq!(events.last().unwrap(), "[DONE]", "{model}");
        assert!(events.iter().any(|e| e.contains("\"error\"")), "{model}: {events:?}");
    }
}

#[tokio::test]
async fn no_provider_is_a_503_that_says_how_to_configure() {
    let s = start(sqlite_db(), None).await;
    let (token, _, _) = s.register("np@example.com").await;
    let r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&token)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("OPENAI_API_KEY"), "{v}");
    let models: Value = s.http.get(format!("{}/api/v1/models", s.url)).bearer_auth(&token).fetch_json().await;
    assert_eq!(models["data"], json!([]));
    let health = s.http.get(format!("{}/health", s.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let h: Value = health.json().await.unwrap();
    assert_eq!(h["database"]["status"], "ok");
    assert_eq!(h["cache"]["status"], "ok");
}

#[tokio::test]
async fn client_disconnect_mid_stream_leaks_nothing() {
    let s = start(
        sqlite_db(),
        Some(MockConfig { chunks: 50, chunk_delay: Duration::from_millis(40), ..Default::default() }),
    )
    .await;
    let (token, _, _) = s.register("leave@example.com").await;
    let mut r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&token)
        .json(&json!({"message": "a very long answer please", "model": "openai/mock-gpt", "stream": true}))
        .send()
        .await
        .unwrap();
    // Read a few chunks, then hang up.
    let mut got = String::new();
    while got.matches("chat.completion.chunk").count() < 3 {
        let c = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
        got.push_str(&String::from_utf8_lossy(&c));
    }
    let conv: Value = serde_json::from_str(&sse_data(&got)[0]).unwrap();
    let conv = conv["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(s.state.active_streams(), 1);
    drop(r);
    let state = s.state.clone();
    assert!(eventually(|| state.active_streams() == 0).await, "stream task still running after disconnect");
    // The partial answer was kept.
    let mut stored = false;
    for _ in 0..100 {
        let msgs: Value = s
            .http
            .get(format!("{}/api/v1/conversations/{conv}/messages", s.url))
            .bearer_auth(&token)
            .fetch_json()
            .await;
        if msgs["messages"].as_array().unwrap().len() == 2 {
            let partial = msgs["messages"][1]["content"].as_str().unwrap();
            assert!("Mock reply to: a very long answer please".starts_with(partial) && !partial.is_empty());
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "partial answer not stored");
}

/// A prompt whose mock answer (`Mock reply to: ...`, 80 characters) streams in up to 80 pieces.
const LONG_STORY: &str = "a long story about the safe house behind the bakery on Rue Cler";

/// A stream through `/v1/chat/completions` that has started: its response, and what came so far.
async fn started_stream(s: &common::TestServer, key: &str) -> (reqwest::Response, String) {
    let mut r = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(key)
        .json(&json!({"model": "mock-gpt", "stream": true, "messages": [{"role": "user", "content": LONG_STORY}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
    (r, String::from_utf8_lossy(&first).into_owned())
}

/// The rest of a stream until the server ends it (cleanly or not).
async fn rest_of(mut r: reqwest::Response, mut body: String) -> String {
    while let Ok(Ok(Some(c))) = tokio::time::timeout(Duration::from_secs(20), r.chunk()).await {
        body.push_str(&String::from_utf8_lossy(&c));
    }
    body
}

#[tokio::test]
async fn readiness_and_liveness_say_only_their_status() {
    for db in database_urls().await {
        let s = start(db, None).await;
        for path in ["/health/live", "/health/ready"] {
            let r = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}), "{path}: no detail");
        }
        // Administrators see what readiness checks.
        let (token, _, id) = s.register("ops@example.com").await;
        s.state.storage().set_admin(&id, true).await.unwrap();
        let detail: Value = s.http.get(format!("{}/api/v1/health", s.url)).bearer_auth(&token).fetch_json().await;
        assert_eq!(detail["events"], json!({"status": "ok", "kind": "memory"}));
        assert_eq!(detail["migrations"], json!({"applied": true}));
        // The database goes away: not ready (within a check's freshness, a second), still alive.
        s.state.storage().close().await;
        let ready = format!("{}/health/ready", s.url);
        assert!(eventually_async(|| async { s.http.get(&ready).send().await.unwrap().status() == 503 }).await);
        let body: Value = s.http.get(&ready).send().await.unwrap().json().await.unwrap();
        assert_eq!(body, json!({"status": "unavailable"}), "which part failed is not said");
        assert_eq!(s.http.get(format!("{}/health/live", s.url)).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn draining_turns_readiness_off_before_the_listener_closes() {
    let mut config = common::test_config();
    config.server.drain_secs = 2;
    // The answer takes 80 × 50 ms = 4 s: it runs across the drain (2 s) and the listener's closing.
    let mock = MockConfig { chunks: 80, chunk_delay: Duration::from_millis(50), ..Default::default() };
    let mut s = common::start_with(sqlite_db(), Some(mock), config).await;
    let (token, _, _) = s.register("drain@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let (r, body) = started_stream(&s, &key).await;
    s.shutdown();
    // Out of rotation at once, while requests are still served (the drain).
    let ready = s.http.get(format!("{}/health/ready", s.url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(s.http.get(format!("{}/health/live", s.url)).send().await.unwrap().status(), 200);
    let answer = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "still there?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "requests are served while draining");
    // The stream that was running finishes; then the listener is closed.
    let body = rest_of(r, body).await;
    assert_eq!(sse_data(&body).last().unwrap(), "[DONE]", "the in-flight stream finished");
    let live = format!("{}/health/live", s.url);
    assert!(eventually_async(|| async { s.http.get(&live).send().await.is_err() }).await, "the listener is closed");
}

#[tokio::test]
async fn graceful_shutdown_lets_streams_finish() {
    let mut s = start(
        sqlite_db(),
        Some(MockConfig { chunks: 10, chunk_delay: Duration::from_millis(50), ..Default::default() }),
    )
    .await;
    let (token, _, _) = s.register("bye@example.com").await;
    let mut r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&token)
        .json(&json!({"message": "one last story", "model": "openai/mock-gpt", "stream": true}))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
    let mut body = String::from_utf8_lossy(&first).into_owned();
    s.shutdown();
    while let Some(c) = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.expect("no hang").unwrap() {
        body.push_str(&String::from_utf8_lossy(&c));
    }
    let events = sse_data(&body);
    assert_eq!(events.last().unwrap(), "[DONE]", "the in-flight stream finished");
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Mock reply to: one last story");
    // New connections are refused once the server has stopped.
    let mut refused = false;
    for _ in 0..100 {
        if s.http.get(format!("{}/health", s.url)).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "server still accepting after shutdown");
}
