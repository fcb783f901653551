//! Game worlds over HTTP: the sample experience (`crates/gaia-world/sample`) in the knowledge base's
//! vault, listed, described, played (look, collect, go, use) through `POST …/command`, the player's
//! state; bad commands answered in Gaia's error shape; a viewer may look but not play; an experience
//! broken in the vault is reported to administrators and skipped. SQLite and PostgreSQL.

use crate::common;

use common::{start, Fetch};
use gaia_core::testing::database_urls;
use serde_json::{json, Value};

/// The sample world, and a broken experience beside it.
async fn vault(s: &common::TestServer) -> tempfile::TempDir {
    let dir = common::with_sample_world(s).await;
    let sample = dir.path().join("experiences/safe-house");
    let broken = dir.path().join("experiences/broken-world");
    std::fs::create_dir_all(broken.join("state")).unwrap();
    std::fs::copy(sample.join("state/world.json"), broken.join("state/world.json")).unwrap();
    std::fs::write(broken.join("config.json"), r#"{"id": "broken-world", "name": "Broken", "version": "one"}"#)
        .unwrap();
    s.state.reload_worlds().await;
    dir
}

#[tokio::test]
async fn the_sample_experience_plays_over_http() {
    for db in database_urls().await {
        let s = start(db, Some(gaia_providers::mock::MockConfig::default())).await;
        let b = s.backend;
        let _vault = vault(&s).await;
        let (token, _, _) = s.register("player@example.com").await;
        let url = |p: &str| format!("{}/api/v1/experiences{p}", s.url);

        let list: Value = s.http.get(url("")).bearer_auth(&token).fetch_json().await;
        assert_eq!(list["count"], 1, "{b}: the broken one is skipped: {list}");
        assert_eq!(list["experiences"][0]["id"], "safe-house");
        assert!(list.get("errors").is_none(), "{b}: content problems are for administrators");
        let exp: Value = s.http.get(url("/safe-house")).bearer_auth(&token).fetch_json().await;
        assert_eq!(exp["name"], list["experiences"][0]["name"]);
        assert!(exp["locations"].as_array().unwrap().len() >= 2, "{b}: {exp}");
        assert!(exp["commands"].as_array().unwrap().iter().any(|c| c["command"] == "scavenge"));

        let state: Value = s.http.get(url("/safe-house/state")).bearer_auth(&token).fetch_json().await;
        assert_eq!(state["player"]["current_area"], "main_room", "{b}: {state}");
        let v0 = state["snapshot_version"].as_i64().unwrap();

        let cmd = |body: Value| s.http.post(url("/safe-house/command")).bearer_auth(&token).json(&body).send();
        let r: Value = cmd(json!({"action": "look"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let r: Value =
            cmd(json!({"action": "collect_item", "instance_id": "canned_food_1"})).await.unwrap().json().await.unwrap();
        assert_eq!((r["success"].as_bool(), r["snapshot_version"].as_i64()), (Some(true), Some(v0 + 1)), "{b}: {r}");
        assert_eq!(r["state_changes"][1]["path"], "player.inventory");
        // Out of place: a result that says why, not an HTTP error; nothing changes.
        let r = cmd(json!({"action": "collect_item", "instance_id": "medkit_1"})).await.unwrap();
        assert_eq!(r.status(), 200);
        let r: Value = r.json().await.unwrap();
        assert_eq!(r["success"], false, "{b}: {r}");
        assert_eq!(r["snapshot_version"].as_i64(), Some(v0 + 1));
        // Bad input: 400 in Gaia's shape.
        for bad in
            [json!({"action": ""}), json!({"nothing": 1}), json!({"action": "look", "instance_id": "x".repeat(5000)})]
        {
            let r = cmd(bad.clone()).await.unwrap();
            assert_eq!(r.status(), 400, "{b}: {bad}");
            let e: Value = r.json().await.unwrap();
            assert!(e["detail"].is_string() || e["error"].is_object(), "{b}: {e}");
        }
        let r = s
            .http
            .post(url("/no-such-world/command"))
            .bearer_auth(&token)
            .json(&json!({"action": "look"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{b}");

        // The state reflects the change.
        let state: Value = s.http.get(url("/safe-house/state")).bearer_auth(&token).fetch_json().await;
        let inv: Vec<&str> =
            state["player"]["inventory"].as_array().unwrap().iter().filter_map(|i| i["instance_id"].as_str()).collect();
        assert!(inv.contains(&"canned_food_1"), "{b}: {state}");

        // Talk to Sam (the model answers as Sam, metered; trust grows), here in the safe house.
        let r: Value =
            cmd(json!({"action": "talk", "target_npc_id": "radio_operator", "message": "Anyone out there?"}))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["metadata"]["npc_id"], "radio_operator");
        assert_eq!(r["metadata"]["voice"], "calm_low");
        assert!(r["message"].as_str().unwrap().contains("Anyone out there?"), "{b}: the mock echoes: {r}");
        assert_eq!(r["metadata"]["trust"], 51);
        let r: Value = cmd(json!({"action": "talk to nobody: hello"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], false, "{b}: {r}");

        // A rules command: the model's JSON is checked and applied as one change, then narrated.
        let mock = s.mock.as_ref().unwrap();
        for step in ["go to pharmacy", "go back_room"] {
            let r: Value = cmd(json!({"action": step})).await.unwrap().json().await.unwrap();
            assert_eq!(r["success"], true, "{b} {step}: {r}");
        }
        let before: Value = s.http.get(url("/safe-house/state")).bearer_auth(&token).fetch_json().await;
        let v1 = before["snapshot_version"].as_i64().unwrap();
        mock.push_reply(r#"{"success": true, "state_updates": {"add_items": ["bandage"]}, "message": "You find a bandage.", "available_actions": ["look"]}"#);
        let r: Value = cmd(json!({"action": "scavenge the shelves"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["snapshot_version"].as_i64(), Some(v1 + 1), "{b}");
        assert_eq!(r["state_changes"][0]["template_id"], "bandage");
        assert!(r["message"].as_str().unwrap().starts_with("Mock reply to:"), "{b}: the narrative pass: {r}");
        // Answers that are not JSON, or change what the rules do not speak of, change nothing.
        for bad in [
            "I found nothing, sorry!",
            r#"{"success": true, "state_updates": {"stats": {"strength": 99}}, "message": "Stronger!"}"#,
            r#"{"success": true, "state_updates": {"add_items": ["rocket_launcher"]}, "message": "Boom"}"#,
            r#"{"success": true, "state_updates": {"remove_items": ["medkit_1"]}, "message": "Gone"}"#,
            r#"{"success": true, "state_updates": {"gold": 1000}, "message": "Rich"}"#,
        ] {
            mock.push_reply(bad);
            let r: Value = cmd(json!({"action": "loot"})).await.unwrap().json().await.unwrap();
            assert_eq!(r["success"], false, "{b}: {bad}: {r}");
            assert_eq!(r["metadata"]["error"], "invalid_model_answer", "{b}: {r}");
            assert_eq!(r["snapshot_version"].as_i64(), Some(v1 + 1), "{b}: nothing changed");
        }

        // Admin commands need experience:admin.
        let r: Value = cmd(json!({"action": "@stats"})).await.unwrap().json().await.unwrap();
        assert_eq!(
            (r["success"].as_bool(), r["metadata"]["error"].as_str()),
            (Some(false), Some("not_allowed")),
            "{b}: {r}"
        );

        // Administrators see what did not load, naming the file and the field.
        let (_, _, admin_id) = s.register("boss@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let login = json!({"email": "boss@example.com", "password": "correct horse battery"});
        let admin: Value = s.http.post(format!("{}/api/v1/auth/login", s.url)).json(&login).fetch_json().await;
        let admin = admin["access_token"].as_str().unwrap().to_string();
        let list: Value = s.http.get(url("")).bearer_auth(&admin).fetch_json().await;
        let errors = list["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["experience"] == "broken-world"
                && e["field"] == "version"
                && e["file"].as_str().unwrap().ends_with("config.json")),
            "{b}: {list}"
        );
        // An administrator edits the live world, resets it and undoes the reset.
        let acmd = |body: Value| s.http.post(url("/safe-house/command")).bearer_auth(&admin).json(&body).send();
        let r: Value = acmd(json!({"action": "@stats"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let r: Value = acmd(json!({"action": "@spawn medkit at roof"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let spawned = r["item_id"].as_str().unwrap().to_string();
        let r: Value = acmd(json!({"action": format!("@where {spawned}")})).await.unwrap().json().await.unwrap();
        assert!(r["message"].as_str().unwrap().contains("roof"), "{b}: {r}");
        let r: Value = acmd(json!({"action": "@edit item medkit_1 semantic_name golden medkit"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        // Places: a new area joined to the main room, where players can go at once.
        for action in ["@create area cellar in safe_house The Cellar", "@connect main_room cellar"] {
            let r: Value = acmd(json!({"action": action})).await.unwrap().json().await.unwrap();
            assert_eq!(r["success"], true, "{b}: {action}: {r}");
        }
        let r: Value = acmd(json!({"action": "go", "destination": "cellar"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let r: Value = acmd(json!({"action": "go main_room"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let r: Value = acmd(json!({"action": "@reset experience"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let r: Value = acmd(json!({"action": format!("@where {spawned}")})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], false, "{b}: gone with the reset: {r}");
        let r: Value = acmd(json!({"action": "go cellar"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], false, "{b}: the cellar went with the reset: {r}");
        let state: Value = s.http.get(url("/safe-house/state")).bearer_auth(&token).fetch_json().await;
        assert_eq!(state["player"]["current_area"], "main_room", "{b}: the player starts again: {state}");
        let r: Value = acmd(json!({"action": "@reset undo"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: {r}");
        let r: Value = acmd(json!({"action": format!("@where {spawned}")})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], true, "{b}: back after the undo: {r}");
        let state: Value = s.http.get(url("/safe-house/state")).bearer_auth(&token).fetch_json().await;
        assert_eq!(state["player"]["current_area"], "back_room", "{b}: the player is back where they were: {state}");
        let r: Value = acmd(json!({"action": "@reset undo"})).await.unwrap().json().await.unwrap();
        assert_eq!(r["success"], false, "{b}: nothing more to undo: {r}");

        // A chat persona that names `world` is offered the game-world tools; the default one is not.
        let npc: Value = s
            .http
            .post(format!("{}/api/v1/personas", s.url))
            .bearer_auth(&token)
            .json(&json!({"name": "Game master", "system_prompt": "You run the game.", "tools": ["world"]}))
            .fetch_json()
            .await;
        let chat = |persona: Option<&str>| {
            let mut body = json!({"message": "what do I carry?", "model": "openai/mock-gpt"});
            if let Some(p) = persona {
                body["persona_id"] = json!(p);
            }
            s.http.post(format!("{}/api/v1/chat", s.url)).bearer_auth(&token).json(&body).send()
        };
        assert_eq!(chat(npc["id"].as_str()).await.unwrap().status(), 200);
        let offered = |v: Value| -> Vec<String> {
            v["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        };
        let tools = offered(mock.last_request().unwrap());
        assert!(tools.contains(&"world__interact_with_experience".to_string()), "{b}: {tools:?}");
        assert!(!tools.iter().any(|t| t.starts_with("kb__")), "{b}: only what the persona names: {tools:?}");
        assert_eq!(chat(None).await.unwrap().status(), 200);
        assert!(!offered(mock.last_request().unwrap()).iter().any(|t| t.starts_with("world__")), "{b}");

        // Waypoints near a position, nearest first, pathways left out.
        let near = |q: &str| s.http.get(format!("{}/api/v0.3/locations/nearby?{q}", s.url)).bearer_auth(&token).send();
        let r: Value =
            near("gps=48.8566,2.3522&radius=1000&experience=safe-house").await.unwrap().json().await.unwrap();
        let ids: Vec<&str> = r["locations"].as_array().unwrap().iter().filter_map(|l| l["id"].as_str()).collect();
        assert_eq!(ids, ["safe_house", "pharmacy"], "{b}: {r}");
        assert_eq!(r["count"], 2);
        assert_eq!(r["locations"][0]["gps"], json!([48.8566, 2.3522]));
        let r: Value = near("gps=48.8566,2.3522&radius=100&experience=safe-house").await.unwrap().json().await.unwrap();
        assert_eq!(r["count"], 1, "{b}: the pharmacy is 300 m away: {r}");
        for bad in [
            "gps=91,0&experience=safe-house",
            "gps=x&experience=safe-house",
            "gps=1,1&radius=0&experience=safe-house",
            "gps=1,1&radius=20000&experience=safe-house",
        ] {
            assert_eq!(near(bad).await.unwrap().status(), 400, "{b}: {bad}");
        }
        assert_eq!(near("gps=1,1&experience=atlantis").await.unwrap().status(), 404);

        // Without credentials: 401.
        assert_eq!(s.http.get(url("")).send().await.unwrap().status(), 401);
    }
}
