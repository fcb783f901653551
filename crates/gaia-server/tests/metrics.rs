//! Observability: `GET /metrics` (Prometheus text format) and the performance endpoints, fed by real
//! chat calls (plain, streamed, failing, served from the response cache). SQLite and PostgreSQL.

use crate::common;

use common::{start, start_with, Fetch, TestServer};
use gaia_core::testing::database_urls;
use gaia_core::types::ModelPrice;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One sample of the exposition format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses Prometheus's text format (the subset Gaia writes: no escaped quotes in label values).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let body = rest.trim_end_matches('}');
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").unwrap();
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (n.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            (name, labels, value.parse::<f64>().unwrap())
        })
        .collect()
}

/// The sum of the series `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.2)
        .sum()
}

/// An administrator (granted the `admin` role) and their API key.
async fn admin(s: &TestServer) -> String {
    let (token, _, id) = s.register("ops@example.com").await;
    s.state.rbac().await.grant(None, &id, "admin", None, None).await.unwrap();
    s.api_key(&token).await.0
}

async fn scrape(s: &TestServer, key: &str) -> (String, Vec<Sample>) {
    let r = s.http.get(format!("{}/metrics", s.url)).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_and_performance_follow_the_traffic() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        s.state.providers().set_price("openai", "mock-gpt", ModelPrice::new(1.0, 2.0));
        let (token, _, _) = s.register("player@example.com").await;
        let (key, _) = s.api_key(&token).await;

        // Two good Gaia chats (one streamed), one failing upstream (fault injected by model name).
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "one two", "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "stream me", "model": "openai/mock-gpt", "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("[DONE]"));
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "x", "model": "openai/mock-error-500"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
        // A deterministic request twice: a cache miss (a model call), then a hit (no model call).
        let det = json!({"model": "anthropic/mock-claude", "temperature": 0,
            "messages": [{"role": "user", "content": "cache me"}]});
        for want in ["miss", "hit"] {
            let r = s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).json(&det).send().await;
            let r = r.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-gaia-cache"], want, "{b}");
        }
        // An id in the path and an unknown path: counted by template, never by the raw path.
        let r = s.get("/api/v1/conversations/no-such-conversation-4711", &key).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(s.get("/no/such/route-4711", &key).send().await.unwrap().status(), 404);
        // What rate limiting and budgets report.
        s.state.metrics().rate_limited("user");
        s.state.metrics().rate_limited("user");
        s.state.metrics().budget_refused("key");

        // Access: signed-in non-admins get 403, anonymous callers 401.
        assert_eq!(s.http.get(format!("{}/metrics", s.url)).send().await.unwrap().status(), 401);
        assert_eq!(s.get("/metrics", &key).send().await.unwrap().status(), 403);
        for p in ["summary", "providers", "errors"] {
            let path = format!("/api/v1/performance/{p}");
            assert_eq!(s.get(&path, &key).send().await.unwrap().status(), 403, "{path}");
            assert_eq!(s.http.get(format!("{}{path}", s.url)).send().await.unwrap().status(), 401, "{path}");
        }
        let admin = admin(&s).await;

        let (text, m) = scrape(&s, &admin).await;
        let calls = |labels: &[(&str, &str)]| value(&m, "gaia_model_calls_total", labels);
        let gpt = [("provider", "openai"), ("model", "mock-gpt")];
        assert_eq!(calls(&[gpt[0], gpt[1], ("endpoint", "chat"), ("outcome", "ok")]), 2.0, "{b}: {text}");
        assert_eq!(calls(&[("model", "mock-error-500"), ("outcome", "error")]), 1.0, "{text}");
        assert_eq!(calls(&[("provider", "anthropic"), ("endpoint", "openai"), ("outcome", "ok")]), 1.0, "{text}");
        assert_eq!(calls(&[("provider", "cache"), ("outcome", "ok")]), 1.0, "hits are metered as `cache`");
        assert_eq!(calls(&[]), 5.0);
        assert_eq!(value(&m, "gaia_model_call_duration_seconds_count", &gpt), 2.0);
        assert_eq!(value(&m, "gaia_model_time_to_first_token_seconds_count", &gpt), 1.0, "the streamed call");
        assert_eq!(value(&m, "gaia_model_call_duration_seconds_bucket", &[gpt[0], gpt[1], ("le", "+Inf")]), 2.0);
        assert!(value(&m, "gaia_model_tokens_total", &[gpt[0], gpt[1], ("direction", "input")]) > 0.0);
        assert!(value(&m, "gaia_model_tokens_total", &[gpt[0], gpt[1], ("direction", "output")]) > 0.0);
        assert!(value(&m, "gaia_model_cost_usd_total", &gpt) > 0.0, "priced model");
        assert_eq!(value(&m, "gaia_provider_errors_total", &[("provider", "openai"), ("status", "502")]), 1.0);
        assert_eq!(value(&m, "gaia_provider_errors_total", &[]), 1.0);
        assert_eq!(value(&m, "gaia_response_cache_requests_total", &[("result", "hit")]), 1.0);
        assert_eq!(value(&m, "gaia_response_cache_requests_total", &[("result", "miss")]), 1.0);
        assert_eq!(value(&m, "gaia_active_streams", &[]), 0.0);
        assert_eq!(value(&m, "gaia_rate_limited_total", &[("scope", "user")]), 2.0);
        assert_eq!(value(&m, "gaia_budget_refused_total", &[("scope", "key")]), 1.0);
        let chat = [("route", "/api/v1/chat"), ("method", "POST")];
        assert_eq!(value(&m, "gaia_http_requests_total", &[chat[0], chat[1], ("status", "2xx")]), 2.0);
        assert_eq!(value(&m, "gaia_http_requests_total", &[chat[0], chat[1], ("status", "5xx")]), 1.0);
        assert_eq!(value(&m, "gaia_http_request_duration_seconds_count", &chat), 3.0);
        let compl = [("route", "/v1/chat/completions"), ("status", "2xx")];
        assert_eq!(value(&m, "gaia_http_requests_total", &compl), 2.0);
        let conv = [("route", "/api/v1/conversations/{id}"), ("method", "GET"), ("status", "4xx")];
        assert_eq!(value(&m, "gaia_http_requests_total", &conv), 1.0);
        assert_eq!(value(&m, "gaia_http_requests_total", &[("route", "unmatched"), ("status", "4xx")]), 1.0);
        assert_eq!(value(&m, "gaia_http_requests_total", &[("route", "/metrics"), ("status", "4xx")]), 2.0);
        assert!(!text.contains("4711"), "raw paths never become labels");
        assert!(!text.contains("sk-test") && !text.contains(&key) && !text.contains(&admin));

        // The performance summary agrees.
        let r = s.get("/api/v1/performance/summary", &admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active_streams"], 0);
        assert_eq!(v["window_secs"], 300);
        for period in ["lifetime", "last_5m"] {
            let p = &v[period];
            assert_eq!(p["model_calls"], 5, "{b} {period}: {v}");
            assert_eq!(p["model_errors"], 1);
            assert!((p["model_error_rate"].as_f64().unwrap() - 0.2).abs() < 1e-9);
            assert_eq!(p["server_errors"], 1, "the 502");
            assert!(p["requests"].as_u64().unwrap() >= 12);
            assert!(p["error_rate"].as_f64().unwrap() > 0.0);
            for q in ["p50", "p95", "p99"] {
                assert!(p["latency_ms"][q].as_f64().unwrap() >= 0.0, "{period} {q}");
                assert!(p["model_latency_ms"][q].is_number());
                assert!(p["ttft_ms"][q].is_number());
            }
            assert!(p["tokens"]["input"].as_u64().unwrap() > 0);
            assert!(p["tokens"]["output"].as_u64().unwrap() > 0);
            assert!(p["cost_usd"].as_f64().unwrap() > 0.0);
            assert_eq!(p["cache"], json!({"hits": 1, "misses": 1, "hit_rate": 0.5}));
            assert_eq!(p["rate_limited"], 2);
            assert_eq!(p["budget_refused"], 1);
        }
        assert_eq!(v["lifetime"]["tokens"], v["last_5m"]["tokens"]);

        // Per provider and model, with the registry's health.
        let v: Value = s.get("/api/v1/performance/providers", &admin).fetch_json().await;
        let providers = v["providers"].as_array().unwrap();
        let find = |name: &str| providers.iter().find(|p| p["name"] == name).unwrap().clone();
        let openai = find("openai");
        assert_eq!(openai["configured"], true);
        assert_eq!(openai["calls"], 3, "{v}");
        assert_eq!(openai["errors"], 1);
        assert_eq!(openai["health"]["circuit"], "closed");
        let models = openai["models"].as_array().unwrap();
        let gpt = models.iter().find(|m| m["model"] == "mock-gpt").unwrap();
        assert_eq!(gpt["calls"], 2);
        assert_eq!(gpt["errors"], 0);
        assert!(gpt["latency_p50_ms"].is_number() && gpt["latency_p95_ms"].is_number());
        assert!(gpt["ttft_p50_ms"].is_number());
        assert!(gpt["tokens"]["input"].as_u64().unwrap() > 0);
        assert!(gpt["cost_usd"].as_f64().unwrap() > 0.0);
        let failing = models.iter().find(|m| m["model"] == "mock-error-500").unwrap();
        assert_eq!(failing["errors"], 1);
        assert!(failing["ttft_p50_ms"].is_null(), "no token came");
        assert_eq!(find("anthropic")["calls"], 1);
        let cache = find("cache");
        assert_eq!(cache["configured"], false);
        assert!(cache["health"].is_null());

        // Recent errors: counts and messages, without secrets.
        let r = s.get("/api/v1/performance/errors?limit=10", &admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(!body.contains("sk-test"), "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["total"], 1);
        assert_eq!(v["by_provider"], json!([{"provider": "openai", "status": 502, "count": 1}]));
        let recent = v["recent"].as_array().unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0]["provider"], "openai");
        assert_eq!(recent[0]["model"], "mock-error-500");
        assert_eq!(recent[0]["endpoint"], "chat");
        assert_eq!(recent[0]["status"], 502);
        assert!(!recent[0]["message"].as_str().unwrap().is_empty());
        assert!(recent[0]["time"].as_str().unwrap().ends_with('Z'));
        let r = s.get("/api/v1/performance/errors?limit=none", &admin).send().await.unwrap();
        assert_eq!(r.status(), 400);
    }
}

#[tokio::test]
async fn metrics_can_be_public() {
    for db in database_urls().await {
        let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
        config.chat.auto_title = false;
        config.chat.memory = false;
        config.rbac.first_user_admin = false;
        config.server.metrics_public = true;
        let s = start_with(db, Some(MockConfig::default()), config).await;
        let r = s.http.get(format!("{}/metrics", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", s.backend);
        let m = parse(&r.text().await.unwrap());
        // This server's registry is its own: other tests' calls in this process do not show.
        assert_eq!(value(&m, "gaia_model_calls_total", &[]), 0.0);
        assert_eq!(value(&m, "gaia_active_streams", &[]), 0.0);
        // The performance endpoints stay for administrators.
        let r = s.http.get(format!("{}/api/v1/performance/summary", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let table = gaia_server::route_table(&s.state);
        let metrics = table.iter().find(|d| d.path == "/metrics").unwrap();
        assert_eq!(metrics.access, "public");
        let perf = table.iter().find(|d| d.path == "/api/v1/performance/summary").unwrap();
        assert_eq!(perf.access, "admin:read /admin/performance");
    }
}
