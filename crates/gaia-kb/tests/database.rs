//! `database` and `hybrid` modes, on SQLite and on PostgreSQL (when `GAIA_TEST_DATABASE_URL` is set).

use crate::common;
use common::hits;

use gaia_core::testing::database_urls;
use gaia_kb::{Author, Document, Kb, KbConfig, KbError, KbStorageMode, SyncState, VaultPath, WriteRequest};

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
        assert!(kb.status().await.unmirrored.is_empty(), "{b}: a committed edit leaves no record behind");
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

#[tokio::test]
async fn hybrid_mode_detects_conflicts_and_keeps_edits_when_git_fails() {
    for db in database_urls().await {
        let storage = db.storage().await;
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let (url, upstream) = common::world_remote(dir.path());
        let clone = dir.path().join("clone");
        let config = KbConfig {
            mode: KbStorageMode::Hybrid,
            name: "hybrid-failures".into(),
            root: clone.clone(),
            remote: Some(url),
            sync_interval_secs: 0,
            ..KbConfig::default()
        };
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        // Stale versions are conflicts for write, move and delete.
        let v = kb.read("README.md").await.unwrap().version.clone();
        let stale = "0".repeat(64);
        let w = kb
            .write(WriteRequest {
                path: "README.md".into(),
                content: "lost".into(),
                version: Some(stale.clone()),
                ..Default::default()
            })
            .await;
        assert!(matches!(w, Err(KbError::Conflict(_))), "{b}: {w:?}");
        let w = kb.write(WriteRequest { path: "README.md".into(), content: "lost".into(), ..Default::default() }).await;
        assert!(matches!(w, Err(KbError::Conflict(_))), "{b}: {w:?}");
        assert!(matches!(
            kb.move_document("README.md", "Home.md", Some(&stale), None).await,
            Err(KbError::Conflict(_))
        ));
        assert!(matches!(kb.delete("README.md", Some(&stale), None).await, Err(KbError::Conflict(_))));
        assert_eq!(kb.read("README.md").await.unwrap().version, v, "{b}");

        // The remote is unreachable: the edit is kept (database and local commit) and shown as unpushed.
        let (bare, away) = (dir.path().join("remote.git"), dir.path().join("away.git"));
        std::fs::rename(&bare, &away).unwrap();
        let out = kb
            .write(WriteRequest {
                path: "Items/Radio.md".into(),
                content: "# Radio\nStatic.".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(out.commit.is_some() && !out.pushed, "{b}: {out:?}");
        assert_eq!(kb.status().await.unpushed_commits, Some(1), "{b}");
        assert!(kb.sync().await.is_err(), "{b}");
        assert_eq!(kb.read("Items/Radio.md").await.unwrap().content, "# Radio\nStatic.", "{b}");

        // Committing fails too (the branch is locked): the database keeps the edits, /status lists them.
        let lock = clone.join(".git/refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        let out = kb
            .write(WriteRequest { path: "Items/Map.md".into(), content: "# Map\nNorth.".into(), ..Default::default() })
            .await
            .unwrap();
        assert!(out.commit.is_none() && !out.pushed, "{b}: {out:?}");
        let radio = kb.read("Items/Radio.md").await.unwrap().version.clone();
        kb.delete("Items/Radio.md", Some(&radio), None).await.unwrap();
        let status = kb.status().await;
        assert_eq!(status.unmirrored, ["Items/Map.md", "Items/Radio.md"], "{b}");
        assert!(status.last_sync_error.unwrap().contains("git mirror"), "{b}");
        assert_eq!(kb.read("Items/Map.md").await.unwrap().content, "# Map\nNorth.", "{b}");

        // Both come back: the next sync commits the pending edits and pushes everything.
        std::fs::remove_file(&lock).unwrap();
        std::fs::rename(&away, &bare).unwrap();
        kb.sync().await.unwrap();
        let status = kb.status().await;
        assert!(status.unmirrored.is_empty() && status.last_sync_error.is_none(), "{b}: {status:?}");
        assert_eq!(status.unpushed_commits, Some(0), "{b}");
        common::git(&upstream, &["pull", "-q", "--ff-only"]);
        assert_eq!(std::fs::read_to_string(upstream.join("Items/Map.md")).unwrap(), "# Map\nNorth.", "{b}");
        assert!(!upstream.join("Items/Radio.md").exists(), "{b}");
        assert_eq!(common::git(&clone, &["status", "--porcelain"]), "", "{b}");
    }
}

#[tokio::test]
async fn database_mode_delete_and_move_check_versions() {
    for db in database_urls().await {
        let storage = db.storage().await;
        let b = db.backend;
        let kb = Kb::open_with_storage(db_config("versions"), Some(storage.clone())).await.unwrap();
        let v1 = kb
            .write(WriteRequest { path: "a.md".into(), content: "one".into(), ..Default::default() })
            .await
            .unwrap()
            .version
            .unwrap();
        // Another instance changes it; the first one's delete and move with the old version fail.
        let other = Kb::open_with_storage(db_config("versions"), Some(storage.clone())).await.unwrap();
        other
            .write(WriteRequest {
                path: "a.md".into(),
                content: "two".into(),
                version: Some(v1.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(matches!(kb.delete("a.md", Some(&v1), None).await, Err(KbError::Conflict(_))), "{b}");
        assert!(matches!(kb.move_document("a.md", "b.md", Some(&v1), None).await, Err(KbError::Conflict(_))), "{b}");
        assert_eq!(kb.read("a.md").await.unwrap().content, "two", "{b}");
        // A path outside the vault is refused before the database is asked.
        let w = kb.write(WriteRequest { path: "..\\x.md".into(), content: "x".into(), ..Default::default() }).await;
        assert!(matches!(w, Err(KbError::Path(_))), "{b}: {w:?}");
    }
}

fn author(name: &str) -> Option<Author> {
    Some(Author { name: name.into(), email: format!("{}@example.com", name.to_lowercase()) })
}

fn hybrid_config(name: &str, root: &std::path::Path, remote: &str) -> KbConfig {
    KbConfig {
        mode: KbStorageMode::Hybrid,
        name: name.into(),
        root: root.to_path_buf(),
        remote: Some(remote.into()),
        sync_interval_secs: 0,
        ..KbConfig::default()
    }
}

/// Commits `path` (written or removed in `upstream`) and pushes it to the shared remote.
fn push_remote_change(upstream: &std::path::Path, path: &str, content: Option<&str>) {
    let full = upstream.join(path);
    match content {
        Some(text) => {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
        }
        None => std::fs::remove_file(&full).unwrap(),
    }
    common::git(upstream, &["add", "-A"]);
    common::git(upstream, &["commit", "-q", "-m", "remote change"]);
    common::git(upstream, &["push", "-q", "origin", "main"]);
}

#[tokio::test]
async fn hybrid_mode_unmirrored_edits_survive_a_restart_and_a_remote_change() {
    for db in database_urls().await {
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let (url, upstream) = common::world_remote(dir.path());
        let clone = dir.path().join("clone");
        let config = hybrid_config("restarts", &clone, &url);
        let storage = db.storage().await;
        let kb = Kb::open_with_storage(config.clone(), Some(storage.clone())).await.unwrap();
        // Git cannot commit (the branch is locked): the edits are kept in the database only.
        let lock = clone.join(".git/refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        let out = kb
            .write(WriteRequest {
                path: "Items/Map.md".into(),
                content: "# Map\nNorth.".into(),
                author: author("Alice"),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(out.commit.is_none() && !out.pushed, "{b}: {out:?}");
        let out = kb.move_document("Places/Safe House.md", "Places/Shelter.md", None, author("Bob")).await.unwrap();
        assert!(out.commit.is_none(), "{b}: {out:?}");
        let pending = ["Items/Map.md", "Places/Safe House.md", "Places/Shelter.md"];
        assert_eq!(kb.status().await.unmirrored, pending, "{b}");

        // Restart: the process ends; the new one connects to the same database and working copy. The
        // working copy even lost the files the failed edits wrote (as a fresh volume would), so only the
        // database knows about the edits.
        drop(kb);
        storage.close().await;
        common::git(&clone, &["checkout", "-q", "--", "."]);
        common::git(&clone, &["clean", "-q", "-f", "-d"]);
        assert_eq!(common::git(&clone, &["status", "--porcelain"]), "", "{b}");
        let storage = db.storage().await;
        let kb = Kb::open_with_storage(config.clone(), Some(storage.clone())).await.unwrap();
        assert_eq!(kb.status().await.unmirrored, pending, "{b}");
        assert_eq!(kb.read("Items/Map.md").await.unwrap().content, "# Map\nNorth.", "{b}");

        // The remote changes the same document. While git still cannot commit, a sync fails before it
        // takes anything in.
        push_remote_change(&upstream, "Items/Map.md", Some("# Map\nSouth."));
        assert!(kb.sync().await.is_err(), "{b}");
        assert_eq!(kb.status().await.unmirrored, pending, "{b}");
        assert_eq!(kb.read("Items/Map.md").await.unwrap().content, "# Map\nNorth.", "{b}");

        // Git works again: the edits are committed first, each with its author; the remote's change to
        // the same document then conflicts with Alice's commit, and her text stays.
        std::fs::remove_file(&lock).unwrap();
        let res = kb.sync().await;
        assert!(matches!(res, Err(KbError::Conflict(_))), "{b}: {res:?}");
        let status = kb.status().await;
        assert!(status.unmirrored.is_empty(), "{b}: {status:?}");
        assert_eq!(status.unpushed_commits, Some(2), "{b}: {status:?}");
        assert_eq!(kb.read("Items/Map.md").await.unwrap().content, "# Map\nNorth.", "{b}");
        assert!(matches!(kb.read("Places/Safe House.md").await, Err(KbError::NotFound(_))), "{b}");
        assert_eq!(
            common::git(&clone, &["log", "-2", "--format=%an <%ae> (%cn)|%s"]),
            "Bob <bob@example.com> (Gaia)|Move Places/Safe House.md to Places/Shelter.md\n\
             Alice <alice@example.com> (Gaia)|Create Items/Map.md\n",
            "{b}"
        );
        assert_eq!(std::fs::read_to_string(clone.join("Items/Map.md")).unwrap(), "# Map\nNorth.", "{b}");
        assert_eq!(common::git(&clone, &["status", "--porcelain"]), "", "{b}");
        // Another restart has nothing left to commit.
        drop(kb);
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        assert!(kb.status().await.unmirrored.is_empty(), "{b}");
    }
}

#[tokio::test]
async fn hybrid_mode_commits_remembered_edits_with_their_author_and_pushes_them() {
    for db in database_urls().await {
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let (url, upstream) = common::world_remote(dir.path());
        let clone = dir.path().join("clone");
        let config = hybrid_config("authors", &clone, &url);
        let storage = db.storage().await;
        let kb = Kb::open_with_storage(config.clone(), Some(storage.clone())).await.unwrap();
        let lock = clone.join(".git/refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        let v = kb.read("Quests/First Light.md").await.unwrap().version.clone();
        let out = kb
            .write(WriteRequest {
                path: "Quests/First Light.md".into(),
                content: "# First Light\nReach the tower before dawn.".into(),
                version: Some(v),
                author: author("Alice"),
                message: Some("Rewrite the quest".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(out.commit.is_none(), "{b}: {out:?}");
        kb.delete("Rules/Weather Effects.md", None, author("Carol")).await.unwrap();
        drop(kb);
        storage.close().await;

        let storage = db.storage().await;
        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        assert_eq!(kb.status().await.unmirrored, ["Quests/First Light.md", "Rules/Weather Effects.md"], "{b}");
        // The remote changes another document meanwhile; once git works, the sync commits the edits
        // first, rebases them onto the remote's commit and pushes them.
        push_remote_change(&upstream, "Characters/Dr. Mara Quill.md", Some("# Dr. Mara Quill\nLeft for the coast."));
        std::fs::remove_file(&lock).unwrap();
        let report = kb.sync().await.unwrap();
        assert_eq!(report.state, Some(SyncState::Rebased), "{b}: {report:?}");
        let status = kb.status().await;
        assert!(status.unmirrored.is_empty() && status.last_sync_error.is_none(), "{b}: {status:?}");
        assert_eq!(status.unpushed_commits, Some(0), "{b}: {status:?}");
        assert_eq!(
            kb.read("Quests/First Light.md").await.unwrap().content,
            "# First Light\nReach the tower before dawn.",
            "{b}"
        );
        assert_eq!(
            kb.read("Characters/Dr. Mara Quill.md").await.unwrap().content,
            "# Dr. Mara Quill\nLeft for the coast.",
            "{b}"
        );
        assert!(matches!(kb.read("Rules/Weather Effects.md").await, Err(KbError::NotFound(_))), "{b}");

        common::git(&upstream, &["pull", "-q", "--ff-only"]);
        let last = |path: &str| common::git(&upstream, &["log", "-1", "--format=%an <%ae> (%cn)|%s", "--", path]);
        assert_eq!(last("Quests/First Light.md"), "Alice <alice@example.com> (Gaia)|Rewrite the quest\n", "{b}");
        assert_eq!(
            last("Rules/Weather Effects.md"),
            "Carol <carol@example.com> (Gaia)|Delete Rules/Weather Effects.md\n",
            "{b}"
        );
        assert_eq!(
            std::fs::read_to_string(upstream.join("Quests/First Light.md")).unwrap(),
            "# First Light\nReach the tower before dawn.",
            "{b}"
        );
        assert!(!upstream.join("Rules/Weather Effects.md").exists(), "{b}");
    }
}

#[tokio::test]
async fn hybrid_mode_unmirrored_deletions_are_not_undone_and_any_instance_commits_them() {
    for db in database_urls().await {
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let (url, upstream) = common::world_remote(dir.path());
        let (clone, other_clone) = (dir.path().join("clone"), dir.path().join("other"));
        let storage = db.storage().await;
        let kb = Kb::open_with_storage(hybrid_config("shared", &clone, &url), Some(storage.clone())).await.unwrap();
        let lock = clone.join(".git/refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        let all: Vec<String> = kb.documents().iter().map(|d| d.path.as_str().to_string()).collect();
        assert_eq!(all.len(), 5, "{b}");
        for p in &all {
            kb.delete(p, None, author("Dana")).await.unwrap();
        }
        assert_eq!(kb.status().await.unmirrored, all, "{b}");
        // Reopened on the now empty database, the working copy (which still has the files in git) is
        // not imported again: that would undo the deletions.
        drop(kb);
        let kb = Kb::open_with_storage(hybrid_config("shared", &clone, &url), Some(storage.clone())).await.unwrap();
        let status = kb.status().await;
        assert_eq!((status.documents, &status.unmirrored), (0, &all), "{b}");

        // A second instance on the same database, with a working copy of its own, sees the pending
        // edits and its sync commits and pushes them.
        let other =
            Kb::open_with_storage(hybrid_config("shared", &other_clone, &url), Some(storage.clone())).await.unwrap();
        let status = other.status().await;
        assert_eq!((status.documents, &status.unmirrored), (0, &all), "{b}");
        other.sync().await.unwrap();
        assert!(other.status().await.unmirrored.is_empty(), "{b}");
        assert!(kb.status().await.unmirrored.is_empty(), "{b}");
        common::git(&upstream, &["pull", "-q", "--ff-only"]);
        for p in &all {
            assert!(!upstream.join(p).exists(), "{b}: {p}");
        }
        let authors = common::git(&upstream, &["log", "-5", "--format=%an"]);
        assert_eq!(authors, "Dana\n".repeat(5), "{b}");
        // The first instance's git works again: its sync takes in the (same) remote commits.
        std::fs::remove_file(&lock).unwrap();
        kb.sync().await.unwrap();
        assert_eq!(kb.status().await.documents, 0, "{b}");
        assert_eq!(common::git(&clone, &["status", "--porcelain"]), "", "{b}");
        assert_eq!(common::git(&clone, &["rev-parse", "HEAD"]), common::git(&upstream, &["rev-parse", "HEAD"]), "{b}");
    }
}

#[tokio::test]
async fn hybrid_mode_an_edit_cut_off_before_its_commit_is_committed_after_a_restart() {
    for db in database_urls().await {
        let storage = db.storage().await;
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let (url, upstream) = common::world_remote(dir.path());
        let config = hybrid_config("cut", &dir.path().join("clone"), &url);
        let kb = Kb::open_with_storage(config.clone(), Some(storage.clone())).await.unwrap();
        drop(kb);
        // The state a process leaves when it dies between an edit's database transaction and its git
        // commit: the new text and the edit's record, saved together.
        let text = "# Safe House\nA voice on channel 3.";
        let version = Document::new(VaultPath::parse("Places/Safe House.md").unwrap(), text.into(), None).version;
        let mut tx = storage.pool().begin().await.unwrap();
        let updated = sqlx::query("UPDATE kb_documents SET content = $1, hash = $4 WHERE kb = $2 AND path = $3")
            .bind(text)
            .bind("cut")
            .bind("Places/Safe House.md")
            .bind(version)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(updated.rows_affected(), 1, "{b}");
        sqlx::query(
            "INSERT INTO kb_unmirrored (kb, path, author_name, author_email, message, edited_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind("cut")
        .bind("Places/Safe House.md")
        .bind("Mira")
        .bind("mira@example.com")
        .bind("Update Places/Safe House.md")
        .bind(1_i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let kb = Kb::open_with_storage(config, Some(storage.clone())).await.unwrap();
        assert_eq!(kb.status().await.unmirrored, ["Places/Safe House.md"], "{b}");
        kb.sync().await.unwrap();
        assert!(kb.status().await.unmirrored.is_empty(), "{b}");
        common::git(&upstream, &["pull", "-q", "--ff-only"]);
        let text = std::fs::read_to_string(upstream.join("Places/Safe House.md")).unwrap();
        assert!(text.contains("channel 3"), "{b}: {text}");
        let log = common::git(&upstream, &["log", "-1", "--format=%an <%ae> %s", "--", "Places/Safe House.md"]);
        assert_eq!(log.trim(), "Mira <mira@example.com> Update Places/Safe House.md", "{b}");
    }
}
