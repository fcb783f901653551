//! Generated assets (`gaia_assets`): `POST /api/v1/assets/generate` and `/estimate`,
//! `GET /api/v1/assets`, `GET/DELETE /api/v1/assets/{id}`, `POST /api/v1/assets/{id}/cancel`,
//! `GET /api/v1/assets/{id}/content` (range requests), `POST /api/v1/assets/{id}/url` (a signed URL),
//! `GET /api/v1/assets/{id}/events` (a job's progress, SSE), `GET /api/v1/assets/report` (JSON or
//! CSV), the unit and sell prices under `/api/v1/assets/prices`, and `GET /media/{id}`
//! (a signed URL's target: no credentials, the signature is the access).
//!
//! Another user's asset is a 404 unless it was shared (RBAC `asset:read` on
//! `/users/<owner>/assets/<id>`).

// Handlers return early with a ready `Response` as the error value, the usual axum idiom.
#![allow(clippy::result_large_err)]

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::sse::{self, SseEvent};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gaia_assets::{AssetError, AssetRequest, Content};
use gaia_core::auth::Principal;
use gaia_core::storage::{spreadsheet_safe, Asset, AssetFilter, AssetGroup, AssetKind, NewUnitPrice};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// An asset error as Gaia's API answers it (a refusal keeps its rate-limit headers).
pub(crate) fn asset_error(e: AssetError) -> Response {
    match e {
        AssetError::Refused(r) => crate::admission::refusal_response(r),
        other => to_api(other).into_response(),
    }
}

/// The JSON of an asset, with the URLs of its file and thumbnail.
pub fn asset_json(a: &Asset) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        // Where files are kept is the server's business.
        o.remove("object_key");
        o.remove("thumbnail_key");
        let has_file = a.object_key.is_some() || (a.kind == AssetKind::Transcription && a.status.is_final());
        o.insert(
            "content_url".into(),
            if has_file { json!(format!("/api/v1/assets/{}/content", a.id)) } else { Value::Null },
        );
        o.insert(
            "thumbnail_url".into(),
            match a.thumbnail_key {
                Some(_) => json!(format!("/api/v1/assets/{}/content?variant=thumbnail", a.id)),
                None => Value::Null,
            },
        );
    }
    v
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Result<Bytes, BytesRejection>) -> Result<T, Response> {
    let bytes = body.as_ref().map_err(|r| ApiError::new(r.status(), r.body_text()).into_response())?;
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")).into_response())
}

/// `POST /api/v1/assets/generate`: 201 with `{assets: [...]}` (images and speech), or 202 with the
/// pending job's asset (3D models: poll it or follow `/events`).
pub async fn generate(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: AssetRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let attribution = match crate::admission::attribution(&headers, body.as_deref().ok()) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match state.assets().generate(&p, attribution, &req).await {
        Ok(assets) => {
            let pending = assets.iter().any(|a| !a.status.is_final());
            let status = if pending { StatusCode::ACCEPTED } else { StatusCode::CREATED };
            let list: Vec<Value> = assets.iter().map(asset_json).collect();
            (status, axum::Json(json!({"assets": list}))).into_response()
        }
        Err(e) => asset_error(e),
    }
}

/// `POST /api/v1/assets/estimate`: what `generate` with the same body would cost and earn.
pub async fn estimate(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: AssetRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.assets().estimate(&req).await {
        Ok(e) => axum::Json(e).into_response(),
        Err(e) => asset_error(e),
    }
}

/// `GET /api/v1/assets` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this kind.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Assets created before this time (the previous page's last `created_at`).
    #[serde(default)]
    pub before: Option<String>,
    /// Page size (default 50, at most 200).
    #[serde(default)]
    pub limit: Option<u32>,
}

fn kind_param(k: Option<&str>) -> ApiResult<Option<AssetKind>> {
    k.map(|k| {
        AssetKind::parse(k)
            .ok_or_else(|| ApiError::bad_request(format!("`{k}` is not image, speech, transcription or model_3d")))
    })
    .transpose()
}

/// `GET /api/v1/assets`: the caller's assets, newest first.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let kind = kind_param(q.kind.as_deref())?;
    let before = q.before.as_deref().map(|s| crate::routes::usage::parse_time(s, false)).transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, gaia_core::storage::MAX_ASSET_PAGE);
    let assets = state.assets().list(Some(&p.user_id), kind, before, limit).await.map_err(to_api)?;
    let next = (assets.len() as u32 == limit).then(|| assets.last().map(|a| a.created_at)).flatten();
    let list: Vec<Value> = assets.iter().map(asset_json).collect();
    Ok(axum::Json(json!({"assets": list, "next_before": next})).into_response())
}

/// An asset error as an [`ApiError`]: database and provider failures through their own conversions
/// (a database failure says so, not its text).
fn to_api(e: AssetError) -> ApiError {
    match e {
        AssetError::Core(c) => ApiError::from(c),
        AssetError::Provider(p) => ApiError::from(p),
        other => ApiError::new(
            StatusCode::from_u16(other.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            other.to_string(),
        ),
    }
}

/// The asset `id` if `p` may read it (or change it, `change`); 404 otherwise, so that another user's
/// assets are not even confirmed to exist.
async fn visible(state: &AppState, p: &Principal, id: &str, change: bool) -> ApiResult<Asset> {
    let not_found = || ApiError::not_found(format!("asset {id} not found"));
    let a = state.assets().get(id).await.map_err(|_| not_found())?;
    let ok = if change { state.assets().may_change(p, &a).await } else { state.assets().may_read(p, &a).await };
    if ok {
        Ok(a)
    } else {
        Err(not_found())
    }
}

/// `GET /api/v1/assets/{id}`.
pub async fn get(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let a = visible(&state, &p, &id, false).await?;
    Ok(axum::Json(asset_json(&a)).into_response())
}

/// `DELETE /api/v1/assets/{id}`: the asset and its files (a running job is cancelled first).
pub async fn delete(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    visible(&state, &p, &id, true).await?;
    state.assets().delete(&id).await.map_err(to_api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/assets/{id}/cancel`: stops a 3D job (409 once it is final).
pub async fn cancel(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    visible(&state, &p, &id, true).await?;
    let a = state.assets().cancel(&id).await.map_err(to_api)?;
    Ok(axum::Json(asset_json(&a)).into_response())
}

/// `…/content` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct ContentQuery {
    /// `file` (default) or `thumbnail`.
    #[serde(default)]
    pub variant: Option<String>,
    /// A signed URL's expiry (unix seconds).
    #[serde(default)]
    pub expires: Option<i64>,
    /// A signed URL's signature.
    #[serde(default)]
    pub sig: Option<String>,
}

fn thumbnail_variant(v: Option<&str>) -> ApiResult<bool> {
    match v.unwrap_or("file") {
        "file" => Ok(false),
        "thumbnail" => Ok(true),
        other => Err(ApiError::bad_request(format!("`variant` is file or thumbnail, not `{other}`"))),
    }
}

/// The single byte range a `Range` header asks for in a file of `total` bytes: `Ok(None)` for the
/// whole file (no header, or several ranges: RFC 9110 lets a server answer those whole), `Err` for
/// a range that cannot be satisfied (416).
fn requested_range(headers: &HeaderMap, total: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    match http_range_header::parse_range_header(raw).and_then(|r| r.validate(total)) {
        Ok(ranges) if ranges.len() == 1 => Ok(ranges.first().map(|r| *r.start()..r.end().saturating_add(1))),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

async fn serve_content(state: &AppState, a: &Asset, thumbnail: bool, headers: &HeaderMap) -> Response {
    // The size first, for the range; a range past the end is a 416 naming the size.
    let total = match state.assets().size(a, thumbnail).await {
        Ok(n) => n,
        Err(e) => return asset_error(e),
    };
    let range = match requested_range(headers, total) {
        Ok(r) => r,
        Err(()) => {
            let mut resp = (StatusCode::RANGE_NOT_SATISFIABLE, "").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let c: Content = match state.assets().content(a, thumbnail, range).await {
        Ok(c) => c,
        Err(e) => return asset_error(e),
    };
    let status = if c.range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let mut resp = (status, c.bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&c.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(r) = &c.range {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, c.total)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    resp
}

/// `GET /api/v1/assets/{id}/content[?variant=thumbnail]`: the file, with range requests.
pub async fn content(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<ContentQuery>,
    headers: HeaderMap,
) -> Response {
    let thumbnail = match thumbnail_variant(q.variant.as_deref()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match visible(&state, &p, &id, false).await {
        Ok(a) => serve_content(&state, &a, thumbnail, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// `GET /media/{id}?variant=&expires=&sig=`: a signed URL's target. The signature is the
/// access: a wrong, altered or expired one is a 403.
pub async fn signed_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ContentQuery>,
    headers: HeaderMap,
) -> Response {
    let variant = q.variant.as_deref().unwrap_or("file");
    let thumbnail = match thumbnail_variant(Some(variant)) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let (Some(expires), Some(sig)) = (q.expires, q.sig.as_deref()) else {
        return ApiError::new(StatusCode::FORBIDDEN, "this URL needs `expires` and `sig`").into_response();
    };
    if !state.assets().verify_url(&id, variant, expires, sig) {
        return ApiError::new(StatusCode::FORBIDDEN, "the URL's signature is wrong or has expired").into_response();
    }
    match state.assets().get(&id).await {
        Ok(a) => serve_content(&state, &a, thumbnail, &headers).await,
        Err(e) => asset_error(e),
    }
}

/// `POST /api/v1/assets/{id}/url` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlBody {
    /// `file` (default) or `thumbnail`.
    #[serde(default)]
    pub variant: Option<String>,
    /// Seconds it stays valid (default and most: `[assets].signed_url_ttl_secs`).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// `POST /api/v1/assets/{id}/url`: a signed, time-limited URL of the file for a game client.
pub async fn signed_url(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: UrlBody = if body.iter().all(u8::is_ascii_whitespace) {
        UrlBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?
    };
    let thumbnail = thumbnail_variant(b.variant.as_deref())?;
    visible(&state, &p, &id, false).await?;
    Ok(axum::Json(state.assets().sign_url(&id, thumbnail, b.ttl_secs)).into_response())
}

/// `GET /api/v1/assets/{id}/events`: the asset as it changes (`event: asset`, its JSON), until it is
/// final. Read from the database, so a job polled by another instance is followed all the same.
pub async fn events(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let first = visible(&state, &p, &id, false).await?;
    let ticket = state.stream_ticket();
    let stream = async_stream::stream! {
        let _ticket = ticket;
        let mut last = asset_json(&first);
        yield SseEvent::named("asset", &last.to_string());
        if first.status.is_final() {
            return;
        }
        // A job ends within its timeout: the stream cannot outlive it by much.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(state.config().assets.job_timeout_secs + 60);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Ok(a) = state.assets().get(&id).await else { break };
            let now = asset_json(&a);
            if now != last {
                yield SseEvent::named("asset", &now.to_string());
                last = now;
            }
            if a.status.is_final() {
                break;
            }
        }
    };
    Ok(sse::response(stream))
}

/// `GET /api/v1/assets/report` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `type` (default), `provider`, `model`, `user`, `team` or `day`.
    #[serde(default)]
    pub group_by: Option<String>,
    /// From (a date or RFC 3339 time).
    #[serde(default)]
    pub since: Option<String>,
    /// Until (exclusive; a date means the end of that day).
    #[serde(default)]
    pub until: Option<String>,
    /// Only this kind.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Someone else's (`*`: everyone's); needs `usage:read` on their usage.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Only the members of this team or workspace (needs `usage:read` on everyone's usage).
    #[serde(default)]
    pub team: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /api/v1/assets/report`: assets, units, cost, revenue and margin by type, provider, model,
/// user, team or day; JSON or CSV.
pub async fn report(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let group_name = q.group_by.as_deref().unwrap_or("type");
    let (group, by_team) = match group_name {
        "type" | "kind" => (AssetGroup::Kind, false),
        "provider" => (AssetGroup::Provider, false),
        "model" => (AssetGroup::Model, false),
        "user" => (AssetGroup::User, false),
        "team" => (AssetGroup::User, true),
        "day" => (AssetGroup::Day, false),
        other => {
            return Err(ApiError::bad_request(format!(
                "`group_by` is type, provider, model, user, team or day, not `{other}`"
            )))
        }
    };
    let everyone = q.user_id.as_deref() == Some("*") || q.team.is_some() || by_team;
    let other = q.user_id.as_deref().filter(|u| *u != "*" && *u != p.user_id);
    if everyone || other.is_some() {
        let path = format!("/users/{}/usage", other.unwrap_or("_all"));
        let resource = gaia_rbac::Resource::new(gaia_rbac::ResourceType::Usage, path);
        if !state.rbac().await.check(&gaia_rbac::Subject::from(&p), gaia_rbac::Action::Read, &resource).allowed {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "you may not see other users' assets"));
        }
    }
    let policy = state.rbac().await.policy();
    let owners = if let Some(team) = &q.team {
        Some(policy.members_of(team).into_iter().map(str::to_string).collect())
    } else if everyone {
        None
    } else {
        Some(vec![other.unwrap_or(&p.user_id).to_string()])
    };
    let since = q.since.as_deref().map(|s| crate::routes::usage::parse_time(s, false)).transpose()?;
    let until = q.until.as_deref().map(|s| crate::routes::usage::parse_time(s, true)).transpose()?;
    let filter = AssetFilter { owners, since, until, kind: kind_param(q.kind.as_deref())? };
    let mut rows = state.assets().report(&filter, group).await.map_err(to_api)?;
    if by_team {
        // A user in several teams counts in each; users in none are under `-`.
        let mut teams: std::collections::BTreeMap<String, gaia_core::storage::AssetReportRow> = Default::default();
        for r in rows {
            let groups = policy.groups_of(&r.key);
            let keys: Vec<String> =
                if groups.is_empty() { vec!["-".into()] } else { groups.into_iter().map(str::to_string).collect() };
            for k in keys {
                let t = teams.entry(k.clone()).or_insert_with(|| gaia_core::storage::AssetReportRow {
                    key: k,
                    assets: 0,
                    failed: 0,
                    units: 0.0,
                    cost_usd: 0.0,
                    revenue_usd: 0.0,
                    margin_usd: 0.0,
                });
                t.assets += r.assets;
                t.failed += r.failed;
                t.units += r.units;
                t.cost_usd += r.cost_usd;
                t.revenue_usd += r.revenue_usd;
                t.margin_usd += r.margin_usd;
            }
        }
        rows = teams.into_values().collect();
    }
    if q.format.as_deref() == Some("csv") {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record([group_name, "assets", "failed", "units", "cost_usd", "revenue_usd", "margin_usd"]);
        for r in &rows {
            let _ = w.write_record([
                spreadsheet_safe(&r.key).into_owned(),
                r.assets.to_string(),
                r.failed.to_string(),
                format!("{:.3}", r.units),
                format!("{:.6}", r.cost_usd),
                format!("{:.6}", r.revenue_usd),
                format!("{:.6}", r.margin_usd),
            ]);
        }
        let body = w.into_inner().unwrap_or_default();
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"assets-report.csv\""),
            ],
            body,
        )
            .into_response());
    }
    let totals = rows.iter().fold(json!({"assets": 0, "cost_usd": 0.0, "revenue_usd": 0.0}), |mut t, r| {
        t["assets"] = json!(t["assets"].as_u64().unwrap_or(0) + r.assets);
        t["cost_usd"] = json!(t["cost_usd"].as_f64().unwrap_or(0.0) + r.cost_usd);
        t["revenue_usd"] = json!(t["revenue_usd"].as_f64().unwrap_or(0.0) + r.revenue_usd);
        t
    });
    let margin = totals["revenue_usd"].as_f64().unwrap_or(0.0) - totals["cost_usd"].as_f64().unwrap_or(0.0);
    let mut totals = totals;
    totals["margin_usd"] = json!(margin);
    Ok(axum::Json(json!({"group_by": group_name, "rows": rows, "totals": totals})).into_response())
}

/// `GET /api/v1/assets/prices`: every recorded unit and sell price, and the configured sell prices.
pub async fn prices(State(state): State<AppState>) -> ApiResult<Response> {
    let book = state.quotas().prices();
    let recorded: Vec<_> = book.unit_prices().into_iter().cloned().collect();
    let sell_now: serde_json::Map<String, Value> =
        AssetKind::ALL.iter().map(|k| (k.as_str().to_string(), json!(state.assets().sell_price(*k)))).collect();
    Ok(axum::Json(json!({"prices": recorded, "sell_prices_now": sell_now})).into_response())
}

/// `POST /api/v1/assets/prices`: records a unit or sell price (administrators).
pub async fn add_price(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<NewUnitPrice>,
) -> ApiResult<Response> {
    let e = state.storage().add_unit_price(&b, Some(&p.user_id)).await?;
    state.quotas().reload_prices().await?;
    crate::audit::record(&state, Some(&p.user_id), "asset_price.add", &e.id, json!(e)).await;
    Ok((StatusCode::CREATED, axum::Json(e)).into_response())
}

/// `DELETE /api/v1/assets/prices/{id}` (administrators).
pub async fn remove_price(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.storage().delete_unit_price(&id).await? {
        return Err(ApiError::not_found(format!("price {id} not found")));
    }
    state.quotas().reload_prices().await?;
    crate::audit::record(&state, Some(&p.user_id), "asset_price.delete", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_one_satisfiable_span() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(requested_range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(requested_range(&h("bytes=0-9"), 100), Ok(Some(0..10)));
        assert_eq!(requested_range(&h("bytes=90-"), 100), Ok(Some(90..100)));
        assert_eq!(requested_range(&h("bytes=-5"), 100), Ok(Some(95..100)));
        assert_eq!(requested_range(&h("bytes=0-1,5-6"), 100), Ok(None), "several: the whole file");
        assert_eq!(requested_range(&h("bytes=200-300"), 100), Err(()));
        assert_eq!(requested_range(&h("pages=1-2"), 100), Err(()));
    }
}
