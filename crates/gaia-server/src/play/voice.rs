//! NPC voices on the game socket (`voice=true` in its query): each line an NPC says (`npc_speech`)
//! is spoken by the speech model (`[assets]`' speech model, through the provider registry; admitted,
//! metered and priced as the player's speech asset), then sent, after the line's text, as
//! `npc_visemes {npc_id, line_id, duration_ms, visemes: [{start_ms, viseme}]}` (the mouth shapes of
//! the line, timed over its audio, for the client's lip-sync) and `npc_audio {npc_id, line_id, seq,
//! format: "wav", data, last}` frames (`data`: base64 of at most [`AUDIO_CHUNK`] bytes of the WAV
//! file, in order). A line that cannot be spoken gets `npc_audio {npc_id, line_id, error}` instead.
//! Speaking runs beside the socket's other work: the socket keeps answering meanwhile.

use super::hub::{now_ms, Out, Outbox};
use crate::state::AppState;
use gaia_core::auth::Principal;
use serde_json::{json, Value};
use std::sync::Arc;

/// Bytes of audio per `npc_audio` frame (16 KiB of base64 at most).
pub(crate) const AUDIO_CHUNK: usize = 12 * 1024;
/// Most audio sent for one line (about 90 s of 24 kHz 16-bit speech); the rest is cut.
const MAX_LINE_AUDIO: usize = 4 * 1024 * 1024;
/// Longest wait for the socket to take queued audio before a line's rest is dropped.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest line spoken, in characters (the rest is not voiced).
const MAX_SPOKEN_CHARS: usize = 2_000;

fn frame(v: Value) -> Out {
    Out::Frame(Arc::from(v.to_string()))
}

/// Speaks the lines of `speech` frames (`{npc_id, text, voice}`) for `p`, in order, into `outbox`;
/// one socket's lines are spoken one after another (`speaking`), and the audio waits while the
/// socket's queue is over half full (so a long line never overflows it).
pub(crate) fn speak(
    state: &AppState,
    p: &Principal,
    outbox: &Arc<Outbox>,
    speaking: &Arc<tokio::sync::Mutex<()>>,
    lines: Vec<Value>,
) {
    if lines.is_empty() {
        return;
    }
    let (state, p, outbox, speaking) = (state.clone(), p.clone(), outbox.clone(), speaking.clone());
    tokio::spawn(async move {
        let _one = speaking.lock().await;
        for line in lines {
            let (Some(npc), Some(text)) = (line["npc_id"].as_str(), line["text"].as_str()) else { continue };
            let line_id = uuid::Uuid::new_v4().to_string();
            let text: String = text.chars().take(MAX_SPOKEN_CHARS).collect();
            let mut options = serde_json::Map::new();
            options.insert("format".into(), json!("wav"));
            if let Some(v) = line["voice"].as_str() {
                options.insert("voice".into(), json!(v));
            }
            let req = gaia_assets::AssetRequest {
                kind: Some(gaia_core::storage::AssetKind::Speech),
                prompt: text.clone(),
                model: None,
                options,
            };
            let audio = match state.assets().speak(&p, Default::default(), &req).await {
                Ok((_, audio)) => audio,
                Err(e) => {
                    tracing::info!(error = %e, npc, "an NPC line could not be spoken");
                    outbox.push(frame(json!({"type": "npc_audio", "npc_id": npc, "line_id": line_id,
                                             "error": e.to_string(), "timestamp": now_ms()})));
                    continue;
                }
            };
            let seconds = gaia_providers::media::wav_seconds(&audio);
            let visemes = gaia_assets::visemes::visemes(&text, seconds);
            let duration_ms = seconds.map(|s| (s * 1000.0).round() as u64);
            outbox.push(frame(json!({"type": "npc_visemes", "npc_id": npc, "line_id": line_id,
                                     "duration_ms": duration_ms, "visemes": visemes, "timestamp": now_ms()})));
            let chunks: Vec<&[u8]> = audio[..audio.len().min(MAX_LINE_AUDIO)].chunks(AUDIO_CHUNK).collect();
            let n = chunks.len();
            for (seq, chunk) in chunks.into_iter().enumerate() {
                use base64::Engine as _;
                let waited = std::time::Instant::now();
                while outbox.busy() {
                    if waited.elapsed() > DRAIN_WAIT {
                        tracing::info!(npc, "a socket does not take an NPC's audio; the rest of the line is dropped");
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let data = base64::engine::general_purpose::STANDARD.encode(chunk);
                outbox.push(frame(json!({"type": "npc_audio", "npc_id": npc, "line_id": line_id, "seq": seq,
                                         "format": "wav", "data": data, "last": seq + 1 == n})));
            }
        }
    });
}
