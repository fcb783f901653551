//! `/api/v1/kb/*` over real HTTP, on SQLite and PostgreSQL: the envelope, reads, edits with version
//! conflicts, path safety, tools, sync, the webhook, and clear errors.

use crate::common;

use gaia_core::testing::database_urls;
use gaia_kb::{Kb, KbConfig};
use serde_json::{json, Value};

fn world_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kb-fixtures/world");
    let dest = dir.join("world");
    gaia_core::testing::copy_dir(&src, &dest);
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

        // Search (ranked, with snippet), exact, regex; semantic without a model.
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
        // Without `[embeddings] model`, semantic search says how to set one up (see `embeddings::`).
        assert_eq!(st, 503, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("[embeddings] model"), "{v}");
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
        // Unauthenticated requests and missing permissions are refused in the same envelope.
        for url in ["/api/v1/kb/search?q=x", "/api/v1/kb/status", "/api/v1/kb/tools"] {
            let r = s.http.get(format!("{}{url}", s.url)).send().await.unwrap();
            assert!(r.headers().contains_key("www-authenticate"));
            let (st, v) = json_of(r).await;
            assert_eq!(
                (st, v["status"].as_str(), v["error"]["kind"].as_str()),
                (401, Some("error"), Some("unauthorized"))
            );
            assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
        let (st, v) = json_of(s.post("/api/v1/kb/sync", &key).send().await.unwrap()).await;
        assert_eq!(
            (st, v["status"].as_str(), v["error"]["kind"].as_str()),
            (403, Some("error"), Some("forbidden")),
            "{v}"
        );
        assert!(v["response"].is_null() && v["metadata"].is_object());
    }
}

#[tokio::test]
async fn kb_api_envelope_metadata_unicode_and_bad_input() {
    for db in database_urls().await {
        let s = common::start(db, None).await;
        let b = s.backend;
        let (token, _, _) = s.register("writer@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let dir = tempfile::tempdir().unwrap();
        let root = world_copy(dir.path());
        std::fs::write(root.join("Places/Café Lumière.md"), "# Café Lumière\nCrème brûlée & <tea>. 🐉 Drake nest.")
            .unwrap();
        let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
        assert!(s.state.set_kb(kb));
        let get = |url: String| {
            let req = s.get(&url, &key);
            async move { json_of(req.send().await.unwrap()).await }
        };

        // Metadata says how long it took and how much there is.
        let (st, v) = get("/api/v1/kb/search?q=fog&limit=2&offset=1".into()).await;
        assert_eq!(st, 200, "{b}: {v}");
        let m = &v["metadata"];
        assert_eq!(
            (m["limit"].as_u64(), m["offset"].as_u64(), m["count"].as_u64()),
            (Some(2), Some(1), Some(2)),
            "{v}"
        );
        assert!(m["total"].as_u64().unwrap() >= 3 && m["took_ms"].as_f64().unwrap() >= 0.0, "{v}");
        // Accents either way, CJK, emoji; the snippet escaped.
        for q in ["caf%C3%A9", "cafe", "creme%20brulee", "%E9%9C%A7", "%F0%9F%90%89"] {
            let (st, v) = get(format!("/api/v1/kb/search?q={q}")).await;
            assert_eq!(st, 200, "{q}: {v}");
            let want = if q == "%E9%9C%A7" { "Rules/Weather Effects.md" } else { "Places/Café Lumière.md" };
            assert_eq!(v["response"][0]["path"], want, "{q}: {v}");
        }
        let (_, v) = get("/api/v1/kb/search?q=tea".into()).await;
        assert!(v["response"][0]["snippet"].as_str().unwrap().contains("&lt;<b>tea</b>&gt;"), "{v}");
        let (_, v) = get("/api/v1/kb/search?q=%5Ecaf%C3%A9&mode=regex".into()).await;
        assert_eq!(v["metadata"]["total"], 0, "`^` anchors at a line start: {v}");
        let (_, v) = get("/api/v1/kb/search?q=%5E%23%20caf%C3%A9&mode=regex".into()).await;
        assert_eq!(
            (v["response"][0]["path"].as_str(), v["response"][0]["line"].as_u64()),
            (Some("Places/Café Lumière.md"), Some(1)),
            "{v}"
        );
        let (_, v) = get("/api/v1/kb/read?path=Places/Caf%C3%A9%20Lumi%C3%A8re".into()).await;
        assert_eq!(v["response"]["title"], "Café Lumière", "{v}");
        // Context: what was left out, and a budget too small for anything.
        let (st, v) = get("/api/v1/kb/context?name=Safe%20House&max_tokens=200".into()).await;
        assert_eq!(st, 200, "{v}");
        assert!(
            v["metadata"]["omitted"].as_u64().unwrap() > 0 && v["metadata"]["total_tokens"].as_u64().unwrap() <= 200
        );
        assert!(!v["response"]["context"]["omitted"].as_array().unwrap().is_empty());
        // Errors: each in the envelope with its status.
        for (url, want, kind) in [
            ("/api/v1/kb/context?name=Safe%20House&max_tokens=3", 400, "invalid_input"),
            ("/api/v1/kb/context?name=xylophone%20quartz", 404, "not_found"),
            ("/api/v1/kb/context?name=%20", 400, "invalid_input"),
            ("/api/v1/kb/search?q=fog&folder=../etc", 400, "invalid_path"),
            ("/api/v1/kb/search?q=", 400, "invalid_input"),
            ("/api/v1/kb/search?q=%5B&mode=regex", 400, "invalid_input"),
            ("/api/v1/kb/read?path=image.png", 400, "invalid_path"),
            ("/api/v1/kb/list?path=Nowhere", 404, "not_found"),
            ("/api/v1/kb/links?path=Nowhere", 404, "not_found"),
            ("/api/v1/kb/list?recursive=maybe", 400, "invalid_input"),
        ] {
            let (st, v) = get(url.into()).await;
            assert_eq!(
                (st, v["status"].as_str(), v["error"]["kind"].as_str()),
                (want, Some("error"), Some(kind)),
                "{b} {url}: {v}"
            );
            assert!(v["response"].is_null());
        }
        // A query with nothing searchable finds nothing (not everything).
        let (st, v) = get("/api/v1/kb/search?q=%21%21%21".into()).await;
        assert_eq!((st, v["metadata"]["total"].as_u64()), (200, Some(0)), "{v}");
        // Tools with bad arguments are errors with 400, never successes.
        for (tool, args) in [
            ("search_knowledge_base", json!({"query": "fog", "limit": 0})),
            ("load_kos_context", json!({"name": "Safe House", "max_tokens": 1})),
            ("read_kb_file", json!(["Bunker"])),
        ] {
            let (st, v) =
                json_of(s.post(&format!("/api/v1/kb/tools/{tool}"), &key).json(&args).send().await.unwrap()).await;
            assert_eq!((st, v["status"].as_str()), (400, Some("error")), "{tool}: {v}");
        }
        let (st, v) = json_of(
            s.post("/api/v1/kb/tools/synthesize_kb_information", &key)
                .json(&json!({"query": "fog radius"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, v["metadata"]["tool"].as_str()), (200, Some("synthesize_kb_information")), "{v}");
        assert!(v["response"]["digest"].as_str().unwrap().contains("§"), "{v}");
    }
}

/// Runs `git` in `dir` with a fixed identity; panics on failure.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@example.com")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn kb_api_with_a_git_remote_sync_status_conflicts_and_path_safety() {
    for db in database_urls().await {
        let s = common::start(db, None).await;
        let b = s.backend;
        let (token, _, user_id) = s.register("keeper@example.com").await;
        s.state.storage().set_admin(&user_id, true).await.unwrap();
        let (key, _) = s.api_key(&token).await;

        // A private "GitHub" repository: a bare repository and a clone for the rest of the team.
        let dir = tempfile::tempdir().unwrap();
        let seed = world_copy(dir.path());
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "world"]);
        let bare = dir.path().join("remote.git");
        git(dir.path(), &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()]);
        let team = dir.path().join("team");
        git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), team.to_str().unwrap()]);
        let kb = Kb::open(KbConfig {
            root: dir.path().join("clone"),
            remote: Some(format!("file://{}", bare.display())),
            sync_interval_secs: 0,
            webhook_secret: Some("hook-secret".into()),
            ..KbConfig::default()
        })
        .await
        .unwrap();
        let mut syncs = kb.subscribe_syncs();
        assert!(s.state.set_kb(kb));

        let (st, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
        assert_eq!(st, 200, "{b}: {v}");
        let r = &v["response"];
        assert_eq!(r["commit"].as_str(), Some(git(&team, &["rev-parse", "HEAD"]).trim()), "{v}");
        assert_eq!((r["documents"].as_u64(), r["indexed_documents"].as_u64()), (Some(5), Some(5)), "{v}");
        assert_eq!((r["mode"].as_str(), r["branch"].as_str()), (Some("git"), Some("main")));
        assert_eq!(r["unpushed_commits"], 0);
        assert!(r["index_size_bytes"].as_u64().unwrap() > 0, "{v}");
        assert!(r.get("last_sync").is_none() && r.get("last_sync_error").is_none(), "{v}");

        // The team pushes; a sync fast-forwards and /status reflects it.
        std::fs::write(team.join("Tide.md"), "# Tide\nThe tide brings crabs.").unwrap();
        git(&team, &["add", "-A"]);
        git(&team, &["commit", "-q", "-m", "tide"]);
        git(&team, &["push", "-q", "origin", "main"]);
        let before = chrono::Utc::now();
        let (st, v) = json_of(s.post("/api/v1/kb/sync", &key).send().await.unwrap()).await;
        assert_eq!((st, v["response"]["state"].as_str()), (200, Some("fast_forwarded")), "{b}: {v}");
        assert_eq!(v["response"]["changed"], json!(["Tide.md"]));
        let head = git(&team, &["rev-parse", "HEAD"]).trim().to_string();
        assert_eq!(v["response"]["commit"].as_str(), Some(head.as_str()));
        let (_, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
        let r = &v["response"];
        assert_eq!(r["commit"].as_str(), Some(head.as_str()), "{v}");
        assert_eq!((r["documents"].as_u64(), r["indexed_documents"].as_u64()), (Some(6), Some(6)), "{v}");
        let last: chrono::DateTime<chrono::Utc> = r["last_sync"].as_str().unwrap().parse().unwrap();
        assert!(last >= before, "{v}");

        // An edit over HTTP is a commit by the user, pushed to the remote.
        let (st, v) = json_of(
            s.post("/api/v1/kb/write", &key)
                .json(&json!({"path": "Items/Radio.md", "content": "# Radio\nStatic.", "message": "Add the radio"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, v["response"]["pushed"].as_bool()), (201, Some(true)), "{v}");
        let commit = v["response"]["commit"].as_str().unwrap().to_string();
        let version = v["response"]["version"].as_str().unwrap().to_string();
        git(&team, &["pull", "-q", "--ff-only"]);
        assert_eq!(
            git(&team, &["log", "-1", "--format=%H|%an|%ae|%s"]).trim(),
            format!("{commit}|keeper|keeper@example.com|Add the radio")
        );

        // Concurrent edits: every stale version is a 409, and nothing is overwritten.
        let stale = "0".repeat(64);
        for (path, body) in [
            ("/api/v1/kb/write", json!({"path": "Items/Radio.md", "content": "lost", "version": stale})),
            ("/api/v1/kb/write", json!({"path": "Items/Radio.md", "content": "lost"})),
            ("/api/v1/kb/move", json!({"from": "Items/Radio.md", "to": "Gear/Radio.md", "version": stale})),
            ("/api/v1/kb/move", json!({"from": "Items/Radio.md", "to": "README.md", "version": version})),
            ("/api/v1/kb/delete", json!({"path": "Items/Radio.md", "version": stale})),
        ] {
            let (st, v) = json_of(s.post(path, &key).json(&body).send().await.unwrap()).await;
            assert_eq!((st, v["error"]["kind"].as_str()), (409, Some("conflict")), "{b} {path} {body}: {v}");
        }
        let (_, v) = json_of(s.get("/api/v1/kb/read?path=Items/Radio.md", &key).send().await.unwrap()).await;
        assert_eq!(v["response"]["content"], "# Radio\nStatic.");
        let (st, _) = json_of(
            s.post("/api/v1/kb/delete", &key)
                .json(&json!({"path": "Items/Radio.md", "version": version}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200);

        // Path safety: Windows forms, NUL, symbolic links out of the vault (read, write and list).
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.md"), "# Secret\nlaunch codes").unwrap();
        let clone = dir.path().join("clone");
        std::os::unix::fs::symlink(outside.join("secret.md"), clone.join("leak.md")).unwrap();
        std::os::unix::fs::symlink(&outside, clone.join("Leak")).unwrap();
        let (st, _) = json_of(s.post("/api/v1/kb/sync", &key).send().await.unwrap()).await;
        assert_eq!(st, 200);
        for url in [
            "/api/v1/kb/read?path=C:%5CWindows%5Cwin.ini",
            "/api/v1/kb/read?path=..%5C..%5Cetc%5Cpasswd",
            "/api/v1/kb/read?path=Places%5C..%5C..%5Cx.md",
            "/api/v1/kb/read?path=x%00.md",
            "/api/v1/kb/read?path=%2Fetc%2Fpasswd",
            "/api/v1/kb/read?path=leak.md",
            "/api/v1/kb/read?path=Leak/secret.md",
            "/api/v1/kb/list?path=Leak",
            "/api/v1/kb/list?path=C:%5C",
        ] {
            let (st, v) = json_of(s.get(url, &key).send().await.unwrap()).await;
            assert!(st == 400 || st == 404, "{b} {url}: {st} {v}");
            assert_eq!(v["status"], "error");
            assert!(!v.to_string().contains("launch codes"), "{url}: {v}");
        }
        let (_, v) = json_of(s.get("/api/v1/kb/search?q=launch&mode=exact", &key).send().await.unwrap()).await;
        assert_eq!(v["response"], json!([]), "{v}");
        for body in [
            json!({"path": "C:\\Users\\x.md", "content": "x"}),
            json!({"path": "..\\..\\x.md", "content": "x"}),
            json!({"path": "x\u{0}.md", "content": "x"}),
            json!({"path": "leak.md", "content": "overwritten", "overwrite": true}),
            json!({"path": "Leak/new.md", "content": "x"}),
        ] {
            let (st, v) = json_of(s.post("/api/v1/kb/write", &key).json(&body).send().await.unwrap()).await;
            assert_eq!((st, v["error"]["kind"].as_str()), (400, Some("invalid_path")), "{b} {body}: {v}");
        }
        let (st, v) = json_of(
            s.post("/api/v1/kb/move", &key)
                .json(&json!({"from": "README.md", "to": "Leak/README.md"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        let (st, v) =
            json_of(s.post("/api/v1/kb/delete", &key).json(&json!({"path": "leak.md"})).send().await.unwrap()).await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(std::fs::read_to_string(outside.join("secret.md")).unwrap(), "# Secret\nlaunch codes");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);

        // Webhook: a wrong signature or secret is refused; a push to another branch is skipped; a
        // push to the followed branch syncs.
        let payload = br#"{"ref":"refs/heads/main"}"#;
        for (header, value) in [
            ("X-Hub-Signature-256", hub_signature(b"wrong-secret", payload)),
            ("X-Hub-Signature-256", "sha256=zz".to_string()),
            ("X-Hub-Signature-256", hub_signature(b"hook-secret", b"other body")),
            ("X-Gaia-Webhook-Secret", "hook-secre".to_string()),
        ] {
            let r = s.http.post(format!("{}/api/v1/kb/webhook", s.url)).header(header, value).body(&payload[..]);
            let (st, v) = json_of(r.send().await.unwrap()).await;
            assert_eq!((st, v["error"]["kind"].as_str()), (401, Some("unauthorized")), "{v}");
        }
        let other = br#"{"ref":"refs/heads/feature"}"#;
        let r = s
            .http
            .post(format!("{}/api/v1/kb/webhook", s.url))
            .header("X-Hub-Signature-256", hub_signature(b"hook-secret", other))
            .body(&other[..]);
        let (st, v) = json_of(r.send().await.unwrap()).await;
        assert_eq!((st, v["response"]["sync"].as_str()), (202, Some("skipped")), "{v}");
        git(&team, &["pull", "-q", "--ff-only"]);
        std::fs::write(team.join("Moon.md"), "# Moon\nRed.").unwrap();
        git(&team, &["add", "-A"]);
        git(&team, &["commit", "-q", "-m", "moon"]);
        git(&team, &["push", "-q", "origin", "main"]);
        while syncs.try_recv().is_ok() {}
        let r = s
            .http
            .post(format!("{}/api/v1/kb/webhook", s.url))
            .header("X-Gaia-Webhook-Secret", "hook-secret")
            .body(&payload[..]);
        let (st, v) = json_of(r.send().await.unwrap()).await;
        assert_eq!((st, v["response"]["sync"].as_str()), (202, Some("started")), "{v}");
        let report = tokio::time::timeout(std::time::Duration::from_secs(120), syncs.recv()).await.unwrap().unwrap();
        assert_eq!(report.changed, ["Moon.md"]);
        let (_, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
        assert_eq!(v["response"]["commit"].as_str(), Some(git(&team, &["rev-parse", "HEAD"]).trim()));
    }
}
