//! NPC minds on the sample experience (Sam, `templates/npcs/radio_operator.md`), with no model:
//! goals fired by game events (arriving in an area, a gift, a quest taken or completed) say their
//! line, change the emotion and the relationship's axes and take their actions in the event's own
//! change; a goal fires once per player and ends when its `until` happens; an action is refused when
//! the relationship does not meet what it requires (nothing changes); a quest gated on the
//! relationship is refused below it; actions move the NPC and close or open doors for every player;
//! broken goals and actions are reported when the vault loads.
//! SQLite and PostgreSQL.

use crate::support::{player, run, sample, sample_with, templates, vault_with, worlds, EXP};
use gaia_core::testing::database_urls;
use gaia_world::content::load_catalog;
use serde_json::Value;

fn reactions(meta: &Option<Value>) -> Vec<Value> {
    meta.as_ref().and_then(|m| m["npc_reactions"].as_array().cloned()).unwrap_or_default()
}

#[tokio::test]
async fn goals_fire_on_game_events_in_the_event_s_own_change() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        let ann = player(&storage, "ann").await;

        // Coming back into the main room (where Sam is): Sam's goal fires, in the move's change.
        assert!(run(&w, &ann, "go roof").await.success, "{b}");
        let before = w.view(EXP, &ann).await.unwrap().snapshot_version;
        let r = run(&w, &ann, "go main_room").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(r.snapshot_version, before + 1, "{b}: one change");
        let said = reactions(&r.metadata);
        assert_eq!(said.len(), 1, "{b}: {:?}", r.metadata);
        assert_eq!(
            (said[0]["npc_id"].as_str(), said[0]["goal"].as_str()),
            (Some("radio_operator"), Some("warn_newcomer"))
        );
        assert!(said[0]["text"].as_str().unwrap().starts_with("Door."), "{b}: {said:?}");
        assert_eq!(said[0]["emotion"]["name"], "afraid", "{b}");
        let rel_change =
            r.state_changes.iter().find(|c| c.path.as_deref() == Some("player.relationships.radio_operator"));
        assert_eq!(
            rel_change.and_then(|c| c.item.clone()).map(|i| i["familiarity"].clone()),
            Some(2.into()),
            "{b}: {r:?}"
        );
        let rel = w.relationship(EXP, &ann, "radio_operator").await.unwrap();
        assert_eq!((rel.trust, rel.respect, rel.familiarity, rel.emotion.name.as_str()), (50, 50, 2, "afraid"), "{b}");
        assert!(rel.mind.goals["warn_newcomer"].active, "{b}: the goal's aim is pursued");

        // Once per player.
        assert!(run(&w, &ann, "go roof").await.success);
        let r = run(&w, &ann, "go main_room").await;
        assert!(reactions(&r.metadata).is_empty(), "{b}: fired once: {:?}", r.metadata);
        assert_eq!(w.relationship(EXP, &ann, "radio_operator").await.unwrap().familiarity, 2, "{b}");

        // Completing the quest: its reward raises trust to 60, then Sam's goal thanks the player,
        // hands over the codes through its checked action (55 trust needed), and the first goal is
        // achieved, all in the completion's change.
        assert!(run(&w, &ann, "accept quest first_aid").await.success, "{b}");
        for step in ["go front", "go back_room", "take medkit", "go front", "go main_room"] {
            assert!(run(&w, &ann, step).await.success, "{b}: {step}");
        }
        let before = w.view(EXP, &ann).await.unwrap().snapshot_version;
        let r = run(&w, &ann, "complete quest first_aid").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(r.snapshot_version, before + 1, "{b}: one change");
        let said = reactions(&r.metadata);
        assert_eq!(said.iter().filter_map(|s| s["goal"].as_str()).collect::<Vec<_>>(), ["thank_for_medkit"], "{b}");
        assert_eq!(said[0]["emotion"]["name"], "happy", "{b}");
        assert!(
            r.state_changes.iter().any(|c| c.item.as_ref().is_some_and(|i| i["template_id"] == "frequency_codes")),
            "{b}: the item given is published: {:?}",
            r.state_changes
        );
        let v = w.view(EXP, &ann).await.unwrap();
        assert_eq!(templates(&v.player), ["bandage", "bandage", "frequency_codes"], "{b}");
        let rel = w.relationship(EXP, &ann, "radio_operator").await.unwrap();
        assert_eq!((rel.trust, rel.respect, rel.familiarity), (60, 60, 7), "{b}");
        assert!(!rel.mind.goals["warn_newcomer"].active && rel.mind.goals["warn_newcomer"].achieved, "{b}");
        assert_eq!(rel.mind.made.get("frequency_codes"), Some(&1), "{b}");

        // Another player's relationship is their own.
        let bob = player(&storage, "bob").await;
        let rel = w.relationship(EXP, &bob, "radio_operator").await.unwrap();
        assert_eq!((rel.trust, rel.familiarity, rel.mind.goals.len()), (50, 0, 0), "{b}");
    }
}

#[tokio::test]
async fn a_goal_whose_action_the_relationship_does_not_allow_waits() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        // A quest whose reward leaves trust below what Sam's `hand_over` needs: the goal does not
        // fire, nothing is made, and the quest is still completed.
        let mut catalog = sample();
        let exp = catalog.experiences.get_mut(EXP).unwrap();
        std::sync::Arc::make_mut(exp).quests.get_mut("first_aid").unwrap().rewards.trust = 0;
        w.set_catalog(catalog);
        let ann = player(&storage, "ann").await;
        for step in ["accept quest first_aid", "go front", "go back_room", "take medkit", "go front", "go main_room"] {
            assert!(run(&w, &ann, step).await.success, "{b}: {step}");
        }
        let r = run(&w, &ann, "complete quest first_aid").await;
        assert!(r.success, "{b}: {r:?}");
        assert!(reactions(&r.metadata).is_empty(), "{b}: {:?}", r.metadata);
        let v = w.view(EXP, &ann).await.unwrap();
        assert_eq!(templates(&v.player), ["bandage", "bandage"], "{b}: no codes");
        let rel = w.relationship(EXP, &ann, "radio_operator").await.unwrap();
        assert_eq!((rel.trust, rel.respect), (50, 50), "{b}: no effect either");
        assert!(rel.mind.goals.get("thank_for_medkit").is_none_or(|g| g.fired == 0), "{b}");
    }
}

#[tokio::test]
async fn a_quest_gated_on_the_relationship_is_refused_below_it() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        w.set_catalog(sample_with(|exp| {
            exp.quests.get_mut("first_aid").unwrap().requires.relationship.trust = Some(54);
        }));
        let ann = player(&storage, "ann").await;
        let r = run(&w, &ann, "accept quest first_aid").await;
        assert!(!r.success && r.message.contains("trust 54 needed, 50 now"), "{b}: {r:?}");
        assert!(r.state_changes.is_empty(), "{b}");
        // A gift raises trust by five: now it is offered.
        assert!(run(&w, &ann, "go front").await.success);
        assert!(run(&w, &ann, "take soup").await.success, "{b}");
        assert!(run(&w, &ann, "go main_room").await.success);
        let r = run(&w, &ann, "give soup to sam").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(r.metadata.as_ref().unwrap()["relationship"]["trust"], 55, "{b}: {:?}", r.metadata);
        assert!(run(&w, &ann, "accept quest first_aid").await.success, "{b}");
    }
}

#[test]
fn broken_goals_and_actions_are_reported_when_the_vault_loads() {
    let (_dir, vault) = vault_with(&[EXP]);
    let sam = vault.join("experiences/safe-house/templates/npcs/radio_operator.md");
    let text = std::fs::read_to_string(&sam).unwrap();
    let broken = text
        .replace("area: main_room}", "area: the_moon}")
        .replace("{action: hand_over, args: {item: frequency_codes}}", "{action: fly_away, args: {}}")
        .replace("items: [frequency_codes]", "items: [unicorn]")
        .replace("requires: {trust: 55}", "requires: {trust: 555}");
    std::fs::write(&sam, broken).unwrap();
    let c = load_catalog(&vault);
    assert!(!c.experiences.contains_key(EXP), "the broken experience is skipped");
    let messages: Vec<String> = c.errors.iter().map(|e| e.to_string()).collect();
    for want in ["unknown area the_moon", "undeclared action fly_away", "unknown item unicorn", "requires.trust is 555"]
    {
        assert!(messages.iter().any(|m| m.contains(want)), "{want}: {messages:#?}");
    }
    // An emotion not in the set, or a field that does not exist, is a load error of the template.
    std::fs::write(&sam, text.replace("name: afraid", "name: elated")).unwrap();
    let c = load_catalog(&vault);
    assert!(c.errors.iter().any(|e| e.to_string().contains("elated")), "{:?}", c.errors);
    std::fs::write(&sam, text.replace("    say: \"Door.", "    sya: \"Door.")).unwrap();
    let c = load_catalog(&vault);
    assert!(c.errors.iter().any(|e| e.to_string().contains("sya")), "{:?}", c.errors);
}

#[tokio::test]
async fn npc_actions_move_the_npc_and_close_doors_for_every_player() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        // Given soup, Sam bars the street door and goes up to the roof (a goal's two actions).
        w.set_catalog(sample_with(|exp| {
            let sam = exp.npc_templates.get_mut("radio_operator").unwrap();
            let action = |v: Value| serde_json::from_value::<gaia_world::content::NpcAction>(v).unwrap();
            sam.actions.insert(
                "bar_door".into(),
                action(serde_json::json!({"command": "close_door", "doors": {"street_door": ["main_room", "front"]}})),
            );
            sam.actions.insert(
                "unbar_door".into(),
                action(serde_json::json!({"command": "open_door", "doors": {"street_door": ["main_room", "front"]}})),
            );
            sam.actions.insert("climb".into(), action(serde_json::json!({"command": "move_npc", "areas": ["roof"]})));
            sam.goals.push(
                serde_json::from_value(serde_json::json!({
                    "id": "lock_up", "when": {"event": "item_given", "item": "canned_food"},
                    "say": "Thanks. Barring the door; I'll be on the roof.",
                    "actions": [{"action": "bar_door", "args": {"door": "street_door"}},
                                {"action": "climb", "args": {"area": "roof"}}]
                }))
                .unwrap(),
            );
            // A goal that opens a door already open waits (its action refused, nothing changed).
            sam.goals.push(
                serde_json::from_value(serde_json::json!({
                    "id": "air_out", "when": {"event": "enters_area", "area": "roof"},
                    "actions": [{"action": "unbar_door", "args": {"door": "street_door"}}]
                }))
                .unwrap(),
            );
        }));
        let ann = player(&storage, "ann").await;
        let bob = player(&storage, "bob").await;

        for step in ["go front", "take soup", "go main_room"] {
            assert!(run(&w, &ann, step).await.success, "{b}: {step}");
        }
        let r = run(&w, &ann, "give soup to sam").await;
        assert!(r.success, "{b}: {r:?}");
        assert_eq!(reactions(&r.metadata)[0]["goal"], "lock_up", "{b}: {:?}", r.metadata);
        let places: Vec<&str> = r.state_changes.iter().filter_map(|c| c.path.as_deref()).collect();
        assert!(places.contains(&"world.areas"), "{b}: {places:?}");
        // For everyone: the street door is shut, and Sam is on the roof.
        for who in [&ann, &bob] {
            let r = run(&w, who, "go front").await;
            assert!(!r.success, "{b}: the door is barred: {r:?}");
        }
        assert!(!run(&w, &bob, "look").await.message.contains("Sam"), "{b}: Sam left the main room");
        assert!(run(&w, &bob, "go roof").await.success, "{b}");
        assert!(run(&w, &bob, "look").await.message.contains("Sam"), "{b}: Sam is on the roof");
        // Bob's arrival on the roof set off `air_out`: the door opened again, for everyone.
        let r = run(&w, &ann, "go roof").await;
        assert!(r.success, "{b}: {r:?}");
        // For Ann the door is open already: her `air_out` is refused, changes nothing, and waits.
        assert!(!r.state_changes.iter().any(|c| c.path.as_deref() == Some("world.areas")), "{b}: {r:?}");
        let rel = w.relationship(EXP, &ann, "radio_operator").await.unwrap();
        assert!(rel.mind.goals.get("air_out").is_none_or(|g| g.fired == 0), "{b}: {:?}", rel.mind.goals);
        assert!(run(&w, &ann, "go main_room").await.success, "{b}");
        assert!(run(&w, &ann, "go front").await.success, "{b}: Bob's arrival opened the door");
    }
}

#[tokio::test]
async fn a_template_sets_what_a_gift_does_to_the_relationship() {
    for db in database_urls().await {
        let b = db.backend;
        let storage = db.storage().await;
        let (w, _) = worlds(&storage);
        w.set_catalog(sample_with(|exp| {
            exp.npc_templates.get_mut("radio_operator").unwrap().gift_effects =
                gaia_world::content::Axes { trust: Some(2), respect: Some(3), familiarity: None };
        }));
        let ann = player(&storage, "ann").await;
        for step in ["go front", "take soup", "go main_room", "give soup to sam"] {
            assert!(run(&w, &ann, step).await.success, "{b}: {step}");
        }
        let rel = w.relationship(EXP, &ann, "radio_operator").await.unwrap();
        assert_eq!((rel.trust, rel.respect), (52, 53), "{b}");
    }
}
