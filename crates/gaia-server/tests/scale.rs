//! Several instances of one deployment: two servers in one test share the database (PostgreSQL and
//! SQLite) and Redis. A rate limit holds across them, a revoked key and a role change apply on both,
//! live updates cross from one to the other, and a Redis restart under load loses nothing and heals
//! on its own.

use crate::common;

use common::{start_shared, Fetch, TestServer};
use futures::{SinkExt, StreamExt};
use gaia_core::testing::{database_urls, redis_url, services_required, unique_redis_prefix, TestDb};
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn config() -> Config {
    let mut c = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    c.chat.auto_title = false;
    c.chat.memory = false;
    c.rbac.first_user_admin = false;
    // Only Redis announcements may carry access-control changes between the instances.
    c.rbac.refresh_interval_ms = 0;
    c
}

/// Two instances on `db` sharing Redis at `url` (keys under a fresh prefix).
async fn pair(db: TestDb, url: &str, cfg: Config) -> (TestServer, TestServer) {
    let prefix = unique_redis_prefix();
    let second = db.alias();
    let a = start_shared(db, Some(MockConfig::default()), cfg.clone(), Some((url, &prefix))).await;
    let b = start_shared(second, Some(MockConfig::default()), cfg, Some((url, &prefix))).await;
    (a, b)
}

fn redis() -> Option<String> {
    let url = redis_url();
    assert!(url.is_some() || !services_required(), "GAIA_TEST_REDIS_URL is required");
    url
}

fn chat(text: &str) -> Value {
    json!({"message": text, "model": "openai/mock-gpt"})
}

#[tokio::test]
async fn a_rate_limit_holds_across_instances() {
    let Some(url) = redis() else { return };
    for db in database_urls().await {
        let mut cfg = config();
        cfg.limits.key_requests_per_minute = 5;
        let (a, b) = pair(db, &url, cfg).await;
        let (token, _, _) = a.register("shared@example.com").await;
        let (key, _) = a.api_key(&token).await;
        let mut allowed = 0;
        let mut refused = 0;
        for i in 0..12 {
            let s = if i % 2 == 0 { &a } else { &b };
            match s.post("/api/v1/chat", &key).json(&chat("hi")).send().await.unwrap().status().as_u16() {
                200 => allowed += 1,
                429 => refused += 1,
                other => panic!("{}: unexpected {other}", a.backend),
            }
        }
        assert_eq!((allowed, refused), (5, 7), "{}", a.backend);
        assert_eq!(a.state.quotas().limiter().kind(), "redis");
    }
}

#[tokio::test]
async fn revocation_and_role_changes_reach_every_instance() {
    let Some(url) = redis() else { return };
    for db in database_urls().await {
        let (a, b) = pair(db, &url, config()).await;
        let bk = a.backend;
        let (admin, _, admin_id) = a.register("root@example.com").await;
        a.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (token, _, user_id) = a.register("player@example.com").await;
        let (key, key_id) = a.api_key(&token).await;
        // The key works on both (and is now cached in Redis).
        for s in [&a, &b] {
            assert_eq!(s.get("/api/v1/conversations", &key).send().await.unwrap().status(), 200, "{bk}");
        }
        let r = a.http.delete(format!("{}/api/v1/keys/{key_id}", a.url)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 204);
        // The shared cache entry is gone: the other instance refuses the key at once.
        for s in [&b, &a] {
            assert_eq!(s.get("/api/v1/conversations", &key).send().await.unwrap().status(), 401, "{bk}");
        }
        // A role granted on A applies on B (announced through Redis; database polling is off).
        let audit = |s: &TestServer| s.http.get(format!("{}/api/v1/audit", s.url)).bearer_auth(&token).send();
        assert_eq!(audit(&b).await.unwrap().status(), 403);
        let r = a
            .http
            .post(format!("{}/api/v1/rbac/grants", a.url))
            .bearer_auth(&admin)
            .json(&json!({"user_id": user_id, "role": "admin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{bk}");
        let mut ok = false;
        for _ in 0..100 {
            if audit(&b).await.unwrap().status() == 200 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "{bk}: the grant never reached the other instance");
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Ws) -> Value {
    loop {
        let m =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame in time").unwrap().unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn live_updates_cross_instances() {
    let Some(url) = redis() else { return };
    for db in database_urls().await {
        let (a, b) = pair(db, &url, config()).await;
        let bk = a.backend;
        assert_eq!(a.state.events().kind(), "redis");
        let (token, _, _) = a.register("watcher@example.com").await;
        let v: Value =
            a.http.post(format!("{}/api/v1/chat", a.url)).bearer_auth(&token).json(&chat("first")).fetch_json().await;
        let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        // A browser tab connected to instance B…
        let mut req = format!("{}/ws/chat", b.url.replace("http://", "ws://")).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(next(&mut ws).await["type"], "ready");
        ws.send(Message::Text(json!({"type": "subscribe", "conversation_id": conv}).to_string().into())).await.unwrap();
        assert_eq!(next(&mut ws).await["type"], "subscribed");
        // …sees the messages written through instance A, and A's rename.
        let r = a
            .http
            .post(format!("{}/api/v1/chat", a.url))
            .bearer_auth(&token)
            .json(&json!({"message": "second", "model": "openai/mock-gpt", "conversation_id": conv}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut created = Vec::new();
        while created.len() < 2 {
            let f = next(&mut ws).await;
            if f["type"] == "message_created" {
                assert_eq!(f["conversation_id"], conv.as_str(), "{bk}");
                created.push(f["message"]["content"].as_str().unwrap_or_default().to_string());
            }
        }
        assert!(created.iter().any(|c| c == "second"), "{bk}: {created:?}");
        let r = a
            .http
            .patch(format!("{}/api/v1/conversations/{conv}", a.url))
            .bearer_auth(&token)
            .json(&json!({"title": "Renamed on A"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        loop {
            let f = next(&mut ws).await;
            if f["type"] == "conversation_updated" {
                assert_eq!(f["conversation"]["title"], "Renamed on A", "{bk}: {f}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_redis_restart_under_load_loses_nothing_and_heals() {
    if redis().is_none() {
        return;
    }
    let Some(mut redis) = common::OwnRedis::start() else {
        assert!(!services_required(), "redis-server is required to restart Redis in a test");
        return;
    };
    let url = redis.url();
    // PostgreSQL when available: that is the deployment this is about.
    let db = database_urls().await.pop().expect("a database");
    let mut cfg = config();
    cfg.limits.key_requests_per_minute = 1_000_000;
    let (a, b) = pair(db, &url, cfg).await;
    let bk = a.backend;
    let (token, _, _) = a.register("load@example.com").await;
    let (key, _) = a.api_key(&token).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (http, base) = (a.http.clone(), if w % 2 == 0 { a.url.clone() } else { b.url.clone() });
        let (key, stop) = (key.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .post(format!("{base}/api/v1/chat"))
                    .header("X-API-Key", &key)
                    .json(&json!({"message": format!("load {w}"), "model": "openai/mock-gpt"}))
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop();
    // Redis is down: requests keep being served (the database stands in for the cache, rate limits
    // let requests through).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(redis.spawn().is_some(), "redis restarts");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for w in workers {
        let (o, f) = w.await.unwrap();
        ok += o;
        failed += f;
    }
    assert!(ok > 0, "{bk}");
    assert_eq!(failed, 0, "{bk}: requests failed while Redis restarted");
    // Every answered request is stored: one user and one assistant message each.
    a.state.usage().flush().await;
    b.state.usage().flush().await;
    let convs = a
        .state
        .storage()
        .list_conversations(&a.state.auth().authenticate_api_key(&key).await.unwrap().user_id, 100_000, 0)
        .await
        .unwrap();
    let mut messages = 0;
    for c in &convs {
        messages += a.state.storage().list_messages(&c.id).await.unwrap().len();
    }
    assert_eq!(messages, 2 * ok as usize, "{bk}");
    // Healed on its own: events cross instances again and the shared limiter answers.
    assert!(common::events_cross(&a, &b).await, "{bk}: events did not cross instances after the restart");
    let limits = [gaia_core::ratelimit::Limit::new("heal", 10, 1)];
    let mut limiter_ok = false;
    for _ in 0..50 {
        if a.state.quotas().limiter().acquire(&limits, Duration::from_secs(60)).await.is_ok() {
            limiter_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(limiter_ok, "{bk}: the limiter did not reconnect");
}

#[tokio::test]
async fn two_instances_play_one_game_world() {
    let Some(url) = redis() else { return };
    for db in database_urls().await {
        let b = db.backend;
        let (one, two) = pair(db, &url, config()).await;
        let _vault_one = common::with_sample_world(&one).await;
        let _vault_two = common::with_sample_world(&two).await;
        let (ann, _, _) = one.register("ann@example.com").await;
        let (bob, _, _) = one.register("bob@example.com").await;
        let (ann, _) = one.api_key(&ann).await;
        let (bob, _) = two.api_key(&bob).await;
        let mut updates_on_two = two.state.events().subscribe();
        let command = |s: &TestServer, token: &str, action: &str| {
            s.post("/api/v1/experiences/safe-house/command", token).json(&json!({"action": action})).send()
        };

        // Ann takes a can on the first instance; Bob, on the second, sees it gone at the same version.
        let r: Value = command(&one, &ann, "take the can of beans").await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let look: Value = command(&two, &bob, "look").await.unwrap().json().await.unwrap();
        let text = look["message"].as_str().unwrap();
        assert!(!text.contains("can of beans") && text.contains("can of peaches"), "{b}: {text}");
        assert!(look["snapshot_version"].as_i64() >= r["snapshot_version"].as_i64(), "{b}: {look}");
        // The change crossed to the second instance's bus as a world update (for its sockets).
        let crossed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(gaia_core::events::Event::WorldUpdate { snapshot_version, .. }) = updates_on_two.recv().await
                {
                    if Some(snapshot_version) == r["snapshot_version"].as_i64() {
                        return;
                    }
                }
            }
        })
        .await;
        assert!(crossed.is_ok(), "{b}: no world_update crossed");

        // Both race for the last can on the shelf, one on each instance: exactly one gets it.
        let (x, y) = tokio::join!(
            command(&one, &ann, "take the can of peaches"),
            command(&two, &bob, "take the can of peaches")
        );
        let x: Value = x.unwrap().json().await.unwrap();
        let y: Value = y.unwrap().json().await.unwrap();
        assert_eq!([&x["success"], &y["success"]].iter().filter(|s| ***s == true).count(), 1, "{b}: {x} {y}");
        let state = |s: &TestServer, token: &str| {
            let req = s.get("/api/v1/experiences/safe-house/state", token);
            async move { req.fetch_json().await }
        };
        let held = |v: &Value| {
            v["player"]["inventory"].as_array().unwrap().iter().filter(|i| i["instance_id"] == "canned_food_2").count()
        };
        let (sa, sb): (Value, Value) = (state(&two, &ann).await, state(&one, &bob).await);
        assert_eq!(held(&sa) + held(&sb), 1, "{b}: {sa} {sb}");
        assert_eq!(sa["snapshot_version"], sb["snapshot_version"], "{b}");
    }
}
