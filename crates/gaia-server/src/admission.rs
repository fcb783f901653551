//! Admission of model requests: the permission to use models (`may_use_models`: `provider:read` on
//! `/providers`, what `/v1/chat/completions` declares), rate limits and budgets
//! ([`gaia_core::quota`]) are checked before a request reaches a provider, on the routes that call
//! models (see [`crate::Routes::quota`]), and by `admit_call` for model calls made elsewhere (the
//! `gaia__chat` tool of `/mcp`).
//!
//! Refusals come in the route's own error shape: `403` without the permission, `429` with
//! `Retry-After` for a rate limit, `402` for a hard budget (OpenAI's `insufficient_quota`,
//! Anthropic's `billing_error`). Admitted requests carry `x-ratelimit-*` headers when a limit applies.

use crate::access::ErrorRenderer;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use gaia_core::auth::Principal;
use gaia_core::context::estimate_tokens;
use gaia_core::pricing::EffectivePrice;
use gaia_core::quota::{RateCheck, Subject};
use gaia_core::storage::Budget;
use gaia_core::types::Usage;
use serde::Serialize;
use serde_json::Value;

/// The resource whose `read` permission lets a caller use models (as on `/v1/chat/completions`).
pub(crate) const MODELS_RESOURCE: &str = "/providers";

/// Whether `p` may use models: `provider:read` on [`MODELS_RESOURCE`]; a 403 otherwise.
pub(crate) async fn may_use_models(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    use gaia_rbac::{Action, Resource, ResourceType};
    let resource = Resource::new(ResourceType::Provider, MODELS_RESOURCE);
    let d = state.rbac().await.check(&gaia_rbac::Subject::from(p), Action::Read, &resource);
    if d.allowed {
        return Ok(());
    }
    tracing::debug!(user_id = %p.user_id, reason = %d.reason, "model use denied");
    Err(ApiError::new(StatusCode::FORBIDDEN, "you may not use models (provider:read on /providers is needed)"))
}

/// Admits one model call made outside the admission middleware (the `/mcp` chat tool): the same
/// permission, rate limits and budgets (against the cost estimated from `body`, a request in any
/// chat shape).
pub(crate) async fn admit_call(state: &AppState, p: &Principal, body: &Value) -> Result<(), ApiError> {
    may_use_models(state, p).await?;
    let who = subject(state, p).await;
    check_rate(state, &who).await.map_err(|(e, _)| e)?;
    check_budgets(state, &who, Some(body)).await
}

/// What is left of `who`'s hard budgets in their current periods (the tightest), `None` when no
/// hard budget applies: the most an agent run may still spend.
pub(crate) async fn budget_left(state: &AppState, who: &Subject) -> Option<f64> {
    let policy = state.rbac().await.policy();
    let mut left: Option<f64> = None;
    for b in state.quotas().budgets_for(who).await.into_iter().filter(|b| b.hard) {
        let members: Vec<String> = policy.members_of(&b.subject_id).into_iter().map(str::to_string).collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        match state.quotas().status(&b, &members).await {
            Ok(st) => left = Some(left.map_or(st.remaining_usd, |l| l.min(st.remaining_usd))),
            Err(e) => tracing::warn!(error = %e, budget = %b.id, "cannot read a budget's spend"),
        }
    }
    left
}

/// Who is calling, for quotas: the user, their API key, their teams and workspaces.
pub(crate) async fn subject(state: &AppState, p: &Principal) -> Subject {
    subject_of(state, p.user_id.clone(), p.api_key_id().map(str::to_string)).await
}

/// The quota subject of `user_id` calling with `key_id`, their teams and workspaces from the policy.
pub(crate) async fn subject_of(state: &AppState, user_id: String, key_id: Option<String>) -> Subject {
    let teams = state.rbac().await.policy().groups_of(&user_id).into_iter().map(str::to_string).collect();
    Subject { user_id, key_id, teams }
}

fn add_headers(resp: &mut Response, headers: Vec<(&'static str, String)>) {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(HeaderName::from_static(k), v);
        }
    }
}

/// Checks `who`'s rate limits for one more model request (counting it when admitted): the check to
/// answer headers from, or the 429 to answer with them.
pub(crate) async fn check_rate(state: &AppState, who: &Subject) -> Result<RateCheck, (ApiError, RateCheck)> {
    let rate = state.quotas().check_rate(who).await;
    if rate.allowed() {
        return Ok(rate);
    }
    let secs = rate.retry_after().map(|d| d.as_secs().max(1)).unwrap_or(1);
    let what = rate.refused_by().unwrap_or_else(|| "rate limit".into());
    state.metrics().rate_limited(if what.contains("API key") { "key" } else { "user" });
    let msg = format!("rate limit reached ({what}); retry in {secs} s");
    Err((ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg), rate))
}

/// Checks `who`'s budgets against the estimated cost of the request `body` (402 when a hard budget
/// would be exceeded).
pub(crate) async fn check_budgets(state: &AppState, who: &Subject, body: Option<&Value>) -> Result<(), ApiError> {
    check_these_budgets(state, state.quotas().budgets_for(who).await, body).await
}

/// [`check_budgets`] on budgets already looked up.
async fn check_these_budgets(state: &AppState, budgets: Vec<Budget>, body: Option<&Value>) -> Result<(), ApiError> {
    if budgets.is_empty() {
        return Ok(());
    }
    let estimate = match body {
        Some(v) => estimate(state, v, None).await.map(|e| e.cost_usd).unwrap_or(0.0),
        None => 0.0, // a malformed body: its handler answers it
    };
    let policy = state.rbac().await.policy();
    let members = |team: &str| policy.members_of(team).into_iter().map(str::to_string).collect::<Vec<_>>();
    state.quotas().check_these_budgets(budgets, estimate, members).await.map_err(|refusal| {
        state.metrics().budget_refused(refusal.budget.scope.as_str());
        ApiError::new(StatusCode::PAYMENT_REQUIRED, refusal.to_string())
    })
}

/// The middleware: checks the caller's permission to use models, their rate limits, then their budgets against the request's
/// estimated cost, then runs the handler.
pub(crate) async fn admit(state: AppState, errors: ErrorRenderer, req: Request, next: Next) -> Response {
    let Some(p) = req.extensions().get::<Principal>().cloned() else {
        return next.run(req).await;
    };
    if let Err(e) = may_use_models(&state, &p).await {
        return errors(req.headers(), e);
    }
    let who = subject(&state, &p).await;
    let rate = match check_rate(&state, &who).await {
        Ok(rate) => rate,
        Err((e, rate)) => {
            let mut resp = errors(req.headers(), e);
            add_headers(&mut resp, rate.headers());
            return resp;
        }
    };
    let budgets = state.quotas().budgets_for(&who).await;
    let req = if budgets.is_empty() {
        req
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
        if let Err(e) = check_these_budgets(&state, budgets, body.as_ref()).await {
            return errors(&parts.headers, e);
        }
        Request::from_parts(parts, Body::from(bytes))
    };
    let mut resp = next.run(req).await;
    add_headers(&mut resp, rate.headers());
    resp
}

/// What a request would cost.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Provider that would serve it.
    pub provider: String,
    /// Model id at the provider.
    pub model: String,
    /// Estimated input tokens (about four characters per token).
    pub input_tokens: u64,
    /// Output tokens counted (`max_tokens` when given, else the request's `output_tokens`, else 0).
    pub output_tokens: u64,
    /// The price used (`null` when the model has no price: the cost is then 0).
    pub price: Option<EffectivePrice>,
    /// Cost of the input tokens, in US dollars.
    pub input_cost_usd: f64,
    /// Cost of the output tokens.
    pub output_cost_usd: f64,
    /// Total.
    pub cost_usd: f64,
}

/// Every text a request body carries to the model: message contents (strings or text parts), the
/// system prompt, Gaia's `message`, and `prompt`.
fn request_text(v: &Value, out: &mut String) {
    fn texts(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
            Value::Object(o) => {
                for k in ["content", "text", "input", "arguments"] {
                    if let Some(x) = o.get(k) {
                        texts(x, out);
                    }
                }
            }
            _ => {}
        }
    }
    for k in ["messages", "system", "message", "prompt", "tools"] {
        if let Some(x) = v.get(k) {
            if k == "tools" {
                out.push_str(&x.to_string());
            } else {
                texts(x, out);
            }
        }
    }
}

/// Estimates the cost of a request body (any of Gaia's, OpenAI's or Anthropic's chat shapes) on its
/// `model` (or the default one). `input_tokens` replaces the estimate from the body when given.
/// `None` when the model cannot be resolved.
pub async fn estimate(state: &AppState, body: &Value, input_tokens: Option<u64>) -> Option<Estimate> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default();
    // A fallback chain is estimated on its first model.
    let first = model.split(',').next().unwrap_or_default().trim();
    let (provider, model) = state.providers().resolve(first).await.ok()?;
    let input_tokens = input_tokens.unwrap_or_else(|| {
        let mut text = String::new();
        request_text(body, &mut text);
        estimate_tokens(&text) as u64
    });
    let output_tokens = ["max_tokens", "max_completion_tokens", "output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    let provider = provider.name().to_string();
    let price = state.providers().price_at(&provider, &model, chrono::Utc::now());
    let (input_cost_usd, output_cost_usd) = match &price {
        Some(p) => (p.cost(Usage { input_tokens, output_tokens: 0 }), p.cost(Usage { input_tokens: 0, output_tokens })),
        None => (0.0, 0.0),
    };
    Some(Estimate {
        provider,
        model,
        input_tokens,
        output_tokens,
        price,
        input_cost_usd,
        output_cost_usd,
        cost_usd: input_cost_usd + output_cost_usd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_the_text_of_every_shape() {
        let mut s = String::new();
        request_text(
            &json!({
                "model": "m",
                "system": [{"type": "text", "text": "be brief"}],
                "messages": [
                    {"role": "user", "content": "hello"},
                    {"role": "user", "content": [{"type": "text", "text": "world"}, {"type": "image_url", "image_url": {"url": "x"}}]}
                ],
                "message": "gaia"
            }),
            &mut s,
        );
        assert_eq!(s, "hello\nworld\nbe brief\ngaia\n");
    }
}
