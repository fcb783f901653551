//! Helpers shared by the knowledge-base tests.
#![allow(dead_code)]

use gaia_kb::{Kb, SearchOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The paths of the first page of hits of a search for `q`, best first.
pub fn hits(kb: &Kb, q: &str) -> Vec<String> {
    kb.search(&SearchOptions { query: q.into(), ..Default::default() })
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.path)
        .collect()
}

/// `../shared/kb-fixtures/world` relative to the workspace root.
pub fn world_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kb-fixtures/world")
}

pub use gaia_core::testing::copy_dir;

/// A copy of the sample world vault in `dir/name` (a small built-in vault when `../shared` is absent).
pub fn world_vault(dir: &Path, name: &str) -> PathBuf {
    let dest = dir.join(name);
    let src = world_fixture();
    if src.exists() {
        copy_dir(&src, &dest);
    } else {
        panic!("the sample vault {} is missing", src.display());
    }
    dest
}

/// Runs `git` in `dir` with a fixed identity; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
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

/// A bare repository at `dir/remote.git` holding the world vault on branch `main`, and a working
/// clone of it at `dir/upstream` for making "remote" changes. Returns (file:// url, upstream clone).
pub fn world_remote(dir: &Path) -> (String, PathBuf) {
    let seed = world_vault(dir, "seed");
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "world"]);
    let bare = dir.join("remote.git");
    git(dir, &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()]);
    let upstream = dir.join("upstream");
    git(dir, &["clone", "-q", bare.to_str().unwrap(), upstream.to_str().unwrap()]);
    (format!("file://{}", bare.display()), upstream)
}
