//! A Rust game server embedding `gaia-world` directly: the sample experience (`safe-house`, from
//! `crates/gaia-world/sample`) loaded from its vault folder, two players in one shared world, fast
//! commands, and the `world_update` events a real-time layer would deliver.
//!
//! No model is needed (`talk` and rules commands are the conversation engine's: see the README's
//! "Game worlds"). The state is kept in a temporary SQLite database:
//!
//! ```sh
//! cargo run -p gaia-examples --example game_world
//! ```

use anyhow::ensure;
use gaia_core::events::{Event, EventBus};
use gaia_core::storage::Storage;
use gaia_world::content::load_catalog;
use gaia_world::{Action, Worlds};
use std::path::Path;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Live state in the database (SQLite here; a `postgres://` URL scales out), changes on the bus.
    let dir = tempfile::tempdir()?;
    let storage = Storage::connect(&format!("sqlite://{}", dir.path().join("game.db").display())).await?;
    storage.migrate().await?;
    let bus = EventBus::default();
    let mut updates = bus.subscribe();
    let worlds = Worlds::new(storage.clone(), bus.clone());

    // The content, as designers wrote it in the vault: validated, problems named by file and field.
    let vault = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/gaia-world/sample");
    let catalog = load_catalog(&vault);
    ensure!(catalog.errors.is_empty(), "content problems: {:?}", catalog.errors);
    worlds.set_catalog(catalog);
    println!("experiences: {:?}", worlds.catalog().experiences.keys().collect::<Vec<_>>());

    let ann = storage.create_user("ann@example.com", None, Some("Ann")).await?.id;
    let bob = storage.create_user("bob@example.com", None, Some("Bob")).await?.id;
    let exp = "safe-house";

    // Ann looks around, picks up a can, walks to the pharmacy's back room and takes the medkit.
    for text in ["look", "pick up the can of beans", "go to pharmacy", "go back_room", "take the medkit", "use medkit"]
    {
        let r = worlds.command(exp, &ann, &Action::new(text)).await?;
        println!("ann> {text}\n     {} (success: {}, version {})", r.message, r.success, r.snapshot_version);
    }
    // Each change reached the bus as a world_update delta.
    let mut deltas = 0;
    while let Ok(ev) = updates.try_recv() {
        if let Event::WorldUpdate { base_version, snapshot_version, changes, .. } = ev {
            deltas += 1;
            println!("world_update {base_version} -> {snapshot_version}: {} change(s)", changes.len());
        }
    }
    ensure!(deltas == 5, "five changes, five deltas (got {deltas})");

    // Bob, in the same shared world, sees one can fewer; he takes another while Ann walks on: two
    // changes at the same moment, each with its own version.
    let look = worlds.command(exp, &bob, &Action::new("look")).await?;
    ensure!(!look.message.contains("can of beans"), "Ann took it: {}", look.message);
    let (take, walk) = (Action::new("take the can of peaches"), Action::new("go front"));
    let (a, b) = tokio::join!(worlds.command(exp, &bob, &take), worlds.command(exp, &ann, &walk));
    println!("bob> take the can of peaches\n     {}", a?.message);
    println!("ann> go front\n     {}", b?.message);

    let view = worlds.view(exp, &ann).await?;
    println!("ann's view at version {}: {}", view.snapshot_version, view.player);
    Ok(())
}
