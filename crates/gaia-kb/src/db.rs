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

/// Hybrid mode: the author and message of an edit, recorded with the edit in `kb_unmirrored` until its
/// git commit is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mirror<'a> {
    /// The commit's author (the editing user).
    pub author: &'a Author,
    /// The commit message.
    pub message: &'a str,
}

/// An edit saved in the database whose git commit is not made yet (table `kb_unmirrored`): recorded in
/// the edit's own transaction, removed once the commit is made, so a failed commit or a crash between
/// the two leaves the record for the next sync.
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

    /// Creates a document; `Conflict` when it exists. With `mirror` (hybrid mode), the edit is recorded
    /// as waiting for its git commit in the same transaction (see [`DbStore::record_unmirrored`]).
    pub(crate) async fn create(
        &self,
        path: &str,
        content: &str,
        by: Option<&str>,
        mirror: Option<&Mirror<'_>>,
    ) -> Result<Vec<Unmirrored>> {
        check_text(content)?;
        let mut tx = self.storage.pool().begin().await?;
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
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(KbError::Conflict(format!("{path} already exists")));
        }
        self.finish(tx, &[path], mirror).await
    }

    /// Replaces a document if its version is still `expected` (`mirror`: as for [`DbStore::create`]).
    pub(crate) async fn update(
        &self,
        path: &str,
        content: &str,
        expected: &str,
        by: Option<&str>,
        mirror: Option<&Mirror<'_>>,
    ) -> Result<Vec<Unmirrored>> {
        check_text(content)?;
        let mut tx = self.storage.pool().begin().await?;
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
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return self.refused(tx, path, format!("{path} changed since version {expected}")).await;
        }
        self.finish(tx, &[path], mirror).await
    }

    /// Creates or replaces a document, whatever its version (`mirror`: as for [`DbStore::create`]).
    pub(crate) async fn upsert(
        &self,
        path: &str,
        content: &str,
        by: Option<&str>,
        mirror: Option<&Mirror<'_>>,
    ) -> Result<Vec<Unmirrored>> {
        check_text(content)?;
        let mut tx = self.storage.pool().begin().await?;
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
        .execute(&mut *tx)
        .await?;
        self.finish(tx, &[path], mirror).await
    }

    /// Deletes a document (if its version is `expected`, when given; `mirror`: as for
    /// [`DbStore::create`]).
    pub(crate) async fn delete(
        &self,
        path: &str,
        expected: Option<&str>,
        mirror: Option<&Mirror<'_>>,
    ) -> Result<Vec<Unmirrored>> {
        let mut tx = self.storage.pool().begin().await?;
        let res = match expected {
            Some(v) => {
                sqlx::query("DELETE FROM kb_documents WHERE kb = $1 AND path = $2 AND hash = $3")
                    .bind(&self.kb)
                    .bind(path)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM kb_documents WHERE kb = $1 AND path = $2")
                    .bind(&self.kb)
                    .bind(path)
                    .execute(&mut *tx)
                    .await?
            }
        };
        if res.rows_affected() == 0 {
            return self.refused(tx, path, format!("{path} changed since the given version")).await;
        }
        self.finish(tx, &[path], mirror).await
    }

    /// Moves a document in one transaction; `Conflict` when the destination exists (`mirror`: as for
    /// [`DbStore::create`], both paths recorded).
    pub(crate) async fn rename(
        &self,
        from: &str,
        to: &str,
        expected: Option<&str>,
        by: Option<&str>,
        mirror: Option<&Mirror<'_>>,
    ) -> Result<Vec<Unmirrored>> {
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
        self.finish(tx, &[from, to], mirror).await
    }

    /// Ends the transaction of an edit of `path` that changed no row, saying why: the document does not
    /// exist, or it is not at the expected version (`conflict`).
    async fn refused(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Any>,
        path: &str,
        conflict: String,
    ) -> Result<Vec<Unmirrored>> {
        tx.rollback().await?;
        match self.get(path).await? {
            None => Err(KbError::NotFound(path.to_string())),
            Some(_) => Err(KbError::Conflict(conflict)),
        }
    }

    /// Ends an edit's transaction: with `mirror`, first records `paths` as waiting for their git commit
    /// ([`DbStore::record_unmirrored`]), so the edit and its record are saved together or not at all.
    async fn finish(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        paths: &[&str],
        mirror: Option<&Mirror<'_>>,
    ) -> Result<Vec<Unmirrored>> {
        let recorded = match mirror {
            Some(m) => self.record_unmirrored(&mut tx, paths, m).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(recorded)
    }

    /// Records that the edit of `paths` still has to be committed to git, by the mirror's author with its
    /// message, returning the rows as written. A path already waiting takes the new author and message
    /// (its commit will carry the database's latest text), and its `edited_at` grows even when the clock
    /// does not, so that [`DbStore::clear_unmirrored`] of the older row leaves it alone.
    async fn record_unmirrored(
        &self,
        conn: &mut sqlx::AnyConnection,
        paths: &[&str],
        m: &Mirror<'_>,
    ) -> Result<Vec<Unmirrored>> {
        let now = now_ms();
        let mut recorded = Vec::with_capacity(paths.len());
        for path in paths {
            let row = sqlx::query(
                "INSERT INTO kb_unmirrored (kb, path, author_name, author_email, message, edited_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (kb, path) DO UPDATE SET author_name = excluded.author_name, \
                 author_email = excluded.author_email, message = excluded.message, \
                 edited_at = CASE WHEN excluded.edited_at > kb_unmirrored.edited_at \
                 THEN excluded.edited_at ELSE kb_unmirrored.edited_at + 1 END \
                 RETURNING edited_at",
            )
            .bind(&self.kb)
            .bind(*path)
            .bind(&m.author.name)
            .bind(&m.author.email)
            .bind(m.message)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            recorded.push(Unmirrored {
                path: path.to_string(),
                author: m.author.clone(),
                message: m.message.to_string(),
                edited_at: row.try_get("edited_at")?,
            });
        }
        Ok(recorded)
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

#[cfg(test)]
mod tests {
    use super::*;
    use gaia_core::testing::database_urls;

    #[tokio::test]
    async fn an_edit_and_its_mirror_record_are_saved_together_or_not_at_all() {
        for tdb in database_urls().await {
            let b = tdb.backend;
            let db = DbStore::new(tdb.storage().await, "mirror-test");
            let ada = Author { name: "Ada".into(), email: "ada@example.com".into() };
            let mirror = |message| Mirror { author: &ada, message };
            let created =
                db.create("A.md", "one", Some("ada@example.com"), Some(&mirror("Create A.md"))).await.unwrap();
            assert_eq!(created.len(), 1, "{b}");
            assert_eq!((created[0].path.as_str(), created[0].message.as_str()), ("A.md", "Create A.md"), "{b}");
            assert_eq!(db.unmirrored().await.unwrap(), created, "{b}");

            // Refused edits change nothing and record nothing.
            let again = mirror("again");
            assert!(matches!(db.create("A.md", "two", None, Some(&again)).await, Err(KbError::Conflict(_))), "{b}");
            let stale = db.update("A.md", "two", "not-the-version", None, Some(&again)).await;
            assert!(matches!(stale, Err(KbError::Conflict(_))), "{b}");
            assert!(matches!(db.delete("B.md", None, Some(&again)).await, Err(KbError::NotFound(_))), "{b}");
            db.create("B.md", "bee", None, None).await.unwrap();
            let taken = db.rename("A.md", "B.md", None, None, Some(&again)).await;
            assert!(matches!(taken, Err(KbError::Conflict(_))), "{b}");
            assert_eq!(db.get("A.md").await.unwrap().unwrap().content, "one", "{b}");
            assert_eq!(db.unmirrored().await.unwrap(), created, "{b}: an edit without a mirror records nothing");

            // A later edit of a waiting path makes a newer record; clearing the older one leaves it.
            let updated = db.upsert("A.md", "three", None, Some(&mirror("Update A.md"))).await.unwrap();
            assert!(updated[0].edited_at > created[0].edited_at, "{b}");
            db.clear_unmirrored(&created).await.unwrap();
            assert_eq!(db.unmirrored().await.unwrap(), updated, "{b}");

            // A move records both of its paths, a deletion its one.
            db.clear_unmirrored(&updated).await.unwrap();
            let moved = db.rename("A.md", "C.md", None, None, Some(&mirror("Move A.md to C.md"))).await.unwrap();
            let paths: Vec<&str> = moved.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["A.md", "C.md"], "{b}");
            let deleted = db.delete("B.md", None, Some(&mirror("Delete B.md"))).await.unwrap();
            let mut waiting = moved.clone();
            waiting.extend(deleted);
            waiting.sort_by(|x, y| (x.edited_at, &x.path).cmp(&(y.edited_at, &y.path)));
            assert_eq!(db.unmirrored().await.unwrap(), waiting, "{b}");
            db.clear_unmirrored(&waiting).await.unwrap();
            assert!(db.unmirrored().await.unwrap().is_empty(), "{b}");
        }
    }
}
