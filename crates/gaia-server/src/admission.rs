//! The admission middleware of the routes that call models (see [`crate::Routes::quota`]): it runs
//! the conversation engine's admission ([`gaia_chat::Engine::admit`]: the permission to use models,
//! rate limits, budgets against the request's estimated cost) after access control and before the
//! handler, and hands the handler the [`gaia_chat::Admitted`] every model call of the engine takes
//! (the [`crate::extract::Admission`] extractor). The request body is read first only when a budget
//! needs the estimate.
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
use gaia_core::auth::Principal;
use serde_json::Value;

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
    let gate = match state.engine().admit(&p, permission_checked).await {
        Ok(g) => g,
        Err(r) => return refused(errors, req.headers(), r),
    };
    let (mut req, admitted) = if !gate.needs_estimate() {
        let admitted = gate.budgets(None).await;
        (req, admitted)
    } else {
        let (parts, body) = req.into_parts();
        let limit = state.config().server.body_limit_bytes;
        let bytes = match axum::body::to_bytes(body, limit).await {
            Ok(b) => b,
            Err(_) => {
                let e = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes"));
                return errors(&parts.headers, e);
            }
        };
        let body = serde_json::from_slice::<Value>(&bytes).ok();
        let admitted = gate.budgets(body.as_ref()).await;
        (Request::from_parts(parts, Body::from(bytes)), admitted)
    };
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
