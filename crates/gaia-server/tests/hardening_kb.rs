//! Issue 17, knowledge base: each attack performed over HTTP by an ordinary signed-in user — a "billion
//! laughs" note, a search that scans for long while others write and read, and a second user probing
//! another's private notes through `status`, `context` and `[[links]]`. Storage-involved tests run on
//! SQLite and, with `GAIA_TEST_DATABASE_URL`, on PostgreSQL.

use crate::common;

use gaia_core::testing::{database_urls, sqlite_db};
use gaia_kb::{Kb, KbConfig, KbStorageMode};
use serde_json::{json, Value};

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// A note whose frontmatter nests `levels` lists of nine aliases to the level below: 9^levels values
/// once expanded (six levels: 531,441, from about 230 bytes).
fn laughs(levels: usize) -> String {
    let mut s = String::from("---\na0: &a0 [x,x,x,x,x,x,x,x,x]\n");
    for i in 1..levels {
        s += &format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(","));
    }
    s + "---\n# Laughs\nThe lantern keeper laughs.\n"
}

/// Number of commits of the git repository at `root`.
fn commits(root: &std::path::Path) -> String {
    let out = std::process::Command::new("git").arg("-C").arg(root).args(["rev-list", "--all", "--count"]).output();
    String::from_utf8(out.unwrap().stdout).unwrap()
}

fn assert_error(st: u16, v: &Value, want: u16, kind: &str) {
    assert_eq!((st, v["status"].as_str(), v["error"]["kind"].as_str()), (want, Some("error"), Some(kind)), "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn a_billion_laughs_note_is_refused_and_one_already_in_the_vault_is_plain_text() {
    for db in database_urls().await {
        let s = common::start(db, None).await;
        let b = s.backend;
        let (token, _, user) = s.register("laugher@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vault");
        // Already in the vault (pushed by someone, or written before the fix): nine levels would be
        // 387 million values.
        std::fs::create_dir_all(root.join("users/old")).unwrap();
        std::fs::write(root.join("users/old/nine.md"), laughs(9)).unwrap();
        std::fs::write(root.join("Common.md"), "# Common\nA lantern.\n").unwrap();
        assert!(std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["init", "-q"])
            .status()
            .unwrap()
            .success());
        let kb = Kb::open(KbConfig { root: root.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
        let doc = kb.read("users/old/nine.md").await.unwrap();
        assert!(doc.note.frontmatter.is_empty() && doc.note.body_offset == 0, "{b}");
        assert_eq!(kb.documents().len(), 2, "{b}");
        assert!(s.state.set_kb(kb));
        let before = commits(&root);

        let path = format!("users/{user}/laughs.md");
        for levels in [6, 9] {
            let body = json!({"path": path, "content": laughs(levels)});
            let (st, v) = json_of(s.post("/api/v1/kb/write", &key).json(&body).send().await.unwrap()).await;
            assert_error(st, &v, 400, "invalid_input");
            assert!(v["error"]["message"].as_str().unwrap().contains("frontmatter"), "{b}: {v}");
        }
        assert!(!root.join(&path).exists(), "{b}: not saved");
        assert_eq!(commits(&root), before, "{b}: not committed");
        let (st, v) = json_of(s.get(&format!("/api/v1/kb/read?path={path}"), &key).send().await.unwrap()).await;
        assert_error(st, &v, 404, "not_found");
        // The server is fine, and the note is found as plain text (by a word of its body).
        let (st, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
        assert_eq!((st, &v["response"]["documents"]), (200, &json!(2)), "{b}: {v}");
        let (st, v) = json_of(s.get("/api/v1/kb/search?q=lantern", &key).send().await.unwrap()).await;
        assert_eq!((st, v["metadata"]["total"].as_u64()), (200, Some(1)), "{b}: {v}");
        // An ordinary note of the same user still goes in.
        let ok = json!({"path": path, "content": "---\nplace: &p Harbour\nnear: *p\n---\n# Mine\n"});
        let (st, v) = json_of(s.post("/api/v1/kb/write", &key).json(&ok).send().await.unwrap()).await;
        assert_eq!(st, 201, "{b}: {v}");
    }
}

/// A vault of `docs` notes of about 20 KB each, with non-ASCII words: a Unicode `\b` pattern then
/// runs on the slowest regex engine, seconds of scanning in all.
fn large_vault(root: &std::path::Path, docs: usize) {
    let mut x: u64 = 7;
    for d in 0..docs {
        let mut text = format!("# Note {d}\n");
        while text.len() < 20_000 {
            for _ in 0..10 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                text += &format!("w{}örd ", (x >> 33) % 5000);
            }
            text.push('\n');
        }
        let dir = root.join(format!("Bulk/{}", d % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("n{d}.md")), text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_regex_search_blocks_neither_writes_nor_reads_and_is_stopped() {
    let s = common::start(sqlite_db(), None).await;
    let (token, _, user) = s.register("scanner@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    large_vault(&root, 300);
    let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    assert!(s.state.set_kb(kb));

    // Bad patterns are refused at once, in the envelope.
    let long = "a".repeat(gaia_kb::kb::MAX_GREP_PATTERN_BYTES + 1);
    let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    for (q, mode) in
        [(long.as_str(), "exact"), (long.as_str(), "regex"), (deep.as_str(), "regex"), (r"\w{5000}", "regex")]
    {
        let r = s.get("/api/v1/kb/search", &key).query(&[("q", q), ("mode", mode)]).send().await.unwrap();
        let (st, v) = json_of(r).await;
        assert_error(st, &v, 400, "invalid_input");
    }

    // Without a time limit this scan takes many seconds (with the lock on the documents held, on an
    // async worker, before the fix).
    let slow = s.get("/api/v1/kb/search", &key).query(&[("q", r"\b(?:\w+\s+){5}\d{6}\b"), ("mode", "regex")]);
    let scan = tokio::spawn(async move { json_of(slow.send().await.unwrap()).await });
    // Let the scan start (no timing is asserted: only what finishes before what).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let body = json!({"path": format!("users/{user}/during.md"), "content": "# During\nwritten mid-scan"});
    let (st, v) = json_of(s.post("/api/v1/kb/write", &key).json(&body).send().await.unwrap()).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = json_of(s.get("/api/v1/kb/search?q=during&mode=exact", &key).send().await.unwrap()).await;
    assert_eq!((st, v["metadata"]["total"].as_u64()), (200, Some(1)), "{v}");
    let (st, _) = json_of(s.get("/api/v1/kb/read?path=Bulk/0/n0.md", &key).send().await.unwrap()).await;
    assert_eq!(st, 200);
    assert!(!scan.is_finished(), "the write and the reads finished while the scan was still running");
    // The scan is stopped at its time limit with a clear error.
    let (st, v) = scan.await.unwrap();
    assert_error(st, &v, 503, "timeout");
}

#[tokio::test]
async fn a_second_user_learns_nothing_of_private_notes_from_status_context_or_links() {
    for db in database_urls().await {
        let s = common::start(db, None).await;
        let b = s.backend;
        let (alice_token, _, alice) = s.register("alice@example.com").await;
        let (alice_key, _) = s.api_key(&alice_token).await;
        let (bob_token, _, _) = s.register("bob@example.com").await;
        let (bob_key, _) = s.api_key(&bob_token).await;
        let (admin_token, _, admin) = s.register("root@example.com").await;
        s.state.storage().set_admin(&admin, true).await.unwrap();
        let (admin_key, _) = s.api_key(&admin_token).await;
        let dir = tempfile::tempdir().unwrap();
        let config = KbConfig {
            mode: KbStorageMode::Hybrid,
            root: dir.path().join("vault"),
            sync_interval_secs: 0,
            ..KbConfig::default()
        };
        let kb = Kb::open_with_storage(config, Some(s.state.storage().clone())).await.unwrap();
        assert!(s.state.set_kb(kb));
        let write = |key: &str, path: &str, content: &str| {
            s.post("/api/v1/kb/write", key).json(&json!({"path": path, "content": content})).send()
        };
        for (path, content) in [
            ("Places/Harbour Town.md", "---\naliases: [Harbour]\n---\n# Harbour Town\nBoats. See [[Lighthouse]].\n"),
            ("Places/Lighthouse.md", "# Lighthouse\nNear [[Harbour]].\n"),
        ] {
            assert_eq!(write(&admin_key, path, content).await.unwrap().status(), 201, "{b}");
        }
        // Alice's private note: a title and aliases that would capture the common notes' links.
        let private = format!("users/{alice}/H.md");
        let content = "---\ntitle: Harbour\naliases: [Lighthouse, Secret Plan]\n---\nAmbush at the [[Lighthouse]].\n";
        assert_eq!(write(&alice_key, &private, content).await.unwrap().status(), 201, "{b}");
        // Her next edit could not be committed yet (as when git fails): status lists it.
        sqlx::query(
            "INSERT INTO kb_unmirrored (kb, path, author_name, author_email, message, edited_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind("default")
        .bind(&private)
        .bind("alice")
        .bind("alice@example.com")
        .bind("Update")
        .bind(0i64)
        .execute(s.state.storage().pool())
        .await
        .unwrap();

        // status: Bob does not see Alice's private path; she and the administrator do.
        let unmirrored = |v: &Value| v["response"]["unmirrored"].as_array().cloned().unwrap_or_default();
        let (st, v) = json_of(s.get("/api/v1/kb/status", &bob_key).send().await.unwrap()).await;
        assert_eq!(st, 200, "{b}: {v}");
        assert!(!v.to_string().contains(&alice), "{b}: {v}");
        for key in [&alice_key, &admin_key] {
            let (_, v) = json_of(s.get("/api/v1/kb/status", key).send().await.unwrap()).await;
            assert_eq!(unmirrored(&v), [json!(private)], "{b}: {v}");
        }

        // context by the title of her note: exactly as for a note that does not exist.
        let (st1, v1) = json_of(s.get("/api/v1/kb/context?name=Secret%20Plan", &bob_key).send().await.unwrap()).await;
        let (st2, v2) = json_of(s.get("/api/v1/kb/context?name=Nothing%20Such", &bob_key).send().await.unwrap()).await;
        assert_eq!(st1, st2, "{b}: {v1} / {v2}");
        assert_eq!(v1.to_string().replace("Secret Plan", "X"), v2.to_string().replace("Nothing Such", "X"), "{b}");
        let (st, _) = json_of(s.get("/api/v1/kb/context?name=Secret%20Plan", &alice_key).send().await.unwrap()).await;
        assert_eq!(st, 200, "{b}: she finds her own note");

        // Links in common notes resolve, for Bob, to what he may read, not to her note.
        let (_, v) = json_of(s.get("/api/v1/kb/links?path=Places/Lighthouse.md", &bob_key).send().await.unwrap()).await;
        assert_eq!(v["response"][0]["path"], "Places/Harbour Town.md", "{b}: {v}");
        let (_, v) =
            json_of(s.get("/api/v1/kb/links?path=Places/Harbour%20Town.md", &bob_key).send().await.unwrap()).await;
        assert_eq!(v["response"][0]["path"], "Places/Lighthouse.md", "{b}: {v}");
        let (st, v) = json_of(s.get("/api/v1/kb/read?path=Harbour", &bob_key).send().await.unwrap()).await;
        assert_eq!((st, v["response"]["path"].as_str()), (200, Some("Places/Harbour Town.md")), "{b}: {v}");
        assert_eq!(v["metadata"]["backlinks"], 1, "{b}: {v}");
        let (_, v) =
            json_of(s.get("/api/v1/kb/backlinks?path=Places/Harbour%20Town.md", &bob_key).send().await.unwrap()).await;
        assert_eq!(v["response"][0]["path"], "Places/Lighthouse.md", "{b}: {v}");
        let (_, v) = json_of(s.get("/api/v1/kb/context?name=Lighthouse", &bob_key).send().await.unwrap()).await;
        let paths: Vec<&str> = v["response"]["context"]["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["Places/Lighthouse.md", "Places/Harbour Town.md"], "{b}: {v}");
        assert!(!v.to_string().contains("Ambush"), "{b}");
        // The same through the LLM tools.
        let r = s.post("/api/v1/kb/tools/load_kos_context", &bob_key).json(&json!({"name": "Secret Plan"}));
        let (_, v) = json_of(r.send().await.unwrap()).await;
        assert!(!v.to_string().contains("Ambush") && !v.to_string().contains(&alice), "{b}: {v}");
    }
}

/// Exact and regex searches each hold a blocking thread for up to 5 s: many at once would fill the
/// cores and the blocking pool (holding up sign-in hashing). Beyond `kb.max_concurrent_scans` they
/// are refused at once, 503 `busy` with `Retry-After`, over HTTP and through the LLM tools; ranked
/// search, and the scans admitted, go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_and_regex_searches_beyond_the_bound_are_refused_busy() {
    let s = common::start(sqlite_db(), None).await;
    let (token, _, _) = s.register("flooder@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    large_vault(&root, 300);
    let config = KbConfig { root, sync_interval_secs: 0, max_concurrent_scans: 1, ..KbConfig::default() };
    let kb = Kb::open(config).await.unwrap();
    assert!(s.state.set_kb(kb));

    // One scan that runs until its time limit holds the only place; the flood of further exact
    // searches (over an empty folder: instant) is refused while it runs. A probe can take the place
    // first, refusing the scan instead: it is then started again.
    let start_scan = || {
        let slow = s.get("/api/v1/kb/search", &key).query(&[("q", r"\b(?:\w+\s+){5}\d{6}\b"), ("mode", "regex")]);
        tokio::spawn(async move { json_of(slow.send().await.unwrap()).await })
    };
    let probe = || async {
        let r = s.get("/api/v1/kb/search", &key).query(&[("q", "x"), ("mode", "exact"), ("folder", "None")]);
        let r = r.send().await.unwrap();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let (st, v) = json_of(r).await;
        (st, v, retry)
    };
    let mut busy = None;
    let mut scan = start_scan();
    for _ in 0..500 {
        let (st, v, retry) = probe().await;
        if st == 503 {
            busy = Some((st, v, retry));
            break;
        }
        assert_eq!(st, 200, "{v}");
        if scan.is_finished() {
            let (st, v) = scan.await.unwrap();
            assert_error(st, &v, 503, "busy");
            scan = start_scan();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (st, v, retry) = busy.expect("a search beyond the bound was never refused");
    assert_error(st, &v, 503, "busy");
    assert_eq!(retry.as_deref(), Some("1"), "{v}");
    // The tools' search is bounded the same way; ranked search is not a scan and still answers.
    let r = s.post("/api/v1/kb/tools/search_knowledge_base", &key).json(&json!({"query": "Note", "mode": "regex"}));
    let r = r.send().await.unwrap();
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()).as_deref(), Some("1"));
    let (st, v) = json_of(r).await;
    if !scan.is_finished() {
        assert_error(st, &v, 503, "busy");
    }
    let (st, v) = json_of(s.get("/api/v1/kb/search?q=Note", &key).send().await.unwrap()).await;
    assert_eq!(st, 200, "{v}");
    // The admitted scan ends as before (stopped at its time limit); then searches run again.
    let (st, v) = scan.await.unwrap();
    assert_error(st, &v, 503, "timeout");
    let (st, v, _) = probe().await;
    assert_eq!(st, 200, "{v}");
}
