//! Whether this instance should be given traffic (`GET /health/ready`, for orchestrators and load
//! balancers): it is not stopping, the database, the cache and the event broker answer, and every
//! migration this build knows is applied. (The knowledge base needs no check: the server only
//! listens once it is opened, cloned and indexed.)
//!
//! The route is anonymous, so one check serves every probe for [`FRESH_FOR`]: a flood of probes
//! costs the database one `SELECT 1` a second, and concurrent probes wait for the same check.

use crate::state::AppState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a check's answer is reused.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// The longest each part of a check may take (an unreachable database is "not ready", not a hang).
const PART_TIMEOUT: Duration = Duration::from_secs(2);

/// An instance's readiness: its stopping flag and its last check.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// Set by a shutdown signal: readiness is false from then on.
    stopping: AtomicBool,
    /// Set once the migrations were seen applied (they are never undone).
    migrated: AtomicBool,
    /// The last check: when, and its answer.
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    /// From now on the instance is not ready (it is draining before it stops).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the instance takes traffic; at most one check every [`FRESH_FOR`].
    pub(crate) async fn ready(&self, state: &AppState) -> bool {
        if self.stopping.load(Ordering::Relaxed) {
            return false;
        }
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last {
            if at.elapsed() < FRESH_FOR {
                // `stop` may have come while this probe waited for another one's check.
                return answer && !self.stopping.load(Ordering::Relaxed);
            }
        }
        let answer = self.check(state).await;
        *last = Some((Instant::now(), answer));
        answer && !self.stopping.load(Ordering::Relaxed)
    }

    async fn check(&self, state: &AppState) -> bool {
        let (db, cache) = tokio::join!(answers(state.storage().check_ready()), answers(state.cache().ping()));
        if !db || !cache || !state.events().broker_up() {
            return false;
        }
        if !self.migrated.load(Ordering::Relaxed) {
            let applied = tokio::time::timeout(PART_TIMEOUT, state.storage().migrations_applied()).await;
            if !matches!(applied, Ok(Ok(true))) {
                return false;
            }
            self.migrated.store(true, Ordering::Relaxed);
        }
        true
    }
}

/// Whether `ping` succeeds within [`PART_TIMEOUT`].
async fn answers(ping: impl std::future::Future<Output = gaia_core::Result<()>>) -> bool {
    matches!(tokio::time::timeout(PART_TIMEOUT, ping).await, Ok(Ok(())))
}
