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
        Ok(())
    }
}
