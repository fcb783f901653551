//! Sign-in sessions and the access tokens bound to them.
//!
//! Every password sign-in starts a session (a row of `auth_sessions`, see
//! [`Storage::create_sign_in`]); its refresh tokens form one family, and the access tokens issued for
//! it carry its id as the JWT `gaia_sid` claim. Revoking the session (logout, or a refresh token used twice)
//! ends the whole family and makes those access tokens unusable before they expire.
//!
//! The check on every request is cheap: whether a session is live is cached under
//! `authsid:<sid>` for [`SESSION_CHECK_TTL`] together with the sessions version it was read under.
//! A revocation writes "revoked" over the entry at once (shared by every instance with Redis) and
//! bumps the sessions version (not the keys version: a sign-out must not outdate every cached API-key
//! validation), so instances with their own in-process cache look again within a version poll.

use crate::cache::SharedCache;
use crate::error::{CoreError, Result};
use crate::storage::{Invite, Storage};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long whether a sign-in session is live stays cached.
pub const SESSION_CHECK_TTL: Duration = Duration::from_secs(10);

/// How long the "revoked" mark of a session stays cached (the database says so afterwards).
const REVOKED_TTL: Duration = Duration::from_secs(3600);

/// Longest accepted `gaia_sid` claim.
const MAX_SID_LEN: usize = 64;

#[derive(Serialize, Deserialize)]
struct CachedSession {
    live: bool,
    /// The credentials version it was read under.
    version: i64,
}

fn cache_key(sid: &str) -> String {
    format!("authsid:{sid}")
}

fn ended() -> CoreError {
    CoreError::Unauthorized("the sign-in session of this token has ended (signed out or revoked); sign in again".into())
}

/// `Ok` when sign-in session `sid` is live; [`CoreError::Unauthorized`] when it was revoked or never
/// existed. `version` is the sessions version the caller knows of: a "live" entry cached under an
/// older one is checked in the database again.
pub async fn check_session(storage: &Storage, cache: &SharedCache, sid: &str, version: i64) -> Result<()> {
    if sid.is_empty() || sid.len() > MAX_SID_LEN {
        return Err(ended());
    }
    let key = cache_key(sid);
    match cache.get(&key).await {
        Ok(Some(bytes)) => match serde_json::from_slice::<CachedSession>(&bytes) {
            Ok(c) if !c.live => return Err(ended()),
            Ok(c) if c.version >= version => return Ok(()),
            _ => {}
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "session cache unavailable; checking the database"),
    }
    let live = storage.sign_in_is_live(sid).await?;
    let entry = CachedSession { live, version };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        let ttl = if live { SESSION_CHECK_TTL } else { REVOKED_TTL };
        if let Err(e) = cache.set(&key, &bytes, ttl).await {
            tracing::warn!(error = %e, "cannot cache a sign-in session check");
        }
    }
    if live {
        Ok(())
    } else {
        Err(ended())
    }
}

/// Marks sign-in sessions revoked in the cache (after revoking them in the database), so their access
/// tokens are refused at once here, and on every instance sharing the cache.
pub async fn forget_sessions(cache: &SharedCache, sids: &[String]) {
    let Ok(bytes) = serde_json::to_vec(&CachedSession { live: false, version: i64::MAX }) else { return };
    for sid in sids {
        if let Err(e) = cache.set(&cache_key(sid), &bytes, REVOKED_TTL).await {
            tracing::warn!(error = %e, "cannot mark a revoked sign-in session in the cache");
        }
    }
}

/// Longest accepted invitation token; anything longer is refused without hashing or a lookup.
pub const MAX_INVITE_TOKEN_LEN: usize = 128;

/// Creates an invitation to register (`auth.registration = "invite"`), valid for `ttl`, for `email`
/// only when given: returns it and its token, which is shown once (only its SHA-256 is stored).
pub async fn create_invite(
    storage: &Storage,
    email: Option<&str>,
    created_by: Option<&str>,
    ttl: Duration,
) -> Result<(Invite, String)> {
    use rand::distr::{Alphanumeric, SampleString};
    let token = format!("gaia_inv_{}", Alphanumeric.sample_string(&mut rand::rng(), 40));
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(ttl)
            .map_err(|_| CoreError::InvalidInput("invitation lifetime too long".into()))?;
    let invite = storage.create_invite(&super::hash_api_key(&token), email, created_by, expires).await?;
    tracing::info!(invite_id = %invite.id, expires_at = %invite.expires_at, "registration invitation created");
    Ok((invite, token))
}
