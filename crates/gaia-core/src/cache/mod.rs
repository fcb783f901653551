//! Caching: a small byte-oriented [`Cache`] trait with an in-process implementation ([`MemoryCache`],
//! bounded, per-entry TTL) and a shared one ([`RedisCache`]).

mod memory;
mod redis;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

use crate::config::Config;
use crate::error::Result;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A key-value cache with per-entry time to live.
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl`.
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
