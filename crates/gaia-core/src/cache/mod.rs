//! Caching: a small byte-oriented [`Cache`] trait with an in-process implementation ([`MemoryCache`],
//! bounded, per-entry TTL) and a shared one ([`RedisCache`], keys prefixed `gaia:`).
//!
//! Values are opaque bytes; callers serialise what they store (the [`Authenticator`] stores JSON).
//! Time to live is per entry and capped at [`MAX_TTL`].
//!
//! [`Authenticator`]: crate::auth::Authenticator
//!
//! ```
//! use gaia_core::cache::{Cache, MemoryCache};
//! use std::time::Duration;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = MemoryCache::new(1_000);
//! cache.set("greeting", b"hello", Duration::from_secs(60)).await?;
//! assert_eq!(cache.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! cache.delete("greeting").await?;
//! assert_eq!(cache.get("greeting").await?, None);
//! # Ok::<(), gaia_core::CoreError>(())
//! # }).unwrap();
//! ```

mod memory;
mod redis;

pub use self::memory::MemoryCache;
pub use self::redis::{RedisCache, DEFAULT_PREFIX};

use crate::config::Config;
use crate::error::Result;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Longest time to live an entry can get; longer requests are shortened to this (one year).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A key-value cache with per-entry time to live. Errors are [`CoreError::Cache`](crate::CoreError::Cache).
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl` (at most [`MAX_TTL`]), replacing any previous value and TTL.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()>;
    /// Removes `key` (no error if absent).
    async fn delete(&self, key: &str) -> Result<()>;
    /// `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;
    /// Checks the backend is reachable.
    async fn ping(&self) -> Result<()>;
}

/// A cache shared across the application.
pub type SharedCache = Arc<dyn Cache>;

/// Redis when `redis_url` is configured, otherwise an in-process cache of `cache.capacity` entries.
pub async fn from_config(config: &Config) -> Result<SharedCache> {
    match &config.redis_url {
        Some(url) => Ok(Arc::new(RedisCache::connect(url).await?)),
        None => Ok(Arc::new(MemoryCache::new(config.cache.capacity))),
    }
}

/// `ttl` capped at [`MAX_TTL`].
pub(crate) fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.min(MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn from_config_defaults_to_memory() {
        let c = from_config(&Config::default()).await.unwrap();
        assert_eq!(c.kind(), "memory");
        c.ping().await.unwrap();
        assert_eq!(clamp_ttl(Duration::MAX), MAX_TTL);
        assert_eq!(clamp_ttl(Duration::from_secs(1)), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn from_config_reports_unreachable_redis() {
        // Port 1 on loopback refuses connections.
        let cfg = Config { redis_url: Some("redis://127.0.0.1:1".into()), ..Config::default() };
        let e = from_config(&cfg).await.err().expect("unreachable redis must fail");
        assert!(matches!(e, crate::CoreError::Cache(_)), "{e}");
    }
}
