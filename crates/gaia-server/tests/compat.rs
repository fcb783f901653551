//! The OpenAI- and Anthropic-compatible endpoints, each reaching both providers (translation both ways).

use crate::common;

use common::{named_events, sse_data, start, Fetch, TestServer};
use gaia_core::testing::sqlite_db;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

async fn server() -> (TestServer, String) {
    let s = start(sqlite_db(), Some(MockConfig { chunks: 3, ..Default::default() })).await;
    let (token, _, _) = s.register("sdk@example.com").await;
    let (key, _) = s.api_key(&token).await;
    (s, key)
}

const MODELS: [&str; 2] = ["openai/mock-gpt", "anthropic/mock-claude"];

fn tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "search_kb", "description": "Search the world",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}])
}

fn tool_anthropic() -> Value {
    json!([{"name": "search_kb", "description": "Search the world",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}])
}

#[tokio::test]
async fn openai_format_reaches_both_providers() {
    let (s, key) = server().await;
    for model in MODELS {
        let r = s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key)
            .json(&json!({"model": model, "messages": [{"role": "system", "content": "Be Mara."}, {"role": "user", "content": "Is it foggy?"}]}))
            .send().await.unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], model, "the model as the client named it");
        assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: Is it foggy?");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        assert_eq!(v["usage"]["total_tokens"], 11);

        // Streaming with usage.
        let r = s
            .http
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&key)
            .json(&json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "Is it foggy?"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let events = sse_data(&r.text().await.unwrap());
        assert_eq!(events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == model));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Mock reply to: Is it foggy?");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["completion_tokens"], 6, "{model}");
        assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
        // Without include_usage there is no usage chunk and `usage` is absent.
        let r = s
            .http
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&key)
            .json(&json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap();
        let events = sse_data(&r.text().await.unwrap());
        assert!(events.iter().all(|e| !e.contains("\"usage\"")), "{events:?}");
    }
}

#[tokio::test]
async fn openai_format_tool_calls_both_providers() {
    let (s, key) = server().await;
    for model in MODELS {
        let body = json!({"model": model, "tools": tool_openai(), "tool_choice": "auto",
            "messages": [{"role": "user", "content": "call tool search_kb fog rules"}]});
        let v: Value =
            s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).json(&body).fetch_json().await;
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}: {v}");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "search_kb");
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"query": "fog rules"}));
        assert!(v["choices"][0]["message"]["content"].is_null());

        // Streamed tool-call deltas join into the same call.
        let mut sbody = body.clone();
        sbody["stream"] = json!(true);
        let r =
            s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).json(&sbody).send().await.unwrap();
        let events = sse_data(&r.text().await.unwrap());
        let mut name = String::new();
        let mut arguments = String::new();
        let mut id = String::new();
        for e in &events[..events.len() - 1] {
            let c: Value = serde_json::from_str(e).unwrap();
            if let Some(tc) = c["choices"][0]["delta"]["tool_calls"].get(0) {
                assert_eq!(tc["index"], 0);
                if let Some(n) = tc["function"]["name"].as_str() {
                    name.push_str(n);
                }
                if let Some(i) = tc["id"].as_str() {
                    id.push_str(i);
                }
                arguments.push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
            }
        }
        assert_eq!(name, "search_kb", "{model}");
        assert!(!id.is_empty());
        assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"query": "fog rules"}));

        // The tool result goes back and the model answers from it.
        let follow = json!({"model": model, "tools": tool_openai(), "messages": [
            {"role": "user", "content": "call tool search_kb fog rules"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "Fog: zombies 1.2x"}
        ]});
        let v: Value =
            s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).json(&follow).fetch_json().await;
        assert_eq!(v["choices"][0]["message"]["content"], "Tool result received: Fog: zombies 1.2x", "{model}");
    }
}

#[tokio::test]
async fn anthropic_format_reaches_both_providers() {
    let (s, key) = server().await;
    for model in MODELS {
        let r = s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).header("anthropic-version", "2023-06-01")
            .json(&json!({"model": model, "max_tokens": 100, "system": "Be Mara.", "messages": [{"role": "user", "content": "Is it foggy?"}]}))
            .send().await.unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], model);
        assert_eq!(v["content"], json!([{"type": "text", "text": "Mock reply to: Is it foggy?"}]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"], json!({"input_tokens": 5, "output_tokens": 6}));

        let r = s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key)
            .json(&json!({"model": model, "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "Is it foggy?"}]}))
            .send().await.unwrap();
        let events = named_events(&r.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["message_start", "ping", "content_block_start"], "{model}");
        assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
        assert!(events.iter().all(|(n, d)| d["type"] == n.as_str()), "event name matches data.type");
        let text: String = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Mock reply to: Is it foggy?");
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 6, "{model}");
    }
}

#[tokio::test]
async fn anthropic_format_tool_calls_both_providers() {
    let (s, key) = server().await;
    for model in MODELS {
        let body = json!({"model": model, "max_tokens": 200, "tools": tool_anthropic(),
            "messages": [{"role": "user", "content": "call tool search_kb fog rules"}]});
        let v: Value =
            s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).json(&body).fetch_json().await;
        assert_eq!(v["stop_reason"], "tool_use", "{model}: {v}");
        let block = v["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
        assert_eq!(block["name"], "search_kb");
        assert_eq!(block["input"], json!({"query": "fog rules"}));

        let mut sbody = body.clone();
        sbody["stream"] = json!(true);
        let r =
            s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).json(&sbody).send().await.unwrap();
        let events = named_events(&r.text().await.unwrap());
        let start = events
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
            .unwrap();
        assert_eq!(start.1["content_block"]["name"], "search_kb");
        let json_text: String = events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&json_text).unwrap(), json!({"query": "fog rules"}), "{model}");
        assert_eq!(events.iter().find(|(n, _)| n == "message_delta").unwrap().1["delta"]["stop_reason"], "tool_use");

        let follow = json!({"model": model, "max_tokens": 200, "tools": tool_anthropic(), "messages": [
            {"role": "user", "content": "call tool search_kb fog rules"},
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "Fog: zombies 1.2x"}]}
        ]});
        let v: Value =
            s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).json(&follow).fetch_json().await;
        assert_eq!(v["content"][0]["text"], "Tool result received: Fog: zombies 1.2x", "{model}");
    }
}

#[tokio::test]
async fn errors_come_in_each_apis_shape() {
    let (s, key) = server().await;
    let oa = |body: Value| s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).json(&body).send();
    let an = |body: Value| s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).json(&body).send();
    let msg = json!([{"role": "user", "content": "hi"}]);

    // No key.
    let r = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .json(&json!({"model": "mock-gpt", "messages": msg}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(v["error"]["message"].is_string());
    let r = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", "gaia_wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    // Bad input: 400 in shape.
    for (r, shape) in [
        (oa(json!({"model": "mock-gpt"})).await.unwrap(), "openai"),
        (oa(json!({"model": "mock-gpt", "messages": msg, "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "array"}}}]})).await.unwrap(), "openai"),
        (an(json!({"model": "mock-gpt", "messages": msg})).await.unwrap(), "anthropic"),
        (an(json!({"model": "mock-gpt", "max_tokens": 10, "messages": msg, "tools": [{"name": "t"}]})).await.unwrap(), "anthropic"),
    ] {
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        if shape == "openai" {
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        } else {
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            assert_eq!(v["type"], "error");
        }
    }
    let r = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("JSON"));
    let r = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &key)
        .body("x".repeat(3 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error");

    // Unknown model: 404.
    let r = oa(json!({"model": "nope", "messages": msg})).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "model_not_found");
    assert_eq!(an(json!({"model": "nope", "max_tokens": 5, "messages": msg})).await.unwrap().status(), 404);

    // Upstream rate limit and failure.
    let r = oa(json!({"model": "anthropic/mock-error-429", "messages": msg})).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
    let r = an(json!({"model": "openai/mock-error-500", "max_tokens": 5, "messages": msg})).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "api_error");

    // A stream that breaks after bytes were sent ends with an error event (and [DONE] for OpenAI).
    let r = oa(json!({"model": "openai/mock-disconnect", "stream": true, "messages": [{"role": "user", "content": "a long story please"}]})).await.unwrap();
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.iter().any(|e| e.contains("\"error\"")));
    let r = an(json!({"model": "anthropic/mock-malformed", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "a long story please"}]})).await.unwrap();
    let events = named_events(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "error");
    assert!(events.iter().all(|(n, _)| n != "message_stop"));
}

#[tokio::test]
async fn models_endpoints() {
    let (s, key) = server().await;
    let v: Value = s.http.get(format!("{}/v1/models", s.url)).bearer_auth(&key).fetch_json().await;
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["mock-gpt", "mock-claude", "mock-gpt", "mock-claude"]);
    let v: Value = s
        .http
        .get(format!("{}/v1/models", s.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .fetch_json()
        .await;
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
    let r = s.http.get(format!("{}/v1/models/anthropic/mock-claude", s.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["owned_by"], "anthropic");
    let r = s.http.get(format!("{}/v1/models/gpt-9", s.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("gpt-9"));
}

#[tokio::test]
async fn providers_health_and_model_filters() {
    let (s, key) = server().await;
    s.state.providers().set_price("openai", "mock-gpt", gaia_core::types::ModelPrice::new(0.1, 0.4));
    // Some traffic, one failure.
    for model in ["openai/mock-gpt", "openai/mock-gpt", "anthropic/mock-error-500"] {
        s.http
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
    }
    let v: Value = s.get("/api/v1/providers", &key).fetch_json().await;
    let list = v["providers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let openai = list.iter().find(|p| p["name"] == "openai").unwrap();
    assert_eq!(openai["health"]["total_requests"], 2);
    assert_eq!(openai["health"]["error_rate"], 0.0);
    assert!(openai["health"]["latency_p50_ms"].is_u64());
    assert_eq!(openai["health"]["circuit"], "closed");
    let anthropic = list.iter().find(|p| p["name"] == "anthropic").unwrap();
    assert!(anthropic["health"]["total_errors"].as_u64().unwrap() >= 1);
    // Users get the known state; administrators a fresh probe.
    let v: Value = s.get("/api/v1/providers/openai/health", &key).fetch_json().await;
    assert_eq!((v["probe"].clone(), v["health"]["circuit"].clone()), (Value::Null, json!("closed")), "{v}");
    let (admin, _, admin_id) = s.register("admin@example.com").await;
    s.state.storage().set_admin(&admin_id, true).await.unwrap();
    s.state.auth().evict_user(&admin_id).await.unwrap();
    let r = s.http.get(format!("{}/api/v1/providers/openai/health", s.url)).bearer_auth(&admin).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["probe"]["ok"], true);
    assert_eq!(v["health"]["last_probe_ok"], true);
    assert_eq!(s.get("/api/v1/providers/nope/health", &key).send().await.unwrap().status(), 404);
    assert_eq!(s.http.get(format!("{}/api/v1/providers", s.url)).send().await.unwrap().status(), 401);

    let ids = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}/{}", m["provider"].as_str().unwrap(), m["id"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    let v: Value = s.get("/api/v1/models?provider=anthropic", &key).fetch_json().await;
    assert_eq!(ids(&v), ["anthropic/mock-gpt", "anthropic/mock-claude"]);
    let v: Value = s.get("/api/v1/models?max_price=1", &key).fetch_json().await;
    assert_eq!(ids(&v), ["openai/mock-gpt"], "only priced models under the limit");
    assert_eq!(v["data"][0]["price"]["output"], 0.4);
    assert_eq!(s.get("/api/v1/models?max_price=cheap", &key).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn fallback_chains_from_the_model_field() {
    let (s, key) = server().await;
    let v: Value = s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key)
        .json(&json!({"model": "openai/mock-error-503,anthropic/mock-claude", "messages": [{"role": "user", "content": "hi"}]}))
        .fetch_json().await;
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: hi", "{v}");
    let r = s
        .post("/api/v1/chat", &key)
        .json(&json!({"message": "hi", "model": "openai/mock-flaky-1"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["_metadata"]["attempts"], 2, "{v}");
    assert_eq!(v["_metadata"]["provider"], "openai");
}

#[tokio::test]
async fn response_cache_for_deterministic_requests() {
    let (s, key) = server().await;
    let mock = s.mock.as_ref().unwrap();
    let oa = |body: Value, extra: Option<(&'static str, &'static str)>| {
        let mut r = s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).json(&body);
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        r.send()
    };
    let body =
        json!({"model": "openai/mock-gpt", "temperature": 0, "messages": [{"role": "user", "content": "cached?"}]});
    let r = oa(body.clone(), None).await.unwrap();
    assert_eq!(r.headers()["x-gaia-cache"], "miss");
    let first: Value = r.json().await.unwrap();
    let before = mock.requests();
    let r = oa(body.clone(), None).await.unwrap();
    assert_eq!(r.headers()["x-gaia-cache"], "hit");
    let second: Value = r.json().await.unwrap();
    assert_eq!(mock.requests(), before, "a hit never reaches the provider");
    assert_eq!(second["choices"], first["choices"]);

    // A hit still streams correctly when asked to.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = oa(sbody, None).await.unwrap();
    assert_eq!(r.headers()["x-gaia-cache"], "hit");
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Mock reply to: cached?");
    assert_eq!(mock.requests(), before);

    // Not deterministic: bypass. Opt in by header: cached. Opt out: bypass.
    let warm = json!({"model": "openai/mock-gpt", "temperature": 0.9, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(oa(warm.clone(), None).await.unwrap().headers()["x-gaia-cache"], "bypass");
    assert_eq!(oa(warm.clone(), Some(("x-gaia-cache", "on"))).await.unwrap().headers()["x-gaia-cache"], "miss");
    assert_eq!(oa(warm.clone(), Some(("x-gaia-cache", "on"))).await.unwrap().headers()["x-gaia-cache"], "hit");
    assert_eq!(
        oa(body.clone(), Some(("cache-control", "no-store"))).await.unwrap().headers()["x-gaia-cache"],
        "bypass"
    );

    // A streamed miss fills the cache for later non-streamed requests (Anthropic format).
    let an = json!({"model": "anthropic/mock-claude", "max_tokens": 50, "temperature": 0, "stream": true, "messages": [{"role": "user", "content": "fill"}]});
    let r = s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).json(&an).send().await.unwrap();
    assert_eq!(r.headers()["x-gaia-cache"], "miss");
    r.text().await.unwrap();
    let mut plain = an.clone();
    plain["stream"] = json!(false);
    let mut hit = false;
    for _ in 0..50 {
        let r =
            s.http.post(format!("{}/v1/messages", s.url)).header("x-api-key", &key).json(&plain).send().await.unwrap();
        if r.headers()["x-gaia-cache"] == "hit" {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["content"][0]["text"], "Mock reply to: fill");
            hit = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(hit);
    // Hits are metered as served by the cache, at no cost.
    s.state.usage().flush().await;
    let v: Value = s.get("/api/v1/usage", &key).fetch_json().await;
    let cache = v["by_provider"].as_array().unwrap().iter().find(|g| g["key"] == "cache").unwrap().clone();
    assert!(cache["requests"].as_i64().unwrap() >= 3);
    assert_eq!(cache["cost_usd"], 0.0);
}

#[tokio::test]
async fn admins_add_and_remove_providers_at_runtime() {
    let (s, key) = server().await;
    let entry = json!({"name": "extra", "kind": "anthropic", "base_url": s.mock.as_ref().unwrap().base_url(),
        "api_key": "sk-x", "models": [{"id": "mock-claude", "context_window": 1000, "output_price": 1.0, "input_price": 0.5}]});
    let r = s.http.post(format!("{}/api/v1/providers", s.url)).bearer_auth(&key).json(&entry).send().await.unwrap();
    assert_eq!(r.status(), 403, "only admins");
    let (admin, _, admin_id) = s.register("admin@example.com").await;
    s.state.storage().set_admin(&admin_id, true).await.unwrap();
    s.state.auth().evict_user(&admin_id).await.unwrap();
    let r = s.http.post(format!("{}/api/v1/providers", s.url)).bearer_auth(&admin).json(&entry).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let v: Value = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({"model": "extra/mock-claude", "messages": [{"role": "user", "content": "new"}]}))
        .fetch_json()
        .await;
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: new");
    let v: Value = s.get("/api/v1/models?min_context=500&provider=extra", &key).fetch_json().await;
    assert_eq!(v["data"][0]["context_window"], 1000);
    let bad = json!({"name": "bad name", "kind": "openai"});
    assert_eq!(
        s.http
            .post(format!("{}/api/v1/providers", s.url))
            .bearer_auth(&admin)
            .json(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let bad = json!({"name": "x", "kind": "cohere"});
    assert_eq!(
        s.http
            .post(format!("{}/api/v1/providers", s.url))
            .bearer_auth(&admin)
            .json(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        s.http.delete(format!("{}/api/v1/providers/extra", s.url)).bearer_auth(&key).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        s.http.delete(format!("{}/api/v1/providers/extra", s.url)).bearer_auth(&admin).send().await.unwrap().status(),
        204
    );
    assert_eq!(
        s.http.delete(format!("{}/api/v1/providers/extra", s.url)).bearer_auth(&admin).send().await.unwrap().status(),
        404
    );
    let r = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({"model": "extra/mock-claude", "messages": [{"role": "user", "content": "gone"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
