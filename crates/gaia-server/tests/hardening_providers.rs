//! Issue 17, providers and health: the attacks performed. A developer can no longer add or re-point
//! providers; `api_key_env` only names variables `[provider_policy] allowed_key_envs` allows (never
//! `GAIA_*`), through the API and in entries re-read from the database; a key read from a variable
//! only goes to `allowed_hosts`, where the configuration sends that variable, or its vendor's host,
//! whatever the provider is called (deleting and re-adding does not help); a provider that carries a
//! key cannot be re-pointed elsewhere with a key it does not restate; `allowed_hosts` limits where
//! runtime providers point. Anonymous `GET /health` calls no provider and shows no upstream detail;
//! administrators get the detail from `GET /api/v1/health`; users asking for a provider's health get
//! its known state, never a probe nor error text. A listener standing in for the attacker's host
//! records everything it is sent and must never see a secret.

use crate::common;

use common::{start_with, Fetch, TestServer};
use gaia_core::config::{ProviderEntry, ProviderKind};
use gaia_core::testing::{database_urls, sqlite_db, RecordingListener, TestDb};
use gaia_core::Config;
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_server::provider_store::{check_policy, KeyPolicy, ProviderSync};
use serde_json::{json, Value};
use std::time::Duration;

/// A value no request may ever carry: held by a `GAIA_*` variable (`GAIA_TEST_*` ones are not read
/// as configuration, so other tests in this process are not affected).
const GAIA_VAR: &str = "GAIA_TEST_HARDENING_PROVIDER_SECRET";
const GAIA_VAR_VALUE: &str = "gaia-internal-secret-value-5511";
/// The real key of a configured provider, also held by an allowed variable.
const REAL_KEY: &str = "sk-real-configured-key-8842";
const REAL_KEY_VAR: &str = "TEST_HARDENING_REAL_KEY";
/// The key the test harness gives the mock providers it sets up in code.
const HARNESS_KEY: &str = "sk-test";
const JWT_SECRET: &str = "integration-test-secret-0123456789";

/// The attacker's host: answers every request with an empty model list and records it as received.
async fn attacker() -> RecordingListener {
    RecordingListener::start(|_| {
        let body = r#"{"object":"list","data":[]}"#;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await
}

/// Fails if any request `listener` received carries one of the secrets.
fn assert_never_saw(listener: &RecordingListener, secrets: &[&str]) {
    for r in listener.requests() {
        for s in secrets {
            assert!(!r.contains(s), "the attacker's host received a secret: {r}");
        }
    }
}

/// Sets the variables these tests read (the same values every time).
fn set_variables() {
    std::env::set_var(GAIA_VAR, GAIA_VAR_VALUE);
    std::env::set_var(REAL_KEY_VAR, REAL_KEY);
}

fn config() -> Config {
    let mut config = Config { jwt_secret: Some(JWT_SECRET.into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    // The defaults (the vendors' variables) plus one this test sets.
    config.provider_policy.allowed_key_envs.push(REAL_KEY_VAR.into());
    set_variables();
    config
}

async fn admin_of(s: &TestServer, email: &str) -> String {
    let (admin, _, id) = s.register(email).await;
    s.state.storage().set_admin(&id, true).await.unwrap();
    s.state.auth().evict_user(&id).await.unwrap();
    admin
}

async fn developer_of(s: &TestServer) -> String {
    let (dev, _, id) = s.register("dev@example.com").await;
    s.state.rbac().await.grant(None, &id, "developer", None, None).await.unwrap();
    dev
}

/// (status, detail) of a provider change.
async fn change(s: &TestServer, token: &str, method: reqwest::Method, path: &str, body: &Value) -> (u16, String) {
    let r =
        s.http.request(method, format!("{}/api/v1{path}", s.url)).bearer_auth(token).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["detail"].as_str().unwrap_or_default().to_string())
}

async fn post(s: &TestServer, token: &str, body: &Value) -> (u16, String) {
    change(s, token, reqwest::Method::POST, "/providers", body).await
}

async fn put(s: &TestServer, token: &str, name: &str, body: &Value) -> (u16, String) {
    change(s, token, reqwest::Method::PUT, &format!("/providers/{name}"), body).await
}

/// Asks for a fresh probe of provider `name` (which calls its endpoint with its key).
async fn probe(s: &TestServer, token: &str, name: &str) -> u16 {
    let r = s.http.get(format!("{}/api/v1/providers/{name}/health", s.url)).bearer_auth(token).send().await.unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn a_developer_cannot_send_the_servers_variables_anywhere() {
    let listener = attacker().await;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config()).await;
    let dev = developer_of(&s).await;
    let admin = admin_of(&s, "admin@example.com").await;
    let target = format!("{}/v1", listener.url);

    // The attack as reported: a developer adds a provider whose key is the JWT secret's variable
    // (and one whose variable is really set), pointed at their own host, then asks for its health.
    for var in ["GAIA_JWT_SECRET", GAIA_VAR, REAL_KEY_VAR] {
        let probe_entry = json!({"name": "probe", "kind": "openai", "base_url": target, "api_key_env": var});
        assert_eq!(post(&s, &dev, &probe_entry).await.0, 403, "{var}: only administrators add providers");
        assert_eq!(put(&s, &dev, "probe", &probe_entry).await.0, 403, "{var}");
        assert_eq!(probe(&s, &dev, "probe").await, 404, "{var}: nothing was added");
        // Nor may they re-point the provider that holds the real key at their host.
        let repoint = json!({"name": "openai", "kind": "openai", "base_url": target, "api_key_env": var});
        assert_eq!(put(&s, &dev, "openai", &repoint).await.0, 403, "{var}");
    }
    let r = s.http.delete(format!("{}/api/v1/providers/openai", s.url)).bearer_auth(&dev).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // Developers still read providers.
    let r = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&dev).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // An administrator cannot name Gaia's variables, nor any variable the policy does not list,
    // even one that is set (`PATH`, `HOME`): 400, and nothing is stored or set up.
    for var in ["GAIA_JWT_SECRET", GAIA_VAR, "gaia_test_hardening_provider_secret", "PATH", "HOME"] {
        let entry = json!({"name": "probe", "kind": "openai", "base_url": target, "api_key_env": var});
        let (status, detail) = post(&s, &admin, &entry).await;
        assert_eq!(status, 400, "{var}: {detail}");
        assert!(detail.contains("allowed_key_envs") && detail.contains(var), "{var}: {detail}");
        assert_eq!(probe(&s, &admin, "probe").await, 404, "{var}");
        // In a deployment too.
        let entry = json!({"name": "probe", "kind": "openai", "base_url": s.mock.as_ref().unwrap().openai_base_url(),
            "deployments": [{"base_url": target, "api_key_env": var}]});
        assert_eq!(post(&s, &admin, &entry).await.0, 400, "{var}: deployment");
    }
    // Entries are bounded.
    let mock = s.mock.as_ref().unwrap().openai_base_url();
    let deployments: Vec<Value> = (0..33).map(|_| json!({"base_url": mock})).collect();
    for big in [
        json!({"name": "n".repeat(65), "kind": "openai"}),
        json!({"name": "big", "kind": "openai", "deployments": deployments}),
        json!({"name": "big", "kind": "openai", "models": vec!["m"; 1001]}),
        json!({"name": "big", "kind": "openai", "api_key_env": "K".repeat(2049)}),
        json!({"name": "big", "kind": "openai", "base_url": format!("{mock}/{}", "p".repeat(2049))}),
    ] {
        let (status, detail) = post(&s, &admin, &big).await;
        assert_eq!(status, 400, "{detail}");
        assert!(detail.contains("at most"), "{detail}");
    }
    assert!(s.state.storage().list_runtime_providers().await.unwrap().is_empty());
    assert_never_saw(&listener, &[GAIA_VAR_VALUE, JWT_SECRET, REAL_KEY, HARNESS_KEY]);
    assert!(listener.requests().is_empty(), "{:?}", listener.requests());
}

#[tokio::test]
async fn a_provider_with_a_key_is_not_re_pointed_without_its_key() {
    let listener = attacker().await;
    let upstream = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let mock = upstream.openai_base_url();
    // A provider as the configuration sets one up: its real key from its variable, its endpoint.
    let mut configured = ProviderEntry::new("configured", ProviderKind::Openai);
    configured.base_url = Some(mock.clone());
    configured.api_key_env = Some(REAL_KEY_VAR.into());
    configured.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    let mut config = config();
    config.providers.push(configured.clone());
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let admin = admin_of(&s, "admin@example.com").await;
    let target = format!("{}/v1", listener.url);
    configured.resolve_process_env_keys().unwrap();
    s.state.providers().add_entry(&configured).unwrap();

    // Re-pointed at the attacker's host, keeping the key through the variable that holds it: refused,
    // for a provider built from an entry and for one set up in code alike.
    for name in ["configured", "openai"] {
        let repoint = json!({"name": name, "kind": "openai", "base_url": target, "api_key_env": REAL_KEY_VAR});
        let (status, detail) = put(&s, &admin, name, &repoint).await;
        assert_eq!(status, 400, "{name}: {detail}");
        assert!(detail.contains("restate") && detail.contains("allowed_hosts"), "{name}: {detail}");
        assert_eq!(probe(&s, &admin, name).await, 200);
    }
    // Another port of the same host is another origin.
    let port = upstream.addr().port();
    let other_port = format!("http://127.0.0.1:{}/v1", if port == 65535 { 65534 } else { port + 1 });
    let repoint = json!({"name": "configured", "kind": "openai", "base_url": other_port, "api_key_env": REAL_KEY_VAR});
    assert_eq!(put(&s, &admin, "configured", &repoint).await.0, 400);
    assert_eq!(s.state.providers().entry("configured").unwrap().base_url(), mock, "unchanged");

    // Rotating the key through the variable on the same endpoint is fine.
    let rotate = json!({"name": "configured", "kind": "openai", "base_url": mock, "api_key_env": REAL_KEY_VAR,
        "models": ["mock-gpt"]});
    assert_eq!(put(&s, &admin, "configured", &rotate).await.0, 200);
    // Re-pointing with the key restated, or with no key, sends the attacker only what they gave.
    let restated = json!({"name": "configured", "kind": "openai", "base_url": target, "api_key": "sk-their-own-key"});
    assert_eq!(put(&s, &admin, "configured", &restated).await.0, 200);
    assert_eq!(probe(&s, &admin, "configured").await, 200);
    let keyless = json!({"name": "openai", "kind": "openai", "base_url": target});
    assert_eq!(put(&s, &admin, "openai", &keyless).await.0, 200);
    assert_eq!(probe(&s, &admin, "openai").await, 200);
    let seen = listener.requests();
    assert!(seen.iter().any(|r| r.contains("sk-their-own-key")), "the probes reached the listener: {seen:?}");
    assert_never_saw(&listener, &[REAL_KEY, HARNESS_KEY, GAIA_VAR_VALUE, JWT_SECRET]);
}

/// Stored entries are checked when re-read: one naming a forbidden variable, one re-pointing a keyed
/// provider with its variable, one on a host `allowed_hosts` does not list are refused (not applied).
async fn stored_entries_are_checked(db: TestDb) {
    let listener = attacker().await;
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let mut config = config();
    config.provider_policy.allowed_hosts = vec![format!("127.0.0.1:{}", mock.addr().port())];
    let s = start_with(db, None, config.clone()).await;
    let b = s.backend;
    let mut configured = ProviderEntry::new("configured", ProviderKind::Openai);
    configured.base_url = Some(mock.openai_base_url());
    configured.api_key = Some(REAL_KEY.into());
    configured.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    s.state.providers().add_entry(&configured).unwrap();

    // Rows as an earlier version, or someone with database access, could have written them.
    let target = format!("{}/v1", listener.url);
    let mut forbidden = ProviderEntry::new("forbidden", ProviderKind::Openai);
    forbidden.base_url = Some(mock.openai_base_url());
    forbidden.api_key_env = Some(GAIA_VAR.into());
    let mut repointed = configured.clone();
    repointed.base_url = Some(target.clone());
    repointed.api_key = None;
    repointed.api_key_env = Some(REAL_KEY_VAR.into());
    let mut elsewhere = ProviderEntry::new("elsewhere", ProviderKind::Openai);
    elsewhere.base_url = Some(target.clone());
    let mut fine = ProviderEntry::new("fine", ProviderKind::Openai);
    fine.base_url = Some(mock.openai_base_url());
    fine.api_key_env = Some(REAL_KEY_VAR.into());
    for e in [&forbidden, &repointed, &elsewhere, &fine] {
        s.state.storage().save_runtime_provider(e, None, None).await.unwrap();
    }
    let reg = s.state.providers();
    let mut sync = ProviderSync::new(config.secrets().unwrap()).with_policy(KeyPolicy::of(&config));
    assert_eq!(sync.apply_changes(s.state.storage(), reg).await.unwrap(), 1, "{b}: only `fine` applies");
    assert!(reg.get("forbidden").is_none() && reg.get("elsewhere").is_none(), "{b}");
    assert!(reg.get("fine").is_some(), "{b}");
    assert_eq!(reg.entry("configured").unwrap().base_url(), mock.openai_base_url(), "{b}: not re-pointed");
    reg.probe_all().await;
    assert!(listener.requests().is_empty(), "{b}: {:?}", listener.requests());

    // Without `allowed_hosts` (and with the default policy: no `with_policy`), GAIA_* variables and
    // the re-pointing of a keyed provider are still refused; a keyless entry elsewhere applies.
    let fresh = gaia_providers::ProviderRegistry::new();
    fresh.add_entry(&configured).unwrap();
    let mut default = ProviderSync::new(config.secrets().unwrap());
    default.apply_changes(s.state.storage(), &fresh).await.unwrap();
    assert!(fresh.get("forbidden").is_none(), "{b}");
    assert_eq!(fresh.entry("configured").unwrap().base_url(), mock.openai_base_url(), "{b}: not re-pointed");
    assert!(fresh.get("elsewhere").is_some(), "{b}");
    fresh.probe_all().await;
    assert!(!listener.requests().is_empty(), "{b}: the keyless provider was probed");

    // Without `allowed_hosts`, a stored entry sending an allowed variable elsewhere than the
    // configuration does (whatever its name) is refused too; one sending it where the configuration
    // does applies.
    let mut exfil = ProviderEntry::new("exfil", ProviderKind::Openai);
    exfil.base_url = Some(target.clone());
    exfil.api_key_env = Some(REAL_KEY_VAR.into());
    exfil.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    s.state.storage().save_runtime_provider(&exfil, None, None).await.unwrap();
    let mut by_config = config.clone();
    by_config.provider_policy.allowed_hosts.clear();
    let mut reads_var = ProviderEntry::new("reads-var", ProviderKind::Openai);
    reads_var.base_url = Some(mock.openai_base_url());
    reads_var.api_key_env = Some(REAL_KEY_VAR.into());
    by_config.providers.push(reads_var);
    let third = gaia_providers::ProviderRegistry::new();
    let mut sync = ProviderSync::new(config.secrets().unwrap()).with_policy(KeyPolicy::of(&by_config));
    sync.apply_changes(s.state.storage(), &third).await.unwrap();
    assert!(third.get("exfil").is_none(), "{b}: the variable's key is not sent to the listener");
    assert!(third.get("fine").is_some(), "{b}: sent where the configuration sends it");
    third.probe_all().await;
    assert_never_saw(&listener, &[REAL_KEY, GAIA_VAR_VALUE, JWT_SECRET]);
}

#[tokio::test]
async fn stored_entries_are_checked_when_re_read() {
    for db in database_urls().await {
        stored_entries_are_checked(db).await;
    }
}

#[tokio::test]
async fn allowed_hosts_limit_where_runtime_providers_point() {
    let listener = attacker().await;
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let port = mock.addr().port();
    let mut config = config();
    config.provider_policy.allowed_hosts = vec![format!("127.0.0.1:{port}"), "*.allowed.example".into()];
    let s = start_with(sqlite_db(), None, config).await;
    let admin = admin_of(&s, "admin@example.com").await;
    let target = format!("{}/v1", listener.url);

    let refused = [
        json!({"name": "a", "kind": "openai", "base_url": target}),
        json!({"name": "a", "kind": "openai", "base_url": target, "api_key": "sk-literal"}),
        json!({"name": "a", "kind": "openai", "base_url": format!("http://localhost:{port}/v1")}),
        json!({"name": "a", "kind": "openai", "base_url": "https://allowed.example/v1"}),
        json!({"name": "a", "kind": "openai", "base_url": "https://allowed.example.evil.example/v1"}),
        json!({"name": "a", "kind": "openai", "base_url": format!("http://127.0.0.1:{port}@{}/v1", listener.url.trim_start_matches("http://"))}),
        json!({"name": "a", "kind": "openai", "base_url": mock.openai_base_url(), "deployments": [{"base_url": target}]}),
        json!({"name": "a", "kind": "anthropic"}),
    ];
    for body in refused {
        let (status, detail) = post(&s, &admin, &body).await;
        assert_eq!(status, 400, "{body}: {detail}");
        assert!(detail.contains("allowed_hosts"), "{body}: {detail}");
        let (status, _) = put(&s, &admin, "a", &body).await;
        assert_eq!(status, 400, "{body}");
    }
    let ok = json!({"name": "a", "kind": "openai", "base_url": mock.openai_base_url(), "api_key_env": REAL_KEY_VAR,
        "models": ["mock-gpt"]});
    assert_eq!(post(&s, &admin, &ok).await.0, 201);
    let sub = json!({"name": "b", "kind": "openai", "base_url": "https://api.allowed.example/v1"});
    assert_eq!(post(&s, &admin, &sub).await.0, 201);
    assert_eq!(probe(&s, &admin, "a").await, 200);
    assert!(listener.requests().is_empty(), "{:?}", listener.requests());
}

#[tokio::test]
async fn anonymous_health_calls_no_provider_and_shows_no_detail() {
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config()).await;
    let mock = s.mock.as_ref().unwrap();
    let reg = s.state.providers();
    // A provider with an entry (its endpoint is known), and a failure with internal detail.
    let mut internal = ProviderEntry::new("internal", ProviderKind::Openai);
    internal.base_url = Some(mock.openai_base_url());
    internal.api_key = Some(REAL_KEY.into());
    internal.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    reg.add_entry(&internal).unwrap();
    const DETAIL: &str = "connect error to http://10.20.30.40:8080/v1/models: refused";
    reg.stats("openai").probe_failed(Duration::from_millis(5), DETAIL);
    let before = (mock.requests(), mock.model_list_requests());

    for _ in 0..5 {
        let r = s.http.get(format!("{}/health", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        for leak in ["10.20.30.40", "refused", &mock.addr().to_string(), "127.0.0.1", "latency", "version", "backend"] {
            assert!(!text.contains(leak), "anonymous /health shows `{leak}`: {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["status"].as_str(), v["database"]["status"].as_str()), (Some("ok"), Some("ok")), "{v}");
        let up =
            |name: &str| v["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).map(|p| p["up"].clone());
        assert_eq!(up("openai"), Some(json!(false)), "the last probe failed: {v}");
        assert_eq!(up("internal"), Some(json!(true)), "{v}");
        // Nothing but the name and whether it is up.
        for p in v["providers"].as_array().unwrap() {
            assert_eq!(p.as_object().unwrap().len(), 2, "{p}");
        }
    }
    assert_eq!((mock.requests(), mock.model_list_requests()), before, "anonymous /health called a provider");

    // The detail is the administrators': not anonymous callers', not users'.
    assert_eq!(s.http.get(format!("{}/api/v1/health", s.url)).send().await.unwrap().status(), 401);
    let (user, _, _) = s.register("user@example.com").await;
    let r = s.http.get(format!("{}/api/v1/health", s.url)).bearer_auth(&user).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let admin = admin_of(&s, "admin@example.com").await;
    let r = s.http.get(format!("{}/api/v1/health", s.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains(REAL_KEY) && !text.contains(HARNESS_KEY), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["database"]["backend"], "sqlite", "{v}");
    let find = |v: &Value, name: &str| v["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    let openai = find(&v, "openai").unwrap();
    assert_eq!(openai["up"], false);
    assert!(openai["health"]["last_error"].as_str().unwrap().contains("10.20.30.40"), "{openai}");
    let internal = find(&v, "internal").unwrap();
    assert_eq!(internal["endpoints"], json!([mock.openai_base_url()]), "{internal}");
    assert_eq!(internal["probe"], Value::Null, "no probe unless asked");
    assert_eq!((mock.requests(), mock.model_list_requests()), before, "the detail reads the known state");
    // A fresh probe on request.
    let r = s.http.get(format!("{}/api/v1/health?probe=true", s.url)).bearer_auth(&admin).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(find(&v, "internal").unwrap()["probe"]["ok"], true, "{v}");
    assert_eq!(find(&v, "openai").unwrap()["up"], true, "the probe succeeded: {v}");
    assert!(mock.model_list_requests() > before.1);
    let r = s.http.get(format!("{}/api/v1/health?probe=maybe", s.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

/// The hole left by the re-pointing rule: with the default policy (`allowed_hosts` empty), an
/// administrator adds a provider under a new name (or deletes one and adds it again) pointed at
/// their own host, reading an allowed variable. The key only goes where the configuration already
/// sends that variable, or to its vendor's own host.
#[tokio::test]
async fn a_variables_key_goes_only_where_the_configuration_sends_it() {
    let listener = attacker().await;
    let upstream = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let target = format!("{}/v1", listener.url);
    // The configuration: the vendor's variables (as the process environment would give them) and a
    // `[[providers]]` entry reading REAL_KEY_VAR, all on the upstream.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gaia.toml");
    let toml = format!(
        "jwt_secret = \"{JWT_SECRET}\"\n[provider_policy]\nallowed_key_envs = [\"OPENAI_API_KEY\", \"ANTHROPIC_API_KEY\", \
         \"AZURE_OPENAI_API_KEY\", \"{REAL_KEY_VAR}\"]\n[[providers]]\nname = \"configured\"\nkind = \"openai\"\n\
         base_url = \"{}\"\napi_key_env = \"{REAL_KEY_VAR}\"\nmodels = [\"mock-gpt\"]\n",
        upstream.openai_base_url()
    );
    std::fs::write(&file, toml).unwrap();
    const VENDOR_KEY: &str = "sk-vendor-env-key-3307";
    let env = [
        ("OPENAI_API_KEY".to_string(), VENDOR_KEY.to_string()),
        ("OPENAI_BASE_URL".to_string(), upstream.openai_base_url()),
        (REAL_KEY_VAR.to_string(), REAL_KEY.to_string()),
    ];
    let mut config = Config::load_from(Some(&file), env).unwrap();
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    assert!(config.provider_policy.allowed_hosts.is_empty(), "the default: any host");
    set_variables();
    let s = start_with(sqlite_db(), None, config.clone()).await;
    let reg = s.state.providers();
    for entry in &config.providers {
        reg.add_entry(entry).unwrap();
    }
    let admin = admin_of(&s, "admin@example.com").await;
    let keyed = |name: &str, var: &str| {
        json!({"name": name, "kind": "openai", "base_url": target, "api_key_env": var,
        "models": ["mock-gpt"]})
    };

    // A new name, the main endpoint or a deployment: refused, saying where the key may go.
    let (status, detail) = post(&s, &admin, &keyed("exfil", REAL_KEY_VAR)).await;
    assert_eq!(status, 400, "{detail}");
    assert!(
        detail.contains(REAL_KEY_VAR) && detail.contains("allowed_hosts") && detail.contains("api_key"),
        "{detail}"
    );
    assert_eq!(put(&s, &admin, "exfil", &keyed("exfil", REAL_KEY_VAR)).await.0, 400);
    let deployment = json!({"name": "exfil", "kind": "openai", "base_url": upstream.openai_base_url(),
        "api_key_env": REAL_KEY_VAR, "deployments": [{"base_url": target, "api_key_env": REAL_KEY_VAR}]});
    assert_eq!(post(&s, &admin, &deployment).await.0, 400);
    // A vendor's variable: refused before it is read (OPENAI_API_KEY is not even set in this process).
    let (status, detail) = post(&s, &admin, &keyed("exfil", "OPENAI_API_KEY")).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("api.openai.com") && !detail.contains("not set"), "{detail}");
    // Deleting the configured provider and adding it again, pointed elsewhere: refused too.
    let r = s.http.delete(format!("{}/api/v1/providers/configured", s.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(post(&s, &admin, &keyed("configured", REAL_KEY_VAR)).await.0, 400);
    assert_eq!(put(&s, &admin, "configured", &keyed("configured", REAL_KEY_VAR)).await.0, 400);
    assert_eq!(probe(&s, &admin, "exfil").await, 404);
    assert!(
        s.state.storage().list_runtime_providers().await.unwrap().iter().all(|p| p.entry.is_none()),
        "only the removal"
    );

    // Where the configuration sends the variable, any name will do; a literal key goes anywhere.
    let back = json!({"name": "again", "kind": "openai", "base_url": upstream.openai_base_url(),
        "api_key_env": REAL_KEY_VAR, "models": ["mock-gpt"]});
    assert_eq!(post(&s, &admin, &back).await.0, 201);
    assert_eq!(probe(&s, &admin, "again").await, 200);
    let own = json!({"name": "own", "kind": "openai", "base_url": target, "api_key": "sk-the-admins-own"});
    assert_eq!(post(&s, &admin, &own).await.0, 201);
    assert_eq!(probe(&s, &admin, "own").await, 200);
    assert!(listener.requests().iter().any(|r| r.contains("sk-the-admins-own")), "{:?}", listener.requests());
    assert_never_saw(&listener, &[REAL_KEY, VENDOR_KEY, JWT_SECRET]);

    // The per-variable rule itself: the vendor's own host over https, where the configuration sends
    // the variable (OPENAI_BASE_URL), nowhere else; a variable without a vendor host (Azure) only
    // where the configuration sends it.
    let policy = KeyPolicy::of(&config);
    let check = |var: &str, url: &str| {
        let mut e = ProviderEntry::new("x", ProviderKind::Openai);
        e.base_url = Some(url.into());
        e.api_key_env = Some(var.into());
        check_policy(&policy, &e, None)
    };
    assert_eq!(check("OPENAI_API_KEY", "https://api.openai.com/v1"), Ok(()));
    assert_eq!(check("OPENAI_API_KEY", &upstream.openai_base_url()), Ok(()), "OPENAI_BASE_URL's host");
    assert_eq!(check("ANTHROPIC_API_KEY", "https://api.anthropic.com"), Ok(()));
    assert_eq!(check(REAL_KEY_VAR, &upstream.openai_base_url()), Ok(()));
    for (var, url) in [
        ("OPENAI_API_KEY", "http://api.openai.com/v1"),
        ("OPENAI_API_KEY", "https://api.openai.com:8443/v1"),
        ("OPENAI_API_KEY", "https://api.openai.com.evil.example/v1"),
        ("OPENAI_API_KEY", "https://api.anthropic.com"),
        ("ANTHROPIC_API_KEY", "https://api.openai.com/v1"),
        ("ANTHROPIC_API_KEY", &upstream.openai_base_url()),
        ("AZURE_OPENAI_API_KEY", "https://attacker.openai.azure.com/openai"),
        (REAL_KEY_VAR, "https://api.openai.com/v1"),
        (REAL_KEY_VAR, &target),
    ] {
        assert!(check(var, url).is_err(), "{var} to {url}");
    }
}

/// A user without the health detail hammers a provider's health route: the answer is the known
/// state, no provider is called (the upstream's counters do not move) and no error text or internal
/// URL is shown; an administrator still gets the detail and a fresh probe.
#[tokio::test]
async fn users_get_the_known_provider_health_without_probes_or_detail() {
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config()).await;
    let mock = s.mock.as_ref().unwrap();
    let reg = s.state.providers();
    const DETAIL: &str = "connect error to http://10.20.30.40:8080/v1/models: refused";
    reg.stats("openai").probe_failed(Duration::from_millis(5), DETAIL);
    // A provider whose models cannot be discovered: the error names its internal endpoint.
    let mut internal = ProviderEntry::new("internal", ProviderKind::Openai);
    internal.base_url = Some("http://127.0.0.1:1/internal-only/v1".into());
    reg.add_entry(&internal).unwrap();
    reg.list_models().await;
    assert!(reg.discovery_error("internal").is_some());
    let before = (mock.requests(), mock.model_list_requests());
    let leaks = ["10.20.30.40", "refused", "internal-only", "127.0.0.1", "last_error", "discovery_error", "probe\""];

    let (user, _, _) = s.register("user@example.com").await;
    let dev = developer_of(&s).await;
    for token in [&user, &dev] {
        for name in ["openai", "anthropic", "internal"] {
            for _ in 0..10 {
                let r = s.http.get(format!("{}/api/v1/providers/{name}/health", s.url)).bearer_auth(token).send();
                let r = r.await.unwrap();
                assert_eq!(r.status(), 200);
                let text = r.text().await.unwrap();
                for leak in leaks {
                    assert!(!text.contains(leak), "a user sees `{leak}`: {text}");
                }
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["name"], name);
                assert!(v["health"]["up"].is_boolean() && v["health"]["circuit"].is_string(), "{v}");
                assert!(v["health"].get("latency_p50_ms").is_some(), "{v}");
            }
        }
        let r = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(token).send().await.unwrap();
        let text = r.text().await.unwrap();
        for leak in leaks {
            assert!(!text.contains(leak), "a user sees `{leak}` in the list: {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        let openai = v["providers"].as_array().unwrap().iter().find(|p| p["name"] == "openai").unwrap().clone();
        assert_eq!(openai["health"]["up"], false, "{openai}");
        assert_eq!(
            s.http
                .get(format!("{}/api/v1/providers/nope/health", s.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    assert_eq!((mock.requests(), mock.model_list_requests()), before, "a user's requests called a provider");

    // An administrator sees the detail (redacted) and gets a fresh probe.
    let admin = admin_of(&s, "admin@example.com").await;
    let v: Value = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&admin).fetch_json().await;
    let find = |name: &str| v["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    assert!(find("openai")["health"]["last_error"].as_str().unwrap().contains("10.20.30.40"), "{v}");
    assert!(find("internal")["discovery_error"].as_str().is_some(), "{v}");
    assert_eq!((mock.requests(), mock.model_list_requests()), before, "the list reads the known state");
    let r = s.http.get(format!("{}/api/v1/providers/openai/health", s.url)).bearer_auth(&admin).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["probe"]["ok"], true, "{v}");
    assert_eq!(v["health"]["up"], true, "{v}");
    assert!(mock.model_list_requests() > before.1, "the probe reached the upstream");
    let text = s.http.get(format!("{}/api/v1/providers/internal/health", s.url)).bearer_auth(&admin).fetch_text().await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["probe"]["ok"], false, "{v}");
    assert!(!text.contains(REAL_KEY) && !text.contains(HARNESS_KEY), "{text}");
}

/// A host listed in `allowed_hosts` without a scheme does not let a key travel in clear: an
/// administrator pointing a keyed provider at `http://` there is refused (literal key or variable),
/// unless the entry says `http://host[:port]` or the host is loopback; keyless entries still may.
#[tokio::test]
async fn keys_are_not_sent_over_plain_http_to_an_allowed_host() {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let port = mock.addr().port();
    let mut config = config();
    config.provider_policy.allowed_hosts =
        vec!["llm.example.com".into(), "http://plain.example.com:8080".into(), format!("127.0.0.1:{port}")];
    let s = start_with(sqlite_db(), None, config.clone()).await;
    let admin = admin_of(&s, "admin@example.com").await;
    let entry = |name: &str, url: &str, key: Value| {
        let mut e = json!({"name": name, "kind": "openai", "base_url": url, "models": ["mock-gpt"]});
        if let Value::Object(k) = key {
            e.as_object_mut().unwrap().extend(k);
        }
        e
    };
    let literal = json!({"api_key": "sk-in-clear-9911"});
    let from_env = json!({"api_key_env": REAL_KEY_VAR});

    // The attack: the allowed host, but over http (port 80 or another), with a key.
    for url in ["http://llm.example.com/v1", "http://llm.example.com:8000/v1", "http://plain.example.com/v1"] {
        for key in [&literal, &from_env] {
            let (status, detail) = post(&s, &admin, &entry("clear", url, key.clone())).await;
            assert_eq!(status, 400, "{url} {key}: {detail}");
            // (Port 80 of the `http://…:8080` entry is not listed at all.)
            assert!(detail.contains("allowed_hosts"), "{detail}");
            assert!(detail.contains("https") || url.contains("plain."), "{detail}");
            assert!(!detail.contains("sk-in-clear") && !detail.contains(REAL_KEY), "{detail}");
            assert_eq!(put(&s, &admin, "clear", &entry("clear", url, key.clone())).await.0, 400, "{url}");
        }
        // In a deployment too.
        let d = json!({"name": "clear", "kind": "openai", "base_url": "https://llm.example.com/v1",
            "models": ["mock-gpt"], "deployments": [{"base_url": url, "api_key": "sk-in-clear-9911"}]});
        assert_eq!(post(&s, &admin, &d).await.0, 400, "{url}");
    }
    assert!(s.state.providers().get("clear").is_none());
    assert!(s.state.storage().list_runtime_providers().await.unwrap().is_empty());

    // Over https, to an `http://` entry, to loopback, or without a key: allowed.
    let allowed = [
        entry("tls", "https://llm.example.com/v1", literal.clone()),
        entry("tls-env", "https://llm.example.com/v1", from_env.clone()),
        entry("explicit", "http://plain.example.com:8080/v1", literal.clone()),
        entry("explicit-env", "http://plain.example.com:8080/v1", from_env.clone()),
        entry("local", &mock.openai_base_url(), literal.clone()),
        entry("keyless", "http://llm.example.com/v1", json!({})),
    ];
    for e in allowed {
        let (status, detail) = post(&s, &admin, &e).await;
        assert_eq!(status, 201, "{e}: {detail}");
    }

    // Stored entries are checked the same way when re-read.
    let mut stored = ProviderEntry::new("stored-clear", ProviderKind::Openai);
    stored.base_url = Some("http://llm.example.com/v1".into());
    stored.api_key_env = Some(REAL_KEY_VAR.into());
    assert!(check_policy(&KeyPolicy::of(&config), &stored, None).unwrap_err().contains("https"));
    // The configuration's own providers are exempt, and where they send a variable in clear a
    // runtime entry may send it too (it goes there already).
    let mut configured = stored.clone();
    configured.name = "configured".into();
    let mut by_config = config.clone();
    by_config.providers.push(configured);
    assert_eq!(check_policy(&KeyPolicy::of(&by_config), &stored, None), Ok(()));
}

/// A custom role granting `provider:write` is not enough to change providers: administrators only.
#[tokio::test]
async fn a_custom_role_with_provider_write_cannot_change_providers() {
    use gaia_rbac::{Action, Permission, ResourceType, Role, Scope};
    let listener = attacker().await;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config()).await;
    let (token, _, id) = s.register("writer@example.com").await;
    let permissions = [Action::Read, Action::Write, Action::Delete]
        .iter()
        .flat_map(|a| {
            [
                Permission::new(ResourceType::Provider, *a, "/providers"),
                Permission::new(ResourceType::Provider, *a, "/providers/**"),
            ]
        })
        .collect();
    let role = Role {
        name: "provider_writer".into(),
        scope: Scope::System,
        description: "Writes providers".into(),
        permissions,
        builtin: false,
    };
    let rbac = s.state.rbac().await;
    rbac.create_role(None, role).await.unwrap();
    rbac.grant(None, &id, "provider_writer", None, None).await.unwrap();
    let target = format!("{}/v1", listener.url);

    let add = json!({"name": "mine", "kind": "anthropic", "base_url": target, "api_key_env": "ANTHROPIC_API_KEY"});
    let (status, detail) = post(&s, &token, &add).await;
    assert_eq!(status, 403, "{detail}");
    assert!(detail.contains("administrators"), "{detail}");
    let repoint = json!({"name": "anthropic", "kind": "anthropic", "base_url": target});
    let (status, detail) = put(&s, &token, "anthropic", &repoint).await;
    assert_eq!((status, detail.contains("administrators")), (403, true), "{detail}");
    let (status, detail) = change(&s, &token, reqwest::Method::DELETE, "/providers/openai", &json!({})).await;
    assert_eq!((status, detail.contains("administrators")), (403, true), "{detail}");
    // The role does let them read providers; nothing changed.
    let r = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.state.providers().get("mine").is_none() && s.state.providers().get("openai").is_some());
    assert!(s.state.storage().list_runtime_providers().await.unwrap().is_empty());
    s.state.providers().probe_all().await;
    assert!(listener.requests().is_empty(), "{:?}", listener.requests());
}

/// Stored runtime providers from before the policy (a variable it does not allow, a vendor's key
/// sent to another host) are not set up, and an administrator sees each with why, then fixes it.
async fn refused_stored_providers_are_shown(db: TestDb) {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let config = config();
    let s = start_with(db, None, config.clone()).await;
    let b = s.backend;
    std::env::set_var("TEST_HARDENING_OLD_KEY", "sk-old-unlisted-4410");
    let mut unlisted = ProviderEntry::new("unlisted", ProviderKind::Openai);
    unlisted.base_url = Some(mock.openai_base_url());
    unlisted.api_key_env = Some("TEST_HARDENING_OLD_KEY".into());
    let mut vendor = ProviderEntry::new("vendor-elsewhere", ProviderKind::Openai);
    vendor.base_url = Some("https://gateway.example.com/v1".into());
    vendor.api_key_env = Some("OPENAI_API_KEY".into());
    let mut fine = ProviderEntry::new("fine", ProviderKind::Openai);
    fine.base_url = Some(mock.openai_base_url());
    fine.models = vec![gaia_core::config::ModelSpec::Id("mock-gpt".into())];
    for e in [&unlisted, &vendor, &fine] {
        s.state.storage().save_runtime_provider(e, None, None).await.unwrap();
    }
    // Start-up, as the server's builder does it.
    let mut sync = ProviderSync::with_applied(config.secrets().unwrap(), s.state.applied_provider_changes().clone())
        .with_policy(KeyPolicy::of(&config));
    assert_eq!(sync.apply_changes(s.state.storage(), s.state.providers()).await.unwrap(), 1, "{b}");
    assert!(s.state.providers().get("unlisted").is_none() && s.state.providers().get("fine").is_some(), "{b}");
    // Read again: still refused, not retried.
    sync.apply_changes(s.state.storage(), s.state.providers()).await.unwrap();

    let admin = admin_of(&s, "admin@example.com").await;
    let text = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&admin).fetch_text().await;
    assert!(!text.contains("sk-old-unlisted"), "{b}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let refused = v["refused"].as_array().unwrap_or_else(|| panic!("{b}: {v}"));
    assert_eq!(refused.len(), 2, "{b}: {v}");
    let reason = |name: &str| {
        let r = refused.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{b}: {name}: {v}"));
        assert_eq!(r["status"], "refused");
        r["reason"].as_str().unwrap().to_string()
    };
    let why = reason("unlisted");
    assert!(why.contains("TEST_HARDENING_OLD_KEY") && why.contains("allowed_key_envs"), "{b}: {why}");
    let why = reason("vendor-elsewhere");
    assert!(why.contains("OPENAI_API_KEY") && why.contains("allowed_hosts"), "{b}: {why}");
    // Users do not see them.
    let (user, _, _) = s.register("user@example.com").await;
    let v: Value = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&user).fetch_json().await;
    assert!(v.get("refused").is_none(), "{b}: {v}");

    // The administrator fixes one (a key of their own) and removes the other.
    let fixed = json!({"name": "unlisted", "kind": "openai", "base_url": mock.openai_base_url(),
        "api_key": "sk-restated", "models": ["mock-gpt"]});
    let secrets_ok = config.secrets().unwrap().is_some();
    let (status, detail) = put(&s, &admin, "unlisted", &fixed).await;
    if secrets_ok {
        assert_eq!(status, 201, "{b}: {detail}");
    }
    let (status, detail) = change(&s, &admin, reqwest::Method::DELETE, "/providers/vendor-elsewhere", &json!({})).await;
    assert_eq!(status, 204, "{b}: {detail}");
    let v: Value = s.http.get(format!("{}/api/v1/providers", s.url)).bearer_auth(&admin).fetch_json().await;
    let left: Vec<&Value> = v["refused"].as_array().unwrap().iter().map(|r| &r["name"]).collect();
    let expected: Vec<Value> = if secrets_ok { vec![] } else { vec![json!("unlisted")] };
    assert_eq!(left, expected.iter().collect::<Vec<_>>(), "{b}: {v}");
}

#[tokio::test]
async fn refused_stored_providers_are_shown_to_administrators() {
    for db in database_urls().await {
        refused_stored_providers_are_shown(db).await;
    }
}
