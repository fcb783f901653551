//! Cache tests: in-process always, Redis when `GAIA_TEST_REDIS_URL` is set.

use gaia_core::cache::{Cache, MemoryCache, RedisCache};
use gaia_core::testing::redis_url;
use std::time::Duration;

async fn exercise(c: &dyn Cache) {
    assert_eq!(c.get("k").await.unwrap(), None);
    c.set("k", b"v1", Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    c.set("k", b"v2", Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    c.delete("k").await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), None);
    c.delete("never-set").await.unwrap();
    c.set("short", b"x", Duration::from_millis(50)).await.unwrap();
    // Expiry: poll with a bound rather than assert timings.
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if c.get("short").await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "{} entry did not expire", c.kind());
    c.ping().await.unwrap();
}

#[tokio::test]
async fn memory_cache() {
    exercise(&MemoryCache::new(100)).await;
}

#[tokio::test]
async fn memory_cache_is_bounded() {
    let c = MemoryCache::new(10);
    for i in 0..1000 {
        c.set(&format!("k{i}"), b"x", Duration::from_secs(60)).await.unwrap();
    }
    // moka applies evictions lazily; reading through the whole range forces pending maintenance.
    let mut present = 0;
    for i in 0..1000 {
        if c.get(&format!("k{i}")).await.unwrap().is_some() {
            present += 1;
        }
    }
    assert!(present <= 20, "{present} entries kept for a capacity of 10");
}

#[tokio::test]
async fn redis_cache() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("gaia-test:{}:", uuid::Uuid::new_v4().simple());
    let c = RedisCache::connect_with_prefix(&url, &prefix).await.unwrap();
    assert_eq!(c.kind(), "redis");
    exercise(&c).await;
}

/// Polls until `key` is gone (expiry timing is not exact on either backend).
async fn expires(c: &dyn Cache, key: &str) -> bool {
    for _ in 0..100 {
        if c.get(key).await.unwrap().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn exercise_ttls(c: &dyn Cache) {
    // Each entry keeps its own TTL.
    c.set("short", b"s", Duration::from_millis(60)).await.unwrap();
    c.set("long", b"l", Duration::from_secs(60)).await.unwrap();
    assert!(expires(c, "short").await, "{}", c.kind());
    assert_eq!(c.get("long").await.unwrap().as_deref(), Some(&b"l"[..]), "{}", c.kind());
    // Replacing a value replaces its TTL.
    c.set("renewed", b"1", Duration::from_millis(60)).await.unwrap();
    c.set("renewed", b"2", Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(c.get("renewed").await.unwrap().as_deref(), Some(&b"2"[..]), "{}", c.kind());
    // A zero TTL stores nothing lasting; an absurd one is capped instead of failing.
    c.set("zero", b"z", Duration::ZERO).await.unwrap();
    assert!(expires(c, "zero").await, "{}", c.kind());
    c.set("forever", b"f", Duration::MAX).await.unwrap();
    assert!(c.get("forever").await.unwrap().is_some(), "{}", c.kind());
    // Values are bytes, not text.
    let bytes: Vec<u8> = (0..=255).collect();
    c.set("binary", &bytes, Duration::from_secs(60)).await.unwrap();
    assert_eq!(c.get("binary").await.unwrap(), Some(bytes), "{}", c.kind());
    c.set("", b"empty key", Duration::from_secs(60)).await.unwrap();
    assert_eq!(c.get("").await.unwrap().as_deref(), Some(&b"empty key"[..]));
    c.set("empty value", b"", Duration::from_secs(60)).await.unwrap();
    assert_eq!(c.get("empty value").await.unwrap().as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn memory_cache_ttls() {
    exercise_ttls(&MemoryCache::new(100)).await;
}

#[tokio::test]
async fn redis_cache_ttls() {
    let Some(c) = gaia_core::testing::redis_cache().await else { return };
    exercise_ttls(&c).await;
}

#[tokio::test]
async fn redis_keys_are_prefixed_with_gaia() {
    let Some(url) = redis_url() else { return };
    let c = RedisCache::connect(&url).await.unwrap();
    assert_eq!(c.prefix(), "gaia:");
    let key = format!("prefix-test:{}", uuid::Uuid::new_v4());
    c.set(&key, b"v", Duration::from_secs(30)).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET").arg(format!("gaia:{key}")).query_async(&mut raw).await.unwrap();
    assert_eq!(stored.as_deref(), Some(&b"v"[..]));
    let ttl: i64 = redis::cmd("PTTL").arg(format!("gaia:{key}")).query_async(&mut raw).await.unwrap();
    assert!(ttl > 0 && ttl <= 30_000, "SET with PX: {ttl}");
    c.delete(&key).await.unwrap();
    let exists: i64 = redis::cmd("EXISTS").arg(format!("gaia:{key}")).query_async(&mut raw).await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn caches_are_shared_between_clones() {
    let a = MemoryCache::new(10);
    let b = a.clone();
    a.set("k", b"v", Duration::from_secs(60)).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    b.run_pending_tasks().await;
    assert_eq!(b.entry_count(), 1);
    assert!(format!("{a:?}").contains("MemoryCache"));
}
