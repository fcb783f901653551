//! Model prices with the time they take effect (`model_prices`).

use super::{from_ms, new_id, now_ms, Storage};
use crate::error::{CoreError, Result};
use crate::types::ModelPrice;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A model's price from a point in time on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceEntry {
    /// Id.
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// Model id at the provider.
    pub model: String,
    /// Dollars per million input tokens and per million output tokens.
    pub price: ModelPrice,
    /// From when it applies (until a later entry of the same model takes effect).
    pub effective_from: DateTime<Utc>,
    /// Who set it.
    pub created_by: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "id, provider, model, input_per_million, output_per_million, cached_input_per_million, \
                    cache_write_input_per_million, effective_from, created_by, created_at";

fn row_to_price(r: &AnyRow) -> Result<PriceEntry> {
    Ok(PriceEntry {
        id: r.try_get("id")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        price: ModelPrice {
            input: r.try_get("input_per_million")?,
            output: r.try_get("output_per_million")?,
            cached_input: r.try_get("cached_input_per_million")?,
            cache_write_input: r.try_get("cache_write_input_per_million")?,
        },
        effective_from: from_ms(r.try_get("effective_from")?),
        created_by: r.try_get("created_by")?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

impl Storage {
    /// Records a price of `model` at `provider` taking effect at `effective_from` (past or future).
    pub async fn add_price(
        &self,
        provider: &str,
        model: &str,
        price: ModelPrice,
        effective_from: DateTime<Utc>,
        created_by: Option<&str>,
    ) -> Result<PriceEntry> {
        if provider.trim().is_empty() || model.trim().is_empty() {
            return Err(CoreError::InvalidInput("provider and model are required".into()));
        }
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(price.input)
            || !ok(price.output)
            || !price.cached_input.is_none_or(ok)
            || !price.cache_write_input.is_none_or(ok)
        {
            return Err(CoreError::InvalidInput("prices must be non-negative numbers".into()));
        }
        let id = new_id();
        sqlx::query(
            "INSERT INTO model_prices (id, provider, model, input_per_million, output_per_million, \
             cached_input_per_million, cache_write_input_per_million, effective_from, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(provider)
        .bind(model)
        .bind(price.input)
        .bind(price.output)
        .bind(price.cached_input)
        .bind(price.cache_write_input)
        .bind(effective_from.timestamp_millis())
        .bind(created_by)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        let sql = format!("SELECT {COLS} FROM model_prices WHERE id = $1");
        row_to_price(&sqlx::query(&sql).bind(&id).fetch_one(self.pool()).await?)
    }

    /// Every recorded price, by provider, model and effective time.
    pub async fn list_prices(&self) -> Result<Vec<PriceEntry>> {
        let sql = format!("SELECT {COLS} FROM model_prices ORDER BY provider, model, effective_from, created_at");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(row_to_price).collect()
    }

    /// Deletes a recorded price; whether it existed.
    pub async fn delete_price(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM model_prices WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}
