//! The approximate nearest-neighbour index of semantic search: the chunks' unit vectors in an HNSW
//! graph (`hnsw_rs`), with which note and section each vector is. A note edited in place gets its
//! changed chunks inserted and its old ones marked dead (left out of every search); when the dead
//! pass a quarter of the graph it is rebuilt from the live vectors. The graph is saved beside the
//! search index and loaded at start when it is of the same vector space and intact (checked by a
//! digest of its files), else rebuilt from the stored vectors.

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

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
}

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    space: String,
    dims: usize,
    /// SHA-256 of the graph and data files, in that order.
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

/// Vectors of chunks, searchable by similarity.
pub(crate) struct ChunkIndex {
    space: String,
    dims: usize,
    hnsw: Hnsw<'static, f32, UnitCosine>,
    meta: RwLock<Meta>,
}

impl std::fmt::Debug for ChunkIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkIndex").field("space", &self.space).field("dims", &self.dims).finish()
    }
}

fn new_graph(capacity: usize) -> Hnsw<'static, f32, UnitCosine> {
    let mut h = Hnsw::new(MAX_CONNECTIONS, capacity.max(1024), MAX_LAYERS, EF_CONSTRUCTION, UnitCosine);
    h.set_extend_candidates(false);
    h
}

impl ChunkIndex {
    /// An empty index of vectors of `dims` numbers in `space`.
    pub(crate) fn new(space: &str, dims: usize, capacity: usize) -> ChunkIndex {
        ChunkIndex { space: space.to_string(), dims, hnsw: new_graph(capacity), meta: RwLock::new(Meta::default()) }
    }

    pub(crate) fn dims(&self) -> usize {
        self.dims
    }

    /// Live vectors.
    pub(crate) fn live(&self) -> usize {
        let m = self.meta.read().expect("index lock");
        m.entries.len() - m.dead
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

    /// Whether enough of the graph is dead to rebuild it.
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

    /// [`ChunkIndex::replace`] for many notes, inserted in parallel.
    pub(crate) fn replace_many(&self, notes: Vec<NoteChunks>) {
        let mut insert: Vec<(Vec<f32>, usize)> = Vec::new();
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
                    if v.len() != self.dims {
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
                    ids.push(id);
                    insert.push((v, id));
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
        match insert.len() {
            0 => {}
            1..=63 => insert.iter().for_each(|(v, id)| self.hnsw.insert_slice((v.as_slice(), *id))),
            _ => {
                let refs: Vec<(&Vec<f32>, usize)> = insert.iter().map(|(v, id)| (v, *id)).collect();
                self.hnsw.parallel_insert(&refs);
            }
        }
    }

    /// Removes the chunks of `path`.
    pub(crate) fn remove(&self, path: &str) {
        let mut m = self.meta.write().expect("index lock");
        if let Some(ids) = m.by_path.remove(path) {
            for id in ids {
                m.entries[id].live = false;
                m.dead += 1;
            }
        }
    }

    fn found(m: &Meta, id: usize, distance: f32) -> Option<Found> {
        let e = m.entries.get(id).filter(|e| e.live)?;
        Some(Found { path: e.path.clone(), heading: e.heading.clone(), hash: e.hash.clone(), score: 1.0 - distance })
    }

    /// The `k` live chunks nearest `q` (a unit vector) among those `allow` lets through, best first:
    /// approximate, through the graph. The graph is searched unfiltered (`hnsw_rs`'s filtered search
    /// explores far more of the graph) for more than `k`, and what may not be returned is dropped; when
    /// too much was, the search is widened twice. Fewer than `k` means the filter lets few through:
    /// the caller compares them all ([`ChunkIndex::exact`]).
    pub(crate) fn search(&self, q: &[f32], k: usize, ef: usize, allow: &(dyn Fn(&str) -> bool + Sync)) -> Vec<Found> {
        if q.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let m = self.meta.read().expect("index lock");
        let total = m.entries.len();
        let mut want = k + k / 2;
        loop {
            let hits = self.hnsw.search(q, want, ef.max(want));
            let out: Vec<Found> = hits
                .into_iter()
                .filter(|n| m.entries.get(n.d_id).is_some_and(|e| e.live && allow(&e.path)))
                .filter_map(|n| Self::found(&m, n.d_id, n.distance))
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
        let mut all: Vec<(f32, usize)> = Vec::new();
        for p in self.hnsw.get_point_indexation() {
            let id = p.get_origin_id();
            if m.entries.get(id).is_some_and(|e| e.live && allow(&e.path)) {
                all.push((UnitCosine.eval(q, p.get_v()), id));
            }
        }
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(k).filter_map(|(d, id)| Self::found(&m, id, d)).collect()
    }

    /// A new index of the live chunks only (the dead left behind).
    pub(crate) fn rebuilt(&self) -> ChunkIndex {
        let (notes, vectors) = {
            let m = self.meta.read().expect("index lock");
            let mut vectors: HashMap<usize, Vec<f32>> = HashMap::new();
            for p in self.hnsw.get_point_indexation() {
                let id = p.get_origin_id();
                if m.entries.get(id).is_some_and(|e| e.live) {
                    vectors.insert(id, p.get_v().to_vec());
                }
            }
            let notes: Vec<(String, Vec<usize>)> = m.by_path.iter().map(|(p, ids)| (p.clone(), ids.clone())).collect();
            let notes: Vec<(String, Vec<Placed>)> = notes
                .into_iter()
                .map(|(p, ids)| {
                    let c = ids
                        .iter()
                        .map(|id| (m.entries[*id].heading.clone(), m.entries[*id].hash.clone(), *id))
                        .collect();
                    (p, c)
                })
                .collect();
            (notes, vectors)
        };
        let fresh = ChunkIndex::new(&self.space, self.dims, vectors.len());
        let mut vectors = vectors;
        let notes = notes
            .into_iter()
            .map(|(p, cs)| {
                let cs = cs.into_iter().filter_map(|(h, hash, id)| vectors.remove(&id).map(|v| (h, hash, v))).collect();
                (p, cs)
            })
            .collect();
        fresh.replace_many(notes);
        fresh
    }

    /// Saves the index into `dir`, replaced whole: written into a folder of its own beside it (two
    /// processes sharing the folder never write into each other's), then renamed in place of the old
    /// one, which is moved aside first and removed after.
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        let unique = format!("{}-{}", std::process::id(), SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let tmp = dir.with_extension(format!("tmp-{unique}"));
        let old = dir.with_extension(format!("old-{unique}"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&tmp)?;
            let entries = self.meta.read().expect("index lock").entries.clone();
            self.hnsw.file_dump(&tmp, BASENAME).map_err(|e| std::io::Error::other(e.to_string()))?;
            let digest = digest_of(&tmp)?;
            let meta = SavedMeta { space: self.space.clone(), dims: self.dims, digest, entries };
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
    /// there is none).
    pub(crate) fn load(dir: &Path, space: &str) -> Option<ChunkIndex> {
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
        match digest_of(dir) {
            Ok(d) if d == meta.digest => {}
            _ => {
                tracing::warn!(dir = %dir.display(), "the saved vector index is damaged; rebuilding it");
                return None;
            }
        }
        // The reloaded graph borrows from its loader for as long as it lives: the loader (a few
        // paths and options; the graph is read into memory, not mapped) is kept for the process.
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, BASENAME)));
        let hnsw: Hnsw<'static, f32, UnitCosine> = match io.load_hnsw_with_dist(UnitCosine) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "the saved vector index cannot be loaded; rebuilding it");
                return None;
            }
        };
        if hnsw.get_nb_point() != meta.entries.len() {
            tracing::warn!(dir = %dir.display(), "the saved vector index does not match its list; rebuilding it");
            return None;
        }
        let mut m = Meta { entries: meta.entries, ..Meta::default() };
        for (id, e) in m.entries.iter().enumerate() {
            if e.live {
                m.by_path.entry(e.path.clone()).or_default().push(id);
            } else {
                m.dead += 1;
            }
        }
        Some(ChunkIndex { space: meta.space, dims: meta.dims, hnsw, meta: RwLock::new(m) })
    }
}

fn digest_of(dir: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for ext in ["hnsw.graph", "hnsw.data"] {
        let mut f = std::fs::File::open(dir.join(format!("{BASENAME}.{ext}")))?;
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
        let ix = ChunkIndex::new("m@8", 8, 16);
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
        let ix = ChunkIndex::new("m@64", dims, 4000);
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
    fn saved_indexes_load_when_intact_and_of_the_same_space() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("vectors");
        let ix = ChunkIndex::new("m@16", 16, 64);
        let notes = (0..100).map(|i| (format!("n{i}.md"), vec![(String::new(), format!("h{i}"), v(i, 16))])).collect();
        ix.replace_many(notes);
        ix.remove("n5.md");
        ix.save(&at).unwrap();
        let back = ChunkIndex::load(&at, "m@16").expect("reloaded");
        assert_eq!(back.live(), 99);
        let all = |_: &str| true;
        assert_eq!(back.search(&v(7, 16), 1, EF_SEARCH, &all)[0].path, "n7.md");
        assert!(back.hashes_of("n5.md").is_empty());
        assert!(ChunkIndex::load(&at, "other@16").is_none());
        // A damaged file is noticed (and rebuilt by the caller), not loaded.
        let graph = at.join(format!("{BASENAME}.hnsw.graph"));
        let mut bytes = std::fs::read(&graph).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&graph, bytes).unwrap();
        assert!(ChunkIndex::load(&at, "m@16").is_none());
        assert!(ChunkIndex::load(&dir.path().join("missing"), "m@16").is_none());
    }
}
