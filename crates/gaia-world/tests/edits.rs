//! Quests and administrators' live edits of places, on the sample experience, SQLite and PostgreSQL.
//!
//! Quests: a quest completes only when the game finds what it requires (taken, place, items), gives
//! its rewards once, hands the required items to the giver; the chat tool cannot be talked past that.
//! Places: `@create`, `@edit`, `@delete`, `@connect`, `@disconnect` change what players see and where
//! they can go, versioned and published; a second engine on the same database sees them; deleting
//! a place that holds items or players is refused; `@reset experience` removes the edits and `@reset
//! undo` puts them back; players may not use any of it; ids that would break the world are refused.

use gaia_core::events::Event;
use gaia_core::testing::database_urls;
use gaia_world::Action;
use serde_json::Value;

use crate::support::{admin, player, run, templates, worlds as engine, EXP};

#[tokio::test]
async fn a_quest_is_rewarded_once_and_only_when_its_requirements_hold() {
    use gaia_mcp::ToolSource;
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = engine(&storage);
        let ann = player(&storage, "ann").await;
        let tools = gaia_world::tools::WorldTools::new(w.clone(), ann.clone(), vec![EXP.into()]);
        let grant = |quest: &str| {
            let args = serde_json::json!({"experience": EXP, "quest_id": quest}).to_string();
            let tools = &tools;
            async move { serde_json::from_str::<Value>(&tools.call("grant_quest_reward", &args).await.unwrap()).unwrap() }
        };

        // Not taken yet: the tool (a chat NPC asked nicely) gets a refusal, nothing changes.
        let v0 = w.view(EXP, &ann).await.unwrap().snapshot_version;
        let r = grant("first_aid").await;
        assert!(r["success"] == false && r["message"].as_str().unwrap().contains("not taken"), "{b}: {r}");
        let r = grant("no_such_quest").await;
        assert!(r["success"] == false && r["message"].as_str().unwrap().contains("no quest"), "{b}: {r}");
        let r = run(&w, &ann, "accept quest first_aid").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(r.state_changes[0].path.as_deref(), Some("player.quests"));
        assert!(!run(&w, &ann, "accept quest first_aid").await.success, "{b}: taken once");
        // Without the medkit.
        let r = grant("first_aid").await;
        assert!(r["success"] == false && r["message"].as_str().unwrap().contains("Medkit"), "{b}: {r}");
        // With it, but at the pharmacy: the quest is completed at the safe house.
        for step in ["go to pharmacy", "go back_room", "take medkit"] {
            assert!(run(&w, &ann, step).await.success, "{b}: {step}");
        }
        let r = run(&w, &ann, "turn in first_aid").await;
        assert!(!r.success && r.message.contains("The Safe House"), "{b}: {r:?}");
        for step in ["go front", "go main_room"] {
            assert!(run(&w, &ann, step).await.success, "{b}: {step}");
        }
        let before = w.view(EXP, &ann).await.unwrap();
        assert!(before.snapshot_version > v0);
        let r = grant("first_aid").await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["snapshot_version"].as_i64(), Some(before.snapshot_version + 1), "{b}: one change");
        let v = w.view(EXP, &ann).await.unwrap();
        // Sam's goal `thank_for_medkit` (trust 60 now, 55 needed) hands over the frequency codes.
        assert_eq!(
            templates(&v.player),
            ["bandage", "bandage", "frequency_codes"],
            "{b}: the medkit handed over, a bandage given, the codes made by Sam's checked action"
        );
        assert_eq!(v.player["stats"]["max_health"], 110, "{b}");
        assert_eq!(v.player["quests"]["first_aid"]["status"], "completed", "{b}");
        assert_eq!(w.relationship(EXP, &ann, "radio_operator").await.unwrap().trust, 60, "{b}");
        let r = admin(&w, &ann, "@where medkit_1").await;
        assert!(r.message.contains("given to Sam"), "{b}: {r:?}");
        // Once.
        let r = grant("first_aid").await;
        assert!(r["success"] == false && r["message"].as_str().unwrap().contains("already"), "{b}: {r}");
        assert_eq!(w.view(EXP, &ann).await.unwrap().snapshot_version, v.snapshot_version, "{b}");
    }
}

#[tokio::test]
async fn administrators_edit_places_live_and_nothing_is_lost() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, bus) = engine(&storage);
        let (boss, ann) = (player(&storage, "boss").await, player(&storage, "ann").await);

        // Players may not.
        let r = run(&w, &ann, "@create location cellar_house").await;
        assert!(!r.success && r.metadata.unwrap()["error"] == "not_allowed", "{b}");

        // Bad ids and missing parents change nothing.
        let v0 = w.view(EXP, &ann).await.unwrap().snapshot_version;
        for bad in [
            "@create area ../x in safe_house",
            "@create area a/b in safe_house",
            "@create area cellar in nowhere",
            "@create area main_room in pharmacy",
            "@create location safe_house",
            "@create spot crate",
            "@create planet mars",
            "@edit area nowhere name X",
            "@edit location safe_house gps 200,1",
            "@edit spot radio_desk npcs stranger",
            "@edit area roof colour red",
            "@delete area nowhere",
            "@connect main_room nowhere",
            "@disconnect main_room roof",
        ] {
            let r = admin(&w, &boss, bad).await;
            assert!(!r.success, "{b}: {bad}: {r:?}");
        }
        assert_eq!(w.view(EXP, &ann).await.unwrap().snapshot_version, v0, "{b}: nothing changed");

        // A new location with an area and a spot, joined to the main room.
        let mut events = bus.subscribe();
        for cmd in [
            "@create location cellar_house Cellar House",
            "@create area cellar in cellar_house The Cellar",
            "@create spot crate in cellar Wine Crate",
            "@edit area cellar description Cold, damp, and quiet.",
            "@connect main_room cellar",
        ] {
            let r = admin(&w, &boss, cmd).await;
            assert!(r.success, "{b}: {cmd}: {r:?}");
        }
        let mut seen = Vec::new();
        while let Ok(Ok(e)) = tokio::time::timeout(std::time::Duration::from_millis(200), events.recv()).await {
            if let Event::WorldUpdate { changes, .. } = e {
                seen.extend(changes.into_iter().map(|c| c["path"].as_str().unwrap_or_default().to_string()));
            }
        }
        assert!(
            seen.contains(&"world.locations".to_string()) && seen.contains(&"world.spots".to_string()),
            "{b}: {seen:?}"
        );
        let r = run(&w, &ann, "look").await;
        assert!(r.message.contains("cellar"), "{b}: the new exit: {}", r.message);
        let r = run(&w, &ann, "go cellar").await;
        assert!(r.success, "{b}: {r:?}");
        let r = run(&w, &ann, "look").await;
        assert!(r.message.contains("The Cellar") && r.message.contains("Cold, damp"), "{b}: {}", r.message);
        assert!(r.metadata.unwrap()["area"]["spots"]["crate"]["name"] == "Wine Crate", "{b}");

        // A second engine on the same database sees the edits (and later ones).
        let (other, _) = engine(&storage);
        let r = other.command(EXP, &ann, &Action::new("look")).await.unwrap();
        assert!(r.message.contains("The Cellar"), "{b}: {}", r.message);
        assert!(admin(&w, &boss, "@edit area cellar name The Old Cellar").await.success, "{b}");
        let r = other.command(EXP, &ann, &Action::new("look")).await.unwrap();
        assert!(r.message.contains("The Old Cellar"), "{b}: {}", r.message);

        // Nothing is lost: a place with a player or an item in it stays.
        let r = admin(&w, &boss, "@delete area cellar").await;
        assert!(!r.success && r.message.contains("1 players"), "{b}: {r:?}");
        assert!(run(&w, &ann, "drop bandage").await.success, "{b}");
        assert!(run(&w, &ann, "go main_room").await.success, "{b}");
        let r = admin(&w, &boss, "@delete location cellar_house").await;
        assert!(!r.success && r.message.contains("1 items"), "{b}: {r:?}");
        let r = admin(&w, &boss, "@delete location safe_house").await;
        assert!(!r.success && r.message.contains("start"), "{b}: {r:?}");

        // Reset puts the content's places back; undo brings the edits (and the bandage) back.
        let r = admin(&w, &boss, "@reset experience").await;
        assert!(r.success, "{b}: {r:?}");
        let r = run(&w, &ann, "go cellar").await;
        assert!(!r.success, "{b}: the cellar went with the reset: {r:?}");
        assert!(admin(&w, &boss, "@reset undo").await.success, "{b}");
        let r = run(&w, &ann, "go cellar").await;
        assert!(r.success, "{b}: {r:?}");
        let r = run(&w, &ann, "take bandage").await;
        assert!(r.success, "{b}: {r:?}");

        // Emptied, it can go; the exit into it goes with it.
        assert!(run(&w, &ann, "go main_room").await.success, "{b}");
        let r = admin(&w, &boss, "@delete location cellar_house").await;
        assert!(r.success, "{b}: {r:?}");
        let look = run(&w, &ann, "look").await;
        let exits = look.metadata.unwrap()["exits"].clone();
        assert!(!exits.as_array().unwrap().iter().any(|x| x == "cellar"), "{b}: {exits}");
        let r = admin(&w, &boss, "@list areas").await;
        assert!(!r.message.contains("cellar"), "{b}: {}", r.message);
        // Made anew, it starts empty: nothing of the deleted one comes back.
        assert!(admin(&w, &boss, "@create location cellar_house").await.success, "{b}");
        let r = admin(&w, &boss, "@list spots").await;
        assert!(!r.message.contains("crate"), "{b}: {}", r.message);

        // Passages between locations can be cut (both ways) and made again.
        let r = admin(&w, &boss, "@disconnect main_room front").await;
        assert!(r.success, "{b}: {r:?}");
        assert!(!run(&w, &ann, "go front").await.success, "{b}");
        assert!(!admin(&w, &boss, "@disconnect main_room front").await.success, "{b}: not connected any more");
        assert!(admin(&w, &boss, "@connect main_room front").await.success, "{b}");
        assert!(run(&w, &ann, "go front").await.success, "{b}");
    }
}
