//! `/api/v1/kb/*` over real HTTP, on SQLite and PostgreSQL: the envelope, reads, edits with version
//! conflicts, path safety, tools, sync, the webhook, and clear errors.

mod common;

use gaia_core::testing::database_urls;
use gaia_kb::{Kb, KbConfig};
use serde_json::{json, Value};

fn world_copy(dir: &std::path::Path) -> std::path::PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kb-fixtures/world");
    let dest = dir.join("world");
    copy(&src, &dest);
    dest
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn kb_api_end_to_end() {
    for db in database_urls().await {
        let s = common::start(db, None).await;
        let b = s.backend;
        let (token, _, user_id) = s.register("keeper@example.com").await;
        let (key, _) = s.api_key(&token).await;

        // Without a knowledge base: a clear 503 in the envelope.
        let (st, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
        assert_eq!((st, v["status"].as_str()), (503, Some("error")), "{b}");

        let dir = tempfile::tempdir().unwrap();
        let kb = Kb::open(KbConfig {
            root: world_copy(dir.path()),
            sync_interval_secs: 0,
            webhook_secret: Some("hook-secret".into()),
            ..KbConfig::default()
        })
        .await
        .unwrap();
        assert!(s.state.set_kb(kb));

        let (st, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
        assert_eq!(st, 200, "{b}: {v}");
        assert_eq!(v["status"], "success");
        assert_eq!(v["response"]["documents"], 5);
        assert!(v["metadata"]["took_ms"].is_number());

        // Search (ranked, with snippet), exact, regex, semantic.
        let (st, v) = json_of(s.get("/api/v1/kb/search?q=pharmacy%20radius", &key).send().await.unwrap()).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["response"][0]["path"], "Places/Safe House.md");
        assert!(v["response"][0]["snippet"].as_str().unwrap().contains("<b>"), "{v}");
        assert_eq!(v["metadata"]["total"], 1);
        let (_, v) = json_of(s.get("/api/v1/kb/search?q=19:00&mode=exact", &key).send().await.unwrap()).await;
        assert_eq!(v["response"][0]["line"], 11);
        let (_, v) =
            json_of(s.get("/api/v1/kb/search?q=fog&tags=rules&folder=Rules", &key).send().await.unwrap()).await;
        assert_eq!(v["metadata"]["total"], 1);
        let (st, v) =
            json_of(s.get("/api/v1/kb/search?q=zombie%20speed%20weather&mode=semantic", &key).send().await.unwrap())
                .await;
        assert_eq!((st, v["response"][0]["path"].as_str()), (200, Some("Rules/Weather Effects.md")));
        // Bad search input.
        for (url, want) in [
            ("/api/v1/kb/search?q=(&mode=regex", 400),
            ("/api/v1/kb/search?q=x&mode=psychic", 400),
            ("/api/v1/kb/search", 400),
            ("/api/v1/kb/search?q=x&limit=abc", 400),
        ] {
            let (st, v) = json_of(s.get(url, &key).send().await.unwrap()).await;
            assert_eq!((st, v["status"].as_str()), (want, Some("error")), "{b} {url}: {v}");
            assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }

        // Read, list, context, backlinks, links.
        let (st, v) = json_of(s.get("/api/v1/kb/read?path=Bunker", &key).send().await.unwrap()).await;
        assert_eq!((st, v["response"]["path"].as_str()), (200, Some("Places/Safe House.md")), "{v}");
        assert_eq!(v["response"]["aliases"], json!(["Bunker", "The Old Pharmacy"]));
        assert_eq!(v["metadata"]["backlinks"], 4);
        let version = v["response"]["version"].as_str().unwrap().to_string();
        let (_, v) = json_of(s.get("/api/v1/kb/list?path=Places", &key).send().await.unwrap()).await;
        assert_eq!(v["response"][0]["title"], "Safe House");
        let (_, v) =
            json_of(s.get("/api/v1/kb/context?name=Dr.%20Mara%20Quill&max_tokens=3000", &key).send().await.unwrap())
                .await;
        assert_eq!(v["response"]["context"]["documents"][0]["path"], "Characters/Dr. Mara Quill.md");
        assert!(v["response"]["prompt"].as_str().unwrap().starts_with("## Dr. Mara Quill"));
        let (_, v) =
            json_of(s.get("/api/v1/kb/backlinks?path=Rules/Weather%20Effects.md", &key).send().await.unwrap()).await;
        assert_eq!(v["metadata"]["count"], 3);
        let (_, v) = json_of(s.get("/api/v1/kb/links?path=README.md", &key).send().await.unwrap()).await;
        assert_eq!(v["metadata"]["count"], 4);

        // Path safety and missing documents.
        for (url, want) in [
            ("/api/v1/kb/read?path=../../etc/passwd", 400),
            ("/api/v1/kb/read?path=/etc/passwd", 400),
            ("/api/v1/kb/read?path=.git/config", 400),
            ("/api/v1/kb/read?path=Nope.md", 404),
            ("/api/v1/kb/read", 400),
            ("/api/v1/kb/list?path=../", 400),
            ("/api/v1/kb/backlinks?path=Nope", 404),
        ] {
            let (st, v) = json_of(s.get(url, &key).send().await.unwrap()).await;
            assert_eq!((st, v["status"].as_str()), (want, Some("error")), "{b} {url}: {v}");
        }

        // Edits need an administrator.
        let body = json!({"path": "Items/Radio.md", "content": "# Radio\nStatic on channel 9."});
        let (st, v) = json_of(s.post("/api/v1/kb/write", &key).json(&body).send().await.unwrap()).await;
        assert_eq!((st, v["status"].as_str()), (403, Some("error")), "{v}");
        s.state.storage().set_admin(&user_id, true).await.unwrap();
        let (admin_key, _) = s.api_key(&token).await;
        let (st, v) = json_of(s.post("/api/v1/kb/write", &admin_key).json(&body).send().await.unwrap()).await;
        assert_eq!(st, 201, "{b}: {v}");
        assert_eq!(v["response"]["created"], true);
        let (_, v) = json_of(s.get("/api/v1/kb/search?q=channel", &key).send().await.unwrap()).await;
        assert_eq!(v["response"][0]["path"], "Items/Radio.md");
        // Conflicts: create over an existing document, stale version.
        let (st, v) = json_of(s.post("/api/v1/kb/write", &admin_key).json(&body).send().await.unwrap()).await;
        assert_eq!((st, v["error"]["kind"].as_str()), (409, Some("conflict")), "{v}");
        let stale = json!({"path": "Places/Safe House.md", "content": "x", "version": "0".repeat(64)});
        let (st, _) = json_of(s.post("/api/v1/kb/write", &admin_key).json(&stale).send().await.unwrap()).await;
        assert_eq!(st, 409);
        let fresh = json!({"path": "Places/Safe House.md", "content": "# Safe House\nCollapsed.", "version": version});
        let (st, v) = json_of(s.post("/api/v1/kb/write", &admin_key).json(&fresh).send().await.unwrap()).await;
        assert_eq!((st, v["response"]["created"].as_bool()), (200, Some(false)), "{v}");
        // Malformed bodies and escapes.
        let (st, v) = json_of(
            s.post("/api/v1/kb/write", &admin_key)
                .header("content-type", "application/json")
                .body("{bad")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, v["status"].as_str()), (400, Some("error")));
        let esc = json!({"path": "../escape.md", "content": "x"});
        let (st, _) = json_of(s.post("/api/v1/kb/write", &admin_key).json(&esc).send().await.unwrap()).await;
        assert_eq!(st, 400);
        assert!(!dir.path().join("escape.md").exists());
        // Move and delete.
        let (st, v) = json_of(
            s.post("/api/v1/kb/move", &admin_key)
                .json(&json!({"from": "Items/Radio.md", "to": "Gear/Radio.md"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, v["response"]["path"].as_str()), (200, Some("Gear/Radio.md")), "{v}");
        let (st, _) = json_of(
            s.post("/api/v1/kb/delete", &admin_key).json(&json!({"path": "Gear/Radio.md"})).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 200);
        let (st, _) = json_of(
            s.post("/api/v1/kb/delete", &admin_key).json(&json!({"path": "Gear/Radio.md"})).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 404);
        // Sync (no remote: re-reads the folder).
        std::fs::write(dir.path().join("world/Outside.md"), "# Outside\nkraken").unwrap();
        let (st, v) = json_of(s.post("/api/v1/kb/sync", &admin_key).send().await.unwrap()).await;
        assert_eq!((st, v["response"]["changed"].clone()), (200, json!(["Outside.md"])), "{v}");

        // Tools.
        let (_, v) = json_of(s.get("/api/v1/kb/tools", &key).send().await.unwrap()).await;
        assert_eq!(v["response"].as_array().unwrap().len(), 6);
        let (st, v) = json_of(
            s.post("/api/v1/kb/tools/search_knowledge_base", &key)
                .json(&json!({"query": "kraken"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, v["response"]["hits"][0]["path"].as_str()), (200, Some("Outside.md")), "{v}");
        let (st, v) =
            json_of(s.post("/api/v1/kb/tools/read_kb_file", &key).json(&json!({"path": "../x"})).send().await.unwrap())
                .await;
        assert_eq!((st, v["status"].as_str()), (400, Some("error")), "a failing tool is never a success");
        let (st, _) = json_of(s.post("/api/v1/kb/tools/nope", &key).json(&json!({})).send().await.unwrap()).await;
        assert_eq!(st, 404);

        // Webhook: signature checked, sync started.
        let (st, _) =
            json_of(s.http.post(format!("{}/api/v1/kb/webhook", s.url)).body("{}").send().await.unwrap()).await;
        assert_eq!(st, 401);
        let (st, _) = json_of(
            s.http
                .post(format!("{}/api/v1/kb/webhook", s.url))
                .header("X-Gaia-Webhook-Secret", "wrong")
                .body("{}")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 401);
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(b"{\"ref\":\"refs/heads/main\"}");
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let (st, v) = json_of(
            s.http
                .post(format!("{}/api/v1/kb/webhook", s.url))
                .header("X-Hub-Signature-256", sig)
                .body("{\"ref\":\"refs/heads/main\"}")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, v["status"].as_str()), (202, Some("success")), "{v}");
        // Unauthenticated reads are refused.
        let (st, _) = json_of(s.http.get(format!("{}/api/v1/kb/search?q=x", s.url)).send().await.unwrap()).await;
        assert_eq!(st, 401);
    }
}
