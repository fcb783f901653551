//! `database` and `hybrid` modes, on SQLite and on PostgreSQL (when `GAIA_TEST_DATABASE_URL` is set).

mod common;

use gaia_core::testing::database_urls;
use gaia_kb::{Kb, KbConfig, KbError, KbStorageMode, SearchOptions, WriteRequest};

fn hits(kb: &Kb, q: &str) -> Vec<String> {
    kb.search(&SearchOptions { query: q.into(), ..Default::default() })
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.path)
        .collect()
}

fn db_config(name: &str) -> KbConfig {
    KbConfig { mode: KbStorageMode::Database, name: name.into(), sync_interval_secs: 0, ..KbConfig::default() }
}

#[tokio::test]
async fn database_mode_edits_and_conflicts() {
    for db in database_urls().await {
        let storage = db.storage().await;
        let b = db.backend;
        let kb = Kb::open_with_storage(db_config("world"), Some(storage.clone())).await.unwrap();
        let created = kb
            .write(WriteRequest {
                path: "Places/Harbor.md".into(),
                content: "---\ntags: dock\n---\n# Harbor\nFerries leave at dawn.".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(created.created && created.commit.is_none(), "{b}");
        assert_eq!(hits(&kb, "ferries"), ["Places/Harbor.md"], "{b}");
        let v1 = created.version.unwrap();
        // A second instance on the same database sees the document and detects the conflict.
        let other = Kb::open_with_storage(db_config("world"), Some(storage.clone())).await.unwrap();
        assert_eq!(hits(&other, "ferries"), ["Places/Harbor.md"], "{b}");
        let v2 = other
            .write(WriteRequest {
                path: "Places/Harbor.md".into(),
                content: "# Harbor\nFerries are cancelled.".into(),
                version: Some(v1.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .version
            .unwrap();
        let lost = kb
            .write(WriteRequest {
                path: "Places/Harbor.md".into(),
                content: "# Harbor\noverwritten".into(),
                version: Some(v1.clone()),
                ..Default::default()
            })
            .await;
        assert!(matches!(lost, Err(KbError::Conflict(_))), "{b}: {lost:?}");
        // Reads go to the database, so the first instance sees the other's edit at once…
        assert_eq!(kb.read("Places/Harbor.md").await.unwrap().version, v2, "{b}");
        // …and its index catches up on sync.
        kb.sync().await.unwrap();
        assert_eq!(hits(&kb, "cancelled"), ["Places/Harbor.md"], "{b}");
        // Another knowledge base in the same database is separate.
        let elsewhere = Kb::open_with_storage(db_config("other"), Some(storage.clone())).await.unwrap();
        assert_eq!(elsewhere.status().await.documents, 0, "{b}");
        // Move, delete, NUL, non-ASCII.
        assert!(matches!(
            kb.move_document("Places/Harbor.md", "Places/Port.md", Some(&v1), None).await,
            Err(KbError::Conflict(_))
        ));
        kb.move_document("Places/Harbor.md", "Places/Port.md", Some(&v2), None).await.unwrap();
        assert!(matches!(kb.read("Places/Harbor.md").await, Err(KbError::NotFound(_))), "{b}");
        assert_eq!(hits(&kb, "cancelled"), ["Places/Port.md"], "{b}");
        let nul = kb.write(WriteRequest { path: "n.md".into(), content: "a\0b".into(), ..Default::default() }).await;
        assert!(matches!(nul, Err(KbError::InvalidInput(_))), "{b}");
        kb.write(WriteRequest {
            path: "霧/カフェ.md".into(),
            content: "# カフェ\n霧の日".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(kb.read("霧/カフェ.md").await.unwrap().note.title, "カフェ", "{b}");
        kb.delete("Places/Port.md", None, None).await.unwrap();
        assert!(matches!(kb.delete("Places/Port.md", None, None).await, Err(KbError::NotFound(_))), "{b}");
        assert!(hits(&kb, "cancelled").is_empty(), "{b}");
        // Without a database the mode is refused clearly.
        assert!(matches!(Kb::open(db_config("x")).await, Err(KbError::Unavailable(_))));
    }
}

#[tokio::test]
async fn hybrid_mode_mirrors_to_git_and_imports_remote_changes() {
    for db in database_urls().await {
        let storage = db.storage().await;
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let (url, upstream) = common::world_remote(dir.path());
        let config = KbConfig {
            mode: KbStorageMode::Hybrid,
            root: dir.path().join("clone"),
            remote: Some(url),
            sync_interval_secs: 0,
            ..KbConfig::default()
        };
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        // The clone was imported into the empty database.
        assert_eq!(kb.status().await.documents, 5, "{b}");
        let out = kb
            .write(WriteRequest {
                path: "Items/Radio.md".into(),
                content: "# Radio\nStatic on channel 9.".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(out.commit.is_some() && out.pushed, "{b}");
        common::git(&upstream, &["pull", "-q", "--ff-only"]);
        assert!(upstream.join("Items/Radio.md").exists(), "{b}");
        // A remote change reaches the database on sync.
        std::fs::write(upstream.join("Items/Radio.md"), "# Radio\nStatic on channel 12.").unwrap();
        common::git(&upstream, &["commit", "-q", "-am", "channel"]);
        common::git(&upstream, &["push", "-q", "origin", "main"]);
        kb.sync().await.unwrap();
        let rows: (String,) = sqlx::query_as("SELECT content FROM kb_documents WHERE kb = $1 AND path = $2")
            .bind("default")
            .bind("Items/Radio.md")
            .fetch_one(storage.pool())
            .await
            .unwrap();
        assert!(rows.0.contains("channel 12"), "{b}");
        assert_eq!(hits(&kb, "12"), ["Items/Radio.md"], "{b}");
    }
}
