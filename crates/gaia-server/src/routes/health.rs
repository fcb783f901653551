//! Health: `GET /health/live` and `GET /health/ready` for orchestrators (no detail), `GET /health`
//! for anyone (load balancers, uptime checks) and `GET /api/v1/health` for
//! administrators (`admin:read` on `DETAIL_RESOURCE`); the same split applies to the providers'
//! health in `GET /api/v1/providers` and `GET /api/v1/providers/{name}/health` (`sees_detail`,
//! `provider_health`).
//!
//! The public answer says only whether each part is up: the overall status, the database and the
//! cache (`ok` / `error`) and each provider (`up`: true or false). Provider states come from what
//! the registry already knows (its health tracker: real traffic, circuit breakers and the periodic
//! probes), so a request never calls a provider: strangers can neither make Gaia spend its keys nor read upstream error text or
//! endpoints. The administrators' answer has the detail: versions and backends, error messages,
//! endpoints, latencies, discovery errors, and fresh probes with `?probe=true`.

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gaia_core::auth::Principal;
use gaia_providers::health::{CircuitState, HealthSnapshot};
use gaia_providers::ProviderRegistry;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The resource whose `admin:read` permission shows the health detail (`GET /api/v1/health`), and
/// with it the providers' error text and endpoints and their fresh probes.
pub(crate) const DETAIL_RESOURCE: &str = "/admin/health";

/// Whether `p` sees the health detail: `admin:read` on `DETAIL_RESOURCE` (administrators).
pub(crate) async fn sees_detail(state: &AppState, p: &Principal) -> bool {
    use gaia_rbac::{Action, Resource, ResourceType, Subject};
    let resource = Resource::new(ResourceType::Admin, DETAIL_RESOURCE);
    state.rbac().await.check(&Subject::from(p), Action::Read, &resource).allowed
}

/// What everyone who may read providers sees of a provider's health: the state and the figures,
/// no text (error messages can hold internal URLs).
#[derive(Debug, Serialize)]
struct PublicHealth {
    up: bool,
    circuit: CircuitState,
    window_requests: usize,
    error_rate: f64,
    latency_p50_ms: Option<u64>,
    latency_p95_ms: Option<u64>,
    ttft_p50_ms: Option<u64>,
    ttft_p95_ms: Option<u64>,
    total_requests: u64,
    total_errors: u64,
    last_probe_age_secs: Option<u64>,
    last_probe_ok: Option<bool>,
}

impl From<HealthSnapshot> for PublicHealth {
    fn from(s: HealthSnapshot) -> Self {
        PublicHealth {
            up: s.up,
            circuit: s.circuit,
            window_requests: s.window_requests,
            error_rate: s.error_rate,
            latency_p50_ms: s.latency_p50_ms,
            latency_p95_ms: s.latency_p95_ms,
            ttft_p50_ms: s.ttft_p50_ms,
            ttft_p95_ms: s.ttft_p95_ms,
            total_requests: s.total_requests,
            total_errors: s.total_errors,
            last_probe_age_secs: s.last_probe_age_secs,
            last_probe_ok: s.last_probe_ok,
        }
    }
}

/// Provider `name`'s known health (from the registry's tracker: no provider is called): the whole
/// snapshot with its last error redacted when `detail`, else only the state and figures.
pub(crate) fn provider_health(reg: &ProviderRegistry, name: &str, detail: bool) -> Value {
    let mut snap = reg.stats(name).snapshot();
    if detail {
        snap.last_error = snap.last_error.as_deref().map(crate::observe::redact);
        json!(snap)
    } else {
        json!(PublicHealth::from(snap))
    }
}

/// Provider `name`'s discovery error, redacted (for callers who see the detail).
pub(crate) fn discovery_error(reg: &ProviderRegistry, name: &str) -> Option<String> {
    reg.discovery_error(name).map(|e| crate::observe::redact(&e.to_string()))
}

/// The longest `GET /api/v1/health?probe=true` waits for the providers' probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The overall status: `ok`, `degraded` (the cache is down) or `error` (the database is down).
fn overall(db_ok: bool, cache_ok: bool) -> &'static str {
    match (db_ok, cache_ok) {
        (true, true) => "ok",
        (true, false) => "degraded",
        _ => "error",
    }
}

/// A part's status: `ok` or `error`.
fn ok_error(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

/// 200 when the database answers, else 503.
fn status_code(db_ok: bool) -> StatusCode {
    if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Whether the database, the cache and each provider are up, and nothing else (public). 200 when
/// the database answers, else 503. Providers are read from the registry's health tracker: no
/// provider is called.
pub async fn health(State(state): State<AppState>) -> Response {
    let db_ok = state.storage().ping().await.is_ok();
    let cache_ok = state.cache().ping().await.is_ok();
    let reg = state.providers();
    let providers: Vec<Value> =
        reg.health_snapshots().into_iter().map(|(name, snap)| json!({"name": name, "up": snap.up})).collect();
    let body = json!({
        "status": overall(db_ok, cache_ok),
        "database": {"status": ok_error(db_ok)},
        "cache": {"status": ok_error(cache_ok)},
        "providers": providers,
    });
    (status_code(db_ok), axum::Json(body)).into_response()
}

/// `GET /health/live`: 200 while the process serves requests (liveness: a failing answer means
/// restart it). Nothing is checked: a database outage must not make an orchestrator kill every
/// instance.
pub async fn live() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

/// `GET /health/ready`: 200 when this instance should get traffic, else 503 (stopping, or the
/// database, cache or event broker unreachable, or migrations not applied yet); never which part
/// failed (`GET /api/v1/health` tells administrators). The check: [`AppState::ready`].
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.ready().await {
        (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "unavailable"}))).into_response()
    }
}

/// `GET /api/v1/health` options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailQuery {
    /// Probe every provider now (at most `PROBE_TIMEOUT`), instead of reporting the last known state.
    #[serde(default)]
    pub probe: bool,
}

/// The detail, for administrators: version, active streams, database backend and cache kind with
/// their errors, and for each provider its kind, endpoints (credentials in URLs hidden), health
/// statistics (latencies, error rate, last error, last probe), discovery error, and with
/// `?probe=true` a fresh probe (recorded in its statistics). Messages are passed through
/// [`crate::observe::redact`], so nothing that looks like a key is shown. 200 when the database
/// answers, else 503.
pub async fn detail(
    State(state): State<AppState>,
    Auth(_): Auth,
    q: Result<Query<DetailQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let db = state.storage().ping().await;
    let cache = state.cache().ping().await;
    let reg = state.providers();
    let mut probes: Map<String, Value> = Map::new();
    let mut probe_timeout = false;
    if q.probe {
        match tokio::time::timeout(PROBE_TIMEOUT, reg.probe_all()).await {
            Ok(results) => {
                for h in results {
                    let message = h.message.as_deref().map(crate::observe::redact);
                    probes.insert(
                        h.provider.clone(),
                        json!({"ok": h.ok, "latency_ms": h.latency_ms, "message": message}),
                    );
                }
            }
            Err(_) => probe_timeout = true,
        }
    }
    let providers: Vec<Value> = reg
        .providers()
        .iter()
        .map(|p| {
            let name = p.name();
            let entry = reg.entry(name);
            let health = provider_health(reg, name, true);
            let endpoints: Option<Vec<String>> = entry.as_ref().map(|e| {
                e.all_deployments()
                    .iter()
                    .filter_map(|d| d.base_url.as_deref().map(gaia_core::config::redact_url))
                    .collect()
            });
            json!({
                "name": name,
                "kind": entry.as_ref().map(|e| e.kind),
                "endpoints": endpoints,
                "up": health["up"],
                "health": health,
                "discovery_error": discovery_error(reg, name),
                "probe": probes.get(name),
            })
        })
        .collect();
    let error = |r: &gaia_core::Result<()>| r.as_ref().err().map(|e| crate::observe::redact(&e.to_string()));
    let body = json!({
        "status": overall(db.is_ok(), cache.is_ok()),
        "version": env!("CARGO_PKG_VERSION"),
        "database": {"status": ok_error(db.is_ok()), "backend": state.storage().backend().as_str(), "error": error(&db)},
        "cache": {"status": ok_error(cache.is_ok()), "kind": state.cache().kind(), "error": error(&cache)},
        // What readiness checks besides: the event broker, and whether the migrations are applied.
        "events": {"status": ok_error(state.events().broker_up()), "kind": state.events().kind()},
        "migrations": {"applied": state.storage().migrations_applied().await.ok()},
        "providers": providers,
        "probe_timed_out": probe_timeout,
        "active_streams": state.active_streams(),
    });
    Ok((status_code(db.is_ok()), axum::Json(body)).into_response())
}
