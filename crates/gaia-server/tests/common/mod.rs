//! A real server and mock upstream on loopback ports, for the integration tests.
#![allow(dead_code)]

pub mod mcp;

use gaia_core::cache::MemoryCache;
use gaia_core::storage::Storage;
use gaia_core::testing::TestDb;
use gaia_core::Config;
use gaia_providers::health::BreakerConfig;
use gaia_providers::mock::{MockConfig, MockHandle, MockUpstream};
use gaia_providers::{AnthropicConfig, AnthropicProvider, OpenAiConfig, OpenAiProvider, ProviderRegistry, RetryPolicy};
use gaia_server::AppState;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub mock: Option<MockHandle>,
    pub http: reqwest::Client,
    pub backend: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _db: TestDb,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts the server on `db`, with OpenAI and Anthropic providers on a mock upstream when `mock` is given.
/// Automatic conversation titles are off (they add a background model call); see [`start_with`].
pub async fn start(db: TestDb, mock: Option<MockConfig>) -> TestServer {
    start_with(db, mock, test_config()).await
}

/// The configuration of [`start`]: a fixed JWT secret, no automatic titles, persona memory or NPC memory (they
/// add background model calls), and administrators made explicitly.
pub fn test_config() -> Config {
    let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.worlds.npc_memory = false;
    config.rbac.first_user_admin = false;
    config
}

/// A server on the sample world whose NPCs remember (`worlds.npc_memory`, memories embedded with the
/// mock's `text-embedding-3-small` in 256 numbers), with the mock model, and the sample's vault.
#[allow(dead_code)]
pub async fn start_remembering(db: TestDb) -> (TestServer, tempfile::TempDir) {
    let mut config = test_config();
    config.worlds.npc_memory = true;
    config.embeddings.model = Some("openai/text-embedding-3-small".into());
    config.embeddings.dimensions = Some(256);
    let s = start_with(db, Some(MockConfig::default()), config).await;
    let vault = with_sample_world(&s).await;
    (s, vault)
}

/// [`start`] with a given configuration.
#[allow(dead_code)]
pub async fn start_with_title(db: TestDb, mock: Option<MockConfig>) -> TestServer {
    let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    config.rbac.first_user_admin = false;
    start_with(db, mock, config).await
}

/// [`start`] with a given configuration.
pub async fn start_with(db: TestDb, mock: Option<MockConfig>, config: Config) -> TestServer {
    start_shared(db, mock, config, None).await
}

/// [`start_with`], sharing the cache, rate limits, events and access-control announcements through
/// Redis at `redis = (url, key prefix)` as several instances of one deployment do.
pub async fn start_shared(
    db: TestDb,
    mock: Option<MockConfig>,
    config: Config,
    redis: Option<(&str, &str)>,
) -> TestServer {
    let storage = Storage::connect(&db.url).await.unwrap();
    storage.migrate().await.unwrap();
    let registry = ProviderRegistry::new();
    // Fast retries, and a breaker that never opens: the fault-injection tests fail on purpose many
    // times in a row. Tests of the breaker itself set their own.
    registry.set_retry_policy(RetryPolicy {
        max_retries: 2,
        base_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
        first_token_timeout: Duration::from_secs(5),
    });
    registry.set_breaker(BreakerConfig { failure_threshold: u32::MAX, cooldown: Duration::from_secs(1) });
    let mock = match mock {
        Some(cfg) => {
            let m = MockUpstream::start("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();
            let mut o = OpenAiConfig::new(m.openai_base_url(), Some("sk-test".into()));
            o.timeout = Duration::from_secs(5);
            registry.register(Arc::new(OpenAiProvider::new(o)));
            let mut a = AnthropicConfig::new(m.base_url(), Some("sk-ant-test".into()));
            a.timeout = Duration::from_secs(5);
            registry.register(Arc::new(AnthropicProvider::new(a)));
            Some(m)
        }
        None => None,
    };
    let cache: gaia_core::cache::SharedCache = match redis {
        Some((url, prefix)) => Arc::new(gaia_core::cache::RedisCache::connect_with_prefix(url, prefix).await.unwrap()),
        None => Arc::new(MemoryCache::new(1000)),
    };
    let state = AppState::new(config, storage, cache, registry);
    if let Some((url, prefix)) = redis {
        state.connect_redis(url, prefix).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    tokio::spawn(async move {
        gaia_server::serve(listener, st, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestServer { url, state, mock, http: reqwest::Client::new(), backend: db.backend, stop: Some(tx), _db: db }
}

impl TestServer {
    /// Sends the shutdown signal (as Ctrl-C / SIGTERM would).
    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Registers a user and returns (access token, refresh token, user id).
    pub async fn register(&self, email: &str) -> (String, String, String) {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/register", self.url))
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        (
            v["access_token"].as_str().unwrap().to_string(),
            v["refresh_token"].as_str().unwrap().to_string(),
            v["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// Creates an API key through the API for the holder of `token`.
    pub async fn api_key(&self, token: &str) -> (String, String) {
        let r = self
            .http
            .post(format!("{}/api/v1/keys", self.url))
            .bearer_auth(token)
            .json(&json!({"name": "t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (v["key"].as_str().unwrap().to_string(), v["id"].as_str().unwrap().to_string())
    }

    /// Signs a registered user in through the web UI's login form (as a browser does): the session
    /// cookie and the session's CSRF token.
    pub async fn sign_in_web(&self, email: &str) -> WebUser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = http.get(format!("{}/login", self.url)).send().await.unwrap();
        let form_cookie = cookie_value(&r, "gaia_csrf").expect("the login form's CSRF cookie");
        let r = http
            .post(format!("{}/login", self.url))
            .header("cookie", format!("gaia_csrf={form_cookie}"))
            .form(&[("email", email), ("password", "correct horse battery"), ("csrf_token", form_cookie.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "signed in");
        let cookie = format!("gaia_session={}", cookie_value(&r, "gaia_session").expect("a session cookie"));
        let page = http.get(format!("{}/chat", self.url)).header("cookie", &cookie).send().await.unwrap();
        let page = page.text().await.unwrap();
        let marker = "name=\"csrf-token\" content=\"";
        let at = page.find(marker).expect("the page's CSRF token") + marker.len();
        let csrf = page[at..at + page[at..].find('"').unwrap()].to_string();
        WebUser { http, url: self.url.clone(), cookie, csrf }
    }

    pub fn post(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).header("X-API-Key", key)
    }

    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).header("X-API-Key", key)
    }
}

/// A user signed in to the web UI (see [`TestServer::sign_in_web`]); redirects are not followed.
pub struct WebUser {
    pub http: reqwest::Client,
    pub url: String,
    /// `gaia_session=...`.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl WebUser {
    /// A page: its status and HTML.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.url)).header("cookie", &self.cookie).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token: the status, the redirect's target and the body.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &self.csrf));
        self.post_form(path, &all).await
    }

    /// Posts a form as given (no token added).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (r.status().as_u16(), location, r.text().await.unwrap())
    }
}

/// The value of cookie `name` set by `r`, and the whole `Set-Cookie` header that sets it.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<(String, String)> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let (kv, _) = c.split_once(';').unwrap_or((c, ""));
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| (v.to_string(), c.to_string()))
    })
}

/// The value of cookie `name` set by `r`.
pub fn cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie(r, name).map(|(v, _)| v)
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|block| {
            let lines: Vec<&str> =
                block.lines().filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))).collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// (event name, data) pairs of an SSE body.
pub fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|b| {
            let mut name = String::new();
            let mut data = None;
            for l in b.lines() {
                if let Some(n) = l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")) {
                    name = n.trim().to_string();
                } else if let Some(d) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
                    data = serde_json::from_str(d).ok();
                }
            }
            data.map(|d| (name, d))
        })
        .collect()
}

/// Sends a request that must be answered and reads the answer's body (panics otherwise).
pub trait Fetch {
    /// The answer's body as JSON.
    fn fetch_json<T: DeserializeOwned>(self) -> impl Future<Output = T> + Send;
    /// The answer's body as text.
    fn fetch_text(self) -> impl Future<Output = String> + Send;
}

impl Fetch for reqwest::RequestBuilder {
    async fn fetch_json<T: DeserializeOwned>(self) -> T {
        self.send().await.unwrap().json().await.unwrap()
    }
    async fn fetch_text(self) -> String {
        self.send().await.unwrap().text().await.unwrap()
    }
}

/// Polls `cond` up to ~5 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    eventually_async(|| std::future::ready(cond())).await
}

/// Polls the asynchronous `cond` up to ~5 s.
pub async fn eventually_async<F: Future<Output = bool>>(mut cond: impl FnMut() -> F) -> bool {
    for _ in 0..250 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond().await
}

/// A vault (a temporary folder) holding the sample game world `safe-house` of
/// `crates/gaia-world/sample`, attached to the server as its knowledge base, experiences loaded.
pub async fn with_sample_world(s: &TestServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gaia-world/sample/experiences");
    gaia_core::testing::copy_dir(&sample, &dir.path().join("experiences"));
    let kb = gaia_kb::Kb::open(gaia_kb::KbConfig {
        root: dir.path().to_path_buf(),
        sync_interval_secs: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(s.state.set_kb(kb));
    s.state.reload_worlds().await;
    dir
}

/// A Redis server of this test's own (the shared one must not be restarted under other tests).
pub struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start() -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut r = OwnRedis { port, dir: tempfile::tempdir().ok()?, child: None };
        r.spawn()?;
        Some(r)
    }

    pub fn spawn(&mut self) -> Option<()> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether events published on `from` reach `to` (through their shared broker) within 5 s.
pub async fn events_cross(from: &TestServer, to: &TestServer) -> bool {
    let mut rx = to.state.events().subscribe();
    for _ in 0..100 {
        from.state.events().publish(gaia_core::events::Event::ConversationUpdated { conversation_id: "ping".into() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        if rx.try_recv().is_ok() {
            return true;
        }
    }
    false
}
