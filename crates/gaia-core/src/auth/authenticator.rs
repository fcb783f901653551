//! Turning credentials into a [`Principal`], with cached validation.
//!
//! - API keys are looked up by their SHA-256. A successful validation is cached (in the shared
//!   [`Cache`](crate::cache::Cache)) under `apikey:<hash>` for `api_key_ttl`, so the database is hit once
//!   per key and TTL. Revoking through [`Authenticator::revoke_api_key`] deletes the cache entry and also
//!   remembers the hash in-process, so a revoked key stops working at once on this instance even if a
//!   concurrent request re-cached it.
//! - JWTs are verified locally; the user they name is created on first sight
//!   ([`Storage::ensure_user`]) and then cached under `jwtuser:<sub>` for `api_key_ttl`.
//! - `last_used_at` of a key is written in the background, at most once per [`TOUCH_INTERVAL`] per key
//!   and process.
//!
//! Key plaintexts never reach logs or error messages.

use super::api_key::{generate_api_key, hash_api_key};
use super::jwt::{looks_like_jwt, JwtKeys};
use crate::cache::SharedCache;
use crate::error::{CoreError, Result};
use crate::storage::{ApiKeyRecord, Storage, WebSession};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Shortest interval between two `last_used_at` writes for the same key (per process).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Longest accepted API key name, in characters.
pub const MAX_KEY_NAME: usize = 200;

/// Longest value accepted as an API key; anything longer is refused without hashing or a lookup.
const MAX_KEY_LEN: usize = 256;

/// How a principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// With an API key.
    ApiKey {
        /// The key's id.
        key_id: String,
    },
    /// With a JWT.
    Jwt,
    /// With a web UI session cookie.
    Session,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Email, when known.
    pub email: Option<String>,
    /// Administrator flag.
    pub is_admin: bool,
    /// How the caller authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// The id of the API key used, if the caller authenticated with one.
    pub fn api_key_id(&self) -> Option<&str> {
        match &self.method {
            AuthMethod::ApiKey { key_id } => Some(key_id),
            AuthMethod::Jwt | AuthMethod::Session => None,
        }
    }
}

/// What is cached for a validated API key.
#[derive(Serialize, Deserialize)]
struct CachedApiKey {
    key_id: String,
    principal: Principal,
}

/// What is cached for the user of a JWT subject.
#[derive(Serialize, Deserialize)]
struct CachedUser {
    user_id: String,
    email: Option<String>,
    is_admin: bool,
}

struct Inner {
    storage: Storage,
    cache: SharedCache,
    jwt: JwtKeys,
    api_key_ttl: Duration,
    /// Keys whose `last_used_at` was written recently.
    touched: moka::sync::Cache<String, ()>,
    /// Hashes of keys revoked by this process, kept longer than any cached validation can live.
    revoked: moka::sync::Cache<String, ()>,
}

/// Validates API keys and JWTs. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("backend", &self.inner.storage.backend())
            .field("cache", &self.inner.cache.kind())
            .field("api_key_ttl", &self.inner.api_key_ttl)
            .finish_non_exhaustive()
    }
}

/// The credential of an `Authorization` value, without a leading `Bearer` (any case) and whitespace.
fn strip_bearer(value: &str) -> &str {
    let v = value.trim();
    match v.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        None if v.eq_ignore_ascii_case("bearer") => "",
        _ => v,
    }
}

fn api_key_cache_key(hash: &str) -> String {
    format!("apikey:{hash}")
}

fn user_cache_key(user_id: &str) -> String {
    format!("jwtuser:{user_id}")
}

impl Authenticator {
    /// An authenticator over `storage`, caching validated keys and JWT users in `cache` for `api_key_ttl`.
    pub fn new(storage: Storage, cache: SharedCache, jwt: JwtKeys, api_key_ttl: Duration) -> Self {
        let touched = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(TOUCH_INTERVAL).build();
        // A stale validation can be re-cached just before the revocation and then live `api_key_ttl`.
        let remember = crate::cache::clamp_ttl(api_key_ttl.saturating_mul(2).max(Duration::from_secs(60)));
        let revoked = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(remember).build();
        Authenticator { inner: Arc::new(Inner { storage, cache, jwt, api_key_ttl, touched, revoked }) }
    }

    /// The JWT keys.
    pub fn jwt(&self) -> &JwtKeys {
        &self.inner.jwt
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The cache used for validations.
    pub fn cache(&self) -> &SharedCache {
        &self.inner.cache
    }

    /// How long a validation stays cached.
    pub fn api_key_ttl(&self) -> Duration {
        self.inner.api_key_ttl
    }

    /// Validates an API key: the cache first, the database on a miss.
    ///
    /// Unknown, malformed and revoked keys, and keys whose owner no longer exists, give
    /// [`CoreError::Unauthorized`]; a database failure gives [`CoreError::Database`]. A cache failure is
    /// logged and the database is used instead.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal> {
        let key = key.trim();
        if key.is_empty() {
            return Err(CoreError::Unauthorized("missing API key".into()));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(CoreError::Unauthorized("invalid API key".into()));
        }
        let hash = hash_api_key(key);
        if self.inner.revoked.contains_key(&hash) {
            return Err(CoreError::Unauthorized("API key has been revoked".into()));
        }
        let ck = api_key_cache_key(&hash);
        match self.inner.cache.get(&ck).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<CachedApiKey>(&bytes) {
                Ok(cached) => {
                    self.touch(&cached.key_id);
                    return Ok(cached.principal);
                }
                Err(e) => tracing::debug!(error = %e, "ignoring an unreadable cached API key validation"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "API key cache unavailable; checking the database"),
        }
        let record = self
            .inner
            .storage
            .find_api_key_by_hash(&hash)
            .await?
            .ok_or_else(|| CoreError::Unauthorized("invalid API key".into()))?;
        if record.is_revoked() {
            return Err(CoreError::Unauthorized("API key has been revoked".into()));
        }
        let user = self
            .inner
            .storage
            .get_user(&record.user_id)
            .await?
            .ok_or_else(|| CoreError::Unauthorized("the owner of this API key no longer exists".into()))?;
        let principal = Principal {
            user_id: user.id,
            email: Some(user.email),
            is_admin: user.is_admin,
            method: AuthMethod::ApiKey { key_id: record.id.clone() },
        };
        let cached = CachedApiKey { key_id: record.id.clone(), principal };
        match serde_json::to_vec(&cached) {
            Ok(bytes) => {
                if let Err(e) = self.inner.cache.set(&ck, &bytes, self.inner.api_key_ttl).await {
                    tracing::warn!(error = %e, key_prefix = %record.prefix, "cannot cache API key validation");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialise API key validation"),
        }
        // Revoked while we were looking it up: do not let the entry just cached serve it.
        if self.inner.revoked.contains_key(&hash) {
            let _ = self.inner.cache.delete(&ck).await;
            return Err(CoreError::Unauthorized("API key has been revoked".into()));
        }
        self.touch(&record.id);
        Ok(cached.principal)
    }

    /// Starts a web UI session for `user_id`, valid for `ttl`: returns the cookie's token (shown once;
    /// only its hash is stored) and the session with its CSRF token.
    pub async fn create_session(&self, user_id: &str, ttl: Duration) -> Result<(String, WebSession)> {
        use rand::distr::{Alphanumeric, SampleString};
        let token = format!("gaia_ws_{}", Alphanumeric.sample_string(&mut rand::rng(), 48));
        let csrf = Alphanumeric.sample_string(&mut rand::rng(), 40);
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(ttl)
                .map_err(|_| CoreError::InvalidInput("session lifetime too long".into()))?;
        let session = self.inner.storage.insert_web_session(&hash_api_key(&token), user_id, &csrf, expires).await?;
        Ok((token, session))
    }

    /// Validates a web UI session token; returns the caller and the session (with its CSRF token).
    pub async fn authenticate_session(&self, token: &str) -> Result<(Principal, WebSession)> {
        let invalid = || CoreError::Unauthorized("the session has expired or was ended; sign in again".into());
        if token.is_empty() || token.len() > MAX_KEY_LEN {
            return Err(invalid());
        }
        let session = self.inner.storage.get_web_session(&hash_api_key(token)).await?.ok_or_else(invalid)?;
        let user = self.inner.storage.get_user(&session.user_id).await?.ok_or_else(invalid)?;
        let principal = Principal {
            user_id: user.id,
            email: Some(user.email),
            is_admin: user.is_admin,
            method: AuthMethod::Session,
        };
        Ok((principal, session))
    }

    /// Ends a web UI session.
    pub async fn end_session(&self, token: &str) -> Result<bool> {
        self.inner.storage.delete_web_session(&hash_api_key(token)).await
    }

    /// Validates a JWT (signature, audience `authenticated`, expiry) and returns its user, creating a
    /// local user for a subject seen for the first time.
    pub async fn authenticate_jwt(&self, token: &str) -> Result<Principal> {
        let claims = self.inner.jwt.verify(token.trim())?;
        let ck = user_cache_key(&claims.sub);
        match self.inner.cache.get(&ck).await {
            Ok(Some(bytes)) => {
                if let Ok(u) = serde_json::from_slice::<CachedUser>(&bytes) {
                    return Ok(Principal {
                        user_id: u.user_id,
                        email: u.email,
                        is_admin: u.is_admin,
                        method: AuthMethod::Jwt,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "user cache unavailable; checking the database"),
        }
        let user = self.inner.storage.ensure_user(&claims.sub, claims.email.as_deref()).await.map_err(|e| match e {
            CoreError::InvalidInput(m) => CoreError::Unauthorized(format!("token subject is not usable: {m}")),
            other => other,
        })?;
        let cached = CachedUser { user_id: user.id, email: Some(user.email), is_admin: user.is_admin };
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            if let Err(e) = self.inner.cache.set(&ck, &bytes, self.inner.api_key_ttl).await {
                tracing::warn!(error = %e, "cannot cache JWT user");
            }
        }
        Ok(Principal {
            user_id: cached.user_id,
            email: cached.email,
            is_admin: cached.is_admin,
            method: AuthMethod::Jwt,
        })
    }

    /// Validates the value of an `Authorization: Bearer` header (with or without the `Bearer ` word): as a
    /// JWT if it looks like one (see [`looks_like_jwt`]), otherwise as an API key.
    pub async fn authenticate_bearer(&self, value: &str) -> Result<Principal> {
        let value = strip_bearer(value);
        if value.is_empty() {
            return Err(CoreError::Unauthorized("missing bearer token".into()));
        }
        if looks_like_jwt(value) {
            self.authenticate_jwt(value).await
        } else {
            self.authenticate_api_key(value).await
        }
    }

    /// Creates a key for `user_id`; returns the record and the plaintext, which is shown once and never
    /// stored. `NotFound` if the user does not exist, `InvalidInput` if the name is too long.
    pub async fn create_api_key(&self, user_id: &str, name: Option<&str>) -> Result<(ApiKeyRecord, String)> {
        if name.is_some_and(|n| n.chars().count() > MAX_KEY_NAME) {
            return Err(CoreError::InvalidInput(format!("key name must be at most {MAX_KEY_NAME} characters")));
        }
        let k = generate_api_key();
        let rec = self.inner.storage.insert_api_key(user_id, name, &k.prefix, &k.hash).await?;
        tracing::info!(key_id = %rec.id, key_prefix = %rec.prefix, user_id, "API key created");
        Ok((rec, k.plaintext))
    }

    /// Revokes a key in the database and drops its cached validation at once. `None` if there is no such
    /// key. Revoking twice is harmless (the first revocation time is kept).
    ///
    /// If the database was updated but the cache entry could not be deleted, this instance still refuses
    /// the key, and the error ([`CoreError::Cache`]) says so; calling again retries the eviction.
    pub async fn revoke_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let Some(rec) = self.inner.storage.revoke_api_key(id).await? else { return Ok(None) };
        self.inner.revoked.insert(rec.key_hash.clone(), ());
        self.inner.cache.delete(&api_key_cache_key(&rec.key_hash)).await.map_err(|e| {
            CoreError::Cache(format!("API key {id} is revoked, but its cached validation could not be evicted: {e}"))
        })?;
        tracing::info!(key_id = %rec.id, key_prefix = %rec.prefix, "API key revoked");
        Ok(Some(rec))
    }

    /// Forgets the cached user of a JWT subject (call after changing the user, e.g. its admin flag).
    pub async fn evict_user(&self, user_id: &str) -> Result<()> {
        self.inner.cache.delete(&user_cache_key(user_id)).await
    }

    /// Records the key's use, at most once per [`TOUCH_INTERVAL`] per key, without delaying the request.
    fn touch(&self, key_id: &str) {
        let entry = self.inner.touched.entry(key_id.to_string()).or_insert(());
        if !entry.is_fresh() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let storage = self.inner.storage.clone();
        let id = key_id.to_string();
        handle.spawn(async move {
            if let Err(e) = storage.touch_api_key(&id).await {
                tracing::debug!(error = %e, key_id = %id, "cannot record API key use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::strip_bearer;

    #[test]
    fn bearer_word_is_optional() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("  bEaReR \t abc \n"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bearer"), "");
        assert_eq!(strip_bearer("Bearer "), "");
        assert_eq!(strip_bearer("Basic abc"), "Basic abc");
        assert_eq!(strip_bearer("Bearerabc"), "Bearerabc");
        assert_eq!(strip_bearer("ü ü"), "ü ü");
    }
}
