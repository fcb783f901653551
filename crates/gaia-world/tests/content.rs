//! Loading experiences from a vault: the sample, broken experiences next to good ones, older content,
//! links and bounds.

use crate::support::{edit_json, sample_vault, vault_with};
use gaia_core::testing::copy_dir;
use gaia_world::content::{load_catalog, load_experience, Catalog, ContentError};
use serde_json::{json, Value};
use std::fs;

/// `(file, field)` of each error.
fn places(errors: &[ContentError]) -> Vec<(&str, &str)> {
    errors.iter().map(|e| (e.file.as_str(), e.field.as_str())).collect()
}

/// The error at `file` and `field`.
fn error_at<'a>(catalog: &'a Catalog, file: &str, field: &str) -> &'a ContentError {
    catalog
        .errors
        .iter()
        .find(|e| e.file == file && e.field == field)
        .unwrap_or_else(|| panic!("no error at {file} {field:?} in {:#?}", catalog.errors))
}

#[test]
fn the_sample_loads() {
    let catalog = load_catalog(&sample_vault());
    assert!(catalog.errors.is_empty(), "{:#?}", catalog.errors);
    assert_eq!(catalog.experiences.keys().collect::<Vec<_>>(), ["safe-house"]);
    let exp = &catalog.experiences["safe-house"];
    assert_eq!(**exp, load_experience(&sample_vault(), "safe-house").unwrap());

    let config = &exp.config;
    assert_eq!((config.id.as_str(), config.version.as_str()), ("safe-house", "1.0.0"));
    assert_eq!(config.state.model, gaia_world::content::StateModel::Shared);
    let caps = &config.capabilities;
    assert!(caps.gps_based && caps.inventory_system && caps.quest_system && !caps.ar_enabled);
    assert_eq!(config.bootstrap.player_starting_location, "safe_house");
    assert_eq!(config.bootstrap.player_starting_area.as_deref(), Some("main_room"));

    let world = &exp.world;
    assert_eq!(world.locations.keys().collect::<Vec<_>>(), ["pharmacy", "safe_house"]);
    let areas: Vec<&str> = world.locations.values().flat_map(|l| l.areas.keys()).map(String::as_str).collect();
    assert_eq!(areas, ["back_room", "front", "main_room", "roof"]);
    let spots = world.locations.values().flat_map(|l| l.areas.values()).flat_map(|a| a.spots.values());
    assert_eq!(spots.clone().count(), 5);
    let mut items: Vec<&str> = spots.flat_map(|s| &s.items).map(|i| i.instance_id.as_str()).collect();
    items.sort_unstable();
    assert_eq!(items, ["canned_food_1", "canned_food_2", "canned_food_3", "medkit_1", "radio_set"]);
    // Ids left to the keys and given ones agree.
    let pharmacy = &world.locations["pharmacy"];
    assert_eq!((pharmacy.id.as_str(), pharmacy.areas["back_room"].id.as_str()), ("pharmacy", "back_room"));
    assert_eq!(pharmacy.areas["front"].exits, ["back_room", "main_room"]);
    let desk = &world.locations["safe_house"].areas["main_room"].spots["radio_desk"];
    assert_eq!(desk.npcs, ["radio_operator"]);
    assert_eq!(desk.items[0].collectible, Some(false));
    assert_eq!(world.npcs["radio_operator"]["name"], "Sam");

    assert_eq!(
        exp.item_templates.keys().collect::<Vec<_>>(),
        ["bandage", "canned_food", "frequency_codes", "medkit", "radio"]
    );
    let medkit = &exp.item_templates["medkit"];
    assert!(medkit.collectible && medkit.consumable);
    assert_eq!(medkit.effects["health"], 25.0);
    assert!(medkit.body.starts_with("# Medkit"), "{}", medkit.body);
    assert!(!exp.item_templates["radio"].collectible);
    let sam = &exp.npc_templates["radio_operator"];
    assert_eq!((sam.name.as_str(), sam.location.as_deref()), ("Sam", Some("safe_house")));
    assert!(sam.body.contains("## Knowledge"));
    // Sam's mind: goals set off by game events, actions the model may propose.
    let goals: Vec<&str> = sam.goals.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(goals, ["warn_newcomer", "thank_for_medkit", "share_broadcast"]);
    assert_eq!(sam.goals[1].emotion.as_ref().map(|e| (e.name.as_str(), e.intensity)), Some(("happy", 0.8)));
    assert_eq!(sam.actions["hand_over"].requires.trust, Some(55));
    assert!(sam.extra.get("goals").is_none(), "read, not kept as an unknown field");

    let scavenge = &exp.commands["scavenge"];
    assert_eq!(scavenge.aliases, ["search", "loot"]);
    assert!(!scavenge.requires_admin);
    assert_eq!(scavenge.file, "game-logic/scavenge.md");
    assert!(scavenge.rules.contains("once per hour"));
    assert_eq!(exp.commands.len(), 1);
    let horde = &exp.admin_commands["spawn_horde"];
    assert!(horde.requires_admin, "admin-logic defaults requires_admin to true");

    assert_eq!(exp.waypoints.keys().collect::<Vec<_>>(), ["pharmacy", "safe_house", "supply_run"]);
    let types: Vec<&str> = exp.waypoints.values().map(|w| w.waypoint_type.as_str()).collect();
    assert_eq!(types, ["landmark", "zone", "pathway"]);
    assert_eq!(exp.waypoints["pharmacy"].location_id.as_deref(), Some("pharmacy"));
    assert_eq!(exp.waypoints["safe_house"].media.display_text.as_deref(), Some("You are inside the safe zone."));
    assert_eq!(exp.waypoints["supply_run"].location_id, None);
}

#[test]
fn a_missing_experiences_folder_is_an_empty_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = load_catalog(dir.path());
    assert!(catalog.experiences.is_empty() && catalog.errors.is_empty());
    let errors = load_experience(dir.path(), "safe-house").unwrap_err();
    assert_eq!(places(&errors), [("experiences/safe-house", "")]);
    let errors = load_experience(dir.path(), "../escape").unwrap_err();
    assert!(errors[0].message.contains("not a valid experience id"), "{errors:?}");
}

#[test]
fn broken_experiences_are_reported_and_the_good_one_loads() {
    let (_dir, vault) = vault_with(&["good", "broken", "no-config", "bad-json", "huge", "Bad Name"]);
    let exps = vault.join("experiences");

    // Several problems in one experience: all reported.
    let broken = exps.join("broken");
    edit_json(&broken.join("config.json"), |c| {
        c["version"] = json!("1.0");
        c["bootstrap"]["player_starting_inventory"] = json!(["bandage", "grenade"]);
    });
    edit_json(&broken.join("state/world.json"), |w| {
        let shelf = &mut w["locations"]["pharmacy"]["areas"]["back_room"]["spots"]["stock_shelf"]["items"];
        shelf[0]["template_id"] = json!("medkti");
        shelf.as_array_mut().unwrap().push(json!({"instance_id": "canned_food_1", "template_id": "canned_food"}));
        w["locations"]["safe_house"]["gps"]["lat"] = json!(123.0);
        w["locations"]["pharmacy"]["areas"]["front"]["exits"] = json!(["back_room", "attic"]);
        w["locations"]["safe_house"]["areas"]["roof"]["id"] = json!("rooftop");
    });
    fs::write(broken.join("game-logic/search.md"), "---\ncommand: Search\n---\nRules.\n").unwrap();

    fs::remove_file(exps.join("no-config/config.json")).unwrap();
    fs::write(exps.join("bad-json/state/world.json"), "{\n  \"locations\": {\n    \"a\": {,}\n  }\n}\n").unwrap();
    fs::write(exps.join("huge/templates/items/big.md"), vec![b'a'; 4 * 1024 * 1024 + 1]).unwrap();

    let catalog = load_catalog(&vault);
    assert_eq!(catalog.experiences.keys().collect::<Vec<_>>(), ["good"], "{:#?}", catalog.errors);

    let b = "experiences/broken";
    let world = format!("{b}/state/world.json");
    let shelf = "locations.pharmacy.areas.back_room.spots.stock_shelf.items";
    let mut got: Vec<(&str, &str)> = places(&catalog.errors).into_iter().filter(|(f, _)| f.starts_with(b)).collect();
    got.sort_unstable();
    let mut want = [
        (format!("{b}/config.json"), "bootstrap.player_starting_inventory[1]".to_owned()),
        (format!("{b}/config.json"), "version".to_owned()),
        (format!("{b}/game-logic/search.md"), "command".to_owned()),
        (world.clone(), "locations.pharmacy.areas.front.exits[1]".to_owned()),
        (world.clone(), format!("{shelf}[0].template_id")),
        (world.clone(), "locations.safe_house.areas.main_room.spots.supply_shelf.items[0].instance_id".to_owned()),
        (world.clone(), "locations.safe_house.areas.roof.id".to_owned()),
        (world.clone(), "locations.safe_house.gps.lat".to_owned()),
    ];
    want.sort_unstable();
    let want: Vec<(&str, &str)> = want.iter().map(|(f, k)| (f.as_str(), k.as_str())).collect();
    assert_eq!(got, want, "{:#?}", catalog.errors);
    // Locations are checked by id: the pharmacy's copy comes first, the safe house's is the second.
    let dup =
        error_at(&catalog, &world, "locations.safe_house.areas.main_room.spots.supply_shelf.items[0].instance_id");
    assert!(dup.message.contains(&format!("{shelf}[1]")), "the first occurrence is named: {}", dup.message);
    assert_eq!(dup.experience, "broken");
    let unknown = error_at(&catalog, &world, &format!("{shelf}[0].template_id"));
    assert!(unknown.message.contains("medkti"), "{}", unknown.message);
    // `Search` collides with scavenge's alias `search`, ignoring case.
    let search = error_at(&catalog, &format!("{b}/game-logic/search.md"), "command");
    assert!(search.message.contains("game-logic/scavenge.md"), "{}", search.message);

    let missing = error_at(&catalog, "experiences/no-config/config.json", "");
    assert!(missing.message.contains("missing"), "{}", missing.message);
    let bad = error_at(&catalog, "experiences/bad-json/state/world.json", "");
    assert!(bad.message.contains("line 3"), "{}", bad.message);
    let huge = error_at(&catalog, "experiences/huge/templates/items/big.md", "");
    assert!(huge.message.contains("larger than"), "{}", huge.message);
    let name = error_at(&catalog, "experiences/Bad Name", "");
    assert!(name.message.contains("not a valid experience id"), "{}", name.message);
    assert_eq!(name.to_string(), format!("experiences/Bad Name: : {}", name.message));
    // The good one is complete.
    assert_eq!(catalog.experiences["good"].config.id, "good");
    // An error per problem, not one per file.
    assert!(catalog.errors.iter().all(|e| !e.message.is_empty()));
}

#[test]
fn type_errors_name_the_field() {
    let (_dir, vault) = vault_with(&["typed"]);
    let folder = vault.join("experiences/typed");
    edit_json(&folder.join("state/world.json"), |w| {
        w["locations"]["pharmacy"]["areas"]["front"]["spots"]["counter"]["items"][0]["collectible"] = json!("yes");
        w["locations"]["pharmacy"]["gps"] = json!({"lat": 48.8});
    });
    edit_json(&folder.join("config.json"), |c| c["capabilities"]["gps_based"] = json!(1));
    fs::write(folder.join("templates/items/medkit.md"), "---\nname: Medkit\neffects: {health: lots}\n---\n").unwrap();
    fs::write(folder.join("waypoints/pharmacy.md"), "No block here.\n").unwrap();
    let errors = load_experience(&vault, "typed").unwrap_err();
    let f = "experiences/typed";
    let world = format!("{f}/state/world.json");
    let want = [
        (format!("{f}/config.json"), "capabilities.gps_based"),
        (world.clone(), "locations.pharmacy.gps.lng"),
        (world, "locations.pharmacy.areas.front.spots.counter.items[0].collectible"),
        (format!("{f}/templates/items/medkit.md"), "effects"),
        (format!("{f}/waypoints/pharmacy.md"), ""),
    ];
    let want: Vec<(&str, &str)> = want.iter().map(|(file, field)| (file.as_str(), *field)).collect();
    assert_eq!(places(&errors), want, "{errors:#?}");
}

#[test]
fn older_area_level_items_and_unknown_fields_are_accepted() {
    let (_dir, vault) = vault_with(&["old"]);
    let folder = vault.join("experiences/old");
    edit_json(&folder.join("config.json"), |c| {
        c["legacy_flag"] = json!({"keep": true});
        c["bootstrap"]["spawn_effect"] = json!("fade");
    });
    edit_json(&folder.join("state/world.json"), |w| {
        let roof = &mut w["locations"]["safe_house"]["areas"]["roof"];
        roof["items"] = json!([{"instance_id": "flare_1", "template_id": "bandage", "glow": "red"}]);
        roof["npcs"] = json!(["radio_operator"]);
        roof["weather"] = json!("windy");
        // Ids left out: taken from the keys.
        roof.as_object_mut().unwrap().remove("id");
        w["locations"]["pharmacy"].as_object_mut().unwrap().remove("id");
        w["metadata"]["editor"] = json!("designer");
        w["quests"] = json!({"first_light": {}});
    });
    let text = fs::read_to_string(folder.join("templates/items/medkit.md")).unwrap();
    fs::write(folder.join("templates/items/medkit.md"), text.replacen("---\n", "---\nrarity: rare\n", 1)).unwrap();

    let exp = load_experience(&vault, "old").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(exp.config.extra["legacy_flag"], json!({"keep": true}));
    assert_eq!(exp.config.bootstrap.extra["spawn_effect"], "fade");
    let roof = &exp.world.locations["safe_house"].areas["roof"];
    assert_eq!((roof.id.as_str(), roof.items[0].instance_id.as_str()), ("roof", "flare_1"));
    assert_eq!(roof.items[0].extra["glow"], "red");
    assert_eq!(roof.npcs, ["radio_operator"]);
    assert_eq!(roof.extra["weather"], "windy");
    assert_eq!(exp.world.locations["pharmacy"].id, "pharmacy");
    assert_eq!(exp.world.extra["quests"], json!({"first_light": {}}));
    assert_eq!(exp.item_templates["medkit"].extra["rarity"], "rare");

    // Area-level items are checked like the others.
    edit_json(&folder.join("state/world.json"), |w| {
        w["locations"]["safe_house"]["areas"]["roof"]["items"][0]["instance_id"] = json!("medkit_1");
        w["locations"]["safe_house"]["areas"]["roof"]["npcs"] = json!(["zombie_king"]);
    });
    let errors = load_experience(&vault, "old").unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"locations.safe_house.areas.roof.npcs[0]"), "{errors:#?}");
    let dup = [
        "locations.pharmacy.areas.back_room.spots.stock_shelf.items[0].instance_id",
        "locations.safe_house.areas.roof.items[0].instance_id",
    ];
    assert!(dup.iter().any(|d| fields.contains(d)), "{errors:#?}");
}

#[test]
fn hidden_files_and_other_files_are_ignored() {
    let (_dir, vault) = vault_with(&["quiet"]);
    let folder = vault.join("experiences/quiet");
    fs::write(folder.join("templates/items/.draft.md"), "not even yaml: [").unwrap();
    fs::write(folder.join("game-logic/notes.txt"), "ignored").unwrap();
    fs::create_dir_all(vault.join("experiences/.git")).unwrap();
    fs::write(vault.join("experiences/README.md"), "# Experiences").unwrap();
    let catalog = load_catalog(&vault);
    assert!(catalog.errors.is_empty(), "{:#?}", catalog.errors);
    assert_eq!(catalog.experiences.keys().collect::<Vec<_>>(), ["quiet"]);
    assert!(!catalog.experiences["quiet"].item_templates.contains_key(".draft"));
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_not_followed() {
    use std::os::unix::fs::symlink;
    let (dir, vault) = vault_with(&["good", "linked-file"]);
    let exps = vault.join("experiences");
    // A template that links outside the vault.
    let outside = dir.path().join("secret.md");
    fs::write(&outside, "---\nname: Secret\n---\n").unwrap();
    symlink(&outside, exps.join("linked-file/templates/items/secret.md")).unwrap();
    // An experience folder that is a link to another.
    symlink(exps.join("good"), exps.join("alias")).unwrap();
    // A `state` folder that is a link.
    copy_dir(&exps.join("good"), &dir.path().join("elsewhere"));
    fs::create_dir_all(exps.join("linked-state")).unwrap();
    for f in ["config.json", "templates", "game-logic", "admin-logic", "waypoints"] {
        let from = exps.join("good").join(f);
        if from.is_dir() {
            copy_dir(&from, &exps.join("linked-state").join(f));
        } else {
            fs::copy(&from, exps.join("linked-state").join(f)).unwrap();
        }
    }
    edit_json(&exps.join("linked-state/config.json"), |c| c["id"] = json!("linked-state"));
    symlink(dir.path().join("elsewhere/state"), exps.join("linked-state/state")).unwrap();

    let catalog = load_catalog(&vault);
    assert_eq!(catalog.experiences.keys().collect::<Vec<_>>(), ["good"], "{:#?}", catalog.errors);
    let link = error_at(&catalog, "experiences/linked-file/templates/items/secret.md", "");
    assert!(link.message.contains("symbolic link"), "{}", link.message);
    let alias = error_at(&catalog, "experiences/alias", "");
    assert!(alias.message.contains("symbolic link"), "{}", alias.message);
    let state = error_at(&catalog, "experiences/linked-state/state/world.json", "");
    assert!(state.message.contains("`state` is a symbolic link"), "{}", state.message);
    assert!(load_experience(&vault, "alias").is_err());
}

#[test]
fn too_many_files_in_a_folder_skip_the_experience() {
    let (_dir, vault) = vault_with(&["crowded"]);
    let folder = vault.join("experiences/crowded/waypoints");
    for i in 0..10_001 {
        fs::write(folder.join(format!("n{i}.txt")), "").unwrap();
    }
    let errors = load_experience(&vault, "crowded").unwrap_err();
    assert_eq!(places(&errors), [("experiences/crowded/waypoints", "")]);
    assert!(errors[0].message.contains("more than 10000 entries"), "{}", errors[0].message);
}

#[test]
fn too_many_item_instances_skip_the_experience() {
    let (_dir, vault) = vault_with(&["hoard"]);
    // Compact, the shortest items: 100,001 of them fit in a 4 MiB file.
    let path = vault.join("experiences/hoard/state/world.json");
    let mut world: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let items = vec![json!({"instance_id": "", "template_id": ""}); 100_001];
    world["locations"]["safe_house"]["areas"]["roof"]["items"] = Value::Array(items);
    fs::write(&path, serde_json::to_string(&world).unwrap()).unwrap();
    let errors = load_experience(&vault, "hoard").unwrap_err();
    assert_eq!(places(&errors), [("experiences/hoard/state/world.json", "")]);
    assert!(errors[0].message.contains("item instances"), "{}", errors[0].message);
}

#[test]
fn deep_json_is_refused_not_overflowed() {
    let (_dir, vault) = vault_with(&["deep"]);
    let deep = format!("{{\"metadata\": {{\"x\": {}{}}}}}", "[".repeat(100_000), "]".repeat(100_000));
    fs::write(vault.join("experiences/deep/state/world.json"), deep).unwrap();
    let errors = load_experience(&vault, "deep").unwrap_err();
    assert_eq!(places(&errors), [("experiences/deep/state/world.json", "")]);
    assert!(errors[0].message.contains("recursion limit"), "{}", errors[0].message);
}
