//! Game worlds over HTTP: the sample experience (`crates/gaia-world/sample`) in the knowledge base's
//! vault, listed, described, played (look, collect, go, use) through `POST …/command`, the player's
//! state; bad commands answered in Gaia's error shape; a viewer may look but not play; an experience
//! broken in the vault is reported to administrators and skipped. SQLite and PostgreSQL.

use crate::common;

use common::{start, Fetch};
use gaia_core::testing::database_urls;
use gaia_kb::{Kb, KbConfig};
use serde_json::{json, Value};
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A vault with the sample experience and a broken one.
fn vault() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gaia-world/sample/experiences");
    copy_dir(&sample, &dir.path().join("experiences"));
    let broken = dir.path().join("experiences/broken-world");
    copy_dir(&sample.join("safe-house"), &broken);
    std::fs::write(broken.join("config.json"), r#"{"id": "broken-world", "name": "Broken", "version": "one"}"#)
        .unwrap();
    std::fs::write(dir.path().join("README.md"), "# A vault\n").unwrap();
    dir
}

#[tokio::test]
async fn the_sample_experience_plays_over_http() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let b = s.backend;
        let dir = vault();
        let kb = Kb::open(KbConfig { root: dir.path().to_path_buf(), sync_interval_secs: 0, ..KbConfig::default() })
            .await
            .unwrap();
        assert!(s.state.set_kb(kb));
        s.state.reload_worlds().await;
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
        // Without credentials: 401.
        assert_eq!(s.http.get(url("")).send().await.unwrap().status(), 401);
    }
}
