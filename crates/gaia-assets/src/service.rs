//! The asset service: plans a generation (provider, model, units and their price), admits it (rate
//! limits, and hard budgets against its estimated cost, before any provider is called), calls the
//! provider, stores the file, and meters it (a usage record with its cost, failed calls included).
//! 3D models are jobs, polled in the background until they end ([`crate::jobs`]).

use crate::error::{AssetError, Result};
use crate::picture;
use crate::sign::Signer;
use crate::store::AssetStore;
use bytes::Bytes;
use gaia_chat::{Admitted, Engine, Meter};
use gaia_core::attribution::Attribution;
use gaia_core::auth::Principal;
use gaia_core::config::AssetsConfig;
use gaia_core::storage::{
    Asset, AssetFilter, AssetGroup, AssetKind, AssetOutcome, AssetReportRow, AssetStatus, NewAsset,
};
use gaia_providers::media::{self, AudioFormat, ImageRequest, Model3dRequest, SpeechRequest, TranscriptionRequest};
use gaia_providers::Provider;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What to generate: `POST /api/v1/assets/generate`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRequest {
    /// `image`, `speech` or `model_3d` (transcriptions take audio: [`Assets::transcribe`]).
    #[serde(rename = "type")]
    pub kind: Option<AssetKind>,
    /// What to draw or model; the text to speak.
    #[serde(default)]
    pub prompt: String,
    /// `provider/model` (default: `[assets]`'s model for the kind).
    #[serde(default)]
    pub model: Option<String>,
    /// Per kind: images `n`, `size`, `quality`, `style`; speech `voice`, `format`, `speed`,
    /// `instructions`; 3D `art_style`, `negative_prompt`, `target_polycount`, `seed`.
    #[serde(default)]
    pub options: Map<String, Value>,
}

/// Audio to transcribe.
#[derive(Debug, Clone, Default)]
pub struct TranscriptionAsk {
    /// `provider/model` (default: `[assets].transcription_model`).
    pub model: Option<String>,
    /// The audio.
    pub audio: Bytes,
    /// Its file name (its extension tells the provider the format).
    pub file_name: String,
    /// The spoken language (ISO-639-1), when known.
    pub language: Option<String>,
    /// Text guiding the transcription.
    pub prompt: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// What a generation would cost and earn, before it is made.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: AssetKind,
    /// The provider that would make it.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Assets it makes (`n` images, else 1).
    pub assets: u32,
    /// The unit priced (`image:1024x1024:hd`, `character`, `second`, `credit`).
    pub unit: String,
    /// Units it uses (estimated for transcriptions from the audio's length).
    pub units: f64,
    /// The unit price found (`null`: no price is set, and the cost counts as 0).
    pub usd_per_unit: Option<f64>,
    /// The unit the price was found under (a less specific one when the exact one has none).
    pub priced_unit: Option<String>,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// What the game charges for one asset of this kind.
    pub sell_usd: f64,
    /// Revenue of the assets it makes.
    pub revenue_usd: f64,
    /// Revenue minus cost.
    pub margin_usd: f64,
}

/// A generation planned: where it goes and what it costs.
struct Plan {
    provider: Arc<dyn Provider>,
    estimate: Estimate,
    /// The options, checked, as stored on the asset.
    options: Value,
}

/// Bytes of an asset to serve.
#[derive(Debug, Clone)]
pub struct Content {
    /// The bytes (the whole file, or the range asked for).
    pub bytes: Bytes,
    /// Media type.
    pub media_type: String,
    /// The file's full size.
    pub total: u64,
    /// The range served (`None`: the whole file).
    pub range: Option<std::ops::Range<u64>>,
}

/// A signed URL's parts.
#[derive(Debug, Clone, Serialize)]
pub struct SignedUrl {
    /// The path and query to fetch (`/assets/<id>/content?…`), relative to the server.
    pub url: String,
    /// When it stops working (unix seconds).
    pub expires: i64,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) store: AssetStore,
    pub(crate) cfg: AssetsConfig,
    signer: Signer,
    /// Asset ids whose job this instance is polling.
    pub(crate) polling: Mutex<HashSet<String>>,
}

/// Generated assets; cheap to clone.
#[derive(Clone)]
pub struct Assets {
    pub(crate) inner: Arc<Inner>,
}

/// A handle on [`Assets`] that does not keep it alive (for what the engine holds, since the assets
/// hold the engine).
#[derive(Clone, Debug)]
pub struct WeakAssets(std::sync::Weak<Inner>);

impl WeakAssets {
    /// The assets, while they exist.
    pub fn upgrade(&self) -> Option<Assets> {
        self.0.upgrade().map(|inner| Assets { inner })
    }
}

impl std::fmt::Debug for Assets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assets").field("store", &self.inner.store.label()).finish()
    }
}

fn invalid(msg: impl Into<String>) -> AssetError {
    AssetError::Invalid(msg.into())
}

fn opt_str<'a>(o: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 256 => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(format!("option `{k}` must be a string of at most 256 bytes"))),
    }
}

fn opt_num(o: &Map<String, Value>, k: &str) -> Result<Option<f64>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| invalid(format!("option `{k}` must be a number"))),
    }
}

fn only_options(o: &Map<String, Value>, allowed: &[&str], kind: AssetKind) -> Result<()> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => {
            Err(invalid(format!("`{k}` is not an option of {} (options: {})", kind.as_str(), allowed.join(", "))))
        }
        None => Ok(()),
    }
}

/// A fresh key for a file of asset `id`.
fn object_key(owner: &str, id: &str, ext: &str) -> String {
    format!("{owner}/{id}/{}.{ext}", uuid::Uuid::new_v4().simple())
}

impl Assets {
    /// The service over `engine` (models, admission, metering), `store` (files) and `cfg`;
    /// `signing_key` signs content URLs (derive it from the server's secret).
    pub fn new(engine: Engine, store: AssetStore, cfg: AssetsConfig, signing_key: impl Into<Vec<u8>>) -> Assets {
        Assets {
            inner: Arc::new(Inner {
                engine,
                store,
                cfg,
                signer: Signer::new(signing_key),
                polling: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// A handle that does not keep the assets alive.
    pub fn downgrade(&self) -> WeakAssets {
        WeakAssets(Arc::downgrade(&self.inner))
    }

    /// The file store.
    pub fn store(&self) -> &AssetStore {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &AssetsConfig {
        &self.inner.cfg
    }

    fn default_model(&self, kind: AssetKind) -> Option<&str> {
        let c = &self.inner.cfg;
        match kind {
            AssetKind::Image => c.image_model.as_deref(),
            AssetKind::Speech => c.speech_model.as_deref(),
            AssetKind::Transcription => c.transcription_model.as_deref(),
            AssetKind::Model3d => c.model_3d_model.as_deref(),
        }
    }

    /// The sell price of one asset of `kind` now: the recorded one, else `[assets].sell_prices`.
    pub fn sell_price(&self, kind: AssetKind) -> f64 {
        let now = chrono::Utc::now();
        self.inner
            .engine
            .quotas()
            .prices()
            .sell_price_at(kind.as_str(), now)
            .map(|p| p.usd_per_unit)
            .or_else(|| self.inner.cfg.sell_prices.get(kind.as_str()).copied())
            .unwrap_or(0.0)
    }

    async fn resolve(&self, kind: AssetKind, model: Option<&str>) -> Result<(Arc<dyn Provider>, String)> {
        let model =
            model.map(str::trim).filter(|m| !m.is_empty()).or_else(|| self.default_model(kind)).ok_or_else(|| {
                invalid(format!(
                    "no {} model: name one (`provider/model`) or set `assets.{}_model` in gaia.toml",
                    kind.as_str(),
                    kind.as_str()
                ))
            })?;
        Ok(self.inner.engine.providers().resolve(model).await?)
    }

    fn estimate_for(
        &self,
        kind: AssetKind,
        provider: &str,
        model: &str,
        unit: String,
        units: f64,
        assets: u32,
    ) -> Estimate {
        let price = self.inner.engine.providers().unit_price_at(provider, model, &unit, chrono::Utc::now());
        let cost_usd = price.as_ref().map(|p| p.usd_per_unit * units).unwrap_or(0.0);
        let sell_usd = self.sell_price(kind);
        let revenue_usd = sell_usd * f64::from(assets);
        Estimate {
            kind,
            provider: provider.to_string(),
            model: model.to_string(),
            assets,
            unit,
            units,
            usd_per_unit: price.as_ref().map(|p| p.usd_per_unit),
            priced_unit: price.map(|p| p.unit),
            cost_usd,
            sell_usd,
            revenue_usd,
            margin_usd: revenue_usd - cost_usd,
        }
    }

    /// Checks a request and works out its provider, units and price.
    async fn plan(&self, req: &AssetRequest) -> Result<Plan> {
        let kind = req.kind.ok_or_else(|| invalid("`type` is required: image, speech or model_3d"))?;
        let prompt = req.prompt.trim();
        if prompt.is_empty() {
            return Err(invalid("`prompt` is required"));
        }
        let o = &req.options;
        let (provider, model) = self.resolve(kind, req.model.as_deref()).await?;
        let name = provider.name().to_string();
        let (unit, units, assets, options) = match kind {
            AssetKind::Image => {
                only_options(o, &["n", "size", "quality", "style"], kind)?;
                if prompt.chars().count() > media::MAX_PROMPT_CHARS {
                    return Err(invalid(format!("`prompt` is longer than {} characters", media::MAX_PROMPT_CHARS)));
                }
                let n = opt_num(o, "n")?.unwrap_or(1.0);
                if n.fract() != 0.0 || !(1.0..=f64::from(media::MAX_IMAGES)).contains(&n) {
                    return Err(invalid(format!("`n` must be a whole number from 1 to {}", media::MAX_IMAGES)));
                }
                let size = opt_str(o, "size")?.unwrap_or("1024x1024");
                let quality = opt_str(o, "quality")?.unwrap_or("standard");
                let ok_word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !(size == "auto"
                    || size.split_once('x').is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok()))
                {
                    return Err(invalid("`size` must be WIDTHxHEIGHT (1024x1024) or auto"));
                }
                if !ok_word(quality) || opt_str(o, "style")?.is_some_and(|s| !ok_word(s)) {
                    return Err(invalid("`quality` and `style` are single words (standard, hd, vivid, natural…)"));
                }
                let n = n as u32;
                (format!("image:{size}:{quality}"), f64::from(n), n, Value::Object(o.clone()))
            }
            AssetKind::Speech => {
                only_options(o, &["voice", "format", "speed", "instructions"], kind)?;
                let chars = prompt.chars().count();
                if chars > media::MAX_SPEECH_CHARS {
                    return Err(invalid(format!("speech takes at most {} characters", media::MAX_SPEECH_CHARS)));
                }
                let format = opt_str(o, "format")?.unwrap_or("mp3");
                AudioFormat::parse(format)
                    .ok_or_else(|| invalid("`format` must be mp3, opus, aac, flac, wav or pcm"))?;
                if let Some(s) = opt_num(o, "speed")? {
                    if !(0.25..=4.0).contains(&s) {
                        return Err(invalid("`speed` must be from 0.25 to 4.0"));
                    }
                }
                opt_str(o, "voice")?;
                opt_str(o, "instructions")?;
                ("character".to_string(), chars as f64, 1, Value::Object(o.clone()))
            }
            AssetKind::Model3d => {
                only_options(o, &["art_style", "negative_prompt", "target_polycount", "seed"], kind)?;
                if prompt.chars().count() > 600 {
                    return Err(invalid("a 3D prompt is at most 600 characters"));
                }
                opt_str(o, "art_style")?;
                opt_str(o, "negative_prompt")?;
                if let Some(p) = opt_num(o, "target_polycount")? {
                    if p.fract() != 0.0 || !(100.0..=300_000.0).contains(&p) {
                        return Err(invalid("`target_polycount` must be a whole number from 100 to 300000"));
                    }
                }
                if opt_num(o, "seed")?.is_some_and(|s| s.fract() != 0.0 || s < 0.0) {
                    return Err(invalid("`seed` must be a whole number"));
                }
                let credits = gaia_providers::meshy::preview_credits(&model);
                ("credit".to_string(), f64::from(credits), 1, Value::Object(o.clone()))
            }
            AssetKind::Transcription => {
                return Err(invalid("transcriptions take audio: POST it to /v1/audio/transcriptions"))
            }
        };
        let estimate = self.estimate_for(kind, &name, &model, unit, units, assets);
        Ok(Plan { provider, estimate, options })
    }

    /// What `req` would cost and earn, without making it.
    pub async fn estimate(&self, req: &AssetRequest) -> Result<Estimate> {
        Ok(self.plan(req).await?.estimate)
    }

    /// What transcribing `audio` would cost (its length read from a WAV header, else estimated at
    /// 128 kb/s).
    pub async fn estimate_transcription(&self, model: Option<&str>, audio: &[u8]) -> Result<Estimate> {
        Ok(self.plan_transcription(model, audio).await?.1)
    }

    async fn plan_transcription(&self, model: Option<&str>, audio: &[u8]) -> Result<(Arc<dyn Provider>, Estimate)> {
        let (provider, model) = self.resolve(AssetKind::Transcription, model).await?;
        let seconds = media::wav_seconds(audio).unwrap_or(audio.len() as f64 / 16_000.0).ceil();
        let e = self.estimate_for(AssetKind::Transcription, provider.name(), &model, "second".into(), seconds, 1);
        Ok((provider, e))
    }

    /// Admission: `principal`'s permission to make assets (`asset:write` in their own area) and to
    /// use models, their rate limits, then their hard budgets against `estimate_usd` (402 before any
    /// provider is called).
    async fn admit(&self, principal: &Principal, attribution: Attribution, estimate_usd: f64) -> Result<Admitted> {
        let own =
            gaia_rbac::Resource::new(gaia_rbac::ResourceType::Asset, format!("/users/{}/assets", principal.user_id));
        let rbac = self.inner.engine.rbac().await;
        if !rbac.check(&gaia_rbac::Subject::from(principal), gaia_rbac::Action::Write, &own).allowed {
            return Err(AssetError::Refused(gaia_chat::Refusal {
                status: 403,
                message: "you may not make assets (asset:write on /users/{user}/assets is needed)".into(),
                headers: Vec::new(),
            }));
        }
        let gate = self.inner.engine.admit_for(principal, false, attribution).await?;
        Ok(gate.with_cost(estimate_usd).await?)
    }

    fn new_asset(&self, admitted: &Admitted, e: &Estimate, prompt: &str, options: Value) -> NewAsset {
        let p = admitted.principal();
        NewAsset {
            owner_id: p.user_id.clone(),
            api_key_id: p.api_key_id().map(str::to_string),
            end_user: admitted.subject().end_user.clone(),
            kind: e.kind,
            provider: e.provider.clone(),
            model: e.model.clone(),
            prompt: prompt.to_string(),
            options,
            task_id: None,
            tags: admitted.tags().clone(),
        }
    }

    /// Records a generation that failed (metered, and listed as failed).
    async fn record_failure(&self, admitted: &Admitted, plan: &Plan, prompt: &str, e: &AssetError) {
        let new = self.new_asset(admitted, &plan.estimate, prompt, plan.options.clone());
        let outcome = AssetOutcome { error: Some(e.to_string()), ..Default::default() };
        let id = uuid::Uuid::new_v4().to_string();
        if let Err(err) = self.inner.engine.storage().create_asset(&id, &new, AssetStatus::Failed, &outcome).await {
            tracing::warn!(error = %err, "cannot record a failed generation");
        }
    }

    /// Generates what `req` asks for as `principal`: images and speech at once (their assets), a 3D
    /// model as a job (its asset, `pending`; poll it or follow its progress).
    pub async fn generate(
        &self,
        principal: &Principal,
        attribution: Attribution,
        req: &AssetRequest,
    ) -> Result<Vec<Asset>> {
        let plan = self.plan(req).await?;
        let admitted = self.admit(principal, attribution, plan.estimate.cost_usd).await?;
        let prompt = req.prompt.trim();
        match plan.estimate.kind {
            AssetKind::Image => {
                Ok(self.make_images(&admitted, &plan, prompt).await?.into_iter().map(|(a, _)| a).collect())
            }
            AssetKind::Speech => Ok(vec![self.make_speech(&admitted, &plan, prompt).await?.0]),
            AssetKind::Model3d => Ok(vec![self.start_model_3d(&admitted, &plan, prompt).await?]),
            AssetKind::Transcription => Err(invalid("transcriptions take audio")),
        }
    }

    /// Speaks `text` as `principal` (the compatible `/v1/audio/speech`): the stored asset and its audio.
    pub async fn speak(
        &self,
        principal: &Principal,
        attribution: Attribution,
        req: &AssetRequest,
    ) -> Result<(Asset, Bytes)> {
        let plan = self.plan(req).await?;
        if plan.estimate.kind != AssetKind::Speech {
            return Err(invalid("not a speech request"));
        }
        let admitted = self.admit(principal, attribution, plan.estimate.cost_usd).await?;
        self.make_speech(&admitted, &plan, req.prompt.trim()).await
    }

    /// Generates images as `principal` and returns them with their bytes (the compatible
    /// `/v1/images/generations`, which answers with the images themselves).
    pub async fn images_with_bytes(
        &self,
        principal: &Principal,
        attribution: Attribution,
        req: &AssetRequest,
    ) -> Result<Vec<(Asset, Bytes)>> {
        let plan = self.plan(req).await?;
        if plan.estimate.kind != AssetKind::Image {
            return Err(invalid("not an image request"));
        }
        let admitted = self.admit(principal, attribution, plan.estimate.cost_usd).await?;
        self.make_images(&admitted, &plan, req.prompt.trim()).await
    }

    async fn make_images(&self, admitted: &Admitted, plan: &Plan, prompt: &str) -> Result<Vec<(Asset, Bytes)>> {
        let e = &plan.estimate;
        let o = plan.options.as_object().cloned().unwrap_or_default();
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let req = ImageRequest {
            model: e.model.clone(),
            prompt: prompt.to_string(),
            n: e.assets,
            size: s("size"),
            quality: s("quality"),
            style: s("style"),
            user: admitted.subject().end_user.clone(),
        };
        let mut meter = Meter::start(&self.inner.engine, admitted, "images");
        meter.target(&e.provider, &e.model);
        let images = match plan.provider.generate_images(&req).await {
            Ok(i) => i,
            Err(err) => {
                meter.finish(err.http_status(), Some(err.to_string()));
                let err = AssetError::from(err);
                self.record_failure(admitted, plan, prompt, &err).await;
                return Err(err);
            }
        };
        // Billed per image the provider made.
        let per_image = e.usd_per_unit.unwrap_or(0.0);
        meter.cost(per_image * images.len() as f64);
        meter.finish(200, None);
        let (max_side, thumb) = (self.inner.cfg.max_image_side, self.inner.cfg.thumbnail_side);
        let mut out = Vec::with_capacity(images.len());
        for img in images {
            let prepared = tokio::task::spawn_blocking(move || picture::prepare(img.bytes, max_side, thumb))
                .await
                .map_err(|e| AssetError::Store(format!("image worker failed: {e}")))?;
            let mut options = plan.options.clone();
            if let Some(r) = &img.revised_prompt {
                options["revised_prompt"] = json!(r);
            }
            if let Ok(p) = &prepared {
                options["width"] = json!(p.width);
                options["height"] = json!(p.height);
            }
            let new = self.new_asset(admitted, e, prompt, options);
            let id = uuid::Uuid::new_v4().to_string();
            let mut bytes = Bytes::new();
            let outcome = match prepared {
                Ok(p) => {
                    let ext = p.media_type.trim_start_matches("image/");
                    let key = object_key(&new.owner_id, &id, ext);
                    let thumb_key = object_key(&new.owner_id, &id, "png");
                    bytes = p.bytes.clone();
                    self.inner.store.put(&key, p.bytes.clone()).await?;
                    self.inner.store.put(&thumb_key, p.thumbnail).await?;
                    AssetOutcome {
                        media_type: Some(p.media_type.to_string()),
                        size: p.bytes.len() as u64,
                        object_key: Some(key),
                        thumbnail_key: Some(thumb_key),
                        units: 1.0,
                        cost_usd: per_image,
                        revenue_usd: e.sell_usd,
                        ..Default::default()
                    }
                }
                Err(err) => AssetOutcome {
                    error: Some(format!("the provider's image was refused: {err}")),
                    units: 1.0,
                    cost_usd: per_image,
                    ..Default::default()
                },
            };
            let status = if outcome.object_key.is_some() { AssetStatus::Succeeded } else { AssetStatus::Failed };
            let a = self.inner.engine.storage().create_asset(&id, &new, status, &outcome).await?;
            out.push((a, bytes));
        }
        Ok(out)
    }

    async fn make_speech(&self, admitted: &Admitted, plan: &Plan, text: &str) -> Result<(Asset, Bytes)> {
        let e = &plan.estimate;
        let o = plan.options.as_object().cloned().unwrap_or_default();
        let format = o.get("format").and_then(Value::as_str).and_then(AudioFormat::parse).unwrap_or_default();
        let req = SpeechRequest {
            model: e.model.clone(),
            input: text.to_string(),
            voice: o.get("voice").and_then(Value::as_str).unwrap_or(&self.inner.cfg.default_voice).to_string(),
            format,
            speed: o.get("speed").and_then(Value::as_f64).map(|s| s as f32),
            instructions: o.get("instructions").and_then(Value::as_str).map(str::to_string),
        };
        let mut meter = Meter::start(&self.inner.engine, admitted, "speech");
        meter.target(&e.provider, &e.model);
        let audio = match plan.provider.speech(&req).await {
            Ok(a) => a,
            Err(err) => {
                meter.finish(err.http_status(), Some(err.to_string()));
                let err = AssetError::from(err);
                self.record_failure(admitted, plan, text, &err).await;
                return Err(err);
            }
        };
        meter.cost(e.cost_usd);
        meter.finish(200, None);
        let mut options = plan.options.clone();
        options["voice"] = json!(req.voice);
        options["format"] = json!(format.as_str());
        let new = self.new_asset(admitted, e, text, options);
        let id = uuid::Uuid::new_v4().to_string();
        let key = object_key(&new.owner_id, &id, format.as_str());
        self.inner.store.put(&key, audio.clone()).await?;
        let outcome = AssetOutcome {
            media_type: Some(format.media_type().to_string()),
            size: audio.len() as u64,
            object_key: Some(key),
            units: e.units,
            cost_usd: e.cost_usd,
            revenue_usd: e.sell_usd,
            ..Default::default()
        };
        let a = self.inner.engine.storage().create_asset(&id, &new, AssetStatus::Succeeded, &outcome).await?;
        Ok((a, audio))
    }

    /// Transcribes audio as `principal`: the asset (its text in `prompt`; the audio is not kept)
    /// and the transcription.
    pub async fn transcribe(
        &self,
        principal: &Principal,
        attribution: Attribution,
        ask: TranscriptionAsk,
    ) -> Result<(Asset, media::Transcription)> {
        if ask.audio.is_empty() {
            return Err(invalid("`file` is empty"));
        }
        if ask.audio.len() > self.inner.cfg.max_audio_bytes {
            return Err(AssetError::TooLarge(format!("audio may be at most {} bytes", self.inner.cfg.max_audio_bytes)));
        }
        if ask.prompt.as_ref().is_some_and(|p| p.chars().count() > 2000)
            || ask.language.as_ref().is_some_and(|l| l.len() > 16)
        {
            return Err(invalid("`prompt` is at most 2000 characters and `language` an ISO-639-1 code"));
        }
        let (provider, estimate) = self.plan_transcription(ask.model.as_deref(), &ask.audio).await?;
        let admitted = self.admit(principal, attribution, estimate.cost_usd).await?;
        let options = json!({"language": ask.language, "file_name": ask.file_name});
        let plan = Plan { provider, estimate, options };
        let req = TranscriptionRequest {
            model: plan.estimate.model.clone(),
            audio: ask.audio,
            file_name: if ask.file_name.is_empty() { "audio.mp3".into() } else { ask.file_name },
            language: ask.language,
            prompt: ask.prompt,
            temperature: ask.temperature,
        };
        let mut meter = Meter::start(&self.inner.engine, &admitted, "transcription");
        meter.target(&plan.estimate.provider, &plan.estimate.model);
        let t = match plan.provider.transcribe(&req).await {
            Ok(t) => t,
            Err(err) => {
                meter.finish(err.http_status(), Some(err.to_string()));
                let err = AssetError::from(err);
                self.record_failure(&admitted, &plan, "", &err).await;
                return Err(err);
            }
        };
        let seconds = t.seconds.unwrap_or(plan.estimate.units).max(0.0).ceil();
        let cost = plan.estimate.usd_per_unit.unwrap_or(0.0) * seconds;
        meter.cost(cost);
        meter.finish(200, None);
        let new = self.new_asset(&admitted, &plan.estimate, &t.text, plan.options.clone());
        let outcome = AssetOutcome {
            media_type: Some("text/plain; charset=utf-8".into()),
            size: t.text.len() as u64,
            units: seconds,
            cost_usd: cost,
            revenue_usd: plan.estimate.sell_usd,
            ..Default::default()
        };
        let id = uuid::Uuid::new_v4().to_string();
        let a = self.inner.engine.storage().create_asset(&id, &new, AssetStatus::Succeeded, &outcome).await?;
        Ok((a, t))
    }

    async fn start_model_3d(&self, admitted: &Admitted, plan: &Plan, prompt: &str) -> Result<Asset> {
        let e = &plan.estimate;
        let o = plan.options.as_object().cloned().unwrap_or_default();
        let req = Model3dRequest {
            model: e.model.clone(),
            prompt: prompt.to_string(),
            art_style: o.get("art_style").and_then(Value::as_str).map(str::to_string),
            negative_prompt: o.get("negative_prompt").and_then(Value::as_str).map(str::to_string),
            target_polycount: o.get("target_polycount").and_then(Value::as_f64).map(|p| p as u32),
            seed: o.get("seed").and_then(Value::as_f64).map(|s| s as u64),
        };
        let mut meter = Meter::start(&self.inner.engine, admitted, "model_3d");
        meter.target(&e.provider, &e.model);
        let task = match plan.provider.start_model_3d(&req).await {
            Ok(t) => t,
            Err(err) => {
                meter.finish(err.http_status(), Some(err.to_string()));
                let err = AssetError::from(err);
                self.record_failure(admitted, plan, prompt, &err).await;
                return Err(err);
            }
        };
        // The provider bills a task's credits when it is created, whatever becomes of it.
        meter.cost(e.cost_usd);
        meter.finish(202, None);
        let mut new = self.new_asset(admitted, e, prompt, plan.options.clone());
        new.task_id = Some(task);
        let charge =
            AssetOutcome { units: e.units, cost_usd: e.cost_usd, revenue_usd: e.sell_usd, ..Default::default() };
        let id = uuid::Uuid::new_v4().to_string();
        let a = self.inner.engine.storage().create_asset(&id, &new, AssetStatus::Pending, &charge).await?;
        self.watch(a.clone());
        Ok(a)
    }

    /// An asset by id, whoever owns it (callers check access: [`Assets::may_read`]).
    pub async fn get(&self, id: &str) -> Result<Asset> {
        self.inner
            .engine
            .storage()
            .asset(id)
            .await?
            .ok_or_else(|| AssetError::NotFound(format!("asset {id} not found")))
    }

    /// Whether `principal` may read `asset`: its owner, or anyone it was shared with
    /// (`asset:read` on `/users/<owner>/assets/<id>` through RBAC), or an administrator.
    pub async fn may_read(&self, principal: &Principal, asset: &Asset) -> bool {
        self.allowed(principal, asset, gaia_rbac::Action::Read).await
    }

    /// Whether `principal` may delete or cancel `asset` (its owner, or `asset:delete` on it).
    pub async fn may_change(&self, principal: &Principal, asset: &Asset) -> bool {
        self.allowed(principal, asset, gaia_rbac::Action::Delete).await
    }

    async fn allowed(&self, principal: &Principal, asset: &Asset, action: gaia_rbac::Action) -> bool {
        let resource = gaia_rbac::Resource::asset(&asset.owner_id, &asset.id);
        let rbac = self.inner.engine.rbac().await;
        rbac.check(&gaia_rbac::Subject::from(principal), action, &resource).allowed
    }

    /// Assets of `owner` (everyone's when `None`), newest first, a page of `limit` before `before`.
    pub async fn list(
        &self,
        owner: Option<&str>,
        kind: Option<AssetKind>,
        before: Option<chrono::DateTime<chrono::Utc>>,
        limit: u32,
    ) -> Result<Vec<Asset>> {
        Ok(self.inner.engine.storage().list_assets(owner, kind, before, limit).await?)
    }

    /// Deletes an asset and its files (a job still running is cancelled at the provider first).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let mut a = self.get(id).await?;
        if !a.status.is_final() {
            // Cancelled, or finished meanwhile: either way, the files to delete are those of now.
            a = match self.cancel(id).await {
                Ok(a) => a,
                Err(_) => self.get(id).await?,
            };
        }
        for k in [&a.object_key, &a.thumbnail_key].into_iter().flatten() {
            self.inner.store.delete(k).await?;
        }
        self.inner.engine.storage().delete_asset(id).await?;
        Ok(())
    }

    /// Deletes every asset file of `owner` (with their account: the rows go with the user).
    pub async fn erase_owner(&self, owner: &str) -> Result<usize> {
        let keys = self.inner.engine.storage().asset_keys_of(owner).await?;
        for k in &keys {
            self.inner.store.delete(k).await?;
        }
        Ok(keys.len())
    }

    /// The size in bytes of `asset`'s file (`thumbnail`: its thumbnail), without reading it.
    pub async fn size(&self, asset: &Asset, thumbnail: bool) -> Result<u64> {
        if asset.kind == AssetKind::Transcription && !thumbnail {
            return Ok(asset.prompt.len() as u64);
        }
        let key = if thumbnail { asset.thumbnail_key.as_ref() } else { asset.object_key.as_ref() };
        match key {
            Some(k) => self.inner.store.size(k).await,
            None => Err(self.no_file(asset, thumbnail)),
        }
    }

    fn no_file(&self, asset: &Asset, thumbnail: bool) -> AssetError {
        if asset.status.is_final() {
            AssetError::NotFound(format!("asset {} has no {}", asset.id, if thumbnail { "thumbnail" } else { "file" }))
        } else {
            AssetError::Conflict(format!("asset {} is not ready ({})", asset.id, asset.status.as_str()))
        }
    }

    /// The bytes of `asset`'s file (`thumbnail`: its thumbnail), or `range` of them.
    pub async fn content(
        &self,
        asset: &Asset,
        thumbnail: bool,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Content> {
        if asset.kind == AssetKind::Transcription && !thumbnail {
            let bytes = Bytes::from(asset.prompt.clone());
            let total = bytes.len() as u64;
            let (bytes, range) = match range {
                Some(r) if r.end <= total => (bytes.slice(r.start as usize..r.end as usize), Some(r)),
                _ => (bytes, None),
            };
            return Ok(Content { bytes, media_type: "text/plain; charset=utf-8".into(), total, range });
        }
        let (key, media_type) = if thumbnail {
            (asset.thumbnail_key.as_ref(), "image/png".to_string())
        } else {
            (asset.object_key.as_ref(), asset.media_type.clone().unwrap_or_else(|| "application/octet-stream".into()))
        };
        let key = key.ok_or_else(|| {
            if asset.status.is_final() {
                AssetError::NotFound(format!(
                    "asset {} has no {}",
                    asset.id,
                    if thumbnail { "thumbnail" } else { "file" }
                ))
            } else {
                AssetError::Conflict(format!("asset {} is not ready ({})", asset.id, asset.status.as_str()))
            }
        })?;
        let total = self.inner.store.size(key).await?;
        match range {
            Some(r) if r.start < r.end && r.end <= total => {
                let bytes = self.inner.store.get_range(key, r.clone()).await?;
                Ok(Content { bytes, media_type, total, range: Some(r) })
            }
            _ => Ok(Content { bytes: self.inner.store.get(key).await?, media_type, total, range: None }),
        }
    }

    /// A URL that serves `id`'s file (or thumbnail) to anyone holding it, for `ttl_secs` (at most
    /// `[assets].signed_url_ttl_secs`).
    pub fn sign_url(&self, id: &str, thumbnail: bool, ttl_secs: Option<u64>) -> SignedUrl {
        let ttl = ttl_secs.unwrap_or(self.inner.cfg.signed_url_ttl_secs).clamp(1, self.inner.cfg.signed_url_ttl_secs);
        let expires = chrono::Utc::now().timestamp().saturating_add(ttl as i64);
        let variant = if thumbnail { "thumbnail" } else { "file" };
        let sig = self.inner.signer.sign(id, variant, expires);
        SignedUrl { url: format!("/media/{id}?variant={variant}&expires={expires}&sig={sig}"), expires }
    }

    /// Whether a signed URL's `variant`, `expires` and `sig` are good for `id` now.
    pub fn verify_url(&self, id: &str, variant: &str, expires: i64, sig: &str) -> bool {
        self.inner.signer.verify(id, variant, expires, sig, chrono::Utc::now().timestamp())
    }

    /// Cost, revenue and margin of the assets `filter` covers, grouped by `group`.
    pub async fn report(&self, filter: &AssetFilter, group: AssetGroup) -> Result<Vec<AssetReportRow>> {
        Ok(self.inner.engine.storage().asset_report(filter, group).await?)
    }
}
