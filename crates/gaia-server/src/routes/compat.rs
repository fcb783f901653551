//! Wire-compatible endpoints, so existing clients work with only `base_url` and `api_key` changed:
//! OpenAI's `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`, and Anthropic's
//! `POST /v1/messages`. Any configured model is reachable from either format; errors come in the
//! format's own shape.

// Handlers return early with a ready `Response` as the error value, the usual axum idiom.
#![allow(clippy::result_large_err)]

use crate::error::ApiError;
use crate::extract::{Admission, Auth};
use crate::sse::{self, SseEvent as Event};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use gaia_chat::{Admitted, Answer, CacheStatus, CacheUse, CallSpec, Called, ChatError};
use gaia_providers::compat::{anthropic, openai};
use gaia_providers::{ChatEvent, ChatRequest, ProviderError};
use serde_json::{json, Value};

/// Which API's error shape to answer in.
#[derive(Clone, Copy)]
enum Api {
    OpenAi,
    Anthropic,
}

fn error(api: Api, status: StatusCode, message: &str) -> Response {
    let body = match api {
        Api::OpenAi => {
            let code = match status {
                StatusCode::NOT_FOUND => Some("model_not_found"),
                StatusCode::TOO_MANY_REQUESTS => Some("rate_limit_exceeded"),
                StatusCode::UNAUTHORIZED => Some("invalid_api_key"),
                _ => None,
            };
            openai::error_body(message, openai::error_type(status.as_u16()), code)
        }
        Api::Anthropic => anthropic::error_body(status.as_u16(), message),
    };
    (status, axum::Json(body)).into_response()
}

fn api_error(api: Api, e: ApiError) -> Response {
    error(api, e.status, &e.message)
}

/// Access errors of `/v1/chat/completions`, in OpenAI's shape.
pub fn openai_errors(_: &HeaderMap, e: ApiError) -> Response {
    api_error(Api::OpenAi, e)
}

/// Access errors of `/v1/messages`, in Anthropic's shape.
pub fn anthropic_errors(_: &HeaderMap, e: ApiError) -> Response {
    api_error(Api::Anthropic, e)
}

/// Access errors of `/v1/models`: Anthropic's shape when the client sends `anthropic-version`.
pub fn models_errors(headers: &HeaderMap, e: ApiError) -> Response {
    api_error(if headers.contains_key("anthropic-version") { Api::Anthropic } else { Api::OpenAi }, e)
}

/// A provider failure in the API's shape; a rate limit keeps the provider's `retry-after`, which the
/// official SDKs honour when they retry.
fn provider_error(api: Api, e: ProviderError) -> Response {
    let retry_after = match &e {
        ProviderError::RateLimited { retry_after: Some(d), .. } => Some(d.as_secs_f64().ceil().max(1.0) as u64),
        _ => None,
    };
    let mut resp = api_error(api, ApiError::from(e));
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn parse_body(api: Api, body: Result<Bytes, BytesRejection>) -> Result<Value, Response> {
    let bytes = body.map_err(|r| error(api, r.status(), &r.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(api, StatusCode::BAD_REQUEST, &format!("request body is not valid JSON: {e}")))
}

fn data(v: &Value) -> Event {
    Event::data(&v.to_string())
}

/// The client's cache preference: `x-gaia-cache: on|off`, or `Cache-Control: no-store|no-cache`.
fn cache_preference(headers: &HeaderMap) -> Option<bool> {
    if let Some(v) = headers.get("x-gaia-cache").and_then(|v| v.to_str().ok()) {
        return match v.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Some(true),
            _ => Some(false),
        };
    }
    let cc = headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).unwrap_or_default();
    (cc.contains("no-store") || cc.contains("no-cache")).then_some(false)
}

fn with_cache_header(mut r: Response, status: CacheStatus) -> Response {
    r.headers_mut().insert("x-gaia-cache", HeaderValue::from_static(status.as_str()));
    r
}

/// The call of a compatible request through the engine: the response cache when allowed, routing,
/// metering (as `endpoint`).
async fn answer(
    state: &AppState,
    admitted: &Admitted,
    endpoint: &str,
    req: &ChatRequest,
    stream: bool,
    headers: &HeaderMap,
) -> Result<(Answer, Called), ChatError> {
    let spec =
        CallSpec { stream, cache: CacheUse::Allowed(cache_preference(headers)), ..CallSpec::new(endpoint, &req.model) };
    state.engine().call(admitted, spec, req).await
}

/// A failed call in the API's shape.
fn chat_error(api: Api, e: ChatError) -> Response {
    match e {
        ChatError::Provider(e) => provider_error(api, e),
        other => api_error(api, ApiError::from(other)),
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    admission: Result<Admission, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const API: Api = Api::OpenAi;
    let admitted = match admission {
        Ok(Admission(a)) => a,
        Err(e) => return api_error(API, e),
    };
    let parsed = match parse_body(API, body).and_then(|b| openai::parse_request(&b).map_err(|e| provider_error(API, e)))
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let asked = parsed.request.model.clone();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    let (answer, called) = match answer(&state, &admitted, "openai", &parsed.request, parsed.stream, &headers).await {
        Ok(x) => x,
        Err(e) => return chat_error(API, e),
    };
    let mut upstream = match answer {
        Answer::Full(r) => {
            let body = openai::render_response_bytes(&r, &id, created, &asked);
            let resp = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
            return with_cache_header(resp, called.cache);
        }
        Answer::Stream(s) => s,
    };
    let ticket = state.stream_ticket();
    let mut renderer = openai::ChunkRenderer::new(id, created, asked, parsed.include_usage);
    let events = async_stream::stream! {
        let _ticket = ticket;
        yield Event::data(&renderer.start());
        let mut failed = false;
        while let Some(ev) = upstream.next().await {
            match ev {
                Ok(ev) => for c in renderer.event(&ev) { yield Event::data(&c); },
                Err(e) => {
                    failed = true;
                    let status = e.http_status();
                    yield data(&openai::error_body(&e.to_string(), openai::error_type(status), None));
                    break;
                }
            }
        }
        if !failed {
            for c in renderer.finish() { yield Event::data(&c); }
        }
        yield Event::data("[DONE]");
    };
    let resp = sse::response(events);
    with_cache_header(resp, called.cache)
}

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    admission: Result<Admission, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const API: Api = Api::Anthropic;
    let admitted = match admission {
        Ok(Admission(a)) => a,
        Err(e) => return api_error(API, e),
    };
    let parsed =
        match parse_body(API, body).and_then(|b| anthropic::parse_request(&b).map_err(|e| provider_error(API, e))) {
            Ok(p) => p,
            Err(r) => return r,
        };
    let asked = parsed.request.model.clone();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let (answer, called) = match answer(&state, &admitted, "anthropic", &parsed.request, parsed.stream, &headers).await
    {
        Ok(x) => x,
        Err(e) => return chat_error(API, e),
    };
    let mut upstream = match answer {
        Answer::Full(r) => {
            let resp = axum::Json(anthropic::render_response(&r, &id, &asked)).into_response();
            return with_cache_header(resp, called.cache);
        }
        Answer::Stream(s) => s,
    };
    let ticket = state.stream_ticket();
    let mut renderer = anthropic::EventRenderer::new(id, asked);
    let ev = |(name, v): (&'static str, Value)| Event::named(name, &v.to_string());
    let events = async_stream::stream! {
        let _ticket = ticket;
        // `message_start` waits for the upstream's first events (the router already waited for the
        // first token), so that it carries the input tokens when the provider reports them up front.
        let mut first = None;
        while let Some(item) = upstream.next().await {
            match item {
                Ok(ChatEvent::Start { .. }) => {}
                Ok(u @ ChatEvent::Usage(_)) => { renderer.event(&u); }
                other => { first = Some(other); break; }
            }
        }
        for e in renderer.start() { yield ev(e); }
        let mut upstream = futures::stream::iter(first).chain(upstream);
        let mut failed = false;
        while let Some(item) = upstream.next().await {
            match item {
                Ok(ChatEvent::Start { .. }) => {}
                Ok(other) => for e in renderer.event(&other) { yield ev(e); },
                Err(e) => {
                    failed = true;
                    yield ev(("error", anthropic::error_body(e.http_status(), &e.to_string())));
                    break;
                }
            }
        }
        if !failed {
            for e in renderer.finish() { yield ev(e); }
        }
    };
    let resp = sse::response(events);
    with_cache_header(resp, called.cache)
}

fn model_json(anthropic_shape: bool, id: &str, provider: &str) -> Value {
    if anthropic_shape {
        json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
    } else {
        json!({"id": id, "object": "model", "created": 0, "owned_by": provider})
    }
}

/// `GET /v1/models`: OpenAI's list shape, or Anthropic's when the request carries `anthropic-version`.
pub async fn list_models(State(state): State<AppState>, headers: HeaderMap, auth: Result<Auth, ApiError>) -> Response {
    let anthropic_shape = headers.contains_key("anthropic-version");
    let api = if anthropic_shape { Api::Anthropic } else { Api::OpenAi };
    if let Err(e) = auth {
        return api_error(api, e);
    }
    let models = state.providers().list_models().await;
    let data: Vec<Value> = models.iter().map(|m| model_json(anthropic_shape, &m.id, &m.provider)).collect();
    if anthropic_shape {
        let first = models.first().map(|m| m.id.clone());
        let last = models.last().map(|m| m.id.clone());
        axum::Json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last})).into_response()
    } else {
        axum::Json(json!({"object": "list", "data": data})).into_response()
    }
}

/// `GET /v1/models/{id}` (`id` may be `provider/model`).
pub async fn get_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<Auth, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let anthropic_shape = headers.contains_key("anthropic-version");
    let api = if anthropic_shape { Api::Anthropic } else { Api::OpenAi };
    if let Err(e) = auth {
        return api_error(api, e);
    }
    let models = state.providers().list_models().await;
    let found = models.iter().find(|m| m.id == id || format!("{}/{}", m.provider, m.id) == id);
    match found {
        Some(m) => axum::Json(model_json(anthropic_shape, &id, &m.provider)).into_response(),
        None => error(api, StatusCode::NOT_FOUND, &format!("The model `{id}` does not exist")),
    }
}

/// An error in OpenAI's shape (the compatible media endpoints).
pub(crate) fn openai_error(status: StatusCode, message: &str) -> Response {
    error(Api::OpenAi, status, message)
}

/// The texts of an embeddings request's `input`: a string or an array of strings. Token arrays (the
/// other forms OpenAI takes) are refused: Gaia routes to any model, and token ids are one model's.
fn embedding_inputs(v: Option<&Value>) -> Result<Vec<String>, String> {
    const TOKENS: &str =
        "`input` as token ids is not supported (token ids belong to one model's tokenizer): send the text";
    match v {
        None | Some(Value::Null) => Err("`input` is required".into()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err("`input` must not be empty".into());
            }
            if items.len() > gaia_providers::embeddings::MAX_EMBEDDING_INPUTS {
                return Err(format!(
                    "`input` may hold at most {} texts",
                    gaia_providers::embeddings::MAX_EMBEDDING_INPUTS
                ));
            }
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(_) | Value::Array(_) => Err(TOKENS.to_string()),
                    _ => Err("`input` must be a string or an array of strings".to_string()),
                })
                .collect()
        }
        Some(Value::Number(_)) => Err(TOKENS.into()),
        Some(_) => Err("`input` must be a string or an array of strings".into()),
    }
}

/// `POST /v1/embeddings`: OpenAI's Embeddings API (`input` a string or strings, `model`,
/// `dimensions`, `encoding_format` `float` or `base64`, `user`), through the engine: cached by content
/// hash (`x-gaia-cache: off` skips the cache), routed with fallbacks, metered as `embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    admission: Result<Admission, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const API: Api = Api::OpenAi;
    let bad = |m: &str| error(API, StatusCode::BAD_REQUEST, m);
    let admitted = match admission {
        Ok(Admission(a)) => a,
        Err(e) => return api_error(API, e),
    };
    let body = match parse_body(API, body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return bad("the request body must be a JSON object"),
        Err(r) => return r,
    };
    let input = match embedding_inputs(body.get("input")) {
        Ok(i) => i,
        Err(m) => return bad(&m),
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        None | Some(Value::Null) => match state.config().embeddings.model.clone() {
            Some(m) => m,
            None => return bad("`model` is required"),
        },
        Some(_) => return bad("`model` must be a model name"),
    };
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => return bad("`encoding_format` must be float or base64"),
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|d| u32::try_from(d).ok()) {
            Some(d) => Some(d),
            None => return bad("`dimensions` must be a positive integer"),
        },
    };
    let user = match body.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u.chars().take(256).collect::<String>()),
        Some(_) => return bad("`user` must be a string"),
    };
    let spec = gaia_chat::EmbedSpec {
        dimensions,
        cache: cache_preference(&headers) != Some(false),
        user: user.as_deref(),
        ..gaia_chat::EmbedSpec::new("embeddings", &model)
    };
    let made = match state.engine().embed(&admitted, spec, &input).await {
        Ok(m) => m,
        Err(e) => return chat_error(API, e),
    };
    let answer =
        gaia_providers::embeddings::openai_embedding_list(&made.vectors, base64, &model, made.usage.input_tokens);
    let status = if made.cached == input.len() { CacheStatus::Hit } else { CacheStatus::Miss };
    let body = match answer {
        Ok(b) => b,
        Err(e) => return error(API, StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot write the answer: {e}")),
    };
    let mut resp = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    if let Ok(n) = HeaderValue::from_str(&made.cached.to_string()) {
        resp.headers_mut().insert("x-gaia-cached-inputs", n);
    }
    with_cache_header(resp, status)
}
