//! `/api/v1/rbac/...`: roles, grants, teams, workspaces and their members, shares, the audit log,
//! `check`, `who-can` (administrators), and `me` (what the caller may do). Every change is written
//! to the audit log with the caller as actor and reaches every instance (see `gaia_rbac::engine`).

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use gaia_rbac::{Action, GroupKind, RbacError, Resource, ResourceType, Role, ShareAccess, Subject};
use serde::Deserialize;
use serde_json::{json, Value};

impl From<RbacError> for ApiError {
    fn from(e: RbacError) -> Self {
        match e {
            RbacError::Invalid(m) => ApiError::bad_request(m),
            RbacError::NotFound(m) => ApiError::not_found(format!("{m} not found")),
            RbacError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            RbacError::Storage(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

fn created(v: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// `GET /api/v1/rbac/me`: the caller's permissions with where each comes from.
pub async fn me(State(st): State<AppState>, Auth(p): Auth) -> Json<Value> {
    let can = st.rbac().await.what_can(&Subject::from(&p));
    Json(json!({"user_id": p.user_id, "is_admin": p.is_admin, "permissions": can}))
}

/// Body of `POST /api/v1/rbac/check`.
#[derive(Debug, Deserialize)]
pub struct CheckBody {
    /// The user asking (default: the caller).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The action.
    pub action: String,
    /// The resource type.
    pub resource_type: String,
    /// The resource path.
    pub path: String,
}

fn parse_resource(resource_type: &str, path: &str) -> ApiResult<Resource> {
    let t: ResourceType = resource_type.parse()?;
    if path.is_empty() || path.len() > 2_000 {
        return Err(ApiError::bad_request("`path` must be 1 to 2000 characters"));
    }
    Ok(Resource::new(t, path))
}

/// `POST /api/v1/rbac/check`: `{allowed, reason}` for a user, an action and a resource.
pub async fn check(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<CheckBody>,
) -> ApiResult<Json<Value>> {
    let action: Action = b.action.parse()?;
    let resource = parse_resource(&b.resource_type, &b.path)?;
    let who = match &b.user_id {
        Some(u) if *u != p.user_id => {
            let user =
                st.storage().get_user(u).await?.ok_or_else(|| ApiError::not_found(format!("user {u} not found")))?;
            Subject { user_id: user.id, is_admin: user.is_admin }
        }
        _ => Subject::from(&p),
    };
    let d = st.rbac().await.check(&who, action, &resource);
    Ok(Json(json!({"user_id": who.user_id, "allowed": d.allowed, "reason": d.reason, "permission": d.permission})))
}

/// `GET /api/v1/rbac/who-can?action=&resource_type=&path=`.
#[derive(Debug, Deserialize)]
pub struct WhoCanQuery {
    /// The action.
    pub action: String,
    /// The resource type.
    pub resource_type: String,
    /// The resource path.
    pub path: String,
}

/// `GET /api/v1/rbac/who-can`.
pub async fn who_can(State(st): State<AppState>, Query(q): Query<WhoCanQuery>) -> ApiResult<Json<Value>> {
    let action: Action = q.action.parse()?;
    let resource = parse_resource(&q.resource_type, &q.path)?;
    let w = st.rbac().await.who_can(action, &resource);
    let users: Vec<Value> = w.users.iter().map(|(u, why)| json!({"user_id": u, "reason": why})).collect();
    Ok(Json(json!({
        "administrators": w.administrators,
        "everyone_via_default_role": w.everyone_via_default_role,
        "users": users,
    })))
}

/// `GET /api/v1/rbac/roles`.
pub async fn list_roles(State(st): State<AppState>) -> Json<Value> {
    Json(json!({"roles": st.rbac().await.roles()}))
}

/// `POST /api/v1/rbac/roles`: a custom role.
pub async fn create_role(State(st): State<AppState>, Auth(p): Auth, ApiJson(r): ApiJson<Role>) -> ApiResult<Response> {
    Ok(created(st.rbac().await.create_role(Some(&p.user_id), r).await?))
}

/// `PUT /api/v1/rbac/roles/{name}`.
pub async fn update_role(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiJson(mut r): ApiJson<Role>,
) -> ApiResult<Json<Role>> {
    r.name = name;
    Ok(Json(st.rbac().await.update_role(Some(&p.user_id), r).await?))
}

/// `DELETE /api/v1/rbac/roles/{name}`.
pub async fn delete_role(State(st): State<AppState>, Auth(p): Auth, Path(name): Path<String>) -> ApiResult<StatusCode> {
    st.rbac().await.delete_role(Some(&p.user_id), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?user_id=` filter.
#[derive(Debug, Default, Deserialize)]
pub struct UserFilter {
    /// Only this user's.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `GET /api/v1/rbac/grants`.
pub async fn list_grants(State(st): State<AppState>, Query(q): Query<UserFilter>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"grants": st.rbac().await.grants(q.user_id.as_deref()).await?})))
}

/// Body of `POST /api/v1/rbac/grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The user.
    pub user_id: String,
    /// The role.
    pub role: String,
    /// Within this team or workspace (system-wide when absent).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Until when (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/rbac/grants`.
pub async fn create_grant(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<GrantBody>,
) -> ApiResult<Response> {
    let g = st.rbac().await.grant(Some(&p.user_id), &b.user_id, &b.role, b.group_id.as_deref(), b.expires_at).await?;
    Ok(created(g))
}

/// `DELETE /api/v1/rbac/grants/{id}`.
pub async fn delete_grant(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.rbac().await.revoke(Some(&p.user_id), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/rbac/teams` and `/workspaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// Name.
    pub name: String,
}

/// `GET /api/v1/rbac/teams`.
pub async fn list_teams(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"teams": st.rbac().await.groups(GroupKind::Team).await?})))
}

/// `POST /api/v1/rbac/teams`.
pub async fn create_team(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<GroupBody>,
) -> ApiResult<Response> {
    Ok(created(st.rbac().await.create_group(Some(&p.user_id), GroupKind::Team, &b.name).await?))
}

/// `GET /api/v1/rbac/workspaces`.
pub async fn list_workspaces(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"workspaces": st.rbac().await.groups(GroupKind::Workspace).await?})))
}

/// `POST /api/v1/rbac/workspaces`.
pub async fn create_workspace(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<GroupBody>,
) -> ApiResult<Response> {
    Ok(created(st.rbac().await.create_group(Some(&p.user_id), GroupKind::Workspace, &b.name).await?))
}

/// `DELETE /api/v1/rbac/groups/{id}`: a team or workspace.
pub async fn delete_group(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.rbac().await.delete_group(Some(&p.user_id), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/rbac/groups/{id}/members`.
pub async fn list_members(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"members": st.rbac().await.members(&id).await?})))
}

/// Body of `POST /api/v1/rbac/groups/{id}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    /// The user.
    pub user_id: String,
    /// A team- or workspace-scope role (default `kb_reader`).
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /api/v1/rbac/groups/{id}/members`: adds a member or changes their role.
pub async fn add_member(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MemberBody>,
) -> ApiResult<Response> {
    let role = b.role.as_deref().unwrap_or("kb_reader");
    Ok(created(st.rbac().await.add_member(Some(&p.user_id), &id, &b.user_id, role).await?))
}

/// `DELETE /api/v1/rbac/groups/{id}/members/{user_id}`.
pub async fn remove_member(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.rbac().await.remove_member(Some(&p.user_id), &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/rbac/shares`.
pub async fn list_shares(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"shares": st.rbac().await.shares().await?})))
}

/// Body of `POST /api/v1/rbac/shares`: share a conversation (`conversation_id`) or a KB document or
/// folder (`kb_path`) with a user or a team/workspace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// A conversation of the caller.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// A KB document or folder (vault path).
    #[serde(default)]
    pub kb_path: Option<String>,
    /// A generated asset of the caller.
    #[serde(default)]
    pub asset_id: Option<String>,
    /// With this user…
    #[serde(default)]
    pub user_id: Option<String>,
    /// …or with this team or workspace.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `read` (default) or `write`.
    #[serde(default)]
    pub access: Option<String>,
}

/// `POST /api/v1/rbac/shares`: needs `share` on the resource (owners hold it on their own things).
pub async fn create_share(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<ShareBody>,
) -> ApiResult<Response> {
    let access: ShareAccess = b.access.as_deref().unwrap_or("read").parse()?;
    let resource = match (&b.conversation_id, &b.kb_path, &b.asset_id) {
        (None, None, Some(a)) => {
            // Only the owner's own assets can be shared; someone else's is a 404.
            match st.assets().get(a).await {
                Ok(asset) if asset.owner_id == p.user_id => Resource::asset(&p.user_id, a),
                _ => return Err(ApiError::not_found(format!("asset {a} not found"))),
            }
        }
        (Some(c), None, None) => {
            // Only the owner's own conversations can be shared; someone else's is a 404.
            st.storage()
                .get_conversation(&p.user_id, c)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("Conversation {c} not found")))?;
            Resource::conversation(&p.user_id, c)
        }
        (None, Some(path), None) => {
            let vp = gaia_kb::VaultPath::parse(path).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Resource::kb_document(vp.as_str())
        }
        _ => return Err(ApiError::bad_request("give exactly one of `conversation_id`, `kb_path` and `asset_id`")),
    };
    let rbac = st.rbac().await;
    let d = rbac.check(&Subject::from(&p), Action::Share, &resource);
    if !d.allowed {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("you may not share {}", resource.path)));
    }
    let s = rbac.share(Some(&p.user_id), resource, b.user_id.as_deref(), b.group_id.as_deref(), access).await?;
    Ok(created(s))
}

/// `DELETE /api/v1/rbac/shares/{id}`: by whoever shared it, or anyone allowed to share the resource.
pub async fn delete_share(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let rbac = st.rbac().await;
    let share = rbac.shares().await?.into_iter().find(|s| s.id == id);
    let Some(share) = share else { return Err(ApiError::not_found(format!("share {id} not found"))) };
    let mine = share.created_by.as_deref() == Some(p.user_id.as_str());
    if !mine && !rbac.check(&Subject::from(&p), Action::Share, &share.resource).allowed {
        return Err(ApiError::not_found(format!("share {id} not found")));
    }
    rbac.unshare(Some(&p.user_id), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?limit=` of the audit log.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Most entries (default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/rbac/audit`: the newest changes first.
pub async fn audit(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"entries": st.rbac().await.audit_log(q.limit.unwrap_or(100)).await?})))
}
