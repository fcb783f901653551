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
