//! NPC voices on the game socket (`voice=true` in its query): each line an NPC says (`npc_speech`)
//! is spoken by the speech model (`[assets]`' speech model, through the provider registry; admitted,
//! metered and priced as the player's speech asset), then sent, after the line's text, as
//! `npc_visemes {npc_id, line_id, duration_ms, visemes: [{start_ms, viseme}]}` (the mouth shapes of
//! the line, timed over its audio, for the client's lip-sync) and `npc_audio {npc_id, line_id, seq,
//! format: "wav", data, last}` frames (`data`: base64 of at most [`AUDIO_CHUNK`] bytes of the WAV
//! file, in order). A line that cannot be spoken gets `npc_audio {npc_id, line_id, error}` instead.
//! Speaking runs beside the socket's other work: the socket keeps answering meanwhile.
//!
//! While a command that calls a model runs, what it says reaches the client as it is made ([`Live`]):
//! the NPC's answer as `npc_speech_delta {npc_id, line_id, delta}` frames, and with voice its
//! sentences spoken one by one as they complete ([`Sentences`]; their `npc_visemes` carry the
//! answer's line as `answer_id`), so the first audio does not wait for the whole answer.

use super::hub::{now_ms, Out, Outbox};
use crate::state::AppState;
use gaia_core::auth::Principal;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

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

/// Frames bound for one socket: straight to it while a command runs (the socket sends them as
/// they come), else (the command done) through its queue.
#[derive(Clone)]
pub(crate) struct Live {
    tx: mpsc::Sender<Value>,
    outbox: Arc<Outbox>,
}

impl Live {
    /// A live channel to the socket, and its receiving end (for the command's duration; closing it
    /// sends the rest through the queue).
    pub(crate) fn channel(outbox: &Arc<Outbox>) -> (Live, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(LIVE_FRAMES);
        (Live { tx, outbox: outbox.clone() }, rx)
    }

    /// Sends `v` now (through the queue when the live channel is closed or full).
    pub(crate) fn push_now(&self, v: Value) {
        if let Err(e) = self.tx.try_send(v) {
            let (mpsc::error::TrySendError::Full(v) | mpsc::error::TrySendError::Closed(v)) = e;
            self.outbox.push(frame(v));
        }
    }

    /// Sends `v`, waiting while the socket is behind: for the live channel, its room; for the
    /// queue, until it is under half full (at most [`DRAIN_WAIT`]; `false`: dropped).
    async fn push(&self, v: Value) -> bool {
        let v = match self.tx.send(v).await {
            Ok(()) => return true,
            Err(e) => e.0,
        };
        let waited = std::time::Instant::now();
        while self.outbox.busy() {
            if waited.elapsed() > DRAIN_WAIT {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.outbox.push(frame(v));
        true
    }
}

/// Frames a live channel holds before its sender waits (or, for text, uses the queue): with audio
/// frames of at most 16 KiB, 1 MiB, as the queue.
const LIVE_FRAMES: usize = 64;

/// The sentences of a streamed answer, as they complete.
#[derive(Debug, Default)]
pub(crate) struct Sentences {
    npc: String,
    held: String,
    /// Whether any text came.
    pub(crate) any: bool,
}

/// Shortest piece spoken on its own (shorter sentences wait for the next).
const MIN_SENTENCE: usize = 12;

impl Sentences {
    /// Takes `delta` of `npc`'s answer: the sentences it completes.
    pub(crate) fn push(&mut self, npc: &str, delta: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.npc != npc {
            out.extend(self.rest());
            self.npc = npc.to_string();
        }
        self.any = true;
        self.held.push_str(delta);
        // A sentence ends at `.`, `!` or `?` followed by a space.
        while let Some(end) = self.held.char_indices().find_map(|(i, c)| {
            let next = self.held[i + c.len_utf8()..].chars().next();
            (matches!(c, '.' | '!' | '?') && next.is_some_and(char::is_whitespace) && i + 1 >= MIN_SENTENCE)
                .then_some(i + c.len_utf8())
        }) {
            let sentence: String = self.held.drain(..end).collect();
            out.push((self.npc.clone(), sentence.trim().to_string()));
        }
        out
    }

    /// What is left once the answer is complete.
    pub(crate) fn rest(&mut self) -> Option<(String, String)> {
        let rest = std::mem::take(&mut self.held);
        (!rest.trim().is_empty()).then(|| (self.npc.clone(), rest.trim().to_string()))
    }
}

/// Speaks the lines (`{npc_id, text, voice}`) sent to the returned sender for `p`, in order, into
/// `live`, until the sender is dropped; one socket's lines are spoken one after another
/// (`speaking`).
pub(crate) fn speaker(
    state: &AppState,
    p: &Principal,
    live: Live,
    speaking: &Arc<tokio::sync::Mutex<()>>,
) -> mpsc::UnboundedSender<Value> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let (state, p, speaking) = (state.clone(), p.clone(), speaking.clone());
    tokio::spawn(async move {
        let _one = speaking.lock().await;
        while let Some(line) = rx.recv().await {
            if !say(&state, &p, &live, &line).await {
                return;
            }
        }
    });
    tx
}

/// Speaks one line into `live`; `false` when the socket does not take its audio (the rest of
/// what was to be said is dropped).
async fn say(state: &AppState, p: &Principal, live: &Live, line: &Value) -> bool {
    let (Some(npc), Some(text)) = (line["npc_id"].as_str(), line["text"].as_str()) else { return true };
    let line_id = uuid::Uuid::new_v4().to_string();
    // The streamed answer a sentence is part of (its `npc_speech_delta`s' and `npc_speech`'s line).
    let answer_id = line.get("answer_id").filter(|a| a.is_string()).cloned();
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
    let audio = match state.assets().speak(p, Default::default(), &req).await {
        Ok((_, audio)) => audio,
        Err(e) => {
            tracing::info!(error = %e, npc, "an NPC line could not be spoken");
            return live
                .push(json!({"type": "npc_audio", "npc_id": npc, "line_id": line_id,
                             "error": e.to_string(), "timestamp": now_ms()}))
                .await;
        }
    };
    let seconds = gaia_providers::media::wav_seconds(&audio);
    let visemes = gaia_assets::visemes::visemes(&text, seconds);
    let duration_ms = seconds.map(|s| (s * 1000.0).round() as u64);
    let mut shapes = json!({"type": "npc_visemes", "npc_id": npc, "line_id": line_id, "text": text,
                            "duration_ms": duration_ms, "visemes": visemes, "timestamp": now_ms()});
    if let Some(a) = &answer_id {
        shapes["answer_id"] = a.clone();
    }
    if !live.push(shapes).await {
        return false;
    }
    let chunks: Vec<&[u8]> = audio[..audio.len().min(MAX_LINE_AUDIO)].chunks(AUDIO_CHUNK).collect();
    let n = chunks.len();
    for (seq, chunk) in chunks.into_iter().enumerate() {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(chunk);
        let sent = live
            .push(json!({"type": "npc_audio", "npc_id": npc, "line_id": line_id, "seq": seq,
                         "format": "wav", "data": data, "last": seq + 1 == n}))
            .await;
        if !sent {
            tracing::info!(npc, "a socket does not take an NPC's audio; the rest of the line is dropped");
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_as_they_complete() {
        let mut s = Sentences::default();
        assert!(s.push("sam", "Copy that. The river").is_empty(), "too short to speak alone");
        let out = s.push("sam", " group answers at dusk. Stay ");
        assert_eq!(out, [("sam".to_string(), "Copy that. The river group answers at dusk.".to_string())]);
        assert!(s.push("sam", "low!").is_empty(), "no space after it yet");
        assert_eq!(s.rest(), Some(("sam".to_string(), "Stay low!".to_string())));
        assert_eq!(s.rest(), None);
        assert!(s.any);
        // Another NPC's answer: the first one's rest first.
        s.push("sam", "Over");
        assert_eq!(s.push("dana", "Here."), [("sam".to_string(), "Over".to_string())]);
    }
}
