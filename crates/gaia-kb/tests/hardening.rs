//! Adversarial tests of the knowledge base (issue 17): frontmatter that expands without bound ("billion
//! laughs"), searches over too much text, and what a restricted reader may learn about documents it
//! may not read. Storage tests run on SQLite and, with `GAIA_TEST_DATABASE_URL`, on PostgreSQL.

use crate::common;
use common::hits;
use gaia_core::testing::database_urls;
use gaia_kb::{GrepOptions, Kb, KbConfig, KbError, KbStorageMode, WriteRequest};
use std::sync::Arc;

/// A note whose frontmatter nests `levels` lists of nine aliases to the level below: 9^levels values
/// once expanded (six levels: 531,441 from 232 bytes).
fn laughs(levels: usize) -> String {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let mut s = String::from("---\na: &a [x,x,x,x,x,x,x,x,x]\n");
    for i in 1..levels {
        let (n, p) = (names[i], names[i - 1]);
        s += &format!("{n}: &{n} [{}]\n", vec![format!("*{p}"); 9].join(","));
    }
    s + "---\n# Laughs\nThe lantern keeper laughs.\n"
}

async fn row_count(storage: &gaia_core::storage::Storage, path: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM kb_documents WHERE path = $1")
        .bind(path)
        .fetch_one(storage.pool())
        .await
        .unwrap();
    n
}

fn commits(root: &std::path::Path) -> String {
    common::git(root, &["rev-list", "--all", "--count"])
}

fn refused(r: Result<gaia_kb::EditOutcome, KbError>) {
    match r {
        Err(e @ KbError::InvalidInput(_)) => {
            assert_eq!(e.http_status(), 400);
            assert!(e.to_string().contains("frontmatter"), "{e}");
        }
        other => panic!("the billion laughs was not refused: {other:?}"),
    }
}

fn laughs_write(levels: usize) -> WriteRequest {
    WriteRequest { path: "users/u1/laughs.md".into(), content: laughs(levels), ..Default::default() }
}

#[tokio::test]
async fn a_billion_laughs_write_is_refused_before_anything_is_saved_in_every_mode() {
    // git: refused, no file, no commit.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    std::fs::create_dir_all(&root).unwrap();
    common::git(&root, &["init", "-q", "-b", "main"]);
    let kb = Kb::open(KbConfig { root: root.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    let before = commits(&root);
    for levels in [6, 9] {
        refused(kb.write(laughs_write(levels)).await);
        refused(kb.write(WriteRequest { overwrite: true, ..laughs_write(levels) }).await);
    }
    assert!(!root.join("users/u1/laughs.md").exists());
    assert_eq!(commits(&root), before, "nothing was committed");
    assert!(kb.read("users/u1/laughs.md").await.is_err());
    // A harmless note with an alias is still fine.
    let ok = "---\nplace: &p Harbour\nnear: *p\ntags: [a]\n---\n# Fine\n";
    kb.write(WriteRequest { path: "users/u1/fine.md".into(), content: ok.into(), ..Default::default() }).await.unwrap();
    assert_eq!(kb.read("users/u1/fine.md").await.unwrap().note.frontmatter["near"], "Harbour");

    for db in database_urls().await {
        let storage = db.storage().await;
        let b = db.backend;
        // database
        let config = KbConfig {
            mode: KbStorageMode::Database,
            name: "laughs".into(),
            sync_interval_secs: 0,
            ..Default::default()
        };
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        refused(kb.write(laughs_write(6)).await);
        assert_eq!(row_count(&storage, "users/u1/laughs.md").await, 0, "{b}");
        // hybrid: neither in the database, nor in the working copy, nor committed.
        let dir = tempfile::tempdir().unwrap();
        let (url, _) = common::world_remote(dir.path());
        let clone = dir.path().join("clone");
        let config = KbConfig {
            mode: KbStorageMode::Hybrid,
            root: clone.clone(),
            remote: Some(url),
            sync_interval_secs: 0,
            ..KbConfig::default()
        };
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        let before = commits(&clone);
        refused(kb.write(laughs_write(6)).await);
        assert_eq!(row_count(&storage, "users/u1/laughs.md").await, 0, "{b}");
        assert!(!clone.join("users/u1/laughs.md").exists(), "{b}");
        assert_eq!(commits(&clone), before, "{b}");
        assert!(kb.status().await.unmirrored.is_empty(), "{b}");
    }
}

#[tokio::test]
async fn a_vault_already_holding_a_billion_laughs_opens_and_reads_it_as_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    std::fs::create_dir_all(root.join("users/u1")).unwrap();
    std::fs::write(root.join("users/u1/six.md"), laughs(6)).unwrap();
    // Nine levels: 387 million values if expanded.
    std::fs::write(root.join("users/u1/nine.md"), laughs(9)).unwrap();
    let check = |kb: &Kb| {
        let found = hits(kb, "lantern");
        assert_eq!(found.len(), 2, "{found:?}");
        // The frontmatter is text of the note.
        assert_eq!(hits(kb, "x").len(), 2);
        for d in kb.documents() {
            assert!(d.note.frontmatter.is_empty());
            assert_eq!((d.note.title.as_str(), d.note.body_offset), ("Laughs", 0));
        }
    };
    // Opened twice: a restart does not fail either.
    for _ in 0..2 {
        let kb = Kb::open(KbConfig { root: root.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
        check(&kb);
        assert_eq!(kb.grep(&GrepOptions { pattern: "*h,*h".into(), ..Default::default() }).unwrap().len(), 1);
    }
    for db in database_urls().await {
        let storage = db.storage().await;
        for (path, content) in [("users/u1/six.md", laughs(6)), ("users/u1/nine.md", laughs(9))] {
            sqlx::query(
                "INSERT INTO kb_documents (kb, path, content, hash, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind("stored")
            .bind(path)
            .bind(&content)
            .bind(gaia_kb::parse::version_of(&content))
            .bind(0i64)
            .execute(storage.pool())
            .await
            .unwrap();
        }
        let config = KbConfig {
            mode: KbStorageMode::Database,
            name: "stored".into(),
            sync_interval_secs: 0,
            ..Default::default()
        };
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        check(&kb);
        let d = kb.read("users/u1/nine.md").await.unwrap();
        assert!(d.note.frontmatter.is_empty(), "{}", db.backend);
    }
}

#[tokio::test]
async fn search_patterns_are_bounded_and_grep_runs_off_the_async_workers() {
    let dir = tempfile::tempdir().unwrap();
    let kb =
        Kb::open(KbConfig { root: common::world_vault(dir.path(), "w"), sync_interval_secs: 0, ..Default::default() })
            .await
            .unwrap();
    let long = GrepOptions { pattern: "a".repeat(gaia_kb::kb::MAX_GREP_PATTERN_BYTES + 1), ..Default::default() };
    assert!(matches!(kb.grep(&long), Err(KbError::InvalidInput(m)) if m.contains("limit")));
    let deep =
        GrepOptions { pattern: format!("{}x{}", "(".repeat(100), ")".repeat(100)), regex: true, ..Default::default() };
    assert!(matches!(kb.grep(&deep), Err(KbError::InvalidInput(_))));
    let huge = GrepOptions { pattern: r"\w{1000}\w{1000}".into(), regex: true, ..Default::default() };
    assert!(matches!(kb.grep(&huge), Err(KbError::InvalidInput(m)) if m.contains("regular expression")));
    let fog = GrepOptions { pattern: "fog".into(), ..Default::default() };
    assert_eq!(kb.grep_async(fog.clone()).await.unwrap(), kb.grep(&fog).unwrap());
}

#[tokio::test]
async fn private_titles_and_aliases_neither_capture_links_nor_show_through_context() {
    let dir = tempfile::tempdir().unwrap();
    let kb =
        Kb::open(KbConfig { root: dir.path().join("v"), sync_interval_secs: 0, ..Default::default() }).await.unwrap();
    for (path, content) in [
        ("Places/Harbour Town.md", "---\naliases: [Harbour]\n---\n# Harbour Town\nBoats. See [[Lighthouse]].\n"),
        ("Places/Lighthouse.md", "# Lighthouse\nNear [[Harbour]].\n"),
        // Shorter path, same alias: it wins ties for whoever may read it.
        (
            "users/a/H.md",
            "---\ntitle: Harbour\naliases: [Lighthouse, Secret Plan]\n---\nAmbush [[Lighthouse]] at dawn.\n",
        ),
    ] {
        kb.write(WriteRequest { path: path.into(), content: content.into(), ..Default::default() }).await.unwrap();
    }
    let other = kb.restricted(gaia_kb::ReadAccess::new(Arc::new(|p: &str| !p.starts_with("users/a/"))));
    // Links and backlinks resolve among what the reader may read.
    let l = other.links("Places/Lighthouse.md").unwrap();
    assert_eq!(l[0].path.as_deref(), Some("Places/Harbour Town.md"));
    let l = other.links("Places/Harbour Town.md").unwrap();
    assert_eq!(l[0].path.as_deref(), Some("Places/Lighthouse.md"));
    let b: Vec<_> = other.backlinks("Places/Harbour Town.md").unwrap().into_iter().map(|b| b.path).collect();
    assert_eq!(b, [Some("Places/Lighthouse.md".to_string())]);
    assert_eq!(other.read("Harbour").await.unwrap().path.as_str(), "Places/Harbour Town.md");
    assert_eq!(other.resolve("Lighthouse").as_deref(), Some("Places/Lighthouse.md"));
    // The owner's view (and the unrestricted one) still resolves to the private note.
    assert_eq!(kb.resolve("Harbour").as_deref(), Some("users/a/H.md"));
    // context by a private title: exactly as for a name that does not exist.
    let secret = other.context("Secret Plan", 4000).unwrap();
    let none = other.context("Nothing Such", 4000).unwrap();
    assert!(secret.documents.is_empty() && none.documents.is_empty());
    assert_eq!((secret.omitted, none.omitted), (Vec::<String>::new(), Vec::new()));
    let c = other.context("Harbour", 4000).unwrap();
    assert_eq!(c.documents[0].path, "Places/Harbour Town.md");
    assert!(c.documents.iter().all(|d| !d.path.starts_with("users/")));
    // Folders and tags a reader may not read are not topics for them either.
    assert!(other.context("users/a", 4000).unwrap().documents.is_empty());
}

/// A caller that goes away mid-edit (a client disconnecting drops the request's future) must not leave
/// the documents in memory behind what was saved: once started, an edit runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_whose_caller_goes_away_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    std::fs::create_dir_all(&root).unwrap();
    common::git(&root, &["init", "-q", "-b", "main"]);
    let kb = Kb::open(KbConfig { root: root.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    for i in 0..20u64 {
        let path = format!("users/u1/dropped-{i}.md");
        let content = format!("# Dropped {i}\nThe ferryman's ledger, page {i}.\n");
        let edit = kb.write(WriteRequest { path: path.clone(), content: content.clone(), ..Default::default() });
        // Given up on after a few hundred microseconds: somewhere in the middle of the edit, or before.
        let _ = tokio::time::timeout(std::time::Duration::from_micros(100 * i), edit).await;
        // Whatever happened, the file and the documents in memory agree once the edit is over.
        let mut agreed = false;
        for _ in 0..250 {
            let on_disk = std::fs::read_to_string(root.join(&path)).ok();
            let in_memory = kb.read(&path).await.ok().map(|d| d.content.clone());
            if on_disk == in_memory {
                agreed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(agreed, "{path}: saved but not in memory (or the other way round)");
    }
}
