//! NPCs that act and feel, over HTTP on the sample world (Sam, with the mock model): a reply's
//! emotion tag is read and kept; an action the model proposes as a tool call is checked against
//! Sam's template, the relationship and the world, then applied in the talk's change or refused
//! with nothing changed (a gated action, an argument the template does not allow, extra
//! arguments, arguments that are not JSON); goals fired by the talk. SQLite and PostgreSQL.

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
