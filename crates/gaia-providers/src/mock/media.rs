//! The mock's media routes, in the vendors' wire formats:
//!
//! - OpenAI `POST /v1/images/generations`: `n` PNG images of the requested `size` (default
//!   `1024x1024`, sides 16 to 4096), one colour drawn from the prompt, as `b64_json` or as a `url`
//!   served by `GET /v1/files/mock-images/{name}` (DALL·E's default is `url`, GPT Image's
//!   `b64_json`); `revised_prompt` is the prompt.
//! - OpenAI `POST /v1/audio/speech`: `mp3` (an ID3v2 tag holding the text, then silent MPEG frames),
//!   `wav` (8 kHz 8-bit mono silence with the text in a `LIST`/`INFO`/`ICMT` chunk) or `pcm`; other
//!   formats get a 400 (the mock does not encode them). The audio lasts 0.4 s per word.
//! - OpenAI `POST /v1/audio/transcriptions` (multipart `file`, `model`, `response_format`): the text
//!   the mock's own speech put in the file (so speech then transcription round-trips), else
//!   `Mock transcription of N bytes.`; `json` (with `usage.seconds`), `verbose_json` (with
//!   `duration`), `text`, `srt` or `vtt`.
//! - Meshy `POST /openapi/v2/text-to-3d` (`{"mode": "preview", "prompt"}` → `{"result": id}`),
//!   `GET /openapi/v2/text-to-3d/{id}` (the task object: `PENDING`, `IN_PROGRESS` with `progress`,
//!   then `SUCCEEDED` with `model_urls.glb` and `thumbnail_url` after the task duration,
//!   [`super::MockHandle::set_model_3d_duration`]; a prompt containing `fail` ends `FAILED`),
//!   `DELETE` of a task, `GET /openapi/v1/balance`; the model is a minimal binary glTF served by
//!   `GET /mock-assets/{id}.glb`.
//!
//! Model names with `mock-error-NNN` fail with that status, as on the chat routes.

use super::{authorised, error_response, fault_for, Fault, MockState, Vendor};
use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a 3D task takes unless set otherwise.
const DEFAULT_TASK_DURATION: Duration = Duration::from_millis(300);

/// The most image pixels the mock draws for one request (its answers stay small).
const MAX_PIXELS: u64 = 16 * 1024 * 1024;

/// The media side of the mock's state.
#[derive(Default)]
pub(super) struct MediaState {
    pub(super) requests: AtomicU64,
    pub(super) task_duration: Mutex<Option<Duration>>,
    pub(super) tasks: Mutex<HashMap<String, MockTask>>,
    images: Mutex<HashMap<String, Bytes>>,
}

pub(super) struct MockTask {
    created: Instant,
    created_ms: i64,
    prompt: String,
    model: String,
}

pub(super) fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/v1/images/generations", post(images))
        .route("/v1/files/mock-images/{name}", get(image_file))
        .route("/v1/audio/speech", post(speech))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/openapi/v2/text-to-3d", post(create_task))
        .route("/openapi/v2/text-to-3d/{id}", get(get_task).delete(delete_task))
        .route("/openapi/v1/balance", get(balance))
        .route("/mock-assets/{file}", get(task_file))
}

fn bad(message: &str) -> Response {
    error_response(Vendor::OpenAi, 400, message)
}

/// Key and fault checks of a media request; `Err` is the answer.
fn admit(state: &MockState, headers: &HeaderMap, model: &str) -> Result<(), Response> {
    if !authorised(state, Vendor::OpenAi, headers) {
        return Err(error_response(Vendor::OpenAi, 401, "invalid API key"));
    }
    state.media.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(Fault::Status(code)) = fault_for(state, model) {
        return Err(error_response(Vendor::OpenAi, code, &format!("mock error {code}")));
    }
    Ok(())
}

fn json_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| bad(&format!("the body is not JSON: {e}")))
}

/// A colour from the prompt's bytes, so different prompts draw different images.
fn colour(prompt: &str) -> [u8; 3] {
    let h = prompt.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    [(h >> 16) as u8, (h >> 8) as u8, h as u8]
}

/// A PNG of `w`×`h` in one colour.
pub fn png(w: u32, h: u32, rgb: [u8; 3]) -> Bytes {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    match img.write_to(&mut out, image::ImageFormat::Png) {
        Ok(()) => Bytes::from(out.into_inner()),
        Err(_) => Bytes::new(),
    }
}

fn parse_size(size: Option<&str>) -> Option<(u32, u32)> {
    let size = size.unwrap_or("1024x1024");
    if size == "auto" {
        return Some((1024, 1024));
    }
    let (w, h) = size.split_once('x')?;
    let (w, h) = (w.parse::<u32>().ok()?, h.parse::<u32>().ok()?);
    ((16..=4096).contains(&w) && (16..=4096).contains(&h)).then_some((w, h))
}

async fn images(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let model = v.get("model").and_then(Value::as_str).unwrap_or("dall-e-2").to_string();
    if let Err(r) = admit(&state, &headers, &model) {
        return r;
    }
    let Some(prompt) = v.get("prompt").and_then(Value::as_str).filter(|p| !p.trim().is_empty()) else {
        return bad("`prompt` is required");
    };
    let n = v.get("n").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=10).contains(&n) {
        return bad("`n` must be between 1 and 10");
    }
    let Some((w, h)) = parse_size(v.get("size").and_then(Value::as_str)) else {
        return bad("`size` must be WIDTHxHEIGHT with sides from 16 to 4096, or auto");
    };
    if u64::from(w) * u64::from(h) * n > MAX_PIXELS {
        return bad("the mock draws at most 16 megapixels per request");
    }
    let gpt_image = model.starts_with("gpt-image");
    let format = v.get("response_format").and_then(Value::as_str).unwrap_or(if gpt_image { "b64_json" } else { "url" });
    if gpt_image && v.get("response_format").is_some() {
        return bad("Unknown parameter: 'response_format'.");
    }
    let png = png(w, h, colour(prompt));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let mut data = Vec::new();
    for i in 0..n {
        let item = if format == "b64_json" {
            use base64::Engine as _;
            json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(&png), "revised_prompt": prompt})
        } else if format == "url" {
            let name = format!("{}-{i}.png", uuid::Uuid::new_v4().simple());
            let mut stored = state.media.images.lock().unwrap_or_else(|e| e.into_inner());
            if stored.len() >= 256 {
                stored.clear();
            }
            stored.insert(name.clone(), png.clone());
            json!({"url": format!("http://{host}/v1/files/mock-images/{name}"), "revised_prompt": prompt})
        } else {
            return bad("`response_format` must be url or b64_json");
        };
        data.push(item);
    }
    let mut body = json!({"created": chrono::Utc::now().timestamp(), "data": data});
    if gpt_image {
        let words = prompt.split_whitespace().count() as u64;
        body["usage"] = json!({"input_tokens": words, "output_tokens": 1056 * n, "total_tokens": words + 1056 * n,
                               "input_tokens_details": {"text_tokens": words, "image_tokens": 0}});
    }
    axum::Json(body).into_response()
}

async fn image_file(State(state): State<Arc<MockState>>, Path(name): Path<String>) -> Response {
    match state.media.images.lock().unwrap_or_else(|e| e.into_inner()).get(&name) {
        Some(b) => ([(header::CONTENT_TYPE, "image/png")], b.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// Seconds of audio the mock speaks `text` in.
fn spoken_seconds(text: &str) -> f64 {
    (text.split_whitespace().count().max(1) as f64) * 0.4
}

/// 8 kHz 8-bit mono silence of `secs`, with `text` in a `LIST`/`INFO`/`ICMT` chunk.
pub fn wav(text: &str, secs: f64) -> Vec<u8> {
    let samples = (secs * 8000.0) as u32;
    let mut icmt = text.as_bytes().to_vec();
    icmt.push(0);
    if icmt.len() % 2 == 1 {
        icmt.push(0);
    }
    let list_len = 4 + 8 + icmt.len() as u32;
    let data_len = samples + samples % 2;
    let mut w = Vec::with_capacity(64 + icmt.len() + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(4 + 24 + 8 + list_len + 8 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(b"LIST");
    w.extend_from_slice(&list_len.to_le_bytes());
    w.extend_from_slice(b"INFOICMT");
    w.extend_from_slice(&(icmt.len() as u32).to_le_bytes());
    w.extend_from_slice(&icmt);
    w.extend_from_slice(b"data");
    w.extend_from_slice(&samples.to_le_bytes());
    w.extend(std::iter::repeat_n(128u8, data_len as usize));
    w
}

/// One silent MPEG-1 Layer III frame (128 kb/s, 44.1 kHz, mono): 417 bytes, 1152 samples.
const MP3_FRAME_LEN: usize = 417;
const MP3_FRAME_SECS: f64 = 1152.0 / 44100.0;

fn syncsafe(n: usize) -> [u8; 4] {
    [((n >> 21) & 0x7f) as u8, ((n >> 14) & 0x7f) as u8, ((n >> 7) & 0x7f) as u8, (n & 0x7f) as u8]
}

/// An ID3v2.4 tag whose title (`TIT2`, UTF-8) is `text`, then silent MPEG frames for `secs`.
pub fn mp3(text: &str, secs: f64) -> Vec<u8> {
    let mut frame = vec![3u8];
    frame.extend_from_slice(text.as_bytes());
    let mut out = Vec::new();
    out.extend_from_slice(b"ID3\x04\x00\x00");
    out.extend_from_slice(&syncsafe(10 + frame.len()));
    out.extend_from_slice(b"TIT2");
    out.extend_from_slice(&syncsafe(frame.len()));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&frame);
    let frames = (secs / MP3_FRAME_SECS).ceil() as usize;
    for _ in 0..frames {
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0xC4]);
        out.extend(std::iter::repeat_n(0u8, MP3_FRAME_LEN - 4));
    }
    out
}

/// The text the mock's speech put in `audio`, if it made it.
fn embedded_text(audio: &[u8]) -> Option<String> {
    if audio.starts_with(b"ID3") && audio.len() > 21 && &audio[10..14] == b"TIT2" {
        let n = audio[14..18].iter().fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
        let body = audio.get(21..20 + n)?;
        return String::from_utf8(body.to_vec()).ok();
    }
    let at = audio.windows(8).position(|w| w == b"INFOICMT")?;
    let len = u32::from_le_bytes(audio.get(at + 8..at + 12)?.try_into().ok()?) as usize;
    let body = audio.get(at + 12..at + 12 + len)?;
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    String::from_utf8(body[..end].to_vec()).ok()
}

/// The length of `audio` in seconds: WAV from its header, the mock's MP3 from its frames, else as
/// if it were 128 kb/s.
fn audio_seconds(audio: &[u8]) -> f64 {
    if let Some(s) = crate::media::wav_seconds(audio) {
        return s;
    }
    if audio.starts_with(b"ID3") && audio.len() >= 10 {
        let tag = 10 + audio[6..10].iter().fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
        return (audio.len().saturating_sub(tag) / MP3_FRAME_LEN) as f64 * MP3_FRAME_SECS;
    }
    audio.len() as f64 / 16_000.0
}

async fn speech(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let v = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let model = v.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Err(r) = admit(&state, &headers, &model) {
        return r;
    }
    let Some(input) = v.get("input").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return bad("`input` is required");
    };
    if input.chars().count() > 4096 {
        return bad("`input` is longer than 4096 characters");
    }
    if v.get("voice").and_then(Value::as_str).is_none_or(str::is_empty) {
        return bad("`voice` is required");
    }
    let secs = spoken_seconds(input);
    let (bytes, media_type) = match v.get("response_format").and_then(Value::as_str).unwrap_or("mp3") {
        "mp3" => (mp3(input, secs), "audio/mpeg"),
        "wav" => (wav(input, secs), "audio/wav"),
        "pcm" => (vec![0u8; (secs * 48_000.0) as usize], "audio/pcm"),
        other => return bad(&format!("the mock speaks mp3, wav or pcm, not `{other}`")),
    };
    ([(header::CONTENT_TYPE, media_type)], bytes).into_response()
}

async fn transcriptions(State(state): State<Arc<MockState>>, headers: HeaderMap, mut form: Multipart) -> Response {
    let (mut file, mut model, mut format) = (None, String::new(), "json".to_string());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let Ok(data) = field.bytes().await else { return bad("cannot read the form") };
                match name.as_str() {
                    "file" => file = Some(data),
                    "model" => model = String::from_utf8_lossy(&data).into_owned(),
                    "response_format" => format = String::from_utf8_lossy(&data).into_owned(),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return bad(&format!("not a multipart form: {e}")),
        }
    }
    if let Err(r) = admit(&state, &headers, &model) {
        return r;
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else { return bad("`file` is required") };
    if model.is_empty() {
        return bad("`model` is required");
    }
    let text = embedded_text(&file).unwrap_or_else(|| format!("Mock transcription of {} bytes.", file.len()));
    let secs = (audio_seconds(&file) * 1000.0).round() / 1000.0;
    let stamp = |s: f64, sep: char| {
        let ms = (s * 1000.0) as u64;
        format!("{:02}:{:02}:{:02}{sep}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    };
    match format.as_str() {
        "json" => axum::Json(json!({"text": text, "usage": {"type": "duration", "seconds": secs.ceil() as u64}}))
            .into_response(),
        "verbose_json" => axum::Json(json!({
            "task": "transcribe", "language": "english", "duration": secs, "text": text,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": secs, "text": text, "tokens": [],
                          "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.01}],
            "usage": {"type": "duration", "seconds": secs.ceil() as u64}
        }))
        .into_response(),
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response(),
        "srt" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("1\n{} --> {}\n{text}\n\n", stamp(0.0, ','), stamp(secs, ',')),
        )
            .into_response(),
        "vtt" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("WEBVTT\n\n{} --> {}\n{text}\n\n", stamp(0.0, '.'), stamp(secs, '.')),
        )
            .into_response(),
        other => bad(&format!("`response_format` `{other}` is not one of json, text, srt, verbose_json, vtt")),
    }
}

/// Meshy's error shape: `{"message": …}`.
fn meshy_error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (code, axum::Json(json!({"message": message}))).into_response()
}

fn meshy_admit(state: &MockState, headers: &HeaderMap) -> Result<(), Response> {
    if authorised(state, Vendor::OpenAi, headers) {
        Ok(())
    } else {
        Err(meshy_error(401, "Invalid API key"))
    }
}

async fn create_task(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = meshy_admit(&state, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return meshy_error(400, "Invalid JSON") };
    let model = v.get("ai_model").and_then(Value::as_str).unwrap_or("latest").to_string();
    if let Some(Fault::Status(code)) = fault_for(&state, &model) {
        return meshy_error(code, &format!("mock error {code}"));
    }
    if v.get("mode").and_then(Value::as_str) != Some("preview") {
        return meshy_error(400, "mode must be preview");
    }
    let Some(prompt) = v.get("prompt").and_then(Value::as_str).filter(|p| !p.trim().is_empty()) else {
        return meshy_error(400, "prompt is required");
    };
    if prompt.chars().count() > 600 {
        return meshy_error(400, "prompt is longer than 600 characters");
    }
    state.media.requests.fetch_add(1, Ordering::Relaxed);
    let id = uuid::Uuid::now_v7().to_string();
    let task = MockTask {
        created: Instant::now(),
        created_ms: chrono::Utc::now().timestamp_millis(),
        prompt: prompt.to_string(),
        model,
    };
    state.media.tasks.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), task);
    (StatusCode::ACCEPTED, axum::Json(json!({"result": id}))).into_response()
}

async fn get_task(State(state): State<Arc<MockState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = meshy_admit(&state, &headers) {
        return r;
    }
    let duration = state.media.task_duration.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(DEFAULT_TASK_DURATION);
    let tasks = state.media.tasks.lock().unwrap_or_else(|e| e.into_inner());
    let Some(t) = tasks.get(&id) else { return meshy_error(404, "Task not found") };
    let elapsed = t.created.elapsed();
    let fraction = if duration.is_zero() { 1.0 } else { elapsed.as_secs_f64() / duration.as_secs_f64() };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let credits = crate::meshy::preview_credits(&t.model);
    let mut task = json!({
        "id": id, "mode": "preview", "name": "", "art_style": "realistic", "prompt": t.prompt,
        "created_at": t.created_ms, "started_at": t.created_ms, "finished_at": 0, "preceding_tasks": 0,
        "model_urls": {"glb": "", "fbx": "", "obj": "", "mtl": "", "usdz": ""}, "thumbnail_url": "",
        "texture_urls": [], "task_error": {"message": ""}, "consumed_credits": credits,
    });
    if fraction < 0.1 {
        task["status"] = json!("PENDING");
        task["progress"] = json!(0);
    } else if fraction < 1.0 {
        task["status"] = json!("IN_PROGRESS");
        task["progress"] = json!(((fraction * 100.0) as u64).min(99));
    } else if t.prompt.to_lowercase().contains("fail") {
        task["status"] = json!("FAILED");
        task["progress"] = json!(0);
        task["task_error"] = json!({"message": "The mock could not model this prompt."});
    } else {
        task["status"] = json!("SUCCEEDED");
        task["progress"] = json!(100);
        task["finished_at"] = json!(t.created_ms + duration.as_millis() as i64);
        task["model_urls"]["glb"] = json!(format!("http://{host}/mock-assets/{id}.glb"));
        task["thumbnail_url"] = json!(format!("http://{host}/mock-assets/{id}.png"));
    }
    axum::Json(task).into_response()
}

async fn delete_task(State(state): State<Arc<MockState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = meshy_admit(&state, &headers) {
        return r;
    }
    match state.media.tasks.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
        Some(_) => StatusCode::OK.into_response(),
        None => meshy_error(404, "Task not found"),
    }
}

async fn balance(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    if let Err(r) = meshy_admit(&state, &headers) {
        return r;
    }
    axum::Json(json!({"balance": 1000})).into_response()
}

/// The smallest valid binary glTF 2.0: one empty scene.
pub fn glb() -> Vec<u8> {
    let mut doc = br#"{"asset":{"version":"2.0","generator":"gaia mock"},"scene":0,"scenes":[{"nodes":[]}]}"#.to_vec();
    while doc.len() % 4 != 0 {
        doc.push(b' ');
    }
    let total = 12 + 8 + doc.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(doc.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&doc);
    out
}

async fn task_file(State(state): State<Arc<MockState>>, Path(file): Path<String>) -> Response {
    let (id, ext) = file.rsplit_once('.').unwrap_or((file.as_str(), ""));
    let prompt = match state.media.tasks.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        Some(t) => t.prompt.clone(),
        None => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let (body, media_type) = match ext {
        "glb" => (Bytes::from(glb()), "model/gltf-binary"),
        "png" => (png(64, 64, colour(&prompt)), "image/png"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_carries_its_text_for_transcription() {
        let m = mp3("Halt, traveller", 0.8);
        assert_eq!(embedded_text(&m).as_deref(), Some("Halt, traveller"));
        assert!((audio_seconds(&m) - 0.8).abs() < 0.03, "{}", audio_seconds(&m));
        let w = wav("Welcome back — ünïcode", 1.2);
        assert_eq!(embedded_text(&w).as_deref(), Some("Welcome back — ünïcode"));
        assert!((audio_seconds(&w) - 1.2).abs() < 0.001);
        assert_eq!(embedded_text(b"RIFF"), None);
        assert_eq!(embedded_text(b"ID3\x04\x00\x00\x00\x00\x00\x7fTIT2\x7f\x7f\x7f\x7f"), None);
    }

    #[test]
    fn images_and_models_are_valid_files() {
        let p = png(32, 16, [1, 2, 3]);
        let img = image::load_from_memory(&p).unwrap();
        assert_eq!((img.width(), img.height()), (32, 16));
        let g = glb();
        assert_eq!(&g[0..4], b"glTF");
        assert_eq!(u32::from_le_bytes(g[8..12].try_into().unwrap()) as usize, g.len());
        assert_eq!(parse_size(Some("4097x16")), None);
        assert_eq!(parse_size(Some("256x512")), Some((256, 512)));
    }
}
