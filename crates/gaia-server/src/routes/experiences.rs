//! Game worlds over HTTP (`../shared/specs/game-worlds.md` §5): `GET /api/v1/experiences` (those the
//! caller may read), `GET /api/v1/experiences/{exp}` (its settings and what it holds),
//! `GET /api/v1/experiences/{exp}/state` (the caller's view, `snapshot_version` included: a new
//! player joins at the starting place) and `POST /api/v1/experiences/{exp}/command` (a command object
//! as a WebSocket `action`: `{action, instance_id?, destination?, target_npc_id?, quest_id?,
//! message?}`; the answer is the command's result, `success: false` included: a command that cannot
//! be done here is not an HTTP error).
//!
//! `GET /api/v1/experiences/{exp}/npcs/{npc}/memories` lists what an NPC remembers of the caller;
//! `DELETE` on it (or on `…/memories/{id}`) makes the NPC forget it.
//!
//! Access: `experience:read` on `/experiences/<exp>` to see one (and what its NPCs remember of the
//! caller), `experience:write` to play it and to make NPCs forget (the built-in `user` role has both
//! on every experience; `viewer` reads).

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gaia_core::auth::Principal;
use gaia_rbac::{Action as Do, Resource, ResourceType, Subject};
use gaia_world::{Action, Caller, Worlds};
use serde_json::{json, Value};

impl From<gaia_world::WorldError> for ApiError {
    fn from(e: gaia_world::WorldError) -> Self {
        let status =
            axum::http::StatusCode::from_u16(e.http_status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        match e {
            gaia_world::WorldError::Database(m) => {
                tracing::error!(error = %m, "game world storage");
                ApiError::new(status, "the game world is unavailable; try again")
            }
            other => ApiError::new(status, other.to_string()),
        }
    }
}

/// Whether `p` may `action` experience `id`.
pub(crate) async fn may(state: &AppState, p: &Principal, action: Do, id: &str) -> bool {
    let resource = Resource::new(ResourceType::Experience, format!("/experiences/{id}"));
    state.rbac().await.check(&Subject::from(p), action, &resource).allowed
}

fn summary(exp: &gaia_world::content::Experience) -> Value {
    let c = &exp.config;
    json!({
        "id": c.id, "name": c.name, "version": c.version, "description": c.description,
        "state_model": c.state.model, "capabilities": c.capabilities, "multiplayer": c.multiplayer,
    })
}

/// `GET /api/v1/experiences`: the experiences the caller may read; administrators also get the
/// content problems of those that did not load (`errors`, each naming the file and the field).
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let catalog = state.worlds().catalog();
    let mut out = Vec::new();
    for (id, exp) in &catalog.experiences {
        if may(&state, &p, Do::Read, id).await {
            out.push(summary(exp));
        }
    }
    let mut body = json!({"experiences": out, "count": out.len()});
    if p.is_admin {
        body["errors"] = json!(catalog.errors);
    }
    Ok(Json(body))
}

fn readable(worlds: &Worlds, id: &str) -> ApiResult<std::sync::Arc<gaia_world::content::Experience>> {
    worlds.experience(id).map_err(|_| ApiError::not_found(format!("Experience {id} not found")))
}

/// `GET /api/v1/experiences/{exp}`: the settings, the places, the commands and the waypoints.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let exp = readable(state.worlds(), &id)?;
    let mut v = summary(&exp);
    v["config"] = json!(exp.config);
    v["locations"] = exp
        .world
        .locations
        .values()
        .map(|l| {
            json!({"id": l.id, "name": l.name, "description": l.description, "gps": l.gps,
                        "areas": l.areas.values().map(|a| json!({"id": a.id, "name": a.name})).collect::<Vec<_>>()})
        })
        .collect();
    v["commands"] = exp
        .commands
        .values()
        .map(|c| json!({"command": c.command, "aliases": c.aliases, "description": c.description}))
        .collect();
    v["waypoints"] = json!(exp.waypoints.values().collect::<Vec<_>>());
    Ok(Json(v))
}

/// `GET /api/v1/experiences/{exp}/state`: the caller's view of the world.
pub async fn state(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    readable(state.worlds(), &id)?;
    let view = state.worlds().view(&id, &p.user_id).await?;
    Ok(Json(json!(view)))
}

/// The NPC `npc` of experience `id` (404 when there is none).
fn npc_of(state: &AppState, id: &str, npc: &str) -> ApiResult<()> {
    let exp = readable(state.worlds(), id)?;
    if npc.len() > 256 || !(exp.npc_templates.contains_key(npc) || exp.world.npcs.contains_key(npc)) {
        return Err(ApiError::not_found(format!("NPC {npc} not found in {id}")));
    }
    Ok(())
}

/// `GET /api/v1/experiences/{exp}/npcs/{npc}/memories`: what the NPC remembers of the caller (never
/// of anyone else), oldest first: `{npc_id, memories: [{id, text, importance, created_at}], count}`.
pub async fn memories(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, npc)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    npc_of(&state, &id, &npc)?;
    let m = state.worlds().npc_memories(&id, &p.user_id, &npc).await?;
    Ok(Json(json!({"npc_id": npc, "count": m.len(), "memories": m})))
}

/// `DELETE /api/v1/experiences/{exp}/npcs/{npc}/memories`: the NPC forgets everything it remembers
/// of the caller: `{forgotten: n}`.
pub async fn forget_all(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, npc)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    npc_of(&state, &id, &npc)?;
    let n = state.worlds().forget_npc_memories(&id, &p.user_id, &npc, None).await?;
    Ok(Json(json!({"forgotten": n})))
}

/// `DELETE /api/v1/experiences/{exp}/npcs/{npc}/memories/{memory}`: the NPC forgets one memory of
/// the caller (404 when it has none of that id).
pub async fn forget_one(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, npc, memory)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    npc_of(&state, &id, &npc)?;
    if memory.len() > 128 {
        return Err(ApiError::not_found("no such memory"));
    }
    match state.worlds().forget_npc_memories(&id, &p.user_id, &npc, Some(&memory)).await? {
        0 => Err(ApiError::not_found("no such memory")),
        n => Ok(Json(json!({"forgotten": n}))),
    }
}

/// `POST /api/v1/experiences/{exp}/command`: runs a command as the caller. A command that may call a
/// model (`talk`, a rules command) is admitted by the conversation engine first (the permission to
/// use models, rate limits, budgets: refused in Gaia's error shape, nothing changed); the fast ones
/// are not (they call no model). `@` commands need `experience:admin` on `/experiences/<exp>`.
pub async fn command(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(action): ApiJson<Action>,
) -> ApiResult<Response> {
    readable(state.worlds(), &id)?;
    action.check().map_err(ApiError::bad_request)?;
    let caller = match caller_for(&state, &p, &id, &action).await {
        Ok(c) => c,
        Err(r) => return Ok(crate::admission::refusal_response(r)),
    };
    let result = state.worlds().command(&id, caller, &action).await?;
    Ok(Json(json!(result)).into_response())
}

/// Who runs `action` in experience `id`: the caller, their admin permission, and, only when the
/// command may call a model, their admission by the conversation engine (else its refusal). The one
/// place HTTP and the game client's socket decide it.
pub(crate) async fn caller_for(
    state: &AppState,
    p: &Principal,
    id: &str,
    action: &Action,
) -> Result<Caller, gaia_chat::Refusal> {
    let admin = may(state, p, Do::Admin, id).await;
    let caller = if Worlds::needs_model(action) {
        Caller::admitted(state.engine().admit(p, false).await?.budgets(None).await?)
    } else {
        Caller::player(p.user_id.clone())
    };
    Ok(caller.with_admin(admin))
}

/// Query of `GET /api/v0.3/locations/nearby`.
#[derive(Debug, serde::Deserialize)]
pub struct NearbyQuery {
    /// `<lat>,<lng>`.
    gps: String,
    /// Metres, 1 to 10,000 (default 1,000).
    #[serde(default)]
    radius: Option<f64>,
    /// The experience.
    experience: String,
}

/// `GET /api/v0.3/locations/nearby?gps=<lat>,<lng>&radius=<m>&experience=<exp>`: the experience's
/// waypoints within `radius` metres, nearest first (`pathway` waypoints left out):
/// `{locations: [{id, name, waypoint_type, gps: [lat, lng], media, vps_anchor_id?, distance_m}], count}`.
pub async fn nearby(
    State(state): State<AppState>,
    Auth(p): Auth,
    axum::extract::Query(q): axum::extract::Query<NearbyQuery>,
) -> ApiResult<Json<Value>> {
    let bad = || ApiError::bad_request("`gps` is `<lat>,<lng>` with -90 <= lat <= 90 and -180 <= lng <= 180");
    let (lat, lng) = q.gps.split_once(',').ok_or_else(bad)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
    let lng: f64 = lng.trim().parse().map_err(|_| bad())?;
    if !(lat.is_finite() && lng.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng)) {
        return Err(bad());
    }
    let radius = q.radius.unwrap_or(1_000.0);
    if !(1.0..=10_000.0).contains(&radius) {
        return Err(ApiError::bad_request("`radius` is 1 to 10000 (metres)"));
    }
    if !may(&state, &p, Do::Read, &q.experience).await {
        return Err(ApiError::not_found(format!("Experience {} not found", q.experience)));
    }
    let at = gaia_world::content::Gps { lat, lng };
    let found = state
        .worlds()
        .nearby(&q.experience, at, radius)
        .map_err(|_| ApiError::not_found(format!("Experience {} not found", q.experience)))?;
    let locations: Vec<Value> = found
        .iter()
        .map(|(d, w)| {
            let mut v = json!({"id": w.id, "name": w.name, "waypoint_type": w.waypoint_type,
                               "gps": [w.location.lat, w.location.lng], "media": w.media, "distance_m": d.round()});
            if let Some(a) = &w.vps_anchor_id {
                v["vps_anchor_id"] = json!(a);
            }
            v
        })
        .collect();
    Ok(Json(json!({"count": locations.len(), "locations": locations})))
}
