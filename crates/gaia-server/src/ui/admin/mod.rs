//! The admin console: server-rendered pages under `/admin` for administrators (providers and their
//! live health, models and prices, API keys, users and roles, teams and workspaces, rate limits and
//! budgets with their spend, usage charts, the audit log, guardrails and their trips).
//!
//! The pages follow the chat UI's rules: maud templates (every value escaped), the same CSP (charts
//! are inline SVG drawn here, no script, no inline style), and forms that post with the session's
//! CSRF token, checked before anything changes. Each page and form declares its access in the
//! route table like every API route; a signed-in caller without it gets a 403 page. Every change goes
//! through the same function as its REST route (`routes::quotas::apply_limit`, `routes::keys::issue_key`,
//! `gaia_rbac::Rbac::grant`, …), so it is validated, applied on every instance and audited alike.

mod views;

use super::{html, signed_in};
use crate::access::{Access, Routes};
use crate::error::{ApiError, ApiResult};
use crate::routes::{guardrails, keys, pricing, providers, quotas, usage};
use crate::session;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use gaia_core::auth::Principal;
use gaia_core::storage::{BudgetPeriod, LimitScope, NewBudget, User, WebSession};
use gaia_rbac::{Action, GroupKind, Resource, ResourceType as T, Subject};
use serde::Deserialize;
use std::future::Future;
use std::time::Duration;
pub(crate) use views::Notice;

/// A page of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Providers,
    Models,
    Keys,
    Users,
    Teams,
    Limits,
    Usage,
    Audit,
    Guardrails,
}

const QUOTAS: &str = "/admin/quotas";
const RBAC: &str = "/admin/rbac";

impl Section {
    /// Every page, in the navigation's order.
    pub(crate) const ALL: [Section; 10] = [
        Section::Overview,
        Section::Providers,
        Section::Models,
        Section::Keys,
        Section::Users,
        Section::Teams,
        Section::Limits,
        Section::Usage,
        Section::Audit,
        Section::Guardrails,
    ];

    /// The page's path.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Section::Overview => "/admin",
            Section::Providers => "/admin/providers",
            Section::Models => "/admin/models",
            Section::Keys => "/admin/keys",
            Section::Users => "/admin/users",
            Section::Teams => "/admin/teams",
            Section::Limits => "/admin/limits",
            Section::Usage => "/admin/usage",
            Section::Audit => "/admin/audit",
            Section::Guardrails => "/admin/guardrails",
        }
    }

    /// The page's title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Providers => "Providers",
            Section::Models => "Models and prices",
            Section::Keys => "API keys",
            Section::Users => "Users and roles",
            Section::Teams => "Teams and workspaces",
            Section::Limits => "Limits and budgets",
            Section::Usage => "Usage",
            Section::Audit => "Audit log",
            Section::Guardrails => "Guardrails",
        }
    }

    /// What reading the page needs: the same resource as its REST routes.
    fn read(self) -> (T, Action, &'static str) {
        match self {
            Section::Overview => (T::Admin, Action::Read, "/admin/console"),
            Section::Providers => (T::Admin, Action::Read, crate::routes::health::DETAIL_RESOURCE),
            Section::Models | Section::Limits => (T::Admin, Action::Read, QUOTAS),
            Section::Keys => (T::Admin, Action::Read, "/admin/keys"),
            Section::Users | Section::Teams => (T::Admin, Action::Read, RBAC),
            // As `GET /api/v1/usage/report?user_id=*`.
            Section::Usage => (T::Usage, Action::Read, "/users/_all/usage"),
            Section::Audit => (T::Admin, Action::Read, "/admin/audit"),
            Section::Guardrails => (T::Admin, Action::Read, "/admin/guardrails"),
        }
    }

    fn access(self) -> Access {
        let (t, a, path) = self.read();
        Access::Permission(t, a, path)
    }

    /// What changing things on the page needs.
    fn write(self, action: Action) -> Access {
        let (_, _, path) = self.read();
        Access::Permission(T::Admin, action, path)
    }
}

/// Whether `p` may open the console's overview (the chat page links to it then).
pub(crate) async fn may_open(st: &AppState, p: &Principal) -> bool {
    let (t, a, path) = Section::Overview.read();
    st.rbac().await.check(&Subject::from(p), a, &Resource::new(t, path)).allowed
}

/// The console's routes (merged with the web UI's).
pub(crate) fn routes(state: &AppState) -> Routes {
    use Action::{Delete, Write};
    use Section as S;
    Routes::new(state, "")
        .errors(forbidden_page)
        .page(S::Overview.path(), S::Overview.access(), view_at::<0>)
        .page(S::Providers.path(), S::Providers.access(), view_at::<1>)
        .get("/admin/providers/live", S::Providers.access(), providers_live)
        .page_post("/admin/providers/{name}/probe", S::Providers.write(Write), probe)
        .page(S::Models.path(), S::Models.access(), view_at::<2>)
        .page_post("/admin/prices", S::Models.write(Write), add_price)
        .page_post("/admin/prices/{id}/delete", S::Models.write(Delete), delete_price)
        .page(S::Keys.path(), S::Keys.access(), view_at::<3>)
        .page_post("/admin/keys", S::Keys.write(Write), create_key)
        .page_post("/admin/keys/{id}/rotate", S::Keys.write(Write), rotate_key)
        .page_post("/admin/keys/{id}/revoke", S::Keys.write(Delete), revoke_key)
        .page(S::Users.path(), S::Users.access(), view_at::<4>)
        .page_post("/admin/grants", S::Users.write(Write), grant)
        .page_post("/admin/grants/{id}/revoke", S::Users.write(Delete), revoke_grant)
        .page(S::Teams.path(), S::Teams.access(), view_at::<5>)
        .page_post("/admin/groups", S::Teams.write(Write), create_group)
        .page_post("/admin/groups/{id}/delete", S::Teams.write(Delete), delete_group)
        .page_post("/admin/groups/{id}/members", S::Teams.write(Write), add_member)
        .page_post("/admin/groups/{id}/members/{user_id}/remove", S::Teams.write(Delete), remove_member)
        .page(S::Limits.path(), S::Limits.access(), view_at::<6>)
        .page_post("/admin/limits", S::Limits.write(Write), set_limit)
        .page_post("/admin/limits/{scope}/{id}/delete", S::Limits.write(Delete), delete_limit)
        .page_post("/admin/budgets", S::Limits.write(Write), create_budget)
        .page_post("/admin/budgets/{id}", S::Limits.write(Write), update_budget)
        .page_post("/admin/budgets/{id}/delete", S::Limits.write(Delete), delete_budget)
        .page(S::Usage.path(), S::Usage.access(), view_at::<7>)
        .page(S::Audit.path(), S::Audit.access(), view_at::<8>)
        .page(S::Guardrails.path(), S::Guardrails.access(), view_at::<9>)
        .page_post("/admin/guardrails", S::Guardrails.write(Write), bind_rules)
        .page_post("/admin/guardrails/{scope}/{id}/unbind", S::Guardrails.write(Delete), unbind_rules)
}

/// A refusal (403, or a 400 on a malformed path) as a page of its own.
fn forbidden_page(_: &HeaderMap, e: ApiError) -> Response {
    html(e.status, views::refused(e.status, &e.message))
}

/// The query of every page: what a form just did, and the page's own filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    /// The code of what was just done (shown as a notice when known).
    #[serde(default)]
    done: Option<String>,
    /// Usage: the period, in days (1, 7, 30 or 90).
    #[serde(default)]
    days: Option<u32>,
    /// Usage: the tag key to group by.
    #[serde(default)]
    tag: Option<String>,
    /// Usage: only this user's (an id).
    #[serde(default)]
    user: Option<String>,
    /// Audit: only actions starting with this.
    #[serde(default)]
    action: Option<String>,
    /// Users and keys: only users whose email contains this.
    #[serde(default)]
    q: Option<String>,
}

/// The notice of a `done` code (unknown codes show nothing: the text is never the caller's).
fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "probe" => "Probed.",
        "price.add" => "Price recorded.",
        "price.delete" => "Price deleted.",
        "key.revoke" => "Key revoked: it stopped working on every instance.",
        "grant.create" => "Role granted.",
        "grant.revoke" => "Role revoked.",
        "group.create" => "Created.",
        "group.delete" => "Deleted.",
        "member.add" => "Member saved.",
        "member.remove" => "Member removed.",
        "limit.set" => "Rate limit saved.",
        "limit.delete" => "Rate limit removed: the defaults apply.",
        "budget.create" => "Budget created.",
        "budget.update" => "Budget changed: it applies to the next request.",
        "budget.delete" => "Budget deleted.",
        "guardrails.bind" => "Guardrails bound.",
        "guardrails.unbind" => "Guardrails unbound.",
        _ => return None,
    })
}

/// The page of `Section::ALL[I]`.
async fn view_at<const I: usize>(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let section = Section::ALL[I];
    let Some((p, s)) = signed_in(&st, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let notice = q.done.as_deref().and_then(done_message).map(|m| Notice::Ok(m.to_string()));
    render(&st, &p, &s, section, &q, StatusCode::OK, notice).await
}

/// The page of `section` with `notice` above it.
async fn render(
    st: &AppState,
    p: &Principal,
    s: &WebSession,
    section: Section,
    q: &PageQuery,
    status: StatusCode,
    notice: Option<Notice>,
) -> Response {
    let body = match section {
        Section::Overview => views::overview(st).await,
        Section::Providers => views::providers(st, &s.csrf_token).await,
        Section::Models => views::models(st, &s.csrf_token).await,
        Section::Keys => views::keys(st, &s.csrf_token, q).await,
        Section::Users => views::users(st, &s.csrf_token, q).await,
        Section::Teams => views::teams(st, &s.csrf_token).await,
        Section::Limits => views::limits(st, &s.csrf_token).await,
        Section::Usage => views::usage(st, q).await,
        Section::Audit => views::audit(st, q).await,
        Section::Guardrails => views::guardrails(st, &s.csrf_token).await,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return html(e.status, views::refused(e.status, &e.message)),
    };
    let theme = st.storage().user_settings(&p.user_id).await.ok().and_then(|s| s.theme).unwrap_or("dark".into());
    let rbac = st.rbac().await;
    let who = Subject::from(p);
    let nav: Vec<Section> = Section::ALL
        .into_iter()
        .filter(|x| {
            let (t, a, path) = x.read();
            rbac.check(&who, a, &Resource::new(t, path)).allowed
        })
        .collect();
    let ctx = super::pages::PageCtx { title: section.title(), theme: &theme, csrf: Some(&s.csrf_token) };
    html(status, views::page(&ctx, section, &nav, notice.as_ref(), body))
}

/// What a form did: a `done` code to redirect with, or a notice to show at once (a new key, shown
/// once and never stored).
pub(crate) enum Outcome {
    Done(&'static str),
    Show(Notice),
}

/// Runs a form's change for the signed-in caller once its CSRF token matches the session's, then
/// redirects to the page (post/redirect/get) or shows the page with the error, in the page.
async fn submit<F, Fut>(st: AppState, headers: HeaderMap, token: &str, section: Section, change: F) -> Response
where
    F: FnOnce(AppState, Principal) -> Fut,
    Fut: Future<Output = ApiResult<Outcome>>,
{
    let Some((p, s)) = signed_in(&st, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    if !session::tokens_match(token, &s.csrf_token) {
        return forbidden_page(&headers, ApiError::new(StatusCode::FORBIDDEN, "missing or wrong CSRF token"));
    }
    let q = PageQuery::default();
    match change(st.clone(), p.clone()).await {
        Ok(Outcome::Done(code)) => Redirect::to(&format!("{}?done={code}", section.path())).into_response(),
        Ok(Outcome::Show(n)) => render(&st, &p, &s, section, &q, StatusCode::OK, Some(n)).await,
        Err(e) => render(&st, &p, &s, section, &q, e.status, Some(Notice::Err(e.message))).await,
    }
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

/// A form field's text, trimmed; `None` when empty.
fn field(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// A form field as a number, with a clear message naming it.
fn number<N: std::str::FromStr>(name: &str, s: &str) -> ApiResult<N> {
    s.trim().parse().map_err(|_| ApiError::bad_request(format!("{name}: `{}` is not a number", short(s))))
}

/// An optional number field (empty: `None`).
fn optional_number<N: std::str::FromStr>(name: &str, s: &str) -> ApiResult<Option<N>> {
    field(s).map(|v| number(name, v)).transpose()
}

/// The first characters of a value echoed in an error.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The user a form names by email or id (404 when there is none).
async fn user_named(st: &AppState, who: &str) -> ApiResult<User> {
    let who = who.trim();
    let found = if who.contains('@') {
        st.storage().get_user_by_email(who).await?
    } else if who.is_empty() {
        return Err(ApiError::bad_request("name a user by email or id"));
    } else {
        st.storage().get_user(who).await?
    };
    found.ok_or_else(|| ApiError::not_found(format!("no user is `{}`", short(who))))
}

// --- Providers ---

/// The providers' health table alone, polled by the page every few seconds.
async fn providers_live(State(st): State<AppState>) -> Response {
    html(StatusCode::OK, views::provider_rows(&st))
}

/// Probes a provider now (calls it with its key; the result joins its statistics).
async fn probe(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Providers, |st, _| async move {
        providers::probe(&st, &name).await?;
        Ok(Outcome::Done("probe"))
    })
    .await
}

// --- Models and prices ---

/// Fields of the price form.
#[derive(Debug, Deserialize)]
pub(crate) struct PriceForm {
    #[serde(default)]
    csrf_token: String,
    /// `provider/model`.
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    output: String,
    #[serde(default)]
    cached_input: String,
    #[serde(default)]
    cache_write_input: String,
    /// `YYYY-MM-DD` (UTC midnight) or empty for now.
    #[serde(default)]
    effective_from: String,
}

async fn add_price(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<PriceForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Models, |st, p| async move {
        let (provider, model) =
            f.model.trim().split_once('/').ok_or_else(|| ApiError::bad_request("choose a model (provider/model)"))?;
        let price = pricing::NewPrice {
            provider: provider.to_string(),
            model: model.to_string(),
            input_per_million: number("input price", &f.input)?,
            output_per_million: number("output price", &f.output)?,
            cached_input_per_million: optional_number("cached input price", &f.cached_input)?,
            cache_write_input_per_million: optional_number("cache write price", &f.cache_write_input)?,
            effective_from: field(&f.effective_from).map(|s| usage::parse_time(s, false)).transpose()?,
        };
        pricing::record_price(&st, &p.user_id, &price).await?;
        Ok(Outcome::Done("price.add"))
    })
    .await
}

async fn delete_price(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Models, |st, p| async move {
        pricing::remove_price(&st, &p.user_id, &id).await?;
        Ok(Outcome::Done("price.delete"))
    })
    .await
}

// --- API keys ---

/// Fields of the new-key form.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    csrf_token: String,
    /// The owner's email or id.
    #[serde(default)]
    owner: String,
    #[serde(default)]
    name: String,
    /// Days until it expires (empty: never).
    #[serde(default)]
    expires_in_days: String,
}

async fn create_key(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<KeyForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Keys, |st, p| async move {
        let owner = user_named(&st, &f.owner).await?;
        let name = field(&f.name);
        if name.is_some_and(|n| n.chars().count() > 100) {
            return Err(ApiError::bad_request("name: at most 100 characters"));
        }
        let expiry = keys::CreateKey {
            name: None,
            expires_in_days: optional_number("expires in days", &f.expires_in_days)?,
            expires_at: None,
        };
        let expires_at = keys::requested_expiry(&expiry, Utc::now())?;
        let (rec, key) = keys::issue_key(&st, &p.user_id, &owner.id, name, expires_at).await?;
        Ok(Outcome::Show(Notice::Key { what: format!("New key {} for {}", rec.prefix, owner.email), key }))
    })
    .await
}

/// Fields of the rotate form.
#[derive(Debug, Deserialize)]
pub(crate) struct RotateForm {
    #[serde(default)]
    csrf_token: String,
    /// Seconds the old key keeps working.
    #[serde(default)]
    overlap_secs: String,
}

async fn rotate_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<RotateForm>,
) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Keys, |st, p| async move {
        let overlap = optional_number::<u64>("overlap", &f.overlap_secs)?
            .map_or(gaia_core::auth::DEFAULT_ROTATION_OVERLAP, Duration::from_secs);
        st.storage().get_api_key(&id).await?.ok_or_else(|| ApiError::not_found("no such key"))?;
        let r = keys::rotate_key(&st, &p.user_id, &id, overlap).await?;
        let what = format!(
            "Key {} rotated to {}; the old key works for {} s more",
            r.old.prefix,
            r.new.prefix,
            overlap.as_secs()
        );
        Ok(Outcome::Show(Notice::Key { what, key: r.key }))
    })
    .await
}

async fn revoke_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Keys, |st, p| async move {
        st.storage().get_api_key(&id).await?.ok_or_else(|| ApiError::not_found("no such key"))?;
        keys::revoke_key(&st, &p.user_id, &id).await?;
        Ok(Outcome::Done("key.revoke"))
    })
    .await
}

// --- Users, roles, teams and workspaces ---

/// Fields of the grant form.
#[derive(Debug, Deserialize)]
pub(crate) struct GrantForm {
    #[serde(default)]
    csrf_token: String,
    /// The user's email or id.
    #[serde(default)]
    user: String,
    #[serde(default)]
    role: String,
}

async fn grant(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<GrantForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Users, |st, p| async move {
        let user = user_named(&st, &f.user).await?;
        st.rbac().await.grant(Some(&p.user_id), &user.id, f.role.trim(), None, None).await?;
        Ok(Outcome::Done("grant.create"))
    })
    .await
}

async fn revoke_grant(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Users, |st, p| async move {
        st.rbac().await.revoke(Some(&p.user_id), &id).await?;
        Ok(Outcome::Done("grant.revoke"))
    })
    .await
}

/// Fields of the new team or workspace form.
#[derive(Debug, Deserialize)]
pub(crate) struct GroupForm {
    #[serde(default)]
    csrf_token: String,
    /// `team` or `workspace`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

async fn create_group(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<GroupForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Teams, |st, p| async move {
        let kind = match f.kind.as_str() {
            "team" => GroupKind::Team,
            "workspace" => GroupKind::Workspace,
            _ => return Err(ApiError::bad_request("kind: team or workspace")),
        };
        st.rbac().await.create_group(Some(&p.user_id), kind, f.name.trim()).await?;
        Ok(Outcome::Done("group.create"))
    })
    .await
}

async fn delete_group(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Teams, |st, p| async move {
        st.rbac().await.delete_group(Some(&p.user_id), &id).await?;
        Ok(Outcome::Done("group.delete"))
    })
    .await
}

async fn add_member(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<GrantForm>,
) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Teams, |st, p| async move {
        let user = user_named(&st, &f.user).await?;
        let role = field(&f.role).unwrap_or("kb_reader");
        st.rbac().await.add_member(Some(&p.user_id), &id, &user.id, role).await?;
        Ok(Outcome::Done("member.add"))
    })
    .await
}

async fn remove_member(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, user_id)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Teams, |st, p| async move {
        st.rbac().await.remove_member(Some(&p.user_id), &id, &user_id).await?;
        Ok(Outcome::Done("member.remove"))
    })
    .await
}

// --- Limits and budgets ---

/// Fields of the rate-limit form.
#[derive(Debug, Deserialize)]
pub(crate) struct LimitForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    scope: String,
    /// The user (email or id), key, team or end-user subject.
    #[serde(default)]
    subject: String,
    #[serde(default)]
    requests_per_minute: String,
    #[serde(default)]
    tokens_per_minute: String,
}

/// The subject id of a limit or budget form: users may be named by email.
async fn subject_of(st: &AppState, scope: LimitScope, subject: &str) -> ApiResult<String> {
    let subject = subject.trim();
    if scope == LimitScope::User {
        return Ok(user_named(st, subject).await?.id);
    }
    Ok(subject.to_string())
}

async fn set_limit(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<LimitForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Limits, |st, p| async move {
        let scope: LimitScope = f.scope.parse()?;
        let id = subject_of(&st, scope, &f.subject).await?;
        let set = quotas::SetLimit {
            requests_per_minute: optional_number("requests per minute", &f.requests_per_minute)?,
            tokens_per_minute: optional_number("tokens per minute", &f.tokens_per_minute)?,
        };
        quotas::apply_limit(&st, &p.user_id, scope, &id, &set).await?;
        Ok(Outcome::Done("limit.set"))
    })
    .await
}

async fn delete_limit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((scope, id)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Limits, |st, p| async move {
        quotas::remove_limit(&st, &p.user_id, scope.parse()?, &id).await?;
        Ok(Outcome::Done("limit.delete"))
    })
    .await
}

/// Fields of the budget forms.
#[derive(Debug, Deserialize)]
pub(crate) struct BudgetForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    limit_usd: String,
    /// A checkbox: present (any value) for a hard budget.
    #[serde(default)]
    hard: Option<String>,
}

async fn create_budget(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<BudgetForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Limits, |st, p| async move {
        let scope: LimitScope = f.scope.parse()?;
        let b = NewBudget {
            scope,
            subject_id: subject_of(&st, scope, &f.subject).await?,
            period: f.period.parse::<BudgetPeriod>()?,
            limit_usd: number("limit", &f.limit_usd)?,
            hard: f.hard.is_some(),
        };
        quotas::add_budget(&st, &p.user_id, &b).await?;
        Ok(Outcome::Done("budget.create"))
    })
    .await
}

async fn update_budget(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<BudgetForm>,
) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Limits, |st, p| async move {
        let change =
            quotas::BudgetChange { limit_usd: Some(number("limit", &f.limit_usd)?), hard: Some(f.hard.is_some()) };
        quotas::change_budget(&st, &p.user_id, &id, &change).await?;
        Ok(Outcome::Done("budget.update"))
    })
    .await
}

async fn delete_budget(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Limits, |st, p| async move {
        quotas::remove_budget(&st, &p.user_id, &id).await?;
        Ok(Outcome::Done("budget.delete"))
    })
    .await
}

// --- Guardrails ---

/// Fields of the bind form.
#[derive(Debug, Deserialize)]
pub(crate) struct BindForm {
    #[serde(default)]
    csrf_token: String,
    /// `key` or `persona`.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    subject: String,
    /// Rule names, separated by commas or spaces.
    #[serde(default)]
    rules: String,
}

async fn bind_rules(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<BindForm>) -> Response {
    submit(st, headers, &f.csrf_token.clone(), Section::Guardrails, |st, p| async move {
        let rules: Vec<String> =
            f.rules.split([',', ' ']).map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect();
        guardrails::bind_rules(&st, &p.user_id, f.scope.trim(), f.subject.trim(), &rules).await?;
        Ok(Outcome::Done("guardrails.bind"))
    })
    .await
}

async fn unbind_rules(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((scope, id)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    submit(st, headers, &f.csrf_token, Section::Guardrails, |st, p| async move {
        guardrails::unbind_rules(&st, &p.user_id, &scope, &id).await?;
        Ok(Outcome::Done("guardrails.unbind"))
    })
    .await
}
