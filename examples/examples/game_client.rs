//! A headless game client ("player") on Gaia's game-client WebSocket, `/ws/experience`: what a Unity
//! client does, in Rust. It starts Gaia in-process on a free loopback port with the sample world
//! (`crates/gaia-world/sample`, copied into a temporary vault), then two players connect with their
//! API keys, walk to the safe house, and Ann collects a can while Bob watches the `world_update`
//! arrive; Ann walks on to the pharmacy (a new zone, a new `area_of_interest`).
//!
//! ```sh
//! cargo run -p gaia-examples --example game_client
//! ```
//!
//! The protocol (README, "The game client's WebSocket"): the server sends `connected`, then answers
//! `update_location` with `area_of_interest`, `action` with `action_response`, and pushes
//! `world_update` deltas whose `base_version` is the version the client has.

use anyhow::{bail, ensure, Context as _};
use futures::{SinkExt, StreamExt};
use gaia_server::Gaia;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One player's connection and the version of the world it has.
struct Player {
    name: &'static str,
    ws: Socket,
    version: i64,
}

impl Player {
    async fn connect(base: &str, name: &'static str, key: &str) -> anyhow::Result<Player> {
        let url = format!("{base}/ws/experience?token={key}&experience=safe-house");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.context("connecting")?;
        let mut p = Player { name, ws, version: -1 };
        let hello = p.next("connected").await?;
        println!("{name}: connected as {}", hello["user_id"]);
        Ok(p)
    }

    async fn send(&mut self, v: Value) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::Text(v.to_string().into())).await?)
    }

    /// The next message of type `kind` (others are printed), within 5 s.
    async fn next(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .with_context(|| format!("{}: no {kind} in time", self.name))?;
            let Some(Ok(Message::Text(t))) = frame else { continue };
            let v: Value = serde_json::from_str(t.as_str())?;
            match v["type"].as_str() {
                Some("area_of_interest") => self.version = v["snapshot_version"].as_i64().unwrap_or(-1),
                Some("world_update") => {
                    // A delta applies to the version the client has; any other: ask for a fresh view.
                    if v["base_version"].as_i64() != Some(self.version) {
                        bail!("{}: a delta for another version: {v}", self.name);
                    }
                    self.version = v["snapshot_version"].as_i64().unwrap_or(-1);
                }
                Some("error") => bail!("{}: {v}", self.name),
                _ => {}
            }
            if v["type"] == kind {
                return Ok(v);
            }
            println!("{}: ({}) {v}", self.name, v["type"]);
        }
    }

    /// Sends a GPS position; the area of interest around it.
    async fn walk(&mut self, lat: f64, lng: f64) -> anyhow::Result<Value> {
        self.send(json!({"type": "update_location", "lat": lat, "lng": lng})).await?;
        let a = self.next("area_of_interest").await?;
        let areas: Vec<&String> = a["areas"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        println!("{}: in {} (areas {areas:?}), version {}", self.name, a["zone"]["name"], self.version);
        Ok(a)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The vault: the sample experience, as designers would keep it in git.
    let vault = tempfile::tempdir()?;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/gaia-world/sample/experiences/safe-house");
    copy(&sample, &vault.path().join("experiences/safe-house"))?;

    // Ann "walks" 300 m in an instant here: positions that fast are not trusted by default
    // (`worlds.gps_max_speed_mps`), so this example allows any speed.
    let mut config = gaia_core::Config::default();
    config.worlds.gps_max_speed_mps = 1e9;
    let gaia = Gaia::builder()
        .config(config)
        .database("sqlite::memory:")
        .jwt_secret("game-client-example-secret-0123456789")
        .kb_config(gaia_kb::KbConfig { root: vault.path().to_path_buf(), sync_interval_secs: 0, ..Default::default() })
        .ui(false)
        .background_jobs(false)
        .build()
        .await?;
    let st = gaia.state().clone();
    st.reload_worlds().await;
    ensure!(
        st.worlds().experience("safe-house").is_ok(),
        "the sample world did not load: {:?}",
        st.worlds().catalog().errors
    );
    let mut keys = Vec::new();
    for email in ["ann@example.com", "bob@example.com"] {
        let user = st.storage().create_user(email, None, None).await?;
        keys.push(st.auth().create_api_key(&user.id, Some("game client")).await?.1);
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("ws://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = gaia
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await;
    });

    let mut ann = Player::connect(&base, "ann", &keys[0]).await?;
    let mut bob = Player::connect(&base, "bob", &keys[1]).await?;
    ann.send(json!({"type": "get_commands"})).await?;
    let schema = ann.next("commands_schema").await?;
    println!("ann: commands {:?}", schema["commands"].as_object().map(|m| m.keys().collect::<Vec<_>>()));

    // Both at the safe house (48.8566, 2.3522).
    let seen = ann.walk(48.8567, 2.3523).await?;
    bob.walk(48.8566, 2.3521).await?;
    let shelf = &seen["areas"]["main_room"]["spots"]["supply_shelf"]["items"];
    println!("ann: on the shelf: {shelf}");

    // Ann picks up a can; Bob sees it go.
    ann.send(json!({"type": "action", "action": "collect_item", "instance_id": "canned_food_1", "request_id": 1}))
        .await?;
    let r = ann.next("action_response").await?;
    println!("ann: {} (item {})", r["message"], r["item_id"]);
    ensure!(r["success"] == true, "the collect failed: {r}");
    ann.next("world_update").await?;
    let update = bob.next("world_update").await?;
    println!("bob: world_update {} -> {}: {}", update["base_version"], update["snapshot_version"], update["changes"]);

    // Ann walks 300 m north-east: the pharmacy, a new zone.
    let pharmacy = ann.walk(48.8585, 2.3552).await?;
    ensure!(pharmacy["zone"]["id"] == "pharmacy", "expected the pharmacy: {}", pharmacy["zone"]);

    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
