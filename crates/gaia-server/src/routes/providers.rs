//! Providers and their health: `GET /api/v1/providers`, `GET /api/v1/providers/{name}/health`, and
//! for administrators `POST /api/v1/providers`, `PUT /api/v1/providers/{name}`,
//! `DELETE /api/v1/providers/{name}`. Runtime changes are stored (see [`crate::provider_store`]) so
//! they survive a restart. Keys are never returned or logged; a key given directly (`api_key`) is
//! stored encrypted, and refused (400) when no secrets key is configured to encrypt it.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
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
    })
}

/// Every provider with its live health (passive statistics from real traffic and the last probe),
/// its kind, and why its models cannot be discovered, if they cannot.
pub async fn list(State(state): State<AppState>, Auth(_): Auth) -> Json<Value> {
    let reg = state.providers();
    let providers: Vec<Value> = reg
        .providers()
        .iter()
        .map(|p| {
            let name = p.name();
            json!({
                "name": name,
                "kind": reg.entry(name).map(|e| e.kind),
                "health": reg.stats(name).snapshot(),
                "discovery_error": reg.discovery_error(name).map(|e| e.to_string()),
            })
        })
        .collect();
    Json(json!({"providers": providers}))
}

/// One provider's health, with a fresh probe.
pub async fn health(State(state): State<AppState>, Auth(_): Auth, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let reg = state.providers();
    let p = reg.get(&name).ok_or_else(|| ApiError::not_found(format!("provider {name} not found")))?;
    let probe = p.health().await;
    let stats = reg.stats(&name);
    stats.probe(probe.ok, std::time::Duration::from_millis(probe.latency_ms));
    Ok(Json(json!({"name": name, "probe": probe, "health": stats.snapshot()})))
}

/// Checks an entry sent by an administrator, against the configuration's `[provider_policy]` too
/// (which variables may hold its key, where keys may go, no re-pointing a keyed provider with a key
/// it does not restate: see [`crate::provider_store::check_policy`]), and returns it with its keys
/// read from the environment (the entry as sent is what gets stored: keys named by `api_key_env`
/// stay out of the database). Nothing is read from the environment before the policy allows it.
fn checked(state: &AppState, entry: &ProviderEntry) -> ApiResult<ProviderEntry> {
    entry.validate(0).map_err(|e| ApiError::bad_request(e.to_string().replace("providers[0].", "")))?;
    let reg = state.providers();
    let current = reg.get(&entry.name).map(|_| reg.entry(&entry.name));
    crate::provider_store::check_policy(&state.config().provider_policy, entry, current.as_ref().map(Option::as_ref))
        .map_err(ApiError::bad_request)?;
    let mut live = entry.clone();
    live.resolve_process_env_keys().map_err(ApiError::from)?;
    Ok(live)
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
    if state.providers().get(&name).is_none() {
        return Err(ApiError::not_found(format!("provider {name} not found")));
    }
    let at = state.storage().remove_runtime_provider(&name, Some(&p.user_id)).await?;
    state.providers().remove(&name);
    state.applied_provider_changes().record(&name, at);
    crate::audit::record(&state, Some(&p.user_id), "provider.remove", &name, json!({})).await;
    tracing::info!(provider = %name, by = %p.user_id, "provider removed");
    Ok(StatusCode::NO_CONTENT)
}
