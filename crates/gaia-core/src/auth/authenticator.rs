//! Turning credentials into a [`Principal`], with cached validation.
//!
//! - API keys are looked up by their SHA-256. A successful validation is cached (in the shared
//!   [`Cache`](crate::cache::Cache)) under `apikey:<hash>` for `api_key_ttl`, so the database is hit once
//!   per key and TTL. Revoking through [`Authenticator::revoke_api_key`] deletes the cache entry and also
//!   remembers the hash in-process, so a revoked key stops working at once on this instance even if a
//!   concurrent request re-cached it.
//! - A key may expire (`expires_at`). The cached validation carries the expiry and is checked on every
//!   use, and it is never cached past the expiry, so an expired key fails with "API key has expired"
//!   whether or not its validation is cached. [`Authenticator::rotate_api_key`] creates the successor
//!   and shortens the old key's life to the overlap; like revocation it evicts the old key's cached
//!   validation and remembers the new expiry in-process.
//! - JWTs are verified locally; the user they name is created on first sight
//!   ([`Storage::ensure_user`]) and then cached under `jwtuser:<sub>` for `api_key_ttl`.
//! - Revocations reach every running instance, with or without a shared cache: each revocation
//!   bumps the database's credentials version ([`Storage::credentials_versions`]) in its own
//!   transaction, each cached validation carries the version it was made under, and
//!   [`Authenticator::spawn_revocation_watch`] polls the version (about every second): a validation
//!   cached under an older version is checked against the database again. `gaia keys revoke` run
//!   against the database of a running server so takes effect there within a poll.
//! - `last_used_at` of a key is written in the background, at most once per [`TOUCH_INTERVAL`] per key
//!   and process.
//!
//! Key plaintexts never reach logs or error messages.

use super::api_key::{generate_api_key, hash_api_key};
use super::jwt::{looks_like_jwt, JwtKeys};
use crate::cache::SharedCache;
use crate::error::{CoreError, Result};
use crate::storage::{ApiKeyRecord, NewApiKey, Storage, WebSession};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Shortest interval between two `last_used_at` writes for the same key (per process).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Longest accepted API key name, in characters.
pub const MAX_KEY_NAME: usize = 200;

/// Longest value accepted as an API key; anything longer is refused without hashing or a lookup.
const MAX_KEY_LEN: usize = 256;

/// How long the old key keeps working after a rotation, unless the caller says otherwise.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Longest accepted rotation overlap (30 days).
pub const MAX_ROTATION_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Latest accepted key expiry, counted from now (100 years).
pub const MAX_KEY_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What a rotation gives back: the successor (with its plaintext, shown once) and the old key as
/// updated (its shortened expiry and `rotated_to`).
#[derive(Clone)]
pub struct RotatedKey {
    /// The new key's record.
    pub new: ApiKeyRecord,
    /// The new key itself; shown once, never stored.
    pub key: String,
    /// The old key, now expiring at the end of the overlap.
    pub old: ApiKeyRecord,
}

impl std::fmt::Debug for RotatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKey")
            .field("new", &self.new)
            .field("key", &"<redacted>")
            .field("old", &self.old)
            .finish()
    }
}

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

/// What is cached for a validated API key. `expires_at` has no serde default on purpose: an entry
/// written before expiries existed does not parse and is looked up again.
#[derive(Serialize, Deserialize)]
struct CachedApiKey {
    key_id: String,
    principal: Principal,
    /// The key's expiry in unix milliseconds (`None`: never). Required even when null.
    #[serde(deserialize_with = "required")]
    expires_at: Option<i64>,
    /// The credentials version this validation was made under (older than the current one: stale).
    #[serde(default)]
    version: i64,
}

/// Deserializes a field that must be present (serde lets a missing `Option` be `None` otherwise).
fn required<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    Option::<i64>::deserialize(d)
}

/// What is cached for the user of a JWT subject.
#[derive(Serialize, Deserialize)]
struct CachedUser {
    user_id: String,
    email: Option<String>,
    is_admin: bool,
    /// The credentials version this entry was made under.
    #[serde(default)]
    version: i64,
}

struct Inner {
    storage: Storage,
    cache: SharedCache,
    jwt: JwtKeys,
    /// Other identity providers whose tokens are accepted (`[[auth.jwks]]`), when configured.
    jwks: std::sync::OnceLock<super::jwks::Jwks>,
    api_key_ttl: Duration,
    /// Keys whose `last_used_at` was written recently.
    touched: moka::sync::Cache<String, ()>,
    /// Hashes of keys revoked by this process, kept longer than any cached validation can live.
    revoked: moka::sync::Cache<String, ()>,
    /// Expiries (unix ms) set on keys by rotations in this process, by hash, kept as long as `revoked`:
    /// they win over a validation cached (by a concurrent request) before the rotation.
    expiring: moka::sync::Cache<String, i64>,
    /// The newest credentials version seen in the database: cached validations made under an older
    /// one are looked up again.
    version: std::sync::atomic::AtomicI64,
    /// The newest sessions version seen in the database: cached sign-in session checks made under an
    /// older one are looked up again.
    sessions_version: std::sync::atomic::AtomicI64,
    /// Told each time `version` or `sessions_version` moves (long-lived connections check their credentials again).
    revocations: tokio::sync::watch::Sender<i64>,
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

fn expired() -> CoreError {
    CoreError::Unauthorized("API key has expired".into())
}

/// `InvalidInput` unless `expires_at` is after `now` and at most [`MAX_KEY_LIFETIME`] away.
fn check_expiry(expires_at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    if expires_at <= now {
        return Err(CoreError::InvalidInput("the key's expiry must be in the future".into()));
    }
    if (expires_at - now).to_std().map_or(true, |d| d > MAX_KEY_LIFETIME) {
        return Err(CoreError::InvalidInput("the key's expiry must be at most 100 years away".into()));
    }
    Ok(())
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
        let expiring = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(remember).build();
        Authenticator {
            inner: Arc::new(Inner {
                storage,
                cache,
                jwt,
                jwks: std::sync::OnceLock::new(),
                api_key_ttl,
                touched,
                revoked,
                expiring,
                version: std::sync::atomic::AtomicI64::new(0),
                sessions_version: std::sync::atomic::AtomicI64::new(0),
                revocations: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Also accepts the tokens of the identity providers in `jwks` (`[[auth.jwks]]`), verified with
    /// the keys they publish. `InvalidInput` if providers were already set.
    pub fn set_jwks(&self, jwks: super::jwks::Jwks) -> Result<()> {
        self.inner.jwks.set(jwks).map_err(|_| CoreError::InvalidInput("the identity providers are already set".into()))
    }

    /// The credentials version this instance knows of.
    fn known_version(&self) -> i64 {
        self.inner.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The sessions version this instance knows of.
    fn known_sessions_version(&self) -> i64 {
        self.inner.sessions_version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Reads the database's credentials versions; when one moved, the validations cached before under
    /// it are stale from now on. Returns whether one moved.
    pub async fn refresh_revocations(&self) -> Result<bool> {
        use std::sync::atomic::Ordering::AcqRel;
        let v = self.inner.storage.credentials_versions().await?;
        let keys_moved = v.keys > self.inner.version.fetch_max(v.keys, AcqRel);
        let sessions_moved = v.sessions > self.inner.sessions_version.fetch_max(v.sessions, AcqRel);
        if keys_moved || sessions_moved {
            self.inner.revocations.send_modify(|n| *n += 1);
        }
        Ok(keys_moved || sessions_moved)
    }

    /// Changes each time a revocation is noticed (by [`Authenticator::refresh_revocations`]): a
    /// long-lived connection (a WebSocket) then checks its credentials again.
    pub fn watch_revocations(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.revocations.subscribe()
    }

    /// Polls the credentials version every `every` (see [`Authenticator::refresh_revocations`]), so a
    /// revocation made by another instance or by the CLI takes effect here within a poll. The task
    /// ends when every clone of this authenticator is dropped.
    pub fn spawn_revocation_watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let auth = Authenticator { inner };
                if let Err(e) = auth.refresh_revocations().await {
                    tracing::warn!(error = %e, "cannot read the credentials version");
                }
            }
        })
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
    /// Unknown, malformed, revoked and expired keys ("API key has expired"), and keys whose owner no
    /// longer exists, give [`CoreError::Unauthorized`]; a database failure gives [`CoreError::Database`].
    /// A cache failure is logged and the database is used instead.
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
        let now = chrono::Utc::now().timestamp_millis();
        if self.inner.expiring.get(&hash).is_some_and(|e| e <= now) {
            return Err(expired());
        }
        let ck = api_key_cache_key(&hash);
        // Read before the database, so a revocation made during the lookup outdates what is cached.
        let version = self.known_version();
        match self.inner.cache.get(&ck).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<CachedApiKey>(&bytes) {
                Ok(cached) if cached.version < version => {
                    tracing::debug!("cached API key validation predates a revocation; checking the database")
                }
                Ok(cached) => {
                    if cached.expires_at.is_some_and(|e| e <= now) {
                        return Err(expired());
                    }
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
        let now = chrono::Utc::now();
        if record.is_expired_at(now) {
            return Err(expired());
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
        let expires_at = record.expires_at.map(|e| e.timestamp_millis());
        let cached = CachedApiKey { key_id: record.id.clone(), principal, expires_at, version };
        // Never cached past the expiry (the entry is checked against it anyway).
        let ttl = match record.expires_at.map(|e| (e - now).to_std()) {
            Some(Ok(left)) => left.min(self.inner.api_key_ttl),
            Some(Err(_)) => Duration::ZERO,
            None => self.inner.api_key_ttl,
        };
        match serde_json::to_vec(&cached) {
            Ok(bytes) if ttl.is_zero() => drop(bytes),
            Ok(bytes) => {
                if let Err(e) = self.inner.cache.set(&ck, &bytes, ttl).await {
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

    /// Validates a JWT and returns its user, creating a local user for a subject seen for the first
    /// time: a token whose issuer is one of the identity providers set with [`Self::set_jwks`] is
    /// verified with that provider's keys (see [`super::jwks`]), any other with Gaia's HS256 secret
    /// (signature, audience `authenticated`, expiry).
    pub async fn authenticate_jwt(&self, token: &str) -> Result<Principal> {
        let token = token.trim();
        let foreign = match self.inner.jwks.get() {
            Some(jwks) => jwks.verify(token).await?,
            None => None,
        };
        let claims = match foreign {
            Some(claims) => claims,
            None => self.inner.jwt.verify(token)?,
        };
        // Gaia's own tokens name their sign-in session (claim `gaia_sid`; another issuer's OIDC `sid` is
        // not read): refused once it is revoked (logout, theft).
        if let Some(sid) = claims.sid.as_deref() {
            super::sign_in::check_session(&self.inner.storage, &self.inner.cache, sid, self.known_sessions_version())
                .await?;
        }
        let ck = user_cache_key(&claims.sub);
        let version = self.known_version();
        match self.inner.cache.get(&ck).await {
            Ok(Some(bytes)) => {
                if let Some(u) = serde_json::from_slice::<CachedUser>(&bytes).ok().filter(|u| u.version >= version) {
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
        let cached = CachedUser { user_id: user.id, email: Some(user.email), is_admin: user.is_admin, version };
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

    /// Creates a key for `user_id` that never expires; returns the record and the plaintext, which is
    /// shown once and never stored. `NotFound` if the user does not exist, `InvalidInput` if the name is
    /// too long.
    pub async fn create_api_key(&self, user_id: &str, name: Option<&str>) -> Result<(ApiKeyRecord, String)> {
        self.create_api_key_with_expiry(user_id, name, None).await
    }

    /// Like [`Authenticator::create_api_key`], with an expiry (`None`: never). `InvalidInput` if the
    /// expiry is not in the future or is more than [`MAX_KEY_LIFETIME`] away.
    pub async fn create_api_key_with_expiry(
        &self,
        user_id: &str,
        name: Option<&str>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(ApiKeyRecord, String)> {
        if name.is_some_and(|n| n.chars().count() > MAX_KEY_NAME) {
            return Err(CoreError::InvalidInput(format!("key name must be at most {MAX_KEY_NAME} characters")));
        }
        if let Some(e) = expires_at {
            check_expiry(e, chrono::Utc::now())?;
        }
        let k = generate_api_key();
        let new = NewApiKey { user_id, name, prefix: &k.prefix, key_hash: &k.hash, expires_at };
        let rec = self.inner.storage.insert_api_key_with(&new).await?;
        tracing::info!(key_id = %rec.id, key_prefix = %rec.prefix, user_id, expires_at = ?rec.expires_at, "API key created");
        Ok((rec, k.plaintext))
    }

    /// Rotates key `id`: creates its successor (same owner, same name, and the same lifetime as the old
    /// key had when it was created, counted from now; no expiry if the old key had none) and makes the
    /// old key expire after `overlap` (at once for zero; never later than the expiry it already had).
    /// Both keys work during the overlap, so clients can switch without downtime.
    ///
    /// The old key's cached validation is evicted, so its new expiry applies at once. Ownership is not
    /// checked here (the HTTP route does). `NotFound` if there is no such key; `Conflict` if it is
    /// revoked, expired or already rotated; `InvalidInput` if `overlap` exceeds
    /// [`MAX_ROTATION_OVERLAP`].
    pub async fn rotate_api_key(&self, id: &str, overlap: Duration) -> Result<RotatedKey> {
        if overlap > MAX_ROTATION_OVERLAP {
            return Err(CoreError::InvalidInput(format!(
                "the overlap must be at most {} seconds (30 days)",
                MAX_ROTATION_OVERLAP.as_secs()
            )));
        }
        let old =
            self.inner.storage.get_api_key(id).await?.ok_or_else(|| CoreError::NotFound(format!("API key {id}")))?;
        let now = chrono::Utc::now();
        // The same lifetime as the old key was given, from now.
        let expires_at = old.expires_at.map(|e| now + (e - old.created_at).max(chrono::Duration::seconds(1)));
        let overlap_end = now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::zero());
        let k = generate_api_key();
        let new = NewApiKey {
            user_id: &old.user_id,
            name: old.name.as_deref(),
            prefix: &k.prefix,
            key_hash: &k.hash,
            expires_at,
        };
        let (new, old) = self.inner.storage.rotate_api_key(id, &new, overlap_end, now).await?;
        if let Some(e) = old.expires_at {
            self.inner.expiring.insert(old.key_hash.clone(), e.timestamp_millis());
        }
        tracing::info!(
            key_id = %old.id, key_prefix = %old.prefix, new_key_id = %new.id, new_key_prefix = %new.prefix,
            old_expires_at = ?old.expires_at, "API key rotated"
        );
        self.inner.cache.delete(&api_key_cache_key(&old.key_hash)).await.map_err(|e| {
            CoreError::Cache(format!(
                "API key {id} was rotated, but its cached validation could not be evicted (other instances may \
                 accept it until their cache entry lapses): {e}"
            ))
        })?;
        Ok(RotatedKey { new, key: k.plaintext, old })
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
