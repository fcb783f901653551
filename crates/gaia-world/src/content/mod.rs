//! Experiences as written in the vault: `experiences/<exp>/…` read, validated and kept in memory.
//! A broken experience is reported (each problem naming the file and the field) and skipped; the
//! others load.
//!
//! An experience's folder (`../shared/specs/game-worlds.md` §1):
//!
//! ```text
//! config.json                     settings (its `id` is the folder's name)
//! state/world.json                the world as a new instance starts it
//! templates/items/<id>.md         item templates (YAML frontmatter, then Markdown)
//! templates/npcs/<id>.md          NPC templates (the body: personality and knowledge; goals
//!                                 and actions in the frontmatter: see [`Mind`])
//! game-logic/<command>.md         player commands, rules in prose
//! admin-logic/<command>.md        admin commands (`requires_admin` defaults to true)
//! waypoints/<id>.md               real-world anchors (one fenced ```yaml block)
//! scenes/<id>.md                  scenes: several NPCs and the players of an area, in narrative
//!                                 sections (see [`Scene`])
//! ```
//!
//! [`load_catalog`] reads every experience, [`load_experience`] one. Everything is bounded: files of
//! at most 4 MiB (64 MiB per experience), 10,000 entries per folder, 1,000 experiences, 100,000 item
//! instances per experience, 1,000 problems listed per experience. Symbolic links are not followed
//! (reported), hidden files are ignored, unknown fields are kept (`extra`).
//!
//! ```
//! let vault = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
//! let catalog = gaia_world::content::load_catalog(&vault);
//! assert!(catalog.errors.is_empty(), "{:?}", catalog.errors);
//! let safe_house = &catalog.experiences["safe-house"];
//! assert_eq!(safe_house.config.bootstrap.player_starting_location, "safe_house");
//! ```

mod load;
mod mind;
mod model;
mod scene;
mod validate;

pub use load::{load_catalog, load_experience, Catalog};
pub use mind::*;
pub use model::*;
pub use scene::*;
pub use validate::ContentError;
