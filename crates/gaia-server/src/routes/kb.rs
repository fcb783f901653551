//! Knowledge base: `/api/v1/kb/*`. Every answer is the envelope `{status, response, metadata}`;
//! failures have `status: "error"`, the right HTTP status and `error: {kind, message}`.
//!
//! Access follows RBAC per document: reads (`search`, `read`, `list`, `context`, `backlinks`, `links`,
//! `tools`) only ever see the documents the caller may read (others are left out, and reading one is a
//! 404); `write`, `move` and `delete` need `write` / `delete` on the paths involved (a user's private
//! area `users/<id>/`, a team's `teams/<id>/` for its editors, the rest for administrators and
//! system-wide `kb_editor`s); `sync` needs `kb:admin`. `POST /api/v1/kb/webhook` is authenticated by
//! the configured webhook secret instead (GitHub's `X-Hub-Signature-256` or `X-Gaia-Webhook-Secret`).

use crate::extract::Auth;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gaia_core::auth::Principal;
use gaia_kb::semantic::MeaningMode;
use gaia_kb::{Author, GrepOptions, Kb, KbError, KbTools, SearchOptions, VaultPath, WriteRequest};
use gaia_rbac::{Action, Resource, ResourceType, Subject};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

/// A knowledge-base answer in the envelope.
pub struct KbReply {
    status: StatusCode,
    body: Value,
    /// Seconds for a `Retry-After` header (a busy knowledge base).
    retry_after: Option<u64>,
}

impl IntoResponse for KbReply {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        resp
    }
}

fn ok(started: Instant, response: impl serde::Serialize, extra: Value) -> KbReply {
    let mut metadata = json!({"took_ms": started.elapsed().as_secs_f64() * 1000.0});
    if let (Value::Object(m), Value::Object(e)) = (&mut metadata, extra) {
        m.extend(e);
    }
    let response = serde_json::to_value(response).unwrap_or(Value::Null);
    KbReply {
        status: StatusCode::OK,
        body: json!({"status": "success", "response": response, "metadata": metadata}),
        retry_after: None,
    }
}

fn fail(status: StatusCode, kind: &str, message: impl Into<String>) -> KbReply {
    let message = message.into();
    KbReply {
        status,
        body: json!({"status": "error", "response": null, "metadata": {}, "error": {"kind": kind, "message": message}, "detail": message}),
        retry_after: None,
    }
}

/// Access errors of the knowledge-base routes (401 before the handler runs, 403 when the caller has
/// no knowledge-base permission at all) in the same envelope as their other answers.
pub fn access_errors(_: &HeaderMap, e: crate::error::ApiError) -> Response {
    let kind = match e.status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_client_error() => "invalid_input",
        _ => "error",
    };
    let mut resp = fail(e.status, kind, e.message).into_response();
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
    }
    resp
}

fn kb_error(e: KbError) -> KbReply {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(error = %e, "knowledge-base operation failed");
    }
    let mut reply = fail(status, e.kind(), e.to_string());
    reply.retry_after = e.retry_after().map(|d| d.as_secs().max(1));
    reply
}

type KbResult = Result<KbReply, KbReply>;

fn kb(state: &AppState) -> Result<Kb, KbReply> {
    state.kb().cloned().ok_or_else(|| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no knowledge base is configured (add a [kb] section to gaia.toml)",
        )
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, KbReply> {
    q.map(|Query(v)| v).map_err(|e| fail(StatusCode::BAD_REQUEST, "invalid_input", e.body_text()))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, KbReply> {
    b.map(|Json(v)| v).map_err(|e| {
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { e.status() } else { StatusCode::BAD_REQUEST };
        fail(status, "invalid_input", e.body_text())
    })
}

/// The knowledge base as `p` may see it: documents they may not read are left out everywhere (and
/// reading one is a 404, as if it did not exist).
async fn view(st: &AppState, p: &Principal) -> Result<Kb, KbReply> {
    kb(st)?;
    st.kb_for(p).await.ok_or_else(|| kb_error(KbError::NotFound("knowledge base".into())))
}

/// Checks that `p` may do `action` on the document or folder at `path` (a vault path).
async fn allow(st: &AppState, p: &Principal, action: Action, path: &str) -> Result<(), KbReply> {
    let vp = VaultPath::parse(path).map_err(|e| kb_error(KbError::from(e)))?;
    let resource = Resource::kb_document(vp.as_str());
    if st.rbac().await.check(&Subject::from(p), action, &resource).allowed {
        Ok(())
    } else {
        Err(fail(StatusCode::FORBIDDEN, "forbidden", format!("you may not {action} {}", vp.as_str())))
    }
}

fn author(p: &Principal) -> Author {
    let email = p.email.clone().unwrap_or_else(|| format!("{}@users.gaia", p.user_id));
    let name = email.split('@').next().unwrap_or("gaia").to_string();
    Author { name, email }
}

/// `GET /api/v1/kb/search` parameters.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// The query (`q` or `query`).
    #[serde(alias = "query")]
    pub q: String,
    /// `ranked` (default), `exact`, `regex`, `semantic` or `hybrid`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Most results.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Results to skip (ranked mode).
    #[serde(default)]
    pub offset: Option<usize>,
    /// Only under this folder.
    #[serde(default)]
    pub folder: Option<String>,
    /// Only with these tags (comma-separated).
    #[serde(default)]
    pub tags: Option<String>,
    /// Exact and regex modes: match case.
    #[serde(default)]
    pub case_sensitive: bool,
}

/// `GET /api/v1/kb/search`.
pub async fn search(
    State(st): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> KbResult {
    let t = Instant::now();
    let (kb, q) = (view(&st, &p).await?, query(q)?);
    let mode = q.mode.as_deref().unwrap_or("ranked");
    match mode {
        "ranked" => {
            let tags = q
                .tags
                .map(|t| t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let opts = SearchOptions {
                query: q.q,
                limit: q.limit.unwrap_or(10),
                offset: q.offset.unwrap_or(0),
                folder: q.folder,
                tags,
                ..SearchOptions::default()
            };
            let (limit, offset) = (opts.limit, opts.offset);
            let r = kb.search(&opts).map_err(kb_error)?;
            let meta = json!({"total": r.total, "count": r.hits.len(), "limit": limit, "offset": offset, "mode": mode});
            Ok(ok(t, &r.hits, meta))
        }
        "exact" | "regex" => {
            let opts = GrepOptions {
                pattern: q.q,
                regex: mode == "regex",
                case_sensitive: q.case_sensitive,
                folder: q.folder,
                limit: q.limit.unwrap_or(100),
            };
            // Off the async workers, bounded in time (503 `timeout` beyond `gaia_kb::kb::GREP_TIME_LIMIT`)
            // and in number (503 `busy` + `Retry-After` beyond `kb.max_concurrent_scans`).
            let m = kb.grep_async(opts).await.map_err(kb_error)?;
            let n = m.len();
            Ok(ok(t, m, json!({"total": n, "mode": mode})))
        }
        "semantic" | "hybrid" => {
            let m = if mode == "semantic" { MeaningMode::Semantic } else { MeaningMode::Hybrid };
            let hits = kb.search_by_meaning(m, &q.q, q.limit.unwrap_or(10)).await.map_err(kb_error)?;
            let n = hits.len();
            Ok(ok(t, hits, json!({"total": n, "mode": mode})))
        }
        other => Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("unknown search mode `{other}` (ranked, exact, regex, semantic, hybrid)"),
        )),
    }
}

/// `?path=` parameter.
#[derive(Debug, Deserialize)]
pub struct PathQuery {
    /// A vault path or note name.
    pub path: String,
}

/// `GET /api/v1/kb/read?path=`.
pub async fn read(State(st): State<AppState>, Auth(p): Auth, q: Result<Query<PathQuery>, QueryRejection>) -> KbResult {
    let t = Instant::now();
    let (kb, q) = (view(&st, &p).await?, query(q)?);
    let d = kb.read(&q.path).await.map_err(kb_error)?;
    let backlinks = kb.backlinks(d.path.as_str()).map(|b| b.len()).unwrap_or(0);
    Ok(ok(t, &*d, json!({"backlinks": backlinks})))
}

/// `GET /api/v1/kb/list` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Folder (the root when absent).
    #[serde(default)]
    pub path: Option<String>,
    /// Every document below, not only direct children.
    #[serde(default)]
    pub recursive: bool,
}

/// `GET /api/v1/kb/list`.
pub async fn list(State(st): State<AppState>, Auth(p): Auth, q: Result<Query<ListQuery>, QueryRejection>) -> KbResult {
    let t = Instant::now();
    let (kb, q) = (view(&st, &p).await?, query(q)?);
    let entries = kb.list(q.path.as_deref(), q.recursive).map_err(kb_error)?;
    let n = entries.len();
    Ok(ok(t, entries, json!({"count": n})))
}

/// `GET /api/v1/kb/context` parameters.
#[derive(Debug, Deserialize)]
pub struct ContextQuery {
    /// Topic: a note name, a folder or a `#tag`.
    pub name: String,
    /// Token budget (default 4,000).
    #[serde(default)]
    pub max_tokens: Option<usize>,
}

/// `GET /api/v1/kb/context`.
pub async fn context(
    State(st): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<ContextQuery>, QueryRejection>,
) -> KbResult {
    let t = Instant::now();
    let (kb, q) = (view(&st, &p).await?, query(q)?);
    let c = kb.context(&q.name, q.max_tokens.unwrap_or(4000)).map_err(kb_error)?;
    if c.documents.is_empty() && !c.omitted.is_empty() {
        return Err(kb_error(KbError::InvalidInput(format!(
            "max_tokens {} is too small for any document about {:?}",
            c.max_tokens, q.name
        ))));
    }
    if c.documents.is_empty() {
        return Err(kb_error(KbError::NotFound(format!("nothing in the knowledge base about {:?}", q.name))));
    }
    let prompt = c.to_prompt();
    let meta = json!({"total_tokens": c.total_tokens, "documents": c.documents.len(), "omitted": c.omitted.len()});
    Ok(ok(t, json!({"context": c, "prompt": prompt}), meta))
}

/// `GET /api/v1/kb/backlinks?path=`.
pub async fn backlinks(
    State(st): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<PathQuery>, QueryRejection>,
) -> KbResult {
    let t = Instant::now();
    let (kb, q) = (view(&st, &p).await?, query(q)?);
    let b = kb.backlinks(&q.path).map_err(kb_error)?;
    let n = b.len();
    Ok(ok(t, b, json!({"count": n})))
}

/// `GET /api/v1/kb/links?path=`.
pub async fn links(State(st): State<AppState>, Auth(p): Auth, q: Result<Query<PathQuery>, QueryRejection>) -> KbResult {
    let t = Instant::now();
    let (kb, q) = (view(&st, &p).await?, query(q)?);
    let l = kb.links(&q.path).map_err(kb_error)?;
    let n = l.len();
    Ok(ok(t, l, json!({"count": n})))
}

/// `POST /api/v1/kb/write` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    /// Vault path.
    pub path: String,
    /// New text.
    pub content: String,
    /// Version the edit is based on (required to replace an existing document, unless `overwrite`).
    #[serde(default)]
    pub version: Option<String>,
    /// Replace whatever the current version.
    #[serde(default)]
    pub overwrite: bool,
    /// Commit message.
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /api/v1/kb/write`.
pub async fn write(State(st): State<AppState>, Auth(p): Auth, b: Result<Json<WriteBody>, JsonRejection>) -> KbResult {
    let t = Instant::now();
    let (kb, b) = (kb(&st)?, body(b)?);
    allow(&st, &p, Action::Write, &b.path).await?;
    let req = WriteRequest {
        path: b.path,
        content: b.content,
        version: b.version,
        overwrite: b.overwrite,
        author: Some(author(&p)),
        message: b.message,
    };
    let path = req.path.clone();
    let out = kb.write(req).await.map_err(kb_error)?;
    crate::audit::record(&st, Some(&p.user_id), "kb.write", &path, json!({"version": out.version})).await;
    let mut reply = ok(t, out, json!({}));
    if reply.body["response"]["created"] == true {
        reply.status = StatusCode::CREATED;
    }
    Ok(reply)
}

/// `POST /api/v1/kb/move` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// Current path.
    pub from: String,
    /// New path.
    pub to: String,
    /// Expected version of the document.
    #[serde(default)]
    pub version: Option<String>,
}

/// `POST /api/v1/kb/move`.
pub async fn move_document(
    State(st): State<AppState>,
    Auth(p): Auth,
    b: Result<Json<MoveBody>, JsonRejection>,
) -> KbResult {
    let t = Instant::now();
    let (kb, b) = (kb(&st)?, body(b)?);
    allow(&st, &p, Action::Delete, &b.from).await?;
    allow(&st, &p, Action::Write, &b.to).await?;
    let out = kb.move_document(&b.from, &b.to, b.version.as_deref(), Some(author(&p))).await.map_err(kb_error)?;
    crate::audit::record(&st, Some(&p.user_id), "kb.move", &b.from, json!({"to": b.to})).await;
    Ok(ok(t, out, json!({})))
}

/// `POST /api/v1/kb/delete` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Path.
    pub path: String,
    /// Expected version of the document.
    #[serde(default)]
    pub version: Option<String>,
}

/// `POST /api/v1/kb/delete`.
pub async fn delete(State(st): State<AppState>, Auth(p): Auth, b: Result<Json<DeleteBody>, JsonRejection>) -> KbResult {
    let t = Instant::now();
    let (kb, b) = (kb(&st)?, body(b)?);
    allow(&st, &p, Action::Delete, &b.path).await?;
    let out = kb.delete(&b.path, b.version.as_deref(), Some(author(&p))).await.map_err(kb_error)?;
    crate::audit::record(&st, Some(&p.user_id), "kb.delete", &b.path, json!({})).await;
    Ok(ok(t, out, json!({})))
}

/// `POST /api/v1/kb/sync`: fetch, fast-forward and re-index now.
pub async fn sync(State(st): State<AppState>) -> KbResult {
    let t = Instant::now();
    let kb = kb(&st)?;
    let r = kb.sync().await.map_err(kb_error)?;
    Ok(ok(t, r, json!({})))
}

/// `GET /api/v1/kb/status`. Administrators of the knowledge base (`kb:admin` on `/kb`) see everything;
/// others see it through their view: only the paths they may read, no detail of a failed sync.
pub async fn status(State(st): State<AppState>, Auth(p): Auth) -> KbResult {
    let t = Instant::now();
    let full = kb(&st)?;
    let admin =
        st.rbac().await.check(&Subject::from(&p), Action::Admin, &Resource::new(ResourceType::Kb, "/kb")).allowed;
    let kb = if admin { full } else { view(&st, &p).await? };
    Ok(ok(t, kb.status().await, json!({})))
}

fn verify_webhook(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    use subtle::ConstantTimeEq;
    if let Some(v) = headers.get("x-gaia-webhook-secret").and_then(|v| v.to_str().ok()) {
        return v.as_bytes().ct_eq(secret.as_bytes()).into();
    }
    let Some(sig) = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()) else { return false };
    let Some(hex_sig) = sig.strip_prefix("sha256=") else { return false };
    let Ok(given) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// `POST /api/v1/kb/webhook`: a push notification from the git host; starts a sync and answers 202
/// (`{"sync": "started"}`, or `"skipped"` for a push to another branch than `kb.branch`).
pub async fn webhook(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> KbResult {
    let t = Instant::now();
    let kb = kb(&st)?;
    let Some(secret) = kb.config().webhook_secret.clone() else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            "not_found",
            "the knowledge-base webhook is not enabled (set kb.webhook_secret)",
        ));
    };
    if !verify_webhook(&secret, &headers, &body) {
        return Err(fail(StatusCode::UNAUTHORIZED, "unauthorized", "bad or missing webhook signature"));
    }
    // A push to another branch (GitHub and GitLab name it in `ref`) changes nothing here.
    let pushed_ref = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["ref"].as_str().map(str::to_string));
    let followed = format!("refs/heads/{}", kb.config().branch);
    if let Some(other) = pushed_ref.filter(|r| *r != followed) {
        let mut reply = ok(t, json!({"sync": "skipped", "reason": format!("{other} is not {followed}")}), json!({}));
        reply.status = StatusCode::ACCEPTED;
        return Ok(reply);
    }
    tokio::spawn(async move {
        if let Err(e) = kb.sync().await {
            tracing::warn!(error = %e, "knowledge-base sync from webhook failed");
        }
    });
    let mut reply = ok(t, json!({"sync": "started"}), json!({}));
    reply.status = StatusCode::ACCEPTED;
    Ok(reply)
}

/// `GET /api/v1/kb/tools`: the LLM tool specifications.
pub async fn tools(State(st): State<AppState>, Auth(_): Auth) -> KbResult {
    let t = Instant::now();
    kb(&st)?;
    Ok(ok(t, KbTools::specs(), json!({})))
}

/// `POST /api/v1/kb/tools/{name}`: runs a tool with the JSON body as its arguments.
pub async fn call_tool(State(st): State<AppState>, Auth(p): Auth, Path(name): Path<String>, body: Bytes) -> KbResult {
    let t = Instant::now();
    let kb = view(&st, &p).await?;
    let args = std::str::from_utf8(&body)
        .map_err(|_| fail(StatusCode::BAD_REQUEST, "invalid_input", "the body is not UTF-8"))?;
    let out = KbTools::new(kb).call(&name, args).await.map_err(kb_error)?;
    Ok(ok(t, out, json!({"tool": name})))
}
