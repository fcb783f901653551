//! What the integration tests share: the sample experience, an engine over it, players, commands.

use gaia_core::events::EventBus;
use gaia_core::storage::Storage;
use gaia_core::testing::copy_dir;
use gaia_world::content::load_catalog;
use gaia_world::{Action, Caller, CommandResult, Worlds};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// The sample experience's id.
pub const EXP: &str = "safe-house";

/// The sample vault's catalog (loaded without a problem).
pub fn sample() -> gaia_world::content::Catalog {
    let c = load_catalog(&sample_vault());
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    c
}

/// The sample vault's catalog with its experience edited by `edit` (a test's variation).
pub fn sample_with(edit: impl FnOnce(&mut gaia_world::content::Experience)) -> gaia_world::content::Catalog {
    let mut catalog = sample();
    edit(std::sync::Arc::make_mut(catalog.experiences.get_mut(EXP).unwrap()));
    catalog
}

/// An engine over `storage` playing the sample, and its event bus.
pub fn worlds(storage: &Storage) -> (Worlds, EventBus) {
    let bus = EventBus::default();
    let w = Worlds::new(storage.clone(), bus.clone());
    w.set_catalog(sample());
    (w, bus)
}

/// A new user (a player).
pub async fn player(storage: &Storage, name: &str) -> String {
    storage.create_user(&format!("{name}-{}@example.com", uuid::Uuid::new_v4()), None, None).await.unwrap().id
}

/// A player's command in the sample.
pub async fn run(w: &Worlds, user: &str, text: &str) -> CommandResult {
    w.command(EXP, user, &Action::new(text)).await.unwrap()
}

/// An administrator's command in the sample.
pub async fn admin(w: &Worlds, user: &str, text: &str) -> CommandResult {
    w.command(EXP, Caller::player(user).with_admin(true), &Action::new(text)).await.unwrap()
}

/// The templates of what a player's view says they carry, sorted.
pub fn templates(view: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        view["inventory"].as_array().unwrap().iter().map(|i| i["template_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// The project's sample vault (`crates/gaia-world/sample`).
pub fn sample_vault() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample")
}

/// A vault in a temporary folder with a copy of the sample experience under each of `ids`.
pub fn vault_with(ids: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    for id in ids {
        let folder = vault.join("experiences").join(id);
        copy_dir(&sample_vault().join("experiences/safe-house"), &folder);
        edit_json(&folder.join("config.json"), |config| config["id"] = json!(id));
    }
    (dir, vault)
}

/// Rewrites the JSON file at `path` with `edit`.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}
