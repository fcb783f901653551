//! Semantic and hybrid knowledge-base search on a generated vault, in one run: embedding every chunk
//! (vectors stored in SQLite, and in PostgreSQL when `GAIA_TEST_DATABASE_URL` is set), semantic and
//! hybrid search against the exact scan of the same vectors (the baseline) and BM25 ranked search
//! (the peer), recall@10 of the approximate index against exact search, a one-note edit (only its
//! changed chunks embedded again), and a restart with the saved index and with the index lost
//! (rebuilt from the stored vectors). At this size the index scans every vector (quantized); the
//! HNSW graph is then forced (`Kb::set_vector_graph_above`) and measured the same way.
//!
//! `GAIA_KB_FILES=10000 GAIA_KB_WORDS=1000 GAIA_KB_VAULT=/tmp/vault10k cargo bench -p gaia-benches --bench kb_semantic`
//! (`GAIA_KB_DIMS` sets the vectors' size, default 256). The vectors are the mock upstream's
//! (`gaia_providers::mock::mock_embedding`, similarity following shared words), computed in process:
//! a provider's round trip is left out of every figure. Prints Markdown tables for BENCHMARKS.md.

use async_trait::async_trait;
use gaia_core::vectors::{EmbedError, Embedder, VectorStore};
use gaia_kb::semantic::MeaningMode;
use gaia_kb::{Kb, KbConfig, SearchOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mock upstream's vectors, in process, counting the texts embedded.
struct MockVectors {
    dims: usize,
    texts: AtomicUsize,
}

#[async_trait]
impl Embedder for MockVectors {
    fn space(&self) -> String {
        format!("mock@{}", self.dims)
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts.iter().map(|t| gaia_providers::mock::mock_embedding(t, self.dims)).collect())
    }
    fn batch_size(&self) -> usize {
        256
    }
}

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Queries of `words` words of a note's text, from notes spread over the vault: eight words are a
/// question in keywords, sixty a passage ("notes like this one").
fn queries(kb: &Kb, n: usize, words: usize) -> Vec<String> {
    let docs = kb.documents();
    let step = (docs.len() / n).max(1);
    docs.iter()
        .step_by(step)
        .take(n)
        .map(|d| {
            let w: Vec<&str> =
                d.body().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 3).skip(20).take(words).collect();
            w.join(" ")
        })
        .collect()
}

/// Recall@10 of the index's search against the exact search, for keyword queries and passages, at
/// each of `widths` (`None`: the index's search as configured): strict (the same chunks as the exact
/// search) and by distance (chunks as near as the exact search's tenth: equally near chunks are ties).
/// One Markdown row each.
async fn recall_sweep(kb: &Kb, label: &str, sets: &[(&str, &Vec<String>)], widths: &[Option<usize>]) -> Vec<String> {
    let mut rows = Vec::new();
    for (kind, qs) in sets {
        let exact: Vec<Vec<gaia_kb::semantic::SemanticHit>> =
            futures::future::join_all(qs.iter().map(|q| kb.nearest_chunks(q, 10, true)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        for width in widths {
            kb.set_vector_search_width(width.unwrap_or(0));
            let (mut strict, mut near, mut total) = (0usize, 0usize, 0usize);
            let mut t = Vec::new();
            for (q, e) in qs.iter().zip(&exact) {
                let start = Instant::now();
                let a = kb.nearest_chunks(q, 10, false).await.unwrap();
                t.push(start.elapsed());
                let key = |h: &gaia_kb::semantic::SemanticHit| (h.path.clone(), h.heading.clone(), h.snippet.clone());
                let want: std::collections::HashSet<_> = e.iter().map(key).collect();
                let tenth = e.last().map(|h| h.score).unwrap_or(f32::MIN);
                strict += a.iter().filter(|h| want.contains(&key(h))).count();
                near += a.iter().filter(|h| h.score >= tenth - 1e-5).count().min(e.len());
                total += e.len();
            }
            let width = width.map_or("-".to_string(), |w| w.to_string());
            rows.push(format!(
                "| {label} | {kind} | {width} | {} | {:.3} | {:.3} |",
                ms(percentile(&mut t, 0.5)),
                strict as f64 / total.max(1) as f64,
                near as f64 / total.max(1) as f64
            ));
        }
    }
    kb.set_vector_search_width(0);
    rows
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let files = env("GAIA_KB_FILES", 1000);
    let dims = env("GAIA_KB_DIMS", 256);
    let dir = tempfile::tempdir().unwrap();
    let Some(vault) = gaia_benches::generated_vault(dir.path()) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dbs = rt.block_on(gaia_core::testing::database_urls());
    println!("| store | operation | p50 | p99 | vs exact scan (baseline) |");
    println!("|---|---|---|---|---|");
    let mut notes = Vec::new();
    let mut sweep: Vec<String> = Vec::new();
    for db in dbs {
        let backend = db.backend;
        let storage = rt.block_on(db.storage());
        let store: Arc<dyn VectorStore> = Arc::new(storage.clone());
        let index_dir = dir.path().join(format!("index-{backend}"));
        let config = KbConfig {
            root: vault.clone(),
            index_dir: Some(index_dir.clone()),
            sync_interval_secs: 0,
            ..KbConfig::default()
        };
        let kb = rt.block_on(Kb::open(config.clone())).unwrap();
        let embedder = Arc::new(MockVectors { dims, texts: AtomicUsize::new(0) });
        let t = Instant::now();
        rt.block_on(async {
            kb.enable_semantic(embedder.clone(), Some(store.clone()));
            kb.index_vectors().await.unwrap();
        });
        let build = t.elapsed();
        let status = kb.semantic_status().unwrap();
        let chunks = status.chunks;
        assert_eq!(embedder.texts.load(Ordering::SeqCst), chunks);

        let qs = queries(&kb, 50, 8);
        let passages = queries(&kb, 50, 60);
        let rounds = 4;
        let mut times: Vec<(&str, Vec<Duration>)> = Vec::new();
        let mut recall_hits = 0usize;
        let mut recall_total = 0usize;
        rt.block_on(async {
            let mut exact = Vec::new();
            let mut approx = Vec::new();
            let mut semantic = Vec::new();
            let mut hybrid = Vec::new();
            let mut ranked = Vec::new();
            let mut any_word = Vec::new();
            for round in 0..rounds {
                for q in &qs {
                    let t = Instant::now();
                    let a = kb.nearest_chunks(q, 10, false).await.unwrap();
                    approx.push(t.elapsed());
                    let t = Instant::now();
                    let e = kb.nearest_chunks(q, 10, true).await.unwrap();
                    exact.push(t.elapsed());
                    if round == 0 {
                        let key =
                            |h: &gaia_kb::semantic::SemanticHit| (h.path.clone(), h.heading.clone(), h.snippet.clone());
                        let want: std::collections::HashSet<_> = e.iter().map(key).collect();
                        recall_hits += a.iter().filter(|h| want.contains(&key(h))).count();
                        recall_total += want.len();
                    }
                    let t = Instant::now();
                    kb.search_by_meaning(MeaningMode::Semantic, q, 10).await.unwrap();
                    semantic.push(t.elapsed());
                    let t = Instant::now();
                    kb.search_by_meaning(MeaningMode::Hybrid, q, 10).await.unwrap();
                    hybrid.push(t.elapsed());
                    let t = Instant::now();
                    kb.search(&SearchOptions { query: q.clone(), limit: 10, ..Default::default() }).unwrap();
                    ranked.push(t.elapsed());
                    let t = Instant::now();
                    let any = SearchOptions {
                        query: q.clone(),
                        limit: 50,
                        any_word: true,
                        no_snippets: true,
                        ..Default::default()
                    };
                    kb.search(&any).unwrap();
                    any_word.push(t.elapsed());
                }
            }
            times.push(("exact scan of every vector, top 10 chunks (baseline)", exact));
            times.push(("vector index (quantized scan at this size), top 10 chunks", approx));
            times.push(("semantic search, top 10 notes", semantic));
            times.push(("hybrid search (BM25 + vectors, fused), top 10 notes", hybrid));
            times.push(("BM25 ranked search, all words, top 10 (peer)", ranked));
            times.push(("BM25, any word, top 50, no snippets (hybrid's lexical half)", any_word));
        });
        let base = percentile(&mut times[0].1.clone(), 0.5);
        for (what, mut t) in times {
            let p50 = percentile(&mut t, 0.5);
            let p99 = percentile(&mut t, 0.99);
            let ratio = base.as_secs_f64() / p50.as_secs_f64().max(1e-9);
            println!("| {backend} | {what} | {} | {} | {ratio:.1}x |", ms(p50), ms(p99));
        }

        // A one-note edit: only its changed chunk is embedded again.
        let one = kb.documents().into_iter().nth(kb.documents().len() / 2).unwrap();
        let before = embedder.texts.load(Ordering::SeqCst);
        let t = Instant::now();
        rt.block_on(async {
            kb.write(gaia_kb::WriteRequest {
                path: one.path.as_str().to_string(),
                content: format!("{}\nA zeppelin drifts over the harbour.\n", one.content),
                version: Some(one.version.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
            kb.index_vectors().await.unwrap();
        });
        let edit = t.elapsed();
        let re_embedded = embedder.texts.load(Ordering::SeqCst) - before;
        drop(kb);

        // Restarts: with the saved index, then with it lost (rebuilt from the stored vectors), then
        // with a graph forced at this size (the HNSW search measured against the exact one).
        let restart = |remove: bool, graph_above: Option<usize>| {
            if remove {
                std::fs::remove_dir_all(dir.path().join(format!("index-{backend}.vectors"))).unwrap();
            }
            let kb = rt.block_on(Kb::open(config.clone())).unwrap();
            kb.set_vector_graph_above(graph_above);
            let e = Arc::new(MockVectors { dims, texts: AtomicUsize::new(0) });
            let t = Instant::now();
            rt.block_on(async {
                kb.enable_semantic(e.clone(), Some(store.clone()));
                kb.index_vectors().await.unwrap();
            });
            (kb, t.elapsed(), e.texts.load(Ordering::SeqCst))
        };
        let (kb, loaded, loaded_embedded) = restart(false, None);
        drop(kb);
        let (kb, rebuilt, rebuilt_embedded) = restart(true, None);
        let sets = [("8 words", &qs), ("60 words", &passages)];
        sweep.extend(rt.block_on(recall_sweep(&kb, &format!("{backend}, scan (default)"), &sets, &[None])));
        drop(kb);
        let (kb, graph_built, _) = restart(true, Some(0));
        let widths = [Some(64), Some(128), Some(256), Some(512), Some(1024)];
        sweep.extend(rt.block_on(recall_sweep(&kb, &format!("{backend}, HNSW graph"), &sets, &widths)));
        let mut graph_hybrid = Vec::new();
        rt.block_on(async {
            for q in &qs {
                let t = Instant::now();
                kb.search_by_meaning(MeaningMode::Hybrid, q, 10).await.unwrap();
                graph_hybrid.push(t.elapsed());
            }
        });
        drop(kb);
        notes.push(format!(
            "{backend}: {files} notes, {chunks} chunks of {dims} dimensions; embedded and indexed in {} ({:.0} chunks/s); \
             recall@10 of the HNSW index against exact search {:.3} ({recall_hits}/{recall_total}); a one-note edit: \
             {re_embedded} chunk(s) embedded again, written and re-indexed in {}; restart with the saved index {} \
             ({loaded_embedded} embedded), with it lost (rebuilt from the {backend} vectors) {} ({rebuilt_embedded} embedded); \
             with the graph forced, rebuilt in {}, hybrid search p50 through it {}",
            ms(build),
            chunks as f64 / build.as_secs_f64(),
            recall_hits as f64 / recall_total.max(1) as f64,
            ms(edit),
            ms(loaded),
            ms(rebuilt),
            ms(graph_built),
            ms(percentile(&mut graph_hybrid, 0.5)),
        ));
    }
    println!();
    println!(
        "| store, search | queries | graph search width | top 10 p50 | recall@10, same chunks | recall@10, as near |"
    );
    println!("|---|---|---|---|---|---|");
    for n in &sweep {
        println!("{n}");
    }
    println!();
    for n in &notes {
        println!("- {n}");
    }
}
