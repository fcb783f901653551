//! Usage and cost recording across every chat endpoint, and the usage API. SQLite and PostgreSQL.

use crate::common;

use common::{sse_data, start, Fetch};
use gaia_core::testing::database_urls;
use gaia_core::types::ModelPrice;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn every_call_is_metered_and_reported() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        s.state.providers().set_price("openai", "mock-gpt", ModelPrice::new(1_000_000.0, 2_000_000.0));
        let (token, _, user_id) = s.register("usage@example.com").await;
        let (key, key_id) = s.api_key(&token).await;

        // 1: Gaia chat (openai, priced). 2: OpenAI format, streamed (anthropic). 3: Anthropic format
        // (openai, priced). 4: a failing call. 5: a streamed Gaia chat.
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "one two", "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key)
            .json(&json!({"model": "anthropic/mock-claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
        assert_eq!(sse_data(&r.text().await.unwrap()).last().unwrap(), "[DONE]");
        let r = s
            .http
            .post(format!("{}/v1/messages", s.url))
            .header("x-api-key", &key)
            .json(
                &json!({"model": "openai/mock-gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "x", "model": "openai/mock-error-500"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "stream me", "model": "openai/mock-gpt", "stream": true}))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap();

        let v: Value = s.get("/api/v1/usage", &key).fetch_json().await;
        let t = &v["totals"];
        assert_eq!(t["requests"], 5, "{}: {v}", s.backend);
        assert_eq!(t["errors"], 1);
        // The mock counts words: "one two" → 2 in, "Mock reply to: one two" → 5 out; "hi" → 1 in, 4 out
        // (twice); "stream me" → 2 in, 5 out; the failed call reports none. The two successful calls to
        // `/api/v1/chat` also send the built-in persona's system prompt.
        let personas: Value = s.get("/api/v1/personas", &key).fetch_json().await;
        let prompt_words = personas["personas"][0]["system_prompt"].as_str().unwrap().split_whitespace().count();
        assert_eq!(t["input_tokens"], 6 + 2 * prompt_words as u64);
        assert_eq!(t["output_tokens"], 18);
        let by_provider = v["by_provider"].as_array().unwrap();
        assert_eq!(by_provider.len(), 2);
        let openai = by_provider.iter().find(|g| g["key"] == "openai").unwrap();
        assert_eq!(openai["requests"], 4);
        // Priced at $1 per input token and $2 per output token (per-million prices of 1e6 and 2e6).
        let by_model = v["by_model"].as_array().unwrap();
        let gpt = by_model.iter().find(|g| g["key"] == "mock-gpt").unwrap();
        let cost = gpt["cost_usd"].as_f64().unwrap();
        let want = (gpt["input_tokens"].as_f64().unwrap()) + 2.0 * gpt["output_tokens"].as_f64().unwrap();
        assert!((cost - want).abs() < 1e-6, "{cost} vs {want}");
        assert!(cost > 0.0);
        assert_eq!(v["by_day"].as_array().unwrap().len(), 1);

        // CSV export: header + 5 rows, with key and endpoint.
        let r = s.get("/api/v1/usage/export", &key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = r.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6, "{csv}");
        assert!(lines[0].starts_with("created_at,user_id,api_key_id,provider,model,endpoint"));
        assert!(lines[1..].iter().all(|l| l.contains(&user_id) && l.contains(&key_id)));
        for endpoint in ["chat", "openai", "anthropic"] {
            assert!(lines.iter().any(|l| l.contains(&format!(",{endpoint},"))), "{endpoint}: {csv}");
        }
        let streamed = lines
            .iter()
            .find(|l| l.contains(",openai,anthropic,") || l.contains("anthropic,mock-claude,openai"))
            .unwrap();
        let fields: Vec<&str> = streamed.split(',').collect();
        assert!(!fields[10].is_empty(), "time to first token recorded for streams: {streamed}");

        // Filters and permissions.
        let v: Value = s.get("/api/v1/usage?since=2000-01-01&until=2000-01-02", &key).fetch_json().await;
        assert_eq!(v["totals"]["requests"], 0);
        assert_eq!(s.get("/api/v1/usage?since=yesterday", &key).send().await.unwrap().status(), 400);
        assert_eq!(s.get("/api/v1/usage?user_id=*", &key).send().await.unwrap().status(), 403);
        let (other, _, _) = s.register("other-usage@example.com").await;
        let v: Value = s.http.get(format!("{}/api/v1/usage", s.url)).bearer_auth(&other).fetch_json().await;
        assert_eq!(v["totals"]["requests"], 0, "users only see their own usage");
        // An admin sees everyone's.
        s.state.storage().set_admin(&user_id, true).await.unwrap();
        // Changing the flag behind the authenticator's back: drop what it cached about the user.
        s.state.auth().evict_user(&user_id).await.unwrap();
        let (admin_token, _, _) = {
            let r: Value = s
                .http
                .post(format!("{}/api/v1/auth/login", s.url))
                .json(&json!({"email": "usage@example.com", "password": "correct horse battery"}))
                .fetch_json()
                .await;
            (r["access_token"].as_str().unwrap().to_string(), (), ())
        };
        let v: Value =
            s.http.get(format!("{}/api/v1/usage?user_id=*", s.url)).bearer_auth(&admin_token).fetch_json().await;
        assert_eq!(v["totals"]["requests"], 5);
    }
}
