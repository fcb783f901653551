//! The admission middleware of the routes that call models (see [`crate::Routes::quota`]): it runs
//! the conversation engine's admission ([`gaia_chat::Engine::admit`]: the permission to use models,
//! rate limits, budgets against the request's estimated cost) after access control and before the
//! handler, and hands the handler the [`gaia_chat::Admitted`] every model call of the engine takes
//! (the [`crate::extract::Admission`] extractor).
//!
//! The request's end user (a game's player) and tags are read here, before admission, because the
//! end user's own limits and budgets are part of it: the `x-gaia-end-user` and `x-gaia-tags`
//! headers, else the body's `player_id` (Gaia's routes), `user` (OpenAI's) or `metadata.user_id`
//! (Anthropic's). The body is then read first (the handler gets the same bytes) and scanned for
//! those three fields only; it is parsed whole here only when a budget needs the estimate. A bad end
//! user id or tag is a 400 in the route's shape.
//!
//! Refusals come in the route's own error shape: `403` without the permission, `429` with
//! `Retry-After` for a rate limit, `402` for a hard budget (OpenAI's `insufficient_quota`,
//! Anthropic's `billing_error`). Admitted requests carry `x-ratelimit-*` headers when a limit applies.

use crate::access::ErrorRenderer;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use gaia_chat::Refusal;
use gaia_core::attribution::{Attribution, Tags};
use gaia_core::auth::Principal;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// The header naming the end user a request is for.
pub(crate) const END_USER_HEADER: &str = "x-gaia-end-user";
/// The header carrying a request's tags (`key=value,…`).
pub(crate) const TAGS_HEADER: &str = "x-gaia-tags";

/// The fields of a request body that may name its end user; everything else is skipped unread.
#[derive(Deserialize)]
struct EndUserFields<'a> {
    #[serde(default, borrow)]
    player_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    metadata: Option<MetadataFields<'a>>,
}

#[derive(Deserialize)]
struct MetadataFields<'a> {
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
}

/// The end user a body names: `player_id`, else `user`, else `metadata.user_id` (none when the body is
/// not JSON or these fields are not strings: the handler judges the body).
fn body_end_user(body: &[u8]) -> Option<String> {
    let f: EndUserFields<'_> = serde_json::from_slice(body).ok()?;
    // An empty id (some clients send `"user": ""`) names no one.
    fn named(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
        v.filter(|s| !s.trim().is_empty())
    }
    named(f.player_id)
        .or_else(|| named(f.user))
        .or_else(|| named(f.metadata.and_then(|m| m.user_id)))
        .map(Cow::into_owned)
}

/// The header's value as text; a value that is not visible ASCII or UTF-8 is an error.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<Cow<'h, str>>, ApiError> {
    let Some(v) = headers.get(name) else { return Ok(None) };
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => Ok(Some(Cow::Borrowed(s))),
        Err(_) => Err(ApiError::bad_request(format!("the `{name}` header is not UTF-8"))),
    }
}

/// A request body, read into memory or not.
enum MaybeRead {
    Read(axum::body::Bytes),
    Unread(Body),
}
use MaybeRead::{Read, Unread};

/// The whole body, at most `limit` bytes (413 beyond).
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes")))
}

/// The request's attribution from its headers and (when the headers name no end user) its body.
pub(crate) fn attribution(headers: &HeaderMap, body: Option<&[u8]>) -> Result<Attribution, ApiError> {
    let tags = match header_text(headers, TAGS_HEADER)? {
        Some(raw) => Tags::parse(&raw).map_err(|e| ApiError::bad_request(format!("{TAGS_HEADER}: {e}")))?,
        None => Tags::default(),
    };
    let end_user = match header_text(headers, END_USER_HEADER)? {
        Some(h) => Some(h.into_owned()),
        None => body.and_then(body_end_user),
    };
    Attribution::new(end_user.as_deref(), tags).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn add_headers(resp: &mut Response, headers: &[(&'static str, String)]) {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(HeaderName::from_static(k), v);
        }
    }
}

/// A refusal in the route's error shape, with its headers.
fn refused(errors: ErrorRenderer, headers: &HeaderMap, r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = errors(headers, ApiError::new(status, r.message));
    add_headers(&mut resp, &r.headers);
    resp
}

/// A refusal in Gaia's own error shape, with its headers (`Retry-After`, `x-ratelimit-*`), for the
/// handlers that admit their requests themselves (a game world's commands that call a model).
pub(crate) fn refusal_response(r: Refusal) -> Response {
    use axum::response::IntoResponse;
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = ApiError::new(status, r.message).into_response();
    add_headers(&mut resp, &r.headers);
    resp
}

/// The middleware. `permission_checked`: the route's declared access already is the permission to
/// use models, so admission does not look it up again.
pub(crate) async fn admit(
    state: AppState,
    errors: ErrorRenderer,
    permission_checked: bool,
    req: Request,
    next: Next,
) -> Response {
    let Some(p) = req.extensions().get::<Principal>().cloned() else {
        return next.run(req).await;
    };
    // The body, read now unless the headers already name the end user (the handler gets it back).
    let limit = state.config().server.body_limit_bytes;
    let (parts, body) = req.into_parts();
    let mut body = if parts.headers.contains_key(END_USER_HEADER) {
        Unread(body)
    } else {
        match read_body(body, limit).await {
            Ok(b) => Read(b),
            Err(e) => return errors(&parts.headers, e),
        }
    };
    let attribution = match attribution(&parts.headers, if let Read(b) = &body { Some(b) } else { None }) {
        Ok(a) => a,
        Err(e) => return errors(&parts.headers, e),
    };
    let gate = match state.engine().admit_for(&p, permission_checked, attribution).await {
        Ok(g) => g,
        Err(r) => return refused(errors, &parts.headers, r),
    };
    let admitted = if gate.needs_estimate() {
        if let Unread(b) = body {
            body = match read_body(b, limit).await {
                Ok(b) => Read(b),
                Err(e) => return errors(&parts.headers, e),
            };
        }
        let value = if let Read(b) = &body { serde_json::from_slice::<Value>(b).ok() } else { None };
        gate.budgets(value.as_ref()).await
    } else {
        gate.budgets(None).await
    };
    let mut req = Request::from_parts(
        parts,
        match body {
            Read(b) => Body::from(b),
            Unread(b) => b,
        },
    );
    let admitted = match admitted {
        Ok(a) => a,
        Err(r) => return refused(errors, req.headers(), r),
    };
    let rate = admitted.rate_headers().to_vec();
    req.extensions_mut().insert(admitted);
    let mut resp = next.run(req).await;
    add_headers(&mut resp, &rate);
    resp
}
