//! Password hashing with argon2id, and [`PasswordGate`], which bounds how many hashes run at once.
//!
//! An argon2id hash with the default parameters takes about 19 MiB of memory and tens of milliseconds
//! of CPU. Anyone can ask for one (sign-in and registration are public), so a server hashes only
//! through a gate: at most `concurrency` hashes run at once, on blocking threads; at most `queue`
//! more wait for a slot, each for at most [`MAX_QUEUE_WAIT`]; anything beyond is refused at once
//! ([`GateError::Busy`]). A sign-in for an account that does not exist (or has no password) is
//! checked against a dummy hash, so it costs the same as a real one and timing does not tell which
//! accounts exist.

use crate::error::{CoreError, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Shortest accepted password, in bytes.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest a request waits in the gate's queue for a hashing slot before it is refused.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Hashes a password (argon2id, random salt, PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    if password.len() < MIN_PASSWORD_LEN {
        return Err(CoreError::InvalidInput(format!("password must be at least {MIN_PASSWORD_LEN} characters")));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(CoreError::InvalidInput(format!("password must be at most {MAX_PASSWORD_LEN} characters")));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| CoreError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the PHC `hash` (false for a malformed hash, and for a password longer
/// than [`MAX_PASSWORD_LEN`]).
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash with the same parameters as real ones, matching no password anyone types: what a sign-in
/// for an unknown account is checked against.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("gaia dummy password: unknown accounts cost as much as known ones")
            .unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$invalid"))
    })
}

/// Why the gate did not hash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// Too many hashes are running or waiting: try again after the duration.
    #[error("too many sign-in attempts are being processed; try again in {} s", .0.as_secs().max(1))]
    Busy(Duration),
    /// Hashing failed (bad input, or an internal error).
    #[error(transparent)]
    Core(#[from] CoreError),
}

struct GateInner {
    slots: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
    queue: usize,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    refused: AtomicU64,
}

/// Bounds password hashing: at most `concurrency` hashes at once on blocking threads, at most `queue`
/// requests waiting (see the [module](self)). Cheap to clone; clones share the bound.
#[derive(Clone)]
pub struct PasswordGate {
    inner: Arc<GateInner>,
}

impl std::fmt::Debug for PasswordGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordGate")
            .field("concurrency", &self.inner.concurrency)
            .field("queue", &self.inner.queue)
            .field("running", &self.running())
            .finish()
    }
}

/// Decrements `running` when the hash ends (even by a panic).
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Gives back a queue place when dropped (the waiting request may be cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordGate {
    /// A gate running at most `concurrency` hashes at once (0: the machine's available parallelism)
    /// with at most `queue` requests waiting for a slot.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            concurrency
        };
        PasswordGate {
            inner: Arc::new(GateInner {
                slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
                concurrency,
                queue,
                waiting: AtomicUsize::new(0),
                running: Arc::new(AtomicUsize::new(0)),
                peak: Arc::new(AtomicUsize::new(0)),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Most hashes run at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Hashes running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// The most hashes that ever ran at once (never above [`PasswordGate::concurrency`]).
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::Acquire)
    }

    /// Requests refused because the gate was full.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Acquire)
    }

    fn busy(&self) -> GateError {
        self.inner.refused.fetch_add(1, Ordering::AcqRel);
        // Roughly the time the queue ahead needs; at least a second.
        GateError::Busy(Duration::from_secs(1 + (self.inner.queue / self.inner.concurrency.max(1)) as u64 / 8))
    }

    /// Runs `f` (a hash) on a blocking thread once a slot is free. The slot is held by the blocking task
    /// itself, so a request that goes away does not free it before the hash ends.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, GateError> {
        let slot = match self.inner.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if self.inner.waiting.fetch_add(1, Ordering::AcqRel) >= self.inner.queue {
                    self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(self.busy());
                }
                let _place = Waiting(&self.inner.waiting);
                match tokio::time::timeout(MAX_QUEUE_WAIT, self.inner.slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => return Err(self.busy()),
                }
            }
        };
        let now = self.inner.running.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.peak.fetch_max(now, Ordering::AcqRel);
        let running = Running(self.inner.running.clone());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _running = running;
            f()
        })
        .await
        .map_err(|e| GateError::Core(CoreError::Internal(format!("password hashing task failed: {e}"))))
    }

    /// Hashes a new password ([`hash_password`]) through the gate.
    pub async fn hash(&self, password: &str) -> std::result::Result<String, GateError> {
        // Refused before taking a slot: lengths are checked without hashing.
        if password.len() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
            return Err(hash_password(password)
                .err()
                .unwrap_or_else(|| CoreError::InvalidInput("bad password".into()))
                .into());
        }
        let pw = password.to_string();
        Ok(self.run(move || hash_password(&pw)).await??)
    }

    /// Checks `password` against `hash` through the gate; with no hash (unknown account, or one without
    /// a password) against a dummy hash, at the same cost, and the answer is `false`.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> std::result::Result<bool, GateError> {
        let pw = password.to_string();
        let hash = hash.map(str::to_string);
        self.run(move || match hash {
            Some(h) => verify_password(&pw, &h),
            None => {
                let _ = verify_password(&pw, dummy_hash());
                false
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not-a-hash"));
        assert!(hash_password("short").is_err());
        // The dummy hash has the parameters of real ones.
        let params = |h: &str| h.split('$').nth(3).map(str::to_string);
        assert_eq!(params(dummy_hash()), params(&h));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_gate_bounds_hashes_and_refuses_beyond_its_queue() {
        let gate = PasswordGate::new(1, 2);
        let hash = hash_password("correct horse").unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (gate, hash) = (gate.clone(), hash.clone());
                tokio::spawn(async move { gate.verify("wrong horse", Some(&hash)).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(GateError::Busy(after)) => {
                    assert!(after >= Duration::from_secs(1));
                    busy += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy > 0, "12 at once through 1 slot and 2 places: some are refused");
        assert_eq!(gate.peak(), 1);
        assert_eq!(gate.refused(), busy);
        assert_eq!(gate.running(), 0);
        assert!(!gate.verify("anything at all", None).await.unwrap(), "unknown accounts never match");
        assert!(matches!(gate.hash("short").await, Err(GateError::Core(CoreError::InvalidInput(_)))));
    }
}
