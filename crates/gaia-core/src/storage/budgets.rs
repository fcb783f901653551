//! Budgets: spending limits per user, team or API key, per day or month (`budgets`), and what was
//! spent against them (from the usage records).

use super::{from_ms, new_id, now_ms, LimitScope, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// How often a budget starts over (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BudgetPeriod {
    /// Every day at 00:00 UTC.
    Daily,
    /// On the first of every month at 00:00 UTC.
    Monthly,
}

impl BudgetPeriod {
    /// `daily` or `monthly`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Monthly => "monthly",
        }
    }

    /// When the period containing `at` began.
    pub fn start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let day = at.date_naive();
        let first = match self {
            BudgetPeriod::Daily => day,
            BudgetPeriod::Monthly => day.with_day(1).unwrap_or(day),
        };
        Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0).unwrap_or_default())
    }

    /// When the period containing `at` ends (the next one's start).
    pub fn end(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start(at);
        match self {
            BudgetPeriod::Daily => start + chrono::Duration::days(1),
            BudgetPeriod::Monthly => start.checked_add_months(chrono::Months::new(1)).unwrap_or(start),
        }
    }
}

impl std::str::FromStr for BudgetPeriod {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "daily" => Ok(BudgetPeriod::Daily),
            "monthly" => Ok(BudgetPeriod::Monthly),
            other => Err(CoreError::InvalidInput(format!("unknown period `{other}` (daily or monthly)"))),
        }
    }
}

/// A spending limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Id.
    pub id: String,
    /// `user`, `team` or `key`.
    pub scope: LimitScope,
    /// The user, team or key id.
    pub subject_id: String,
    /// `daily` or `monthly`.
    pub period: BudgetPeriod,
    /// The limit in US dollars.
    pub limit_usd: f64,
    /// Hard: requests are refused once it is reached; soft: an event is raised.
    pub hard: bool,
    /// Who created it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A budget to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewBudget {
    /// `user`, `team` or `key`.
    pub scope: LimitScope,
    /// The user, team or key id.
    pub subject_id: String,
    /// `daily` or `monthly`.
    pub period: BudgetPeriod,
    /// The limit in US dollars (positive).
    pub limit_usd: f64,
    /// Refuse requests once reached (default) or only raise an event.
    #[serde(default = "yes")]
    pub hard: bool,
}

fn yes() -> bool {
    true
}

const COLS: &str = "id, scope, subject_id, period, limit_usd, hard, created_by, created_at";

fn row_to_budget(r: &AnyRow) -> Result<Budget> {
    let scope: String = r.try_get("scope")?;
    let period: String = r.try_get("period")?;
    Ok(Budget {
        id: r.try_get("id")?,
        scope: scope.parse()?,
        subject_id: r.try_get("subject_id")?,
        period: period.parse()?,
        limit_usd: r.try_get("limit_usd")?,
        hard: r.try_get::<i32, _>("hard")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

/// Most users a spend query covers at once (a team's members).
const MAX_USERS: usize = 10_000;

impl Storage {
    /// Creates a budget.
    pub async fn create_budget(&self, b: &NewBudget, created_by: Option<&str>) -> Result<Budget> {
        if !(b.limit_usd.is_finite() && b.limit_usd > 0.0) {
            return Err(CoreError::InvalidInput("limit_usd must be a positive number".into()));
        }
        b.scope.check_subject(&b.subject_id)?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO budgets (id, scope, subject_id, period, limit_usd, hard, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(b.scope.as_str())
        .bind(&b.subject_id)
        .bind(b.period.as_str())
        .bind(b.limit_usd)
        .bind(i32::from(b.hard))
        .bind(created_by)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.budget(&id).await?.ok_or_else(|| CoreError::Database("the budget just written is missing".into()))
    }

    /// A budget by id.
    pub async fn budget(&self, id: &str) -> Result<Option<Budget>> {
        let sql = format!("SELECT {COLS} FROM budgets WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(row_to_budget).transpose()
    }

    /// Every budget, or those of one subject.
    pub async fn list_budgets(&self, subject: Option<(LimitScope, &str)>) -> Result<Vec<Budget>> {
        let rows = match subject {
            Some((scope, id)) => {
                let sql =
                    format!("SELECT {COLS} FROM budgets WHERE scope = $1 AND subject_id = $2 ORDER BY created_at, id");
                sqlx::query(&sql).bind(scope.as_str()).bind(id).fetch_all(self.pool()).await?
            }
            None => {
                let sql = format!("SELECT {COLS} FROM budgets ORDER BY scope, subject_id, created_at, id");
                sqlx::query(&sql).fetch_all(self.pool()).await?
            }
        };
        rows.iter().map(row_to_budget).collect()
    }

    /// Changes a budget's limit and whether it is hard; the changed budget, or `None` when there is
    /// no budget `id`.
    pub async fn update_budget(&self, id: &str, limit_usd: f64, hard: bool) -> Result<Option<Budget>> {
        if !(limit_usd.is_finite() && limit_usd > 0.0) {
            return Err(CoreError::InvalidInput("limit_usd must be a positive number".into()));
        }
        let r = sqlx::query("UPDATE budgets SET limit_usd = $1, hard = $2 WHERE id = $3")
            .bind(limit_usd)
            .bind(i32::from(hard))
            .bind(id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.budget(id).await
    }

    /// Deletes a budget; whether it existed.
    pub async fn delete_budget(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM budgets WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }

    /// US dollars spent since the UTC day of `since` for one end user (`<user id>:<end user id>`),
    /// from the daily totals.
    pub async fn spent_by_end_user_since(&self, subject: &str, since: DateTime<Utc>) -> Result<f64> {
        let day = since.format("%Y-%m-%d").to_string();
        let sql = "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS spent FROM usage_daily \
                   WHERE scope = 'end_user' AND subject_id = $1 AND day >= $2";
        let row = sqlx::query(sql).bind(subject).bind(&day).fetch_one(self.pool()).await?;
        Ok(row.try_get::<f64, _>("spent")?)
    }

    /// US dollars spent since the UTC day of `since` by the given users (any key) or through the given
    /// key, from the daily totals (`usage_daily`) kept with the usage records.
    pub async fn spent_since(&self, users: &[&str], key: Option<&str>, since: DateTime<Utc>) -> Result<f64> {
        let day = since.format("%Y-%m-%d").to_string();
        let total = |r: AnyRow| -> Result<f64> { Ok(r.try_get::<f64, _>("spent")?) };
        const SUM: &str = "CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS spent";
        if let Some(k) = key {
            let sql = format!("SELECT {SUM} FROM usage_daily WHERE scope = 'key' AND subject_id = $1 AND day >= $2");
            return total(sqlx::query(&sql).bind(k).bind(&day).fetch_one(self.pool()).await?);
        }
        let mut spent = 0.0;
        for chunk in users[..users.len().min(MAX_USERS)].chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT {SUM} FROM usage_daily WHERE scope = 'user' AND day >= $1 AND subject_id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(&day);
            for u in chunk {
                q = q.bind(*u);
            }
            spent += total(q.fetch_one(self.pool()).await?)?;
        }
        Ok(spent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 17, 5, 0).unwrap();
        assert_eq!(BudgetPeriod::Daily.start(at), Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap());
        assert_eq!(BudgetPeriod::Daily.end(at), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(BudgetPeriod::Monthly.start(at), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(BudgetPeriod::Monthly.end(at), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        assert_eq!("monthly".parse::<BudgetPeriod>().unwrap(), BudgetPeriod::Monthly);
        assert!("weekly".parse::<BudgetPeriod>().is_err());
        assert!("org".parse::<LimitScope>().is_err());
    }
}
