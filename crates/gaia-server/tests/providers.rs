//! Providers managed at runtime (validation, keys never shown, changes stored so they survive a
//! restart on SQLite and PostgreSQL and reach other instances), `GET /api/v1/models` filters, and the
//! response cache (TTL, Redis, what bypasses it, what its key covers). Literal provider keys are
//! stored encrypted, survive a restart, and a wrong secrets key skips the provider without stopping
//! start-up.

use crate::common;

use common::{sse_data, start, start_shared, start_with, Fetch, TestServer};
use gaia_core::config::{Deployment, ModelEntry, ModelSpec, ProviderEntry, ProviderKind};
use gaia_core::secrets::Secrets;
use gaia_core::storage::Storage;
use gaia_core::testing::{database_urls, redis_url, sqlite_db, unique_redis_prefix};
use gaia_core::Config;
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_server::provider_store::ProviderSync;
use gaia_server::Gaia;
use serde_json::{json, Value};
use std::time::Duration;

async fn admin_of(s: &TestServer) -> (String, String) {
    let (admin, _, admin_id) = s.register("admin@example.com").await;
    s.state.storage().set_admin(&admin_id, true).await.unwrap();
    s.state.auth().evict_user(&admin_id).await.unwrap();
    (admin, admin_id)
}

#[tokio::test]
async fn admin_api_validates_entries_and_never_shows_keys() {
    let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    // The variables runtime providers may read their keys from (`[provider_policy]`).
    config.provider_policy.allowed_key_envs = vec!["TEST_H3_PROVIDER_KEY".into(), "TEST_H3_UNSET_VARIABLE".into()];
    let keyed = MockUpstream::start(
        "127.0.0.1:0".parse().unwrap(),
        MockConfig { require_key: Some("sk-secret-from-env-42".into()), ..Default::default() },
    )
    .await
    .unwrap();
    // Where keys read from them may go: where the configuration sends them (this upstream).
    let mut upstream = ProviderEntry::new("upstream", ProviderKind::Openai);
    upstream.base_url = Some(keyed.openai_base_url());
    upstream.api_key_env = Some("TEST_H3_PROVIDER_KEY".into());
    upstream.deployments =
        vec![Deployment { api_key_env: Some("TEST_H3_UNSET_VARIABLE".into()), ..Default::default() }];
    config.providers.push(upstream);
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let (admin, _) = admin_of(&s).await;
    let post = |body: Value| s.http.post(format!("{}/api/v1/providers", s.url)).bearer_auth(&admin).json(&body).send();
    let status = |r: reqwest::Response| r.status().as_u16();

    // Bad input: 400 with a message in the API's error shape.
    for (bad, what) in [
        (json!({"name": "x", "kind": "cohere"}), "kind"),
        (json!({"name": "x", "kind": "openai", "base_url": "ftp://host/v1"}), "base_url"),
        (json!({"name": "x", "kind": "openai", "base_url": "not a url"}), "base_url"),
        (json!({"name": "a b", "kind": "openai"}), "name"),
        (json!({"name": "x", "kind": "openai", "timeout_secs": 0}), "timeout"),
        (
            json!({"name": "x", "kind": "openai", "base_url": keyed.openai_base_url(),
                "api_key_env": "TEST_H3_UNSET_VARIABLE"}),
            "environment variable TEST_H3_UNSET_VARIABLE is not set",
        ),
        (json!({"name": "x", "kind": "openai", "api_key_env": "TEST_H3_PROVIDER_KEY"}), "api.openai.com:443"),
        (json!({"name": "x", "kind": "openai", "api_key_env": "HOME"}), "provider_policy.allowed_key_envs"),
        (json!({"name": "x", "kind": "openai", "surprise": true}), "surprise"),
    ] {
        let r = post(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains(what), "{bad}: {v}");
    }
    assert_eq!(status(post(json!({"name": "x"})).await.unwrap()), 400, "kind is required");
    // A name already taken (here by a provider set up in code): 409.
    let r = post(json!({"name": "openai", "kind": "openai"})).await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("PUT"));

    // The key comes from the server's environment and is never shown nor stored.
    std::env::set_var("TEST_H3_PROVIDER_KEY", "sk-secret-from-env-42");
    let entry = json!({"name": "envkeyed", "kind": "openai", "base_url": keyed.openai_base_url(),
        "api_key_env": "TEST_H3_PROVIDER_KEY",
        "models": [{"id": "mock-gpt", "context_window": 8000, "capabilities": ["tools"]}]});
    let r = post(entry.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let shown = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!((v["name"].as_str(), v["has_api_key"].as_bool()), (Some("envkeyed"), Some(true)));
    assert_eq!(v["api_key_env"], "TEST_H3_PROVIDER_KEY");
    assert_eq!(post(entry.clone()).await.unwrap().status(), 409, "added once");
    let (token, _, _) = s.register("user@example.com").await;
    let r = s
        .http
        .post(format!("{}/api/v1/chat", s.url))
        .bearer_auth(&token)
        .json(&json!({"message": "with the env key", "model": "envkeyed/mock-gpt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the key was read from the environment: {}", r.text().await.unwrap());
    let listed = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&admin).fetch_text().await;
    let stored = serde_json::to_string(
        &s.state.storage().list_runtime_providers().await.unwrap()[0].entry.as_ref().unwrap().clone(),
    )
    .unwrap();
    let audit = serde_json::to_string(&s.state.storage().audit_records(Some("provider."), 100).await.unwrap()).unwrap();
    for text in [&shown, &listed, &stored, &audit] {
        assert!(!text.contains("sk-secret-from-env-42"), "a key leaked: {text}");
    }
    assert!(listed.contains("\"kind\":\"openai\""), "{listed}");

    // A literal key is accepted, and never shown either.
    let literal = json!({"name": "literal", "kind": "anthropic", "base_url": s.mock.as_ref().unwrap().base_url(),
        "api_key": "sk-literal-key-77"});
    let r = post(literal.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(!r.text().await.unwrap().contains("sk-literal-key-77"));
    // Stored encrypted under the key derived from the configured JWT secret (no `secrets_key` here).
    let row = stored_row(s.state.storage(), "literal").await;
    assert!(!row.contains("sk-literal-key-77") && row.contains("enc:v1:"), "{row}");

    // PUT replaces (200) or creates (201); the body must name the same provider.
    let put = |name: &str, body: Value| {
        s.http.put(format!("{}/api/v1/providers/{name}", s.url)).bearer_auth(&admin).json(&body).send()
    };
    let mut rotated = literal.clone();
    rotated["api_key"] = json!("sk-rotated");
    assert_eq!(status(put("literal", rotated.clone()).await.unwrap()), 200);
    assert_eq!(status(put("other", rotated.clone()).await.unwrap()), 400);
    let mut fresh = rotated.clone();
    fresh["name"] = json!("fresh");
    assert_eq!(status(put("fresh", fresh).await.unwrap()), 201);
    let mut broken = rotated.clone();
    broken["base_url"] = json!("nope");
    assert_eq!(status(put("literal", broken).await.unwrap()), 400);
    // Only administrators change providers.
    let r = s.http.put(format!("{}/api/v1/providers/literal", s.url)).bearer_auth(&token).json(&rotated).send();
    assert_eq!(status(r.await.unwrap()), 403);
}

async fn serve(gaia: &Gaia) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = gaia.state().clone();
    tokio::spawn(async move {
        gaia_server::serve(listener, st, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (url, tx)
}

#[tokio::test]
async fn runtime_changes_survive_a_restart_and_reach_other_instances() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    for db in database_urls().await {
        let b = db.backend;
        let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
        config.chat.auto_title = false;
        config.chat.memory = false;
        config.rbac.first_user_admin = true;
        let mut configured = ProviderEntry::new("configured", ProviderKind::Openai);
        configured.base_url = Some(mock.openai_base_url());
        configured.models = vec![ModelSpec::Id("mock-gpt".into())];
        config.providers.push(configured);
        let build = || Gaia::builder().config(config.clone()).database(db.url.clone()).background_jobs(false).build();

        let first = build().await.unwrap();
        let (url, stop) = serve(&first).await;
        let http = reqwest::Client::new();
        let admin = admin_token(&http, &url, "register").await;
        let added = json!({"name": "added", "kind": "anthropic", "base_url": mock.base_url(), "api_key": "sk-a",
            "models": [{"id": "mock-claude", "context_window": 1000, "capabilities": ["vision"]}]});
        let r = http.post(format!("{url}/api/v1/providers")).bearer_auth(&admin).json(&added).send().await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let r = http.delete(format!("{url}/api/v1/providers/configured")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 204, "{b}");
        // The instance that made the changes does not set them up again when its sync reads them back.
        let applied = first.state().applied_provider_changes().clone();
        let mut own = ProviderSync::with_applied(config.secrets().unwrap(), applied);
        assert_eq!(own.apply_changes(first.state().storage(), first.state().providers()).await.unwrap(), 0, "{b}");

        // Another instance on the same database, running meanwhile, catches up on its next sync.
        let second = build().await.unwrap();
        let mut sync = ProviderSync::new(config.secrets().unwrap());
        assert_eq!(sync.apply_changes(second.state().storage(), second.state().providers()).await.unwrap(), 2);
        let late =
            json!({"name": "late", "kind": "openai", "base_url": mock.openai_base_url(), "models": ["mock-gpt"]});
        let r = http.post(format!("{url}/api/v1/providers")).bearer_auth(&admin).json(&late).send().await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        assert!(second.state().providers().get("late").is_none());
        assert_eq!(sync.apply_changes(second.state().storage(), second.state().providers()).await.unwrap(), 1);
        assert!(second.state().providers().get("late").is_some(), "{b}");
        assert_eq!(sync.apply_changes(second.state().storage(), second.state().providers()).await.unwrap(), 0);
        let _ = stop.send(());
        drop(first);

        // A restart: the added providers are back with their catalog, the removed one stays removed.
        let restarted = build().await.unwrap();
        let reg = restarted.state().providers();
        assert!(reg.get("configured").is_none(), "{b}: removed at runtime, though gaia.toml lists it");
        let (p, model) = reg.resolve("added/mock-claude").await.unwrap();
        assert_eq!((p.name(), model.as_str()), ("added", "mock-claude"));
        assert_eq!(reg.model_entry("added", "mock-claude").unwrap().context_window, Some(1000), "{b}");
        let c = reg.candidates("late/mock-gpt").await.unwrap();
        let r = reg.chat_routed(&c, &gaia_providers::ChatRequest::new("", vec![])).await;
        assert_eq!(r.map_err(|f| f.error).unwrap().provider.name(), "late", "{b}");
    }
}

/// The `entry` column of the `runtime_providers` row `name`, exactly as stored.
async fn stored_row(storage: &Storage, name: &str) -> String {
    use sqlx::Row;
    let row = sqlx::query("SELECT entry FROM runtime_providers WHERE name = $1")
        .bind(name)
        .fetch_one(storage.pool())
        .await
        .unwrap();
    row.try_get::<Option<String>, _>("entry").unwrap().unwrap()
}

/// Asks `model` for a chat answer over HTTP: the status and the body.
/// The access token of root@example.com (the first user, an admin) on the server at `url`, from
/// `action`: `register` or `login`.
async fn admin_token(http: &reqwest::Client, url: &str, action: &str) -> String {
    let r = http
        .post(format!("{url}/api/v1/auth/{action}"))
        .json(&json!({"email": "root@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{action}: {}", r.status());
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

async fn chat_status(http: &reqwest::Client, url: &str, token: &str, model: &str) -> (u16, Value) {
    let r = http
        .post(format!("{url}/api/v1/chat"))
        .bearer_auth(token)
        .json(&json!({"message": "is the key right?", "model": model}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn literal_keys_are_encrypted_at_rest_and_survive_a_restart() {
    const KEY: &str = "sk-literal-upstream-key-91";
    const LEGACY_KEY: &str = "sk-legacy-clear-key-17";
    // Upstreams that refuse any other key.
    let keyed = MockUpstream::start(
        "127.0.0.1:0".parse().unwrap(),
        MockConfig { require_key: Some(KEY.into()), ..Default::default() },
    )
    .await
    .unwrap();
    let legacy_upstream = MockUpstream::start(
        "127.0.0.1:0".parse().unwrap(),
        MockConfig { require_key: Some(LEGACY_KEY.into()), ..Default::default() },
    )
    .await
    .unwrap();
    let plain = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    for db in database_urls().await {
        let b = db.backend;
        let mut config = Config {
            jwt_secret: Some("integration-test-secret-0123456789".into()),
            secrets_key: Some(Secrets::generate_key()),
            ..Config::default()
        };
        config.chat.auto_title = false;
        config.chat.memory = false;
        config.rbac.first_user_admin = true;
        config.provider_policy.allowed_key_envs = vec!["TEST_SECRETS_PROVIDER_KEY".into()];
        config.provider_policy.allowed_hosts = vec!["127.0.0.1".into()];
        let mut configured = ProviderEntry::new("configured", ProviderKind::Openai);
        configured.base_url = Some(plain.openai_base_url());
        configured.models = vec![ModelSpec::Id("mock-gpt".into())];
        config.providers.push(configured);
        let build =
            |config: Config| Gaia::builder().config(config).database(db.url.clone()).background_jobs(false).build();
        let http = reqwest::Client::new();

        let first = build(config.clone()).await.unwrap();
        let (url, stop) = serve(&first).await;
        // The JWT secret is configured, so this token stays valid across the restarts below.
        let admin = admin_token(&http, &url, "register").await;
        let vault = json!({"name": "vault", "kind": "openai", "base_url": keyed.openai_base_url(), "api_key": KEY,
            "models": ["mock-gpt"]});
        let r = http.post(format!("{url}/api/v1/providers")).bearer_auth(&admin).json(&vault).send().await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        assert_eq!(chat_status(&http, &url, &admin, "vault/mock-gpt").await.0, 200, "{b}");
        // The database holds the key encrypted, never in clear.
        let row = stored_row(first.state().storage(), "vault").await;
        assert!(!row.contains(KEY), "{b}: the key is stored in clear: {row}");
        assert!(row.contains("\"api_key\":\"enc:v1:"), "{b}: {row}");
        // A row written in clear before keys were encrypted.
        let mut legacy = ProviderEntry::new("legacy", ProviderKind::Openai);
        legacy.base_url = Some(legacy_upstream.openai_base_url());
        legacy.api_key = Some(LEGACY_KEY.into());
        legacy.models = vec![ModelSpec::Id("mock-gpt".into())];
        sqlx::query(
            "INSERT INTO runtime_providers (name, entry, removed, updated_by, updated_at) VALUES ($1, $2, 0, NULL, $3)",
        )
        .bind("legacy")
        .bind(serde_json::to_string(&legacy).unwrap())
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(first.state().storage().pool())
        .await
        .unwrap();
        let _ = stop.send(());
        drop(first);

        // A restart with the same configuration: the provider works with its decrypted key, and the
        // key stored in clear still loads and is now encrypted in place.
        let second = build(config.clone()).await.unwrap();
        let (url, stop) = serve(&second).await;
        assert_eq!(chat_status(&http, &url, &admin, "vault/mock-gpt").await.0, 200, "{b}: after a restart");
        assert_eq!(chat_status(&http, &url, &admin, "legacy/mock-gpt").await.0, 200, "{b}: a row stored in clear");
        let row = stored_row(second.state().storage(), "legacy").await;
        assert!(!row.contains(LEGACY_KEY) && row.contains("enc:v1:"), "{b}: encrypted at start-up: {row}");
        let _ = stop.send(());
        drop(second);

        // Another secrets key: the server still starts; the providers it cannot decrypt are skipped
        // and shown down with the reason; the others work.
        let mut rotated = config.clone();
        rotated.secrets_key = Some(Secrets::generate_key());
        let third = build(rotated).await.unwrap();
        let (url, stop) = serve(&third).await;
        let listed = http
            .get(format!("{url}/api/v1/providers"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let shown = listed["providers"].as_array().unwrap().iter().find(|p| p["name"] == "vault").unwrap().clone();
        assert_eq!(shown["health"]["up"], false, "{b}: {shown}");
        let why = shown["health"]["last_error"].as_str().unwrap();
        assert!(why.contains("cannot be decrypted") && why.contains("GAIA_SECRETS_KEY"), "{b}: {why}");
        let r = http.get(format!("{url}/api/v1/providers/vault/health")).bearer_auth(&admin).send().await.unwrap();
        let health = r.json::<Value>().await.unwrap();
        assert_eq!(health["probe"]["ok"], false, "{b}: {health}");
        assert!(health["probe"]["message"].as_str().unwrap().contains("cannot be decrypted"), "{b}: {health}");
        let (status, body) = chat_status(&http, &url, &admin, "vault/mock-gpt").await;
        assert_eq!(status, 503, "{b}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("cannot be decrypted"), "{b}: {body}");
        assert_eq!(chat_status(&http, &url, &admin, "configured/mock-gpt").await.0, 200, "{b}");
        for text in [listed.to_string(), health.to_string(), body.to_string()] {
            assert!(!text.contains(KEY) && !text.contains("enc:v1:"), "{b}: {text}");
        }
        // An administrator gives the key again: stored under the new secrets key, it works at once.
        let r =
            http.put(format!("{url}/api/v1/providers/vault")).bearer_auth(&admin).json(&vault).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        assert_eq!(chat_status(&http, &url, &admin, "vault/mock-gpt").await.0, 200, "{b}");
        let _ = stop.send(());
        drop(third);

        // No secrets key and no JWT secret (random per start): nothing stored can be decrypted, and a
        // literal key is refused with what to do instead; `api_key_env` still works.
        let bare = Config { jwt_secret: None, secrets_key: None, ..config.clone() };
        let fourth = build(bare).await.unwrap();
        assert!(fourth.state().providers().get("configured").is_some(), "{b}: started");
        let (url, stop) = serve(&fourth).await;
        let admin = admin_token(&http, &url, "login").await;
        let (status, body) = chat_status(&http, &url, &admin, "vault/mock-gpt").await;
        assert!(status == 503 && body["detail"].as_str().unwrap().contains("no secrets key"), "{b}: {body}");
        let literal = json!({"name": "another", "kind": "openai", "base_url": keyed.openai_base_url(), "api_key": KEY});
        let r = http.post(format!("{url}/api/v1/providers")).bearer_auth(&admin).json(&literal).send().await.unwrap();
        assert_eq!(r.status(), 400, "{b}");
        let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains("GAIA_SECRETS_KEY") && detail.contains("api_key_env"), "{b}: {detail}");
        assert!(fourth.state().storage().list_runtime_providers().await.unwrap().iter().all(|p| p.name != "another"));
        std::env::set_var("TEST_SECRETS_PROVIDER_KEY", KEY);
        let by_env = json!({"name": "another", "kind": "openai", "base_url": keyed.openai_base_url(),
            "api_key_env": "TEST_SECRETS_PROVIDER_KEY", "models": ["mock-gpt"]});
        let r = http.post(format!("{url}/api/v1/providers")).bearer_auth(&admin).json(&by_env).send().await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        assert_eq!(chat_status(&http, &url, &admin, "another/mock-gpt").await.0, 200, "{b}");
        let _ = stop.send(());
    }
}

#[tokio::test]
async fn models_filters() {
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (token, _, _) = s.register("models@example.com").await;
    let mut e = ProviderEntry::new("catalog", ProviderKind::Openai);
    e.base_url = Some(s.mock.as_ref().unwrap().openai_base_url());
    let model = |id: &str, ctx: u32, caps: &[&str], price: f64| {
        ModelSpec::Entry(ModelEntry {
            id: id.into(),
            context_window: Some(ctx),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            input_price: Some(price / 4.0),
            output_price: Some(price),
            cached_input_price: None,
            cache_write_price: None,
            unit_prices: Default::default(),
        })
    };
    e.models = vec![
        model("small", 8_000, &["streaming"], 0.5),
        model("tooly", 128_000, &["tools", "streaming"], 10.0),
        model("seeing", 200_000, &["tools", "vision", "streaming"], 15.0),
        ModelSpec::Id("bare".into()),
    ];
    s.state.providers().add_entry(&e).unwrap();
    let ids = |q: &'static str| {
        let s = &s;
        let token = token.clone();
        async move {
            let r = s.http.get(format!("{}/api/v1/models{q}", s.url)).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{q}");
            let v: Value = r.json().await.unwrap();
            v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("?provider=catalog").await, ["small", "tooly", "seeing", "bare"]);
    assert_eq!(ids("?provider=catalog&capability=tools").await, ["tooly", "seeing"]);
    assert_eq!(ids("?capability=vision").await, ["seeing"]);
    assert_eq!(ids("?provider=catalog&capability=streaming").await, ["small", "tooly", "seeing"]);
    assert_eq!(ids("?capability=tools,vision").await, ["seeing"], "all of them");
    assert_eq!(ids("?capability=VISION").await, ["seeing"]);
    assert!(ids("?capability=telepathy").await.is_empty());
    assert_eq!(ids("?provider=catalog&max_price=10").await, ["small", "tooly"], "unpriced models are left out");
    assert_eq!(ids("?provider=catalog&min_context=128000").await, ["tooly", "seeing"]);
    assert_eq!(ids("?min_context=100000&max_price=12&capability=tools").await, ["tooly"]);
    assert!(ids("?provider=nobody").await.is_empty());
    let v: Value =
        s.http.get(format!("{}/api/v1/models?capability=vision", s.url)).bearer_auth(&token).fetch_json().await;
    let m = &v["data"][0];
    assert_eq!(m["capabilities"], json!(["tools", "vision", "streaming"]));
    assert_eq!((m["context_window"].as_u64(), m["price"]["output"].as_f64()), (Some(200_000), Some(15.0)));
    for bad in ["?max_price=-1", "?min_context=big", "?max_price=cheap"] {
        assert_eq!(
            s.http.get(format!("{}/api/v1/models{bad}", s.url)).bearer_auth(&token).send().await.unwrap().status(),
            400,
            "{bad}"
        );
    }
}

/// Sends an OpenAI-format chat request and returns the `x-gaia-cache` header and the body.
async fn ask(s: &TestServer, key: &str, body: &Value, header: Option<(&str, &str)>) -> (String, String) {
    let mut r = s.http.post(format!("{}/v1/chat/completions", s.url)).bearer_auth(key).json(body);
    if let Some((k, v)) = header {
        r = r.header(k, v);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cache = r.headers()["x-gaia-cache"].to_str().unwrap().to_string();
    (cache, r.text().await.unwrap())
}

/// The cache's behaviour, on whichever backend the server was started with.
async fn cache_behaviour(s: &TestServer, key: &str) {
    let mock = s.mock.as_ref().unwrap();
    let base =
        json!({"model": "openai/mock-gpt", "temperature": 0, "messages": [{"role": "user", "content": "cache me"}]});
    assert_eq!(ask(s, key, &base, None).await.0, "miss");
    let calls = mock.requests();
    assert_eq!(ask(s, key, &base, None).await.0, "hit");
    assert_eq!(mock.requests(), calls);
    // A hit streams as proper SSE events when asked to.
    let mut streamed = base.clone();
    streamed["stream"] = json!(true);
    let (cache, body) = ask(s, key, &streamed, None).await;
    assert_eq!(cache, "hit");
    let events = sse_data(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"), "{chunks:?}");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Mock reply to: cache me");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));

    // Anything that changes the answer is a different entry.
    let variants = [
        json!({"model": "anthropic/mock-gpt"}),
        json!({"messages": [{"role": "user", "content": "cache me too"}]}),
        json!({"max_tokens": 7}),
        json!({"stop": ["\n"]}),
        json!({"response_format": {"type": "json_object"}}),
        json!({"seed": 3}),
        json!({"top_p": 0.5}),
        json!({"tool_choice": "none", "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
    ];
    for v in variants {
        let mut body = base.clone();
        for (k, val) in v.as_object().unwrap() {
            body[k] = val.clone();
        }
        assert_eq!(ask(s, key, &body, None).await.0, "miss", "{v}");
        assert_eq!(ask(s, key, &body, None).await.0, "hit", "{v}");
    }
    // Not deterministic: never cached without the opt-in header.
    let warm = json!({"model": "openai/mock-gpt", "temperature": 0.7, "messages": [{"role": "user", "content": "w"}]});
    for _ in 0..2 {
        assert_eq!(ask(s, key, &warm, None).await.0, "bypass");
    }
    let mut unset = warm.clone();
    unset.as_object_mut().unwrap().remove("temperature");
    assert_eq!(ask(s, key, &unset, None).await.0, "bypass", "no temperature means the provider's default (not 0)");
    assert_eq!(ask(s, key, &warm, Some(("x-gaia-cache", "on"))).await.0, "miss");
    assert_eq!(ask(s, key, &warm, Some(("x-gaia-cache", "on"))).await.0, "hit");
    assert_eq!(ask(s, key, &base, Some(("x-gaia-cache", "off"))).await.0, "bypass");
}

#[tokio::test]
async fn response_cache_in_process() {
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (token, _, _) = s.register("cache@example.com").await;
    let (key, _) = s.api_key(&token).await;
    cache_behaviour(&s, &key).await;
}

#[tokio::test]
async fn response_cache_on_redis_is_shared_and_expires() {
    let Some(url) = redis_url() else {
        eprintln!("GAIA_TEST_REDIS_URL not set: skipping the Redis response cache test");
        return;
    };
    let prefix = unique_redis_prefix();
    let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    config.cache.response_ttl_secs = 1;
    let db = sqlite_db();
    let db2 = db.alias();
    let s = start_shared(db, Some(MockConfig::default()), config.clone(), Some((&url, &prefix))).await;
    // A second instance on the same database and Redis.
    let other = start_shared(db2, Some(MockConfig::default()), config, Some((&url, &prefix))).await;
    let (token, _, _) = s.register("redis-cache@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let body =
        json!({"model": "openai/mock-gpt", "temperature": 0, "messages": [{"role": "user", "content": "shared?"}]});
    assert_eq!(ask(&s, &key, &body, None).await.0, "miss");
    // The other instance answers from the shared cache (its own mock is never asked).
    let (hit, answer) = ask(&other, &key, &body, None).await;
    assert_eq!(hit, "hit");
    assert!(answer.contains("Mock reply to: shared?"));
    assert_eq!(other.mock.as_ref().unwrap().requests(), 0);
    // After the TTL the entry is gone.
    let mut expired = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ask(&s, &key, &body, Some(("x-gaia-cache", "on"))).await.0 == "miss" {
            expired = true;
            break;
        }
    }
    assert!(expired, "the cached answer outlived its TTL");
}

#[tokio::test]
async fn response_cache_on_redis_behaves_like_in_process() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_redis_prefix();
    let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    let s = start_shared(sqlite_db(), Some(MockConfig::default()), config, Some((&url, &prefix))).await;
    let (token, _, _) = s.register("redis-behaviour@example.com").await;
    let (key, _) = s.api_key(&token).await;
    cache_behaviour(&s, &key).await;
}
