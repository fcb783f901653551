//! Scenes on the sample experience (`scenes/night_watch.md`: Dana and Sam on the roof), with no
//! model: a scene starts (by command, or once by the event its `start` names) and its first
//! section's narration and lines are said in one change of the scene's area; game events move it
//! through its sections and a closing section ends it, all with no model call; a scene under way is
//! not started twice, an ended one starts again; a player's line needs a scene under way (and a
//! model); broken scenes are reported when the vault loads. SQLite and PostgreSQL.

use crate::support::{player, run, sample_with, vault_with, worlds, EXP};
use gaia_core::testing::database_urls;
use gaia_world::content::{load_catalog, EventKind, Transition, Trigger};
use gaia_world::{Action, CommandResult};
use serde_json::Value;

fn said(r: &CommandResult) -> Vec<String> {
    let meta = r.metadata.clone().unwrap_or_default();
    meta["npc_reactions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str().map(String::from))
        .collect()
}

/// The scene changes of a result: `(section, status, lines said)`.
fn scene_changes(r: &CommandResult) -> Vec<(String, String, Vec<Value>)> {
    r.state_changes
        .iter()
        .filter(|c| c.path.as_deref() == Some("scene"))
        .map(|c| {
            assert_eq!((c.area_id.as_deref(), c.instance_id.as_str()), (Some("roof"), "night_watch"));
            let item = c.item.clone().unwrap();
            let lines = item["lines"].as_array().cloned().unwrap_or_default();
            (item["section"].as_str().unwrap().to_string(), item["status"].as_str().unwrap().to_string(), lines)
        })
        .collect()
}

fn trigger(event: EventKind) -> Trigger {
    Trigger {
        event,
        area: None,
        item: None,
        quest: None,
        says: None,
        means: None,
        similarity: None,
        requires: Default::default(),
    }
}

#[tokio::test]
async fn a_scene_moves_through_its_sections_on_game_events_with_no_model_call() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        // Taking a quest on the roof moves the watch on (an event transition besides the sample's).
        w.set_catalog(sample_with(|exp| {
            let scene = exp.scenes.get_mut("night_watch").unwrap();
            let quest = Trigger { quest: Some("first_aid".into()), ..trigger(EventKind::QuestAccepted) };
            scene.sections[0].next.insert(0, Transition { to: "horde".into(), when: Some(quest), after_turns: None });
        }));
        let ann = player(&storage, "ann").await;
        let bob = player(&storage, "bob").await;

        // Not on the roof: no scene plays here.
        let r = run(&w, &ann, "start_scene").await;
        assert!(!r.success && r.message.contains("No scene plays here"), "{b}: {r:?}");
        assert!(run(&w, &ann, "go roof").await.success, "{b}");
        let r = run(&w, &ann, "scene").await;
        assert_eq!(r.metadata.as_ref().unwrap()["scene"]["status"], "not_started", "{b}: {r:?}");

        // Started: the first section's narration and lines, in one change of the roof.
        let before = w.view(EXP, &ann).await.unwrap().snapshot_version;
        let r = run(&w, &ann, "start_scene").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(r.snapshot_version, before + 1, "{b}: one change");
        assert_eq!(said(&r), ["Eyes on the street. Tell me what moves.", "Roof, this is the desk. Radio check. Over."]);
        let ch = scene_changes(&r);
        assert_eq!(ch.len(), 1, "{b}: {ch:?}");
        assert_eq!((ch[0].0.as_str(), ch[0].1.as_str(), ch[0].2.len()), ("dusk", "running", 3), "{b}");
        assert_eq!(ch[0].2[0]["speaker"], "narrator", "{b}");
        assert_eq!((ch[0].2[1]["speaker"].as_str(), ch[0].2[1]["npc_name"].as_str()), (Some("medic"), Some("Dana")));
        // Under way: not started twice, by anyone.
        assert!(run(&w, &bob, "go roof").await.success, "{b}");
        let r = run(&w, &bob, "start scene night watch").await;
        assert!(!r.success && r.message.contains("already under way"), "{b}: {r:?}");
        let r = run(&w, &bob, "scene").await;
        let shown = &r.metadata.as_ref().unwrap()["scene"];
        assert_eq!((shown["status"].as_str(), shown["section"].as_str()), (Some("running"), Some("dusk")), "{b}");
        assert_eq!(shown["lines"].as_array().unwrap().len(), 3, "{b}: Bob sees what was said: {shown}");
        assert_eq!(shown["cast"].as_array().unwrap().len(), 2, "{b}");

        // A player's line needs a model here (none): refused, nothing said.
        let say = Action { message: Some("Dana, anything?".into()), ..Action::new("scene_say") };
        let r = w.command(EXP, bob.as_str(), &say).await.unwrap();
        assert!(!r.success && r.message.contains("needs a model"), "{b}: {r:?}");
        let empty = Action::new("scene_say");
        assert!(!w.command(EXP, bob.as_str(), &empty).await.unwrap().success, "{b}");

        // Bob takes the quest there: the horde comes, in the same change as the quest.
        let r = run(&w, &bob, "accept quest first_aid").await;
        assert!(r.success, "{b}: {r:?}");
        assert!(r.state_changes.iter().any(|c| c.path.as_deref() == Some("player.quests")), "{b}");
        let ch = scene_changes(&r);
        assert_eq!((ch[0].0.as_str(), ch[0].1.as_str()), ("horde", "running"), "{b}: {ch:?}");
        assert_eq!(said(&r)[0], "There. Twenty, thirty. Coming this way.", "{b}");
        // Ann climbs down: the scene's last section, which ends it.
        let r = run(&w, &ann, "go main_room").await;
        assert!(r.success, "{b}: {r:?}");
        let ch = scene_changes(&r);
        assert_eq!((ch[0].0.as_str(), ch[0].1.as_str()), ("inside", "ended"), "{b}: {ch:?}");
        assert!(said(&r).contains(&"Good work up there. Get some sleep.".to_string()), "{b}: {:?}", said(&r));
        let r = run(&w, &bob, "scene").await;
        let shown = &r.metadata.as_ref().unwrap()["scene"];
        assert_eq!((shown["status"].as_str(), shown["ended"].as_str()), (Some("ended"), Some("end")), "{b}");
        let r = w.command(EXP, bob.as_str(), &say).await.unwrap();
        assert!(!r.success && r.message.contains("No scene is under way"), "{b}: {r:?}");

        // Over, it starts again (its lines numbered on).
        let r = run(&w, &bob, "start_scene").await;
        assert!(r.success, "{b}: {r:?}");
        let ch = scene_changes(&r);
        assert_eq!(ch[0].0, "dusk", "{b}");
        assert!(ch[0].2[0]["seq"].as_i64().unwrap() > 3, "{b}: {:?}", ch[0].2);
    }
}

#[tokio::test]
async fn a_scene_with_a_start_event_starts_once_by_itself() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        w.set_catalog(sample_with(|exp| {
            let scene = exp.scenes.get_mut("night_watch").unwrap();
            scene.start = Some(Trigger { area: Some("roof".into()), ..trigger(EventKind::EntersArea) });
        }));
        let ann = player(&storage, "ann").await;
        let bob = player(&storage, "bob").await;
        let r = run(&w, &ann, "go roof").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(said(&r).len(), 2, "{b}: {:?}", r.metadata);
        assert_eq!(scene_changes(&r)[0].0, "dusk", "{b}");
        // Bob arriving later joins it; it does not start again.
        let r = run(&w, &bob, "go roof").await;
        assert!(scene_changes(&r).is_empty() && said(&r).is_empty(), "{b}: {r:?}");
    }
}

#[test]
fn broken_scenes_are_reported_when_the_vault_loads() {
    let (_dir, vault) = vault_with(&[EXP]);
    let file = vault.join("experiences/safe-house/scenes/night_watch.md");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text
        .replace("area: roof", "area: cellar")
        .replace("npcs: [medic, radio_operator]", "npcs: [medic, radio_operator, ghost]")
        .replace("{to: horde, after_turns: 6}", "{to: nowhere, after_turns: 6}")
        .replace("max_turns: 24", "max_turns: 0")
        .replace("{npc: radio_operator, say: \"Good work", "{npc: stranger, say: \"Good work");
    std::fs::write(&file, broken).unwrap();
    let c = load_catalog(&vault);
    assert!(!c.experiences.contains_key(EXP), "the broken experience is skipped");
    let messages: Vec<String> = c.errors.iter().map(|e| e.to_string()).collect();
    for want in [
        "no area cellar in location safe_house",
        "npcs names ghost",
        "unknown section nowhere",
        "max_turns is 1 to 500",
        "stranger is not in the scene's npcs",
    ] {
        assert!(messages.iter().any(|m| m.contains(want)), "{want}: {messages:#?}");
    }
    // A transition with both a `when` and `after_turns`, or a field that does not exist.
    std::fs::write(
        &file,
        text.replace("{to: horde, after_turns: 6}", "{to: horde, after_turns: 6, when: {event: enters_area}}"),
    )
    .unwrap();
    let c = load_catalog(&vault);
    assert!(c.errors.iter().any(|e| e.to_string().contains("either `when` or `after_turns`")), "{:?}", c.errors);
    std::fs::write(&file, text.replace("narration: The sun", "narashun: The sun")).unwrap();
    let c = load_catalog(&vault);
    assert!(c.errors.iter().any(|e| e.to_string().contains("narashun")), "{:?}", c.errors);
}
