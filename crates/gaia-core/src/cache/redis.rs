//! Redis-backed cache, shared by every instance.

use super::Cache;
use crate::error::{CoreError, Result};
use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use std::time::Duration;

/// Cache in Redis; keys are prefixed with `gaia:`. Reconnects on its own after Redis restarts.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisCache {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<RedisCache> {
        Self::connect_with_prefix(url, "gaia:").await
    }

    /// Connects with a custom key prefix (tests use one per test).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisCache> {
        let client = redis::Client::open(url)
            .map_err(|e| CoreError::Config(format!("redis_url: {e} ({})", crate::config::redact_url(url))))?;
        let conn = ConnectionManager::new(client).await.map_err(|e| {
            CoreError::Cache(format!("cannot connect to redis at {}: {e}", crate::config::redact_url(url)))
        })?;
        Ok(RedisCache { conn, prefix: prefix.to_string() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.conn.clone();
        Ok(c.get(self.key(key)).await?)
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let mut c = self.conn.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: () = redis::cmd("SET").arg(self.key(key)).arg(value).arg("PX").arg(ms).query_async(&mut c).await?;
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = c.del(self.key(key)).await?;
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "redis"
    }
    async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}
