//! Player speech on the game socket: `player_speech {seq, data, last, format?, language?,
//! target_npc_id?}` frames carry an utterance in order (`data`: base64 of at most [`SPEECH_CHUNK`]
//! bytes; `seq` from 0); with `last: true` the utterance is transcribed (`[assets]`' transcription
//! model, through the provider registry; admitted, metered and priced as the player's
//! transcription asset), the client gets `player_transcript {text}`, and the text is said: a `talk`
//! to `target_npc_id`, or without one a line in the scene under way (`scene_say`), answered as any
//! `action` (`action_response`, `npc_speech`, and with `voice=true` the NPC's audio).
//!
//! Bounds: an utterance of at most [`MAX_UTTERANCE`] bytes (and the assets' `max_audio_bytes`),
//! its frames in order, none more than [`UTTERANCE_IDLE`] apart; else an `error` and the utterance
//! is dropped. One utterance at a time per socket.

use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Most audio bytes in one `player_speech` frame (its base64 fits a 16 KiB frame).
pub(crate) const SPEECH_CHUNK: usize = 8 * 1024;
/// Most audio bytes of one utterance (about 30 s of 16 kHz 16-bit WAV).
pub(crate) const MAX_UTTERANCE: usize = 1024 * 1024;
/// Longest wait between two frames of an utterance.
const UTTERANCE_IDLE: Duration = Duration::from_secs(30);
/// Audio formats a client may name (the transcription provider's).
const FORMATS: &[&str] = &["wav", "mp3", "m4a", "ogg", "webm", "flac", "mp4", "mpeg", "mpga", "opus"];

/// An utterance being received.
#[derive(Debug)]
pub(crate) struct Utterance {
    audio: Vec<u8>,
    next_seq: u64,
    last_frame: Instant,
}

/// What a complete utterance asks for.
#[derive(Debug)]
pub(crate) struct Heard {
    pub(crate) audio: Vec<u8>,
    pub(crate) file_name: String,
    pub(crate) language: Option<String>,
    pub(crate) target_npc_id: Option<String>,
}

/// Takes one `player_speech` frame into `current`: `Ok(None)` while more is to come, `Ok(Some(_))`
/// when the utterance is complete, `Err(why)` for a bad frame (the utterance is dropped).
pub(crate) fn take(
    current: &mut Option<Utterance>,
    m: &Map<String, Value>,
    max_audio: usize,
) -> Result<Option<Heard>, String> {
    let result = take_inner(current, m, max_audio.min(MAX_UTTERANCE));
    if !matches!(result, Ok(None)) {
        *current = None;
    }
    result
}

fn take_inner(current: &mut Option<Utterance>, m: &Map<String, Value>, max: usize) -> Result<Option<Heard>, String> {
    use base64::Engine as _;
    let seq = m.get("seq").and_then(Value::as_u64).ok_or("`seq` is the frame's number, from 0")?;
    let data = m.get("data").and_then(Value::as_str).ok_or("`data` is base64 audio")?;
    if data.len() > SPEECH_CHUNK.div_ceil(3) * 4 {
        return Err(format!("`data` holds at most {SPEECH_CHUNK} bytes a frame"));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| "`data` is not base64")?;
    if seq == 0 {
        *current = Some(Utterance { audio: Vec::new(), next_seq: 0, last_frame: Instant::now() });
    }
    let u = current.as_mut().ok_or("an utterance starts with `seq` 0")?;
    if u.last_frame.elapsed() > UTTERANCE_IDLE {
        return Err(format!("the utterance's frames came more than {} s apart", UTTERANCE_IDLE.as_secs()));
    }
    if seq != u.next_seq {
        return Err(format!("frame {seq} came where frame {} was expected", u.next_seq));
    }
    if u.audio.len() + bytes.len() > max {
        return Err(format!("an utterance is at most {max} bytes"));
    }
    u.audio.extend_from_slice(&bytes);
    u.next_seq += 1;
    u.last_frame = Instant::now();
    if m.get("last").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let format = m.get("format").and_then(Value::as_str).unwrap_or("wav").to_lowercase();
    if !FORMATS.contains(&format.as_str()) {
        return Err(format!("`format` is one of {}", FORMATS.join(", ")));
    }
    let language = m.get("language").and_then(Value::as_str).map(str::to_string);
    if language.as_ref().is_some_and(|l| l.len() > 16) {
        return Err("`language` is an ISO-639-1 code".into());
    }
    let target_npc_id = m.get("target_npc_id").and_then(Value::as_str).map(str::to_string);
    if target_npc_id.as_ref().is_some_and(|t| t.chars().count() > gaia_world::command::MAX_ID_CHARS) {
        return Err("`target_npc_id` is too long".into());
    }
    let audio = std::mem::take(&mut u.audio);
    if audio.is_empty() {
        return Err("the utterance holds no audio".into());
    }
    Ok(Some(Heard { audio, file_name: format!("speech.{format}"), language, target_npc_id }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn frame(seq: u64, data: &[u8], last: bool) -> Map<String, Value> {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        json!({"seq": seq, "data": data, "last": last, "target_npc_id": "sam"}).as_object().unwrap().clone()
    }

    #[test]
    fn an_utterance_is_taken_in_order_and_bounded() {
        let mut u = None;
        assert!(take(&mut u, &frame(0, b"RIFF", false), 100).unwrap().is_none());
        assert!(take(&mut u, &frame(1, b"more", false), 100).unwrap().is_none());
        let h = take(&mut u, &frame(2, b"end", true), 100).unwrap().unwrap();
        assert_eq!((h.audio.as_slice(), h.file_name.as_str()), (&b"RIFFmoreend"[..], "speech.wav"));
        assert_eq!(h.target_npc_id.as_deref(), Some("sam"));
        assert!(u.is_none(), "done: nothing kept");

        // Out of order, too large, not base64, a bad format: refused, the utterance dropped.
        assert!(take(&mut u, &frame(1, b"x", false), 100).unwrap_err().contains("starts with `seq` 0"));
        take(&mut u, &frame(0, b"x", false), 100).unwrap();
        assert!(take(&mut u, &frame(2, b"x", false), 100).unwrap_err().contains("expected"));
        assert!(u.is_none());
        take(&mut u, &frame(0, &[0; 60], false), 100).unwrap();
        assert!(take(&mut u, &frame(1, &[0; 60], true), 100).unwrap_err().contains("at most 100 bytes"));
        let mut bad = frame(0, b"x", true);
        bad.insert("data".into(), json!("not base64!"));
        assert!(take(&mut u, &bad, 100).unwrap_err().contains("base64"));
        let mut big = frame(0, b"x", true);
        big.insert("data".into(), json!("A".repeat(SPEECH_CHUNK * 2)));
        assert!(take(&mut u, &big, usize::MAX).unwrap_err().contains("a frame"));
        let mut odd = frame(0, b"x", true);
        odd.insert("format".into(), json!("exe"));
        assert!(take(&mut u, &odd, 100).unwrap_err().contains("`format`"));
        assert!(take(&mut u, &json!({"data": ""}).as_object().unwrap().clone(), 100).is_err());
    }
}
