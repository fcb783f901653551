//! The game client's WebSocket (`/ws/experience`, spec §4) on the sample world: two players on two
//! instances (sharing the database and Redis) see each other's collects as `world_update`s whose
//! versions line up, and what they carry adds up; bad input gets the matching `error` and never
//! closes another player's socket; bad credentials close with 1008; `commands_schema` lists what the
//! engine accepts; implausible positions are not trusted for location-bound actions; a reconnecting
//! client resumes with the deltas it missed, without leaving the zone's presence, and a stopping
//! instance closes every socket with 1012 and a hint to resume; a revoked key
//! closes its socket; events lost while Redis restarts are repaired with a fresh view; NPCs speak
//! (`npc_speech`) with their reply's emotion and their goals' lines.

use crate::common;

use common::{start_shared, Fetch, TestServer};
use futures::{SinkExt, StreamExt};
use gaia_core::testing::{database_urls, redis_url, services_required, sqlite_db, unique_redis_prefix};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Near the sample's safe house.
const SAFE_HOUSE: (f64, f64) = (48.8567, 2.3523);

async fn open(s: &TestServer, token: &str, experience: &str) -> Ws {
    let url = format!("{}/ws/experience?token={token}&experience={experience}", s.url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn connect(s: &TestServer, token: &str) -> Ws {
    let mut ws = open(s, token, "safe-house").await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["type"], "connected", "{hello}");
    assert_eq!(hello["experience"], "safe-house");
    ws
}

/// The next JSON frame (skipping pings), failing after 5 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time").unwrap().unwrap();
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => return json!({"type": "closed", "code": c.map(|c| u16::from(c.code))}),
            _ => {}
        }
    }
}

async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Walks to the safe house: the area of interest.
async fn arrive(ws: &mut Ws) -> Value {
    send(ws, json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1, "request_id": "here"})).await;
    let a = next_of(ws, "area_of_interest").await;
    assert_eq!(a["request_id"], "here");
    assert_eq!(a["zone"]["id"], "safe_house", "{a}");
    a
}

fn shelf_items(aoi: &Value) -> Vec<String> {
    aoi["areas"]["main_room"]["spots"]["supply_shelf"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn two_players_on_two_instances_see_each_others_collects() {
    let Some(url) = redis_url() else {
        assert!(!services_required(), "GAIA_TEST_REDIS_URL is required");
        return;
    };
    for db in database_urls().await {
        let b = db.backend;
        let prefix = unique_redis_prefix();
        let db2 = db.alias();
        // The players teleport here: every speed is plausible.
        let mut config = common::test_config();
        config.worlds.gps_max_speed_mps = 1e9;
        let one = start_shared(db, Some(MockConfig::default()), config.clone(), Some((&url, &prefix))).await;
        let two = start_shared(db2, Some(MockConfig::default()), config, Some((&url, &prefix))).await;
        let _v1 = common::with_sample_world(&one).await;
        let _v2 = common::with_sample_world(&two).await;
        // Ann signs in with a JWT, Bob with an API key.
        let (ann, _, _) = one.register("ann@example.com").await;
        let (bob_jwt, _, _) = one.register("bob@example.com").await;
        let (bob, _) = two.api_key(&bob_jwt).await;
        let mut a = connect(&one, &ann).await;
        let mut bws = connect(&two, &bob).await;
        let aa = arrive(&mut a).await;
        let ab = arrive(&mut bws).await;
        assert_eq!(shelf_items(&aa), ["canned_food_1", "canned_food_2"], "{b}");
        assert!(aa["player"]["inventory"].as_array().unwrap().len() == 1, "{b}: the starting bandage");
        let mut ann_version = aa["snapshot_version"].as_i64().unwrap();
        let mut bob_version = ab["snapshot_version"].as_i64().unwrap();

        // Ann collects: her answer names the item; both get the change, each at their own version.
        send(
            &mut a,
            json!({"type": "action", "action": "collect_item", "instance_id": "canned_food_1", "request_id": 7}),
        )
        .await;
        let r = next_of(&mut a, "action_response").await;
        assert_eq!(
            (r["success"].as_bool(), r["item_id"].as_str(), r["request_id"].as_i64()),
            (Some(true), Some("canned_food_1"), Some(7)),
            "{b}: {r}"
        );
        let mine = next_of(&mut a, "world_update").await;
        assert_eq!(mine["version"], "0.4");
        assert_eq!(mine["base_version"].as_i64(), Some(ann_version), "{b}: {mine}");
        let paths: Vec<&str> = mine["changes"].as_array().unwrap().iter().filter_map(|c| c["path"].as_str()).collect();
        assert_eq!(paths, ["player.inventory"], "{b}: her own inventory too: {mine}");
        ann_version = mine["snapshot_version"].as_i64().unwrap();
        let seen = next_of(&mut bws, "world_update").await;
        assert_eq!(seen["base_version"].as_i64(), Some(bob_version), "{b}: {seen}");
        assert_eq!(seen["snapshot_version"].as_i64(), Some(ann_version), "{b}: one sequence for the world");
        let changes = seen["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{b}: only the shelf, not Ann's inventory: {seen}");
        assert_eq!(
            (changes[0]["operation"].as_str(), changes[0]["instance_id"].as_str()),
            (Some("remove"), Some("canned_food_1"))
        );
        assert!(seen["user_id"].as_str().is_some(), "{b}: who did it");
        bob_version = ann_version;

        // Bob collects the other can on his instance; Ann sees it.
        send(&mut bws, json!({"type": "action", "action": "pick up the can of peaches"})).await;
        assert_eq!(next_of(&mut bws, "action_response").await["success"], true, "{b}");
        let seen = next_of(&mut a, "world_update").await;
        assert_eq!(seen["base_version"].as_i64(), Some(ann_version), "{b}: {seen}");
        assert_eq!(seen["changes"][0]["instance_id"], "canned_food_2");
        let own = next_of(&mut bws, "world_update").await;
        assert_eq!(own["base_version"].as_i64(), Some(bob_version), "{b}: {own}");

        // A fresh view agrees: the shelf is empty, each carries one can (and the bandage).
        send(&mut a, json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1})).await;
        let fresh = next_of(&mut a, "area_of_interest").await;
        assert!(shelf_items(&fresh).is_empty(), "{b}: {fresh}");
        assert_eq!(fresh["snapshot_version"], own["snapshot_version"], "{b}");
        let carried = |v: &Value| v["player"]["inventory"].as_array().unwrap().len();
        assert_eq!(carried(&fresh), 2, "{b}");
        send(&mut bws, json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1})).await;
        assert_eq!(carried(&next_of(&mut bws, "area_of_interest").await), 2, "{b}");

        // Each sees the other in the zone's presence, across the instances.
        for ws in [&mut a, &mut bws] {
            let mut count = 0;
            for _ in 0..10 {
                count = next_of(ws, "presence").await["count"].as_u64().unwrap();
                if count == 2 {
                    break;
                }
            }
            assert_eq!(count, 2, "{b}");
        }

        // Walking to the pharmacy (300 m away) is a new zone.
        send(&mut bws, json!({"type": "update_location", "lat": 48.8585, "lng": 2.3552})).await;
        let there = next_of(&mut bws, "area_of_interest").await;
        assert_eq!(there["zone"]["id"], "pharmacy", "{b}: {there}");
        assert!(there["areas"]["back_room"]["spots"]["stock_shelf"]["items"][0]["instance_id"] == "medkit_1", "{b}");
    }
}

#[tokio::test]
async fn bad_input_gets_an_error_and_never_touches_other_players() {
    let s = common::start(sqlite_db(), Some(MockConfig::default())).await;
    let _vault = common::with_sample_world(&s).await;
    let (ann, _, _) = s.register("ann@example.com").await;
    let (bob, _, _) = s.register("bob@example.com").await;

    // Bad credentials: closed with 1008. An unknown experience: an error, then a close.
    for token in ["", "not-a-token", "gaia_sk_0000000000000000"] {
        let mut ws = open(&s, token, "safe-house").await;
        let v = next(&mut ws).await;
        assert_eq!((v["type"].as_str(), v["code"].as_u64()), (Some("closed"), Some(1008)), "{token}: {v}");
    }
    let mut ws = open(&s, &ann, "no-such-world").await;
    assert_eq!(next(&mut ws).await["type"], "error");
    assert_eq!(next(&mut ws).await["type"], "closed");

    let mut a = connect(&s, &ann).await;
    let mut other = connect(&s, &bob).await;
    for (frame, code) in [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ("{}", "missing_type"),
        (r#"{"type": 5}"#, "missing_type"),
        (r#"{"type": "dance"}"#, "unknown_message_type"),
        (r#"{"type": "action"}"#, "missing_action"),
        (r#"{"type": "action", "action": "  "}"#, "missing_action"),
        (r#"{"type": "action", "action": "look", "instance_id": 5}"#, "invalid_json"),
        (r#"{"type": "update_location", "lat": "north"}"#, "missing_coordinates"),
        (r#"{"type": "update_location", "lat": 91, "lng": 0}"#, "missing_coordinates"),
    ] {
        a.send(Message::Text(frame.into())).await.unwrap();
        let v = next(&mut a).await;
        assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some(code)), "{frame}: {v}");
    }
    let long = json!({"type": "action", "action": "x".repeat(1_001)});
    send(&mut a, long).await;
    assert_eq!(next(&mut a).await["code"], "invalid_json");
    // A flood: answered with errors past the rate, never a crash; the other player is served.
    for i in 0..100 {
        send(&mut a, json!({"type": "ping", "request_id": i})).await;
    }
    let mut pongs = 0;
    let mut refused = 0;
    for _ in 0..100 {
        let v = next(&mut a).await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => refused += 1,
            other => panic!("{other:?}: {v}"),
        }
    }
    assert!(pongs >= 20 && refused > 0, "{pongs} pongs, {refused} refused");
    send(&mut other, json!({"type": "ping", "request_id": "still-here"})).await;
    let v = next(&mut other).await;
    assert_eq!((v["type"].as_str(), v["request_id"].as_str()), (Some("pong"), Some("still-here")));
    // A huge frame ends that socket only.
    a.send(Message::Text("x".repeat(100_000).into())).await.ok();
    send(&mut other, json!({"type": "get_commands"})).await;
    let schema = next_of(&mut other, "commands_schema").await;
    assert!(schema["commands"]["collect_item"]["required"].as_array().unwrap().contains(&json!("instance_id")));
    assert!(schema["commands"].get("@").is_none(), "players are not offered admin commands");
}

#[tokio::test]
async fn an_impossible_jump_is_not_trusted_for_location_bound_actions_even_on_a_new_socket() {
    let s = common::start(sqlite_db(), Some(MockConfig::default())).await;
    let _vault = common::with_sample_world(&s).await;
    let (ann, _, _) = s.register("ann@example.com").await;
    let mut a = connect(&s, &ann).await;
    arrive(&mut a).await;
    // 300 m in no time: not used, and collecting is refused until a plausible position comes.
    send(&mut a, json!({"type": "update_location", "lat": 48.8585, "lng": 2.3552})).await;
    let v = next_of(&mut a, "area_of_interest").await;
    assert_eq!((v["zone"]["id"].as_str(), v["position_trusted"].as_bool()), (Some("safe_house"), Some(false)), "{v}");
    send(&mut a, json!({"type": "action", "action": "collect_item", "instance_id": "canned_food_1"})).await;
    let e = next(&mut a).await;
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("not_allowed")), "{e}");
    // Speech (a talk) and a scene's line too, before anything is transcribed or asked of a model.
    let media = s.mock.as_ref().unwrap().media_requests();
    send(
        &mut a,
        json!({"type": "player_speech", "seq": 0, "data": "UklGRg==", "last": true, "target_npc_id": "radio_operator"}),
    )
    .await;
    assert_eq!(next(&mut a).await["code"], "not_allowed");
    send(&mut a, json!({"type": "action", "action": "scene_say", "message": "Anyone?"})).await;
    assert_eq!(next(&mut a).await["code"], "not_allowed");
    assert_eq!(s.mock.as_ref().unwrap().media_requests(), media, "nothing transcribed");
    send(&mut a, json!({"type": "action", "action": "look"})).await;
    assert_eq!(next_of(&mut a, "action_response").await["success"], true, "looking needs no position");
    // A poor accuracy is not trusted either.
    send(&mut a, json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1, "accuracy": 5000})).await;
    assert_eq!(next_of(&mut a, "area_of_interest").await["position_trusted"], false);
    // Back where the player plausibly is: trusted again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&mut a, json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1 + 0.00001, "accuracy": 8}))
        .await;
    assert!(next_of(&mut a, "area_of_interest").await.get("position_trusted").is_none());
    send(&mut a, json!({"type": "action", "action": "collect_item", "instance_id": "canned_food_1"})).await;
    assert_eq!(next_of(&mut a, "action_response").await["success"], true);
    // A new socket does not start the check afresh: 30 km from the last position, a second later,
    // is still a jump.
    drop(a);
    let mut again = connect(&s, &ann).await;
    send(&mut again, json!({"type": "update_location", "lat": SAFE_HOUSE.0 + 0.27, "lng": SAFE_HOUSE.1})).await;
    assert_eq!(next_of(&mut again, "area_of_interest").await["position_trusted"], false);
    // While a few metres from it (within the kept position's rounding) is not.
    send(&mut again, json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1 + 0.00002})).await;
    assert!(next_of(&mut again, "area_of_interest").await.get("position_trusted").is_none());
    let metrics = s.state.metrics().render(0);
    assert!(metrics.contains("gaia_world_gps_suspicious_total{response=\"refuse\"} 3"), "{metrics}");
}

#[tokio::test]
async fn a_reconnecting_client_resumes_with_the_deltas_it_missed() {
    let s = common::start(sqlite_db(), Some(MockConfig::default())).await;
    let _vault = common::with_sample_world(&s).await;
    let (ann, _, _) = s.register("ann@example.com").await;
    let (bob, _, _) = s.register("bob@example.com").await;
    let mut a = connect(&s, &ann).await;
    let mut bws = connect(&s, &bob).await;
    let seen = arrive(&mut a).await;
    arrive(&mut bws).await;
    let version = seen["snapshot_version"].as_i64().unwrap();
    // Ann drops; Bob takes a can meanwhile.
    drop(a);
    send(&mut bws, json!({"type": "action", "action": "take the can of beans"})).await;
    assert_eq!(next_of(&mut bws, "action_response").await["success"], true);
    let now = next_of(&mut bws, "world_update").await["snapshot_version"].as_i64().unwrap();
    // Ann is back with her last version: the delta she missed, not a whole new view.
    let url = format!(
        "{}/ws/experience?token={ann}&experience=safe-house&resume_version={version}",
        s.url.replace("http://", "ws://")
    );
    let mut a = tokio_tungstenite::connect_async(url).await.unwrap().0;
    assert_eq!(next(&mut a).await["type"], "connected");
    let d = next(&mut a).await;
    assert_eq!(d["type"], "world_update", "{d}");
    assert_eq!((d["base_version"].as_i64(), d["snapshot_version"].as_i64()), (Some(version), Some(now)), "{d}");
    assert_eq!(d["changes"][0]["instance_id"], "canned_food_1");
    // Bob never saw her leave the zone: every presence he got lists two players.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        let Ok(v) = tokio::time::timeout(Duration::from_millis(200), next_of(&mut bws, "presence")).await else {
            continue;
        };
        assert_eq!(v["count"], 2, "{v}");
    }
    // A version this instance cannot account for: a fresh view instead.
    let url = format!(
        "{}/ws/experience?token={ann}&experience=safe-house&resume_version=999999",
        s.url.replace("http://", "ws://")
    );
    let mut again = tokio_tungstenite::connect_async(url).await.unwrap().0;
    assert_eq!(next(&mut again).await["type"], "connected");
    assert_eq!(next(&mut again).await["type"], "area_of_interest");
    // The instance stops: every socket is told to come back (1012, "service restart") with its
    // version, not dropped.
    let mut s = s;
    s.shutdown();
    for ws in [&mut again, &mut bws] {
        let v = next_of(ws, "closed").await;
        assert_eq!(v["code"], 1012, "{v}");
    }
}

#[tokio::test]
async fn a_revoked_key_closes_its_socket_and_sockets_per_user_are_capped() {
    let mut config = common::test_config();
    config.server.max_sockets_per_user = 2;
    let s = common::start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let _vault = common::with_sample_world(&s).await;
    let (token, _, _) = s.register("ann@example.com").await;
    let (key, key_id) = s.api_key(&token).await;
    let mut ws = connect(&s, &key).await;
    let _second = connect(&s, &token).await;
    let mut third = open(&s, &token, "safe-house").await;
    let v = next(&mut third).await;
    assert_eq!((v["type"].as_str(), v["code"].as_u64()), (Some("closed"), Some(1013)), "{v}");
    let r = s.http.delete(format!("{}/api/v1/keys/{key_id}", s.url)).bearer_auth(&token).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let v = next(&mut ws).await;
    assert_eq!((v["type"].as_str(), v["code"].as_u64()), (Some("closed"), Some(1008)), "{v}");
}

#[tokio::test]
async fn updates_lost_while_redis_restarts_are_repaired_with_a_fresh_view() {
    let Some(mut redis) = common::OwnRedis::start() else {
        assert!(!services_required(), "redis-server is required to restart Redis in a test");
        return;
    };
    let url = redis.url();
    let db = database_urls().await.pop().expect("a database");
    let b = db.backend;
    let prefix = unique_redis_prefix();
    let db2 = db.alias();
    let one = start_shared(db, Some(MockConfig::default()), common::test_config(), Some((&url, &prefix))).await;
    let two = start_shared(db2, Some(MockConfig::default()), common::test_config(), Some((&url, &prefix))).await;
    let _v1 = common::with_sample_world(&one).await;
    let _v2 = common::with_sample_world(&two).await;
    let (ann, _, _) = one.register("ann@example.com").await;
    let (bob, _, _) = one.register("bob@example.com").await;
    let mut a = connect(&one, &ann).await;
    let mut bws = connect(&two, &bob).await;
    arrive(&mut a).await;
    arrive(&mut bws).await;
    // Redis goes down: Ann's collect does not reach Bob's instance.
    redis.stop();
    send(&mut a, json!({"type": "action", "action": "take the can of beans"})).await;
    assert_eq!(next_of(&mut a, "action_response").await["success"], true, "{b}");
    assert!(redis.spawn().is_some(), "redis restarts");
    // Once the bridge is back, her next change reaches Bob's instance after a hole in the versions:
    // Bob gets a fresh view with both changes, never a delta that does not apply.
    assert!(common::events_cross(&one, &two).await, "{b}: the bridge did not come back");
    send(&mut a, json!({"type": "action", "action": "take the can of peaches"})).await;
    assert_eq!(next_of(&mut a, "action_response").await["success"], true, "{b}");
    let last = next_of(&mut a, "world_update").await["snapshot_version"].as_i64().unwrap();
    loop {
        let v = next(&mut bws).await;
        match v["type"].as_str() {
            Some("world_update") => panic!("{b}: a delta across a hole: {v}"),
            Some("area_of_interest") => {
                assert!(shelf_items(&v).is_empty(), "{b}: {v}");
                assert!(v["snapshot_version"].as_i64() >= Some(last), "{b}: {v}");
                break;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn npcs_speak_with_their_emotion_and_their_goals_lines() {
    let s = common::start(sqlite_db(), Some(MockConfig::default())).await;
    let _vault = common::with_sample_world(&s).await;
    let (token, _, _) = s.register("ann@example.com").await;
    let mut ws = connect(&s, &token).await;
    arrive(&mut ws).await;

    // A talk: the answer, then Sam's speech with the reply's emotion.
    s.mock.as_ref().unwrap().push_reply("[curious 0.6] Say again? Signal's weak.");
    send(&mut ws, json!({"type": "action", "action": "talk", "target_npc_id": "radio_operator", "message": "Hello?"}))
        .await;
    let r = next_of(&mut ws, "action_response").await;
    assert_eq!(r["success"], true, "{r}");
    let speech = next_of(&mut ws, "npc_speech").await;
    assert_eq!(
        (speech["npc_id"].as_str(), speech["text"].as_str(), speech["voice"].as_str()),
        (Some("radio_operator"), Some("Say again? Signal's weak."), Some("calm_low")),
        "{speech}"
    );
    assert_eq!(speech["emotion"], json!({"name": "curious", "intensity": 0.6}), "{speech}");

    // Walking back in where Sam is: his goal's line, with its emotion, no model call.
    let calls = s.mock.as_ref().unwrap().requests();
    send(&mut ws, json!({"type": "action", "action": "go roof"})).await;
    assert_eq!(next_of(&mut ws, "action_response").await["success"], true);
    send(&mut ws, json!({"type": "action", "action": "go main_room"})).await;
    let r = next_of(&mut ws, "action_response").await;
    assert_eq!(r["metadata"]["npc_reactions"][0]["goal"], "warn_newcomer", "{r}");
    let speech = next_of(&mut ws, "npc_speech").await;
    assert!(speech["text"].as_str().unwrap().starts_with("Door."), "{speech}");
    assert_eq!(speech["emotion"]["name"], "afraid", "{speech}");
    assert_eq!(s.mock.as_ref().unwrap().requests(), calls, "goals fire without the model");
}

#[tokio::test]
async fn with_voice_npcs_lines_come_with_audio_and_timed_mouth_shapes() {
    let files = tempfile::tempdir().unwrap();
    let mut config = common::test_config();
    config.assets.speech_model = Some("openai/tts-1".into());
    config.assets.store = files.path().display().to_string();
    let s = common::start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let _vault = common::with_sample_world(&s).await;
    let (token, _, _) = s.register("ann@example.com").await;
    let url =
        format!("{}/ws/experience?token={token}&experience=safe-house&voice=true", s.url.replace("http://", "ws://"));
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    assert_eq!(next(&mut ws).await["type"], "connected");
    arrive(&mut ws).await;

    let answer = "Copy that, friend. The river group answers at dusk. Keep the channel clear.";
    s.mock.as_ref().unwrap().push_reply(format!("[happy 0.7] {answer}"));
    send(&mut ws, json!({"type": "action", "action": "talk", "target_npc_id": "radio_operator", "message": "Hello?"}))
        .await;
    // The answer streams as it is written (the emotion tag left out), before the response.
    let mut streamed = String::new();
    let mut frames = Vec::new();
    let line_id = loop {
        let v = next(&mut ws).await;
        match v["type"].as_str() {
            Some("npc_speech_delta") => streamed.push_str(v["delta"].as_str().unwrap()),
            Some("action_response") => {
                assert_eq!(v["success"], true, "{v}");
            }
            Some("npc_speech") => break v["line_id"].as_str().expect("the streamed line's id").to_string(),
            _ => frames.push(v),
        }
    };
    assert_eq!(streamed, answer, "the deltas make the answer");
    // Spoken sentence by sentence: each with its mouth shapes, timed over its audio, then the audio.
    let mut sentences = Vec::new();
    let mut frames = frames.into_iter();
    while sentences.len() < 3 {
        let v = match frames.next() {
            Some(v) => v,
            None => next(&mut ws).await,
        };
        if v["type"] != "npc_visemes" {
            assert_ne!(v["type"], "npc_audio", "audio after its mouth shapes: {v}");
            continue;
        }
        assert_ne!(v["line_id"], line_id, "each sentence is a line of its own");
        assert_eq!(v["answer_id"], line_id.as_str(), "of the streamed answer: {v}");
        sentences.push(v["text"].as_str().unwrap().to_string());
        let line = v["line_id"].as_str().unwrap().to_string();
        let duration = v["duration_ms"].as_u64().expect("a WAV's length is known");
        let shapes = v["visemes"].as_array().unwrap();
        assert!(shapes.len() > 5, "{v}");
        let starts: Vec<u64> = shapes.iter().map(|x| x["start_ms"].as_u64().unwrap()).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]) && *starts.last().unwrap() <= duration + 1, "{v}");
        assert!(shapes.iter().all(|x| gaia_assets::visemes::VISEMES.contains(&x["viseme"].as_str().unwrap())), "{v}");
        let mut audio = Vec::new();
        for seq in 0.. {
            let a = match frames.next() {
                Some(v) => v,
                None => next_of(&mut ws, "npc_audio").await,
            };
            assert_eq!((a["line_id"].as_str(), a["seq"].as_u64()), (Some(line.as_str()), Some(seq)), "{a}");
            use base64::Engine as _;
            audio.extend(base64::engine::general_purpose::STANDARD.decode(a["data"].as_str().unwrap()).unwrap());
            if a["last"] == true {
                break;
            }
        }
        let secs = gaia_providers::media::wav_seconds(&audio).expect("the frames make one WAV file");
        assert_eq!((secs * 1000.0).round() as u64, duration);
    }
    assert_eq!(
        sentences,
        ["Copy that, friend.", "The river group answers at dusk.", "Keep the channel clear."],
        "in order"
    );
    // Spoken as the player's speech asset (metered and priced like every one).
    let assets: Value = s.http.get(format!("{}/api/v1/assets", s.url)).bearer_auth(&token).fetch_json().await;
    assert!(assets["assets"].as_array().unwrap().iter().any(|a| a["kind"] == "speech"), "{assets}");
}

/// Sends `audio` as `player_speech` frames (`extra` added to each).
async fn speak_audio(ws: &mut Ws, audio: &[u8], extra: Value) {
    use base64::Engine as _;
    let chunks: Vec<&[u8]> = audio.chunks(8 * 1024).collect();
    for (seq, chunk) in chunks.iter().enumerate() {
        let mut m = json!({"type": "player_speech", "seq": seq, "last": seq + 1 == chunks.len(), "format": "wav",
                           "data": base64::engine::general_purpose::STANDARD.encode(chunk)});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        send(ws, m).await;
    }
}

#[tokio::test]
async fn players_speak_to_npcs_and_in_scenes_on_the_socket() {
    let files = tempfile::tempdir().unwrap();
    let mut config = common::test_config();
    config.assets.speech_model = Some("openai/tts-1".into());
    config.assets.transcription_model = Some("openai/whisper-1".into());
    config.assets.store = files.path().display().to_string();
    let s = common::start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let _vault = common::with_sample_world(&s).await;
    let (ann, _, _) = s.register("ann@example.com").await;
    let (bob, _, _) = s.register("bob@example.com").await;
    // What Ann says, spoken (the mock's speech carries its text, which its transcription reads).
    let spoken = |text: &'static str| {
        let req = s
            .http
            .post(format!("{}/v1/audio/speech", s.url))
            .bearer_auth(&ann)
            .json(&json!({"model": "openai/tts-1", "voice": "alloy", "input": text, "response_format": "wav"}));
        async move { req.send().await.unwrap().bytes().await.unwrap().to_vec() }
    };
    let question = spoken("Sam, is the river group on the air tonight?").await;
    assert!(question.len() > 8 * 1024, "several frames: {}", question.len());
    let mut a = connect(&s, &ann).await;
    arrive(&mut a).await;

    // To Sam: the transcript, then the talk's answer and Sam's line.
    speak_audio(&mut a, &question, json!({"target_npc_id": "radio_operator", "request_id": "q1"})).await;
    let t = next_of(&mut a, "player_transcript").await;
    assert_eq!(
        (t["text"].as_str(), t["request_id"].as_str()),
        (Some("Sam, is the river group on the air tonight?"), Some("q1"))
    );
    let r = next_of(&mut a, "action_response").await;
    assert_eq!((r["success"].as_bool(), r["request_id"].as_str()), (Some(true), Some("q1")), "{r}");
    let asked = s.mock.as_ref().unwrap().last_request().unwrap();
    let said = asked["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(said.contains("river group"), "the model got what Ann said: {said}");
    assert_eq!(next_of(&mut a, "npc_speech").await["npc_id"], "radio_operator");
    // Transcribed as Ann's asset (metered like every one).
    let assets: Value = s.http.get(format!("{}/api/v1/assets", s.url)).bearer_auth(&ann).fetch_json().await;
    assert!(assets["assets"].as_array().unwrap().iter().any(|a| a["kind"] == "transcription"), "{assets}");

    // Frames out of order, or not audio: an error, the utterance dropped, the socket open.
    send(&mut a, json!({"type": "player_speech", "seq": 3, "data": "AAAA", "request_id": "bad"})).await;
    let e = next_of(&mut a, "error").await;
    assert_eq!((e["code"].as_str(), e["request_id"].as_str()), (Some("invalid_json"), Some("bad")), "{e}");
    send(&mut a, json!({"type": "player_speech", "seq": 0, "data": "%%%", "last": true})).await;
    assert_eq!(next_of(&mut a, "error").await["code"], "invalid_json");

    // A scene on the roof: Bob, there too, sees it start and hears Ann's spoken line answered.
    let mut b = connect(&s, &bob).await;
    arrive(&mut b).await;
    for ws in [&mut a, &mut b] {
        send(ws, json!({"type": "action", "action": "go roof"})).await;
        assert_eq!(next_of(ws, "action_response").await["success"], true);
    }
    send(&mut a, json!({"type": "action", "action": "start_scene"})).await;
    assert_eq!(next_of(&mut a, "action_response").await["success"], true);
    let scene_update = |v: &Value| {
        v["changes"].as_array().into_iter().flatten().find(|c| c["path"] == "scene").map(|c| c["item"].clone())
    };
    let started = loop {
        let u = next_of(&mut b, "world_update").await;
        if let Some(item) = scene_update(&u) {
            break item;
        }
    };
    assert_eq!(
        (started["section"].as_str(), started["lines"].as_array().unwrap().len()),
        (Some("dusk"), 3),
        "{started}"
    );
    let line = spoken("Dana, what moves down there?").await;
    speak_audio(&mut a, &line, json!({})).await;
    assert_eq!(next_of(&mut a, "player_transcript").await["text"], "Dana, what moves down there?");
    let r = next_of(&mut a, "action_response").await;
    assert_eq!((r["action"].as_str(), r["metadata"]["npc_id"].as_str()), (Some("scene_say"), Some("medic")), "{r}");
    let heard = loop {
        let u = next_of(&mut b, "world_update").await;
        if let Some(item) = scene_update(&u) {
            break item;
        }
    };
    let lines = heard["lines"].as_array().unwrap();
    assert_eq!(
        (lines[0]["speaker"].as_str(), lines[0]["text"].as_str()),
        (Some("player"), Some("Dana, what moves down there?"))
    );
    assert_eq!(lines[1]["speaker"], "medic", "{heard}");
}
