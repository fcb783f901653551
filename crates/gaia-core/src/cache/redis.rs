//! Redis-backed cache, shared by every instance.

use super::{clamp_ttl, Cache};
use crate::config::redact_url;
use crate::error::{CoreError, Result};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use std::time::Duration;

/// Key prefix used by [`RedisCache::connect`].
pub const DEFAULT_PREFIX: &str = "gaia:";

/// Cache in Redis; keys are prefixed with `gaia:`. Cheap to clone.
///
/// Built on a [`ConnectionManager`], so it reconnects on its own after Redis restarts. Connecting times
/// out after 2 s and each command after 1 s, so an unhealthy Redis turns into [`CoreError::Cache`]
/// errors instead of stuck requests.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to `url` (`redis://[:password@]host:port[/db]`).
    pub async fn connect(url: &str) -> Result<RedisCache> {
        Self::connect_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// Connects with a custom key prefix (tests use one per test so they can run in parallel).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisCache> {
        let client =
            redis::Client::open(url).map_err(|e| CoreError::Config(format!("redis_url `{}`: {e}", redact_url(url))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| CoreError::Cache(format!("cannot connect to redis at {}: {e}", redact_url(url))))?;
        Ok(RedisCache { conn, prefix: prefix.to_string() })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
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
        // PX needs at least 1 ms; MAX_TTL keeps the value far from Redis' limit.
        let ms = u64::try_from(clamp_ttl(ttl).as_millis()).unwrap_or(u64::MAX).max(1);
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
        let pong: String = redis::cmd("PING").query_async(&mut c).await?;
        if pong != "PONG" {
            return Err(CoreError::Cache(format!("unexpected PING reply `{pong}`")));
        }
        Ok(())
    }
}
