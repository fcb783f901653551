//! Storage: one set of portable SQL over sqlx's `Any` driver, on SQLite (default) or PostgreSQL.
//!
//! Ids are UUID v4 text; times are stored as unix milliseconds and exposed as `DateTime<Utc>`.
//! Migrations under `crates/gaia-core/migrations` are embedded in the binary.

mod api_keys;
mod conversations;
mod usage;
mod users;

pub use api_keys::{ApiKeyRecord, RefreshToken};
pub use conversations::{Conversation, StoredMessage};
pub use usage::{NewUsage, UsageFilter, UsageGroup, UsageRecord, UsageSummary, UsageTotals};
pub use users::User;

use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database engine a [`Storage`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite (a local file, or memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// `"sqlite"` or `"postgres"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Handle to the database; cheap to clone (a pool inside).
#[derive(Clone, Debug)]
pub struct Storage {
    pool: AnyPool,
    backend: Backend,
}

/// Current time in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Milliseconds to a UTC time (out-of-range values clamp to the epoch).
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Storage {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`). A SQLite file is created
    /// if missing. Does not run migrations: call [`Storage::migrate`].
    pub async fn connect(url: &str) -> Result<Storage> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(CoreError::Config(format!(
                "database url `{}` must start with sqlite:// or postgres://",
                crate::config::redact_url(url)
            )));
        };
        let memory = backend == Backend::Sqlite && url.contains(":memory:");
        let opts = AnyConnectOptions::from_str(&url).map_err(|e| CoreError::Config(format!("database url: {e}")))?;
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        pool = match backend {
            Backend::Sqlite if memory => pool.max_connections(1).idle_timeout(None).max_lifetime(None),
            Backend::Sqlite => pool.max_connections(8),
            Backend::Postgres => pool.max_connections(16),
        };
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;").await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(opts)
            .await
            .map_err(|e| CoreError::Database(format!("cannot connect to {}: {e}", crate::config::redact_url(&url))))?;
        Ok(Storage { pool, backend })
    }

    /// Runs the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The database engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for crates that keep their own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// Adds `mode=rwc` so a missing SQLite file is created.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        return url.to_string();
    }
    if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(sqlite_url("sqlite://gaia.db"), "sqlite://gaia.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://gaia.db?x=1"), "sqlite://gaia.db?x=1&mode=rwc");
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[tokio::test]
    async fn rejects_unknown_scheme() {
        let e = Storage::connect("mysql://x").await.unwrap_err();
        assert!(matches!(e, CoreError::Config(_)));
    }
}
