//! Media generation through providers: images (OpenAI's Images API), speech and transcription
//! (OpenAI's audio API), and 3D models (Meshy's text-to-3D task API). The requests and results are
//! provider-neutral; [`crate::Provider`]'s media methods carry them, and providers that cannot do one
//! refuse it with [`ProviderError::InvalidRequest`].
//!
//! Every size a vendor can send is bounded here: an image or audio answer above
//! [`MAX_MEDIA_BYTES`], a downloaded 3D model above [`MAX_MODEL_BYTES`], is refused rather than held.

use crate::error::ProviderError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The most bytes an image or audio answer may have.
pub const MAX_MEDIA_BYTES: usize = 32 * 1024 * 1024;

/// The most bytes a downloaded 3D model (or its thumbnail) may have.
pub const MAX_MODEL_BYTES: usize = 64 * 1024 * 1024;

/// The most characters of text one speech request may carry (OpenAI's limit).
pub const MAX_SPEECH_CHARS: usize = 4096;

/// The most images one request may ask for (OpenAI's limit).
pub const MAX_IMAGES: u32 = 10;

/// The longest prompt for an image or a 3D model, in characters.
pub const MAX_PROMPT_CHARS: usize = 32_000;

/// Images to generate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageRequest {
    /// Model id at the provider.
    pub model: String,
    /// What to draw.
    pub prompt: String,
    /// How many images (1 to [`MAX_IMAGES`]).
    pub n: u32,
    /// `WIDTHxHEIGHT` (`1024x1024`, …) or `auto`; the provider's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `standard`, `hd`, `low`, `medium`, `high` or `auto`; the provider's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    /// `vivid` or `natural` (DALL·E 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// The end user the images are for, passed to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One generated image: its bytes (downloaded when the provider gave a URL).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedImage {
    /// The encoded image (PNG, JPEG or WebP).
    pub bytes: Bytes,
    /// The prompt the provider actually used, when it rewrote it.
    pub revised_prompt: Option<String>,
}

/// Text to speak.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpeechRequest {
    /// Model id at the provider.
    pub model: String,
    /// The text (at most [`MAX_SPEECH_CHARS`] characters).
    pub input: String,
    /// The voice (`alloy`, `nova`, …).
    pub voice: String,
    /// `mp3` (default), `opus`, `aac`, `flac`, `wav` or `pcm`.
    pub format: AudioFormat,
    /// 0.25 to 4.0; the provider's default (1.0) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    /// How to speak (tone, accent), for models that take instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Audio encodings of OpenAI's speech API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// MPEG-1 Layer III.
    #[default]
    Mp3,
    /// Opus in Ogg.
    Opus,
    /// AAC in ADTS.
    Aac,
    /// FLAC.
    Flac,
    /// RIFF WAVE, 16-bit PCM.
    Wav,
    /// Raw 24 kHz 16-bit little-endian mono samples.
    Pcm,
}

impl AudioFormat {
    /// Parses `mp3`, `opus`, `aac`, `flac`, `wav` or `pcm`.
    pub fn parse(s: &str) -> Option<AudioFormat> {
        Some(match s {
            "mp3" => AudioFormat::Mp3,
            "opus" => AudioFormat::Opus,
            "aac" => AudioFormat::Aac,
            "flac" => AudioFormat::Flac,
            "wav" => AudioFormat::Wav,
            "pcm" => AudioFormat::Pcm,
            _ => return None,
        })
    }

    /// The name in OpenAI's API.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Aac => "aac",
            AudioFormat::Flac => "flac",
            AudioFormat::Wav => "wav",
            AudioFormat::Pcm => "pcm",
        }
    }

    /// The media type its bytes are served with.
    pub fn media_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg",
            AudioFormat::Aac => "audio/aac",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm",
        }
    }
}

/// Audio to transcribe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscriptionRequest {
    /// Model id at the provider.
    pub model: String,
    /// The audio file's bytes.
    pub audio: Bytes,
    /// Its file name (the provider reads the format from its extension).
    pub file_name: String,
    /// The spoken language (ISO-639-1), when known.
    pub language: Option<String>,
    /// Text to guide the transcription's style or vocabulary.
    pub prompt: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// A transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    /// The text heard.
    pub text: String,
    /// The audio's length in seconds, as the provider reported it (or as read from the file).
    pub seconds: Option<f64>,
    /// The language detected, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A 3D model to generate from text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model3dRequest {
    /// Model id at the provider (Meshy's `ai_model`: `meshy-4`, `meshy-5`, `latest`).
    pub model: String,
    /// What to model.
    pub prompt: String,
    /// `realistic` or `sculpture`; the provider's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub art_style: Option<String>,
    /// What to avoid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    /// The polygon count to aim for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_polycount: Option<u32>,
    /// A seed, for repeatable results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Where a provider's 3D task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Queued at the provider.
    Pending,
    /// Being generated.
    InProgress,
    /// Done: the model can be downloaded.
    Succeeded,
    /// Failed at the provider.
    Failed,
    /// Cancelled (or expired) at the provider.
    Canceled,
}

impl TaskStatus {
    /// Whether the task will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled)
    }
}

/// A provider's 3D task, as polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model3dTask {
    /// The provider's task id.
    pub id: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// Percent done (0 to 100).
    pub progress: u8,
    /// The binary glTF (`.glb`) model's URL, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_url: Option<String>,
    /// A preview image's URL, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The error of a provider asked for a kind of media it does not generate.
pub(crate) fn unsupported(provider: &str, what: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("provider `{provider}` does not generate {what}"))
}

/// Reads a response body of at most `max` bytes (refused with an error as soon as it goes over, so a
/// vendor cannot make Gaia hold an unbounded answer).
pub(crate) async fn read_bounded(
    provider: &str,
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Bytes, ProviderError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big(provider, max));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ProviderError::from_reqwest(provider, e))? {
        if buf.len() + chunk.len() > max {
            return Err(too_big(provider, max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Where a file a provider answered with may be fetched from: over `https` from a public host, or
/// from the provider's own origin (a compatible server on a private network, the mock). Never a
/// private, loopback or link-local address elsewhere, so an upstream cannot make Gaia fetch from the
/// network it runs in (a cloud's metadata service, say).
pub(crate) fn download_url(provider: &str, base_url: &str, url: &str) -> Result<reqwest::Url, ProviderError> {
    let refused = |why: &str| ProviderError::Stream {
        provider: provider.to_string(),
        message: format!("the provider answered with a file URL Gaia does not fetch ({why})"),
    };
    let u = reqwest::Url::parse(url).map_err(|_| refused("not a URL"))?;
    if crate::http::Origin::of(url).is_some() && crate::http::Origin::of(url) == crate::http::Origin::of(base_url) {
        return Ok(u);
    }
    if u.scheme() != "https" {
        return Err(refused("not https"));
    }
    let host = u.host_str().unwrap_or_default();
    let public = match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || (a == 100 && (b & 0xc0) == 64))
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let s = ip.segments()[0];
            !(ip.is_loopback() || ip.is_unspecified() || (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80)
                && ip.to_ipv4_mapped().is_none()
        }
        Err(_) => !host.is_empty() && !gaia_core::net::is_loopback_host(host) && !host.ends_with(".internal"),
    };
    if public {
        Ok(u)
    } else {
        Err(refused("a private or local address"))
    }
}

/// Downloads a file a provider made, at most `max` bytes; a failure says the status, never the body
/// (it could be anything the host answers).
pub(crate) async fn download(provider: &str, req: reqwest::RequestBuilder, max: usize) -> Result<Bytes, ProviderError> {
    let resp = match crate::http::send(provider, req).await {
        Ok(r) => r,
        Err(ProviderError::Upstream { status, .. }) => {
            return Err(ProviderError::Upstream {
                provider: provider.to_string(),
                status,
                message: format!("the provider's file could not be downloaded (HTTP {status})"),
            })
        }
        Err(e) => return Err(e),
    };
    read_bounded(provider, resp, max).await
}

fn too_big(provider: &str, max: usize) -> ProviderError {
    ProviderError::Stream { provider: provider.to_string(), message: format!("the answer is larger than {max} bytes") }
}

/// The length in seconds of WAV audio, read from its header (`None` when it is not WAV).
pub fn wav_seconds(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 12 <= bytes.len() {
            byte_rate = Some(u32::from_le_bytes(bytes[body + 8..body + 12].try_into().ok()?));
        }
        if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0)?;
            let len = len.min(bytes.len().saturating_sub(body));
            return Some(len as f64 / rate as f64);
        }
        at = body.checked_add(len)?.checked_add(len % 2)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_length_comes_from_its_header() {
        // 1 s of 8 kHz 8-bit mono: byte rate 8000, 8000 data bytes.
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36u32 + 8000).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes()); // PCM
        w.extend_from_slice(&1u16.to_le_bytes()); // mono
        w.extend_from_slice(&8000u32.to_le_bytes());
        w.extend_from_slice(&8000u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&8u16.to_le_bytes());
        w.extend_from_slice(b"data");
        w.extend_from_slice(&8000u32.to_le_bytes());
        w.extend(std::iter::repeat_n(128u8, 8000));
        assert_eq!(wav_seconds(&w), Some(1.0));
        assert_eq!(wav_seconds(b"ID3 not a wav"), None);
        // A truncated or lying header gives no length rather than a panic.
        assert_eq!(wav_seconds(&w[..30]), None);
        let mut lying = w.clone();
        lying[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(wav_seconds(&lying), None);
    }

    #[test]
    fn provider_files_are_fetched_only_from_public_https_or_the_provider_itself() {
        let ok = |base: &str, url: &str| download_url("p", base, url).is_ok();
        let api = "https://api.openai.com/v1";
        assert!(ok(api, "https://oaidalleapiprodscus.blob.core.windows.net/private/img.png?sig=x"));
        assert!(
            ok("http://127.0.0.1:9000/v1", "http://127.0.0.1:9000/v1/files/mock-images/a.png"),
            "the provider's own origin"
        );
        for bad in [
            "http://example.com/a.png",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.8/a.png",
            "https://100.64.0.1/a.png",
            "https://127.0.0.1/a.png",
            "https://localhost/a.png",
            "https://[::1]/a.png",
            "https://[fd00::1]/a.png",
            "https://[::ffff:10.0.0.1]/a.png",
            "https://metadata.google.internal/computeMetadata/v1/",
            "file:///etc/passwd",
            "http://127.0.0.1:9001/other-port.png",
            "not a url",
        ] {
            assert!(!ok(if bad.contains("9001") { "http://127.0.0.1:9000/v1" } else { api }, bad), "{bad}");
        }
    }

    #[test]
    fn audio_formats_round_trip() {
        for f in ["mp3", "opus", "aac", "flac", "wav", "pcm"] {
            assert_eq!(AudioFormat::parse(f).map(AudioFormat::as_str), Some(f));
        }
        assert_eq!(AudioFormat::parse("exe"), None);
    }
}
