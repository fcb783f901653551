//! API-key authentication: cached validation (the hot path of every request) against the uncached
//! baseline (a database lookup), on SQLite, in the same run.
//!
//! `cargo bench -p gaia-benches --bench auth`

use criterion::{criterion_group, criterion_main, Criterion};
use gaia_core::auth::{hash_api_key, Authenticator, JwtKeys};
use gaia_core::cache::MemoryCache;
use gaia_core::storage::Storage;
use std::sync::Arc;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile_dir();
    let url = format!("sqlite://{}/bench.db", dir.display());
    let (auth, storage, key) = rt.block_on(async {
        let storage = Storage::connect(&url).await.unwrap();
        storage.migrate().await.unwrap();
        let user = storage.create_user("bench@example.com", None, None).await.unwrap();
        let auth = Authenticator::new(
            storage.clone(),
            Arc::new(MemoryCache::new(10_000)),
            JwtKeys::random(),
            Duration::from_secs(3600),
        );
        let (_, key) = auth.create_api_key(&user.id, None).await.unwrap();
        auth.authenticate_api_key(&key).await.unwrap(); // warm the cache
        (auth, storage, key)
    });
    let hash = hash_api_key(&key);
    let mut g = c.benchmark_group("api_key");
    g.bench_function("uncached_db_lookup", |b| {
        b.to_async(&rt).iter(|| async { storage.find_api_key_by_hash(&hash).await.unwrap().unwrap() })
    });
    g.bench_function("cached_validate", |b| {
        b.to_async(&rt).iter(|| async { auth.authenticate_api_key(&key).await.unwrap() })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gaia-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
