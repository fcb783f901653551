//! Rate limits, budgets, prices and usage reports over HTTP, on SQLite and PostgreSQL.

use crate::common;

use common::{eventually, start_with, Fetch};
use gaia_core::events::Event;
use gaia_core::testing::database_urls;
use gaia_core::types::ModelPrice;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

fn config() -> Config {
    let mut c = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    c.chat.auto_title = false;
    c.chat.memory = false;
    c.rbac.first_user_admin = false;
    c
}

fn chat(model: &str, text: &str) -> Value {
    json!({"message": text, "model": model})
}

#[tokio::test]
async fn rate_limits_per_key_and_per_user() {
    for db in database_urls().await {
        let mut cfg = config();
        cfg.limits.key_requests_per_minute = 2;
        let s = start_with(db, Some(MockConfig::default()), cfg).await;
        let b = s.backend;
        let (token, _, user_id) = s.register("limited@example.com").await;
        let (key, key_id) = s.api_key(&token).await;
        for i in 0..2 {
            let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hi")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{b}");
            assert_eq!(r.headers()["x-ratelimit-limit-requests"], "2");
            assert_eq!(r.headers()["x-ratelimit-remaining-requests"], (1 - i).to_string().as_str());
        }
        let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hi")).send().await.unwrap();
        assert_eq!(r.status(), 429, "{b}");
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("requests per minute of the API key"), "{v}");
        // The compatible endpoints answer in their own shapes.
        let r = s
            .post("/v1/chat/completions", &key)
            .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
        let r = s
            .post("/v1/messages", &key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "mock-claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
        // Routes that do not call models are not limited.
        assert_eq!(s.get("/api/v1/conversations", &key).send().await.unwrap().status(), 200);
        // The session token is not an API key: only user limits apply, and there are none.
        let r = s.http.post(format!("{}/api/v1/chat", s.url)).bearer_auth(&token).json(&chat("openai/mock-gpt", "hi"));
        assert_eq!(r.send().await.unwrap().status(), 200);

        // An administrator raises this key's limit and sets a per-user token limit.
        let (admin, _, admin_id) = s.register("ops@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let admin_put =
            |path: String, body: Value| s.http.put(format!("{}/api/v1{path}", s.url)).bearer_auth(&admin).json(&body);
        let r = admin_put(format!("/limits/key/{key_id}"), json!({"requests_per_minute": 100})).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let r = admin_put(format!("/limits/user/{user_id}"), json!({"tokens_per_minute": 30})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(admin_put("/limits/team/x".into(), json!({})).send().await.unwrap().status(), 400);
        assert_eq!(admin_put("/limits/org/x".into(), json!({})).send().await.unwrap().status(), 400);
        // Users may not change limits.
        let r = s.http.put(format!("{}/api/v1/limits/key/{key_id}", s.url)).bearer_auth(&token).json(&json!({}));
        assert_eq!(r.send().await.unwrap().status(), 403);
        let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hi")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        assert_eq!(r.headers()["x-ratelimit-limit-tokens"], "30");
        // Tokens are counted once calls finish; once 30 are used, calls wait.
        let mut refused = None;
        for _ in 0..20 {
            let r =
                s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "a longer question")).send().await.unwrap();
            if r.status() == 429 {
                refused = Some(r.json::<Value>().await.unwrap());
                break;
            }
            assert_eq!(r.status(), 200);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let refused = refused.expect("the token limit refuses eventually");
        assert!(refused["detail"].as_str().unwrap().contains("tokens per minute of the user"), "{refused}");
        let listed: Value = s.http.get(format!("{}/api/v1/limits", s.url)).bearer_auth(&admin).fetch_json().await;
        assert_eq!(listed["defaults"]["key_requests_per_minute"], 2);
        assert_eq!(listed["limits"].as_array().unwrap().len(), 2);
        let r =
            s.http.delete(format!("{}/api/v1/limits/user/{user_id}", s.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r =
            s.http.delete(format!("{}/api/v1/limits/user/{user_id}", s.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let audit = s.state.storage().audit_records(Some("limit."), 10).await.unwrap();
        assert_eq!(audit.len(), 3, "{b}");
    }
}

#[tokio::test]
async fn budgets_refuse_before_the_provider_and_raise_events() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        // One dollar per thousand tokens: every call costs something.
        for (p, m) in [("openai", "mock-gpt"), ("anthropic", "mock-claude")] {
            s.state.providers().set_price(p, m, ModelPrice::new(1000.0, 1000.0));
        }
        let (admin, _, admin_id) = s.register("boss@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (token, _, user_id) = s.register("spender@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let mut events = s.state.events().subscribe();
        let post =
            |path: &str, body: Value| s.http.post(format!("{}/api/v1{path}", s.url)).bearer_auth(&admin).json(&body);
        let r = post("/budgets", json!({"scope": "user", "subject_id": user_id, "period": "daily", "limit_usd": 0.05}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let budget: Value = r.json().await.unwrap();
        assert_eq!(budget["hard"], true);
        assert_eq!(budget["spent_usd"], 0.0);
        let r = post("/budgets", json!({"scope": "user", "subject_id": user_id, "period": "weekly", "limit_usd": 1}));
        assert_eq!(r.send().await.unwrap().status(), 400);
        let r = post("/budgets", json!({"scope": "user", "subject_id": user_id, "period": "daily", "limit_usd": -1}));
        assert_eq!(r.send().await.unwrap().status(), 400);
        // A request estimated over the budget is refused before any provider sees it.
        let calls_before = s.mock.as_ref().unwrap().requests();
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "x".repeat(1000), "model": "openai/mock-gpt"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 402, "{b}");
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("daily budget of this user is used up"), "{v}");
        assert_eq!(s.mock.as_ref().unwrap().requests(), calls_before, "the provider was not called");
        // Small calls go through until the spend reaches the limit; then every call is refused.
        let mut refused = false;
        for _ in 0..40 {
            let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hi")).send().await.unwrap();
            if r.status() == 402 {
                refused = true;
                break;
            }
            assert_eq!(r.status(), 200, "{b}");
            s.state.usage().flush().await;
        }
        assert!(refused, "{b}: the budget never refused");
        let r = s
            .post("/v1/chat/completions", &key)
            .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 402);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "insufficient_quota");
        // Reaching it raised one event.
        let mut reached = 0;
        while let Ok(e) = events.try_recv() {
            if let Event::BudgetReached { budget_id, hard, .. } = e {
                assert_eq!(budget_id, budget["id"].as_str().unwrap());
                assert!(hard);
                reached += 1;
            }
        }
        assert_eq!(reached, 1, "{b}");
        let mine: Value = s.get("/api/v1/budgets/mine", &key).fetch_json().await;
        let st = &mine["budgets"][0];
        assert!(st["spent_usd"].as_f64().unwrap() >= 0.05 - 1e-9, "{mine}");
        assert_eq!(st["remaining_usd"], 0.0);
        assert!(st["resets_at"].is_string());
        // Users may not create or see everyone's budgets.
        assert_eq!(s.get("/api/v1/budgets", &key).send().await.unwrap().status(), 403);
        // Deleting the budget lets calls through again.
        let id = budget["id"].as_str().unwrap();
        let r = s.http.delete(format!("{}/api/v1/budgets/{id}", s.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hi")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");

        // A soft team budget only raises an event.
        let team = s.state.rbac().await.create_group(None, gaia_rbac::GroupKind::Team, "raiders").await.unwrap();
        s.state.rbac().await.add_member(None, &team.id, &user_id, "kb_reader").await.unwrap();
        let r = post(
            "/budgets",
            json!({"scope": "team", "subject_id": team.id, "period": "monthly", "limit_usd": 0.01, "hard": false}),
        );
        assert_eq!(r.send().await.unwrap().status(), 201);
        s.state.usage().flush().await;
        s.state.quotas().spend_changed();
        let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hi")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let mut soft = false;
        while let Ok(e) = events.try_recv() {
            if let Event::BudgetReached { scope, hard, .. } = e {
                assert_eq!(scope, "team");
                assert!(!hard);
                soft = true;
            }
        }
        assert!(soft, "{b}");
        let all: Value = s.http.get(format!("{}/api/v1/budgets", s.url)).bearer_auth(&admin).fetch_json().await;
        assert_eq!(all["budgets"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn prices_with_effective_dates_and_estimates() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        s.state.providers().set_price("openai", "mock-gpt", ModelPrice::new(1.0, 2.0));
        let (admin, _, admin_id) = s.register("cfo@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (token, _, _) = s.register("player@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let estimate = |body: Value| s.post("/api/v1/pricing/estimate", &key).json(&body);
        let r = estimate(json!({"model": "openai/mock-gpt", "input_tokens": 1_000_000, "max_tokens": 500_000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["provider"], "openai");
        assert_eq!(v["model"], "mock-gpt");
        assert_eq!(v["cost_usd"], 2.0, "{v}");
        assert!(v["price"]["effective_from"].is_null());
        // From the messages of an OpenAI-shaped request: about four characters per token.
        let v: Value =
            estimate(json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "x".repeat(400)}]}))
                .fetch_json()
                .await;
        assert!((90..=110).contains(&v["input_tokens"].as_u64().unwrap()), "{v}");
        assert_eq!(v["output_tokens"], 0);
        let r = estimate(json!({"model": "no-such-model", "input_tokens": 5})).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(estimate(json!([1])).send().await.unwrap().status(), 400);

        // A new price from now, and a later one from next month.
        let post = |body: Value| s.http.post(format!("{}/api/v1/pricing", s.url)).bearer_auth(&admin).json(&body);
        let r = post(
            json!({"provider": "openai", "model": "mock-gpt", "input_per_million": 3.0, "output_per_million": 4.0}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let next_month = chrono::Utc::now() + chrono::Duration::days(30);
        let r = post(
            json!({"provider": "openai", "model": "mock-gpt", "input_per_million": 5.0, "output_per_million": 6.0,
            "effective_from": next_month}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let bad = post(
            json!({"provider": "openai", "model": "mock-gpt", "input_per_million": -3.0, "output_per_million": 4.0}),
        );
        assert_eq!(bad.send().await.unwrap().status(), 400);
        let r = s.post("/api/v1/pricing", &key).json(&json!({"provider": "openai", "model": "mock-gpt",
            "input_per_million": 0.0, "output_per_million": 0.0}));
        assert_eq!(r.send().await.unwrap().status(), 403, "users may not set prices");
        let v: Value = estimate(json!({"model": "openai/mock-gpt", "input_tokens": 1_000_000})).fetch_json().await;
        assert_eq!(v["cost_usd"], 3.0, "{v}");
        assert!(v["price"]["effective_from"].is_string());
        let list: Value = s.get("/api/v1/pricing", &key).fetch_json().await;
        let gpt = list["models"].as_array().unwrap().iter().find(|m| m["model"] == "mock-gpt").unwrap().clone();
        assert_eq!(gpt["price"]["input"], 3.0, "{list}");
        assert_eq!(gpt["upcoming"][0]["price"]["input"], 5.0);
        let hist: Value = s.get("/api/v1/pricing/history?model=mock-gpt", &key).fetch_json().await;
        assert_eq!(hist["prices"].as_array().unwrap().len(), 2);
        // The registry (what every caller costs through: metering, gaia-mcp's agent budgets, `auto:cheap`
        // selection, the model catalog) sees the recorded price.
        assert_eq!(s.state.providers().price("openai", "mock-gpt").unwrap().input, 3.0);
        let models: Value = s.get("/api/v1/models?provider=openai", &key).fetch_json().await;
        let listed = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "mock-gpt").unwrap().clone();
        assert_eq!(listed["price"]["input"], 3.0, "{models}");
        // Calls are costed at the price in effect.
        let r = s.post("/api/v1/chat", &key).json(&chat("openai/mock-gpt", "hello")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        s.state.usage().flush().await;
        let rec = s.state.storage().list_usage(&Default::default(), 10).await.unwrap().pop().unwrap();
        let u = rec.usage;
        let expected = (u.input_tokens as f64 * 3.0 + u.output_tokens as f64 * 4.0) / 1e6;
        assert!((u.cost_usd - expected).abs() < 1e-12, "{b}: {} vs {expected}", u.cost_usd);
        // Deleting the recorded price brings back the configured one.
        let first = hist["prices"][0]["id"].as_str().unwrap();
        let r = s.http.delete(format!("{}/api/v1/pricing/{first}", s.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let v: Value = estimate(json!({"model": "openai/mock-gpt", "input_tokens": 1_000_000})).fetch_json().await;
        assert_eq!(v["cost_usd"], 1.0);
    }
}

#[tokio::test]
async fn usage_reports_by_user_team_model_and_day() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        s.state.providers().set_price("openai", "mock-gpt", ModelPrice::new(1.0, 1.0));
        let (admin, _, admin_id) = s.register("lead@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (t1, _, u1) = s.register("one@example.com").await;
        let (t2, _, _) = s.register("two@example.com").await;
        let team = s.state.rbac().await.create_group(None, gaia_rbac::GroupKind::Team, "guild").await.unwrap();
        s.state.rbac().await.add_member(None, &team.id, &u1, "kb_reader").await.unwrap();
        for (t, model, n) in [(&t1, "openai/mock-gpt", 2), (&t2, "anthropic/mock-claude", 1)] {
            for _ in 0..n {
                let r = s.http.post(format!("{}/api/v1/chat", s.url)).bearer_auth(t).json(&chat(model, "hi"));
                assert_eq!(r.send().await.unwrap().status(), 200);
            }
        }
        let report = |q: &str| s.http.get(format!("{}/api/v1/usage/report?user_id=*&{q}", s.url)).bearer_auth(&admin);
        let v: Value = report("group_by=user").fetch_json().await;
        let groups = v["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2, "{b}: {v}");
        assert_eq!(groups.iter().map(|g| g["requests"].as_i64().unwrap()).sum::<i64>(), 3);
        let v: Value = report("group_by=team").fetch_json().await;
        let guild = v["groups"].as_array().unwrap().iter().find(|g| g["key"] == team.id.as_str()).unwrap().clone();
        assert_eq!(guild["requests"], 2, "{v}");
        let v: Value = report("group_by=model").fetch_json().await;
        assert_eq!(v["groups"][0]["key"], "mock-gpt", "the most expensive first: {v}");
        let r = report("group_by=day&format=csv").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = r.text().await.unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("day,requests,errors,input_tokens,output_tokens,cached_input_tokens,cost_usd"));
        assert!(lines.next().unwrap().starts_with(&chrono::Utc::now().format("%Y-%m-%d").to_string()));
        assert_eq!(report("group_by=planet").send().await.unwrap().status(), 400);
        assert_eq!(report("format=xml").send().await.unwrap().status(), 400);
        // A user sees only their own, and not everyone's.
        let own: Value =
            s.http.get(format!("{}/api/v1/usage/report?group_by=model", s.url)).bearer_auth(&t2).fetch_json().await;
        assert_eq!(own["groups"].as_array().unwrap().len(), 1);
        let r = s.http.get(format!("{}/api/v1/usage/report?user_id=*", s.url)).bearer_auth(&t2).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(eventually(|| true).await);
    }
}
