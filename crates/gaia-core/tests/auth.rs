//! Authenticator tests over real storage (SQLite, and PostgreSQL when configured) and both caches.

use gaia_core::auth::{AuthMethod, Authenticator, Claims, JwtKeys};
use gaia_core::cache::{MemoryCache, RedisCache, SharedCache};
use gaia_core::storage::Storage;
use gaia_core::testing::{database_urls, redis_url};
use gaia_core::CoreError;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

async fn caches() -> Vec<SharedCache> {
    let mut v: Vec<SharedCache> = vec![Arc::new(MemoryCache::new(1000))];
    if let Some(url) = redis_url() {
        let prefix = format!("gaia-test:{}:", uuid::Uuid::new_v4().simple());
        v.push(Arc::new(RedisCache::connect_with_prefix(&url, &prefix).await.unwrap()));
    }
    v
}

#[tokio::test]
async fn api_keys_validate_and_revoke_at_once() {
    for db in database_urls().await {
        for cache in caches().await {
            let s = Storage::connect(&db.url).await.unwrap();
            s.migrate().await.unwrap();
            let user = s.create_user(&format!("{}@example.com", uuid::Uuid::new_v4()), None, None).await.unwrap();
            let auth = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), Duration::from_secs(300));
            let (rec, key) = auth.create_api_key(&user.id, Some("game")).await.unwrap();
            assert!(key.starts_with(&rec.prefix));
            for _ in 0..3 {
                // First call fills the cache, the next ones are served from it.
                let p = auth.authenticate_api_key(&key).await.unwrap();
                assert_eq!(p.user_id, user.id);
                assert_eq!(p.method, AuthMethod::ApiKey { key_id: rec.id.clone() });
            }
            let p = auth.authenticate_bearer(&key).await.unwrap();
            assert_eq!(p.user_id, user.id);
            // Revocation takes effect immediately even though the key was cached for 300 s.
            auth.revoke_api_key(&rec.id).await.unwrap().unwrap();
            let e = auth.authenticate_api_key(&key).await.unwrap_err();
            assert!(
                matches!(e, CoreError::Unauthorized(ref m) if m.contains("revoked")),
                "{} {}: {e}",
                db.backend,
                cache.kind()
            );
            assert!(matches!(auth.authenticate_api_key("gaia_nope").await, Err(CoreError::Unauthorized(_))));
            assert!(matches!(auth.authenticate_api_key("").await, Err(CoreError::Unauthorized(_))));
            assert!(auth.revoke_api_key("no-such-key").await.unwrap().is_none());
        }
    }
}

#[tokio::test]
async fn jwt_bearer_creates_external_users() {
    for db in database_urls().await {
        let s = Storage::connect(&db.url).await.unwrap();
        s.migrate().await.unwrap();
        let keys = JwtKeys::new(SECRET);
        let auth = Authenticator::new(s.clone(), Arc::new(MemoryCache::new(10)), keys.clone(), Duration::from_secs(60));
        let token = keys.issue("ext-user-42", Some("player@example.com"), Duration::from_secs(60)).unwrap();
        let p = auth.authenticate_bearer(&token).await.unwrap();
        assert_eq!(p.user_id, "ext-user-42", "{}", db.backend);
        assert_eq!(p.method, AuthMethod::Jwt);
        assert_eq!(s.get_user("ext-user-42").await.unwrap().unwrap().email, "player@example.com");
        let expired = keys
            .sign(&Claims { sub: "x".into(), exp: 10, iat: 0, aud: "authenticated".into(), email: None, role: None })
            .unwrap();
        assert!(matches!(auth.authenticate_bearer(&expired).await, Err(CoreError::Unauthorized(_))));
        let forged = JwtKeys::new(b"another-secret-another-secret-an")
            .issue("ext-user-42", None, Duration::from_secs(60))
            .unwrap();
        assert!(matches!(auth.authenticate_bearer(&forged).await, Err(CoreError::Unauthorized(_))));
    }
}
