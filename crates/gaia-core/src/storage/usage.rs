//! Usage and cost records: one row per model call, with day-level aggregation.

use super::{from_ms, new_time_ordered_id, now_ms, Storage};
use crate::attribution::{end_user_subject, Tags};
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A model call to record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewUsage {
    /// Caller.
    pub user_id: String,
    /// API key used, if any.
    pub api_key_id: Option<String>,
    /// Provider that served it.
    pub provider: String,
    /// Model id at the provider.
    pub model: String,
    /// Which endpoint (`chat`, `openai`, `anthropic`, …).
    pub endpoint: String,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Of the prompt tokens, those read from the provider's prompt cache (priced at its cached rate).
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Of the prompt tokens, those written to the provider's prompt cache (priced at its cache-write
    /// rate).
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Total time of the call.
    pub latency_ms: u64,
    /// Time to the first streamed token (streams only).
    pub ttft_ms: Option<u64>,
    /// HTTP status answered to the client.
    pub status: u16,
    /// Error message when the call failed.
    pub error: Option<String>,
    /// The end user the call was for (a game's player), in the caller's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
    /// The request's tags (`x-gaia-tags`), stored beside the record (`usage_tags`) and not read back
    /// by [`Storage::list_usage`]; reports group by them ([`Storage::usage_grouped_by_tag`]).
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// A stored usage record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Id.
    pub id: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The call.
    #[serde(flatten)]
    pub usage: NewUsage,
}

/// Which records a query covers.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Only this user's records (`None`: everyone's).
    pub user_id: Option<String>,
    /// From this time (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Only the calls made for this end user.
    pub end_user: Option<String>,
}

/// Aggregated figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Number of calls.
    pub requests: i64,
    /// Failed calls.
    pub errors: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Generated tokens.
    pub output_tokens: i64,
    /// Prompt tokens read from providers' prompt caches (part of `input_tokens`).
    #[serde(default)]
    pub cached_input_tokens: i64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

impl std::ops::AddAssign<&UsageTotals> for UsageTotals {
    fn add_assign(&mut self, other: &UsageTotals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cost_usd += other.cost_usd;
    }
}

/// Totals for one group (a day, a model, a provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageGroup {
    /// The day (`YYYY-MM-DD`, UTC), model or provider.
    pub key: String,
    /// Its totals.
    #[serde(flatten)]
    pub totals: UsageTotals,
}

impl UsageGroup {
    /// `groups` as CSV (RFC 4180 quoting): a header row `GROUP_BY,requests,errors,input_tokens,
    /// output_tokens,cached_input_tokens,cost_usd`, then a row per group, costs with 8 decimals. A group
    /// key that a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
    /// carriage return: end users and tags are the callers' own text) is prefixed with `'`.
    pub fn to_csv(group_by: &str, groups: &[UsageGroup]) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut rows =
            vec![[group_by, "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"]
                .map(String::from)];
        rows.extend(groups.iter().map(|g| {
            let t = &g.totals;
            [
                spreadsheet_safe(&g.key).into_owned(),
                t.requests.to_string(),
                t.errors.to_string(),
                t.input_tokens.to_string(),
                t.output_tokens.to_string(),
                t.cached_input_tokens.to_string(),
                format!("{:.8}", t.cost_usd),
            ]
        }));
        for row in rows {
            // Writing to a Vec cannot fail.
            let _ = w.write_record(&row);
        }
        w.into_inner().unwrap_or_default()
    }
}

/// `cell` as a CSV cell a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return (which spreadsheets read as a formula) is prefixed with `'`; a lone `-` (no value)
/// is kept.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell != "-" {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// What usage is grouped by in [`Storage::usage_grouped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsageGroupBy {
    /// UTC day (`YYYY-MM-DD`).
    Day,
    /// Model id.
    Model,
    /// Provider name.
    Provider,
    /// User id.
    User,
    /// API key id (`-` for calls without a key).
    Key,
    /// End user (`-` for calls that named none); over every user's usage, `<user id>:<end user>`, so
    /// that players of different callers with the same id stay apart.
    EndUser,
}

impl UsageGroupBy {
    fn column(self) -> &'static str {
        match self {
            UsageGroupBy::Day => "day",
            UsageGroupBy::Model => "model",
            UsageGroupBy::Provider => "provider",
            UsageGroupBy::User => "user_id",
            UsageGroupBy::Key => "COALESCE(api_key_id, '-')",
            UsageGroupBy::EndUser => "COALESCE(end_user, '-')",
        }
    }
}

impl std::str::FromStr for UsageGroupBy {
    type Err = crate::CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "day" => UsageGroupBy::Day,
            "model" => UsageGroupBy::Model,
            "provider" => UsageGroupBy::Provider,
            "user" => UsageGroupBy::User,
            "key" => UsageGroupBy::Key,
            "end_user" => UsageGroupBy::EndUser,
            other => {
                return Err(crate::CoreError::InvalidInput(format!(
                    "cannot group usage by `{other}` (day, model, provider, user, key, end_user, team or tag:<key>)"
                )))
            }
        })
    }
}

/// Totals overall and by day, model and provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// Everything in the filter.
    pub totals: UsageTotals,
    /// By UTC day, oldest first.
    pub by_day: Vec<UsageGroup>,
    /// By model, most expensive first.
    pub by_model: Vec<UsageGroup>,
    /// By provider, most expensive first.
    pub by_provider: Vec<UsageGroup>,
}

const COLS: &str = "id, created_at, user_id, api_key_id, provider, model, endpoint, input_tokens, output_tokens, \
                    cost_usd, latency_ms, ttft_ms, status, error, end_user, cached_input_tokens, \
                    cache_write_input_tokens";
const AGG: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cached_input_tokens), 0) AS BIGINT) AS cached_input_tokens, \
    CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd";

fn row_to_record(r: &AnyRow) -> Result<UsageRecord> {
    Ok(UsageRecord {
        id: r.try_get("id")?,
        created_at: from_ms(r.try_get("created_at")?),
        usage: NewUsage {
            user_id: r.try_get("user_id")?,
            api_key_id: r.try_get("api_key_id")?,
            provider: r.try_get("provider")?,
            model: r.try_get("model")?,
            endpoint: r.try_get("endpoint")?,
            input_tokens: r.try_get::<i64, _>("input_tokens")?.max(0) as u64,
            output_tokens: r.try_get::<i64, _>("output_tokens")?.max(0) as u64,
            cost_usd: r.try_get("cost_usd")?,
            latency_ms: r.try_get::<i64, _>("latency_ms")?.max(0) as u64,
            ttft_ms: r.try_get::<Option<i64>, _>("ttft_ms")?.map(|v| v.max(0) as u64),
            status: r.try_get::<i64, _>("status")?.clamp(0, 999) as u16,
            error: r.try_get("error")?,
            end_user: r.try_get("end_user")?,
            cached_input_tokens: r.try_get::<i64, _>("cached_input_tokens")?.max(0) as u64,
            cache_write_input_tokens: r.try_get::<i64, _>("cache_write_input_tokens")?.max(0) as u64,
            tags: Tags::default(),
        },
    })
}

fn row_to_totals(r: &AnyRow) -> Result<UsageTotals> {
    Ok(UsageTotals {
        requests: r.try_get("requests")?,
        errors: r.try_get("errors")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        cached_input_tokens: r.try_get("cached_input_tokens")?,
        cost_usd: r.try_get("cost_usd")?,
    })
}

/// `WHERE` clause and its bound values (all as i64 or text, bound in order).
fn where_clause(f: &UsageFilter) -> (String, Vec<Bind>) {
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    if let Some(u) = &f.user_id {
        binds.push(Bind::Text(u.clone()));
        conds.push(format!("user_id = ${}", binds.len()));
    }
    if let Some(s) = f.since {
        binds.push(Bind::Int(s.timestamp_millis()));
        conds.push(format!("created_at >= ${}", binds.len()));
    }
    if let Some(u) = f.until {
        binds.push(Bind::Int(u.timestamp_millis()));
        conds.push(format!("created_at < ${}", binds.len()));
    }
    if let Some(e) = &f.end_user {
        binds.push(Bind::Text(e.clone()));
        conds.push(format!("end_user = ${}", binds.len()));
    }
    let w = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    (w, binds)
}

enum Bind {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

/// The row counts of one `INSERT` of usage records, largest first (17 parameters a row: far below
/// both databases' limits).
const INSERT_ROWS: [usize; 4] = [64, 16, 4, 1];
/// Columns of a usage record row.
const USAGE_COLUMNS: usize = 18;

/// The statements that write usage.
#[derive(Clone, Copy)]
enum UsageWrite {
    Records,
    Tags,
    Daily,
}

/// The statement writing `rows` rows (one of [`INSERT_ROWS`]), built once: an insert of 64 records
/// has over a thousand placeholders, and writing its text again for every batch showed in the
/// gateway's profile.
fn statement(what: UsageWrite, rows: usize) -> &'static str {
    static BUILT: std::sync::OnceLock<[[String; INSERT_ROWS.len()]; 3]> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        [UsageWrite::Records, UsageWrite::Tags, UsageWrite::Daily].map(|w| INSERT_ROWS.map(|n| build_statement(w, n)))
    });
    // Batches are cut into the shapes of `INSERT_ROWS` only.
    let shape = INSERT_ROWS.iter().position(|n| *n == rows).unwrap_or(INSERT_ROWS.len() - 1);
    &built[what as usize][shape]
}

fn build_statement(what: UsageWrite, rows: usize) -> String {
    match what {
        UsageWrite::Records => format!(
            "INSERT INTO usage_records (id, created_at, day, user_id, api_key_id, provider, model, endpoint, \
             input_tokens, output_tokens, cost_usd, latency_ms, ttft_ms, status, error, end_user, \
             cached_input_tokens, cache_write_input_tokens) VALUES {}",
            values(rows, USAGE_COLUMNS)
        ),
        UsageWrite::Tags => {
            format!("INSERT INTO usage_tags (usage_id, tagged_at, tag_key, tag_value) VALUES {}", values(rows, 4))
        }
        UsageWrite::Daily => format!(
            "INSERT INTO usage_daily (scope, subject_id, day, requests, cost_usd) VALUES {} \
             ON CONFLICT (scope, subject_id, day) DO UPDATE SET requests = usage_daily.requests + excluded.requests, \
             cost_usd = usage_daily.cost_usd + excluded.cost_usd",
            values(rows, 5)
        ),
    }
}

/// The `VALUES` list of a multi-row insert: `rows` tuples of `cols` numbered placeholders
/// (`($1, $2), ($3, $4)`), which both databases read through the `Any` driver.
fn values(rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..cols {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * cols + col + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

impl Storage {
    /// Stores usage records in one transaction.
    pub async fn insert_usage(&self, records: &[NewUsage]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        // The batch is written at one time (a record waits in the writer's queue for milliseconds).
        let now = now_ms();
        let day = from_ms(now).format("%Y-%m-%d").to_string();
        // Per user, key and end user and day: calls and spend, added to `usage_daily` with the records.
        type Daily<'a> = std::collections::BTreeMap<(&'static str, std::borrow::Cow<'a, str>), (i64, f64)>;
        let mut daily: Daily<'_> = std::collections::BTreeMap::new();
        let cost_of = |u: &NewUsage| if u.cost_usd.is_finite() { u.cost_usd } else { 0.0 };
        fn add<'a>(daily: &mut Daily<'a>, scope: &'static str, subject: std::borrow::Cow<'a, str>, cost: f64) {
            let e = daily.entry((scope, subject)).or_default();
            e.0 += 1;
            e.1 += cost;
        }
        for u in records {
            let cost = cost_of(u);
            add(&mut daily, "user", u.user_id.as_str().into(), cost);
            if let Some(k) = &u.api_key_id {
                add(&mut daily, "key", k.as_str().into(), cost);
            }
            if let Some(e) = &u.end_user {
                add(&mut daily, "end_user", end_user_subject(&u.user_id, e).into(), cost);
            }
        }
        let ids: Vec<String> = records.iter().map(|_| new_time_ordered_id()).collect();
        // One statement for many rows, in a few shapes only (rows of 64, 16, 4 or 1), so that every
        // one stays prepared in the connection's statement cache instead of one per batch size being
        // compiled again.
        let mut rest = records;
        while !rest.is_empty() {
            let take = INSERT_ROWS.iter().copied().find(|n| *n <= rest.len()).unwrap_or(1);
            let done = records.len() - rest.len();
            let (chunk, next) = rest.split_at(take);
            rest = next;
            let mut q = sqlx::query(statement(UsageWrite::Records, chunk.len()));
            for (u, id) in chunk.iter().zip(&ids[done..]) {
                q = q
                    .bind(id.as_str())
                    .bind(now)
                    .bind(day.as_str())
                    .bind(u.user_id.as_str())
                    .bind(u.api_key_id.as_deref())
                    .bind(u.provider.as_str())
                    .bind(u.model.as_str())
                    .bind(u.endpoint.as_str())
                    .bind(i64::try_from(u.input_tokens).unwrap_or(i64::MAX))
                    .bind(i64::try_from(u.output_tokens).unwrap_or(i64::MAX))
                    .bind(cost_of(u))
                    .bind(i64::try_from(u.latency_ms).unwrap_or(i64::MAX))
                    .bind(u.ttft_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
                    .bind(i64::from(u.status))
                    .bind(u.error.as_deref())
                    .bind(u.end_user.as_deref())
                    .bind(i64::try_from(u.cached_input_tokens).unwrap_or(i64::MAX))
                    .bind(i64::try_from(u.cache_write_input_tokens).unwrap_or(i64::MAX));
            }
            q.execute(&mut *tx).await?;
        }
        // Tags, for the records that have any (a row per tag), gathered into multi-row inserts of the
        // same few shapes.
        let tags: Vec<(&str, &str, &str)> = records
            .iter()
            .zip(&ids)
            .flat_map(|(u, id)| u.tags.pairs().iter().map(move |(k, v)| (id.as_str(), k.as_str(), v.as_str())))
            .collect();
        let mut rest = &tags[..];
        while !rest.is_empty() {
            let take = INSERT_ROWS.iter().copied().find(|n| *n <= rest.len()).unwrap_or(1);
            let (chunk, next) = rest.split_at(take);
            rest = next;
            let mut q = sqlx::query(statement(UsageWrite::Tags, chunk.len()));
            for (id, k, v) in chunk {
                q = q.bind(*id).bind(now).bind(*k).bind(*v);
            }
            q.execute(&mut *tx).await?;
        }
        // The daily totals, gathered the same way (a batch for thousands of players has a row for
        // each of them; the keys are distinct, as one upsert statement needs).
        let daily: Vec<_> = daily.into_iter().collect();
        let mut rest = &daily[..];
        while !rest.is_empty() {
            let take = INSERT_ROWS.iter().copied().find(|n| *n <= rest.len()).unwrap_or(1);
            let (chunk, next) = rest.split_at(take);
            rest = next;
            let mut q = sqlx::query(statement(UsageWrite::Daily, chunk.len()));
            for ((scope, subject), (requests, cost)) in chunk {
                q = q.bind(*scope).bind(subject.as_ref()).bind(day.as_str()).bind(*requests).bind(*cost);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records in the filter, oldest first, at most `limit`.
    pub async fn list_usage(&self, filter: &UsageFilter, limit: i64) -> Result<Vec<UsageRecord>> {
        let (w, binds) = where_clause(filter);
        let sql =
            format!("SELECT {COLS} FROM usage_records {w} ORDER BY created_at, id LIMIT {}", limit.clamp(0, 1_000_000));
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        rows.iter().map(row_to_record).collect()
    }

    /// Totals in the filter grouped by `by` (days oldest first, others most expensive first).
    pub async fn usage_grouped(&self, filter: &UsageFilter, by: UsageGroupBy) -> Result<Vec<UsageGroup>> {
        let (w, binds) = where_clause(filter);
        let order = if by == UsageGroupBy::Day { "key" } else { "cost_usd DESC, key" };
        // Across users, players are told apart by their caller: two studios' "ana" are two players.
        let col = match by {
            UsageGroupBy::EndUser if filter.user_id.is_none() => {
                "CASE WHEN end_user IS NULL THEN '-' ELSE user_id || ':' || end_user END"
            }
            _ => by.column(),
        };
        let sql = format!("SELECT {col} AS key, {AGG} FROM usage_records {w} GROUP BY {col} ORDER BY {order}");
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(UsageGroup { key: r.try_get("key")?, totals: row_to_totals(r)? })).collect()
    }

    /// The tag keys recorded with usage, sorted (at most 100).
    pub async fn usage_tag_keys(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT tag_key FROM usage_tags ORDER BY tag_key LIMIT 100")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("tag_key")?)).collect()
    }

    /// Totals in the filter grouped by the value of tag `key` (`-` for calls without that tag), most
    /// expensive first.
    pub async fn usage_grouped_by_tag(&self, filter: &UsageFilter, key: &str) -> Result<Vec<UsageGroup>> {
        let (w, mut binds) = where_clause(filter);
        binds.push(Bind::Text(key.to_string()));
        let n = binds.len();
        let sql = format!(
            "SELECT COALESCE(t.tag_value, '-') AS key, {AGG} FROM usage_records \
             LEFT JOIN usage_tags t ON t.usage_id = usage_records.id AND t.tag_key = ${n} {w} \
             GROUP BY COALESCE(t.tag_value, '-') ORDER BY cost_usd DESC, key"
        );
        let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(UsageGroup { key: r.try_get("key")?, totals: row_to_totals(r)? })).collect()
    }

    /// Totals overall and by day, model and provider.
    pub async fn usage_summary(&self, filter: &UsageFilter) -> Result<UsageSummary> {
        let (w, binds) = where_clause(filter);
        let totals_sql = format!("SELECT {AGG} FROM usage_records {w}");
        let row = bind_all(sqlx::query(&totals_sql), &binds).fetch_one(self.pool()).await?;
        let totals = row_to_totals(&row)?;
        let mut groups = Vec::new();
        for (col, order) in [("day", "key"), ("model", "cost_usd DESC, key"), ("provider", "cost_usd DESC, key")] {
            let sql = format!("SELECT {col} AS key, {AGG} FROM usage_records {w} GROUP BY {col} ORDER BY {order}");
            let rows = bind_all(sqlx::query(&sql), &binds).fetch_all(self.pool()).await?;
            groups.push(
                rows.iter()
                    .map(|r| Ok(UsageGroup { key: r.try_get("key")?, totals: row_to_totals(r)? }))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        let by_provider = groups.pop().unwrap_or_default();
        let by_model = groups.pop().unwrap_or_default();
        let by_day = groups.pop().unwrap_or_default();
        Ok(UsageSummary { totals, by_day, by_model, by_provider })
    }
}

/// Data retention (`crate::retention`).
impl Storage {
    /// Deletes up to `limit` usage records created before `before`. Returns how many.
    pub async fn purge_usage_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        // Tags are written at their record's time, so the same cut-off removes a record's tags.
        let tags =
            "DELETE FROM usage_tags WHERE usage_id IN (SELECT usage_id FROM usage_tags WHERE tagged_at < $1 LIMIT $2)";
        while self.delete_batch(tags, before, limit).await? >= u64::from(limit.max(1)) {}
        self.delete_batch(
            "DELETE FROM usage_records WHERE id IN (SELECT id FROM usage_records WHERE created_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn groups_as_csv_quote_their_keys_and_totals_add_up() {
        let mut t = UsageTotals {
            requests: 2,
            errors: 1,
            input_tokens: 10,
            output_tokens: 20,
            cached_input_tokens: 4,
            cost_usd: 0.5,
        };
        t += &UsageTotals {
            requests: 1,
            errors: 0,
            input_tokens: 5,
            output_tokens: 5,
            cached_input_tokens: 0,
            cost_usd: 0.25,
        };
        assert_eq!((t.requests, t.errors, t.input_tokens, t.output_tokens, t.cost_usd), (3, 1, 15, 25, 0.75));
        let groups = vec![
            UsageGroup { key: "team, \"red\"".into(), totals: t },
            UsageGroup { key: "plain".into(), totals: UsageTotals::default() },
            UsageGroup { key: "=HYPERLINK(\"x\")".into(), totals: UsageTotals::default() },
            UsageGroup { key: "-".into(), totals: UsageTotals::default() },
        ];
        let csv = String::from_utf8(UsageGroup::to_csv("team", &groups)).unwrap();
        assert_eq!(
            csv,
            "team,requests,errors,input_tokens,output_tokens,cached_input_tokens,cost_usd\n\
             \"team, \"\"red\"\"\",3,1,15,25,4,0.75000000\n\
             plain,0,0,0,0,0,0.00000000\n\
             \"'=HYPERLINK(\"\"x\"\")\",0,0,0,0,0,0.00000000\n\
             -,0,0,0,0,0,0.00000000\n"
        );
    }
}
