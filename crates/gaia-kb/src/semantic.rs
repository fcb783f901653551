//! Semantic search: notes cut into chunks along headings (`chunk`), embedded in the
//! background by the configured [`Embedder`], their vectors kept in a [`VectorStore`] (the database:
//! every instance shares them, and a chunk that did not change is never embedded again), and searched
//! in process (`vectors`: every vector compared, through a copy quantized to bytes, while that is the
//! fastest; an HNSW graph, with `hnsw_rs`, above) and saved beside the search index.
//!
//! [`Kb::enable_semantic`](crate::kb::Kb::enable_semantic) starts the indexer: after every sync and
//! edit it re-chunks the notes whose version changed, takes the vectors the store already has, embeds
//! the rest in batches, and updates the index. A failing model is retried with backoff; what was
//! indexed stays searchable meanwhile. `semantic` search ranks notes by their best chunk's cosine
//! similarity; `hybrid` fuses that ranking with BM25's (reciprocal rank fusion). Both see only what
//! the caller may read.

use crate::chunk::{chunks, Chunk};
use crate::document::Document;
use crate::error::{KbError, Result};
use crate::vectors::{ChunkIndex, Found};
use chrono::{DateTime, Utc};
use gaia_core::vectors::{unit, EmbedError};
pub use gaia_core::vectors::{Embedder, HashEmbedder, MemoryVectors, VectorStore};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Chunks looked up and inserted together by the indexer.
const GROUP_CHUNKS: usize = 512;
/// Longest wait between two attempts after the model failed.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Least time between two saves of the index.
const SAVE_EVERY: Duration = Duration::from_secs(30);
/// Most results of a semantic or hybrid search.
pub const MAX_SEMANTIC_LIMIT: usize = 100;
/// Candidates taken from each ranking before hybrid fusion.
const FUSION_DEPTH: usize = 50;
/// Reciprocal rank fusion's constant (the usual 60).
const RRF_K: f32 = 60.0;
/// Longest query embedded, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;
/// Characters of a chunk shown as a hit's snippet.
const SNIPPET_CHARS: usize = 240;

/// How to rank a search by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeaningMode {
    /// By the vectors alone.
    Semantic,
    /// BM25 and the vectors, fused.
    Hybrid,
}

/// A semantic or hybrid search result: a note, with its section that matched best.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SemanticHit {
    /// Vault path.
    pub path: String,
    /// Title.
    pub title: String,
    /// The headings above the best section (` > `-joined; empty before the first heading).
    pub heading: String,
    /// Semantic: the cosine similarity of the best chunk. Hybrid: the fused score (higher is better).
    pub score: f32,
    /// The start of the best section (HTML-escaped; the first section for a hybrid hit BM25 alone found).
    pub snippet: String,
}

/// Where semantic indexing stands (`/api/v1/kb/status`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SemanticStatus {
    /// The embedding space (`provider/model@dims`, or the test fallback's).
    pub model: String,
    /// Whether the embedder is the word-hashing test fallback (not semantic).
    pub test_fallback: bool,
    /// `indexing` (notes wait to be embedded), `ready`, or `failing` (the last attempt failed; it is
    /// retried).
    pub state: String,
    /// Notes indexed.
    pub notes: usize,
    /// Notes waiting (changed or new since they were indexed).
    pub notes_pending: usize,
    /// Chunks in the index.
    pub chunks: usize,
    /// How the index is searched: `scan` (every vector compared, through a copy quantized to
    /// bytes, the best compared again exactly) or `graph` (HNSW, once the chunks are many).
    pub search: String,
    /// Chunks this instance embedded since it started.
    pub embedded: u64,
    /// Chunks whose vector was already stored (by this or another instance) and was not embedded again.
    pub reused: u64,
    /// Chunks the model refused while it embedded others (too long for it, say): left out of the
    /// index until their note changes.
    pub skipped: u64,
    /// The last failure, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// End of the last indexing pass that changed something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_indexed: Option<DateTime<Utc>>,
}

/// A read filter that can go to a blocking thread.
pub(crate) type Allow = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What the indexer needs.
pub(crate) struct Setup {
    pub embedder: Arc<dyn Embedder>,
    pub store: Arc<dyn VectorStore>,
    /// The store's scope: `kb:<name>`.
    pub scope: String,
    /// Where the index is saved (`None`: not saved).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Path → version of the notes in the index.
    indexed: HashMap<String, String>,
    pending: usize,
    embedded: u64,
    reused: u64,
    last_error: Option<String>,
    last_indexed: Option<DateTime<Utc>>,
    /// Chunks the model refused (left out until their note changes).
    skipped: u64,
    /// The stored vectors of removed chunks were cleared (once per start).
    pruned: bool,
}

/// The semantic part of a knowledge base.
#[derive(Default)]
pub(crate) struct Semantic {
    setup: RwLock<Option<Arc<Setup>>>,
    index: RwLock<Option<Arc<ChunkIndex>>>,
    progress: Mutex<Progress>,
    wake: tokio::sync::Notify,
    /// One pass at a time.
    passing: tokio::sync::Mutex<()>,
    /// The index changed since it was last saved.
    dirty: std::sync::atomic::AtomicBool,
    /// Candidates a graph search explores (0: the default, [`crate::vectors::EF_SEARCH`]).
    width: std::sync::atomic::AtomicUsize,
    /// Live chunks above which the index is searched through a graph, plus one (0: the default,
    /// [`crate::vectors::default_graph_above`]).
    graph_above: std::sync::atomic::AtomicUsize,
}

fn not_configured() -> KbError {
    KbError::Unavailable(
        "semantic and hybrid search need an embedding model: set `[embeddings] model` (for example \
         \"text-embedding-3-small\", or \"ollama/nomic-embed-text\": any model of a configured provider that \
         serves /v1/embeddings), or GAIA_EMBEDDINGS__MODEL"
            .into(),
    )
}

fn embed_error(e: EmbedError) -> KbError {
    match e {
        EmbedError::NotConfigured(_) => not_configured(),
        other => KbError::Unavailable(other.to_string()),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn excerpt(c: &Chunk) -> String {
    let t = c.section.trim();
    let mut s: String = t.chars().take(SNIPPET_CHARS).collect();
    if t.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    escape(&s)
}

impl Semantic {
    pub(crate) fn setup(&self) -> Option<Arc<Setup>> {
        self.setup.read().expect("semantic lock").clone()
    }

    pub(crate) fn index(&self) -> Option<Arc<ChunkIndex>> {
        self.index.read().expect("semantic lock").clone()
    }

    /// Installs the setup (the index and progress start over).
    pub(crate) fn configure(&self, setup: Setup) {
        *self.setup.write().expect("semantic lock") = Some(Arc::new(setup));
        *self.index.write().expect("semantic lock") = None;
        *self.progress.lock().expect("semantic lock") = Progress::default();
    }

    /// Tells the indexer the notes changed.
    pub(crate) fn touch(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    pub(crate) fn status(&self, documents: usize) -> Option<SemanticStatus> {
        let setup = self.setup()?;
        let chunks = self.index().map(|i| i.live()).unwrap_or(0);
        let graph = self.searches_graph();
        let p = self.progress.lock().expect("semantic lock");
        let state = if p.last_error.is_some() {
            "failing"
        } else if p.pending > 0 || p.indexed.len() < documents {
            "indexing"
        } else {
            "ready"
        };
        Some(SemanticStatus {
            model: setup.embedder.space(),
            test_fallback: setup.embedder.is_test_fallback(),
            state: state.into(),
            notes: p.indexed.len(),
            notes_pending: p.pending.max(documents.saturating_sub(p.indexed.len())),
            chunks,
            search: if graph { "graph" } else { "scan" }.into(),
            embedded: p.embedded,
            reused: p.reused,
            skipped: p.skipped,
            last_error: p.last_error.clone(),
            last_indexed: p.last_indexed,
        })
    }

    /// One indexing pass over `docs` (all the notes). A failure leaves what was indexed before it.
    pub(crate) async fn pass(&self, docs: &[Arc<Document>]) -> std::result::Result<(), EmbedError> {
        let Some(setup) = self.setup() else { return Ok(()) };
        let _one = self.passing.lock().await;
        let space = setup.embedder.space();
        if self.index().is_none() {
            if let Some(dir) = setup.dir.clone() {
                let s = space.clone();
                let above = self.graph_above();
                let loaded =
                    tokio::task::spawn_blocking(move || ChunkIndex::load(&dir, &s, above)).await.ok().flatten();
                if let Some(ix) = loaded {
                    tracing::info!(chunks = ix.live(), "loaded the saved vector index");
                    *self.index.write().expect("semantic lock") = Some(Arc::new(ix));
                }
            }
        }
        let (changed, deleted): (Vec<Arc<Document>>, Vec<String>) = {
            let mut p = self.progress.lock().expect("semantic lock");
            let present: HashSet<&str> = docs.iter().map(|d| d.path.as_str()).collect();
            let changed: Vec<Arc<Document>> =
                docs.iter().filter(|d| p.indexed.get(d.path.as_str()) != Some(&d.version)).cloned().collect();
            let mut deleted: Vec<String> =
                p.indexed.keys().filter(|k| !present.contains(k.as_str())).cloned().collect();
            // Notes in a loaded index that are gone from the vault.
            if let Some(ix) = self.index() {
                deleted.extend(ix.paths().into_iter().filter(|k| !present.contains(k.as_str())));
            }
            p.pending = changed.len();
            (changed, deleted)
        };
        let mut touched = false;
        if !deleted.is_empty() {
            if let Some(ix) = self.index() {
                deleted.iter().for_each(|d| ix.remove(d));
            }
            let mut p = self.progress.lock().expect("semantic lock");
            deleted.iter().for_each(|d| {
                p.indexed.remove(d);
            });
            touched = true;
        }
        // Groups of notes, about GROUP_CHUNKS chunks each.
        let mut group: Vec<(Arc<Document>, Vec<Chunk>)> = Vec::new();
        let mut in_group = 0;
        let mut left = changed.len();
        for d in changed {
            let c = chunks(&d);
            in_group += c.len();
            group.push((d, c));
            left -= 1;
            if in_group >= GROUP_CHUNKS || left == 0 {
                self.index_group(&setup, &space, std::mem::take(&mut group)).await?;
                in_group = 0;
                touched = true;
                self.progress.lock().expect("semantic lock").pending = left;
            }
        }
        {
            let mut p = self.progress.lock().expect("semantic lock");
            p.last_error = None;
            p.pending = 0;
            if touched {
                p.last_indexed = Some(Utc::now());
                self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        if let Some(ix) = self.index().filter(|ix| ix.wants_rebuild()) {
            let fresh = tokio::task::spawn_blocking(move || ix.rebuilt())
                .await
                .map_err(|e| EmbedError::Failed(e.to_string()))?;
            *self.index.write().expect("semantic lock") = Some(Arc::new(fresh));
        }
        let prune = !self.progress.lock().expect("semantic lock").pruned;
        if prune {
            let all = docs.to_vec();
            let keep: HashSet<String> = tokio::task::spawn_blocking(move || {
                all.iter().flat_map(|d| chunks(d).into_iter().map(|c| c.hash)).collect()
            })
            .await
            .map_err(|e| EmbedError::Failed(e.to_string()))?;
            match setup.store.retain(&setup.scope, &space, &keep).await {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "cleared the stored vectors of chunks no longer in the vault")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot clear the stored vectors of removed chunks"),
            }
            self.progress.lock().expect("semantic lock").pruned = true;
        }
        Ok(())
    }

    async fn index_group(
        &self,
        setup: &Arc<Setup>,
        space: &str,
        group: Vec<(Arc<Document>, Vec<Chunk>)>,
    ) -> std::result::Result<(), EmbedError> {
        let ix = self.index();
        // The chunks that need a vector: those not already in the index for their note (counted, so
        // that a note with a section twice gets both).
        let mut need: Vec<String> = Vec::new();
        let mut texts: HashMap<String, String> = HashMap::new();
        for (d, cs) in &group {
            let mut have: HashMap<String, usize> = HashMap::new();
            for h in ix.as_ref().map(|ix| ix.hashes_of(d.path.as_str())).unwrap_or_default() {
                *have.entry(h).or_default() += 1;
            }
            for c in cs {
                match have.get_mut(&c.hash).filter(|n| **n > 0) {
                    Some(n) => *n -= 1,
                    None => {
                        if texts.insert(c.hash.clone(), c.text.clone()).is_none() {
                            need.push(c.hash.clone());
                        }
                    }
                }
            }
        }
        let mut vectors = setup.store.get(&setup.scope, space, &need).await?;
        // Stored vectors of another size than the index's (the model's size changed) are made again.
        if let Some(d) = ix.as_ref().map(|ix| ix.dims()) {
            vectors.retain(|_, v| v.len() == d);
        }
        let reused = vectors.len() as u64;
        let missing: Vec<String> = need.iter().filter(|h| !vectors.contains_key(*h)).cloned().collect();
        let (mut embedded, mut skipped, mut fresh_dims) = (0u64, 0u64, None);
        for batch in missing.chunks(setup.embedder.batch_size().max(1)) {
            let inputs: Vec<String> = batch.iter().map(|h| texts[h].clone()).collect();
            let out = embed_batch(setup.embedder.as_ref(), &inputs).await?;
            let mut items: Vec<(String, Vec<f32>)> = Vec::with_capacity(batch.len());
            for (h, v) in batch.iter().zip(out) {
                let Some(v) = v else {
                    skipped += 1;
                    continue;
                };
                if *fresh_dims.get_or_insert(v.len()) != v.len() {
                    return Err(EmbedError::Failed("the model answered vectors of different sizes".into()));
                }
                items.push((h.clone(), unit(v)));
            }
            setup.store.put(&setup.scope, space, &items).await?;
            embedded += items.len() as u64;
            vectors.extend(items);
        }
        if !self.current(setup) {
            return Err(EmbedError::Failed("semantic search was set up again".into()));
        }
        let dims = match fresh_dims.or(ix.as_ref().map(|ix| ix.dims())).or(vectors.values().next().map(Vec::len)) {
            Some(d) => d,
            None => {
                // Nothing to insert (every chunk already indexed): just record the versions.
                self.record(&group, reused, embedded, skipped);
                return Ok(());
            }
        };
        vectors.retain(|_, v| v.len() == dims);
        let ix = match ix.filter(|ix| ix.dims() == dims) {
            Some(ix) => ix,
            None => {
                // The first vectors, or the model's vectors changed size under the same name: a new
                // index, and every note indexed again (into it) by the next pass.
                let fresh = Arc::new(ChunkIndex::new(space, dims, self.graph_above()));
                let replaced = self.index.write().expect("semantic lock").replace(fresh.clone()).is_some();
                if replaced {
                    tracing::warn!(space, dims, "the model's vectors changed size; indexing every note again");
                    self.progress.lock().expect("semantic lock").indexed.clear();
                    self.wake.notify_one();
                }
                fresh
            }
        };
        let notes: Vec<crate::vectors::NoteChunks> = group
            .iter()
            .map(|(d, cs)| {
                let items = cs
                    .iter()
                    .map(|c| (c.heading.clone(), c.hash.clone(), vectors.get(&c.hash).cloned().unwrap_or_default()))
                    .collect();
                (d.path.as_str().to_string(), items)
            })
            .collect();
        let target = ix.clone();
        tokio::task::spawn_blocking(move || target.replace_many(notes))
            .await
            .map_err(|e| EmbedError::Failed(e.to_string()))?;
        self.record(&group, reused, embedded, skipped);
        Ok(())
    }

    /// Whether `setup` is still the one in use (not replaced by a later [`Semantic::configure`]).
    fn current(&self, setup: &Arc<Setup>) -> bool {
        self.setup().is_some_and(|s| Arc::ptr_eq(&s, setup))
    }

    fn record(&self, group: &[(Arc<Document>, Vec<Chunk>)], reused: u64, embedded: u64, skipped: u64) {
        let mut p = self.progress.lock().expect("semantic lock");
        for (d, _) in group {
            p.indexed.insert(d.path.as_str().to_string(), d.version.clone());
        }
        p.reused += reused;
        p.embedded += embedded;
        p.skipped += skipped;
    }

    pub(crate) fn failed(&self, e: &EmbedError) {
        self.progress.lock().expect("semantic lock").last_error = Some(e.to_string());
    }

    pub(crate) fn set_width(&self, ef: usize) {
        let ef = if ef == 0 { 0 } else { ef.clamp(16, 4096) };
        self.width.store(ef, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the live chunks above which the index is searched through a graph (`None`: the
    /// default), for the index built or loaded next.
    pub(crate) fn set_graph_above(&self, chunks: Option<usize>) {
        let v = chunks.map_or(0, |c| c.saturating_add(1));
        self.graph_above.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    fn graph_above(&self) -> Option<usize> {
        match self.graph_above.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            v => Some(v - 1),
        }
    }

    /// Whether the index is there and searched through its graph.
    pub(crate) fn searches_graph(&self) -> bool {
        self.index().is_some_and(|ix| ix.searches_graph())
    }

    /// Whether the index changed since it was last saved.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Saves the index if it changed since it was last saved (and is to be saved); never during a
    /// pass.
    pub(crate) async fn save(&self) {
        let _one = self.passing.lock().await;
        let (Some(setup), Some(ix)) = (self.setup(), self.index()) else { return };
        let Some(dir) = setup.dir.clone() else { return };
        if !self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let r = tokio::task::spawn_blocking(move || ix.save(&dir)).await;
        match r {
            Ok(Ok(())) => tracing::debug!("saved the vector index"),
            Ok(Err(e)) => {
                // Tried again after the next change.
                self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(error = %e, "cannot save the vector index")
            }
            Err(e) => tracing::warn!(error = %e, "cannot save the vector index"),
        }
    }

    /// The notes nearest `query` by meaning, best chunk per note (every chunk when not `per_note`),
    /// among the notes `allow` lets through; `exhaustive` compares every vector (for callers whose
    /// permissions are tested note by note, and to measure the graph search against). Scans run on a
    /// blocking thread.
    pub(crate) async fn nearest(
        &self,
        query: &str,
        limit: usize,
        allow: Allow,
        exhaustive: bool,
        per_note: bool,
    ) -> Result<Vec<Found>> {
        let setup = self.setup().ok_or_else(not_configured)?;
        let q = query.trim();
        if q.is_empty() {
            return Err(KbError::InvalidInput("the search query is empty".into()));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(KbError::InvalidInput(format!("the query may be at most {MAX_QUERY_CHARS} characters")));
        }
        let v = setup.embedder.embed(&[q.to_string()]).await.map_err(embed_error)?;
        let v = unit(v.into_iter().next().ok_or_else(|| KbError::Unavailable("the model returned no vector".into()))?);
        let Some(ix) = self.index() else { return Ok(Vec::new()) };
        // Several chunks of a note may be near: ask for more chunks than notes.
        let k = if per_note { (limit * 4).min(400).max(limit) } else { limit };
        let ef = match self.width.load(std::sync::atomic::Ordering::Relaxed) {
            0 => crate::vectors::EF_SEARCH,
            w => w,
        };
        let mut found = if exhaustive { Vec::new() } else { ix.search(&v, k, ef, allow.as_ref()) };
        if exhaustive || found.len() < k.min(ix.live()) {
            // A filter letting few chunks through starves a graph search: compare them all.
            let ix = ix.clone();
            found = tokio::task::spawn_blocking(move || ix.exact(&v, k, allow.as_ref()))
                .await
                .map_err(|e| KbError::Index(e.to_string()))?;
        }
        let mut seen = HashSet::new();
        found.retain(|f| !per_note || seen.insert(f.path.clone()));
        found.truncate(limit);
        Ok(found)
    }
}

/// The vectors of `inputs`, one per input; `None` for a text the model refuses while it embeds the
/// others (a batch that fails is tried text by text; when every text fails, the model is failing and
/// the error is returned).
async fn embed_batch(
    embedder: &dyn Embedder,
    inputs: &[String],
) -> std::result::Result<Vec<Option<Vec<f32>>>, EmbedError> {
    match embedder.embed(inputs).await {
        Ok(v) if v.len() == inputs.len() => Ok(v.into_iter().map(Some).collect()),
        Ok(v) => Err(EmbedError::Failed(format!("{} vectors for {} texts", v.len(), inputs.len()))),
        Err(e) if inputs.len() == 1 => Err(e),
        Err(e) => {
            let mut out = Vec::with_capacity(inputs.len());
            for t in inputs {
                match embedder.embed(std::slice::from_ref(t)).await {
                    Ok(mut v) if v.len() == 1 => out.push(v.pop()),
                    Ok(_) | Err(_) => out.push(None),
                }
            }
            if out.iter().all(Option::is_none) {
                return Err(e);
            }
            tracing::warn!(refused = out.iter().filter(|v| v.is_none()).count(), error = %e, "the embedding model refused some chunks; they are left out");
            Ok(out)
        }
    }
}

/// Semantic hits from what [`Semantic::nearest`] found, with their snippets when `snippets` (else
/// empty: see [`snippet`]).
pub(crate) fn hits(found: Vec<Found>, doc: impl Fn(&str) -> Option<Arc<Document>>, snippets: bool) -> Vec<SemanticHit> {
    found
        .into_iter()
        .filter_map(|f| {
            let d = doc(&f.path)?;
            let snippet = if snippets { snippet(&d, Some(&f.hash)) } else { String::new() };
            Some(SemanticHit { path: f.path, title: d.note.title.clone(), heading: f.heading, score: f.score, snippet })
        })
        .collect()
}

/// The start of the chunk of `d` whose hash is `hash`, or of its first chunk (a hit's snippet when
/// no chunk of it was found near).
pub(crate) fn snippet(d: &Document, hash: Option<&str>) -> String {
    let cs = chunks(d);
    hash.and_then(|h| cs.iter().find(|c| c.hash == h)).or(cs.first()).map(excerpt).unwrap_or_default()
}

/// Reciprocal rank fusion of BM25's ranking (path, title, snippet) and the vectors' (best first).
pub(crate) fn fuse(bm25: Vec<(String, String, String)>, vectors: Vec<SemanticHit>, limit: usize) -> Vec<SemanticHit> {
    let mut by_path: HashMap<String, SemanticHit> = HashMap::new();
    for (rank, mut h) in vectors.into_iter().enumerate() {
        h.score = 1.0 / (RRF_K + rank as f32 + 1.0);
        by_path.insert(h.path.clone(), h);
    }
    for (rank, (path, title, snippet)) in bm25.into_iter().enumerate() {
        let s = 1.0 / (RRF_K + rank as f32 + 1.0);
        let h = by_path.entry(path.clone()).or_insert_with(|| SemanticHit {
            path,
            title,
            heading: String::new(),
            score: 0.0,
            snippet: String::new(),
        });
        h.score += s;
        if !snippet.is_empty() {
            h.snippet = snippet;
        }
    }
    let mut out: Vec<SemanticHit> = by_path.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
    out.truncate(limit);
    out
}

/// How many candidates each ranking gives hybrid fusion.
pub(crate) fn fusion_depth(limit: usize) -> usize {
    FUSION_DEPTH.max(limit)
}

/// The indexer: a pass whenever the notes change, retried with backoff after a failure, the index
/// saved at most every [`SAVE_EVERY`]. Ends when `stop` fires or is dropped, or `docs` says the
/// knowledge base is gone.
pub(crate) async fn run(
    semantic: impl Fn() -> Option<(Arc<Semantic>, Vec<Arc<Document>>)>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_secs(1);
    let mut last_save = Instant::now();
    let mut retry_at: Option<Instant>;
    loop {
        let Some((s, docs)) = semantic() else { return };
        match s.pass(&docs).await {
            Ok(_) => {
                backoff = Duration::from_secs(1);
                retry_at = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "semantic indexing failed; retrying");
                s.failed(&e);
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if s.is_dirty() && last_save.elapsed() >= SAVE_EVERY {
            s.save().await;
            last_save = Instant::now();
        }
        let save_at = s.is_dirty().then(|| last_save + SAVE_EVERY);
        let until = [retry_at, save_at].into_iter().flatten().min();
        let sleep = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => {
                s.save().await;
                return;
            }
            _ = s.woken() => {}
            _ = sleep => {}
        }
        drop(s);
    }
}
