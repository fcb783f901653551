//! Git working copies with gix: clone, fetch, fast-forward, commits of edits. Pushing and rebasing
//! local commits onto a moved remote use the `git` command-line tool, which gix cannot do yet.

use crate::error::{KbError, Result};
use base64::Engine;
use gix::bstr::ByteSlice;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

/// The identity of a commit's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// One change of a commit: `Some(text)` writes the file, `None` deletes it.
pub(crate) type Change = (String, Option<String>);

/// How the local branch relates to the remote one after a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SyncState {
    /// Nothing to do.
    UpToDate,
    /// The local branch moved forward to the remote's commit.
    FastForwarded,
    /// Local commits are not on the remote yet (they are pushed when pushing is on).
    Ahead,
    /// Both sides have new commits; local ones were rebased onto the remote's.
    Rebased,
}

/// What a sync changed in the working copy.
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeChanges {
    /// Files added or modified.
    pub changed: Vec<String>,
    /// Files removed.
    pub deleted: Vec<String>,
}

/// A git working copy managed by the knowledge base.
#[derive(Clone)]
pub(crate) struct GitRepo {
    root: PathBuf,
    remote: Option<String>,
    branch: String,
    token: Option<String>,
    committer: Author,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo").field("root", &self.root).field("branch", &self.branch).finish_non_exhaustive()
    }
}

/// An error and its sources, on one line (`clone: Transport handshake failed: HTTP 500 …`).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !m.is_empty() && !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = c.source();
    }
    out
}

fn git_err(what: &str, e: impl std::error::Error + 'static) -> KbError {
    KbError::Git(format!("{what}: {}", chain(&e)))
}

/// Replaces the user part of URLs (`https://user:token@host` → `https://***@host`).
fn redact_userinfo(text: &str) -> String {
    static URL_CREDS: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@").expect("valid regex"));
    URL_CREDS.replace_all(text, "${1}***@").into_owned()
}

/// Checks a path read from a git tree before it is written to or removed from the working copy:
/// relative, normalised, not inside `.git`, and not leading outside `root` through a symbolic link.
fn worktree_path(root: &Path, path: &str) -> Result<PathBuf> {
    let unsafe_path = || KbError::Git(format!("refusing the unsafe path {path:?} from the remote"));
    let vp = crate::path::VaultPath::parse(path).map_err(|_| unsafe_path())?;
    if vp.as_str() != path || path.split('/').any(|c| c.eq_ignore_ascii_case(".git")) {
        return Err(unsafe_path());
    }
    crate::fs::resolve_inside(root, &vp).map_err(|_| unsafe_path())
}

/// Whether the working-copy file at `full` holds one of `allowed` blobs (`None`: the file is absent).
fn worktree_matches(repo: &gix::Repository, full: &Path, allowed: &[Option<gix::ObjectId>]) -> Result<bool> {
    let found = match std::fs::symlink_metadata(full) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
        Ok(m) if !m.is_file() => return Ok(false),
        Ok(_) => {
            let data = std::fs::read(full)?;
            Some(
                gix::objs::compute_hash(repo.object_hash(), gix::objs::Kind::Blob, &data)
                    .map_err(|e| git_err("hash a file", e))?,
            )
        }
    };
    Ok(allowed.contains(&found))
}

/// Path → blob id of every file of a tree.
fn tree_files(repo: &gix::Repository, tree: Option<gix::ObjectId>) -> Result<BTreeMap<String, gix::ObjectId>> {
    let mut out = BTreeMap::new();
    let Some(tree) = tree else { return Ok(out) };
    let tree = repo.find_tree(tree).map_err(|e| git_err("read tree", e))?;
    let mut rec = gix::traverse::tree::Recorder::default();
    tree.traverse().breadthfirst(&mut rec).map_err(|e| git_err("walk tree", e))?;
    for entry in rec.records {
        if entry.mode.is_blob() {
            out.insert(entry.filepath.to_str_lossy().into_owned(), entry.oid);
        }
    }
    Ok(out)
}

impl GitRepo {
    pub(crate) fn new(
        root: &Path,
        remote: Option<String>,
        branch: String,
        token: Option<String>,
        committer: Author,
    ) -> Self {
        GitRepo { root: root.to_path_buf(), remote, branch, token, committer }
    }

    /// Whether `root` holds a git repository.
    pub(crate) fn exists(root: &Path) -> bool {
        root.join(".git").exists()
    }

    fn auth_header(&self) -> Option<String> {
        self.token.as_ref().map(|t| {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"));
            format!("Authorization: Basic {basic}")
        })
    }

    /// Configuration for gix: the token as an HTTP header (kept in memory, never written to
    /// `.git/config`), and no interactive credential prompt (a server has no terminal).
    fn overrides(&self) -> Vec<String> {
        let mut out = vec!["gitoxide.credentials.terminalPrompt=false".to_string()];
        out.extend(self.auth_header().map(|h| format!("http.extraHeader={h}")));
        out
    }

    /// Removes the token and any credentials written in a URL from a message.
    fn scrub(&self, text: &str) -> String {
        let mut out = redact_userinfo(text);
        if let Some(t) = self.token.as_deref().filter(|t| !t.is_empty()) {
            out = out.replace(t, "***");
        }
        if let Some(h) = self.auth_header() {
            if let Some(basic) = h.strip_prefix("Authorization: Basic ") {
                out = out.replace(basic, "***");
            }
        }
        out
    }

    /// `e` with secrets removed from its message (for errors of network operations).
    fn scrub_err(&self, e: KbError) -> KbError {
        match e {
            KbError::Git(m) => KbError::Git(self.scrub(&m)),
            KbError::Conflict(m) => KbError::Conflict(self.scrub(&m)),
            KbError::Unavailable(m) => KbError::Unavailable(self.scrub(&m)),
            other => other,
        }
    }

    fn open(&self) -> Result<gix::Repository> {
        let opts = gix::open::Options::default().config_overrides(self.overrides());
        gix::open_opts(&self.root, opts).map_err(|e| git_err("open repository", e))
    }

    fn remote_url(&self) -> Result<&str> {
        self.remote.as_deref().ok_or_else(|| KbError::Unavailable("no git remote is configured".into()))
    }

    /// Clones the remote into the (missing or empty) root folder.
    pub(crate) fn clone_remote(&self) -> Result<()> {
        self.clone_inner().map_err(|e| self.scrub_err(e))
    }

    fn clone_inner(&self) -> Result<()> {
        let url = self.remote_url()?;
        std::fs::create_dir_all(&self.root)?;
        let interrupt = AtomicBool::new(false);
        let mut prep = gix::prepare_clone(url, &self.root)
            .map_err(|e| git_err("clone", e))?
            .with_ref_name(Some(self.branch.as_str()))
            .map_err(|e| git_err("clone", e))?
            .with_in_memory_config_overrides(self.overrides());
        let (mut checkout, _) =
            prep.fetch_then_checkout(gix::progress::Discard, &interrupt).map_err(|e| git_err("clone", e))?;
        checkout.main_worktree(gix::progress::Discard, &interrupt).map_err(|e| git_err("checkout", e))?;
        Ok(())
    }

    /// Initialises an empty repository in root (for a vault without remote that should keep history).
    pub(crate) fn init(&self) -> Result<()> {
        gix::init(&self.root).map_err(|e| git_err("init", e))?;
        Ok(())
    }

    /// The commit HEAD points to, if any.
    pub(crate) fn head(&self) -> Result<Option<String>> {
        let repo = self.open()?;
        Ok(repo.head_id().ok().map(|id| id.to_string()))
    }

    fn head_and_tree(repo: &gix::Repository) -> Result<(Option<gix::ObjectId>, Option<gix::ObjectId>)> {
        match repo.head_commit() {
            Ok(c) => {
                let tree = c.tree_id().map_err(|e| git_err("read HEAD", e))?.detach();
                Ok((Some(c.id), Some(tree)))
            }
            Err(_) => Ok((None, None)),
        }
    }

    fn commit_tree(repo: &gix::Repository, commit: gix::ObjectId) -> Result<gix::ObjectId> {
        let c = repo.find_commit(commit).map_err(|e| git_err("read commit", e))?;
        Ok(c.tree_id().map_err(|e| git_err("read commit", e))?.detach())
    }

    /// Rewrites `.git/index` from a tree, so that the `git` tool sees a clean working copy.
    fn write_index(repo: &gix::Repository, tree: gix::ObjectId) -> Result<()> {
        let mut index = repo.index_from_tree(&tree).map_err(|e| git_err("index", e))?;
        index.write(Default::default()).map_err(|e| git_err("write index", e))?;
        Ok(())
    }

    /// Writes into the working copy the files that differ between two trees.
    fn apply_trees(
        &self,
        repo: &gix::Repository,
        old: Option<gix::ObjectId>,
        new: gix::ObjectId,
    ) -> Result<TreeChanges> {
        let before = tree_files(repo, old)?;
        let after = tree_files(repo, Some(new))?;
        // Check every path first, so that a refusal changes nothing: paths must stay inside the
        // working copy, and files must not hold uncommitted local changes (which a plain overwrite
        // would lose; `git merge --ff-only` refuses in the same way). A file already at the new
        // version is no local change: a fast-forward cut off halfway (files written, branch not moved)
        // is completed by the next sync.
        let mut dirty = Vec::new();
        for (path, id) in &after {
            if before.get(path) != Some(id) {
                let full = worktree_path(&self.root, path)?;
                if !worktree_matches(repo, &full, &[before.get(path).copied(), Some(*id)])? {
                    dirty.push(path.clone());
                }
            }
        }
        for (path, id) in &before {
            if !after.contains_key(path) {
                let full = worktree_path(&self.root, path)?;
                if !worktree_matches(repo, &full, &[Some(*id), None])? {
                    dirty.push(path.clone());
                }
            }
        }
        if !dirty.is_empty() {
            return Err(KbError::Conflict(format!(
                "the working copy has uncommitted changes to {} that the remote's changes would overwrite; \
                 nothing was changed (commit or discard them, then sync again)",
                dirty.join(", ")
            )));
        }
        let mut changes = TreeChanges::default();
        for (path, id) in &after {
            if before.get(path) != Some(id) {
                let blob = repo.find_object(*id).map_err(|e| git_err("read blob", e))?;
                let dest = worktree_path(&self.root, path)?;
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&dest, &blob.data)?;
                changes.changed.push(path.clone());
            }
        }
        for path in before.keys() {
            if !after.contains_key(path) {
                let dest = worktree_path(&self.root, path)?;
                match std::fs::remove_file(&dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                remove_empty_parents(&self.root, &dest);
                changes.deleted.push(path.clone());
            }
        }
        Ok(changes)
    }

    /// Fetches the remote branch and brings the working copy to it: a fast-forward when possible,
    /// a push of local commits when only the local side moved, a rebase of local commits otherwise
    /// (refused, with nothing changed, when the rebase conflicts).
    /// Fetches from the configured remote URL (which may have changed since the clone) into
    /// `refs/remotes/origin/<branch>`.
    pub(crate) fn sync(&self, push: bool) -> Result<(SyncState, TreeChanges)> {
        self.sync_inner(push).map_err(|e| self.scrub_err(e))
    }

    fn sync_inner(&self, push: bool) -> Result<(SyncState, TreeChanges)> {
        let url = self.remote_url()?;
        let repo = self.open()?;
        let interrupt = AtomicBool::new(false);
        let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", self.branch);
        let remote = repo
            .remote_at(url)
            .map_err(|e| git_err("remote", e))?
            .with_refspecs([refspec.as_str()], gix::remote::Direction::Fetch)
            .map_err(|e| git_err("remote", e))?;
        remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| git_err("connect", e))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| git_err("fetch", e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| git_err("fetch", e))?;
        let repo = self.open()?;
        let remote_ref = format!("refs/remotes/origin/{}", self.branch);
        let Ok(mut r) = repo.find_reference(remote_ref.as_str()) else {
            // The remote has no such branch yet: publish ours.
            if push && repo.head_id().is_ok() {
                self.push()?;
                return Ok((SyncState::Ahead, TreeChanges::default()));
            }
            return Ok((SyncState::UpToDate, TreeChanges::default()));
        };
        let theirs = r.peel_to_id().map_err(|e| git_err("remote branch", e))?.detach();
        let (ours, our_tree) = Self::head_and_tree(&repo)?;
        let Some(ours) = ours else {
            let new_tree = Self::commit_tree(&repo, theirs)?;
            let changes = self.apply_trees(&repo, None, new_tree)?;
            self.set_branch(&repo, theirs)?;
            Self::write_index(&repo, new_tree)?;
            return Ok((SyncState::FastForwarded, changes));
        };
        if ours == theirs {
            return Ok((SyncState::UpToDate, TreeChanges::default()));
        }
        let base = repo.merge_base(ours, theirs).map_err(|e| git_err("merge base", e))?.map(|id| id.detach());
        if base == Some(theirs) {
            if push {
                self.push()?;
            }
            return Ok((SyncState::Ahead, TreeChanges::default()));
        }
        if base == Some(ours) {
            let new_tree = Self::commit_tree(&repo, theirs)?;
            let changes = self.apply_trees(&repo, our_tree, new_tree)?;
            self.set_branch(&repo, theirs)?;
            Self::write_index(&repo, new_tree)?;
            return Ok((SyncState::FastForwarded, changes));
        }
        // Diverged: replay local commits on the remote's with the git tool.
        Self::write_index(&repo, our_tree.unwrap_or_else(|| gix::ObjectId::empty_tree(repo.object_hash())))?;
        if let Err(e) = self.git(&["rebase", &format!("origin/{}", self.branch)]) {
            let _ = self.git(&["rebase", "--abort"]);
            return Err(KbError::Conflict(format!(
                "local edits conflict with the remote branch and were kept unpublished ({e})"
            )));
        }
        let repo = self.open()?;
        let (_, rebased_tree) = Self::head_and_tree(&repo)?;
        let before = tree_files(&repo, our_tree)?;
        let after = tree_files(&repo, rebased_tree)?;
        let changes = TreeChanges {
            changed: after.iter().filter(|(p, id)| before.get(*p) != Some(*id)).map(|(p, _)| p.clone()).collect(),
            deleted: before.keys().filter(|p| !after.contains_key(*p)).cloned().collect(),
        };
        if push {
            self.push()?;
        }
        Ok((SyncState::Rebased, changes))
    }

    fn set_branch(&self, repo: &gix::Repository, id: gix::ObjectId) -> Result<()> {
        repo.reference(
            format!("refs/heads/{}", self.branch).as_str(),
            id,
            gix::refs::transaction::PreviousValue::Any,
            "gaia: sync",
        )
        .map_err(|e| git_err("update branch", e))?;
        // HEAD of a fresh `init` may point to another branch name; point it at ours.
        let head_path = repo.git_dir().join("HEAD");
        let want = format!("ref: refs/heads/{}\n", self.branch);
        if std::fs::read_to_string(&head_path).ok().as_deref() != Some(want.as_str()) {
            std::fs::write(head_path, want)?;
        }
        Ok(())
    }

    /// Commits `changes` (on top of HEAD) with `author`, and writes them to the working copy.
    pub(crate) fn commit(&self, changes: &[Change], message: &str, author: &Author) -> Result<String> {
        let id = self.commit_inner(changes, message, author, false)?;
        id.ok_or_else(|| KbError::Git("commit: nothing was committed".into()))
    }

    /// Like [`GitRepo::commit`], but makes no commit (and returns `None`) when `changes` leave HEAD's
    /// tree as it is.
    pub(crate) fn commit_if_changed(
        &self,
        changes: &[Change],
        message: &str,
        author: &Author,
    ) -> Result<Option<String>> {
        self.commit_inner(changes, message, author, true)
    }

    fn commit_inner(
        &self,
        changes: &[Change],
        message: &str,
        author: &Author,
        skip_unchanged: bool,
    ) -> Result<Option<String>> {
        let repo = self.open()?;
        let (head, head_tree) = Self::head_and_tree(&repo)?;
        let base = head_tree.unwrap_or_else(|| gix::ObjectId::empty_tree(repo.object_hash()));
        let mut editor = repo.edit_tree(base).map_err(|e| git_err("edit tree", e))?;
        for (path, content) in changes {
            match content {
                Some(text) => {
                    let blob = repo.write_blob(text.as_bytes()).map_err(|e| git_err("write blob", e))?.detach();
                    editor
                        .upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)
                        .map_err(|e| git_err("edit tree", e))?;
                }
                None => {
                    editor.remove(path.as_str()).map_err(|e| git_err("edit tree", e))?;
                }
            }
        }
        let tree = editor.write().map_err(|e| git_err("write tree", e))?.detach();
        if skip_unchanged && head_tree == Some(tree) {
            return Ok(None);
        }
        let now = gix::date::Time::now_local_or_utc();
        let sig = |a: &Author| gix::actor::Signature {
            name: a.name.as_str().into(),
            email: a.email.as_str().into(),
            time: now,
        };
        let (committer, author_sig) = (sig(&self.committer), sig(author));
        let mut b1 = gix::date::parse::TimeBuf::default();
        let mut b2 = gix::date::parse::TimeBuf::default();
        let reference = format!("refs/heads/{}", self.branch);
        let id = repo
            .commit_as(committer.to_ref(&mut b1), author_sig.to_ref(&mut b2), reference.as_str(), message, tree, head)
            .map_err(|e| git_err("commit", e))?
            .detach();
        self.set_branch(&repo, id)?;
        Self::write_index(&repo, tree)?;
        Ok(Some(id.to_string()))
    }

    /// Runs the `git` tool in the working copy, with the token (if any) passed through the environment.
    fn git(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.root).args(args);
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_COMMITTER_NAME", &self.committer.name)
            .env("GIT_COMMITTER_EMAIL", &self.committer.email);
        if let Some(h) = self.auth_header() {
            cmd.env("GIT_CONFIG_COUNT", "1").env("GIT_CONFIG_KEY_0", "http.extraHeader").env("GIT_CONFIG_VALUE_0", h);
        }
        let out = cmd.output().map_err(|e| git_err("cannot run the git tool", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(KbError::Git(format!("git {}: {}", args.first().unwrap_or(&""), self.scrub(stderr.trim()))))
        }
    }

    /// Pushes the local branch to the configured remote (with the `git` tool: gix cannot push), then
    /// records the pushed commit as `refs/remotes/origin/<branch>`.
    pub(crate) fn push(&self) -> Result<()> {
        let url = self.remote_url()?;
        let repo = self.open()?;
        let Ok(head) = repo.head_id().map(|id| id.detach()) else { return Ok(()) };
        self.git(&["push", "--porcelain", url, &format!("{head}:refs/heads/{}", self.branch)])
            .map_err(|e| self.scrub_err(e))?;
        repo.reference(
            format!("refs/remotes/origin/{}", self.branch).as_str(),
            head,
            gix::refs::transaction::PreviousValue::Any,
            "gaia: push",
        )
        .map_err(|e| git_err("update the remote-tracking branch", e))?;
        Ok(())
    }

    /// How many local commits the remote branch does not have (as of the last fetch or push);
    /// `None` without a remote.
    pub(crate) fn unpushed(&self) -> Result<Option<usize>> {
        if self.remote.is_none() {
            return Ok(None);
        }
        let repo = self.open()?;
        let Ok(head) = repo.head_id().map(|id| id.detach()) else { return Ok(Some(0)) };
        let tracking = repo
            .find_reference(format!("refs/remotes/origin/{}", self.branch).as_str())
            .ok()
            .and_then(|mut r| r.peel_to_id().ok().map(|id| id.detach()));
        let walk = repo.rev_walk([head]).with_hidden(tracking).all().map_err(|e| git_err("walk history", e))?;
        let mut n = 0;
        for info in walk {
            info.map_err(|e| git_err("walk history", e))?;
            n += 1;
        }
        Ok(Some(n))
    }
}

/// Removes `file`'s parent folders up to (not including) `root` while they are empty.
pub(crate) fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
