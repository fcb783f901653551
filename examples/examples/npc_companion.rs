//! An NPC companion in your own game server: a small axum app (not Gaia's server) that embeds Gaia's
//! conversation engine (`gaia-chat`), a persona kept in Gaia's storage and the game's knowledge base.
//!
//! `POST /npc/{name}/talk` with `{"player": "...", "text": "...", "topic": "..."}` (topic optional)
//! loads what the knowledge base says about the topic (by default the NPC's own note) within a token
//! budget and runs a turn of the engine: the NPC's persona, then the notes, in the system prompt, the
//! conversation between this player and this NPC so far (kept by the engine, fitted to the model's
//! context window), the model call (admitted against the game's rate limits and budgets, metered), and
//! the answer stored. It returns the NPC's line with the notes it was given.
//!
//! The example starts the server on a free loopback port, talks to Dr. Mara Quill twice as a player
//! would (with reqwest), prints her answers and shuts down. The model is Gaia's built-in mock upstream
//! (it answers `Mock reply to: <the player's text>`) and the knowledge base is the sample game world,
//! so it needs no configuration and no network:
//!
//! ```sh
//! cargo run -p gaia-examples --example npc_companion
//! ```
//!
//! With a real model, register an `OpenAiProvider` / `AnthropicProvider` (or use
//! `ProviderRegistry::from_config`) and give the persona that model.

use anyhow::{ensure, Context as _};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gaia_chat::{Engine, TurnInput};
use gaia_core::auth::{AuthMethod, Principal};
use gaia_core::storage::{PersonaInput, Storage};
use gaia_kb::{Kb, KbConfig};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Tokens of knowledge-base text an NPC gets per line it says.
const CONTEXT_BUDGET: usize = 1_500;

/// What the game server's handlers share (cheap to clone: everything inside is shared).
#[derive(Clone)]
struct Game {
    engine: Engine,
    kb: Kb,
    storage: Storage,
    /// The game's account in Gaia: it owns the NPC personas and the NPCs' conversations.
    game: Principal,
    /// NPC name in URLs → persona id.
    npcs: Arc<HashMap<String, String>>,
    /// (player, NPC) → the conversation between them.
    conversations: Arc<Mutex<HashMap<(String, String), String>>>,
}

/// A player's line.
#[derive(Serialize, Deserialize)]
struct Talk {
    player: String,
    text: String,
    /// What to look up in the knowledge base: a note's name, title or alias (with the notes it links
    /// to and that link to it), a folder, a tag, or words that must all appear. Defaults to the NPC's
    /// own note (its persona's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
}

/// The NPC's answer.
#[derive(Serialize, Deserialize)]
struct Reply {
    npc: String,
    line: String,
    /// The knowledge-base notes the NPC was given.
    sources: Vec<String>,
}

async fn talk(
    State(game): State<Game>,
    Path(name): Path<String>,
    Json(talk): Json<Talk>,
) -> Result<Json<Reply>, Error> {
    // The persona is read at each turn, so a designer's edit applies at once.
    let persona_id = game.npcs.get(&name).ok_or_else(|| Error::not_found(format!("no NPC named {name}")))?;
    let persona = game
        .storage
        .get_persona(&game.game.user_id, persona_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("the persona of {name} is gone")))?;

    // What the NPC knows about the topic: the topic's note and its linked notes, within the budget.
    let topic = talk.topic.as_deref().unwrap_or(&persona.name);
    let context = game.kb.context(topic, CONTEXT_BUDGET)?;
    let system = format!(
        "You are talking to the player {}. Stay in character; answer in two sentences at most.\n\
         What you know about the world:\n\n{}",
        talk.player,
        context.to_prompt()
    );

    // One turn of the engine: admitted (rate limits, budgets), the persona and its model, the history
    // of this player's conversation with this NPC, the call (metered), the answer stored.
    let key = (talk.player.clone(), name.clone());
    let conversation_id = game.conversations.lock().map_err(|_| anyhow::anyhow!("lock poisoned"))?.get(&key).cloned();
    let gate = game.engine.admit(&game.game, false).await.map_err(Error::refused)?;
    let admitted = gate.budgets(None).await.map_err(Error::refused)?;
    let input = TurnInput {
        message: talk.text,
        persona_id: Some(persona.id.clone()),
        conversation_id,
        system: Some(system),
        max_tokens: Some(200),
        ..TurnInput::default()
    };
    let turn = game.engine.turn(&admitted, "npc", input).await.map_err(Error::engine)?;
    let answer = turn.complete().await.map_err(Error::engine)?;
    game.conversations.lock().map_err(|_| anyhow::anyhow!("lock poisoned"))?.insert(key, answer.conversation_id);

    Ok(Json(Reply {
        npc: persona.name,
        line: answer.content,
        sources: context.documents.into_iter().map(|d| d.path).collect(),
    }))
}

/// An error answered as `{"detail": "..."}` with a status.
struct Error(StatusCode, String);

impl Error {
    fn not_found(message: String) -> Self {
        Error(StatusCode::NOT_FOUND, message)
    }

    /// The engine's errors keep their status (400 bad input, 404, 429 rate limit, 502 provider, …).
    fn engine(e: gaia_chat::ChatError) -> Self {
        Error(StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.to_string())
    }

    /// A refusal by admission (403, 429, 402).
    fn refused(r: gaia_chat::Refusal) -> Self {
        Error::engine(r.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "detail": self.1 }))).into_response()
    }
}

/// Anything else (storage, knowledge base, provider) is a 500.
impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(e: E) -> Self {
        Error(StatusCode::INTERNAL_SERVER_ERROR, format!("{:#}", e.into()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The model: Gaia's mock upstream, registered like any OpenAI-compatible server.
    let mock = MockUpstream::start("127.0.0.1:0".parse()?, MockConfig::default()).await?;
    let models = ProviderRegistry::new();
    models.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None))));

    // The knowledge base: the sample world, read-only, indexed in memory.
    let vault = gaia_examples::sample_vault()?;
    let kb = Kb::open(KbConfig { root: vault.path.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await?;

    // Personas in Gaia's storage (in memory here; `sqlite://game.db` or PostgreSQL to keep them).
    let storage = Storage::connect("sqlite::memory:").await?;
    storage.migrate().await?;
    let designer = storage.create_user("designer@example.com", None, Some("Game designer")).await?;
    let mara = storage
        .create_persona(
            &designer.id,
            &PersonaInput {
                name: Some("Dr. Mara Quill".into()),
                description: Some("The epidemiologist who guides new players".into()),
                system_prompt: Some(
                    "You are Dr. Mara Quill, an epidemiologist who stayed behind in a zombie-infested city. \
                     Calm, precise, dry humour."
                        .into(),
                ),
                model: Some("mock-gpt".into()),
                temperature: Some(0.7),
                // Mara answers from what the game gives her: no tools.
                tools: Some(Vec::new()),
            },
        )
        .await?;

    // The engine over Gaia's parts: storage, the models, the event bus, rate limits and budgets (the
    // defaults here; set limits and budgets per account in storage), access control, usage metering.
    // No background calls (titles, memory) and no tool catalog: Mara answers from the notes the game
    // puts in her prompt.
    let quotas = gaia_core::quota::Quotas::new(storage.clone(), gaia_core::config::LimitsConfig::default());
    let engine = gaia_examples::engine(&storage, models, quotas);
    let game = Game {
        engine,
        kb,
        storage,
        game: Principal { user_id: designer.id, email: Some(designer.email), is_admin: false, method: AuthMethod::Jwt },
        npcs: Arc::new(HashMap::from([("mara".to_string(), mara.id)])),
        conversations: Arc::default(),
    };
    let app = Router::new().route("/npc/{name}/talk", post(talk)).with_state(game);

    // Serve on a free loopback port until told to stop.
    let server = gaia_examples::LocalServer::start(app).await?;
    println!("game server on {}\n", server.url);

    // A player's client. (No proxy: the server is on loopback.)
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{}/npc/mara/talk", server.url);
    let lines = [
        // About a place, named by one of its aliases.
        ("Where can I hide tonight?", Some("Bunker"), "Places/Safe House.md"),
        // No topic: what Mara's own note says about her (and the notes around it).
        ("Who are you, doctor?", None, "Characters/Dr. Mara Quill.md"),
    ];
    for (text, topic, expected_source) in lines {
        let talk = Talk { player: "Ash".into(), text: text.into(), topic: topic.map(Into::into) };
        let response = client.post(&url).json(&talk).send().await?;
        ensure!(response.status().is_success(), "talk failed: {} {}", response.status(), response.text().await?);
        let reply: Reply = response.json().await?;
        println!("Ash: {text}");
        println!("{}: {}", reply.npc, reply.line);
        println!("  (knowledge: {})\n", reply.sources.join(", "));
        ensure!(reply.line.contains(text), "the mock model echoes the player's line");
        ensure!(reply.sources.first().is_some_and(|s| s == expected_source), "{expected_source} should come first");
        // The model really got the persona, then the knowledge-base notes, as system prompts.
        let sent = mock.last_request().context("the model was not called")?;
        let persona = sent["messages"][0]["content"].as_str().unwrap_or_default();
        ensure!(persona.starts_with("You are Dr. Mara Quill"), "the persona comes first in the system prompt");
        let notes = sent["messages"][1]["content"].as_str().unwrap_or_default();
        ensure!(notes.contains(&format!("({expected_source})")), "the notes follow it");
    }
    // Ash's second line reached Mara with the first exchange before it: the engine keeps the history.
    let sent = mock.last_request().context("the model was not called")?;
    let said: Vec<&str> =
        sent["messages"].as_array().into_iter().flatten().filter_map(|m| m["content"].as_str()).collect();
    ensure!(said.contains(&"Where can I hide tonight?"), "the conversation so far goes with each line");

    // An NPC the game does not have.
    let response = client.post(format!("{}/npc/nobody/talk", server.url)).json(&serde_json::json!({
        "player": "Ash", "text": "Hello?"
    }));
    let status = response.send().await?.status();
    println!("talking to an unknown NPC: {status}");
    ensure!(status == StatusCode::NOT_FOUND, "unknown NPCs are a 404");

    // Shut down: the server finishes in-flight requests, then the mock stops.
    server.stop().await?;
    mock.shutdown().await;
    println!("\nnpc_companion: all checks passed");
    Ok(())
}
