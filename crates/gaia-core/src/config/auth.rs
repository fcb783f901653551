//! `[auth]`: registration, sign-in rate limits, password hashing bounds, trusted proxies.

use serde::{Deserialize, Serialize};

/// Who may create an account with `POST /api/v1/auth/register` (and the web UI's form).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone.
    #[default]
    Open,
    /// Only with an invitation an administrator created (`POST /api/v1/auth/invites`, or
    /// `gaia users invite`).
    Invite,
    /// Nobody: accounts are made from the command line (`gaia users create`).
    Closed,
}

/// Sign-in and registration settings (`[auth]`).
///
/// ```toml
/// [auth]
/// registration = "invite"              # "open" (default), "invite" or "closed"
/// trusted_proxies = ["10.0.0.0/8"]     # believe X-Forwarded-For from these peers only
///
/// [[auth.jwks]]                        # also accept tokens another identity provider signs
/// name = "supabase"
/// url = "https://abcd.supabase.co/auth/v1/.well-known/jwks.json"
/// issuer = "https://abcd.supabase.co/auth/v1"
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Who may register: `open`, `invite` or `closed`.
    pub registration: Registration,
    /// Lifetime of an invitation, in seconds (default 7 days, at most 30 days).
    pub invite_ttl_secs: u64,
    /// Addresses (`203.0.113.7`) or networks (`10.0.0.0/8`, `fd00::/8`) of reverse proxies whose
    /// `X-Forwarded-For` header names the client. Empty (the default): the client is the peer address.
    pub trusted_proxies: Vec<String>,
    /// The window of the sign-in and registration limits below, in seconds.
    pub window_secs: u64,
    /// Failed sign-ins allowed per account per window (0: no limit).
    pub login_failures_per_account: u64,
    /// Sign-in attempts allowed per client address per window (0: no limit).
    pub login_attempts_per_address: u64,
    /// Registrations allowed per client address per window (0: no limit).
    pub registrations_per_address: u64,
    /// Most password hashes computed at once (each takes about 19 MiB); 0: the number of CPUs.
    pub hash_concurrency: usize,
    /// Most sign-ins and registrations waiting for a hashing slot; more are refused with 503 and
    /// `Retry-After`.
    pub hash_queue: usize,
    /// Identity providers whose tokens are accepted besides Gaia's own (`[[auth.jwks]]`): each token
    /// is verified with the public keys its issuer publishes (RS256, ES256, EdDSA).
    pub jwks: Vec<JwksProvider>,
}

/// An identity provider whose JWTs Gaia accepts, verified with the public keys it publishes as a
/// JSON Web Key Set (RFC 7517): Supabase's asymmetric keys, a studio's own sign-in service, any
/// OpenID Connect provider.
///
/// A token is verified with this provider's keys when its `iss` claim is `issuer`; its `sub` (after
/// `subject_prefix`) is the Gaia user id, created on first sight as for Gaia's own tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwksProvider {
    /// A name for logs (`supabase`, `studio-sign-in`).
    pub name: String,
    /// Where the provider publishes its keys, e.g.
    /// `https://<project>.supabase.co/auth/v1/.well-known/jwks.json`: `https`, or `http` on a
    /// loopback address only (keys fetched over plain HTTP could be replaced on the way).
    pub url: String,
    /// The `iss` claim of the provider's tokens, e.g. `https://<project>.supabase.co/auth/v1`.
    pub issuer: String,
    /// The accepted `aud` values; a token must name one (default `["authenticated"]`, Supabase's).
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
    /// The accepted signature algorithms (default `RS256`, `ES256`, `EdDSA`; also `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES384`). Symmetric algorithms (`HS256`…) are refused: a key set
    /// is public.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Put before the token's subject to make the Gaia user id (default: none, the subject is the
    /// user id, as with Supabase's HS256 tokens). With several providers, give each its own prefix
    /// (`studio:`) so that the same subject at two providers is not one user.
    #[serde(default)]
    pub subject_prefix: String,
    /// Keys older than this many seconds are fetched again (default 600, from 30 to 86400).
    #[serde(default = "default_jwks_refresh")]
    pub refresh_secs: u64,
    /// A token signed with a key not in the set fetches the set again (a rotation), at most once per
    /// this many seconds (default 30, from 1 to 3600): tokens naming made-up keys cannot make Gaia
    /// fetch on every request.
    #[serde(default = "default_jwks_refetch")]
    pub refetch_secs: u64,
}

fn default_audiences() -> Vec<String> {
    vec!["authenticated".to_string()]
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].into_iter().map(String::from).collect()
}

fn default_jwks_refresh() -> u64 {
    600
}

fn default_jwks_refetch() -> u64 {
    30
}

/// The signature algorithms a `[[auth.jwks]]` provider may list.
pub const JWKS_ALGORITHMS: [&str; 9] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// Most `[[auth.jwks]]` providers.
pub const MAX_JWKS_PROVIDERS: usize = 16;

/// Whether `url` is `https`, or `http` to a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`), with
/// no user name or password in it; parsed as the HTTP client parses it.
fn secure_or_loopback(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    if url.len() > 2048 || !parsed.username().is_empty() || parsed.password().is_some() {
        return false;
    }
    match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(host)) => !host.is_empty(),
        ("http", Some(host)) => crate::net::is_loopback_host(host),
        _ => false,
    }
}

impl JwksProvider {
    fn validate(&self) -> crate::Result<()> {
        let err = |m: String| Err(crate::CoreError::Config(format!("`[[auth.jwks]]` `{}`: {m}", self.name)));
        if self.name.trim().is_empty() || self.name.len() > 64 || self.name.chars().any(char::is_control) {
            return Err(crate::CoreError::Config(
                "`[[auth.jwks]]`: `name` must be 1 to 64 printable characters".into(),
            ));
        }
        if !secure_or_loopback(&self.url) {
            return err("`url` must be an https URL (or http on a loopback address)".into());
        }
        if self.issuer.is_empty() || self.issuer.len() > 512 || self.issuer.chars().any(char::is_control) {
            return err("`issuer` must be 1 to 512 printable characters".into());
        }
        if self.audiences.is_empty()
            || self.audiences.len() > 16
            || self.audiences.iter().any(|a| a.is_empty() || a.len() > 512)
        {
            return err("`audiences` must name 1 to 16 audiences".into());
        }
        if self.algorithms.is_empty() || self.algorithms.len() > JWKS_ALGORITHMS.len() {
            return err("`algorithms` must name at least one algorithm".into());
        }
        if let Some(a) = self.algorithms.iter().find(|a| !JWKS_ALGORITHMS.contains(&a.as_str())) {
            return err(format!("algorithm `{a}` is not accepted (one of {})", JWKS_ALGORITHMS.join(", ")));
        }
        if self.subject_prefix.len() > 64 || self.subject_prefix.chars().any(char::is_control) {
            return err("`subject_prefix` must be at most 64 printable characters".into());
        }
        if !(30..=86_400).contains(&self.refresh_secs) {
            return err("`refresh_secs` must be between 30 and 86400".into());
        }
        if !(1..=3_600).contains(&self.refetch_secs) {
            return err("`refetch_secs` must be between 1 and 3600".into());
        }
        Ok(())
    }
}

/// Longest accepted `auth.invite_ttl_secs` (30 days).
pub const MAX_INVITE_TTL_SECS: u64 = 30 * 24 * 3600;

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            registration: Registration::Open,
            invite_ttl_secs: 7 * 24 * 3600,
            trusted_proxies: Vec::new(),
            window_secs: 300,
            login_failures_per_account: 10,
            login_attempts_per_address: 60,
            registrations_per_address: 30,
            hash_concurrency: 0,
            hash_queue: 32,
            jwks: Vec::new(),
        }
    }
}

/// Parses a trusted proxy entry: an address, or a network `address/prefix`.
pub fn parse_network(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((addr, prefix))
}

impl AuthConfig {
    /// Checks values that parse but make no sense.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let err = |m: String| Err(crate::CoreError::Config(m));
        if self.window_secs == 0 || self.window_secs > 24 * 3600 {
            return err("key `auth.window_secs`: must be between 1 and 86400".into());
        }
        if self.invite_ttl_secs == 0 || self.invite_ttl_secs > MAX_INVITE_TTL_SECS {
            return err(format!("key `auth.invite_ttl_secs`: must be between 1 and {MAX_INVITE_TTL_SECS}"));
        }
        if self.hash_concurrency > 1024 {
            return err("key `auth.hash_concurrency`: must be at most 1024".into());
        }
        if self.hash_queue > 100_000 {
            return err("key `auth.hash_queue`: must be at most 100000".into());
        }
        if self.trusted_proxies.len() > 1024 {
            return err("key `auth.trusted_proxies`: at most 1024 entries".into());
        }
        for p in &self.trusted_proxies {
            if parse_network(p).is_none() {
                return err(format!("key `auth.trusted_proxies`: `{p}` is not an address or network like 10.0.0.0/8"));
            }
        }
        if self.jwks.len() > MAX_JWKS_PROVIDERS {
            return err(format!("`[[auth.jwks]]`: at most {MAX_JWKS_PROVIDERS} providers"));
        }
        for (i, p) in self.jwks.iter().enumerate() {
            p.validate()?;
            let earlier = &self.jwks[..i];
            if earlier.iter().any(|e| e.issuer == p.issuer) {
                return err(format!("`[[auth.jwks]]`: two providers have the issuer `{}`", p.issuer));
            }
            if earlier.iter().any(|e| e.subject_prefix == p.subject_prefix) {
                return err(format!(
                    "`[[auth.jwks]]` `{}`: another provider has the same `subject_prefix`; give each its own, \
                     or the same subject at two providers would be one user",
                    p.name
                ));
            }
        }
        Ok(())
    }
}
