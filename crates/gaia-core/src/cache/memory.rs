//! In-process cache on moka.

use super::Cache;
use crate::error::Result;
use async_trait::async_trait;
use moka::future::Cache as Moka;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Bounded in-process cache with a TTL per entry (least recently used entries are evicted first when full).
#[derive(Clone)]
pub struct MemoryCache {
    inner: Moka<String, Entry>,
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        MemoryCache { inner: Moka::builder().max_capacity(capacity).expire_after(PerEntryTtl).build() }
    }

    /// Approximate number of live entries.
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get(key).await.map(|e| e.value.to_vec()))
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.inner.insert(key.to_string(), Entry { value: value.into(), ttl }).await;
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.invalidate(key).await;
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
