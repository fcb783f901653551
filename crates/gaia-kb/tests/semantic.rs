//! Semantic search (feature `semantic`) with the deterministic hashing embedder and a custom one.
#![cfg(feature = "semantic")]

use crate::common;

use gaia_kb::semantic::{Embedder, HashEmbedder};
use gaia_kb::{Kb, KbConfig, WriteRequest};
use std::sync::Arc;

#[tokio::test]
async fn nearest_documents_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::world_vault(dir.path(), "world");
    let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    let hits = kb.semantic_search("zombie speed visibility weather fog rain", 3).unwrap();
    assert_eq!(hits[0].path, "Rules/Weather Effects.md");
    assert!(hits[0].score > hits[1].score);
    assert!(kb.semantic_search("  ", 3).is_err());
    // New documents are embedded as they are written.
    kb.write(WriteRequest {
        path: "Lore/Kraken.md".into(),
        content: "kraken tentacles harbor sea monster".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(kb.semantic_search("sea monster with tentacles", 1).unwrap()[0].path, "Lore/Kraken.md");
    // Deterministic.
    let e = HashEmbedder::default();
    assert_eq!(e.embed("same text"), e.embed("same text"));

    /// Pluggable: an embedder that only knows one word.
    struct OneWord;
    impl Embedder for OneWord {
        fn dimensions(&self) -> usize {
            2
        }
        fn embed(&self, text: &str) -> Vec<f32> {
            vec![text.matches("epidemiologist").count() as f32, 0.01]
        }
    }
    kb.set_embedder(Arc::new(OneWord));
    assert_eq!(kb.semantic_search("epidemiologist", 1).unwrap()[0].path, "Characters/Dr. Mara Quill.md");
}
