//! Scenes over HTTP on the sample world (`scenes/night_watch.md`: Dana on the roof, Sam on the
//! radio), with the mock model: two players speak in one scene, the NPC the scene's rule chooses
//! answers each (named, least recently heard, in turn, or chosen by the model), turns said at once
//! both count, nothing private to a player (memories, facts, talks alone with an NPC) is put in a
//! scene's prompt (it is said aloud), a player's words (or their meaning) move the scene to its next
//! section with no model call, and the caps on turns and tokens end it. SQLite and PostgreSQL.

use crate::common;

use gaia_core::testing::database_urls;
use serde_json::{json, Value};

#[tokio::test]
async fn two_players_share_a_scene_and_never_each_other_s_memories() {
    for db in database_urls().await {
        let (s, vault) = common::start_remembering(db).await;
        let b = s.backend;
        let (ann, _, _) = s.register("ann@example.com").await;
        let (bob, _, _) = s.register("bob@example.com").await;
        let mock = s.mock.as_ref().unwrap();
        let url = |p: &str| format!("{}/api/v1/experiences/safe-house{p}", s.url);
        let command = |token: &str, body: Value| {
            let req = s.http.post(url("/command")).bearer_auth(token).json(&body).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };
        let say = |token: &str, message: &str| command(token, json!({"action": "scene_say", "message": message}));
        let memories = |token: &str| {
            let req = s.http.get(url("/npcs/radio_operator/memories")).bearer_auth(token).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };

        // Ann tells Sam something in private first; Sam remembers it (the mock draws the fact).
        let fact = "Ann's sister is called Mara";
        mock.push_reply_when(
            "You keep what Sam remembers",
            json!({"facts": [{"fact": fact, "importance": 8}]}).to_string(),
        );
        let r = command(
            &ann,
            json!({"action": "talk", "target_npc_id": "radio_operator", "message": "My sister is Mara."}),
        )
        .await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert!(
            common::eventually_async(|| async { memories(&ann).await["count"] == 1 }).await,
            "{b}: {}",
            memories(&ann).await
        );

        // Both climb to the roof; Ann starts the watch: its first lines, no model call.
        for token in [&ann, &bob] {
            assert_eq!(command(token, json!({"action": "go roof"})).await["success"], true, "{b}");
        }
        let calls = mock.requests();
        let r = command(&ann, json!({"action": "start_scene", "scene_id": "night_watch"})).await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["metadata"]["npc_reactions"].as_array().unwrap().len(), 2, "{b}: {r}");
        assert_eq!(mock.requests(), calls, "{b}: sections need no model");

        // Bob names Dana: she answers, in the scene; nothing of Ann's memories reaches his turn.
        let r = say(&bob, "Dana, what do you see out there?").await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(
            (r["metadata"]["npc_id"].as_str(), r["metadata"]["scene"].as_str()),
            (Some("medic"), Some("night_watch"))
        );
        let scene = r["state_changes"].as_array().unwrap().iter().find(|c| c["path"] == "scene").unwrap().clone();
        assert_eq!(scene["area_id"], "roof", "{b}: {scene}");
        let lines: Vec<&str> =
            scene["item"]["lines"].as_array().unwrap().iter().filter_map(|l| l["speaker"].as_str()).collect();
        assert_eq!(lines, ["player", "medic"], "{b}: {scene}");
        // Bob asks Sam (by name, on the radio) about a sister: Sam has nothing of Ann's for him.
        let r = say(&bob, "Sam, do you know my sister's name?").await;
        assert_eq!(r["metadata"]["npc_id"], "radio_operator", "{b}: {r}");
        assert!(r["metadata"].get("recalled").is_none(), "{b}: Bob's turn gets none of Ann's memories: {r}");
        // Ann talks to Sam from the roof: a turn of the scene, said aloud in front of Bob, so what is
        // private to her (her memories, facts, talks alone with Sam) stays out of it.
        let r = command(
            &ann,
            json!({"action": "talk", "target_npc_id": "radio_operator", "message": "Sam, remember my sister?"}),
        )
        .await;
        assert_eq!(
            (r["success"].as_bool(), r["metadata"]["scene"].as_str()),
            (Some(true), Some("night_watch")),
            "{b}: {r}"
        );
        assert!(r["metadata"].get("recalled").is_none(), "{b}: {r}");
        // Bob never sees what Sam remembers of Ann (his own list stays his).
        assert!(
            memories(&bob).await["memories"].as_array().unwrap().iter().all(|m| m["text"] != fact),
            "{b}: {}",
            memories(&bob).await
        );

        // Nobody named: the one heard least recently (Dana) answers.
        let r = say(&ann, "Anything moving?").await;
        assert_eq!(r["metadata"]["npc_id"], "medic", "{b}: {r}");
        // Bob's words move the watch on: the horde section's lines, no extra model call.
        let calls = mock.requests();
        let r = say(&bob, "I see a horde coming up from the river!").await;
        assert_eq!(r["success"], true, "{b}: {r}");
        let lines: Vec<&str> =
            r["metadata"]["npc_reactions"].as_array().unwrap().iter().filter_map(|l| l["text"].as_str()).collect();
        assert!(lines.contains(&"There. Twenty, thirty. Coming this way."), "{b}: {r}");
        let made = mock.requests() - calls;
        assert!((1..=2).contains(&made), "{b}: the answer (and its memory call), nothing for the section: {made}");
        // Both speak at once: both turns count, both lines are kept.
        let (x, y) =
            tokio::join!(say(&ann, "Ann here: all quiet on the left."), say(&bob, "Bob here: all quiet right."));
        assert_eq!((x["success"].as_bool(), y["success"].as_bool()), (Some(true), Some(true)), "{b}: {x} {y}");
        let shown = command(&bob, json!({"action": "scene"})).await;
        let shown = &shown["metadata"]["scene"];
        assert_eq!((shown["section"].as_str(), shown["turns"].as_u64()), (Some("horde"), Some(7)), "{b}: {shown}");
        let said: Vec<&str> = shown["lines"].as_array().unwrap().iter().filter_map(|l| l["text"].as_str()).collect();
        assert!(said.contains(&"Ann here: all quiet on the left.") && said.contains(&"Bob here: all quiet right."));
        let speakers: Vec<&str> =
            shown["lines"].as_array().unwrap().iter().filter_map(|l| l["speaker"].as_str()).collect();
        assert_eq!(speakers.iter().filter(|x| **x == "player").count(), 7, "{b}: both players' lines: {speakers:?}");

        // The watch ends when Ann climbs down (its closing section).
        let r = command(&ann, json!({"action": "go main_room"})).await;
        let ended = r["state_changes"].as_array().unwrap().iter().find(|c| c["path"] == "scene").unwrap().clone();
        assert_eq!(ended["item"]["status"], "ended", "{b}: {r}");
        // Alone with Sam again, Ann's memory is there for her.
        let r = command(
            &ann,
            json!({"action": "talk", "target_npc_id": "radio_operator", "message": "Do you remember my sister?"}),
        )
        .await;
        assert!(r["metadata"].get("scene").is_none(), "{b}: a private talk: {r}");
        let recalled: Vec<&str> =
            r["metadata"]["recalled"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(recalled, [fact], "{b}: {r}");

        // In turn, at most two turns: Dana, Sam, then the scene is over. The horde now comes when a
        // player's words mean that something moves in the street (the embedding model judges).
        let file = vault.path().join("experiences/safe-house/scenes/night_watch.md");
        let text = std::fs::read_to_string(&file).unwrap();
        let by_meaning = text
            .replace("speaker: addressed", "speaker: round_robin")
            .replace("max_turns: 24", "max_turns: 2")
            .replace(
                "when: {event: player_says, says: horde}",
                "when: {event: player_says, means: \"something moves in the street\", similarity: 0.7}",
            );
        std::fs::write(&file, by_meaning).unwrap();
        s.state.reload_worlds().await;
        assert_eq!(command(&ann, json!({"action": "go roof"})).await["success"], true, "{b}");
        assert_eq!(command(&ann, json!({"action": "start_scene"})).await["success"], true, "{b}");
        let r = say(&ann, "Sam, a quiet night so far?").await;
        assert_eq!(r["metadata"]["npc_id"], "medic", "{b}: in turn, not named: {r}");
        assert!(r["metadata"].get("npc_reactions").is_none(), "{b}: nothing moves yet: {r}");
        let r = say(&ann, "Something moves down in the street!").await;
        assert_eq!(r["metadata"]["npc_id"], "radio_operator", "{b}: {r}");
        let lines: Vec<&str> =
            r["metadata"]["npc_reactions"].as_array().unwrap().iter().filter_map(|l| l["text"].as_str()).collect();
        assert!(lines.contains(&"There. Twenty, thirty. Coming this way."), "{b}: by meaning: {r}");
        let ended = r["state_changes"].as_array().unwrap().iter().rfind(|c| c["path"] == "scene").unwrap().clone();
        assert_eq!(
            (ended["item"]["status"].as_str(), ended["item"]["ended"].as_str()),
            (Some("ended"), Some("max_turns"))
        );
        let r = say(&ann, "Hello?").await;
        assert_eq!(r["success"], false, "{b}: over: {r}");

        // The model chooses who answers (a short call of its own); a token cap ends the scene.
        std::fs::write(
            &file,
            text.replace("speaker: addressed", "speaker: model").replace("max_tokens: 40000", "max_tokens: 1"),
        )
        .unwrap();
        s.state.reload_worlds().await;
        assert_eq!(command(&ann, json!({"action": "start_scene"})).await["success"], true, "{b}");
        mock.push_reply_when("You direct the scene", "radio_operator");
        let r = say(&ann, "Dana, is that you?").await;
        assert_eq!(r["metadata"]["npc_id"], "radio_operator", "{b}: the model's choice: {r}");
        let ended = r["state_changes"].as_array().unwrap().iter().rfind(|c| c["path"] == "scene").unwrap().clone();
        assert_eq!(ended["item"]["ended"], "max_tokens", "{b}: {ended}");
    }
}
