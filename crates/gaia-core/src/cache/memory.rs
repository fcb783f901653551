//! In-process cache on moka.

use super::{clamp_ttl, Cache};
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

/// Gives each entry the TTL it was stored with; an update restarts the clock with the new TTL.
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

/// Bounded in-process cache with a TTL per entry. When full, moka's TinyLFU policy decides what to keep.
/// Cheap to clone (clones share the entries).
#[derive(Clone)]
pub struct MemoryCache {
    inner: Moka<String, Entry>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("capacity", &self.inner.policy().max_capacity())
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        MemoryCache { inner: Moka::builder().max_capacity(capacity).expire_after(PerEntryTtl).build() }
    }

    /// Approximate number of live entries (moka applies writes and evictions lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Applies pending evictions and expirations now (useful in tests).
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get(key).await.map(|e| e.value.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.inner.insert(key.to_string(), Entry { value: value.into(), ttl: clamp_ttl(ttl) }).await;
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
