//! Semantic and hybrid search: chunks embedded in the background, only changed chunks embedded again,
//! the index saved and rebuilt from stored vectors, access restrictions, and the error without a
//! model. The embedder is the word-hashing test fallback (similarity follows shared words), counted.

use crate::common;
use async_trait::async_trait;
use gaia_core::vectors::{EmbedError, Embedder, HashEmbedder, MemoryVectors, VectorStore};
use gaia_kb::semantic::MeaningMode;
use gaia_kb::{Kb, KbConfig, KbError, WriteRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The test fallback, counting the texts it embeds.
#[derive(Default)]
struct Counting {
    inner: HashEmbedder,
    texts: AtomicUsize,
}

#[async_trait]
impl Embedder for Counting {
    fn space(&self) -> String {
        self.inner.space()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts).await
    }
    fn is_test_fallback(&self) -> bool {
        true
    }
}

async fn open(root: std::path::PathBuf, index_dir: Option<std::path::PathBuf>) -> Kb {
    Kb::open(KbConfig { root, index_dir, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap()
}

fn paths(hits: &[gaia_kb::semantic::SemanticHit]) -> Vec<&str> {
    hits.iter().map(|h| h.path.as_str()).collect()
}

#[tokio::test]
async fn notes_are_found_by_their_sections_and_only_changed_chunks_are_embedded_again() {
    let dir = tempfile::tempdir().unwrap();
    let kb = open(common::world_vault(dir.path(), "world"), None).await;
    // Without a model, semantic search says how to configure one.
    let e = kb.search_by_meaning(MeaningMode::Semantic, "fog", 3).await.unwrap_err();
    assert!(matches!(&e, KbError::Unavailable(m) if m.contains("[embeddings] model")), "{e}");

    let embedder = Arc::new(Counting::default());
    let store = MemoryVectors::default();
    kb.enable_semantic(embedder.clone(), Some(Arc::new(store.clone())));
    kb.index_vectors().await.unwrap();
    let status = kb.semantic_status().unwrap();
    assert_eq!((status.state.as_str(), status.test_fallback), ("ready", true), "{status:?}");
    assert_eq!(status.notes, kb.documents().len());
    let chunks = status.chunks;
    assert!(chunks > status.notes, "notes are cut along headings: {status:?}");
    assert_eq!(embedder.texts.load(Ordering::SeqCst), chunks);
    assert_eq!(store.len(), chunks);

    let hits =
        kb.search_by_meaning(MeaningMode::Semantic, "zombie speed visibility weather fog rain", 3).await.unwrap();
    assert_eq!(hits[0].path, "Rules/Weather Effects.md", "{hits:?}");
    assert!(hits[0].score > hits[1].score);
    assert!(!hits[0].snippet.is_empty());
    assert!(kb.search_by_meaning(MeaningMode::Semantic, "  ", 3).await.is_err());
    assert!(kb.search_by_meaning(MeaningMode::Semantic, &"x".repeat(5000), 3).await.is_err());

    // A new note is embedded on the next pass; a one-section edit embeds that section only.
    kb.write(WriteRequest {
        path: "Lore/Kraken.md".into(),
        content: "# Kraken\nkraken tentacles harbor sea monster\n\n# Habitat\ndeep cold trenches\n".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    kb.index_vectors().await.unwrap();
    let hits = kb.search_by_meaning(MeaningMode::Semantic, "sea monster with tentacles", 1).await.unwrap();
    assert_eq!((hits[0].path.as_str(), hits[0].heading.as_str()), ("Lore/Kraken.md", "Kraken"));
    let before = embedder.texts.load(Ordering::SeqCst);
    let doc = kb.read("Lore/Kraken.md").await.unwrap();
    kb.write(WriteRequest {
        path: "Lore/Kraken.md".into(),
        content: doc.content.replace("deep cold trenches", "warm shallow lagoons"),
        version: Some(doc.version.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    kb.index_vectors().await.unwrap();
    assert_eq!(embedder.texts.load(Ordering::SeqCst) - before, 1, "only the changed section is embedded again");
    let hits = kb.search_by_meaning(MeaningMode::Semantic, "warm shallow lagoons", 1).await.unwrap();
    assert_eq!(hits[0].heading, "Habitat");
    let hits = kb.search_by_meaning(MeaningMode::Semantic, "deep cold trenches", 5).await.unwrap();
    assert!(hits.iter().all(|h| h.path != "Lore/Kraken.md" || h.heading != "Habitat" || h.score < 0.9), "{hits:?}");

    // Hybrid ranks by both; a deleted note is found by neither.
    let hits = kb.search_by_meaning(MeaningMode::Hybrid, "kraken tentacles", 3).await.unwrap();
    assert_eq!(hits[0].path, "Lore/Kraken.md");
    kb.delete("Lore/Kraken.md", None, None).await.unwrap();
    kb.index_vectors().await.unwrap();
    for mode in [MeaningMode::Semantic, MeaningMode::Hybrid] {
        let hits = kb.search_by_meaning(mode, "kraken tentacles sea monster", 10).await.unwrap();
        assert!(!paths(&hits).contains(&"Lore/Kraken.md"), "{hits:?}");
    }
}

#[tokio::test]
async fn a_reader_never_sees_a_chunk_of_a_note_they_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let kb = open(common::world_vault(dir.path(), "world"), None).await;
    kb.enable_semantic(Arc::new(HashEmbedder::default()), None);
    kb.write(WriteRequest {
        path: "Secret/Plot.md".into(),
        content: "# Twist\nthe lighthouse keeper is the necromancer\n".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    kb.index_vectors().await.unwrap();
    let all = kb.search_by_meaning(MeaningMode::Semantic, "lighthouse keeper necromancer", 5).await.unwrap();
    assert_eq!(all[0].path, "Secret/Plot.md");
    let reader = kb.restricted(gaia_kb::ReadAccess::new(Arc::new(|p: &str| !p.starts_with("Secret/"))));
    for mode in [MeaningMode::Semantic, MeaningMode::Hybrid] {
        let hits = reader.search_by_meaning(mode, "lighthouse keeper necromancer", 100).await.unwrap();
        assert!(hits.iter().all(|h| !h.path.starts_with("Secret/")), "{hits:?}");
        assert!(!hits.is_empty(), "the reader still finds what they may read");
    }
}

#[tokio::test]
async fn the_index_is_saved_and_rebuilt_from_stored_vectors_on_both_backends() {
    for db in gaia_core::testing::database_urls().await {
        let storage = db.storage().await;
        let store: Arc<dyn VectorStore> = Arc::new(storage.clone());
        let dir = tempfile::tempdir().unwrap();
        let root = common::world_vault(dir.path(), "world");
        let index_dir = dir.path().join("index");
        let first = Arc::new(Counting::default());
        let kb = open(root.clone(), Some(index_dir.clone())).await;
        kb.enable_semantic(first.clone(), Some(store.clone()));
        kb.index_vectors().await.unwrap();
        let chunks = kb.semantic_status().unwrap().chunks;
        assert_eq!(first.texts.load(Ordering::SeqCst), chunks);
        let vectors = dir.path().join("index.vectors");
        assert!(vectors.join("chunks.meta.json").exists(), "saved beside the search index");
        drop(kb);

        // Another instance (or a restart) with the saved index: nothing embedded again.
        let again = Arc::new(Counting::default());
        let kb = open(root.clone(), Some(index_dir.clone())).await;
        kb.enable_semantic(again.clone(), Some(store.clone()));
        kb.index_vectors().await.unwrap();
        assert_eq!(again.texts.load(Ordering::SeqCst), 0);
        let hits =
            kb.search_by_meaning(MeaningMode::Semantic, "zombie speed visibility weather fog rain", 1).await.unwrap();
        assert_eq!(hits[0].path, "Rules/Weather Effects.md");
        drop(kb);

        // The saved index lost: rebuilt from the stored vectors, still nothing embedded.
        std::fs::remove_dir_all(&vectors).unwrap();
        let rebuilt = Arc::new(Counting::default());
        let kb = open(root, Some(index_dir)).await;
        kb.enable_semantic(rebuilt.clone(), Some(store.clone()));
        kb.index_vectors().await.unwrap();
        let s = kb.semantic_status().unwrap();
        assert_eq!((rebuilt.texts.load(Ordering::SeqCst), s.chunks, s.reused as usize), (0, chunks, chunks), "{s:?}");
        let hits =
            kb.search_by_meaning(MeaningMode::Hybrid, "zombie speed visibility weather fog rain", 1).await.unwrap();
        assert_eq!(hits[0].path, "Rules/Weather Effects.md");
    }
}

/// An embedder that fails: indexing reports it and is retried; search says the model failed.
struct Broken;

#[async_trait]
impl Embedder for Broken {
    fn space(&self) -> String {
        "broken@3".into()
    }
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::Failed("upstream 503".into()))
    }
}

#[tokio::test]
async fn a_failing_model_is_reported_and_searches_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let kb = open(common::world_vault(dir.path(), "world"), None).await;
    kb.enable_semantic(Arc::new(Broken), None);
    assert!(kb.index_vectors().await.is_err());
    let s = kb.semantic_status().unwrap();
    assert_eq!(s.state, "failing");
    assert!(s.last_error.unwrap().contains("upstream 503"));
    let e = kb.search_by_meaning(MeaningMode::Hybrid, "fog", 3).await.unwrap_err();
    assert!(matches!(e, KbError::Unavailable(_)), "{e}");
}

/// The test fallback, refusing any text with `POISON` in it (as a model refuses a text too long for
/// it), and any call at all while `down`.
#[derive(Default)]
struct Picky {
    inner: HashEmbedder,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Embedder for Picky {
    fn space(&self) -> String {
        self.inner.space()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.down.load(Ordering::SeqCst) || texts.iter().any(|t| t.contains("POISON")) {
            return Err(EmbedError::Failed("400 input too long".into()));
        }
        self.inner.embed(texts).await
    }
}

#[tokio::test]
async fn the_background_indexer_follows_syncs_and_one_refused_chunk_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::world_vault(dir.path(), "world");
    std::fs::write(root.join("Bad.md"), "# Bad\nPOISON in this section\n\n# Good\nharmless lantern section\n").unwrap();
    let kb = open(root.clone(), None).await;
    let embedder = Arc::new(Picky::default());
    kb.enable_semantic(embedder.clone(), None);
    let ready = || async {
        for _ in 0..200 {
            if kb.semantic_status().is_some_and(|s| s.state == "ready") {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    };
    assert!(ready().await, "{:?}", kb.semantic_status());
    let s = kb.semantic_status().unwrap();
    assert_eq!(s.skipped, 1, "only the refused chunk is left out: {s:?}");
    let hits = kb.search_by_meaning(MeaningMode::Semantic, "harmless lantern section", 1).await.unwrap();
    assert_eq!((hits[0].path.as_str(), hits[0].heading.as_str()), ("Bad.md", "Good"));
    // A change on disk taken in by a re-index (as a sync does) is embedded without being asked.
    std::fs::write(root.join("Lore.md"), "# Kraken\nkraken tentacles harbor sea monster\n").unwrap();
    kb.reindex().await.unwrap();
    let mut found = false;
    for _ in 0..200 {
        let hits = kb.search_by_meaning(MeaningMode::Semantic, "kraken tentacles sea monster", 1).await.unwrap();
        if hits.first().is_some_and(|h| h.path == "Lore.md") {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(found, "the background indexer took in the re-indexed note");
    // A model that is down is reported, and what was indexed stays searchable.
    embedder.down.store(true, Ordering::SeqCst);
    std::fs::write(root.join("Later.md"), "# Later\nnew words\n").unwrap();
    kb.reindex().await.unwrap();
    assert!(kb.index_vectors().await.is_err());
    assert_eq!(kb.semantic_status().unwrap().state, "failing");
    let restricted = kb.restricted(gaia_kb::ReadAccess::new(Arc::new(|_: &str| true)));
    assert!(!restricted.semantic_status().unwrap().last_error.unwrap().contains("400"), "readers get no provider text");
    embedder.down.store(false, Ordering::SeqCst);
    kb.index_vectors().await.unwrap();
    assert_eq!(kb.semantic_status().unwrap().state, "ready");
}
