//! Turning credentials into a [`Principal`], with cached API-key validation.

use super::api_key::{generate_api_key, hash_api_key};
use super::jwt::{looks_like_jwt, JwtKeys};
use crate::cache::SharedCache;
use crate::error::{CoreError, Result};
use crate::storage::{ApiKeyRecord, Storage};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

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

/// Validates API keys and JWTs. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    storage: Storage,
    cache: SharedCache,
    jwt: JwtKeys,
    api_key_ttl: Duration,
    /// Keys whose `last_used_at` was written recently (writes at most once a minute per key).
    touched: Arc<moka::sync::Cache<String, ()>>,
}

fn cache_key(hash: &str) -> String {
    format!("apikey:{hash}")
}

impl Authenticator {
    /// An authenticator over `storage`, caching validated keys in `cache` for `api_key_ttl`.
    pub fn new(storage: Storage, cache: SharedCache, jwt: JwtKeys, api_key_ttl: Duration) -> Self {
        let touched = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build();
        Authenticator { storage, cache, jwt, api_key_ttl, touched: Arc::new(touched) }
    }

    /// The JWT keys.
    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Validates an API key: the cache first, the database on a miss.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal> {
        let key = key.trim();
        if key.is_empty() || key.len() > 256 {
            return Err(CoreError::Unauthorized("invalid API key".into()));
        }
        let hash = hash_api_key(key);
        let ck = cache_key(&hash);
        match self.cache.get(&ck).await {
            Ok(Some(bytes)) => {
                if let Ok(p) = serde_json::from_slice::<Principal>(&bytes) {
                    self.touch(&p);
                    return Ok(p);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "API key cache unavailable; checking the database"),
        }
        let record = self
            .storage
            .find_api_key_by_hash(&hash)
            .await?
            .ok_or_else(|| CoreError::Unauthorized("invalid API key".into()))?;
        if record.is_revoked() {
            return Err(CoreError::Unauthorized("API key has been revoked".into()));
        }
        let user = self
            .storage
            .get_user(&record.user_id)
            .await?
            .ok_or_else(|| CoreError::Unauthorized("API key owner no longer exists".into()))?;
        let p = Principal {
            user_id: user.id,
            email: Some(user.email),
            is_admin: user.is_admin,
            method: AuthMethod::ApiKey { key_id: record.id },
        };
        if let Ok(bytes) = serde_json::to_vec(&p) {
            if let Err(e) = self.cache.set(&ck, &bytes, self.api_key_ttl).await {
                tracing::warn!(error = %e, "cannot cache API key validation");
            }
        }
        self.touch(&p);
        Ok(p)
    }

    /// Validates a `Bearer` value: as a JWT if it looks like one, otherwise as an API key.
    pub async fn authenticate_bearer(&self, value: &str) -> Result<Principal> {
        let value = value.trim();
        if looks_like_jwt(value) {
            let claims = self.jwt.verify(value)?;
            let user = self.storage.ensure_user(&claims.sub, claims.email.as_deref()).await?;
            Ok(Principal {
                user_id: user.id,
                email: Some(user.email),
                is_admin: user.is_admin,
                method: AuthMethod::Jwt,
            })
        } else {
            self.authenticate_api_key(value).await
        }
    }

    /// Creates a key for `user_id`; returns the record and the plaintext, which is shown once.
    pub async fn create_api_key(&self, user_id: &str, name: Option<&str>) -> Result<(ApiKeyRecord, String)> {
        if let Some(n) = name {
            if n.len() > 200 {
                return Err(CoreError::InvalidInput("key name must be at most 200 characters".into()));
            }
        }
        let k = generate_api_key();
        let rec = self.storage.insert_api_key(user_id, name, &k.prefix, &k.hash).await?;
        Ok((rec, k.plaintext))
    }

    /// Revokes a key in the database and drops its cached validation at once.
    pub async fn revoke_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let rec = self.storage.revoke_api_key(id).await?;
        if let Some(r) = &rec {
            self.cache.delete(&cache_key(&r.key_hash)).await?;
        }
        Ok(rec)
    }

    /// Records the key's use, at most once a minute per key, without delaying the request.
    fn touch(&self, p: &Principal) {
        let AuthMethod::ApiKey { key_id } = &p.method else { return };
        if self.touched.contains_key(key_id) {
            return;
        }
        self.touched.insert(key_id.clone(), ());
        let storage = self.storage.clone();
        let id = key_id.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = storage.touch_api_key(&id).await {
                    tracing::debug!(error = %e, "cannot record API key use");
                }
            });
        }
    }
}
