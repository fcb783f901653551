//! Generated assets (`assets`) and the prices of media units and asset sales (`unit_prices`).
//!
//! An asset row describes a file kept in the asset store (the `gaia-assets` crate): who owns it,
//! what made it, what it cost and what the game charges for it. 3D models are jobs: their row is
//! written `pending` and updated as the provider's task moves on; [`Storage::finish_asset`] only
//! changes a row that is not final yet, so a cancellation and a completion cannot both win.

use super::{from_ms, new_id, now_ms, Storage};
use crate::attribution::Tags;
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The most assets one listing returns.
pub const MAX_ASSET_PAGE: u32 = 200;

/// What an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// A generated image.
    Image,
    /// Spoken text (text-to-speech).
    Speech,
    /// Text heard in audio (its file is the uploaded audio).
    Transcription,
    /// A 3D model (binary glTF).
    #[serde(rename = "model_3d")]
    Model3d,
}

impl AssetKind {
    /// Every kind.
    pub const ALL: [AssetKind; 4] = [AssetKind::Image, AssetKind::Speech, AssetKind::Transcription, AssetKind::Model3d];

    /// `image`, `speech`, `transcription` or `model_3d`.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Image => "image",
            AssetKind::Speech => "speech",
            AssetKind::Transcription => "transcription",
            AssetKind::Model3d => "model_3d",
        }
    }

    /// Parses [`AssetKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<AssetKind> {
        AssetKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What its provider bills by: `image`, `character`, `second` or `credit`.
    pub fn unit(self) -> &'static str {
        match self {
            AssetKind::Image => "image",
            AssetKind::Speech => "character",
            AssetKind::Transcription => "second",
            AssetKind::Model3d => "credit",
        }
    }
}

/// Where an asset stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// Waiting at the provider (3D jobs).
    Pending,
    /// Being generated (3D jobs).
    Running,
    /// Done: its file is in the store.
    Succeeded,
    /// Failed; `error` says why.
    Failed,
    /// Cancelled by its owner (or given up after the job timeout).
    Canceled,
}

impl AssetStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Pending => "pending",
            AssetStatus::Running => "running",
            AssetStatus::Succeeded => "succeeded",
            AssetStatus::Failed => "failed",
            AssetStatus::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> AssetStatus {
        match s {
            "pending" => AssetStatus::Pending,
            "running" => AssetStatus::Running,
            "succeeded" => AssetStatus::Succeeded,
            "canceled" => AssetStatus::Canceled,
            _ => AssetStatus::Failed,
        }
    }

    /// Whether it will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, AssetStatus::Succeeded | AssetStatus::Failed | AssetStatus::Canceled)
    }
}

/// A stored asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asset {
    /// Id.
    pub id: String,
    /// The user who generated it.
    pub owner_id: String,
    /// The API key used, if any.
    pub api_key_id: Option<String>,
    /// The end user (a game's player) it was made for.
    pub end_user: Option<String>,
    /// What it is.
    pub kind: AssetKind,
    /// Where it stands.
    pub status: AssetStatus,
    /// The provider that made it.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The prompt (the spoken text for speech; the text heard for a transcription).
    pub prompt: String,
    /// The generation options (size, quality, voice, format, …).
    pub options: serde_json::Value,
    /// Its file's media type, once stored.
    pub media_type: Option<String>,
    /// Its file's size in bytes.
    pub size: u64,
    /// Its file's key in the asset store.
    pub object_key: Option<String>,
    /// Its thumbnail's key (images and 3D models).
    pub thumbnail_key: Option<String>,
    /// The provider's task id (3D jobs).
    pub task_id: Option<String>,
    /// Percent done (3D jobs; 100 once succeeded).
    pub progress: u8,
    /// Why it failed.
    pub error: Option<String>,
    /// What the provider bills by (`image`, `character`, `second`, `credit`).
    pub unit: String,
    /// How many units it used.
    pub units: f64,
    /// What it cost, in US dollars, at the prices in effect when it was made.
    pub cost_usd: f64,
    /// What the game charges for it (the sell price of its kind in effect when it was made).
    pub revenue_usd: f64,
    /// The request's tags.
    pub tags: Tags,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it became final.
    pub finished_at: Option<DateTime<Utc>>,
}

/// An asset to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAsset {
    /// The user generating it.
    pub owner_id: String,
    /// Their API key, if used.
    pub api_key_id: Option<String>,
    /// The end user it is for.
    pub end_user: Option<String>,
    /// What it is.
    pub kind: AssetKind,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Prompt.
    pub prompt: String,
    /// Options.
    pub options: serde_json::Value,
    /// The provider's task id (jobs).
    pub task_id: Option<String>,
    /// The request's tags.
    pub tags: Tags,
}

/// The outcome of an asset: its file and its accounting, written once it is final (or a job's
/// progress while it is not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetOutcome {
    /// Media type of the stored file.
    pub media_type: Option<String>,
    /// Size of the stored file.
    pub size: u64,
    /// The file's key in the store.
    pub object_key: Option<String>,
    /// The thumbnail's key.
    pub thumbnail_key: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Units used.
    pub units: f64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Revenue in US dollars.
    pub revenue_usd: f64,
    /// The transcribed text (replaces the prompt of a transcription).
    pub text: Option<String>,
}

/// How the asset report groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetGroup {
    /// By asset kind.
    Kind,
    /// By provider.
    Provider,
    /// By provider and model (`provider/model`).
    Model,
    /// By owner (user id).
    User,
    /// By UTC day (`YYYY-MM-DD`).
    Day,
}

/// One line of the asset report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetReportRow {
    /// The group's key.
    pub key: String,
    /// Assets generated (every status: failed and cancelled jobs are billed too).
    pub assets: u64,
    /// Of them, those that failed or were cancelled.
    pub failed: u64,
    /// Units used.
    pub units: f64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Revenue in US dollars (sell prices of the assets that succeeded).
    pub revenue_usd: f64,
    /// Revenue minus cost.
    pub margin_usd: f64,
}

/// Which assets a report covers.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    /// Only these owners (`None`: everyone's).
    pub owners: Option<Vec<String>>,
    /// From this time (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Only this kind.
    pub kind: Option<AssetKind>,
}

/// Cost or sell price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitPriceKind {
    /// What a provider charges per unit of a model.
    Cost,
    /// What the game charges per asset of a kind.
    Sell,
}

impl UnitPriceKind {
    fn as_str(self) -> &'static str {
        match self {
            UnitPriceKind::Cost => "cost",
            UnitPriceKind::Sell => "sell",
        }
    }
}

/// A unit price from a point in time on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitPriceEntry {
    /// Id.
    pub id: String,
    /// Cost or sell price.
    pub price_kind: UnitPriceKind,
    /// Provider (empty for a sell price).
    pub provider: String,
    /// Model (empty for a sell price).
    pub model: String,
    /// The unit (`image`, `image:1024x1024:hd`, `character`, `second`, `credit`), or the asset kind
    /// of a sell price.
    pub unit: String,
    /// US dollars per unit (per asset for a sell price).
    pub usd_per_unit: f64,
    /// From when it applies.
    pub effective_from: DateTime<Utc>,
    /// Who set it.
    pub created_by: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// A unit or sell price to record (the body of `POST /api/v1/assets/prices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUnitPrice {
    /// `cost` (a provider's price per unit of a model) or `sell` (the game's price of an asset kind).
    pub kind: UnitPriceKind,
    /// Provider (cost prices).
    #[serde(default)]
    pub provider: String,
    /// Model (cost prices).
    #[serde(default)]
    pub model: String,
    /// The unit (`image`, `image:1024x1024:hd`, `character`, `second`, `credit`), or the asset kind
    /// of a sell price.
    pub unit: String,
    /// US dollars per unit (per asset for a sell price).
    pub usd_per_unit: f64,
    /// When it takes effect (default: now).
    #[serde(default)]
    pub effective_from: Option<DateTime<Utc>>,
}

/// The longest unit name.
const MAX_UNIT: usize = 64;

const COLS: &str = "id, owner_id, api_key_id, end_user, kind, status, provider, model, prompt, options, media_type, \
                    size, object_key, thumbnail_key, task_id, progress, error, unit, units, cost_usd, revenue_usd, tags, \
                    created_at, updated_at, finished_at";

fn row_to_asset(r: &AnyRow) -> Result<Asset> {
    let kind: String = r.try_get("kind")?;
    let options: String = r.try_get("options")?;
    let tags: Option<String> = r.try_get("tags")?;
    Ok(Asset {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        api_key_id: r.try_get("api_key_id")?,
        end_user: r.try_get("end_user")?,
        kind: AssetKind::parse(&kind).ok_or_else(|| CoreError::Internal(format!("unknown asset kind `{kind}`")))?,
        status: AssetStatus::parse(&r.try_get::<String, _>("status")?),
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        prompt: r.try_get("prompt")?,
        options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
        media_type: r.try_get("media_type")?,
        size: r.try_get::<i64, _>("size")?.max(0) as u64,
        object_key: r.try_get("object_key")?,
        thumbnail_key: r.try_get("thumbnail_key")?,
        task_id: r.try_get("task_id")?,
        progress: r.try_get::<i32, _>("progress")?.clamp(0, 100) as u8,
        error: r.try_get("error")?,
        unit: r.try_get("unit")?,
        units: r.try_get("units")?,
        cost_usd: r.try_get("cost_usd")?,
        revenue_usd: r.try_get("revenue_usd")?,
        tags: tags.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default(),
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
        finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(from_ms),
    })
}

fn row_to_unit_price(r: &AnyRow) -> Result<UnitPriceEntry> {
    let kind: String = r.try_get("price_kind")?;
    Ok(UnitPriceEntry {
        id: r.try_get("id")?,
        price_kind: if kind == "sell" { UnitPriceKind::Sell } else { UnitPriceKind::Cost },
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        unit: r.try_get("unit")?,
        usd_per_unit: r.try_get("usd_per_unit")?,
        effective_from: from_ms(r.try_get("effective_from")?),
        created_by: r.try_get("created_by")?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

/// Binds the filter's conditions after `$1..$n-1`; returns the `WHERE` clause.
fn filter_sql(f: &AssetFilter, args: &mut Vec<FilterArg>) -> String {
    let mut conds = Vec::new();
    if let Some(owners) = &f.owners {
        if owners.is_empty() {
            conds.push("1 = 0".to_string());
        } else {
            let mut marks = Vec::new();
            for o in owners {
                args.push(FilterArg::Text(o.clone()));
                marks.push(format!("${}", args.len()));
            }
            conds.push(format!("owner_id IN ({})", marks.join(", ")));
        }
    }
    if let Some(t) = f.since {
        args.push(FilterArg::Int(t.timestamp_millis()));
        conds.push(format!("created_at >= ${}", args.len()));
    }
    if let Some(t) = f.until {
        args.push(FilterArg::Int(t.timestamp_millis()));
        conds.push(format!("created_at < ${}", args.len()));
    }
    if let Some(k) = f.kind {
        args.push(FilterArg::Text(k.as_str().to_string()));
        conds.push(format!("kind = ${}", args.len()));
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// An asset's progress as its status makes it: 100 once it succeeded, else 0.
fn progress_of(status: AssetStatus) -> i32 {
    if status == AssetStatus::Succeeded {
        100
    } else {
        0
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds an outcome's columns, in this order: media type, size, object key, thumbnail key, error
/// (cleaned), units, cost, revenue (the insert and the update of an asset both name them so).
fn bind_outcome<'q>(q: AnyQuery<'q>, o: &'q AssetOutcome) -> AnyQuery<'q> {
    q.bind(&o.media_type)
        .bind(o.size as i64)
        .bind(&o.object_key)
        .bind(&o.thumbnail_key)
        .bind(o.error.as_deref().map(|e| super::clean_text(e).into_owned()))
        .bind(o.units)
        .bind(o.cost_usd)
        .bind(o.revenue_usd)
}

enum FilterArg {
    Text(String),
    Int(i64),
}

impl Storage {
    /// Records an asset in one statement, with its status and outcome: one made at once (an image,
    /// speech, a transcription) final, its files stored under `id` first; a 3D job `pending`, with
    /// what it was charged.
    pub async fn create_asset(&self, id: &str, a: &NewAsset, status: AssetStatus, o: &AssetOutcome) -> Result<Asset> {
        let now = now_ms();
        let options = serde_json::to_string(&a.options).unwrap_or_else(|_| "{}".into());
        let tags = (!a.tags.is_empty()).then(|| serde_json::to_string(&a.tags).unwrap_or_default());
        let prompt = super::clean_text(o.text.as_deref().unwrap_or(&a.prompt));
        let finished = status.is_final().then_some(now);
        let q = sqlx::query(
            "INSERT INTO assets (id, owner_id, api_key_id, end_user, kind, status, provider, model, prompt, options, \
             task_id, unit, tags, media_type, size, object_key, thumbnail_key, error, units, cost_usd, revenue_usd, \
             progress, created_at, updated_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $23, $24)",
        )
        .bind(id)
        .bind(&a.owner_id)
        .bind(&a.api_key_id)
        .bind(&a.end_user)
        .bind(a.kind.as_str())
        .bind(status.as_str())
        .bind(&a.provider)
        .bind(&a.model)
        .bind(prompt.as_ref())
        .bind(options)
        .bind(&a.task_id)
        .bind(a.kind.unit())
        .bind(tags);
        bind_outcome(q, o)
            .bind(progress_of(status))
            .bind(now)
            .bind(finished)
            .execute(self.pool())
            .await
            .map_err(super::user_row_error(&a.owner_id))?;
        self.asset(id).await?.ok_or_else(|| CoreError::Internal("asset vanished after insert".into()))
    }

    /// An asset by id (whoever owns it: callers check access).
    pub async fn asset(&self, id: &str) -> Result<Option<Asset>> {
        let sql = format!("SELECT {COLS} FROM assets WHERE id = $1");
        sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await?.as_ref().map(row_to_asset).transpose()
    }

    /// Assets of `owner` (everyone's when `None`), newest first: at most `limit` (up to
    /// [`MAX_ASSET_PAGE`]) created before `before` (the previous page's last `created_at`).
    pub async fn list_assets(
        &self,
        owner: Option<&str>,
        kind: Option<AssetKind>,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Asset>> {
        let f = AssetFilter { owners: owner.map(|o| vec![o.to_string()]), until: before, kind, ..Default::default() };
        let mut args = Vec::new();
        let wh = filter_sql(&f, &mut args);
        let sql = format!(
            "SELECT {COLS} FROM assets{wh} ORDER BY created_at DESC, id DESC LIMIT {}",
            limit.clamp(1, MAX_ASSET_PAGE)
        );
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = match a {
                FilterArg::Text(t) => q.bind(t.clone()),
                FilterArg::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(self.pool()).await?.iter().map(row_to_asset).collect()
    }

    /// The 3D jobs not final yet, oldest first (what a starting server resumes). Images, speech and
    /// transcriptions being stored by a request of another instance are not jobs: they are left to it.
    pub async fn unfinished_assets(&self) -> Result<Vec<Asset>> {
        let sql = format!(
            "SELECT {COLS} FROM assets WHERE status IN ('pending', 'running') AND kind = 'model_3d' \
             AND task_id IS NOT NULL ORDER BY created_at"
        );
        sqlx::query(&sql).fetch_all(self.pool()).await?.iter().map(row_to_asset).collect()
    }

    /// Records a job's progress (only while it is not final); whether it changed.
    pub async fn set_asset_progress(&self, id: &str, status: AssetStatus, progress: u8) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE assets SET status = $1, progress = $2, updated_at = $3 \
             WHERE id = $4 AND status IN ('pending', 'running')",
        )
        .bind(status.as_str())
        .bind(i32::from(progress.min(100)))
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Makes an asset final with its outcome, only if it is not final already (a cancellation and a
    /// completion racing: the first wins); whether this call made it final.
    pub async fn finish_asset(&self, id: &str, status: AssetStatus, o: &AssetOutcome) -> Result<bool> {
        let now = now_ms();
        let q = sqlx::query(
            "UPDATE assets SET status = $1, media_type = $2, size = $3, object_key = $4, thumbnail_key = $5, \
             error = $6, units = $7, cost_usd = $8, revenue_usd = $9, prompt = COALESCE($10, prompt), \
             progress = CASE WHEN $11 = 100 THEN 100 ELSE progress END, updated_at = $12, finished_at = $12 \
             WHERE id = $13 AND status IN ('pending', 'running')",
        )
        .bind(status.as_str());
        let r = bind_outcome(q, o)
            .bind(o.text.as_deref().map(|t| super::clean_text(t).into_owned()))
            .bind(progress_of(status))
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes an asset's row; whether it existed. Its files are the store's to delete.
    pub async fn delete_asset(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM assets WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }

    /// The store keys of every file of `owner`'s assets (to delete them with the account).
    pub async fn asset_keys_of(&self, owner: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT object_key, thumbnail_key FROM assets WHERE owner_id = $1")
            .bind(owner)
            .fetch_all(self.pool())
            .await?;
        let mut keys = Vec::new();
        for r in rows {
            keys.extend(r.try_get::<Option<String>, _>("object_key")?);
            keys.extend(r.try_get::<Option<String>, _>("thumbnail_key")?);
        }
        Ok(keys)
    }

    /// Assets counted, with units, cost, revenue and margin, grouped by `group`, largest cost first.
    pub async fn asset_report(&self, f: &AssetFilter, group: AssetGroup) -> Result<Vec<AssetReportRow>> {
        let key = match group {
            AssetGroup::Kind => "kind".to_string(),
            AssetGroup::Provider => "provider".to_string(),
            AssetGroup::Model => "provider || '/' || model".to_string(),
            AssetGroup::User => "owner_id".to_string(),
            AssetGroup::Day => "created_at / 86400000".to_string(),
        };
        let mut args = Vec::new();
        let wh = filter_sql(f, &mut args);
        let sql = format!(
            "SELECT {key} AS k, COUNT(*) AS n, \
             SUM(CASE WHEN status IN ('failed', 'canceled') THEN 1 ELSE 0 END) AS failed, \
             SUM(units) AS units, SUM(cost_usd) AS cost, \
             SUM(CASE WHEN status = 'succeeded' THEN revenue_usd ELSE 0.0 END) AS revenue \
             FROM assets{wh} GROUP BY {key} ORDER BY cost DESC, k"
        );
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = match a {
                FilterArg::Text(t) => q.bind(t.clone()),
                FilterArg::Int(i) => q.bind(*i),
            };
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let k = if group == AssetGroup::Day {
                    let day: i64 = r.try_get("k")?;
                    from_ms(day * 86_400_000).format("%Y-%m-%d").to_string()
                } else {
                    r.try_get("k")?
                };
                let cost: f64 = r.try_get::<Option<f64>, _>("cost")?.unwrap_or(0.0);
                let revenue: f64 = r.try_get::<Option<f64>, _>("revenue")?.unwrap_or(0.0);
                Ok(AssetReportRow {
                    key: k,
                    assets: r.try_get::<i64, _>("n")?.max(0) as u64,
                    failed: r.try_get::<Option<i64>, _>("failed")?.unwrap_or(0).max(0) as u64,
                    units: r.try_get::<Option<f64>, _>("units")?.unwrap_or(0.0),
                    cost_usd: cost,
                    revenue_usd: revenue,
                    margin_usd: revenue - cost,
                })
            })
            .collect()
    }

    /// Records a unit price (a provider's cost per unit of a model, or with [`UnitPriceKind::Sell`]
    /// the game's price of one asset of the kind `unit`), taking effect at `effective_from` (now
    /// when unset).
    pub async fn add_unit_price(&self, p: &NewUnitPrice, created_by: Option<&str>) -> Result<UnitPriceEntry> {
        let (kind, provider, model, usd_per_unit) = (p.kind, p.provider.as_str(), p.model.as_str(), p.usd_per_unit);
        let effective_from = p.effective_from.unwrap_or_else(Utc::now);
        let unit = p.unit.trim();
        let valid_unit = !unit.is_empty()
            && unit.len() <= MAX_UNIT
            && unit.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'));
        if !valid_unit {
            return Err(CoreError::InvalidInput(format!(
                "`{unit}` is not a unit: letters, digits, ':', '_', '-' or '.', at most {MAX_UNIT}"
            )));
        }
        match kind {
            UnitPriceKind::Cost if provider.trim().is_empty() || model.trim().is_empty() => {
                return Err(CoreError::InvalidInput("a cost price needs a provider and a model".into()))
            }
            UnitPriceKind::Sell if AssetKind::parse(unit).is_none() => {
                return Err(CoreError::InvalidInput(format!(
                    "a sell price is for an asset kind (image, speech, transcription, model_3d), not `{unit}`"
                )))
            }
            _ => {}
        }
        if !usd_per_unit.is_finite() || usd_per_unit < 0.0 {
            return Err(CoreError::InvalidInput("prices must be non-negative numbers".into()));
        }
        let (provider, model) = match kind {
            UnitPriceKind::Cost => (provider.trim(), model.trim()),
            UnitPriceKind::Sell => ("", ""),
        };
        let id = new_id();
        sqlx::query(
            "INSERT INTO unit_prices (id, price_kind, provider, model, unit, usd_per_unit, effective_from, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(kind.as_str())
        .bind(provider)
        .bind(model)
        .bind(unit)
        .bind(usd_per_unit)
        .bind(effective_from.timestamp_millis())
        .bind(created_by)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT * FROM unit_prices WHERE id = $1").bind(&id).fetch_one(self.pool()).await?;
        row_to_unit_price(&row)
    }

    /// Every recorded unit price, by key and effective time.
    pub async fn list_unit_prices(&self) -> Result<Vec<UnitPriceEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM unit_prices ORDER BY price_kind, provider, model, unit, effective_from, created_at",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_unit_price).collect()
    }

    /// Deletes a recorded unit price; whether it existed.
    pub async fn delete_unit_price(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM unit_prices WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}
