//! Prompt caching: Anthropic's `cache_control` passes through the compatible endpoints, Gaia's own
//! chat marks the persona prompt, OpenAI's cached tokens are read, and cached input tokens are
//! metered and priced at the model's cached rate (price book), in usage and reports.

use crate::common;

use common::{start_with, Fetch};
use gaia_core::testing::sqlite_db;
use gaia_providers::mock::{MockConfig, CACHE_MIN_TOKENS};
use serde_json::{json, Value};

/// A lore prompt long enough to be cached (the vendors' minimum is 1,024 tokens).
fn lore() -> String {
    (0..CACHE_MIN_TOKENS + 50).map(|i| format!("lore{i}")).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn cached_prompt_tokens_are_passed_through_read_metered_and_priced() {
    let mut cfg = common::test_config();
    cfg.chat.auto_title = false;
    cfg.chat.memory = false;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), cfg).await;
    let mock = s.mock.as_ref().unwrap();
    let (token, _, user_id) = s.register("cache@example.com").await;
    s.state.storage().set_admin(&user_id, true).await.unwrap();
    let (key, _) = s.api_key(&token).await;
    // Cached input at a hundredth of the input price; Anthropic's cache writes at 1.25 times it.
    for (provider, model) in [("anthropic", "mock-claude"), ("openai", "mock-gpt")] {
        let mut price = json!({"provider": provider, "model": model, "input_per_million": 100.0,
                               "output_per_million": 100.0, "cached_input_per_million": 1.0});
        if provider == "anthropic" {
            price["cache_write_input_per_million"] = json!(125.0);
        }
        let r = s.post("/api/v1/pricing", &key).json(&price).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    // Anthropic's cache_control reaches the provider; the first call writes the cache, the second reads it.
    let body = json!({
        "model": "anthropic/mock-claude", "max_tokens": 16,
        "system": [{"type": "text", "text": lore(), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Who keeps the lighthouse?"}],
    });
    let ask = || s.post("/v1/messages", &key).header("anthropic-version", "2023-06-01").json(&body).send();
    let first: Value = ask().await.unwrap().json().await.unwrap();
    let upstream = mock.last_request().unwrap();
    assert_eq!(upstream["system"][0]["cache_control"]["type"], "ephemeral", "{upstream}");
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0, "nothing read the first time: {first}");
    let written = first["usage"]["cache_creation_input_tokens"].as_u64().unwrap();
    assert!(written >= CACHE_MIN_TOKENS, "the first call writes the cache: {first}");
    let second: Value = ask().await.unwrap().json().await.unwrap();
    let read = second["usage"]["cache_read_input_tokens"].as_u64().unwrap();
    assert!(read >= CACHE_MIN_TOKENS, "{second}");
    assert!(second["usage"]["input_tokens"].as_u64().unwrap() < 20, "the rest of the prompt only: {second}");

    // OpenAI caches on its own: the cached tokens of the second call are read and reported.
    let body = json!({"model": "openai/mock-gpt", "messages": [
        {"role": "system", "content": lore()}, {"role": "user", "content": "Who keeps the lighthouse?"}]});
    let ask = || s.post("/v1/chat/completions", &key).json(&body).send();
    let first: Value = ask().await.unwrap().json().await.unwrap();
    assert!(first["usage"].get("prompt_tokens_details").is_none(), "{first}");
    let second: Value = ask().await.unwrap().json().await.unwrap();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached >= CACHE_MIN_TOKENS, "{second}");
    assert!(second["usage"]["prompt_tokens"].as_u64().unwrap() > cached);

    // Metered and priced: each model's second call costs far less than its first.
    s.state.usage().flush().await;
    let mine = gaia_core::storage::UsageFilter { user_id: Some(user_id.clone()), ..Default::default() };
    let mut records = s.state.storage().list_usage(&mine, 10).await.unwrap();
    assert_eq!(records.len(), 4);
    // Written in one batch, so in the same millisecond: by provider, the first call first.
    records.sort_by_key(|r| (r.usage.provider.clone(), r.usage.cached_input_tokens));
    for pair in records.chunks(2) {
        let (a, b) = (&pair[0].usage, &pair[1].usage);
        assert_eq!((a.cached_input_tokens, a.input_tokens), (0, b.input_tokens), "{a:?} / {b:?}");
        assert!(b.cached_input_tokens >= CACHE_MIN_TOKENS);
        let fresh = (b.input_tokens - b.cached_input_tokens) as f64;
        let want = (fresh * 100.0 + b.cached_input_tokens as f64 * 1.0 + b.output_tokens as f64 * 100.0) / 1e6;
        assert!((b.cost_usd - want).abs() < 1e-12, "{} vs {want}", b.cost_usd);
        // The call that wrote the cache paid the write rate for what it wrote (Anthropic's).
        let write_rate = if a.provider == "anthropic" { 125.0 } else { 100.0 };
        assert_eq!(a.cache_write_input_tokens > 0, a.provider == "anthropic", "{a:?}");
        let fresh = (a.input_tokens - a.cache_write_input_tokens) as f64;
        let want =
            (fresh * 100.0 + a.cache_write_input_tokens as f64 * write_rate + a.output_tokens as f64 * 100.0) / 1e6;
        assert!((a.cost_usd - want).abs() < 1e-12, "{} vs {want}", a.cost_usd);
        assert!(b.cost_usd < a.cost_usd / 5.0, "{} vs {}", b.cost_usd, a.cost_usd);
    }
    let report: Value = s.get("/api/v1/usage/report?group_by=model", &key).fetch_json().await;
    for g in report["groups"].as_array().unwrap() {
        assert!(g["cached_input_tokens"].as_u64().unwrap() >= CACHE_MIN_TOKENS, "{report}");
    }
    let summary: Value = s.get("/api/v1/usage", &key).fetch_json().await;
    assert!(summary["totals"]["cached_input_tokens"].as_u64().unwrap() >= 2 * CACHE_MIN_TOKENS, "{summary}");
    let prices: Value = s.get("/api/v1/pricing", &key).fetch_json().await;
    assert!(prices.to_string().contains("\"cached_input\":1.0"), "{prices}");
    assert!(prices.to_string().contains("\"cache_write_input\":125.0"), "{prices}");
    // The export has the written tokens.
    let csv = s.get("/api/v1/usage/export", &key).send().await.unwrap().text().await.unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",cached_input_tokens,cache_write_input_tokens"), "{csv}");

    // Gaia's own chat marks the persona's prompt as the stable prefix.
    let persona = json!({"name": "Keeper", "system_prompt": lore()});
    let p: Value = s.post("/api/v1/personas", &key).json(&persona).send().await.unwrap().json().await.unwrap();
    let turn = json!({"message": "Hello", "model": "anthropic/mock-claude", "persona_id": p["id"]});
    let r = s.post("/api/v1/chat", &key).json(&turn).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let upstream = mock.last_request().unwrap();
    assert_eq!(upstream["system"][0]["cache_control"]["type"], "ephemeral", "{upstream}");
    // The next turn's history is cached up to the message before the new one.
    let turn = json!({"message": "And then?", "model": "anthropic/mock-claude", "conversation_id": v["_metadata"]["conversation_id"]});
    assert_eq!(s.post("/api/v1/chat", &key).json(&turn).send().await.unwrap().status(), 200);
    let upstream = mock.last_request().unwrap();
    let msgs = upstream["messages"].as_array().unwrap();
    assert!(msgs.len() >= 2, "{upstream}");
    let marked = msgs[msgs.len() - 2]["content"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(marked["cache_control"]["type"], "ephemeral", "{upstream}");
    assert!(msgs.last().unwrap()["content"][0].get("cache_control").is_none());

    // A cached price must be a non-negative number.
    let bad = json!({"provider": "openai", "model": "mock-gpt", "input_per_million": 1.0,
                     "output_per_million": 1.0, "cached_input_per_million": -1.0});
    assert_eq!(s.post("/api/v1/pricing", &key).json(&bad).send().await.unwrap().status(), 400);
    let bad = json!({"provider": "openai", "model": "mock-gpt", "input_per_million": 1.0,
                     "output_per_million": 1.0, "cache_write_input_per_million": -1.0});
    assert_eq!(s.post("/api/v1/pricing", &key).json(&bad).send().await.unwrap().status(), 400);
}
