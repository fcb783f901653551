//! Generated assets over HTTP, on SQLite and PostgreSQL: images, speech and transcriptions with their
//! costs and sell prices, privacy and sharing, signed URLs and range requests, hard budgets before the
//! vendor call, 3D jobs (completion, cancellation, a restart while pending), and the report.

use crate::common;

use common::{eventually_async, named_events, start_with, TestServer};
use gaia_core::testing::database_urls;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use gaia_providers::{MeshyConfig, MeshyProvider};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn config(dir: &std::path::Path) -> Config {
    let mut c = common::test_config();
    c.assets.store = dir.display().to_string();
    c.assets.poll_interval_ms = 50;
    c.assets.max_image_side = 512;
    c.assets.sell_prices.insert("speech".into(), 0.01);
    c
}

/// An administrator's key, with the prices of the tests recorded.
async fn admin_with_prices(s: &TestServer) -> String {
    let (token, _, id) = s.register("asset-admin@example.com").await;
    s.state.storage().set_admin(&id, true).await.unwrap();
    let (key, _) = s.api_key(&token).await;
    let prices = [
        json!({"kind": "cost", "provider": "openai", "model": "mock-image", "unit": "image", "usd_per_unit": 0.04}),
        json!({"kind": "cost", "provider": "openai", "model": "mock-image", "unit": "image:1024x1024:hd", "usd_per_unit": 0.08}),
        json!({"kind": "cost", "provider": "openai", "model": "tts-1", "unit": "character", "usd_per_unit": 0.001}),
        json!({"kind": "cost", "provider": "openai", "model": "whisper-1", "unit": "second", "usd_per_unit": 0.0001}),
        json!({"kind": "cost", "provider": "meshy", "model": "meshy-5", "unit": "credit", "usd_per_unit": 0.02}),
        json!({"kind": "sell", "unit": "image", "usd_per_unit": 0.5}),
        json!({"kind": "sell", "unit": "model_3d", "usd_per_unit": 2.0}),
    ];
    for p in prices {
        let r = s.post("/api/v1/assets/prices", &key).json(&p).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    key
}

async fn user(s: &TestServer, email: &str) -> (String, String) {
    let (token, _, id) = s.register(email).await;
    let (key, _) = s.api_key(&token).await;
    (key, id)
}

async fn generate(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    let r = s.post("/api/v1/assets/generate", key).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn images_speech_and_transcriptions_are_priced_stored_and_reported() {
    for db in database_urls().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start_with(db, Some(MockConfig::default()), config(dir.path())).await;
        let b = s.backend;
        let admin = admin_with_prices(&s).await;
        let (key, user_id) = user(&s, "artist@example.com").await;

        // The estimate, then the generation at the same price.
        let ask = json!({"type": "image", "prompt": "a brass lantern", "model": "openai/mock-image",
                         "options": {"n": 2, "size": "1024x1024", "quality": "hd"}});
        let est: Value = s.post("/api/v1/assets/estimate", &key).json(&ask).send().await.unwrap().json().await.unwrap();
        assert!(close(est["cost_usd"].as_f64().unwrap(), 0.16), "{b}: {est}");
        assert_eq!(est["priced_unit"], "image:1024x1024:hd");
        assert!(close(est["revenue_usd"].as_f64().unwrap(), 1.0) && close(est["margin_usd"].as_f64().unwrap(), 0.84));
        let small = json!({"type": "image", "prompt": "a brass lantern", "model": "openai/mock-image",
                           "options": {"n": 2, "size": "256x256"}});
        let (status, v) = generate(&s, &key, small).await;
        assert_eq!(status, 201, "{b}: {v}");
        let assets = v["assets"].as_array().unwrap();
        assert_eq!(assets.len(), 2);
        let img = &assets[0];
        assert_eq!((img["status"].as_str(), img["kind"].as_str()), (Some("succeeded"), Some("image")));
        assert!(close(img["cost_usd"].as_f64().unwrap(), 0.04) && close(img["revenue_usd"].as_f64().unwrap(), 0.5));
        assert_eq!((img["options"]["width"].as_u64(), img["options"]["height"].as_u64()), (Some(256), Some(256)));
        assert!(img.get("object_key").is_none(), "store keys stay private");
        let id = img["id"].as_str().unwrap();
        let r = s.get(img["content_url"].as_str().unwrap(), &key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
        let r = s.get(img["thumbnail_url"].as_str().unwrap(), &key).send().await.unwrap();
        let thumb = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(thumb.width().max(thumb.height()), 256, "thumbnail_side");

        // A larger image than `max_image_side` is stored scaled down.
        let big =
            json!({"type": "image", "prompt": "a map", "model": "openai/mock-image", "options": {"size": "1000x500"}});
        let (_, v) = generate(&s, &key, big).await;
        assert_eq!(v["assets"][0]["options"]["width"], 512, "{b}: {v}");

        // Speech through the compatible endpoint, then its transcription.
        let r = s
            .post("/v1/audio/speech", &key)
            .json(&json!({"model": "openai/tts-1", "voice": "alloy", "input": "Halt, traveller", "response_format": "wav"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        assert_eq!(r.headers()["content-type"], "audio/wav");
        let speech_id = r.headers()["x-gaia-asset-id"].to_str().unwrap().to_string();
        let audio = r.bytes().await.unwrap();
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(audio.to_vec()).file_name("npc.wav"))
            .text("model", "openai/whisper-1");
        let r = s.post("/v1/audio/transcriptions", &key).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["text"], "Halt, traveller");
        assert_eq!(t["usage"]["seconds"], 1);
        let speech: Value =
            s.get(&format!("/api/v1/assets/{speech_id}"), &key).send().await.unwrap().json().await.unwrap();
        assert!(close(speech["cost_usd"].as_f64().unwrap(), 0.015), "15 characters at 0.001: {speech}");
        assert!(close(speech["revenue_usd"].as_f64().unwrap(), 0.01), "the configured sell price");

        // Every generation is metered as usage, so budgets and usage reports see it.
        s.state.usage().flush().await;
        let text = s.get("/api/v1/usage/export", &key).send().await.unwrap().text().await.unwrap();
        for endpoint in ["images", "speech", "transcription"] {
            assert!(text.contains(&format!(",{endpoint},")), "{b}: {endpoint} in {text}");
        }

        // The report: by type, with cost, revenue and margin; as CSV; everyone's only for admins.
        let r: Value = s.get("/api/v1/assets/report", &key).send().await.unwrap().json().await.unwrap();
        let image_row = r["rows"].as_array().unwrap().iter().find(|r| r["key"] == "image").unwrap().clone();
        assert_eq!(image_row["assets"], 3, "{b}: {r}");
        assert!(close(image_row["cost_usd"].as_f64().unwrap(), 0.12));
        assert!(close(image_row["revenue_usd"].as_f64().unwrap(), 1.5));
        assert!(close(image_row["margin_usd"].as_f64().unwrap(), 1.38));
        let csv =
            s.get("/api/v1/assets/report?format=csv&group_by=model", &key).send().await.unwrap().text().await.unwrap();
        assert!(csv.starts_with("model,assets,failed,units,cost_usd,revenue_usd,margin_usd\n"), "{csv}");
        assert!(csv.contains("openai/mock-image,3,0,3.000,0.120000,1.500000,1.380000"), "{csv}");
        let r = s.get("/api/v1/assets/report?user_id=*", &key).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let r: Value =
            s.get("/api/v1/assets/report?user_id=*&group_by=user", &admin).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["rows"][0]["key"], user_id.as_str());

        // Bad requests are 400s that name the problem, and cost nothing.
        for (body, says) in [
            (json!({"type": "image", "prompt": "", "model": "openai/mock-image"}), "prompt"),
            (json!({"type": "image", "prompt": "x", "model": "openai/mock-image", "options": {"n": 11}}), "`n`"),
            (json!({"type": "image", "prompt": "x", "model": "openai/mock-image", "options": {"size": "big"}}), "size"),
            (json!({"type": "image", "prompt": "x", "model": "openai/mock-image", "options": {"colour": 1}}), "colour"),
            (json!({"type": "speech", "prompt": "x".repeat(4097), "model": "openai/tts-1"}), "4096"),
            (json!({"type": "speech", "prompt": "x", "model": "openai/tts-1", "options": {"format": "exe"}}), "format"),
            (json!({"type": "image", "prompt": "x"}), "assets.image_model"),
            (json!({"prompt": "x"}), "type"),
        ] {
            let (status, v) = generate(&s, &key, body).await;
            assert_eq!(status, 400, "{b}: {v}");
            assert!(v["detail"].as_str().unwrap().contains(says), "{says}: {v}");
        }
        // A provider failure is recorded as a failed asset and answered with its status.
        let (status, _) =
            generate(&s, &key, json!({"type": "image", "prompt": "x", "model": "openai/mock-error-503"})).await;
        assert_eq!(status, 502, "an upstream failure is a bad gateway");
        let list: Value = s.get("/api/v1/assets?type=image", &key).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["assets"][0]["status"], "failed", "{b}: {list}");
        // A group of failures only is reported too (no revenue, no cost).
        let r = s.get("/api/v1/assets/report?group_by=model", &key).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let r: Value = r.json().await.unwrap();
        let failed =
            r["rows"].as_array().unwrap().iter().find(|r| r["key"] == "openai/mock-error-503").unwrap().clone();
        assert_eq!((failed["assets"].as_u64(), failed["failed"].as_u64()), (Some(1), Some(1)), "{r}");
        assert_eq!(failed["revenue_usd"].as_f64(), Some(0.0));

        // Deleting removes the row and the files.
        let r = s.http.delete(format!("{}/api/v1/assets/{id}", s.url)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(s.get(&format!("/api/v1/assets/{id}"), &key).send().await.unwrap().status(), 404);
        let files = walk(dir.path());
        assert!(!files.iter().any(|f| f.contains(id)), "{files:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn assets_are_private_until_shared_and_signed_urls_cannot_be_bent() {
    for db in database_urls().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start_with(db, Some(MockConfig::default()), config(dir.path())).await;
        let b = s.backend;
        let (alice, _) = user(&s, "alice-assets@example.com").await;
        let (bob, bob_id) = user(&s, "bob-assets@example.com").await;
        let (_, v) = generate(
            &s,
            &alice,
            json!({"type": "speech", "prompt": "a secret", "model": "openai/tts-1",
                                                 "options": {"format": "wav"}}),
        )
        .await;
        let id = v["assets"][0]["id"].as_str().unwrap().to_string();
        let (_, v) = generate(
            &s,
            &alice,
            json!({"type": "image", "prompt": "x", "model": "openai/mock-image",
                                                 "options": {"size": "64x64"}}),
        )
        .await;
        let other = v["assets"][0]["id"].as_str().unwrap().to_string();

        // Bob sees nothing of Alice's: every route is a 404, as for an asset that does not exist.
        for path in [
            format!("/api/v1/assets/{id}"),
            format!("/api/v1/assets/{id}/content"),
            format!("/api/v1/assets/{id}/events"),
        ] {
            assert_eq!(s.get(&path, &bob).send().await.unwrap().status(), 404, "{b}: {path}");
        }
        for path in [format!("/api/v1/assets/{id}/url"), format!("/api/v1/assets/{id}/cancel")] {
            assert_eq!(s.post(&path, &bob).send().await.unwrap().status(), 404, "{b}: {path}");
        }
        let r = s.http.delete(format!("{}/api/v1/assets/{id}", s.url)).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let mine: Value = s.get("/api/v1/assets", &bob).send().await.unwrap().json().await.unwrap();
        assert_eq!(mine["assets"].as_array().unwrap().len(), 0);
        // A viewer reads but makes nothing, on any route (the compatible ones too).
        let (viewer, viewer_id) = user(&s, "viewer-assets@example.com").await;
        s.state.rbac().await.grant(None, &viewer_id, "viewer", None, None).await.unwrap();
        let r = s
            .post("/v1/audio/speech", &viewer)
            .json(&json!({"model": "openai/tts-1", "voice": "alloy", "input": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{b}");
        let (status, _) =
            generate(&s, &viewer, json!({"type": "speech", "prompt": "hi", "model": "openai/tts-1"})).await;
        assert_eq!(status, 403);
        // Bob cannot share what is not his.
        let r =
            s.post("/api/v1/rbac/shares", &bob).json(&json!({"asset_id": id, "user_id": bob_id})).send().await.unwrap();
        assert_eq!(r.status(), 404);

        // Alice shares it: Bob reads it, and still cannot delete it.
        let r = s
            .post("/api/v1/rbac/shares", &alice)
            .json(&json!({"asset_id": id, "user_id": bob_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{b}: {}", r.text().await.unwrap());
        assert!(
            eventually_async(|| async {
                s.get(&format!("/api/v1/assets/{id}/content"), &bob).send().await.unwrap().status() == 200
            })
            .await
        );
        let r = s.http.delete(format!("{}/api/v1/assets/{id}", s.url)).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(r.status(), 404, "read access only");

        // Range requests, for audio and models.
        let full = s.get(&format!("/api/v1/assets/{id}/content"), &alice).send().await.unwrap().bytes().await.unwrap();
        let r =
            s.get(&format!("/api/v1/assets/{id}/content"), &alice).header("range", "bytes=4-11").send().await.unwrap();
        assert_eq!(r.status(), 206, "{b}");
        assert_eq!(r.headers()["content-range"], format!("bytes 4-11/{}", full.len()).as_str());
        assert_eq!(r.headers()["accept-ranges"], "bytes");
        assert_eq!(r.bytes().await.unwrap(), full.slice(4..12));
        let r = s
            .get(&format!("/api/v1/assets/{id}/content"), &alice)
            .header("range", "bytes=99999999-")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416);
        assert_eq!(r.headers()["content-range"], format!("bytes */{}", full.len()).as_str());

        // A signed URL serves without credentials, until it expires; nothing about it can be changed.
        let signed: Value = s
            .post(&format!("/api/v1/assets/{id}/url"), &alice)
            .json(&json!({"ttl_secs": 60}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = signed["url"].as_str().unwrap().to_string();
        let r = s.http.get(format!("{}{url}", s.url)).header("range", "bytes=0-3").send().await.unwrap();
        assert_eq!(r.status(), 206, "{b}: {url}");
        assert_eq!(&r.bytes().await.unwrap()[..], b"RIFF");
        let expires = signed["expires"].as_i64().unwrap();
        assert!(expires <= chrono::Utc::now().timestamp() + 60);
        let tampered = [
            url.replace(&id, &other),
            url.replace("variant=file", "variant=thumbnail"),
            url.replace(&format!("expires={expires}"), &format!("expires={}", expires + 3600)),
            url.replace("&sig=", "&sig=00"),
            format!("/media/{id}"),
        ];
        for t in tampered {
            assert_eq!(s.http.get(format!("{}{t}", s.url)).send().await.unwrap().status(), 403, "{b}: {t}");
        }
        let past = chrono::Utc::now().timestamp() - 1;
        let stale = s.state.assets().sign_url(&id, false, None).url.replace("expires=", "x=");
        assert_eq!(s.http.get(format!("{}{stale}", s.url)).send().await.unwrap().status(), 403);
        let sig = gaia_assets::Signer::new(s.state.config().asset_signing_key().unwrap()).sign(&id, "file", past);
        let r = s.http.get(format!("{}/media/{id}?variant=file&expires={past}&sig={sig}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 403, "expired");
        // Asking for a longer life than the server allows gets the server's limit.
        let long: Value = s
            .post(&format!("/api/v1/assets/{id}/url"), &alice)
            .json(&json!({"ttl_secs": 10_000_000}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(long["expires"].as_i64().unwrap() <= chrono::Utc::now().timestamp() + 3600);

        // Erasing the account deletes the files too.
        let me: Value = s.get("/api/v1/rbac/me", &alice).send().await.unwrap().json().await.unwrap();
        let email = me["email"].as_str().unwrap_or("alice-assets@example.com").to_string();
        let r = s
            .http
            .delete(format!("{}/api/v1/me", s.url))
            .bearer_auth(&alice)
            .json(&json!({"confirm": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{b}");
        assert!(walk(dir.path()).is_empty(), "{:?}", walk(dir.path()));
    }
}

#[tokio::test]
async fn a_hard_budget_stops_a_generation_before_the_vendor_is_called() {
    use gaia_core::storage::{BudgetPeriod, LimitScope, NewBudget};
    for db in database_urls().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start_with(db, Some(MockConfig::default()), config(dir.path())).await;
        let b = s.backend;
        admin_with_prices(&s).await;
        let (key, user_id) = user(&s, "thrifty@example.com").await;
        let budget = NewBudget {
            scope: LimitScope::User,
            subject_id: user_id,
            period: BudgetPeriod::Daily,
            limit_usd: 0.05,
            hard: true,
        };
        s.state.storage().create_budget(&budget, None).await.unwrap();
        let ask =
            json!({"type": "image", "prompt": "a coin", "model": "openai/mock-image", "options": {"size": "64x64"}});
        let (status, _) = generate(&s, &key, ask.clone()).await;
        assert_eq!(status, 201, "{b}");
        s.state.usage().flush().await;
        let mock = s.mock.as_ref().unwrap();
        let before = mock.media_requests();
        // 0.04 spent, 0.04 more would pass 0.05: refused, and the vendor never hears of it.
        let (status, v) = generate(&s, &key, ask.clone()).await;
        assert_eq!(status, 402, "{b}: {v}");
        let r = s
            .post("/v1/images/generations", &key)
            .json(&json!({"model": "openai/mock-image", "prompt": "a coin", "size": "64x64"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 402);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "insufficient_quota");
        assert_eq!(mock.media_requests(), before, "no vendor call after the refusal");
    }
}

fn with_meshy(s: &TestServer) {
    let mock = s.mock.as_ref().unwrap();
    let mut c = MeshyConfig::new(mock.base_url(), Some("msy-test".into()));
    c.timeout = Duration::from_secs(5);
    s.state.providers().register(Arc::new(MeshyProvider::new(c)));
}

async fn asset(s: &TestServer, key: &str, id: &str) -> Value {
    s.get(&format!("/api/v1/assets/{id}"), key).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn model_3d_jobs_complete_can_be_cancelled_and_survive_a_restart() {
    for db in database_urls().await {
        let dir = tempfile::tempdir().unwrap();
        let db2 = db.alias();
        // The first server polls once an hour: it stands for one that stopped with the job pending.
        let mut slow = config(dir.path());
        slow.assets.poll_interval_ms = 3_600_000;
        let first = start_with(db, Some(MockConfig::default()), slow).await;
        with_meshy(&first);
        let b = first.backend;
        admin_with_prices(&first).await;
        let (key, _) = user(&first, "modeller@example.com").await;
        let mock = first.mock.as_ref().unwrap();

        // A job answers at once with a pending asset, its cost known (the vendor bills on creation).
        mock.set_model_3d_duration(Duration::from_millis(600));
        let (status, v) =
            generate(&first, &key, json!({"type": "model_3d", "prompt": "a wooden chest", "model": "meshy/meshy-5"}))
                .await;
        assert_eq!(status, 202, "{b}: {v}");
        let job = v["assets"][0].clone();
        assert_eq!(job["status"], "pending");
        assert!(close(job["cost_usd"].as_f64().unwrap(), 0.1), "5 credits at 0.02: {job}");
        let id = job["id"].as_str().unwrap().to_string();

        // Restarted: the second server resumes the job and finishes it.
        let second = start_with(db2, None, config(dir.path())).await;
        second.state.providers().register(first.state.providers().get("meshy").unwrap());
        let done = eventually_async(|| async { asset(&second, &key, &id).await["status"] == "succeeded" }).await;
        assert!(done, "{b}: {}", asset(&second, &key, &id).await);
        let a = asset(&second, &key, &id).await;
        assert_eq!((a["progress"].as_u64(), a["media_type"].as_str()), (Some(100), Some("model/gltf-binary")));
        let model =
            second.get(&format!("/api/v1/assets/{id}/content"), &key).send().await.unwrap().bytes().await.unwrap();
        assert!(model.starts_with(b"glTF"));
        assert!(a["thumbnail_url"].is_string(), "the preview became a thumbnail: {a}");

        // Progress over SSE, to the end.
        mock.set_model_3d_duration(Duration::from_millis(400));
        let (_, v) =
            generate(&second, &key, json!({"type": "model_3d", "prompt": "a lamp post", "model": "meshy/meshy-5"}))
                .await;
        let id2 = v["assets"][0]["id"].as_str().unwrap().to_string();
        let body =
            second.get(&format!("/api/v1/assets/{id2}/events"), &key).send().await.unwrap().text().await.unwrap();
        let events = named_events(&body);
        assert!(events.len() >= 2, "{b}: {body}");
        assert_eq!(events.last().unwrap().1["status"], "succeeded", "{body}");

        // A failed task fails its asset, with the vendor's reason, and its cost stays billed.
        let (_, v) = generate(
            &second,
            &key,
            json!({"type": "model_3d", "prompt": "something to fail", "model": "meshy/meshy-5"}),
        )
        .await;
        let id3 = v["assets"][0]["id"].as_str().unwrap().to_string();
        assert!(eventually_async(|| async { asset(&second, &key, &id3).await["status"] == "failed" }).await);
        assert!(asset(&second, &key, &id3).await["error"].as_str().unwrap().contains("could not model"));

        // Cancelled while it runs: at the vendor too; a second cancel is a conflict.
        mock.set_model_3d_duration(Duration::from_secs(600));
        let (_, v) =
            generate(&second, &key, json!({"type": "model_3d", "prompt": "a dragon", "model": "meshy/meshy-5"})).await;
        let id4 = v["assets"][0]["id"].as_str().unwrap().to_string();
        let tasks = mock.model_3d_tasks();
        let r = second.post(&format!("/api/v1/assets/{id4}/cancel"), &key).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "canceled");
        assert_eq!(mock.model_3d_tasks(), tasks - 1, "deleted at the vendor");
        assert_eq!(second.post(&format!("/api/v1/assets/{id4}/cancel"), &key).send().await.unwrap().status(), 409);

        // The report counts the failed and cancelled jobs, their cost, and revenue only of the made one.
        let r: Value =
            second.get("/api/v1/assets/report?type=model_3d", &key).send().await.unwrap().json().await.unwrap();
        let row = &r["rows"][0];
        assert_eq!((row["assets"].as_u64(), row["failed"].as_u64()), (Some(4), Some(2)), "{b}: {r}");
        assert!(close(row["cost_usd"].as_f64().unwrap(), 0.4));
        assert!(close(row["revenue_usd"].as_f64().unwrap(), 4.0), "two made at 2.0: {r}");
        drop(first);
    }
}

#[tokio::test]
async fn assets_live_in_an_s3_compatible_bucket() {
    let Some(s3) = gaia_core::testing::s3_url() else { return };
    let bucket = format!("gaia-{}", uuid::Uuid::new_v4().simple());
    assert!(reqwest::Client::new().put(format!("{s3}/{bucket}")).send().await.unwrap().status().is_success());
    for db in database_urls().await {
        let mut c = common::test_config();
        c.assets.store = format!("s3://{bucket}/{}", db.backend);
        c.assets.s3_endpoint = Some(s3.clone());
        c.assets.s3_allow_http = true;
        c.assets.s3_access_key_id = Some("test".into());
        c.assets.s3_secret_access_key = Some("test".into());
        let s = start_with(db, Some(MockConfig::default()), c).await;
        let b = s.backend;
        let (key, _) = user(&s, "s3-user@example.com").await;
        let (status, v) = generate(
            &s,
            &key,
            json!({"type": "speech", "prompt": "From the bucket", "model": "openai/tts-1",
                                                    "options": {"format": "mp3"}}),
        )
        .await;
        assert_eq!(status, 201, "{b}: {v}");
        let id = v["assets"][0]["id"].as_str().unwrap().to_string();
        let r = s.get(&format!("/api/v1/assets/{id}/content"), &key).header("range", "bytes=0-2").send().await.unwrap();
        assert_eq!(r.status(), 206, "{b}");
        assert_eq!(&r.bytes().await.unwrap()[..], b"ID3");
        let listing =
            reqwest::get(format!("{s3}/{bucket}?list-type=2&prefix={b}/")).await.unwrap().text().await.unwrap();
        assert!(listing.contains(&id), "{listing}");
        let r = s.http.delete(format!("{}/api/v1/assets/{id}", s.url)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let listing =
            reqwest::get(format!("{s3}/{bucket}?list-type=2&prefix={b}/")).await.unwrap().text().await.unwrap();
        assert!(!listing.contains(&id), "deleted from the bucket: {listing}");
    }
}

#[tokio::test]
async fn models_make_assets_through_the_asset_tools() {
    use gaia_mcp::ToolSource;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.assets.image_model = Some("openai/mock-image".into());
    c.assets.speech_model = Some("openai/tts-1".into());
    let s = start_with(gaia_core::testing::sqlite_db(), Some(MockConfig::default()), c).await;
    let (token, _, id) = s.register("tool-user@example.com").await;
    let p = s.state.auth().authenticate_bearer(&token).await.unwrap();
    assert_eq!(p.user_id, id);
    let tools = gaia_assets::tools::AssetTools::new(s.state.assets().clone(), p);
    let names: Vec<String> = tools.specs().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["generate_image", "speak", "generate_model_3d"]);
    let out: Value =
        serde_json::from_str(&tools.call("generate_image", r#"{"prompt": "a key", "size": "64x64"}"#).await.unwrap())
            .unwrap();
    assert_eq!(out["assets"][0]["status"], "succeeded", "{out}");
    let out: Value = serde_json::from_str(&tools.call("speak", r#"{"text": "Hello there"}"#).await.unwrap()).unwrap();
    assert_eq!(out["assets"][0]["type"], "speech");
    // Failures are tool errors the model reads, not panics.
    let e = tools.call("generate_model_3d", r#"{"prompt": "a chest"}"#).await.unwrap_err();
    assert!(e.to_string().contains("assets.model_3d_model"), "{e}");
    assert!(tools.call("speak", "not json").await.is_err());
    assert!(tools.call("speak", r#"{}"#).await.unwrap_err().to_string().contains("prompt"));
    assert_eq!(s.state.assets().list(Some(&id), None, None, 10).await.unwrap().len(), 2);
}
