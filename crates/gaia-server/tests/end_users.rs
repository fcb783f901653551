//! End users (a game's players) and request tags: named by OpenAI's `user`, Anthropic's
//! `metadata.user_id`, Gaia's `player_id` or `x-gaia-end-user`; their own rate limits and budgets
//! (and a key's default for its players), per caller's namespace; usage grouped by end user and by
//! tag. On SQLite and PostgreSQL.

use crate::common;

use common::{start_with, Fetch, TestServer};
use gaia_core::testing::database_urls;
use gaia_core::types::ModelPrice;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

fn config() -> Config {
    let mut c = common::test_config();
    c.chat.auto_title = false;
    c.chat.memory = false;
    c.rbac.first_user_admin = false;
    c
}

fn openai(user: Option<&str>) -> Value {
    let mut v = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(u) = user {
        v["user"] = json!(u);
    }
    v
}

fn anthropic(user: &str) -> Value {
    json!({"model": "mock-claude", "max_tokens": 16, "metadata": {"user_id": user},
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn admin(s: &TestServer, email: &str) -> String {
    let (token, _, id) = s.register(email).await;
    s.state.storage().set_admin(&id, true).await.unwrap();
    token
}

#[tokio::test]
async fn each_player_has_their_own_limits_within_their_callers_namespace() {
    for db in database_urls().await {
        let mut cfg = config();
        cfg.limits.end_user_requests_per_minute = 2;
        let s = start_with(db, Some(MockConfig::default()), cfg).await;
        let b = s.backend;
        let (token, _, user_id) = s.register("studio@example.com").await;
        let (key, key_id) = s.api_key(&token).await;
        let (other_token, _, _) = s.register("rival@example.com").await;
        let (other_key, _) = s.api_key(&other_token).await;
        let send = |key: &str, body: Value| s.post("/v1/chat/completions", key).json(&body).send();
        for _ in 0..2 {
            assert_eq!(send(&key, openai(Some("p1"))).await.unwrap().status(), 200, "{b}");
        }
        let r = send(&key, openai(Some("p1"))).await.unwrap();
        assert_eq!(r.status(), 429, "{b}");
        assert!(r.headers().contains_key("retry-after"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("of the end user"), "{v}");
        // Another player of the same caller, and the same player id of another caller, go on; so do
        // calls that name no player.
        assert_eq!(send(&key, openai(Some("p2"))).await.unwrap().status(), 200);
        assert_eq!(send(&other_key, openai(Some("p1"))).await.unwrap().status(), 200);
        assert_eq!(send(&key, openai(None)).await.unwrap().status(), 200);
        // The header names the player as well, and wins over the body.
        let r = s.post("/v1/chat/completions", &key).header("x-gaia-end-user", "p1").json(&openai(Some("p3")));
        assert_eq!(r.send().await.unwrap().status(), 429, "{b}");
        // Anthropic's metadata.user_id, in Anthropic's error shape.
        let r = s.post("/v1/messages", &key).header("anthropic-version", "2023-06-01").json(&anthropic("p1"));
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
        // Gaia's own chat takes `player_id`.
        let body = json!({"message": "hi", "model": "openai/mock-gpt", "player_id": "p1"});
        assert_eq!(s.post("/api/v1/chat", &key).json(&body).send().await.unwrap().status(), 429);

        // The key's default for its players replaces the configured one; a player's own limit wins.
        let admin = admin(&s, "ops@example.com").await;
        let put = |path: String, body: Value| {
            s.http.put(format!("{}/api/v1/limits/{path}", s.url)).bearer_auth(&admin).json(&body).send()
        };
        let r = put(format!("key_end_users/{key_id}"), json!({"requests_per_minute": 100})).await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        s.state.quotas().settings_changed();
        assert_eq!(send(&key, openai(Some("p1"))).await.unwrap().status(), 200, "{b}");
        let r = put(format!("end_user/{user_id}:p2"), json!({"requests_per_minute": 1})).await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        s.state.quotas().settings_changed();
        assert_eq!(send(&key, openai(Some("p2"))).await.unwrap().status(), 429, "{b}: p2's own limit (1, used)");
        // An end user is named with their caller: a bare player id is refused.
        assert_eq!(put("end_user/p2".into(), json!({"requests_per_minute": 1})).await.unwrap().status(), 400);
    }
}

#[tokio::test]
async fn a_players_budget_stops_that_player_only() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        for (p, m) in [("openai", "mock-gpt"), ("anthropic", "mock-claude")] {
            s.state.providers().set_price(p, m, ModelPrice::new(1000.0, 1000.0));
        }
        let admin = admin(&s, "boss@example.com").await;
        let (token, _, user_id) = s.register("game@example.com").await;
        let (key, key_id) = s.api_key(&token).await;
        let create =
            |body: Value| s.http.post(format!("{}/api/v1/budgets", s.url)).bearer_auth(&admin).json(&body).send();
        // Each player of the key: $0.03 a day.
        let r = create(json!({"scope": "key_end_users", "subject_id": key_id, "period": "daily", "limit_usd": 0.03}));
        assert_eq!(r.await.unwrap().status(), 201, "{b}");
        let calls_before = s.mock.as_ref().unwrap().requests();
        let mut refused_after = None;
        for i in 0..40 {
            let r = s.post("/v1/chat/completions", &key).json(&openai(Some("spender"))).send().await.unwrap();
            if r.status() == 402 {
                assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "insufficient_quota");
                refused_after = Some(i);
                break;
            }
            assert_eq!(r.status(), 200, "{b}");
            s.state.usage().flush().await;
        }
        let calls = refused_after.expect("the player's budget never refused");
        assert!(calls >= 1, "{b}: some calls went through first");
        assert_eq!(s.mock.as_ref().unwrap().requests(), calls_before + calls, "the refused call reached no provider");
        // Another player goes on, and so do calls for no player (the budget is per player).
        assert_eq!(
            s.post("/v1/chat/completions", &key).json(&openai(Some("saver"))).send().await.unwrap().status(),
            200
        );
        assert_eq!(s.post("/v1/chat/completions", &key).json(&openai(None)).send().await.unwrap().status(), 200);
        let r = s.post("/v1/messages", &key).header("anthropic-version", "2023-06-01").json(&anthropic("spender"));
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 402, "{b}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "billing_error");

        // A budget of one player, by name.
        let subject = format!("{user_id}:saver");
        let r = create(json!({"scope": "end_user", "subject_id": subject, "period": "monthly", "limit_usd": 0.0001}));
        assert_eq!(r.await.unwrap().status(), 201);
        s.state.usage().flush().await;
        s.state.quotas().settings_changed();
        let r = s
            .post("/api/v1/chat", &key)
            .json(&json!({"message": "hi", "model": "openai/mock-gpt", "player_id": "saver"}));
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 402, "{b}");
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("budget of this end user"), "{v}");
        assert!(create(json!({"scope": "end_user", "subject_id": "saver", "period": "daily", "limit_usd": 1}))
            .await
            .unwrap()
            .status()
            .is_client_error());
    }
}

#[tokio::test]
async fn usage_is_reported_by_end_user_and_by_tag() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        s.state.providers().set_price("openai", "mock-gpt", ModelPrice::new(1.0, 1.0));
        let (token, _, _) = s.register("tags@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let tagged = |player: &str, tags: &str| {
            s.post("/v1/chat/completions", &key).header("x-gaia-tags", tags).json(&openai(Some(player))).send()
        };
        for (player, tags) in [
            ("p1", "npc=louisa,quest=first-light"),
            ("p1", "npc=louisa"),
            ("p2", "npc=felix,quest=first-light"),
            ("=cmd|' /C calc'!A0", "npc=felix"),
        ] {
            assert_eq!(tagged(player, tags).await.unwrap().status(), 200, "{b}");
        }
        assert_eq!(s.post("/v1/chat/completions", &key).json(&openai(None)).send().await.unwrap().status(), 200);
        let report = |q: &str| s.get(&format!("/api/v1/usage/report?{q}"), &key).send();
        let v: Value = report("group_by=end_user").await.unwrap().json().await.unwrap();
        let count = |v: &Value, k: &str| {
            v["groups"].as_array().unwrap().iter().find(|g| g["key"] == k).map(|g| g["requests"].as_i64().unwrap())
        };
        assert_eq!(count(&v, "p1"), Some(2), "{b}: {v}");
        assert_eq!(count(&v, "p2"), Some(1));
        assert_eq!(count(&v, "-"), Some(1), "calls for no player");
        let v: Value = report("group_by=tag:npc").await.unwrap().json().await.unwrap();
        assert_eq!((count(&v, "louisa"), count(&v, "felix"), count(&v, "-")), (Some(2), Some(2), Some(1)), "{v}");
        let v: Value = report("group_by=tag:quest").await.unwrap().json().await.unwrap();
        assert_eq!((count(&v, "first-light"), count(&v, "-")), (Some(2), Some(3)), "{v}");
        let v: Value = report("group_by=model&end_user=p1").await.unwrap().json().await.unwrap();
        assert_eq!(v["groups"][0]["requests"], 2, "{v}");
        // CSV, with the player id a spreadsheet would run defused.
        let r = report("group_by=end_user&format=csv").await.unwrap();
        assert!(r.headers()["content-disposition"].to_str().unwrap().contains("gaia-usage-by-end_user.csv"));
        let csv = r.text().await.unwrap();
        assert!(csv.starts_with("end_user,requests,errors,input_tokens,output_tokens,cached_input_tokens,cost_usd\n"));
        assert!(csv.contains("\n'=cmd|' /C calc'!A0,1,"), "{csv}");
        let r = report("group_by=tag:quest&format=csv").await.unwrap();
        assert!(r.headers()["content-disposition"].to_str().unwrap().contains("gaia-usage-by-tag-quest.csv"));
        // The export carries the end user.
        let csv = s.get("/api/v1/usage/export", &key).send().await.unwrap().text().await.unwrap();
        assert!(
            csv.lines().next().unwrap().ends_with(",end_user,cached_input_tokens,cache_write_input_tokens"),
            "{csv}"
        );
        assert!(csv.contains(",p1,"));
        // Bad tags and group keys are refused, in the caller's shape, and nothing is called.
        let before = s.mock.as_ref().unwrap().requests();
        for bad in ["npc", "NPC=x", "npc=a,npc=b", "npc=<b>", &"k=v,".repeat(11)] {
            let r = tagged("p1", bad).await.unwrap();
            assert_eq!(r.status(), 400, "{bad}");
            assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
        }
        let long = "x".repeat(300);
        let r = s.post("/v1/chat/completions", &key).json(&openai(Some(&long))).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("over 256 characters"));
        let not_utf8 = reqwest::header::HeaderValue::from_bytes(b"p\xff").unwrap();
        let r = s.post("/v1/chat/completions", &key).header("x-gaia-end-user", not_utf8).json(&openai(None));
        assert_eq!(r.send().await.unwrap().status(), 400);
        assert_eq!(s.mock.as_ref().unwrap().requests(), before);
        // An empty `user` names no one (some clients send one).
        assert_eq!(s.post("/v1/chat/completions", &key).json(&openai(Some(""))).send().await.unwrap().status(), 200);
        assert_eq!(report("group_by=tag:NPC").await.unwrap().status(), 400);
        assert_eq!(report("end_user=").await.unwrap().status(), 400);
        let me: Value = s.get("/api/v1/usage", &key).fetch_json().await;
        assert_eq!(me["totals"]["requests"], 6, "{b}: {me}");
    }
}
