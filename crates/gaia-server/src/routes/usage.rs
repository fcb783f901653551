//! Usage and cost: `GET /api/v1/usage` (totals by day, model and provider) and
//! `GET /api/v1/usage/export` (CSV). Callers see their own usage; admins may ask for any user's, or
//! everyone's.

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use gaia_core::auth::Principal;
use gaia_core::storage::{spreadsheet_safe, UsageFilter};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most rows one export returns.
pub const EXPORT_LIMIT: i64 = 100_000;

/// Query parameters of both routes.
#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    /// From this day (`YYYY-MM-DD`, UTC) or time (RFC 3339), inclusive.
    #[serde(default)]
    pub since: Option<String>,
    /// Until this day (inclusive) or time (exclusive).
    #[serde(default)]
    pub until: Option<String>,
    /// Admins only: another user's id, or `*` for everyone.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Only the calls made for this end user (a player).
    #[serde(default)]
    pub end_user: Option<String>,
}

/// A day (`YYYY-MM-DD`, UTC midnight; the next midnight with `end_of_day`) or an RFC 3339 time.
pub(crate) fn parse_time(s: &str, end_of_day: bool) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("`{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time")))?;
    let d = if end_of_day { d.succ_opt().unwrap_or(d) } else { d };
    Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// The filter of a usage query. Another user's usage (`user_id=<id>`, or `*` for everyone) needs
/// `usage:read` on `/users/<id>/usage` (administrators and developers hold it).
async fn filter(state: &AppState, p: &Principal, q: &UsageQuery) -> ApiResult<UsageFilter> {
    let user_id = match q.user_id.as_deref() {
        None => Some(p.user_id.clone()),
        Some(u) if u == p.user_id => Some(p.user_id.clone()),
        Some(other) => {
            let path = format!("/users/{}/usage", if other == "*" { "_all" } else { other });
            let who = gaia_rbac::Subject::from(p);
            let resource = gaia_rbac::Resource::new(gaia_rbac::ResourceType::Usage, path);
            if !state.rbac().await.check(&who, gaia_rbac::Action::Read, &resource).allowed {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "you may not see other users' usage"));
            }
            if other == "*" {
                None
            } else {
                Some(other.to_string())
            }
        }
    };
    let since = q.since.as_deref().map(|s| parse_time(s, false)).transpose()?;
    let until = q.until.as_deref().map(|s| parse_time(s, true)).transpose()?;
    if let (Some(a), Some(b)) = (since, until) {
        if a >= b {
            return Err(ApiError::bad_request("`since` must be before `until`"));
        }
    }
    let end_user = q.end_user.as_deref().map(gaia_core::attribution::end_user).transpose().map_err(ApiError::from)?;
    Ok(UsageFilter { user_id, since, until, end_user })
}

/// Totals overall and by day, model and provider.
pub async fn summary(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let f = filter(&state, &p, &q).await?;
    state.usage().flush().await;
    let s = state.storage().usage_summary(&f).await?;
    Ok(Json(json!({
        "user_id": f.user_id, "since": f.since, "until": f.until,
        "totals": s.totals, "by_day": s.by_day, "by_model": s.by_model, "by_provider": s.by_provider,
    })))
}

/// The records as CSV (oldest first, at most [`EXPORT_LIMIT`] rows).
pub async fn export(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let f = filter(&state, &p, &q).await?;
    state.usage().flush().await;
    let rows = state.storage().list_usage(&f, EXPORT_LIMIT).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "created_at",
        "user_id",
        "api_key_id",
        "provider",
        "model",
        "endpoint",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "ttft_ms",
        "status",
        "error",
        "end_user",
        "cached_input_tokens",
        "cache_write_input_tokens",
    ];
    w.write_record(header).map_err(ApiError::internal)?;
    for r in rows {
        let u = r.usage;
        w.write_record([
            r.created_at.to_rfc3339(),
            u.user_id,
            u.api_key_id.unwrap_or_default(),
            spreadsheet_safe(&u.provider).into_owned(),
            spreadsheet_safe(&u.model).into_owned(),
            u.endpoint,
            u.input_tokens.to_string(),
            u.output_tokens.to_string(),
            format!("{:.8}", u.cost_usd),
            u.latency_ms.to_string(),
            u.ttft_ms.map(|v| v.to_string()).unwrap_or_default(),
            u.status.to_string(),
            spreadsheet_safe(&u.error.unwrap_or_default()).into_owned(),
            spreadsheet_safe(&u.end_user.unwrap_or_default()).into_owned(),
            u.cached_input_tokens.to_string(),
            u.cache_write_input_tokens.to_string(),
        ])
        .map_err(ApiError::internal)?;
    }
    let body = w.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"gaia-usage.csv\""),
        ],
        body,
    )
        .into_response())
}

/// Parameters of `GET /api/v1/usage/report`.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    /// The period and whose usage (as for `/usage`; `user_id=*` for everyone, admins).
    #[serde(flatten)]
    pub usage: UsageQuery,
    /// `day`, `model`, `provider`, `user`, `key`, `end_user`, `team` or `tag:<key>` (default `day`).
    #[serde(default)]
    pub group_by: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /api/v1/usage/report`: totals grouped by day, model, provider, user, API key, end user, team
/// (a user in several teams counts in each) or the value of a tag (`tag:npc`; `-` for calls without
/// it), as JSON or CSV.
pub async fn report(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    use gaia_core::storage::{UsageGroup, UsageGroupBy, UsageTotals};
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let f = filter(&state, &p, &q.usage).await?;
    let by = q.group_by.as_deref().unwrap_or("day");
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::bad_request(format!("unknown format `{other}` (json or csv)"))),
    };
    state.usage().flush().await;
    let groups = if by == "team" {
        let per_user = state.storage().usage_grouped(&f, UsageGroupBy::User).await?;
        let policy = state.rbac().await.policy();
        let mut teams: std::collections::BTreeMap<String, UsageTotals> = std::collections::BTreeMap::new();
        for g in per_user {
            let mut of = policy.groups_of(&g.key);
            if of.is_empty() {
                of.push("-");
            }
            for team in of {
                *teams.entry(team.to_string()).or_default() += &g.totals;
            }
        }
        let mut v: Vec<UsageGroup> = teams.into_iter().map(|(key, totals)| UsageGroup { key, totals }).collect();
        v.sort_by(|a, b| b.totals.cost_usd.total_cmp(&a.totals.cost_usd).then(a.key.cmp(&b.key)));
        v
    } else if let Some(key) = by.strip_prefix("tag:") {
        // Checked as a tag key is, so the name is bounded and the CSV file name stays plain.
        if !gaia_core::attribution::valid_tag_key(key) {
            return Err(ApiError::bad_request("`tag:<key>`: the key is 1 to 32 of a-z, 0-9, `_`, `.`, `-`"));
        }
        state.storage().usage_grouped_by_tag(&f, key).await?
    } else {
        state.storage().usage_grouped(&f, by.parse::<UsageGroupBy>()?).await?
    };
    if !csv {
        let body = json!({"group_by": by, "user_id": f.user_id, "since": f.since, "until": f.until, "groups": groups});
        return Ok(Json(body).into_response());
    }
    let body = UsageGroup::to_csv(by, &groups);
    let disposition = format!("attachment; filename=\"gaia-usage-by-{}.csv\"", by.replace(':', "-"));
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}
