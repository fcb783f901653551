//! OpenAI's media endpoints, wire-compatible so the official SDKs work with only `base_url` and
//! `api_key` changed: `POST /v1/images/generations`, `POST /v1/audio/speech` and
//! `POST /v1/audio/transcriptions` (multipart). Each generation is an asset (`gaia_assets`): admitted,
//! metered, priced and stored like those of `/api/v1/assets`; errors come in OpenAI's shape.

// Handlers return early with a ready `Response` as the error value, the usual axum idiom.
#![allow(clippy::result_large_err)]

use crate::routes::compat::openai_error;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gaia_assets::{AssetError, AssetRequest, TranscriptionAsk};
use gaia_core::auth::Principal;
use gaia_core::storage::AssetKind;
use serde_json::{json, Map, Value};

fn fail(e: AssetError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = openai_error(status, &e.to_string());
    if let AssetError::Refused(r) = &e {
        for (k, v) in &r.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                resp.headers_mut().insert(*k, v);
            }
        }
    }
    resp
}

fn bad(message: &str) -> Response {
    openai_error(StatusCode::BAD_REQUEST, message)
}

fn json_body(body: &Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, Response> {
    let bytes = body.as_ref().map_err(|r| openai_error(r.status(), &r.body_text()))?;
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the request body must be a JSON object")),
        Err(e) => Err(bad(&format!("request body is not valid JSON: {e}"))),
    }
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, Response> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(&format!("`{k}` must be a string"))),
    }
}

fn auth(p: Result<crate::extract::Auth, crate::error::ApiError>) -> Result<Principal, Response> {
    p.map(|a| a.0).map_err(|e| openai_error(e.status, &e.message))
}

/// What every JSON media request starts with: the caller, the body as an object, and who the call is
/// for (`x-gaia-end-user` or the body's `user`, and `x-gaia-tags`).
fn begin(
    p: Result<crate::extract::Auth, crate::error::ApiError>,
    body: &Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
) -> Result<(Principal, Map<String, Value>, gaia_core::attribution::Attribution), Response> {
    let p = auth(p)?;
    let m = json_body(body)?;
    let attribution =
        crate::admission::attribution(headers, body.as_deref().ok()).map_err(|e| openai_error(e.status, &e.message))?;
    Ok((p, m, attribution))
}

/// The scheme and host clients reached this server at, for absolute URLs in answers.
fn origin(state: &AppState, headers: &HeaderMap) -> String {
    let scheme = if state.config().server.tls.is_some() { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
        .unwrap_or(&state.config().server.bind)
        .to_string();
    format!("{scheme}://{host}")
}

/// `POST /v1/images/generations`: `data` holds each image as `b64_json`, or as a `url` (a signed,
/// time-limited Gaia URL of the stored image), as `response_format` asks (default: `url`, as DALL·E;
/// `b64_json` for GPT Image models).
pub async fn images(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Result<crate::extract::Auth, crate::error::ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (p, m, attribution) = match begin(p, &body, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let parsed = (|| -> Result<(AssetRequest, bool), Response> {
        let prompt = text(&m, "prompt")?.ok_or_else(|| bad("`prompt` is required"))?;
        let model = text(&m, "model")?.map(str::to_string);
        let format = text(&m, "response_format")?;
        let b64 = match format {
            Some("b64_json") => true,
            Some("url") => false,
            None => model.as_deref().is_some_and(|m| m.rsplit('/').next().unwrap_or(m).starts_with("gpt-image")),
            Some(other) => return Err(bad(&format!("`response_format` must be url or b64_json, not `{other}`"))),
        };
        let mut options = Map::new();
        for k in ["n", "size", "quality", "style"] {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                options.insert(k.into(), v.clone());
            }
        }
        let req = AssetRequest { kind: Some(AssetKind::Image), prompt: prompt.to_string(), model, options };
        Ok((req, b64))
    })();
    let (req, b64) = match parsed {
        Ok(x) => x,
        Err(r) => return r,
    };
    let made = match state.assets().images_with_bytes(&p, attribution, &req).await {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let origin = origin(&state, &headers);
    let data: Vec<Value> = made
        .iter()
        .map(|(a, bytes)| {
            let revised = a.options.get("revised_prompt").cloned().unwrap_or(Value::Null);
            if b64 {
                use base64::Engine as _;
                json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(bytes), "revised_prompt": revised})
            } else {
                let signed = state.assets().sign_url(&a.id, false, None);
                json!({"url": format!("{origin}{}", signed.url), "revised_prompt": revised})
            }
        })
        .collect();
    let mut resp = axum::Json(json!({"created": chrono::Utc::now().timestamp(), "data": data})).into_response();
    if let Ok(ids) = HeaderValue::from_str(&made.iter().map(|(a, _)| a.id.as_str()).collect::<Vec<_>>().join(",")) {
        resp.headers_mut().insert("x-gaia-asset-ids", ids);
    }
    resp
}

/// `POST /v1/audio/speech`: the audio itself, in `response_format` (default `mp3`).
pub async fn speech(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Result<crate::extract::Auth, crate::error::ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (p, m, attribution) = match begin(p, &body, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let parsed = (|| -> Result<AssetRequest, Response> {
        let input = text(&m, "input")?.filter(|s| !s.is_empty()).ok_or_else(|| bad("`input` is required"))?;
        let mut options = Map::new();
        for (from, to) in
            [("voice", "voice"), ("response_format", "format"), ("speed", "speed"), ("instructions", "instructions")]
        {
            if let Some(v) = m.get(from).filter(|v| !v.is_null()) {
                options.insert(to.into(), v.clone());
            }
        }
        Ok(AssetRequest {
            kind: Some(AssetKind::Speech),
            prompt: input.to_string(),
            model: text(&m, "model")?.map(str::to_string),
            options,
        })
    })();
    let req = match parsed {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.assets().speak(&p, attribution, &req).await {
        Ok((a, audio)) => {
            let media_type = a.media_type.clone().unwrap_or_else(|| "audio/mpeg".into());
            let mut resp = audio.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&media_type).unwrap_or(HeaderValue::from_static("audio/mpeg")),
            );
            if let Ok(id) = HeaderValue::from_str(&a.id) {
                h.insert("x-gaia-asset-id", id);
            }
            resp
        }
        Err(e) => fail(e),
    }
}

/// `POST /v1/audio/transcriptions` (multipart: `file`, `model`, `language`, `prompt`,
/// `response_format` json, text, verbose_json, srt or vtt, `temperature`).
pub async fn transcriptions(
    State(state): State<AppState>,
    p: Result<crate::extract::Auth, crate::error::ApiError>,
    req: Request,
) -> Response {
    let p = match auth(p) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let headers = req.headers().clone();
    let limit = state.config().assets.max_audio_bytes;
    let mut form = match Multipart::from_request(req, &state).await {
        Ok(f) => f,
        Err(e) => return bad(&format!("send the audio as multipart/form-data: {}", e.body_text())),
    };
    let mut ask = TranscriptionAsk::default();
    let mut format = "json".to_string();
    let mut user: Option<String> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return openai_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("audio may be at most {limit} bytes"))
            }
            Err(e) => return bad(&e.body_text()),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            ask.file_name = field.file_name().unwrap_or("audio.mp3").chars().take(255).collect();
        }
        let data = match field.bytes().await {
            Ok(d) => d,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return openai_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("audio may be at most {limit} bytes"))
            }
            Err(e) => return bad(&e.body_text()),
        };
        let as_text = || String::from_utf8_lossy(&data).chars().take(4096).collect::<String>();
        match name.as_str() {
            "file" => ask.audio = data,
            "model" => ask.model = Some(as_text()),
            "language" => ask.language = Some(as_text()),
            "prompt" => ask.prompt = Some(as_text()),
            "response_format" => format = as_text(),
            "temperature" => ask.temperature = as_text().trim().parse().ok(),
            "user" => user = Some(as_text()),
            _ => {}
        }
    }
    if !matches!(format.as_str(), "json" | "text" | "verbose_json" | "srt" | "vtt") {
        return bad(&format!("`response_format` must be json, text, verbose_json, srt or vtt, not `{format}`"));
    }
    let user_body = user.map(|u| json!({"user": u}).to_string());
    let attribution = match crate::admission::attribution(&headers, user_body.as_deref().map(str::as_bytes)) {
        Ok(a) => a,
        Err(e) => return openai_error(e.status, &e.message),
    };
    let (asset, t) = match state.assets().transcribe(&p, attribution, ask).await {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let seconds = asset.units;
    let stamp = |s: f64, sep: char| {
        let ms = (s * 1000.0) as u64;
        format!("{:02}:{:02}:{:02}{sep}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    };
    let plain = |body: String| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    let mut resp = match format.as_str() {
        "text" => plain(format!("{}\n", t.text)),
        "srt" => plain(format!("1\n{} --> {}\n{}\n\n", stamp(0.0, ','), stamp(seconds, ','), t.text)),
        "vtt" => plain(format!("WEBVTT\n\n{} --> {}\n{}\n\n", stamp(0.0, '.'), stamp(seconds, '.'), t.text)),
        "verbose_json" => axum::Json(json!({
            "task": "transcribe", "language": t.language.clone().unwrap_or_else(|| "english".into()),
            "duration": t.seconds.unwrap_or(seconds), "text": t.text,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": t.seconds.unwrap_or(seconds), "text": t.text}],
            "usage": {"type": "duration", "seconds": seconds as u64}
        }))
        .into_response(),
        _ => axum::Json(json!({"text": t.text, "usage": {"type": "duration", "seconds": seconds as u64}}))
            .into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&asset.id) {
        resp.headers_mut().insert("x-gaia-asset-id", id);
    }
    resp
}
