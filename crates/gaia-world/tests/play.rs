//! Playing the sample experience (`safe-house`) through the engine: look, go, collect, inventory,
//! examine, use, drop, give, quests; commands out of place and bad input change nothing; every change
//! raises the version by one and is published as a `world_update`; 100 players racing for one item:
//! exactly one gets it. On SQLite and PostgreSQL.

use gaia_core::events::Event;
use gaia_core::testing::database_urls;
use gaia_world::{Action, CommandResult, WorldError, Worlds};
use serde_json::Value;

use crate::support::{player, run, templates, worlds, EXP};

#[tokio::test]
async fn the_sample_plays_end_to_end() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, bus) = worlds(&storage);
        let mut events = bus.subscribe();
        let ann = player(&storage, "ann").await;

        // A new player starts in the safe house with a bandage.
        let v = w.view(EXP, &ann).await.unwrap();
        assert_eq!(
            (v.player["current_location"].as_str(), v.player["current_area"].as_str()),
            (Some("safe_house"), Some("main_room")),
            "{b}"
        );
        assert_eq!(templates(&v.player), ["bandage"], "{b}");
        let start = v.snapshot_version;

        let look = run(&w, &ann, "look").await;
        assert!(look.success, "{b}: {look:?}");
        assert!(look.message.contains("Sam"), "{b}: {}", look.message);
        let meta = look.metadata.unwrap();
        let exits: Vec<&str> = meta["exits"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(exits.contains(&"front") && exits.contains(&"roof"), "{b}: {exits:?}");
        assert_eq!(look.snapshot_version, start, "looking changes nothing");

        // Out of place: not collectible, not here, nowhere to go.
        let r = run(&w, &ann, "take the radio").await;
        assert!(!r.success && r.message.contains("cannot be collected"), "{b}: {r:?}");
        let r = run(&w, &ann, "collect medkit").await;
        assert!(!r.success && r.message.contains("no medkit here"), "{b}: {r:?}");
        let r = run(&w, &ann, "go to the moon").await;
        assert!(!r.success && r.message.contains("cannot go"), "{b}: {r:?}");
        assert!(r.state_changes.is_empty());
        let r = run(&w, &ann, "dance wildly").await;
        assert!(!r.success && r.message.contains("Unknown command"), "{b}: {r:?}");
        assert_eq!(w.view(EXP, &ann).await.unwrap().snapshot_version, start, "{b}: nothing changed");

        // Collect by text: one change, published.
        let r = run(&w, &ann, "pick up the canned food").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(r.snapshot_version, start + 1, "{b}");
        assert_eq!(r.item_id.as_deref(), Some("canned_food_1"));
        let ops: Vec<(&str, Option<&str>)> =
            r.state_changes.iter().map(|c| (c.operation.as_str(), c.path.as_deref())).collect();
        assert_eq!(ops, [("remove", None), ("add", Some("player.inventory"))], "{b}");
        match events.recv().await.unwrap() {
            Event::WorldUpdate { experience, base_version, snapshot_version, changes, user_id, .. } => {
                assert_eq!((experience.as_str(), base_version, snapshot_version), (EXP, start, start + 1), "{b}");
                assert_eq!(user_id.as_deref(), Some(ann.as_str()));
                assert_eq!(changes.len(), 2);
                assert_eq!(changes[0]["area_id"], "main_room");
            }
            other => panic!("{b}: {other:?}"),
        }

        // To the pharmacy (a location: through the exit into it), then its back room.
        let r = run(&w, &ann, "go to pharmacy").await;
        assert!(r.success, "{b}: {r:?}");
        let r =
            w.command(EXP, &ann, &Action { destination: Some("back_room".into()), ..Action::new("go") }).await.unwrap();
        assert!(r.success, "{b}: {r:?}");
        let r = w
            .command(EXP, &ann, &Action { instance_id: Some("medkit_1".into()), ..Action::new("collect_item") })
            .await
            .unwrap();
        assert!(r.success, "{b}: {r:?}");
        let r = run(&w, &ann, "examine medkit").await;
        assert!(r.success && !r.message.is_empty(), "{b}: {r:?}");
        let v = w.view(EXP, &ann).await.unwrap();
        assert_eq!(templates(&v.player), ["bandage", "canned_food", "medkit"], "{b}");

        // Using a consumable: its effect (health stays within max_health), and it is gone.
        let r = run(&w, &ann, "use the medkit").await;
        assert!(r.success, "{b}: {r:?}");
        let v = w.view(EXP, &ann).await.unwrap();
        assert_eq!(v.player["stats"]["health"], 100, "{b}: capped at max_health");
        assert_eq!(templates(&v.player), ["bandage", "canned_food"], "{b}");
        let r = run(&w, &ann, "use the medkit").await;
        assert!(!r.success, "{b}: used up: {r:?}");

        // Drop, and it lies here for anyone.
        let r = run(&w, &ann, "drop bandage").await;
        assert!(r.success, "{b}: {r:?}");
        let look = run(&w, &ann, "look").await;
        assert!(look.message.contains("Bandage"), "{b}: {}", look.message);

        // Back to Sam, and give him the food: he trusts Ann more.
        for step in ["go front", "go main_room"] {
            let r = run(&w, &ann, step).await;
            assert!(r.success, "{b} {step}: {r:?}");
        }
        let r = run(&w, &ann, "give canned food to Sam").await;
        assert!(r.success, "{b}: {r:?}");
        let rel = w.relationship(EXP, &ann, "radio_operator").await.unwrap();
        assert_eq!(rel.trust, 55, "{b}");
        let r = run(&w, &ann, "give canned food to Sam").await;
        assert!(!r.success, "{b}: nothing left to give: {r:?}");

        // Bad input is an error, an unknown experience a 404; nothing changes.
        let before = w.view(EXP, &ann).await.unwrap().snapshot_version;
        let e = w.command(EXP, &ann, &Action::new("  ")).await.unwrap_err();
        assert!(matches!(e, WorldError::Invalid(_)), "{b}: {e}");
        let long = Action { instance_id: Some("x".repeat(10_000)), ..Action::new("examine") };
        assert!(matches!(w.command(EXP, &ann, &long).await, Err(WorldError::Invalid(_))));
        let e = w.command("no-such-world", &ann, &Action::new("look")).await.unwrap_err();
        assert_eq!(e.http_status(), 404, "{b}");
        assert_eq!(w.view(EXP, &ann).await.unwrap().snapshot_version, before, "{b}");
    }
}

#[tokio::test]
async fn a_second_player_sees_the_first_players_changes() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        let (ann, bob) = (player(&storage, "ann").await, player(&storage, "bob").await);
        assert!(run(&w, &ann, "take canned food").await.success);
        // Shared world: Bob sees one can left on the shelf, and the same version as Ann.
        let look = run(&w, &bob, "look").await;
        assert!(
            look.message.contains("can of peaches") && !look.message.contains("can of beans"),
            "{b}: {}",
            look.message
        );
        assert_eq!(look.snapshot_version, w.view(EXP, &ann).await.unwrap().snapshot_version, "{b}");
        // A second instance of the engine on the same database sees it too.
        let (other, _) = worlds(&storage);
        let look = other.command(EXP, &bob, &Action::new("look")).await.unwrap();
        assert!(!look.message.contains("can of beans"), "{b}: {}", look.message);
    }
}

#[tokio::test]
async fn a_hundred_players_racing_for_one_item_one_gets_it() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        let mut players = Vec::new();
        for i in 0..100 {
            let p = player(&storage, &format!("p{i}")).await;
            assert!(run(&w, &p, "go to pharmacy").await.success, "{b}");
            players.push(p);
        }
        // All at once: the can on the pharmacy counter.
        let tries = players.iter().map(|p| {
            let (w, p) = (w.clone(), p.clone());
            tokio::spawn(async move {
                w.command(EXP, &p, &Action { instance_id: Some("canned_food_3".into()), ..Action::new("collect_item") })
                    .await
                    .unwrap()
            })
        });
        let results: Vec<CommandResult> =
            futures::future::join_all(tries).await.into_iter().map(Result::unwrap).collect();
        let winners = results.iter().filter(|r| r.success).count();
        assert_eq!(winners, 1, "{b}: exactly one gets it");
        // It exists exactly once: in the winner's inventory, nowhere else.
        let mut held = 0;
        for p in &players {
            let v = w.view(EXP, p).await.unwrap();
            held += v.player["inventory"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["instance_id"] == "canned_food_3")
                .count();
        }
        assert_eq!(held, 1, "{b}");
        let look = run(&w, &players[0], "look").await;
        assert!(!look.message.contains("can of soup"), "{b}: {}", look.message);
    }
}

#[tokio::test]
async fn chat_personas_act_on_the_world_through_the_world_tools() {
    use gaia_mcp::ToolSource;
    use gaia_world::tools::WorldTools;
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        let ann = player(&storage, "ann").await;
        let tools = WorldTools::new(w.clone(), ann.clone(), vec![EXP.to_string()]);
        let names: Vec<String> = tools.specs().await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["interact_with_experience", "get_player_inventory", "check_quest_state", "grant_quest_reward"]
        );
        let out = tools
            .call("interact_with_experience", r#"{"experience": "safe-house", "action": "take the can of beans"}"#)
            .await
            .unwrap();
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let inv: Value =
            serde_json::from_str(&tools.call("get_player_inventory", r#"{"experience": "safe-house"}"#).await.unwrap())
                .unwrap();
        assert!(inv["inventory"].as_array().unwrap().iter().any(|i| i["instance_id"] == "canned_food_1"), "{b}: {inv}");
        let q: Value =
            serde_json::from_str(&tools.call("check_quest_state", r#"{"experience": "safe-house"}"#).await.unwrap())
                .unwrap();
        assert_eq!(q["current_area"], "main_room");
        assert_eq!(q["world_quests"]["first_aid"]["requires"]["items"][0], "medkit", "{b}: {q}");
        // Only the player's playable worlds, only fast commands, never admin ones.
        for (args, why) in [
            (r#"{"experience": "elsewhere", "action": "look"}"#, "no experience"),
            (r#"{"experience": "safe-house", "action": "talk to sam: hi"}"#, "fast commands"),
            (r#"{"experience": "safe-house", "action": "scavenge"}"#, "fast commands"),
            (r#"{"experience": "safe-house", "action": "@reset experience"}"#, "admin"),
        ] {
            let e = tools.call("interact_with_experience", args).await.unwrap_err().to_string();
            assert!(e.contains(why), "{b}: {args}: {e}");
        }
        assert_eq!(w.view(EXP, &ann).await.unwrap().snapshot_version, 1, "{b}: only the one change");
    }
}

#[tokio::test]
async fn every_command_in_the_schema_is_one_the_engine_accepts() {
    let db = gaia_core::testing::sqlite_db();
    let storage = db.storage().await;
    let (w, _) = worlds(&storage);
    let ann = player(&storage, "ann").await;
    let schema = w.commands_schema(EXP, false).unwrap();
    let commands = schema.as_object().unwrap();
    assert!(commands.contains_key("talk") && commands.contains_key("scavenge"), "{schema}");
    assert!(!commands.contains_key("@") && !commands.contains_key("spawn_horde"), "admin commands are for admins");
    assert!(w.commands_schema(EXP, true).unwrap().get("@").is_some());
    for spec in gaia_world::FAST_COMMANDS {
        let s = &commands[spec.name];
        let required: Vec<&str> = s["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(required[0], "action");
        assert_eq!(&required[1..], spec.fields, "{}", spec.name);
        // The engine reads it as that fast command (no model), and without its fields says what is
        // missing rather than not knowing it.
        let bare = Action::new(spec.name);
        assert!(!Worlds::needs_model(&bare), "{} is a fast command", spec.name);
        let r = w.command(EXP, &ann, &bare).await.unwrap();
        assert!(!r.message.contains("Unknown command"), "{}: {r:?}", spec.name);
        if !spec.fields.is_empty() {
            assert!(!r.success, "{} without its fields: {r:?}", spec.name);
        }
    }
    // Talk and rules commands are the model's.
    assert!(Worlds::needs_model(&Action {
        target_npc_id: Some("radio_operator".into()),
        message: Some("hi".into()),
        ..Action::new("talk")
    }));
    assert!(Worlds::needs_model(&Action::new("scavenge")));
    // Every command of the administrators' schema (the fast ones, `talk`, the rules commands, `@`),
    // filled as its schema allows (each field at its longest), is what a client's message reads as
    // and passes the engine's input checks; one character more than a field's `maxLength` does not.
    let full = w.commands_schema(EXP, true).unwrap();
    for (name, s) in full.as_object().unwrap() {
        let properties = s["properties"].as_object().unwrap();
        let fill = |over: Option<&str>| -> Value {
            let mut v = serde_json::Map::new();
            for (field, p) in properties {
                let max = p["maxLength"].as_u64().unwrap_or(0) as usize + usize::from(over == Some(field.as_str()));
                let value = match p.get("const") {
                    Some(c) => c.clone(),
                    None if field == "action" => Value::from(format!("@{}", "x".repeat(max - 1))),
                    None => Value::from("x".repeat(max)),
                };
                v.insert(field.clone(), value);
            }
            Value::Object(v)
        };
        let a: Action = serde_json::from_value(fill(None)).unwrap_or_else(|e| panic!("{name}: {e}"));
        a.check().unwrap_or_else(|e| panic!("{name} as its schema allows: {e}"));
        let read = serde_json::to_value(&a).unwrap();
        for field in properties.keys() {
            assert!(read.get(field).is_some_and(|v| !v.is_null()), "{name}: `{field}` is not a field the engine reads");
        }
        for (field, p) in properties.iter().filter(|(_, p)| p.get("maxLength").is_some()) {
            let a: Action = serde_json::from_value(fill(Some(field))).unwrap();
            assert!(a.check().is_err(), "{name}: `{field}` longer than {} is refused", p["maxLength"]);
        }
    }
    let at = w
        .command(EXP, gaia_world::Caller::player(ann.clone()).with_admin(true), &Action::new("@list items"))
        .await
        .unwrap();
    assert!(at.success, "{at:?}");
}

#[tokio::test]
async fn positions_put_players_in_zones_and_the_area_of_interest_shows_them() {
    use gaia_world::content::Gps;
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        let ann = player(&storage, "ann").await;
        let a = w.area_of_interest(EXP, &ann).await.unwrap();
        assert_eq!(a.zone.as_ref().unwrap()["id"], "safe_house", "{b}");
        assert_eq!(a.areas["main_room"]["spots"]["radio_desk"]["npcs"][0], "radio_operator");
        assert_eq!(a.player["inventory"].as_array().unwrap().len(), 1);
        // 300 m away: the pharmacy, a versioned move.
        let moved = w.update_location(EXP, &ann, Gps { lat: 48.8585, lng: 2.3552 }).await.unwrap();
        assert_eq!((moved.zone.as_deref(), moved.moved), (Some("pharmacy"), true), "{b}");
        let a2 = w.area_of_interest(EXP, &ann).await.unwrap();
        assert_eq!(a2.snapshot_version, a.snapshot_version + 1, "{b}");
        assert!(a2.areas.contains_key("back_room"), "{b}");
        // Standing still there changes nothing; far from everything, the player stays where they were.
        let same = w.update_location(EXP, &ann, Gps { lat: 48.8585, lng: 2.3552 }).await.unwrap();
        assert!(!same.moved, "{b}");
        let far = w.update_location(EXP, &ann, Gps { lat: 40.0, lng: -3.0 }).await.unwrap();
        assert_eq!((far.zone, far.moved), (None, false), "{b}");
        assert_eq!(w.area_of_interest(EXP, &ann).await.unwrap().snapshot_version, a2.snapshot_version, "{b}");
    }
}
