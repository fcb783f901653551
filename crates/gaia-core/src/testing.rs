//! Helpers for tests that need a database or a cache (feature `testing`).
//!
//! - [`database_urls`] gives a fresh SQLite file always, plus a fresh PostgreSQL schema when
//!   `GAIA_TEST_DATABASE_URL` is set. Each PostgreSQL URL points at a new schema (through the `options`
//!   connection parameter setting `search_path`), so tests run in parallel without seeing each other.
//! - [`redis_url`] gives `GAIA_TEST_REDIS_URL`.
//!
//! With `GAIA_REQUIRE_SERVICES=1` a missing URL panics (the test fails) instead of being skipped.

use std::path::PathBuf;

/// Whether missing services are failures (`GAIA_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var("GAIA_REQUIRE_SERVICES").map(|v| v == "1" || v == "true").unwrap_or(false)
}

fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if services_required() {
                panic!("{var} is not set but GAIA_REQUIRE_SERVICES=1: this test needs that service");
            }
            eprintln!("note: {var} not set; skipping the part of this test that needs it");
            None
        }
    }
}

/// A test database: its URL and what keeps it alive (a temp dir for SQLite).
#[derive(Debug)]
pub struct TestDb {
    /// Connection URL.
    pub url: String,
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite database file in a temp dir.
pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("gaia-test.db");
    TestDb { url: format!("sqlite://{}", path.display()), backend: "sqlite", _dir: Some(dir) }
}

/// A fresh PostgreSQL schema, when `GAIA_TEST_DATABASE_URL` is set.
pub async fn postgres_db() -> Option<TestDb> {
    let base = service_url("GAIA_TEST_DATABASE_URL")?;
    let schema = format!("gaia_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to GAIA_TEST_DATABASE_URL: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.expect("create test schema");
    let _ = sqlx::Connection::close(conn).await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(TestDb { url, backend: "postgres", _dir: None })
}

/// SQLite always, PostgreSQL too when configured.
pub async fn database_urls() -> Vec<TestDb> {
    let mut v = vec![sqlite_db()];
    if let Some(pg) = postgres_db().await {
        v.push(pg);
    }
    v
}

/// `GAIA_TEST_REDIS_URL`, when set.
pub fn redis_url() -> Option<String> {
    service_url("GAIA_TEST_REDIS_URL")
}
