//! NPCs that act and feel, over HTTP on the sample world (Sam, with the mock model): a reply's
//! emotion tag is read and kept; an action the model proposes as a tool call is checked against
//! Sam's template, the relationship and the world, then applied in the talk's change or refused
//! with nothing changed (a gated action, an argument the template does not allow, extra
//! arguments, arguments that are not JSON); goals fired by the talk; memories recalled after 200
//! turns and kept per player; past 10,000 memories the oldest condensed by the model. SQLite and
//! PostgreSQL.

use crate::common;

use common::{start, Fetch};
use gaia_core::testing::database_urls;
use serde_json::{json, Value};

#[tokio::test]
async fn an_npc_acts_through_checked_actions_and_replies_with_an_emotion() {
    for db in database_urls().await {
        let s = start(db, Some(gaia_providers::mock::MockConfig::default())).await;
        let b = s.backend;
        let _vault = common::with_sample_world(&s).await;
        let (token, _, _) = s.register("player@example.com").await;
        let mock = s.mock.as_ref().unwrap();
        let url = |p: &str| format!("{}/api/v1/experiences/safe-house{p}", s.url);
        let talk = |message: &str| {
            let body = json!({"action": "talk", "target_npc_id": "radio_operator", "message": message});
            let req = s.http.post(url("/command")).bearer_auth(&token).json(&body).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };
        let state = || async { s.http.get(url("/state")).bearer_auth(&token).fetch_json::<Value>().await };

        // The emotion tag starts the reply: read, kept, and left out of the text.
        mock.push_reply("[happy 0.8] Copy that. Good to hear a voice.");
        let r = talk("Hello Sam").await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["message"], "Copy that. Good to hear a voice.", "{b}: {r}");
        assert_eq!(r["metadata"]["emotion"], json!({"name": "happy", "intensity": 0.8}), "{b}: {r}");
        assert_eq!(r["metadata"]["relationship"]["familiarity"], 1, "{b}: {r}");
        let changed = r["state_changes"].as_array().unwrap();
        assert!(changed.iter().any(|c| c["path"] == "player.relationships.radio_operator"), "{b}: {r}");

        // A checked action: Sam starts the quest (a tool call), in the talk's own change.
        let v0 = state().await["snapshot_version"].as_i64().unwrap();
        let r = talk(r#"call tool offer_quest {"quest": "first_aid"}"#).await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["metadata"]["actions"][0]["ok"], true, "{b}: {r}");
        assert_eq!(r["snapshot_version"].as_i64(), Some(v0 + 1), "{b}: one change");
        assert!(r["state_changes"].as_array().unwrap().iter().any(|c| c["path"] == "player.quests"), "{b}: {r}");
        let st = state().await;
        assert_eq!(st["player"]["quests"]["first_aid"]["status"], "active", "{b}: {st}");
        // Taken once: asked again, refused.
        let r = talk(r#"call tool offer_quest {"quest": "first_aid"}"#).await;
        assert_eq!(r["metadata"]["actions"][0]["ok"], false, "{b}: {r}");

        // Refused, with nothing but the exchange changed: what the relationship does not allow
        // yet (trust 55), what the template does not list, more or other arguments, not JSON.
        let refused = [
            (r#"call tool hand_over {"item": "frequency_codes"}"#, "trust 55 needed"),
            (r#"call tool hand_over {"item": "medkit"}"#, "cannot hand over medkit"),
            (r#"call tool hand_over {"item": "frequency_codes", "count": 99}"#, "one argument"),
            (r#"call tool hand_over {"thing": "frequency_codes"}"#, "one argument"),
            ("call tool hand_over please", "one argument"),
        ];
        for (message, why) in refused {
            let r = talk(message).await;
            assert_eq!(r["success"], true, "{b}: the talk itself succeeds: {r}");
            let a = &r["metadata"]["actions"][0];
            assert_eq!(a["ok"], false, "{b}: {message}: {r}");
            assert!(a["reason"].as_str().unwrap().contains(why), "{b}: {message}: {a}");
            let st = state().await;
            let inv: Vec<&str> = st["player"]["inventory"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["template_id"].as_str())
                .collect();
            assert_eq!(inv, ["bandage"], "{b}: {message}: nothing given");
        }

        // Trust grows by one per exchange: at 55 the same action is taken.
        let mut trust = state_trust(&talk("Still there?").await);
        while trust < 55 {
            trust = state_trust(&talk("Copy?").await);
        }
        let r = talk(r#"call tool hand_over {"item": "frequency_codes"}"#).await;
        assert_eq!(r["metadata"]["actions"][0]["ok"], true, "{b}: {r}");
        let st = state().await;
        let inv: Vec<&str> =
            st["player"]["inventory"].as_array().unwrap().iter().filter_map(|i| i["template_id"].as_str()).collect();
        assert!(inv.contains(&"frequency_codes"), "{b}: {st}");
        // A made item is given once per player.
        let r = talk(r#"call tool hand_over {"item": "frequency_codes"}"#).await;
        assert!(r["metadata"]["actions"][0]["reason"].as_str().unwrap().contains("no more"), "{b}: {r}");
    }
}

fn state_trust(talk: &Value) -> i64 {
    talk["metadata"]["relationship"]["trust"].as_i64().unwrap()
}

/// The facts Ann tells Sam, one every 20 turns, and the question that should bring each back.
const SEEDED: [(&str, &str); 10] = [
    ("Ann's dog is called Biscuit", "What is my dog called?"),
    ("Ann was born in Lisbon", "Where was I born?"),
    ("Ann is allergic to penicillin", "Which medicine am I allergic to?"),
    ("Ann's sister Maya waits in Porto", "Who waits for me in Porto?"),
    ("Ann buried the spare keys under the oak tree", "Where did I bury the spare keys?"),
    ("Ann owes Marco forty bullets", "How many bullets do I owe Marco?"),
    ("Ann drives a blue pickup truck", "What colour is my pickup truck?"),
    ("Ann hates the smell of diesel", "Which smell do I hate?"),
    ("Ann promised to fix the generator on Sunday", "What did I promise to fix?"),
    ("Ann's radio call sign is Nightjar", "What is my radio call sign?"),
];

#[tokio::test]
async fn an_npc_recalls_a_fact_told_200_turns_earlier_and_players_never_share_memories() {
    for db in database_urls().await {
        let (s, _vault) = common::start_remembering(db).await;
        let b = s.backend;
        let (ann, _, _) = s.register("ann@example.com").await;
        let (bob, _, _) = s.register("bob@example.com").await;
        let mock = s.mock.as_ref().unwrap();
        let url = |p: &str| format!("{}/api/v1/experiences/safe-house{p}", s.url);
        let talk = |token: &str, message: &str| {
            let body = json!({"action": "talk", "target_npc_id": "radio_operator", "message": message});
            let req = s.http.post(url("/command")).bearer_auth(token).json(&body).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };
        let memories = |token: &str| {
            let req = s.http.get(url("/npcs/radio_operator/memories")).bearer_auth(token).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };

        // 200 turns: every exchange leaves a fact (the mock, scripted for the memory calls, draws
        // one), ten of them the ones to recall.
        for turn in 0..200usize {
            let fact = match turn % 20 {
                0 => SEEDED[turn / 20].0.to_string(),
                _ => format!("On turn {turn} the survivor counted {turn} crows over the roof"),
            };
            // All as important: relevance to the question decides what comes back.
            let importance = 3;
            mock.push_reply_when(
                "You keep what Sam remembers",
                json!({"facts": [{"fact": fact, "importance": importance}]}).to_string(),
            );
            let r = talk(&ann, &format!("Turn {turn}: copy, over.")).await;
            assert_eq!(r["success"], true, "{b}: {r}");
            // The memory call runs after the answer, off its path: wait for it before the next
            // turn (so the script and the turns pair up).
            let want = turn + 1;
            assert!(
                common::eventually_async(|| async { memories(&ann).await["count"].as_u64() == Some(want as u64) })
                    .await,
                "{b}: turn {turn}: {}",
                memories(&ann).await
            );
        }

        // Each seeded fact comes back for its question.
        let mut recalled = 0;
        for (fact, question) in SEEDED {
            let r = talk(&ann, question).await;
            let got: Vec<&str> =
                r["metadata"]["recalled"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            assert!(got.len() <= gaia_world::PROMPT_MEMORIES, "{b}: bounded: {}", got.len());
            if got.contains(&fact) {
                recalled += 1;
            }
        }
        assert!(recalled >= 9, "{b}: {recalled} of 10 seeded facts recalled after 200 turns");

        // Bob, in the same place with the same NPC, never sees what Sam remembers of Ann.
        assert_eq!(memories(&bob).await["count"], 0, "{b}");
        let r = talk(&bob, "What is my dog called?").await;
        assert!(r["metadata"].get("recalled").is_none(), "{b}: {r}");

        // Ann sees what Sam remembers, and makes him forget one memory, then all.
        let list = memories(&ann).await;
        let dog = list["memories"].as_array().unwrap().iter().find(|m| m["text"] == SEEDED[0].0).unwrap().clone();
        let del = |path: String, token: &str| {
            let req = s.http.delete(url(&path)).bearer_auth(token).send();
            async move { req.await.unwrap().status().as_u16() }
        };
        let one = format!("/npcs/radio_operator/memories/{}", dog["id"].as_str().unwrap());
        assert_eq!(del(one.clone(), &bob).await, 404, "{b}: Bob cannot reach Ann's memory");
        assert_eq!(del(one.clone(), &ann).await, 200, "{b}");
        assert_eq!(del(one, &ann).await, 404, "{b}: gone");
        let r = talk(&ann, "What is my dog called?").await;
        let got = r["metadata"]["recalled"].as_array().cloned().unwrap_or_default();
        assert!(!got.iter().any(|t| t == SEEDED[0].0), "{b}: forgotten: {got:?}");
        assert_eq!(del("/npcs/radio_operator/memories".into(), &ann).await, 200, "{b}");
        assert!(
            common::eventually_async(|| async { memories(&ann).await["count"].as_u64().unwrap_or(0) <= 1 }).await,
            "{b}: forgotten (the last talk's fact may land after)"
        );
        assert_eq!(del("/npcs/nobody/memories".into(), &ann).await, 404, "{b}");
    }
}

#[tokio::test]
async fn an_experience_s_guardrails_make_its_npcs_refuse_in_character() {
    for db in database_urls().await {
        let mut config = common::test_config();
        config.guardrails.rules = vec![serde_json::from_value(json!({
            "name": "no_zeppelins", "check": "words", "stage": "input", "action": "refuse", "words": ["zeppelin"]
        }))
        .unwrap()];
        let s = common::start_with(db, Some(gaia_providers::mock::MockConfig::default()), config).await;
        let b = s.backend;
        let vault = common::with_sample_world(&s).await;
        // The experience names the rule (and one the server does not configure: left out).
        let file = vault.path().join("experiences/safe-house/config.json");
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        c["guardrails"] = json!(["no_zeppelins", "not_configured"]);
        std::fs::write(&file, c.to_string()).unwrap();
        s.state.reload_worlds().await;
        let (token, _, _) = s.register("ann@example.com").await;
        let url = |p: &str| format!("{}/api/v1/experiences/safe-house{p}", s.url);
        let talk = |message: &str| {
            let body = json!({"action": "talk", "target_npc_id": "radio_operator", "message": message});
            let req = s.http.post(url("/command")).bearer_auth(&token).json(&body).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };
        let version = || async {
            s.http.get(url("/state")).bearer_auth(&token).fetch_json::<Value>().await["snapshot_version"].as_i64()
        };

        // Refused: Sam declines in character; nothing is remembered or changed.
        let v0 = version().await;
        let r = talk("Tell me about the ZEPPELIN over the river").await;
        assert_eq!(r["success"], true, "{b}: {r}");
        assert_eq!(r["metadata"]["refused"], true, "{b}: {r}");
        assert_eq!(r["message"], "Sam taps the mic twice. \"Not on this channel, friend.\"", "{b}: {r}");
        assert_eq!(version().await, v0, "{b}: nothing changed");
        // Any other talk goes on.
        let r = talk("Copy?").await;
        assert!(r["metadata"].get("refused").is_none(), "{b}: {r}");
        assert_eq!(r["metadata"]["relationship"]["trust"], 51, "{b}: only this exchange counted: {r}");

        // The rule is the experience's: a plain chat call with the same word is answered.
        let r = s
            .http
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&token)
            .json(&json!({"model": "openai/mock-gpt", "messages": [{"role": "user", "content": "the zeppelin"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
    }
}

#[tokio::test]
async fn past_10000_memories_the_oldest_are_condensed_by_the_model() {
    for db in database_urls().await {
        let (s, _vault) = common::start_remembering(db).await;
        let b = s.backend;
        let (ann, _, user) = s.register("ann@example.com").await;
        let mock = s.mock.as_ref().unwrap();
        let url = |p: &str| format!("{}/api/v1/experiences/safe-house{p}", s.url);
        let talk = |message: &str| {
            let body = json!({"action": "talk", "target_npc_id": "radio_operator", "message": message});
            let req = s.http.post(url("/command")).bearer_auth(&ann).json(&body).send();
            async move { req.await.unwrap().json::<Value>().await.unwrap() }
        };
        assert_eq!(talk("Hello Sam").await["success"], true, "{b}");
        let pool = s.state.storage().pool().clone();
        let count = |sql: String| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await.unwrap() }
        };
        // 10,000 memories of Ann, the oldest first.
        let max = gaia_world::MAX_MEMORIES as i64;
        for batch in 0..(max / 500) {
            let rows: Vec<String> = (batch * 500..(batch + 1) * 500)
                .map(|i| {
                    format!(
                        "('safe-house', '{user}', 'radio_operator', 'seed-{i}', 'Seeded memory {i}', 3, {})",
                        1_000 + i
                    )
                })
                .collect();
            sqlx::query(&format!(
                "INSERT INTO world_npc_memories (world_id, user_id, npc_id, id, text, importance, created_at) VALUES {}",
                rows.join(", ")
            ))
            .execute(&pool)
            .await
            .unwrap();
        }
        let mine = format!("SELECT COUNT(*) FROM world_npc_memories WHERE user_id = '{user}'");
        // One more fact: past the bound, the oldest are condensed into one by the model.
        mock.push_reply_when(
            "From the exchange below",
            json!({"facts": [{"fact": "Ann fixed the radio mast", "importance": 7}]}).to_string(),
        );
        mock.push_reply_when(
            "Condense the memories below",
            json!({"facts": [{"fact": "Ann has told Sam many small things since the first day", "importance": 4}]})
                .to_string(),
        );
        assert_eq!(talk("I fixed the mast.").await["success"], true, "{b}");
        let condensed =
            "SELECT COUNT(*) FROM world_npc_memories WHERE text = 'Ann has told Sam many small things since the first day'"
                .to_string();
        assert!(
            common::eventually_async(|| async { count(condensed.clone()).await == 1 }).await,
            "{b}: the summary is kept"
        );
        let left = count(mine.clone()).await;
        let batch = 64;
        assert_eq!(left, max + 1 - batch + 1, "{b}: the oldest {batch} became one");
        assert_eq!(count(format!("{mine} AND id = 'seed-0'")).await, 0, "{b}: the oldest went");
        assert_eq!(count(format!("{mine} AND id = 'seed-{}'", max - 1)).await, 1, "{b}: the newest stay");
        assert_eq!(count(format!("{mine} AND text = 'Ann fixed the radio mast'")).await, 1, "{b}");
    }
}
