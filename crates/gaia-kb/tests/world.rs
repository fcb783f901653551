//! The knowledge base over the sample world vault (`../shared/kb-fixtures/world`), in a plain folder.

use crate::common;
use common::hits;

use gaia_kb::{ContextReason, GrepOptions, Kb, KbConfig, KbError, KbTools, SearchOptions, WriteRequest};
use serde_json::json;

async fn world() -> (tempfile::TempDir, Kb) {
    let dir = tempfile::tempdir().unwrap();
    let root = common::world_vault(dir.path(), "world");
    let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    (dir, kb)
}

#[tokio::test]
async fn parses_obsidian_conventions() {
    let (_d, kb) = world().await;
    let readme = kb.read("README.md").await.unwrap();
    assert_eq!(readme.note.title, "Zombie Survival World");
    assert_eq!(readme.note.tags, ["world", "index", "world/index"]);
    assert_eq!(readme.note.aliases, ["Home"]);
    let safe = kb.read("Places/Safe House").await.unwrap();
    assert_eq!(safe.note.tags, ["location", "shelter", "location/urban"]);
    assert_eq!(safe.note.aliases, ["Bunker", "The Old Pharmacy"]);
    let embed = safe.note.links.iter().find(|l| l.embed).unwrap();
    assert_eq!((embed.target.as_str(), embed.heading.as_deref()), ("Rules/Weather Effects", Some("Fog")));
    let quest = kb.read("Quests/First Light.md").await.unwrap();
    let block = quest.note.links.iter().find(|l| l.block.is_some()).unwrap();
    assert_eq!(block.block.as_deref(), Some("fog-rule"));
    // The JSON code block is not a tag or link source; its fields are in the frontmatter map.
    assert_eq!(quest.note.frontmatter["reward"], json!("50 xp"));
    assert_eq!(quest.note.tags, ["quest", "tutorial", "quest/tutorial"]);
    // By alias and by title.
    assert_eq!(kb.read("Bunker").await.unwrap().path.as_str(), "Places/Safe House.md");
    assert_eq!(kb.resolve("the old pharmacy").as_deref(), Some("Places/Safe House.md"));
}

#[tokio::test]
async fn fixture_tables_code_headings_and_non_ascii() {
    let (_d, kb) = world().await;
    // The link to a heading keeps it, and the alias.
    let safe = kb.read("Places/Safe House.md").await.unwrap();
    let radio = safe.note.links.iter().find(|l| l.target == "Characters/Dr. Mara Quill").unwrap();
    assert_eq!((radio.heading.as_deref(), radio.alias.as_deref()), (Some("Broadcasts"), Some("doctor's broadcasts")));
    assert_eq!(
        safe.note.headings.iter().map(|h| h.text.as_str()).collect::<Vec<_>>(),
        ["Safe House", "Supplies", "Dangers"]
    );
    // The table's cells are searchable text, found by ranked and exact search.
    assert_eq!(hits(&kb, "visibility"), ["Rules/Weather Effects.md"]);
    assert_eq!(hits(&kb, "\"zombie speed\""), ["Rules/Weather Effects.md"]);
    let m = kb.grep(&GrepOptions { pattern: r"^\| fog \|".into(), regex: true, ..Default::default() }).unwrap();
    assert_eq!((m.len(), m[0].line), (1, 13));
    // The code block: no tags, links or headings from it, but its text is searchable.
    let quest = kb.read("Quests/First Light.md").await.unwrap();
    assert_eq!(quest.note.links.len(), 3);
    assert_eq!(quest.note.headings.len(), 2);
    assert_eq!(hits(&kb, "\"quest_id\""), ["Quests/First Light.md"]);
    // Non-ASCII: degrees, umlauts, Japanese written without spaces, by ranked search too.
    for q in ["霧", "日本語", "霧の日", "über-hot", "°C 30"] {
        assert_eq!(hits(&kb, q), ["Rules/Weather Effects.md"], "{q}");
    }
    let r = kb.search(&SearchOptions { query: "霧の日".into(), ..Default::default() }).unwrap();
    assert!(r.hits[0].snippet.contains("<b>霧</b><b>の</b><b>日</b>"), "{}", r.hits[0].snippet);
    // A heading's tag filter with nesting: `world` matches the README's `#world/index`.
    assert_eq!(hits(&kb, "tag:world/index"), ["README.md"]);
    assert!(hits(&kb, "tag:index/world").is_empty());
}

#[tokio::test]
async fn links_and_backlinks() {
    let (_d, kb) = world().await;
    let back = kb.backlinks("Places/Safe House.md").unwrap();
    let mut from: Vec<_> = back.iter().filter_map(|b| b.path.clone()).collect();
    from.dedup();
    assert_eq!(from, ["Characters/Dr. Mara Quill.md", "Quests/First Light.md", "README.md"]);
    let aliased = back.iter().find(|b| b.path.as_deref() == Some("Characters/Dr. Mara Quill.md")).unwrap();
    assert_eq!(aliased.link.alias.as_deref(), Some("Bunker"));
    let links = kb.links("Places/Safe House.md").unwrap();
    assert!(links.iter().all(|l| l.path.is_some()), "{links:?}");
    assert!(matches!(kb.backlinks("Nowhere"), Err(KbError::NotFound(_))));
}

#[tokio::test]
async fn ranked_search_phrases_prefixes_filters_snippets() {
    let (_d, kb) = world().await;
    // BM25 with field weights: the note titled "Weather Effects" ranks first for "weather".
    assert_eq!(hits(&kb, "weather")[0], "Rules/Weather Effects.md");
    // All words must match.
    let mut both = hits(&kb, "fog protection radius");
    both.sort();
    assert_eq!(both, ["Places/Safe House.md", "Rules/Weather Effects.md"]);
    assert_eq!(hits(&kb, "\"protection radius shrinks\""), ["Places/Safe House.md"]);
    assert_eq!(hits(&kb, "epidemiolog*"), ["Characters/Dr. Mara Quill.md"]);
    assert_eq!(hits(&kb, "\"infection ma\"*"), ["Characters/Dr. Mara Quill.md"]);
    assert!(hits(&kb, "fog -zombies").iter().all(|p| p != "Rules/Weather Effects.md"));
    // Diacritics fold: "uber" finds "Über".
    assert_eq!(hits(&kb, "uber"), ["Rules/Weather Effects.md"]);
    // Tags (nested: `npc` matches `npc/medical`) and folders.
    assert_eq!(hits(&kb, "tag:medical"), Vec::<String>::new());
    assert_eq!(hits(&kb, "tag:npc"), ["Characters/Dr. Mara Quill.md"]);
    let r =
        kb.search(&SearchOptions { query: "fog".into(), folder: Some("Rules".into()), ..Default::default() }).unwrap();
    assert_eq!(r.total, 1);
    let r = kb
        .search(&SearchOptions { query: "radius".into(), tags: vec!["location".into()], ..Default::default() })
        .unwrap();
    assert_eq!(r.hits.len(), 1);
    assert!(r.hits[0].snippet.contains("<b>radius</b>"), "{}", r.hits[0].snippet);
    // Aliases are searchable.
    assert_eq!(hits(&kb, "bunker")[0], "Places/Safe House.md");
    // Paging.
    let all = kb.search(&SearchOptions { query: "the".into(), limit: 100, ..Default::default() }).unwrap();
    let page2 = kb.search(&SearchOptions { query: "the".into(), limit: 2, offset: 2, ..Default::default() }).unwrap();
    assert_eq!(page2.total, all.total);
    assert_eq!(page2.hits[0].path, all.hits[2].path);
    // Empty queries are bad input.
    assert!(matches!(kb.search(&SearchOptions::default()), Err(KbError::InvalidInput(_))));
    assert!(matches!(
        kb.search(&SearchOptions { query: " -".into(), ..Default::default() }),
        Err(KbError::InvalidInput(_)) | Ok(_)
    ));
}

#[tokio::test]
async fn exact_and_regex_search() {
    let (_d, kb) = world().await;
    let m = kb.grep(&GrepOptions { pattern: "19:00".into(), ..Default::default() }).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].path.as_str(), m[0].line), ("Characters/Dr. Mara Quill.md", 11));
    let m = kb.grep(&GrepOptions { pattern: r"\d+ metres".into(), regex: true, ..Default::default() }).unwrap();
    assert_eq!(m.len(), 2, "{m:?}");
    let m = kb.grep(&GrepOptions { pattern: "霧の日".into(), ..Default::default() }).unwrap();
    assert_eq!(m[0].path, "Rules/Weather Effects.md");
    let m = kb.grep(&GrepOptions { pattern: "FOG".into(), case_sensitive: true, ..Default::default() }).unwrap();
    assert!(m.is_empty());
    assert!(matches!(
        kb.grep(&GrepOptions { pattern: "(".into(), regex: true, ..Default::default() }),
        Err(KbError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn list_and_context() {
    let (_d, kb) = world().await;
    let root = kb.list(None, false).unwrap();
    let names: Vec<_> = root.iter().map(|e| (e.kind, e.path.as_str())).collect();
    assert_eq!(
        names,
        [
            ("folder", "Characters"),
            ("folder", "Places"),
            ("folder", "Quests"),
            ("folder", "Rules"),
            ("document", "README.md")
        ]
    );
    assert_eq!(kb.list(Some("Places"), false).unwrap()[0].title.as_deref(), Some("Safe House"));
    assert_eq!(kb.list(None, true).unwrap().len(), 5);
    assert!(matches!(kb.list(Some("Nope"), false), Err(KbError::NotFound(_))));
    assert!(kb.list(Some("../x"), false).is_err());

    let c = kb.context("Safe House", 100_000).unwrap();
    assert_eq!(c.documents[0].reason, ContextReason::Topic);
    assert_eq!(c.documents[0].path, "Places/Safe House.md");
    assert_eq!(c.documents.len(), 5, "links and backlinks reach the whole world");
    assert!(c.to_prompt().contains("## Safe House (Places/Safe House.md)"));
    // A small budget keeps the topic and omits the rest.
    let small = kb.context("Safe House", 150).unwrap();
    assert!(small.total_tokens <= 150);
    assert!(!small.omitted.is_empty());
    assert!(small.documents.iter().map(|d| d.tokens).sum::<usize>() == small.total_tokens);
    assert!(small.omitted.iter().all(|p| small.documents.iter().all(|d| &d.path != p)));
    // The prompt itself, headers included, stays within the budget.
    assert!(gaia_kb::document::estimate_tokens(&small.to_prompt()) <= 150, "{}", small.to_prompt());
    let tiny = kb.context("Safe House", 30).unwrap();
    assert!(tiny.documents[0].truncated && tiny.total_tokens <= 30, "{tiny:?}");
    assert!(gaia_kb::document::estimate_tokens(&tiny.to_prompt()) <= 30);
    // A budget too small for even the topic's header leaves everything out, and says so.
    let none = kb.context("Safe House", 3).unwrap();
    assert!(none.documents.is_empty() && none.omitted[0] == "Places/Safe House.md");
    // Folders and tags.
    assert_eq!(kb.context("Rules", 0).unwrap().documents[0].reason, ContextReason::Folder);
    let tagged = kb.context("#quest", 0).unwrap();
    assert_eq!(tagged.documents.len(), 1);
    assert_eq!(tagged.documents[0].reason, ContextReason::Tag);
    assert!(kb.context(" ", 0).is_err());
}

#[tokio::test]
async fn tools_for_models() {
    let (_d, kb) = world().await;
    let specs = KbTools::specs();
    assert_eq!(specs.len(), 6);
    for s in &specs {
        assert_eq!(s.parameters["type"], "object", "{}", s.name);
    }
    let tools = KbTools::new(kb);
    let r = tools.call("search_knowledge_base", r#"{"query": "pharmacy radius"}"#).await.unwrap();
    assert_eq!(r["hits"][0]["path"], "Places/Safe House.md");
    let r = tools.call("search_knowledge_base", r#"{"query": "\\d+ m\\b", "mode": "regex"}"#).await.unwrap();
    assert_eq!(r["total"], 3);
    let r = tools
        .call("read_kb_file", r#"{"path": "Rules/Weather Effects.md", "start_line": 5, "end_line": 6}"#)
        .await
        .unwrap();
    assert_eq!(r["content"], "# Weather Effects\n");
    let r = tools.call("list_kb_directory", "{}").await.unwrap();
    assert_eq!(r["entries"].as_array().unwrap().len(), 5);
    let r = tools.call("load_kos_context", r#"{"name": "Dr. Mara Quill", "max_tokens": 2000}"#).await.unwrap();
    assert_eq!(r["documents"][0]["path"], "Characters/Dr. Mara Quill.md");
    let r = tools.call("search_within_context", r#"{"name": "Rules", "query": "fog"}"#).await.unwrap();
    assert_eq!(r["total"], 1);
    let r = tools.call("synthesize_kb_information", r#"{"query": "fog"}"#).await.unwrap();
    let digest = r["digest"].as_str().unwrap();
    assert!(digest.contains("[[Weather Effects]] § Fog"), "{digest}");
    // Failures are errors, not successes.
    assert!(matches!(tools.call("read_kb_file", r#"{"path": "../../etc/passwd"}"#).await, Err(KbError::Path(_))));
    assert!(matches!(tools.call("read_kb_file", r#"{"path": "Nope.md"}"#).await, Err(KbError::NotFound(_))));
    assert!(matches!(tools.call("read_kb_file", "{not json").await, Err(KbError::InvalidInput(_))));
    assert!(matches!(
        tools.call("search_knowledge_base", r#"{"query": "x", "bogus": 1}"#).await,
        Err(KbError::InvalidInput(_))
    ));
    assert!(matches!(tools.call("no_such_tool", "{}").await, Err(KbError::NotFound(_))));
    assert!(matches!(
        tools.call("synthesize_kb_information", r#"{"query": "xylophone"}"#).await,
        Err(KbError::NotFound(_))
    ));
}

#[tokio::test]
async fn path_safety() {
    let (d, kb) = world().await;
    for bad in ["../outside.md", "/etc/passwd", "Places/../../x.md", ".git/config", "a/.obsidian/x.md", "x\0.md"] {
        assert!(matches!(kb.read(bad).await, Err(KbError::Path(_))), "{bad}");
        let w = kb.write(WriteRequest { path: bad.into(), content: "x".into(), ..Default::default() }).await;
        assert!(matches!(w, Err(KbError::Path(_))), "{bad}: {w:?}");
    }
    assert!(matches!(kb.read("image.png").await, Err(KbError::Path(_))));
    // A symlinked folder leading outside the vault is neither indexed nor writable.
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.md"), "# Secret\nlaunch codes").unwrap();
    let root = kb.config().root.clone();
    std::os::unix::fs::symlink(&outside, root.join("Leak")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.md"), root.join("leak.md")).unwrap();
    kb.reindex().await.unwrap();
    assert!(hits(&kb, "launch codes").is_empty());
    assert!(kb.read("Leak/secret.md").await.is_err());
    let w = kb.write(WriteRequest { path: "Leak/new.md".into(), content: "x".into(), ..Default::default() }).await;
    assert!(matches!(w, Err(KbError::Path(_))), "{w:?}");
    assert!(!outside.join("new.md").exists());
}

#[tokio::test]
async fn edits_detect_conflicts_and_update_the_index() {
    let (_d, kb) = world().await;
    let created = kb
        .write(WriteRequest {
            path: "Items/Flare Gun".into(),
            content: "# Flare Gun\nSignals the caravan.".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(created.path, "Items/Flare Gun.md");
    assert_eq!(created.commit, None, "a plain folder makes no commits");
    assert_eq!(hits(&kb, "caravan"), ["Items/Flare Gun.md"]);
    // Creating again without a version is a conflict; so is a stale version.
    let again =
        kb.write(WriteRequest { path: "Items/Flare Gun.md".into(), content: "x".into(), ..Default::default() }).await;
    assert!(matches!(again, Err(KbError::Conflict(_))));
    let v1 = created.version.unwrap();
    let upd = kb
        .write(WriteRequest {
            path: "Items/Flare Gun.md".into(),
            content: "# Flare Gun\nLights the beacon.".into(),
            version: Some(v1.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let stale = kb
        .write(WriteRequest {
            path: "Items/Flare Gun.md".into(),
            content: "lost".into(),
            version: Some(v1.clone()),
            ..Default::default()
        })
        .await;
    assert!(matches!(stale, Err(KbError::Conflict(_))), "{stale:?}");
    assert_eq!(kb.read("Items/Flare Gun.md").await.unwrap().content, "# Flare Gun\nLights the beacon.");
    assert!(hits(&kb, "caravan").is_empty());
    assert_eq!(hits(&kb, "beacon"), ["Items/Flare Gun.md"]);
    // Size limit.
    let big = "x".repeat(kb.config().max_document_bytes + 1);
    assert!(matches!(
        kb.write(WriteRequest { path: "big.md".into(), content: big, ..Default::default() }).await,
        Err(KbError::InvalidInput(_))
    ));
    // Move: stale version refused, destination must be free.
    assert!(matches!(
        kb.move_document("Items/Flare Gun.md", "Items/Flare.md", Some(&v1), None).await,
        Err(KbError::Conflict(_))
    ));
    assert!(matches!(kb.move_document("Items/Flare Gun.md", "README.md", None, None).await, Err(KbError::Conflict(_))));
    let moved = kb.move_document("Items/Flare Gun.md", "Gear/Flare.md", upd.version.as_deref(), None).await.unwrap();
    assert_eq!(moved.path, "Gear/Flare.md");
    assert_eq!(hits(&kb, "beacon"), ["Gear/Flare.md"]);
    assert!(!kb.config().root.join("Items").exists(), "empty folders are removed");
    // Delete.
    assert!(matches!(kb.delete("Gear/Flare.md", Some("0000"), None).await, Err(KbError::Conflict(_))));
    kb.delete("Gear/Flare.md", None, None).await.unwrap();
    assert!(hits(&kb, "beacon").is_empty());
    assert!(matches!(kb.delete("Gear/Flare.md", None, None).await, Err(KbError::NotFound(_))));
    // Links follow edits: a new note linking to the Safe House shows up in its backlinks.
    kb.write(WriteRequest {
        path: "Lore/Rumour.md".into(),
        content: "They say [[Bunker]] has food.".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(kb.backlinks("Places/Safe House.md").unwrap().iter().any(|b| b.path.as_deref() == Some("Lore/Rumour.md")));
}

#[tokio::test]
async fn persistent_index_is_updated_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::world_vault(dir.path(), "world");
    let config = KbConfig {
        root: root.clone(),
        index_dir: Some(dir.path().join("index")),
        sync_interval_secs: 0,
        ..KbConfig::default()
    };
    let kb = Kb::open(config.clone()).await.unwrap();
    let status = kb.status().await;
    assert_eq!((status.documents, status.indexed_documents), (5, 5));
    assert!(status.index_size_bytes > 0);
    drop(kb);
    // One file changes and one is removed while the server is down: reopening re-indexes only those.
    std::fs::write(root.join("Rules/Weather Effects.md"), "# Weather Effects\nSandstorms blind everyone.").unwrap();
    std::fs::remove_file(root.join("Quests/First Light.md")).unwrap();
    let kb = Kb::open(config).await.unwrap();
    assert_eq!(hits(&kb, "sandstorms"), ["Rules/Weather Effects.md"]);
    assert!(hits(&kb, "sunrise").is_empty());
    std::fs::write(root.join("Places/Safe House.md"), "# Safe House\nNow a ruin.").unwrap();
    let report = kb.reindex().await.unwrap();
    assert_eq!(report.changed, ["Places/Safe House.md"]);
    assert!(report.deleted.is_empty());
    // A same-size edit right after a read is still seen (the modification time alone is not trusted
    // within the file system's timestamp granularity).
    std::fs::write(
        root.join("Places/Safe House.md"),
        "# Safe House
Now a tomb.",
    )
    .unwrap();
    let report = kb.reindex().await.unwrap();
    assert_eq!(report.changed, ["Places/Safe House.md"]);
    assert_eq!(hits(&kb, "tomb"), ["Places/Safe House.md"]);
    let full = kb.rebuild_index().await.unwrap();
    assert_eq!(full.changed.len(), 4);
    assert_eq!(hits(&kb, "tomb"), ["Places/Safe House.md"]);
    assert!(hits(&kb, "ruin").is_empty());
}
