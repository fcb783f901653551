//! Configuration: built-in defaults, overlaid by an optional `gaia.toml`, overlaid by environment variables.
//!
//! Environment variables: `GAIA_<KEY>` with `__` between nested keys (`GAIA_SERVER__BIND`,
//! `GAIA_CACHE__CAPACITY`), plus the short forms `GAIA_BIND`, `GAIA_DATABASE_URL`, `GAIA_REDIS_URL`,
//! `GAIA_JWT_SECRET`, `GAIA_SECRETS_KEY`, and the vendors' own `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`,
//! `ANTHROPIC_BASE_URL`.

mod assets;
mod auth;
mod embeddings;
mod guardrails;
mod kb;
mod mcp;
mod ops;
mod providers;
mod retention;
mod tls;
mod worlds;

pub use assets::AssetsConfig;
pub use auth::{
    parse_network, AuthConfig, JwksProvider, Registration, JWKS_ALGORITHMS, MAX_INVITE_TTL_SECS, MAX_JWKS_PROVIDERS,
};
pub use embeddings::EmbeddingsConfig;
pub use guardrails::{
    valid_name as valid_guardrail_name, GuardrailAction, GuardrailCheck, GuardrailRule, GuardrailStage,
    GuardrailsConfig, PiiKind, PATTERN_SIZE_LIMIT as GUARDRAIL_PATTERN_SIZE_LIMIT,
};
pub use kb::{KbConfig, KbStorageMode};
pub use mcp::{AgentConfig, AgentLimits, McpServerConfig, McpTransport};
pub use ops::{EventsConfig, LimitsConfig};
pub use retention::RetentionConfig;
pub use tls::TlsConfig;
pub use worlds::{GpsResponse, WorldsConfig};

pub use providers::{
    is_gaia_variable, vendor_key_host, Deployment, ModelEntry, ModelSpec, ProviderEntry, ProviderKind, ProviderPolicy,
    RoutingConfig, DEFAULT_ALLOWED_KEY_ENVS, MAX_POLICY_ENTRIES,
};

use crate::error::{CoreError, Result};
use crate::secrets::Secrets;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Profile};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The whole configuration.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Database URL: `sqlite://PATH` (default `sqlite://gaia.db`) or `postgres://…`.
    pub database_url: String,
    /// Redis URL; when set, the cache is shared through Redis.
    pub redis_url: Option<String>,
    /// NATS URL (`GAIA_NATS_URL`) for the event bus across instances (feature `nats`); without it,
    /// events cross instances over Redis when `redis_url` is set.
    pub nats_url: Option<String>,
    /// The event bus.
    pub events: EventsConfig,
    /// Default rate limits.
    pub limits: LimitsConfig,
    /// Checks on model input and output.
    pub guardrails: GuardrailsConfig,
    /// HS256 secret for JWTs. When unset a random one is generated at start (tokens die with the process).
    pub jwt_secret: Option<String>,
    /// Key encrypting the secrets Gaia stores in its database, such as the API keys of providers
    /// added through the admin API: 32 bytes in base64 (`GAIA_SECRETS_KEY`; generate one with
    /// `openssl rand -base64 32`). When unset, a key is derived from `jwt_secret` if that is set;
    /// with neither, such keys cannot be stored (name an environment variable with `api_key_env`).
    pub secrets_key: Option<String>,
    /// Lifetime of access tokens, in seconds.
    pub jwt_ttl_secs: u64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_ttl_secs: u64,
    /// Cache settings.
    pub cache: CacheConfig,
    /// LLM providers (`[[providers]]`).
    pub providers: Vec<ProviderEntry>,
    /// What providers added at runtime may do with the server's secrets (`[provider_policy]`): the
    /// variables `api_key_env` may name, the hosts keys may be sent to.
    pub provider_policy: ProviderPolicy,
    /// Routing: default model, fallback groups, retries, health checks (`[routing]`).
    pub routing: RoutingConfig,
    /// Knowledge base (`[kb]`); none when unset.
    pub kb: Option<KbConfig>,
    /// Chat behaviour (`[chat]`).
    pub chat: ChatConfig,
    /// Access control (`[rbac]`).
    pub rbac: RbacConfig,
    /// Sign-in and registration (`[auth]`): who may register, rate limits, hashing bounds.
    pub auth: AuthConfig,
    /// MCP servers agents connect to (`[[mcp_servers]]`).
    pub mcp_servers: Vec<McpServerConfig>,
    /// The agent runtime (`[agents]`).
    pub agents: AgentConfig,
    /// Data retention (`[retention]`): how long messages, usage records and audit rows are kept.
    pub retention: RetentionConfig,
    /// Stdio MCP server processes started for agent requests (`[mcp_processes]`).
    pub mcp_processes: McpProcessesConfig,
    /// Game sockets (`[worlds]`): trusted positions, resume.
    pub worlds: WorldsConfig,
    /// Generated images, voices and 3D models (`[assets]`).
    pub assets: AssetsConfig,
    /// The embedding model of semantic search and persona memory (`[embeddings]`).
    pub embeddings: EmbeddingsConfig,
}

/// Stdio MCP server processes started for agent requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct McpProcessesConfig {
    /// Most stdio MCP server processes running at once for agent requests (each
    /// `/api/v1/chat/mcp-agent` request starts one per stdio `[[mcp_servers]]` entry); a request that
    /// would go over is answered 503 with `Retry-After`. The warm agents' servers are not counted (one
    /// process per server, kept). At least 1.
    pub max_concurrent: usize,
}

impl Default for McpProcessesConfig {
    fn default() -> Self {
        McpProcessesConfig { max_concurrent: 16 }
    }
}

/// Access-control settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RbacConfig {
    /// The first user to register becomes an administrator — only while `server.bind` is a loopback
    /// address and the registration itself comes straight from this machine (a loopback peer, and no
    /// `X-Forwarded-For`, `Forwarded` or `X-Real-IP` header: not through a reverse proxy), unless
    /// `first_user_admin_anywhere` is set.
    pub first_user_admin: bool,
    /// Apply `first_user_admin` even when `server.bind` is not a loopback address (whoever registers
    /// first over the network becomes an administrator). Off by default; bootstrap the first
    /// administrator with `gaia users create --email E --admin` instead.
    pub first_user_admin_anywhere: bool,
    /// Users with these emails become administrators when they register with an invitation made for
    /// that address (`POST /api/v1/auth/invites` with `email`); registering the address otherwise
    /// proves nothing and makes an ordinary user.
    pub admin_emails: Vec<String>,
    /// How often each instance checks the database for policy changes made by other instances, in
    /// milliseconds.
    pub refresh_interval_ms: u64,
}

impl Default for RbacConfig {
    fn default() -> Self {
        RbacConfig {
            first_user_admin: true,
            first_user_admin_anywhere: false,
            admin_emails: Vec::new(),
            refresh_interval_ms: 1_000,
        }
    }
}

/// Chat behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// After the first exchange of a new conversation, ask the model for a short title (else the
    /// first line of the first message stays the title).
    pub auto_title: bool,
    /// Largest image accepted by `POST /api/v1/attachments`, in bytes (5 MiB: Anthropic's limit).
    pub max_image_bytes: usize,
    /// Personas remember each user: after each exchange (in the background, one more model call,
    /// metered as `persona_memory`) the facts the user told and a running summary of older turns
    /// are updated, and put in the system prompt of the next turns.
    pub memory: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig { auto_title: true, max_image_bytes: 5 * 1024 * 1024, memory: true }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: String,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Serve the web UI at `/`.
    pub ui: bool,
    /// Origins allowed to call the API from browsers (CORS); empty: none; `["*"]`: any origin (never
    /// with cookies).
    pub cors_origins: Vec<String>,
    /// TLS on the listener (`[server.tls]`); plain HTTP when unset.
    pub tls: Option<TlsConfig>,
    /// Serve `GET /metrics` (Prometheus text format) to anyone. When false (the default) scrapers
    /// authenticate as an administrator (an admin's API key as a bearer token).
    pub metrics_public: bool,
    /// Most live WebSocket connections one user may have open on one instance (more: 429).
    pub max_sockets_per_user: usize,
    /// Run the database migrations when the server starts (the default). Set it to false when a
    /// separate step runs `gaia migrate` first (a Kubernetes Job, a compose one-shot service): the
    /// server then waits until the migrations it knows are applied before it starts.
    pub migrate_on_start: bool,
    /// Seconds between a shutdown signal and the listener closing: `GET /health/ready` answers 503 at
    /// once while requests are still served, so load balancers take the instance out of rotation
    /// before connections are refused (5 on Kubernetes; 0, the default, closes at once).
    pub drain_secs: u64,
    /// Seconds in-flight requests and streams get to finish once the listener is closed; what is
    /// still running after that is cut. Orchestrators must wait longer than `drain_secs` plus this
    /// before they kill the process.
    pub shutdown_grace_secs: u64,
}

/// Cache settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Most entries kept by the in-process cache.
    pub capacity: u64,
    /// Seconds a validated API key stays cached.
    pub api_key_ttl_secs: u64,
    /// Seconds a cached model answer is kept (0 disables the response cache).
    pub response_ttl_secs: u64,
    /// Milliseconds between two reads of the database's credentials version, which tells every
    /// instance that a key or token was revoked elsewhere (by another instance or the CLI); 0 turns
    /// the poll off (revocations then reach other instances only through a shared Redis cache, or when
    /// cached validations lapse).
    pub revocation_poll_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            database_url: "sqlite://gaia.db".to_string(),
            redis_url: None,
            nats_url: None,
            events: EventsConfig::default(),
            limits: LimitsConfig::default(),
            guardrails: GuardrailsConfig::default(),
            jwt_secret: None,
            secrets_key: None,
            jwt_ttl_secs: 3600,
            refresh_ttl_secs: 30 * 24 * 3600,
            cache: CacheConfig::default(),
            providers: Vec::new(),
            provider_policy: ProviderPolicy::default(),
            routing: RoutingConfig::default(),
            kb: None,
            chat: ChatConfig::default(),
            rbac: RbacConfig::default(),
            auth: AuthConfig::default(),
            mcp_servers: Vec::new(),
            agents: AgentConfig::default(),
            retention: RetentionConfig::default(),
            worlds: WorldsConfig::default(),
            mcp_processes: McpProcessesConfig::default(),
            assets: AssetsConfig::default(),
            embeddings: EmbeddingsConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8666".to_string(),
            body_limit_bytes: 2 * 1024 * 1024,
            ui: true,
            cors_origins: Vec::new(),
            tls: None,
            metrics_public: false,
            max_sockets_per_user: 32,
            migrate_on_start: true,
            drain_secs: 0,
            shutdown_grace_secs: 30,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { capacity: 10_000, api_key_ttl_secs: 60, response_ttl_secs: 300, revocation_poll_ms: 500 }
    }
}

fn redact(s: &Option<String>) -> &'static str {
    if s.is_some() {
        "<redacted>"
    } else {
        "<unset>"
    }
}

/// Hides the password part of a URL (`postgres://u:secret@h` → `postgres://u:***@h`), or the whole
/// user part when it has no password, since it may be a token (`https://ghp_x@github.com/o/r` →
/// `https://***@github.com/o/r`).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((creds, host)) = rest.rsplit_once('@') {
            return match creds.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://***@{host}"),
            };
        }
    }
    url.to_string()
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("nats_url", &self.nats_url.as_deref().map(redact_url))
            .field("events", &self.events)
            .field("limits", &self.limits)
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("secrets_key", &redact(&self.secrets_key))
            .field("jwt_ttl_secs", &self.jwt_ttl_secs)
            .field("refresh_ttl_secs", &self.refresh_ttl_secs)
            .field("cache", &self.cache)
            .field("providers", &self.providers)
            .field("provider_policy", &self.provider_policy)
            .field("routing", &self.routing)
            .field("kb", &self.kb)
            .field("chat", &self.chat)
            .field("rbac", &self.rbac)
            .field("auth", &self.auth)
            .field("mcp_servers", &self.mcp_servers.iter().map(|m| &m.name).collect::<Vec<_>>())
            .field("agents", &self.agents)
            .field("retention", &self.retention)
            .field("worlds", &self.worlds)
            .field("assets", &self.assets)
            .field("embeddings", &self.embeddings)
            .finish()
    }
}

/// HKDF `info` of the secrets key derived from `jwt_secret` (when `secrets_key` is unset).
const JWT_DERIVED_INFO: &[u8] = b"gaia secrets key v1 (from jwt_secret)";

/// The longest `server.drain_secs`.
const MAX_DRAIN_SECS: u64 = 300;
/// The longest `server.shutdown_grace_secs`.
const MAX_SHUTDOWN_GRACE_SECS: u64 = 3600;
/// The largest file a `<NAME>_FILE` variable may name (secrets and URLs are short).
const MAX_ENV_FILE_BYTES: u64 = 64 * 1024;

/// Short environment names and the nested key they set.
const ALIASES: &[(&str, &str)] = &[("GAIA_BIND", "server.bind")];

/// The vendors' own variables: provider name, kind, key variable, base-URL variable.
const VENDOR_ENV: &[(&str, ProviderKind, &str, &str)] = &[
    ("openai", ProviderKind::Openai, "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    ("anthropic", ProviderKind::Anthropic, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    ("meshy", ProviderKind::Meshy, "MESHY_API_KEY", "MESHY_BASE_URL"),
];

/// Inserts `value` at the dotted `path` of `dict`, creating tables on the way.
fn insert_path(dict: &mut Dict, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = dict;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let entry = cur.entry(part.to_string()).or_insert_with(|| Value::from(Dict::new()));
        if !matches!(entry, Value::Dict(..)) {
            *entry = Value::from(Dict::new());
        }
        match entry {
            Value::Dict(_, d) => cur = d,
            _ => return,
        }
    }
}

/// Whether the dotted `path` names a setting: setting it alone over the defaults gives no "unknown
/// field" error (a wrong value is still reported, by the real extraction).
fn is_setting(path: &str, value: &Value) -> bool {
    let mut one = Dict::new();
    insert_path(&mut one, path, value.clone());
    let fig = Figment::from(Serialized::defaults(Config::default())).merge(Serialized::from(one, Profile::Default));
    match fig.extract::<Config>() {
        Ok(_) => true,
        Err(e) => !e.into_iter().any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..))),
    }
}

/// Replaces every `<NAME>_FILE` variable by `<NAME>` with the content of the file it names (trailing
/// line ends trimmed), for `GAIA_*` settings and the vendors' variables: secrets mounted as files
/// (Kubernetes Secret volumes, compose secrets) stay out of the environment. Setting both `<NAME>`
/// and `<NAME>_FILE` is an error, as is a missing, unreadable, non-UTF-8 or oversized file (the
/// content is never part of the message).
fn read_env_files(mut env: HashMap<String, String>) -> Result<HashMap<String, String>> {
    let named: Vec<(String, String)> = env
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_suffix("_FILE")?;
            let gaia = name.starts_with("GAIA_") && !name.starts_with("GAIA_TEST_") && name != "GAIA_CONFIG";
            let vendor = VENDOR_ENV.iter().any(|(_, _, key, url)| name == *key || name == *url);
            (gaia || vendor).then(|| (name.to_string(), v.clone()))
        })
        .collect();
    for (name, path) in named {
        if env.get(&name).is_some_and(|v| !v.is_empty()) {
            return Err(CoreError::Config(format!("{name} and {name}_FILE are both set: set one")));
        }
        let fail = |why: String| CoreError::Config(format!("{name}_FILE: cannot read {path}: {why}"));
        let meta = std::fs::metadata(&path).map_err(|e| fail(e.to_string()))?;
        if meta.len() > MAX_ENV_FILE_BYTES {
            return Err(fail(format!("larger than {MAX_ENV_FILE_BYTES} bytes")));
        }
        let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        env.remove(&format!("{name}_FILE"));
        env.insert(name, text.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(env)
}

/// Turns environment variables into a nested dictionary of overrides. `GAIA_*` variables whose first
/// segment names no top-level setting or section are ignored with a warning; an unknown key under a
/// known section is an error.
fn env_overrides(env: HashMap<String, String>) -> Dict {
    let mut dict = Dict::new();
    let mut aliases = Vec::new();
    for (key, value) in env {
        if let Some((_, path)) = ALIASES.iter().find(|(k, _)| *k == key) {
            aliases.push((path.to_string(), value));
        } else if let Some(rest) = key.strip_prefix("GAIA_") {
            if rest.is_empty()
                || rest.starts_with("TEST_")
                || rest.starts_with("PROVIDERS")
                || matches!(rest, "REQUIRE_SERVICES" | "API_KEY" | "URL" | "CONFIG")
            {
                // Test harness and client variables, not server configuration; `[[providers]]` is a
                // list and comes from the file (or the vendors' variables below).
                continue;
            }
            let path = rest.to_ascii_lowercase().replace("__", ".");
            // Values are parsed like TOML scalars (numbers, booleans), falling back to strings.
            let parsed = value.parse::<Value>().unwrap_or_else(|_| Value::from(value.clone()));
            let parsed = match parsed {
                Value::String(..) | Value::Num(..) | Value::Bool(..) => parsed,
                _ => Value::from(value),
            };
            // `GAIA_ENV=production` and the like belong to other tools: warn, never fail (the value is
            // not logged: it may be a secret). Only a first segment that is no top-level setting or
            // section is ignored: a mistyped key under a known section (`GAIA_AUTH__REGISTRATON`) stays
            // an "unknown field" error, as in gaia.toml, instead of silently leaving the default.
            let known = match path.split_once('.') {
                Some((section, _)) => is_setting(section, &Value::from(Dict::new())),
                None => is_setting(&path, &parsed),
            };
            if !known {
                tracing::warn!(variable = %key, "ignoring environment variable {key}: it is not a Gaia setting");
                continue;
            }
            insert_path(&mut dict, &path, parsed);
        }
    }
    // Vendor variables apply on top of GAIA_* ones (they are the vendors' documented way).
    for (path, value) in aliases {
        insert_path(&mut dict, &path, Value::from(value));
    }
    dict
}

impl Config {
    /// Loads the configuration from `path` (or `./gaia.toml` when `None` and present) and the process
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        Self::load_from(path, std::env::vars())
    }

    /// Like [`Config::load`] but with an explicit environment (for tests).
    pub fn load_from(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config> {
        let env = read_env_files(env.into_iter().collect())?;
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(CoreError::Config(format!("config file {} does not exist", p.display())));
                }
                fig = fig.merge(Toml::file(p));
            }
            None => {
                let p = Path::new("gaia.toml");
                if p.exists() {
                    fig = fig.merge(Toml::file(p));
                }
            }
        }
        fig = fig.merge(Serialized::from(env_overrides(env.clone()), Profile::Default));
        let mut cfg: Config = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let msg = e.to_string();
            if key.is_empty() {
                CoreError::Config(msg)
            } else {
                CoreError::Config(format!("key `{key}`: {msg}"))
            }
        })?;
        cfg.apply_provider_env(&env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Folds the vendors' variables (`OPENAI_API_KEY`, …) into `[[providers]]` (creating the entry
    /// when missing) and reads every `api_key_env`.
    fn apply_provider_env(&mut self, env: &HashMap<String, String>) -> Result<()> {
        for (name, kind, key_var, url_var) in VENDOR_ENV {
            let key = env.get(*key_var).filter(|v| !v.is_empty());
            let url = env.get(*url_var).filter(|v| !v.is_empty());
            if key.is_none() && url.is_none() {
                continue;
            }
            let idx = match self.providers.iter().position(|p| p.name == *name) {
                Some(i) => i,
                None => {
                    self.providers.push(ProviderEntry::new(*name, *kind));
                    self.providers.len() - 1
                }
            };
            let p = &mut self.providers[idx];
            if let Some(k) = key {
                p.api_key = Some(k.clone());
                // Where the key comes from: runtime providers may send that variable where this one does.
                p.api_key_env = Some(key_var.to_string());
            }
            if let Some(u) = url {
                p.base_url = Some(u.clone());
            }
        }
        for (i, p) in self.providers.iter_mut().enumerate() {
            p.resolve_env_keys(i, env)?;
        }
        Ok(())
    }

    /// The key signing asset URLs (`gaia-assets`), derived with HKDF-SHA256 from `secrets_key`, else
    /// `jwt_secret`, so every instance sharing them accepts the others' URLs; `None` when neither is
    /// set (a random key is then used, and signed URLs end with the process).
    pub fn asset_signing_key(&self) -> Option<Vec<u8>> {
        let secret = self.secrets_key.as_deref().or(self.jwt_secret.as_deref())?;
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, secret.as_bytes());
        let mut key = vec![0u8; 32];
        hk.expand(b"gaia asset urls v1", &mut key).ok()?;
        Some(key)
    }

    /// The keys sealing the secrets Gaia stores (provider API keys added through the admin API, see
    /// [`crate::secrets`]): `secrets_key` when set, else one derived with HKDF-SHA256 from
    /// `jwt_secret` when that is set (it is stable across restarts then; a random per-start JWT
    /// secret is never used), else `None`: such secrets cannot be stored. With both set, values
    /// sealed under the derived key still open (and are sealed again under `secrets_key`).
    pub fn secrets(&self) -> Result<Option<Secrets>> {
        let derived = self.jwt_secret.as_deref().map(|s| Secrets::derive(s.as_bytes(), JWT_DERIVED_INFO));
        match (&self.secrets_key, derived) {
            (Some(k), derived) => {
                let key = Secrets::from_base64(k).map_err(|e| CoreError::Config(format!("key `secrets_key`: {e}")))?;
                Ok(Some(match derived {
                    Some(d) => key.with_fallback(&d),
                    None => key,
                }))
            }
            (None, derived) => Ok(derived),
        }
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        self.worlds.validate().map_err(CoreError::Config)?;
        self.assets.validate()?;
        self.embeddings.validate()?;
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(CoreError::Config(format!(
                "key `server.bind`: `{}` is not a socket address like 127.0.0.1:8666",
                self.server.bind
            )));
        }
        for o in &self.server.cors_origins {
            let ok = o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/'));
            if !ok {
                return Err(CoreError::Config(format!(
                    "key `server.cors_origins`: `{o}` must be `*` or an origin like https://game.example (no path)"
                )));
            }
        }
        if self.server.max_sockets_per_user == 0 {
            return Err(CoreError::Config("key `server.max_sockets_per_user`: must be at least 1".into()));
        }
        if self.server.drain_secs > MAX_DRAIN_SECS {
            return Err(CoreError::Config(format!("key `server.drain_secs`: at most {MAX_DRAIN_SECS}")));
        }
        if self.server.shutdown_grace_secs > MAX_SHUTDOWN_GRACE_SECS {
            return Err(CoreError::Config(format!(
                "key `server.shutdown_grace_secs`: at most {MAX_SHUTDOWN_GRACE_SECS}"
            )));
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres")) {
            return Err(CoreError::Config(format!(
                "key `database_url`: `{}` must start with sqlite:// or postgres://",
                redact_url(&self.database_url)
            )));
        }
        if let Some(r) = &self.redis_url {
            if r.starts_with("rediss://") {
                // Said at start-up rather than as a connection failure later.
                return Err(CoreError::Config(
                    "key `redis_url`: Redis over TLS (rediss://) is not supported by this build; reach Redis \
                     over a private network with redis://, or through a TLS tunnel on loopback"
                        .into(),
                ));
            }
            if !r.starts_with("redis://") {
                return Err(CoreError::Config("key `redis_url`: must start with redis://".into()));
            }
        }
        if let Some(s) = &self.jwt_secret {
            if s.len() < 16 {
                return Err(CoreError::Config("key `jwt_secret`: must be at least 16 characters".into()));
            }
        }
        if let Some(k) = &self.secrets_key {
            Secrets::from_base64(k).map_err(|e| CoreError::Config(format!("key `secrets_key`: {e}")))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            p.validate(i)?;
            if !names.insert(p.name.as_str()) {
                return Err(CoreError::Config(format!("key `providers[{i}].name`: `{}` is used twice", p.name)));
            }
        }
        self.provider_policy.validate()?;
        if self.chat.max_image_bytes == 0 {
            return Err(CoreError::Config("key `chat.max_image_bytes`: must be greater than 0".into()));
        }
        if self.server.body_limit_bytes == 0 {
            return Err(CoreError::Config("key `server.body_limit_bytes`: must be greater than 0".into()));
        }
        if let Some(tls) = &self.server.tls {
            tls.validate()?;
        }
        self.auth.validate()?;
        self.guardrails.validate().map_err(|e| CoreError::Config(format!("key `{e}")))?;
        if self.retention.interval_secs == 0 {
            return Err(CoreError::Config("key `retention.interval_secs`: must be greater than 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ModelPrice;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn redact_url_hides_passwords_and_bare_tokens() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("https://ghp_tok@github.com/o/r.git"), "https://***@github.com/o/r.git");
        assert_eq!(redact_url("https://github.com/o/r.git"), "https://github.com/o/r.git");
        assert_eq!(redact_url("/srv/world.git"), "/srv/world.git");
    }

    #[test]
    fn defaults() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8666");
        assert_eq!(c.database_url, "sqlite://gaia.db");
        assert!(c.providers.is_empty());
        assert_eq!(c.routing.max_retries, 2);
    }

    #[test]
    fn toml_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gaia.toml");
        std::fs::write(
            &p,
            r#"
database_url = "sqlite://x.db"
[server]
bind = "127.0.0.1:9000"
[routing]
default_model = "claude-x"
groups = { companion = ["anthropic/claude-x", "local/llama"] }

[[providers]]
name = "anthropic"
kind = "anthropic"
models = ["claude-y", { id = "claude-x", context_window = 200000, capabilities = ["tools", "vision"], input_price = 3.0, output_price = 15.0 }]

[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "LOCAL_KEY"
deployments = [{ base_url = "http://127.0.0.1:11435/v1" }, { api_key = "second-key" }]
"#,
        )
        .unwrap();
        let c = Config::load_from(
            Some(&p),
            env(&[
                ("GAIA_SERVER__BIND", "127.0.0.1:9001"),
                ("GAIA_CACHE__CAPACITY", "5"),
                ("GAIA_ROUTING__MAX_RETRIES", "4"),
                ("ANTHROPIC_API_KEY", "sk-ant-secret"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
                ("LOCAL_KEY", "local-secret"),
                ("GAIA_TEST_DATABASE_URL", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url, "sqlite://x.db");
        assert_eq!(c.server.bind, "127.0.0.1:9001");
        assert_eq!(c.cache.capacity, 5);
        assert_eq!(c.routing.max_retries, 4);
        assert_eq!(c.routing.groups["companion"].len(), 2);
        let a = &c.providers[0];
        assert_eq!(a.api_key.as_deref(), Some("sk-ant-secret"));
        assert_eq!(a.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"), "where the key comes from");
        assert_eq!(a.base_url(), "https://api.anthropic.com");
        let cat = a.catalog();
        assert_eq!(cat[0].id, "claude-y");
        assert_eq!(cat[1].context_window, Some(200_000));
        assert_eq!(cat[1].price(), Some(ModelPrice::new(3.0, 15.0)));
        let local = &c.providers[1];
        assert_eq!(local.api_key.as_deref(), Some("local-secret"));
        let deps = local.all_deployments();
        assert_eq!(deps.len(), 3);
        assert_eq!(deps[1].base_url.as_deref(), Some("http://127.0.0.1:11435/v1"));
        assert_eq!(deps[2].base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(deps[2].api_key.as_deref(), Some("second-key"));
        // OPENAI_BASE_URL alone creates an `openai` provider.
        assert_eq!(c.providers[2].name, "openai");
        assert_eq!(c.providers[2].base_url(), "http://127.0.0.1:1/v1");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("sk-ant-secret") && !dbg.contains("local-secret") && !dbg.contains("second-key"),
            "{dbg}"
        );
    }

    #[test]
    fn assets_from_the_file_as_the_readme_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gaia.toml");
        let toml = r#"
[[providers]]
name = "openai"
kind = "openai"
models = [
  { id = "gpt-image-1", unit_prices = { "image" = 0.04, "image:1024x1536:high" = 0.25 } },
  { id = "tts-1", unit_prices = { character = 0.000015 } },
]

[[providers]]
name = "meshy"
kind = "meshy"
api_key = "msy-secret"

[assets]
store = "s3://game-assets/one"
s3_secret_access_key = "s3-secret"
image_model = "openai/gpt-image-1"
sell_prices = { image = 0.5, model_3d = 2.0 }
"#;
        std::fs::write(&p, toml).unwrap();
        let c = Config::load_from(Some(&p), env(&[])).unwrap();
        let cat = c.providers[0].catalog();
        assert_eq!(cat[0].unit_prices["image:1024x1536:high"], 0.25);
        assert_eq!(cat[0].price(), None, "no token price");
        assert_eq!(c.providers[1].base_url(), "https://api.meshy.ai");
        assert_eq!(c.assets.sell_prices["model_3d"], 2.0);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3-secret") && !dbg.contains("msy-secret"), "{dbg}");
        for (bad, says) in [
            ("[assets]\nsell_prices = { hat = 1.0 }\n", "not an asset kind"),
            ("[assets]\nsell_prices = { image = -1.0 }\n", "non-negative"),
            ("[assets]\nmax_image_side = 100000\n", "max_image_side"),
            ("[assets]\nstore = \" \"\n", "assets.store"),
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = Config::load_from(Some(&p), env(&[])).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn provider_policy_from_the_file() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.provider_policy, ProviderPolicy::default());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gaia.toml");
        std::fs::write(
            &p,
            "[provider_policy]\nallowed_key_envs = [\"LLM_*\"]\nallowed_hosts = [\"llm.internal:8000\"]\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&p), env(&[])).unwrap();
        assert!(c.provider_policy.allows_key_env("LLM_A") && !c.provider_policy.allows_key_env("OPENAI_API_KEY"));
        assert!(c.provider_policy.allows_host("llm.internal", 8000));
    }

    #[test]
    fn short_aliases() {
        let c =
            Config::load_from(None, env(&[("GAIA_BIND", "0.0.0.0:1"), ("GAIA_DATABASE_URL", "postgres://u:pw@h/db")]))
                .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:1");
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn settings_from_mounted_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        };
        let jwt = write("jwt", b"a-jwt-secret-from-a-mounted-file-0123\n");
        let db = write("db", b"postgres://gaia:s3cret@db:5432/gaia\r\n");
        let key = write("openai", b"sk-from-file");
        let c = Config::load_from(
            None,
            env(&[
                ("GAIA_JWT_SECRET_FILE", &jwt),
                ("GAIA_DATABASE_URL_FILE", &db),
                ("OPENAI_API_KEY_FILE", &key),
                ("GAIA_SERVER__DRAIN_SECS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.jwt_secret.as_deref(), Some("a-jwt-secret-from-a-mounted-file-0123"), "line end trimmed");
        assert_eq!(c.database_url, "postgres://gaia:s3cret@db:5432/gaia");
        assert_eq!(c.server.drain_secs, 5);
        let openai = c.providers.iter().find(|p| p.name == "openai").unwrap();
        assert_eq!(openai.api_key.as_deref(), Some("sk-from-file"));
        // Both forms, a missing file, a directory, a huge file: clear errors that never show the content.
        let both = Config::load_from(
            None,
            env(&[("GAIA_JWT_SECRET", "x".repeat(40).as_str()), ("GAIA_JWT_SECRET_FILE", &jwt)]),
        );
        assert!(both.unwrap_err().to_string().contains("GAIA_JWT_SECRET and GAIA_JWT_SECRET_FILE are both set"));
        let missing = dir.path().join("nope").to_string_lossy().into_owned();
        let e = Config::load_from(None, env(&[("GAIA_JWT_SECRET_FILE", &missing)])).unwrap_err().to_string();
        assert!(e.contains("GAIA_JWT_SECRET_FILE: cannot read"), "{e}");
        let folder = dir.path().to_string_lossy().into_owned();
        assert!(Config::load_from(None, env(&[("GAIA_JWT_SECRET_FILE", &folder)])).is_err());
        let huge = write("huge", &vec![b'a'; 70 * 1024]);
        let e = Config::load_from(None, env(&[("GAIA_JWT_SECRET_FILE", &huge)])).unwrap_err().to_string();
        assert!(e.contains("larger than") && !e.contains("aaaa"), "{e}");
        let bad = write("bad", &[0xff, 0xfe]);
        assert!(Config::load_from(None, env(&[("GAIA_SECRETS_KEY_FILE", &bad)]))
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
        // Other tools' `_FILE` variables are not read.
        assert!(Config::load_from(None, env(&[("SSL_CERT_FILE", &missing), ("GAIA_TEST_X_FILE", &missing)])).is_ok());
        // Redis over TLS is refused at start-up, with the reason.
        let e = Config::load_from(None, env(&[("GAIA_REDIS_URL", "rediss://cache.example:6380")])).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        // Shutdown bounds.
        assert!(Config::load_from(None, env(&[("GAIA_SERVER__DRAIN_SECS", "100000")])).is_err());
        assert!(Config::load_from(None, env(&[("GAIA_SERVER__SHUTDOWN_GRACE_SECS", "100000")])).is_err());
    }

    #[test]
    fn secrets_key_from_env_or_derived_from_the_jwt_secret() {
        let key = Secrets::generate_key();
        let c = Config::load_from(None, env(&[("GAIA_SECRETS_KEY", &key)])).unwrap();
        assert_eq!(c.secrets_key.as_deref(), Some(key.as_str()));
        assert!(!format!("{c:?}").contains(&key), "redacted in Debug");
        assert!(format!("{c:?}").contains("secrets_key: \"<redacted>\""));
        let sealed = c.secrets().unwrap().unwrap().seal("sk-1").unwrap();
        assert_eq!(Secrets::from_base64(&key).unwrap().open(&sealed).unwrap().value, "sk-1");

        // Neither key nor JWT secret: nothing can be sealed.
        assert!(Config::load_from(None, env(&[])).unwrap().secrets().unwrap().is_none());
        // A configured JWT secret gives a stable derived key (the same after a restart).
        let jwt = [("GAIA_JWT_SECRET", "a-stable-jwt-secret-0123456789")];
        let sealed = Config::load_from(None, env(&jwt)).unwrap().secrets().unwrap().unwrap().seal("sk-2").unwrap();
        let again = Config::load_from(None, env(&jwt)).unwrap().secrets().unwrap().unwrap();
        assert_eq!(again.open(&sealed).unwrap().value, "sk-2");
        // Adding a secrets key later still opens what the derived key sealed, flagged for sealing again.
        let both = Config::load_from(None, env(&[jwt[0], ("GAIA_SECRETS_KEY", &key)])).unwrap();
        let opened = both.secrets().unwrap().unwrap().open(&sealed).unwrap();
        assert!(opened.stale && opened.value == "sk-2");
        let other_jwt = Config::load_from(None, env(&[("GAIA_JWT_SECRET", "another-jwt-secret-0123456789")])).unwrap();
        assert!(other_jwt.secrets().unwrap().unwrap().open(&sealed).is_err());

        // A key that is not 32 bytes of base64 is refused at load, naming the key, without echoing it.
        for bad in ["too-short", "c2hvcnQ=", "not base64 at all!!"] {
            let e = Config::load_from(None, env(&[("GAIA_SECRETS_KEY", bad)])).unwrap_err().to_string();
            assert!(e.contains("secrets_key") && e.contains("32 bytes") && !e.contains(bad), "{e}");
        }
    }

    #[test]
    fn unknown_gaia_variables_are_ignored_but_unknown_file_keys_are_errors() {
        // Other tools' variables (GAIA_ENV, GAIA_SOMETOOL__X) used to stop start-up with "unknown field".
        let c = Config::load_from(
            None,
            env(&[
                ("GAIA_ENV", "production"),
                ("GAIA_SOMETOOL__MODE", "1"),
                ("GAIA_AUTH__REGISTRATION", "closed"),
                ("GAIA_CACHE__CAPACITY", "7"),
            ]),
        )
        .unwrap();
        assert_eq!((c.auth.registration, c.cache.capacity), (Registration::Closed, 7), "real settings still apply");
        // A known variable with a bad value is still an error.
        let e = Config::load_from(None, env(&[("GAIA_ENV", "x"), ("GAIA_AUTH__REGISTRATION", "sometimes")]));
        assert!(e.unwrap_err().to_string().contains("registration"));
        let e = Config::load_from(None, env(&[("GAIA_AUTH__TRUSTED_PROXIES", "not-an-ip")])).unwrap_err();
        assert!(e.to_string().contains("trusted_proxies"), "{e}");
        // A typo under a known section is an error, not a security setting silently left at its default
        // (registration open).
        for typo in ["GAIA_AUTH__REGISTRATON", "GAIA_SERVER__NOPE"] {
            let e = Config::load_from(None, env(&[(typo, "closed")])).unwrap_err().to_string();
            let key = typo.rsplit("__").next().unwrap().to_ascii_lowercase();
            assert!(e.contains("unknown field") && e.contains(&key), "{typo}: {e}");
        }
        // The same unknown key in gaia.toml stops start-up.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gaia.toml");
        std::fs::write(&p, "env = \"production\"\n").unwrap();
        let e = Config::load_from(Some(&p), env(&[])).unwrap_err();
        assert!(e.to_string().contains("env"), "{e}");
        std::fs::write(&p, "[auth]\nregistraton = \"closed\"\n").unwrap();
        assert!(Config::load_from(Some(&p), env(&[])).unwrap_err().to_string().contains("registraton"));
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = Config::load_from(None, env(&[("GAIA_SERVER__BODY_LIMIT_BYTES", "abc")])).unwrap_err();
        assert!(e.to_string().contains("body_limit_bytes"), "{e}");
        let e = Config::load_from(None, env(&[("GAIA_SERVER__BIND", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("server.bind"), "{e}");
        let e = Config::load_from(None, env(&[("GAIA_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(e.to_string().contains("database_url"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gaia.toml");
        std::fs::write(&p, "[server]\nbnid = \"x\"\n").unwrap();
        let e = Config::load_from(Some(&p), env(&[])).unwrap_err();
        assert!(e.to_string().contains("bnid"), "{e}");
        let e = Config::load_from(Some(&dir.path().join("missing.toml")), env(&[])).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        for (toml, needle) in [
            ("[[providers]]\nname = \"x\"\nkind = \"cohere\"\n", "kind"),
            (
                "[[providers]]\nname = \"x\"\nkind = \"openai\"\napi_key_env = \"NOPE_KEY\"\n",
                "providers[0].api_key_env",
            ),
            ("[[providers]]\nname = \"x\"\nkind = \"openai\"\nbase_url = \"ftp://x\"\n", "providers[0].base_url"),
            ("[[providers]]\nname = \"a b\"\nkind = \"openai\"\n", "providers[0].name"),
            ("[provider_policy]\nallowed_key_envs = [\"GAIA_JWT_SECRET\"]\n", "provider_policy.allowed_key_envs"),
            ("[provider_policy]\nallowed_hosts = [\"https://h/v1\"]\n", "provider_policy.allowed_hosts"),
            (
                "[[providers]]\nname = \"x\"\nkind = \"openai\"\n[[providers]]\nname = \"x\"\nkind = \"anthropic\"\n",
                "used twice",
            ),
        ] {
            std::fs::write(&p, toml).unwrap();
            let e = Config::load_from(Some(&p), env(&[])).unwrap_err();
            assert!(e.to_string().contains(needle), "{toml}: {e}");
        }
    }
}
