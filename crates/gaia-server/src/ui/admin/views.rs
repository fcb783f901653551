//! The console's HTML: the frame with its navigation, and each page's body built from the same
//! storage, registry and policy reads as the REST API (maud: every value escaped).

use super::{PageQuery, Section};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::ui::chart::{self, Bar, Unit};
use crate::ui::pages::{layout, PageCtx};
use axum::http::StatusCode;
use chrono::{DateTime, Duration as Days, Utc};
use gaia_core::storage::{LimitScope, UsageFilter, UsageGroup, UsageGroupBy};
use gaia_rbac::GroupKind;
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::collections::{BTreeMap, HashMap};

/// What a page shows above its body after a form.
pub(crate) enum Notice {
    /// It worked.
    Ok(String),
    /// It did not, and why.
    Err(String),
    /// A new API key: shown this once, never stored.
    Key {
        /// What was done.
        what: String,
        /// The key.
        key: String,
    },
}

/// The console's frame around a page's body.
pub(crate) fn page(
    ctx: &PageCtx<'_>,
    current: Section,
    nav: &[Section],
    notice: Option<&Notice>,
    body: Markup,
) -> Markup {
    layout(
        ctx,
        html! {
            div .admin {
                nav .admin-nav aria-label="Admin console" {
                    div .brand { "Gaia admin" }
                    @for s in nav {
                        a href=(s.path()) aria-current=[(*s == current).then_some("page")] { (s.title()) }
                    }
                    a .back href="/chat" { "← Back to chat" }
                }
                main .admin-main {
                    h1 { (current.title()) }
                    @match notice {
                        Some(Notice::Ok(m)) => p .notice role="status" { (m) },
                        Some(Notice::Err(m)) => p .error role="alert" { (m) },
                        Some(Notice::Key { what, key }) => div .notice .new-key role="status" {
                            p { (what) ". Copy the key now: it is not shown again." }
                            code #new-key { (key) }
                        },
                        None => {},
                    }
                    (body)
                }
            }
        },
    )
}

/// A page for a refusal (403) or an error.
pub(crate) fn refused(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        &PageCtx { title, theme: "dark", csrf: None },
        html! {
            main .auth {
                h1 { (status.as_u16()) " " (title) }
                p .error role="alert" { (message) }
                p { a href="/chat" { "Back to chat" } }
            }
        },
    )
}

fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(token); }
}

/// A one-button form posting to `action` (asking first when `confirm` is given).
fn button(action: &str, token: &str, label: &str, confirm: Option<&str>) -> Markup {
    html! {
        form .inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(token))
            button type="submit" .danger[confirm.is_some()] { (label) }
        }
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn usd(v: f64) -> String {
    Unit::Usd.format(v)
}

/// Users' emails by id (the first thousand users; others show their id).
async fn emails(st: &AppState) -> ApiResult<HashMap<String, String>> {
    let users = st.storage().list_users(None, 1_000, 0).await?;
    Ok(users.into_iter().map(|u| (u.id, u.email)).collect())
}

fn name_of<'a>(names: &'a HashMap<String, String>, id: &'a str) -> &'a str {
    names.get(id).map(String::as_str).unwrap_or(id)
}

// --- Overview ---

pub(crate) async fn overview(st: &AppState) -> ApiResult<Markup> {
    let storage = st.storage();
    st.usage().flush().await;
    let users = storage.count_users().await?;
    let keys = storage.list_api_keys(None).await?;
    let now = Utc::now();
    let active = keys.iter().filter(|k| !k.is_revoked() && k.expires_at.is_none_or(|e| e > now)).count();
    let reg = st.providers();
    let providers: Vec<String> = reg.providers().iter().map(|p| p.name().to_string()).collect();
    let up = providers.iter().filter(|n| reg.stats(n).snapshot().up).count();
    let today = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let f = UsageFilter { since: Some(today), ..Default::default() };
    let day = storage.usage_summary(&f).await?.totals;
    let budgets = storage.list_budgets(None).await?.len();
    let since = now - Days::hours(24);
    let trips =
        storage.audit_records(Some("guardrail.trip"), 1_000).await?.iter().filter(|r| r.created_at >= since).count();
    let card = |label: &str, value: String, href: &str| {
        html! { a .card href=(href) { span .figure { (value) } span .label { (label) } } }
    };
    Ok(html! {
        div .cards {
            (card("users", users.to_string(), "/admin/users"))
            (card("active API keys", active.to_string(), "/admin/keys"))
            (card("providers up", format!("{up} / {}", providers.len()), "/admin/providers"))
            (card("requests today", day.requests.to_string(), "/admin/usage?days=1"))
            (card("spent today", usd(day.cost_usd), "/admin/usage?days=1"))
            (card("budgets", budgets.to_string(), "/admin/limits"))
            (card("guardrail trips (24 h)", trips.to_string(), "/admin/guardrails"))
        }
    })
}

// --- Providers ---

pub(crate) async fn providers(st: &AppState, token: &str) -> ApiResult<Markup> {
    let reg = st.providers();
    let refused = st.applied_provider_changes().refused();
    Ok(html! {
        p .muted { "Health from real traffic and probes, refreshed every 5 seconds. A probe calls the provider with its key." }
        div #provider-health hx-get="/admin/providers/live" hx-trigger="every 5s" hx-swap="innerHTML" {
            (provider_rows(st))
        }
        h2 { "Probe" }
        div .buttons {
            @for p in reg.providers() {
                (button(&format!("/admin/providers/{}/probe", p.name()), token, &format!("Probe {}", p.name()), None))
            }
        }
        @if !refused.is_empty() {
            h2 { "Stored changes this instance refused" }
            table { thead { tr { th { "Provider" } th { "Why" } } }
                tbody { @for r in &refused { tr { td { (r.name) } td { (r.reason) } } } } }
        }
    })
}

/// The providers' health table (the page's live part).
pub(crate) fn provider_rows(st: &AppState) -> Markup {
    let reg = st.providers();
    let ms = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or("–".into());
    html! {
        table #providers {
            thead { tr {
                th { "Provider" } th { "Kind" } th { "State" } th { "Circuit" } th { "Error rate" }
                th { "Latency p50 / p95" } th { "First token p50 / p95" } th { "Requests" } th { "Errors" }
                th { "Last probe" } th { "Last error" }
            } }
            tbody {
                @for p in reg.providers() {
                    @let name = p.name();
                    @let h = reg.stats(name).snapshot();
                    @let discovery = crate::routes::health::discovery_error(reg, name);
                    tr data-provider=(name) {
                        td { (name) }
                        td { (reg.entry(name).map(|e| format!("{:?}", e.kind).to_lowercase()).unwrap_or("–".into())) }
                        td { span .state .up[h.up] .down[!h.up] { @if h.up { "up" } @else { "down" } } }
                        td { (format!("{:?}", h.circuit).to_lowercase()) }
                        td { (format!("{:.1} %", h.error_rate * 100.0)) }
                        td { (ms(h.latency_p50_ms)) " / " (ms(h.latency_p95_ms)) }
                        td { (ms(h.ttft_p50_ms)) " / " (ms(h.ttft_p95_ms)) }
                        td { (h.total_requests) }
                        td { (h.total_errors) }
                        td { @match (h.last_probe_age_secs, h.last_probe_ok) {
                            (Some(age), Some(ok)) => { (if ok { "ok" } else { "failed" }) ", " (age) " s ago" },
                            _ => "never",
                        } }
                        td .detail {
                            (h.last_error.as_deref().map(crate::observe::redact).unwrap_or_default())
                            @if let Some(d) = discovery { br; "Model discovery: " (d) }
                        }
                    }
                }
            }
        }
    }
}

// --- Models and prices ---

pub(crate) async fn models(st: &AppState, token: &str) -> ApiResult<Markup> {
    let now = Utc::now();
    let mut models = st.providers().list_models().await;
    models.sort_by(|a, b| (&a.provider, &a.id).cmp(&(&b.provider, &b.id)));
    models.dedup_by(|a, b| a.provider == b.provider && a.id == b.id);
    let history = st.storage().list_prices().await?;
    let per_m = |v: f64| format!("${v:.2}");
    Ok(html! {
        p .muted { "US dollars per million tokens. Recorded prices take effect at their date; without one, the configured price applies." }
        table #models {
            thead { tr { th { "Provider" } th { "Model" } th { "Input" } th { "Cached input" } th { "Cache write" } th { "Output" } th { "Next change" } } }
            tbody {
                @for m in &models {
                    @let price = st.providers().price_at(&m.provider, &m.id, now);
                    @let next = st.quotas().prices().history(&m.provider, &m.id).iter().find(|e| e.effective_from > now).cloned();
                    tr {
                        td { (m.provider) } td { (m.id) }
                        @match price {
                            Some(e) => {
                                td { (per_m(e.price.input)) }
                                td { (e.price.cached_input.map(per_m).unwrap_or("as input".into())) }
                                td { (e.price.cache_write_input.map(per_m).unwrap_or("as input".into())) }
                                td { (per_m(e.price.output)) }
                            },
                            None => { td colspan="4" .muted { "no price: calls cost nothing" } },
                        }
                        td { @if let Some(e) = next { (per_m(e.price.input)) " / " (per_m(e.price.output)) " from " (time(&e.effective_from)) } }
                    }
                }
            }
        }
        h2 { "Record a price" }
        form #price-form .grid method="post" action="/admin/prices" {
            (csrf(token))
            label { "Model" select name="model" required {
                @for m in &models { option value={ (m.provider) "/" (m.id) } { (m.provider) "/" (m.id) } }
            } }
            label { "Input per million" input name="input" inputmode="decimal" required; }
            label { "Output per million" input name="output" inputmode="decimal" required; }
            label { "Cached input per million (optional)" input name="cached_input" inputmode="decimal"; }
            label { "Cache write per million (optional)" input name="cache_write_input" inputmode="decimal"; }
            label { "Effective from (YYYY-MM-DD, empty: now)" input name="effective_from" type="date"; }
            button type="submit" { "Record price" }
        }
        h2 { "Recorded prices" }
        table #price-history {
            thead { tr { th { "Provider" } th { "Model" } th { "Input" } th { "Cached" } th { "Cache write" } th { "Output" } th { "From" } th {} } }
            tbody {
                @for e in history.iter().rev().take(500) {
                    tr {
                        td { (e.provider) } td { (e.model) } td { (per_m(e.price.input)) }
                        td { (e.price.cached_input.map(per_m).unwrap_or_default()) }
                        td { (e.price.cache_write_input.map(per_m).unwrap_or_default()) } td { (per_m(e.price.output)) }
                        td { (time(&e.effective_from)) }
                        td { (button(&format!("/admin/prices/{}/delete", e.id), token, "Delete", Some("Delete this price?"))) }
                    }
                }
            }
        }
    })
}

// --- API keys ---

/// The most keys the page lists.
const KEYS_SHOWN: usize = 500;

pub(crate) async fn keys(st: &AppState, token: &str, q: &PageQuery) -> ApiResult<Markup> {
    let names = emails(st).await?;
    let filter = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
    let mut keys = st.storage().list_api_keys(None).await?;
    keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    let now = Utc::now();
    let shown: Vec<_> = keys
        .iter()
        .filter(|k| filter.as_deref().is_none_or(|f| name_of(&names, &k.user_id).to_lowercase().contains(f)))
        .take(KEYS_SHOWN)
        .collect();
    Ok(html! {
        form .search method="get" action="/admin/keys" {
            input type="search" name="q" placeholder="Owner's email contains" value=(filter.as_deref().unwrap_or(""));
            button type="submit" { "Filter" }
        }
        table #keys {
            thead { tr { th { "Owner" } th { "Name" } th { "Prefix" } th { "Created" } th { "Last used" } th { "Expires" } th { "State" } th {} } }
            tbody {
                @for k in &shown {
                    @let state = if k.is_revoked() { "revoked" } else if k.expires_at.is_some_and(|e| e <= now) { "expired" } else if k.rotated_to.is_some() { "rotating" } else { "active" };
                    tr data-key=(k.id) {
                        td { (name_of(&names, &k.user_id)) }
                        td { (k.name.as_deref().unwrap_or("")) }
                        td { code { (k.prefix) } }
                        td { (time(&k.created_at)) }
                        td { (k.last_used_at.as_ref().map(time).unwrap_or("never".into())) }
                        td { (k.expires_at.as_ref().map(time).unwrap_or("never".into())) }
                        td { (state) }
                        td .actions {
                            @if state == "active" {
                                form .inline method="post" action={ "/admin/keys/" (k.id) "/rotate" } {
                                    (csrf(token))
                                    select name="overlap_secs" aria-label="The old key keeps working for" {
                                        option value="0" { "old key stops now" }
                                        option value="3600" { "old key works 1 hour" }
                                        option value="86400" selected { "old key works 1 day" }
                                    }
                                    button type="submit" { "Rotate" }
                                }
                            }
                            @if state == "active" || state == "rotating" {
                                (button(&format!("/admin/keys/{}/revoke", k.id), token, "Revoke", Some("Revoke this key? It stops working at once.")))
                            }
                        }
                    }
                }
            }
        }
        @if keys.len() > shown.len() { p .muted { "Showing " (shown.len()) " of " (keys.len()) " keys." } }
        h2 { "Create a key" }
        form #key-form .grid method="post" action="/admin/keys" {
            (csrf(token))
            label { "Owner (email or user id)" input name="owner" required maxlength="320"; }
            label { "Name" input name="name" maxlength="100"; }
            label { "Expires in days (empty: never)" input name="expires_in_days" inputmode="numeric"; }
            button type="submit" { "Create key" }
        }
    })
}

// --- Users and roles ---

pub(crate) async fn users(st: &AppState, token: &str, q: &PageQuery) -> ApiResult<Markup> {
    let users = st.storage().list_users(q.q.as_deref(), 200, 0).await?;
    let rbac = st.rbac().await;
    let mut grants: HashMap<String, Vec<gaia_rbac::Grant>> = HashMap::new();
    for g in rbac.grants(None).await? {
        grants.entry(g.user_id.clone()).or_default().push(g);
    }
    let roles = rbac.roles();
    let mut groups: HashMap<String, String> = HashMap::new();
    for kind in [GroupKind::Team, GroupKind::Workspace] {
        groups.extend(rbac.groups(kind).await?.into_iter().map(|g| (g.id, g.name)));
    }
    Ok(html! {
        form .search method="get" action="/admin/users" {
            input type="search" name="q" placeholder="Email contains" value=(q.q.as_deref().unwrap_or(""));
            button type="submit" { "Search" }
        }
        table #users {
            thead { tr { th { "Email" } th { "Name" } th { "Id" } th { "Created" } th { "Roles" } th {} } }
            tbody {
                @for u in &users {
                    tr data-user=(u.id) {
                        td { (u.email) @if u.is_admin { " " span .tag { "administrator" } } }
                        td { (u.display_name.as_deref().unwrap_or("")) }
                        td { code { (u.id) } }
                        td { (time(&u.created_at)) }
                        td {
                            @for g in grants.get(&u.id).map(Vec::as_slice).unwrap_or_default() {
                                span .grant {
                                    (g.role)
                                    @if let Some(group) = &g.group_id { " in " (groups.get(group).map(String::as_str).unwrap_or(group)) }
                                    @if let Some(e) = &g.expires_at { " until " (time(e)) }
                                    (button(&format!("/admin/grants/{}/revoke", g.id), token, "×", Some("Revoke this role?")))
                                }
                            }
                        }
                        td { a href={ "/admin/usage?user=" (u.id) } { "usage" } }
                    }
                }
            }
        }
        @if users.len() == 200 { p .muted { "The first 200 users; search to find others." } }
        h2 { "Grant a role" }
        form #grant-form .grid method="post" action="/admin/grants" {
            (csrf(token))
            label { "User (email or id)" input name="user" required maxlength="320"; }
            label { "Role" select name="role" {
                @for r in &roles { option value=(r.name) title=(r.description) { (r.name) } }
            } }
            button type="submit" { "Grant" }
        }
        h2 { "Roles" }
        table #roles {
            thead { tr { th { "Role" } th { "Scope" } th { "What it allows" } } }
            tbody { @for r in &roles { tr { td { (r.name) } td { (r.scope) } td { (r.description) } } } }
        }
    })
}

// --- Teams and workspaces ---

pub(crate) async fn teams(st: &AppState, token: &str) -> ApiResult<Markup> {
    let names = emails(st).await?;
    let rbac = st.rbac().await;
    let member_roles: Vec<String> =
        rbac.roles().into_iter().filter(|r| r.scope != gaia_rbac::Scope::System).map(|r| r.name).collect();
    let mut sections = Vec::new();
    for kind in [GroupKind::Team, GroupKind::Workspace] {
        let mut groups = Vec::new();
        for g in rbac.groups(kind).await? {
            let members = rbac.members(&g.id).await?;
            groups.push((g, members));
        }
        sections.push((kind, groups));
    }
    Ok(html! {
        @for (kind, groups) in &sections {
            h2 { @if *kind == GroupKind::Team { "Teams" } @else { "Workspaces" } }
            @if groups.is_empty() { p .muted { "None yet." } }
            @for (g, members) in groups {
                section .group data-group=(g.id) {
                    h3 { (g.name) " " span .muted { code { (g.id) } } }
                    ul .members {
                        @for m in members {
                            li {
                                (name_of(&names, &m.user_id)) " · " (m.role) " "
                                (button(&format!("/admin/groups/{}/members/{}/remove", g.id, m.user_id), token, "Remove", Some("Remove this member?")))
                            }
                        }
                    }
                    form .inline method="post" action={ "/admin/groups/" (g.id) "/members" } {
                        (csrf(token))
                        input name="user" placeholder="email or user id" required maxlength="320" aria-label="Member";
                        select name="role" aria-label="Role" { @for r in &member_roles { option value=(r) { (r) } } }
                        button type="submit" { "Add member" }
                    }
                    (button(&format!("/admin/groups/{}/delete", g.id), token, "Delete", Some("Delete it and its members' roles in it?")))
                }
            }
        }
        h2 { "Create" }
        form #group-form .grid method="post" action="/admin/groups" {
            (csrf(token))
            label { "Kind" select name="kind" { option value="team" { "team" } option value="workspace" { "workspace" } } }
            label { "Name" input name="name" required maxlength="200"; }
            button type="submit" { "Create" }
        }
    })
}

// --- Limits and budgets ---

const SCOPES: [LimitScope; 5] =
    [LimitScope::User, LimitScope::Key, LimitScope::Team, LimitScope::EndUser, LimitScope::KeyEndUsers];

pub(crate) async fn limits(st: &AppState, token: &str) -> ApiResult<Markup> {
    let names = emails(st).await?;
    let d = &st.config().limits;
    let set = st.storage().list_rate_limits().await?;
    let budgets = crate::routes::quotas::all_budgets(st).await?;
    let per_min = |v: u64| if v == 0 { "unlimited".to_string() } else { v.to_string() };
    let opt = |v: Option<u64>| v.map(per_min).unwrap_or("default".into());
    let subject = |scope: LimitScope, id: &str| match scope {
        LimitScope::User => name_of(&names, id).to_string(),
        _ => id.to_string(),
    };
    Ok(html! {
        h2 { "Rate limits" }
        table #limit-defaults {
            thead { tr { th { "Default per minute" } th { "Requests" } th { "Tokens" } } }
            tbody {
                tr { td { "each API key" } td { (per_min(d.key_requests_per_minute)) } td { (per_min(d.key_tokens_per_minute)) } }
                tr { td { "each user" } td { (per_min(d.user_requests_per_minute)) } td { (per_min(d.user_tokens_per_minute)) } }
                tr { td { "each end user (player)" } td { (per_min(d.end_user_requests_per_minute)) } td { (per_min(d.end_user_tokens_per_minute)) } }
            }
        }
        table #limits {
            thead { tr { th { "Scope" } th { "Subject" } th { "Requests / min" } th { "Tokens / min" } th {} } }
            tbody {
                @if set.is_empty() { tr { td colspan="5" .muted { "No limit is set for a particular user, key, team or player." } } }
                @for l in &set {
                    tr {
                        td { (l.scope) } td { (subject(l.scope, &l.subject_id)) }
                        td { (opt(l.requests_per_minute)) } td { (opt(l.tokens_per_minute)) }
                        td { (button(&format!("/admin/limits/{}/{}/delete", l.scope, l.subject_id), token, "Remove", Some("Remove this limit? The defaults apply."))) }
                    }
                }
            }
        }
        form #limit-form .grid method="post" action="/admin/limits" {
            (csrf(token))
            label { "Scope" select name="scope" { @for s in SCOPES { option value=(s) { (s) } } } }
            label { "Subject (user email or id, key id, team id, or user:player)" input name="subject" required maxlength="600"; }
            label { "Requests per minute (empty: default, 0: unlimited)" input name="requests_per_minute" inputmode="numeric"; }
            label { "Tokens per minute (empty: default, 0: unlimited)" input name="tokens_per_minute" inputmode="numeric"; }
            button type="submit" { "Set limit" }
        }
        h2 { "Budgets" }
        table #budgets {
            thead { tr { th { "Scope" } th { "Subject" } th { "Period" } th { "Spent" } th { "Limit" } th { "Resets" } th {} } }
            tbody {
                @if budgets.is_empty() { tr { td colspan="7" .muted { "No budget yet." } } }
                @for b in &budgets {
                    @let x = &b.budget;
                    tr data-budget=(x.id) {
                        td { (x.scope) } td { (subject(x.scope, &x.subject_id)) } td { (x.period.as_str()) }
                        td {
                            meter min="0" max=(x.limit_usd) value=(b.spent_usd.min(x.limit_usd)) high=(x.limit_usd * 0.8) optimum="0" {}
                            " " (usd(b.spent_usd)) " of " (usd(x.limit_usd))
                        }
                        td {
                            form .inline .budget-edit method="post" action={ "/admin/budgets/" (x.id) } {
                                (csrf(token))
                                input name="limit_usd" value=(x.limit_usd) inputmode="decimal" size="8" aria-label="Limit in US dollars";
                                label .check { input type="checkbox" name="hard" value="1" checked[x.hard]; " hard" }
                                button type="submit" { "Save" }
                            }
                        }
                        td { (time(&b.resets_at)) }
                        td { (button(&format!("/admin/budgets/{}/delete", x.id), token, "Delete", Some("Delete this budget?"))) }
                    }
                }
            }
        }
        form #budget-form .grid method="post" action="/admin/budgets" {
            (csrf(token))
            label { "Scope" select name="scope" { @for s in SCOPES { option value=(s) { (s) } } } }
            label { "Subject (user email or id, key id, team id, or user:player)" input name="subject" required maxlength="600"; }
            label { "Period" select name="period" { option value="daily" { "daily" } option value="monthly" { "monthly" } } }
            label { "Limit in US dollars" input name="limit_usd" inputmode="decimal" required; }
            label .check { input type="checkbox" name="hard" value="1" checked; " hard (refuse requests once reached)" }
            button type="submit" { "Create budget" }
        }
    })
}

// --- Usage ---

/// The periods the usage page offers, in days.
const PERIODS: [u32; 4] = [1, 7, 30, 90];

fn bars(
    groups: &[UsageGroup],
    names: Option<&HashMap<String, String>>,
    value: impl Fn(&UsageGroup) -> f64,
) -> Vec<Bar> {
    groups
        .iter()
        .map(|g| Bar { label: names.map_or(g.key.clone(), |n| name_of(n, &g.key).to_string()), value: value(g) })
        .collect()
}

/// A player's row over everyone's usage (`<user id>:<player>`) as `<player> (<caller's email>)`.
fn player_label(names: &HashMap<String, String>, key: &str) -> String {
    let owner = key.match_indices(':').map(|(i, _)| i).find(|i| names.contains_key(&key[..*i]));
    match owner {
        Some(i) => format!("{} ({})", &key[i + 1..], names[&key[..i]]),
        None => key.to_string(),
    }
}

fn cost(g: &UsageGroup) -> f64 {
    g.totals.cost_usd
}

fn requests(g: &UsageGroup) -> f64 {
    g.totals.requests as f64
}

/// A chart of the cost per group, its table, and its CSV.
fn grouped(title: &str, id: &str, groups: &[UsageGroup], names: Option<&HashMap<String, String>>, csv: &str) -> Markup {
    html! {
        section .usage-group #(id) {
            h2 { (title) " " a .csv href=(csv) { "CSV" } }
            (chart::rows(title, &chart::top(bars(groups, names, cost)), Unit::Usd))
            details {
                summary { "Figures" }
                table {
                    thead { tr { th { "" } th { "Requests" } th { "Errors" } th { "Input tokens" } th { "Cached" } th { "Output tokens" } th { "Cost" } } }
                    tbody {
                        @for g in groups.iter().take(200) {
                            tr {
                                td { (names.map_or(g.key.as_str(), |n| name_of(n, &g.key))) }
                                td { (g.totals.requests) } td { (g.totals.errors) } td { (g.totals.input_tokens) }
                                td { (g.totals.cached_input_tokens) } td { (g.totals.output_tokens) } td { (usd(g.totals.cost_usd)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn usage(st: &AppState, q: &PageQuery) -> ApiResult<Markup> {
    let days = q.days.filter(|d| PERIODS.contains(d)).unwrap_or(30);
    let now = Utc::now();
    let first = (now - Days::days(i64::from(days) - 1)).date_naive();
    let since = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let storage = st.storage();
    st.usage().flush().await;
    let user = q.user.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let f = UsageFilter { user_id: user.map(str::to_string), since: Some(since), until: None, end_user: None };
    let summary = storage.usage_summary(&f).await?;
    let by_user = storage.usage_grouped(&f, UsageGroupBy::User).await?;
    let by_end_user = storage.usage_grouped(&f, UsageGroupBy::EndUser).await?;
    let tag_keys = storage.usage_tag_keys().await?;
    let tag = q.tag.as_deref().filter(|t| tag_keys.iter().any(|k| k == t)).or(tag_keys.first().map(String::as_str));
    let by_tag = match tag {
        Some(t) => storage.usage_grouped_by_tag(&f, t).await?,
        None => Vec::new(),
    };
    let names = emails(st).await?;
    let by_end_user: Vec<UsageGroup> = if user.is_some() {
        by_end_user
    } else {
        by_end_user.into_iter().map(|g| UsageGroup { key: player_label(&names, &g.key), totals: g.totals }).collect()
    };
    // Every day of the period, with nothing spent on days without calls.
    let spent: BTreeMap<&str, &UsageGroup> = summary.by_day.iter().map(|g| (g.key.as_str(), g)).collect();
    let mut daily_cost = Vec::new();
    let mut daily_requests = Vec::new();
    for d in first.iter_days().take_while(|d| *d <= now.date_naive()) {
        let key = d.format("%Y-%m-%d").to_string();
        let g = spent.get(key.as_str());
        daily_cost.push(Bar { label: key.clone(), value: g.map_or(0.0, |g| cost(g)) });
        daily_requests.push(Bar { label: key, value: g.map_or(0.0, |g| requests(g)) });
    }
    let t = &summary.totals;
    let since_day = first.format("%Y-%m-%d").to_string();
    let who = user.unwrap_or("*");
    let csv = |by: &str| {
        let by = utf8_percent_encode(by, NON_ALPHANUMERIC);
        let who = utf8_percent_encode(who, NON_ALPHANUMERIC);
        format!("/api/v1/usage/report?user_id={who}&since={since_day}&format=csv&group_by={by}")
    };
    let here = |days: u32| match user {
        Some(u) => format!("/admin/usage?days={days}&user={}", utf8_percent_encode(u, NON_ALPHANUMERIC)),
        None => format!("/admin/usage?days={days}"),
    };
    Ok(html! {
        @if let Some(u) = user { p { "Usage of " strong { (name_of(&names, u)) } ". " a href="/admin/usage" { "Everyone's" } } }
        nav .periods aria-label="Period" {
            @for d in PERIODS {
                a href=(here(d)) aria-current=[(d == days).then_some("page")] {
                    @if d == 1 { "today" } @else { "last " (d) " days" }
                }
            }
        }
        div .cards {
            div .card { span .figure { (t.requests) } span .label { "requests" } }
            div .card { span .figure { (t.errors) } span .label { "errors" } }
            div .card { span .figure { (t.input_tokens + t.output_tokens) } span .label { "tokens" } }
            div .card { span .figure { (t.cached_input_tokens) } span .label { "cached input tokens" } }
            div .card { span .figure { (usd(t.cost_usd)) } span .label { "cost" } }
        }
        section .usage-group #by-day {
            h2 { "Cost by day " a .csv href=(csv("day")) { "CSV" } }
            (chart::columns("Cost by day", &daily_cost, Unit::Usd))
            h2 { "Requests by day" }
            (chart::columns("Requests by day", &daily_requests, Unit::Count))
        }
        (grouped("Cost by model", "by-model", &summary.by_model, None, &csv("model")))
        (grouped("Cost by user", "by-user", &by_user, Some(&names), &csv("user")))
        (grouped("Cost by end user (player)", "by-end-user", &by_end_user, None, &csv("end_user")))
        section .usage-group #by-tag {
            h2 { "Cost by tag" }
            @if tag_keys.is_empty() {
                p .muted { "No call was tagged in this period (tags come from the " code { "x-gaia-tags" } " header)." }
            } @else {
                form .search method="get" action="/admin/usage" {
                    input type="hidden" name="days" value=(days);
                    @if let Some(u) = user { input type="hidden" name="user" value=(u); }
                    label { "Tag " select name="tag" {
                        @for k in &tag_keys { option value=(k) selected[Some(k.as_str()) == tag] { (k) } }
                    } }
                    button type="submit" { "Show" }
                }
                @if let Some(t) = tag {
                    (grouped(&format!("Cost by {t}"), "by-tag-chart", &by_tag, None, &csv(&format!("tag:{t}"))))
                }
            }
        }
    })
}

// --- Audit log ---

/// The action families the audit page filters on.
const FAMILIES: [&str; 10] =
    ["auth.", "key.", "grant.", "limit.", "budget.", "price.", "provider", "guardrail", "kb.", "user."];

pub(crate) async fn audit(st: &AppState, q: &PageQuery) -> ApiResult<Markup> {
    let action =
        q.action.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(|a| a.chars().take(64).collect::<String>());
    let records = st.storage().audit_records(action.as_deref(), 300).await?;
    let names = emails(st).await?;
    let access = st.rbac().await.audit_log(100).await?;
    Ok(html! {
        nav .periods aria-label="Actions" {
            a href="/admin/audit" aria-current=[action.is_none().then_some("page")] { "all" }
            @for f in FAMILIES {
                a href={ "/admin/audit?action=" (f) } aria-current=[(action.as_deref() == Some(f)).then_some("page")] { (f.trim_end_matches('.')) }
            }
        }
        table #audit {
            thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "Details" } } }
            tbody {
                @for r in &records {
                    tr {
                        td { (time(&r.created_at)) }
                        td { (r.actor_id.as_deref().map(|a| name_of(&names, a)).unwrap_or("–")) }
                        td { code { (r.action) } }
                        td { (r.target) }
                        td .detail { (r.details.to_string()) }
                    }
                }
            }
        }
        @if records.is_empty() { p .muted { "Nothing recorded." } }
        h2 { "Access-control changes" }
        table #rbac-audit {
            thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } } }
            tbody {
                @for r in &access {
                    tr {
                        td { (time(&r.created_at)) }
                        td { (r.actor_id.as_deref().map(|a| name_of(&names, a)).unwrap_or("–")) }
                        td { code { (r.action) } }
                        td { (r.target) }
                    }
                }
            }
        }
    })
}

// --- Guardrails ---

/// A text field of an audit record's details (empty when absent).
fn detail<'a>(r: &'a gaia_core::storage::AuditRecord, key: &str) -> &'a str {
    r.details.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn label_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

pub(crate) async fn guardrails(st: &AppState, token: &str) -> ApiResult<Markup> {
    let g = &st.config().guardrails;
    let bindings = st.storage().list_guardrail_bindings().await?;
    let trips = st.storage().audit_records(Some("guardrail.trip"), 500).await?;
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for t in &trips {
        let s = |k: &str| detail(t, k).to_string();
        *counts.entry((t.target.clone(), s("stage"), s("action"))).or_default() += 1;
    }
    let names = emails(st).await?;
    Ok(html! {
        h2 { "Rules" }
        @if g.rules.is_empty() {
            p .muted { "No rule is configured: add them under " code { "[guardrails]" } " in the configuration." }
        }
        table #rules {
            thead { tr { th { "Rule" } th { "Check" } th { "Stage" } th { "Action" } th { "Applies to every call" } } }
            tbody {
                @for r in &g.rules {
                    tr {
                        td { (r.name) } td { (label_of(&r.check)) } td { (label_of(&r.stage)) } td { (label_of(&r.action)) }
                        td { @if g.apply.contains(&r.name) { "yes" } }
                    }
                }
            }
        }
        h2 { "Bound to keys and personas" }
        table #bindings {
            thead { tr { th { "Scope" } th { "Id" } th { "Rules" } th { "Changed" } th {} } }
            tbody {
                @if bindings.is_empty() { tr { td colspan="5" .muted { "None: every call gets the rules that apply to every call." } } }
                @for b in &bindings {
                    tr {
                        td { (b.scope) } td { code { (b.subject_id) } } td { (b.rules.join(", ")) } td { (time(&b.updated_at)) }
                        td { (button(&format!("/admin/guardrails/{}/{}/unbind", b.scope, b.subject_id), token, "Unbind", Some("Unbind these rules?"))) }
                    }
                }
            }
        }
        form #bind-form .grid method="post" action="/admin/guardrails" {
            (csrf(token))
            label { "Scope" select name="scope" { option value="key" { "key (instead of the default rules)" } option value="persona" { "persona (added to its turns)" } } }
            label { "Key or persona id" input name="subject" required maxlength="256"; }
            label { "Rules (names, separated by commas)" input name="rules" maxlength="4000"; }
            button type="submit" { "Bind" }
        }
        h2 { "Trips" }
        table #trip-counts {
            thead { tr { th { "Rule" } th { "Stage" } th { "Action" } th { "Trips (last " (trips.len()) ")" } } }
            tbody { @for ((rule, stage, action), n) in &counts { tr { td { (rule) } td { (stage) } td { (action) } td { (n) } } } }
        }
        table #trips {
            thead { tr { th { "When" } th { "Caller" } th { "Rule" } th { "Stage" } th { "Action" } th { "Endpoint" } th { "End user" } } }
            tbody {
                @for t in trips.iter().take(100) {
                    @let s = |k: &str| detail(t, k);
                    tr {
                        td { (time(&t.created_at)) }
                        td { (t.actor_id.as_deref().map(|a| name_of(&names, a)).unwrap_or("–")) }
                        td { (t.target) } td { (s("stage")) } td { (s("action")) } td { (s("endpoint")) } td { (s("end_user")) }
                    }
                }
            }
        }
        p .muted { "Trips are also counted in " code { "/metrics" } " as " code { "gaia_guardrail_trips_total" } "." }
    })
}
