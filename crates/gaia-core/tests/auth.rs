//! Authenticator tests over real storage (SQLite, and PostgreSQL when configured) and both caches.

use gaia_core::auth::{hash_api_key, AuthMethod, Authenticator, Claims, JwtKeys};
use gaia_core::cache::{MemoryCache, SharedCache};
use gaia_core::storage::Storage;
use gaia_core::testing::{database_urls, redis_cache};
use gaia_core::CoreError;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

async fn caches() -> Vec<SharedCache> {
    let mut v: Vec<SharedCache> = vec![Arc::new(MemoryCache::new(1000))];
    if let Some(redis) = redis_cache().await {
        v.push(Arc::new(redis));
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
            .sign(&Claims {
                sub: "x".into(),
                exp: 10,
                iat: 0,
                aud: "authenticated".into(),
                email: None,
                role: None,
                sid: None,
            })
            .unwrap();
        assert!(matches!(auth.authenticate_bearer(&expired).await, Err(CoreError::Unauthorized(_))));
        let forged = JwtKeys::new(b"another-secret-another-secret-an")
            .issue("ext-user-42", None, Duration::from_secs(60))
            .unwrap();
        assert!(matches!(auth.authenticate_bearer(&forged).await, Err(CoreError::Unauthorized(_))));
    }
}

/// A cache whose backend is down: every operation fails.
struct BrokenCache;

#[async_trait::async_trait]
impl gaia_core::cache::Cache for BrokenCache {
    async fn get(&self, _key: &str) -> gaia_core::Result<Option<Vec<u8>>> {
        Err(CoreError::Cache("down".into()))
    }
    async fn set(&self, _key: &str, _value: &[u8], _ttl: Duration) -> gaia_core::Result<()> {
        Err(CoreError::Cache("down".into()))
    }
    async fn delete(&self, _key: &str) -> gaia_core::Result<()> {
        Err(CoreError::Cache("down".into()))
    }
    fn kind(&self) -> &'static str {
        "broken"
    }
    async fn ping(&self) -> gaia_core::Result<()> {
        Err(CoreError::Cache("down".into()))
    }
}

async fn storage_with_user(db: &gaia_core::testing::TestDb) -> (Storage, gaia_core::storage::User) {
    let s = db.storage().await;
    let user = s.create_user(&format!("{}@example.com", uuid::Uuid::new_v4()), None, None).await.unwrap();
    (s, user)
}

#[tokio::test]
async fn validations_are_cached_by_hash_without_the_plaintext() {
    for db in database_urls().await {
        for cache in caches().await {
            let (s, user) = storage_with_user(&db).await;
            let auth = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), Duration::from_secs(300));
            let (rec, key) = auth.create_api_key(&user.id, None).await.unwrap();
            let ck = format!("apikey:{}", hash_api_key(&key));
            assert!(cache.get(&ck).await.unwrap().is_none());
            auth.authenticate_api_key(&key).await.unwrap();
            let cached = cache.get(&ck).await.unwrap().expect("validation cached under the key hash");
            let text = String::from_utf8_lossy(&cached);
            assert!(!text.contains(&key), "{} {}: plaintext in the cache", db.backend, cache.kind());
            assert!(text.contains(&rec.id) && text.contains(&user.id), "{text}");

            // Served from the cache: the database no longer knowing the key does not matter until the
            // TTL ends (that is what caching means; revocation goes through `revoke_api_key`).
            sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(&rec.id).execute(s.pool()).await.unwrap();
            assert_eq!(auth.authenticate_api_key(&key).await.unwrap().api_key_id(), Some(rec.id.as_str()));
            cache.delete(&ck).await.unwrap();
            let e = auth.authenticate_api_key(&key).await.unwrap_err();
            assert!(matches!(e, CoreError::Unauthorized(ref m) if m == "invalid API key"), "{e}");
        }
    }
}

#[tokio::test]
async fn revocation_reaches_other_instances_sharing_the_cache() {
    for db in database_urls().await {
        for cache in caches().await {
            let (s, user) = storage_with_user(&db).await;
            let ttl = Duration::from_secs(300);
            let a = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), ttl);
            let b = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), ttl);
            let (rec, key) = a.create_api_key(&user.id, Some("shared")).await.unwrap();
            a.authenticate_api_key(&key).await.unwrap();
            b.authenticate_api_key(&key).await.unwrap();
            b.revoke_api_key(&rec.id).await.unwrap().unwrap();
            for auth in [&a, &b] {
                let e = auth.authenticate_api_key(&key).await.unwrap_err();
                assert!(matches!(e, CoreError::Unauthorized(ref m) if m.contains("revoked")), "{}: {e}", cache.kind());
            }
            // Revoking again is harmless and keeps the first revocation time.
            let again = b.revoke_api_key(&rec.id).await.unwrap().unwrap();
            assert_eq!(again.revoked_at, s.get_api_key(&rec.id).await.unwrap().unwrap().revoked_at);
        }
    }
}

#[tokio::test]
async fn last_use_is_recorded_at_most_once_a_minute() {
    let db = gaia_core::testing::sqlite_db();
    let (s, user) = storage_with_user(&db).await;
    let auth = Authenticator::new(s.clone(), Arc::new(MemoryCache::new(10)), JwtKeys::new(SECRET), Duration::ZERO);
    let (rec, key) = auth.create_api_key(&user.id, None).await.unwrap();
    auth.authenticate_api_key(&key).await.unwrap();
    let mut first = None;
    for _ in 0..200 {
        first = s.get_api_key(&rec.id).await.unwrap().unwrap().last_used_at;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = first.expect("last_used_at is written in the background");
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        auth.authenticate_api_key(&key).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        s.get_api_key(&rec.id).await.unwrap().unwrap().last_used_at,
        Some(first),
        "not rewritten within a minute"
    );
}

#[tokio::test]
async fn a_broken_cache_does_not_lock_users_out() {
    let db = gaia_core::testing::sqlite_db();
    let (s, user) = storage_with_user(&db).await;
    let auth = Authenticator::new(s.clone(), Arc::new(BrokenCache), JwtKeys::new(SECRET), Duration::from_secs(60));
    let (rec, key) = auth.create_api_key(&user.id, None).await.unwrap();
    assert_eq!(auth.authenticate_api_key(&key).await.unwrap().user_id, user.id);
    let token = auth.jwt().issue(&user.id, None, Duration::from_secs(60)).unwrap();
    assert_eq!(auth.authenticate_bearer(&token).await.unwrap().user_id, user.id);
    // The database is revoked; the eviction failure is reported, and this instance refuses the key.
    let e = auth.revoke_api_key(&rec.id).await.unwrap_err();
    assert!(matches!(e, CoreError::Cache(ref m) if m.contains("revoked")), "{e}");
    assert!(s.get_api_key(&rec.id).await.unwrap().unwrap().is_revoked());
    assert!(matches!(auth.authenticate_api_key(&key).await, Err(CoreError::Unauthorized(_))));
}

#[tokio::test]
async fn bearer_values_and_bad_credentials() {
    let db = gaia_core::testing::sqlite_db();
    let (s, user) = storage_with_user(&db).await;
    let keys = JwtKeys::new(SECRET);
    let auth = Authenticator::new(s.clone(), Arc::new(MemoryCache::new(10)), keys.clone(), Duration::from_secs(60));
    let (_, key) = auth.create_api_key(&user.id, None).await.unwrap();
    for value in [key.clone(), format!("Bearer {key}"), format!("bearer   {key}  "), format!(" {key}\n")] {
        assert_eq!(auth.authenticate_bearer(&value).await.unwrap().user_id, user.id, "{value:?}");
    }
    let token = keys.issue(&user.id, Some(&user.email), Duration::from_secs(60)).unwrap();
    let p = auth.authenticate_bearer(&format!("Bearer {token}")).await.unwrap();
    assert_eq!((p.user_id.as_str(), p.method.clone()), (user.id.as_str(), AuthMethod::Jwt));
    assert_eq!(p.api_key_id(), None);

    let long = "x".repeat(10_000);
    for (value, want) in [
        ("", "missing"),
        ("Bearer ", "missing"),
        ("gaia_nope", "invalid API key"),
        (long.as_str(), "invalid API key"),
        ("a.b.c", "invalid API key"),
        ("ünïcödé", "invalid API key"),
    ] {
        let e = auth.authenticate_bearer(value).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthorized(ref m) if m.contains(want)), "{value:?}: {e}");
    }
    // A JWT-shaped value that is not valid is refused as a JWT.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let e = auth.authenticate_bearer(&tampered).await.unwrap_err();
    assert!(matches!(e, CoreError::Unauthorized(ref m) if m.contains("token")), "{e}");

    let long_name = "n".repeat(gaia_core::auth::MAX_KEY_NAME + 1);
    assert!(matches!(auth.create_api_key(&user.id, Some(&long_name)).await, Err(CoreError::InvalidInput(_))));
    assert!(matches!(auth.create_api_key("ghost", None).await, Err(CoreError::NotFound(_))));
}

#[tokio::test]
async fn jwt_users_are_cached_and_can_be_evicted() {
    for db in database_urls().await {
        for cache in caches().await {
            let s = db.storage().await;
            let keys = JwtKeys::new(SECRET);
            let auth = Authenticator::new(s.clone(), cache.clone(), keys.clone(), Duration::from_secs(300));
            let sub = format!("ext-{}", uuid::Uuid::new_v4());
            let token = keys.issue(&sub, Some("cached@example.com"), Duration::from_secs(60)).unwrap();
            assert!(!auth.authenticate_bearer(&token).await.unwrap().is_admin);
            assert!(cache.get(&format!("jwtuser:{sub}")).await.unwrap().is_some(), "{}", cache.kind());
            s.set_admin(&sub, true).await.unwrap();
            assert!(!auth.authenticate_bearer(&token).await.unwrap().is_admin, "cached until evicted");
            auth.evict_user(&sub).await.unwrap();
            assert!(auth.authenticate_bearer(&token).await.unwrap().is_admin, "{}", db.backend);
        }
    }
}

#[tokio::test]
async fn expired_keys_are_refused_even_when_their_validation_is_cached() {
    for db in database_urls().await {
        for cache in caches().await {
            let (b, k) = (db.backend, cache.kind());
            let (s, user) = storage_with_user(&db).await;
            let auth = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), Duration::from_secs(300));
            let now = chrono::Utc::now();
            // An expiry in the past (or now) is refused.
            for past in [now - chrono::Duration::seconds(1), now - chrono::Duration::days(3)] {
                let e = auth.create_api_key_with_expiry(&user.id, None, Some(past)).await.unwrap_err();
                assert!(matches!(e, CoreError::InvalidInput(ref m) if m.contains("future")), "{b} {k}: {e}");
            }
            let far = now + chrono::Duration::days(365 * 200);
            assert!(matches!(
                auth.create_api_key_with_expiry(&user.id, None, Some(far)).await,
                Err(CoreError::InvalidInput(_))
            ));

            let expires = now + chrono::Duration::hours(1);
            let (rec, key) = auth.create_api_key_with_expiry(&user.id, Some("short"), Some(expires)).await.unwrap();
            assert_eq!(rec.expires_at.map(|e| e.timestamp_millis()), Some(expires.timestamp_millis()));
            let stored = s.get_api_key(&rec.id).await.unwrap().unwrap();
            assert_eq!(stored.expires_at, rec.expires_at, "{b}");
            assert!(!stored.is_expired_at(now) && stored.is_expired_at(expires));
            assert_eq!(auth.authenticate_api_key(&key).await.unwrap().user_id, user.id);

            // The cached validation carries the expiry. Make it lie in the past, as it would once the
            // hour is over, while the entry itself is still cached: the key is refused.
            let ck = format!("apikey:{}", hash_api_key(&key));
            let bytes = cache.get(&ck).await.unwrap().expect("validation cached");
            let mut entry: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(entry["expires_at"], expires.timestamp_millis(), "{b} {k}");
            entry["expires_at"] = (now - chrono::Duration::seconds(5)).timestamp_millis().into();
            cache.set(&ck, &serde_json::to_vec(&entry).unwrap(), Duration::from_secs(300)).await.unwrap();
            let e = auth.authenticate_api_key(&key).await.unwrap_err();
            assert!(matches!(e, CoreError::Unauthorized(ref m) if m == "API key has expired"), "{b} {k}: {e}");

            // The same from the database, with nothing cached.
            cache.delete(&ck).await.unwrap();
            sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2")
                .bind((now - chrono::Duration::seconds(5)).timestamp_millis())
                .bind(&rec.id)
                .execute(s.pool())
                .await
                .unwrap();
            let e = auth.authenticate_api_key(&key).await.unwrap_err();
            assert!(matches!(e, CoreError::Unauthorized(ref m) if m == "API key has expired"), "{b} {k}: {e}");
            assert!(cache.get(&ck).await.unwrap().is_none(), "{b} {k}: an expired key is not cached");
            // An entry cached before keys could expire (no `expires_at`) is not trusted.
            entry.as_object_mut().unwrap().remove("expires_at");
            cache.set(&ck, &serde_json::to_vec(&entry).unwrap(), Duration::from_secs(300)).await.unwrap();
            let e = auth.authenticate_api_key(&key).await.unwrap_err();
            assert!(matches!(e, CoreError::Unauthorized(ref m) if m == "API key has expired"), "{b} {k}: {e}");
        }
    }
}

#[tokio::test]
async fn rotation_creates_a_successor_and_retires_the_old_key() {
    use gaia_core::auth::MAX_ROTATION_OVERLAP;
    for db in database_urls().await {
        for cache in caches().await {
            let (b, k) = (db.backend, cache.kind());
            let (s, user) = storage_with_user(&db).await;
            let ttl = Duration::from_secs(300);
            let a = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), ttl);
            // A second instance sharing the database and the cache.
            let other = Authenticator::new(s.clone(), cache.clone(), JwtKeys::new(SECRET), ttl);
            let created = chrono::Utc::now();
            let (first, first_key) = a
                .create_api_key_with_expiry(&user.id, Some("game"), Some(created + chrono::Duration::days(30)))
                .await
                .unwrap();
            a.authenticate_api_key(&first_key).await.unwrap();
            other.authenticate_api_key(&first_key).await.unwrap();

            // Immediate rotation: the old key stops at once although its validation was cached.
            let r = a.rotate_api_key(&first.id, Duration::ZERO).await.unwrap();
            assert!(!format!("{r:?}").contains(&r.key), "the new key is not in Debug output");
            assert_ne!(r.new.id, first.id);
            assert_eq!((r.new.name.as_deref(), r.new.user_id.as_str()), (Some("game"), user.id.as_str()));
            assert_eq!(r.old.rotated_to.as_deref(), Some(r.new.id.as_str()), "{b}");
            // The successor gets the same lifetime (30 days), from now.
            let lifetime = r.new.expires_at.unwrap() - r.new.created_at;
            assert!((lifetime - chrono::Duration::days(30)).num_seconds().abs() <= 1, "{b}: {lifetime}");
            for auth in [&a, &other] {
                let e = auth.authenticate_api_key(&first_key).await.unwrap_err();
                assert!(matches!(e, CoreError::Unauthorized(ref m) if m == "API key has expired"), "{b} {k}: {e}");
                let p = auth.authenticate_api_key(&r.key).await.unwrap();
                assert_eq!(p.api_key_id(), Some(r.new.id.as_str()));
            }

            // Rotation with an overlap: both keys work until the old one's new expiry, which never
            // moves past the expiry it already had.
            let before = chrono::Utc::now();
            let r2 = a.rotate_api_key(&r.new.id, Duration::from_secs(3600)).await.unwrap();
            let old_expiry = r2.old.expires_at.unwrap();
            assert!(old_expiry >= before + chrono::Duration::seconds(3599) && old_expiry <= r.new.expires_at.unwrap());
            assert!(a.authenticate_api_key(&r.key).await.is_ok(), "{b} {k}: still in its overlap");
            assert!(a.authenticate_api_key(&r2.key).await.is_ok());
            let listed = s.list_api_keys(Some(&user.id)).await.unwrap();
            assert_eq!(listed.len(), 3, "{b}");
            let (_, key4) = a.create_api_key(&user.id, Some("short")).await.unwrap();
            let short = s.find_api_key_by_hash(&hash_api_key(&key4)).await.unwrap().unwrap();
            sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2")
                .bind((chrono::Utc::now() + chrono::Duration::seconds(60)).timestamp_millis())
                .bind(&short.id)
                .execute(s.pool())
                .await
                .unwrap();
            let r3 = a.rotate_api_key(&short.id, Duration::from_secs(3600)).await.unwrap();
            assert!(r3.old.expires_at.unwrap() <= chrono::Utc::now() + chrono::Duration::seconds(60), "{b}: capped");

            // What cannot be rotated, and says why.
            let conflict = |e: CoreError, want: &str| {
                assert!(matches!(e, CoreError::Conflict(ref m) if m.contains(want)), "{b} {k}: {e}");
            };
            conflict(a.rotate_api_key(&r.new.id, Duration::ZERO).await.unwrap_err(), "already rotated");
            conflict(a.rotate_api_key(&first.id, Duration::ZERO).await.unwrap_err(), "already rotated");
            let (revoked, _) = a.create_api_key(&user.id, None).await.unwrap();
            a.revoke_api_key(&revoked.id).await.unwrap();
            conflict(a.rotate_api_key(&revoked.id, Duration::ZERO).await.unwrap_err(), "revoked");
            let (expired, _) = a.create_api_key(&user.id, None).await.unwrap();
            sqlx::query("UPDATE api_keys SET expires_at = 1 WHERE id = $1")
                .bind(&expired.id)
                .execute(s.pool())
                .await
                .unwrap();
            conflict(a.rotate_api_key(&expired.id, Duration::ZERO).await.unwrap_err(), "expired");
            assert!(matches!(a.rotate_api_key("no-such-key", Duration::ZERO).await, Err(CoreError::NotFound(_))));
            let too_long = MAX_ROTATION_OVERLAP + Duration::from_secs(1);
            assert!(matches!(a.rotate_api_key(&r2.new.id, too_long).await, Err(CoreError::InvalidInput(_))));
            // Nothing was stored by the refused rotations.
            assert_eq!(s.list_api_keys(Some(&user.id)).await.unwrap().len(), 7, "{b}");
        }
    }
}
