//! Settings for running several instances: the event bus and rate limits.

use serde::{Deserialize, Serialize};

/// The event bus (`[events]`). Events cross instances over NATS when `nats_url` is set (feature
/// `nats`), else over Redis pub/sub when `redis_url` is set, else they stay in-process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// The Redis channel or NATS subject the instances share.
    pub channel: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { channel: "gaia.events".to_string() }
    }
}

/// Default rate limits (`[limits]`), per minute over a sliding window, shared by every instance
/// through Redis when `redis_url` is set. 0 means unlimited. Limits set for one user or key through
/// the admin API (`/api/v1/limits`) replace these defaults for that user or key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Model requests per minute per API key.
    pub key_requests_per_minute: u64,
    /// Tokens (input + output) per minute per API key.
    pub key_tokens_per_minute: u64,
    /// Model requests per minute per user (all their keys and sessions together).
    pub user_requests_per_minute: u64,
    /// Tokens (input + output) per minute per user.
    pub user_tokens_per_minute: u64,
    /// Model requests per minute per end user (each player a caller names, within that caller's
    /// players); a key's `key_end_users` limit replaces it for that key's players.
    pub end_user_requests_per_minute: u64,
    /// Tokens (input + output) per minute per end user.
    pub end_user_tokens_per_minute: u64,
}
