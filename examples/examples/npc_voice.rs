//! A voiced NPC in your own game server: the player speaks, the NPC hears (a transcription), answers
//! (a chat turn of Gaia's conversation engine) and speaks its answer (speech), each step admitted
//! against the game's rate limits and budgets, metered with its cost, and the audio kept as an asset
//! (`gaia-assets`) that game clients fetch by a signed URL or receive inline.
//!
//! `POST /npc/{name}/talk` with `{"player": "...", "text": "..."}` or, for a spoken line,
//! `{"player": "...", "audio_base64": "<WAV or MP3>"}` answers
//! `{"heard", "line", "audio": {"asset_id", "media_type", "base64"}, "cost_usd"}`.
//!
//! The example starts the server on a free loopback port, sends one typed and one spoken line as a
//! game client would, prints what the NPC heard and said, and shuts down. The models are Gaia's mock
//! upstream (its speech carries the text, so its transcription hears it back), so it needs no
//! configuration and no network:
//!
//! ```sh
//! cargo run -p gaia-examples --example npc_voice
//! ```
//!
//! With real models, register an `OpenAiProvider` for `https://api.openai.com/v1` and name
//! `openai/gpt-4o-mini`, `openai/tts-1` and `openai/whisper-1` (or any OpenAI-compatible server's).

use anyhow::ensure;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use gaia_assets::{AssetRequest, AssetStore, Assets, TranscriptionAsk};
use gaia_chat::{Engine, TurnInput};
use gaia_core::attribution::Attribution;
use gaia_core::auth::{AuthMethod, Principal};
use gaia_core::storage::{AssetKind, NewUnitPrice, Storage, UnitPriceKind};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

const CHAT_MODEL: &str = "openai/mock-gpt";
const VOICE_MODEL: &str = "openai/tts-1";
const EAR_MODEL: &str = "openai/whisper-1";

#[derive(Clone)]
struct Game {
    engine: Engine,
    assets: Assets,
    /// The game's account in Gaia: it owns the NPCs' conversations and audio.
    game: Principal,
}

#[derive(Serialize, Deserialize)]
struct Talk {
    player: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audio_base64: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Audio {
    asset_id: String,
    media_type: String,
    base64: String,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    heard: String,
    line: String,
    audio: Audio,
    cost_usd: f64,
}

async fn talk(State(g): State<Game>, Path(npc): Path<String>, Json(t): Json<Talk>) -> Result<Json<Reply>, Error> {
    // Everything is charged to the game's account and recorded for this player.
    let who = || Attribution::new(Some(&t.player), Default::default());
    let mut cost = 0.0;

    // 1. Hear the player (when they spoke).
    let heard = match (&t.text, &t.audio_base64) {
        (Some(text), None) => text.clone(),
        (None, Some(b64)) => {
            let audio = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| Error::bad(e.to_string()))?;
            let ask = TranscriptionAsk {
                model: Some(EAR_MODEL.into()),
                audio: audio.into(),
                file_name: "player.wav".into(),
                ..Default::default()
            };
            let (asset, heard) = g.assets.transcribe(&g.game, who()?, ask).await.map_err(Error::asset)?;
            cost += asset.cost_usd;
            heard.text
        }
        _ => return Err(Error::bad("send `text` or `audio_base64`".into())),
    };

    // 2. The NPC answers: one turn of the engine (admitted, metered, stored).
    let admitted = g.engine.admit_for(&g.game, false, who()?).await.map_err(Error::refused)?;
    let admitted = admitted.budgets(None).await.map_err(Error::refused)?;
    let input = TurnInput {
        message: heard.clone(),
        model: Some(CHAT_MODEL.into()),
        system: Some(format!("You are {npc}, the gatekeeper. Answer in one sentence.")),
        max_tokens: Some(120),
        ..TurnInput::default()
    };
    let answer =
        g.engine.turn(&admitted, "npc", input).await.map_err(Error::chat)?.complete().await.map_err(Error::chat)?;

    // 3. …and says it aloud.
    let say = AssetRequest {
        kind: Some(AssetKind::Speech),
        prompt: answer.content.clone(),
        model: Some(VOICE_MODEL.into()),
        options: serde_json::from_value(json!({"voice": "onyx", "format": "wav"})).unwrap_or_default(),
    };
    let (asset, audio) = g.assets.speak(&g.game, who()?, &say).await.map_err(Error::asset)?;
    cost += asset.cost_usd;
    Ok(Json(Reply {
        heard,
        line: answer.content,
        audio: Audio {
            asset_id: asset.id,
            media_type: asset.media_type.unwrap_or_default(),
            base64: base64::engine::general_purpose::STANDARD.encode(&audio),
        },
        cost_usd: cost,
    }))
}

/// An error answered as `{"detail": "..."}` with its status.
struct Error(StatusCode, String);

impl Error {
    fn bad(m: String) -> Self {
        Error(StatusCode::BAD_REQUEST, m)
    }
    fn asset(e: gaia_assets::AssetError) -> Self {
        Error(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.to_string())
    }
    fn chat(e: gaia_chat::ChatError) -> Self {
        Error(StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.to_string())
    }
    fn refused(r: gaia_chat::Refusal) -> Self {
        Error::chat(r.into())
    }
}

impl From<gaia_core::error::CoreError> for Error {
    fn from(e: gaia_core::error::CoreError) -> Self {
        Error::bad(e.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "detail": self.1 }))).into_response()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The models: Gaia's mock upstream, registered like any OpenAI-compatible server.
    let mock = MockUpstream::start("127.0.0.1:0".parse()?, MockConfig::default()).await?;
    let models = ProviderRegistry::new();
    models.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None))));
    // What the voice costs (usually in gaia.toml's catalog, or recorded through the pricing API).
    let storage = Storage::connect("sqlite::memory:").await?;
    storage.migrate().await?;
    for (model, unit, usd) in [("tts-1", "character", 0.000015), ("whisper-1", "second", 0.0001)] {
        let price = NewUnitPrice {
            kind: UnitPriceKind::Cost,
            provider: "openai".into(),
            model: model.into(),
            unit: unit.into(),
            usd_per_unit: usd,
            effective_from: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
        };
        storage.add_unit_price(&price, None).await?;
    }
    let account = storage.create_user("gatekeeper-game@example.com", None, Some("The game")).await?;
    let quotas = gaia_core::quota::Quotas::new(storage.clone(), Default::default());
    quotas.reload_prices().await?;
    models.set_price_source(Arc::new(quotas.clone()));

    let engine = gaia_examples::engine(&storage, models, quotas);
    // The audio is kept in a folder here; `assets.store = "s3://bucket/game"` keeps it in a bucket.
    let folder = tempfile::tempdir()?;
    let assets = Assets::new(
        engine.clone(),
        AssetStore::folder(folder.path())?,
        Default::default(),
        b"the game server's own secret key".to_vec(),
    );
    let game = Game {
        engine,
        assets,
        game: Principal { user_id: account.id, email: Some(account.email), is_admin: false, method: AuthMethod::Jwt },
    };
    let app = Router::new().route("/npc/{name}/talk", post(talk)).with_state(game);
    let server = gaia_examples::LocalServer::start(app).await?;
    println!("game server on {}\n", server.url);

    // A game client: a typed line, then the NPC's own answer played back to it as spoken audio.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{}/npc/Brann/talk", server.url);
    let typed = Talk { player: "Ash".into(), text: Some("May I pass the gate?".into()), audio_base64: None };
    let r = client.post(&url).json(&typed).send().await?;
    ensure!(r.status().is_success(), "talk failed: {} {}", r.status(), r.text().await?);
    let first: Reply = r.json().await?;
    println!(
        "Ash types: {}\nBrann says: {} ({} bytes of {})",
        first.heard,
        first.line,
        first.audio.base64.len(),
        first.audio.media_type
    );
    ensure!(first.audio.media_type == "audio/wav", "Brann speaks WAV");

    let spoken = Talk { player: "Ash".into(), text: None, audio_base64: Some(first.audio.base64.clone()) };
    let r = client.post(&url).json(&spoken).send().await?;
    ensure!(r.status().is_success(), "talk failed: {} {}", r.status(), r.text().await?);
    let second: Reply = r.json().await?;
    println!("\nAsh plays Brann's words back; Brann hears: {}\nBrann says: {}", second.heard, second.line);
    ensure!(second.heard == first.line, "the NPC heard the audio's words");
    ensure!(second.cost_usd > 0.0, "hearing and speaking are priced");
    println!("\nthat exchange cost ${:.6}", second.cost_usd);

    server.stop().await
}
