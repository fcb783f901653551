//! Mount Gaia's whole API inside an existing axum app, under `/ai`, set up from code with
//! [`Gaia::builder`] (no configuration file, no `gaia-server` binary).
//!
//! The game's own routes (`/health`, `/players/{id}`) stay as they are; Gaia answers under `/ai`:
//! its own API (`/ai/api/v1/...`), the OpenAI-compatible `/ai/v1/chat/completions`, the
//! Anthropic-compatible `/ai/v1/messages`, metrics, and so on. The example starts the combined app on
//! a free loopback port, calls a game route and Gaia's routes with an API key made from code, prints
//! the answers and shuts down. The model is Gaia's built-in mock upstream, so it runs anywhere:
//!
//! ```sh
//! cargo run -p gaia-examples --example mount_router
//! ```

use anyhow::{ensure, Context as _};
use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider};
use gaia_server::Gaia;
use serde_json::{json, Value};
use std::sync::Arc;

/// One of the game's own routes.
async fn player(Path(id): Path<String>) -> Json<Value> {
    Json(json!({"id": id, "name": "Ash", "level": 7}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A model to talk to: the mock upstream (swap in OpenAiConfig::new("https://api.openai.com/v1", key)).
    let mock = MockUpstream::start("127.0.0.1:0".parse()?, MockConfig::default()).await?;
    let model = OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None));

    // Gaia, from code: an in-memory database (use "sqlite://game.db" or "postgres://…" to keep data),
    // the in-process cache, one provider, a rate limit, and no web UI since it is nested under /ai.
    let gaia = Gaia::builder()
        .database("sqlite::memory:")
        .jwt_secret("mount-router-example-secret-0123456789")
        .provider(Arc::new(model))
        .limits(gaia_core::config::LimitsConfig { key_requests_per_minute: 600, ..Default::default() })
        .ui(false)
        .background_jobs(false)
        .build()
        .await?;

    // A player account and an API key for the game server, made through the library APIs.
    let st = gaia.state();
    let user = st.storage().create_user("game-server@example.com", None, None).await?;
    let (_, key) = st.auth().create_api_key(&user.id, Some("game server")).await?;

    // The game's app with Gaia nested under /ai.
    let app = Router::new()
        .route("/health", get(|| async { "game ok" }))
        .route("/players/{id}", get(player))
        .nest("/ai", gaia.router());
    let server = gaia_examples::LocalServer::start(app).await?;
    let base = server.url.clone();
    println!("game server with Gaia under /ai at {base}");

    let http = reqwest::Client::new();
    let game: Value = http.get(format!("{base}/players/p1")).send().await?.json().await?;
    println!("GET /players/p1          -> {game}");
    ensure!(game["name"] == "Ash", "the game's own route answers");

    let health: Value = http.get(format!("{base}/ai/health")).send().await?.json().await?;
    println!("GET /ai/health           -> status {}", health["status"]);

    // Gaia's own chat API (stores the conversation)…
    let r = http
        .post(format!("{base}/ai/api/v1/chat"))
        .header("X-API-Key", &key)
        .json(&json!({"message": "Where is the safe house?", "model": "mock-gpt"}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "Gaia's chat answered {}", r.status());
    ensure!(r.headers().contains_key("x-ratelimit-remaining-requests"), "rate-limit headers are set");
    let chat: Value = r.json().await?;
    let answer = chat["choices"][0]["message"]["content"].as_str().context("an answer")?;
    println!("POST /ai/api/v1/chat     -> {answer}");

    // …and the OpenAI-compatible endpoint, for clients that already speak OpenAI.
    let r = http
        .post(format!("{base}/ai/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "Is the fog coming?"}]}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "the compatible endpoint answered {}", r.status());
    let v: Value = r.json().await?;
    let answer = v["choices"][0]["message"]["content"].as_str().context("an answer")?;
    println!("POST /ai/v1/chat/completions -> {answer}");
    ensure!(answer.contains("Is the fog coming?"), "the mock echoes the question");

    // Gaia's errors stay JSON, and unknown routes under /ai are Gaia's 404s.
    let r = http.get(format!("{base}/ai/api/v1/conversations")).send().await?;
    println!("GET /ai/api/v1/conversations without a key -> {}", r.status());
    ensure!(r.status() == 401, "credentials are required");

    server.stop().await?;
    println!("mount_router: all checks passed");
    Ok(())
}
