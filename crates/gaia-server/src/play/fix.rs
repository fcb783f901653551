//! The last trusted position of each player in each experience, kept across sockets and instances
//! so that reconnecting (to this instance or another) does not reset the speed check: in the shared
//! cache (in-process, or Redis when scaled out), for an hour, rounded to about 100 m. It is
//! never written to the database or logged. Cache failures leave the check to the socket's own
//! positions.

use crate::state::AppState;
use gaia_world::content::Gps;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long a position is kept: after an hour, any jump within reach of the speed limit's
/// plausible travel is beyond what a stored position could refute.
const TTL: Duration = Duration::from_secs(3600);
/// Positions are kept to 3 decimals of a degree (at most 79 m off); a stored position is trusted
/// to within this many metres.
pub(super) const SLACK_M: f64 = 100.0;

#[derive(Serialize, Deserialize)]
struct Stored {
    lat: f64,
    lng: f64,
    /// Milliseconds since the epoch.
    at: i64,
}

fn key(experience: &str, user_id: &str) -> String {
    format!("world-fix:{experience}:{user_id}")
}

fn round(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// The player's last trusted position in `experience` and when it came, if one is kept.
pub(super) async fn load(state: &AppState, experience: &str, user_id: &str) -> Option<(Gps, Instant)> {
    let bytes = match state.cache().get(&key(experience, user_id)).await {
        Ok(b) => b?,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read a player's last position");
            return None;
        }
    };
    let s: Stored = serde_json::from_slice(&bytes).ok()?;
    if !(s.lat.is_finite() && s.lng.is_finite()) {
        return None;
    }
    let age = u64::try_from(chrono::Utc::now().timestamp_millis().saturating_sub(s.at)).unwrap_or(0);
    let when = Instant::now().checked_sub(Duration::from_millis(age))?;
    Some((Gps { lat: s.lat, lng: s.lng }, when))
}

/// Keeps `at`, trusted `when`, as the player's last position in `experience`.
pub(super) async fn save(state: &AppState, experience: &str, user_id: &str, at: Gps, when: Instant) {
    let age = i64::try_from(when.elapsed().as_millis()).unwrap_or(i64::MAX);
    let s = Stored {
        lat: round(at.lat),
        lng: round(at.lng),
        at: chrono::Utc::now().timestamp_millis().saturating_sub(age),
    };
    let Ok(bytes) = serde_json::to_vec(&s) else { return };
    if let Err(e) = state.cache().set(&key(experience, user_id), &bytes, TTL).await {
        tracing::debug!(error = %e, "cannot keep a player's last position");
    }
}
