//! Git mode against a `file://` remote: clone, edits as commits by their authors, pushes, fast-forward
//! syncs that re-index only what changed, rebases of local commits, conflicts.

mod common;

use common::git;
use gaia_kb::{Author, Kb, KbConfig, KbError, SearchOptions, SyncState, WriteRequest};

fn hits(kb: &Kb, q: &str) -> Vec<String> {
    kb.search(&SearchOptions { query: q.into(), ..Default::default() })
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.path)
        .collect()
}

fn config(dir: &std::path::Path, url: &str) -> KbConfig {
    KbConfig { root: dir.join("clone"), remote: Some(url.to_string()), sync_interval_secs: 0, ..KbConfig::default() }
}

fn mara() -> Option<Author> {
    Some(Author { name: "Mara Quill".into(), email: "mara@example.com".into() })
}

#[tokio::test]
async fn clone_edit_push_and_fast_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(config(dir.path(), &url)).await.unwrap();
    let status = kb.status().await;
    assert_eq!(status.documents, 5);
    let head = status.commit.clone().unwrap();
    assert_eq!(head, git(&upstream, &["rev-parse", "HEAD"]).trim());

    // An edit is a commit by its author, pushed to the remote.
    let out = kb
        .write(WriteRequest {
            path: "Items/Flare Gun.md".into(),
            content: "# Flare Gun\nCalls the caravan.\n".into(),
            author: mara(),
            message: Some("Add the flare gun".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(out.pushed);
    let commit = out.commit.unwrap();
    git(&upstream, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        git(&upstream, &["log", "-1", "--format=%H|%an|%ae|%cn|%s"]).trim(),
        format!("{commit}|Mara Quill|mara@example.com|Gaia|Add the flare gun")
    );
    assert_eq!(
        std::fs::read_to_string(upstream.join("Items/Flare Gun.md")).unwrap(),
        "# Flare Gun\nCalls the caravan.\n"
    );
    // The working copy is clean for the git tool.
    assert_eq!(git(&dir.path().join("clone"), &["status", "--porcelain"]), "");

    // Someone else changes the remote: a sync fast-forwards and re-indexes only the changed files.
    std::fs::write(upstream.join("Rules/Weather Effects.md"), "# Weather Effects\nAcid rain burns.\n").unwrap();
    std::fs::write(upstream.join("Lore/Moon.md"), "# Moon\nThe moon is red tonight.\n").ok();
    std::fs::create_dir_all(upstream.join("Lore")).unwrap();
    std::fs::write(upstream.join("Lore/Moon.md"), "# Moon\nThe moon is red tonight.\n").unwrap();
    git(&upstream, &["rm", "-q", "Quests/First Light.md"]);
    git(&upstream, &["add", "-A"]);
    git(&upstream, &["commit", "-q", "-m", "remote changes"]);
    git(&upstream, &["push", "-q", "origin", "main"]);
    let report = kb.sync().await.unwrap();
    assert_eq!(report.state, Some(SyncState::FastForwarded));
    let mut changed = report.changed.clone();
    changed.sort();
    assert_eq!(changed, ["Lore/Moon.md", "Rules/Weather Effects.md"]);
    assert_eq!(report.deleted, ["Quests/First Light.md"]);
    assert_eq!(hits(&kb, "acid"), ["Rules/Weather Effects.md"]);
    assert_eq!(hits(&kb, "moon"), ["Lore/Moon.md"]);
    assert!(hits(&kb, "sunrise").is_empty());
    assert!(!dir.path().join("clone/Quests/First Light.md").exists());
    assert_eq!(report.commit.as_deref(), Some(git(&upstream, &["rev-parse", "HEAD"]).trim()));
    assert_eq!(kb.sync().await.unwrap().state, Some(SyncState::UpToDate));
    assert!(kb.status().await.last_sync.is_some());

    // Move and delete are commits too.
    let v = kb.read("Lore/Moon.md").await.unwrap().version.clone();
    kb.move_document("Lore/Moon.md", "Lore/Red Moon.md", Some(&v), mara()).await.unwrap();
    kb.delete("Items/Flare Gun.md", None, mara()).await.unwrap();
    git(&upstream, &["pull", "-q", "--ff-only"]);
    assert!(upstream.join("Lore/Red Moon.md").exists());
    assert!(!upstream.join("Lore/Moon.md").exists() && !upstream.join("Items").exists());
    assert_eq!(
        git(&upstream, &["log", "-2", "--format=%an %s"]).trim(),
        "Mara Quill Delete Items/Flare Gun.md\nMara Quill Move Lore/Moon.md to Lore/Red Moon.md"
    );
}

#[tokio::test]
async fn diverged_histories_are_rebased_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(KbConfig { push: false, ..config(dir.path(), &url) }).await.unwrap();
    // A local, unpushed edit, and a remote edit of another file.
    kb.write(WriteRequest {
        path: "Local.md".into(),
        content: "# Local\nlantern\n".into(),
        author: mara(),
        ..Default::default()
    })
    .await
    .unwrap();
    std::fs::write(upstream.join("Remote.md"), "# Remote\ncompass\n").unwrap();
    git(&upstream, &["add", "-A"]);
    git(&upstream, &["commit", "-q", "-m", "remote"]);
    git(&upstream, &["push", "-q", "origin", "main"]);
    let report = kb.sync().await.unwrap();
    assert_eq!(report.state, Some(SyncState::Rebased));
    assert_eq!(hits(&kb, "compass"), ["Remote.md"]);
    assert_eq!(hits(&kb, "lantern"), ["Local.md"]);
    let clone = dir.path().join("clone");
    assert_eq!(git(&clone, &["log", "-1", "--format=%an %s"]).trim(), "Mara Quill Create Local.md");
    assert_eq!(git(&clone, &["rev-parse", "HEAD~1"]).trim(), git(&upstream, &["rev-parse", "HEAD"]).trim());

    // Both sides change the same lines: the sync is refused and the local edit kept.
    let v = kb.read("README.md").await.unwrap().version.clone();
    kb.write(WriteRequest {
        path: "README.md".into(),
        content: "local readme\n".into(),
        version: Some(v),
        ..Default::default()
    })
    .await
    .unwrap();
    git(&upstream, &["pull", "-q", "--ff-only"]);
    std::fs::write(upstream.join("README.md"), "remote readme\n").unwrap();
    git(&upstream, &["commit", "-q", "-am", "remote readme"]);
    git(&upstream, &["push", "-q", "origin", "main"]);
    let err = kb.sync().await.unwrap_err();
    assert!(matches!(err, KbError::Conflict(_)), "{err:?}");
    assert_eq!(kb.read("README.md").await.unwrap().content, "local readme\n");
    assert!(kb.status().await.last_sync_error.unwrap().contains("conflict"));
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn bad_remotes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("file://{}/nope.git", dir.path().display());
    let err = Kb::open(config(dir.path(), &missing)).await.unwrap_err();
    assert!(matches!(err, KbError::Git(_)), "{err:?}");
    // A non-empty folder that is not a working copy is not clobbered.
    let (url, _) = common::world_remote(dir.path());
    std::fs::create_dir_all(dir.path().join("busy")).unwrap();
    std::fs::write(dir.path().join("busy/keep.md"), "mine").unwrap();
    let err = Kb::open(KbConfig { root: dir.path().join("busy"), ..config(dir.path(), &url) }).await.unwrap_err();
    assert!(matches!(err, KbError::Unavailable(_)), "{err:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join("busy/keep.md")).unwrap(), "mine");
}

#[tokio::test]
async fn local_repository_without_remote_keeps_history() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::world_vault(dir.path(), "vault");
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "init"]);
    let kb = Kb::open(KbConfig { root: root.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    let out = kb
        .write(WriteRequest { path: "New.md".into(), content: "new".into(), author: mara(), ..Default::default() })
        .await
        .unwrap();
    assert!(out.commit.is_some() && !out.pushed);
    assert_eq!(git(&root, &["log", "-1", "--format=%an"]).trim(), "Mara Quill");
    assert_eq!(git(&root, &["status", "--porcelain"]), "");
    // Without a remote, sync re-reads the folder.
    std::fs::write(root.join("Outside Edit.md"), "# Outside\nkraken").unwrap();
    let r = kb.sync().await.unwrap();
    assert_eq!(r.changed, ["Outside Edit.md"]);
    assert_eq!(hits(&kb, "kraken"), ["Outside Edit.md"]);
}
