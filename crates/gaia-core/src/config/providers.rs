//! `[[providers]]` and `[routing]`: which LLM providers Gaia talks to, their models (catalog and
//! prices), and how requests are routed among them.

use crate::error::{CoreError, Result};
use crate::types::ModelPrice;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI Chat Completions (OpenAI, Ollama, vLLM, LM Studio, …).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Meshy's text-to-3D task API.
    Meshy,
}

impl ProviderKind {
    /// The vendor's public endpoint.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Meshy => "https://api.meshy.ai",
        }
    }
}

/// One model in the catalog: its id and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The provider's model id.
    pub id: String,
    /// Context window in tokens.
    #[serde(default)]
    pub context_window: Option<u32>,
    /// What it can do: `tools`, `vision`, `streaming`, …
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Dollars per million input tokens.
    #[serde(default)]
    pub input_price: Option<f64>,
    /// Dollars per million output tokens.
    #[serde(default)]
    pub output_price: Option<f64>,
    /// Dollars per million input tokens read from the provider's prompt cache (default: the input price).
    #[serde(default)]
    pub cached_input_price: Option<f64>,
    /// Dollars per million input tokens written to the provider's prompt cache (default: the input
    /// price).
    #[serde(default)]
    pub cache_write_price: Option<f64>,
    /// Prices of what media models are billed by, in US dollars per unit: `image` (per image, or
    /// `image:1024x1024`, `image:1024x1024:hd` for a size and quality), `character` (speech),
    /// `second` (transcribed audio), `credit` (3D tasks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unit_prices: BTreeMap<String, f64>,
}

impl ModelEntry {
    /// The price, when both halves are known.
    pub fn price(&self) -> Option<ModelPrice> {
        Some(ModelPrice {
            input: self.input_price?,
            output: self.output_price?,
            cached_input: self.cached_input_price,
            cache_write_input: self.cache_write_price,
        })
    }
}

/// A model given by id only, or with its catalog details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ModelSpec {
    /// Just the id.
    Id(String),
    /// Id and details.
    Entry(ModelEntry),
}

impl ModelSpec {
    /// The catalog entry (details empty for a bare id).
    pub fn entry(&self) -> ModelEntry {
        match self {
            ModelSpec::Id(id) => ModelEntry { id: id.clone(), ..Default::default() },
            ModelSpec::Entry(e) => e.clone(),
        }
    }
}

/// Another deployment (endpoint or key) serving the same models; requests are balanced across the
/// provider's deployments.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Endpoint (default: the provider's).
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Name of an environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .finish()
    }
}

/// One `[[providers]]` entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    /// Name used in `provider/model` and in the APIs.
    pub name: String,
    /// Wire format.
    pub kind: ProviderKind,
    /// Endpoint (default: the vendor's; OpenAI-format URLs include `/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Name of an environment variable holding the API key (read at start-up).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// More deployments or keys for the same models, balanced round-robin with the main one.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// Models offered (ids, or catalog entries with context window, capabilities and prices); empty
    /// means discover them from the provider.
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// Seconds a whole call may take, streamed or not (a stream still running then ends with a
    /// timeout error); also the longest silence between two reads.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Seconds to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds a stream of this provider may take to produce its first event before the next
    /// candidate is tried (default: `routing.first_token_timeout_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_timeout_secs: Option<u64>,
    /// Speak HTTP/2 over plain HTTP from the first byte (h2c with prior knowledge), for an upstream on
    /// a private network that does: thousands of streams then share a few connections. `https`
    /// upstreams negotiate HTTP/2 by themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2_prior_knowledge: bool,
}

fn default_timeout() -> u64 {
    120
}

fn default_connect_timeout() -> u64 {
    10
}

impl fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderEntry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .field("deployments", &self.deployments)
            .field("models", &self.models)
            .field("timeout_secs", &self.timeout_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("first_token_timeout_secs", &self.first_token_timeout_secs)
            .field("http2_prior_knowledge", &self.http2_prior_knowledge)
            .finish()
    }
}

impl ProviderEntry {
    /// An entry of `kind` named `name` with the vendor's endpoint and no key.
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        ProviderEntry {
            name: name.into(),
            kind,
            base_url: None,
            api_key: None,
            api_key_env: None,
            deployments: Vec::new(),
            models: Vec::new(),
            timeout_secs: default_timeout(),
            connect_timeout_secs: default_connect_timeout(),
            first_token_timeout_secs: None,
            http2_prior_knowledge: false,
        }
    }

    /// The endpoint to use.
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(self.kind.default_base_url())
    }

    /// Every deployment, the main one first, with endpoints filled in.
    pub fn all_deployments(&self) -> Vec<Deployment> {
        let mut v = vec![Deployment {
            base_url: Some(self.base_url().to_string()),
            api_key: self.api_key.clone(),
            api_key_env: None,
        }];
        for d in &self.deployments {
            v.push(Deployment {
                base_url: Some(d.base_url.clone().unwrap_or_else(|| self.base_url().to_string())),
                api_key: d.api_key.clone(),
                api_key_env: None,
            });
        }
        v
    }

    /// Catalog entries of the configured models.
    pub fn catalog(&self) -> Vec<ModelEntry> {
        self.models.iter().map(ModelSpec::entry).collect()
    }

    /// Checks names and URLs; `index` is the entry's position, for messages.
    pub fn validate(&self, index: usize) -> Result<()> {
        let ok_name = !self.name.is_empty()
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok_name {
            return Err(CoreError::Config(format!(
                "key `providers[{index}].name`: `{}` must be letters, digits, '-', '_' or '.'",
                self.name
            )));
        }
        for url in std::iter::once(self.base_url()).chain(self.deployments.iter().filter_map(|d| d.base_url.as_deref()))
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(CoreError::Config(format!(
                    "key `providers[{index}].base_url`: `{url}` must start with http:// or https://"
                )));
            }
        }
        if self.timeout_secs == 0 || self.connect_timeout_secs == 0 || self.first_token_timeout_secs == Some(0) {
            return Err(CoreError::Config(format!("key `providers[{index}].timeout_secs`: must be greater than 0")));
        }
        Ok(())
    }

    /// Reads the `api_key_env` variables of the entry and its deployments from this process's
    /// environment into their keys (a key given directly wins). Fails, naming the variable, when one
    /// is unset or empty. Used for entries added at runtime, whose keys stay out of the database.
    pub fn resolve_process_env_keys(&mut self) -> Result<()> {
        let wanted = self.api_key_env.iter().chain(self.deployments.iter().filter_map(|d| d.api_key_env.as_ref()));
        let env: HashMap<String, String> =
            wanted.filter_map(|var| std::env::var(var).ok().map(|v| (var.clone(), v))).collect();
        self.resolve_env_keys(0, &env).map_err(|e| match e {
            CoreError::Config(m) => CoreError::InvalidInput(m.replace("providers[0].", "")),
            other => other,
        })
    }

    /// Reads `api_key_env` variables from `env` into the keys.
    pub(crate) fn resolve_env_keys(&mut self, index: usize, env: &HashMap<String, String>) -> Result<()> {
        let read = |var: &str, key: String| -> Result<String> {
            env.get(var)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| CoreError::Config(format!("key `{key}`: environment variable {var} is not set")))
        };
        if let (None, Some(var)) = (&self.api_key, &self.api_key_env) {
            self.api_key = Some(read(var, format!("providers[{index}].api_key_env"))?);
        }
        for (j, d) in self.deployments.iter_mut().enumerate() {
            if let (None, Some(var)) = (&d.api_key, &d.api_key_env) {
                d.api_key = Some(read(var, format!("providers[{index}].deployments[{j}].api_key_env"))?);
            }
        }
        Ok(())
    }
}

/// `[routing]`: defaults, fallback groups, retries, health checks and circuit breakers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Model used when a request names none.
    pub default_model: Option<String>,
    /// Named fallback chains: `companion = ["anthropic/claude-sonnet-4-5", "openai/gpt-4o"]`.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Retries per provider on retryable errors, before any output.
    pub max_retries: u32,
    /// Seconds a stream may take to produce its first event before the next candidate is tried.
    pub first_token_timeout_secs: u64,
    /// Seconds between active health probes of every provider (0 disables them).
    pub health_interval_secs: u64,
    /// Consecutive failures that open a provider's circuit.
    pub breaker_failures: u32,
    /// Seconds an open circuit refuses calls before one trial call.
    pub breaker_cooldown_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            default_model: None,
            groups: BTreeMap::new(),
            max_retries: 2,
            first_token_timeout_secs: 60,
            health_interval_secs: 60,
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
        }
    }
}

/// The vendors' own key variables: what `[provider_policy] allowed_key_envs` allows by default.
pub const DEFAULT_ALLOWED_KEY_ENVS: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "TOGETHER_API_KEY",
    "GEMINI_API_KEY",
    "XAI_API_KEY",
];

/// The vendors' own API hosts, by key variable: where a runtime provider may send a key read from
/// that variable even when the configuration sends it nowhere (over `https`, port 443). Variables
/// without one here (`AZURE_OPENAI_API_KEY`: every Azure resource has its own host) go only where
/// the configuration sends them, or to `allowed_hosts`.
const VENDOR_KEY_HOSTS: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "api.openai.com"),
    ("ANTHROPIC_API_KEY", "api.anthropic.com"),
    ("OPENROUTER_API_KEY", "openrouter.ai"),
    ("MISTRAL_API_KEY", "api.mistral.ai"),
    ("GROQ_API_KEY", "api.groq.com"),
    ("DEEPSEEK_API_KEY", "api.deepseek.com"),
    ("TOGETHER_API_KEY", "api.together.xyz"),
    ("GEMINI_API_KEY", "generativelanguage.googleapis.com"),
    ("XAI_API_KEY", "api.x.ai"),
];

/// The vendor's own API host for the key variable `var` (`api.openai.com` for `OPENAI_API_KEY`), if
/// it is a vendor's variable with a single official host.
pub fn vendor_key_host(var: &str) -> Option<&'static str> {
    VENDOR_KEY_HOSTS.iter().find(|(v, _)| *v == var).map(|(_, host)| *host)
}

/// The most entries each list of `[provider_policy]` may hold.
pub const MAX_POLICY_ENTRIES: usize = 256;

/// The longest entry of `[provider_policy]` lists, in bytes.
const MAX_POLICY_ENTRY_LEN: usize = 255;

/// Whether `var` is one of Gaia's own variables (`GAIA_*`, any case), which never hold a provider key.
pub fn is_gaia_variable(var: &str) -> bool {
    var.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("GAIA_"))
}

/// `[provider_policy]`: what providers added or replaced at runtime (the admin API, and the entries
/// re-read from the database) may do with the server's secrets. The `[[providers]]` of the
/// configuration itself are exempt: the administrator wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderPolicy {
    /// Environment variables an entry's `api_key_env` may name: exact names, or a prefix ending in
    /// `*` (`LLM_KEY_*`). `GAIA_*` variables are never allowed, whatever is listed. Default: the
    /// vendors' own `*_API_KEY` variables ([`DEFAULT_ALLOWED_KEY_ENVS`]).
    pub allowed_key_envs: Vec<String>,
    /// Hosts runtime providers may be pointed at (`api.openai.com`, `10.0.0.7:11434` for one port,
    /// `*.example.com` for its subdomains); a key read from an environment variable may be sent to
    /// any of them, over `https` only: a key (read from a variable or given in the entry) goes over
    /// plain `http` only to a loopback host or to a host listed with an explicit `http://`
    /// (`http://10.0.0.7:11434`), which says the administrator accepts it travelling in clear. Empty (the default): any host for entries without a key or with their own
    /// (`api_key`), but a key read from a variable only goes where the configuration's own
    /// `[[providers]]` send that variable, or to its vendor's host ([`vendor_key_host`]); and a
    /// provider that carries a key may not be re-pointed at another origin unless its key is restated.
    pub allowed_hosts: Vec<String>,
}

impl Default for ProviderPolicy {
    fn default() -> Self {
        ProviderPolicy {
            allowed_key_envs: DEFAULT_ALLOWED_KEY_ENVS.iter().map(|v| v.to_string()).collect(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl ProviderPolicy {
    /// Whether an entry added at runtime may read its key from the variable `var`.
    pub fn allows_key_env(&self, var: &str) -> bool {
        if is_gaia_variable(var) {
            return false;
        }
        self.allowed_key_envs.iter().any(|allowed| match allowed.strip_suffix('*') {
            Some(prefix) => !prefix.is_empty() && var.starts_with(prefix),
            None => allowed == var,
        })
    }

    /// Whether `allowed_hosts` restricts where runtime providers may point.
    pub fn restricts_hosts(&self) -> bool {
        !self.allowed_hosts.is_empty()
    }

    /// Whether `host` (as a URL parser gives it: lowercase, IPv6 in brackets) on `port` (explicit or
    /// the scheme's default) is listed in `allowed_hosts` (with or without a scheme).
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.matches_host(host, port, false)
    }

    /// Whether `host` on `port` is listed in `allowed_hosts` with an explicit `http://`: a key may be
    /// sent there in clear.
    pub fn allows_plain_http(&self, host: &str, port: u16) -> bool {
        self.matches_host(host, port, true)
    }

    /// Whether an entry of `allowed_hosts` (one written `http://…` when `plain_http`) lists `host`
    /// on `port`.
    fn matches_host(&self, host: &str, port: u16, plain_http: bool) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            let (scheme, allowed) = split_scheme(&allowed);
            if plain_http && scheme != Some("http") {
                return false;
            }
            let (name, want_port) = split_host_port(allowed);
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            match name.strip_prefix("*.") {
                Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
                None => host == name,
            }
        })
    }

    /// Checks the lists' entries.
    pub fn validate(&self) -> Result<()> {
        let key = |k: &str, m: String| CoreError::Config(format!("key `provider_policy.{k}`: {m}"));
        for (k, list) in [("allowed_key_envs", &self.allowed_key_envs), ("allowed_hosts", &self.allowed_hosts)] {
            if list.len() > MAX_POLICY_ENTRIES {
                return Err(key(k, format!("at most {MAX_POLICY_ENTRIES} entries")));
            }
            if let Some(e) = list.iter().find(|e| e.is_empty() || e.len() > MAX_POLICY_ENTRY_LEN) {
                return Err(key(k, format!("`{e}` must be 1 to {MAX_POLICY_ENTRY_LEN} bytes")));
            }
        }
        for var in &self.allowed_key_envs {
            let name = var.strip_suffix('*').unwrap_or(var);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(key(
                    "allowed_key_envs",
                    format!("`{var}` must be a variable name (letters, digits, `_`), or a prefix of one ending in `*`"),
                ));
            }
            if is_gaia_variable(name) {
                return Err(key(
                    "allowed_key_envs",
                    format!("`{var}`: Gaia's own GAIA_* variables never hold provider keys"),
                ));
            }
        }
        for entry in &self.allowed_hosts {
            let (_, host) = split_scheme(entry);
            let (name, _) = split_host_port(host);
            let name = name.strip_prefix("*.").unwrap_or(name);
            let ok = !name.is_empty()
                && (name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    || (name.starts_with('[') && name.ends_with(']')));
            if !ok || host.contains('/') || host.contains('@') {
                return Err(key(
                    "allowed_hosts",
                    format!(
                        "`{entry}` must be a host name or address, optionally with `:port`, a leading `*.`, or \
                         `http://` / `https://` before it"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `http://host` → (`Some("http")`, `host`); `https://host` likewise (any case); `host` → (`None`,
/// `host`).
fn split_scheme(s: &str) -> (Option<&'static str>, &str) {
    for scheme in ["https", "http"] {
        let n = scheme.len() + 3;
        if let (Some(head), Some(rest)) = (s.get(..n), s.get(n..)) {
            if head.get(..scheme.len()).is_some_and(|h| h.eq_ignore_ascii_case(scheme)) && head.ends_with("://") {
                return (Some(scheme), rest);
            }
        }
    }
    (None, s)
}

/// `host:port` → (`host`, port); a bare host (or `[v6]` address) → (host, `None`).
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => match p.parse::<u16>() {
            Ok(port) => (h, Some(port)),
            Err(_) => (s, None),
        },
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(envs: &[&str], hosts: &[&str]) -> ProviderPolicy {
        ProviderPolicy {
            allowed_key_envs: envs.iter().map(|s| s.to_string()).collect(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn key_variables_are_the_vendors_by_default_and_never_gaias() {
        let p = ProviderPolicy::default();
        assert!(p.allows_key_env("OPENAI_API_KEY") && p.allows_key_env("ANTHROPIC_API_KEY"));
        for var in ["GAIA_JWT_SECRET", "GAIA_SECRETS_KEY", "HOME", "PATH", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY2"] {
            assert!(!p.allows_key_env(var), "{var}");
        }
        let p = policy(&["LLM_*", "GAIA_JWT_SECRET", "*"], &[]);
        assert!(p.allows_key_env("LLM_ONE"));
        assert!(!p.allows_key_env("GAIA_JWT_SECRET"), "never, even when listed");
        assert!(!p.allows_key_env("gaia_jwt_secret") && !p.allows_key_env("HOME"), "a bare `*` matches nothing");
        assert!(!p.allows_key_env("GAIé_X") && !p.allows_key_env("é") && !p.allows_key_env(""), "no panic");
        assert!(p.validate().is_err());
        for bad in [&["GAIA_JWT_SECRET"][..], &["gaia_*"], &["*"], &["A B"], &[""]] {
            assert!(policy(bad, &[]).validate().is_err(), "{bad:?}");
        }
        assert!(policy(&["LLM_*", "MY_KEY"], &[]).validate().is_ok());
        assert!(ProviderPolicy::default().validate().is_ok());
        let many: Vec<String> = (0..=MAX_POLICY_ENTRIES).map(|i| format!("K{i}")).collect();
        assert!(ProviderPolicy { allowed_key_envs: many, allowed_hosts: vec![] }.validate().is_err());
    }

    #[test]
    fn vendor_variables_have_their_vendors_host() {
        assert_eq!(vendor_key_host("OPENAI_API_KEY"), Some("api.openai.com"));
        assert_eq!(vendor_key_host("ANTHROPIC_API_KEY"), Some("api.anthropic.com"));
        assert_eq!(vendor_key_host("AZURE_OPENAI_API_KEY"), None, "one host per Azure resource");
        assert_eq!(vendor_key_host("openai_api_key"), None);
        assert_eq!(vendor_key_host("MY_KEY"), None);
        for var in DEFAULT_ALLOWED_KEY_ENVS {
            assert!(vendor_key_host(var).is_some() || *var == "AZURE_OPENAI_API_KEY", "{var}");
        }
        for (var, _) in VENDOR_KEY_HOSTS {
            assert!(DEFAULT_ALLOWED_KEY_ENVS.contains(var), "{var}");
        }
    }

    #[test]
    fn keys_go_in_clear_only_to_hosts_listed_with_http() {
        let p = policy(&[], &["llm.internal", "HTTP://10.0.0.7:11434", "https://api.example.com", "http://*.lan"]);
        assert!(p.validate().is_ok());
        // Every entry allows pointing there, whatever its scheme.
        for (host, port) in [("llm.internal", 80), ("10.0.0.7", 11434), ("api.example.com", 443), ("a.lan", 8080)] {
            assert!(p.allows_host(host, port), "{host}:{port}");
        }
        // Only the ones written `http://` allow a key in clear.
        assert!(p.allows_plain_http("10.0.0.7", 11434) && p.allows_plain_http("box.lan", 80));
        assert!(!p.allows_plain_http("10.0.0.7", 80), "another port");
        assert!(!p.allows_plain_http("llm.internal", 80) && !p.allows_plain_http("api.example.com", 80));
        for bad in ["http://", "ftp://x", "http://a/b", "http://u@x", "https://"] {
            assert!(policy(&[], &[bad]).validate().is_err(), "{bad}");
        }
        assert!(!policy(&[], &["httpé://x"]).allows_plain_http("x", 80), "no panic");
    }

    #[test]
    fn hosts_match_by_name_port_and_subdomain() {
        let p = policy(&[], &["api.openai.com", "10.0.0.7:11434", "*.example.com", "[::1]:8080"]);
        assert!(p.restricts_hosts() && !ProviderPolicy::default().restricts_hosts());
        assert!(p.allows_host("api.openai.com", 443) && p.allows_host("api.openai.com", 8443));
        assert!(p.allows_host("api.openai.com.", 443), "trailing dot");
        assert!(p.allows_host("10.0.0.7", 11434) && !p.allows_host("10.0.0.7", 80));
        assert!(p.allows_host("a.example.com", 443) && p.allows_host("b.a.example.com", 80));
        assert!(!p.allows_host("example.com", 443) && !p.allows_host("evilexample.com", 443));
        assert!(!p.allows_host("api.openai.com.evil.example", 443));
        assert!(p.allows_host("[::1]", 8080) && !p.allows_host("[::1]", 80));
        assert!(p.validate().is_ok());
        // (`http://h` is valid: see `keys_go_in_clear_only_to_hosts_listed_with_http`.)
        for bad in ["ftp://h", "h/x", "u@h", "", "h:port", "*."] {
            assert!(policy(&[], &[bad]).validate().is_err(), "{bad}");
        }
    }
}
