//! Storage: one set of portable SQL over sqlx's `Any` driver, on SQLite (default) or PostgreSQL.
//!
//! Ids are UUID v4 text; times are stored as unix milliseconds and exposed as `DateTime<Utc>`.
//! Migrations under `crates/gaia-core/migrations` are embedded in the binary.

mod api_keys;
mod assets;
mod attachments;
mod audit;
mod budgets;
mod conversations;
mod credentials;
mod erase;
mod guardrails;
mod limits;
mod memories;
mod personas;
mod prices;
mod providers;
mod sessions;
mod usage;
mod users;
mod vectors;

pub use api_keys::{ApiKeyRecord, NewApiKey, RefreshToken};
pub use assets::{
    Asset, AssetFilter, AssetGroup, AssetKind, AssetOutcome, AssetReportRow, AssetStatus, NewAsset, NewUnitPrice,
    UnitPriceEntry, UnitPriceKind, MAX_ASSET_PAGE,
};
pub use attachments::{sniff_image_type, Attachment, IMAGE_TYPES, MAX_FILE_NAME};
pub use audit::AuditRecord;
pub use budgets::{Budget, BudgetPeriod, NewBudget};
pub use conversations::{Conversation, ConversationHit, StoredMessage};
pub use credentials::CredentialsVersions;
pub use erase::{
    ExportedApiKey, ExportedConversation, ExportedDocument, ExportedGrant, ExportedMembership, ExportedShare,
    ExportedSignIn, ExportedUser, ExportedWebSession, UsageExport, UserExport, ERASED_USER, MAX_EXPORT_CONVERSATIONS,
    MAX_EXPORT_MESSAGES, MAX_EXPORT_ROWS,
};
pub use guardrails::{GuardrailBinding, MAX_BOUND_RULES};
pub use limits::{LimitScope, RateLimitOverride};
pub use memories::{PersonaMemory, StoredMemory, MAX_MEMORY_FACTS, MAX_MEMORY_FACT_CHARS, MAX_MEMORY_SUMMARY_CHARS};
pub use personas::{
    Persona, PersonaInput, UserSettings, DEFAULT_PERSONA_ID, DEFAULT_PERSONA_TOOLS, MAX_PERSONA_NAME,
    MAX_PERSONA_TOOLS, MAX_SYSTEM_PROMPT, MAX_TOOL_SOURCE_NAME,
};
pub use prices::PriceEntry;
pub use providers::{OpenedEntry, RuntimeProvider, NO_SECRETS_KEY};
pub use sessions::{RefreshOutcome, WebSession};
pub use usage::{
    spreadsheet_safe, NewUsage, UsageFilter, UsageGroup, UsageGroupBy, UsageRecord, UsageSummary, UsageTotals,
};
pub use users::{Invite, User, MAX_DISPLAY_NAME};

use crate::config::redact_url;
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The migrations this build knows.
fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    // Migrations only add (columns, tables, indexes), so a build may run on a database a newer build
    // migrated: during a rolling update the old instances keep serving (and may restart) after the
    // new migrations ran.
    m.set_ignore_missing(true);
    m
}

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

/// Text as stored: NUL characters, which PostgreSQL refuses in `TEXT`, become U+FFFD on every backend.
pub(crate) fn clean_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Maps the error of a write to a row of `user_id`: a missing parent row (the user) is
/// `NotFound("user …")`; any other error as [`CoreError::from`].
pub(crate) fn user_row_error(user_id: &str) -> impl FnOnce(sqlx::Error) -> CoreError + '_ {
    move |e| match CoreError::from(e) {
        CoreError::NotFound(_) => CoreError::NotFound(format!("user {user_id}")),
        other => other,
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new id that sorts by creation time (UUID version 7), for rows written at a high rate (usage
/// records and their tags): their primary-key indexes grow at one end instead of being written at
/// random pages. Only for ids that reveal nothing by their time (the rows carry it anyway).
pub(crate) fn new_time_ordered_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Storage {
    /// Runs a batched delete whose `$1` is a time (unix milliseconds of `before`) and `$2` the most
    /// rows to delete; returns how many were deleted (data retention).
    pub(crate) async fn delete_batch(&self, sql: &str, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        let r = sqlx::query(sql).bind(before.timestamp_millis()).bind(i64::from(limit)).execute(self.pool()).await?;
        Ok(r.rows_affected())
    }
}

impl Storage {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`).
    ///
    /// For SQLite the file (and its directory) is created if missing, and every connection runs with
    /// WAL journaling, foreign keys on and a 5 s busy timeout; `sqlite::memory:` uses a single connection
    /// so that every query sees the same database. Does not run migrations: call [`Storage::migrate`].
    pub async fn connect(url: &str) -> Result<Storage> {
        // Idempotent (guarded by a `Once` inside sqlx).
        sqlx::any::install_default_drivers();

        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(CoreError::Config(format!(
                "database url `{}` must start with sqlite:// or postgres://",
                redact_url(url)
            )));
        };
        let memory = backend == Backend::Sqlite && is_sqlite_memory(&url);
        if backend == Backend::Sqlite && !memory {
            create_sqlite_parent_dir(&url)?;
        }
        let opts = AnyConnectOptions::from_str(&url)
            .map_err(|e| CoreError::Config(format!("database url `{}`: {e}", redact_url(&url))))?;
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        pool = match backend {
            Backend::Sqlite if memory => pool.max_connections(1).idle_timeout(None).max_lifetime(None),
            Backend::Sqlite => pool.max_connections(8),
            Backend::Postgres => pool.max_connections(16),
        };
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // busy_timeout first: switching to WAL needs a lock another connection may hold.
                    conn.execute(
                        "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                         PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(opts)
            .await
            .map_err(|e| CoreError::Database(format!("cannot connect to {}: {e}", redact_url(&url))))?;
        Ok(Storage { pool, backend })
    }

    /// Runs the embedded migrations (idempotent: applied migrations are recorded and skipped).
    pub async fn migrate(&self) -> Result<()> {
        migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Whether every migration this build knows is applied (a database migrated by a newer build
    /// counts: migrations only add). False when the migration table does not exist yet.
    pub async fn migrations_applied(&self) -> Result<bool> {
        let applied: Vec<i64> = match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
        {
            Ok(v) => v,
            // No table yet: nothing is applied. Any other failure (unreachable database, no right to
            // read the table) is one.
            Err(sqlx::Error::Database(e)) if is_undefined_table(e.as_ref()) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let applied: std::collections::HashSet<i64> = applied.into_iter().collect();
        Ok(migrator().iter().filter(|m| m.migration_type.is_up_migration()).all(|m| applied.contains(&m.version)))
    }

    /// Waits until [`Storage::migrations_applied`] (another process runs them), checking every
    /// `every` and saying so in the log every 10 s while it waits.
    pub async fn wait_for_migrations(&self, every: Duration) {
        const SAY_EVERY: Duration = Duration::from_secs(10);
        let start = std::time::Instant::now();
        let mut said: Option<std::time::Instant> = None;
        loop {
            match self.migrations_applied().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read which migrations are applied"),
            }
            if said.is_none_or(|t| t.elapsed() >= SAY_EVERY) {
                tracing::info!(
                    waited_secs = start.elapsed().as_secs(),
                    "waiting for the database migrations (server.migrate_on_start is false: run `gaia migrate`)"
                );
                said = Some(std::time::Instant::now());
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The database engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for crates that keep their own tables. Queries should use `$1`-style
    /// placeholders, which work on both backends.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers, for readiness probes: like [`Storage::ping`], except that a pool
    /// whose every connection is in use counts as answering (those connections are serving
    /// requests). A busy instance is not taken out of rotation for being busy, which would move its
    /// load onto the others; a database that goes away closes the pool's connections, and the ping
    /// then fails.
    pub async fn check_ready(&self) -> Result<()> {
        let saturated = self.pool.num_idle() == 0 && self.pool.size() >= self.pool.options().get_max_connections();
        if saturated {
            return Ok(());
        }
        self.ping().await
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// Whether `e` says a table does not exist (PostgreSQL's SQLSTATE 42P01, SQLite's "no such table").
fn is_undefined_table(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code().as_deref() == Some("42P01") || e.message().contains("no such table")
}

/// Whether a SQLite URL designates an in-memory database.
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Adds `mode=rwc` so a missing SQLite file is created.
fn sqlite_url(url: &str) -> String {
    if is_sqlite_memory(url) || url.contains("mode=") {
        return url.to_string();
    }
    if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The file path of a SQLite URL (`sqlite://PATH?…` or `sqlite:PATH?…`), when it is a plain path.
fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains('%')).then(|| Path::new(path))
}

/// Creates the directory that will hold a SQLite file, so `sqlite://data/gaia.db` works on first run.
fn create_sqlite_parent_dir(url: &str) -> Result<()> {
    let Some(dir) = sqlite_path(url).and_then(Path::parent) else { return Ok(()) };
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CoreError::Database(format!("cannot create directory {} for the database: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(sqlite_url("sqlite://gaia.db"), "sqlite://gaia.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://gaia.db?x=1"), "sqlite://gaia.db?x=1&mode=rwc");
        assert_eq!(sqlite_url("sqlite://gaia.db?mode=ro"), "sqlite://gaia.db?mode=ro");
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/gaia.db?mode=rwc"), Some(Path::new("data/gaia.db")));
        assert_eq!(sqlite_path("sqlite:gaia.db"), Some(Path::new("gaia.db")));
        assert_eq!(sqlite_path("sqlite:///abs/g.db"), Some(Path::new("/abs/g.db")));
        assert_eq!(sqlite_path("sqlite://"), None);
    }

    #[test]
    fn nul_characters_are_replaced() {
        assert_eq!(clean_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(clean_text("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn timestamps_round_trip_and_clamp() {
        let t = from_ms(1_700_000_000_123);
        assert_eq!(t.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(from_ms(i64::MAX).timestamp_millis(), 0);
    }

    #[tokio::test]
    async fn memory_database_works_and_creates_missing_directories() {
        let s = Storage::connect("sqlite::memory:").await.unwrap();
        s.migrate().await.unwrap();
        s.ping().await.unwrap();
        assert_eq!(s.backend(), Backend::Sqlite);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/gaia.db");
        let s = Storage::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        s.migrate().await.unwrap();
        assert!(path.exists());
    }

    #[tokio::test]
    async fn rejects_unknown_scheme() {
        let e = Storage::connect("mysql://x").await.unwrap_err();
        assert!(matches!(e, CoreError::Config(_)));
    }
}
