//! The one model-call path: every call the engine makes (a turn, an automatic title, the compatible
//! endpoints, the MCP chat tool) goes through [`Engine::call`]: the caller was admitted, the model is
//! resolved to its candidates, the response cache is looked up when allowed, routing tries the
//! candidates with retries and fallbacks, and the call is metered however it ends (answered, failed,
//! cut mid-stream, or abandoned by the client).

use crate::admission::Admitted;
use crate::engine::Engine;
use crate::error::Result;
use crate::guardrails::{RuleSet, Stage};
use crate::meter::{metered, Meter};
use gaia_providers::response_cache::{cacheable, replay, ResponseCache};
use gaia_providers::{Candidate, ChatRequest, ChatResponse, ChatStream};

/// Whether a call may use the response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Never (conversation turns: each answer is new).
    Never,
    /// When the server's response cache is on and the request is cacheable; `Some` is the client's
    /// own preference (`x-gaia-cache`, `Cache-Control`).
    Allowed(Option<bool>),
}

/// How the response cache took part in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// The answer came from the cache.
    Hit,
    /// Not in the cache; the answer is stored when it completes.
    Miss,
    /// The cache was not used.
    Bypass,
}

impl CacheStatus {
    /// `hit`, `miss` or `bypass` (the `x-gaia-cache` header).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// One model call to make.
#[derive(Clone, Copy)]
pub struct CallSpec<'a> {
    /// The entry point, recorded with the usage (`chat`, `openai`, `anthropic`, `mcp_chat`, …).
    pub endpoint: &'a str,
    /// The model as asked for (`id`, `provider/id`, or a fallback chain `a,b`).
    pub model: &'a str,
    /// Its candidates when already resolved (else they are resolved from `model`).
    pub candidates: Option<&'a [Candidate]>,
    /// Stream the answer.
    pub stream: bool,
    /// Whether the response cache may answer.
    pub cache: CacheUse,
    /// The persona of the turn making the call (its guardrail rules apply too).
    pub persona: Option<&'a str>,
    /// Whether the guardrails apply (all calls made for a caller; not the engine's own
    /// bookkeeping calls: titles, persona memory).
    pub guarded: bool,
    /// Rules applied besides the caller's (a game experience's, an NPC's), when guarded.
    pub rules: Option<&'a RuleSet>,
    /// The input was checked already (a turn checks its new message before storing it): only the
    /// answer is.
    pub input_checked: bool,
}

impl std::fmt::Debug for CallSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSpec")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("stream", &self.stream)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<'a> CallSpec<'a> {
    /// A call of `model` through `endpoint`, whole, without the response cache.
    pub fn new(endpoint: &'a str, model: &'a str) -> Self {
        CallSpec {
            endpoint,
            model,
            candidates: None,
            stream: false,
            cache: CacheUse::Never,
            persona: None,
            guarded: true,
            rules: None,
            input_checked: false,
        }
    }
}

/// What answered a call.
pub enum Answer {
    /// The whole answer.
    Full(ChatResponse),
    /// A stream, metered as it is read (dropping it early records the call as abandoned).
    Stream(ChatStream),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Full(r) => f.debug_tuple("Full").field(r).finish(),
            Answer::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// Who answered a call.
#[derive(Debug, Clone)]
pub struct Called {
    /// The provider that answered (`cache` for a cache hit).
    pub provider: String,
    /// The model id at that provider.
    pub model: String,
    /// Attempts made, across providers (0 for a cache hit).
    pub attempts: u32,
    /// How the response cache took part.
    pub cache: CacheStatus,
}

impl Engine {
    /// Makes one model call for `admitted`: resolves the model, answers from the response cache when
    /// allowed, otherwise calls the candidates (retries, fallbacks), and meters the call however it
    /// ends. A streamed answer is metered as it is read.
    pub async fn call(&self, admitted: &Admitted, spec: CallSpec<'_>, req: &ChatRequest) -> Result<(Answer, Called)> {
        let mut meter = Meter::start(self, admitted, spec.endpoint);
        // Guardrails: the input is checked (and redacted) before anything else; the answer below.
        let mut rules = if spec.guarded { self.guard_rules(admitted, spec.persona).await } else { Default::default() };
        if let Some(extra) = spec.rules.filter(|_| spec.guarded) {
            rules = self.inner.guardrails.union(&rules, extra);
        }
        let guarded_req;
        let req = if !spec.input_checked && self.inner.guardrails.covers(&rules, Stage::Input) {
            let mut r = req.clone();
            if let Err(e) = self.guard_request(admitted, spec.endpoint, &rules, &mut r).await {
                meter.target("-", spec.model);
                meter.finish(e.http_status(), Some(e.to_string()));
                return Err(e);
            }
            guarded_req = r;
            &guarded_req
        } else {
            req
        };
        let guard_output = self.inner.guardrails.covers(&rules, Stage::Output);
        let resolved;
        let candidates = match spec.candidates {
            Some(c) => c,
            None => match self.inner.providers.candidates(spec.model).await {
                Ok(c) => {
                    resolved = c;
                    &resolved[..]
                }
                Err(e) => {
                    // Nothing was called: record the refusal under the model asked for.
                    meter.target("-", spec.model);
                    meter.finish(e.http_status(), Some(e.to_string()));
                    return Err(e.into());
                }
            },
        };
        let mut cache = CacheStatus::Bypass;
        let mut fill = None;
        let rc = match spec.cache {
            CacheUse::Allowed(pref) => self.inner.responses.as_ref().filter(|_| cacheable(req, pref)),
            CacheUse::Never => None,
        };
        if let Some(rc) = rc {
            let key = ResponseCache::key(spec.model, req);
            let hit = rc.get(&key).await;
            self.observe(|o| o.response_cache(hit.is_some()));
            if let Some(mut hit) = hit {
                meter.target("cache", &hit.model);
                meter.token();
                meter.finish(200, None);
                let model = hit.model.clone();
                let answer = match (spec.stream, guard_output) {
                    (true, true) => Answer::Stream(self.guard_stream(admitted, spec.endpoint, rules, replay(hit))),
                    (true, false) => Answer::Stream(replay(hit)),
                    (false, guard) => {
                        if guard {
                            self.guard_answer(admitted, spec.endpoint, &rules, &mut hit.content).await?;
                        }
                        Answer::Full(hit)
                    }
                };
                return Ok((answer, Called { provider: "cache".into(), model, attempts: 0, cache: CacheStatus::Hit }));
            }
            cache = CacheStatus::Miss;
            fill = Some((rc.clone(), key));
        }
        let providers = &self.inner.providers;
        if spec.stream {
            match providers.stream_routed(candidates, req).await {
                Ok(r) => {
                    let provider = r.provider.name().to_string();
                    meter.target(&provider, &r.model);
                    let mut stream = metered(r.value, meter, fill);
                    if guard_output {
                        stream = self.guard_stream(admitted, spec.endpoint, rules, stream);
                    }
                    let answer = Answer::Stream(stream);
                    Ok((answer, Called { provider, model: r.model, attempts: r.attempts, cache }))
                }
                Err(f) => {
                    meter.failed(&f);
                    Err(f.error.into())
                }
            }
        } else {
            match providers.chat_routed(candidates, req).await {
                Ok(mut r) => {
                    let provider = r.provider.name().to_string();
                    meter.target(&provider, &r.model);
                    meter.usage(r.value.usage);
                    meter.finish(200, None);
                    if guard_output {
                        self.guard_answer(admitted, spec.endpoint, &rules, &mut r.value.content).await?;
                    }
                    if let Some((rc, key)) = &fill {
                        rc.put(key, &r.value).await;
                    }
                    Ok((Answer::Full(r.value), Called { provider, model: r.model, attempts: r.attempts, cache }))
                }
                Err(f) => {
                    meter.failed(&f);
                    Err(f.error.into())
                }
            }
        }
    }

    /// [`Engine::call`] for a whole answer.
    pub async fn complete(
        &self,
        admitted: &Admitted,
        spec: CallSpec<'_>,
        req: &ChatRequest,
    ) -> Result<(ChatResponse, Called)> {
        match self.call(admitted, CallSpec { stream: false, ..spec }, req).await? {
            (Answer::Full(r), called) => Ok((r, called)),
            (Answer::Stream(s), called) => {
                let r = gaia_providers::collect_stream(s).await?;
                Ok((r, called))
            }
        }
    }
}
