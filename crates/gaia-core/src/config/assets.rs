//! `[assets]`: generated images, voices and 3D models: where their files are kept, the models used
//! when a request names none, bounds, and what the game charges for each kind (sell prices).

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Asset settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AssetsConfig {
    /// Where asset files are kept: a local folder (`file:///var/lib/gaia/assets`, or a plain path;
    /// default `gaia-assets` beside the working directory), or an S3-compatible bucket
    /// (`s3://bucket/optional/prefix`, with the `s3_*` settings).
    pub store: String,
    /// The S3 endpoint (`https://s3.eu-west-1.amazonaws.com`, or a compatible server's URL); the AWS
    /// endpoint of `s3_region` when unset.
    pub s3_endpoint: Option<String>,
    /// The bucket's region (default `us-east-1`).
    pub s3_region: Option<String>,
    /// The access key id (else the `AWS_ACCESS_KEY_ID` environment variable).
    pub s3_access_key_id: Option<String>,
    /// The secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: Option<String>,
    /// Allow an `http://` endpoint (a compatible server on a private network).
    pub s3_allow_http: bool,
    /// The image model used when a request names none (`provider/model`).
    pub image_model: Option<String>,
    /// The speech (text-to-speech) model used when a request names none.
    pub speech_model: Option<String>,
    /// The transcription model used when a request names none.
    pub transcription_model: Option<String>,
    /// The text-to-3D model used when a request names none.
    pub model_3d_model: Option<String>,
    /// The voice used when a speech request names none.
    pub default_voice: String,
    /// Longest side of a stored image, in pixels: larger generated images are scaled down and
    /// re-encoded.
    pub max_image_side: u32,
    /// Longest side of a thumbnail, in pixels.
    pub thumbnail_side: u32,
    /// Largest audio file a transcription request may upload, in bytes (OpenAI's limit: 25 MiB).
    pub max_audio_bytes: usize,
    /// Seconds a signed content URL stays valid (the most a caller may ask for).
    pub signed_url_ttl_secs: u64,
    /// Milliseconds between two polls of a provider's 3D task.
    pub poll_interval_ms: u64,
    /// Seconds a 3D task may run before it is given up (and cancelled at the provider).
    pub job_timeout_secs: u64,
    /// What the game charges a player for one asset of each kind (`image`, `speech`,
    /// `transcription`, `model_3d`), in US dollars: the revenue side of the asset report. Prices
    /// recorded through the API (with the dates they take effect) win over these.
    pub sell_prices: BTreeMap<String, f64>,
}

impl Default for AssetsConfig {
    fn default() -> Self {
        AssetsConfig {
            store: "gaia-assets".into(),
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            image_model: None,
            speech_model: None,
            transcription_model: None,
            model_3d_model: None,
            default_voice: "alloy".into(),
            max_image_side: 2048,
            thumbnail_side: 256,
            max_audio_bytes: 25 * 1024 * 1024,
            signed_url_ttl_secs: 3600,
            poll_interval_ms: 2000,
            job_timeout_secs: 1800,
            sell_prices: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for AssetsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssetsConfig")
            .field("store", &self.store)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id.as_ref().map(|_| "<redacted>"))
            .field("s3_secret_access_key", &self.s3_secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("max_image_side", &self.max_image_side)
            .field("sell_prices", &self.sell_prices)
            .finish_non_exhaustive()
    }
}

impl AssetsConfig {
    /// Checks bounds and prices.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, why: &str| Err(CoreError::Config(format!("key `assets.{k}`: {why}")));
        if self.store.trim().is_empty() {
            return bad("store", "must name a folder or an s3:// bucket");
        }
        if !(16..=8192).contains(&self.max_image_side) {
            return bad("max_image_side", "must be between 16 and 8192");
        }
        if !(16..=1024).contains(&self.thumbnail_side) {
            return bad("thumbnail_side", "must be between 16 and 1024");
        }
        if self.max_audio_bytes == 0 || self.signed_url_ttl_secs == 0 || self.poll_interval_ms == 0 {
            return bad("max_audio_bytes", "sizes and intervals must be greater than 0");
        }
        if self.poll_interval_ms > 3_600_000 || !(1..=7 * 24 * 3600).contains(&self.job_timeout_secs) {
            return bad("job_timeout_secs", "polls at most hourly, and jobs time out within 7 days");
        }
        if self.signed_url_ttl_secs > 7 * 24 * 3600 {
            return bad("signed_url_ttl_secs", "signed URLs live at most 7 days");
        }
        for (kind, usd) in &self.sell_prices {
            if !matches!(kind.as_str(), "image" | "speech" | "transcription" | "model_3d") {
                return bad(
                    "sell_prices",
                    &format!("`{kind}` is not an asset kind (image, speech, transcription, model_3d)"),
                );
            }
            if !usd.is_finite() || *usd < 0.0 {
                return bad("sell_prices", "prices must be non-negative numbers");
            }
        }
        Ok(())
    }
}
