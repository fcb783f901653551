//! Git mode against a `file://` remote: clone, edits as commits by their authors, pushes, fast-forward
//! syncs that re-index only what changed, rebases of local commits, conflicts.

use crate::common;

use common::{git, hits};
use gaia_kb::{Author, Kb, KbConfig, KbError, SyncState, WriteRequest};

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

/// A loopback HTTP server that records each request's head and answers every request with `status`.
fn http_trap(status: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            log.lock().unwrap().push(String::from_utf8_lossy(&buf).into_owned());
            let head = format!(
                "HTTP/1.1 {status}\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes());
        }
    });
    (format!("http://{addr}"), seen)
}

const TOKEN: &str = "ghp_SeCrEtToKeN123";

fn assert_no_secret(text: &str) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    assert!(!text.contains(TOKEN) && !text.contains(&basic), "the token leaked: {text}");
}

#[tokio::test]
async fn the_token_is_sent_to_https_remotes_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    for status in ["401 Unauthorized", "500 Internal Server Error"] {
        // Clone: the token goes in the Authorization header; the error does not show it.
        let (base, seen) = http_trap(status);
        let url = format!("{base}/studio/world.git");
        let root = dir.path().join(format!("clone-{}", &status[..3]));
        let cfg = KbConfig { token: Some(TOKEN.into()), root: root.clone(), ..config(dir.path(), &url) };
        let err = Kb::open(cfg).await.unwrap_err();
        assert!(matches!(err, KbError::Git(_)), "{err:?}");
        assert_no_secret(&format!("{err} {err:?}"));
        let heads = seen.lock().unwrap().clone();
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
        assert!(heads[0].contains(&format!("Authorization: Basic {basic}")), "{heads:?}");
        // A token written in the URL is hidden too.
        let url = format!("{}/studio/world.git", base.replace("http://", &format!("http://{TOKEN}@")));
        let root = dir.path().join(format!("inline-{}", &status[..3]));
        let err = Kb::open(KbConfig { root, ..config(dir.path(), &url) }).await.unwrap_err();
        assert_no_secret(&format!("{err} {err:?}"));
    }

    // Fetch: a working copy whose remote now fails (moved to a private host, wrong token…).
    let (url, _) = common::world_remote(dir.path());
    Kb::open(config(dir.path(), &url)).await.unwrap();
    for status in ["401 Unauthorized", "500 Internal Server Error"] {
        let (base, seen) = http_trap(status);
        for (remote, token) in [
            (format!("{base}/studio/world.git"), Some(TOKEN.to_string())),
            (format!("{}/studio/world.git", base.replace("http://", &format!("http://x-access-token:{TOKEN}@"))), None),
        ] {
            let cfg = KbConfig { token, ..config(dir.path(), &remote) };
            let debug = format!("{cfg:?}");
            let kb = Kb::open(cfg).await.unwrap();
            let err = kb.sync().await.unwrap_err();
            assert!(matches!(err, KbError::Git(_)), "{err:?}");
            assert_no_secret(&format!("{err} {err:?} {kb:?} {debug}"));
            let status = kb.status().await;
            assert!(status.last_sync_error.is_some() && status.last_sync.is_none());
            assert_no_secret(&serde_json::to_string(&status).unwrap());
            assert!(status.remote.unwrap().contains("***@127.0.0.1") || remote.starts_with(&base));
        }
        assert!(!seen.lock().unwrap().is_empty(), "the fetch reached the remote");
    }
    let git_config = std::fs::read_to_string(dir.path().join("clone/.git/config")).unwrap();
    assert_no_secret(&git_config);
}

#[tokio::test]
async fn clones_into_an_existing_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    std::fs::create_dir_all(dir.path().join("clone")).unwrap();
    let kb = Kb::open(config(dir.path(), &url)).await.unwrap();
    let status = kb.status().await;
    assert_eq!(status.documents, 5);
    assert_eq!(status.commit.as_deref(), Some(git(&upstream, &["rev-parse", "HEAD"]).trim()));
    assert_eq!(status.unpushed_commits, Some(0));
    assert_eq!(git(&dir.path().join("clone"), &["status", "--porcelain"]), "");
}

/// Commits and pushes `files` (path, text) in the upstream clone.
fn remote_commit(upstream: &std::path::Path, files: &[(&str, &str)], message: &str) {
    for (p, text) in files {
        let full = upstream.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    git(upstream, &["add", "-A"]);
    git(upstream, &["commit", "-q", "-m", message]);
    git(upstream, &["push", "-q", "origin", "main"]);
}

#[tokio::test]
async fn uncommitted_local_changes_are_never_overwritten_by_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(config(dir.path(), &url)).await.unwrap();
    let clone = dir.path().join("clone");
    // Someone edits a file in the working copy by hand; the remote changes the same file.
    std::fs::write(clone.join("README.md"), "hand edit\n").unwrap();
    remote_commit(&upstream, &[("README.md", "remote edit\n"), ("Other.md", "# Other\n")], "remote");
    let err = kb.sync().await.unwrap_err();
    assert!(matches!(&err, KbError::Conflict(m) if m.contains("README.md")), "{err:?}");
    assert_eq!(std::fs::read_to_string(clone.join("README.md")).unwrap(), "hand edit\n");
    assert!(!clone.join("Other.md").exists(), "nothing is applied when a file is refused");
    assert!(kb.status().await.last_sync_error.unwrap().contains("uncommitted"));
    // An untracked local file where the remote adds one is kept as well.
    git(&clone, &["checkout", "--", "README.md"]);
    std::fs::write(clone.join("Notes.md"), "mine\n").unwrap();
    remote_commit(&upstream, &[("Notes.md", "theirs\n")], "notes");
    assert!(matches!(kb.sync().await, Err(KbError::Conflict(_))));
    assert_eq!(std::fs::read_to_string(clone.join("Notes.md")).unwrap(), "mine\n");
    // Once the local changes are gone, the sync goes through.
    std::fs::remove_file(clone.join("Notes.md")).unwrap();
    assert_eq!(kb.sync().await.unwrap().state, Some(SyncState::FastForwarded));
    assert_eq!(kb.read("Notes.md").await.unwrap().content, "theirs\n");
    assert_eq!(kb.read("README.md").await.unwrap().content, "remote edit\n");
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn a_fast_forward_cut_off_halfway_is_completed_by_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(config(dir.path(), &url)).await.unwrap();
    let clone = dir.path().join("clone");
    remote_commit(&upstream, &[("README.md", "remote edit\n"), ("Places/Dock.md", "# Dock\nBoats.\n")], "remote");
    // What a fast-forward leaves when it stops after writing some files and before moving the
    // branch (a full disk, a killed process): one file at the remote's text, one deleted, HEAD old.
    std::fs::write(clone.join("README.md"), "remote edit\n").unwrap();
    git(&upstream, &["rm", "-q", "Places/Safe House.md"]);
    git(&upstream, &["commit", "-q", "-m", "remove the safe house"]);
    git(&upstream, &["push", "-q", "origin", "main"]);
    std::fs::remove_file(clone.join("Places/Safe House.md")).unwrap();
    let head_before = git(&clone, &["rev-parse", "HEAD"]);
    // The files already at the remote's version are not local changes: the sync completes.
    let report = kb.sync().await.unwrap();
    assert_eq!(report.state, Some(SyncState::FastForwarded));
    assert_ne!(git(&clone, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
    assert_eq!(kb.read("Places/Dock.md").await.unwrap().content, "# Dock\nBoats.\n");
    assert_eq!(kb.read("README.md").await.unwrap().content, "remote edit\n");
    assert!(matches!(kb.read("Places/Safe House.md").await, Err(KbError::NotFound(_))));
    assert_eq!(hits(&kb, "boats"), ["Places/Dock.md"]);
}

#[tokio::test]
async fn a_remote_cannot_write_through_a_symlink_out_of_the_working_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(config(dir.path(), &url)).await.unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("clone/Leak")).unwrap();
    remote_commit(&upstream, &[("Leak/x.md", "pwned")], "leak");
    let err = kb.sync().await.unwrap_err();
    assert!(err.to_string().contains("unsafe path"), "{err}");
    assert!(!outside.join("x.md").exists());
}

#[tokio::test]
async fn a_failed_push_is_kept_shown_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(config(dir.path(), &url)).await.unwrap();
    // The remote becomes unreachable.
    let bare = dir.path().join("remote.git");
    let away = dir.path().join("away.git");
    std::fs::rename(&bare, &away).unwrap();
    let out = kb
        .write(WriteRequest {
            path: "Offline.md".into(),
            content: "# Offline\n".into(),
            author: mara(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(out.commit.is_some() && !out.pushed, "{out:?}");
    assert_eq!(kb.status().await.unpushed_commits, Some(1));
    assert!(kb.sync().await.is_err());
    let status = kb.status().await;
    assert!(status.last_sync_error.is_some());
    assert_eq!(status.unpushed_commits, Some(1));
    // Back online: the next sync pushes.
    std::fs::rename(&away, &bare).unwrap();
    assert_eq!(kb.sync().await.unwrap().state, Some(SyncState::Ahead));
    let status = kb.status().await;
    assert_eq!((status.unpushed_commits, status.last_sync_error), (Some(0), None));
    git(&upstream, &["pull", "-q", "--ff-only"]);
    assert_eq!(git(&upstream, &["log", "-1", "--format=%an %s"]).trim(), "Mara Quill Create Offline.md");
}

#[tokio::test]
async fn the_periodic_sync_runs_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (url, upstream) = common::world_remote(dir.path());
    let kb = Kb::open(KbConfig { sync_interval_secs: 1, ..config(dir.path(), &url) }).await.unwrap();
    let mut syncs = kb.subscribe_syncs();
    let handle = kb.spawn_sync_loop().expect("a loop with a remote and an interval");
    remote_commit(&upstream, &[("Lore/Tide.md", "# Tide\nThe tide brings crabs.")], "tide");
    let wait = std::time::Duration::from_secs(120);
    loop {
        let report = tokio::time::timeout(wait, syncs.recv()).await.expect("a periodic sync").unwrap();
        if report.state == Some(SyncState::FastForwarded) {
            assert_eq!(report.changed, ["Lore/Tide.md"]);
            break;
        }
    }
    assert_eq!(hits(&kb, "crabs"), ["Lore/Tide.md"]);
    assert!(kb.stop_sync_loop());
    tokio::time::timeout(wait, handle).await.expect("the loop ends").unwrap();
    assert!(!kb.stop_sync_loop());
    // A loop also ends when the knowledge base is dropped.
    let handle = kb.spawn_sync_loop().unwrap();
    drop(kb);
    tokio::time::timeout(wait, handle).await.expect("the loop ends with the knowledge base").unwrap();
    // No loop without an interval or without anything to sync from.
    let plain = Kb::open(KbConfig { root: dir.path().join("plain"), sync_interval_secs: 1, ..KbConfig::default() });
    assert!(plain.await.unwrap().spawn_sync_loop().is_none());
}
