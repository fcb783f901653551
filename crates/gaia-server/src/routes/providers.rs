//! Providers and their health: `GET /api/v1/providers` (with the refused stored changes for
//! administrators), `GET /api/v1/providers/{name}/health` (fresh probes and error text for
//! administrators only), and for administrators only (`is_admin`, whatever a role grants)
//! `POST /api/v1/providers`, `PUT /api/v1/providers/{name}`, `DELETE /api/v1/providers/{name}`.
//! Runtime changes are stored (see [`crate::provider_store`]) so they survive a restart. Keys are
//! never returned or logged; a key given directly (`api_key`) is stored encrypted, and refused (400)
//! when no secrets key is configured to encrypt it.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::routes::health;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use gaia_core::config::ProviderEntry;
use serde_json::{json, Value};

/// What the API shows of an entry: everything but the keys (only whether there is one, and the
/// names of the environment variables holding them).
fn public_entry(e: &ProviderEntry) -> Value {
    let models: Vec<String> = e.catalog().into_iter().map(|m| m.id).collect();
    json!({
        "name": e.name,
        "kind": e.kind,
        "base_url": e.base_url(),
        "deployments": e.all_deployments().iter().map(|d| d.base_url.clone()).collect::<Vec<_>>(),
        "api_key_env": e.api_key_env,
        "has_api_key": e.api_key.is_some() || e.api_key_env.is_some(),
        "models": models,
        "discover_models": e.models.is_empty(),
        "timeout_secs": e.timeout_secs,
        "connect_timeout_secs": e.connect_timeout_secs,
        "first_token_timeout_secs": e.first_token_timeout_secs,
        "http2_prior_knowledge": e.http2_prior_knowledge,
    })
}

/// Every provider with its kind and known health (passive statistics from real traffic and the
/// last probe; no provider is called). Administrators (`health::sees_detail`) also see the last
/// error and why its models cannot be discovered, if they cannot (redacted), and the stored runtime
/// changes this instance refused, with why (`refused`: `[provider_policy]` does not allow them, or
/// they cannot be set up); others see only the
/// state and figures (`health::provider_health`), never upstream text, which can hold internal URLs.
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> Json<Value> {
    let detail = health::sees_detail(&state, &p).await;
    let reg = state.providers();
    let providers: Vec<Value> = reg
        .providers()
        .iter()
        .map(|p| {
            let name = p.name();
            let mut shown = json!({
                "name": name,
                "kind": reg.entry(name).map(|e| e.kind),
                "health": health::provider_health(reg, name, detail),
            });
            if detail {
                shown["discovery_error"] = json!(health::discovery_error(reg, name));
            }
            shown
        })
        .collect();
    if !detail {
        return Json(json!({"providers": providers}));
    }
    // Stored changes this instance refused (e.g. kept from before `[provider_policy]`): named with
    // why, so that an administrator can allow, replace or remove them.
    let refused: Vec<Value> = state
        .applied_provider_changes()
        .refused()
        .into_iter()
        .map(|r| json!({"name": r.name, "status": "refused", "reason": r.reason}))
        .collect();
    Json(json!({"providers": providers, "refused": refused}))
}

/// One provider's health. Administrators (`health::sees_detail`) get a fresh probe (which calls
/// the provider with its key; recorded in its statistics) and the detail; others get the known state
/// and figures only: no provider is called for them, however often they ask.
pub async fn health(State(state): State<AppState>, Auth(p): Auth, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let reg = state.providers();
    if reg.get(&name).is_none() {
        return Err(ApiError::not_found(format!("provider {name} not found")));
    }
    if !health::sees_detail(&state, &p).await {
        return Ok(Json(json!({"name": name, "health": health::provider_health(reg, &name, false)})));
    }
    let probe = probe(&state, &name).await?;
    Ok(Json(json!({"name": name, "probe": probe, "health": health::provider_health(reg, &name, true)})))
}

/// Probes provider `name` now (a call with its key), records the result in its statistics, and
/// answers it with its message redacted (404 when there is no such provider).
pub(crate) async fn probe(state: &AppState, name: &str) -> ApiResult<gaia_providers::ProviderHealth> {
    let reg = state.providers();
    let provider = reg.get(name).ok_or_else(|| ApiError::not_found(format!("provider {name} not found")))?;
    let mut probe = provider.health().await;
    probe.message = probe.message.as_deref().map(crate::observe::redact);
    reg.stats(name).probe(probe.ok, std::time::Duration::from_millis(probe.latency_ms));
    Ok(probe)
}

/// The longest provider name accepted by the admin API, in bytes.
const MAX_NAME_BYTES: usize = 64;
/// The most deployments one entry sent to the admin API may list.
const MAX_DEPLOYMENTS: usize = 32;
/// The most models one entry sent to the admin API may list.
const MAX_MODELS: usize = 1_000;
/// The longest URL or variable name of an entry sent to the admin API, in bytes.
const MAX_FIELD_BYTES: usize = 2_048;

/// Refuses entries larger than anything a real provider needs.
fn bounded(entry: &ProviderEntry) -> Result<(), String> {
    if entry.name.len() > MAX_NAME_BYTES {
        return Err(format!("name: at most {MAX_NAME_BYTES} bytes"));
    }
    if entry.deployments.len() > MAX_DEPLOYMENTS {
        return Err(format!("deployments: at most {MAX_DEPLOYMENTS}"));
    }
    if entry.models.len() > MAX_MODELS {
        return Err(format!("models: at most {MAX_MODELS}"));
    }
    let fields = [&entry.base_url, &entry.api_key, &entry.api_key_env]
        .into_iter()
        .chain(entry.deployments.iter().flat_map(|d| [&d.base_url, &d.api_key, &d.api_key_env]));
    if fields.flatten().any(|f| f.len() > MAX_FIELD_BYTES) {
        return Err(format!("base_url, api_key and api_key_env: at most {MAX_FIELD_BYTES} bytes each"));
    }
    Ok(())
}

/// Checks an entry sent by an administrator, against the configuration's `[provider_policy]` too
/// (which variables may hold its key, where keys read from them may go, no re-pointing a keyed
/// provider with a key it does not restate: see [`crate::provider_store::check_policy`]), and
/// returns it with its keys read from the environment (the entry as sent is what gets stored: keys
/// named by `api_key_env` stay out of the database). Nothing is read from the environment before the
/// policy allows it.
fn checked(state: &AppState, entry: &ProviderEntry) -> ApiResult<ProviderEntry> {
    bounded(entry).map_err(ApiError::bad_request)?;
    entry.validate(0).map_err(|e| ApiError::bad_request(e.to_string().replace("providers[0].", "")))?;
    let reg = state.providers();
    let current = reg.get(&entry.name).map(|_| reg.entry(&entry.name));
    let policy = crate::provider_store::KeyPolicy::of(state.config());
    crate::provider_store::check_policy(&policy, entry, current.as_ref().map(Option::as_ref))
        .map_err(ApiError::bad_request)?;
    let mut live = entry.clone();
    live.resolve_process_env_keys().map_err(ApiError::from)?;
    Ok(live)
}

/// Changing providers is changing where the server's secrets go: administrators only, whatever a
/// custom role grants (`provider:write` alone is not enough). 403 in the access check's shape.
fn admins_only(p: &gaia_core::auth::Principal) -> ApiResult<()> {
    if p.is_admin {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::FORBIDDEN, "only administrators may add, replace or remove providers"))
}

/// Stores the entry (its literal keys encrypted), then sets the provider up (nothing changes if
/// storing fails: a literal key with no secrets key configured is a 400 saying what to set).
async fn install(state: &AppState, by: &str, entry: &ProviderEntry, live: &ProviderEntry) -> ApiResult<()> {
    let secrets = state.config().secrets()?;
    let at = state.storage().save_runtime_provider(entry, secrets.as_ref(), Some(by)).await?;
    if let Err(e) = state.providers().add_entry(live) {
        // Keep the database in step with what runs.
        let _ = state.storage().forget_runtime_provider(&entry.name).await;
        return Err(ApiError::bad_request(e.to_string()));
    }
    state.applied_provider_changes().record(&entry.name, at);
    Ok(())
}

/// Adds a provider at runtime (admins): the body is a `[[providers]]` entry as JSON. 409 when a
/// provider of that name exists (replace it with `PUT /api/v1/providers/{name}`).
pub async fn add(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(entry): ApiJson<ProviderEntry>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admins_only(&p)?;
    if state.providers().get(&entry.name).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("provider {} already exists; replace it with PUT /api/v1/providers/{}", entry.name, entry.name),
        ));
    }
    let live = checked(&state, &entry)?;
    install(&state, &p.user_id, &entry, &live).await?;
    crate::audit::record(&state, Some(&p.user_id), "provider.add", &entry.name, json!({"kind": entry.kind})).await;
    tracing::info!(provider = %entry.name, by = %p.user_id, "provider added");
    Ok((StatusCode::CREATED, Json(public_entry(&entry))))
}

/// Adds or replaces the provider `name` at runtime (admins), e.g. to rotate its key: 200 when it
/// replaced one, 201 when it is new. The body's `name` must be `name`.
pub async fn replace(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiJson(entry): ApiJson<ProviderEntry>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admins_only(&p)?;
    if entry.name != name {
        return Err(ApiError::bad_request(format!("the body names provider `{}`, the path `{name}`", entry.name)));
    }
    let live = checked(&state, &entry)?;
    let existed = state.providers().get(&name).is_some();
    install(&state, &p.user_id, &entry, &live).await?;
    crate::audit::record(&state, Some(&p.user_id), "provider.replace", &name, json!({"kind": entry.kind})).await;
    tracing::info!(provider = %name, by = %p.user_id, "provider replaced");
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(public_entry(&entry))))
}

/// Removes a provider at runtime (admins); it stays removed after a restart, even if the
/// configuration lists it, until it is added again.
pub async fn remove(State(state): State<AppState>, Auth(p): Auth, Path(name): Path<String>) -> ApiResult<StatusCode> {
    admins_only(&p)?;
    // A refused stored change can be removed too, though it runs nowhere.
    if state.providers().get(&name).is_none() && !state.applied_provider_changes().is_refused(&name) {
        return Err(ApiError::not_found(format!("provider {name} not found")));
    }
    let at = state.storage().remove_runtime_provider(&name, Some(&p.user_id)).await?;
    state.providers().remove(&name);
    state.applied_provider_changes().record(&name, at);
    crate::audit::record(&state, Some(&p.user_id), "provider.remove", &name, json!({})).await;
    tracing::info!(provider = %name, by = %p.user_id, "provider removed");
    Ok(StatusCode::NO_CONTENT)
}
