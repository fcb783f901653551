//! Admission: before any model is called, the caller's permission to use models (`provider:read` on
//! `/providers`), their rate limits (counting this request), then their hard budgets against the
//! request's estimated cost. What comes out is an [`Admitted`], which every model call of the engine
//! takes: a call cannot be made without having been admitted.
//!
//! Admission is in two steps so that an HTTP server can refuse early and read the request body only
//! when a budget needs the estimate: [`Engine::admit`] (permission and rate) gives a [`Gate`], and
//! [`Gate::budgets`] (or [`Gate::for_request`]) checks the budgets.

use crate::engine::Engine;
use crate::error::{Refusal, Result};
use gaia_core::attribution::{Attribution, Tags};
use gaia_core::auth::Principal;
use gaia_core::context::estimate_tokens;
use gaia_core::pricing::EffectivePrice;
use gaia_core::quota::{RateCheck, Subject};
use gaia_core::storage::Budget;
use gaia_core::types::Usage;
use gaia_providers::ChatRequest;
use serde::Serialize;
use serde_json::Value;

/// The resource whose `read` permission lets a caller use models (as on `/v1/chat/completions`).
pub const MODELS_RESOURCE: &str = "/providers";

/// A caller admitted to call models: their permission, rate limits and budgets were checked. Every
/// model call of the engine takes one; the calls of one request (a turn, an agent run and its tool
/// loop, an automatic title) share it.
/// Cheap to clone (an `Arc` inside): every meter of the request holds it.
#[derive(Debug, Clone)]
pub struct Admitted {
    inner: std::sync::Arc<AdmittedInner>,
}

#[derive(Debug)]
struct AdmittedInner {
    principal: Principal,
    who: Subject,
    tags: Tags,
    rate: Vec<(&'static str, String)>,
}

impl Admitted {
    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.inner.principal
    }

    /// Who the calls are charged to: the user, their key, their teams, the end user they are for.
    pub fn subject(&self) -> &Subject {
        &self.inner.who
    }

    /// The request's tags, recorded with every call's usage.
    pub fn tags(&self) -> &Tags {
        &self.inner.tags
    }

    /// Gaia's own calls made for no caller (the knowledge base embedding its notes): no permission,
    /// rate limit or budget applies; their usage is recorded under the user id `gaia:<what>`.
    pub fn internal(what: &str) -> Admitted {
        let user_id = format!("gaia:{what}");
        let principal = Principal {
            user_id: user_id.clone(),
            email: None,
            is_admin: false,
            method: gaia_core::auth::AuthMethod::Jwt,
        };
        let who = Subject { user_id, key_id: None, teams: Vec::new(), end_user: None };
        Admitted {
            inner: std::sync::Arc::new(AdmittedInner { principal, who, tags: Tags::default(), rate: Vec::new() }),
        }
    }

    /// The `x-ratelimit-*` headers of the rate limits that apply (none when none does).
    pub fn rate_headers(&self) -> &[(&'static str, String)] {
        &self.inner.rate
    }
}

/// Half-way through admission: the permission and rate limits passed; the budgets are left.
#[derive(Debug)]
pub struct Gate {
    engine: Engine,
    admitted: Admitted,
    budgets: Vec<Budget>,
}

impl Gate {
    /// Whether a hard or soft budget applies, so that [`Gate::budgets`] needs the request to estimate
    /// its cost (else the request body need not be read).
    pub fn needs_estimate(&self) -> bool {
        !self.budgets.is_empty()
    }

    /// Checks the budgets against the cost estimated from `body` (a request in Gaia's, OpenAI's or
    /// Anthropic's shape; `None` when it cannot be parsed: its handler refuses it): 402 when a hard
    /// budget would be exceeded.
    pub async fn budgets(self, body: Option<&Value>) -> Result<Admitted, Refusal> {
        if self.budgets.is_empty() {
            return Ok(self.admitted);
        }
        let estimate = match body {
            Some(v) => self.engine.estimate(v, None).await.map(|e| e.cost_usd).unwrap_or(0.0),
            None => 0.0,
        };
        self.engine.check_budgets(self.budgets, estimate).await?;
        Ok(self.admitted)
    }

    /// [`Gate::budgets`] for a call whose cost the caller estimated itself, in US dollars (media
    /// priced per image, character, second or credit).
    pub async fn with_cost(self, estimate_usd: f64) -> Result<Admitted, Refusal> {
        if self.budgets.is_empty() {
            return Ok(self.admitted);
        }
        self.engine.check_budgets(self.budgets, estimate_usd).await?;
        Ok(self.admitted)
    }

    /// [`Gate::budgets`] for a request already built.
    pub async fn for_request(self, req: &ChatRequest) -> Result<Admitted, Refusal> {
        if self.budgets.is_empty() {
            return Ok(self.admitted);
        }
        let body = serde_json::to_value(req).ok();
        self.budgets(body.as_ref()).await
    }
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

impl Engine {
    /// Whether `p` may use models: `provider:read` on [`MODELS_RESOURCE`]; a 403 refusal otherwise.
    pub async fn may_use_models(&self, p: &Principal) -> Result<(), Refusal> {
        use gaia_rbac::{Action, Resource, ResourceType};
        let resource = Resource::new(ResourceType::Provider, MODELS_RESOURCE);
        let d = self.rbac().await.check(&gaia_rbac::Subject::from(p), Action::Read, &resource);
        if d.allowed {
            return Ok(());
        }
        tracing::debug!(user_id = %p.user_id, reason = %d.reason, "model use denied");
        Err(Refusal::new(403, "you may not use models (provider:read on /providers is needed)"))
    }

    /// Who `p` is for quotas: the user, their API key, their teams and workspaces (no end user).
    pub async fn subject(&self, p: &Principal) -> Subject {
        let user_id = p.user_id.clone();
        let teams = self.rbac().await.policy().groups_of(&user_id).into_iter().map(str::to_string).collect();
        Subject { user_id, key_id: p.api_key_id().map(str::to_string), teams, end_user: None }
    }

    /// The first step of admission: the permission to use models and the rate limits (this request is
    /// counted when it passes). `permission_checked`: the caller's route already required the same
    /// permission, so it is not looked up again.
    pub async fn admit(&self, p: &Principal, permission_checked: bool) -> Result<Gate, Refusal> {
        self.admit_for(p, permission_checked, Attribution::default()).await
    }

    /// [`Engine::admit`] for a request made for an end user (a game's player) and with tags: the end
    /// user's own rate limits and budgets apply as well (theirs, else their key's default for its
    /// players, else the configured one), and every call of the request is recorded with both.
    pub async fn admit_for(
        &self,
        p: &Principal,
        permission_checked: bool,
        attribution: Attribution,
    ) -> Result<Gate, Refusal> {
        if !permission_checked {
            self.may_use_models(p).await?;
        }
        let mut who = self.subject(p).await;
        who.end_user = attribution.end_user().map(str::to_string);
        let rate = self.check_rate(&who).await?;
        let budgets = self.inner.quotas.budgets_for(&who).await;
        let tags = attribution.tags().clone();
        let admitted = Admitted {
            inner: std::sync::Arc::new(AdmittedInner { principal: p.clone(), who, tags, rate: rate.headers() }),
        };
        Ok(Gate { engine: self.clone(), admitted, budgets })
    }

    /// Admits one call of `p` for `req`, every step at once (for callers outside HTTP).
    pub async fn admit_request(&self, p: &Principal, req: &ChatRequest) -> Result<Admitted, Refusal> {
        self.admit(p, false).await?.for_request(req).await
    }

    /// Checks `who`'s rate limits for one more model request (counting it when admitted).
    async fn check_rate(&self, who: &Subject) -> Result<RateCheck, Refusal> {
        let rate = self.inner.quotas.check_rate(who).await;
        if rate.allowed() {
            return Ok(rate);
        }
        let secs = rate.retry_after().map(|d| d.as_secs().max(1)).unwrap_or(1);
        let what = rate.refused_by().unwrap_or_else(|| "rate limit".into());
        let scope = rate.refused_scope().map_or("user", |s| s.as_str());
        self.observe(|o| o.rate_limited(scope));
        let mut refusal = Refusal::new(429, format!("rate limit reached ({what}); retry in {secs} s"));
        refusal.headers = rate.headers();
        Err(refusal)
    }

    /// Checks budgets already looked up against a request estimated at `estimate` US dollars.
    async fn check_budgets(&self, budgets: Vec<Budget>, estimate: f64) -> Result<(), Refusal> {
        let policy = self.rbac().await.policy();
        let members = |team: &str| policy.members_of(team).into_iter().map(str::to_string).collect::<Vec<_>>();
        self.inner.quotas.check_these_budgets(budgets, estimate, members).await.map_err(|refusal| {
            self.observe(|o| o.budget_refused(refusal.budget.scope.as_str()));
            Refusal::new(402, refusal.to_string())
        })
    }

    /// The most a tool loop (an agent run, a chat turn with tools, an orchestrated run) of `admitted`
    /// may still spend: what is left of today's agent ceiling (`limits.daily_cost_ceiling`; refused
    /// with 429 once reached) and of their hard budgets (402 once used up); `None` when neither applies.
    pub async fn run_budget(
        &self,
        admitted: &Admitted,
        limits: &gaia_core::config::AgentLimits,
    ) -> Result<Option<f64>, crate::ChatError> {
        let ceiling_left = match limits.daily_cost_ceiling {
            Some(ceiling) => {
                let since = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
                let filter = gaia_core::storage::UsageFilter {
                    user_id: Some(admitted.principal().user_id.clone()),
                    since: Some(since),
                    ..Default::default()
                };
                let spent = self.inner.storage.usage_summary(&filter).await?.totals.cost_usd;
                if spent >= ceiling {
                    return Err(Refusal::new(429, format!("today's agent cost ceiling ({ceiling}) is reached")).into());
                }
                Some(ceiling - spent)
            }
            None => None,
        };
        let budget_left = self.budget_left(admitted.subject()).await;
        if budget_left.is_some_and(|left| left <= 0.0) {
            return Err(Refusal::new(402, "a hard budget of this caller is used up").into());
        }
        Ok(match (ceiling_left, budget_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// What is left of `who`'s hard budgets in their current periods (the tightest), `None` when no
    /// hard budget applies: the most an agent run may still spend.
    pub async fn budget_left(&self, who: &Subject) -> Option<f64> {
        let policy = self.rbac().await.policy();
        let mut left: Option<f64> = None;
        for b in self.inner.quotas.budgets_for(who).await.into_iter().filter(|b| b.hard) {
            let members: Vec<String> = policy.members_of(&b.subject_id).into_iter().map(str::to_string).collect();
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            match self.inner.quotas.status(&b, &members).await {
                Ok(st) => left = Some(left.map_or(st.remaining_usd, |l| l.min(st.remaining_usd))),
                Err(e) => tracing::warn!(error = %e, budget = %b.id, "cannot read a budget's spend"),
            }
        }
        left
    }

    /// Estimates the cost of a request body (any of Gaia's, OpenAI's or Anthropic's chat shapes) on
    /// its `model` (or the default one). `input_tokens` replaces the estimate from the body when
    /// given. `None` when the model cannot be resolved.
    pub async fn estimate(&self, body: &Value, input_tokens: Option<u64>) -> Option<Estimate> {
        let providers = &self.inner.providers;
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default();
        // A fallback chain is estimated on its first model.
        let first = model.split(',').next().unwrap_or_default().trim();
        let (provider, model) = providers.resolve(first).await.ok()?;
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
        let price = providers.price_at(&provider, &model, chrono::Utc::now());
        let (input_cost_usd, output_cost_usd) = match &price {
            Some(p) => (p.cost(Usage::new(input_tokens, 0)), p.cost(Usage::new(0, output_tokens))),
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
}

/// Every text a request body carries to the model: message contents (strings or text parts), the
/// system prompt, Gaia's `message`, `prompt`, and the tools offered.
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
