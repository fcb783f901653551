//! Helpers for tests that need a database or a cache (cargo feature `testing`; other crates enable it in
//! their `[dev-dependencies]`).
//!
//! - [`database_urls`] gives a fresh SQLite database (a file in a temporary directory) always, plus a
//!   fresh PostgreSQL schema when `GAIA_TEST_DATABASE_URL` is set. Loop over it so that each test runs on
//!   every configured backend.
//! - [`redis_url`] gives `GAIA_TEST_REDIS_URL`, and [`redis_cache`] a [`RedisCache`] on it with a key
//!   prefix of its own.
//!
//! With `GAIA_REQUIRE_SERVICES=1`, a missing `GAIA_TEST_DATABASE_URL` or `GAIA_TEST_REDIS_URL` makes the
//! test panic (fail) instead of quietly covering SQLite or the in-process cache only; CI sets it.
//!
//! ## PostgreSQL isolation
//!
//! Each [`TestDb`] for PostgreSQL is a new schema `gaia_test_<unix seconds>_<random>` created in the
//! database of `GAIA_TEST_DATABASE_URL`. Its URL carries `options=-c search_path=<schema>`, so every
//! connection of every pool opened on it (including the migrations' bookkeeping table) lives in that
//! schema: tests run in parallel, in one database, without seeing each other's rows. The schema is
//! dropped when the [`TestDb`] is dropped (best effort, bounded to a few seconds), and schemas left
//! behind by killed runs are removed by the first test of a later run once they are six hours old.
//!
//! ```no_run
//! # async fn example() {
//! for db in gaia_core::testing::database_urls().await {
//!     let storage = db.storage().await;
//!     assert_eq!(storage.count_users().await.unwrap(), 0, "{} starts empty", db.backend);
//! }
//! # }
//! ```

use crate::cache::RedisCache;
use crate::storage::Storage;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Environment variable with the PostgreSQL URL used by tests.
pub const DATABASE_URL_VAR: &str = "GAIA_TEST_DATABASE_URL";
/// Environment variable with the Redis URL used by tests.
pub const REDIS_URL_VAR: &str = "GAIA_TEST_REDIS_URL";
/// The variable naming an S3-compatible server for the asset store's tests (`http://127.0.0.1:55000`,
/// a `moto_server` in CI).
pub const S3_URL_VAR: &str = "GAIA_TEST_S3_URL";
/// Environment variable that turns a missing service into a test failure.
pub const REQUIRE_SERVICES_VAR: &str = "GAIA_REQUIRE_SERVICES";

/// Prefix of the per-test PostgreSQL schemas.
const SCHEMA_PREFIX: &str = "gaia_test_";
/// Age after which a leftover test schema is removed.
const STALE_SCHEMA_SECS: u64 = 6 * 3600;

/// Copies the folder `from` into `to` (made when missing), recursively: a test's own copy of a
/// sample vault or world.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
}

/// Whether missing services are failures (`GAIA_REQUIRE_SERVICES` is `1`, `true` or `yes`).
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).map(|v| is_truthy(&v)).unwrap_or(false)
}

fn is_truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
}

/// The URL in `var`, or `None` (skip) — or a panic when the service is required.
fn service_url(var: &str) -> Option<String> {
    resolve_service(var, std::env::var(var).ok(), services_required())
}

fn resolve_service(var: &str, value: Option<String>, required: bool) -> Option<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ if required => {
            panic!("{var} is not set but {REQUIRE_SERVICES_VAR}=1: this test needs that service")
        }
        _ => {
            eprintln!("note: {var} is not set; skipping the part of this test that needs it");
            None
        }
    }
}

/// A test database: its URL, and what keeps it alive (a temporary directory for SQLite, a schema that
/// is dropped with it for PostgreSQL).
#[derive(Debug)]
pub struct TestDb {
    /// Connection URL, for [`Storage::connect`] or a server configuration.
    pub url: String,
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgSchema>,
}

#[derive(Debug)]
struct PgSchema {
    base_url: String,
    schema: String,
}

impl TestDb {
    /// A migrated [`Storage`] on this database. Panics on failure (it is for tests).
    pub async fn storage(&self) -> Storage {
        let s = Storage::connect(&self.url).await.unwrap_or_else(|e| panic!("{}: cannot connect: {e}", self.backend));
        s.migrate().await.unwrap_or_else(|e| panic!("{}: cannot migrate: {e}", self.backend));
        s
    }

    /// Another handle on the same database, as a second server instance would have: it does not own
    /// the database (dropping it removes nothing), so keep this one alive while it is in use.
    pub fn alias(&self) -> TestDb {
        TestDb { url: self.url.clone(), backend: self.backend, _dir: None, pg: None }
    }

    /// The PostgreSQL schema holding this database's tables (`None` for SQLite).
    pub fn schema(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.schema.as_str())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(pg) = self.pg.take() else { return };
        // Drop is synchronous and may run inside a runtime: do the work on a thread of its own with its
        // own runtime, and wait a bounded time for it.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("gaia-test-drop-schema".into()).spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(drop_schema(&pg.base_url, &pg.schema)).map_err(|e| e.to_string()));
            if let Err(e) = result {
                eprintln!("note: could not drop test schema {}: {e}", pg.schema);
            }
            let _ = done_tx.send(());
        });
        if spawned.is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

async fn admin_connection(base_url: &str) -> Result<sqlx::AnyConnection, sqlx::Error> {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(base_url).await
}

async fn drop_schema(base_url: &str, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = admin_connection(base_url).await?;
    // Do not wait long for a connection that is still inside a transaction on this schema.
    sqlx::query("SET lock_timeout = '3s'").execute(&mut conn).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut conn).await?;
    sqlx::Connection::close(conn).await
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Creation time encoded in a test schema name, if it has one.
fn schema_created_at(name: &str) -> Option<u64> {
    name.strip_prefix(SCHEMA_PREFIX)?.split('_').next()?.parse().ok()
}

/// Removes test schemas older than [`STALE_SCHEMA_SECS`] (left behind by killed test runs).
async fn drop_stale_schemas(conn: &mut sqlx::AnyConnection) {
    let rows = sqlx::query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'gaia_test_%'")
        .fetch_all(&mut *conn)
        .await;
    let Ok(rows) = rows else { return };
    let now = unix_secs();
    for row in rows {
        let Ok(name) = sqlx::Row::try_get::<String, _>(&row, 0) else { continue };
        if schema_created_at(&name).is_some_and(|t| now.saturating_sub(t) > STALE_SCHEMA_SECS) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).execute(&mut *conn).await;
        }
    }
}

/// A fresh SQLite database file in a temporary directory (removed when the [`TestDb`] is dropped).
pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
    let path: PathBuf = dir.path().join("gaia-test.db");
    TestDb { url: format!("sqlite://{}", path.display()), backend: "sqlite", _dir: Some(dir), pg: None }
}

/// A fresh PostgreSQL schema, when `GAIA_TEST_DATABASE_URL` is set (see the module documentation).
/// Panics if the server cannot be reached.
pub async fn postgres_db() -> Option<TestDb> {
    static GC_DONE: AtomicBool = AtomicBool::new(false);

    let base = service_url(DATABASE_URL_VAR)?;
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    let schema = format!("{SCHEMA_PREFIX}{}_{}", unix_secs(), &uuid[..12]);
    let mut conn =
        admin_connection(&base).await.unwrap_or_else(|e| panic!("cannot connect to {DATABASE_URL_VAR}: {e}"));
    if !GC_DONE.swap(true, Ordering::SeqCst) {
        drop_stale_schemas(&mut conn).await;
    }
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test schema {schema}: {e}"));
    let _ = sqlx::Connection::close(conn).await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(TestDb { url, backend: "postgres", _dir: None, pg: Some(PgSchema { base_url: base, schema }) })
}

/// SQLite always, PostgreSQL too when `GAIA_TEST_DATABASE_URL` is set; each one fresh and empty.
pub async fn database_urls() -> Vec<TestDb> {
    let mut v = vec![sqlite_db()];
    if let Some(pg) = postgres_db().await {
        v.push(pg);
    }
    v
}

/// `GAIA_TEST_REDIS_URL`, when set.
pub fn redis_url() -> Option<String> {
    service_url(REDIS_URL_VAR)
}

/// `GAIA_TEST_S3_URL`, when set: an S3-compatible server accepting any credentials (moto).
pub fn s3_url() -> Option<String> {
    service_url(S3_URL_VAR)
}

/// A key prefix no other test uses (`gaia-test:<random>:`).
pub fn unique_redis_prefix() -> String {
    format!("gaia-test:{}:", uuid::Uuid::new_v4().simple())
}

/// A [`RedisCache`] on `GAIA_TEST_REDIS_URL` with a [`unique_redis_prefix`], when set. Panics if Redis
/// cannot be reached.
pub async fn redis_cache() -> Option<RedisCache> {
    let url = redis_url()?;
    let cache = RedisCache::connect_with_prefix(&url, &unique_redis_prefix())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {REDIS_URL_VAR}: {e}"));
    Some(cache)
}

/// A stand-in for someone else's HTTP server on a loopback port, for tests of where requests (and the
/// keys they carry) may go: it records the head (request line and headers) of every request it
/// receives and answers each with what `answer` makes of the request's path (a whole HTTP/1.1
/// response, sent before closing the connection).
pub struct RecordingListener {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingListener {
    /// Starts listening on a free loopback port.
    pub async fn start(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> RecordingListener {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot listen on loopback: {e}"),
        };
        let url = match listener.local_addr() {
            Ok(a) => format!("http://{a}"),
            Err(e) => panic!("no local address: {e}"),
        };
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = std::sync::Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < buf.len() {
                        match tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                            _ => break,
                        }
                    }
                    let request = String::from_utf8_lossy(&got).into_owned();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(request);
                    let _ = sock.write_all(answer(&path).as_bytes()).await;
                });
            }
        });
        RecordingListener { url, seen }
    }

    /// The heads of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Every value of every column of every table of `s` (except the migrations' bookkeeping), as text, with
/// the table and column it is in: found from the database catalog, so a table added later is
/// covered too.
pub async fn every_value(s: &Storage) -> Vec<(String, String)> {
    let (tables_sql, columns_sql) = match s.backend() {
        crate::storage::Backend::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            "SELECT name FROM pragma_table_info($1) ORDER BY cid",
        ),
        _ => (
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        ),
    };
    let tables: Vec<String> = sqlx::query(tables_sql)
        .fetch_all(s.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, "name"))
        .filter(|t| t != "_sqlx_migrations")
        .collect();
    assert!(tables.len() >= 25, "the catalog lists the tables: {tables:?}");
    let mut out = Vec::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query(columns_sql)
            .bind(&table)
            .fetch_all(s.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "name"))
            .collect();
        assert!(!columns.is_empty(), "{table} has columns");
        let select: Vec<String> = columns.iter().map(|c| format!("CAST(\"{c}\" AS TEXT)")).collect();
        let sql = format!("SELECT {} FROM \"{table}\"", select.join(", "));
        for row in sqlx::query(&sql).fetch_all(s.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}")) {
            for (i, c) in columns.iter().enumerate() {
                if let Some(v) = sqlx::Row::get::<Option<String>, _>(&row, i) {
                    out.push((format!("{table}.{c}"), v));
                }
            }
        }
    }
    out
}

/// Where `id` or `email` (any case) appears, as `table.column`.
pub fn mentions(values: &[(String, String)], id: &str, email: &str) -> Vec<String> {
    let mut at: Vec<String> = values
        .iter()
        .filter(|(_, v)| v.contains(id) || v.to_lowercase().contains(email))
        .map(|(at, _)| at.clone())
        .collect();
    at.sort();
    at.dedup();
    at
}

/// A key an identity provider signs tokens with (generated by the test), and its public half as a
/// JWK, for tests of `[[auth.jwks]]`.
pub struct SigningKey {
    /// The JWS algorithm (`RS256`, `ES256`, `EdDSA`).
    pub alg: &'static str,
    /// The key id, in the JWK and in the tokens' header.
    pub kid: String,
    /// The public key as a JWK.
    pub jwk: serde_json::Value,
    sign: Box<Signer>,
}

/// Signs a JWS's signing input.
type Signer = dyn Fn(&[u8]) -> Vec<u8> + Send + Sync;

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS (a JWT) of `header` and `claims`, signed by `sign`: for well-formed tokens and for
/// forged ones (`alg: none`, a wrong algorithm, an attacker's key).
pub fn jws(header: &serde_json::Value, claims: &serde_json::Value, sign: &dyn Fn(&[u8]) -> Vec<u8>) -> String {
    let message = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let signature = sign(message.as_bytes());
    format!("{message}.{}", b64url(&signature))
}

/// An HMAC-SHA256 signature of `message` with `secret` (an `HS256` JWS: for forged tokens).
pub fn hs256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

impl SigningKey {
    /// A new Ed25519 key (`EdDSA`).
    pub fn ed25519(kid: &str) -> SigningKey {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap_or_else(|e| panic!("Ed25519 key: {e}"));
        let x = b64url(pair.public_key().as_ref());
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "x": x});
        SigningKey { alg: "EdDSA", kid: kid.into(), jwk, sign: Box::new(move |m| pair.sign(m).as_ref().to_vec()) }
    }

    /// A new P-256 key (`ES256`).
    pub fn p256(kid: &str) -> SigningKey {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap_or_else(|e| panic!("P-256 key: {e}"));
        // The uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref().to_vec();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64url(&point[1..33]), "y": b64url(&point[33..65])});
        let sign = move |m: &[u8]| match pair.sign(&aws_lc_rs::rand::SystemRandom::new(), m) {
            Ok(s) => s.as_ref().to_vec(),
            Err(e) => panic!("ES256 signature: {e}"),
        };
        SigningKey { alg: "ES256", kid: kid.into(), jwk, sign: Box::new(sign) }
    }

    /// A new 2048-bit RSA key (`RS256`).
    pub fn rsa(kid: &str) -> SigningKey {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("RSA key: {e}"));
        let public = pair.public_key();
        let jwk = serde_json::json!({
            "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero()),
        });
        let sign = move |m: &[u8]| {
            let mut sig = vec![0; pair.public_modulus_len()];
            let rng = aws_lc_rs::rand::SystemRandom::new();
            if let Err(e) = pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, m, &mut sig) {
                panic!("RS256 signature: {e}");
            }
            sig
        };
        SigningKey { alg: "RS256", kid: kid.into(), jwk, sign: Box::new(sign) }
    }

    /// A token of `claims` signed with this key, naming it in its header.
    pub fn token(&self, claims: &serde_json::Value) -> String {
        jws(&serde_json::json!({"alg": self.alg, "typ": "JWT", "kid": self.kid}), claims, &*self.sign)
    }
}

/// An identity provider's key set served on loopback (on [`RecordingListener`]), which can change
/// (a rotation) and counts its fetches.
pub struct KeySetServer {
    listener: RecordingListener,
    body: std::sync::Arc<std::sync::Mutex<String>>,
}

/// A whole `200 OK` HTTP/1.1 response with a JSON body, for [`RecordingListener`]s.
pub fn http_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl KeySetServer {
    /// Serves the public halves of `keys`.
    pub async fn start(keys: &[&SigningKey]) -> KeySetServer {
        let body = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let served = body.clone();
        let listener =
            RecordingListener::start(move |_| http_json(&served.lock().unwrap_or_else(|e| e.into_inner()))).await;
        let server = KeySetServer { listener, body };
        server.serve(keys);
        server
    }

    /// Serves `keys` from now on.
    pub fn serve(&self, keys: &[&SigningKey]) {
        let set = serde_json::json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = set.to_string();
    }

    /// How many times the set was fetched.
    pub fn fetches(&self) -> usize {
        self.listener.requests().len()
    }

    /// The set's URL.
    pub fn url(&self) -> String {
        format!("{}/auth/v1/.well-known/jwks.json", self.listener.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_services_are_used() {
        assert_eq!(resolve_service("X", Some(" redis://h ".into()), true).as_deref(), Some("redis://h"));
        assert_eq!(resolve_service("X", Some("redis://h".into()), false).as_deref(), Some("redis://h"));
    }

    #[test]
    fn missing_services_are_skipped_when_optional() {
        assert_eq!(resolve_service("X", None, false), None);
        assert_eq!(resolve_service("X", Some("  ".into()), false), None);
    }

    #[test]
    #[should_panic(expected = "GAIA_REQUIRE_SERVICES=1")]
    fn missing_services_fail_when_required() {
        resolve_service("GAIA_TEST_DATABASE_URL", None, true);
    }

    #[test]
    fn flags_and_schema_names() {
        assert!(is_truthy("1") && is_truthy("true") && is_truthy(" YES "));
        assert!(!is_truthy("0") && !is_truthy("") && !is_truthy("no"));
        assert_eq!(schema_created_at("gaia_test_1700000000_abcdef012345"), Some(1_700_000_000));
        assert_eq!(schema_created_at("gaia_test_0123abcd"), None);
        assert_eq!(schema_created_at("public"), None);
    }

    #[tokio::test]
    async fn sqlite_test_databases_are_fresh_and_removed() {
        let db = sqlite_db();
        let s = db.storage().await;
        assert_eq!(s.count_users().await.unwrap(), 0);
        s.close().await;
        let path = db._dir.as_ref().unwrap().path().to_path_buf();
        drop(db);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn postgres_schemas_are_isolated_and_dropped() {
        let Some(a) = postgres_db().await else { return };
        let Some(b) = postgres_db().await else { return };
        let (sa, sb) = (a.storage().await, b.storage().await);
        sa.create_user("only-in-a@example.com", None, None).await.unwrap();
        assert_eq!(sa.count_users().await.unwrap(), 1);
        assert_eq!(sb.count_users().await.unwrap(), 0);
        let schema = a.schema().unwrap().to_string();
        let base = a.pg.as_ref().unwrap().base_url.clone();
        sa.close().await;
        drop(a);
        let mut conn = admin_connection(&base).await.unwrap();
        let left: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1")
                .bind(&schema)
                .fetch_one(&mut conn)
                .await
                .unwrap(),
            0,
        );
        assert_eq!(left, 0, "schema {schema} was not dropped");
    }
}
