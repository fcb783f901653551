//! The SQL [`VectorStore`] (table `embeddings`): vectors by scope, space and content hash, shared by
//! every instance on the database.

use super::{now_ms, Storage};
use crate::vectors::{decode_vector, encode_vector, EmbedError, VectorStore};
use async_trait::async_trait;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// Hashes looked up (or removed) per statement.
const BATCH: usize = 500;

fn store_error(e: sqlx::Error) -> EmbedError {
    EmbedError::Store(e.to_string())
}

#[async_trait]
impl VectorStore for Storage {
    async fn get(&self, scope: &str, space: &str, hashes: &[String]) -> Result<HashMap<String, Vec<f32>>, EmbedError> {
        let mut out = HashMap::with_capacity(hashes.len());
        for part in hashes.chunks(BATCH) {
            let marks: Vec<String> = (0..part.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT hash, vector FROM embeddings WHERE scope = $1 AND space = $2 AND hash IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(scope).bind(space);
            for h in part {
                q = q.bind(h);
            }
            for r in q.fetch_all(self.pool()).await.map_err(store_error)? {
                let hash: String = r.try_get("hash").map_err(store_error)?;
                let raw: String = r.try_get("vector").map_err(store_error)?;
                match decode_vector(&raw) {
                    Some(v) => {
                        out.insert(hash, v);
                    }
                    // Left out, so it is embedded again and stored anew.
                    None => tracing::warn!(scope, space, hash, "a stored vector is unreadable"),
                }
            }
        }
        Ok(out)
    }

    async fn put(&self, scope: &str, space: &str, items: &[(String, Vec<f32>)]) -> Result<(), EmbedError> {
        if items.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await.map_err(store_error)?;
        for (hash, v) in items {
            sqlx::query(
                "INSERT INTO embeddings (scope, space, hash, dims, vector, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (scope, space, hash) DO NOTHING",
            )
            .bind(scope)
            .bind(space)
            .bind(hash)
            .bind(v.len() as i64)
            .bind(encode_vector(v))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn all(&self, scope: &str, space: &str) -> Result<Vec<(String, Vec<f32>)>, EmbedError> {
        let rows = sqlx::query("SELECT hash, vector FROM embeddings WHERE scope = $1 AND space = $2")
            .bind(scope)
            .bind(space)
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let hash: String = r.try_get("hash").map_err(store_error)?;
            let raw: String = r.try_get("vector").map_err(store_error)?;
            if let Some(v) = decode_vector(&raw) {
                out.push((hash, v));
            }
        }
        Ok(out)
    }

    async fn retain(&self, scope: &str, space: &str, keep: &HashSet<String>) -> Result<u64, EmbedError> {
        let rows = sqlx::query("SELECT hash FROM embeddings WHERE scope = $1 AND space = $2")
            .bind(scope)
            .bind(space)
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        let mut gone: Vec<String> = Vec::new();
        for r in rows {
            let h: String = r.try_get("hash").map_err(store_error)?;
            if !keep.contains(&h) {
                gone.push(h);
            }
        }
        let mut n = 0;
        for part in gone.chunks(BATCH) {
            let marks: Vec<String> = (0..part.len()).map(|i| format!("${}", i + 3)).collect();
            let sql =
                format!("DELETE FROM embeddings WHERE scope = $1 AND space = $2 AND hash IN ({})", marks.join(", "));
            let mut q = sqlx::query(&sql).bind(scope).bind(space);
            for h in part {
                q = q.bind(h);
            }
            n += q.execute(self.pool()).await.map_err(store_error)?.rows_affected();
        }
        Ok(n)
    }
}
