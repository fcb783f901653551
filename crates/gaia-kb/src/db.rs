//! Documents kept in the SQL database (storage modes `database` and `hybrid`), on SQLite or PostgreSQL,
//! and (hybrid mode) the edits still waiting for their git commit.

use crate::error::{KbError, Result};
use crate::git::Author;
use crate::parse::version_of;
use chrono::{DateTime, Utc};
use gaia_core::storage::Storage;
use sqlx::Row;

/// A stored document row.
#[derive(Debug, Clone)]
pub(crate) struct Row_ {
    pub path: String,
    pub content: String,
    pub updated_at: DateTime<Utc>,
}

/// An edit saved in the database whose commit to the git working copy failed (table `kb_unmirrored`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unmirrored {
    /// Vault path of the document (created, replaced, deleted, or one side of a move).
    pub path: String,
    /// Who made the edit: the author of the commit that mirrors it.
    pub author: Author,
    /// The edit's commit message.
    pub message: String,
    /// When the edit was made (unix milliseconds). A row replaced by a later edit always gets a larger
    /// value, so it also identifies this version of the row (see [`DbStore::clear_unmirrored`]).
    pub edited_at: i64,
}

/// Tables `kb_documents` and `kb_unmirrored` for one knowledge base.
#[derive(Debug, Clone)]
pub(crate) struct DbStore {
    storage: Storage,
    kb: String,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn row(r: &sqlx::any::AnyRow) -> Result<Row_> {
    Ok(Row_ {
        path: r.try_get("path")?,
        content: r.try_get("content")?,
        updated_at: DateTime::from_timestamp_millis(r.try_get("updated_at")?).unwrap_or_default(),
    })
}

/// Text as stored: NUL, which PostgreSQL refuses in `TEXT`, is refused here for every backend.
fn check_text(content: &str) -> Result<()> {
    if content.contains('\0') {
        return Err(KbError::InvalidInput("documents may not contain NUL characters".into()));
    }
    Ok(())
}

impl DbStore {
    /// The rows of knowledge base `kb` in `storage` (which must be migrated).
    pub(crate) fn new(storage: Storage, kb: &str) -> DbStore {
        DbStore { storage, kb: kb.to_string() }
    }

    /// Every document, by path.
    pub(crate) async fn all(&self) -> Result<Vec<Row_>> {
        let rows = sqlx::query("SELECT path, content, updated_at FROM kb_documents WHERE kb = $1 ORDER BY path")
            .bind(&self.kb)
            .fetch_all(self.storage.pool())
            .await?;
        rows.iter().map(row).collect()
    }

    /// One document, if it exists.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<Row_>> {
        let r = sqlx::query("SELECT path, content, updated_at FROM kb_documents WHERE kb = $1 AND path = $2")
            .bind(&self.kb)
            .bind(path)
            .fetch_optional(self.storage.pool())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Creates a document; `Conflict` when it exists.
    pub(crate) async fn create(&self, path: &str, content: &str, by: Option<&str>) -> Result<()> {
        check_text(content)?;
        let res = sqlx::query(
            "INSERT INTO kb_documents (kb, path, content, hash, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kb, path) DO NOTHING",
        )
        .bind(&self.kb)
        .bind(path)
        .bind(content)
        .bind(version_of(content))
        .bind(now_ms())
        .bind(by)
        .execute(self.storage.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(KbError::Conflict(format!("{path} already exists")));
        }
        Ok(())
    }

    /// Replaces a document if its version is still `expected`.
    pub(crate) async fn update(&self, path: &str, content: &str, expected: &str, by: Option<&str>) -> Result<()> {
        check_text(content)?;
        let res = sqlx::query(
            "UPDATE kb_documents SET content = $1, hash = $2, updated_at = $3, updated_by = $4 \
             WHERE kb = $5 AND path = $6 AND hash = $7",
        )
        .bind(content)
        .bind(version_of(content))
        .bind(now_ms())
        .bind(by)
        .bind(&self.kb)
        .bind(path)
        .bind(expected)
        .execute(self.storage.pool())
        .await?;
        if res.rows_affected() == 0 {
            return match self.get(path).await? {
                None => Err(KbError::NotFound(path.to_string())),
                Some(_) => Err(KbError::Conflict(format!("{path} changed since version {expected}"))),
            };
        }
        Ok(())
    }

    /// Creates or replaces a document, whatever its version.
    pub(crate) async fn upsert(&self, path: &str, content: &str, by: Option<&str>) -> Result<()> {
        check_text(content)?;
        sqlx::query(
            "INSERT INTO kb_documents (kb, path, content, hash, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kb, path) DO UPDATE SET content = excluded.content, hash = excluded.hash, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&self.kb)
        .bind(path)
        .bind(content)
        .bind(version_of(content))
        .bind(now_ms())
        .bind(by)
        .execute(self.storage.pool())
        .await?;
        Ok(())
    }

    /// Deletes a document (if its version is `expected`, when given).
    pub(crate) async fn delete(&self, path: &str, expected: Option<&str>) -> Result<()> {
        let res = match expected {
            Some(v) => {
                sqlx::query("DELETE FROM kb_documents WHERE kb = $1 AND path = $2 AND hash = $3")
                    .bind(&self.kb)
                    .bind(path)
                    .bind(v)
                    .execute(self.storage.pool())
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM kb_documents WHERE kb = $1 AND path = $2")
                    .bind(&self.kb)
                    .bind(path)
                    .execute(self.storage.pool())
                    .await?
            }
        };
        if res.rows_affected() == 0 {
            return match self.get(path).await? {
                None => Err(KbError::NotFound(path.to_string())),
                Some(_) => Err(KbError::Conflict(format!("{path} changed since the given version"))),
            };
        }
        Ok(())
    }

    /// Moves a document in one transaction; `Conflict` when the destination exists.
    pub(crate) async fn rename(&self, from: &str, to: &str, expected: Option<&str>, by: Option<&str>) -> Result<()> {
        let mut tx = self.storage.pool().begin().await?;
        let cur = sqlx::query("SELECT hash FROM kb_documents WHERE kb = $1 AND path = $2")
            .bind(&self.kb)
            .bind(from)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(cur) = cur else { return Err(KbError::NotFound(from.to_string())) };
        let hash: String = cur.try_get("hash")?;
        if expected.is_some_and(|v| v != hash) {
            return Err(KbError::Conflict(format!("{from} changed since the given version")));
        }
        let res = sqlx::query(
            "UPDATE kb_documents SET path = $1, updated_at = $2, updated_by = $3 WHERE kb = $4 AND path = $5 \
             AND NOT EXISTS (SELECT 1 FROM kb_documents WHERE kb = $4 AND path = $1)",
        )
        .bind(to)
        .bind(now_ms())
        .bind(by)
        .bind(&self.kb)
        .bind(from)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(r) if r.rows_affected() == 1 => {}
            _ => return Err(KbError::Conflict(format!("{to} already exists"))),
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the edit of `paths` (saved in `kb_documents`) still has to be committed to git, by
    /// `author` with `message`; one transaction. A path already waiting takes the new author and
    /// message (its commit will carry the database's latest text), and its `edited_at` grows even when
    /// the clock does not, so that [`DbStore::clear_unmirrored`] of the older row leaves it alone.
    pub(crate) async fn mark_unmirrored(&self, paths: &[String], author: &Author, message: &str) -> Result<()> {
        let mut tx = self.storage.pool().begin().await?;
        let now = now_ms();
        for path in paths {
            sqlx::query(
                "INSERT INTO kb_unmirrored (kb, path, author_name, author_email, message, edited_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (kb, path) DO UPDATE SET author_name = excluded.author_name, \
                 author_email = excluded.author_email, message = excluded.message, \
                 edited_at = CASE WHEN excluded.edited_at > kb_unmirrored.edited_at \
                 THEN excluded.edited_at ELSE kb_unmirrored.edited_at + 1 END",
            )
            .bind(&self.kb)
            .bind(path)
            .bind(&author.name)
            .bind(&author.email)
            .bind(message)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The edits waiting for their git commit, oldest first (ties by path).
    pub(crate) async fn unmirrored(&self) -> Result<Vec<Unmirrored>> {
        let rows = sqlx::query(
            "SELECT path, author_name, author_email, message, edited_at FROM kb_unmirrored WHERE kb = $1 \
             ORDER BY edited_at, path",
        )
        .bind(&self.kb)
        .fetch_all(self.storage.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Unmirrored {
                    path: r.try_get("path")?,
                    author: Author { name: r.try_get("author_name")?, email: r.try_get("author_email")? },
                    message: r.try_get("message")?,
                    edited_at: r.try_get("edited_at")?,
                })
            })
            .collect()
    }

    /// Removes `entries` once their commit is made; one transaction. A row that changed since it was
    /// read (a newer failed edit of the same path, here or on another instance) has another
    /// `edited_at` and is kept, for the next mirror.
    pub(crate) async fn clear_unmirrored(&self, entries: &[Unmirrored]) -> Result<()> {
        let mut tx = self.storage.pool().begin().await?;
        for e in entries {
            sqlx::query("DELETE FROM kb_unmirrored WHERE kb = $1 AND path = $2 AND edited_at = $3")
                .bind(&self.kb)
                .bind(&e.path)
                .bind(e.edited_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
