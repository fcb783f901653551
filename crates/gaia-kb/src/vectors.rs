//! The nearest-neighbour index of semantic search: the chunks' unit vectors, with which note and
//! section each vector is, searched in one of two ways by the collection's size.
//!
//! - Up to [`SCAN_LIMIT`] numbers (chunks × size: 131,072 chunks of 256 numbers, 21,845 of 1,536),
//!   every vector is compared, through a copy quantized to bytes (a quarter of the memory to read):
//!   the best candidates of that pass are compared again exactly. Contiguous, it is faster than a
//!   graph search at this size and misses almost nothing (see BENCHMARKS.md, "Semantic search").
//! - Above, an HNSW graph (`hnsw_rs`) is built and searched: the cost of a search then grows with
//!   the logarithm of the collection, not with its size.
//!
//! A note edited in place gets its changed chunks added and its old ones marked dead (left out of
//! every search); when the dead pass a quarter of the index it is rebuilt from the live vectors.
//! The index (vectors, and the graph when there is one) is saved beside the search index and loaded
//! at start when it is of the same vector space and intact (checked by a digest of its files), else
//! rebuilt from the stored vectors.

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

/// Numbers (live chunks × vector size) up to which a search scans every vector instead of going
/// through a graph: a quantized scan of 2²⁵ numbers reads 32 MiB, about 1.5 ms on one core here.
pub(crate) const SCAN_LIMIT: usize = 1 << 25;
/// Candidates of the quantized scan compared again exactly, per result asked for (at least
/// [`RERANK_MIN`]).
const RERANK_PER_RESULT: usize = 4;
const RERANK_MIN: usize = 64;
/// Neighbours kept per node and layer (HNSW's M).
const MAX_CONNECTIONS: usize = 16;
/// Candidates explored while inserting.
const EF_CONSTRUCTION: usize = 200;
/// Layers of the graph.
const MAX_LAYERS: usize = 16;
/// Candidates explored per search by default, at least (more when more results are asked for).
pub(crate) const EF_SEARCH: usize = 128;
/// Saves made by this process (for unique folder names).
static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// File names of a saved index (in its folder).
const BASENAME: &str = "chunks";
const META: &str = "chunks.meta.json";
const ROWS: &str = "chunks.rows";

/// Cosine distance of unit vectors, `1 - a·b`, clamped at 0 (rounding can make `a·a` exceed 1), and
/// 1 for vectors of different sizes (which never happens: the index holds one size).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        if a.len() != b.len() {
            return 1.0;
        }
        (1.0 - gaia_core::vectors::dot(a, b)).max(0.0)
    }
}

/// A vector quantized to bytes: `x ≈ code × scale`, the scale making the largest number ±127.
fn quantize(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    codes.extend(v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    scale
}

/// The dot product of two quantized vectors of the same size (products summed in sixteen running
/// sums, so that the compiler uses vector instructions; each product fits 16 bits).
fn dot_codes(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// The `n` best of `scored` (score, id), best first (ties by id).
fn best(mut scored: Vec<(f32, usize)>, n: usize) -> Vec<(f32, usize)> {
    let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if scored.len() > n && n > 0 {
        scored.select_nth_unstable_by(n - 1, order);
        scored.truncate(n);
    }
    scored.sort_by(order);
    scored.truncate(n);
    scored
}

/// A chunk to index: its heading, content hash and unit vector.
pub(crate) type NewChunk = (String, String, Vec<f32>);
/// A note (its path) and its chunks to index.
pub(crate) type NoteChunks = (String, Vec<NewChunk>);
/// A live chunk of the index: its heading, content hash and data id.
type Placed = (String, String, usize);

/// What a vector of the index is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub path: String,
    pub heading: String,
    pub hash: String,
    pub live: bool,
}

#[derive(Debug, Default)]
struct Meta {
    /// By data id (the position).
    entries: Vec<Entry>,
    /// The live ids of each note.
    by_path: HashMap<String, Vec<usize>>,
    dead: usize,
    /// The vectors, `dims` numbers each, by data id (dead ones too, until a rebuild).
    rows: Vec<f32>,
    /// The vectors quantized, `dims` bytes each, and each one's scale.
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl Meta {
    fn push_row(&mut self, v: &[f32]) {
        self.rows.extend_from_slice(v);
        let s = quantize(v, &mut self.codes);
        self.scales.push(s);
    }

    /// Whether `id` is live and `allow` lets its note through, remembering the last note's answer
    /// (a note's chunks are next to each other).
    fn allowed<'a>(&'a self, id: usize, allow: &dyn Fn(&str) -> bool, last: &mut Option<(&'a str, bool)>) -> bool {
        let e = &self.entries[id];
        if !e.live {
            return false;
        }
        match last {
            Some((p, ok)) if *p == e.path.as_str() => *ok,
            _ => {
                let ok = allow(&e.path);
                *last = Some((e.path.as_str(), ok));
                ok
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    space: String,
    dims: usize,
    /// Whether the graph was saved with the vectors.
    #[serde(default)]
    graph: bool,
    /// SHA-256 of the vectors' file, then of the graph's files when saved.
    digest: String,
    entries: Vec<Entry>,
}

/// One hit of [`ChunkIndex::search`].
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub path: String,
    pub heading: String,
    pub hash: String,
    /// Cosine similarity.
    pub score: f32,
}

type Graph = Hnsw<'static, f32, UnitCosine>;

/// Vectors of chunks, searchable by similarity.
pub(crate) struct ChunkIndex {
    space: String,
    dims: usize,
    meta: RwLock<Meta>,
    /// Built once the live chunks pass `graph_above`.
    graph: RwLock<Option<Graph>>,
    /// Live chunks above which searches go through the graph.
    graph_above: usize,
    /// One change at a time (the graph is built from the vectors of a moment).
    writing: Mutex<()>,
}

impl std::fmt::Debug for ChunkIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkIndex").field("space", &self.space).field("dims", &self.dims).finish()
    }
}

fn new_graph(capacity: usize) -> Graph {
    let mut h = Hnsw::new(MAX_CONNECTIONS, capacity.max(1024), MAX_LAYERS, EF_CONSTRUCTION, UnitCosine);
    h.set_extend_candidates(false);
    h
}

/// Live chunks above which an index of vectors of `dims` numbers is searched through a graph, by
/// default.
pub(crate) fn default_graph_above(dims: usize) -> usize {
    SCAN_LIMIT / dims.max(1)
}

impl ChunkIndex {
    /// An empty index of vectors of `dims` numbers in `space`, searched through a graph once it has
    /// more than `graph_above` live chunks (`None`: [`default_graph_above`]).
    pub(crate) fn new(space: &str, dims: usize, graph_above: Option<usize>) -> ChunkIndex {
        ChunkIndex {
            space: space.to_string(),
            dims,
            meta: RwLock::new(Meta::default()),
            graph: RwLock::new(None),
            graph_above: graph_above.unwrap_or_else(|| default_graph_above(dims)),
            writing: Mutex::new(()),
        }
    }

    pub(crate) fn dims(&self) -> usize {
        self.dims
    }

    /// Live vectors.
    pub(crate) fn live(&self) -> usize {
        let m = self.meta.read().expect("index lock");
        m.entries.len() - m.dead
    }

    /// Whether the graph is built.
    pub(crate) fn has_graph(&self) -> bool {
        self.graph.read().expect("index lock").is_some()
    }

    /// Whether searches go through the graph now (built, and the live chunks above its threshold).
    pub(crate) fn searches_graph(&self) -> bool {
        self.has_graph() && self.live() > self.graph_above
    }

    /// The hashes of the live chunks of `path`.
    pub(crate) fn hashes_of(&self, path: &str) -> Vec<String> {
        let m = self.meta.read().expect("index lock");
        m.by_path.get(path).map(|ids| ids.iter().map(|i| m.entries[*i].hash.clone()).collect()).unwrap_or_default()
    }

    /// The paths with live chunks.
    pub(crate) fn paths(&self) -> Vec<String> {
        self.meta.read().expect("index lock").by_path.keys().cloned().collect()
    }

    /// Whether enough of the index is dead to rebuild it.
    pub(crate) fn wants_rebuild(&self) -> bool {
        let m = self.meta.read().expect("index lock");
        m.dead > 256 && m.dead * 4 > m.entries.len()
    }

    /// Makes `chunks` (heading, hash, unit vector) the chunks of `path`: those already there (same
    /// hash and heading) stay (their vector, which may be empty, is not used), the others are added,
    /// the old ones no longer there die. Vectors of another size are refused (left out, and logged).
    #[cfg(test)]
    pub(crate) fn replace(&self, path: &str, chunks: Vec<NewChunk>) {
        self.replace_many(vec![(path.to_string(), chunks)]);
    }

    /// [`ChunkIndex::replace`] for many notes (inserted into the graph in parallel).
    pub(crate) fn replace_many(&self, notes: Vec<NoteChunks>) {
        let _one = self.writing.lock().expect("index lock");
        let mut insert: Vec<usize> = Vec::new();
        {
            let mut m = self.meta.write().expect("index lock");
            for (path, chunks) in notes {
                let old = m.by_path.remove(&path).unwrap_or_default();
                let mut kept = Vec::new();
                let mut ids = Vec::new();
                for (heading, hash, v) in chunks {
                    if let Some(&id) = old.iter().find(|&&id| {
                        let e = &m.entries[id];
                        e.hash == hash && e.heading == heading && !kept.contains(&id)
                    }) {
                        kept.push(id);
                        ids.push(id);
                        continue;
                    }
                    if v.len() != self.dims || self.dims == 0 {
                        tracing::warn!(
                            path,
                            got = v.len(),
                            want = self.dims,
                            "a vector of the wrong size was left out"
                        );
                        continue;
                    }
                    let id = m.entries.len();
                    m.entries.push(Entry { path: path.clone(), heading, hash, live: true });
                    m.push_row(&v);
                    ids.push(id);
                    insert.push(id);
                }
                for id in old.into_iter().filter(|id| !kept.contains(id)) {
                    m.entries[id].live = false;
                    m.dead += 1;
                }
                if !ids.is_empty() {
                    m.by_path.insert(path, ids);
                }
            }
        }
        let graph = self.graph.read().expect("index lock");
        match graph.as_ref() {
            Some(g) => self.insert_rows(g, &insert),
            None => {
                drop(graph);
                self.build_graph_if_due();
            }
        }
    }

    /// Inserts the vectors `ids` into `g` (in parallel when they are many).
    fn insert_rows(&self, g: &Graph, ids: &[usize]) {
        let rows: Vec<(Vec<f32>, usize)> = {
            let m = self.meta.read().expect("index lock");
            ids.iter().map(|&id| (m.rows[id * self.dims..(id + 1) * self.dims].to_vec(), id)).collect()
        };
        match rows.len() {
            0 => {}
            1..=63 => rows.iter().for_each(|(v, id)| g.insert_slice((v.as_slice(), *id))),
            _ => {
                let refs: Vec<(&Vec<f32>, usize)> = rows.iter().map(|(v, id)| (v, *id)).collect();
                g.parallel_insert(&refs);
            }
        }
    }

    /// Builds the graph of the live vectors once they are more than `graph_above` (searches scan
    /// meanwhile). Called with `writing` held.
    fn build_graph_if_due(&self) {
        let (live, capacity) = {
            let m = self.meta.read().expect("index lock");
            let live: Vec<usize> = (0..m.entries.len()).filter(|&id| m.entries[id].live).collect();
            let n = m.entries.len();
            (live, n)
        };
        if live.len() <= self.graph_above || self.has_graph() {
            return;
        }
        tracing::info!(chunks = live.len(), "building the vector graph");
        let g = new_graph(capacity + capacity / 4);
        self.insert_rows(&g, &live);
        *self.graph.write().expect("index lock") = Some(g);
    }

    /// Removes the chunks of `path`.
    pub(crate) fn remove(&self, path: &str) {
        let _one = self.writing.lock().expect("index lock");
        let mut m = self.meta.write().expect("index lock");
        if let Some(ids) = m.by_path.remove(path) {
            for id in ids {
                m.entries[id].live = false;
                m.dead += 1;
            }
        }
    }

    fn found(m: &Meta, id: usize, score: f32) -> Option<Found> {
        let e = m.entries.get(id).filter(|e| e.live)?;
        Some(Found { path: e.path.clone(), heading: e.heading.clone(), hash: e.hash.clone(), score })
    }

    /// The `k` live chunks nearest `q` (a unit vector) among those `allow` lets through, best first:
    /// approximate. Below the graph's threshold, every vector's quantized copy is compared and the
    /// best `4k` (at least 64) compared again exactly; a filter that leaves too few of those makes a
    /// second scan that applies it to every vector. Through the graph, the graph is searched
    /// unfiltered (`hnsw_rs`'s filtered search explores far more of it) for more than `k`, and what
    /// may not be returned is dropped; when too much was, the search is widened twice. Fewer than
    /// `k` means the filter lets few through: the caller compares them all ([`ChunkIndex::exact`]).
    pub(crate) fn search(&self, q: &[f32], k: usize, ef: usize, allow: &(dyn Fn(&str) -> bool + Sync)) -> Vec<Found> {
        if q.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let graph = self.graph.read().expect("index lock");
        match graph.as_ref() {
            Some(g) if self.live() > self.graph_above => self.search_graph(g, q, k, ef, allow),
            _ => self.scan(q, k, allow),
        }
    }

    fn scan(&self, q: &[f32], k: usize, allow: &dyn Fn(&str) -> bool) -> Vec<Found> {
        let m = self.meta.read().expect("index lock");
        let d = self.dims;
        let mut qc = Vec::with_capacity(d);
        let qs = quantize(q, &mut qc);
        let rerank = (k * RERANK_PER_RESULT).max(RERANK_MIN);
        let approx = |filtered: bool| -> Vec<(f32, usize)> {
            let mut last = None;
            let scored = m
                .codes
                .chunks_exact(d)
                .enumerate()
                .filter(|(id, _)| if filtered { m.allowed(*id, allow, &mut last) } else { m.entries[*id].live })
                .map(|(id, c)| (qs * m.scales[id] * dot_codes(&qc, c) as f32, id))
                .collect();
            best(scored, rerank)
        };
        let exact = |cands: &[(f32, usize)]| -> Vec<(f32, usize)> {
            let mut last = None;
            let scored = cands
                .iter()
                .filter(|(_, id)| m.allowed(*id, allow, &mut last))
                .map(|&(_, id)| (gaia_core::vectors::dot(q, &m.rows[id * d..(id + 1) * d]), id))
                .collect();
            best(scored, k)
        };
        let cands = approx(false);
        let mut out = exact(&cands);
        if out.len() < k && cands.len() == rerank {
            out = exact(&approx(true));
        }
        out.into_iter().filter_map(|(s, id)| Self::found(&m, id, s)).collect()
    }

    fn search_graph(
        &self,
        g: &Graph,
        q: &[f32],
        k: usize,
        ef: usize,
        allow: &(dyn Fn(&str) -> bool + Sync),
    ) -> Vec<Found> {
        let m = self.meta.read().expect("index lock");
        let total = m.entries.len();
        let mut want = k + k / 2;
        loop {
            let hits = g.search(q, want, ef.max(want));
            let out: Vec<Found> = hits
                .into_iter()
                .filter(|n| m.entries.get(n.d_id).is_some_and(|e| e.live && allow(&e.path)))
                .filter_map(|n| Self::found(&m, n.d_id, 1.0 - n.distance))
                .take(k)
                .collect();
            if out.len() >= k || want >= total || want >= k * 16 {
                return out;
            }
            want *= 4;
        }
    }

    /// [`ChunkIndex::search`], exactly: every live vector compared (the reference the approximate
    /// search is measured against, and the search of callers who may read few notes).
    pub(crate) fn exact(&self, q: &[f32], k: usize, allow: &dyn Fn(&str) -> bool) -> Vec<Found> {
        if q.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let m = self.meta.read().expect("index lock");
        let mut last = None;
        let scored = m
            .rows
            .chunks_exact(self.dims)
            .enumerate()
            .filter(|(id, _)| m.allowed(*id, allow, &mut last))
            .map(|(id, row)| (gaia_core::vectors::dot(q, row), id))
            .collect();
        best(scored, k).into_iter().filter_map(|(s, id)| Self::found(&m, id, s)).collect()
    }

    /// A new index of the live chunks only (the dead left behind).
    pub(crate) fn rebuilt(&self) -> ChunkIndex {
        let notes: Vec<NoteChunks> = {
            let m = self.meta.read().expect("index lock");
            let d = self.dims;
            m.by_path
                .iter()
                .map(|(p, ids)| {
                    let placed: Vec<Placed> = ids
                        .iter()
                        .map(|id| (m.entries[*id].heading.clone(), m.entries[*id].hash.clone(), *id))
                        .collect();
                    let cs = placed
                        .into_iter()
                        .map(|(h, hash, id)| (h, hash, m.rows[id * d..(id + 1) * d].to_vec()))
                        .collect();
                    (p.clone(), cs)
                })
                .collect()
        };
        let fresh = ChunkIndex::new(&self.space, self.dims, Some(self.graph_above));
        fresh.replace_many(notes);
        fresh
    }

    /// Saves the index into `dir`, replaced whole: written into a folder of its own beside it (two
    /// processes sharing the folder never write into each other's), then renamed in place of the old
    /// one, which is moved aside first and removed after.
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        let _one = self.writing.lock().expect("index lock");
        let unique = format!("{}-{}", std::process::id(), SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let tmp = dir.with_extension(format!("tmp-{unique}"));
        let old = dir.with_extension(format!("old-{unique}"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&tmp)?;
            let entries = {
                let m = self.meta.read().expect("index lock");
                std::fs::write(tmp.join(ROWS), gaia_core::vectors::vector_bytes(&m.rows))?;
                m.entries.clone()
            };
            let graph = self.graph.read().expect("index lock");
            if let Some(g) = graph.as_ref() {
                g.file_dump(&tmp, BASENAME).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            let digest = digest_of(&tmp, graph.is_some())?;
            let meta =
                SavedMeta { space: self.space.clone(), dims: self.dims, graph: graph.is_some(), digest, entries };
            let json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
            std::fs::write(tmp.join(META), json)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let moved = std::fs::rename(dir, &old).is_ok();
        let r = std::fs::rename(&tmp, dir);
        if moved {
            let _ = std::fs::remove_dir_all(&old);
        }
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        r
    }

    /// The index saved in `dir`, when it is one of `space` and intact; `None` otherwise (and when
    /// there is none). `graph_above` as in [`ChunkIndex::new`].
    pub(crate) fn load(dir: &Path, space: &str, graph_above: Option<usize>) -> Option<ChunkIndex> {
        let raw = std::fs::read(dir.join(META)).ok()?;
        let meta: SavedMeta = match serde_json::from_slice(&raw) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "the saved vector index is unreadable; rebuilding it");
                return None;
            }
        };
        if meta.space != space {
            tracing::info!(saved = %meta.space, space, "the saved vector index is of another embedding model; rebuilding it");
            return None;
        }
        let damaged = || {
            tracing::warn!(dir = %dir.display(), "the saved vector index is damaged or incomplete; rebuilding it");
        };
        match digest_of(dir, meta.graph) {
            Ok(d) if d == meta.digest => {}
            _ => {
                damaged();
                return None;
            }
        }
        let rows = std::fs::read(dir.join(ROWS)).ok().and_then(|b| gaia_core::vectors::vector_of_bytes(&b));
        let Some(rows) = rows.filter(|r| meta.dims > 0 && r.len() == meta.entries.len() * meta.dims) else {
            damaged();
            return None;
        };
        let ix = ChunkIndex::new(&meta.space, meta.dims, graph_above);
        {
            let mut m = ix.meta.write().expect("index lock");
            for row in rows.chunks_exact(meta.dims) {
                m.push_row(row);
            }
            m.entries = meta.entries;
            for id in 0..m.entries.len() {
                if m.entries[id].live {
                    let p = m.entries[id].path.clone();
                    m.by_path.entry(p).or_default().push(id);
                } else {
                    m.dead += 1;
                }
            }
        }
        if meta.graph {
            // The reloaded graph borrows from its loader for as long as it lives: the loader (a few
            // paths and options; the graph is read into memory, not mapped) is kept for the process.
            let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, BASENAME)));
            match io.load_hnsw_with_dist(UnitCosine) {
                Ok(g) if g.get_nb_point() == ix.meta.read().expect("index lock").entries.len() => {
                    *ix.graph.write().expect("index lock") = Some(g);
                }
                Ok(_) => {
                    damaged();
                    return None;
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "the saved vector graph cannot be loaded; rebuilding it");
                    return None;
                }
            }
        }
        {
            let _one = ix.writing.lock().expect("index lock");
            ix.build_graph_if_due();
        }
        Some(ix)
    }
}

fn digest_of(dir: &Path, graph: bool) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut files = vec![ROWS.to_string()];
    if graph {
        files.extend(["hnsw.graph", "hnsw.data"].map(|ext| format!("{BASENAME}.{ext}")));
    }
    for name in files {
        let mut f = std::fs::File::open(dir.join(name))?;
        std::io::copy(&mut f, &mut h)?;
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gaia_core::vectors::unit;

    fn v(seed: u64, dims: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        unit(
            (0..dims)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 2000) as f32 / 1000.0 - 1.0
                })
                .collect(),
        )
    }

    #[test]
    fn edits_replace_only_changed_chunks_and_dead_ones_are_never_found() {
        let ix = ChunkIndex::new("m@8", 8, None);
        ix.replace("a.md", vec![("".into(), "h1".into(), v(1, 8)), ("A".into(), "h2".into(), v(2, 8))]);
        ix.replace("b.md", vec![("".into(), "h3".into(), v(3, 8))]);
        assert_eq!(ix.live(), 3);
        // Same first chunk, new second one.
        ix.replace("a.md", vec![("".into(), "h1".into(), v(1, 8)), ("A".into(), "h4".into(), v(4, 8))]);
        assert_eq!(ix.live(), 3);
        assert_eq!(ix.hashes_of("a.md"), ["h1", "h4"]);
        let all = |_: &str| true;
        let hit = ix.search(&v(2, 8), 3, EF_SEARCH, &all);
        assert!(hit.iter().all(|f| f.hash != "h2"), "a dead chunk was found");
        assert_eq!(ix.exact(&v(4, 8), 1, &all)[0].hash, "h4");
        // The filter hides notes; a wrong-size query finds nothing.
        assert!(ix.search(&v(3, 8), 3, EF_SEARCH, &|p: &str| p != "b.md").iter().all(|f| f.path == "a.md"));
        assert!(ix.search(&[1.0, 0.0], 3, EF_SEARCH, &all).is_empty());
        ix.remove("b.md");
        assert_eq!(ix.live(), 2);
        let r = ix.rebuilt();
        assert_eq!((r.live(), r.exact(&v(1, 8), 1, &all)[0].hash.as_str()), (2, "h1"));
    }

    #[test]
    fn the_graph_search_finds_k_and_agrees_with_the_exact_scan() {
        let dims = 64;
        let ix = ChunkIndex::new("m@64", dims, Some(0));
        let notes = (0..3000u64)
            .map(|i| (format!("n{i}.md"), vec![(String::new(), format!("h{i}"), v(i + 7, dims))]))
            .collect();
        ix.replace_many(notes);
        let all = |_: &str| true;
        let (mut hit, mut total) = (0, 0);
        for q in 0..20u64 {
            let q = v(100_000 + q, dims);
            let a = ix.search(&q, 10, EF_SEARCH, &all);
            assert_eq!(a.len(), 10, "the graph search returns k");
            let e: std::collections::HashSet<String> = ix.exact(&q, 10, &all).into_iter().map(|f| f.hash).collect();
            hit += a.iter().filter(|f| e.contains(&f.hash)).count();
            total += e.len();
        }
        assert!(hit as f64 / total as f64 >= 0.9, "recall {hit}/{total}");
    }

    #[test]
    fn the_scan_agrees_with_the_exact_search_and_applies_filters_to_every_vector() {
        let dims = 64;
        let ix = ChunkIndex::new("m@64", dims, None);
        let notes = (0..3000u64)
            .map(|i| (format!("n{i}.md"), vec![(String::new(), format!("h{i}"), v(i + 7, dims))]))
            .collect();
        ix.replace_many(notes);
        assert!(!ix.has_graph(), "3,000 chunks are scanned");
        let all = |_: &str| true;
        let (mut hit, mut total) = (0, 0);
        for q in 0..50u64 {
            let q = v(200_000 + q, dims);
            let a: Vec<String> = ix.search(&q, 10, EF_SEARCH, &all).into_iter().map(|f| f.hash).collect();
            let e: Vec<String> = ix.exact(&q, 10, &all).into_iter().map(|f| f.hash).collect();
            hit += a.iter().filter(|h| e.contains(h)).count();
            total += e.len();
        }
        assert!(hit * 100 >= total * 99, "recall {hit}/{total}");
        // A filter letting 1 note in 100 through: the scan still returns k of those, the nearest.
        let few =
            |p: &str| p.trim_start_matches('n').trim_end_matches(".md").parse::<u64>().is_ok_and(|i| i % 100 == 0);
        let q = v(300_001, dims);
        let a: Vec<String> = ix.search(&q, 10, EF_SEARCH, &few).into_iter().map(|f| f.path).collect();
        let e: Vec<String> = ix.exact(&q, 10, &few).into_iter().map(|f| f.path).collect();
        assert_eq!(a, e);
    }

    #[test]
    fn a_growing_index_builds_its_graph_past_the_threshold() {
        let ix = ChunkIndex::new("m@16", 16, Some(50));
        ix.replace_many(
            (0..40).map(|i| (format!("n{i}.md"), vec![(String::new(), format!("h{i}"), v(i, 16))])).collect(),
        );
        assert!(!ix.has_graph());
        ix.replace_many(
            (40..60).map(|i| (format!("n{i}.md"), vec![(String::new(), format!("h{i}"), v(i, 16))])).collect(),
        );
        assert!(ix.has_graph());
        ix.replace("n60.md", vec![(String::new(), "h60".into(), v(60, 16))]);
        let all = |_: &str| true;
        assert_eq!(ix.search(&v(60, 16), 1, EF_SEARCH, &all)[0].path, "n60.md", "inserted into the graph");
        assert_eq!(ix.search(&v(3, 16), 1, EF_SEARCH, &all)[0].path, "n3.md", "built with the earlier vectors");
    }

    #[test]
    fn saved_indexes_load_when_intact_and_of_the_same_space() {
        for graph in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let at = dir.path().join("vectors");
            let ix = ChunkIndex::new("m@16", 16, graph.then_some(0));
            let notes =
                (0..100).map(|i| (format!("n{i}.md"), vec![(String::new(), format!("h{i}"), v(i, 16))])).collect();
            ix.replace_many(notes);
            ix.remove("n5.md");
            assert_eq!(ix.has_graph(), graph);
            ix.save(&at).unwrap();
            let back = ChunkIndex::load(&at, "m@16", graph.then_some(0)).expect("reloaded");
            assert_eq!((back.live(), back.has_graph()), (99, graph));
            let all = |_: &str| true;
            assert_eq!(back.search(&v(7, 16), 1, EF_SEARCH, &all)[0].path, "n7.md");
            assert_eq!(back.exact(&v(8, 16), 1, &all)[0].path, "n8.md");
            assert!(back.hashes_of("n5.md").is_empty());
            assert!(ChunkIndex::load(&at, "other@16", None).is_none());
            // A damaged file is noticed (and rebuilt by the caller), not loaded.
            let file = if graph { at.join(format!("{BASENAME}.hnsw.graph")) } else { at.join(ROWS) };
            let mut bytes = std::fs::read(&file).unwrap();
            let n = bytes.len();
            bytes[n / 2] ^= 0xff;
            std::fs::write(&file, bytes).unwrap();
            assert!(ChunkIndex::load(&at, "m@16", None).is_none());
            assert!(ChunkIndex::load(&dir.path().join("missing"), "m@16", None).is_none());
        }
    }
}
